//! The session calls of the Open Streaming producer (`docs/open-streaming.md` §1–§3):
//! CreateSession (optionally linked to an earlier session), GetSessionInfo, EndSession,
//! data-format ids and config ids, each with a deadline and jittered backoff on `UNAVAILABLE`;
//! the packet kinds and their type strings; the producer's errors.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use open_streaming::api::data_format_manager_service_client::DataFormatManagerServiceClient;
use open_streaming::api::session_management_service_client::SessionManagementServiceClient;
use open_streaming::api::{
    CreateSessionRequest, EndSessionRequest, GetParameterDataFormatIdRequest, GetSessionInfoRequest,
};
use open_streaming::key_generator::unique_key_generator_service_client::UniqueKeyGeneratorServiceClient;
use open_streaming::key_generator::{
    GenerateUniqueKeyRequest, KeyType, generate_unique_key_response,
};

/// The main stream's name: the empty string, never `"Main"` (rule 61).
pub const MAIN_STREAM: &str = "";

/// What a session is called and how it is described; kept with its spooled packets so that a
/// later process (or a new session after the server lost this one) can announce it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionIdentity {
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
    /// When the session began (its first sample), ns since the UNIX epoch; `None` = now.
    /// Sent as `creation_time` so that ATLAS 2.1+ dates a replayed session when it was driven.
    pub creation_ns: Option<u64>,
}

/// A channel to the Stream API with the call deadline and retry policy every call uses.
#[derive(Debug, Clone)]
pub(crate) struct Calls {
    /// The endpoint's URL, named in every log line about it.
    pub(crate) endpoint: String,
    pub(crate) channel: Channel,
    pub(crate) call_timeout: Duration,
    pub(crate) retry: RetryPolicy,
}

impl Calls {
    /// A lazily connecting channel to `endpoint`.
    pub(crate) fn connect(
        endpoint: &str,
        call_timeout: Duration,
        retry: RetryPolicy,
    ) -> Result<Self, PublishError> {
        let channel = Endpoint::from_shared(endpoint.to_owned())
            .map_err(|source| PublishError::Endpoint {
                endpoint: endpoint.to_owned(),
                source,
            })?
            .connect_timeout(call_timeout)
            .tcp_nodelay(true)
            .connect_lazy();
        Ok(Self {
            endpoint: endpoint.to_owned(),
            channel,
            call_timeout,
            retry,
        })
    }
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
#[repr(u8)]
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
    /// Every kind, in the order of their spool codes.
    pub const ALL: [Self; 7] = [
        Self::NewSession,
        Self::Configuration,
        Self::PeriodicData,
        Self::RowData,
        Self::SynchroData,
        Self::Marker,
        Self::EndOfSession,
    ];

    /// The kind's code in spool records.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The kind of a spool record's code.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(usize::from(code)).copied()
    }

    /// Whether the content starts with a data-format id (which a new session re-resolves).
    pub fn carries_data_format(self) -> bool {
        matches!(self, Self::PeriodicData | Self::RowData)
    }

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
    #[error("{call} failed: {}", Cause(status))]
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
    /// A packet was written while no session was open.
    #[error("no session is open")]
    NoSession,
    /// A stream name not announced at session start.
    #[error("stream {0:?} was not announced when the session started")]
    UnknownStream(String),
    /// The spool could not be opened (a failed append is counted, not an error).
    #[error(transparent)]
    Spool(#[from] crate::spool::SpoolError),
    /// The stop timeout ended the drain: the calls in flight were answered, the rest waits in
    /// the spool for the next start.
    #[error("the drain was cut short by the stop timeout; {samples} samples wait in the spool")]
    DrainCutShort {
        /// Samples not acknowledged.
        samples: u64,
    },
    /// A packet in the spool could not be decoded to remap its data-format id.
    #[error("spooled packet {packet_id} cannot be decoded: {source}")]
    Corrupt {
        /// Its `Packet.id`.
        packet_id: u64,
        /// Why.
        source: prost::DecodeError,
    },
}

/// CreateSession for `identity`, linked to `associate` sessions (rule 12), retried per `retry`.
pub(crate) async fn create_session(
    identity: &SessionIdentity,
    associate: Vec<String>,
    calls: &Calls,
) -> Result<String, PublishError> {
    let config = identity;
    let request = CreateSessionRequest {
        data_source: config.data_source.clone(),
        r#type: config.session_type.clone(),
        version: 1,
        utc_offset: Some(prost_types::Duration {
            seconds: config.utc_offset_seconds,
            nanos: 0,
        }),
        identifier: config.identifier.clone(),
        associate_session_key: associate,
        details: config.details.clone().into_iter().collect(),
        creation_time: Some(super::producer::timestamp_or_now(config.creation_ns)),
    };
    let client = SessionManagementServiceClient::new(calls.channel.clone());
    let timeout = calls.call_timeout;
    let response = with_retry("CreateSession", &calls.endpoint, &calls.retry, || {
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

/// Whether the server still has `session_key` open: `Ok(true)` if it does, `Ok(false)` if it
/// answers that it does not know it (a server restarted without its state) or has ended it;
/// an error when it cannot be asked (one attempt, bounded by `timeout`).
pub(crate) async fn session_is_open(
    calls: &Calls,
    session_key: &str,
    timeout: Duration,
) -> Result<bool, Status> {
    let mut client = SessionManagementServiceClient::new(calls.channel.clone());
    let mut request = tonic::Request::new(GetSessionInfoRequest {
        session_key: session_key.to_owned(),
    });
    request.set_timeout(timeout);
    let info = client.get_session_info(request).await?.into_inner();
    Ok(info.success && !info.is_complete)
}

/// EndSession, checking `success` (rules 41–42).
pub(crate) async fn end_session(
    calls: &Calls,
    data_source: &str,
    session_key: &str,
    termination_time: prost_types::Timestamp,
) -> Result<(), PublishError> {
    let request = EndSessionRequest {
        data_source: data_source.to_owned(),
        session_key: session_key.to_owned(),
        termination_time: Some(termination_time),
    };
    let client = SessionManagementServiceClient::new(calls.channel.clone());
    let timeout = calls.call_timeout;
    let response = with_retry("EndSession", &calls.endpoint, &calls.retry, || {
        let mut request = tonic::Request::new(request.clone());
        request.set_timeout(timeout);
        let mut client = client.clone();
        async move { client.end_session(request).await }
    })
    .await?;
    if !response.success {
        return Err(PublishError::Refused { call: "EndSession" });
    }
    Ok(())
}

/// The data-format id for an ordered parameter list (rules 21–25).
pub(crate) async fn data_format_id(
    calls: &Calls,
    data_source: &str,
    parameters: &[String],
) -> Result<u64, PublishError> {
    let request = GetParameterDataFormatIdRequest {
        data_source: data_source.to_owned(),
        parameters: parameters.to_vec(),
    };
    let client = DataFormatManagerServiceClient::new(calls.channel.clone());
    let timeout = calls.call_timeout;
    let response = with_retry(
        "GetParameterDataFormatId",
        &calls.endpoint,
        &calls.retry,
        || {
            let mut request = tonic::Request::new(request.clone());
            request.set_timeout(timeout);
            let mut client = client.clone();
            async move { client.get_parameter_data_format_id(request).await }
        },
    )
    .await?;
    match response.data_format_identifier {
        0 => Err(PublishError::ZeroDataFormatId {
            parameters: parameters.len(),
        }),
        id => Ok(id),
    }
}

/// The data-format ids of several parameter lists, asked all at once: one round trip for a
/// car's formats instead of one per format, each before its first packet.
pub(crate) async fn data_format_ids(
    calls: &Calls,
    data_source: &str,
    lists: Vec<Vec<String>>,
) -> Result<Vec<(Vec<String>, u64)>, PublishError> {
    futures_util::future::try_join_all(lists.into_iter().map(|parameters| async move {
        let id = data_format_id(calls, data_source, &parameters).await?;
        Ok((parameters, id))
    }))
    .await
}

/// A fresh `config_id` (rule 17): from the Key Generator when one is configured, else a UUID.
pub(crate) async fn unique_config_id(
    key_generator: Option<&str>,
    calls: &Calls,
) -> Result<String, PublishError> {
    let Some(endpoint) = key_generator else {
        return Ok(uuid::Uuid::new_v4().to_string());
    };
    let channel = Endpoint::from_shared(endpoint.to_owned())
        .map_err(|source| PublishError::Endpoint {
            endpoint: endpoint.to_owned(),
            source,
        })?
        .connect_lazy();
    let client = UniqueKeyGeneratorServiceClient::new(channel);
    let timeout = calls.call_timeout;
    let response = with_retry("GenerateUniqueKey", endpoint, &calls.retry, || {
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

/// Calls `call` until it succeeds, retrying `UNAVAILABLE` (server starting, or restarting)
/// with jittered backoff until the policy gives up; other errors fail at once. The first
/// failure is logged at once, in one line naming `endpoint`, the cause, the retry count and
/// the time left; then one line every [`RETRY_REPORT_INTERVAL`] while it lasts.
pub(crate) async fn with_retry<T, F, Fut>(
    name: &'static str,
    endpoint: &str,
    policy: &RetryPolicy,
    mut call: F,
) -> Result<T, PublishError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, Status>>,
{
    let started = tokio::time::Instant::now();
    let mut next_report = started;
    let mut attempt = 0u32;
    loop {
        match call().await {
            Ok(response) => {
                if attempt > 0 {
                    tracing::info!("{endpoint} answered {name} after {attempt} retries");
                }
                return Ok(response.into_inner());
            }
            Err(status) if status.code() == Code::Unavailable => {
                let waited = started.elapsed();
                if policy.give_up_after.is_some_and(|limit| waited >= limit) {
                    return Err(PublishError::Rpc {
                        call: name,
                        status: Box::new(status),
                    });
                }
                let delay = policy.delay(attempt);
                attempt = attempt.saturating_add(1);
                if tokio::time::Instant::now() >= next_report {
                    next_report = tokio::time::Instant::now() + RETRY_REPORT_INTERVAL;
                    let left = match policy.give_up_after {
                        Some(limit) => {
                            format!("giving up in {} s", limit.saturating_sub(waited).as_secs())
                        }
                        None => "retrying until it answers".to_owned(),
                    };
                    tracing::warn!(
                        "cannot reach {endpoint} ({name}): {}; retry {attempt} in {:.1} s, {left}",
                        Cause(&status),
                        delay.as_secs_f64()
                    );
                }
                tokio::time::sleep(delay).await;
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

/// How often a call that keeps failing is reported again.
pub const RETRY_REPORT_INTERVAL: Duration = Duration::from_secs(10);

/// A gRPC status as one line for people: the status message, then the innermost cause when
/// the message does not already say it ("tcp connect error: Connection refused (os error
/// 111)"); never the `Debug` form of the error chain.
#[derive(Debug)]
pub struct Cause<'a>(pub &'a Status);

impl std::fmt::Display for Cause<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = self.0;
        let message = match status.message() {
            "" => status.code().description(),
            message => message,
        };
        let mut innermost = None;
        let mut source = std::error::Error::source(status);
        while let Some(error) = source {
            innermost = Some(error.to_string());
            source = error.source();
        }
        let mut line = message.to_owned();
        if let Some(cause) = innermost.filter(|cause| !message.contains(cause.as_str())) {
            line.push_str(": ");
            line.push_str(&cause);
        }
        f.write_str(&line.replace(['\n', '\r'], " "))
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
