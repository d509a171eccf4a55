//! The server's model of what the real Stream API keeps in Kafka: sessions, data-format ids,
//! the id counter and per-topic offsets (§10 A2–A3).
//!
//! Sans-IO and deterministic given its inputs (keys and times are passed in), so replaying a
//! recording rebuilds exactly the same registry. It applies no producer lint; that is
//! [`Checker`](super::conformance::Checker)'s job.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use prost_types::{Duration, Timestamp};

use super::conformance::FormatKind;
use open_streaming::{api, open_data};

/// The global topic the server writes NewSession/EndOfSession/SessionInfo packets to (rule 55).
const SESSION_INFO_TOPIC: &str = "SessionInfo";

/// Sessions, data formats and topic offsets of one server.
#[derive(Debug, Default)]
pub struct Registry {
    sessions: HashMap<String, Session>,
    /// Session keys in creation order (GetCurrentSessions answers in this order).
    order: Vec<String>,
    /// (data source, kind, comma-joined ordered list) → id, the server's memo (rule 22).
    format_ids: HashMap<(String, FormatKind, String), u64>,
    /// id → (data source, kind, list) for GetParametersList / GetEvent.
    formats: HashMap<u64, (String, FormatKind, Vec<String>)>,
    /// Last ulong key handed out (data-format ids and Key Generator ulongs share it: all unique).
    last_id: u64,
    /// Next offset of partition 0 of each topic, as if every accepted packet reached Kafka.
    topic_offsets: BTreeMap<String, i64>,
    /// Streams written per data source (topic-based `{ds}.{stream}` topics that exist).
    streams: HashMap<String, BTreeSet<String>>,
}

#[derive(Debug, Clone)]
struct Session {
    data_source: String,
    identifier: String,
    r#type: String,
    version: u32,
    utc_offset: Option<Duration>,
    details: HashMap<String, String>,
    associates: Vec<String>,
    offsets: HashMap<String, i64>,
    creation_time: Timestamp,
    termination_time: Option<Timestamp>,
}

/// Epoch nanoseconds as a protobuf Timestamp.
pub fn timestamp(ns: u64) -> Timestamp {
    let secs = i64::try_from(ns / 1_000_000_000).unwrap_or(i64::MAX);
    // The remainder of a division by 1e9 always fits i32.
    let nanos = i32::try_from(ns % 1_000_000_000).unwrap_or(0);
    Timestamp {
        seconds: secs,
        nanos,
    }
}

impl Registry {
    /// Registers a session under `key` (A2): type defaulted to "Session", version kept as sent,
    /// offsets snapshot of the data source's topics, NewSession appended to the session-info topic.
    pub fn create_session(
        &mut self,
        req: &api::CreateSessionRequest,
        key: String,
        now_ns: u64,
    ) -> api::CreateSessionResponse {
        let ds = &req.data_source;
        let offsets = self.snapshot(ds);
        let r#type = if req.r#type.is_empty() {
            "Session".to_owned()
        } else {
            req.r#type.clone()
        };
        let session = Session {
            data_source: ds.clone(),
            identifier: req.identifier.clone(),
            r#type,
            version: req.version,
            utc_offset: req.utc_offset,
            details: req.details.clone(),
            associates: req.associate_session_key.clone(),
            offsets: offsets.clone(),
            creation_time: timestamp(now_ns),
            termination_time: None,
        };
        let new_session = open_data::NewSessionPacket {
            data_source: ds.clone(),
            topic_partition_offsets: offsets,
            utc_offset: req.utc_offset,
            session_info: Some(session.info()),
            creation_time: None,
        };
        self.bump(SESSION_INFO_TOPIC);
        self.sessions.insert(key.clone(), session);
        self.order.push(key.clone());
        api::CreateSessionResponse {
            session_key: key,
            new_session: Some(new_session),
            success: true,
        }
    }

    /// Marks a session complete; `success=false` for an unknown key (rule 11).
    pub fn end_session(
        &mut self,
        req: &api::EndSessionRequest,
        now_ns: u64,
    ) -> api::EndSessionResponse {
        let Some(ds) = self
            .sessions
            .get(&req.session_key)
            .map(|s| s.data_source.clone())
        else {
            return api::EndSessionResponse {
                end_session: None,
                success: false,
            };
        };
        let offsets = self.snapshot(&ds);
        self.bump(SESSION_INFO_TOPIC);
        if let Some(session) = self.sessions.get_mut(&req.session_key) {
            session.termination_time = Some(timestamp(now_ns));
        }
        let end = open_data::EndOfSessionPacket {
            data_source: ds,
            topic_partition_offsets: offsets,
            termination_time: None,
        };
        api::EndSessionResponse {
            end_session: Some(end),
            success: true,
        }
    }

    /// Keys of the data source's sessions that have not ended, oldest first.
    pub fn current_sessions(&self, data_source: &str) -> api::GetCurrentSessionsResponse {
        let session_keys = self
            .order
            .iter()
            .filter(|k| {
                self.sessions
                    .get(*k)
                    .is_some_and(|s| s.data_source == data_source && s.termination_time.is_none())
            })
            .cloned()
            .collect();
        api::GetCurrentSessionsResponse {
            session_keys,
            success: true,
        }
    }

    /// Everything known about a session; `success=false` (and nothing else) for an unknown key.
    pub fn session_info(&self, key: &str) -> api::GetSessionInfoResponse {
        let Some(s) = self.sessions.get(key) else {
            return api::GetSessionInfoResponse::default();
        };
        let offset = |topic: String| s.offsets.get(&format!("{topic}:0")).copied().unwrap_or(0);
        api::GetSessionInfoResponse {
            data_source: s.data_source.clone(),
            identifier: s.identifier.clone(),
            r#type: s.r#type.clone(),
            version: s.version,
            associate_session_keys: s.associates.clone(),
            is_complete: s.termination_time.is_some(),
            streams: self
                .streams
                .get(&s.data_source)
                .map(|set| set.iter().cloned().collect())
                .unwrap_or_default(),
            topic_partition_offsets: s.offsets.clone(),
            main_offset: offset(s.data_source.clone()),
            essentials_offset: offset(format!("{}_essential", s.data_source)),
            details: s.details.clone(),
            utc_offset: s.utc_offset,
            success: true,
            creation_time: Some(s.creation_time),
            termination_time: s.termination_time,
        }
    }

    /// UpdateSessionIdentifier; false for an unknown key.
    pub fn update_identifier(&mut self, req: &api::UpdateSessionIdentifierRequest) -> bool {
        self.with_session(&req.session_key, |s| s.identifier = req.identifier.clone())
    }

    /// UpdateSessionDetails (merged into the existing details); false for an unknown key.
    pub fn update_details(&mut self, req: &api::UpdateSessionDetailsRequest) -> bool {
        self.with_session(&req.session_key, |s| s.details.extend(req.details.clone()))
    }

    /// AddAssociateSession; false for an unknown key.
    pub fn add_associate(&mut self, req: &api::AddAssociateSessionRequest) -> bool {
        self.with_session(&req.session_key, |s| {
            s.associates.push(req.associate_session_key.clone())
        })
    }

    fn with_session(&mut self, key: &str, update: impl FnOnce(&mut Session)) -> bool {
        let Some(session) = self.sessions.get_mut(key) else {
            return false;
        };
        update(session);
        // The server publishes a SessionInfo packet for every successful update (rule 12).
        self.bump(SESSION_INFO_TOPIC);
        true
    }

    /// How many data-format ids this server has issued (or restored).
    pub fn data_formats(&self) -> usize {
        self.formats.len()
    }

    /// The memoised id for an ordered parameter list or an event, issuing a fresh one if new (A3).
    pub fn format_id(
        &mut self,
        data_source: &str,
        kind: FormatKind,
        identifiers: &[String],
    ) -> u64 {
        let memo = (data_source.to_owned(), kind, identifiers.join(","));
        if let Some(id) = self.format_ids.get(&memo) {
            return *id;
        }
        let id = self.next_id();
        self.restore_format(data_source, kind, identifiers, id);
        id
    }

    /// Records an id issued earlier (replay), keeping the counter above it.
    pub fn restore_format(
        &mut self,
        data_source: &str,
        kind: FormatKind,
        identifiers: &[String],
        id: u64,
    ) {
        self.observe_id(id);
        self.format_ids
            .insert((data_source.to_owned(), kind, identifiers.join(",")), id);
        self.formats
            .insert(id, (data_source.to_owned(), kind, identifiers.to_vec()));
        // The server writes a DataFormatDefinition (essential, empty key) to essentials + main.
        self.bump(data_source);
        self.bump(&format!("{data_source}_essential"));
    }

    /// The identifiers behind `id` if it was issued for `data_source` as `kind`.
    pub fn format(&self, data_source: &str, kind: FormatKind, id: u64) -> Option<&[String]> {
        self.formats
            .get(&id)
            .filter(|(ds, k, _)| ds == data_source && *k == kind)
            .map(|(_, _, ids)| ids.as_slice())
    }

    /// A fresh unique non-zero id.
    pub fn next_id(&mut self) -> u64 {
        self.last_id += 1;
        self.last_id
    }

    /// Keeps the counter above an id handed out earlier (replay).
    pub fn observe_id(&mut self, id: u64) {
        self.last_id = self.last_id.max(id);
    }

    /// Accounts one accepted packet on its topics (essential ones also on the essentials topic).
    pub fn on_packet(&mut self, details: &api::DataPacketDetails) {
        let ds = &details.data_source;
        if details.message.as_ref().is_some_and(|p| p.is_essential) {
            self.bump(&format!("{ds}_essential"));
        }
        if details.stream.is_empty() {
            self.bump(ds);
        } else {
            self.streams
                .entry(ds.clone())
                .or_default()
                .insert(details.stream.clone());
            self.bump(&format!("{ds}.{}", details.stream));
        }
    }

    /// `"{topic}:0"` → next offset for the data source's main, essentials and stream topics.
    fn snapshot(&self, ds: &str) -> HashMap<String, i64> {
        let mut topics = vec![ds.to_owned(), format!("{ds}_essential")];
        if let Some(streams) = self.streams.get(ds) {
            topics.extend(streams.iter().map(|s| format!("{ds}.{s}")));
        }
        topics
            .into_iter()
            .map(|t| {
                let offset = self.topic_offsets.get(&t).copied().unwrap_or(0);
                (format!("{t}:0"), offset)
            })
            .collect()
    }

    fn bump(&mut self, topic: &str) {
        *self.topic_offsets.entry(topic.to_owned()).or_insert(0) += 1;
    }
}

impl Session {
    fn info(&self) -> open_data::SessionInfoPacket {
        open_data::SessionInfoPacket {
            data_source: self.data_source.clone(),
            identifier: self.identifier.clone(),
            r#type: self.r#type.clone(),
            version: self.version,
            associate_session_keys: self.associates.clone(),
            details: self.details.clone(),
            utc_offset: self.utc_offset,
            creation_time: None,
            termination_time: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_ids_memoised_per_order_and_kind() {
        let mut r = Registry::default();
        let ab = ["a:X".to_owned(), "b:X".to_owned()];
        let ba = ["b:X".to_owned(), "a:X".to_owned()];
        let id1 = r.format_id("ds", FormatKind::Parameter, &ab);
        assert_ne!(id1, 0);
        assert_eq!(r.format_id("ds", FormatKind::Parameter, &ab), id1);
        let id2 = r.format_id("ds", FormatKind::Parameter, &ba);
        assert_ne!(id2, id1);
        assert_ne!(r.format_id("other", FormatKind::Parameter, &ab), id1);
        assert_eq!(r.format("ds", FormatKind::Parameter, id2), Some(&ba[..]));
        assert_eq!(r.format("other", FormatKind::Parameter, id2), None);
    }

    #[test]
    fn session_defaults_and_offsets() {
        let mut r = Registry::default();
        let req = api::CreateSessionRequest {
            data_source: "car".into(),
            identifier: "run".into(),
            ..Default::default()
        };
        let resp = r.create_session(&req, "k1".into(), 5);
        let info = resp
            .new_session
            .and_then(|n| n.session_info)
            .expect("session info");
        assert_eq!((info.r#type.as_str(), info.version), ("Session", 0));
        let details = api::DataPacketDetails {
            message: Some(open_data::Packet::default()),
            data_source: "car".into(),
            stream: "s1".into(),
            session_key: "k1".into(),
        };
        r.on_packet(&details);
        let resp2 = r.create_session(&req, "k2".into(), 6);
        let offsets = resp2
            .new_session
            .expect("new session")
            .topic_partition_offsets;
        assert_eq!(offsets.get("car.s1:0"), Some(&1));
        assert_eq!(offsets.get("car:0"), Some(&0));
        assert!(
            !r.end_session(
                &api::EndSessionRequest {
                    session_key: "nope".into(),
                    ..Default::default()
                },
                7
            )
            .success
        );
        assert_eq!(r.session_info("k1").streams, vec!["s1".to_owned()]);
    }
}
