//! Frame definitions wired to sources, end to end: EA SPORTS F1 24 car-telemetry packets sent
//! over UDP on 127.0.0.1 and the example native ECU streaming over a real pty reach our Stream
//! API (strict) as the known values under the car's names, with bad input counted by kind; the
//! recordings made during the live runs replay into identical samples; a compound message
//! carried on a CAN id is reassembled from a candump replay; and the F1 24 path runs once more
//! with real processes (`ecu-bridge run` into `ecu-bridge stream-api --strict`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use decoders::frame::CheckKind;
use ecu_bridge::config::Config;
use ecu_bridge::telemetry::Metrics;
use tokio::net::UdpSocket;

use crate::live::{LiveRun, SerialRig, replay, samples, start_server, until};

pub(crate) fn definition(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("decoders/definitions")
        .join(file)
}

fn write_config(dir: &Path, name: &str, text: &str) -> Config {
    std::fs::create_dir_all(dir).expect("config dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("config");
    Config::load(&path).expect("valid config")
}

/// The player's car in one packet: the values the bridge must publish.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PlayerCar {
    speed: u16,
    gear: i8,
    rpm: u16,
    brake_temperature_fl: u16,
    tyre_pressure_rr: f32,
}

const PACKET_LEN: usize = 1352;
const PLAYER: usize = 5;

/// A whole F1 24 car-telemetry packet (docs/frame-definitions.md): the player's record holds `car`,
/// the 21 others decoys that must never be published.
pub(crate) fn f1_24_packet(frame_identifier: u32, car: PlayerCar) -> Vec<u8> {
    let mut packet = vec![0u8; PACKET_LEN];
    packet[0..2].copy_from_slice(&2024u16.to_le_bytes());
    packet[2] = 24;
    packet[6] = 6;
    packet[19..23].copy_from_slice(&frame_identifier.to_le_bytes());
    packet[27] = PLAYER as u8;
    packet[28] = 255;
    for index in 0..22 {
        let record = &mut packet[29 + 60 * index..29 + 60 * (index + 1)];
        let decoy = PlayerCar {
            speed: 7,
            gear: 2,
            rpm: 4000,
            brake_temperature_fl: 1,
            tyre_pressure_rr: 1.0,
        };
        let values = if index == PLAYER { car } else { decoy };
        record[0..2].copy_from_slice(&values.speed.to_le_bytes());
        record[15] = values.gear as u8;
        record[16..18].copy_from_slice(&values.rpm.to_le_bytes());
        // Brake temperatures RL, RR, FL, FR from 22; tyre pressures likewise from 40.
        record[26..28].copy_from_slice(&values.brake_temperature_fl.to_le_bytes());
        record[44..48].copy_from_slice(&values.tyre_pressure_rr.to_le_bytes());
    }
    packet
}

/// How to get a published value from the car it was built from.
type Known = fn(&PlayerCar) -> f64;

pub(crate) fn player_car(n: u16) -> PlayerCar {
    PlayerCar {
        speed: 100 + n,
        gear: if n.is_multiple_of(10) {
            -1
        } else {
            (n % 8) as i8
        },
        rpm: 10_000 + 10 * n,
        brake_temperature_fl: 300 + n,
        tyre_pressure_rr: 22.0 + f32::from(n) / 4.0,
    }
}

fn f1_config(dir: &Path, endpoint: &str) -> Config {
    let path = write_f1_config(dir, endpoint, "");
    Config::load(&path).expect("valid config")
}

/// The F1 24 car map with `extra` appended; returns its path.
fn write_f1_config(dir: &Path, endpoint: &str, extra: &str) -> PathBuf {
    let text = format!(
        r#"
[stream_api]
endpoint = "{endpoint}"
drain_timeout_ms = 2000

[session]
data_source = "SimRig"
identifier = "f1 over udp"

[car]
application = "SimCar"
definitions = ["{}"]
stream = "sim"

[car.rename]
"CarTelemetry.speed" = "vCar"

[car.override."CarTelemetry.engine_rpm"]
unit = "1/min"

[batch]
max_age_ms = 20

[[source]]
name = "game"
kind = "udp"
bind = "127.0.0.1:0"
definition = "f1_24_car_telemetry"
{extra}"#,
        definition("f1_24_car_telemetry.toml").display()
    );
    std::fs::create_dir_all(dir).expect("config dir");
    let path = dir.join("f1.toml");
    std::fs::write(&path, text).expect("config");
    path
}

fn values(samples: &std::collections::BTreeMap<String, Vec<(u64, f64)>>, id: &str) -> Vec<f64> {
    samples
        .get(id)
        .unwrap_or_else(|| panic!("{id} published; have {:?}", samples.keys()))
        .iter()
        .map(|(_, value)| *value)
        .collect()
}

#[tokio::test]
async fn f1_24_packets_over_udp_are_published_as_the_player_car_and_replay_exactly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let live_record = dir.path().join("live.osrec");
    let server = start_server(&live_record).await;
    let config = f1_config(dir.path(), &format!("http://{}", server.local_addr()));
    let capture_dir = dir.path().join("capture");
    let endpoint = format!("http://{}", server.local_addr());
    let live = LiveRun::start(&config, endpoint, &capture_dir);
    let (_, address): (String, SocketAddr) = live.live.udp_addresses[0].clone();
    let metrics = live.live.metrics[0].clone();

    let sender = UdpSocket::bind("127.0.0.1:0").await.expect("sender");
    let cars: Vec<PlayerCar> = (0..40).map(player_car).collect();
    for (n, car) in cars.iter().enumerate() {
        let packet = f1_24_packet(n as u32, *car);
        sender.send_to(&packet, address).await.expect("send");
    }
    // Bad input, each counted by kind and never published: a motion packet (another packet
    // id: unknown message), an F1 23 packet (bad sync), a car-telemetry packet cut short.
    let mut motion = f1_24_packet(99, player_car(0));
    motion[6] = 0;
    motion.truncate(1349);
    let mut f1_23 = f1_24_packet(100, player_car(0));
    f1_23[0..2].copy_from_slice(&2023u16.to_le_bytes());
    let short = f1_24_packet(101, player_car(0))[..1000].to_vec();
    for bad in [&motion, &f1_23, &short] {
        sender.send_to(bad, address).await.expect("send");
    }
    let sent = cars.len() as u64 + 3;
    until(|| Metrics::get(&metrics.reads) == sent).await;
    let summary = live.finish().await;
    server.shutdown().await.expect("server stops");

    let pipeline = &summary.metrics;
    assert_eq!(Metrics::get(&pipeline.frames_in), sent);
    assert_eq!(Metrics::get(&pipeline.unknown_ids), 1, "the motion packet");
    let errors = pipeline.decode_errors();
    assert_eq!(
        (errors.get("bad_sync"), errors.get("truncated")),
        (Some(&1), Some(&1)),
        "{errors:?}"
    );
    assert_eq!(Metrics::get(&pipeline.rows_decoded), cars.len() as u64);
    // 25 published fields per packet (player_car_index is not published).
    assert_eq!(
        Metrics::get(&pipeline.samples_published),
        25 * cars.len() as u64
    );

    let live_samples = samples(&live_record);
    assert_eq!(live_samples.len(), 25, "{:?}", live_samples.keys());
    let published: [(&str, Known); 5] = [
        ("vCar:SimCar", |c| f64::from(c.speed)),
        ("gear:SimCar", |c| f64::from(c.gear)),
        ("engine_rpm:SimCar", |c| f64::from(c.rpm)),
        ("brake_temperature_FL:SimCar", |c| {
            f64::from(c.brake_temperature_fl)
        }),
        ("tyre_pressure_RR:SimCar", |c| f64::from(c.tyre_pressure_rr)),
    ];
    for (identifier, known) in published {
        let expected: Vec<f64> = cars.iter().map(known).collect();
        assert_eq!(values(&live_samples, identifier), expected, "{identifier}");
    }

    // The pcapng recorded during the live run replays into identical samples; no candump log
    // is written for a source that carries no CAN.
    let pcapng = capture_dir.join("game.pcapng");
    assert!(!capture_dir.join("game.candump.log").exists());
    let replay_record = dir.path().join("replay.osrec");
    let server = start_server(&replay_record).await;
    let endpoint = format!("http://{}", server.local_addr());
    let config = f1_config(&dir.path().join("replay-config"), &endpoint);
    let replayed = replay(&config, endpoint, pcapng).await;
    server.shutdown().await.expect("server stops");
    assert_eq!(
        samples(&replay_record),
        live_samples,
        "record → replay is exact"
    );
    let errors = replayed.metrics.decode_errors();
    assert_eq!(
        (errors.get("bad_sync"), errors.get("truncated")),
        (Some(&1), Some(&1)),
        "the replay meets the same bad packets: {errors:?}"
    );
}

/// An `example_serial_ecu.toml` frame: sync, length, counter, id, payload, CRC-16/CCITT-FALSE.
fn ecu_frame(counter: u8, id: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0xAA, 0x55, payload.len() as u8, counter, id];
    frame.extend_from_slice(payload);
    let crc = CheckKind::Crc16CcittFalse.compute(&frame[2..]) as u16;
    frame.extend_from_slice(&crc.to_be_bytes());
    frame
}

/// Engine payload: rpm, throttle ×10, coolant ×10, lambda ×1000, status bits (fan, MIL, gear).
fn engine_payload(rpm: u16) -> Vec<u8> {
    let mut payload = Vec::new();
    for value in [rpm, 750, 900, 1000] {
        payload.extend_from_slice(&value.to_be_bytes());
    }
    payload.push(0b0000_0101);
    payload
}

fn ecu_config(dir: &Path, endpoint: &str, device: &Path) -> Config {
    let text = format!(
        r#"
[stream_api]
endpoint = "{endpoint}"
drain_timeout_ms = 2000

[session]
data_source = "BenchEcu"
identifier = "native serial"

[car]
application = "Bench"
definitions = ["{}"]
exclude = ["Wheels"]

[batch]
max_age_ms = 20

[[source]]
name = "ecu"
kind = "serial"
device = "{}"
baud = 115200
definition = "example_serial_ecu"
reconnect_initial_ms = 10
reconnect_max_ms = 100
"#,
        definition("example_serial_ecu.toml").display(),
        device.display()
    );
    write_config(dir, "ecu.toml", &text)
}

#[tokio::test]
async fn a_native_ecu_on_a_serial_line_is_framed_checked_and_replays_exactly() {
    let SerialRig {
        dir,
        mut adapter,
        device,
        live_record,
        server,
        endpoint,
    } = SerialRig::new("ecu-tty").await;
    let config = ecu_config(dir.path(), &endpoint, &device);
    let capture_dir = dir.path().join("capture");
    let live = LiveRun::start(&config, endpoint, &capture_dir);
    let metrics = live.live.metrics[0].clone();
    adapter.until_raw().await;

    let mut stream = b"\x00noise before the first sync\xAA".to_vec();
    let mut expected_rpm = Vec::new();
    for counter in 0..60u8 {
        let rpm = 1000 + u16::from(counter) * 50;
        let frame = ecu_frame(counter, 1, &engine_payload(rpm));
        match counter {
            // Lost on the line: a counter gap of one.
            17 => continue,
            // One bit flipped in transit: the CRC fails, the frame is dropped.
            30 => {
                let mut damaged = frame;
                damaged[6] ^= 0x10;
                stream.extend_from_slice(&damaged);
                continue;
            }
            _ => {}
        }
        expected_rpm.push(f64::from(rpm));
        stream.extend_from_slice(&frame);
        if counter % 20 == 0 {
            stream.extend_from_slice(b"\x55\x13garbage");
        }
    }
    // Wheels frames are excluded by the map: counted as unknown messages, never published.
    stream.extend_from_slice(&ecu_frame(60, 2, &[0; 8]));
    for chunk in stream.chunks(23) {
        adapter.write_all(chunk).await;
    }
    until(|| Metrics::get(&metrics.frames) == expected_rpm.len() as u64 + 1).await;
    let summary = live.finish().await;
    server.shutdown().await.expect("server stops");
    assert_eq!(
        adapter.sent_by_host(),
        b"",
        "no SLCAN set-up for a native ECU"
    );
    drop(adapter);

    let errors = metrics.decode_errors();
    assert_eq!(errors.get("bad_check"), Some(&1), "{errors:?}");
    assert!(errors.get("resync").is_some_and(|n| *n >= 4), "{errors:?}");
    // 17 lost, 30 damaged: the counter jumps twice.
    assert_eq!(Metrics::get(&metrics.sequence_gaps), 2);
    assert_eq!(
        Metrics::get(&summary.metrics.unknown_ids),
        1,
        "the Wheels frame"
    );

    let live_samples = samples(&live_record);
    assert_eq!(values(&live_samples, "rpm:Bench"), expected_rpm);
    let gear = values(&live_samples, "gear:Bench");
    assert!(gear.iter().all(|g| *g == 1.0), "{gear:?}");
    let lambda = values(&live_samples, "lambda:Bench");
    assert!(lambda.iter().all(|l| (l - 1.0).abs() < 1e-12));
    assert!(!live_samples.contains_key("wheel_speed_FL:Bench"));

    let replay_record = dir.path().join("replay.osrec");
    let server = start_server(&replay_record).await;
    let endpoint = format!("http://{}", server.local_addr());
    let config = ecu_config(&dir.path().join("replay-config"), &endpoint, &device);
    replay(&config, endpoint, capture_dir.join("ecu.serial")).await;
    server.shutdown().await.expect("server stops");
    assert_eq!(
        samples(&replay_record),
        live_samples,
        "record → replay is exact"
    );
}

#[tokio::test]
async fn a_compound_message_on_a_can_id_is_reassembled_and_losses_are_counted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let record = dir.path().join("replay.osrec");
    let server = start_server(&record).await;
    let endpoint = format!("http://{}", server.local_addr());
    let text = format!(
        r#"
[stream_api]
endpoint = "{endpoint}"

[session]
data_source = "DashCar"

[car]
application = "Dash"
definitions = ["{}"]
include = ["Dash.channel_0", "Dash.channel_35"]

[car.compound_can]
motec_dash_can = 0x5F0
"#,
        definition("motec_dash_can.toml").display()
    );
    let config = write_config(dir.path(), "dash.toml", &text);

    // Three 80-byte messages in ten 8-byte frames each: the second loses a frame, the third
    // has a bad CRC-32; only the first may be published.
    let message = |first_word: u16| {
        let mut bytes = vec![0x82, 0x81, 0x80, 36];
        for word in 0..36u16 {
            bytes.extend_from_slice(&(first_word + word).to_be_bytes());
        }
        let crc = CheckKind::Crc32.compute(&bytes);
        bytes.extend_from_slice(&crc.to_be_bytes());
        bytes
    };
    let mut log = String::new();
    let mut time_us = 1_778_936_400_000_000u64;
    for (n, first_word) in [100u16, 200, 300].into_iter().enumerate() {
        let mut bytes = message(first_word);
        if n == 2 {
            bytes[40] ^= 1;
        }
        for (index, chunk) in bytes.chunks(8).enumerate() {
            if n == 1 && index == 4 {
                continue;
            }
            let data: String = chunk.iter().map(|b| format!("{b:02X}")).collect();
            log.push_str(&format!(
                "({}.{:06}) can0 5F0#{data}\n",
                time_us / 1_000_000,
                time_us % 1_000_000
            ));
            time_us += 100;
        }
    }
    let capture = dir.path().join("dash.candump.log");
    std::fs::write(&capture, log).expect("capture");
    let summary = replay(&config, endpoint, capture).await;
    server.shutdown().await.expect("server stops");

    let published = samples(&record);
    assert_eq!(values(&published, "channel_0:Dash"), [100.0]);
    assert_eq!(values(&published, "channel_35:Dash"), [135.0]);
    let errors = summary.metrics.decode_errors();
    assert_eq!(
        (
            errors.get("compound_incomplete"),
            errors.get("compound_bad_check")
        ),
        (Some(&1), Some(&1)),
        "{errors:?}"
    );
}

/// The acceptance path with real processes: `ecu-bridge stream-api --strict` and
/// `ecu-bridge run`, F1 24 packets over UDP on 127.0.0.1 between them, and `ecu-bridge inspect`
/// on what the Stream API recorded.
#[test]
fn f1_24_over_udp_through_the_bridge_binary_into_the_stream_api_binary() {
    use std::process::Command;

    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;

    use crate::daemon::{http_get, logged_address, start, wait_exit};

    let dir = tempfile::tempdir().expect("temp dir");
    let notify = dir.path().join("notify.sock");
    let _notify = std::os::unix::net::UnixDatagram::bind(&notify).expect("notify socket");
    let record = dir.path().join("stream-api.osrec");
    let record_arg = record.to_str().expect("utf-8");
    let (mut server, server_log) = start(
        &[
            "stream-api",
            "--listen",
            "127.0.0.1:0",
            "--strict",
            "--record",
            record_arg,
        ],
        &notify,
    );
    let server_address = logged_address(&server_log, "Stream API listening", "address=");
    let config = write_f1_config(
        dir.path(),
        &format!("http://{server_address}"),
        "\n[service]\nmetrics_listen = \"127.0.0.1:0\"\n\n[spool]\ndir = \"spool\"\n",
    );
    let (mut bridge, bridge_log) = start(
        &["run", "--config", config.to_str().expect("utf-8")],
        &notify,
    );
    let udp = logged_address(&bridge_log, "udp source bound", "local_addr=");
    let metrics = logged_address(&bridge_log, "metrics endpoint listening", "address=");

    let sender = std::net::UdpSocket::bind("127.0.0.1:0").expect("sender");
    let cars: Vec<PlayerCar> = (0..30).map(player_car).collect();
    for (n, car) in cars.iter().enumerate() {
        sender
            .send_to(&f1_24_packet(n as u32, *car), &udp)
            .expect("send");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, body) = http_get(&metrics, "/metrics");
        if body.contains("ecu_bridge_samples_published_total 750") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "samples never published:\n{body}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    kill(Pid::from_raw(bridge.id() as i32), Signal::SIGTERM).expect("SIGTERM bridge");
    assert!(wait_exit(&mut bridge).success(), "the bridge exits cleanly");
    kill(Pid::from_raw(server.id() as i32), Signal::SIGTERM).expect("SIGTERM server");
    wait_exit(&mut server);

    let output = Command::new(env!("CARGO_BIN_EXE_ecu-bridge"))
        .arg("inspect")
        .arg(&record)
        .output()
        .expect("run inspect");
    let report = String::from_utf8_lossy(&output.stdout);
    for expected in [
        "vCar:SimCar [km/h]: 30 samples",
        "tyre_pressure_RR:SimCar [psi]: 30 samples",
        "Protocol violations (0):",
    ] {
        assert!(
            report.contains(expected),
            "missing {expected:?} in:\n{report}"
        );
    }
    let published = samples(&record);
    assert_eq!(
        values(&published, "gear:SimCar"),
        cars.iter().map(|c| f64::from(c.gear)).collect::<Vec<_>>()
    );
}
