//! What the binary tells people outside systemd: a Stream API nobody listens on is reported
//! at once in one line (endpoint, cause, retry count, time left) with no watchdog wording;
//! `run` logs a summary line at its configured interval and a final one on SIGTERM; a replay
//! whose standard output is closed early ends quietly.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use decoders::can::{CanFlags, CanFrame, CanId};
use decoders::wire::cannelloni::encode_datagram;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::daemon::{logged_address, wait_exit};
use crate::see::demo_config;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Starts the bridge outside systemd (no `NOTIFY_SOCKET`) in `dir`; every stderr line is
/// forwarded with the moment it was read.
fn start_plain(
    args: &[&str],
    dir: &Path,
    watchdog_usec: Option<&str>,
) -> (Child, std_mpsc::Receiver<(Instant, String)>) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ecu-bridge"));
    command
        .args(args)
        .current_dir(dir)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(usec) = watchdog_usec {
        command.env("WATCHDOG_USEC", usec);
    }
    let mut child = command.spawn().expect("start the bridge");
    let stderr = child.stderr.take().expect("stderr");
    let (lines, received) = std_mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines.send((Instant::now(), line));
        }
    });
    (child, received)
}

/// The next line containing `marker`, with when it was read; the lines passed over are
/// appended to `seen`.
fn line_with(
    lines: &std_mpsc::Receiver<(Instant, String)>,
    marker: &str,
    limit: Duration,
    seen: &mut Vec<String>,
) -> (Instant, String) {
    let deadline = Instant::now() + limit;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let Ok((at, line)) = lines.recv_timeout(remaining) else {
            panic!(
                "no line with {marker:?} within {limit:?}; seen:\n{}",
                seen.join("\n")
            );
        };
        seen.push(line.clone());
        if line.contains(marker) {
            return (at, line);
        }
    }
}

#[test]
fn an_unreachable_stream_api_is_named_at_once_in_one_line_without_watchdog_words() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let config = demo_config(dir.path(), "", None);
    let text = std::fs::read_to_string(&config).expect("config").replace(
        "endpoint = \"embedded\"",
        &format!("endpoint = {endpoint:?}"),
    );
    std::fs::write(&config, text).expect("config");
    let capture = root().join("fixtures/demo-car/drive.log");
    let started = Instant::now();
    // A 400 ms watchdog period makes the stall check speak within a second or two.
    let (mut child, lines) = start_plain(
        &[
            "replay",
            "--max-speed",
            "--config",
            &config.to_string_lossy(),
            &capture.to_string_lossy(),
        ],
        dir.path(),
        Some("400000"),
    );
    let mut seen = Vec::new();
    let (at, first) = line_with(&lines, " WARN ", Duration::from_secs(10), &mut seen);
    let (_, stall) = line_with(
        &lines,
        "no packet acknowledged",
        Duration::from_secs(10),
        &mut seen,
    );
    let _ = child.kill();
    let _ = child.wait();

    let after = at.duration_since(started);
    assert!(
        after < Duration::from_secs(1),
        "first error after {after:?}: {first}"
    );
    for expected in [
        endpoint.as_str(),
        "CreateSession",
        "Connection refused",
        "retry 1 in",
        "giving up in 1",
    ] {
        assert!(
            first.contains(expected),
            "{expected:?} missing from {first:?}"
        );
    }
    for debug in ["Status {", "source:", "tonic::", "Os {", "ConnectError("] {
        assert!(
            !first.contains(debug),
            "a Debug dump ({debug:?}) in {first:?}"
        );
    }
    assert!(stall.contains("decoded samples have waited"), "{stall}");
    for line in &seen {
        let lower = line.to_lowercase();
        assert!(
            !lower.contains("watchdog") && !lower.contains("stalled"),
            "watchdog wording outside systemd: {line}"
        );
    }
}

#[test]
fn run_logs_a_summary_at_its_interval_and_a_final_one_on_sigterm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = demo_config(dir.path(), "", None);
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str(
        "\n[service]\nsummary_interval_s = 1\n\n[[source]]\nname = \"gw\"\nkind = \"udp\"\nbind = \"127.0.0.1:0\"\n",
    );
    std::fs::write(&config, text).expect("config");
    let (mut child, lines) = start_plain(
        &["run", "--config", &config.to_string_lossy()],
        dir.path(),
        None,
    );
    let (forward, plain_lines) = std_mpsc::channel();
    let (tee, timed) = std_mpsc::channel();
    std::thread::spawn(move || {
        for (at, line) in lines {
            let _ = forward.send(line.clone());
            let _ = tee.send((at, line));
        }
    });
    let udp = logged_address(&plain_lines, "udp source bound", "local_addr=");
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").expect("sender");
    let id = CanId::standard(0x17C).expect("id");
    for sequence in 0..30u8 {
        let frame = CanFrame::new(id, CanFlags::empty(), &[sequence; 8]).expect("frame");
        let mut datagram = Vec::new();
        encode_datagram(sequence, &[frame], &mut datagram);
        sender.send_to(&datagram, &udp).expect("send");
    }
    let mut seen = Vec::new();
    let (first_at, _) = line_with(&timed, "running: ", Duration::from_secs(10), &mut seen);
    let (second_at, second) = line_with(&timed, "running: ", Duration::from_secs(10), &mut seen);
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).expect("SIGTERM");
    let (_, last) = line_with(&timed, "stopped: ", Duration::from_secs(20), &mut seen);
    let status = wait_exit(&mut child);
    assert!(status.success(), "exit {status:?}:\n{}", seen.join("\n"));

    let gap = second_at.duration_since(first_at);
    assert!(
        gap > Duration::from_millis(500) && gap < Duration::from_millis(1_800),
        "summaries {gap:?} apart"
    );
    for line in [&second, &last] {
        for expected in [
            "30 frames in",
            "samples published",
            "waiting",
            "dropped 0 frames",
            "session ",
        ] {
            assert!(
                line.contains(expected),
                "{expected:?} missing from {line:?}"
            );
        }
        assert!(
            !line.contains("session none yet"),
            "a session was open: {line}"
        );
    }
}

#[test]
fn a_replay_into_a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = demo_config(dir.path(), "", None);
    let capture = root().join("fixtures/demo-car/drive.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ecu-bridge"))
        .args(["replay", "--max-speed", "--config"])
        .arg(&config)
        .arg(&capture)
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // The reader is gone before the summary is written, as `| head -0` would be.
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}: {stderr}",
        output.status.code()
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{stderr}"
    );
}

#[test]
fn a_zero_health_grace_is_refused_at_its_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = demo_config(dir.path(), "", None);
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str("\n[service]\nhealth_grace_ms = 0\n");
    std::fs::write(&config, &text).expect("config");
    let line = text.lines().count();
    let output = crate::cli::bridge(&["validate", "--config"], &[&config]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    let expected = format!(
        "{}:{line}:1: [service.health_grace_ms] must be positive",
        config.display()
    );
    assert!(
        stderr.contains(&expected),
        "{expected:?} missing from {stderr}"
    );
}
