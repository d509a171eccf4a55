//! Fuzz target: the msEnvelope decoder must never panic, and must yield the same payloads
//! however the byte stream is split; every payload it yields must carry a matching CRC.
//!
//! The first byte picks the chunk size; the rest is the stream.
#![no_main]

use decoders::ini::{EnvelopeDecoder, Reply, encode_envelope};
use libfuzzer_sys::fuzz_target;

fn payloads<'c>(chunks: impl Iterator<Item = &'c [u8]>) -> Vec<Vec<u8>> {
    let mut decoder = EnvelopeDecoder::new(1025);
    let mut out = Vec::new();
    for chunk in chunks {
        decoder.handle_bytes(chunk);
        loop {
            match decoder.poll_payload() {
                Ok(Some(payload)) => {
                    let _ = Reply::parse(payload);
                    out.push(payload.to_vec());
                }
                Ok(None) => break,
                Err(_) => {}
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&size, stream)) = data.split_first() else {
        return;
    };
    let chunked = payloads(stream.chunks(usize::from(size).max(1)));
    let whole = payloads(std::iter::once(stream));
    assert_eq!(chunked, whole);
    for payload in &whole {
        let mut framed = Vec::new();
        encode_envelope(payload, &mut framed).expect("payloads fit a u16 length");
        assert!(stream.windows(framed.len()).any(|w| w == framed.as_slice()));
    }
});
