//! Live sources end to end: cannelloni datagrams sent to the bridge's UDP source on
//! 127.0.0.1 arrive at our Stream API as the right samples, with sequence gaps counted; and a
//! recording made during the live run replays into exactly the same samples.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use decoders::can::{CanFlags, CanFrame};
use decoders::dbc::Dbc;
use decoders::wire::cannelloni::encode_datagram;
use ecu_bridge::capture::replay::Pacing;
use ecu_bridge::config::Config;
use ecu_bridge::pipeline::sources::LiveSources;
use ecu_bridge::pipeline::{self, RunSummary};
use ecu_bridge::telemetry::Metrics;
use stream_api::{self, ServerOptions, inspect};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::oneshot;

use crate::test_car;

fn engine_frame(dbc: &Dbc, rpm: f64, coolant: f64) -> CanFrame {
    let message = dbc.message_by_name("ENGINE").expect("ENGINE");
    let mut data = [0u8; 8];
    for (name, value) in [
        ("RPM", rpm),
        ("COOLANT", coolant),
        ("THROTTLE", 12.5),
        ("OIL_PRESSURE", 3.0),
    ] {
        let signal = message
            .signals
            .iter()
            .find(|s| s.name == name)
            .expect("signal");
        signal.layout().encode(value, &mut data).expect("encodable");
    }
    CanFrame::new(message.id, CanFlags::empty(), &data).expect("frame")
}

fn config(dir: &Path, endpoint: &str) -> Config {
    config_flushing_after(dir, endpoint, 20)
}

fn config_flushing_after(dir: &Path, endpoint: &str, max_age_ms: u64) -> Config {
    let text = format!(
        r#"
[stream_api]
endpoint = "{endpoint}"
drain_timeout_ms = 2000

[session]
data_source = "LiveCar"
identifier = "live test"

[car]
application = "LiveCar"
dbc = ["{}"]
stream = "can0"

[batch]
max_age_ms = {max_age_ms}

[[source]]
name = "gateway"
kind = "udp"
bind = "127.0.0.1:0"
receive_buffer_bytes = 1048576
"#,
        test_car::dbc_path().display()
    );
    let path = dir.join("live.toml");
    std::fs::write(&path, text).expect("config");
    Config::load(&path).expect("valid config")
}

pub(crate) async fn start_server(record: &Path) -> stream_api::ServerHandle {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let options = ServerOptions {
        strict: true,
        record: Some(record.to_owned()),
    };
    stream_api::spawn(listener, options).await.expect("server")
}

/// Waits (bounded) until `condition` holds, polling the counters the sources update.
pub(crate) async fn until(mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached in 10 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub(crate) fn samples(record: &Path) -> BTreeMap<String, Vec<(u64, f64)>> {
    let recording = inspect::read_recording(record).expect("recording");
    assert_eq!(recording.violations(), &[], "zero protocol violations");
    recording.samples()
}

/// Replays `capture` at full speed through `config`'s map into the Stream API at `endpoint`.
pub(crate) async fn replay(config: &Config, endpoint: String, capture: PathBuf) -> RunSummary {
    let (map, _) = config.load_channel_map().expect("map");
    pipeline::replay(
        config,
        map,
        endpoint,
        vec![capture],
        Pacing::MaxSpeed,
        std::future::pending(),
    )
    .await
    .expect("replay")
}

/// A live run in progress: the prepared sources (counters, addresses, recorder) and the
/// pipeline task publishing them until [`LiveRun::finish`].
pub(crate) struct LiveRun {
    pub(crate) live: LiveSources,
    stop: oneshot::Sender<()>,
    run: tokio::task::JoinHandle<RunSummary>,
}

impl LiveRun {
    /// Binds `config`'s sources, recording into `capture_dir`, and runs them into `endpoint`.
    pub(crate) fn start(config: &Config, endpoint: String, capture_dir: &Path) -> Self {
        let (map, _) = config.load_channel_map().expect("map");
        let mut live = LiveSources::prepare(config, &map, Some(capture_dir)).expect("sources");
        let specs = std::mem::take(&mut live.sources);
        let (stop, stopped) = oneshot::channel::<()>();
        let config = config.clone();
        let run = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            pipeline::run(&config, map, endpoint, specs, shutdown)
                .await
                .expect("pipeline")
        });
        Self { live, stop, run }
    }

    /// Stops the sources, waits for the pipeline to drain and the recorder to close its files.
    pub(crate) async fn finish(self) -> RunSummary {
        let _ = self.stop.send(());
        let summary = self.run.await.expect("pipeline task");
        if let Some(recorder) = self.live.recorder {
            let recorded = recorder.await.expect("task").expect("recorder");
            println!("recorder: {recorded:?}");
        }
        summary
    }
}

/// A pty "device" behind a symlink (as `/dev/serial/by-id/...`) and a strict Stream API
/// recording to `live.osrec`, in a fresh temporary folder.
pub(crate) struct SerialRig {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) adapter: crate::serial::FakeAdapter,
    pub(crate) device: std::path::PathBuf,
    pub(crate) live_record: std::path::PathBuf,
    pub(crate) server: stream_api::ServerHandle,
    pub(crate) endpoint: String,
}

impl SerialRig {
    pub(crate) async fn new(device_name: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let (adapter, slave) = crate::serial::FakeAdapter::new();
        let device = dir.path().join(device_name);
        crate::serial::point(&device, &slave);
        let live_record = dir.path().join("live.osrec");
        let server = start_server(&live_record).await;
        let endpoint = format!("http://{}", server.local_addr());
        Self {
            dir,
            adapter,
            device,
            live_record,
            server,
            endpoint,
        }
    }
}

#[tokio::test]
async fn udp_datagrams_become_samples_and_gaps_are_counted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let live_record = dir.path().join("live.osrec");
    let server = start_server(&live_record).await;
    let endpoint = format!("http://{}", server.local_addr());
    let config = config(dir.path(), &endpoint);
    let capture_dir = dir.path().join("capture");
    let live = LiveRun::start(&config, endpoint, &capture_dir);
    let (_, address): (String, SocketAddr) = live.live.udp_addresses[0].clone();
    let metrics = live.live.metrics[0].clone();

    let dbc = test_car::dbc();
    let sender = UdpSocket::bind("127.0.0.1:0").await.expect("sender");
    let mut expected_rpm = Vec::new();
    // Sequence 0..=20 except 13, which is "lost" on the way: one gap of one datagram.
    let sequences: Vec<u8> = (0..=20).filter(|s| *s != 13).collect();
    for sequence in &sequences {
        let rpm = f64::from(*sequence) * 100.0;
        let frames = [
            engine_frame(&dbc, rpm, 80.0),
            engine_frame(&dbc, rpm + 0.25, 81.0),
        ];
        expected_rpm.extend([rpm, rpm + 0.25]);
        let mut datagram = Vec::new();
        encode_datagram(*sequence, &frames, &mut datagram);
        sender.send_to(&datagram, address).await.expect("send");
    }
    sender
        .send_to(&[9, 9, 9], address)
        .await
        .expect("send garbage");
    until(|| Metrics::get(&metrics.reads) == sequences.len() as u64 + 1).await;
    let summary = live.finish().await;
    server.shutdown().await.expect("server stops");

    assert_eq!(
        Metrics::get(&metrics.sequence_gaps),
        1,
        "datagram 13 counted as lost"
    );
    assert_eq!(Metrics::get(&metrics.frames), expected_rpm.len() as u64);
    assert_eq!(
        metrics.decode_errors().values().sum::<u64>(),
        1,
        "the garbage datagram"
    );
    assert_eq!(
        Metrics::get(&summary.metrics.samples_published),
        4 * expected_rpm.len() as u64
    );
    let live_samples = samples(&live_record);
    let rpm: Vec<f64> = live_samples["RPM:LiveCar"]
        .iter()
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(rpm, expected_rpm);

    // The recording made during the live run replays into identical samples.
    let pcapng = capture_dir.join("gateway.pcapng");
    assert!(pcapng.exists(), "recorded {}", pcapng.display());
    let replay_record = dir.path().join("replay.osrec");
    let server = start_server(&replay_record).await;
    let endpoint = format!("http://{}", server.local_addr());
    let config = config_for_replay(dir.path(), &endpoint);
    replay(&config, endpoint, pcapng).await;
    server.shutdown().await.expect("server stops");
    assert_eq!(
        samples(&replay_record),
        live_samples,
        "record → replay is exact"
    );
}

fn config_for_replay(dir: &Path, endpoint: &str) -> Config {
    let replay_dir = dir.join("replay-config");
    std::fs::create_dir_all(&replay_dir).expect("dir");
    config(&replay_dir, endpoint)
}

#[tokio::test]
async fn serial_recording_replays_into_identical_samples() {
    use crate::serial::ok;
    use decoders::wire::slcan::encode_frame;

    let SerialRig {
        dir,
        mut adapter,
        device,
        live_record,
        server,
        endpoint,
    } = SerialRig::new("usb-can").await;
    let config = serial_config(dir.path(), &endpoint, &device);
    let capture_dir = dir.path().join("capture");
    let live = LiveRun::start(&config, endpoint, &capture_dir);
    let metrics = live.live.metrics[0].clone();

    let init = tokio::time::timeout(Duration::from_secs(10), adapter.serve_init(ok))
        .await
        .expect("init in time");
    assert_eq!(
        init, b"C\rS6\rZ1\rL\r",
        "SLCAN set-up: close, 500 kbit/s, timestamps, listen-only"
    );
    let dbc = test_car::dbc();
    let mut bytes = Vec::new();
    let mut expected_rpm = Vec::new();
    for n in 0..200u16 {
        let rpm = f64::from(n) * 10.0;
        expected_rpm.push(rpm);
        // Adapter timestamps every 10 ms, wrapping at 60 000 ms mid-stream.
        let stamp = (59_000 + u32::from(n) * 10) % 60_000;
        encode_frame(
            &engine_frame(&dbc, rpm, 90.0),
            Some(stamp as u16),
            &mut bytes,
        );
    }
    bytes.extend_from_slice(b"garbage\r");
    for chunk in bytes.chunks(97) {
        adapter.write_all(chunk).await;
    }
    until(|| Metrics::get(&metrics.frames) == 200).await;
    live.finish().await;
    server.shutdown().await.expect("server stops");
    drop(adapter);

    let live_samples = samples(&live_record);
    let rpm = &live_samples["RPM:LiveCar"];
    assert_eq!(
        rpm.iter().map(|(_, v)| *v).collect::<Vec<_>>(),
        expected_rpm
    );
    let steps: Vec<u64> = rpm.windows(2).map(|w| w[1].0 - w[0].0).collect();
    assert!(
        steps.iter().all(|step| *step == 10_000_000),
        "adapter timestamps unwrapped across the wrap"
    );
    assert_eq!(
        metrics.decode_errors().values().sum::<u64>(),
        1,
        "the garbage line"
    );

    let replay_record = dir.path().join("replay.osrec");
    let server = start_server(&replay_record).await;
    let endpoint = format!("http://{}", server.local_addr());
    let replay_dir = dir.path().join("replay-config");
    std::fs::create_dir_all(&replay_dir).expect("dir");
    let config = serial_config(&replay_dir, &endpoint, &device);
    replay(&config, endpoint, capture_dir.join("usb.serial")).await;
    server.shutdown().await.expect("server stops");
    assert_eq!(
        samples(&replay_record),
        live_samples,
        "record → replay is exact"
    );
}

fn serial_config(dir: &Path, endpoint: &str, device: &Path) -> Config {
    let text = format!(
        r#"
[stream_api]
endpoint = "{endpoint}"
drain_timeout_ms = 2000

[session]
data_source = "LiveCar"
identifier = "serial test"

[car]
application = "LiveCar"
dbc = ["{}"]
stream = "can0"

[batch]
max_age_ms = 20

[[source]]
name = "usb"
kind = "serial"
device = "{}"
can_bitrate = 500000
reconnect_initial_ms = 10
reconnect_max_ms = 100
"#,
        test_car::dbc_path().display(),
        device.display()
    );
    let path = dir.join("serial.toml");
    std::fs::write(&path, text).expect("config");
    Config::load(&path).expect("valid config")
}

#[tokio::test]
async fn a_serial_reconnect_is_marked_in_the_recording_so_replay_matches_live() {
    use crate::serial::{FakeAdapter, ok, point};
    use decoders::wire::slcan::encode_frame;

    let SerialRig {
        dir,
        mut adapter,
        device,
        live_record,
        server,
        endpoint,
    } = SerialRig::new("usb-can").await;
    let config = serial_config(dir.path(), &endpoint, &device);
    let capture_dir = dir.path().join("capture");
    let live = LiveRun::start(&config, endpoint, &capture_dir);
    let metrics = live.live.metrics[0].clone();
    let dbc = test_car::dbc();
    // Each session: the adapter's clock starts where `first_stamp` says, 10 ms per frame.
    let session = |first_stamp: u32, first_rpm: f64| {
        let mut bytes = Vec::new();
        for n in 0..50u32 {
            let rpm = first_rpm + f64::from(n) * 10.0;
            let stamp = (first_stamp + n * 10) % 60_000;
            encode_frame(
                &engine_frame(&dbc, rpm, 90.0),
                Some(stamp as u16),
                &mut bytes,
            );
        }
        bytes
    };
    let init_limit = Duration::from_secs(10);
    tokio::time::timeout(init_limit, adapter.serve_init(ok))
        .await
        .expect("init in time");
    adapter.write_all(&session(30_000, 0.0)).await;
    until(|| Metrics::get(&metrics.frames) == 50).await;
    // Unplugged and replugged within seconds; the adapter restarted, so its clock restarted.
    drop(adapter);
    until(|| Metrics::get(&metrics.outages) == 1).await;
    let (mut adapter, slave) = FakeAdapter::new();
    point(&device, &slave);
    tokio::time::timeout(init_limit, adapter.serve_init(ok))
        .await
        .expect("re-init in time");
    until(|| Metrics::get(&metrics.reconnects) == 1).await;
    adapter.write_all(&session(5, 1000.0)).await;
    until(|| Metrics::get(&metrics.frames) == 100).await;
    live.finish().await;
    server.shutdown().await.expect("server stops");
    drop(adapter);

    let live_samples = samples(&live_record);
    let rpm = &live_samples["RPM:LiveCar"];
    assert_eq!(rpm.len(), 100);
    // Live, the second session is anchored on its own receive time: it follows the first.
    assert!(rpm[50].0 > rpm[49].0, "{:?} then {:?}", rpm[49], rpm[50]);

    let replay_record = dir.path().join("replay.osrec");
    let server = start_server(&replay_record).await;
    let endpoint = format!("http://{}", server.local_addr());
    let replay_dir = dir.path().join("replay-config");
    std::fs::create_dir_all(&replay_dir).expect("dir");
    let config = serial_config(&replay_dir, &endpoint, &device);
    replay(&config, endpoint, capture_dir.join("usb.serial")).await;
    server.shutdown().await.expect("server stops");
    assert_eq!(
        samples(&replay_record),
        live_samples,
        "the reopen marker makes replay re-anchor where the live source did"
    );
}

/// A session begins when the car's first frame is decoded, not when its first packet is
/// flushed: the session's calls and its formats' ids are done while that packet fills.
#[tokio::test]
async fn the_session_and_its_format_ids_are_ready_long_before_the_first_packet_is_due() {
    let dir = tempfile::tempdir().expect("temp dir");
    let record = dir.path().join("live.osrec");
    let server = start_server(&record).await;
    let endpoint = format!("http://{}", server.local_addr());
    let config = config_flushing_after(dir.path(), &endpoint, 600_000);
    let live = LiveRun::start(&config, endpoint, &dir.path().join("capture"));
    let (_, address): (String, SocketAddr) = live.live.udp_addresses[0].clone();
    let dbc = test_car::dbc();
    let sender = UdpSocket::bind("127.0.0.1:0").await.expect("sender");
    let frames = [
        engine_frame(&dbc, 900.0, 80.0),
        engine_frame(&dbc, 950.0, 81.0),
    ];
    let mut datagram = Vec::new();
    encode_datagram(0, &frames, &mut datagram);
    sender.send_to(&datagram, address).await.expect("send");

    // The packet's window is ten minutes; the session must not wait for it.
    let begun = tokio::time::timeout(
        Duration::from_secs(10),
        server.wait_until(|s| s.sessions_created == 1),
    )
    .await;
    assert!(begun.is_ok(), "no session 10 s after the first frame");
    // Only the format the car sent gets an id, not every message of the map.
    until(|| server.data_formats_issued() == 1).await;

    let summary = live.finish().await;
    server.shutdown().await.expect("server stops");
    assert_eq!(Metrics::get(&summary.metrics.samples_published), 8);
    let rpm: Vec<f64> = samples(&record)["RPM:LiveCar"]
        .iter()
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(rpm, [900.0, 950.0]);
}
