//! Frame definitions end to end: the shipped definitions load and decode packets built here
//! from known values; every field type and byte order decodes hand-computed bytes.

use decoders::RowBatch;
use decoders::frame::{CheckKind, FramePlan, NativeOutcome};

const F1_24: &str = include_str!("../definitions/f1_24_car_telemetry.toml");
const F1_23: &str = include_str!("../definitions/f1_23_car_telemetry.toml");
const SERIAL: &str = include_str!("../definitions/example_serial_ecu.toml");

/// Known values for one car record.
struct Car {
    speed: u16,
    throttle: f32,
    steer: f32,
    brake: f32,
    clutch: u8,
    gear: i8,
    rpm: u16,
    drs: u8,
    brake_temps: [u16; 4],
    surface_temps: [u8; 4],
    inner_temps: [u8; 4],
    engine_temp: u16,
    pressures: [f32; 4],
}

fn car(seed: u16) -> Car {
    Car {
        speed: 200 + seed,
        throttle: 0.5 + f32::from(seed) / 100.0,
        steer: -0.25,
        brake: 0.125,
        clutch: 3,
        gear: if seed == 7 { -1 } else { 6 },
        rpm: 11_000 + seed,
        drs: 1,
        brake_temps: [500 + seed, 510, 520, 530],
        surface_temps: [90, 91, 92, 93],
        inner_temps: [100, 101, 102, seed as u8],
        engine_temp: 105,
        pressures: [21.5, 21.75, 23.0, 23.25],
    }
}

fn write_car(record: &mut [u8], c: &Car) {
    record[0..2].copy_from_slice(&c.speed.to_le_bytes());
    record[2..6].copy_from_slice(&c.throttle.to_le_bytes());
    record[6..10].copy_from_slice(&c.steer.to_le_bytes());
    record[10..14].copy_from_slice(&c.brake.to_le_bytes());
    record[14] = c.clutch;
    record[15] = c.gear as u8;
    record[16..18].copy_from_slice(&c.rpm.to_le_bytes());
    record[18] = c.drs;
    for i in 0..4 {
        record[22 + 2 * i..24 + 2 * i].copy_from_slice(&c.brake_temps[i].to_le_bytes());
        record[30 + i] = c.surface_temps[i];
        record[34 + i] = c.inner_temps[i];
        record[40 + 4 * i..44 + 4 * i].copy_from_slice(&c.pressures[i].to_le_bytes());
    }
    record[38..40].copy_from_slice(&c.engine_temp.to_le_bytes());
}

fn expected(c: &Car) -> Vec<f64> {
    let mut v = vec![
        f64::from(c.speed),
        f64::from(c.throttle),
        f64::from(c.steer),
        f64::from(c.brake),
        f64::from(c.clutch),
        f64::from(c.gear),
        f64::from(c.rpm),
        f64::from(c.drs),
    ];
    v.extend(c.brake_temps.iter().map(|&t| f64::from(t)));
    v.extend(c.surface_temps.iter().map(|&t| f64::from(t)));
    v.extend(c.inner_temps.iter().map(|&t| f64::from(t)));
    v.push(f64::from(c.engine_temp));
    v.extend(c.pressures.iter().map(|&p| f64::from(p)));
    v
}

/// A whole 1352-byte car-telemetry packet with 22 distinct cars.
fn f1_packet(format: u16, player: u8) -> Vec<u8> {
    let mut packet = vec![0u8; 1352];
    packet[0..2].copy_from_slice(&format.to_le_bytes());
    packet[2] = (format - 2000) as u8;
    packet[6] = 6;
    packet[7..15].copy_from_slice(&0x1122_3344_5566_7788u64.to_le_bytes());
    packet[27] = player;
    packet[28] = 255;
    for index in 0..22u16 {
        let start = 29 + 60 * usize::from(index);
        write_car(&mut packet[start..start + 60], &car(index));
    }
    packet
}

#[test]
fn f1_24_player_car_decodes_to_its_known_values() {
    let plan = FramePlan::load("f1_24_car_telemetry.toml", F1_24).expect("loads");
    let names: Vec<&str> = plan.parameters().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names.len(), 25);
    assert_eq!(names[..3], ["speed", "throttle", "steer"]);
    assert!(names.contains(&"brake_temperature_FR"));
    assert!(names.contains(&"tyre_pressure_RL"));
    assert_eq!(plan.parameters()[0].identifier, "speed:F1_24");
    assert_eq!(plan.parameters()[0].unit, "km/h");
    let mut rows = RowBatch::new();
    for player in [0u8, 7, 21] {
        rows.clear();
        let packet = f1_packet(2024, player);
        let outcome = plan.decode(42, &packet, &mut rows);
        assert_eq!(
            outcome,
            Ok(NativeOutcome::Decoded {
                message: 0,
                samples: 25
            })
        );
        let (header, values) = rows.row(0).expect("one row");
        assert_eq!((header.time_ns, header.format), (42, 0));
        assert_eq!(values, expected(&car(u16::from(player))).as_slice());
    }
}

#[test]
fn f1_packets_of_other_kinds_games_and_sizes_are_told_apart() {
    let plan = FramePlan::load("f1_24_car_telemetry.toml", F1_24).expect("loads");
    let f1_23 = FramePlan::load("f1_23_car_telemetry.toml", F1_23).expect("loads");
    let mut rows = RowBatch::new();
    let mut packet = f1_packet(2024, 3);
    packet[6] = 2;
    assert_eq!(
        plan.decode(1, &packet, &mut rows),
        Ok(NativeOutcome::Unknown { id: 2 })
    );
    let packet = f1_packet(2023, 3);
    assert!(plan.decode(1, &packet, &mut rows).is_err());
    assert!(matches!(
        f1_23.decode(1, &packet, &mut rows),
        Ok(NativeOutcome::Decoded { .. })
    ));
    let mut bad_index = f1_packet(2024, 22);
    assert_eq!(
        plan.decode(1, &bad_index, &mut rows).map_err(|e| e.kind()),
        Err("bad_index")
    );
    bad_index[27] = 0;
    assert!(plan.decode(1, &bad_index[..1000], &mut rows).is_err());
    assert_eq!(rows.len(), 1);
}

fn serial_frame(counter: u8, id: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0xAA, 0x55, payload.len() as u8, counter, id];
    frame.extend_from_slice(payload);
    let crc = CheckKind::Crc16CcittFalse.compute(&frame[2..]) as u16;
    frame.extend_from_slice(&crc.to_be_bytes());
    frame
}

#[test]
fn serial_example_decodes_scaled_values_and_bit_fields() {
    let plan = FramePlan::load("example_serial_ecu.toml", SERIAL).expect("loads");
    let engine = serial_frame(
        0x2A,
        1,
        &[0x1F, 0x40, 0x02, 0xEE, 0x03, 0x84, 0x03, 0xE8, 0x05],
    );
    let mut rows = RowBatch::new();
    assert_eq!(
        plan.decode(5, &engine, &mut rows),
        Ok(NativeOutcome::Decoded {
            message: 0,
            samples: 7
        })
    );
    let (_, values) = rows.row(0).expect("row");
    let want = [8000.0, 75.0, 90.0, 1.0, 1.0, 0.0, 1.0];
    for (got, want) in values.iter().zip(want) {
        assert!((got - want).abs() < 1e-9, "{got} vs {want}");
    }
    let wheels = serial_frame(0x2B, 2, &[0x27, 0x10, 0x27, 0x11, 0x00, 0x00, 0xFF, 0xFF]);
    assert!(plan.decode(6, &wheels, &mut rows).is_ok());
    let (header, values) = rows.row(1).expect("row");
    assert_eq!(header.format, 1);
    assert_eq!(plan.format(1).map(|f| f.message.as_str()), Some("Wheels"));
    assert!((values[3] - 655.35).abs() < 1e-9);
    let mut corrupt = engine.clone();
    corrupt[6] ^= 0x10;
    assert_eq!(
        plan.decode(7, &corrupt, &mut rows).map_err(|e| e.kind()),
        Err("bad_check")
    );
    assert_eq!(
        plan.decode(7, &engine[..10], &mut rows)
            .map_err(|e| e.kind()),
        Err("truncated")
    );
    assert_eq!(rows.len(), 2);
}

/// Every type in both byte orders, against bytes written out by hand.
const ALL_TYPES: &str = r#"
[frame]
name = "all_types"
application = "T"

[[message]]
name = "M"
length = 64

[[message.field]]
name = "u8"
offset = 0
type = "u8"

[[message.field]]
name = "i8"
offset = 1
type = "i8"

[[message.field]]
name = "u16le"
offset = 2
type = "u16"

[[message.field]]
name = "u16be"
offset = 4
type = "u16"
endian = "big"

[[message.field]]
name = "i16le"
offset = 6
type = "i16"

[[message.field]]
name = "i16be"
offset = 8
type = "i16"
endian = "big"

[[message.field]]
name = "u32le"
offset = 10
type = "u32"

[[message.field]]
name = "i32be"
offset = 14
type = "i32"
endian = "big"

[[message.field]]
name = "u64be"
offset = 18
type = "u64"
endian = "big"

[[message.field]]
name = "i64le"
offset = 26
type = "i64"

[[message.field]]
name = "f32be"
offset = 34
type = "f32"
endian = "big"

[[message.field]]
name = "f64le"
offset = 38
type = "f64"

[[message.field]]
name = "nibble_hi"
offset = 46
type = "u16"
endian = "big"
bit_offset = 12
bit_width = 4

[[message.field]]
name = "signed_bits"
offset = 46
type = "i16"
endian = "big"
bit_offset = 0
bit_width = 4
scale = 0.5
bias = 10

[[message.field]]
name = "u32be_scaled"
offset = 48
type = "u32"
endian = "big"
scale = 0.001
bias = -1
"#;

#[test]
fn every_type_and_byte_order_against_hand_computed_bytes() {
    let plan = FramePlan::load("all_types.toml", ALL_TYPES).expect("loads");
    #[rustfmt::skip]
    let mut frame: Vec<u8> = vec![
        0xFE,                   // u8 254
        0xFE,                   // i8 -2
        0x34, 0x12,             // u16le 0x1234
        0x12, 0x34,             // u16be 0x1234
        0x00, 0x80,             // i16le -32768
        0xFF, 0x9C,             // i16be -100
        0x78, 0x56, 0x34, 0x12, // u32le 0x12345678
        0xFF, 0xFF, 0xFF, 0xFE, // i32be -2
        0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02, // u64be 2^32 + 2
        0xFD, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, // i64le -3
        0x40, 0x49, 0x0F, 0xDB, // f32be pi
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0xC0, // f64le -2.5
        0xA0, 0x0E,             // bits: hi nibble 0xA; low nibble 0xE = -2 → -2 × 0.5 + 10 = 9
        0x00, 0x00, 0x30, 0x39, // u32be 12345 → 12.345 - 1
    ];
    frame.resize(64, 0xEE);
    let mut rows = RowBatch::new();
    assert!(plan.decode(0, &frame, &mut rows).is_ok());
    let (_, values) = rows.row(0).expect("row");
    let want = [
        254.0,
        -2.0,
        4660.0,
        4660.0,
        -32768.0,
        -100.0,
        305_419_896.0,
        -2.0,
        4_294_967_298.0,
        -3.0,
        f64::from(std::f32::consts::PI),
        -2.5,
        10.0,
        9.0,
        11.345,
    ];
    assert_eq!(values.len(), want.len());
    for (index, (got, want)) in values.iter().zip(want).enumerate() {
        assert!((got - want).abs() < 1e-9, "field {index}: {got} vs {want}");
    }
    assert_eq!(
        plan.decode(0, &frame[..40], &mut rows)
            .map_err(|e| e.kind()),
        Err("truncated")
    );
}

#[test]
fn f1_whole_grid_without_select_publishes_every_record() {
    let grid = F1_24.replace("select = \"player_car_index\"\n", "");
    let plan = FramePlan::load("grid.toml", &grid).expect("loads");
    assert_eq!(plan.parameters().len(), 22 * 25);
    assert_eq!(plan.parameters()[0].name, "car0_speed");
    assert_eq!(
        plan.parameters()[22 * 25 - 1].name,
        "car21_tyre_pressure_FR"
    );
    let mut rows = RowBatch::new();
    assert!(plan.decode(3, &f1_packet(2024, 0), &mut rows).is_ok());
    let (_, values) = rows.row(0).expect("row");
    for index in 0..22u16 {
        let start = usize::from(index) * 25;
        assert_eq!(&values[start..start + 25], expected(&car(index)).as_slice());
    }
}

#[test]
fn parameters_carry_units_limits_and_decimals() {
    let plan = FramePlan::load("example_serial_ecu.toml", SERIAL).expect("loads");
    let throttle = &plan.parameters()[1];
    assert_eq!(
        (
            throttle.identifier.as_str(),
            throttle.message.as_str(),
            throttle.unit.as_str()
        ),
        ("throttle:ExampleECU", "Engine", "%")
    );
    assert_eq!(
        (throttle.min, throttle.max, throttle.decimals),
        (0.0, 100.0, 1)
    );
    let gear = &plan.parameters()[6];
    assert_eq!((gear.name.as_str(), gear.min, gear.max), ("gear", 0.0, 7.0));
    assert_eq!(plan.format(0).map(|f| f.parameters.len()), Some(7));
    assert_eq!(plan.format_count(), 2);
    assert_eq!(plan.application(), "ExampleECU");
}

#[test]
fn f1_23_and_f1_24_load_in_one_car_with_distinct_names_and_decode_by_packet_format() {
    use decoders::channel_map::{ChannelMap, DefinitionUse, Selection};
    use decoders::frame::FrameDefinition;

    let f1_23 = FrameDefinition::parse("f1_23_car_telemetry.toml", F1_23).expect("valid");
    let f1_24 = FrameDefinition::parse("f1_24_car_telemetry.toml", F1_24).expect("valid");
    let used = [&f1_23, &f1_24].map(|definition| DefinitionUse {
        definition,
        can_id: None,
    });
    let selection = Selection {
        application: "Sim".into(),
        renames: vec![("CarTelemetry.speed".into(), "vCar".into())],
        ..Selection::default()
    };
    let dbc = decoders::dbc::Dbc::default();
    let map = ChannelMap::compile_with(&dbc, &used, &selection).expect("both load");
    let identifiers: Vec<&str> = map
        .parameters()
        .iter()
        .map(|p| p.identifier.as_str())
        .collect();
    assert_eq!(identifiers.len(), 50);
    assert_eq!(identifiers[0], "F1_23_vCar:Sim");
    assert_eq!(identifiers[25], "F1_24_vCar:Sim");
    assert!(identifiers.contains(&"F1_24_tyre_pressure_RL:Sim"));

    // The packet format (the definitions' sync) tells which one decodes a packet.
    let mut rows = RowBatch::new();
    for (format, name) in [(2023, "f1_23_car_telemetry"), (2024, "f1_24_car_telemetry")] {
        let index = map.definition_index(name).expect("loaded");
        let packet = f1_packet(format, 4);
        let framing = map.definitions()[index].framing();
        assert!(framing.sync_prefix_matches(&packet), "{name}");
        rows.clear();
        assert!(matches!(
            map.decode_definition(index, 9, &packet, &mut rows),
            Ok(NativeOutcome::Decoded { samples: 25, .. })
        ));
        assert_eq!(rows.row(0).expect("row").1, expected(&car(4)).as_slice());
    }
}
