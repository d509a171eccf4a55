//! The server's shared state behind one lock: registry + checker + recorder + violation tally,
//! and the replay that rebuilds it from a recording on restart.
//!
//! Every RPC handler takes the lock once, records what it received and answered, feeds the
//! checker and flushes, so the recording's order is the order the state changed in. Nothing here
//! touches gRPC beyond `tonic::Status` for notification channels.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};

use super::conformance::{Checker, Event, FormatKind, Severity, Violation};
use super::recording::{Parsed, RawRecord, RecordKind, Recorder, RecordingError};
use super::registry::Registry;
use open_streaming::{api, key_generator, open_data};

/// A session start or stop notification subscriber: its data source and channel.
pub type Subscriber<T> = (String, mpsc::Sender<Result<T, tonic::Status>>);

/// State shared by all services of one server.
#[derive(Debug)]
pub struct Shared {
    /// Reject requests with error-severity violations (INVALID_ARGUMENT).
    pub strict: bool,
    core: Mutex<Core>,
    /// Latest [`Stats`], republished whenever a lock is released, for `ServerHandle::wait_until`.
    stats: watch::Sender<Stats>,
}

/// Progress counters of one server run (replayed records are not counted), so tests can await
/// "the server has seen N packets" instead of sleeping.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Successful CreateSession calls.
    pub sessions_created: u64,
    /// Successful EndSession calls.
    pub sessions_ended: u64,
    /// Packets written (WriteDataPacket + every packet inside WriteDataPackets), duplicates
    /// included.
    pub packets: u64,
    /// Packets whose (session key, stream, `Packet.id`) was already accepted with the same
    /// content: redeliveries by a producer that re-sends unacknowledged packets (rule 48). They
    /// are recorded and forwarded like any packet, but not checked again.
    pub duplicate_packets: u64,
    /// Violations found.
    pub violations: u64,
}

/// The locked state; publishes changed [`Stats`] when dropped.
#[derive(Debug)]
pub struct CoreGuard<'a> {
    guard: MutexGuard<'a, Core>,
    stats: &'a watch::Sender<Stats>,
}

impl std::ops::Deref for CoreGuard<'_> {
    type Target = Core;
    fn deref(&self) -> &Core {
        &self.guard
    }
}

impl std::ops::DerefMut for CoreGuard<'_> {
    fn deref_mut(&mut self) -> &mut Core {
        &mut self.guard
    }
}

impl Drop for CoreGuard<'_> {
    fn drop(&mut self) {
        let now = self.guard.stats;
        self.stats
            .send_if_modified(|published| std::mem::replace(published, now) != now);
    }
}

/// Everything mutable, guarded by [`Shared`]'s lock.
#[derive(Debug, Default)]
pub struct Core {
    /// Sessions, data formats, offsets.
    pub registry: Registry,
    /// Producer lint state.
    pub checker: Checker,
    /// Where requests/responses go (None = not recording).
    pub recorder: Option<Recorder>,
    /// Violations of this run, in order.
    pub violations: Vec<Violation>,
    /// Violations of this run per rule.
    pub counts: BTreeMap<&'static str, u64>,
    /// GetSessionStartNotification subscribers.
    pub start_subs: Vec<Subscriber<api::GetSessionStartNotificationResponse>>,
    /// GetSessionStopNotification subscribers.
    pub stop_subs: Vec<Subscriber<api::GetSessionStopNotificationResponse>>,
    /// First recording failure (reported by shutdown; the server keeps serving).
    pub record_error: Option<RecordingError>,
    /// Progress of this run.
    pub stats: Stats,
}

impl Shared {
    /// Shared state over `core`.
    pub fn new(strict: bool, core: Core) -> Self {
        let stats = watch::Sender::new(core.stats);
        Shared {
            strict,
            core: Mutex::new(core),
            stats,
        }
    }

    /// The state, locked.
    pub fn lock(&self) -> CoreGuard<'_> {
        // A panic while holding the lock leaves state that is still structurally valid (every
        // update is a single insert/push), so a poisoned lock is safe to keep using.
        let guard = self.core.lock().unwrap_or_else(PoisonError::into_inner);
        CoreGuard {
            guard,
            stats: &self.stats,
        }
    }

    /// A receiver of every [`Stats`] change.
    pub fn subscribe(&self) -> watch::Receiver<Stats> {
        self.stats.subscribe()
    }
}

/// The current time in epoch nanoseconds (the server's receive time).
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl Core {
    /// Appends one record; a failure is logged and kept for shutdown, and recording stops.
    pub fn record(&mut self, kind: RecordKind, time_ns: u64, message: &impl prost::Message) {
        let Some(recorder) = self.recorder.as_mut() else {
            return;
        };
        if let Err(e) = recorder.append(kind, time_ns, message) {
            self.fail_recording(e);
        }
    }

    /// Flushes the recording (called once per RPC).
    pub fn flush(&mut self) {
        if let Some(Err(e)) = self.recorder.as_mut().map(Recorder::flush) {
            self.fail_recording(e);
        }
    }

    fn fail_recording(&mut self, e: RecordingError) {
        tracing::error!(error = %e, "recording failed; no longer recording");
        self.recorder = None;
        self.record_error.get_or_insert(e);
    }

    /// Logs, counts and records violations; true if any is an error (strict mode rejects).
    pub fn report(&mut self, time_ns: u64, violations: Vec<Violation>) -> bool {
        let mut any_error = false;
        for v in violations {
            let (rule, session, stream) = (v.rule, &v.session_key, &v.stream);
            tracing::warn!(rule, %session, %stream, "{}", v.message);
            any_error |= v.severity == Severity::Error;
            *self.counts.entry(v.rule).or_insert(0) += 1;
            self.record(
                RecordKind::Violation,
                time_ns,
                &violation_packet(&v, time_ns),
            );
            self.violations.push(v);
            self.stats.violations += 1;
        }
        any_error
    }

    /// Applies a CreateSession (fresh or replayed) to registry and checker.
    pub fn apply_create(
        &mut self,
        now: u64,
        req: &api::CreateSessionRequest,
        key: String,
    ) -> (api::CreateSessionResponse, Vec<Violation>) {
        let response = self.registry.create_session(req, key, now);
        self.stats.sessions_created += 1;
        let found = self.checker.handle(
            now,
            Event::SessionCreated {
                request: req,
                response: &response,
            },
        );
        (response, found)
    }

    /// Applies an EndSession (fresh or replayed).
    pub fn apply_end(
        &mut self,
        now: u64,
        req: &api::EndSessionRequest,
    ) -> (api::EndSessionResponse, Vec<Violation>) {
        let response = self.registry.end_session(req, now);
        self.stats.sessions_ended += u64::from(response.success);
        let found = self.checker.handle(
            now,
            Event::SessionEnded {
                request: req,
                response: &response,
            },
        );
        (response, found)
    }

    /// Applies a data-format id request (fresh: `id` None issues or memoises; replay: the id).
    pub fn apply_format(
        &mut self,
        now: u64,
        ds: &str,
        kind: FormatKind,
        ids: &[String],
        id: Option<u64>,
    ) -> u64 {
        let id = match id {
            Some(id) => {
                self.registry.restore_format(ds, kind, ids, id);
                id
            }
            None => self.registry.format_id(ds, kind, ids),
        };
        let event = Event::DataFormatIssued {
            data_source: ds,
            kind,
            identifiers: ids,
            id,
        };
        // Issuing an id has no lint of its own; the event only feeds B5 state.
        let _ = self.checker.handle(now, event);
        id
    }

    /// Applies one written packet.
    pub fn apply_packet(&mut self, now: u64, details: &api::DataPacketDetails) -> Vec<Violation> {
        // The real server ignores Packet.id (rule 45), so a redelivery reaches Kafka again.
        self.registry.on_packet(details);
        self.stats.packets += 1;
        let verdict = self.checker.handle_packet(now, details);
        self.stats.duplicate_packets += u64::from(verdict.duplicate);
        verdict.violations
    }
}

/// A violation as the official ErrorPacket stored in recordings (docs/recording-format.md).
pub fn violation_packet(v: &Violation, time_ns: u64) -> open_data::ErrorPacket {
    let severity = match v.severity {
        Severity::Error => open_data::ErrorType::Current,
        Severity::Warning => open_data::ErrorType::Logged,
    };
    open_data::ErrorPacket {
        error_identifier: v.rule.to_owned(),
        timestamp: time_ns,
        application_name: "ecu-bridge stream-api".to_owned(),
        group: v.session_key.clone(),
        name: v.stream.clone(),
        description: v.message.clone(),
        r#type: severity as i32,
        status: open_data::ErrorStatus::Set as i32,
    }
}

/// Rebuilds state by feeding a recording's records through the same code paths as live RPCs.
/// Violations found again are dropped: they are already in the file.
pub fn replay(core: &mut Core, parsed: &Parsed, path: &Path) -> Result<(), RecordingError> {
    let mut pending: Option<&RawRecord> = None;
    for (index, record) in parsed.records.iter().enumerate() {
        let Some(kind) = record.kind() else { continue };
        let request = pending.take();
        if is_paired_request(kind) {
            pending = Some(record);
            continue;
        }
        replay_one(core, record, kind, request).map_err(|source| RecordingError::Decode {
            path: path.to_owned(),
            index,
            kind,
            source,
        })?;
    }
    Ok(())
}

/// Requests whose effect depends on the response recorded right after them.
fn is_paired_request(kind: RecordKind) -> bool {
    matches!(
        kind,
        RecordKind::CreateSessionRequest
            | RecordKind::EndSessionRequest
            | RecordKind::GetParameterDataFormatIdRequest
            | RecordKind::GetEventDataFormatIdRequest
            | RecordKind::UpdateSessionIdentifierRequest
            | RecordKind::UpdateSessionDetailsRequest
            | RecordKind::AddAssociateSessionRequest
    )
}

/// Applies one unpaired record, or a response together with the request just before it.
fn replay_one(
    core: &mut Core,
    record: &RawRecord,
    kind: RecordKind,
    request: Option<&RawRecord>,
) -> Result<(), prost::DecodeError> {
    let now = record.time_ns;
    match kind {
        RecordKind::DataPacketDetails => {
            // Violations are already in the file; replay only rebuilds state.
            let _ = core.apply_packet(now, &record.decode()?);
        }
        RecordKind::WriteInfoPacketRequest => {
            let req: api::WriteInfoPacketRequest = record.decode()?;
            let _ = core.checker.handle(now, Event::InfoPacketWritten(&req));
        }
        RecordKind::GenerateUniqueKeyResponse => {
            let resp: key_generator::GenerateUniqueKeyResponse = record.decode()?;
            if let Some(key_generator::generate_unique_key_response::Key::UlongKey(id)) = resp.key {
                core.registry.observe_id(id);
            }
        }
        _ => {
            // Request kinds are odd and their response is the next byte value.
            if let Some(req) = request.filter(|r| r.kind + 1 == kind as u8) {
                replay_pair(core, req, record, kind)?;
            }
        }
    }
    Ok(())
}

/// Applies a request/response pair that changes state.
fn replay_pair(
    core: &mut Core,
    req: &RawRecord,
    resp: &RawRecord,
    kind: RecordKind,
) -> Result<(), prost::DecodeError> {
    let now = resp.time_ns;
    match kind {
        RecordKind::CreateSessionResponse => {
            let response: api::CreateSessionResponse = resp.decode()?;
            if response.success {
                let _ = core.apply_create(now, &req.decode()?, response.session_key);
            }
        }
        RecordKind::EndSessionResponse => {
            let _ = core.apply_end(now, &req.decode()?);
        }
        RecordKind::GetParameterDataFormatIdResponse => {
            let req: api::GetParameterDataFormatIdRequest = req.decode()?;
            let id = resp
                .decode::<api::GetParameterDataFormatIdResponse>()?
                .data_format_identifier;
            core.apply_format(
                now,
                &req.data_source,
                FormatKind::Parameter,
                &req.parameters,
                Some(id),
            );
        }
        RecordKind::GetEventDataFormatIdResponse => {
            let req: api::GetEventDataFormatIdRequest = req.decode()?;
            let id = resp
                .decode::<api::GetEventDataFormatIdResponse>()?
                .data_format_identifier;
            core.apply_format(
                now,
                &req.data_source,
                FormatKind::Event,
                &[req.event],
                Some(id),
            );
        }
        RecordKind::UpdateSessionIdentifierResponse
        | RecordKind::UpdateSessionDetailsResponse
        | RecordKind::AddAssociateSessionResponse => replay_update(core, req)?,
        _ => {}
    }
    Ok(())
}

/// Re-applies an Update*/AddAssociate request (an unknown key is a no-op, as it was live).
fn replay_update(core: &mut Core, req: &RawRecord) -> Result<(), prost::DecodeError> {
    match req.kind() {
        Some(RecordKind::UpdateSessionIdentifierRequest) => {
            core.registry.update_identifier(&req.decode()?);
        }
        Some(RecordKind::UpdateSessionDetailsRequest) => {
            core.registry.update_details(&req.decode()?);
        }
        Some(RecordKind::AddAssociateSessionRequest) => {
            core.registry.add_associate(&req.decode()?);
        }
        _ => {}
    }
    Ok(())
}
