//! The command line as a user meets it: `validate` on a broken configuration.

use std::path::Path;
use std::process::{Command, Output};

use crate::test_car;

/// Runs the bridge binary with `args`, then `paths`, and waits for it.
pub(crate) fn bridge(args: &[&str], paths: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ecu-bridge"))
        .args(args)
        .args(paths)
        .output()
        .expect("run ecu-bridge")
}

#[test]
fn validate_reports_every_mistake_with_its_location() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dbc = test_car::dbc_path();
    let config = dir.path().join("car.toml");
    let text = format!(
        "[stream_api]\nendpoint = \"embedded\"\n\n[session]\ndata_source = \"Test Car\"\n\n[car]\napplication = \"Test\"\ndbc = [\"{}\"]\n\n[car.rename]\n\"ENGINE.NO_SUCH\" = \"Nope\"\n\n[[source]]\nname = \"usb\"\nkind = \"serial\"\ndevice = \"/dev/ttyUSB0\"\ncan_bitrate = 33333\n",
        dbc.display()
    );
    std::fs::write(&config, text).expect("config");
    let output = bridge(&["validate", "--config"], &[&config]);
    assert!(!output.status.success(), "validate must fail");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let path = config.display();
    for expected in [
        format!("{path}:5:1: [session.data_source]"),
        format!("{path}:12:1: [car]"),
        format!("{path}:18:1: [source[0].can_bitrate]"),
    ] {
        assert!(
            stderr.contains(&expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    assert!(stderr.contains("3 problem(s)"), "{stderr}");

    let fixed = std::fs::read_to_string(&config)
        .expect("config")
        .replace("Test Car", "TestCar")
        .replace("ENGINE.NO_SUCH", "ENGINE.RPM")
        .replace("33333", "500000");
    std::fs::write(&config, fixed).expect("config");
    let output = bridge(&["validate", "--config"], &[&config]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("ok — 11 parameters"));
}

/// The bundled sim-rig example, run as a user would: `validate`, then `replay` of its capture
/// through the whole pipeline into the embedded Stream API.
#[test]
fn the_sim_rig_example_validates_and_replays_with_no_violation() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = root.join("fixtures/sim-car/bridge.toml");
    let output = bridge(&["validate", "--config"], &[&config]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("ok — 24 parameters from 0 DBC file(s) and 1 frame definition(s)"),
        "{stdout}"
    );

    let capture = root.join("fixtures/sim-car/lap.pcapng");
    let output = bridge(&["replay", "--max-speed", "--config"], &[&config, &capture]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        "decoded 80 rows, 1920 samples; published 1920 samples",
        "frames with unknown id or message 40,",
        "Parameters (24):",
        "vCar:SimCar [km/h]: 80 samples",
        "Protocol violations (0):",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
}

/// A car on a built-in ECU profile, as a user would set it up: `profiles` lists it, `validate`
/// accepts it (and names the known profiles for a typo), `replay` publishes its frames.
#[test]
fn a_car_on_a_built_in_ecu_profile_validates_and_replays() {
    let listed = bridge(&["profiles"], &[]);
    let listing = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.status.success());
    for profile in decoders::profiles::all() {
        assert!(
            listing.contains(profile.name),
            "{} missing:\n{listing}",
            profile.name
        );
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("car.toml");
    let text = "[stream_api]\nendpoint = \"embedded\"\n\n[session]\ndata_source = \"Club\"\n\n[car]\napplication = \"Club\"\nprofile = [\"haltech-v3\"]\n";
    std::fs::write(&config, text).expect("config");
    let output = bridge(&["validate", "--config"], &[&config]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains(&format!("{}:9:1: [car.profile]", config.display()))
            && stderr.contains("haltech-v2"),
        "{stderr}"
    );

    std::fs::write(&config, text.replace("haltech-v3", "haltech-v2")).expect("config");
    let output = bridge(&["validate", "--config"], &[&config]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("ok — 292 parameters"), "{stdout}");

    // Haltech 0x360 (RPM, MAP, TPS, ...) ten times, 20 ms apart.
    let capture = dir.path().join("club.log");
    let lines: String = (0..10u64)
        .map(|n| {
            format!(
                "({}.{:06}) can0 360#0BB8{:02X}0000000000\n",
                1_778_936_400 + n / 50,
                (n % 50) * 20_000,
                n
            )
        })
        .collect();
    std::fs::write(&capture, lines).expect("capture");
    let output = bridge(&["replay", "--max-speed", "--config"], &[&config, &capture]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("Protocol violations (0)"), "{stdout}");
    assert!(stdout.contains(": 10 samples"), "{stdout}");
}

/// Every signal of a profile's DBC, which `validate` counts as parameters.
fn signal_count(profile: &decoders::profiles::Profile) -> usize {
    let parsed = decoders::dbc::parse_dbc(profile.dbc_file, profile.dbc).expect("profile loads");
    parsed.dbc.messages.iter().map(|m| m.signals.len()).sum()
}

/// `init` for every profile and both source kinds writes a configuration that `validate`
/// accepts exactly as written, and never overwrites a file.
#[test]
fn init_writes_a_configuration_that_validates_for_every_profile() {
    let dir = tempfile::tempdir().expect("temp dir");
    for profile in decoders::profiles::all() {
        for (kind, source) in [
            ("udp", "udp:0.0.0.0:20000"),
            ("serial", "serial:/dev/serial/by-id/usb-ECU_Adapter-if00"),
        ] {
            let out = dir.path().join(format!("{}-{kind}.toml", profile.name));
            let args = [
                "init",
                "--profile",
                profile.name,
                "--source",
                source,
                "--out",
            ];
            let output = bridge(&args, &[&out]);
            assert!(
                output.status.success(),
                "{}: {}",
                profile.name,
                String::from_utf8_lossy(&output.stderr)
            );
            let written = std::fs::read_to_string(&out).expect("written");
            assert!(written.contains(&format!("profile = [\"{}\"]", profile.name)));

            let output = bridge(&["validate", "--config"], &[&out]);
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(
                output.status.success(),
                "{} {kind}: {stdout}{}\n{written}",
                profile.name,
                String::from_utf8_lossy(&output.stderr)
            );
            let expected = format!(
                "ok — {} parameters from 0 DBC file(s) and 0 frame definition(s), 1 source(s), 0 warning(s)",
                signal_count(profile)
            );
            assert!(stdout.contains(&expected), "{}: {stdout}", profile.name);

            let again = bridge(
                &["init", "--profile", "aemnet", "--source", source, "--out"],
                &[&out],
            );
            assert!(!again.status.success());
            let stderr = String::from_utf8_lossy(&again.stderr);
            assert!(stderr.contains("never overwrites"), "{stderr}");
            assert_eq!(std::fs::read_to_string(&out).expect("kept"), written);
        }
    }

    let to_stdout = bridge(
        &[
            "init",
            "--profile",
            "rusefi",
            "--source",
            "udp:0.0.0.0:20000",
        ],
        &[],
    );
    let text = String::from_utf8_lossy(&to_stdout.stdout);
    assert!(to_stdout.status.success());
    assert!(text.starts_with("# ecu-bridge configuration"), "{text}");
    let wrong = bridge(&["init", "--profile", "rusefi", "--source", "can0"], &[]);
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("udp:ADDRESS:PORT"));
}

/// Link Generic Dash sends every frame index on one CAN id: replayed from `init`'s
/// configuration into a strict embedded Stream API, every index becomes its own data format
/// (each parameter's samples all come from frames of one index) and nothing is refused.
#[test]
fn link_generic_dash_frame_indices_replay_into_a_strict_server_with_no_violation() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("link.toml");
    let output = bridge(
        &[
            "init",
            "--profile",
            "link-generic-dash",
            "--source",
            "udp:127.0.0.1:0",
            "--out",
        ],
        &[&config],
    );
    assert!(output.status.success());
    let recording = dir.path().join("link.osrec");
    let text = std::fs::read_to_string(&config)
        .expect("config")
        .replace(
            "endpoint = \"embedded\"",
            &format!(
                "endpoint = \"embedded\"\nstrict = true\nrecord = \"{}\"",
                recording.display()
            ),
        )
        .replace("127.0.0.1:9464", "127.0.0.1:0");
    std::fs::write(&config, text).expect("config");

    // Three rounds of frame indices 0-13 on id 1000, 5 ms apart: byte 0 the index, byte 1 zero.
    let start_ns = 1_778_936_400_000_000_000u64;
    let mut index_at = std::collections::BTreeMap::new();
    let mut lines = String::new();
    for n in 0..42u64 {
        let index = n % 14;
        let time_ns = start_ns + n * 5_000_000;
        index_at.insert(time_ns, index);
        lines += &format!(
            "({}.{:06}) can0 3E8#{index:02X}00{:02X}{:02X}10203040\n",
            time_ns / 1_000_000_000,
            time_ns % 1_000_000_000 / 1_000,
            n,
            n * 3
        );
    }
    let capture = dir.path().join("link.log");
    std::fs::write(&capture, lines).expect("capture");
    let output = bridge(&["replay", "--max-speed", "--config"], &[&config, &capture]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("Protocol violations (0)"), "{stdout}");
    assert!(!stdout.contains("refused by the Stream API"), "{stdout}");

    let samples = stream_api::inspect::read_recording(&recording)
        .expect("recording")
        .samples();
    let frame_index = &samples["FrameIndex:Car"];
    assert_eq!(frame_index.len(), 42);
    for (time_ns, value) in frame_index {
        assert_eq!(*value, index_at[time_ns] as f64, "at {time_ns}");
    }
    let mut indices_with_parameters = std::collections::BTreeSet::new();
    for (name, values) in samples.iter().filter(|(name, _)| *name != "FrameIndex:Car") {
        let indices: std::collections::BTreeSet<u64> = values
            .iter()
            .map(|(time_ns, _)| index_at[time_ns])
            .collect();
        assert_eq!(values.len(), 3, "{name}: one sample per round");
        assert_eq!(indices.len(), 1, "{name} comes from frames of one index");
        indices_with_parameters.extend(indices);
    }
    assert_eq!(
        indices_with_parameters.len(),
        14,
        "every frame index published"
    );
}

/// A DBC of `messages` messages with 8 one-byte signals each, named like a factory car's.
pub(crate) fn large_dbc(messages: u32) -> String {
    let mut text = String::from("VERSION \"\"\n\nNS_ :\n\nBS_:\n\nBU_: ECU\n\n");
    for m in 0..messages {
        text.push_str(&format!(
            "BO_ {} POWERTRAIN_MODULE_{m:04}: 8 ECU\n",
            0x100 + m
        ));
        for s in 0..8 {
            text.push_str(&format!(
                " SG_ PT_{m:04}_CHANNEL_SIGNAL_{s} : {}|8@1+ (0.25,-40) [-40|23.75] \"degC\" Vector__XXX\n",
                s * 8
            ));
        }
        text.push('\n');
    }
    text
}

/// An 11 200-parameter map (a factory car's DBC set) makes a Configuration packet a v1.3
/// Stream API would drop: `validate` refuses it naming the size and the fix, and so does
/// `replay` before it opens any session; a map that fits passes.
#[test]
fn a_configuration_too_large_for_the_stream_api_is_refused_with_its_size() {
    let dir = tempfile::tempdir().expect("temp dir");
    let write_config = |name: &str, messages: u32| {
        std::fs::write(dir.path().join(format!("{name}.dbc")), large_dbc(messages)).expect("dbc");
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &path,
            format!(
                "[stream_api]\nendpoint = \"embedded\"\n\n[session]\ndata_source = \"Big\"\n\n\
                 [car]\napplication = \"FactoryCar\"\ndbc = [\"{name}.dbc\"]\n"
            ),
        )
        .expect("config");
        path
    };
    let big = write_config("big", 1_400);
    let output = bridge(&["validate", "--config"], &[&big]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("Configuration packet is")
            && stderr.contains("(11200 parameters)")
            && stderr.contains("drops packets over 1000000 bytes")
            && stderr.contains("[car] include/exclude"),
        "{stderr}"
    );
    let capture = dir.path().join("empty.log");
    std::fs::write(&capture, "").expect("capture");
    let output = bridge(&["replay", "--config"], &[&big, &capture]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_ne!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("Configuration packet is"), "{stderr}");

    let small = write_config("small", 100);
    let output = bridge(&["validate", "--config"], &[&small]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `[laps]` and `[[stream]]` mistakes are reported at their keys: a lap parameter the map
/// does not publish, two lap signals, a stream named twice, a stream source that does not
/// exist; once fixed, the configuration validates.
#[test]
fn session_keys_are_checked_at_their_locations() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("car.toml");
    let write = |laps: &str, stream: &str, source: &str| {
        let text = format!(
            "[stream_api]\nendpoint = \"embedded\"\n\n[session]\ndata_source = \"TestCar\"\nidle_end_s = 10\n\n\
             [car]\napplication = \"Test\"\ndbc = [\"{}\"]\nstream = \"can0\"\n\n\
             [laps]\n{laps}\n\n[[stream]]\nname = \"{stream}\"\nsources = [\"{source}\"]\n\n\
             [[source]]\nname = \"gw\"\nkind = \"udp\"\nbind = \"127.0.0.1:0\"\n",
            test_car::dbc_path().display()
        );
        std::fs::write(&config, text).expect("config");
    };
    write(
        "counter = \"LapCount\"\nbeacon = \"RPM\"",
        "can0",
        "nowhere",
    );
    let output = bridge(&["validate", "--config"], &[&config]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    for expected in [
        "[laps] give only one of `counter`, `beacon` or `lap_time`",
        "[stream[0].name] \"can0\" is already a stream",
        "[stream[0].sources[0]] \"nowhere\" is not a [[source]] (known: gw)",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    write("counter = \"LapCount\"", "engine", "gw");
    let output = bridge(&["validate", "--config"], &[&config]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("[laps.counter] \"LapCount:Test\" is not a published parameter"),
        "{stderr}"
    );
    write("counter = \"RPM\"", "engine", "gw");
    let output = bridge(&["validate", "--config"], &[&config]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
