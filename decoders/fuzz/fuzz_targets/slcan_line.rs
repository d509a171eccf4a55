//! Fuzz target: arbitrary bytes as one SLCAN line must never panic, and every frame line must
//! survive encode → parse unchanged.
#![no_main]

use decoders::wire::slcan::{self, SlcanLine};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(SlcanLine::Frame {
        frame,
        timestamp_ms,
    }) = slcan::parse_line(data)
    else {
        return;
    };
    let mut out = Vec::new();
    slcan::encode_frame(&frame, timestamp_ms, &mut out);
    assert_eq!(out.pop(), Some(slcan::CR));
    let again = slcan::parse_line(&out).expect("own output parses");
    assert_eq!(
        again,
        SlcanLine::Frame {
            frame,
            timestamp_ms
        }
    );
});
