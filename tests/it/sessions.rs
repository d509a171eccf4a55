//! Sessions that follow the car (`docs/sessions.md`): a quiet car ends its session and the next
//! frame begins the next run, numbered per day across restarts; laps from the car's lap counter
//! at the triggering samples' times on every stream; a replayed capture dated when it was
//! driven; the watchdog pinging through a long idle. Real UDP on 127.0.0.1, our strict Stream
//! API, a counter in every frame (ENGINE.RPM = n / 4) so each session's samples are exact.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ecu_bridge::config::{Config, StreamApiTarget};
use ecu_bridge::pipeline;
use ecu_bridge::telemetry::Metrics;
use open_streaming::open_data::{EndOfSessionPacket, NewSessionPacket};
use prost::Message;
use stream_api::inspect::{self, Recording};
use stream_api::{ServerHandle, ServerOptions};
use tokio::net::TcpListener;

use crate::outage::{Bridge, config_with, send};
use crate::test_car;

async fn strict_server(record: &Path) -> ServerHandle {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let options = ServerOptions {
        strict: true,
        record: Some(record.to_owned()),
    };
    stream_api::spawn(listener, options).await.expect("server")
}

/// A strict server recording into `dir`: it, its recording's path and its URL.
async fn strict_server_in(dir: &Path) -> (ServerHandle, PathBuf, String) {
    let record = dir.join("server.osrec");
    let server = strict_server(&record).await;
    let endpoint = format!("http://{}", server.local_addr());
    (server, record, endpoint)
}

/// Replays `capture` through `config` into `server` (a strict one) at full speed, stops the
/// server, and returns the run's summary and the server's recording, which holds no violation.
async fn replay_strictly(
    config: &Config,
    server: ServerHandle,
    capture: PathBuf,
    record: &Path,
) -> (pipeline::RunSummary, Recording) {
    let endpoint = format!("http://{}", server.local_addr());
    let summary = crate::live::replay(config, endpoint, capture).await;
    server.shutdown().await.expect("server stops");
    let recording = inspect::read_recording(record).expect("recording");
    assert_eq!(recording.violations(), &[], "{}", recording.summary());
    (summary, recording)
}

/// The outage test car with sessions named by run, ending after `idle_end_s` of silence.
fn live_config(dir: &Path, endpoint: &str, idle_end_s: u64) -> Config {
    let session =
        format!("identifier = \"{{car}} {{date}} run {{run}}\"\nidle_end_s = {idle_end_s}");
    config_with(dir, endpoint, 5_000, &session)
}

/// The counters (RPM × 4) of one session's samples.
fn session_counters(recording: &Recording, key: &str) -> Vec<u64> {
    recording
        .samples_of(key, None)
        .remove("RPM:OutageCar")
        .unwrap_or_default()
        .into_iter()
        .map(|(_, value)| (value * 4.0).round() as u64)
        .collect()
}

/// `record` holds no violation and one ended session per range, "OutageCar <date> run N" in
/// order, each with exactly the counters of its range.
fn assert_runs(record: &Path, runs: &[std::ops::Range<u64>]) {
    let recording = inspect::read_recording(record).expect("recording");
    assert_eq!(recording.violations(), &[], "{}", recording.summary());
    let sessions = recording.sessions();
    assert_eq!(sessions.len(), runs.len(), "{}", recording.summary());
    for ((session, range), run) in sessions.iter().zip(runs).zip(1..) {
        assert!(
            session.identifier.starts_with("OutageCar 20")
                && session.identifier.ends_with(&format!("run {run}")),
            "{}",
            session.identifier
        );
        assert!(session.ended_ns.is_some(), "{} ended", session.identifier);
        assert_eq!(
            session_counters(&recording, &session.key),
            range.clone().collect::<Vec<_>>(),
            "{} holds exactly its own frames",
            session.identifier
        );
    }
}

async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// 1 s of frames, 4 s of silence (`idle_end` 2 s), 1 s of frames: two sessions, each with
/// exactly its own frames, "run 1" and "run 2"; a restarted bridge's next session is "run 3".
/// (The issue's 5 s + 40 s + 5 s with the default 30 s `idle_end`, scaled down.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_car_ends_its_session_and_the_next_frame_begins_the_next_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, record, endpoint) = strict_server_in(dir.path()).await;

    let bridge = Bridge::start(live_config(dir.path(), &endpoint, 2));
    let metrics = bridge.metrics.clone();
    assert_eq!(
        Metrics::get(&metrics.sessions_begun),
        0,
        "no session before the first frame"
    );
    send(bridge.udp, 0, 2_000).await;
    until("first session ended", || {
        Metrics::get(&metrics.sessions_ended) == 1
    })
    .await;
    assert_eq!(Metrics::get(&metrics.samples_published), 2_000);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        Metrics::get(&metrics.sessions_begun),
        1,
        "silence begins nothing"
    );
    send(bridge.udp, 2_000, 4_000).await;
    until("all published", || {
        Metrics::get(&metrics.samples_published) == 4_000
    })
    .await;
    let report = bridge.finish().await.expect("clean stop");
    assert_eq!(report.summary.sessions.len(), 2);
    assert_eq!(Metrics::get(&metrics.sessions_begun), 2);
    assert_eq!(Metrics::get(&metrics.sessions_ended), 2);

    // A restart numbers on.
    let bridge = Bridge::start(live_config(dir.path(), &endpoint, 2));
    send(bridge.udp, 4_000, 4_500).await;
    let restarted = bridge.metrics.clone();
    until("third run published", || {
        Metrics::get(&restarted.samples_published) == 500
    })
    .await;
    bridge.finish().await.expect("clean stop");
    server.shutdown().await.expect("server stops");

    assert_runs(&record, &[0..2_000, 2_000..4_000, 4_000..4_500]);
}

const LAP_DBC: &str = r#"VERSION ""

NS_ :

BS_:

BU_: ECU

BO_ 512 LAPS: 8 ECU
 SG_ LapCount : 0|8@1+ (1,0) [0|255] "" Vector__XXX
 SG_ Counter : 8|16@1+ (1,0) [0|65535] "" Vector__XXX
"#;

/// A candump log: 0x200 every 10 ms for 4 s (400 frames); the lap counter goes 0→1→2→3 at
/// frames 100, 200 and 300. Returns the file and the frames' times (ns).
fn lap_capture(dir: &Path) -> (PathBuf, Vec<u64>) {
    let start_s = 1_778_936_400u64;
    let mut text = String::new();
    let mut times = Vec::new();
    for n in 0..400u64 {
        let micros = n * 10_000 + 250;
        let lap = n / 100;
        let data = [lap as u8, (n & 0xff) as u8, (n >> 8) as u8, 0, 0, 0, 0, 0];
        let hex: String = data.iter().map(|b| format!("{b:02X}")).collect();
        let (seconds, fraction) = (start_s + micros / 1_000_000, micros % 1_000_000);
        text.push_str(&format!("({seconds}.{fraction:06}) can0 200#{hex}\n"));
        times.push(seconds * 1_000_000_000 + fraction * 1_000);
    }
    let path = dir.join("laps.log");
    std::fs::write(&path, text).expect("capture");
    (path, times)
}

fn lap_config(dir: &Path, endpoint: &str) -> Config {
    std::fs::write(dir.join("laps.dbc"), LAP_DBC).expect("dbc");
    let text = format!(
        r#"
[stream_api]
endpoint = "{endpoint}"

[session]
data_source = "LapCar"
identifier = "{{car}} {{date}} {{time}} run {{run}}"

[car]
application = "LapCar"
dbc = ["laps.dbc"]
stream = "car"

[laps]
counter = "LapCount"
"#
    );
    let path = dir.join("bridge.toml");
    std::fs::write(&path, text).expect("config");
    Config::load(&path).expect("valid config")
}

/// A lap counter 0→1→2→3 in a replayed candump capture: Out Lap at the first sample and Lap
/// 1–3 at the samples where the counter rose, on `""` and the data stream, inside the data
/// sent; the session dated by the capture; 0 violations into a strict server.
#[tokio::test]
async fn a_lap_counter_marks_laps_at_the_samples_that_raise_it_on_every_stream() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, record, endpoint) = strict_server_in(dir.path()).await;
    let config = lap_config(dir.path(), &endpoint);
    let (capture, times) = lap_capture(dir.path());
    let (summary, recording) = replay_strictly(&config, server, capture, &record).await;
    assert_eq!(Metrics::get(&summary.metrics.laps_marked), 3);
    assert_eq!(summary.sessions.len(), 1);
    assert_eq!(summary.sessions[0].laps, 3);
    assert_eq!(summary.sessions[0].first_ns, times[0]);
    assert_eq!(summary.sessions[0].last_ns, times[399]);

    assert_eq!(recording.violations(), &[], "{}", recording.summary());
    let markers = recording.markers();
    for stream in ["", "car"] {
        let on_stream: Vec<(String, i64, u64)> = markers
            .iter()
            .filter(|m| m.stream == stream)
            .map(|m| {
                assert_eq!(m.marker.r#type, "Lap Trigger");
                (m.marker.label.clone(), m.marker.value, m.marker.timestamp)
            })
            .collect();
        assert_eq!(
            on_stream,
            vec![
                ("Out Lap".to_owned(), 0, times[0]),
                ("Lap 1".to_owned(), 1, times[100]),
                ("Lap 2".to_owned(), 2, times[200]),
                ("Lap 3".to_owned(), 3, times[300]),
            ],
            "markers on stream {stream:?}"
        );
    }
    let session = &recording.sessions()[0];
    assert_eq!(session.identifier, "LapCar 2026-05-16 13:00:00 run 1");

    // `inspect`'s summary lists the session's streams and its laps (once, not per stream).
    let text = recording.summary().to_string();
    let section = &text[text.find(&session.key).expect("session line")..];
    let section = &section[..section.find("Parameters (").expect("parameters heading")];
    let laps: String = [
        ("Out Lap", times[0]),
        ("Lap 1", times[100]),
        ("Lap 2", times[200]),
        ("Lap 3", times[300]),
    ]
    .iter()
    .map(|(label, time)| format!("      {} {label:?}\n", inspect::utc(*time)))
    .collect();
    for expected in [
        "    stream \"\": ".to_owned(),
        "    stream \"car\": ".to_owned(),
        format!("    laps (4):\n{laps}"),
    ] {
        assert!(
            section.contains(&expected),
            "{expected:?} missing from\n{section}"
        );
    }
}

/// The demo capture (driven 2026-05-16 13:00 UTC) replayed: `creation_time` is its first
/// frame's time and `termination_time` its last, in NewSession, the session info and
/// EndOfSession.
#[tokio::test]
async fn a_replayed_capture_is_dated_when_it_was_driven() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, record, endpoint) = strict_server_in(dir.path()).await;
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo-car");
    let mut config = Config::load(&demo.join("bridge.toml")).expect("demo config");
    config.stream_api = StreamApiTarget::Remote(endpoint.clone());
    let capture = demo.join("drive.log");
    let text = std::fs::read_to_string(&capture).expect("capture");
    let time_ns = |line: &str| -> u64 {
        let stamp = &line[1..line.find(')').expect("stamp")];
        let (seconds, micros) = stamp.split_once('.').expect("fraction");
        seconds.parse::<u64>().expect("s") * 1_000_000_000
            + micros.parse::<u64>().expect("us") * 1_000
    };
    let first_ns = time_ns(text.lines().next().expect("first line"));
    let last_ns = text.lines().map(time_ns).max().expect("last");
    assert_eq!(first_ns, 1_778_936_400_000_261_000);
    let (summary, recording) = replay_strictly(&config, server, capture, &record).await;
    assert_eq!(summary.sessions.len(), 1);
    assert_eq!(
        (summary.sessions[0].first_ns, summary.sessions[0].last_ns),
        (first_ns, last_ns)
    );

    let as_ns = |t: &prost_types::Timestamp| t.seconds as u64 * 1_000_000_000 + t.nanos as u64;
    let announced = recording.packets_of_type("NewSession");
    assert!(!announced.is_empty());
    for (_, stream, content) in announced {
        let packet = NewSessionPacket::decode(content.as_slice()).expect("NewSession");
        let created = packet.creation_time.as_ref().expect("creation_time");
        assert_eq!(as_ns(created), first_ns, "NewSession on {stream:?}");
        let info = packet.session_info.expect("session info");
        assert_eq!(as_ns(&info.creation_time.expect("info creation")), first_ns);
        // What the bridge knows joins the configured details.
        let details = &info.details;
        assert!(details["bridge"].starts_with("ecu-bridge "), "{details:?}");
        assert!(
            details["channel map hash"].starts_with("crc32c:"),
            "{details:?}"
        );
        assert!(details["channel map files"].contains(".dbc"), "{details:?}");
        assert_eq!(details["run"], "1", "{details:?}");
    }
    let ended = recording.packets_of_type("EndOfSession");
    assert!(!ended.is_empty());
    let streams: BTreeSet<String> = ended.iter().map(|(_, s, _)| s.clone()).collect();
    assert!(streams.contains(""), "EndOfSession on the main stream");
    for (_, stream, content) in ended {
        let packet = EndOfSessionPacket::decode(content.as_slice()).expect("EndOfSession");
        let terminated = packet.termination_time.as_ref().expect("termination_time");
        assert_eq!(as_ns(terminated), last_ns, "EndOfSession on {stream:?}");
    }
}

/// A car that sends a few frames and then stays off for 10 minutes (paused time): its session
/// ends after `idle_end`, the watchdog pings at every check, the status never says stalled,
/// and `/health` stays 200. Time is paused once the frames are published.
#[tokio::test]
async fn the_watchdog_keeps_pinging_through_a_ten_minute_idle_car() {
    use ecu_bridge::daemon::Daemon;
    use ecu_bridge::service::ServiceOptions;
    use ecu_bridge::service::notify::Notifier;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::UnixDatagram;

    let dir = tempfile::tempdir().expect("temp dir");
    let (server, _record, endpoint) = strict_server_in(dir.path()).await;
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).expect("notify socket");
    let metrics_listener = TcpListener::bind("127.0.0.1:0").await.expect("metrics");
    let metrics_addr = metrics_listener.local_addr().expect("address");

    let service = ServiceOptions {
        notifier: Notifier::from_socket_var(Some(notify_path.as_os_str())),
        watchdog: Some(Duration::from_secs(10)),
        metrics_listener: Some(metrics_listener),
    };
    let bridge = Bridge::start_with(live_config(dir.path(), &endpoint, 30), |daemon| Daemon {
        service,
        ..daemon
    });
    let (udp, metrics) = (bridge.udp, bridge.metrics.clone());

    send(udp, 0, 200).await;
    until("published", || {
        Metrics::get(&metrics.samples_published) == 200
    })
    .await;
    tokio::time::pause();
    let idle_from = tokio::time::Instant::now();
    let mut pings = 0;
    let mut buf = [0u8; 1024];
    while idle_from.elapsed() < Duration::from_secs(600) {
        let n = tokio::time::timeout(Duration::from_secs(30), notify.recv(&mut buf))
            .await
            .expect("a notification at least every 30 s")
            .expect("recv");
        let message = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(!message.contains("stalled"), "{message}");
        if message.starts_with("WATCHDOG=1") {
            pings += 1;
        }
    }
    // One check every 5 s (half of WatchdogSec): 120 in 10 minutes.
    assert!(pings >= 118, "{pings} pings in 10 idle minutes");
    assert_eq!(
        Metrics::get(&metrics.sessions_ended),
        1,
        "the idle session ended"
    );

    let mut health = tokio::net::TcpStream::connect(metrics_addr)
        .await
        .expect("connect");
    health
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    let mut response = String::new();
    health
        .read_to_string(&mut response)
        .await
        .expect("response");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");

    bridge.finish().await.expect("clean stop");
    server.shutdown().await.expect("server stops");
}

/// Two sources on two streams: CAN frames from `gw` on `[car] stream` "can0", F1 24 packets
/// from `game` on `[[stream]]` "sim". Each stream carries only its source's samples and
/// markers inside its own data; `""` has the session's Out Lap; 0 violations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sources_on_two_streams_each_carry_only_their_own_samples() {
    use crate::frames::{definition, f1_24_packet, player_car};

    let dir = tempfile::tempdir().expect("temp dir");
    let (server, record, endpoint) = strict_server_in(dir.path()).await;
    let text = format!(
        r#"
[stream_api]
endpoint = "{endpoint}"

[session]
data_source = "TwoStreams"
identifier = "{{car}} run {{run}}"

[car]
application = "Rig"
dbc = ["{}"]
include = ["ENGINE.RPM", "CarTelemetry.*"]
definitions = ["{}"]
stream = "can0"

[batch]
max_age_ms = 20

[[stream]]
name = "sim"
sources = ["game"]

[[source]]
name = "gw"
kind = "udp"
bind = "127.0.0.1:0"

[[source]]
name = "game"
kind = "udp"
bind = "127.0.0.1:0"
definition = "f1_24_car_telemetry"
"#,
        test_car::dbc_path().display(),
        definition("f1_24_car_telemetry.toml").display()
    );
    let path = dir.path().join("bridge.toml");
    std::fs::write(&path, text).expect("config");
    let bridge = Bridge::start(Config::load(&path).expect("valid config"));
    let (gw, game) = (bridge.udp_of("gw"), bridge.udp_of("game"));
    let metrics = bridge.metrics.clone();
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("sender");
    for n in 0..50u16 {
        socket
            .send_to(&f1_24_packet(u32::from(n), player_car(n)), game)
            .await
            .expect("send");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    send(gw, 0, 400).await;
    until("published", || {
        Metrics::get(&metrics.frames_in) == 450
            && Metrics::get(&metrics.samples_published) == Metrics::get(&metrics.samples_decoded)
    })
    .await;
    bridge.finish().await.expect("clean stop");
    server.shutdown().await.expect("server stops");

    let recording = inspect::read_recording(&record).expect("recording");
    assert_eq!(recording.violations(), &[], "{}", recording.summary());
    let key = recording.sessions()[0].key.clone();
    let can: Vec<String> = recording
        .samples_of(&key, Some("can0"))
        .into_keys()
        .collect();
    let sim: Vec<String> = recording
        .samples_of(&key, Some("sim"))
        .into_keys()
        .collect();
    assert_eq!(can, ["RPM:Rig"], "only the CAN source's parameter on can0");
    assert!(
        !sim.is_empty() && !sim.contains(&"RPM:Rig".to_owned()),
        "{sim:?}"
    );
    let rpm = recording.samples_of(&key, Some("can0"));
    assert_eq!(rpm["RPM:Rig"].len(), 400);
    let speed = recording
        .samples_of(&key, Some("sim"))
        .into_iter()
        .find(|(id, _)| id.starts_with("speed"))
        .map(|(_, samples)| samples.len());
    assert_eq!(speed, Some(50), "{sim:?}");
    for stream in ["", "can0", "sim"] {
        let labels: Vec<String> = recording
            .markers()
            .into_iter()
            .filter(|m| m.stream == stream)
            .map(|m| m.marker.label)
            .collect();
        assert_eq!(labels, ["Out Lap"], "markers on {stream:?}");
    }
}

/// A new session by hand (SIGUSR1 in the binary): the open session ends at once and the next
/// frame begins "run 2"; each session holds exactly its own frames.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_session_by_request_ends_the_open_one_and_the_next_frame_begins_the_next() {
    use ecu_bridge::daemon::Daemon;

    let dir = tempfile::tempdir().expect("temp dir");
    let (server, record, endpoint) = strict_server_in(dir.path()).await;
    let (ask, asks) = tokio::sync::mpsc::channel(1);
    let bridge = Bridge::start_with(live_config(dir.path(), &endpoint, 30), |daemon| Daemon {
        new_sessions: Some(asks),
        ..daemon
    });
    let (udp, metrics) = (bridge.udp, bridge.metrics.clone());
    send(udp, 0, 1_000).await;
    until("first run published", || {
        Metrics::get(&metrics.samples_published) == 1_000
    })
    .await;
    ask.send(()).await.expect("request");
    until("first session ended", || {
        Metrics::get(&metrics.sessions_ended) == 1
    })
    .await;
    send(udp, 1_000, 2_000).await;
    until("second run published", || {
        Metrics::get(&metrics.samples_published) == 2_000
    })
    .await;
    bridge.finish().await.expect("clean stop");
    server.shutdown().await.expect("server stops");

    assert_runs(&record, &[0..1_000, 1_000..2_000]);
}

/// The same 11 200-parameter map against a v2.1 Stream API (`server_version = "2.1"`): the
/// Configuration goes in parts (rule 20), each under 1 MB, on every stream; the server holds
/// all 11 200 parameters; the data decodes against them; 0 violations into a strict server.
#[tokio::test]
async fn a_configuration_too_large_for_one_packet_goes_in_parts_to_a_v2_1_server() {
    use open_streaming::open_data::ConfigurationPacket;

    let dir = tempfile::tempdir().expect("temp dir");
    let (server, record, endpoint) = strict_server_in(dir.path()).await;
    std::fs::write(dir.path().join("big.dbc"), crate::cli::large_dbc(1_400)).expect("dbc");
    let path = dir.path().join("big.toml");
    std::fs::write(
        &path,
        format!(
            "[stream_api]\nendpoint = \"{endpoint}\"\nserver_version = \"2.1\"\n\n\
             [session]\ndata_source = \"Big\"\n\n\
             [car]\napplication = \"FactoryCar\"\ndbc = [\"big.dbc\"]\nstream = \"car\"\n"
        ),
    )
    .expect("config");
    let config = Config::load(&path).expect("valid config");
    let (map, _) = config.load_channel_map().expect("map");
    assert_eq!(map.parameters().len(), 11_200);
    // One frame of the last message: its 8 signals.
    let capture = dir.path().join("one.log");
    std::fs::write(
        &capture,
        format!(
            "(1778936400.000000) can0 {:03X}#0102030405060708\n",
            0x100 + 1_399
        ),
    )
    .expect("capture");
    let (summary, recording) = replay_strictly(&config, server, capture, &record).await;
    assert_eq!(Metrics::get(&summary.metrics.samples_published), 8);
    for stream in ["", "car"] {
        let parts: Vec<ConfigurationPacket> = recording
            .packets_of_type("Configuration")
            .into_iter()
            .filter(|(_, s, _)| s == stream)
            .map(|(_, _, content)| {
                assert!(
                    content.len() < 1_000_000,
                    "a part of {} bytes",
                    content.len()
                );
                ConfigurationPacket::decode(content.as_slice()).expect("part")
            })
            .collect();
        assert!(parts.len() >= 2, "{} parts on {stream:?}", parts.len());
        let total = parts.len() as u32;
        let mut parameters = BTreeSet::new();
        for (number, part) in (1..).zip(&parts) {
            assert!(part.partial_packet);
            assert_eq!(
                (part.packet_number, part.total_packet_number),
                (number, total)
            );
            assert_eq!(part.config_id, parts[0].config_id);
            assert_eq!(part.group_definitions.len(), 1, "one top-level group each");
            parameters.extend(
                part.parameter_definitions
                    .iter()
                    .map(|p| p.identifier.clone()),
            );
        }
        assert_eq!(parameters.len(), 11_200, "on stream {stream:?}");
    }
    let samples = recording.samples();
    assert_eq!(
        samples["PT_1399_CHANNEL_SIGNAL_7:FactoryCar"],
        vec![(1_778_936_400_000_000_000, 8.0 * 0.25 - 40.0)]
    );
}
