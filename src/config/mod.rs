//! The bridge's configuration file (one per car): TOML parsed once into `raw::RawConfig`
//! (serde, unknown keys rejected) and an index of where each key is written, then validated
//! into [`Config`]. Errors name the file, line, column and key. The format is documented in
//! `docs/configuration.md`.
//!
//! Files: `raw` (serde types, defaults), `validate` (values → `Config`), `channel_map` (DBC and
//! definition files → compiled map), `listing` (the map as `validate --list` shows it),
//! `locate` (key → line and column), `error`.

mod channel_map;
mod error;
mod listing;
mod locate;
mod streams;
pub use streams::StreamRouter;
mod raw;
mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use decoders::CanId;
use decoders::channel_map::{ChannelMap, Selection};
use decoders::dbc::DbcWarning;
use serde::Deserialize;

pub use channel_map::{INI_MESSAGE, LoadedIni, PatternWarning};
pub use error::{ConfigError, ConfigErrors};
pub use listing::ParameterTable;
use locate::Locations;
use raw::parse_raw;
use validate::Problems;

/// A validated bridge configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from; relative paths inside it are relative to its folder.
    pub path: PathBuf,
    /// Where each key is written, to locate problems found after parsing (DBC references,
    /// renames, definition names).
    locations: Locations,
    /// Where packets go.
    pub stream_api: StreamApiTarget,
    /// Key Generator URL for configuration ids; a local UUID is used when absent.
    pub key_generator: Option<String>,
    /// Deadline of session and data-format calls.
    pub call_timeout: Duration,
    /// What the Stream API can take (`[stream_api] server_version`).
    pub server_version: ServerVersion,
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
    /// Where packets wait until the Stream API acknowledged them.
    pub spool: SpoolSettings,
    /// The car's lap signal (`[laps]`), if any.
    pub laps: Option<LapConfig>,
    /// Data streams besides `[car] stream` and what goes to each (`[[stream]]`).
    pub streams: Vec<StreamRule>,
}

/// One `[[stream]]` (`docs/sessions.md`): the samples of the messages it names, or of the
/// sources it names, go to this data stream instead of `[car] stream`.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRule {
    /// The data stream.
    pub name: String,
    /// Message name patterns (`*`, `?`).
    pub messages: Vec<String>,
    /// Source names: a source's messages are those of its frame definition or INI; a CAN
    /// source's are the DBC messages.
    pub sources: Vec<String>,
}

/// `[laps]`: the parameter whose samples mark laps (`docs/sessions.md`).
#[derive(Debug, Clone, PartialEq)]
pub struct LapConfig {
    /// How it marks them.
    pub signal: decoders::laps::LapSignal,
    /// The parameter, `Name:App`.
    pub parameter: String,
    /// The key it was given under (`counter`, `beacon`, `lap_time`), for errors.
    pub key: &'static str,
}

/// `[spool]`: the folder and bounds of the spool (`docs/spool.md`).
#[derive(Debug, Clone, PartialEq)]
pub struct SpoolSettings {
    /// The folder; when absent, `run` uses `$STATE_DIRECTORY/spool` (systemd) or
    /// `./ecu-bridge-spool`, and `replay` a temporary folder removed at the end.
    pub dir: Option<PathBuf>,
    /// Bounds and durability.
    pub config: crate::spool::SpoolConfig,
}

/// Service settings: metrics endpoint and shutdown deadline.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceConfig {
    /// Where to serve Prometheus `/metrics` and `/health`; off when absent.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// After SIGTERM/SIGINT, the drain (flush, EndOfSession, EndSession) must finish within
    /// this, or the process exits non-zero.
    pub stop_timeout: Duration,
    /// `/health` turns unhealthy when decoded samples wait and the Stream API acknowledged
    /// nothing for this long.
    pub health_grace: Duration,
    /// How often `run` logs its one-line summary; `None` (0 in the file) = never.
    pub summary_interval: Option<Duration>,
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
    /// Set when the source polls a TunerStudio ECU (`protocol = "tunerstudio"`).
    pub poll: Option<PollConfig>,
}

/// How a TunerStudio ECU is polled (`docs/polled-ecus.md`).
#[derive(Debug, Clone, PartialEq)]
pub struct PollConfig {
    /// The `[car] ini` entry describing the ECU, as written there; `None` when the car has
    /// exactly one INI.
    pub ini: Option<String>,
    /// Output-channel blocks requested per second.
    pub rate_hz: f64,
    /// The `$tsCanId` byte of the addressed ECU (0: the ECU on the port).
    pub can_id: u8,
    /// How long a reply may take; the INI's `blockReadTimeout` when absent.
    pub reply_timeout: Option<Duration>,
    /// The wait after opening before the first request; the INI's `delayAfterPortOpen` when
    /// absent.
    pub open_delay: Option<Duration>,
}

/// The kinds of live source.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceKind {
    /// Datagrams on a UDP socket.
    Udp(UdpSourceConfig),
    /// A serial device.
    Serial(SerialSourceConfig),
    /// A raw TCP byte stream (a Wi-Fi or Ethernet serial bridge) carrying what a serial
    /// device would.
    Tcp(TcpSourceConfig),
}

/// A TCP connection to a serial bridge.
#[derive(Debug, Clone, PartialEq)]
pub struct TcpSourceConfig {
    /// `host:port`, resolved at each connection attempt.
    pub address: String,
    /// SLCAN adapter set-up; `None` for native frames and TunerStudio ECUs.
    pub slcan: Option<SlcanSetup>,
    /// First retry delay after the connection drops; doubles up to `reconnect_max`.
    pub reconnect_initial: Duration,
    /// Longest delay between retries.
    pub reconnect_max: Duration,
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

/// The Stream API generation, for what it does with large configurations (rules 20, 52).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServerVersion {
    /// v1.3: a packet over 1 MB is dropped silently and split configurations are not read, so
    /// a map whose Configuration is larger is refused.
    #[default]
    V1_3,
    /// v2.1 or newer: a large Configuration is sent in parts (`partial_packet`, one
    /// `config_id`).
    V2_1,
}

impl ServerVersion {
    /// Whether the server reads a Configuration sent in parts (rule 20).
    pub fn reads_configuration_parts(self) -> bool {
        self == Self::V2_1
    }
}

/// Where the Stream API is.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamApiTarget {
    /// Start `ecu-bridge stream-api` in-process on 127.0.0.1 (quick start, map testing).
    Embedded {
        /// Record everything it receives to this file (nothing is recorded when absent;
        /// `replay` keeps a private temporary recording for its summary, removed after it).
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
    /// A session ends after this long without data (the car is off) and the next starts
    /// with the next frame; `None` keeps one session for the whole run.
    pub idle_end: Option<Duration>,
    /// Whether to mark an "In Lap" at each session's last sample.
    pub in_lap: bool,
}

/// The car: DBC files and frame definitions, which signals and fields to publish, and as what.
#[derive(Debug, Clone)]
pub struct CarConfig {
    /// Built-in ECU profiles (`decoders::profiles`) by name, loaded before the DBC files.
    pub profiles: Vec<&'static decoders::profiles::Profile>,
    /// DBC files (resolved paths), loaded as one set in this order.
    pub dbc: Vec<PathBuf>,
    /// Frame definition files (resolved paths).
    pub definitions: Vec<PathBuf>,
    /// TunerStudio INI files of polled ECUs: (as written in `[car] ini`, resolved path).
    pub ini: Vec<(String, PathBuf)>,
    /// Settings switched on for the INIs' `#if` (TunerStudio project options).
    pub ini_settings: Vec<String>,
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

impl Config {
    /// Reads and validates the configuration at `path`, reporting every problem found.
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        Self::parse(path, &read(path)?)
    }

    /// Validates configuration `text` as if read from `path`. TOML syntax errors are reported
    /// together; an unknown key or a wrong type stops parsing and is reported alone; every
    /// problem with the values is collected and reported together, each with its line,
    /// column and key.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigErrors> {
        let (raw, locations) = parse_raw(path, text)?;
        let mut problems = Problems::default();
        let config = Self::validated(path, raw, locations, &mut problems);
        problems.into_result(path, &config.locations, ())?;
        Ok(config)
    }

    /// Everything `ecu-bridge validate` checks, reported together: the values, then the DBC
    /// files and the channel map (which are checked even when a value was wrong).
    pub fn validate_file(path: &Path) -> Result<(Self, ChannelMap, Vec<DbcWarning>), ConfigErrors> {
        let text = read(path)?;
        let (raw, locations) = parse_raw(path, &text)?;
        let mut problems = Problems::default();
        let config = Self::validated(path, raw, locations, &mut problems);
        let values = problems.into_result(path, &config.locations, ());
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

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest valid configuration; other tests edit it.
    pub(super) const MINIMAL: &str = r#"
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
    fn every_toml_syntax_error_is_reported_at_once() {
        let text = MINIMAL
            .replace("data_source = \"DemoCar\"", "data_source = DemoCar")
            .replace("application = \"Demo\"", "application = \"Demo");
        let errors = Config::parse(Path::new("car.toml"), &text)
            .expect_err("two syntax errors")
            .0;
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(lines.len() >= 2, "{lines:#?}");
        assert!(lines[0].starts_with("car.toml:6:"), "{lines:#?}");
        assert!(
            lines.iter().any(|l| l.starts_with("car.toml:9:")),
            "{lines:#?}"
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
