//! Raw → validated: turns the serde `Raw*` types into [`Config`], collecting every
//! unacceptable value as a located problem instead of stopping at the first. Checks values
//! only; files named by the configuration are read by `channel_map`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use decoders::CanId;
use decoders::channel_map::{Override, Selection};
use decoders::laps::LapSignal;

use super::locate::{Locations, child};
use super::raw::{
    RawConfig, RawLaps, RawOverride, RawProtocol, RawSource, RawSourceKind, RawStream,
};
use super::{
    BatchConfig, CarConfig, Config, ConfigError, ConfigErrors, LapConfig, Multicast, PollConfig,
    SerialSourceConfig, ServerVersion, ServiceConfig, SessionConfig, SlcanSetup, SourceConfig,
    SourceKind, SpoolSettings, StreamApiTarget, StreamRule, TcpSourceConfig, UdpSourceConfig,
};

/// Largest packet the batcher may build: the v1.3 server silently drops packets over 1 MB.
const PACKET_LIMIT: usize = 900_000;

/// Blocks per second polled when `poll_hz` is absent.
const DEFAULT_POLL_HZ: f64 = 50.0;
/// The fastest poll rate accepted; serial ECUs answer in a few milliseconds at best.
const MAX_POLL_HZ: f64 = 1000.0;

/// SLCAN's `S0`…`S8` bitrates.
const SLCAN_BITRATES: [u32; 9] = [
    10_000, 20_000, 50_000, 100_000, 125_000, 250_000, 500_000, 800_000, 1_000_000,
];

impl Config {
    /// The validated configuration, with every unacceptable value added to `problems` (and
    /// some stand-in kept in its place, so that checking can go on).
    pub(super) fn validated(
        path: &Path,
        raw: RawConfig,
        locations: Locations,
        problems: &mut Problems,
    ) -> Self {
        let base = path.parent().unwrap_or(Path::new("."));
        let stream_api = stream_api_target(&raw, base, problems);
        check_values(&raw, problems);
        let compound_can = compound_can_ids(&raw.car.compound_can, problems);
        let source_names: Vec<String> = raw.sources.iter().map(|s| s.name.clone()).collect();
        let sources = sources(raw.sources, problems);
        Self {
            path: path.to_owned(),
            locations,
            sources,
            service: ServiceConfig {
                metrics_listen: raw.service.metrics_listen,
                stop_timeout: Duration::from_millis(raw.service.stop_timeout_ms),
                health_grace: Duration::from_millis(raw.service.health_grace_ms),
                summary_interval: (raw.service.summary_interval_s > 0)
                    .then(|| Duration::from_secs(raw.service.summary_interval_s)),
            },
            spool: spool_settings(&raw.spool, base, problems),
            stream_api,
            key_generator: raw.stream_api.key_generator,
            call_timeout: Duration::from_millis(raw.stream_api.call_timeout_ms),
            server_version: match raw.stream_api.server_version.as_str() {
                "1.3" => ServerVersion::V1_3,
                "2.1" => ServerVersion::V2_1,
                other => {
                    problems.add(
                        "stream_api.server_version",
                        format!(
                            "{other:?} is not a known Stream API version; use \"1.3\" or \"2.1\""
                        ),
                    );
                    ServerVersion::V1_3
                }
            },
            drain_timeout: Duration::from_millis(raw.stream_api.drain_timeout_ms),
            session: SessionConfig {
                data_source: raw.session.data_source,
                identifier: raw.session.identifier,
                session_type: raw.session.session_type,
                utc_offset_seconds: raw.session.utc_offset_minutes * 60,
                details: raw.session.details,
                idle_end: (raw.session.idle_end_s > 0)
                    .then(|| Duration::from_secs(raw.session.idle_end_s)),
                in_lap: raw.session.in_lap,
            },
            laps: laps(raw.laps.as_ref(), &raw.car.application, problems),
            streams: stream_rules(&raw.streams, &raw.car.stream, &source_names, problems),
            car: CarConfig {
                profiles: profiles(&raw.car.profile, problems),
                dbc: raw.car.dbc.iter().map(|p| base.join(p)).collect(),
                definitions: raw.car.definitions.iter().map(|p| base.join(p)).collect(),
                ini: raw
                    .car
                    .ini
                    .iter()
                    .map(|p| (p.display().to_string(), base.join(p)))
                    .collect(),
                ini_settings: raw.car.ini_settings,
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
}

/// `[[stream]]`: valid, distinct names; something to select; sources that exist.
fn stream_rules(
    raw: &[RawStream],
    default_stream: &str,
    sources: &[String],
    problems: &mut Problems,
) -> Vec<StreamRule> {
    let mut rules = Vec::new();
    for (index, stream) in raw.iter().enumerate() {
        let key = |leaf: &str| format!("stream[{index}].{leaf}");
        if let Err(message) = check_name(&stream.name, true) {
            problems.add(&key("name"), message);
        } else if stream.name == default_stream
            || raw[..index].iter().any(|other| other.name == stream.name)
        {
            problems.add(
                &key("name"),
                format!(
                    "{:?} is already a stream ([car] stream or an earlier [[stream]])",
                    stream.name
                ),
            );
        }
        if stream.messages.is_empty() && stream.sources.is_empty() {
            problems.add(
                &key("name"),
                "give `messages` (patterns) or `sources` (names) to send to this stream".into(),
            );
        }
        for (at, name) in stream.sources.iter().enumerate() {
            if !sources.contains(name) {
                problems.add(
                    &format!("stream[{index}].sources[{at}]"),
                    format!(
                        "{name:?} is not a [[source]] (known: {})",
                        sources.join(", ")
                    ),
                );
            }
        }
        rules.push(StreamRule {
            name: stream.name.clone(),
            messages: stream.messages.clone(),
            sources: stream.sources.clone(),
        });
    }
    rules
}

/// `[laps]`: which signal, on which parameter (`Name` gets the car's `:App`).
fn laps(raw: Option<&RawLaps>, application: &str, problems: &mut Problems) -> Option<LapConfig> {
    let raw = raw?;
    let given: Vec<(LapSignal, &str, &String)> = [
        (LapSignal::Counter, "counter", &raw.counter),
        (LapSignal::Beacon, "beacon", &raw.beacon),
        (LapSignal::LapTime, "lap_time", &raw.lap_time),
    ]
    .into_iter()
    .filter_map(|(signal, key, value)| value.as_ref().map(|v| (signal, key, v)))
    .collect();
    match given.as_slice() {
        [(signal, key, parameter)] => {
            if parameter.trim().is_empty() {
                problems.add(&format!("laps.{key}"), "must name a parameter".into());
                return None;
            }
            let parameter = if parameter.contains(':') {
                (*parameter).clone()
            } else {
                format!("{parameter}:{application}")
            };
            Some(LapConfig {
                signal: *signal,
                parameter,
                key,
            })
        }
        [] => {
            problems.add(
                "laps",
                "give one of `counter`, `beacon` or `lap_time` (a parameter)".into(),
            );
            None
        }
        _ => {
            problems.add(
                "laps",
                "give only one of `counter`, `beacon` or `lap_time`".into(),
            );
            None
        }
    }
}

/// Value problems collected while validating, each with its dotted key.
#[derive(Debug, Default)]
pub(super) struct Problems(Vec<(String, String)>);

impl Problems {
    /// Records that the value at dotted `key` is wrong, and why.
    pub(super) fn add(&mut self, key: &str, message: String) {
        self.0.push((key.to_owned(), message));
    }

    fn check(&mut self, key: &str, result: Result<(), String>) {
        if let Err(message) = result {
            self.add(key, message);
        }
    }

    /// `value` if nothing was wrong, else every problem located, in file order.
    pub(super) fn into_result<T>(
        self,
        path: &Path,
        locations: &Locations,
        value: T,
    ) -> Result<T, ConfigErrors> {
        if self.0.is_empty() {
            return Ok(value);
        }
        let mut located: Vec<(usize, usize, ConfigError)> = self
            .0
            .into_iter()
            .map(|(key, message)| {
                let (line, column) = locations.at(&key);
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

/// Where packets go: `embedded` or an `http://` URL.
fn stream_api_target(raw: &RawConfig, base: &Path, problems: &mut Problems) -> StreamApiTarget {
    let stream_api = &raw.stream_api;
    match stream_api.endpoint.as_str() {
        "embedded" => StreamApiTarget::Embedded {
            record: stream_api.record.as_ref().map(|p| base.join(p)),
            strict: stream_api.strict,
        },
        url if url.starts_with("http://") => StreamApiTarget::Remote(url.to_owned()),
        other => {
            problems.add(
                "stream_api.endpoint",
                format!("{other:?} is neither \"embedded\" nor an http://host:port URL (the Stream API speaks h2c)"),
            );
            StreamApiTarget::Remote(other.to_owned())
        }
    }
}

/// The checks of single values that build nothing: names, ranges, limits.
fn check_values(raw: &RawConfig, problems: &mut Problems) {
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
    if raw.car.dbc.is_empty()
        && raw.car.definitions.is_empty()
        && raw.car.profile.is_empty()
        && raw.car.ini.is_empty()
    {
        problems.add(
            "car.dbc",
            "list at least one DBC file, ECU profile (profile = [...]), frame definition (definitions = [...]) or TunerStudio INI (ini = [...])".into(),
        );
    }
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
    if raw.service.stop_timeout_ms == 0 {
        problems.add("service.stop_timeout_ms", "must be positive".into());
    }
    if raw.service.health_grace_ms == 0 {
        problems.add("service.health_grace_ms", "must be positive".into());
    }
}

/// `[car.compound_can]` ids as CAN ids: standard up to 0x7FF, extended above.
fn compound_can_ids(raw: &BTreeMap<String, u32>, problems: &mut Problems) -> Vec<(String, CanId)> {
    raw.iter()
        .filter_map(|(name, &id)| {
            let can_id = if id <= CanId::MAX_STANDARD {
                CanId::standard(id)
            } else {
                CanId::extended(id)
            };
            if can_id.is_none() {
                let key = child("car.compound_can", name);
                problems.add(&key, format!("{id:#X} is not a CAN id (29 bits at most)"));
            }
            can_id.map(|can_id| (name.clone(), can_id))
        })
        .collect()
}

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

fn source_config(
    source: RawSource,
    seen: &mut std::collections::BTreeSet<String>,
) -> Result<SourceConfig, (&'static str, String)> {
    check_name(&source.name, true).map_err(|m| ("name", m))?;
    if !seen.insert(source.name.clone()) {
        return Err(("name", format!("{:?} is used twice", source.name)));
    }
    let protocol = protocol(&source)?;
    let poll = match protocol {
        RawProtocol::Tunerstudio => Some(poll_config(&source)?),
        _ => None,
    };
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
                    format!("{group} is not a multicast group of the bind address's family"),
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
            let slcan = slcan_setup(protocol, can_bitrate, listen_only, timestamps)?;
            let (reconnect_initial, reconnect_max) =
                reconnect_delays(reconnect_initial_ms, reconnect_max_ms)?;
            SourceKind::Serial(SerialSourceConfig {
                device,
                baud,
                data_bits,
                parity,
                stop_bits,
                flow_control,
                slcan,
                reconnect_initial,
                reconnect_max,
            })
        }
        RawSourceKind::Tcp {
            address,
            can_bitrate,
            listen_only,
            timestamps,
            reconnect_initial_ms,
            reconnect_max_ms,
        } => {
            if address
                .rsplit_once(':')
                .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
            {
                return Err((
                    "address",
                    format!("{address:?} is not host:port (e.g. \"192.168.4.1:23\")"),
                ));
            }
            let slcan = slcan_setup(protocol, can_bitrate, listen_only, timestamps)?;
            let (reconnect_initial, reconnect_max) =
                reconnect_delays(reconnect_initial_ms, reconnect_max_ms)?;
            SourceKind::Tcp(TcpSourceConfig {
                address,
                slcan,
                reconnect_initial,
                reconnect_max,
            })
        }
    };
    Ok(SourceConfig {
        name: source.name,
        kind,
        definition: source.definition,
        poll,
    })
}

/// The protocol of a source: as configured, else native with a definition, SLCAN without.
fn protocol(source: &RawSource) -> Result<RawProtocol, (&'static str, String)> {
    let protocol = source.protocol.unwrap_or(match source.definition {
        Some(_) => RawProtocol::Native,
        None => RawProtocol::Slcan,
    });
    let polling_key = [
        ("ini", source.ini.is_some()),
        ("poll_hz", source.poll_hz.is_some()),
        ("can_id", source.can_id.is_some()),
        ("reply_timeout_ms", source.reply_timeout_ms.is_some()),
        ("open_delay_ms", source.open_delay_ms.is_some()),
    ]
    .into_iter()
    .find_map(|(key, given)| given.then_some(key));
    match (protocol, &source.definition, &source.kind) {
        (_, _, RawSourceKind::Udp { .. }) if source.protocol.is_some() => Err((
            "protocol",
            "applies to serial and tcp sources (a UDP source's protocol follows `definition`)"
                .into(),
        )),
        (RawProtocol::Native, None, _) => Err((
            "protocol",
            "\"native\" needs the source's frame definition (definition = \"...\")".into(),
        )),
        (RawProtocol::Slcan | RawProtocol::Tunerstudio, Some(_), _) => Err((
            "definition",
            "only a source of native frames (protocol = \"native\") takes a definition".into(),
        )),
        (RawProtocol::Slcan | RawProtocol::Native, _, _) => match polling_key {
            Some(key) => Err((
                key,
                "applies to TunerStudio ECUs (protocol = \"tunerstudio\") only".into(),
            )),
            None => Ok(protocol),
        },
        _ => Ok(protocol),
    }
}

/// The polling settings of a TunerStudio source.
fn poll_config(source: &RawSource) -> Result<PollConfig, (&'static str, String)> {
    let rate_hz = source.poll_hz.unwrap_or(DEFAULT_POLL_HZ);
    if !(rate_hz > 0.0 && rate_hz <= MAX_POLL_HZ) {
        return Err((
            "poll_hz",
            format!("must be above 0 and at most {MAX_POLL_HZ}"),
        ));
    }
    if source.reply_timeout_ms == Some(0) {
        return Err(("reply_timeout_ms", "must be positive".into()));
    }
    Ok(PollConfig {
        ini: source.ini.clone(),
        rate_hz,
        can_id: source.can_id.unwrap_or(0),
        reply_timeout: source.reply_timeout_ms.map(Duration::from_millis),
        open_delay: source.open_delay_ms.map(Duration::from_millis),
    })
}

/// The SLCAN set-up of an SLCAN source; `None` for the other protocols (which take no bitrate).
fn slcan_setup(
    protocol: RawProtocol,
    can_bitrate: Option<u32>,
    listen_only: bool,
    timestamps: bool,
) -> Result<Option<SlcanSetup>, (&'static str, String)> {
    match (protocol, can_bitrate) {
        (RawProtocol::Slcan, None) => Err((
            "can_bitrate",
            "is required for an SLCAN adapter (or give the source a definition)".into(),
        )),
        (RawProtocol::Slcan, Some(bitrate)) if !SLCAN_BITRATES.contains(&bitrate) => Err((
            "can_bitrate",
            format!("{bitrate} is not one of {SLCAN_BITRATES:?}"),
        )),
        (RawProtocol::Slcan, Some(bitrate)) => Ok(Some(SlcanSetup {
            bitrate,
            listen_only,
            timestamps,
        })),
        (RawProtocol::Native, Some(_)) => Err((
            "can_bitrate",
            "applies to SLCAN adapters only; this source carries frames of its definition".into(),
        )),
        (RawProtocol::Tunerstudio, Some(_)) => Err((
            "can_bitrate",
            "applies to SLCAN adapters only; this source polls a TunerStudio ECU".into(),
        )),
        (_, None) => Ok(None),
    }
}

fn reconnect_delays(
    initial_ms: u64,
    max_ms: u64,
) -> Result<(Duration, Duration), (&'static str, String)> {
    if initial_ms == 0 || max_ms < initial_ms {
        return Err((
            "reconnect_initial_ms",
            "must be positive and ≤ reconnect_max_ms".into(),
        ));
    }
    Ok((
        Duration::from_millis(initial_ms),
        Duration::from_millis(max_ms),
    ))
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

/// `[car] profile`: built-in ECU profiles by name (`ecu-bridge profiles` lists them).
fn profiles(
    names: &[String],
    problems: &mut Problems,
) -> Vec<&'static decoders::profiles::Profile> {
    names
        .iter()
        .filter_map(|name| {
            let found = decoders::profiles::find(name);
            if found.is_none() {
                let known: Vec<&str> = decoders::profiles::all().iter().map(|p| p.name).collect();
                problems.add(
                    "car.profile",
                    format!("no ECU profile {name:?}; known: {}", known.join(", ")),
                );
            }
            found
        })
        .collect()
}

/// `[spool]`: relative folders are relative to the configuration's folder.
fn spool_settings(
    raw: &super::raw::RawSpool,
    base: &Path,
    problems: &mut Problems,
) -> SpoolSettings {
    let defaults = crate::spool::SpoolConfig::default();
    if raw.max_bytes == Some(0) {
        problems.add("spool.max_bytes", "must be positive".into());
    }
    if raw.sync_interval_ms == Some(0) {
        problems.add(
            "spool.sync_interval_ms",
            "must be positive (it bounds what a power cut loses)".into(),
        );
    }
    SpoolSettings {
        dir: raw.dir.as_ref().map(|dir| base.join(dir)),
        config: crate::spool::SpoolConfig {
            max_bytes: raw.max_bytes.unwrap_or(defaults.max_bytes).max(1),
            max_age: raw.max_age_s.map(Duration::from_secs).or(defaults.max_age),
            sync: raw.sync_interval_ms.map_or(defaults.sync, |ms| {
                crate::spool::SyncPolicy::Every(Duration::from_millis(ms.max(1)))
            }),
            ..defaults
        },
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::tests::MINIMAL;
    use super::*;

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
    fn tcp_and_tunerstudio_sources_parse_and_misplaced_keys_are_located() {
        let text = format!(
            "{MINIMAL}\n[[source]]\nname = \"wifi\"\nkind = \"tcp\"\naddress = \"192.168.4.1:23\"\nprotocol = \"tunerstudio\"\npoll_hz = 20\ncan_id = 1\n\n[[source]]\nname = \"moxa\"\nkind = \"tcp\"\naddress = \"moxa.local:4001\"\ncan_bitrate = 250000\n"
        );
        let config = Config::parse(Path::new("car.toml"), &text).expect("valid");
        let SourceKind::Tcp(tcp) = &config.sources[0].kind else {
            panic!("tcp")
        };
        assert_eq!((tcp.address.as_str(), tcp.slcan), ("192.168.4.1:23", None));
        let poll = config.sources[0].poll.as_ref().expect("polled");
        assert_eq!(
            (poll.rate_hz, poll.can_id, poll.reply_timeout),
            (20.0, 1, None)
        );
        let SourceKind::Tcp(slcan) = &config.sources[1].kind else {
            panic!("tcp")
        };
        assert_eq!(slcan.slcan.map(|s| s.bitrate), Some(250_000));
        assert_eq!(config.sources[1].poll, None);

        for (edit, key) in [
            ("can_id = 1", "can_id = 1\ndefinition = \"x\""),
            ("can_bitrate = 250000", "can_bitrate = 250000\npoll_hz = 5"),
            ("can_bitrate = 250000", "protocol = \"native\""),
        ] {
            let bad = text.replace(edit, key);
            let error = Config::parse(Path::new("car.toml"), &bad).expect_err(key);
            let expected = match key {
                k if k.contains("definition") => "[source[0].definition]",
                k if k.contains("poll_hz") => "[source[1].poll_hz] applies to TunerStudio",
                _ => "[source[1].protocol] \"native\" needs",
            };
            assert!(error.to_string().contains(expected), "{key}: {error}");
        }
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
}
