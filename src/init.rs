//! `ecu-bridge init`: the commented starting configuration of a car on built-in ECU profiles
//! (`decoders::profiles`) read from one source.
//!
//! This module only writes text; it never reads or writes files. The text is a complete
//! configuration that `validate` accepts as written: the stream API is the embedded test server
//! and the names are placeholders, each with a comment saying what to put there for a real car
//! (checked for every profile by `tests/it/cli.rs`).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::str::FromStr;

use decoders::profiles::{self, Profile};

/// Where the metrics endpoint of a started configuration listens, and where `ecu-bridge watch`
/// looks by default: the address the README's metrics example uses.
pub const DEFAULT_METRICS_ADDRESS: &str = "127.0.0.1:9464";

/// The bit rate written for a serial adapter when neither the user nor the profile fixes one:
/// the rate the profiles' sources most often show (`docs/profiles.md`).
const FALLBACK_BITRATE: u32 = 500_000;

/// The CAN bit rates an SLCAN adapter can be set to (`S0`..`S8`), as `validate` accepts them.
const SLCAN_BITRATES: [u32; 9] = [
    10_000, 20_000, 50_000, 100_000, 125_000, 250_000, 500_000, 800_000, 1_000_000,
];

/// The one source a starting configuration reads, as given to `--source`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// `udp:ADDRESS`: cannelloni datagrams from a CAN-to-Ethernet gateway.
    Udp(SocketAddr),
    /// `serial:DEVICE`: an SLCAN adapter on the bus.
    Serial(String),
}

impl FromStr for SourceSpec {
    type Err = InitError;

    fn from_str(text: &str) -> Result<Self, InitError> {
        let bad = || InitError::BadSource(text.to_owned());
        match text.split_once(':') {
            Some(("udp", address)) => address.parse().map(Self::Udp).map_err(|_| bad()),
            Some(("serial", device)) if !device.trim().is_empty() => {
                Ok(Self::Serial(device.to_owned()))
            }
            _ => Err(bad()),
        }
    }
}

/// What `init` was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitRequest {
    /// Profile names, in the order the car loads them.
    pub profiles: Vec<String>,
    /// The source.
    pub source: SourceSpec,
    /// The CAN bit rate of a serial adapter, when the user knows it.
    pub can_bitrate: Option<u32>,
}

/// Why no configuration was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InitError {
    /// A profile name no built-in profile has.
    #[error("no built-in profile is called {name:?}; the profiles are: {known}")]
    UnknownProfile {
        /// The name given.
        name: String,
        /// Every profile name, comma-separated.
        known: String,
    },
    /// No profile given.
    #[error("name at least one profile (--profile NAME; `ecu-bridge profiles` lists them)")]
    NoProfile,
    /// `--source` is neither `udp:ADDRESS` nor `serial:DEVICE`.
    #[error(
        "--source {0:?} must be udp:ADDRESS:PORT (a cannelloni gateway, e.g. udp:0.0.0.0:20000) or serial:DEVICE (an SLCAN adapter, e.g. serial:/dev/serial/by-id/usb-...)"
    )]
    BadSource(String),
    /// A bit rate an SLCAN adapter cannot be set to.
    #[error("--can-bitrate {0} is not one of the SLCAN rates {SLCAN_BITRATES:?}")]
    BadBitrate(u32),
    /// A bit rate given for a UDP source, which has none.
    #[error("--can-bitrate applies to a serial source; a UDP gateway sets the bus rate itself")]
    BitrateWithoutSerial,
}

/// The commented configuration for `request`.
pub fn starting_config(request: &InitRequest) -> Result<String, InitError> {
    let chosen = chosen_profiles(&request.profiles)?;
    let mut text = String::new();
    write_header(&mut text, &chosen);
    write_car(&mut text, &chosen);
    write_source(&mut text, &chosen, request)?;
    write_service(&mut text);
    Ok(text)
}

fn chosen_profiles(names: &[String]) -> Result<Vec<&'static Profile>, InitError> {
    if names.is_empty() {
        return Err(InitError::NoProfile);
    }
    names
        .iter()
        .map(|name| {
            profiles::find(name).ok_or_else(|| InitError::UnknownProfile {
                name: name.clone(),
                known: profiles::all()
                    .iter()
                    .map(|p| p.name)
                    .collect::<Vec<_>>()
                    .join(", "),
            })
        })
        .collect()
}

/// `fmt::Write` into a `String` cannot fail; the results below are ignored for that reason.
fn write_header(text: &mut String, chosen: &[&Profile]) {
    let _ = writeln!(
        text,
        "# ecu-bridge configuration: a car whose ECU broadcasts"
    );
    for profile in chosen {
        let _ = writeln!(text, "#   {} ({})", profile.name, profile.title);
    }
    let _ = write!(
        text,
        "# Written by `ecu-bridge init`. Check it with `ecu-bridge validate --config FILE`;\n\
         # every key is described in docs/configuration.md, each profile in docs/profiles.md.\n\
         \n\
         [stream_api]\n\
         # \"embedded\" runs our own test Stream API inside the bridge: enough to try the channel\n\
         # map. For the real server give its address (cleartext HTTP/2, port 13579 by default):\n\
         # endpoint = \"http://stream-api.local:13579\"\n\
         endpoint = \"embedded\"\n\
         \n\
         [session]\n\
         # The Kafka topic root: the data source your ATLAS Stream Recorder listens to\n\
         # (letters, digits, '.', '_', '-').\n\
         data_source = \"Car\"\n\
         \n"
    );
}

fn write_car(text: &mut String, chosen: &[&Profile]) {
    let names: Vec<String> = chosen.iter().map(|p| format!("{:?}", p.name)).collect();
    let _ = write!(
        text,
        "[car]\n\
         # The `App` part of every parameter identifier (`Name:Car`) and the top-level group.\n\
         application = \"Car\"\n\
         profile = [{}]\n\
         # Publish only some channels, rename them or change units and limits:\n\
         # include = [\"<pattern>\"], [car.rename], [car.override.\"Message.Signal\"].\n",
        names.join(", ")
    );
    for profile in chosen {
        let _ = writeln!(text, "#\n# {}: {}", profile.name, profile.coverage);
        comment_wrapped(text, profile.notes);
        for alternative in profiles::alternatives()
            .iter()
            .filter(|a| a.profile == profile.name)
        {
            let advice = format!(
                "Alternative {}: {} To use it, copy profiles/{} and profiles/{} next to this \
                 file and replace `profile` by dbc = [\"{}\", \"{}\"] (the alternative first).",
                alternative.name,
                alternative.notes,
                alternative.dbc_file,
                profile.dbc_file,
                alternative.dbc_file,
                profile.dbc_file,
            );
            comment_wrapped(text, &advice);
        }
    }
    text.push('\n');
}

fn write_source(
    text: &mut String,
    chosen: &[&Profile],
    request: &InitRequest,
) -> Result<(), InitError> {
    let _ = write!(text, "[[source]]\nname = \"ecu\"\n");
    match &request.source {
        SourceSpec::Udp(address) => {
            if request.can_bitrate.is_some() {
                return Err(InitError::BitrateWithoutSerial);
            }
            let _ = write!(
                text,
                "kind = \"udp\"\n\
                 # Cannelloni datagrams from a CAN-to-Ethernet gateway on the ECU's bus{}.\n\
                 bind = {}\n",
                bus_rate_note(chosen),
                toml_string(&address.to_string()),
            );
        }
        SourceSpec::Serial(device) => {
            let (bitrate, why) = serial_bitrate(chosen, request.can_bitrate)?;
            let _ = write!(
                text,
                "kind = \"serial\"\n\
                 # An SLCAN adapter on the ECU's bus; prefer the stable /dev/serial/by-id/ names.\n\
                 device = {}\n\
                 # {why}\n\
                 can_bitrate = {bitrate}\n",
                toml_string(device),
            );
        }
    }
    text.push('\n');
    Ok(())
}

fn write_service(text: &mut String) {
    let _ = write!(
        text,
        "[service]\n\
         # /metrics, /health and /values (the latest value of every channel): what\n\
         # `ecu-bridge watch` shows. No authentication, so keep it on a local address.\n\
         metrics_listen = \"{DEFAULT_METRICS_ADDRESS}\"\n"
    );
}

/// The bit rate of a serial source, with the comment saying where it comes from.
fn serial_bitrate(chosen: &[&Profile], given: Option<u32>) -> Result<(u32, String), InitError> {
    if let Some(bitrate) = given {
        if !SLCAN_BITRATES.contains(&bitrate) {
            return Err(InitError::BadBitrate(bitrate));
        }
        return Ok((bitrate, "The bus bit rate, as given to `init`.".to_owned()));
    }
    match chosen.iter().find_map(|p| p.bus_bitrate) {
        Some(bitrate) => Ok((
            bitrate,
            "The bus bit rate the profile's stream uses; change it if the ECU is set otherwise."
                .to_owned(),
        )),
        None => Ok((
            FALLBACK_BITRATE,
            "The bus bit rate is set on the ECU (see the notes above): check it there.".to_owned(),
        )),
    }
}

fn bus_rate_note(chosen: &[&Profile]) -> String {
    match chosen.iter().find_map(|p| p.bus_bitrate) {
        Some(bitrate) => format!(" ({} kbit/s)", bitrate / 1000),
        None => String::new(),
    }
}

/// `value` as a TOML basic string, quoted and escaped.
fn toml_string(value: &str) -> String {
    toml::Value::String(value.to_owned()).to_string()
}

/// Appends `notes` as `# ` comment lines of at most about 94 characters.
fn comment_wrapped(text: &mut String, notes: &str) {
    let mut line = String::from("#");
    for word in notes.split_whitespace() {
        if line.len() + 1 + word.len() > 94 && line.len() > 1 {
            text.push_str(&line);
            text.push('\n');
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(word);
    }
    if line.len() > 1 {
        text.push_str(&line);
        text.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(source: &str) -> InitRequest {
        InitRequest {
            profiles: vec!["haltech-v2".into()],
            source: source.parse().expect("source"),
            can_bitrate: None,
        }
    }

    #[test]
    fn sources_parse_from_their_command_line_form() {
        assert_eq!(
            "udp:0.0.0.0:20000".parse(),
            Ok(SourceSpec::Udp("0.0.0.0:20000".parse().expect("address")))
        );
        assert_eq!(
            "serial:/dev/serial/by-id/usb-x".parse(),
            Ok(SourceSpec::Serial("/dev/serial/by-id/usb-x".into()))
        );
        for bad in [
            "udp:nowhere",
            "serial:",
            "tcp:1.2.3.4:5",
            "/dev/ttyUSB0",
            "",
        ] {
            let error = bad.parse::<SourceSpec>().expect_err(bad);
            assert!(error.to_string().contains("udp:ADDRESS:PORT"), "{error}");
        }
    }

    #[test]
    fn a_serial_source_takes_the_profile_bit_rate_unless_given() {
        let text = starting_config(&request("serial:/dev/ttyACM0")).expect("text");
        assert!(text.contains("device = \"/dev/ttyACM0\"\n"), "{text}");
        assert!(text.contains("can_bitrate = 1000000\n"), "{text}");

        let mut link = request("serial:/dev/ttyACM0");
        link.profiles = vec!["link-generic-dash".into()];
        let text = starting_config(&link).expect("text");
        assert!(text.contains("can_bitrate = 500000\n"), "{text}");
        assert!(text.contains("check it there"), "{text}");

        link.can_bitrate = Some(1_000_000);
        let text = starting_config(&link).expect("text");
        assert!(text.contains("can_bitrate = 1000000\n"), "{text}");
        link.can_bitrate = Some(33_333);
        assert_eq!(starting_config(&link), Err(InitError::BadBitrate(33_333)));
    }

    #[test]
    fn alternatives_and_notes_are_comments_next_to_the_profile() {
        let text = starting_config(&request("udp:0.0.0.0:20000")).expect("text");
        assert!(text.contains("profile = [\"haltech-v2\"]\n"), "{text}");
        assert!(text.contains("bind = \"0.0.0.0:20000\"\n"), "{text}");
        assert!(text.contains("profiles/haltech-v2-fty.dbc"), "{text}");
        assert!(text.lines().all(|line| line.len() <= 100), "{text}");
    }

    #[test]
    fn unknown_profiles_and_misplaced_bit_rates_are_refused() {
        let mut wrong = request("udp:0.0.0.0:20000");
        wrong.profiles = vec!["haltech".into()];
        let error = starting_config(&wrong).expect_err("unknown").to_string();
        assert!(
            error.contains("\"haltech\"") && error.contains("haltech-v2, link-generic-dash"),
            "{error}"
        );
        wrong.profiles.clear();
        assert_eq!(starting_config(&wrong), Err(InitError::NoProfile));
        let mut udp = request("udp:0.0.0.0:20000");
        udp.can_bitrate = Some(500_000);
        assert_eq!(starting_config(&udp), Err(InitError::BitrateWithoutSerial));
    }
}
