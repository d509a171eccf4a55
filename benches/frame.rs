//! Benchmark of frame-definition decoding: one 1 352-byte F1 24 car-telemetry packet through
//! the compiled plan of `decoders/definitions/f1_24_car_telemetry.toml` (player's car, 25
//! values), directly and through a car's channel map as the daemon's decode stage calls it, and
//! the serial example framed from a byte stream. `cargo bench --bench frame`
//! prints the figures; `cargo test --benches` runs each once.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use decoders::RowBatch;
use decoders::channel_map::{ChannelMap, DefinitionUse, Selection};
use decoders::dbc::Dbc;
use decoders::frame::{CheckKind, FrameDefinition, FramePlan, StreamFramer};

const F1_24: &str = include_str!("../decoders/definitions/f1_24_car_telemetry.toml");
const SERIAL: &str = include_str!("../decoders/definitions/example_serial_ecu.toml");

/// A car-telemetry packet with the player at record 11 and every record non-zero.
fn f1_packet() -> Vec<u8> {
    let mut packet: Vec<u8> = (0..1352u32).map(|i| (i * 7 % 251) as u8).collect();
    packet[0..2].copy_from_slice(&2024u16.to_le_bytes());
    packet[6] = 6;
    packet[27] = 11;
    packet
}

fn f1_decode(c: &mut Criterion) {
    let plan = FramePlan::load("f1_24_car_telemetry.toml", F1_24).expect("loads");
    let packet = f1_packet();
    let mut rows = RowBatch::with_capacity(1024, 25);
    let mut group = c.benchmark_group("frame_decode");
    group.throughput(Throughput::Elements(1));
    group.bench_function("f1_24_car_telemetry_1352_bytes", |b| {
        b.iter(|| {
            if rows.len() >= 1024 {
                rows.clear();
            }
            black_box(plan.decode(black_box(1_000), black_box(&packet), &mut rows))
        })
    });
    let definition = FrameDefinition::parse("f1_24_car_telemetry.toml", F1_24).expect("loads");
    let used = DefinitionUse {
        definition: &definition,
        can_id: None,
    };
    let selection = Selection {
        application: "SimCar".into(),
        ..Selection::default()
    };
    let map = ChannelMap::compile_with(&Dbc::default(), &[used], &selection).expect("compiles");
    let index = map.definition_index("f1_24_car_telemetry").expect("loaded");
    group.bench_function("f1_24_car_telemetry_via_channel_map", |b| {
        b.iter(|| {
            if rows.len() >= 1024 {
                rows.clear();
            }
            let time = black_box(1_000);
            black_box(map.decode_definition(index, time, black_box(&packet), &mut rows))
        })
    });
    group.finish();
}

fn serial_stream(c: &mut Criterion) {
    let plan = FramePlan::load("example_serial_ecu.toml", SERIAL).expect("loads");
    let mut stream = Vec::new();
    for counter in 0..64u8 {
        let mut frame = vec![
            0xAA, 0x55, 9, counter, 1, 0x1F, 0x40, 2, 0xEE, 3, 0x84, 3, 0xE8, 5,
        ];
        let crc = CheckKind::Crc16CcittFalse.compute(&frame[2..]) as u16;
        frame.extend_from_slice(&crc.to_be_bytes());
        stream.extend_from_slice(&frame);
    }
    let mut framer = StreamFramer::new(plan.framing()).expect("delimited");
    let mut rows = RowBatch::with_capacity(64, 7);
    let mut group = c.benchmark_group("frame_stream");
    group.throughput(Throughput::Elements(64));
    group.bench_function("serial_64_frames_frame_and_decode", |b| {
        b.iter(|| {
            rows.clear();
            framer.push(black_box(&stream), |frame| {
                let _ = plan.decode(1_000, frame, &mut rows);
            });
            black_box(rows.len())
        })
    });
    group.finish();
}

criterion_group!(benches, f1_decode, serial_stream);
criterion_main!(benches);
