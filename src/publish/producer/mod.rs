//! The Open Streaming producer: one session's packets into the Stream API in the order the
//! protocol requires (`docs/open-streaming.md` §1–§3), with acknowledged, durable delivery
//! (`docs/delivery.md`).
//!
//! CreateSession → NewSession on `""` and every data stream → Configuration (essential) on all
//! of them → data-format ids (cached) → data and markers → EndOfSession on every stream →
//! EndSession. Every packet passes through the spool ([`Delivery`]); a packet counts as
//! published when the server acknowledged it.
//!
//! Outages: while the server is away nothing is sent and packets wait in the spool; it is asked
//! again after a backoff capped at [`MAX_PROBE_INTERVAL`] (so delivery resumes within that of
//! its return). Back, it is asked whether it still has the session (GetSessionInfo): if it
//! does, delivery continues; if not (a server restarted without its state), a new session
//! linked to the old one takes over — announced again on every stream, its data-format ids
//! resolved again — and the waiting packets go there.
//!
//! Restarts: a producer starting on a spool that holds an earlier session first delivers that
//! session's waiting packets into it and ends it properly, then opens its own.
//!
//! Invariants kept here, so no caller can break them: `Packet.session_key` always equals
//! `DataPacketDetails.session_key`; `Packet.id` increases per packet within a session and is
//! kept on a resend; type strings come from [`PacketKind`].

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use prost::Message;
use tokio::time::Instant;

use open_streaming::open_data::{
    ConfigurationPacket, EndOfSessionPacket, MarkerPacket, NewSessionPacket, SessionInfoPacket,
};

pub use super::delivery::DeliveryStats;
use super::delivery::{Delivery, Route};
use super::session::{
    Calls, create_session, data_format_id, data_format_ids, end_session, unique_config_id,
};
pub use super::session::{
    MAIN_STREAM, PacketKind, PublishError, RetryPolicy, SessionIdentity, now_timestamp,
};
mod continuity;

use crate::spool::{SessionRecord, Spool, SpoolConfig, SpoolRecord};
use continuity::open_spool;

/// Longest wait between two attempts to reach an absent server while packets wait.
pub const MAX_PROBE_INTERVAL: Duration = Duration::from_secs(2);
/// How long one "is the server back?" question may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often an outage that goes on is summarised in the log.
const OUTAGE_SUMMARY: Duration = Duration::from_secs(60);
/// `Packet.id`s are reserved in blocks recorded in the spool's journal, so a process that
/// takes over a session after a crash continues above any id the dead one used.
const PACKET_ID_BLOCK: u64 = 1 << 20;

/// Where the spool lives.
#[derive(Debug, Clone)]
pub enum SpoolPlace {
    /// A folder kept across runs (the state directory under systemd).
    Dir(PathBuf, SpoolConfig),
    /// A temporary folder removed when the producer ends: nothing survives the process.
    Temporary,
}

/// How the producer reaches the Stream API and what session it opens.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// Stream API URL, `http://host:port` (h2c).
    pub endpoint: String,
    /// Key Generator URL for `config_id`s; a local UUID is used when absent.
    pub key_generator: Option<String>,
    /// Kafka topic root and ATLAS recorder data source.
    pub data_source: String,
    /// Session identifier shown in ATLAS; never empty (rule 8).
    pub identifier: String,
    /// Session type; the server fills "Session" when empty.
    pub session_type: String,
    /// Seconds east of Greenwich where the data is recorded (rule 70).
    pub utc_offset_seconds: i64,
    /// Session details (key/value pairs shown in ATLAS).
    pub details: BTreeMap<String, String>,
    /// Data streams this session writes to, besides the main stream.
    pub streams: Vec<String>,
    /// Deadline for each call (≥ 10 s: rule 5).
    pub call_timeout: Duration,
    /// Retry of session calls while the server answers UNAVAILABLE.
    pub retry: RetryPolicy,
    /// Unused since delivery is acknowledged per packet; kept for configuration files.
    pub drain_timeout: Duration,
    /// Where packets wait until the server acknowledged them.
    pub spool: SpoolPlace,
    /// Send a Configuration over 1 MB in parts (a v2.1 Stream API; rule 20).
    pub split_configuration: bool,
}

impl ProducerConfig {
    /// The session these settings describe, dated now.
    pub fn identity(&self) -> SessionIdentity {
        SessionIdentity {
            data_source: self.data_source.clone(),
            identifier: self.identifier.clone(),
            session_type: self.session_type.clone(),
            utc_offset_seconds: self.utc_offset_seconds,
            details: self.details.clone(),
            creation_ns: None,
        }
    }
}

/// Counters of what the producer sent, for metrics and the closing summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProducerStats {
    /// Packets written (appended to the spool).
    pub packets: u64,
    /// Their encoded content bytes.
    pub bytes: u64,
    /// Times the server came back after an outage.
    pub reopened_streams: u64,
    /// Sessions that took over from one the server had lost.
    pub sessions_taken_over: u64,
    /// Earlier sessions found in the spool, delivered and ended.
    pub sessions_resumed: u64,
    /// Sessions opened (CreateSession) by this producer, take-overs not counted.
    pub sessions_opened: u64,
    /// Sessions it ended (EndSession), earlier ones from the spool not counted.
    pub sessions_ended: u64,
    /// Acknowledged delivery.
    pub delivery: DeliveryStats,
}

/// The session being written.
#[derive(Debug)]
struct Current {
    index: u32,
    key: String,
    identity: SessionIdentity,
    streams: Vec<String>,
    configuration: ConfigurationPacket,
    format_ids: HashMap<Vec<String>, u64>,
    next_packet_id: u64,
    packet_ids_reserved: u64,
    /// EndOfSession is written (spooled) on every stream; only EndSession remains.
    ending: bool,
    /// The session's last sample time, for its `termination_time` (now when unknown).
    last_sample_ns: Option<u64>,
}

/// When to ask an absent server again, and what to say about the outage.
#[derive(Debug)]
struct OutageClock {
    started: Instant,
    attempts: u32,
    next_probe: Instant,
    next_summary: Instant,
}

/// A live Open Streaming session.
#[derive(Debug)]
pub struct Producer {
    config: ProducerConfig,
    calls: Calls,
    current: Current,
    /// Whether `current` is a session open on the server (between [`Producer::begin`] and its
    /// end); when not, `current` holds what the next session starts from.
    open: bool,
    delivery: Delivery,
    outage: Option<OutageClock>,
    stats: ProducerStats,
    /// Whether a failed journal write was logged (logged once per run).
    journal_failure_logged: bool,
    /// Keeps a temporary spool folder alive; removed on drop.
    temporary: Option<tempfile::TempDir>,
}

impl Producer {
    /// Opens the spool, delivers and ends any earlier session it holds, then opens a new
    /// session: creates it (retrying UNAVAILABLE with jittered backoff), announces it and
    /// sends `configuration` on the main stream and every data stream.
    pub async fn start(
        config: ProducerConfig,
        configuration: ConfigurationPacket,
    ) -> Result<Self, PublishError> {
        let identity = config.identity();
        let mut producer = Self::open(config, configuration).await?;
        producer.begin(identity).await?;
        Ok(producer)
    }

    /// Opens the spool and delivers and ends any earlier session it holds; no session is open
    /// until [`Producer::begin`]. `configuration` is what the sessions begun later announce.
    pub async fn open(
        config: ProducerConfig,
        configuration: ConfigurationPacket,
    ) -> Result<Self, PublishError> {
        let calls = Calls::connect(&config.endpoint, config.call_timeout, config.retry)?;
        let (spool, recovered, temporary) = open_spool(&config.spool)?;
        let previous: Vec<SessionRecord> = spool.sessions().cloned().collect();
        let delivery = Delivery::new(
            spool,
            recovered,
            calls.channel.clone(),
            config.call_timeout,
            &config.data_source,
        );
        let fresh = || Current {
            index: previous.iter().map(|s| s.index + 1).max().unwrap_or(0),
            key: String::new(),
            identity: config.identity(),
            streams: config.streams.clone(),
            configuration: configuration.clone(),
            format_ids: HashMap::new(),
            next_packet_id: 0,
            packet_ids_reserved: 0,
            ending: false,
            last_sample_ns: None,
        };
        let current = fresh();
        // A second copy of the car's configuration only when sessions left in the spool are
        // finished first under the first.
        let new_current = (!previous.is_empty()).then(fresh);
        let mut producer = Self {
            current,
            open: false,
            config,
            calls,
            delivery,
            outage: None,
            stats: ProducerStats::default(),
            journal_failure_logged: false,
            temporary,
        };
        for session in previous {
            producer.finish_previous(session).await?;
        }
        if let Some(new_current) = new_current {
            producer.current = new_current;
        }
        producer.open = false;
        Ok(producer)
    }

    /// Opens a session described by `identity`: CreateSession (retrying UNAVAILABLE), then
    /// NewSession and the latest configuration on the main stream and every data stream.
    pub async fn begin(&mut self, identity: SessionIdentity) -> Result<(), PublishError> {
        debug_assert!(!self.open, "end the open session first");
        self.current.identity = identity.clone();
        self.current.key = create_session(&identity, Vec::new(), &self.calls).await?;
        self.open = true;
        self.stats.sessions_opened += 1;
        self.route_current(0);
        self.announce(&identity).await?;
        // Sent from where it is kept, not from a copy (a car's whole configuration): it stays
        // in place, since writing a packet may journal the session, configuration included.
        self.current.configuration.config_id =
            unique_config_id(self.config.key_generator.as_deref(), &self.calls).await?;
        let parts = self.encoded_configuration(&self.current.configuration);
        self.write_configuration(&parts).await?;
        self.journal()
    }

    /// Whether a session is open (begun and not ended).
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Ends the open session (EndOfSession on every stream stamped `termination_ns`, every
    /// packet acknowledged, EndSession) and readies the next; the producer stays usable.
    pub async fn end_session(&mut self, termination_ns: Option<u64>) -> Result<(), PublishError> {
        if !self.open {
            return Ok(());
        }
        self.end_current(&mut |_| {}, &mut std::future::pending(), termination_ns)
            .await?;
        self.close_current();
        Ok(())
    }

    /// After an end: the next session gets the next spool index and starts from the same
    /// streams and configuration.
    fn close_current(&mut self) {
        self.open = false;
        self.stats.sessions_ended += 1;
        self.current.index += 1;
        self.current.key.clear();
        self.current.format_ids.clear();
        self.current.next_packet_id = 0;
        self.current.packet_ids_reserved = 0;
        self.current.ending = false;
        self.current.last_sample_ns = None;
    }

    /// Records the open session's last sample time: its `termination_time` when it ends.
    pub fn set_last_sample(&mut self, time_ns: u64) {
        self.current.last_sample_ns = Some(time_ns);
    }

    /// The session key returned by CreateSession (or of the session that took over).
    pub fn session_key(&self) -> &str {
        &self.current.key
    }

    /// The data source this session writes to.
    pub fn data_source(&self) -> &str {
        &self.config.data_source
    }

    /// What has been sent and acknowledged so far.
    pub fn stats(&self) -> ProducerStats {
        ProducerStats {
            delivery: self.delivery.stats(),
            ..self.stats
        }
    }

    /// The spool, for its figures (samples waiting, oldest waiting sample).
    pub fn spool(&self) -> &Spool {
        self.delivery.spool()
    }

    /// The time of the oldest sample waiting for the server, ns since the UNIX epoch.
    pub fn oldest_waiting_ns(&self) -> Option<u64> {
        self.delivery.oldest_waiting_ns()
    }

    /// Whether the server is away (packets wait in the spool).
    pub fn in_outage(&self) -> bool {
        self.outage.is_some() || self.delivery.in_outage()
    }

    /// Sends a new configuration on the main stream and every data stream (also used to
    /// publish a reloaded channel map). A fresh `config_id` is taken for it (rule 17).
    pub async fn configure(
        &mut self,
        mut configuration: ConfigurationPacket,
    ) -> Result<(), PublishError> {
        if !self.open {
            // Announced by the next session's begin.
            self.current.configuration = configuration;
            return Ok(());
        }
        configuration.config_id =
            unique_config_id(self.config.key_generator.as_deref(), &self.calls).await?;
        let parts = self.encoded_configuration(&configuration);
        self.write_configuration(&parts).await?;
        self.current.configuration = configuration;
        self.journal()
    }

    /// Writes a configuration's encoded parts ([`Self::encoded_configuration`]) on the main
    /// stream and every data stream.
    async fn write_configuration(&mut self, parts: &[Bytes]) -> Result<(), PublishError> {
        for stream in self.all_streams() {
            for part in parts {
                self.write_encoded(&stream, PacketKind::Configuration, part.clone(), 0, (0, 0))
                    .await?;
            }
        }
        Ok(())
    }

    /// `configuration` encoded as sent: in parts when it is too large for one packet and the
    /// server reads parts (rule 20), else whole. Encoded once for every stream, from the
    /// configuration where it lies: a car's whole configuration is not cloned (cloning and
    /// dropping it was a tenth of a one-frame replay's instructions).
    fn encoded_configuration(&self, configuration: &ConfigurationPacket) -> Vec<Bytes> {
        if self.config.split_configuration {
            super::configuration::configuration_parts(configuration)
                .iter()
                .map(|part| Bytes::from(part.encode_to_vec()))
                .collect()
        } else {
            vec![Bytes::from(configuration.encode_to_vec())]
        }
    }

    /// Resolves, all at once, the data-format ids of every list in `lists` this session does
    /// not have yet (the first packets of a car's formats then wait for one round trip, not one
    /// each), and journals them once.
    pub async fn resolve_data_format_ids<'a>(
        &mut self,
        lists: impl IntoIterator<Item = &'a Vec<String>>,
    ) -> Result<(), PublishError> {
        let mut missing: Vec<Vec<String>> = lists
            .into_iter()
            .filter(|parameters| !self.current.format_ids.contains_key(*parameters))
            .cloned()
            .collect();
        missing.sort_unstable();
        missing.dedup();
        if missing.is_empty() {
            return Ok(());
        }
        let resolved = data_format_ids(&self.calls, &self.config.data_source, missing).await?;
        self.current.format_ids.extend(resolved);
        self.journal()
    }

    /// The data-format id for an ordered parameter list, asked once and cached (rules 21–25).
    pub async fn data_format_id(&mut self, parameters: &[String]) -> Result<u64, PublishError> {
        if let Some(id) = self.current.format_ids.get(parameters) {
            return Ok(*id);
        }
        let id = data_format_id(&self.calls, &self.config.data_source, parameters).await?;
        self.current.format_ids.insert(parameters.to_vec(), id);
        self.journal()?;
        Ok(id)
    }

    /// Writes one packet to `stream`: spooled at once, sent as soon as the window allows.
    pub async fn write<M: Message>(
        &mut self,
        stream: &str,
        kind: PacketKind,
        content: &M,
    ) -> Result<(), PublishError> {
        self.write_encoded(stream, kind, content.encode_to_vec().into(), 0, (0, 0))
            .await
    }

    /// [`Producer::write`] for content that is already encoded (the `RowData` fast path), with
    /// the samples it carries and their first and last times (for the spool's figures).
    pub async fn write_encoded(
        &mut self,
        stream: &str,
        kind: PacketKind,
        content: Bytes,
        samples: u32,
        (first_time_ns, last_time_ns): (u64, u64),
    ) -> Result<(), PublishError> {
        if !self.open {
            return Err(PublishError::NoSession);
        }
        if stream != MAIN_STREAM && !self.current.streams.iter().any(|s| s == stream) {
            return Err(PublishError::UnknownStream(stream.to_owned()));
        }
        let packet_id = self.next_packet_id()?;
        self.stats.packets += 1;
        self.stats.bytes += content.len() as u64;
        self.delivery.append(SpoolRecord {
            stream: stream.to_owned(),
            kind: kind.code(),
            packet_id,
            samples,
            first_time_ns,
            last_time_ns,
            session: self.current.index,
            payload: content,
        });
        Ok(())
    }

    /// Sends a lap or point marker on the main stream and on `stream` (rule 36).
    pub async fn write_marker(
        &mut self,
        stream: &str,
        marker: &MarkerPacket,
    ) -> Result<(), PublishError> {
        self.write(MAIN_STREAM, PacketKind::Marker, marker).await?;
        self.write(stream, PacketKind::Marker, marker).await
    }

    /// Whether input that can wait should be held while delivery catches up, given whether
    /// it is held now ([`Delivery::holds_input`](crate::publish::delivery::Delivery::holds_input)).
    pub fn delivery_holds_input(&self, holds: bool) -> bool {
        self.delivery.holds_input(holds)
    }

    /// Waits for something to do: a call finishing (accounted at once), or the time to ask an
    /// absent server again, which it returns as `true` (then call [`Producer::probe`]).
    /// Cancel-safe.
    pub async fn wait(&mut self) -> bool {
        self.delivery.pump();
        if self.delivery.next_outcome().await.is_some() {
            return false;
        }
        if self.delivery.in_outage() || self.outage.is_some() {
            let clock = self.outage.get_or_insert_with(|| {
                let now = Instant::now();
                OutageClock {
                    started: now,
                    attempts: 0,
                    next_probe: now + Duration::from_millis(100),
                    next_summary: now + OUTAGE_SUMMARY,
                }
            });
            tokio::time::sleep_until(clock.next_probe).await;
            return true;
        }
        false
    }

    /// [`Producer::wait`], then the question to the server if it is due.
    pub async fn progress(&mut self) -> Result<(), PublishError> {
        if self.wait().await {
            self.probe().await?;
        }
        Ok(())
    }

    /// Whether packets wait for the server (sent or not).
    pub fn has_pending(&self) -> bool {
        !self.delivery.is_idle()
    }

    /// Waits until every packet written so far is acknowledged, however long the server is
    /// away.
    pub async fn flush(&mut self) -> Result<(), PublishError> {
        self.flush_observed(&mut |_| {}, &mut std::future::pending())
            .await
    }

    /// [`Producer::flush`], calling `observe` after every step (an acknowledgement, a probe).
    /// When `give_up` resolves, no further call is started: the calls in flight are awaited
    /// (each within its deadline), so what counts as published is exactly what the server
    /// acknowledged, and the rest stays in the spool.
    async fn flush_observed(
        &mut self,
        observe: &mut impl FnMut(&Self),
        give_up: &mut (impl Future<Output = ()> + Unpin),
    ) -> Result<(), PublishError> {
        while self.has_pending() {
            let probe_due = tokio::select! {
                biased;
                () = &mut *give_up => {
                    self.delivery.settle().await;
                    observe(self);
                    return Err(PublishError::DrainCutShort {
                        samples: self.delivery.stats().samples_waiting,
                    });
                }
                due = self.wait() => due,
            };
            // Not raced against `give_up`: a take-over must not be left half done.
            if probe_due {
                self.probe().await?;
            }
            observe(self);
        }
        Ok(())
    }

    /// Ends the session: EndOfSession on every stream, every packet acknowledged, then
    /// EndSession, checking `success` (rules 41–42).
    pub async fn finish(self) -> Result<ProducerStats, PublishError> {
        self.finish_observed(|_| {}, std::future::pending()).await
    }

    /// [`Producer::finish`], calling `observe` after every step of the drain, so that figures
    /// taken from the producer (what was acknowledged) stay current; `give_up` (the stop
    /// timeout) ends the drain early, after the calls in flight are answered, with
    /// [`PublishError::DrainCutShort`]: the session stays open in the spool's journal and the
    /// next start delivers the rest and ends it.
    pub async fn finish_observed(
        mut self,
        mut observe: impl FnMut(&Self),
        give_up: impl Future<Output = ()>,
    ) -> Result<ProducerStats, PublishError> {
        let mut give_up = std::pin::pin!(give_up);
        let ended = if self.open {
            self.end_current(&mut observe, &mut give_up, None).await
        } else {
            // No session of ours; packets of earlier ones may still wait.
            self.flush_observed(&mut observe, &mut give_up).await
        };
        self.delivery.sync();
        ended?;
        if self.open {
            self.close_current();
        }
        Ok(self.stats())
    }

    /// Ends the session being written (termination time `termination_ns`, or now).
    async fn end_current(
        &mut self,
        observe: &mut impl FnMut(&Self),
        give_up: &mut (impl Future<Output = ()> + Unpin),
        termination_ns: Option<u64>,
    ) -> Result<(), PublishError> {
        if !self.current.ending {
            let end = EndOfSessionPacket {
                data_source: self.config.data_source.clone(),
                topic_partition_offsets: HashMap::new(),
                termination_time: Some(timestamp_or_now(
                    termination_ns.or(self.current.last_sample_ns),
                )),
            };
            for stream in self.all_streams() {
                self.write(&stream, PacketKind::EndOfSession, &end).await?;
            }
            self.current.ending = true;
            self.journal()?;
        }
        self.flush_observed(observe, give_up).await?;
        end_session(
            &self.calls,
            &self.config.data_source,
            &self.current.key,
            timestamp_or_now(termination_ns.or(self.current.last_sample_ns)),
        )
        .await?;
        let index = self.current.index;
        if let Err(error) = self.delivery.spool_mut().forget_session(index) {
            self.journal_failed(&error);
        }
        Ok(())
    }

    fn route_current(&mut self, announced_again_before: u64) {
        self.delivery.set_route(
            self.current.index,
            Route {
                session_key: self.current.key.clone(),
                format_remap: HashMap::new(),
                announced_again_before,
                id_shift: 0,
            },
        );
    }

    async fn announce(&mut self, identity: &SessionIdentity) -> Result<(), PublishError> {
        let new_session = new_session_packet(identity);
        for stream in self.all_streams() {
            self.write(&stream, PacketKind::NewSession, &new_session)
                .await?;
        }
        self.journal()
    }

    fn next_packet_id(&mut self) -> Result<u64, PublishError> {
        let id = self.current.next_packet_id;
        self.current.next_packet_id += 1;
        if id >= self.current.packet_ids_reserved {
            self.current.packet_ids_reserved = id + PACKET_ID_BLOCK;
            self.journal()?;
        }
        Ok(id)
    }

    fn all_streams(&self) -> Vec<String> {
        std::iter::once(MAIN_STREAM.to_owned())
            .chain(self.current.streams.iter().cloned())
            .collect()
    }
}

/// The NewSession packet announcing a session described by `identity` (rule 13).
fn new_session_packet(identity: &SessionIdentity) -> NewSessionPacket {
    let utc_offset = prost_types::Duration {
        seconds: identity.utc_offset_seconds,
        nanos: 0,
    };
    NewSessionPacket {
        data_source: identity.data_source.clone(),
        topic_partition_offsets: HashMap::new(),
        utc_offset: Some(utc_offset),
        session_info: Some(SessionInfoPacket {
            data_source: identity.data_source.clone(),
            identifier: identity.identifier.clone(),
            r#type: identity.session_type.clone(),
            version: 1,
            associate_session_keys: Vec::new(),
            details: identity.details.clone().into_iter().collect(),
            utc_offset: Some(utc_offset),
            creation_time: Some(timestamp_or_now(identity.creation_ns)),
            termination_time: None,
        }),
        creation_time: Some(timestamp_or_now(identity.creation_ns)),
    }
}

/// `time_ns` (ns since the UNIX epoch) as a protobuf timestamp, or now when `None`.
pub fn timestamp_or_now(time_ns: Option<u64>) -> prost_types::Timestamp {
    match time_ns {
        Some(time_ns) => prost_types::Timestamp {
            seconds: (time_ns / 1_000_000_000) as i64,
            nanos: (time_ns % 1_000_000_000) as i32,
        },
        None => now_timestamp(),
    }
}
