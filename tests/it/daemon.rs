//! The daemon as systemd runs it, in-process through `daemon::run`: sd_notify messages on a
//! socket the test owns (READY, WATCHDOG, STATUS, STOPPING in order; WATCHDOG stops when a
//! stage stalls), and the metrics endpoint scraped while traffic flows, its counters matching
//! what was sent. Also the helpers the real-binary tests (`frames.rs`) share.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use decoders::can::{CanFlags, CanFrame, CanId};
use decoders::wire::candump::write_line;
use decoders::wire::cannelloni::encode_datagram;
use ecu_bridge::capture::replay::Pacing;
use ecu_bridge::config::Config;
use ecu_bridge::daemon::{self, Daemon};
use ecu_bridge::pipeline::sources::{self, LiveSources};
use ecu_bridge::service::ServiceOptions;
use ecu_bridge::service::notify::Notifier;
use stream_api::{self, ServerOptions};
use tokio::net::{TcpListener, UnixDatagram};
use tokio::sync::oneshot;

use crate::test_car;

fn write_capture(path: &Path, frames: u64) {
    let id = CanId::standard(0x100).expect("id");
    let mut out = String::new();
    for n in 0..frames {
        let frame = CanFrame::new(id, CanFlags::empty(), &(n as u16).to_le_bytes()).expect("frame");
        write_line(
            1_778_936_400_000_000_000 + n * 10_000_000,
            "can0",
            &frame,
            &mut out,
        );
    }
    std::fs::write(path, out).expect("capture");
}

fn write_config(dir: &Path, endpoint: &str, extra: &str) -> PathBuf {
    let text = format!(
        "[stream_api]\nendpoint = \"{endpoint}\"\ncall_timeout_ms = 60000\ndrain_timeout_ms = 500\n\n[session]\ndata_source = \"DaemonCar\"\n\n[car]\napplication = \"DaemonCar\"\ndbc = [\"{}\"]\ninclude = [\"ENGINE\"]\n\n[batch]\nmax_age_ms = 20\n\n[service]\nmetrics_listen = \"127.0.0.1:0\"\n{extra}",
        test_car::dbc_path().display()
    );
    let path = dir.join("bridge.toml");
    std::fs::write(&path, text).expect("config");
    path
}

/// Starts the bridge with `args`, the notify socket and a 400 ms watchdog; stderr lines are
/// forwarded to the returned channel.
pub(crate) fn start(args: &[&str], notify: &Path) -> (Child, std_mpsc::Receiver<String>) {
    // In the test's folder (the notify socket's), so that nothing a run writes by default
    // (a spool) lands in the checkout.
    let mut child = Command::new(env!("CARGO_BIN_EXE_ecu-bridge"))
        .args(args)
        .current_dir(notify.parent().unwrap_or(Path::new(".")))
        .env("NOTIFY_SOCKET", notify)
        .env("WATCHDOG_USEC", "400000")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the bridge");
    let stderr = child.stderr.take().expect("stderr");
    let (lines, received) = std_mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    (child, received)
}

/// The `field=` value of the first log line containing `marker`.
pub(crate) fn logged_address(
    lines: &std_mpsc::Receiver<String>,
    marker: &str,
    field: &str,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let line = lines
            .recv_timeout(deadline - Instant::now())
            .expect("log line in time");
        if line.contains(marker) {
            let address = line.split(field).nth(1).expect("address field");
            return address
                .split_whitespace()
                .next()
                .expect("address")
                .trim_matches('"')
                .to_owned();
        }
    }
}

/// Reads notify datagrams until `until` holds for the list so far (bounded).
async fn notifications(
    socket: &UnixDatagram,
    seen: &mut Vec<String>,
    until: impl Fn(&[String]) -> bool,
) {
    let mut buffer = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !until(seen) {
        let n = tokio::time::timeout_at(deadline, socket.recv(&mut buffer))
            .await
            .expect("notification in time")
            .expect("recv");
        seen.extend(
            String::from_utf8_lossy(&buffer[..n])
                .lines()
                .map(str::to_owned),
        );
    }
}

pub(crate) fn http_get(address: &str, path: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(address).expect("connect metrics");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, response)
}

pub(crate) fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "bridge did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A daemon with sd_notify to `notify`, a 400 ms watchdog and a metrics endpoint on port 0
/// (its address returned).
/// A "Stream API" that accepts connections and never answers, so a publish stage using it
/// stalls. Its connections stay open while the returned thread handle lives.
fn silent_stream_api() -> (
    std::net::SocketAddr,
    std::thread::JoinHandle<Vec<std::net::TcpStream>>,
) {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = silent.local_addr().expect("address");
    let held = std::thread::spawn(move || {
        silent
            .incoming()
            .take(4)
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    (address, held)
}

/// [`service_daemon`] replaying 3 000 frames (30 s) at their captured timing.
async fn paced_replay_daemon(config: Config, dir: &Path, notify: &Path) -> (Daemon, String) {
    let capture = dir.join("drive.log");
    write_capture(&capture, 3000);
    let (map, _) = config.load_channel_map().expect("map");
    let inputs = std::sync::Arc::new(sources::replay_inputs(&config, &map, None).expect("inputs"));
    let options = sources::ReplayOptions::new(Pacing::Speed(1.0));
    let replay = sources::replay_sources(vec![capture], options, inputs)
        .await
        .expect("replay");
    service_daemon(config, replay, notify).await
}

async fn service_daemon(
    config: Config,
    sources: Vec<sources::Source>,
    notify: &Path,
) -> (Daemon, String) {
    let (map, _) = config.load_channel_map().expect("map");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let metrics = listener.local_addr().expect("address").to_string();
    let daemon = Daemon {
        service: ServiceOptions {
            notifier: Notifier::connect(notify.as_os_str()).expect("notifier"),
            watchdog: Some(Duration::from_millis(400)),
            metrics_listener: Some(listener),
        },
        ..Daemon::new(config, map, sources)
    };
    (daemon, metrics)
}

// Multi-threaded: the test blocks on HTTP reads while the daemon and the server run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_order_metrics_and_health_on_a_live_udp_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).expect("notify socket");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let server = stream_api::spawn(listener, ServerOptions::default())
        .await
        .expect("server");
    let source = "\n[[source]]\nname = \"gw\"\nkind = \"udp\"\nbind = \"127.0.0.1:0\"\nreceive_buffer_bytes = 1048576\n";
    let config_path = write_config(
        dir.path(),
        &format!("http://{}", server.local_addr()),
        source,
    );
    let config = Config::load(&config_path).expect("config");
    let (map, _) = config.load_channel_map().expect("map");
    let live = LiveSources::prepare(&config, &map, None).expect("sources");
    let udp = live.udp_addresses[0].1;
    let (mut daemon, metrics) = service_daemon(config, live.sources, &notify_path).await;
    daemon.source_metrics = live.metrics;
    let (stop, stopped) = oneshot::channel::<()>();
    let run = tokio::spawn(daemon::run(daemon, async {
        let _ = stopped.await;
    }));

    let mut seen = Vec::new();
    notifications(&notify, &mut seen, |s| s.iter().any(|m| m == "READY=1")).await;
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").expect("sender");
    let id = CanId::standard(0x100).expect("id");
    let sent = 40u8;
    for sequence in (0..=sent).filter(|s| *s != 20) {
        let frame =
            CanFrame::new(id, CanFlags::empty(), &[sequence, 0, 0, 0, 0, 0, 0, 0]).expect("frame");
        let mut datagram = Vec::new();
        encode_datagram(sequence, &[frame, frame], &mut datagram);
        sender.send_to(&datagram, udp).expect("send");
    }
    sender.send_to(&[7, 7, 7], udp).expect("send garbage");
    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        let (status, body) = http_get(&metrics, "/metrics");
        assert_eq!(status, 200);
        if body.contains("ecu_bridge_source_reads_total{source=\"gw\"} 41")
            && body.contains("ecu_bridge_samples_published_total 320")
        {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "counters never reached the traffic sent:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for line in [
        "ecu_bridge_source_frames_total{source=\"gw\"} 80",
        "ecu_bridge_source_sequence_gaps_total{source=\"gw\"} 1",
        "ecu_bridge_source_kernel_drops_total{source=\"gw\"} 0",
        "ecu_bridge_source_decode_errors_total{source=\"gw\",kind=\"bad_version\"} 1",
        "ecu_bridge_frames_in_total 80",
        "ecu_bridge_session_state 1",
        "ecu_bridge_stream_reopens_total 0",
        "ecu_bridge_queue_depth{stage=\"decode\"} ",
    ] {
        assert!(body.contains(line), "missing {line:?} in\n{body}");
    }
    let bytes: u64 = body
        .lines()
        .find_map(|line| line.strip_prefix("ecu_bridge_bytes_published_total "))
        .and_then(|value| value.parse().ok())
        .expect("bytes published");
    // 320 samples of 11 bytes each, plus row framing and timestamps.
    assert!(bytes > 320 * 11, "{bytes} bytes published");
    assert_eq!(http_get(&metrics, "/health").0, 200);
    notifications(&notify, &mut seen, |s| {
        s.iter().filter(|m| *m == "WATCHDOG=1").count() >= 2
    })
    .await;

    stop.send(()).expect("daemon running");
    notifications(&notify, &mut seen, |s| s.iter().any(|m| m == "STOPPING=1")).await;
    let report = run.await.expect("daemon task").expect("daemon run");
    assert_eq!(
        report.summary.frames_per_source,
        vec![("gw".to_owned(), 80)]
    );
    server.shutdown().await.expect("server stops");

    let position = |wanted: &str| {
        seen.iter()
            .position(|m| m.starts_with(wanted))
            .expect(wanted)
    };
    let (ready, watchdog, status_line, stopping) = (
        position("READY=1"),
        position("WATCHDOG=1"),
        position("STATUS="),
        position("STOPPING=1"),
    );
    assert!(
        ready < watchdog && watchdog < stopping && status_line < stopping,
        "order: {seen:?}"
    );
    assert!(
        seen[stopping..].iter().all(|m| m != "WATCHDOG=1"),
        "no ping after STOPPING: {seen:?}"
    );
    assert!(
        seen.iter()
            .any(|m| m.starts_with("STATUS=") && m.contains("frames/s")),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchdog_pings_stop_while_the_publish_stage_is_stalled() {
    let dir = tempfile::tempdir().expect("temp dir");
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).expect("notify socket");
    let (address, held) = silent_stream_api();
    let config_path = write_config(dir.path(), &format!("http://{address}"), "");
    let config = Config::load(&config_path).expect("config");
    let (daemon, _) = paced_replay_daemon(config, dir.path(), &notify_path).await;
    let run = tokio::spawn(daemon::run(daemon, std::future::pending()));
    let mut seen = Vec::new();
    notifications(&notify, &mut seen, |s| {
        s.iter().any(|m| m.starts_with("STATUS=stalled"))
    })
    .await;
    let stalled_at = seen
        .iter()
        .position(|m| m.starts_with("STATUS=stalled"))
        .expect("stalled");
    // Keep listening for several watchdog periods (200 ms each): still no ping.
    let mut buffer = vec![0u8; 4096];
    let quiet_until = tokio::time::Instant::now() + Duration::from_millis(1200);
    while let Ok(received) = tokio::time::timeout_at(quiet_until, notify.recv(&mut buffer)).await {
        let n = received.expect("recv");
        seen.extend(
            String::from_utf8_lossy(&buffer[..n])
                .lines()
                .map(str::to_owned),
        );
    }
    run.abort();
    drop(held);
    assert!(seen.iter().any(|m| m == "READY=1"), "{seen:?}");
    assert!(
        seen[stalled_at..].iter().all(|m| m != "WATCHDOG=1"),
        "pings after the stall: {seen:?}"
    );
    assert!(
        seen[stalled_at..]
            .iter()
            .filter(|m| m.starts_with("STATUS=stalled"))
            .count()
            >= 3,
        "{seen:?}"
    );
}

/// A Stream API that accepts and never answers: decoded samples pile up in front of the
/// publish stage. `/health` turns 503 once they waited the grace with nothing acknowledged,
/// and the queue gauges show the backlog although the publish stage never receives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_fails_and_queue_gauges_fill_while_the_publish_stage_is_stalled() {
    let dir = tempfile::tempdir().expect("temp dir");
    let notify_path = dir.path().join("notify.sock");
    let _notify = UnixDatagram::bind(&notify_path).expect("notify socket");
    let (address, held) = silent_stream_api();
    let config_path = write_config(
        dir.path(),
        &format!("http://{address}"),
        "health_grace_ms = 500\n",
    );
    let config = Config::load(&config_path).expect("config");
    assert_eq!(config.service.health_grace, Duration::from_millis(500));
    let (daemon, metrics) = paced_replay_daemon(config, dir.path(), &notify_path).await;
    let run = tokio::spawn(daemon::run(daemon, std::future::pending()));
    let deadline = Instant::now() + Duration::from_secs(15);
    let body = loop {
        let (health, _) = http_get(&metrics, "/health");
        let (_, body) = http_get(&metrics, "/metrics");
        if health == 503 && !body.contains("ecu_bridge_queue_depth{stage=\"publish\"} 0") {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "health {health}, never unhealthy with a full queue:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    run.abort();
    drop(held);
    let depth: u64 = body
        .lines()
        .find_map(|line| line.strip_prefix("ecu_bridge_queue_depth{stage=\"publish\"} "))
        .and_then(|value| value.parse().ok())
        .expect("publish queue depth");
    assert!(depth > 0, "{body}");
    assert!(
        body.contains("ecu_bridge_samples_published_total 0"),
        "nothing acknowledged: {body}"
    );
}

/// `run` with the embedded endpoint and no `[stream_api] record`: the server records nothing
/// (a long run must not grow a file), and still reports what it received.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_run_records_nothing_unless_asked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let source = "\n[[source]]\nname = \"gw\"\nkind = \"udp\"\nbind = \"127.0.0.1:0\"\n";
    let config_path = write_config(dir.path(), "embedded", source);
    let config = Config::load(&config_path).expect("config");
    let (map, _) = config.load_channel_map().expect("map");
    let live = LiveSources::prepare(&config, &map, None).expect("sources");
    let udp = live.udp_addresses[0].1;
    let daemon = Daemon::new(config, map, live.sources);
    let metrics = daemon.metrics.clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let run = tokio::spawn(daemon::run(daemon, async {
        let _ = stopped.await;
    }));
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").expect("sender");
    let id = CanId::standard(0x100).expect("id");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut sequence = 0u8;
    // Datagrams until some are published (the first may arrive before the session is open).
    while ecu_bridge::telemetry::Metrics::get(&metrics.samples_published) == 0 {
        let frame = CanFrame::new(id, CanFlags::empty(), &[sequence; 8]).expect("frame");
        let mut datagram = Vec::new();
        encode_datagram(sequence, &[frame], &mut datagram);
        sender.send_to(&datagram, udp).expect("send");
        sequence = sequence.wrapping_add(1);
        assert!(Instant::now() < deadline, "nothing published");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send(()).expect("daemon running");
    let report = run.await.expect("daemon task").expect("daemon run");
    let embedded = report.embedded.expect("an embedded server ran");
    assert_eq!(embedded.recording, None, "no recording unless asked");
    assert_eq!(embedded.stats.sessions_created, 1);
    assert_eq!(embedded.stats.sessions_ended, 1);
    assert!(embedded.stats.packets > 0, "{:?}", embedded.stats);
    assert_eq!(embedded.violations, Vec::new());
}
