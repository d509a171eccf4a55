//! Fuzz target: the frame stream framer (over the shipped serial example definition) must
//! never panic, never hold more than `max_length` bytes, and yield the same frames and counts
//! however the stream is split into chunks; every frame it yields must decode or be unknown.
//!
//! The first byte picks the chunk size; the rest is the stream.
#![no_main]

use decoders::RowBatch;
use decoders::frame::{FramePlan, FramerStats, StreamFramer};
use libfuzzer_sys::fuzz_target;

const SERIAL: &str = include_str!("../../definitions/example_serial_ecu.toml");

fn frames<'c>(plan: &FramePlan, chunks: impl Iterator<Item = &'c [u8]>) -> (Vec<Vec<u8>>, FramerStats) {
    let mut framer = StreamFramer::new(plan.framing()).expect("the example is delimited");
    let mut out = Vec::new();
    let mut rows = RowBatch::new();
    for chunk in chunks {
        framer.push(chunk, |frame| {
            assert!(plan.decode(0, frame, &mut rows).is_ok() || frame.len() < 16);
            out.push(frame.to_vec());
        });
        assert!(framer.pending_len() <= plan.framing().max_length);
    }
    (out, framer.stats())
}

fuzz_target!(|data: &[u8]| {
    let Some((&size, stream)) = data.split_first() else {
        return;
    };
    let plan = FramePlan::load("example_serial_ecu.toml", SERIAL).expect("the example loads");
    let chunked = frames(&plan, stream.chunks(usize::from(size).max(1)));
    let whole = frames(&plan, std::iter::once(stream));
    assert_eq!(chunked, whole);
});
