//! Fuzz target: arbitrary UTF-8 text as a DBC file must never panic the DBC parser (errors
//! and warnings are fine).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = decoders::dbc::parse_dbc("fuzz.dbc", text);
    }
});
