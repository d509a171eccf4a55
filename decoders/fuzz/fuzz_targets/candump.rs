//! Fuzz target: arbitrary bytes as a `candump -L` line must never panic, and every line that
//! parses must survive write → parse with the same frame, interface and microsecond time.
//! Taken as a read buffer, whatever the one-pass next-line parse takes must be one whole line
//! that the full grammar parses the same.
#![no_main]

use decoders::wire::candump;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((next, used)) = candump::parse_next_line(data) {
        assert_eq!(data[used - 1], b'\n');
        assert!(!data[..used - 1].contains(&b'\n'));
        assert_eq!(candump::parse_line(&data[..used]), Ok(next));
    }
    let Ok(line) = candump::parse_line(data) else {
        return;
    };
    let mut out = String::new();
    candump::write_line(line.time_ns, line.interface(), &line.frame, &mut out);
    let again = candump::parse_line(out.as_bytes()).expect("own output parses");
    assert_eq!(again.frame, line.frame);
    assert_eq!(again.interface(), line.interface());
    assert_eq!(again.time_ns, line.time_ns / 1000 * 1000);
});
