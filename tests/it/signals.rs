//! Signals on the real binary: SIGTERM in the middle of a paced replay publishes every sample
//! read so far, writes EndOfSession on every stream, ends the session and exits 0.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::Duration;

use decoders::can::{CanFlags, CanFrame};
use decoders::wire::candump::write_line;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use stream_api::{self, ServerOptions, inspect};
use tokio::net::TcpListener;

use crate::test_car;

const T0: u64 = 1_778_936_400_000_000_000;

/// 30 s of ENGINE frames at 100 Hz; returns the capture's frame times.
fn write_capture(path: &Path) -> Vec<u64> {
    let dbc = test_car::dbc();
    let message = dbc.message_by_name("ENGINE").expect("ENGINE");
    let rpm = message
        .signals
        .iter()
        .find(|s| s.name == "RPM")
        .expect("RPM")
        .layout();
    let mut out = String::new();
    let mut times = Vec::new();
    for n in 0..3000u64 {
        let mut data = [0u8; 8];
        rpm.encode(n as f64, &mut data).expect("encodable");
        let frame = CanFrame::new(message.id, CanFlags::empty(), &data).expect("frame");
        let time = T0 + n * 10_000_000;
        write_line(time, "can0", &frame, &mut out);
        times.push(time);
    }
    std::fs::write(path, out).expect("capture");
    times
}

fn write_config(dir: &Path, endpoint: &str) -> PathBuf {
    let text = format!(
        "[stream_api]\nendpoint = \"{endpoint}\"\ndrain_timeout_ms = 1000\n\n[session]\ndata_source = \"SignalCar\"\nidentifier = \"sigterm test\"\n\n[car]\napplication = \"SignalCar\"\ndbc = [\"{}\"]\ninclude = [\"ENGINE.RPM\"]\nstream = \"can0\"\n\n[batch]\nmax_age_ms = 50\n",
        test_car::dbc_path().display()
    );
    let path = dir.join("bridge.toml");
    std::fs::write(&path, text).expect("config");
    path
}

/// A strict Stream API recording to a file, a 30 s capture and a configuration pointing at it.
struct Setup {
    dir: tempfile::TempDir,
    record: PathBuf,
    server: stream_api::ServerHandle,
    capture: PathBuf,
    times: Vec<u64>,
    config: PathBuf,
}

impl Setup {
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let record = dir.path().join("server.osrec");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let options = ServerOptions {
            strict: true,
            record: Some(record.clone()),
        };
        let server = stream_api::spawn(listener, options).await.expect("server");
        let capture = dir.path().join("drive.log");
        let times = write_capture(&capture);
        let config = write_config(dir.path(), &format!("http://{}", server.local_addr()));
        Self {
            dir,
            record,
            server,
            capture,
            times,
            config,
        }
    }
}

/// Waits for the child to exit, at most `limit`.
async fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "bridge did not exit in {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn sigterm_mid_replay_drains_ends_the_session_and_exits_zero() {
    let Setup {
        dir: _dir, // kept alive: the temporary files live as long as the test
        record,
        server,
        capture,
        times,
        config,
    } = Setup::new().await;

    let mut child = Command::new(env!("CARGO_BIN_EXE_ecu-bridge"))
        .args(["replay", "--config"])
        .arg(&config)
        .args(["--speed", "1"])
        .arg(&capture)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start the bridge");
    // NewSession and Configuration on two streams, then data and the Out Lap markers: the
    // replay is under way once a few data packets have arrived.
    let seen = tokio::time::timeout(
        Duration::from_secs(20),
        server.wait_until(|s| s.packets >= 10),
    )
    .await
    .expect("data flowing");
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).expect("send SIGTERM");
    let status = wait_exit(&mut child, Duration::from_secs(20)).await;
    assert!(status.success(), "exit status {status:?}");
    server.shutdown().await.expect("server stops");

    let recording = inspect::read_recording(&record).expect("recording");
    assert_eq!(
        recording.violations(),
        vec![],
        "EndOfSession on every stream before EndSession"
    );
    let session = &recording.sessions()[0];
    assert!(session.ended_ns.is_some(), "EndSession received");
    let published: Vec<u64> = recording.samples()["RPM:SignalCar"]
        .iter()
        .map(|(t, _)| *t)
        .collect();
    assert!(
        published.len() > 1 && published.len() < times.len(),
        "stopped mid-replay: {}",
        published.len()
    );
    assert_eq!(
        published,
        times[..published.len()],
        "every sample read before the signal, no holes"
    );
    assert!(seen.packets >= 10);
}

/// Polls the server's recording until `condition` holds on its samples (bounded).
async fn until_recorded(
    record: &Path,
    mut condition: impl FnMut(&std::collections::BTreeMap<String, Vec<(u64, f64)>>) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(recording) = inspect::read_recording(record)
            && condition(&recording.samples())
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "recording never showed the change"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn sighup_reloads_a_renamed_channel_and_rejects_a_broken_map() {
    let Setup {
        dir,
        record,
        server,
        capture,
        times,
        config,
    } = Setup::new().await;
    let original = std::fs::read_to_string(&config).expect("config");
    let log = dir.path().join("bridge.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ecu-bridge"))
        .args(["replay", "--config"])
        .arg(&config)
        .args(["--speed", "1"])
        .arg(&capture)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start the bridge");
    let pid = Pid::from_raw(child.id() as i32);
    tokio::time::timeout(
        Duration::from_secs(20),
        server.wait_until(|s| s.packets >= 10),
    )
    .await
    .expect("data flowing");

    std::fs::write(
        &config,
        format!("{original}\n[car.rename]\n\"ENGINE.RPM\" = \"EngineSpeed\"\n"),
    )
    .expect("renamed map");
    kill(pid, Signal::SIGHUP).expect("SIGHUP");
    until_recorded(&record, |samples| {
        samples.contains_key("EngineSpeed:SignalCar")
    })
    .await;

    std::fs::write(&config, original.replace("test_car.dbc", "missing.dbc")).expect("broken map");
    kill(pid, Signal::SIGHUP).expect("SIGHUP");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("reload rejected")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no rejection logged"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let renamed_so_far = inspect::read_recording(&record)
        .expect("recording")
        .samples()["EngineSpeed:SignalCar"]
        .len();
    until_recorded(&record, |samples| {
        samples["EngineSpeed:SignalCar"].len() > renamed_so_far + 20
    })
    .await;

    kill(pid, Signal::SIGTERM).expect("SIGTERM");
    let status = wait_exit(&mut child, Duration::from_secs(20)).await;
    assert!(status.success(), "exit status {status:?}");
    server.shutdown().await.expect("server stops");

    let log = std::fs::read_to_string(&log).expect("log");
    assert!(
        log.contains("missing.dbc"),
        "the rejection names the problem:\n{log}"
    );
    let recording = inspect::read_recording(&record).expect("recording");
    assert_eq!(
        recording.violations(),
        vec![],
        "the new configuration precedes the renamed data"
    );
    let samples = recording.samples();
    let before: Vec<u64> = samples["RPM:SignalCar"].iter().map(|(t, _)| *t).collect();
    let after: Vec<u64> = samples["EngineSpeed:SignalCar"]
        .iter()
        .map(|(t, _)| *t)
        .collect();
    let all: Vec<u64> = before.iter().chain(&after).copied().collect();
    assert_eq!(
        all,
        times[..all.len()],
        "no sample lost or repeated across the reloads"
    );
    assert!(!before.is_empty() && after.len() > 20);
}
