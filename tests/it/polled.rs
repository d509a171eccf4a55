//! Polled TunerStudio ECUs end to end: the simulator (`ecu_bridge::simulate`) answers on a real
//! pseudo-terminal or a TCP port on 127.0.0.1, the bridge polls it through the whole pipeline
//! into a strict Stream API, and the published samples are compared with the values the
//! simulator encoded (computed channels with values worked out by hand). Faults (bad CRC, busy,
//! stall) are injected, the simulator is killed and restarted, and a recording replays into the
//! same samples.
//!
//! Real IO, so real time: one 10 s run at 50 Hz (the rate figure), the rest bounded waits.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use decoders::ini::IniFile;
use ecu_bridge::config::Config;
use ecu_bridge::pipeline::sources::LiveSources;
use ecu_bridge::pipeline::weighed;
use ecu_bridge::simulate::{Fault, PtyEnd, SimControl, SimStats, Simulator, serve_tcp};
use ecu_bridge::telemetry::{Metrics, SourceMetrics};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::live::{LiveRun, replay, samples, start_server, until};

/// The test INI: every channel type, bits, computed channels, three pieces per block.
fn bench_ini_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/ini/bench_ecu.ini")
}

fn bench_ini() -> IniFile {
    let path = bench_ini_path();
    let text = std::fs::read_to_string(&path).expect("bench INI");
    IniFile::parse("bench_ecu.ini", &text, &[])
        .expect("loads")
        .0
}

/// Values set on the simulator (engineering units); `spare` is excluded by the configuration.
const A: &[(&str, f64)] = &[
    ("secl", 17.0),
    ("rpm", 3120.0),
    ("map", 101.3),
    ("coolantRaw", 135.0),
    ("tps", -12.5),
    ("advance", -5.0),
    ("afr", 14.7),
    ("fuelFlow", 1.5),
    ("odometer", 123_456.0),
    ("lambdaRaw", 0.987),
    ("battery", 13.8),
    ("iat", 25.0),
    ("running", 1.0),
    ("cranking", 0.0),
    ("mode", 5.0),
    ("launch", 9.0),
    ("gear", 3.0),
];

const B: &[(&str, f64)] = &[
    ("secl", 18.0),
    ("rpm", 6000.0),
    ("map", 55.5),
    ("coolantRaw", 100.0),
    ("tps", 80.0),
    ("advance", 30.0),
    ("afr", 12.5),
    ("fuelFlow", 20.25),
    ("odometer", 4_000_000_000.0),
    ("lambdaRaw", -1.5),
    ("battery", 12.1),
    ("iat", -10.0),
    ("running", 0.0),
    ("cranking", 1.0),
    ("mode", 2.0),
    ("launch", 15.0),
    ("gear", 5.0),
];

/// The computed channels for A and B, worked out by hand from the INI's expressions.
fn computed(set: &[(&str, f64)]) -> Vec<(&'static str, f64)> {
    if set[1].1 == 3120.0 {
        vec![
            ("coolant", 95.0), // 135 - 40
            ("lambda", 1.0),   // 14.7 / 14.7
            ("hot", 1.0),      // 95 > 90 && running
            ("revTime", 60000.0 / 3120.0),
            ("modeBits", 10.0), // (5 << 1) | 0
        ]
    } else {
        vec![
            ("coolant", 60.0), // 100 - 40
            ("lambda", 12.5 / 14.7),
            ("hot", 0.0),      // 60 > 90 is false
            ("revTime", 10.0), // 60000 / 6000
            ("modeBits", 5.0), // (2 << 1) | 1
        ]
    }
}

/// The published identifier of INI channel `name` (the configuration renames `rpm`).
fn identifier(name: &str) -> String {
    match name {
        "rpm" => "EngineSpeed:Bench".to_owned(),
        other => format!("{other}:Bench"),
    }
}

fn set_all(control: &SimControl, set: &[(&str, f64)]) {
    for (name, value) in set {
        control.set(name, *value).expect("channel of the INI");
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

/// Every published row is wholly A or wholly B (never a mix of two blocks, never a value the
/// simulator did not encode), every channel is present in every row, and both sets appear
/// when `both`. Returns the number of rows.
fn check_rows(samples: &BTreeMap<String, Vec<(u64, f64)>>, both: bool) -> usize {
    let rpm = &samples[&identifier("rpm")];
    assert!(!samples.contains_key("spare:Bench"), "spare is excluded");
    let mut seen = [false, false];
    for (row, &(time, value)) in rpm.iter().enumerate() {
        let (index, set) = if value == 3120.0 { (0, A) } else { (1, B) };
        seen[index] = true;
        let expected: Vec<(&str, f64)> = set.iter().copied().chain(computed(set)).collect();
        for (name, want) in expected {
            let series = samples
                .get(&identifier(name))
                .unwrap_or_else(|| panic!("{name} published"));
            assert_eq!(series.len(), rpm.len(), "{name}: one sample per block");
            let (at, got) = series[row];
            assert_eq!(at, time, "{name} shares the block's timestamp");
            assert!(
                close(got, want),
                "row {row}: {name} = {got}, encoded {want}"
            );
        }
    }
    assert!(seen[0], "set A published");
    if both {
        assert!(seen[1], "set B published");
    }
    rpm.len()
}

/// How the bridge reaches the simulator.
#[derive(Debug, Clone)]
enum Transport {
    /// A pty behind this symlink.
    Pty(PathBuf),
    /// TCP on this address.
    Tcp(std::net::SocketAddr),
}

/// A running simulator; aborting its task is switching the ECU off (pty or sockets closed).
struct Ecu {
    control: SimControl,
    task: JoinHandle<()>,
}

impl Ecu {
    /// Starts a simulator of `ini` on `transport` with values `set`.
    async fn start(ini: &IniFile, transport: &Transport, set: &[(&str, f64)]) -> Self {
        let simulator = Simulator::new(ini).expect("simulator");
        let control = simulator.control();
        set_all(&control, set);
        let task = match transport {
            Transport::Pty(link) => {
                let mut pty = PtyEnd::open().expect("pty");
                crate::serial::point(link, &pty.path);
                tokio::spawn(async move {
                    let _ = pty.serve(&simulator).await;
                })
            }
            Transport::Tcp(address) => {
                let listener = TcpListener::bind(address)
                    .await
                    .expect("bind the ECU's port");
                tokio::spawn(async move {
                    let _ = serve_tcp(listener, simulator).await;
                })
            }
        };
        Self { control, task }
    }

    async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// A bridge configuration polling the bench ECU over `transport` at `rate` Hz.
fn config(dir: &Path, endpoint: &str, ini: &Path, transport: &Transport, rate: u32) -> Config {
    let link = match transport {
        Transport::Pty(device) => format!("kind = \"serial\"\ndevice = \"{}\"", device.display()),
        Transport::Tcp(address) => format!("kind = \"tcp\"\naddress = \"{address}\""),
    };
    let text = format!(
        r#"
[stream_api]
endpoint = "{endpoint}"
drain_timeout_ms = 2000

[session]
data_source = "Bench"
identifier = "polled test"

[car]
application = "Bench"
ini = ["{ini}"]
stream = "ecu"
exclude = ["OutputChannels.spare"]

[car.rename]
"OutputChannels.rpm" = "EngineSpeed"

[batch]
max_age_ms = 20

[[source]]
name = "ecu"
{link}
protocol = "tunerstudio"
poll_hz = {rate}
reply_timeout_ms = 100
reconnect_initial_ms = 20
reconnect_max_ms = 200
"#,
        ini = ini.display(),
    );
    let path = dir.join("polled.toml");
    std::fs::write(&path, text).expect("config");
    Config::load(&path).expect("valid config")
}

fn get(
    metrics: &SourceMetrics,
    counter: fn(&SourceMetrics) -> &std::sync::atomic::AtomicU64,
) -> u64 {
    Metrics::get(counter(metrics))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_seconds_at_50_hz_over_a_pty_publish_what_the_ecu_encoded_and_replay_exactly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let transport = Transport::Pty(dir.path().join("usb-speeduino"));
    let ini = bench_ini();
    let ecu = Ecu::start(&ini, &transport, A).await;
    let live_record = dir.path().join("live.osrec");
    let server = start_server(&live_record).await;
    let endpoint = format!("http://{}", server.local_addr());
    let config = config(dir.path(), &endpoint, &bench_ini_path(), &transport, 50);
    let capture_dir = dir.path().join("capture");
    let live = LiveRun::start(&config, endpoint, &capture_dir);
    let metrics = live.live.metrics[0].clone();

    until(|| Metrics::get(&metrics.frames) >= 1).await;
    let first = Metrics::get(&metrics.frames);
    let start = tokio::time::Instant::now();
    tokio::time::sleep_until(start + Duration::from_secs(5)).await;
    set_all(&ecu.control, B);
    tokio::time::sleep_until(start + Duration::from_secs(10)).await;
    let blocks = Metrics::get(&metrics.frames) - first;
    let rate = Metrics::get(&metrics.poll_rate_millihertz);
    println!(
        "blocks in 10 s: {blocks}, achieved rate {} Hz",
        rate as f64 / 1000.0
    );
    assert!(blocks >= 495, "{blocks} blocks in 10 s at 50 Hz");
    assert!(rate >= 49_000, "achieved rate {rate} mHz");
    // Three pieces per block (blockingFactor 16 of 40 bytes), plus the signature query.
    let requests = Metrics::get(&metrics.poll_requests);
    assert!(
        requests >= 3 * Metrics::get(&metrics.frames),
        "{requests} requests"
    );
    live.finish().await;
    server.shutdown().await.expect("server stops");
    ecu.kill().await;

    let live_samples = samples(&live_record);
    let rows = check_rows(&live_samples, true);
    assert!(rows as u64 >= blocks, "{rows} rows published");
    // Blocks are stamped at the midpoint of request and reply: 20 ms apart at 50 Hz.
    let times: Vec<u64> = live_samples[&identifier("rpm")]
        .iter()
        .map(|s| s.0)
        .collect();
    let mut steps: Vec<u64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    steps.sort_unstable();
    let median = steps[steps.len() / 2];
    assert!(
        (18_000_000..=22_000_000).contains(&median),
        "median step {median} ns"
    );
    assert_eq!(Metrics::get(&metrics.poll_crc_failures), 0);
    assert_eq!(Metrics::get(&metrics.poll_timeouts), 0);

    let replay_record = dir.path().join("replay.osrec");
    let server = start_server(&replay_record).await;
    let endpoint = format!("http://{}", server.local_addr());
    let replay_dir = dir.path().join("replay-config");
    std::fs::create_dir_all(&replay_dir).expect("dir");
    let config = self::config(&replay_dir, &endpoint, &bench_ini_path(), &transport, 50);
    replay(&config, endpoint, capture_dir.join("ecu.serial")).await;
    server.shutdown().await.expect("server stops");
    assert_eq!(
        samples(&replay_record),
        live_samples,
        "a recorded polled session replays into the same samples"
    );
}

/// Faults, a wedged ECU, then the ECU switched off and on again, over `transport`; everything
/// counted, no wrong value published, polling resumes each time.
async fn faults_are_retried_and_a_restarted_ecu_is_polled_again(dir: &Path, transport: Transport) {
    let ini = bench_ini();
    let ecu = Ecu::start(&ini, &transport, A).await;
    let live_record = dir.join("live.osrec");
    let server = start_server(&live_record).await;
    let endpoint = format!("http://{}", server.local_addr());
    let config = config(dir, &endpoint, &bench_ini_path(), &transport, 50);
    let live = LiveRun::start(&config, endpoint, &dir.join("capture"));
    let metrics = live.live.metrics[0].clone();
    let frames = || Metrics::get(&metrics.frames);

    until(|| frames() >= 1).await;
    let (first, start) = (frames(), tokio::time::Instant::now());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let blocks = frames() - first;
    println!("{transport:?}: {blocks} blocks in {:?}", start.elapsed());
    assert!(blocks >= 95, "{blocks} blocks in 2 s at 50 Hz");

    ecu.control.inject(Fault::Crc);
    until(|| get(&metrics, |m| &m.poll_crc_failures) == 1).await;
    ecu.control.inject(Fault::Busy);
    until(|| get(&metrics, |m| &m.poll_status_busy) == 1).await;
    ecu.control.inject(Fault::Stall(Duration::from_millis(150)));
    until(|| get(&metrics, |m| &m.poll_timeouts) >= 1).await;
    let after_faults = frames();
    until(|| frames() >= after_faults + 10).await;
    assert_eq!(SimStats::get(&ecu.control.stats.crc_injected), 1);
    assert_eq!(SimStats::get(&ecu.control.stats.busy_injected), 1);
    assert_eq!(SimStats::get(&ecu.control.stats.stalls_injected), 1);
    assert!(
        get(&metrics, |m| &m.poll_retries) >= 3,
        "each fault retried"
    );
    assert_eq!(
        Metrics::get(&metrics.outages),
        0,
        "faults alone reopen nothing"
    );

    // A wedged ECU: three blocks fail in a row, so the link is closed and opened again.
    ecu.control.inject(Fault::Stall(Duration::from_secs(3)));
    until(|| Metrics::get(&metrics.outages) == 1).await;
    assert!(get(&metrics, |m| &m.poll_failed_blocks) >= 3);
    until(|| Metrics::get(&metrics.reconnects) == 1).await;
    let after_wedge = frames();
    until(|| frames() >= after_wedge + 10).await;

    ecu.kill().await;
    until(|| Metrics::get(&metrics.outages) == 2).await;
    let before_restart = frames();
    let ecu = Ecu::start(&ini, &transport, B).await;
    until(|| Metrics::get(&metrics.reconnects) == 2).await;
    until(|| frames() >= before_restart + 10).await;
    live.finish().await;
    server.shutdown().await.expect("server stops");
    ecu.kill().await;

    let rows = check_rows(&samples(&live_record), true);
    assert_eq!(rows as u64, frames(), "every block polled is published");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_a_pty_faults_are_retried_and_a_restarted_ecu_is_polled_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    let link = dir.path().join("usb-speeduino");
    faults_are_retried_and_a_restarted_ecu_is_polled_again(dir.path(), Transport::Pty(link)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tcp_faults_are_retried_and_a_restarted_ecu_is_polled_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A free port for the ECU, which must come back on the same one.
    let address = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .local_addr()
        .expect("address");
    faults_are_retried_and_a_restarted_ecu_is_polled_again(dir.path(), Transport::Tcp(address))
        .await;
}

#[tokio::test]
async fn a_signature_mismatch_stops_the_source_naming_both() {
    let dir = tempfile::tempdir().expect("temp dir");
    let transport = Transport::Pty(dir.path().join("usb-ecu"));
    let ecu = Ecu::start(&bench_ini(), &transport, A).await;
    let other = dir.path().join("other.ini");
    let text = std::fs::read_to_string(bench_ini_path()).expect("INI");
    std::fs::write(
        &other,
        text.replace("ecu-bridge bench 1", "ecu-bridge bench 2"),
    )
    .expect("INI");
    let config = config(dir.path(), "http://127.0.0.1:1", &other, &transport, 50);
    let (map, _) = config.load_channel_map().expect("map");
    let mut live = LiveSources::prepare(&config, &map, None).expect("sources");
    let source = live.sources.remove(0);
    let (frames, _keep) = weighed::channel(8, usize::MAX);
    let (_cancel_tx, cancel) = watch::channel(false);
    let pipeline = std::sync::Arc::new(Metrics::default());
    let error = tokio::time::timeout(
        Duration::from_secs(10),
        source.run(frames, pipeline, cancel),
    )
    .await
    .expect("ends in time")
    .expect_err("mismatch");
    let message = error.to_string();
    assert!(
        message.contains("\"ecu-bridge bench 1\"")
            && message.contains("\"ecu-bridge bench 2\"")
            && message.contains("other.ini"),
        "{message}"
    );
    ecu.kill().await;
}

#[test]
fn a_broken_ini_line_is_reported_at_its_file_line_and_column() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broken = dir.path().join("broken.ini");
    let text = std::fs::read_to_string(bench_ini_path()).expect("INI");
    let text = text.replace("rpm         = scalar, U16,", "rpm         = scalar, U17,");
    std::fs::write(&broken, &text).expect("INI");
    let line = 1 + text.lines().position(|l| l.contains("U17")).expect("line");
    let column = 1 + text
        .lines()
        .nth(line - 1)
        .expect("line")
        .find("U17")
        .expect("field");
    let transport = Transport::Pty(dir.path().join("usb-ecu"));
    let toml = dir.path().join("polled.toml");
    let config = config(dir.path(), "http://127.0.0.1:1", &broken, &transport, 50);
    drop(config);
    let error = Config::validate_file(&toml).expect_err("broken INI");
    let message = error.to_string();
    let at = format!("{}:{line}:{column}: ", broken.display());
    assert!(message.starts_with(&at), "{message} (expected {at})");
    assert!(message.contains("U17"), "{message}");
}

#[test]
fn polling_keys_are_checked_with_their_lines() {
    let dir = tempfile::tempdir().expect("temp dir");
    let transport = Transport::Tcp("127.0.0.1:9".parse().expect("address"));
    let good = config(
        dir.path(),
        "http://127.0.0.1:1",
        &bench_ini_path(),
        &transport,
        50,
    );
    assert_eq!(good.sources[0].poll.as_ref().map(|p| p.rate_hz), Some(50.0));
    let text = std::fs::read_to_string(dir.path().join("polled.toml")).expect("config");
    for (edit, key) in [
        ("poll_hz = 50", "poll_hz = 0"),
        (
            "protocol = \"tunerstudio\"",
            "protocol = \"tunerstudio\"\ncan_bitrate = 500000",
        ),
        ("address = \"127.0.0.1:9\"", "address = \"nowhere\""),
        (
            "protocol = \"tunerstudio\"",
            "protocol = \"slcan\"\ncan_bitrate = 500000",
        ),
    ] {
        let bad = text.replace(edit, key);
        let error = Config::parse(Path::new("polled.toml"), &bad).expect_err(key);
        let message = error.to_string();
        let expected = match key {
            k if k.starts_with("poll_hz") => "[source[0].poll_hz]",
            k if k.contains("can_bitrate") && k.contains("tunerstudio") => {
                "[source[0].can_bitrate]"
            }
            k if k.starts_with("address") => "[source[0].address]",
            _ => "[source[0].poll_hz] applies to TunerStudio",
        };
        assert!(message.contains(expected), "{key}: {message}");
    }
    let unknown = text.replace(
        "protocol = \"tunerstudio\"",
        "protocol = \"tunerstudio\"\nini = \"x.ini\"",
    );
    std::fs::write(dir.path().join("polled.toml"), unknown).expect("config");
    let error = Config::validate_file(&dir.path().join("polled.toml")).expect_err("unknown INI");
    assert!(
        error
            .to_string()
            .contains("ini = \"x.ini\" is not in [car] ini"),
        "{error}"
    );
}

/// Polls a simulator of `ini` over TCP with the source alone (no pipeline) until `blocks`
/// whole blocks arrived; returns them and the source's counters.
async fn poll_directly(
    ini: &IniFile,
    set: &[(&str, f64)],
    blocks: usize,
) -> (Vec<Vec<u8>>, std::sync::Arc<SourceMetrics>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let simulator = Simulator::new(ini).expect("simulator");
    set_all(&simulator.control(), set);
    let ecu = tokio::spawn(serve_tcp(listener, simulator));
    let polled = poll_address(ini, address, blocks).await;
    ecu.abort();
    polled
}

/// Polls the ECU at `address` with the source alone until `blocks` whole blocks arrived.
async fn poll_address(
    ini: &IniFile,
    address: std::net::SocketAddr,
    blocks: usize,
) -> (Vec<Vec<u8>>, std::sync::Arc<SourceMetrics>) {
    use ecu_bridge::config::{PollConfig, TcpSourceConfig};
    use ecu_bridge::source::link::Link;
    use ecu_bridge::source::tunerstudio::{PollPlan, PolledSource};

    let poll = PollConfig {
        ini: None,
        rate_hz: 100.0,
        can_id: 0,
        reply_timeout: Some(Duration::from_millis(200)),
        open_delay: Some(Duration::ZERO),
    };
    let plan = PollPlan::new("test.ini", ini, &poll).expect("plan");
    let link = Link::Tcp(TcpSourceConfig {
        address: address.to_string(),
        slcan: None,
        reconnect_initial: Duration::from_millis(20),
        reconnect_max: Duration::from_millis(200),
    });
    let metrics = std::sync::Arc::new(SourceMetrics::new("ecu"));
    let source = PolledSource::new("ecu", link, plan, "OutputChannels", metrics.clone());
    let (tx, mut rx) = weighed::channel(16, usize::MAX);
    let (cancel_tx, cancel) = watch::channel(false);
    let run = tokio::spawn(source.run(tx, None, cancel));
    let mut received = Vec::new();
    while received.len() < blocks {
        let batch = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("blocks in time")
            .expect("source running");
        for frame in batch.native {
            assert_eq!(&*frame.definition, "OutputChannels");
            received.push(frame.bytes.to_vec());
        }
    }
    let _ = cancel_tx.send(true);
    run.await.expect("task").expect("source ends cleanly");
    (received, metrics)
}

#[tokio::test]
async fn a_legacy_ecu_without_envelopes_is_read_with_a_bare_a() {
    let text = std::fs::read_to_string(bench_ini_path()).expect("INI");
    let legacy: String = text
        .lines()
        .filter(|line| !line.contains("messageEnvelopeFormat") && !line.contains("ochGetCommand"))
        .map(|line| format!("{line}\n"))
        .collect();
    let (ini, _) = IniFile::parse("legacy.ini", &legacy, &[]).expect("loads");
    assert!(!ini.uses_envelope() && ini.och_get_command.is_none());
    let (blocks, metrics) = poll_directly(&ini, A, 5).await;
    let channels = &ini.output_channels;
    let mut values = vec![0.0; channels.channels().len()];
    for block in &blocks {
        channels
            .decode(block, 0.0, &mut values)
            .expect("whole block");
        let value = |name: &str| values[channels.slot(name).expect("channel")];
        assert_eq!(
            (value("rpm"), value("coolant"), value("modeBits")),
            (3120.0, 95.0, 10.0)
        );
    }
    // One bare `A` per block: the whole block at once, whatever the blocking factor.
    assert_eq!(
        Metrics::get(&metrics.poll_requests),
        Metrics::get(&metrics.frames)
    );
}

#[tokio::test]
async fn the_real_speeduino_ini_is_polled_and_decoded() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/ini/speeduino.ini");
    let text = std::fs::read_to_string(path).expect("Speeduino INI");
    let (ini, _) = IniFile::parse("speeduino.ini", &text, &[]).expect("loads");
    let set = [("rpm", 3000.0), ("coolantRaw", 130.0), ("running", 1.0)];
    let (blocks, metrics) = poll_directly(&ini, &set, 3).await;
    let channels = &ini.output_channels;
    let mut values = vec![0.0; channels.channels().len()];
    channels
        .decode(&blocks[2], 0.0, &mut values)
        .expect("whole block");
    let value = |name: &str| values[channels.slot(name).expect("channel")];
    assert_eq!(blocks[2].len(), 139);
    assert_eq!(value("rpm"), 3000.0);
    // Without the CELSIUS setting the INI computes Fahrenheit: (130 - 40) × 1.8 + 32.
    assert!(close(value("coolant"), 194.0), "{}", value("coolant"));
    assert_eq!(value("running"), 1.0);
    // 139 bytes fit one reply (blockingFactor 251): one request per block, plus the query.
    assert_eq!(
        Metrics::get(&metrics.poll_requests),
        Metrics::get(&metrics.frames) + 1
    );
}

#[tokio::test]
async fn the_simulate_ecu_command_serves_set_values_and_injected_faults_over_tcp() {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ecu-bridge"))
        .args(["simulate-ecu", "--tcp", "127.0.0.1:0", "--set", "rpm=4321"])
        .args(["--set", "coolantRaw=120", "--crc-error-every", "4", "--ini"])
        .arg(bench_ini_path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start simulate-ecu");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("first line");
    let address = line
        .trim()
        .strip_prefix("tcp ")
        .unwrap_or_else(|| panic!("{line:?}"))
        .parse()
        .expect("address");
    let ini = bench_ini();
    let polled =
        tokio::time::timeout(Duration::from_secs(20), poll_address(&ini, address, 10)).await;
    let _ = child.kill();
    let _ = child.wait();
    let (blocks, metrics) = polled.expect("polled in time");
    let channels = &ini.output_channels;
    let mut values = vec![0.0; channels.channels().len()];
    for block in &blocks {
        channels
            .decode(block, 0.0, &mut values)
            .expect("whole block");
        let value = |name: &str| values[channels.slot(name).expect("channel")];
        assert_eq!((value("rpm"), value("coolant")), (4321.0, 80.0));
    }
    // Every fourth reply corrupted: about one piece in four asked for again.
    let failures = Metrics::get(&metrics.poll_crc_failures);
    assert!(failures >= 5, "{failures} CRC failures");
    assert_eq!(
        Metrics::get(&metrics.poll_failed_blocks),
        0,
        "each retry succeeds"
    );
}
