//! Micro-benchmarks of the hot path, one group per stage: DBC signal decoding through the
//! compiled channel map, each CAN transport parser, and batching plus packet encoding.
//! `cargo bench --bench micro` prints the figures; `cargo test --benches` runs each once.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use decoders::RowBatch;
use decoders::can::{CanFlags, CanFrame, CanId};
use decoders::channel_map::{ChannelMap, Selection};
use decoders::dbc::parse_dbc;
use decoders::wire::{candump, cannelloni, slcan};
use open_streaming::rows::{encode_row, push_row_data_tail};

/// An 8-signal message mixing layouts, as ECUs send them: Intel and Motorola, signed and
/// unsigned, odd widths and positions.
const EIGHT_SIGNALS: &str = r#"
BO_ 256 ENGINE: 8 ECU
 SG_ RPM : 0|16@1+ (0.25,0) [0|16383.75] "rpm" X
 SG_ THROTTLE : 16|10@1+ (0.1,0) [0|100] "%" X
 SG_ COOLANT : 26|8@1- (1,40) [-88|167] "degC" X
 SG_ LAMBDA : 34|10@1+ (0.002,0.5) [0.5|2.5] "" X
 SG_ OIL_P : 47|12@0+ (0.01,0) [0|40] "bar" X
 SG_ GEAR : 51|4@0+ (1,0) [0|8] "" X
 SG_ SPARK : 55|7@0- (0.5,0) [-32|31.5] "deg" X
 SG_ KNOCK : 56|8@1+ (1,0) [0|255] "" X
"#;

fn dbc_decoding(c: &mut Criterion) {
    let dbc = parse_dbc("bench.dbc", EIGHT_SIGNALS).expect("parses").dbc;
    let selection = Selection {
        application: "Bench".into(),
        ..Selection::default()
    };
    let mut map = ChannelMap::compile(&dbc, &selection).expect("compiles");
    assert_eq!(map.parameters().len(), 8);
    let id = CanId::standard(256).expect("id");
    let frame = CanFrame::new(
        id,
        CanFlags::empty(),
        &[0x12, 0x34, 0x56, 0x78, 0x9A, 0xBC, 0xDE, 0xF0],
    )
    .expect("frame");
    let mut rows = RowBatch::with_capacity(1024, 8);
    let mut group = c.benchmark_group("dbc_decode");
    group.throughput(Throughput::Elements(1));
    group.bench_function("8_signal_frame", |b| {
        b.iter(|| {
            if rows.len() >= 1024 {
                rows.clear();
            }
            black_box(map.decode(black_box(1_000), black_box(&frame), &mut rows))
        })
    });
    group.finish();
}

fn transports(c: &mut Criterion) {
    let id = CanId::standard(0x1A4).expect("id");
    let frame = CanFrame::new(
        id,
        CanFlags::empty(),
        &[0xFF, 0xF1, 0, 0, 0x07, 0xFF, 0xF1, 0x24],
    )
    .expect("frame");
    let mut line = String::new();
    candump::write_line(1_436_509_052_249_713_000, "can0", &frame, &mut line);
    let line = line.trim_end().as_bytes().to_vec();
    let mut slcan_line = Vec::new();
    slcan::encode_frame(&frame, Some(1234), &mut slcan_line);
    slcan_line.pop();
    let frames = vec![frame; 20];
    let mut datagram = Vec::new();
    cannelloni::encode_datagram(7, &frames, &mut datagram);

    let mut group = c.benchmark_group("transport");
    group.throughput(Throughput::Elements(1));
    group.bench_function("candump_line", |b| {
        b.iter(|| candump::parse_line(black_box(&line)).map(|l| l.frame))
    });
    // The replay's path: lines parsed one after another from a read buffer, each line's end
    // found by parsing it (`candump::parse_next_line`), frames of 8 bytes varying.
    let mut log = Vec::new();
    for n in 0..1000u64 {
        let data = n.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes();
        let frame = CanFrame::new(id, CanFlags::empty(), &data).expect("frame");
        let mut text = String::new();
        candump::write_line(
            1_436_509_052_249_713_000 + n * 1_000,
            "can0",
            &frame,
            &mut text,
        );
        log.extend_from_slice(text.as_bytes());
    }
    let (mut at, mut lines) = (0, 0);
    while let Some((_, used)) = candump::parse_next_line(&log[at..]) {
        at += used;
        lines += 1;
    }
    assert_eq!(
        (lines, at),
        (1000, log.len()),
        "every line takes the replay's path"
    );
    group.throughput(Throughput::Elements(1000));
    group.bench_function("candump_1000_lines_from_a_buffer", |b| {
        b.iter(|| {
            let (mut at, mut sum) = (0, 0u64);
            while let Some((line, used)) = candump::parse_next_line(black_box(&log[at..])) {
                sum = sum.wrapping_add(line.time_ns ^ u64::from(line.frame.data()[7]));
                at += used;
            }
            sum
        })
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("slcan_line", |b| {
        b.iter(|| slcan::parse_line(black_box(&slcan_line)).is_ok())
    });
    group.throughput(Throughput::Elements(20));
    group.bench_function("cannelloni_datagram_20_frames", |b| {
        b.iter(|| {
            let parsed = cannelloni::parse_datagram(black_box(&datagram)).expect("valid");
            parsed
                .frames()
                .filter_map(Result::ok)
                .map(|f| f.len())
                .sum::<usize>()
        })
    });
    group.finish();
}

fn batching_and_encoding(c: &mut Criterion) {
    const ROWS: usize = 1000;
    let mut group = c.benchmark_group("batch_encode");
    // Rows of 8 values, none zero; and rows of 12 with three zeros in four, as most of the
    // Civic capture's signals read at rest (a row of more than 9 values takes another path).
    for (name, width, zero_every) in [
        ("1000_rows_x_8_samples", 8, None),
        ("1000_rows_x_12_samples_mostly_zero", 12, Some(4)),
    ] {
        let mut rows = RowBatch::with_capacity(ROWS, width);
        for row in 0..ROWS {
            rows.begin_row(1_778_936_400_000_000_000 + row as u64 * 1_000_000, 0);
            for value in 0..width {
                let n = row * width + value;
                let zero = zero_every.is_some_and(|every| n % every != 0);
                rows.push_value(if zero { 0.0 } else { n as f64 * 0.25 });
            }
        }
        group.throughput(Throughput::Elements((ROWS * width) as u64));
        group.bench_function(name, |b| {
            let mut timestamps = Vec::with_capacity(ROWS);
            let mut encoded = Vec::with_capacity(ROWS * 13 * width);
            b.iter(|| {
                timestamps.clear();
                encoded.clear();
                for (header, values) in rows.rows() {
                    timestamps.push(header.time_ns);
                    encode_row(values, &mut encoded);
                }
                // As the publish stage finishes a packet: the other fields appended to the rows.
                push_row_data_tail(42, &timestamps, &mut encoded);
                encoded.len()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, dbc_decoding, transports, batching_and_encoding);
criterion_main!(benches);
