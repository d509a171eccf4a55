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
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use prost::Message;
use tokio::time::Instant;

use open_streaming::open_data::{
    ConfigurationPacket, EndOfSessionPacket, MarkerPacket, NewSessionPacket, SessionInfoPacket,
};

pub use super::delivery::DeliveryStats;
use super::delivery::{Delivery, OneLine, Route};
use super::session::{
    Calls, create_session, data_format_id, end_session, session_is_open, unique_config_id,
};
pub use super::session::{
    MAIN_STREAM, PacketKind, PublishError, RetryPolicy, SessionIdentity, now_timestamp,
};
use crate::spool::{SessionRecord, SessionState, Spool, SpoolConfig, SpoolRecord};

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
}

impl ProducerConfig {
    fn identity(&self) -> SessionIdentity {
        SessionIdentity {
            data_source: self.data_source.clone(),
            identifier: self.identifier.clone(),
            session_type: self.session_type.clone(),
            utc_offset_seconds: self.utc_offset_seconds,
            details: self.details.clone(),
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
    /// Acknowledged delivery.
    pub delivery: DeliveryStats,
}

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
}

#[derive(Clone, PartialEq, prost::Message)]
struct FormatMemo {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(string, repeated, tag = "2")]
    parameters: Vec<String>,
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
    delivery: Delivery,
    outage: Option<OutageClock>,
    stats: ProducerStats,
    /// Whether a failed journal write was logged (logged once per run).
    journal_failure_logged: bool,
    /// Keeps a temporary spool folder alive; removed on drop.
    _temporary: Option<tempfile::TempDir>,
}

impl Producer {
    /// Opens the spool, delivers and ends any earlier session it holds, then opens a new
    /// session: creates it (retrying UNAVAILABLE with jittered backoff), announces it and
    /// sends `configuration` on the main stream and every data stream.
    pub async fn start(
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
        };
        let current = fresh();
        let new_current = fresh();
        let mut producer = Self {
            current,
            config,
            calls,
            delivery,
            outage: None,
            stats: ProducerStats::default(),
            journal_failure_logged: false,
            _temporary: temporary,
        };
        for session in previous {
            producer.finish_previous(session).await?;
        }
        producer.current = new_current;
        let identity = producer.current.identity.clone();
        producer.current.key = create_session(&identity, Vec::new(), &producer.calls).await?;
        producer.route_current(0);
        producer.announce(&identity).await?;
        producer.configure(configuration).await?;
        Ok(producer)
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
        configuration.config_id =
            unique_config_id(self.config.key_generator.as_deref(), &self.calls).await?;
        for stream in self.all_streams() {
            self.write(&stream, PacketKind::Configuration, &configuration)
                .await?;
        }
        self.current.configuration = configuration;
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
        self.write_encoded(stream, kind, content.encode_to_vec(), 0, (0, 0))
            .await
    }

    /// [`Producer::write`] for content that is already encoded (the `RowData` fast path), with
    /// the samples it carries and their first and last times (for the spool's figures).
    pub async fn write_encoded(
        &mut self,
        stream: &str,
        kind: PacketKind,
        content: Vec<u8>,
        samples: u32,
        (first_time_ns, last_time_ns): (u64, u64),
    ) -> Result<(), PublishError> {
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
            payload: Bytes::from(content),
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
        self.flush_observed(&mut |_| {}).await
    }

    /// [`Producer::flush`], calling `observe` after every step (an acknowledgement, a probe).
    async fn flush_observed(
        &mut self,
        observe: &mut impl FnMut(&Self),
    ) -> Result<(), PublishError> {
        while self.has_pending() {
            self.progress().await?;
            observe(self);
        }
        Ok(())
    }

    /// Ends the session: EndOfSession on every stream, every packet acknowledged, then
    /// EndSession, checking `success` (rules 41–42).
    pub async fn finish(self) -> Result<ProducerStats, PublishError> {
        self.finish_observed(|_| {}).await
    }

    /// [`Producer::finish`], calling `observe` after every step of the drain, so that figures
    /// taken from the producer (what was acknowledged) stay current even when the drain is cut
    /// short by a stop timeout.
    pub async fn finish_observed(
        mut self,
        mut observe: impl FnMut(&Self),
    ) -> Result<ProducerStats, PublishError> {
        self.end_current(&mut observe).await?;
        self.delivery.sync();
        Ok(self.stats())
    }

    async fn end_current(&mut self, observe: &mut impl FnMut(&Self)) -> Result<(), PublishError> {
        if !self.current.ending {
            let end = EndOfSessionPacket {
                data_source: self.config.data_source.clone(),
                topic_partition_offsets: HashMap::new(),
                termination_time: Some(now_timestamp()),
            };
            for stream in self.all_streams() {
                self.write(&stream, PacketKind::EndOfSession, &end).await?;
            }
            self.current.ending = true;
            self.journal()?;
        }
        self.flush_observed(observe).await?;
        end_session(&self.calls, &self.config.data_source, &self.current.key).await?;
        let index = self.current.index;
        if let Err(error) = self.delivery.spool_mut().forget_session(index) {
            self.journal_failed(&error);
        }
        Ok(())
    }

    /// Delivers the waiting packets of a session an earlier process left in the spool into
    /// it (or the session that takes over from it), then ends it.
    async fn finish_previous(&mut self, record: SessionRecord) -> Result<(), PublishError> {
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
        };
        tracing::info!(session = %record.session_key, "an earlier session waits in the spool: delivering it and ending it first");
        self.route_current(0);
        // The server is asked about the session before anything is sent to it.
        self.outage = Some(OutageClock {
            started: Instant::now(),
            attempts: 0,
            next_probe: Instant::now(),
            next_summary: Instant::now() + OUTAGE_SUMMARY,
        });
        self.end_current(&mut |_| {}).await?;
        self.stats.sessions_resumed += 1;
        Ok(())
    }

    /// Asks an absent server whether it is back and still has the session; when it is,
    /// delivery resumes (in a session that takes over, if the server lost this one).
    pub async fn probe(&mut self) -> Result<(), PublishError> {
        self.delivery.settle().await;
        let asked = session_is_open(
            &self.calls,
            &self.config.data_source,
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
                        endpoint = %self.config.endpoint,
                        cause = %OneLine(&status),
                        away_s = clock.started.elapsed().as_secs(),
                        attempts = clock.attempts,
                        packets_waiting = waiting.records_pending,
                        samples_waiting = waiting.samples_pending,
                        "Stream API unreachable; packets wait in the spool, retrying"
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
    async fn take_over(&mut self) -> Result<(), PublishError> {
        let old = self.current.key.clone();
        let identity = self.current.identity.clone();
        let key = create_session(&identity, vec![old.clone()], &self.calls).await?;
        tracing::warn!(old = %old, new = %key, "the Stream API lost the session; a new session linked to it takes over");
        let mut remap = HashMap::new();
        let mut format_ids = HashMap::new();
        for (parameters, old_id) in &self.current.format_ids {
            let id = data_format_id(&self.calls, &self.config.data_source, parameters).await?;
            remap.insert(*old_id, id);
            format_ids.insert(parameters.clone(), id);
        }
        let mut configuration = self.current.configuration.clone();
        configuration.config_id =
            unique_config_id(self.config.key_generator.as_deref(), &self.calls).await?;
        let streams = self.all_streams();
        let takeover_point = self.current.next_packet_id;
        let announcements = 2 * streams.len() as u64;
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
        let new_session = new_session_packet(&identity).encode_to_vec();
        let configuration_bytes = configuration.encode_to_vec();
        let mut id = takeover_point;
        for (kind, content) in [
            (PacketKind::NewSession, &new_session),
            (PacketKind::Configuration, &configuration_bytes),
        ] {
            for stream in &streams {
                let record = SpoolRecord {
                    stream: stream.clone(),
                    kind: kind.code(),
                    packet_id: id,
                    session: self.current.index,
                    payload: Bytes::from(content.clone()),
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

    /// Records the session in the spool's journal (key, streams, what re-announcing needs).
    fn journal(&mut self) -> Result<(), PublishError> {
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
    fn journal_failed(&mut self, error: &crate::spool::SpoolError) {
        if !self.journal_failure_logged {
            self.journal_failure_logged = true;
            tracing::error!(%error, "spool session journal not written; the session goes on, but a restart could not resume it (logged once; see spool_write_failures)");
        }
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
            creation_time: Some(now_timestamp()),
            termination_time: None,
        }),
        creation_time: Some(now_timestamp()),
    }
}

/// The spool at `place`, the samples it holds from an earlier run, and the temporary folder
/// to keep alive (for [`SpoolPlace::Temporary`]).
fn open_spool(place: &SpoolPlace) -> Result<(Spool, u64, Option<tempfile::TempDir>), PublishError> {
    let (dir, config, temporary) = match place {
        SpoolPlace::Dir(dir, config) => (dir.clone(), config.clone(), None),
        SpoolPlace::Temporary => {
            let temporary = tempfile::Builder::new()
                .prefix("ecu-bridge-spool-")
                .tempdir()
                .map_err(|error| crate::spool::SpoolError::io(&std::env::temp_dir(), error))?;
            let config = SpoolConfig {
                max_bytes: 4 << 30,
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
