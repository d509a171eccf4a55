//! Fuzz target: arbitrary bytes as a cannelloni datagram must never panic, and every datagram
//! that decodes cleanly must survive encode → parse with the same frames.
#![no_main]

use decoders::wire::cannelloni;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(datagram) = cannelloni::parse_datagram(data) else {
        return;
    };
    let Ok(frames) = datagram.frames().collect::<Result<Vec<_>, _>>() else {
        return;
    };
    let mut out = Vec::new();
    cannelloni::encode_datagram(datagram.sequence(), &frames, &mut out);
    let again = cannelloni::parse_datagram(&out).expect("own output parses");
    let back: Vec<_> = again
        .frames()
        .collect::<Result<_, _>>()
        .expect("own frames parse");
    assert_eq!(back, frames);
});
