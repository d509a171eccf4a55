//! The live view as an engineer meets it: `ecu-bridge run` on a configuration from `init`,
//! Haltech frames over UDP (cannelloni) on 127.0.0.1, `/values` read as JSON, and
//! `ecu-bridge watch` drawing on a real pseudo-terminal (a tmux pane, whose screen tmux
//! returns as text).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use decoders::can::{CanFlags, CanFrame, CanId};
use decoders::wire::cannelloni::encode_datagram;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::daemon::{http_get, logged_address, start, wait_exit};

/// A tmux server of the test's own (its socket in the test's folder), ended on drop.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .env("TERM", "xterm-256color")
            .output()
            .expect("tmux runs (.ci/run installs it)")
    }

    /// The pane's screen as text, one line per row.
    fn screen(&self) -> String {
        let output = self.run(&["capture-pane", "-p", "-t", "watch"]);
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Waits until the screen contains every one of `wanted`; the last screen.
    fn wait_for(&self, wanted: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let screen = self.screen();
            if wanted.iter().all(|w| screen.contains(w)) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "screen never showed {wanted:?}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// Haltech V2 0x360 (`EngineCore`): rpm, MAP ×10 kPa, TPS ×10 %, coolant pressure
/// (×10 kPa + 101.3), each 16 bits big-endian.
fn engine_core(rpm: u16, map_decikpa: u16, tps_permille: u16, coolant_raw: u16) -> CanFrame {
    let mut data = [0u8; 8];
    for (slot, value) in data
        .chunks_mut(2)
        .zip([rpm, map_decikpa, tps_permille, coolant_raw])
    {
        slot.copy_from_slice(&value.to_be_bytes());
    }
    CanFrame::new(
        CanId::standard(0x360).expect("id"),
        CanFlags::empty(),
        &data,
    )
    .expect("frame")
}

/// Sends `count` datagrams of two copies of `frame` to `udp`, sequence numbers from `first`.
fn send(udp: &str, frame: CanFrame, first: u8, count: u8) {
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").expect("sender");
    for sequence in first..first + count {
        let mut datagram = Vec::new();
        encode_datagram(sequence, &[frame, frame], &mut datagram);
        sender.send_to(&datagram, udp).expect("send");
    }
}

/// `/values` as JSON, once `ready` holds for it.
fn values_when(metrics: &str, ready: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, response) = http_get(metrics, "/values");
        assert_eq!(status, 200, "{response}");
        assert!(
            response.contains("Content-Type: application/json"),
            "{response}"
        );
        let body = response.split("\r\n\r\n").nth(1).expect("body");
        let values: serde_json::Value = serde_json::from_str(body).expect("JSON");
        if ready(&values) {
            return values;
        }
        assert!(Instant::now() < deadline, "never ready: {values}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn parameter<'a>(values: &'a serde_json::Value, identifier: &str) -> &'a serde_json::Value {
    values["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["identifier"] == identifier)
        .unwrap_or_else(|| panic!("{identifier} in {values}"))
}

/// A Haltech car from `init`, with the metrics endpoint and the UDP source on port 0 and the
/// embedded Stream API recording into `dir`.
fn haltech_config(dir: &Path) -> PathBuf {
    let config = dir.join("car.toml");
    let output = Command::new(env!("CARGO_BIN_EXE_ecu-bridge"))
        .args(["init", "--profile", "haltech-v2"])
        .args(["--source", "udp:127.0.0.1:0", "--out"])
        .arg(&config)
        .output()
        .expect("init");
    assert!(output.status.success());
    let text = std::fs::read_to_string(&config)
        .expect("config")
        .replace(
            "endpoint = \"embedded\"",
            &format!(
                "endpoint = \"embedded\"\nrecord = \"{}\"",
                dir.join("embedded.osrec").display()
            ),
        )
        .replace("127.0.0.1:9464", "127.0.0.1:0")
        + "\n[batch]\nmax_age_ms = 20\n\n[spool]\ndir = \"spool\"\n";
    std::fs::write(&config, text).expect("config");
    config
}

/// The running bridge; killed if a failed assertion leaves it running.
struct Bridge(Child);

impl Bridge {
    fn stop(mut self) {
        kill(Pid::from_raw(self.0.id() as i32), Signal::SIGTERM).expect("SIGTERM bridge");
        assert!(wait_exit(&mut self.0).success(), "the bridge exits cleanly");
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn values_endpoint_serves_latest_values_rates_and_counters() {
    let dir = tempfile::tempdir().expect("temp dir");
    let notify = dir.path().join("notify.sock");
    let _notify = std::os::unix::net::UnixDatagram::bind(&notify).expect("notify socket");
    let config = haltech_config(dir.path());
    let (bridge, log) = start(
        &["run", "--config", config.to_str().expect("utf-8")],
        &notify,
    );
    let bridge = Bridge(bridge);
    let udp = logged_address(&log, "udp source bound", "local_addr=");
    let metrics = logged_address(&log, "metrics endpoint listening", "address=");

    // The table fills when the decode stage starts, just after the endpoint.
    let before = values_when(&metrics, |v| {
        v["parameters"].as_array().is_some_and(|p| !p.is_empty())
    });
    assert_eq!(
        parameter(&before, "EngineSpeed:Car")["value"],
        serde_json::Value::Null
    );
    assert_eq!(before["parameters"].as_array().map(Vec::len), Some(292));
    assert_eq!(before["counters"]["frames_in"], 0);

    send(&udp, engine_core(3000, 1013, 250, 3013), 0, 5);
    send(&udp, engine_core(4321, 1500, 875, 3013), 5, 5);
    let values = values_when(&metrics, |v| v["counters"]["frames_in"] == 20);
    let rpm = parameter(&values, "EngineSpeed:Car");
    assert_eq!(rpm["value"], 4321.0, "the latest value: {rpm}");
    assert_eq!(rpm["unit"], "rpm");
    assert_eq!(rpm["samples"], 20);
    assert!(rpm["rate_hz"].as_f64().expect("rate") > 0.0, "{rpm}");
    assert_eq!(parameter(&values, "ManifoldPressure:Car")["value"], 150.0);
    assert_eq!(parameter(&values, "ThrottlePosition:Car")["value"], 87.5);
    let coolant = parameter(&values, "CoolantPressure:Car")["value"]
        .as_f64()
        .expect("value");
    assert!((coolant - 200.0).abs() < 1e-9, "{coolant}");
    assert_eq!(parameter(&values, "FuelPressure:Car")["samples"], 0);
    assert_eq!(values["counters"]["frames_dropped"], 0);
    assert!(
        values["counters"]["samples_decoded"]
            .as_u64()
            .is_some_and(|n| n == 80),
        "{}",
        values["counters"]
    );
    bridge.stop();
}

#[test]
fn watch_on_a_terminal_shows_the_latest_values_of_a_running_bridge() {
    let dir = tempfile::tempdir().expect("temp dir");
    let notify = dir.path().join("notify.sock");
    let _notify = std::os::unix::net::UnixDatagram::bind(&notify).expect("notify socket");
    let config = haltech_config(dir.path());
    let (bridge, log) = start(
        &["run", "--config", config.to_str().expect("utf-8")],
        &notify,
    );
    let bridge = Bridge(bridge);
    let udp = logged_address(&log, "udp source bound", "local_addr=");
    let metrics = logged_address(&log, "metrics endpoint listening", "address=");

    let tmux = Tmux {
        socket: dir.path().join("tmux.sock"),
    };
    // Through a shell that reports how watch ended, so the pane stays readable afterwards.
    let script = "\"$0\" watch --endpoint \"$1\"; echo \"watch exited $?\"; sleep 60";
    let started = tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "watch",
        "-x",
        "120",
        "-y",
        "30",
        "sh",
        "-c",
        script,
        env!("CARGO_BIN_EXE_ecu-bridge"),
        &metrics,
    ]);
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    tmux.wait_for(&["ecu-bridge watch", &metrics, "0 of 292 parameters seen"]);

    send(&udp, engine_core(4321, 1013, 250, 3013), 0, 5);
    let screen = tmux.wait_for(&["4 of 292 parameters seen", "4321", "101.3", "25.0"]);
    for name in [
        "EngineSpeed:Car",
        "ManifoldPressure:Car",
        "ThrottlePosition:Car",
        "CoolantPressure:Car",
    ] {
        assert!(screen.contains(name), "{name} missing:\n{screen}");
    }
    let rpm_row = screen
        .lines()
        .find(|line| line.contains("EngineSpeed:Car"))
        .expect("row");
    assert!(
        rpm_row.contains("4321") && rpm_row.contains("rpm"),
        "{rpm_row}"
    );

    send(&udp, engine_core(6543, 1500, 875, 3013), 5, 5);
    let screen = tmux.wait_for(&["6543", "150.0", "87.5", "frames in 20"]);
    // Below the title line (whose endpoint port may contain any digits), the old value is gone.
    let body: Vec<&str> = screen.lines().skip(1).collect();
    assert!(
        body.iter().all(|line| !line.contains("4321")),
        "only the latest value:\n{screen}"
    );
    let rpm_row = body
        .iter()
        .find(|line| line.contains("EngineSpeed:Car"))
        .expect("row");
    assert!(rpm_row.contains("6543"), "{rpm_row}");

    tmux.run(&["send-keys", "-t", "watch", "q"]);
    tmux.wait_for(&["watch exited 0"]);
    bridge.stop();
}
