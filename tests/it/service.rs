//! Running as a service: sd_notify messages on a socket the test owns, the watchdog stopping on
//! a stall, /metrics and /health over real TCP on 127.0.0.1:0, and the shipped unit file,
//! example configuration and sysctl drop-in checked by systemd-analyze and the config parser.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use ecu_bridge::config::{Config, SourceKind};
use ecu_bridge::service::metrics_http::{self, Limits};
use ecu_bridge::service::notify::{Notifier, Progress, WatchdogPolicy, spawn_watchdog};
use ecu_bridge::telemetry::{Metrics, SourceMetrics};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixDatagram};
use tokio::sync::oneshot;
use tokio::time::timeout;

/// Bound on every await: virtual under paused time, generous under real time.
const BOUND: Duration = Duration::from_secs(10);

async fn next_message(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 1024];
    let n = timeout(BOUND, socket.recv(&mut buf))
        .await
        .expect("a notification in time")
        .expect("recv");
    String::from_utf8(buf[..n].to_vec()).expect("utf-8")
}

#[tokio::test(start_paused = true)]
async fn notifier_and_watchdog_send_ready_pings_status_then_stop_pinging_on_a_stall() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("bind");
    let notifier = Notifier::from_socket_var(Some(path.as_os_str()));
    assert!(notifier.is_enabled());

    notifier.ready();
    assert_eq!(next_message(&socket).await, "READY=1");

    let published = Arc::new(AtomicU64::new(0));
    let pending = Arc::new(AtomicBool::new(true));
    let progress = {
        let (published, pending) = (published.clone(), pending.clone());
        move || Progress {
            completed: published.load(Ordering::Relaxed),
            pending: pending.load(Ordering::Relaxed),
        }
    };
    let status = |check: &ecu_bridge::service::notify::Check| {
        format!(
            "{}; {:.0} packets/s; session Test run",
            check.health, check.per_second
        )
    };
    let policy = WatchdogPolicy {
        period: Duration::from_secs(1),
        stall_checks: 3,
    };
    let watchdog = spawn_watchdog(notifier.clone(), policy, progress, status);

    // Publishing: every check pings, and the rate follows the counter (100 per 1 s check).
    for check in 0..3 {
        let message = next_message(&socket).await;
        let rate = if check == 0 { 0 } else { 100 };
        assert_eq!(
            message,
            format!("WATCHDOG=1\nSTATUS=running; {rate} packets/s; session Test run")
        );
        published.fetch_add(100, Ordering::Relaxed);
    }
    // One more check sees the last bump; then the car goes quiet: idle is healthy.
    assert!(
        next_message(&socket)
            .await
            .starts_with("WATCHDOG=1\nSTATUS=running")
    );
    pending.store(false, Ordering::Relaxed);
    for _ in 0..3 {
        assert_eq!(
            next_message(&socket).await,
            "WATCHDOG=1\nSTATUS=idle; 0 packets/s; session Test run"
        );
    }
    // Work arrives and nothing is published: two forgiven checks, then pings stop while the
    // status keeps saying why.
    pending.store(true, Ordering::Relaxed);
    for checks in 1..=2 {
        let message = next_message(&socket).await;
        assert!(message.starts_with("WATCHDOG=1\n"), "{message}");
        assert!(message.contains(&format!("no progress for {checks} checks")));
    }
    for checks in 3..=6 {
        let message = next_message(&socket).await;
        assert_eq!(
            message,
            format!(
                "STATUS=stalled: work pending, no progress for {checks} checks; 0 packets/s; \
                 session Test run"
            )
        );
    }
    // Progress resumes before systemd acts: pings resume.
    published.fetch_add(1, Ordering::Relaxed);
    assert!(
        next_message(&socket)
            .await
            .starts_with("WATCHDOG=1\nSTATUS=running")
    );

    watchdog.abort();
    assert!(
        timeout(BOUND, watchdog)
            .await
            .expect("aborted in time")
            .is_err_and(|e| e.is_cancelled())
    );
    notifier.reloading();
    let reloading = next_message(&socket).await;
    let usec = reloading
        .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
        .expect("RELOADING with a timestamp");
    assert!(usec.parse::<u64>().expect("number") > 0);
    notifier.stopping();
    assert_eq!(next_message(&socket).await, "STOPPING=1");
}

#[test]
fn abstract_notify_socket_names_work() {
    let name = format!("ecu-bridge-test-{}", std::process::id());
    let addr =
        <std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(
            name.as_bytes(),
        )
        .expect("abstract name");
    let socket = std::os::unix::net::UnixDatagram::bind_addr(&addr).expect("bind");
    socket.set_read_timeout(Some(BOUND)).expect("timeout");
    let notifier = Notifier::from_socket_var(Some(OsStr::new(&format!("@{name}"))));
    notifier.status("listening");
    let mut buf = [0u8; 64];
    let n = socket.recv(&mut buf).expect("a notification");
    assert_eq!(&buf[..n], b"STATUS=listening");
}

/// A running endpoint, and the switch that stops it.
struct Endpoint {
    addr: std::net::SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start_endpoint(
    limits: Limits,
    metrics: Arc<Metrics>,
    sources: Vec<Arc<SourceMetrics>>,
    healthy: Arc<AtomicBool>,
) -> Endpoint {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let health = move || healthy.load(Ordering::Relaxed);
    let task = tokio::spawn(metrics_http::serve_with(
        limits,
        listener,
        metrics,
        sources,
        health,
        async move {
            let _ = stopped.await;
        },
    ));
    Endpoint { addr, stop, task }
}

/// Sends `request` raw and returns the whole response (the server closes after one).
async fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut stream = timeout(BOUND, TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    stream.write_all(request).await.expect("write");
    let mut response = Vec::new();
    timeout(BOUND, stream.read_to_end(&mut response))
        .await
        .expect("response in time")
        .expect("read");
    String::from_utf8(response).expect("utf-8")
}

async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes(),
    )
    .await
}

/// Counters with known values: two sources, decode errors and four latencies.
fn known_counters() -> (Arc<Metrics>, Vec<Arc<SourceMetrics>>) {
    let metrics = Arc::new(Metrics::default());
    Metrics::add(&metrics.samples_decoded, 1234);
    Metrics::add(&metrics.samples_published, 1200);
    Metrics::add(&metrics.packets_published, 12);
    Metrics::add(&metrics.unknown_ids, 7);
    Metrics::add(&metrics.short_frames, 2);
    metrics.count_decode_error("bad_length");
    for ms in [3, 40, 40, 120] {
        metrics
            .publish_latency
            .record(Duration::from_micros(ms * 1000 + 250));
    }
    let gateway = Arc::new(SourceMetrics::new("gateway"));
    Metrics::add(&gateway.frames, 5000);
    Metrics::add(&gateway.bytes, 80_000);
    Metrics::add(&gateway.reads, 400);
    Metrics::add(&gateway.kernel_drops, 3);
    Metrics::add(&gateway.sequence_gaps, 4);
    Metrics::add(&gateway.channel_drops, 1);
    Metrics::add(&gateway.frames_dropped, 25);
    gateway.count_decode_error("cannelloni_version");
    let diag = Arc::new(SourceMetrics::new("diag"));
    Metrics::add(&diag.outages, 2);
    Metrics::add(&diag.reconnects, 1);
    (metrics, vec![gateway, diag])
}

#[tokio::test]
async fn metrics_scrape_shows_known_counter_values() {
    let (metrics, sources) = known_counters();
    let healthy = Arc::new(AtomicBool::new(true));
    let endpoint = start_endpoint(Limits::default(), metrics, sources, healthy).await;

    let response = get(endpoint.addr, "/metrics").await;
    let (head, body) = response.split_once("\r\n\r\n").expect("head and body");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"));
    assert!(head.contains(&format!("Content-Length: {}", body.len())));
    let expected = [
        "# HELP ecu_bridge_source_frames_total CAN or native frames taken from the transport and handed on.",
        "# TYPE ecu_bridge_source_frames_total counter",
        "ecu_bridge_source_frames_total{source=\"gateway\"} 5000",
        "ecu_bridge_source_frames_total{source=\"diag\"} 0",
        "ecu_bridge_source_bytes_total{source=\"gateway\"} 80000",
        "ecu_bridge_source_reads_total{source=\"gateway\"} 400",
        "ecu_bridge_source_kernel_drops_total{source=\"gateway\"} 3",
        "ecu_bridge_source_sequence_gaps_total{source=\"gateway\"} 4",
        "ecu_bridge_source_truncated_total{source=\"gateway\"} 0",
        "ecu_bridge_source_channel_drops_total{source=\"gateway\"} 1",
        "ecu_bridge_source_frames_dropped_total{source=\"gateway\"} 25",
        "ecu_bridge_source_outages_total{source=\"diag\"} 2",
        "ecu_bridge_source_reconnects_total{source=\"diag\"} 1",
        "# TYPE ecu_bridge_source_decode_errors_total counter",
        "ecu_bridge_source_decode_errors_total{source=\"gateway\",kind=\"cannelloni_version\"} 1",
        "ecu_bridge_samples_decoded_total 1234",
        "ecu_bridge_samples_published_total 1200",
        "ecu_bridge_packets_published_total 12",
        "ecu_bridge_rejected_inputs_total 1",
        "ecu_bridge_unknown_ids_total 7",
        "ecu_bridge_short_frames_total 2",
        "ecu_bridge_decode_errors_total{kind=\"bad_length\"} 1",
        "# TYPE ecu_bridge_publish_latency_seconds histogram",
        "ecu_bridge_publish_latency_seconds_bucket{le=\"0.001\"} 0",
        "ecu_bridge_publish_latency_seconds_bucket{le=\"0.005\"} 1",
        "ecu_bridge_publish_latency_seconds_bucket{le=\"0.025\"} 1",
        "ecu_bridge_publish_latency_seconds_bucket{le=\"0.05\"} 3",
        "ecu_bridge_publish_latency_seconds_bucket{le=\"0.1\"} 3",
        "ecu_bridge_publish_latency_seconds_bucket{le=\"0.15\"} 4",
        "ecu_bridge_publish_latency_seconds_bucket{le=\"1\"} 4",
        "ecu_bridge_publish_latency_seconds_bucket{le=\"+Inf\"} 4",
        "ecu_bridge_publish_latency_seconds_sum 0.204",
        "ecu_bridge_publish_latency_seconds_count 4",
    ];
    for line in expected {
        assert!(
            body.lines().any(|l| l == line),
            "missing {line:?} in\n{body}"
        );
    }

    let _ = endpoint.stop.send(());
    timeout(BOUND, endpoint.task)
        .await
        .expect("stops in time")
        .expect("task")
        .expect("serve");
}

#[tokio::test]
async fn health_follows_the_check_and_other_requests_get_errors() {
    let healthy = Arc::new(AtomicBool::new(true));
    let limits = Limits {
        read_timeout: Duration::from_millis(200),
        connection_timeout: Duration::from_secs(1),
        max_request_bytes: 512,
        max_connections: 4,
    };
    let endpoint = start_endpoint(
        limits,
        Arc::new(Metrics::default()),
        Vec::new(),
        healthy.clone(),
    )
    .await;
    let addr = endpoint.addr;

    let ok = get(addr, "/health").await;
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
    assert!(ok.ends_with("\r\n\r\nok\n"));
    healthy.store(false, Ordering::Relaxed);
    let down = get(addr, "/health?probe=1").await;
    assert!(
        down.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{down}"
    );
    healthy.store(true, Ordering::Relaxed);
    assert!(
        get(addr, "/health")
            .await
            .starts_with("HTTP/1.1 200 OK\r\n")
    );

    assert!(
        get(addr, "/")
            .await
            .starts_with("HTTP/1.1 404 Not Found\r\n")
    );
    let post = exchange(addr, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").await;
    assert!(post.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
    assert!(post.contains("Allow: GET,HEAD\r\n"), "{post}");
    let head = exchange(addr, b"HEAD /health HTTP/1.1\r\n\r\n").await;
    assert!(head.contains("Content-Length: 3\r\n") && head.ends_with("\r\n\r\n"));
    let garbage = exchange(addr, b"hello\r\n\r\n").await;
    assert!(garbage.starts_with("HTTP/1.1 400 Bad Request\r\n"));

    // A head larger than the limit is refused without being read to its end.
    let mut huge = b"GET /metrics HTTP/1.1\r\nX-Junk: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 4096));
    let refused = exchange(addr, &huge).await;
    assert!(refused.starts_with("HTTP/1.1 431 "), "{refused}");
    // A client that never finishes its head is cut off, without an answer, after the read
    // timeout (hyper closes rather than sending 408).
    let started = std::time::Instant::now();
    let slow = exchange(addr, b"GET /metr").await;
    assert_eq!(slow, "");
    assert!(started.elapsed() >= Duration::from_millis(200));

    let _ = endpoint.stop.send(());
    timeout(BOUND, endpoint.task)
        .await
        .expect("stops in time")
        .expect("task")
        .expect("serve");
}

/// 200 connections each sending one byte a second neither delay a scrape nor stay open past
/// the read timeout (before, 145 of them blinded `/metrics` for 40 s). Real sockets and real
/// time, about three seconds in all.
#[tokio::test]
async fn slow_clients_do_not_starve_a_scrape() {
    const SLOW: usize = 200;
    let limits = Limits {
        read_timeout: Duration::from_secs(2),
        ..Limits::default()
    };
    let healthy = Arc::new(AtomicBool::new(true));
    let endpoint = start_endpoint(limits, Arc::new(Metrics::default()), Vec::new(), healthy).await;
    let started = std::time::Instant::now();
    let mut trickles = tokio::task::JoinSet::new();
    for _ in 0..SLOW {
        let mut stream = TcpStream::connect(endpoint.addr).await.expect("connect");
        // One byte a second until the server closes; the time it closed, or None if it kept
        // answering or never closed.
        trickles.spawn(async move {
            let mut buf = [0u8; 64];
            for &byte in b"GET /metrics HTTP/1.1\r\n".iter() {
                if stream.write_all(&[byte]).await.is_err() {
                    break;
                }
                match timeout(Duration::from_secs(1), stream.read(&mut buf)).await {
                    Err(_elapsed) => continue,
                    Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
                    Ok(Ok(_)) => return None,
                }
            }
            None
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let scrape = std::time::Instant::now();
    let response = timeout(Duration::from_secs(1), get(endpoint.addr, "/metrics"))
        .await
        .expect("a scrape within 1 s despite the slow clients");
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.contains("\necu_bridge_frames_in_total 0\n"));
    eprintln!("scrape beside {SLOW} slow clients: {:?}", scrape.elapsed());

    let mut closed = Vec::with_capacity(SLOW);
    while let Some(trickle) = timeout(BOUND, trickles.join_next())
        .await
        .expect("trickles end")
    {
        closed.push(trickle.expect("trickle task"));
    }
    let closed: Vec<Duration> = closed
        .into_iter()
        .map(|c| c.expect("closed by the server"))
        .collect();
    let (first, last) = (closed.iter().min(), closed.iter().max());
    assert_eq!(closed.len(), SLOW);
    assert!(first >= Some(&Duration::from_millis(1900)), "{first:?}");
    assert!(last <= Some(&Duration::from_millis(4000)), "{last:?}");

    let _ = endpoint.stop.send(());
    timeout(BOUND, endpoint.task)
        .await
        .expect("stops in time")
        .expect("task")
        .expect("serve");
}

/// Shutdown ends connections that have not sent a request after a short grace instead of
/// waiting out their read timeout, and `serve` returns once they are gone.
#[tokio::test]
async fn shutdown_closes_idle_connections_and_returns() {
    let healthy = Arc::new(AtomicBool::new(true));
    let endpoint = start_endpoint(
        Limits::default(),
        Arc::new(Metrics::default()),
        Vec::new(),
        healthy,
    )
    .await;
    let mut idle = TcpStream::connect(endpoint.addr).await.expect("connect");
    let mut started = TcpStream::connect(endpoint.addr).await.expect("connect");
    started.write_all(b"GET /hea").await.expect("write");
    // Accepted in order, so both are being served once a later request is answered.
    assert!(
        get(endpoint.addr, "/health")
            .await
            .starts_with("HTTP/1.1 200 OK\r\n")
    );

    let _ = endpoint.stop.send(());
    // The 1 s grace, well under the default 5 s read timeout.
    let stopping = std::time::Instant::now();
    timeout(Duration::from_secs(3), endpoint.task)
        .await
        .expect("serve returns after the grace")
        .expect("task")
        .expect("serve");
    assert!(stopping.elapsed() >= Duration::from_millis(900));
    for stream in [&mut idle, &mut started] {
        let mut buf = [0u8; 64];
        let read = timeout(Duration::from_millis(100), stream.read(&mut buf)).await;
        assert!(matches!(read, Ok(Ok(0) | Err(_))), "{read:?}");
    }
}

/// `promtool check metrics` (Debian package `prometheus`, installed by `.ci/run`) finds
/// nothing to complain about in a scrape. Required: without promtool this test fails.
#[tokio::test]
async fn promtool_accepts_the_exposition() {
    let (metrics, sources) = known_counters();
    let healthy = Arc::new(AtomicBool::new(true));
    let endpoint = start_endpoint(Limits::default(), metrics, sources, healthy).await;
    let response = get(endpoint.addr, "/metrics").await;
    let (_, body) = response.split_once("\r\n\r\n").expect("head and body");

    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| {
            panic!("promtool is required (apt-get install prometheus, as .ci/run does): {error}")
        });
    {
        use std::io::Write;
        let mut stdin = promtool.stdin.take().expect("stdin");
        stdin.write_all(body.as_bytes()).expect("write to promtool");
    }
    let output = promtool.wait_with_output().expect("promtool runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool: {said}\n{body}");
    assert_eq!(said.trim(), "", "{body}");

    let _ = endpoint.stop.send(());
    timeout(BOUND, endpoint.task)
        .await
        .expect("stops in time")
        .expect("task")
        .expect("serve");
}

fn systemd_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/systemd"))
}

/// The unit with its `/usr/bin/ecu-bridge` pointed at the binary under test (verify checks
/// that executables exist), written as `ecu-bridge.service` in `dir`.
fn unit_for_test(dir: &Path) -> std::path::PathBuf {
    let unit = std::fs::read_to_string(systemd_dir().join("ecu-bridge.service")).expect("unit");
    assert!(
        unit.contains("ExecStart=/usr/bin/ecu-bridge run --config /etc/ecu-bridge/bridge.toml")
    );
    let path = dir.join("ecu-bridge.service");
    let unit = unit.replace("/usr/bin/ecu-bridge", env!("CARGO_BIN_EXE_ecu-bridge"));
    std::fs::write(&path, unit).expect("write unit");
    path
}

/// Runs systemd-analyze, which is required (`.ci/run` installs the `systemd` package).
fn systemd_analyze(args: &[&OsStr]) -> std::process::Output {
    Command::new("systemd-analyze")
        .args(args)
        .output()
        .unwrap_or_else(|error| {
            panic!("systemd-analyze is required: apt-get install systemd (.ci/run does): {error}")
        })
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let unit = unit_for_test(dir.path());
    let output = systemd_analyze(&[OsStr::new("verify"), unit.as_os_str()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "verify failed:\n{stderr}");
    assert!(
        !stderr.contains("ecu-bridge.service"),
        "verify complained:\n{stderr}"
    );
}

#[test]
fn security_exposure_stays_low() {
    let dir = tempfile::tempdir().expect("temp dir");
    let unit = unit_for_test(dir.path());
    let args = [
        OsStr::new("security"),
        OsStr::new("--offline=true"),
        OsStr::new("--no-pager"),
        unit.as_os_str(),
    ];
    let output = systemd_analyze(&args);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let score: f64 = stdout
        .lines()
        .find_map(|line| {
            line.split("Overall exposure level for ecu-bridge.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|score| score.parse().ok())
        .unwrap_or_else(|| panic!("no exposure score in:\n{stdout}"));
    eprintln!("systemd-analyze security exposure: {score}");
    assert!(score <= 2.0, "exposure {score} (was 1.5)");
}

#[test]
fn example_config_is_valid_and_fits_the_receive_buffer_limit() {
    let path = systemd_dir().join("example.toml");
    let text = std::fs::read_to_string(&path).expect("example");
    let config = Config::parse(&path, &text).expect("example.toml validates");
    assert_eq!(config.sources.len(), 2);
    let sysctl = std::fs::read_to_string(systemd_dir().join("99-ecu-bridge-rmem.conf"))
        .expect("sysctl drop-in");
    let rmem_max: usize = sysctl
        .lines()
        .find_map(|line| line.strip_prefix("net.core.rmem_max"))
        .and_then(|rest| rest.trim().strip_prefix('='))
        .and_then(|value| value.trim().parse().ok())
        .expect("net.core.rmem_max = N");
    for source in &config.sources {
        if let SourceKind::Udp(udp) = &source.kind {
            assert!(
                udp.receive_buffer_bytes <= rmem_max,
                "{} asks for more than rmem_max",
                source.name
            );
        }
    }
}
