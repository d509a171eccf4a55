//! Fuzz target: arbitrary UTF-8 text as a TunerStudio INI must never panic the loader, and
//! whatever loads must decode (and encode) a block of its own size without panicking.
#![no_main]

use decoders::ini::IniFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok((ini, _warnings)) = IniFile::parse("fuzz.ini", text, &["CELSIUS"]) else {
        return;
    };
    let och = &ini.output_channels;
    // Bound the block so a huge ochBlockSize cannot exhaust memory.
    if och.block_size > 1 << 16 {
        return;
    }
    let mut block = vec![0xA5u8; och.block_size];
    let mut values = vec![0.0; och.channels().len()];
    assert!(och.decode(&block, 1.0, &mut values).is_ok());
    assert!(och.encode(&values, &mut block).is_ok());
    let _ = ini.och_command();
    let _ = ini.query();
});
