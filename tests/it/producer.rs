//! The producer client against our Stream API over real TCP on 127.0.0.1: a full session with
//! two data formats, periodic and row packets and a lap marker, and a session that survives a
//! server restart.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use ecu_bridge::publish::producer::{
    PacketKind, Producer, ProducerConfig, RetryPolicy, SpoolPlace,
};
use open_streaming::open_data::{
    ConfigurationPacket, DataStatus, DataType, DoubleSample, DoubleSampleList, GroupDefinition,
    MarkerPacket, ParameterDefinition, PeriodicDataPacket, RowDataPacket, SampleColumn,
    SampleDataFormat, SampleRow, sample_column, sample_data_format, sample_row,
};
use stream_api::{self, ServerOptions, inspect};
use tokio::net::TcpListener;

/// 2026-05-16 13:00:00 UTC.
const T0: u64 = 1_778_936_400_000_000_000;
const STREAM: &str = "car";

fn producer_config(address: SocketAddr) -> ProducerConfig {
    ProducerConfig {
        endpoint: format!("http://{address}"),
        key_generator: Some(format!("http://{address}")),
        data_source: "TestCar".to_owned(),
        identifier: "integration session".to_owned(),
        session_type: "Session".to_owned(),
        utc_offset_seconds: 3600,
        details: BTreeMap::from([("Driver".to_owned(), "Test".to_owned())]),
        streams: vec![STREAM.to_owned()],
        call_timeout: Duration::from_secs(10),
        retry: RetryPolicy {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(200),
            give_up_after: Some(Duration::from_secs(30)),
        },
        drain_timeout: Duration::from_secs(2),
        spool: SpoolPlace::Temporary,
        split_configuration: false,
    }
}

fn parameter(name: &str) -> ParameterDefinition {
    ParameterDefinition {
        identifier: format!("{name}:Test"),
        name: name.to_owned(),
        application_name: "Test".to_owned(),
        description: format!("{name} for the test"),
        groups: vec!["Chassis".to_owned()],
        units: "u".to_owned(),
        data_type: DataType::Float64 as i32,
        format_string: "%.3f".to_owned(),
        min_value: -1000.0,
        max_value: 1000.0,
        warning_min_value: -1000.0,
        warning_max_value: 1000.0,
        frequencies: vec![100.0],
        includes_row_data: true,
        includes_synchro_data: false,
        conversion: None,
        formula: None,
    }
}

fn configuration() -> ConfigurationPacket {
    ConfigurationPacket {
        parameter_definitions: ["Speed", "Rpm", "Gear"].map(parameter).to_vec(),
        group_definitions: vec![GroupDefinition {
            identifier: "Test".to_owned(),
            name: "Test".to_owned(),
            application_name: "Test".to_owned(),
            description: String::new(),
            groups: vec![GroupDefinition {
                identifier: "Chassis".to_owned(),
                name: "Chassis".to_owned(),
                application_name: "Test".to_owned(),
                description: String::new(),
                groups: Vec::new(),
            }],
        }],
        ..ConfigurationPacket::default()
    }
}

fn doubles(values: impl Iterator<Item = f64>) -> DoubleSampleList {
    DoubleSampleList {
        samples: values
            .map(|value| DoubleSample {
                value,
                status: DataStatus::Valid as i32,
            })
            .collect(),
    }
}

/// A 100 Hz periodic packet of Speed and Rpm, 50 samples from `first` (sample index).
fn periodic(format: u64, first: u64) -> PeriodicDataPacket {
    let column = |scale: f64| SampleColumn {
        list: Some(sample_column::List::DoubleSamples(doubles(
            (first..first + 50).map(move |i| i as f64 * scale),
        ))),
    };
    PeriodicDataPacket {
        data_format: Some(SampleDataFormat {
            format: Some(sample_data_format::Format::DataFormatIdentifier(format)),
        }),
        start_time: T0 + first * 10_000_000,
        interval: 10_000_000,
        columns: vec![column(0.5), column(10.0)],
    }
}

/// Gear changes at irregular times.
fn gear_rows(format: u64, times_and_gears: &[(u64, f64)]) -> RowDataPacket {
    RowDataPacket {
        data_format: Some(SampleDataFormat {
            format: Some(sample_data_format::Format::DataFormatIdentifier(format)),
        }),
        timestamps: times_and_gears.iter().map(|(t, _)| *t).collect(),
        rows: times_and_gears
            .iter()
            .map(|(_, gear)| SampleRow {
                list: Some(sample_row::List::DoubleSamples(doubles(std::iter::once(
                    *gear,
                )))),
            })
            .collect(),
    }
}

fn lap(time: u64) -> MarkerPacket {
    MarkerPacket {
        timestamp: time,
        label: "Lap 1".to_owned(),
        r#type: "Lap Trigger".to_owned(),
        source: "0".to_owned(),
        value: 1,
        ..MarkerPacket::default()
    }
}

async fn start_server(address: &str, record: &Path) -> stream_api::ServerHandle {
    let listener = TcpListener::bind(address).await.expect("bind loopback");
    let options = ServerOptions {
        strict: false,
        record: Some(record.to_owned()),
    };
    stream_api::spawn(listener, options)
        .await
        .expect("server starts")
}

#[tokio::test]
async fn a_full_session_lands_with_zero_violations_and_exact_samples() {
    let dir = tempfile::tempdir().expect("temp dir");
    let record = dir.path().join("session.osrec");
    let server = start_server("127.0.0.1:0", &record).await;
    let mut producer = Producer::start(producer_config(server.local_addr()), configuration())
        .await
        .expect("session starts");

    let speed_rpm = producer
        .data_format_id(&["Speed:Test".to_owned(), "Rpm:Test".to_owned()])
        .await
        .expect("format id");
    let gear = producer
        .data_format_id(&["Gear:Test".to_owned()])
        .await
        .expect("format id");
    assert_ne!(speed_rpm, gear);
    assert_eq!(
        producer
            .data_format_id(&["Speed:Test".to_owned(), "Rpm:Test".to_owned()])
            .await
            .expect("cached"),
        speed_rpm
    );
    for first in [0, 50, 100] {
        producer
            .write(
                STREAM,
                PacketKind::PeriodicData,
                &periodic(speed_rpm, first),
            )
            .await
            .expect("write");
    }
    let gears = [
        (T0 + 123_456, 1.0),
        (T0 + 700_000_001, 2.0),
        (T0 + 1_234_567_890, 3.0),
    ];
    producer
        .write(STREAM, PacketKind::RowData, &gear_rows(gear, &gears))
        .await
        .expect("write");
    producer
        .write_marker(STREAM, &lap(T0 + 1_000_000_000))
        .await
        .expect("marker");
    let stats = producer.finish().await.expect("session ends");
    assert_eq!(stats.reopened_streams, 0);
    server.shutdown().await.expect("server stops cleanly");

    let recording = inspect::read_recording(&record).expect("recording readable");
    assert_eq!(recording.violations(), &[], "zero protocol violations");
    let samples = recording.samples();
    let expected_speed: Vec<(u64, f64)> = (0..150)
        .map(|i| (T0 + i * 10_000_000, i as f64 * 0.5))
        .collect();
    let expected_rpm: Vec<(u64, f64)> = (0..150)
        .map(|i| (T0 + i * 10_000_000, i as f64 * 10.0))
        .collect();
    assert_eq!(samples.get("Speed:Test"), Some(&expected_speed));
    assert_eq!(samples.get("Rpm:Test"), Some(&expected_rpm));
    assert_eq!(samples.get("Gear:Test"), Some(&gears.to_vec()));
    assert_eq!(
        samples.len(),
        3,
        "no other parameters: {:?}",
        samples.keys()
    );
    let markers = recording.markers();
    assert!(
        markers
            .iter()
            .any(|m| m.marker.label == "Lap 1" && m.marker.timestamp == T0 + 1_000_000_000),
        "lap marker recorded: {markers:?}"
    );
    let summary = recording.summary().to_string();
    assert!(summary.contains("integration session"), "{summary}");
    assert!(summary.contains("Speed:Test"), "{summary}");
}

#[tokio::test]
async fn a_session_survives_a_server_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let record = dir.path().join("restart.osrec");
    let first = start_server("127.0.0.1:0", &record).await;
    let address = first.local_addr();
    let mut producer = Producer::start(producer_config(address), configuration())
        .await
        .expect("session starts");
    let format = producer
        .data_format_id(&["Speed:Test".to_owned(), "Rpm:Test".to_owned()])
        .await
        .expect("format id");
    producer
        .write(STREAM, PacketKind::PeriodicData, &periodic(format, 0))
        .await
        .expect("write");
    producer.flush().await.expect("flush");
    // NewSession and Configuration on two streams, then the data packet: wait until the
    // server has read all five before it goes away.
    first.wait_until(|stats| stats.packets >= 5).await;
    first.shutdown().await.expect("server stops");

    // While the server is down the producer keeps writing; flush retries with backoff until
    // the server is back on the same address with the same recording.
    let restart = tokio::spawn({
        let record = record.clone();
        async move {
            // The outage: the server stays away while the producer keeps writing.
            tokio::time::sleep(Duration::from_millis(500)).await;
            start_server(&address.to_string(), &record).await
        }
    });
    for first_sample in [50, 100] {
        producer
            .write(
                STREAM,
                PacketKind::PeriodicData,
                &periodic(format, first_sample),
            )
            .await
            .expect("write");
        producer.flush().await.expect("flush survives the restart");
    }
    let stats = producer
        .finish()
        .await
        .expect("session completes after the restart");
    assert!(
        stats.reopened_streams >= 1,
        "the write stream was reopened: {stats:?}"
    );
    let second = restart.await.expect("restart task");
    second.shutdown().await.expect("server stops");

    let recording = inspect::read_recording(&record).expect("recording readable");
    assert_eq!(
        recording.violations(),
        &[],
        "the restarted server knew the session"
    );
    let speed = recording.samples().remove("Speed:Test").unwrap_or_default();
    let times: Vec<u64> = speed.iter().map(|(t, _)| *t).collect();
    let mut sorted = times.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), times.len(), "no sample duplicated");
    assert!(times.contains(&T0), "samples from before the restart kept");
    assert!(
        times.contains(&(T0 + 149 * 10_000_000)),
        "samples from after the restart landed"
    );
    assert_eq!(
        speed.len(),
        150,
        "nothing lost: queued requests moved to the new stream"
    );
}
