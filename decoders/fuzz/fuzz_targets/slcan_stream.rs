//! Fuzz target: the SLCAN line framer must never panic, never hold more than `MAX_LINE_LEN`
//! bytes, and yield the same lines however the stream is split into chunks.
//!
//! The first byte picks the chunk size; the rest is the stream.
#![no_main]

use decoders::wire::slcan::{self, SlcanFramer};
use libfuzzer_sys::fuzz_target;

fn lines<'c>(chunks: impl Iterator<Item = &'c [u8]>) -> Vec<Result<Vec<u8>, usize>> {
    let mut framer = SlcanFramer::new();
    let mut out = Vec::new();
    for chunk in chunks {
        framer.push(chunk, |line| {
            if let Ok(line) = line {
                assert!(line.len() <= slcan::MAX_LINE_LEN);
                let _ = slcan::parse_line(line);
            }
            out.push(line.map(<[u8]>::to_vec).map_err(|e| e.offset()));
        });
        assert!(framer.pending_len() <= slcan::MAX_LINE_LEN);
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&size, stream)) = data.split_first() else {
        return;
    };
    let chunked = lines(stream.chunks(usize::from(size).max(1)));
    let whole = lines(std::iter::once(stream));
    assert_eq!(chunked, whole);
});
