//! The configuration file as serde reads it: `Raw*` types mirroring the TOML, unknown keys
//! rejected (`deny_unknown_fields`), defaults filled in. Nothing here judges a value; that is
//! `validate`'s job. [`parse_raw`] is the one place the TOML text is parsed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::de::DeTable;

use super::locate::{Locations, line_column};
use super::{ConfigError, ConfigErrors, FlowControl, Parity};

/// Parses `text` (read from `path`) once: every TOML syntax error at once, else the raw
/// configuration and where each of its keys is written. An unknown key or a wrong type stops
/// here and is reported alone, as serde gives up at the first.
pub(super) fn parse_raw(path: &Path, text: &str) -> Result<(RawConfig, Locations), ConfigErrors> {
    let syntax = |error: toml::de::Error| {
        let (line, column) = error
            .span()
            .map_or((1, 1), |span| line_column(text, span.start));
        ConfigError::Syntax {
            path: path.to_owned(),
            line,
            column,
            message: error.message().to_owned(),
        }
    };
    let (document, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        return Err(ConfigErrors(errors.into_iter().map(syntax).collect()));
    }
    let locations = Locations::index(text, &document);
    let raw = RawConfig::deserialize(toml::de::Deserializer::from(document)).map_err(syntax)?;
    Ok((raw, locations))
}

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) stream_api: RawStreamApi,
    pub(super) session: RawSession,
    pub(super) car: RawCar,
    #[serde(default)]
    pub(super) batch: RawBatch,
    #[serde(default, rename = "source")]
    pub(super) sources: Vec<RawSource>,
    #[serde(default)]
    pub(super) service: RawService,
    #[serde(default)]
    pub(super) spool: RawSpool,
    pub(super) laps: Option<RawLaps>,
    #[serde(default, rename = "stream")]
    pub(super) streams: Vec<RawStream>,
}

/// One `[[stream]]`: a data stream and what goes to it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStream {
    pub(super) name: String,
    #[serde(default)]
    pub(super) messages: Vec<String>,
    #[serde(default)]
    pub(super) sources: Vec<String>,
}

/// `[laps]`: the parameter that marks laps; exactly one key.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLaps {
    pub(super) counter: Option<String>,
    pub(super) beacon: Option<String>,
    pub(super) lap_time: Option<String>,
}

/// `[spool]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSpool {
    pub(super) dir: Option<std::path::PathBuf>,
    pub(super) max_bytes: Option<u64>,
    pub(super) max_age_s: Option<u64>,
    pub(super) sync_interval_ms: Option<u64>,
}

/// `[service]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawService {
    pub(super) metrics_listen: Option<std::net::SocketAddr>,
    #[serde(default = "default_stop_timeout_ms")]
    pub(super) stop_timeout_ms: u64,
    #[serde(default = "default_health_grace_ms")]
    pub(super) health_grace_ms: u64,
    #[serde(default = "default_summary_interval_s")]
    pub(super) summary_interval_s: u64,
}

impl Default for RawService {
    fn default() -> Self {
        Self {
            metrics_listen: None,
            stop_timeout_ms: default_stop_timeout_ms(),
            health_grace_ms: default_health_grace_ms(),
            summary_interval_s: default_summary_interval_s(),
        }
    }
}

/// One `[[source]]`. Unknown keys are rejected by the tagged kind (serde cannot deny them
/// across `flatten`).
#[derive(Debug, Deserialize)]
pub(super) struct RawSource {
    pub(super) name: String,
    #[serde(default)]
    pub(super) definition: Option<String>,
    /// `slcan`, `native` or `tunerstudio`; inferred from `definition` when absent.
    #[serde(default)]
    pub(super) protocol: Option<RawProtocol>,
    /// TunerStudio only: which `[car] ini` file describes this ECU.
    #[serde(default)]
    pub(super) ini: Option<String>,
    #[serde(default)]
    pub(super) poll_hz: Option<f64>,
    #[serde(default)]
    pub(super) can_id: Option<u8>,
    #[serde(default)]
    pub(super) reply_timeout_ms: Option<u64>,
    #[serde(default)]
    pub(super) open_delay_ms: Option<u64>,
    #[serde(flatten)]
    pub(super) kind: RawSourceKind,
}

/// A byte-stream source's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawProtocol {
    Slcan,
    Native,
    Tunerstudio,
}

/// A `[[source]]`'s `kind` and the keys that kind takes.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub(super) enum RawSourceKind {
    Udp {
        bind: std::net::SocketAddr,
        #[serde(default = "default_receive_buffer")]
        receive_buffer_bytes: usize,
        multicast_group: Option<std::net::IpAddr>,
        multicast_interface: Option<String>,
        #[serde(default = "default_max_datagram")]
        max_datagram_bytes: usize,
    },
    Serial {
        device: PathBuf,
        #[serde(default = "default_baud")]
        baud: u32,
        #[serde(default = "default_data_bits")]
        data_bits: u8,
        #[serde(default = "default_parity")]
        parity: Parity,
        #[serde(default = "default_stop_bits")]
        stop_bits: u8,
        #[serde(default = "default_flow_control")]
        flow_control: FlowControl,
        can_bitrate: Option<u32>,
        #[serde(default = "default_true")]
        listen_only: bool,
        #[serde(default = "default_true")]
        timestamps: bool,
        #[serde(default = "default_reconnect_initial_ms")]
        reconnect_initial_ms: u64,
        #[serde(default = "default_reconnect_max_ms")]
        reconnect_max_ms: u64,
    },
    Tcp {
        address: String,
        can_bitrate: Option<u32>,
        #[serde(default = "default_true")]
        listen_only: bool,
        #[serde(default = "default_true")]
        timestamps: bool,
        #[serde(default = "default_reconnect_initial_ms")]
        reconnect_initial_ms: u64,
        #[serde(default = "default_reconnect_max_ms")]
        reconnect_max_ms: u64,
    },
}

/// `[stream_api]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStreamApi {
    pub(super) endpoint: String,
    pub(super) key_generator: Option<String>,
    pub(super) record: Option<PathBuf>,
    #[serde(default)]
    pub(super) strict: bool,
    #[serde(default = "default_call_timeout_ms")]
    pub(super) call_timeout_ms: u64,
    #[serde(default = "default_drain_timeout_ms")]
    pub(super) drain_timeout_ms: u64,
    #[serde(default = "default_server_version")]
    pub(super) server_version: String,
}

fn default_server_version() -> String {
    "1.3".to_owned()
}

/// `[session]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSession {
    pub(super) data_source: String,
    #[serde(default = "default_identifier")]
    pub(super) identifier: String,
    #[serde(default, rename = "type")]
    pub(super) session_type: String,
    #[serde(default)]
    pub(super) utc_offset_minutes: i64,
    #[serde(default)]
    pub(super) details: BTreeMap<String, String>,
    #[serde(default = "default_idle_end_s")]
    pub(super) idle_end_s: u64,
    #[serde(default)]
    pub(super) in_lap: bool,
}

/// `[car]` with its `rename`, `override` and `compound_can` tables.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCar {
    pub(super) application: String,
    #[serde(default)]
    pub(super) profile: Vec<String>,
    #[serde(default)]
    pub(super) dbc: Vec<PathBuf>,
    #[serde(default)]
    pub(super) definitions: Vec<PathBuf>,
    #[serde(default)]
    pub(super) ini: Vec<PathBuf>,
    #[serde(default)]
    pub(super) ini_settings: Vec<String>,
    #[serde(default)]
    pub(super) compound_can: BTreeMap<String, u32>,
    #[serde(default = "default_stream")]
    pub(super) stream: String,
    #[serde(default)]
    pub(super) include: Vec<String>,
    #[serde(default)]
    pub(super) exclude: Vec<String>,
    #[serde(default)]
    pub(super) rename: BTreeMap<String, String>,
    #[serde(default, rename = "override")]
    pub(super) overrides: BTreeMap<String, RawOverride>,
}

/// One `[car.override."Message.Signal"]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOverride {
    pub(super) unit: Option<String>,
    pub(super) min: Option<f64>,
    pub(super) max: Option<f64>,
    pub(super) description: Option<String>,
}

/// `[batch]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBatch {
    #[serde(default = "default_max_age_ms")]
    pub(super) max_age_ms: u64,
    #[serde(default = "default_max_packet_bytes")]
    pub(super) max_packet_bytes: usize,
    #[serde(default = "default_channel_capacity")]
    pub(super) channel_capacity: usize,
}

impl Default for RawBatch {
    fn default() -> Self {
        Self {
            max_age_ms: default_max_age_ms(),
            max_packet_bytes: default_max_packet_bytes(),
            channel_capacity: default_channel_capacity(),
        }
    }
}

fn default_stop_timeout_ms() -> u64 {
    15_000
}
fn default_health_grace_ms() -> u64 {
    u64::try_from(crate::service::health::DEFAULT_HEALTH_GRACE.as_millis()).unwrap_or(u64::MAX)
}
fn default_summary_interval_s() -> u64 {
    60
}
fn default_receive_buffer() -> usize {
    8 * 1024 * 1024
}
fn default_max_datagram() -> usize {
    65_535
}
fn default_baud() -> u32 {
    115_200
}
fn default_data_bits() -> u8 {
    8
}
fn default_parity() -> Parity {
    Parity::None
}
fn default_stop_bits() -> u8 {
    1
}
fn default_flow_control() -> FlowControl {
    FlowControl::None
}
fn default_true() -> bool {
    true
}
fn default_reconnect_initial_ms() -> u64 {
    250
}
fn default_reconnect_max_ms() -> u64 {
    5_000
}
fn default_call_timeout_ms() -> u64 {
    10_000
}
fn default_drain_timeout_ms() -> u64 {
    2_000
}
fn default_identifier() -> String {
    "{data_source} {date} {time}".to_owned()
}
fn default_idle_end_s() -> u64 {
    30
}
fn default_stream() -> String {
    "can".to_owned()
}
fn default_max_age_ms() -> u64 {
    100
}
fn default_max_packet_bytes() -> usize {
    256 * 1024
}
fn default_channel_capacity() -> usize {
    64
}
