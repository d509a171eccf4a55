//! The Open Streaming producer: one session's calls to the Stream API in the order the protocol
//! requires (`docs/open-streaming.md` §1–§3).
//!
//! CreateSession → NewSession on `""` and every data stream → Configuration (essential) on all of
//! them → data-format ids (cached) → data and markers over one long-lived `WriteDataPackets`
//! stream → EndOfSession on every stream → drain → EndSession.
//!
//! Invariants kept here, so no caller can break them: `Packet.session_key` always equals
//! `DataPacketDetails.session_key`; `Packet.id` increases by one per packet; type strings come
//! from [`PacketKind`]; the write stream is never awaited while writing (the real server does
//! not answer it) and is reopened when it ends.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost::Message;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use open_streaming::api::data_format_manager_service_client::DataFormatManagerServiceClient;
use open_streaming::api::packet_writer_service_client::PacketWriterServiceClient;
use open_streaming::api::session_management_service_client::SessionManagementServiceClient;
use open_streaming::api::{
    CreateSessionRequest, DataPacketDetails, EndSessionRequest, GetParameterDataFormatIdRequest,
    WriteDataPacketsRequest,
};
use open_streaming::key_generator::unique_key_generator_service_client::UniqueKeyGeneratorServiceClient;
use open_streaming::key_generator::{
    GenerateUniqueKeyRequest, KeyType, generate_unique_key_response,
};
use open_streaming::open_data::{
    ConfigurationPacket, EndOfSessionPacket, MarkerPacket, NewSessionPacket, Packet,
    SessionInfoPacket,
};

/// The main stream's name: the empty string, never `"Main"` (rule 61).
pub const MAIN_STREAM: &str = "";

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
    /// Deadline for session and data-format calls (≥ 10 s: rule 5).
    pub call_timeout: Duration,
    /// Start-up retry of UNAVAILABLE: first delay, cap, and when to give up.
    pub retry: RetryPolicy,
    /// How long `finish` waits for the server to take the last writes before EndSession.
    pub drain_timeout: Duration,
}

/// Jittered exponential backoff for `UNAVAILABLE` (the server waits for Kafka before serving).
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Delay before the first retry.
    pub initial: Duration,
    /// Largest delay between retries.
    pub max: Duration,
    /// Total time after which the call fails; `None` retries for ever.
    pub give_up_after: Option<Duration>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
            give_up_after: Some(Duration::from_secs(120)),
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `attempt` (0-based): exponential, capped, with ±50 % jitter
    /// so that many producers restarted together do not retry in lockstep.
    pub fn delay(&self, attempt: u32) -> Duration {
        let base = self
            .initial
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max);
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let factor = 0.5 + (random % 1000) as f64 / 1000.0;
        base.mul_f64(factor)
    }
}

/// The Open Streaming packet types a producer may write, with their exact `type` strings
/// (rule 43: the message name without "Packet").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    /// `NewSessionPacket`.
    NewSession,
    /// `ConfigurationPacket`.
    Configuration,
    /// `PeriodicDataPacket`.
    PeriodicData,
    /// `RowDataPacket`.
    RowData,
    /// `SynchroDataPacket`.
    SynchroData,
    /// `MarkerPacket`.
    Marker,
    /// `EndOfSessionPacket`.
    EndOfSession,
}

impl PacketKind {
    /// The `Packet.type` string.
    pub fn type_name(self) -> &'static str {
        match self {
            Self::NewSession => "NewSession",
            Self::Configuration => "Configuration",
            Self::PeriodicData => "PeriodicData",
            Self::RowData => "RowData",
            Self::SynchroData => "SynchroData",
            Self::Marker => "Marker",
            Self::EndOfSession => "EndOfSession",
        }
    }

    /// Whether packets of this kind are written as essential (rules 16, 33, 36, 47).
    pub fn is_essential(self) -> bool {
        matches!(self, Self::Configuration | Self::Marker)
    }
}

/// Why a producer call failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The endpoint URL is not valid.
    #[error("invalid Stream API endpoint {endpoint:?}: {source}")]
    Endpoint {
        /// The URL given.
        endpoint: String,
        /// Why tonic refused it.
        source: tonic::transport::Error,
    },
    /// A call failed with a gRPC status (after retries, where retried).
    #[error("{call} failed: {status}")]
    Rpc {
        /// Which call.
        call: &'static str,
        /// The final status.
        status: Box<Status>,
    },
    /// The server answered a session call with `success = false` (rule 11).
    #[error("{call} was refused by the Stream API (success = false)")]
    Refused {
        /// Which call.
        call: &'static str,
    },
    /// The server returned data-format id 0, which readers treat as "no id" (rule 25).
    #[error("GetParameterDataFormatId returned id 0 for {parameters} parameters")]
    ZeroDataFormatId {
        /// Size of the list asked for.
        parameters: usize,
    },
    /// The Key Generator returned no string key.
    #[error("the Key Generator returned no string key")]
    NoKey,
    /// A stream name not announced at session start.
    #[error("stream {0:?} was not announced when the session started")]
    UnknownStream(String),
}

/// Counters of what the producer sent, for metrics and the closing summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProducerStats {
    /// Packets handed to the write stream.
    pub packets: u64,
    /// Serialized packet bytes.
    pub bytes: u64,
    /// Write streams reopened after the server ended one.
    pub reopened_streams: u64,
}

/// A live Open Streaming session.
#[derive(Debug)]
pub struct Producer {
    config: ProducerConfig,
    channel: Channel,
    session_key: String,
    next_packet_id: u64,
    format_ids: HashMap<Vec<String>, u64>,
    writer: WriteStream,
    pending: Vec<DataPacketDetails>,
    pending_bytes: usize,
    stats: ProducerStats,
}

/// Requests stay below this size; the server's limit is 4 MB per request (rule 52).
const MAX_REQUEST_BYTES: usize = 1_000_000;
/// Requests queued toward the write stream before `flush` waits for space: a few, so the
/// network stays busy while the next request is built, and memory stays bounded.
const WRITE_QUEUE_REQUESTS: usize = 4;

impl Producer {
    /// Opens a session: connects, creates the session (retrying UNAVAILABLE with jittered
    /// backoff), announces it and sends `configuration` on the main stream and every data
    /// stream.
    pub async fn start(
        config: ProducerConfig,
        configuration: ConfigurationPacket,
    ) -> Result<Self, PublishError> {
        let channel = Endpoint::from_shared(config.endpoint.clone())
            .map_err(|source| PublishError::Endpoint {
                endpoint: config.endpoint.clone(),
                source,
            })?
            .connect_timeout(config.call_timeout)
            .tcp_nodelay(true)
            .connect_lazy();
        let session_key = create_session(&config, channel.clone()).await?;
        let writer = WriteStream::new(channel.clone());
        let mut producer = Self {
            config,
            channel,
            session_key,
            next_packet_id: 0,
            format_ids: HashMap::new(),
            writer,
            pending: Vec::new(),
            pending_bytes: 0,
            stats: ProducerStats::default(),
        };
        producer.announce().await?;
        producer.configure(configuration).await?;
        Ok(producer)
    }

    /// The session key returned by CreateSession.
    pub fn session_key(&self) -> &str {
        &self.session_key
    }

    /// The data source this session writes to.
    pub fn data_source(&self) -> &str {
        &self.config.data_source
    }

    /// What has been sent so far.
    pub fn stats(&self) -> ProducerStats {
        self.stats
    }

    /// Sends a new configuration on the main stream and every data stream (also used to
    /// publish a reloaded channel map). A fresh `config_id` is taken for it (rule 17).
    pub async fn configure(
        &mut self,
        mut configuration: ConfigurationPacket,
    ) -> Result<(), PublishError> {
        configuration.config_id = self.unique_config_id().await?;
        for stream in self.all_streams() {
            self.write(&stream, PacketKind::Configuration, &configuration)
                .await?;
        }
        self.flush().await
    }

    /// The data-format id for an ordered parameter list, asked once and cached (rules 21–25).
    pub async fn data_format_id(&mut self, parameters: &[String]) -> Result<u64, PublishError> {
        if let Some(id) = self.format_ids.get(parameters) {
            return Ok(*id);
        }
        let request = GetParameterDataFormatIdRequest {
            data_source: self.config.data_source.clone(),
            parameters: parameters.to_vec(),
        };
        let client = DataFormatManagerServiceClient::new(self.channel.clone());
        let timeout = self.config.call_timeout;
        let response = with_retry("GetParameterDataFormatId", &self.config.retry, || {
            let mut request = tonic::Request::new(request.clone());
            request.set_timeout(timeout);
            let mut client = client.clone();
            async move { client.get_parameter_data_format_id(request).await }
        })
        .await?;
        let id = response.data_format_identifier;
        if id == 0 {
            return Err(PublishError::ZeroDataFormatId {
                parameters: parameters.len(),
            });
        }
        self.format_ids.insert(parameters.to_vec(), id);
        Ok(id)
    }

    /// Queues one packet for `stream`; it goes out with the next [`Producer::flush`] or when
    /// the pending request reaches its size limit.
    pub async fn write<M: Message>(
        &mut self,
        stream: &str,
        kind: PacketKind,
        content: &M,
    ) -> Result<(), PublishError> {
        self.write_encoded(stream, kind, content.encode_to_vec())
            .await
    }

    /// [`Producer::write`] for content that is already encoded (the `RowData` fast path).
    pub async fn write_encoded(
        &mut self,
        stream: &str,
        kind: PacketKind,
        content: Vec<u8>,
    ) -> Result<(), PublishError> {
        if stream != MAIN_STREAM && !self.config.streams.iter().any(|s| s == stream) {
            return Err(PublishError::UnknownStream(stream.to_owned()));
        }
        let packet = Packet {
            r#type: kind.type_name().to_owned(),
            session_key: self.session_key.clone(),
            is_essential: kind.is_essential(),
            content,
            id: self.next_packet_id,
        };
        self.next_packet_id += 1;
        let size = packet.encoded_len();
        self.stats.packets += 1;
        self.stats.bytes += size as u64;
        if self.pending_bytes + size > MAX_REQUEST_BYTES {
            self.flush().await?;
        }
        self.pending_bytes += size;
        self.pending.push(DataPacketDetails {
            message: Some(packet),
            data_source: self.config.data_source.clone(),
            stream: stream.to_owned(),
            session_key: self.session_key.clone(),
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

    /// Hands the pending packets to the write stream, reopening the stream (with jittered
    /// backoff, until the retry policy gives up) if the server ended it. Waits only for queue
    /// space, never for the server's answer (rule 49).
    pub async fn flush(&mut self) -> Result<(), PublishError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut request = WriteDataPacketsRequest {
            details: std::mem::take(&mut self.pending),
        };
        self.pending_bytes = 0;
        let started = tokio::time::Instant::now();
        let mut attempt = 0;
        loop {
            match self.writer.send(request).await {
                Ok(()) => return Ok(()),
                Err(returned) => request = returned,
            }
            let policy = self.config.retry;
            if policy
                .give_up_after
                .is_some_and(|limit| started.elapsed() >= limit)
            {
                return Err(PublishError::Rpc {
                    call: "WriteDataPackets",
                    status: Box::new(Status::unavailable("write stream could not be reopened")),
                });
            }
            tokio::time::sleep(policy.delay(attempt)).await;
            let outcome = self.writer.reopen().await;
            if attempt == 0 {
                tracing::warn!(session = %self.session_key, %outcome, "Stream API write stream ended; reopening");
            }
            attempt = attempt.saturating_add(1);
            self.stats.reopened_streams += 1;
        }
    }

    /// Ends the session: EndOfSession on every stream, close the write stream and let the
    /// server drain it, then EndSession, checking `success` (rules 41–42).
    pub async fn finish(mut self) -> Result<ProducerStats, PublishError> {
        let end = EndOfSessionPacket {
            data_source: self.config.data_source.clone(),
            topic_partition_offsets: HashMap::new(),
            termination_time: Some(now_timestamp()),
        };
        for stream in self.all_streams() {
            self.write(&stream, PacketKind::EndOfSession, &end).await?;
        }
        self.flush().await?;
        let retry = self.config.retry;
        self.writer.close(self.config.drain_timeout, &retry).await?;
        let request = EndSessionRequest {
            data_source: self.config.data_source.clone(),
            session_key: self.session_key.clone(),
            termination_time: Some(now_timestamp()),
        };
        let client = SessionManagementServiceClient::new(self.channel.clone());
        let timeout = self.config.call_timeout;
        let response = with_retry("EndSession", &self.config.retry, || {
            let mut request = tonic::Request::new(request.clone());
            request.set_timeout(timeout);
            let mut client = client.clone();
            async move { client.end_session(request).await }
        })
        .await?;
        if !response.success {
            return Err(PublishError::Refused { call: "EndSession" });
        }
        Ok(self.stats)
    }

    async fn announce(&mut self) -> Result<(), PublishError> {
        let config = &self.config;
        let utc_offset = prost_types::Duration {
            seconds: config.utc_offset_seconds,
            nanos: 0,
        };
        let new_session = NewSessionPacket {
            data_source: config.data_source.clone(),
            topic_partition_offsets: HashMap::new(),
            utc_offset: Some(utc_offset),
            session_info: Some(SessionInfoPacket {
                data_source: config.data_source.clone(),
                identifier: config.identifier.clone(),
                r#type: config.session_type.clone(),
                version: 1,
                associate_session_keys: Vec::new(),
                details: config.details.clone().into_iter().collect(),
                utc_offset: Some(utc_offset),
                creation_time: Some(now_timestamp()),
                termination_time: None,
            }),
            creation_time: Some(now_timestamp()),
        };
        for stream in self.all_streams() {
            self.write(&stream, PacketKind::NewSession, &new_session)
                .await?;
        }
        Ok(())
    }

    fn all_streams(&self) -> Vec<String> {
        std::iter::once(MAIN_STREAM.to_owned())
            .chain(self.config.streams.iter().cloned())
            .collect()
    }

    async fn unique_config_id(&self) -> Result<String, PublishError> {
        let Some(endpoint) = &self.config.key_generator else {
            return Ok(uuid::Uuid::new_v4().to_string());
        };
        let channel = Endpoint::from_shared(endpoint.clone())
            .map_err(|source| PublishError::Endpoint {
                endpoint: endpoint.clone(),
                source,
            })?
            .connect_lazy();
        let client = UniqueKeyGeneratorServiceClient::new(channel);
        let timeout = self.config.call_timeout;
        let response = with_retry("GenerateUniqueKey", &self.config.retry, || {
            let mut request = tonic::Request::new(GenerateUniqueKeyRequest {
                r#type: KeyType::String as i32,
            });
            request.set_timeout(timeout);
            let mut client = client.clone();
            async move { client.generate_unique_key(request).await }
        })
        .await?;
        match response.key {
            Some(generate_unique_key_response::Key::StringKey(key)) if !key.is_empty() => Ok(key),
            _ => Err(PublishError::NoKey),
        }
    }
}

async fn create_session(config: &ProducerConfig, channel: Channel) -> Result<String, PublishError> {
    let request = CreateSessionRequest {
        data_source: config.data_source.clone(),
        r#type: config.session_type.clone(),
        version: 1,
        utc_offset: Some(prost_types::Duration {
            seconds: config.utc_offset_seconds,
            nanos: 0,
        }),
        identifier: config.identifier.clone(),
        associate_session_key: Vec::new(),
        details: config.details.clone().into_iter().collect(),
        creation_time: Some(now_timestamp()),
    };
    let client = SessionManagementServiceClient::new(channel);
    let timeout = config.call_timeout;
    let response = with_retry("CreateSession", &config.retry, || {
        let mut request = tonic::Request::new(request.clone());
        request.set_timeout(timeout);
        let mut client = client.clone();
        async move { client.create_session(request).await }
    })
    .await?;
    if !response.success || response.session_key.is_empty() {
        return Err(PublishError::Refused {
            call: "CreateSession",
        });
    }
    Ok(response.session_key)
}

/// Calls `call` until it succeeds, retrying `UNAVAILABLE` (server starting, or restarting)
/// with jittered backoff until the policy gives up; other errors fail at once.
async fn with_retry<T, F, Fut>(
    name: &'static str,
    policy: &RetryPolicy,
    mut call: F,
) -> Result<T, PublishError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, Status>>,
{
    let started = tokio::time::Instant::now();
    let mut attempt = 0u32;
    loop {
        match call().await {
            Ok(response) => return Ok(response.into_inner()),
            Err(status) if status.code() == Code::Unavailable => {
                let waited = started.elapsed();
                if policy.give_up_after.is_some_and(|limit| waited >= limit) {
                    return Err(PublishError::Rpc {
                        call: name,
                        status: Box::new(status),
                    });
                }
                if attempt == 0 {
                    tracing::warn!(call = name, %status, "Stream API unavailable; retrying with backoff");
                }
                tokio::time::sleep(policy.delay(attempt)).await;
                attempt = attempt.saturating_add(1);
            }
            Err(status) => {
                return Err(PublishError::Rpc {
                    call: name,
                    status: Box::new(status),
                });
            }
        }
    }
}

/// The `WriteDataPackets` side of the producer: requests go into one bounded queue whose
/// receiver outlives any single call. When the server ends a call (or goes away), the requests
/// still queued are not lost: the next call drains the same receiver. Only what the transport
/// had already taken from the queue when the server died can be lost; nothing is resent, so
/// nothing is duplicated.
#[derive(Debug)]
struct WriteStream {
    channel: Channel,
    requests: Option<mpsc::Sender<WriteDataPacketsRequest>>,
    receiver: Arc<Mutex<mpsc::Receiver<WriteDataPacketsRequest>>>,
    call: Option<JoinHandle<Result<(), Status>>>,
}

/// The request stream of one call: a view of the shared receiver.
#[derive(Debug)]
struct SharedRequests(Arc<Mutex<mpsc::Receiver<WriteDataPacketsRequest>>>);

impl tokio_stream::Stream for SharedRequests {
    type Item = WriteDataPacketsRequest;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // The lock is held only for this poll; a poisoned lock means a panicked poller, and
        // ending the stream is the safe answer.
        match self.0.lock() {
            Ok(mut receiver) => receiver.poll_recv(cx),
            Err(_) => Poll::Ready(None),
        }
    }
}

/// How often a blocked send looks at whether the call is still alive.
const LIVENESS_CHECK: Duration = Duration::from_millis(100);

impl WriteStream {
    fn new(channel: Channel) -> Self {
        let (requests, receiver) = mpsc::channel(WRITE_QUEUE_REQUESTS);
        let mut stream = Self {
            channel,
            requests: Some(requests),
            receiver: Arc::new(Mutex::new(receiver)),
            call: None,
        };
        stream.open_call();
        stream
    }

    fn open_call(&mut self) {
        let mut client = PacketWriterServiceClient::new(self.channel.clone())
            .max_encoding_message_size(4 * 1024 * 1024);
        let requests = SharedRequests(self.receiver.clone());
        self.call = Some(tokio::spawn(async move {
            client.write_data_packets(requests).await.map(|_| ())
        }));
    }

    /// Whether the current call has ended (the server finished or dropped it).
    fn call_ended(&self) -> bool {
        self.call.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Queues `request`, or hands it back if the call ended while waiting for queue space.
    async fn send(
        &mut self,
        request: WriteDataPacketsRequest,
    ) -> Result<(), WriteDataPacketsRequest> {
        let Some(sender) = self.requests.clone() else {
            return Err(request);
        };
        loop {
            if self.call_ended() {
                return Err(request);
            }
            tokio::select! {
                permit = sender.reserve() => {
                    return match permit {
                        Ok(permit) => {
                            permit.send(request);
                            Ok(())
                        }
                        Err(_) => Err(request),
                    };
                }
                () = tokio::time::sleep(LIVENESS_CHECK) => {}
            }
        }
    }

    /// Starts a new call over the same queue after the previous one ended; returns how the
    /// previous call finished, for the log.
    async fn reopen(&mut self) -> String {
        let outcome = match self.call.take() {
            Some(call) => match call.await {
                Ok(Ok(())) => "completed by the server".to_owned(),
                Ok(Err(status)) => status.to_string(),
                Err(join) => join.to_string(),
            },
            None => "closed".to_owned(),
        };
        self.open_call();
        outcome
    }

    /// Half-closes the stream and waits up to `drain` for the server to finish reading; the
    /// real server may never answer after half-close, so a timeout counts as success (rule 49).
    /// If the call ends while requests are still queued (the server went away), another call
    /// is opened to deliver them, with backoff, until the retry policy gives up.
    async fn close(&mut self, drain: Duration, policy: &RetryPolicy) -> Result<(), PublishError> {
        self.requests = None;
        let started = tokio::time::Instant::now();
        let mut attempt = 0;
        loop {
            let Some(call) = self.call.as_mut() else {
                return Ok(());
            };
            let outcome = match tokio::time::timeout(drain, call).await {
                Err(_) => return Ok(()),
                Ok(Ok(Ok(()))) => "completed".to_owned(),
                Ok(Ok(Err(status))) => status.to_string(),
                Ok(Err(join)) => join.to_string(),
            };
            self.call = None;
            if self.queued_requests() == 0 {
                return Ok(());
            }
            if policy
                .give_up_after
                .is_some_and(|limit| started.elapsed() >= limit)
            {
                return Err(PublishError::Rpc {
                    call: "WriteDataPackets",
                    status: Box::new(Status::unavailable(format!(
                        "{} requests undelivered at close",
                        self.queued_requests()
                    ))),
                });
            }
            if attempt == 0 {
                tracing::warn!(%outcome, "write stream ended with requests queued; reopening to deliver them");
            }
            tokio::time::sleep(policy.delay(attempt)).await;
            attempt += 1;
            self.open_call();
        }
    }

    fn queued_requests(&self) -> usize {
        self.receiver.lock().map_or(0, |receiver| receiver.len())
    }
}

/// Wall-clock now as a protobuf timestamp (session metadata only; sample times come from the
/// sources).
pub fn now_timestamp() -> prost_types::Timestamp {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    prost_types::Timestamp {
        seconds: i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(since_epoch.subsec_nanos()).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_strings_are_the_message_names_without_packet() {
        assert_eq!(PacketKind::PeriodicData.type_name(), "PeriodicData");
        assert_eq!(PacketKind::Marker.type_name(), "Marker");
        assert!(PacketKind::Configuration.is_essential());
        assert!(!PacketKind::RowData.is_essential());
        assert!(!PacketKind::NewSession.is_essential());
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let policy = RetryPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            give_up_after: None,
        };
        for attempt in 0..20 {
            let delay = policy.delay(attempt);
            let base = (100u64 << attempt.min(16)).min(1000);
            assert!(
                delay >= Duration::from_millis(base / 2),
                "{attempt}: {delay:?}"
            );
            assert!(
                delay <= Duration::from_millis(base * 3 / 2),
                "{attempt}: {delay:?}"
            );
        }
    }
}
