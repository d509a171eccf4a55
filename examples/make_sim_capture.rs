//! Generates the sim-rig capture `fixtures/sim-car/lap.pcapng`: 8 s of EA SPORTS F1 24 UDP
//! telemetry at 10 Hz as `ecu-bridge record` writes it (interface named after the `game`
//! source): car-telemetry packets (id 6) of a 22-car grid with the player in record 3 on a
//! straight, braking into a corner and out again, interleaved with lap-data packets (id 2),
//! which the bridge counts as unknown messages. Deterministic: same output every run.
//!
//! `cargo run --example make_sim_capture -- fixtures/sim-car/lap.pcapng`

use ecu_bridge::capture::pcapng;

/// 2026-05-16 13:00:00 UTC: capture start.
const START_NS: u64 = 1_778_936_400_000_000_000;
const RATE_HZ: u64 = 10;
const DURATION_S: u64 = 8;
const PLAYER: usize = 3;
const CAR_TELEMETRY_LEN: usize = 1352;
/// The bridge reads only the header of packets with other ids, so their length is immaterial.
const LAP_DATA_LEN: usize = 1285;

/// The player's car at `t` seconds: flat out, brake at 3 s, apex at 4.5 s, back on power.
struct Car {
    speed_kph: f64,
    throttle: f64,
    brake: f64,
    steer: f64,
    gear: i8,
    rpm: f64,
}

fn car_at(t: f64) -> Car {
    let (speed_kph, throttle, brake, steer) = if t < 3.0 {
        (280.0 + 10.0 * t, 1.0, 0.0, 0.0)
    } else if t < 4.5 {
        let k = (t - 3.0) / 1.5;
        (310.0 - 200.0 * k, 0.0, 1.0 - 0.6 * k, -0.4 * k)
    } else {
        let k = ((t - 4.5) / 3.5).min(1.0);
        (110.0 + 140.0 * k, 0.4 + 0.6 * k, 0.0, -0.4 * (1.0 - k))
    };
    let gear = (speed_kph / 40.0).clamp(2.0, 8.0) as i8;
    let rpm = 10_500.0 + (speed_kph % 40.0) * 50.0;
    Car {
        speed_kph,
        throttle,
        brake,
        steer,
        gear,
        rpm,
    }
}

fn header(packet: &mut [u8], packet_id: u8, frame: u32, session_time: f32) {
    packet[0..2].copy_from_slice(&2024u16.to_le_bytes());
    packet[2] = 24;
    packet[3] = 1;
    packet[4] = 8;
    packet[5] = 1;
    packet[6] = packet_id;
    packet[7..15].copy_from_slice(&0x5EED_F124_0000_0001u64.to_le_bytes());
    packet[15..19].copy_from_slice(&session_time.to_le_bytes());
    packet[19..23].copy_from_slice(&frame.to_le_bytes());
    packet[23..27].copy_from_slice(&frame.to_le_bytes());
    packet[27] = PLAYER as u8;
    packet[28] = 255;
}

fn car_telemetry(frame: u32, t: f64) -> Vec<u8> {
    let mut packet = vec![0u8; CAR_TELEMETRY_LEN];
    header(&mut packet, 6, frame, t as f32);
    for index in 0..22 {
        // The rest of the grid runs a little behind the player.
        let car = car_at((t - 0.1 * index as f64 + 8.0) % 8.0);
        let record = &mut packet[29 + 60 * index..29 + 60 * (index + 1)];
        record[0..2].copy_from_slice(&(car.speed_kph.round() as u16).to_le_bytes());
        record[2..6].copy_from_slice(&(car.throttle as f32).to_le_bytes());
        record[6..10].copy_from_slice(&(car.steer as f32).to_le_bytes());
        record[10..14].copy_from_slice(&(car.brake as f32).to_le_bytes());
        record[15] = car.gear as u8;
        record[16..18].copy_from_slice(&(car.rpm.round() as u16).to_le_bytes());
        record[18] = u8::from(t < 2.5);
        for wheel in 0..4 {
            let brake_temp = 400.0 + 500.0 * car.brake + 10.0 * wheel as f64;
            let at = 22 + 2 * wheel;
            record[at..at + 2].copy_from_slice(&(brake_temp.round() as u16).to_le_bytes());
            record[30 + wheel] = 95 + wheel as u8;
            record[34 + wheel] = 100 + wheel as u8;
            let pressure = 22.5 + 0.25 * wheel as f32;
            record[40 + 4 * wheel..44 + 4 * wheel].copy_from_slice(&pressure.to_le_bytes());
        }
        record[38..40].copy_from_slice(&108u16.to_le_bytes());
    }
    packet
}

fn main() {
    let Some(out) = std::env::args().nth(1) else {
        eprintln!("usage: make_sim_capture <out.pcapng>");
        std::process::exit(2);
    };
    let addresses = (
        "192.168.1.20:51234".parse().expect("game address"),
        "192.168.1.10:20777".parse().expect("bridge address"),
    );
    let mut bytes = Vec::new();
    pcapng::write_section_header(&mut bytes);
    pcapng::write_interface("game", &mut bytes);
    let packets = RATE_HZ * DURATION_S;
    for frame in 0..packets {
        let time_ns = START_NS + frame * 1_000_000_000 / RATE_HZ;
        let t = frame as f64 / RATE_HZ as f64;
        let telemetry = car_telemetry(frame as u32, t);
        assert!(pcapng::write_packet(
            0, time_ns, addresses, &telemetry, &mut bytes
        ));
        if frame % 2 == 0 {
            let mut lap_data = vec![0u8; LAP_DATA_LEN];
            header(&mut lap_data, 2, frame as u32, t as f32);
            let later = time_ns + 2_000_000;
            assert!(pcapng::write_packet(
                0, later, addresses, &lap_data, &mut bytes
            ));
        }
    }
    std::fs::write(&out, bytes).expect("write capture");
    println!("{out}: {packets} car-telemetry packets");
}
