//! Generates the quick-start capture `fixtures/demo-car/drive.log`: 40 s of a Honda Civic's
//! powertrain CAN (engine start, idle, a drive with gear changes, a corner, a stop) encoded with
//! the car's DBC and written as a `candump -L` log. Deterministic: same output every run.
//!
//! `cargo run --example make_demo_capture -- fixtures/dbc/honda_civic_hatchback_ex_2017_can.dbc fixtures/demo-car/drive.log`

use std::fmt::Write as _;

use decoders::CanFlags;
use decoders::can::CanFrame;
use decoders::dbc::{Dbc, parse_dbc};
use decoders::wire::candump::write_line;

/// 2026-05-16 13:00:00 UTC: capture start.
const START_NS: u64 = 1_778_936_400_000_000_000;
const DURATION_S: f64 = 40.0;
/// Gear ratios × final drive, in engine rev per wheel rev, and wheel circumference in metres.
const GEARS: [f64; 6] = [13.0, 8.2, 5.9, 4.6, 3.8, 3.2];
const WHEEL_M: f64 = 1.95;

/// The state of the car at one instant.
#[derive(Debug, Clone, Copy, Default)]
struct CarState {
    rpm: f64,
    speed_kph: f64,
    pedal: f64,
    brake: bool,
    steer_deg: f64,
    steer_rate: f64,
    gear: usize,
}

/// A tiny deterministic noise source (64-bit LCG), so sensors jitter realistically.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }
}

/// The driver's inputs over the script: (pedal 0..1, brake, steering angle in degrees).
fn driver(t: f64) -> (f64, bool, f64) {
    match t {
        t if t < 8.0 => (0.0, true, 0.0),
        t if t < 20.0 => (0.35 + 0.5 * ((t - 8.0) / 4.0).min(1.0), false, 0.0),
        t if t < 27.0 => {
            let phase = (t - 20.0) / 7.0 * std::f64::consts::PI;
            (0.25, t < 21.5, 90.0 * phase.sin())
        }
        t if t < 33.0 => (0.9, false, -8.0 * ((t - 27.0) * 1.3).sin()),
        t if t < 37.0 => (0.0, true, 0.0),
        _ => (0.0, true, 0.0),
    }
}

fn step(state: &mut CarState, t: f64, dt: f64) {
    let (pedal, brake, steer) = driver(t);
    state.steer_rate = (steer - state.steer_deg) / dt;
    state.steer_deg = steer;
    state.pedal = pedal;
    state.brake = brake;
    // Engine: off, cranking, a start flare that settles to idle, then driven by the road.
    if t < 3.0 {
        state.rpm = 0.0;
        return;
    }
    if t < 3.8 {
        state.rpm = 220.0 + 40.0 * ((t - 3.0) * 40.0).sin();
        return;
    }
    let accel = if brake {
        -7.5
    } else {
        pedal * 4.2 - 0.015 * state.speed_kph
    };
    state.speed_kph = (state.speed_kph + accel * dt * 3.6).max(0.0);
    let wheel_rpm = state.speed_kph / 3.6 / WHEEL_M * 60.0;
    if state.speed_kph < 8.0 {
        state.gear = 0;
        let idle = 850.0 + 550.0 * (-(t - 3.8) / 1.2).exp();
        state.rpm = if pedal > 0.0 {
            idle + pedal * 1800.0
        } else {
            idle
        };
        return;
    }
    let mut rpm = wheel_rpm * GEARS[state.gear];
    if rpm > 5600.0 && state.gear + 1 < GEARS.len() {
        state.gear += 1;
    } else if rpm < 1500.0 && state.gear > 0 {
        state.gear -= 1;
    }
    rpm = wheel_rpm * GEARS[state.gear];
    state.rpm = rpm.max(850.0);
}

/// Encodes `values` (signal name → physical value) into a frame of message `name`.
fn frame(dbc: &Dbc, name: &str, values: &[(&str, f64)]) -> CanFrame {
    let message = dbc.message_by_name(name).expect("message in the DBC");
    let mut data = vec![0u8; usize::from(message.size)];
    for (signal_name, value) in values {
        let signal = message
            .signals
            .iter()
            .find(|s| s.name == *signal_name)
            .expect("signal in the message");
        let clamped = value.clamp(signal.min.min(signal.max), signal.max.max(signal.min));
        signal
            .layout()
            .encode(clamped, &mut data)
            .expect("value encodable");
    }
    CanFrame::new(message.id, CanFlags::empty(), &data).expect("classic frame")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dbc_path, out_path] = args.as_slice() else {
        eprintln!("usage: make_demo_capture DBC OUT");
        std::process::exit(2);
    };
    let text = std::fs::read_to_string(dbc_path).expect("read DBC");
    let dbc = parse_dbc(dbc_path, &text).expect("parse DBC").dbc;
    let mut noise = Noise(0x5EED);
    let mut state = CarState::default();
    let mut out = String::new();
    let dt = 0.01;
    let steps = (DURATION_S / dt) as u64;
    for tick in 0..steps {
        let t = tick as f64 * dt;
        step(&mut state, t, dt);
        let base = START_NS + tick * 10_000_000;
        // Each module transmits at its own slightly jittered instant within the 10 ms cycle.
        let jitter: [u64; 3] = std::array::from_fn(|_| (noise.next().abs() * 300_000.0) as u64);
        let at = |slot: u64| base + slot * 1_700_000 + jitter[slot as usize];
        let rpm = state.rpm
            + if state.rpm > 0.0 {
                noise.next() * 12.0
            } else {
                0.0
            };
        let speed = (state.speed_kph + noise.next() * 0.05).max(0.0);
        let frames = [
            (
                at(0),
                frame(
                    &dbc,
                    "ENGINE_DATA",
                    &[
                        ("ENGINE_RPM", rpm.round()),
                        ("XMISSION_SPEED", speed),
                        ("XMISSION_SPEED2", speed),
                    ],
                ),
            ),
            (
                at(1),
                frame(
                    &dbc,
                    "POWERTRAIN_DATA",
                    &[
                        ("PEDAL_GAS", (state.pedal * 255.0).round()),
                        ("ENGINE_RPM", rpm.round()),
                        ("BRAKE_PRESSED", f64::from(u8::from(state.brake))),
                    ],
                ),
            ),
            (
                at(2),
                frame(
                    &dbc,
                    "STEERING_SENSORS",
                    &[
                        ("STEER_ANGLE", state.steer_deg + noise.next() * 0.2),
                        (
                            "STEER_ANGLE_RATE",
                            state.steer_rate.clamp(-3000.0, 3000.0).round(),
                        ),
                    ],
                ),
            ),
        ];
        for (time, can) in frames {
            write_line(time, "can0", &can, &mut out);
        }
        if tick % 2 == 0 {
            let wheel = |n: &mut Noise| (speed + n.next() * 0.3).max(0.0);
            let wheels = [
                ("WHEEL_SPEED_FL", wheel(&mut noise)),
                ("WHEEL_SPEED_FR", wheel(&mut noise)),
                ("WHEEL_SPEED_RL", wheel(&mut noise)),
                ("WHEEL_SPEED_RR", wheel(&mut noise)),
            ];
            write_line(
                base + 3 * 1_700_000,
                "can0",
                &frame(&dbc, "WHEEL_SPEEDS", &wheels),
                &mut out,
            );
        }
        if tick % 10 == 0 {
            let shifter = if state.speed_kph > 0.5 || state.pedal > 0.0 {
                4.0
            } else {
                1.0
            };
            write_line(
                base + 4 * 1_700_000,
                "can0",
                &frame(&dbc, "GEARBOX_CVT", &[("GEAR_SHIFTER", shifter)]),
                &mut out,
            );
        }
    }
    let _ = writeln!(out);
    std::fs::write(out_path, out.trim_end().to_owned() + "\n").expect("write capture");
    eprintln!("wrote {steps} cycles to {out_path}");
}
