//! CAN end to end: known values are encoded into frames with a DBC, written as a candump log,
//! replayed through the whole pipeline into our Stream API over real gRPC, and every sample is
//! checked for identifier, value (within the DBC resolution) and timestamp.

use std::collections::BTreeMap;
use std::path::Path;

use decoders::can::{CanFlags, CanFrame};
use decoders::dbc::Dbc;
use decoders::wire::candump::write_line;
use ecu_bridge::capture::replay::Pacing;
use ecu_bridge::config::Config;
use ecu_bridge::pipeline;
use ecu_bridge::telemetry::Metrics;
use stream_api::{self, ServerOptions, inspect};
use tokio::net::TcpListener;

use crate::test_car;

const T0: u64 = 1_778_936_400_000_000_000;

/// Expected samples: identifier → (time, value, resolution).
type Expected = BTreeMap<String, Vec<(u64, f64, f64)>>;

struct Capture {
    text: String,
    expected: Expected,
}

impl Capture {
    /// Encodes `values` into message `name` at `time` and records what must arrive.
    fn frame(
        &mut self,
        dbc: &Dbc,
        time: u64,
        name: &str,
        values: &[(&str, f64)],
        length: Option<usize>,
    ) {
        let message = dbc.message_by_name(name).expect("message");
        let mut data = vec![0u8; usize::from(message.size)];
        for (signal, value) in values {
            let signal = message
                .signals
                .iter()
                .find(|s| s.name == *signal)
                .expect("signal");
            signal
                .layout()
                .encode(*value, &mut data)
                .expect("encodable");
        }
        let data = &data[..length.unwrap_or(data.len())];
        for (signal, value) in values {
            let signal = message
                .signals
                .iter()
                .find(|s| s.name == *signal)
                .expect("signal");
            if signal.layout().bytes_needed() <= data.len() {
                self.expected
                    .entry(format!("{}:TestCar", signal.name))
                    .or_default()
                    .push((time, *value, signal.scale.abs()));
            }
        }
        let frame = CanFrame::new(message.id, CanFlags::empty(), data).expect("frame");
        write_line(time, "can0", &frame, &mut self.text);
    }
}

/// Two seconds of traffic with values sweeping each signal's range, limits included.
fn capture(dbc: &Dbc) -> Capture {
    let mut capture = Capture {
        text: String::new(),
        expected: BTreeMap::new(),
    };
    for i in 0..200u64 {
        // Microsecond-precise, irregular timestamps, as a real logger writes them.
        let time = T0 + i * 10_000_000 + (i * 7_919 % 1_000) * 1_000;
        let rpm = if i == 0 {
            16_383.75
        } else {
            (i * 37 % 65_536) as f64 * 0.25
        };
        let coolant = match i {
            1 => -88.0,
            2 => 167.0,
            _ => (i % 200) as f64 - 50.0,
        };
        let throttle = (i % 1001) as f64 * 0.1;
        let oil = -2.0 + (i * 3 % 2048) as f64 * 0.01;
        capture.frame(
            dbc,
            time,
            "ENGINE",
            &[
                ("RPM", rpm),
                ("COOLANT", coolant),
                ("THROTTLE", throttle),
                ("OIL_PRESSURE", oil),
            ],
            None,
        );
        if i % 2 == 0 {
            let steer = if i == 4 {
                -3276.8
            } else {
                (i as f64 - 100.0) * 1.5
            };
            let speed = if i == 6 { 409.5 } else { i as f64 * 0.7 };
            let accel = (i as f64 * 0.37).sin() * 12.5;
            let accel = f64::from(accel as f32);
            capture.frame(
                dbc,
                time + 1_000,
                "CHASSIS",
                &[("STEER", steer), ("SPEED", speed), ("ACCEL_X", accel)],
                None,
            );
        }
        if i % 5 == 0 {
            let corner = (i / 5 % 2) as f64;
            let temp_signal = if corner == 0.0 { "TEMP_FL" } else { "TEMP_FR" };
            let temp = -50.0 + i as f64 * 0.5;
            capture.frame(
                dbc,
                time + 2_000,
                "TYRES",
                &[
                    ("CORNER", corner),
                    (temp_signal, temp),
                    ("PRESSURE", 1.5 + i as f64 * 0.001),
                ],
                None,
            );
        }
    }
    // A frame shorter than its DBC length: RPM and COOLANT fit, the rest do not.
    capture.frame(
        dbc,
        T0 + 2_500_000_000,
        "ENGINE",
        &[("RPM", 1000.0), ("COOLANT", 90.0), ("THROTTLE", 50.0)],
        Some(3),
    );
    // Garbage and an id the DBC does not know: counted, never published.
    capture.text.push_str("(1778936402.600000) can0 1A4#ZZ\n");
    capture.text.push_str("(1778936402.700000) can0 7FF#0011\n");
    capture
}

fn config(dir: &Path, endpoint: &str) -> Config {
    let text = format!(
        r#"
[stream_api]
endpoint = "{endpoint}"
drain_timeout_ms = 2000

[session]
data_source = "TestCar"
identifier = "replay test"

[car]
application = "TestCar"
dbc = ["{}"]
stream = "can0"

[batch]
max_age_ms = 20
max_packet_bytes = 4096
"#,
        test_car::dbc_path().display()
    );
    let path = dir.join("bridge.toml");
    std::fs::write(&path, &text).expect("write config");
    Config::load(&path).expect("config valid")
}

#[tokio::test]
async fn every_encoded_sample_arrives_with_its_identifier_value_and_time() {
    let dir = tempfile::tempdir().expect("temp dir");
    let record = dir.path().join("replay.osrec");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let options = ServerOptions {
        strict: false,
        record: Some(record.clone()),
    };
    let server = stream_api::spawn(listener, options).await.expect("server");
    let endpoint = format!("http://{}", server.local_addr());

    let dbc = test_car::dbc();
    let capture = capture(&dbc);
    let capture_path = dir.path().join("drive.log");
    std::fs::write(&capture_path, &capture.text).expect("write capture");
    let config = config(dir.path(), &endpoint);
    let (map, _warnings) = config.load_channel_map().expect("channel map");
    let summary = pipeline::replay(
        &config,
        map,
        endpoint,
        vec![capture_path],
        Pacing::MaxSpeed,
        std::future::pending(),
    )
    .await
    .expect("replay succeeds");
    server.shutdown().await.expect("server stops cleanly");

    let metrics = &summary.metrics;
    assert_eq!(
        Metrics::get(&metrics.rejected_inputs),
        1,
        "the garbage line is counted"
    );
    assert_eq!(metrics.decode_errors().values().sum::<u64>(), 1);
    assert_eq!(
        Metrics::get(&metrics.unknown_ids),
        1,
        "the unknown id is counted"
    );
    assert_eq!(
        Metrics::get(&metrics.short_frames),
        1,
        "the short frame is counted"
    );

    let recording = inspect::read_recording(&record).expect("recording");
    assert_eq!(recording.violations(), &[], "zero protocol violations");
    let mut arrived = recording.samples();
    for (identifier, expected) in &capture.expected {
        let got = arrived.remove(identifier).unwrap_or_default();
        assert_eq!(got.len(), expected.len(), "{identifier}: sample count");
        for ((time, value), (want_time, want_value, resolution)) in got.iter().zip(expected) {
            assert!(
                time.abs_diff(*want_time) <= 1_000,
                "{identifier}: time {time} vs {want_time}"
            );
            assert!(
                (value - want_value).abs() <= resolution / 2.0 + 1e-9,
                "{identifier} at {time}: {value} vs {want_value} (resolution {resolution})"
            );
        }
    }
    assert!(
        arrived.is_empty(),
        "unexpected parameters: {:?}",
        arrived.keys()
    );
}
