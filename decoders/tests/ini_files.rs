//! The INI loader against real TunerStudio INIs in `fixtures/ini/` (GPL, fixture data only; see
//! NOTICE there): each loads with warnings only, the channel counts are pinned, and computed
//! channels evaluate to hand-computed values over hand-built blocks.

use decoders::ini::{IniFile, IniWarning};

fn load(name: &str, settings: &[&str]) -> (IniFile, Vec<IniWarning>) {
    let path = format!("{}/../fixtures/ini/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("fixture is readable");
    IniFile::parse(name, &text, settings).unwrap_or_else(|e| panic!("{name} must load: {e}"))
}

/// Decodes `block` at `time_s` and returns a lookup by channel name.
fn decode(ini: &IniFile, block: &[u8], time_s: f64) -> impl Fn(&str) -> f64 + use<> {
    let och = &ini.output_channels;
    let mut values = vec![f64::NAN; och.channels().len()];
    och.decode(block, time_s, &mut values).expect("block fits");
    let names: Vec<String> = och.channels().iter().map(|c| c.name.clone()).collect();
    move |name: &str| {
        let slot = names.iter().position(|n| n == name);
        values[slot.unwrap_or_else(|| panic!("no channel {name}"))]
    }
}

fn close(actual: f64, expected: f64) -> bool {
    (actual - expected).abs() < 1e-9
}

/// A Speeduino block: rpm 3000, coolantRaw 130, map 100 kPa, baro 101, loops 1000/s,
/// vss 100 km/h, fuel pressure 50 psi, CL idle target 80 × 10 rpm, sync and boost cut (spark).
fn speeduino_block() -> Vec<u8> {
    let mut block = vec![0u8; 139];
    block[14..16].copy_from_slice(&3000u16.to_le_bytes());
    block[7] = 130;
    block[4..6].copy_from_slice(&100u16.to_le_bytes());
    block[41] = 101;
    block[26..28].copy_from_slice(&1000u16.to_le_bytes());
    block[104..106].copy_from_slice(&100u16.to_le_bytes());
    block[107] = 50;
    block[92] = 80;
    block[32] = 0b1001_0000; // sync [7:7] and boostCutSpark [4:4]
    block[84] = 0b0001_0000; // halfSync [4:4]
    block
}

#[test]
fn speeduino_loads_with_pinned_counts_and_settings() {
    let (ini, warnings) = load("speeduino.ini", &[]);
    assert_eq!(ini.signature.as_deref(), Some("speeduino 202504-dev"));
    assert_eq!(ini.query_command.as_deref(), Some("Q"));
    assert_eq!(
        ini.och_get_command.as_deref(),
        Some(r"r\$tsCanId\x30%2o%2c")
    );
    assert_eq!(ini.output_channels.block_size, 139);
    assert_eq!(ini.blocking_factor, Some(251));
    assert_eq!(ini.block_read_timeout_ms, Some(2000));
    assert_eq!(ini.delay_after_port_open_ms, Some(1000));
    // 97 scalars less 3 scaled by the tune (idleLoad, fuelLoad, ignLoad); 73 bits; 24 of the
    // computed channels need only output channels.
    assert_eq!(ini.output_channels.counts(), (94, 73, 24));
    assert_eq!(warnings.len(), 81);
    // Display ranges come from the first constant gauge, else from the raw type.
    let channel = |name: &str| {
        let och = &ini.output_channels;
        och.channels()[och.slot(name).expect("channel exists")].display_range()
    };
    assert_eq!(channel("coolant"), Some((-40.0, 248.0))); // the Fahrenheit gauge (no CELSIUS)
    assert_eq!(channel("rpm"), Some((0.0, 65_535.0))); // the tachometer's range needs the tune
    assert_eq!(channel("batteryVoltage"), Some((0.0, 25.0)));
    assert_eq!(channel("knockCor"), Some((0.0, 255.0))); // no gauge: U08 × 1
    assert_eq!(channel("mapaccden"), Some((0.0, 1.0)));
    let skipped = |name: &str| warnings.iter().any(|w| w.message.contains(name));
    for name in [
        "idleLoad",
        "smoothBasic",
        "arrayValue",
        "stoich",
        "twoStroke",
    ] {
        assert!(skipped(name), "expected a warning about {name}");
    }
    assert!(ini.uses_envelope());
    // The INI's own command string builds the request of `docs/tunerstudio-ini.md` (test vectors).
    let mut request = Vec::new();
    let och = ini.och_command().expect("ochGetCommand compiles");
    och.build(0, 0, 130, ini.output_channels.endian, &mut request);
    assert_eq!(request, [0x72, 0x00, 0x30, 0x00, 0x00, 0x82, 0x00]);
    let mut query = Vec::new();
    ini.query().expect("queryCommand compiles").build(
        0,
        0,
        0,
        ini.output_channels.endian,
        &mut query,
    );
    assert_eq!(query, b"Q");
    let (stm32, _) = load("speeduino.ini", &["mcu_stm32"]);
    assert_eq!(stm32.blocking_factor, Some(121));
}

#[test]
fn speeduino_computed_channels_match_hand_values() {
    let (ini, _) = load("speeduino.ini", &[]);
    let value = decode(&ini, &speeduino_block(), 12.5);
    assert!(close(value("rpm"), 3000.0));
    assert!(close(value("coolant"), 194.0)); // (130 − 40) × 1.8 + 32
    assert!(close(value("time"), 12.5));
    assert!(close(value("revolutionTime"), 20.0)); // 60000 / 3000
    assert!(close(value("loopsPerRev"), 20.0)); // 1000 / (3000 / 60)
    assert!(close(value("MAPxRPM"), 300_000.0));
    assert!(close(value("map_vacboost"), -0.295_300_7)); // map < baro: −(101 − 100) × 0.2953007
    assert!(close(value("vssMPH"), 100.0 / 1.60934));
    assert!(close(value("fuelPressure_bar"), 50.0 * 0.068_947_57));
    assert!(close(value("CLIdleDelta"), -2200.0)); // 80 × 10 − 3000
    assert!(close(value("syncStatus"), 3.0)); // halfSync + (sync << 1)
    assert!(close(value("boostCutOut"), 1.0));
    let (celsius, _) = load("speeduino.ini", &["CELSIUS"]);
    let value = decode(&celsius, &speeduino_block(), 0.0);
    assert!(close(value("coolant"), 90.0));
}

#[test]
fn rusefi_loads_with_pinned_counts() {
    let (ini, warnings) = load("rusefi_xyz.ini", &[]);
    assert_eq!(
        ini.signature.as_deref(),
        Some("rusEFI main.2026.08.22.xyz.1046396287")
    );
    assert_eq!(ini.query_command.as_deref(), Some("S"));
    assert_eq!(ini.och_get_command.as_deref(), Some("O%2o%2c"));
    assert_eq!(
        ini.message_envelope_format.as_deref(),
        Some("msEnvelope_1.0")
    );
    assert_eq!(ini.output_channels.block_size, 2200);
    assert_eq!(ini.blocking_factor, Some(1024));
    assert_eq!(ini.block_read_timeout_ms, Some(3000));
    assert_eq!(ini.delay_after_port_open_ms, None);
    let mut request = Vec::new();
    let och = ini.och_command().expect("ochGetCommand compiles");
    och.build(0, 1024, 1024, ini.output_channels.endian, &mut request);
    assert_eq!(request, [b'O', 0x00, 0x04, 0x00, 0x04]);
    // Almost every computed channel reads a tune constant (useMetricOnInterface …).
    assert_eq!(ini.output_channels.counts(), (771, 257, 2));
    assert_eq!(warnings.len(), 114);
}

#[test]
fn rusefi_block_decodes_scalars_bits_and_computed() {
    let (ini, _) = load("rusefi_xyz.ini", &[]);
    let mut block = vec![0u8; 2200];
    block[0..4].copy_from_slice(&(1u32 << 5).to_le_bytes()); // checkEngine [5:5]
    block[4..6].copy_from_slice(&2500u16.to_le_bytes()); // RPMValue
    block[16..18].copy_from_slice(&(-1234i16).to_le_bytes()); // coolant × 0.01
    block[764..766].copy_from_slice(&10_150u16.to_le_bytes()); // Gego × 0.01
    let value = decode(&ini, &block, 7.0);
    assert!(close(value("RPMValue"), 2500.0));
    assert!(close(value("coolant"), -12.34));
    assert!(close(value("checkEngine"), 1.0));
    assert!(close(value("needBurn"), 0.0));
    assert!(close(value("egoCorrectionForVeAnalyze"), 101.5));
    assert!(close(value("time"), 7.0));
}

#[test]
fn every_channel_round_trips_through_encode() {
    for name in ["speeduino.ini", "rusefi_xyz.ini"] {
        let (ini, _) = load(name, &[]);
        let och = &ini.output_channels;
        let block: Vec<u8> = (0..och.block_size).map(|i| (i * 7 + 3) as u8).collect();
        let mut values = vec![0.0; och.channels().len()];
        och.decode(&block, 0.0, &mut values).expect("block fits");
        let mut again = vec![0u8; och.block_size];
        och.encode(&values, &mut again).expect("block fits");
        let mut twice = vec![0.0; values.len()];
        och.decode(&again, 0.0, &mut twice).expect("block fits");
        for (channel, (a, b)) in och.channels().iter().zip(values.iter().zip(&twice)) {
            assert!(
                a == b || (a.is_nan() && b.is_nan()),
                "{name} {}: {a} vs {b}",
                channel.name
            );
        }
    }
}

#[test]
fn the_warnings_are_listed() {
    // Printed with `--nocapture` for the record; the counts are pinned above.
    for name in ["speeduino.ini", "rusefi_xyz.ini"] {
        let (_, warnings) = load(name, &[]);
        for warning in &warnings {
            println!("{name}: {warning}");
        }
        assert!(warnings.iter().all(|w| !w.message.is_empty()));
    }
}

#[test]
fn cut_real_files_load_or_fail_cleanly() {
    // Every cut of a real file must give a model or an `IniError`, never a panic; this is the
    // stable-toolchain companion of the `ini` fuzz target.
    for name in ["speeduino.ini", "rusefi_xyz.ini"] {
        let path = format!("{}/../fixtures/ini/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).expect("fixture is readable");
        let mut loaded = 0;
        for end in (0..text.len()).step_by(19_997) {
            let end = (end..text.len())
                .find(|i| text.is_char_boundary(*i))
                .unwrap_or(text.len());
            if let Ok((ini, _)) = IniFile::parse(name, &text[..end], &[]) {
                let och = &ini.output_channels;
                let mut values = vec![0.0; och.channels().len()];
                och.decode(&vec![0x5A; och.block_size], 0.0, &mut values)
                    .expect("fits");
                loaded += 1;
            }
        }
        // Cuts after `ochBlockSize` load; earlier ones fail for want of it.
        assert!(loaded > 0, "{name}");
    }
}
