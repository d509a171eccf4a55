//! Fuzz target: loading a frame definition must never panic, whatever the text; a definition
//! that loads must decode arbitrary bytes without panicking.
//!
//! The input is split at the first NUL: definition text before it, a frame after it.
#![no_main]

use decoders::RowBatch;
use decoders::frame::FramePlan;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (text, frame) = data.split_at(split);
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    if let Ok(plan) = FramePlan::load("fuzz.toml", text) {
        let mut rows = RowBatch::new();
        let _ = plan.decode(0, frame.get(1..).unwrap_or_default(), &mut rows);
    }
});
