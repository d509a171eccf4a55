//! How a session outlives failures: an absent Stream API asked again until it answers, a
//! session the server lost taken over by a linked new one, a session left in the spool by an
//! earlier process delivered and ended, and the spool journal that makes the last two possible
//! (`docs/delivery.md`).

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use prost::Message;
use tokio::time::Instant;

use open_streaming::open_data::ConfigurationPacket;

use super::{
    Current, MAX_PROBE_INTERVAL, OUTAGE_SUMMARY, OutageClock, PROBE_TIMEOUT, Producer, SpoolPlace,
    new_session_packet,
};
use crate::publish::delivery::Route;
use crate::publish::session::{
    Cause, MAIN_STREAM, PacketKind, PublishError, SessionIdentity, create_session, data_format_ids,
    session_is_open, unique_config_id,
};
use crate::spool::{SessionRecord, SessionState, Spool, SpoolConfig, SpoolRecord, SyncPolicy};

/// What the spool keeps about a session, to announce it again after the server or the bridge
/// restarted.
#[derive(Clone, PartialEq, prost::Message)]
struct SessionMemo {
    #[prost(string, tag = "1")]
    identifier: String,
    #[prost(string, tag = "2")]
    session_type: String,
    #[prost(int64, tag = "3")]
    utc_offset_seconds: i64,
    #[prost(btree_map = "string, string", tag = "4")]
    details: BTreeMap<String, String>,
    /// The latest ConfigurationPacket, encoded.
    #[prost(bytes = "vec", tag = "5")]
    configuration: Vec<u8>,
    #[prost(message, repeated, tag = "6")]
    formats: Vec<FormatMemo>,
    /// `Packet.id`s below this may have been used.
    #[prost(uint64, tag = "7")]
    packet_ids_reserved: u64,
    /// The session's creation time (its first sample), ns since the UNIX epoch; 0 = unknown.
    #[prost(uint64, tag = "8")]
    creation_ns: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct FormatMemo {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(string, repeated, tag = "2")]
    parameters: Vec<String>,
}

impl Producer {
    /// Delivers the waiting packets of a session an earlier process left in the spool into
    /// it (or the session that takes over from it), then ends it.
    pub(super) async fn finish_previous(
        &mut self,
        record: SessionRecord,
    ) -> Result<(), PublishError> {
        let memo = SessionMemo::decode(record.opaque.as_ref()).unwrap_or_default();
        let configuration =
            ConfigurationPacket::decode(memo.configuration.as_slice()).unwrap_or_default();
        self.current = Current {
            index: record.index,
            key: record.session_key.clone(),
            identity: SessionIdentity {
                data_source: record.data_source.clone(),
                identifier: memo.identifier,
                session_type: memo.session_type,
                utc_offset_seconds: memo.utc_offset_seconds,
                details: memo.details,
                creation_ns: (memo.creation_ns > 0).then_some(memo.creation_ns),
            },
            streams: record
                .streams
                .iter()
                .filter(|s| s.as_str() != MAIN_STREAM)
                .cloned()
                .collect(),
            configuration,
            format_ids: memo
                .formats
                .into_iter()
                .map(|f| (f.parameters, f.id))
                .collect(),
            next_packet_id: memo.packet_ids_reserved,
            packet_ids_reserved: memo.packet_ids_reserved,
            ending: record.state == SessionState::Ended,
            last_sample_ns: None,
        };
        tracing::info!(session = %record.session_key, "an earlier session waits in the spool: delivering it and ending it first");
        self.open = true;
        self.route_current(0);
        // The server is asked about the session before anything is sent to it.
        self.outage = Some(OutageClock {
            started: Instant::now(),
            attempts: 0,
            next_probe: Instant::now(),
            next_summary: Instant::now() + OUTAGE_SUMMARY,
        });
        self.end_current(&mut |_| {}, &mut std::future::pending(), None)
            .await?;
        self.open = false;
        self.stats.sessions_resumed += 1;
        Ok(())
    }

    /// Asks an absent server whether it is back and still has the session; when it is,
    /// delivery resumes (in a session that takes over, if the server lost this one).
    pub async fn probe(&mut self) -> Result<(), PublishError> {
        self.delivery.settle().await;
        let asked = session_is_open(
            &self.calls,
            &self.current.key,
            PROBE_TIMEOUT.min(self.config.call_timeout),
        )
        .await;
        let Some(clock) = self.outage.as_mut() else {
            return Ok(());
        };
        match asked {
            Ok(known) => {
                let away = clock.started.elapsed();
                if !known && let Err(error) = self.take_over().await {
                    tracing::warn!(%error, "taking over the lost session failed; trying again");
                    if let Some(clock) = self.outage.as_mut() {
                        clock.next_probe = Instant::now() + MAX_PROBE_INTERVAL;
                    }
                    return Ok(());
                }
                tracing::info!(
                    away_s = away.as_secs_f64(),
                    session = %self.current.key,
                    "Stream API reachable; delivering waiting packets"
                );
                self.outage = None;
                self.stats.reopened_streams += 1;
                self.delivery.resume();
            }
            Err(status) => {
                clock.attempts = clock.attempts.saturating_add(1);
                let delay = self
                    .config
                    .retry
                    .delay(clock.attempts)
                    .min(MAX_PROBE_INTERVAL);
                clock.next_probe = Instant::now() + delay;
                if clock.attempts == 1 || Instant::now() >= clock.next_summary {
                    clock.next_summary = Instant::now() + OUTAGE_SUMMARY;
                    let waiting = self.delivery.spool().stats();
                    tracing::warn!(
                        "cannot reach the Stream API at {}: {}; {} packets ({} samples) wait in the spool, away {} s, {} retries so far, next in {:.1} s",
                        self.config.endpoint,
                        Cause(&status),
                        waiting.records_pending,
                        waiting.samples_pending,
                        clock.started.elapsed().as_secs(),
                        clock.attempts,
                        delay.as_secs_f64(),
                    );
                }
            }
        }
        Ok(())
    }

    /// The server no longer knows the session (it restarted without its state): a new one,
    /// linked to it, takes over. It is announced and configured on every stream at once (not
    /// through the spool: these must precede everything waiting), its data-format ids are
    /// resolved again, and the spooled packets are routed there with their ids shifted above
    /// the announcements'. A failure here leaves the outage on; the next probe tries again.
    pub(super) async fn take_over(&mut self) -> Result<(), PublishError> {
        let old = self.current.key.clone();
        let identity = self.current.identity.clone();
        let key = create_session(&identity, vec![old.clone()], &self.calls).await?;
        tracing::warn!(old = %old, new = %key, "the Stream API lost the session; a new session linked to it takes over");
        let lists = self.current.format_ids.keys().cloned().collect();
        let mut remap = HashMap::new();
        let mut format_ids = HashMap::new();
        for (parameters, id) in
            data_format_ids(&self.calls, &self.config.data_source, lists).await?
        {
            if let Some(old_id) = self.current.format_ids.get(&parameters) {
                remap.insert(*old_id, id);
            }
            format_ids.insert(parameters, id);
        }
        let mut configuration = self.current.configuration.clone();
        configuration.config_id =
            unique_config_id(self.config.key_generator.as_deref(), &self.calls).await?;
        let streams = self.all_streams();
        let takeover_point = self.current.next_packet_id;
        let new_session = Bytes::from(new_session_packet(&identity).encode_to_vec());
        let mut announced: Vec<(PacketKind, Bytes)> = vec![(PacketKind::NewSession, new_session)];
        announced.extend(
            self.encoded_configuration(&configuration)
                .into_iter()
                .map(|part| (PacketKind::Configuration, part)),
        );
        let announcements = (streams.len() * announced.len()) as u64;
        let route = Route {
            session_key: key.clone(),
            format_remap: remap,
            announced_again_before: takeover_point,
            id_shift: takeover_point + announcements,
        };
        // Announcements take the ids just above the take-over point (no shift applies to them).
        let mut announcement_route = route.clone();
        announcement_route.announced_again_before = 0;
        self.delivery
            .set_route(self.current.index, announcement_route);
        let mut id = takeover_point;
        for (kind, content) in &announced {
            for stream in &streams {
                let record = SpoolRecord {
                    stream: stream.clone(),
                    kind: kind.code(),
                    packet_id: id,
                    session: self.current.index,
                    payload: content.clone(),
                    ..SpoolRecord::default()
                };
                id += 1;
                self.delivery.send_now(&record).await?;
            }
        }
        self.delivery.set_route(self.current.index, route);
        self.current.key = key;
        self.current.format_ids = format_ids;
        self.current.configuration = configuration;
        // New packets continue above every shifted id.
        self.current.next_packet_id = 2 * takeover_point + announcements;
        self.current.packet_ids_reserved = self.current.next_packet_id;
        self.stats.sessions_taken_over += 1;
        self.journal()
    }

    /// Records the session in the spool's journal (key, streams, what re-announcing needs).
    /// Not for a temporary spool: it is removed at exit and no later run resumes it, so its
    /// journal would never be read (and writing it re-encoded the whole configuration each
    /// time).
    pub(super) fn journal(&mut self) -> Result<(), PublishError> {
        if self.temporary.is_some() {
            return Ok(());
        }
        let current = &self.current;
        let memo = SessionMemo {
            identifier: current.identity.identifier.clone(),
            session_type: current.identity.session_type.clone(),
            utc_offset_seconds: current.identity.utc_offset_seconds,
            details: current.identity.details.clone(),
            configuration: current.configuration.encode_to_vec(),
            formats: current
                .format_ids
                .iter()
                .map(|(parameters, id)| FormatMemo {
                    id: *id,
                    parameters: parameters.clone(),
                })
                .collect(),
            packet_ids_reserved: current.packet_ids_reserved,
            creation_ns: current.identity.creation_ns.unwrap_or_default(),
        };
        let record = SessionRecord {
            index: current.index,
            session_key: current.key.clone(),
            data_source: current.identity.data_source.clone(),
            streams: self.all_streams(),
            state: if current.ending {
                SessionState::Ended
            } else {
                SessionState::Open
            },
            opaque: Bytes::from(memo.encode_to_vec()),
        };
        if let Err(error) = self.delivery.spool_mut().put_session(record) {
            self.journal_failed(&error);
        }
        Ok(())
    }

    /// A journal write failed (the spool's disk is full): the session goes on, its packets
    /// held in memory by the delivery; only a restart could not resume it. Logged once,
    /// counted in the spool's `write_failures`.
    pub(super) fn journal_failed(&mut self, error: &crate::spool::SpoolError) {
        if !self.journal_failure_logged {
            self.journal_failure_logged = true;
            tracing::error!(%error, "spool session journal not written; the session goes on, but a restart could not resume it (logged once; see spool_write_failures)");
        }
    }
}

/// The spool at `place`, the samples it holds from an earlier run, and the temporary folder
/// to keep alive (for [`SpoolPlace::Temporary`]).
pub(super) fn open_spool(
    place: &SpoolPlace,
) -> Result<(Spool, u64, Option<tempfile::TempDir>), PublishError> {
    let (dir, config, temporary) = match place {
        SpoolPlace::Dir(dir, config) => (dir.clone(), config.clone(), None),
        SpoolPlace::Temporary => {
            let temporary = tempfile::Builder::new()
                .prefix("ecu-bridge-spool-")
                .tempdir()
                .map_err(|error| crate::spool::SpoolError::io(&std::env::temp_dir(), error))?;
            // The folder is removed at exit and no later run resumes it, so syncing it would
            // only make the run wait for the disk, and a packet needs writing only when the
            // server has not taken it by the time twice what delivery queues in memory has
            // followed it (an outage, a slow link): a healthy run writes nothing.
            let config = SpoolConfig {
                max_bytes: 4 << 30,
                sync: SyncPolicy::Never,
                write_behind_bytes: 2 * crate::publish::delivery::RECENT_BYTES as u64,
                ..SpoolConfig::default()
            };
            (temporary.path().to_owned(), config, Some(temporary))
        }
    };
    let (spool, recovery) = Spool::open(&dir, config)?;
    if recovery.records_pending > 0 || recovery.corrupt_records > 0 {
        tracing::warn!(
            spool = %dir.display(),
            packets = recovery.records_pending,
            samples = recovery.samples_pending,
            corrupt_records = recovery.corrupt_records,
            truncated_bytes = recovery.truncated_bytes,
            oldest_sample_ns = recovery.oldest_time_ns.unwrap_or_default(),
            newest_sample_ns = recovery.newest_time_ns.unwrap_or_default(),
            "spool holds packets from an earlier run; they are delivered first"
        );
    }
    Ok((spool, recovery.samples_pending, temporary))
}
