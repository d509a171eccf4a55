//! Acknowledged delivery (`docs/delivery.md`): every packet is appended to the spool first,
//! then sent with the unary `WriteDataPacket`, whose OK is the server's acknowledgement
//! (rule 48); only then is the spool record acknowledged and its samples counted as published.
//! Calls go one at a time, in spool order: the server runs concurrent calls on separate tasks,
//! so two calls in flight could reach its queue in either order, and the session's packets
//! must keep theirs (rule 50; a lap marker after data, B8; ids increasing, B13; nothing after
//! EndOfSession, B3). Packets are large (up to `batch.max_packet_bytes`), so one round trip per
//! packet still carries millions of samples a second on a local link (`docs/delivery.md`).
//!
//! A call that fails with a retryable status starts an outage: no more calls are started, the
//! calls in flight finish (their OKs still count), and every unacknowledged record is sent
//! again, in spool order, once the owner reports the server back ([`Delivery::resume`]). The
//! server may have taken a packet whose answer was lost: it then receives it twice, with the
//! same `Packet.id`, which is how the duplicate is recognised (counted by our server). A call
//! refused for a protocol reason (`INVALID_ARGUMENT` from a strict server, and the like) is not
//! retried: it is counted as rejected and dropped, since sending it again cannot succeed.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use prost::Message;
use tokio::task::JoinSet;
use tonic::transport::Channel;
use tonic::{Code, Status};

use open_streaming::api::{DataPacketDetails, WriteDataPacketRequest};
use open_streaming::open_data::sample_data_format::Format;
use open_streaming::open_data::{Packet, PeriodicDataPacket, RowDataPacket, SampleDataFormat};

use super::session::{PacketKind, PublishError};
use super::write_call::write_data_packet;
use crate::spool::{Pending, PendingRecord, Spool, SpoolRecord};

/// Calls in flight at once. One keeps the session's order (see the module docs).
pub const WINDOW: usize = 1;
/// Bytes of just-appended records kept in memory so that sending them needs no disk read;
/// beyond this (an outage, a slow link) they are read back from the spool.
pub(crate) const RECENT_BYTES: usize = 4 << 20;
/// Records the spool could not take (disk full) kept in memory at most; beyond this the
/// oldest are dropped and counted as lost.
const VOLATILE_BYTES: usize = 8 << 20;
/// The largest request the server takes is 4 MB (rule 52).
const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// Where a session's packets go now: its key, and the data-format ids to replace when the
/// server lost the session and a new one took over.
#[derive(Debug, Clone, Default)]
pub struct Route {
    /// The session key packets carry.
    pub session_key: String,
    /// Old data-format id → the id in the session that took over.
    pub format_remap: HashMap<u64, u64>,
    /// Session announcements (NewSession, Configuration) with a `Packet.id` below this were
    /// made again for the session that took over; they are acknowledged without sending.
    pub announced_again_before: u64,
    /// Packets with an id below `announced_again_before` go to the session that took over
    /// with their id raised by this much, above the ids of its announcements, so that ids
    /// still increase on every stream of the new session (B13). Stable across resends.
    pub id_shift: u64,
}

/// Counters of delivery, for metrics and summaries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryStats {
    /// Packets the server acknowledged.
    pub packets_accepted: u64,
    /// Samples in them.
    pub samples_accepted: u64,
    /// Encoded packet bytes in them.
    pub bytes_accepted: u64,
    /// Packets sent again after a failure.
    pub resent: u64,
    /// Packets the server refused for good (a protocol reason); dropped.
    pub packets_rejected: u64,
    /// Samples in them.
    pub samples_rejected: u64,
    /// Appends the spool refused (disk full, I/O error); kept in memory instead.
    pub spool_failures: u64,
    /// Samples dropped because neither the spool nor memory could hold them.
    pub samples_lost_no_room: u64,
    /// Outages (a retryable call failure after a healthy period).
    pub outages: u64,
    /// Samples waiting: found in the spool at start, plus appended since, less those
    /// acknowledged, rejected, skipped or dropped by the spool's bounds.
    pub samples_waiting: u64,
}

/// One record to send: from the spool (`seq`), or held only in memory (`seq = None`).
#[derive(Debug, Clone)]
struct Outgoing {
    seq: Option<u64>,
    record: SpoolRecord,
}

#[derive(Debug)]
struct CallOutcome {
    outgoing: Outgoing,
    result: Result<(), Status>,
}

/// The delivery state of one producer.
#[derive(Debug)]
pub struct Delivery {
    spool: Spool,
    /// The Stream API, for [`write_data_packet`].
    channel: Channel,
    call_timeout: Duration,
    data_source: String,
    routes: HashMap<u32, Route>,
    /// Unacknowledged spool records to send first (after an outage, or a restart).
    backlog: Option<Pending>,
    /// Records appended since, in seq order, not yet sent.
    recent: VecDeque<Outgoing>,
    recent_bytes: usize,
    /// `recent` overflowed at this seq: records from here on are read back from the spool.
    spilled_from: Option<u64>,
    /// Records the spool refused, oldest first.
    volatile: VecDeque<Outgoing>,
    volatile_bytes: usize,
    /// Memory-only records not yet acknowledged (queued or in flight). While any is
    /// left, later records are held in memory too: a spooled record would be sent before them
    /// (spool order first), breaking the session's order (B3, B13).
    memory_only: u64,
    in_flight: JoinSet<CallOutcome>,
    /// Set while the server is away; cleared by [`Delivery::resume`].
    outage: bool,
    stats: DeliveryStats,
    /// Whether a spool failure was logged (logged once per run, counted always).
    spool_failure_logged: bool,
    /// Samples found waiting at start, plus appended since.
    samples_entered: u64,
    /// Samples leaving the wait: acknowledged, rejected or skipped.
    samples_left: u64,
    /// The latest sample time of the records acknowledged so far: delivery goes in spool
    /// order, so every waiting sample is (as a rule) later than this.
    delivered_through_ns: u64,
}

impl Delivery {
    /// Delivery over `channel` into `spool`; with `backlog`, the spool's unacknowledged records
    /// go first.
    pub fn new(
        spool: Spool,
        samples_pending: u64,
        channel: Channel,
        call_timeout: Duration,
        data_source: &str,
    ) -> Self {
        let backlog = Some(spool.pending());
        Self {
            spool,
            channel,
            call_timeout,
            data_source: data_source.to_owned(),
            routes: HashMap::new(),
            backlog,
            recent: VecDeque::new(),
            recent_bytes: 0,
            spilled_from: None,
            volatile: VecDeque::new(),
            volatile_bytes: 0,
            memory_only: 0,
            in_flight: JoinSet::new(),
            outage: false,
            stats: DeliveryStats::default(),
            spool_failure_logged: false,
            samples_entered: samples_pending,
            samples_left: 0,
            delivered_through_ns: 0,
        }
    }

    /// The spool (session journal, stats).
    pub fn spool(&self) -> &Spool {
        &self.spool
    }

    /// The spool, to update its session journal.
    pub fn spool_mut(&mut self) -> &mut Spool {
        &mut self.spool
    }

    /// Where packets of spool session `index` go.
    pub fn set_route(&mut self, index: u32, route: Route) {
        self.routes.insert(index, route);
    }

    /// The route of session `index`, if set.
    pub fn route(&self, index: u32) -> Option<&Route> {
        self.routes.get(&index)
    }

    /// What was delivered so far.
    pub fn stats(&self) -> DeliveryStats {
        let waiting = self
            .samples_entered
            .saturating_sub(self.samples_left)
            .saturating_sub(self.spool.stats().dropped_samples)
            .saturating_sub(self.stats.samples_lost_no_room);
        DeliveryStats {
            samples_waiting: waiting,
            ..self.stats
        }
    }

    /// The time of the oldest sample waiting, ns since the UNIX epoch, if any waits: the
    /// spool knows it per segment; within the oldest segment, what was acknowledged in order
    /// narrows it down.
    pub fn oldest_waiting_ns(&self) -> Option<u64> {
        let oldest_segment = self.spool.stats().oldest_pending_time_ns?;
        Some(oldest_segment.max(self.delivered_through_ns))
    }

    /// Whether a producer that can wait (`PublishStage::pace_to_delivery`) should hold its
    /// input, given whether it `holds` it now. It starts holding when the records queued in
    /// memory reach half of what delivery keeps there (or some were already left to be read
    /// back from the spool), and goes on only once an eighth is left: the stages before then
    /// run in bursts rather than wake once per acknowledged packet (`docs/performance.md`).
    /// Never while the server is away: packets then wait in the spool.
    pub fn holds_input(&self, holds: bool) -> bool {
        if self.outage {
            return false;
        }
        if self.spilled_from.is_some() {
            return true;
        }
        if holds {
            self.recent_bytes > RECENT_BYTES / 8
        } else {
            self.recent_bytes >= RECENT_BYTES / 2
        }
    }

    /// Whether the server is away.
    pub fn in_outage(&self) -> bool {
        self.outage
    }

    /// Whether nothing waits: every packet acknowledged (or dropped as rejected).
    pub fn is_idle(&self) -> bool {
        self.in_flight.is_empty() && !self.has_queued()
    }

    fn has_queued(&self) -> bool {
        !self.recent.is_empty()
            || !self.volatile.is_empty()
            || self.spilled_from.is_some()
            || self.backlog.is_some()
    }

    /// Appends `record` to the spool and queues it for sending. A spool failure is counted
    /// (and logged once); the record is then held in memory only, within a bound, and so are
    /// the records after it until those in memory are acknowledged (to keep the order).
    pub fn append(&mut self, record: SpoolRecord) {
        self.samples_entered += u64::from(record.samples);
        if self.memory_only > 0 {
            self.hold_volatile(record);
            self.pump();
            return;
        }
        match self.spool.append(&record) {
            Ok(seq) => {
                let size = record.encoded_len();
                if self.spilled_from.is_none() && self.recent_bytes + size <= RECENT_BYTES {
                    self.recent_bytes += size;
                    self.recent.push_back(Outgoing {
                        seq: Some(seq),
                        record,
                    });
                } else {
                    self.spilled_from.get_or_insert(seq);
                }
            }
            Err(error) => {
                self.stats.spool_failures += 1;
                if !self.spool_failure_logged {
                    self.spool_failure_logged = true;
                    tracing::error!(%error, "spool append failed: packets are held in memory only until the spool takes them again (logged once; see spool_write_failures)");
                }
                self.hold_volatile(record);
            }
        }
        self.pump();
    }

    fn hold_volatile(&mut self, record: SpoolRecord) {
        self.memory_only += 1;
        self.volatile_bytes += record.encoded_len();
        self.volatile.push_back(Outgoing { seq: None, record });
        while self.volatile_bytes > VOLATILE_BYTES {
            let Some(dropped) = self.volatile.pop_front() else {
                break;
            };
            self.volatile_bytes -= dropped.record.encoded_len();
            self.memory_only -= 1;
            self.stats.samples_lost_no_room += u64::from(dropped.record.samples);
        }
    }

    /// Starts calls while the window has room and the server is not away.
    pub fn pump(&mut self) {
        while !self.outage && self.in_flight.len() < WINDOW {
            let Some(outgoing) = self.next_outgoing() else {
                return;
            };
            match self.request_for(&outgoing.record) {
                Ok(Some(request)) => self.start_call(outgoing, request),
                Ok(None) => self.acknowledge(&outgoing, false),
                Err(error) => {
                    tracing::error!(%error, "spooled packet dropped");
                    self.reject(&outgoing);
                }
            }
        }
    }

    fn next_outgoing(&mut self) -> Option<Outgoing> {
        loop {
            if let Some(backlog) = self.backlog.as_mut() {
                match backlog.next() {
                    Some(Ok(PendingRecord { seq, record })) => {
                        self.stats.resent += 1;
                        return Some(Outgoing {
                            seq: Some(seq),
                            record,
                        });
                    }
                    Some(Err(error)) => {
                        tracing::error!(%error, "spool segment unreadable; its records are skipped");
                        continue;
                    }
                    None => self.backlog = None,
                }
            }
            if let Some(outgoing) = self.recent.pop_front() {
                self.recent_bytes -= outgoing.record.encoded_len();
                return Some(outgoing);
            }
            if let Some(from) = self.spilled_from.take() {
                self.backlog = Some(self.spool.pending_from(from));
                continue;
            }
            if let Some(outgoing) = self.volatile.pop_front() {
                self.volatile_bytes -= outgoing.record.encoded_len();
                return Some(outgoing);
            }
            return None;
        }
    }

    /// The request for `record` in its session's current route; `None` for an announcement
    /// the session that took over already made again.
    fn request_for(
        &self,
        record: &SpoolRecord,
    ) -> Result<Option<WriteDataPacketRequest>, PublishError> {
        let kind = PacketKind::from_code(record.kind);
        let route = self.routes.get(&record.session);
        let session_key = route.map(|r| r.session_key.clone()).unwrap_or_default();
        let mut content = record.payload.clone();
        if let (Some(kind), Some(route)) = (kind, route) {
            if matches!(kind, PacketKind::NewSession | PacketKind::Configuration)
                && record.packet_id < route.announced_again_before
            {
                return Ok(None);
            }
            if kind.carries_data_format() && !route.format_remap.is_empty() {
                // Rare (a server that lost its formats): the packet rebuilt.
                content = remap_format(kind, &content, &route.format_remap).map_err(|source| {
                    PublishError::Corrupt {
                        packet_id: record.packet_id,
                        source,
                    }
                })?;
            }
        }
        let kind = kind.unwrap_or(PacketKind::RowData);
        let id = match route {
            Some(route) if record.packet_id < route.announced_again_before => {
                record.packet_id + route.id_shift
            }
            _ => record.packet_id,
        };
        let packet = Packet {
            r#type: kind.type_name().to_owned(),
            session_key: session_key.clone(),
            is_essential: kind.is_essential(),
            content,
            id,
        };
        Ok(Some(WriteDataPacketRequest {
            detail: Some(DataPacketDetails {
                message: Some(packet),
                data_source: self.data_source.clone(),
                stream: record.stream.clone(),
                session_key,
            }),
        }))
    }

    fn start_call(&mut self, outgoing: Outgoing, request: WriteDataPacketRequest) {
        let channel = self.channel.clone();
        let timeout = self.call_timeout;
        self.in_flight.spawn(async move {
            let result = write_data_packet(channel, request, timeout, MAX_MESSAGE_BYTES).await;
            CallOutcome { outgoing, result }
        });
    }

    /// Sends `record` at once, outside the spool and its order, and waits for the answer (the
    /// announcements of a session that takes over, which must precede everything waiting).
    pub async fn send_now(&mut self, record: &SpoolRecord) -> Result<(), PublishError> {
        let Some(request) = self.request_for(record)? else {
            return Ok(());
        };
        write_data_packet(
            self.channel.clone(),
            request,
            self.call_timeout,
            MAX_MESSAGE_BYTES,
        )
        .await
        .map_err(|status| PublishError::Rpc {
            call: "WriteDataPacket",
            status: Box::new(status),
        })?;
        Ok(())
    }

    /// Waits for the next call to finish and accounts for it; `None` when none is in flight.
    /// A retryable failure starts an outage.
    pub async fn next_outcome(&mut self) -> Option<()> {
        let joined = self.in_flight.join_next().await?;
        match joined {
            Ok(CallOutcome { outgoing, result }) => {
                self.account(outgoing, result);
            }
            Err(join) => {
                // A call task cannot panic short of a bug in tonic; the outage reset that
                // follows sends its packet again.
                tracing::error!(%join, "a write call task failed");
                self.start_outage();
            }
        }
        Some(())
    }

    fn start_outage(&mut self) {
        if !self.outage {
            self.outage = true;
            self.stats.outages += 1;
        }
    }

    fn account(&mut self, outgoing: Outgoing, result: Result<(), Status>) {
        {
            match result {
                Ok(()) => self.acknowledge(&outgoing, true),
                Err(status) if is_retryable(&status) => {
                    if !self.outage {
                        tracing::warn!(cause = %super::session::Cause(&status), "Stream API write failed; holding packets in the spool until it is back");
                    }
                    self.start_outage();
                    if outgoing.seq.is_none() {
                        self.volatile_bytes += outgoing.record.encoded_len();
                        self.volatile.push_front(outgoing);
                    }
                }
                Err(status) => {
                    tracing::error!(status = %OneLine(&status), packet = outgoing.record.packet_id, "Stream API refused a packet; dropped (not retried)");
                    self.reject(&outgoing);
                }
            }
        }
    }

    /// Waits until every call in flight has finished.
    pub async fn settle(&mut self) {
        while self.next_outcome().await.is_some() {}
    }

    /// The server is back (the owner checked the session): send every unacknowledged record
    /// again, in spool order, then what follows.
    pub fn resume(&mut self) {
        debug_assert!(self.in_flight.is_empty(), "settle before resume");
        self.outage = false;
        self.backlog = Some(self.spool.pending());
        self.recent.clear();
        self.recent_bytes = 0;
        self.spilled_from = None;
        self.pump();
    }

    fn acknowledge(&mut self, outgoing: &Outgoing, delivered: bool) {
        self.samples_left += u64::from(outgoing.record.samples);
        match outgoing.seq {
            Some(seq) => {
                self.spool.ack(seq);
            }
            None => self.memory_only = self.memory_only.saturating_sub(1),
        }
        if delivered {
            self.delivered_through_ns = self.delivered_through_ns.max(outgoing.record.last_time_ns);
            self.stats.packets_accepted += 1;
            self.stats.samples_accepted += u64::from(outgoing.record.samples);
            self.stats.bytes_accepted += outgoing.record.payload.len() as u64;
        }
    }

    fn reject(&mut self, outgoing: &Outgoing) {
        self.acknowledge(outgoing, false);
        self.stats.packets_rejected += 1;
        self.stats.samples_rejected += u64::from(outgoing.record.samples);
    }

    /// Forces appended data to stable storage (at the end of a run).
    pub fn sync(&mut self) {
        if let Err(error) = self.spool.sync() {
            tracing::error!(%error, "spool sync failed");
        }
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        let stats = self.spool.stats();
        self.sync();
        if stats.records_pending > 0 {
            let oldest = stats.oldest_pending_time_ns.unwrap_or_default();
            tracing::warn!(
                spool = %self.spool.dir().display(),
                packets = stats.records_pending,
                samples = stats.samples_pending,
                oldest_sample_ns = oldest,
                "packets not acknowledged by the Stream API stay in the spool; the next start delivers them"
            );
        }
    }
}

/// Whether a failed call may succeed when sent again: the server or the link was away, slow
/// or overloaded. A protocol refusal (bad argument, unknown method) cannot.
fn is_retryable(status: &Status) -> bool {
    !matches!(
        status.code(),
        Code::InvalidArgument
            | Code::FailedPrecondition
            | Code::NotFound
            | Code::AlreadyExists
            | Code::PermissionDenied
            | Code::Unauthenticated
            | Code::Unimplemented
            | Code::OutOfRange
    )
}

/// `content` with its data-format id replaced through `remap` (a session that took over from
/// one the server lost has its own ids).
fn remap_format(
    kind: PacketKind,
    content: &Bytes,
    remap: &HashMap<u64, u64>,
) -> Result<Bytes, prost::DecodeError> {
    let swap = |format: &mut Option<SampleDataFormat>| {
        if let Some(SampleDataFormat {
            format: Some(Format::DataFormatIdentifier(id)),
        }) = format
            && let Some(new) = remap.get(id)
        {
            *id = *new;
        }
    };
    Ok(match kind {
        PacketKind::RowData => {
            let mut packet = RowDataPacket::decode(content.as_ref())?;
            swap(&mut packet.data_format);
            Bytes::from(packet.encode_to_vec())
        }
        PacketKind::PeriodicData => {
            let mut packet = PeriodicDataPacket::decode(content.as_ref())?;
            swap(&mut packet.data_format);
            Bytes::from(packet.encode_to_vec())
        }
        _ => content.clone(),
    })
}

/// A gRPC status on one line: code and message, no metadata or `Debug` text.
#[derive(Debug)]
pub struct OneLine<'a>(pub &'a Status);

impl std::fmt::Display for OneLine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let message = self.0.message().replace('\n', " ");
        write!(f, "{:?}: {}", self.0.code(), message)
    }
}
