//! The bridge's configuration file (one per car): TOML parsed into `RawConfig` (serde, unknown
//! keys rejected), then validated into [`Config`]. Errors name the file, line, column and key.
//! The format is documented in `docs/configuration.md`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use decoders::CanId;
use decoders::channel_map::{ChannelMap, ChannelMapError, DefinitionUse, Override, Selection};
use decoders::dbc::{DbcError, DbcSource, DbcWarning, parse_dbc_set};
use decoders::frame::{DefinitionError, FrameDefinition, StreamFramer};
use serde::Deserialize;

/// A validated bridge configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from; relative paths inside it are relative to its folder.
    pub path: PathBuf,
    /// Its text, to locate keys in later problems (DBC references, renames).
    text: String,
    /// Where packets go.
    pub stream_api: StreamApiTarget,
    /// Key Generator URL for configuration ids; a local UUID is used when absent.
    pub key_generator: Option<String>,
    /// Deadline of session and data-format calls.
    pub call_timeout: Duration,
    /// How long to wait at the end for the server to take the last writes.
    pub drain_timeout: Duration,
    /// The session's identity.
    pub session: SessionConfig,
    /// The car's channel map.
    pub car: CarConfig,
    /// The batching stage's flush policy.
    pub batch: BatchConfig,
    /// Live sources (`ecu-bridge run` and `record`); replay ignores them.
    pub sources: Vec<SourceConfig>,
    /// How the daemon runs as a service.
    pub service: ServiceConfig,
}

/// Service settings: metrics endpoint and shutdown deadline.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceConfig {
    /// Where to serve Prometheus `/metrics` and `/health`; off when absent.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// After SIGTERM/SIGINT, the drain (flush, EndOfSession, EndSession) must finish within
    /// this, or the process exits non-zero.
    pub stop_timeout: Duration,
}

/// One live source.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceConfig {
    /// Unique name: metrics label, capture file name.
    pub name: String,
    /// What it reads.
    pub kind: SourceKind,
    /// The frame definition (by name, from `[car] definitions`) whose native frames this
    /// source carries; `None` for CAN (cannelloni over UDP, SLCAN over serial).
    pub definition: Option<String>,
}

/// The kinds of live source.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceKind {
    /// Datagrams on a UDP socket.
    Udp(UdpSourceConfig),
    /// A serial device.
    Serial(SerialSourceConfig),
}

/// A UDP socket carrying CAN frames.
#[derive(Debug, Clone, PartialEq)]
pub struct UdpSourceConfig {
    /// Local address to bind (use the group's port for multicast).
    pub bind: std::net::SocketAddr,
    /// Requested `SO_RCVBUF` in bytes; the kernel may grant less (logged).
    pub receive_buffer_bytes: usize,
    /// Multicast group to join, and the interface to join it on.
    pub multicast: Option<Multicast>,
    /// Largest datagram expected; larger ones are counted as truncated.
    pub max_datagram_bytes: usize,
}

/// A multicast membership.
#[derive(Debug, Clone, PartialEq)]
pub struct Multicast {
    /// The group (IPv4 or IPv6, same family as `bind`).
    pub group: std::net::IpAddr,
    /// Interface name (`eth0`) or, for IPv4, a local address; the system's choice when absent.
    pub interface: Option<String>,
}

/// A serial device carrying SLCAN, or native frames of a definition.
#[derive(Debug, Clone, PartialEq)]
pub struct SerialSourceConfig {
    /// Device path; stable `/dev/serial/by-id/...` names are recommended.
    pub device: PathBuf,
    /// Line speed.
    pub baud: u32,
    /// 5, 6, 7 or 8.
    pub data_bits: u8,
    /// Parity.
    pub parity: Parity,
    /// 1 or 2.
    pub stop_bits: u8,
    /// Flow control.
    pub flow_control: FlowControl,
    /// SLCAN adapter set-up; `None` when the device streams native frames.
    pub slcan: Option<SlcanSetup>,
    /// First retry delay after the device disappears; doubles up to `reconnect_max`.
    pub reconnect_initial: Duration,
    /// Longest delay between retries.
    pub reconnect_max: Duration,
}

/// Serial parity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Parity {
    /// No parity bit.
    None,
    /// Odd parity.
    Odd,
    /// Even parity.
    Even,
}

/// Serial flow control.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowControl {
    /// None.
    None,
    /// XON/XOFF.
    Software,
    /// RTS/CTS.
    Hardware,
}

/// How an SLCAN adapter is initialised: close, set bitrate, timestamps, open.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlcanSetup {
    /// CAN bitrate in bit/s (10 k … 1 M, one of the `S0`…`S8` rates).
    pub bitrate: u32,
    /// Open listen-only (`L`, never acknowledges frames) instead of normal (`O`).
    pub listen_only: bool,
    /// Ask for millisecond timestamps (`Z1`).
    pub timestamps: bool,
}

/// Where the Stream API is.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamApiTarget {
    /// Start `ecu-bridge stream-api` in-process on 127.0.0.1 (quick start, map testing).
    Embedded {
        /// Record everything it receives to this file (a temporary file when absent).
        record: Option<PathBuf>,
        /// Reject protocol violations instead of only counting them.
        strict: bool,
    },
    /// A running Stream API at this URL (`http://host:13579`).
    Remote(String),
}

/// Session identity (producer rules §2.1).
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Data source: Kafka topic root; must match the ATLAS recorder's.
    pub data_source: String,
    /// Identifier template: `{data_source}`, `{date}` (UTC, YYYY-MM-DD), `{time}` (UTC, HH:MM:SS).
    pub identifier: String,
    /// Session type ("Session" when empty, as the server does).
    pub session_type: String,
    /// Seconds east of Greenwich of the recording location.
    pub utc_offset_seconds: i64,
    /// Session details.
    pub details: BTreeMap<String, String>,
}

/// The car: DBC files and frame definitions, which signals and fields to publish, and as what.
#[derive(Debug, Clone)]
pub struct CarConfig {
    /// DBC files (resolved paths), loaded as one set in this order.
    pub dbc: Vec<PathBuf>,
    /// Frame definition files (resolved paths).
    pub definitions: Vec<PathBuf>,
    /// Definitions carried as compound messages on a CAN id: (definition name, id).
    pub compound_can: Vec<(String, CanId)>,
    /// The data stream CAN samples are written to.
    pub stream: String,
    /// Selection and presentation of signals.
    pub selection: Selection,
}

/// When the batching stage flushes a packet.
#[derive(Debug, Clone, Copy)]
pub struct BatchConfig {
    /// A packet is sent at the latest this long after its first row arrived.
    pub max_age: Duration,
    /// A packet is sent once its encoded size would pass this (well under 1 MB: rule 52).
    pub max_packet_bytes: usize,
    /// Capacity, in batches, of each channel between stages.
    pub channel_capacity: usize,
}

/// A configuration problem, located.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// TOML syntax, unknown keys or wrong types.
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What serde/toml said.
        message: String,
    },
    /// A value that parses but is not acceptable.
    #[error("{path}:{line}:{column}: [{key}] {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line of the key (of its table when the key is missing).
        line: usize,
        /// 1-based column.
        column: usize,
        /// The key, dotted (`source[1].can_bitrate`).
        key: String,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// A DBC file failed to parse.
    #[error("{0}")]
    Dbc(#[from] DbcError),
    /// A frame definition file failed to load.
    #[error("{0}")]
    Definition(#[from] DefinitionError),
    /// The channel map does not fit the DBCs.
    #[error("{path}:{line}:{column}: [car] {source}")]
    ChannelMap {
        /// The configuration file.
        path: PathBuf,
        /// 1-based line of the offending key (of `[car]` otherwise).
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        source: ChannelMapError,
    },
}

/// Every problem found in a configuration, in file order where known.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        write!(f, "{}", lines.join("\n"))
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(error: ConfigError) -> Self {
        Self(vec![error])
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    stream_api: RawStreamApi,
    session: RawSession,
    car: RawCar,
    #[serde(default)]
    batch: RawBatch,
    #[serde(default, rename = "source")]
    sources: Vec<RawSource>,
    #[serde(default)]
    service: RawService,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    metrics_listen: Option<std::net::SocketAddr>,
    #[serde(default = "default_stop_timeout_ms")]
    stop_timeout_ms: u64,
}

impl Default for RawService {
    fn default() -> Self {
        Self {
            metrics_listen: None,
            stop_timeout_ms: default_stop_timeout_ms(),
        }
    }
}

/// Unknown keys are rejected by the tagged kind (serde cannot deny them across `flatten`).
#[derive(Debug, Deserialize)]
struct RawSource {
    name: String,
    #[serde(default)]
    definition: Option<String>,
    #[serde(flatten)]
    kind: RawSourceKind,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
enum RawSourceKind {
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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStreamApi {
    endpoint: String,
    key_generator: Option<String>,
    record: Option<PathBuf>,
    #[serde(default)]
    strict: bool,
    #[serde(default = "default_call_timeout_ms")]
    call_timeout_ms: u64,
    #[serde(default = "default_drain_timeout_ms")]
    drain_timeout_ms: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSession {
    data_source: String,
    #[serde(default = "default_identifier")]
    identifier: String,
    #[serde(default, rename = "type")]
    session_type: String,
    #[serde(default)]
    utc_offset_minutes: i64,
    #[serde(default)]
    details: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCar {
    application: String,
    #[serde(default)]
    dbc: Vec<PathBuf>,
    #[serde(default)]
    definitions: Vec<PathBuf>,
    #[serde(default)]
    compound_can: BTreeMap<String, u32>,
    #[serde(default = "default_stream")]
    stream: String,
    #[serde(default)]
    include: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    rename: BTreeMap<String, String>,
    #[serde(default, rename = "override")]
    overrides: BTreeMap<String, RawOverride>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOverride {
    unit: Option<String>,
    min: Option<f64>,
    max: Option<f64>,
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBatch {
    #[serde(default = "default_max_age_ms")]
    max_age_ms: u64,
    #[serde(default = "default_max_packet_bytes")]
    max_packet_bytes: usize,
    #[serde(default = "default_channel_capacity")]
    channel_capacity: usize,
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

/// Largest packet the batcher may build: the v1.3 server silently drops packets over 1 MB.
const PACKET_LIMIT: usize = 900_000;

impl Config {
    /// Reads and validates the configuration at `path`, reporting every problem found.
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Validates configuration `text` as if read from `path`. A TOML syntax error, an unknown
    /// key or a wrong type stops parsing and is reported alone; every problem with the values
    /// is collected and reported together, each with its line, column and key.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigErrors> {
        let raw: RawConfig = toml::from_str(text).map_err(|error| {
            let (line, column) = error
                .span()
                .map_or((1, 1), |span| line_column(text, span.start));
            ConfigError::Syntax {
                path: path.to_owned(),
                line,
                column,
                message: error.message().to_owned(),
            }
        })?;
        let mut problems = Problems::default();
        let config = Self::validated(path, text, raw, &mut problems);
        problems.into_result(path, text, config)
    }

    /// Everything `ecu-bridge validate` checks, reported together: the values, then the DBC
    /// files and the channel map (which are checked even when a value was wrong).
    pub fn validate_file(path: &Path) -> Result<(Self, ChannelMap, Vec<DbcWarning>), ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let raw: RawConfig = match toml::from_str(&text) {
            Ok(raw) => raw,
            Err(_) => {
                return Err(Self::parse(path, &text)
                    .err()
                    .unwrap_or(ConfigErrors(Vec::new())));
            }
        };
        let mut problems = Problems::default();
        let config = Self::validated(path, &text, raw, &mut problems);
        let values = problems.into_result(path, &text, ());
        let map = config.load_channel_map();
        match (values, map) {
            (Ok(()), Ok((map, warnings))) => Ok((config, map, warnings)),
            (values, map) => {
                let mut errors = values.err().map(|e| e.0).unwrap_or_default();
                errors.extend(map.err().map(|e| e.0).unwrap_or_default());
                Err(ConfigErrors(errors))
            }
        }
    }

    fn validated(path: &Path, text: &str, raw: RawConfig, problems: &mut Problems) -> Self {
        let base = path.parent().unwrap_or(Path::new("."));
        let stream_api = match raw.stream_api.endpoint.as_str() {
            "embedded" => StreamApiTarget::Embedded {
                record: raw.stream_api.record.map(|p| base.join(p)),
                strict: raw.stream_api.strict,
            },
            url if url.starts_with("http://") => StreamApiTarget::Remote(url.to_owned()),
            other => {
                problems.add(
                    "stream_api.endpoint",
                    format!("{other:?} is neither \"embedded\" nor an http://host:port URL (the Stream API speaks h2c)"),
                );
                StreamApiTarget::Remote(other.to_owned())
            }
        };
        problems.check(
            "session.data_source",
            check_name(&raw.session.data_source, false),
        );
        problems.check("car.stream", check_name(&raw.car.stream, true));
        if raw.session.identifier.trim().is_empty() {
            problems.add("session.identifier", "must not be empty (rule 8)".into());
        }
        if raw.session.utc_offset_minutes.abs() > 14 * 60 {
            problems.add("session.utc_offset_minutes", "must be within ±840".into());
        }
        if raw.car.dbc.is_empty() && raw.car.definitions.is_empty() {
            problems.add(
                "car.dbc",
                "list at least one DBC file or frame definition (definitions = [...])".into(),
            );
        }
        let compound_can = raw
            .car
            .compound_can
            .iter()
            .filter_map(|(name, &id)| {
                let can_id = if id <= CanId::MAX_STANDARD {
                    CanId::standard(id)
                } else {
                    CanId::extended(id)
                };
                if can_id.is_none() {
                    let key = format!("car.compound_can.{name}");
                    problems.add(&key, format!("{id:#X} is not a CAN id (29 bits at most)"));
                }
                can_id.map(|can_id| (name.clone(), can_id))
            })
            .collect();
        if !(1..=PACKET_LIMIT).contains(&raw.batch.max_packet_bytes) {
            problems.add(
                "batch.max_packet_bytes",
                format!("must be 1..={PACKET_LIMIT}"),
            );
        }
        if raw.batch.max_age_ms == 0 {
            problems.add("batch.max_age_ms", "must be positive".into());
        }
        if raw.batch.channel_capacity == 0 {
            problems.add("batch.channel_capacity", "must be positive".into());
        }
        let sources = sources(raw.sources, problems);
        if raw.service.stop_timeout_ms == 0 {
            problems.add("service.stop_timeout_ms", "must be positive".into());
        }
        Self {
            path: path.to_owned(),
            text: text.to_owned(),
            sources,
            service: ServiceConfig {
                metrics_listen: raw.service.metrics_listen,
                stop_timeout: Duration::from_millis(raw.service.stop_timeout_ms),
            },
            stream_api,
            key_generator: raw.stream_api.key_generator,
            call_timeout: Duration::from_millis(raw.stream_api.call_timeout_ms),
            drain_timeout: Duration::from_millis(raw.stream_api.drain_timeout_ms),
            session: SessionConfig {
                data_source: raw.session.data_source,
                identifier: raw.session.identifier,
                session_type: raw.session.session_type,
                utc_offset_seconds: raw.session.utc_offset_minutes * 60,
                details: raw.session.details,
            },
            car: CarConfig {
                dbc: raw.car.dbc.iter().map(|p| base.join(p)).collect(),
                definitions: raw.car.definitions.iter().map(|p| base.join(p)).collect(),
                compound_can,
                stream: raw.car.stream,
                selection: selection(
                    raw.car.application,
                    raw.car.include,
                    raw.car.exclude,
                    raw.car.rename,
                    raw.car.overrides,
                ),
            },
            batch: BatchConfig {
                max_age: Duration::from_millis(raw.batch.max_age_ms),
                max_packet_bytes: raw.batch.max_packet_bytes,
                channel_capacity: raw.batch.channel_capacity,
            },
        }
    }

    /// Loads the car's DBC files (imports first) and compiles the channel map, reporting every
    /// unreadable or malformed DBC, and every rename or override naming no signal, at once.
    pub fn load_channel_map(&self) -> Result<(ChannelMap, Vec<DbcWarning>), ConfigErrors> {
        let mut files: Vec<(String, String)> = Vec::new();
        let mut errors = Vec::new();
        for path in &self.car.dbc {
            if let Err(error) = load_with_imports(path, &mut files, 0) {
                errors.push(error);
            }
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        let sources: Vec<DbcSource<'_>> = files
            .iter()
            .map(|(name, text)| DbcSource { name, text })
            .collect();
        let parsed = parse_dbc_set(&sources).map_err(ConfigError::from)?;
        let definitions = self.load_definitions()?;
        let uses: Vec<DefinitionUse<'_>> = definitions
            .iter()
            .map(|definition| DefinitionUse {
                definition,
                can_id: self
                    .car
                    .compound_can
                    .iter()
                    .find(|(name, _)| *name == definition.name)
                    .map(|(_, id)| *id),
            })
            .collect();
        let selection = &self.car.selection;
        let keys = selection
            .renames
            .iter()
            .map(|(key, _)| ("rename", key))
            .chain(selection.overrides.iter().map(|(key, _)| ("override", key)));
        for (section, key) in keys {
            let single = Selection {
                application: selection.application.clone(),
                renames: vec![(key.clone(), "probe".into())],
                ..Selection::default()
            };
            if let Err(source @ ChannelMapError::UnknownSignal { .. }) =
                ChannelMap::compile_with(&parsed.dbc, &uses, &single)
            {
                errors.push(self.map_error(&format!("car.{section}.{key}"), source));
            }
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        let map = ChannelMap::compile_with(&parsed.dbc, &uses, selection)
            .map_err(|source| self.map_error("car.application", source))?;
        Ok((map, parsed.warnings))
    }

    /// Reads and validates every frame definition, checks that the names sources and
    /// `compound_can` use exist, and that serial sources' definitions can cut a byte stream.
    fn load_definitions(&self) -> Result<Vec<FrameDefinition>, ConfigErrors> {
        let mut errors = Vec::new();
        let mut definitions = Vec::new();
        for path in &self.car.definitions {
            let loaded = std::fs::read_to_string(path)
                .map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })
                .and_then(|text| {
                    let name = path.display().to_string();
                    Ok(FrameDefinition::parse(&name, &text)?)
                });
            match loaded {
                Ok(definition) => definitions.push(definition),
                Err(error) => errors.push(error),
            }
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        let known: Vec<&str> = definitions.iter().map(|d| d.name.as_str()).collect();
        let mut problems = Problems::default();
        for (index, source) in self.sources.iter().enumerate() {
            let Some(name) = &source.definition else {
                continue;
            };
            let key = format!("source[{index}].definition");
            match definitions.iter().find(|d| d.name == *name) {
                None => problems.add(&key, unknown_definition(name, &known)),
                Some(definition) => {
                    if let (SourceKind::Serial(_), Err(error)) =
                        (&source.kind, StreamFramer::new(&definition.framing))
                    {
                        problems.add(
                            &key,
                            format!("{name:?} cannot be read from a serial line: {error}"),
                        );
                    }
                }
            }
        }
        for (name, _) in &self.car.compound_can {
            if !known.contains(&name.as_str()) {
                problems.add(
                    &format!("car.compound_can.{name}"),
                    unknown_definition(name, &known),
                );
            }
        }
        problems.into_result(&self.path, &self.text, definitions)
    }

    fn map_error(&self, key: &str, source: ChannelMapError) -> ConfigError {
        let (line, column) = locate(&self.text, key);
        ConfigError::ChannelMap {
            path: self.path.clone(),
            line,
            column,
            source,
        }
    }

    /// The session identifier with its template filled in for `unix_seconds` (UTC).
    pub fn session_identifier(&self, unix_seconds: u64) -> String {
        let (date, time) = utc_date_time(unix_seconds);
        self.session
            .identifier
            .replace("{data_source}", &self.session.data_source)
            .replace("{date}", &date)
            .replace("{time}", &time)
    }
}

/// SLCAN's `S0`…`S8` bitrates.
const SLCAN_BITRATES: [u32; 9] = [
    10_000, 20_000, 50_000, 100_000, 125_000, 250_000, 500_000, 800_000, 1_000_000,
];

fn sources(raw: Vec<RawSource>, problems: &mut Problems) -> Vec<SourceConfig> {
    let mut seen = std::collections::BTreeSet::new();
    raw.into_iter()
        .enumerate()
        .filter_map(|(index, source)| {
            let result = source_config(source, &mut seen);
            result
                .map_err(|(key, message)| problems.add(&format!("source[{index}].{key}"), message))
                .ok()
        })
        .collect()
}

fn unknown_definition(name: &str, known: &[&str]) -> String {
    format!(
        "{name:?} is not the name of a frame definition in [car] definitions (loaded: {known:?})"
    )
}

fn source_config(
    source: RawSource,
    seen: &mut std::collections::BTreeSet<String>,
) -> Result<SourceConfig, (&'static str, String)> {
    {
        {
            check_name(&source.name, true).map_err(|m| ("name", m))?;
            if !seen.insert(source.name.clone()) {
                return Err(("name", format!("{:?} is used twice", source.name)));
            }
            let kind = match source.kind {
                RawSourceKind::Udp {
                    bind,
                    receive_buffer_bytes,
                    multicast_group,
                    multicast_interface,
                    max_datagram_bytes,
                } => {
                    if let Some(group) = multicast_group
                        && (!group.is_multicast() || group.is_ipv4() != bind.is_ipv4())
                    {
                        return Err((
                            "multicast_group",
                            format!(
                                "{group} is not a multicast group of the bind address's family"
                            ),
                        ));
                    }
                    if multicast_group.is_none() && multicast_interface.is_some() {
                        return Err(("multicast_interface", "needs multicast_group".into()));
                    }
                    if !(1..=65_535).contains(&max_datagram_bytes) || receive_buffer_bytes == 0 {
                        return Err((
                            "max_datagram_bytes",
                            "must be 1..=65535, and the buffer positive".into(),
                        ));
                    }
                    SourceKind::Udp(UdpSourceConfig {
                        bind,
                        receive_buffer_bytes,
                        multicast: multicast_group.map(|group| Multicast {
                            group,
                            interface: multicast_interface,
                        }),
                        max_datagram_bytes,
                    })
                }
                RawSourceKind::Serial {
                    device,
                    baud,
                    data_bits,
                    parity,
                    stop_bits,
                    flow_control,
                    can_bitrate,
                    listen_only,
                    timestamps,
                    reconnect_initial_ms,
                    reconnect_max_ms,
                } => {
                    if !(5..=8).contains(&data_bits) || !(1..=2).contains(&stop_bits) || baud == 0 {
                        return Err(("data_bits", "data_bits 5-8, stop_bits 1-2, baud > 0".into()));
                    }
                    let slcan = match (can_bitrate, &source.definition) {
                        (Some(_), Some(_)) => {
                            return Err((
                                "can_bitrate",
                                "applies to SLCAN adapters only; this source carries frames of its definition".into(),
                            ));
                        }
                        (None, None) => {
                            return Err((
                                "can_bitrate",
                                "is required for an SLCAN adapter (or give the source a definition)".into(),
                            ));
                        }
                        (Some(bitrate), None) if !SLCAN_BITRATES.contains(&bitrate) => {
                            return Err((
                                "can_bitrate",
                                format!("{bitrate} is not one of {SLCAN_BITRATES:?}"),
                            ));
                        }
                        (Some(bitrate), None) => Some(SlcanSetup {
                            bitrate,
                            listen_only,
                            timestamps,
                        }),
                        (None, Some(_)) => None,
                    };
                    if reconnect_initial_ms == 0 || reconnect_max_ms < reconnect_initial_ms {
                        return Err((
                            "reconnect_initial_ms",
                            "must be positive and ≤ reconnect_max_ms".into(),
                        ));
                    }
                    SourceKind::Serial(SerialSourceConfig {
                        device,
                        baud,
                        data_bits,
                        parity,
                        stop_bits,
                        flow_control,
                        slcan,
                        reconnect_initial: Duration::from_millis(reconnect_initial_ms),
                        reconnect_max: Duration::from_millis(reconnect_max_ms),
                    })
                }
            };
            Ok(SourceConfig {
                name: source.name,
                kind,
                definition: source.definition,
            })
        }
    }
}

/// Value problems collected while validating, each with its dotted key.
#[derive(Debug, Default)]
struct Problems(Vec<(String, String)>);

impl Problems {
    fn add(&mut self, key: &str, message: String) {
        self.0.push((key.to_owned(), message));
    }

    fn check(&mut self, key: &str, result: Result<(), String>) {
        if let Err(message) = result {
            self.add(key, message);
        }
    }

    /// `value` if nothing was wrong, else every problem located in `text`, in file order.
    fn into_result<T>(self, path: &Path, text: &str, value: T) -> Result<T, ConfigErrors> {
        if self.0.is_empty() {
            return Ok(value);
        }
        let mut located: Vec<(usize, usize, ConfigError)> = self
            .0
            .into_iter()
            .map(|(key, message)| {
                let (line, column) = locate(text, &key);
                let error = ConfigError::Invalid {
                    path: path.to_owned(),
                    line,
                    column,
                    key,
                    message,
                };
                (line, column, error)
            })
            .collect();
        located.sort_by_key(|(line, column, _)| (*line, *column));
        Err(ConfigErrors(
            located.into_iter().map(|(_, _, error)| error).collect(),
        ))
    }
}

/// Where dotted `key` (`session.data_source`, `source[1].can_bitrate`,
/// `car.rename.ENGINE.RPM`) is written in `text`: the key's own line and column, else its
/// table's header, else the top of the file.
fn locate(text: &str, key: &str) -> (usize, usize) {
    let (table, leaf) = split_key(key);
    let mut current = String::new();
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut table_line = None;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(name) = trimmed
            .strip_prefix("[[")
            .and_then(|t| t.split("]]").next())
        {
            let count = seen.entry(name.trim().to_owned()).or_insert(0);
            current = format!("{}[{}]", name.trim(), *count);
            *count += 1;
        } else if let Some(name) = trimmed.strip_prefix('[').and_then(|t| t.split(']').next()) {
            current = name.trim().to_owned();
        } else if current == table {
            let quoted = format!("\"{leaf}\"");
            let rest = trimmed
                .strip_prefix(quoted.as_str())
                .or_else(|| trimmed.strip_prefix(leaf.as_str()));
            if rest.is_some_and(|rest| rest.trim_start().starts_with('=')) {
                return (index + 1, line.len() - trimmed.len() + 1);
            }
            continue;
        } else {
            continue;
        }
        if current == table && table_line.is_none() {
            table_line = Some((index + 1, 1));
        }
    }
    table_line.unwrap_or((1, 1))
}

/// `source[1].can_bitrate` → (`source[1]`, `can_bitrate`); `car.rename.ENGINE.RPM` →
/// (`car.rename`, `ENGINE.RPM`); `session.data_source` → (`session`, `data_source`).
fn split_key(key: &str) -> (String, String) {
    for prefix in ["car.rename.", "car.override.", "car.compound_can."] {
        if let Some(leaf) = key.strip_prefix(prefix) {
            let table = prefix.trim_end_matches('.');
            if prefix == "car.override." {
                return (format!("{table}.\"{leaf}\""), String::new());
            }
            return (table.to_owned(), leaf.to_owned());
        }
    }
    match key.split_once('.') {
        Some((table, leaf)) => (table.to_owned(), leaf.to_owned()),
        None => (key.to_owned(), String::new()),
    }
}

fn selection(
    application: String,
    include: Vec<String>,
    exclude: Vec<String>,
    rename: BTreeMap<String, String>,
    overrides: BTreeMap<String, RawOverride>,
) -> Selection {
    Selection {
        application,
        include,
        exclude,
        renames: rename.into_iter().collect(),
        overrides: overrides
            .into_iter()
            .map(|(key, o)| {
                let o = Override {
                    unit: o.unit,
                    min: o.min,
                    max: o.max,
                    description: o.description,
                };
                (key, o)
            })
            .collect(),
    }
}

/// Imports nest at most this deep (opendbc stubs import one level).
const MAX_IMPORT_DEPTH: usize = 4;

fn load_with_imports(
    path: &Path,
    files: &mut Vec<(String, String)>,
    depth: usize,
) -> Result<(), ConfigError> {
    let name = path.display().to_string();
    if files.iter().any(|(loaded, _)| *loaded == name) || depth > MAX_IMPORT_DEPTH {
        return Ok(());
    }
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let parsed = decoders::dbc::parse_dbc(&name, &text)?;
    let base = path.parent().unwrap_or(Path::new("."));
    for import in &parsed.imports {
        load_with_imports(&base.join(import), files, depth + 1)?;
    }
    files.push((name, text));
    Ok(())
}

/// Data source and stream names become Kafka topic names (rule 61).
fn check_name(name: &str, is_stream: bool) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty (the main stream is implicit)".into());
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!("{name:?} contains {bad:?}; use A-Z a-z 0-9 . _ -"));
    }
    if is_stream && name.contains('.') {
        return Err(format!("{name:?}: stream names must not contain '.'"));
    }
    if !is_stream && (name.ends_with("_essential") || name == "Info") {
        return Err(format!("{name:?} is reserved by the Stream API"));
    }
    Ok(())
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

/// `YYYY-MM-DD` and `HH:MM:SS` in UTC for a UNIX time (proleptic Gregorian calendar).
pub fn utc_date_time(unix_seconds: u64) -> (String, String) {
    let days = (unix_seconds / 86_400) as i64;
    let seconds = unix_seconds % 86_400;
    // Days since 1970-01-01 to a civil date, counting in 400-year eras from 0000-03-01.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (
        format!("{year:04}-{month:02}-{day:02}"),
        format!(
            "{:02}:{:02}:{:02}",
            seconds / 3600,
            seconds / 60 % 60,
            seconds % 60
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[stream_api]
endpoint = "embedded"

[session]
data_source = "DemoCar"

[car]
application = "Demo"
dbc = ["car.dbc"]
"#;

    #[test]
    fn minimal_config_gets_defaults() {
        let config = Config::parse(Path::new("cars/demo.toml"), MINIMAL).expect("valid");
        assert_eq!(config.car.dbc, vec![PathBuf::from("cars/car.dbc")]);
        assert_eq!(config.car.stream, "can");
        assert_eq!(config.batch.max_age, Duration::from_millis(100));
        assert_eq!(config.call_timeout, Duration::from_secs(10));
        assert_eq!(
            config.stream_api,
            StreamApiTarget::Embedded {
                record: None,
                strict: false
            }
        );
        assert_eq!(
            config.session_identifier(1_700_000_000),
            "DemoCar 2023-11-14 22:13:20"
        );
    }

    #[test]
    fn unknown_keys_are_located() {
        let text = MINIMAL.replace(
            "application = \"Demo\"",
            "application = \"Demo\"\ncolour = 3",
        );
        let error = Config::parse(Path::new("car.toml"), &text).expect_err("unknown key");
        let message = error.to_string();
        assert!(message.starts_with("car.toml:10:"), "{message}");
        assert!(message.contains("colour"), "{message}");
    }

    #[test]
    fn bad_names_are_rejected_with_their_key() {
        let text = MINIMAL.replace("\"DemoCar\"", "\"Demo Car\"");
        let error = Config::parse(Path::new("car.toml"), &text).expect_err("space");
        assert!(
            error.to_string().contains("[session.data_source]"),
            "{error}"
        );
        let text = MINIMAL.replace("endpoint = \"embedded\"", "endpoint = \"grpc://x\"");
        let error = Config::parse(Path::new("car.toml"), &text).expect_err("scheme");
        assert!(
            error.to_string().contains("[stream_api.endpoint]"),
            "{error}"
        );
    }

    #[test]
    fn sources_parse_into_validated_kinds() {
        let text = format!(
            "{MINIMAL}\n[[source]]\nname = \"gw\"\nkind = \"udp\"\nbind = \"0.0.0.0:20000\"\nmulticast_group = \"239.1.2.3\"\n\n[[source]]\nname = \"usb\"\nkind = \"serial\"\ndevice = \"/dev/ttyACM0\"\ncan_bitrate = 500000\n"
        );
        let config = Config::parse(Path::new("car.toml"), &text).expect("valid");
        assert_eq!(config.sources.len(), 2);
        let SourceKind::Udp(udp) = &config.sources[0].kind else {
            panic!("udp")
        };
        assert_eq!(udp.receive_buffer_bytes, 8 * 1024 * 1024);
        let SourceKind::Serial(serial) = &config.sources[1].kind else {
            panic!("serial")
        };
        assert_eq!(
            (
                serial.baud,
                serial.slcan.map(|s| (s.bitrate, s.listen_only))
            ),
            (115_200, Some((500_000, true)))
        );
        let bad = text.replace("500000", "33333");
        let error = Config::parse(Path::new("car.toml"), &bad).expect_err("bitrate");
        assert!(
            error.to_string().contains("[source[1].can_bitrate]"),
            "{error}"
        );
        let twice = text.replace("name = \"usb\"", "name = \"gw\"");
        assert!(Config::parse(Path::new("car.toml"), &twice).is_err());
    }

    #[test]
    fn value_problems_are_all_reported_with_their_lines() {
        let text = MINIMAL
            .replace("\"DemoCar\"", "\"Demo Car\"")
            .replace("[car]", "[batch]\nmax_age_ms = 0\n\n[car]")
            + "\n[[source]]\nname = \"usb\"\nkind = \"serial\"\ndevice = \"/dev/x\"\ncan_bitrate = 33333\n";
        let errors = Config::parse(Path::new("car.toml"), &text)
            .expect_err("three problems")
            .0;
        let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(messages.len(), 3, "{messages:#?}");
        assert!(
            messages[0].starts_with("car.toml:6:1: [session.data_source]"),
            "{messages:#?}"
        );
        assert!(
            messages[1].starts_with("car.toml:9:1: [batch.max_age_ms]"),
            "{messages:#?}"
        );
        assert!(
            messages[2].starts_with("car.toml:19:1: [source[0].can_bitrate]"),
            "{messages:#?}"
        );
    }

    #[test]
    fn frame_definitions_join_the_car_and_the_names_using_them_are_checked() {
        let dir = tempfile::tempdir().expect("temp dir");
        let definition = include_str!("../decoders/definitions/example_serial_ecu.toml");
        std::fs::write(dir.path().join("ecu.toml"), definition).expect("definition");
        let good = r#"
[stream_api]
endpoint = "embedded"

[session]
data_source = "Bench"

[car]
application = "Bench"
definitions = ["ecu.toml"]

[[source]]
name = "tty"
kind = "serial"
device = "/dev/ttyUSB0"
definition = "example_serial_ecu"
"#;
        let path = dir.path().join("bench.toml");
        std::fs::write(&path, good).expect("config");
        let (config, map, _) = Config::validate_file(&path).expect("valid");
        let SourceKind::Serial(serial) = &config.sources[0].kind else {
            panic!("serial")
        };
        assert_eq!(serial.slcan, None, "a native ECU needs no SLCAN set-up");
        assert_eq!(map.definitions().len(), 1);
        assert_eq!(map.parameters()[0].identifier, "rpm:Bench");

        let bad = format!(
            "{good}\n[[source]]\nname = \"net\"\nkind = \"udp\"\nbind = \"127.0.0.1:0\"\ndefinition = \"f1_24_car_telemetry\"\n\n[car.compound_can]\nnothing = 0x5F0\n"
        );
        std::fs::write(&path, &bad).expect("config");
        let line_of = |start: &str| {
            1 + bad
                .lines()
                .position(|l| l.starts_with(start))
                .expect("line")
        };
        let errors = Config::validate_file(&path)
            .expect_err("two unknown names")
            .0;
        let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(messages.len(), 2, "{messages:#?}");
        let source_at = format!(
            ":{}:1: [source[1].definition]",
            line_of("definition = \"f1")
        );
        let compound_at = format!(":{}:1: [car.compound_can.nothing]", line_of("nothing"));
        assert!(
            messages[0].contains(&source_at)
                && messages[0].contains("\"f1_24_car_telemetry\" is not the name")
                && messages[1].contains(&compound_at),
            "{messages:#?}"
        );

        let both = good.replace(
            "definition = \"example",
            "can_bitrate = 500000\ndefinition = \"example",
        );
        let error = Config::parse(&path, &both).expect_err("bitrate and definition");
        assert!(
            error
                .to_string()
                .contains("[source[0].can_bitrate] applies to SLCAN"),
            "{error}"
        );
        let neither = good.replace("definitions = [\"ecu.toml\"]", "");
        let error = Config::parse(&path, &neither).expect_err("no channel map");
        assert!(
            error.to_string().contains("[car.dbc] list at least one"),
            "{error}"
        );
    }

    #[test]
    fn civil_dates_are_right_across_leap_years() {
        assert_eq!(utc_date_time(0).0, "1970-01-01");
        assert_eq!(utc_date_time(951_782_400).0, "2000-02-29");
        assert_eq!(
            utc_date_time(1_798_761_599),
            ("2026-12-31".into(), "23:59:59".into())
        );
    }
}
