//! Robustness of frame definitions (the stable-toolchain companion of the `frame_definition`
//! and `frame_stream` fuzz targets): mutated definition texts load or fail with a line, never
//! panic; arbitrary bytes never make a shipped plan or the framer panic.

use decoders::RowBatch;
use decoders::frame::{CompoundAssembler, FrameDefinition, FramePlan, StreamFramer};
use proptest::prelude::*;

const SHIPPED: [&str; 4] = [
    include_str!("../definitions/f1_24_car_telemetry.toml"),
    include_str!("../definitions/f1_23_car_telemetry.toml"),
    include_str!("../definitions/example_serial_ecu.toml"),
    include_str!("../definitions/motec_dash_can.toml"),
];

/// Replacements that turn valid values into hostile ones.
const HOSTILE: [&str; 10] = [
    "0",
    "-1",
    "9223372036854775807",
    "1048577",
    "65536",
    "\"u7\"",
    "\"middle\"",
    "[]",
    "255",
    "\"{index}{name}\"",
];

proptest! {
    #[test]
    fn mutated_definitions_load_or_name_a_line(
        file in 0usize..4,
        line in any::<prop::sample::Index>(),
        value in 0usize..HOSTILE.len(),
    ) {
        let text = SHIPPED[file];
        let lines: Vec<&str> = text.lines().collect();
        let target = line.index(lines.len());
        let mutated: Vec<String> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| match (i == target, l.split_once(" = ")) {
                (true, Some((key, _))) => format!("{key} = {}", HOSTILE[value]),
                _ => (*l).to_owned(),
            })
            .collect();
        let mutated = mutated.join("\n");
        match FrameDefinition::parse("m.toml", &mutated) {
            Ok(definition) => {
                if let Ok(plan) = FramePlan::compile(&definition) {
                    let mut rows = RowBatch::new();
                    let _ = plan.decode(0, &[0xAA; 2000], &mut rows);
                    if let Ok(mut framer) = StreamFramer::new(plan.framing()) {
                        framer.push(&[0xAA; 300], |_| {});
                    }
                }
            }
            Err(e) => prop_assert!(e.line >= 1 && (e.line as usize) <= lines.len() + 1, "{e}"),
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..1500)) {
        let mut rows = RowBatch::new();
        for text in SHIPPED {
            let plan = FramePlan::load("t.toml", text).expect("shipped definitions load");
            let _ = plan.decode(0, &bytes, &mut rows);
            if let Ok(mut framer) = StreamFramer::new(plan.framing()) {
                framer.push(&bytes, |frame| {
                    let _ = plan.decode(0, frame, &mut rows);
                });
            }
            if let Ok(mut assembler) = CompoundAssembler::new(plan.framing()) {
                for chunk in bytes.chunks(8) {
                    let _ = assembler.handle_frame(chunk);
                }
            }
        }
    }
}
