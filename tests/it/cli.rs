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
