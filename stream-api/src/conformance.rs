//! The producer-conformance checker: a sans-IO state machine over what a Stream API server sees.
//!
//! [`Checker::handle`] takes one [`Event`] (a session created or ended, a data-format id issued,
//! a packet written, …) and the server's receive time, updates per-session/per-stream state and
//! returns the [`Violation`]s of docs/open-streaming.md §10 (B1–B14) that event shows. It never does
//! IO, reads no clock and never changes what the server answers: the server decides (strict mode)
//! whether a violation rejects the request. Because it is deterministic, the server replays a
//! recording through it on restart to rebuild the same state.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use prost::Message;

use super::lint::{self, Findings};
use super::packet::{Content, PacketCtx, decode_content};
use super::seen::{Seen, SeenIds};
use open_streaming::{api, open_data};

/// The rule names a [`Violation`] can carry, in order.
pub const RULES: [&str; 14] = [
    "B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B9", "B10", "B11", "B12", "B13", "B14",
];
/// A serialized Packet above this is silently dropped by a v1.3 server's Kafka producer (rule 52).
pub const MAX_PACKET_BYTES: usize = 1_000_000;

/// The static rule name equal to `name`, if it is one of [`RULES`].
pub fn rule_name(name: &str) -> Option<&'static str> {
    RULES.iter().copied().find(|r| *r == name)
}

/// How bad a violation is. Strict mode rejects only [`Severity::Error`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Severity {
    /// The rules say MUST: the data is lost, misread or invisible.
    Error,
    /// The rules say SHOULD/warn: legal but degrades what readers show.
    Warning,
}

/// One broken producer rule, found in one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The §10 rule, `"B1"`..`"B14"`.
    pub rule: &'static str,
    /// Error (strict mode rejects) or warning (only reported).
    pub severity: Severity,
    /// The session key the request named (may be wrong or unknown; that is often the point).
    pub session_key: String,
    /// The stream written to (`""` = main); empty for session RPCs.
    pub stream: String,
    /// What exactly is wrong: packet id, parameter, values.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "[{} {level}] session {:?} stream {:?}: {}",
            self.rule, self.session_key, self.stream, self.message
        )
    }
}

/// What a data-format id stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FormatKind {
    /// A parameter list (GetParameterDataFormatId).
    Parameter,
    /// An event (GetEventDataFormatId).
    Event,
}

/// One thing the server saw, fed to [`Checker::handle`].
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A CreateSession call and the server's answer.
    SessionCreated {
        /// The request as received.
        request: &'a api::CreateSessionRequest,
        /// The response sent (its key is the session's key).
        response: &'a api::CreateSessionResponse,
    },
    /// An EndSession call and the server's answer.
    SessionEnded {
        /// The request as received.
        request: &'a api::EndSessionRequest,
        /// The response sent (`success=false` for an unknown key).
        response: &'a api::EndSessionResponse,
    },
    /// A data-format id the server issued (or returned from its memo).
    DataFormatIssued {
        /// Data source of the request.
        data_source: &'a str,
        /// Parameter list or event.
        kind: FormatKind,
        /// The ordered parameter ids, or the single event id.
        identifiers: &'a [String],
        /// The id returned.
        id: u64,
    },
    /// One packet written with WriteDataPacket or inside WriteDataPackets.
    PacketWritten(&'a api::DataPacketDetails),
    /// A WriteInfoPacket(s) message.
    InfoPacketWritten(&'a api::WriteInfoPacketRequest),
    /// A request above the 4 MiB gRPC limit (rejected by the transport).
    RequestTooLarge {
        /// The RPC.
        method: &'a str,
        /// Encoded request size.
        bytes: usize,
    },
}

/// The checker's state: sessions, their streams, issued data formats and config ids.
#[derive(Debug, Default)]
pub struct Checker {
    sessions: HashMap<String, SessionState>,
    formats: HashMap<u64, IssuedFormat>,
    /// Every config id seen, with the content first sent under it (rule 17, across sessions).
    config_ids: HashMap<String, open_data::ConfigurationPacket>,
}

/// What one written packet was: a redelivery or not, and the violations it shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PacketVerdict {
    /// Its (session, stream, `Packet.id`) was accepted before with the same content: a producer
    /// re-sending what it had no acknowledgement for (rule 48). Not checked again.
    pub duplicate: bool,
    /// Violations the packet shows (a duplicate still gets the envelope checks, B2/B10).
    pub violations: Vec<Violation>,
}

#[derive(Debug, Clone)]
/// A data-format id as issued: what B5 compares a packet's use of the id against.
pub(super) struct IssuedFormat {
    /// Data source it was issued for (ids are per data source).
    pub(super) data_source: String,
    /// Parameter list or event.
    pub(super) kind: FormatKind,
    /// The ordered identifiers it stands for.
    pub(super) identifiers: Vec<String>,
}

#[derive(Debug, Default)]
struct SessionState {
    data_source: String,
    ended: bool,
    streams: BTreeMap<String, StreamState>,
}

/// What one (session, stream) has been sent so far.
#[derive(Debug, Default)]
pub(super) struct StreamState {
    /// Anything was written here (NewSession must be first, B3).
    pub(super) any_packet: bool,
    /// A NewSession packet was written here (B3).
    pub(super) new_session: bool,
    /// A Configuration was written here (B3, B8).
    pub(super) configured: bool,
    /// EndOfSession was written here (B3 at EndSession; nothing may follow it).
    pub(super) end_of_session: bool,
    /// Data or a marker was written here (the main-stream config check runs once, B4).
    pub(super) data_seen: bool,
    /// Parameter ids defined by configurations on this stream (B5).
    pub(super) parameters: BTreeSet<String>,
    /// Event ids defined by configurations on this stream (B5).
    pub(super) events: BTreeSet<String>,
    /// `Packet.id`s accepted on this stream (redeliveries, B13).
    pub(super) seen: SeenIds,
    /// First and last sample time of data sent on the stream (B8 marker range).
    pub(super) data_range: Option<(u64, u64)>,
    /// Expected next `start_time` and interval per periodic data format (B7 continuity).
    pub(super) periodic_next: HashMap<String, (u64, u32)>,
}

impl Checker {
    /// A checker that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one event seen at `now_ns` (server receive time, epoch ns) and returns its violations.
    pub fn handle(&mut self, now_ns: u64, event: Event<'_>) -> Vec<Violation> {
        match event {
            Event::SessionCreated { request, response } => self.handle_create(request, response),
            Event::SessionEnded { request, response } => self.handle_end(request, response),
            Event::DataFormatIssued {
                data_source,
                kind,
                identifiers,
                id,
            } => {
                let format = IssuedFormat {
                    data_source: data_source.to_owned(),
                    kind,
                    identifiers: identifiers.to_vec(),
                };
                self.formats.insert(id, format);
                Vec::new()
            }
            Event::PacketWritten(details) => self.handle_packet(now_ns, details).violations,
            Event::InfoPacketWritten(request) => {
                let key = request
                    .message
                    .as_ref()
                    .map_or("", |p| p.session_key.as_str());
                let mut f = Findings::new(key, "");
                let why = "v1.3 files it under data source \"Info\"; use the Update* RPCs";
                f.warn("B14", format!("WriteInfoPacket(s) used: {why}"));
                f.out
            }
            Event::RequestTooLarge { method, bytes } => {
                let mut f = Findings::new("", "");
                f.error(
                    "B10",
                    format!("{method} request of {bytes} bytes exceeds the 4 MiB gRPC limit"),
                );
                f.out
            }
        }
    }

    fn handle_create(
        &mut self,
        request: &api::CreateSessionRequest,
        response: &api::CreateSessionResponse,
    ) -> Vec<Violation> {
        let mut f = Findings::new(&response.session_key, "");
        lint::check_create_session(request, &mut f);
        if response.success {
            let state = SessionState {
                data_source: request.data_source.clone(),
                ..SessionState::default()
            };
            self.sessions.insert(response.session_key.clone(), state);
        }
        f.out
    }

    fn handle_end(
        &mut self,
        request: &api::EndSessionRequest,
        response: &api::EndSessionResponse,
    ) -> Vec<Violation> {
        let mut f = Findings::new(&request.session_key, "");
        let Some(session) = self
            .sessions
            .get_mut(&request.session_key)
            .filter(|_| response.success)
        else {
            return f.out;
        };
        let main_ended = session.streams.get("").is_some_and(|s| s.end_of_session);
        let mut missing: Vec<String> = session
            .streams
            .iter()
            .filter(|(_, s)| !s.end_of_session)
            .map(|(name, _)| format!("{name:?}"))
            .collect();
        if !main_ended && !session.streams.contains_key("") {
            missing.insert(0, "\"\"".into());
        }
        if !missing.is_empty() {
            f.error(
                "B3",
                format!(
                    "EndSession before EndOfSession was written on stream(s) {}",
                    missing.join(", ")
                ),
            );
        }
        session.ended = true;
        f.out
    }

    /// Checks one written packet (as [`Event::PacketWritten`]) and tells whether it was a
    /// redelivery of a packet already accepted on its session and stream.
    pub fn handle_packet(
        &mut self,
        now_ns: u64,
        details: &api::DataPacketDetails,
    ) -> PacketVerdict {
        let mut f = Findings::new(&details.session_key, &details.stream);
        lint::check_names(&details.data_source, Some(&details.stream), &mut f);
        let Some(packet) = details.message.as_ref() else {
            f.error("B1", "DataPacketDetails.message is missing".into());
            return PacketVerdict::new(f, false);
        };
        let live = self.check_envelope(details, packet, &mut f);
        // Ids are tracked for ended sessions too: a redelivery after EndSession is still B2
        // (from the envelope), but its samples are not new.
        if self.check_id(details, packet, &mut f) == Seen::Duplicate {
            return PacketVerdict::new(f, true);
        }
        match decode_content(packet) {
            Ok(content) => self.check_packet(now_ns, details, packet, &content, live, &mut f),
            Err(message) => f.error("B1", message),
        }
        PacketVerdict::new(f, false)
    }

    /// B3–B9 for a packet whose content decoded; stream state only for a live session.
    fn check_packet(
        &mut self,
        now_ns: u64,
        details: &api::DataPacketDetails,
        packet: &open_data::Packet,
        content: &Content,
        live: bool,
        f: &mut Findings<'_>,
    ) {
        let Checker {
            sessions,
            formats,
            config_ids,
            ..
        } = self;
        let mut ctx = PacketCtx {
            now_ns,
            packet,
            data_source: &details.data_source,
            formats,
            config_ids,
            f,
        };
        match sessions.get_mut(&details.session_key).filter(|_| live) {
            Some(session) => {
                let main_configured = session.streams.get("").is_some_and(|s| s.configured);
                let session_range = session
                    .streams
                    .values()
                    .filter_map(|s| s.data_range)
                    .reduce(merge_range);
                let stream = session.streams.entry(details.stream.clone()).or_default();
                ctx.check_order(content, stream, main_configured);
                ctx.check_content(content, Some(stream), session_range);
                stream.any_packet = true;
            }
            None => ctx.check_content(content, None, None),
        }
    }

    /// B13 and redelivery: what the packet's id means on its stream of a known session.
    fn check_id(
        &mut self,
        d: &api::DataPacketDetails,
        packet: &open_data::Packet,
        f: &mut Findings<'_>,
    ) -> Seen {
        let Some(session) = self.sessions.get_mut(&d.session_key) else {
            return Seen::New;
        };
        let stream = session.streams.entry(d.stream.clone()).or_default();
        let seen = stream.seen.handle(packet);
        let id = packet.id;
        match seen {
            Seen::Late { last } => f.warn(
                "B13",
                format!("packet id {id} does not increase (previous {last})"),
            ),
            Seen::Reused => f.warn(
                "B13",
                format!("packet id {id} reused for different content on this stream"),
            ),
            Seen::New | Seen::Duplicate => {}
        }
        seen
    }

    /// B2, B10 on the envelope; returns whether the packet belongs to a live session.
    fn check_envelope(
        &mut self,
        d: &api::DataPacketDetails,
        packet: &open_data::Packet,
        f: &mut Findings<'_>,
    ) -> bool {
        let (key, id) = (&d.session_key, packet.id);
        if packet.session_key != *key {
            f.error(
                "B2",
                format!(
                    "packet {id}: Packet.session_key {:?} != DataPacketDetails.session_key {key:?}",
                    packet.session_key
                ),
            );
        }
        let size = packet.encoded_len();
        if size > MAX_PACKET_BYTES {
            f.error(
                "B10",
                format!(
                    "packet {id} ({}) is {size} bytes serialized (> 1,000,000: dropped by Kafka)",
                    packet.r#type
                ),
            );
        }
        match self.sessions.get(key) {
            None => {
                f.error(
                    "B2",
                    format!("packet {id}: session key {key:?} was not returned by CreateSession"),
                );
                false
            }
            Some(s) if s.ended => {
                f.error(
                    "B2",
                    format!("packet {id} ({}) written after EndSession", packet.r#type),
                );
                false
            }
            Some(s) => {
                if s.data_source != d.data_source {
                    f.error(
                        "B2",
                        format!(
                            "packet {id}: session belongs to data source {:?}, written to {:?}",
                            s.data_source, d.data_source
                        ),
                    );
                }
                true
            }
        }
    }
}

impl PacketVerdict {
    fn new(f: Findings<'_>, duplicate: bool) -> Self {
        PacketVerdict {
            duplicate,
            violations: f.out,
        }
    }
}

/// The smallest range covering both.
pub(super) fn merge_range(a: (u64, u64), b: (u64, u64)) -> (u64, u64) {
    (a.0.min(b.0), a.1.max(b.1))
}

#[cfg(test)]
#[path = "conformance_tests.rs"]
mod tests;
