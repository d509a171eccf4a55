//! The field tables of every family but Haltech (`haltech.rs`), one function each, from the
//! published layouts (each profile DBC's first comment names the sources). Bytes and bits as sent.

use super::Kind::{self, *};
use super::{Family, Field, Order, haltech};

/// Every family, one per profile (and legacy variants).
pub fn all() -> Vec<Family> {
    vec![
        haltech::haltech(),
        link_generic_dash(),
        link_generic_dash_2(),
        ecumaster(),
        rusefi(true),
        rusefi(false),
        megasquirt_dash(),
        megasquirt_realtime(),
        aemnet(),
    ]
}

pub(super) fn at(
    id: u32,
    byte: usize,
    kind: Kind,
    name: &'static str,
    scale: f64,
    offset: f64,
) -> Field {
    Field {
        name,
        id,
        mux: None,
        byte,
        kind,
        scale,
        offset,
    }
}

/// Four consecutive 16-bit fields at bytes 0, 2, 4, 6; an empty name skips a slot.
pub(super) fn words(
    id: u32,
    kind: Kind,
    scale: f64,
    offset: f64,
    names: [&'static str; 4],
) -> Vec<Field> {
    names
        .into_iter()
        .enumerate()
        .filter(|(_, name)| !name.is_empty())
        .map(|(i, name)| at(id, 2 * i, kind, name, scale, offset))
        .collect()
}

/// Single-bit flags in one byte: (bit, name).
pub(super) fn flags(id: u32, byte: usize, named: &[(u8, &'static str)]) -> Vec<Field> {
    named
        .iter()
        .map(|&(bit, name)| at(id, byte, Bits { bit, len: 1 }, name, 1.0, 0.0))
        .collect()
}

pub(super) fn family(profile: &'static str, order: Order, parts: Vec<Vec<Field>>) -> Family {
    Family {
        profile,
        order,
        extended: false,
        switch: None,
        fields: parts.into_iter().flatten().collect(),
    }
}

/// One Link Generic Dash value slot: (name, scale, offset).
type Slot = (&'static str, f64, f64);

/// Link Generic Dash: id 1000, byte 0 the frame index, byte 1 zero, three u16 LE values.
fn link_generic_dash() -> Family {
    const ID: u32 = 1000;
    // (frame, [(name, scale, offset); 3]); an empty name leaves the slot to bit fields.
    let frames: [(u8, [Slot; 3]); 14] = [
        (
            0,
            [
                ("EngineSpeed", 1.0, 0.0),
                ("Map", 1.0, 0.0),
                ("Mgp", 1.0, -100.0),
            ],
        ),
        (
            1,
            [
                ("BaroPressure", 0.1, 0.0),
                ("Tps", 0.1, 0.0),
                ("InjectorDuty", 0.1, 0.0),
            ],
        ),
        (
            2,
            [
                ("InjectorDutyStage2", 0.1, 0.0),
                ("InjectorPulseWidth", 0.001, 0.0),
                ("CoolantTemp", 1.0, -50.0),
            ],
        ),
        (
            3,
            [
                ("IntakeAirTemp", 1.0, -50.0),
                ("EcuVolts", 0.01, 0.0),
                ("Maf", 0.1, 0.0),
            ],
        ),
        (
            4,
            [
                ("Gear", 1.0, 0.0),
                ("InjectionTiming", 1.0, 0.0),
                ("IgnitionTiming", 0.1, -100.0),
            ],
        ),
        (
            5,
            [
                ("InletCamLeft", 0.1, 0.0),
                ("InletCamRight", 0.1, 0.0),
                ("ExhaustCamLeft", -0.1, 0.0),
            ],
        ),
        (
            6,
            [
                ("ExhaustCamRight", -0.1, 0.0),
                ("Lambda1", 0.001, 0.0),
                ("Lambda2", 0.001, 0.0),
            ],
        ),
        (
            7,
            [
                ("Trigger1ErrorCount", 1.0, 0.0),
                ("FaultCode", 1.0, 0.0),
                ("FuelPressure", 1.0, 0.0),
            ],
        ),
        (
            8,
            [
                ("OilTemp", 1.0, -50.0),
                ("OilPressure", 1.0, 0.0),
                ("WheelSpeedLF", 0.1, 0.0),
            ],
        ),
        (
            9,
            [
                ("WheelSpeedLR", 0.1, 0.0),
                ("WheelSpeedRF", 0.1, 0.0),
                ("WheelSpeedRR", 0.1, 0.0),
            ],
        ),
        (
            10,
            [
                ("KnockCyl1", 5.0, 0.0),
                ("KnockCyl2", 5.0, 0.0),
                ("KnockCyl3", 5.0, 0.0),
            ],
        ),
        (
            11,
            [
                ("KnockCyl4", 5.0, 0.0),
                ("KnockCyl5", 5.0, 0.0),
                ("KnockCyl6", 5.0, 0.0),
            ],
        ),
        (
            12,
            [
                ("KnockCyl7", 5.0, 0.0),
                ("KnockCyl8", 5.0, 0.0),
                ("", 0.0, 0.0),
            ],
        ),
        (
            13,
            [
                ("AcceleratorPedal", 0.1, 0.0),
                ("EthanolContent", 0.1, 0.0),
                ("", 0.0, 0.0),
            ],
        ),
    ];
    let mut fields = Vec::new();
    for (frame, slots) in frames {
        for (slot, (name, scale, offset)) in slots.into_iter().enumerate() {
            if !name.is_empty() {
                fields.push(Field {
                    mux: Some(frame),
                    ..at(ID, 2 + 2 * slot, U16, name, scale, offset)
                });
            }
        }
    }
    let limits = [
        "LimitRpm",
        "LimitMap",
        "LimitSpeed",
        "LimitMaxIgnition",
        "LimitAntilagIgnCut",
        "LimitHighSupplyVoltage",
        "LimitOverrun",
        "LimitTraction",
        "LimitLowSupplyVoltage",
        "LimitLaunchRpm",
        "LimitWakeup",
        "LimitGpRpm1",
        "LimitClosedLoopStepper",
        "LimitGpRpm2",
        "LimitEThrottle",
        "CyclicIdleActive",
    ];
    for (bit, name) in limits.into_iter().enumerate() {
        let kind = Bits {
            bit: bit as u8,
            len: 1,
        };
        fields.push(Field {
            mux: Some(12),
            ..at(ID, 6, kind, name, 1.0, 0.0)
        });
    }
    let status = [
        ("TractionControlState", 0, 3),
        ("LaunchState", 3, 2),
        ("AntilagState", 5, 3),
        ("CruiseState", 12, 3),
    ];
    for (name, bit, len) in status {
        fields.push(Field {
            mux: Some(13),
            ..at(ID, 6, Bits { bit, len }, name, 1.0, 0.0)
        });
    }
    Family {
        profile: "link-generic-dash",
        order: Order::Little,
        extended: false,
        switch: Some("FrameIndex"),
        fields,
    }
}

fn link_generic_dash_2() -> Family {
    family(
        "link-generic-dash-2",
        Order::Big,
        vec![vec![
            at(1000, 0, U16, "EngineSpeed", 1.0, 0.0),
            at(1000, 2, U16, "Mgp", 1.0, -100.0),
            at(1000, 4, U8, "CoolantTemp", 1.0, -50.0),
            at(1000, 5, U8, "IntakeAirTemp", 1.0, -50.0),
            at(1000, 6, U8, "EcuVolts", 0.1, 0.0),
            at(1000, 7, U8, "OilTemp", 1.0, -50.0),
            at(1001, 0, U16, "Tps", 0.1, 0.0),
            at(1001, 2, U16, "IgnitionAngle", 0.1, -100.0),
            at(1001, 4, U8, "DrivenSpeed", 1.0, 0.0),
            at(1001, 5, U8, "OilPressure", 10.0, 0.0),
            at(1001, 6, U8, "FuelPressure", 10.0, 0.0),
            at(1002, 0, U16, "Lambda1", 0.001, 0.0),
            at(1002, 2, U16, "Lambda2", 0.001, 0.0),
            at(1003, 0, U8, "Gear", 1.0, 0.0),
            at(1003, 5, U8, "FaultCode", 1.0, 0.0),
            at(1003, 6, U16, "KnockLevel", 5.0, 0.0),
        ]],
    )
}

fn ecumaster() -> Family {
    const ANALOG: f64 = 0.0048828125;
    let bit_names = |id: u32, byte: usize, names: &[&'static str]| -> Vec<Field> {
        let named: Vec<(u8, &'static str)> = names
            .iter()
            .enumerate()
            .map(|(bit, name)| (bit as u8, *name))
            .collect();
        flags(id, byte, &named)
    };
    let errors = [
        "ErrClt",
        "ErrIat",
        "ErrMap",
        "ErrWideband",
        "ErrEgt1",
        "ErrEgt2",
        "ErrEgtTooHigh",
        "ErrKnock",
        "ErrFlexFuel",
        "ErrDbw",
        "ErrFuelPressureRelative",
    ];
    let mut error_bits = bit_names(0x604, 4, &errors[..8]);
    error_bits.extend(bit_names(0x604, 5, &errors[8..]));
    family(
        "ecumaster-emu",
        Order::Little,
        vec![
            vec![
                at(0x600, 0, U16, "Rpm", 1.0, 0.0),
                at(0x600, 2, U8, "Tps", 0.5, 0.0),
                at(0x600, 3, S8, "IntakeAirTemp", 1.0, 0.0),
                at(0x600, 4, U16, "Map", 1.0, 0.0),
                at(0x600, 6, U16, "InjectorPulseWidth", 0.016129, 0.0),
            ],
            words(
                0x601,
                U16,
                ANALOG,
                0.0,
                ["AnalogIn1", "AnalogIn2", "AnalogIn3", "AnalogIn4"],
            ),
            vec![
                at(0x602, 0, U16, "VehicleSpeed", 1.0, 0.0),
                at(0x602, 2, U8, "BaroPressure", 1.0, 0.0),
                at(0x602, 3, U8, "OilTemp", 1.0, 0.0),
                at(0x602, 4, U8, "OilPressure", 0.0625, 0.0),
                at(0x602, 5, U8, "FuelPressure", 0.0625, 0.0),
                at(0x602, 6, S16, "CoolantTemp", 1.0, 0.0),
                at(0x603, 0, S8, "IgnitionAngle", 0.5, 0.0),
                at(0x603, 1, U8, "Dwell", 0.05, 0.0),
                at(0x603, 2, U8, "Lambda", 0.0078125, 0.0),
                at(0x603, 3, U8, "LambdaCorrection", 0.5, 0.0),
                at(0x603, 4, U16, "Egt1", 1.0, 0.0),
                at(0x603, 6, U16, "Egt2", 1.0, 0.0),
                at(0x604, 0, U8, "Gear", 1.0, 0.0),
                at(0x604, 1, S8, "EcuTemp", 1.0, 0.0),
                at(0x604, 2, U16, "BatteryVoltage", 0.027, 0.0),
                at(0x604, 7, U8, "EthanolContent", 1.0, 0.0),
            ],
            error_bits,
            bit_names(
                0x604,
                6,
                &[
                    "GearCutActive",
                    "AlsActive",
                    "LaunchControlActive",
                    "IdleActive",
                    "TableSet2",
                    "TcIntervention",
                    "PitLimiterActive",
                    "BrakeSwitch",
                ],
            ),
            vec![
                at(0x605, 0, U8, "DbwPosition", 0.5, 0.0),
                at(0x605, 1, U8, "DbwTarget", 0.5, 0.0),
                at(0x605, 2, U16, "TcDrpmRaw", 1.0, 0.0),
                at(0x605, 4, U16, "TcDrpm", 1.0, 0.0),
                at(0x605, 6, U8, "TcTorqueReduction", 1.0, 0.0),
                at(0x605, 7, U8, "PitLimitTorqueReduction", 1.0, 0.0),
            ],
            words(0x606, U16, ANALOG, 0.0, ["AnalogIn5", "AnalogIn6", "", ""]),
            bit_names(
                0x606,
                4,
                &[
                    "ParametricOutput1",
                    "ParametricOutput2",
                    "ParametricOutput3",
                    "ParametricOutput4",
                    "ParametricOutput5",
                    "VirtualOutput1",
                    "VirtualOutput2",
                    "VirtualOutput3",
                ],
            ),
            bit_names(
                0x606,
                5,
                &[
                    "CanSwitch1",
                    "CanSwitch2",
                    "CanSwitch3",
                    "CanSwitch4",
                    "CanSwitch5",
                    "CanSwitch6",
                    "CanSwitch7",
                    "CanSwitch8",
                ],
            ),
            bit_names(
                0x606,
                6,
                &[
                    "Switch1",
                    "Switch2",
                    "Switch3",
                    "MuxSwitch1",
                    "MuxSwitch2",
                    "MuxSwitch3",
                    "LaunchMapSet",
                    "AlsMapSet",
                ],
            ),
            bit_names(
                0x606,
                7,
                &[
                    "FuelPumpOn",
                    "CoolantFanOn",
                    "AcClutchOn",
                    "AcFanOn",
                    "NitrousOn",
                    "StarterRequest",
                    "BoostMapSet",
                ],
            ),
            vec![
                at(0x607, 0, U16, "BoostTarget", 1.0, 0.0),
                at(0x607, 2, U8, "Pwm1Duty", 1.0, 0.0),
                at(0x607, 3, U8, "DsgMode", 1.0, 0.0),
                at(0x607, 4, U8, "LambdaTarget", 0.01, 0.0),
                at(0x607, 5, U8, "Pwm2Duty", 1.0, 0.0),
                at(0x607, 6, U16, "FuelUsed", 0.01, 0.0),
            ],
        ],
    )
}

/// rusEFI verbose broadcast; `current` selects can_verbose.cpp's layout over the old DBC's.
fn rusefi(current: bool) -> Family {
    const THIRTIETH: f64 = 1.0 / 30.0;
    let mut base0 = vec![
        at(0x200, 0, U16, "WarningCounter", 1.0, 0.0),
        at(0x200, 2, U16, "LastErrorCode", 1.0, 0.0),
        at(0x200, 5, U8, "CurrentGear", 1.0, 0.0),
    ];
    base0.extend(flags(
        0x200,
        4,
        &[
            (0, "RevLimitAct"),
            (1, "MainRelayAct"),
            (2, "FuelPumpAct"),
            (3, "CheckEngineAct"),
            (4, "O2HeaterAct"),
            (5, "LambdaProtectAct"),
            (6, "FanAct"),
            (7, "Fan2Act"),
        ],
    ));
    let base4 = if current {
        vec![
            at(0x200, 6, U16, "DistanceTraveled", 0.1, 0.0),
            at(0x204, 2, U16, "OilPressure", THIRTIETH, 0.0),
            at(0x204, 4, U8, "OilTemp", 1.0, -40.0),
            at(0x204, 5, U8, "FuelTemp", 1.0, -40.0),
            at(0x204, 6, U16, "BatteryVoltage", 0.001, 0.0),
        ]
    } else {
        vec![
            at(0x204, 0, U16, "Afr", 0.001, 0.0),
            at(0x204, 2, U16, "OilPressure", THIRTIETH, 0.0),
            at(0x204, 4, S16, "VvtPosition", 0.02, 0.0),
            at(0x204, 6, U16, "BatteryVoltage", 0.001, 0.0),
        ]
    };
    let low_side = if current { U16 } else { S16 };
    let cams = [
        "VvtB1IntakeActual",
        "VvtB1IntakeTarget",
        "VvtB1ExhaustActual",
        "VvtB1ExhaustTarget",
        "VvtB2IntakeActual",
        "VvtB2IntakeTarget",
        "VvtB2ExhaustActual",
        "VvtB2ExhaustTarget",
    ];
    let mut parts = vec![
        base0,
        base4,
        vec![
            at(0x201, 0, U16, "Rpm", 1.0, 0.0),
            at(0x201, 2, S16, "IgnitionTiming", 0.02, 0.0),
            at(0x201, 4, U8, "InjectorDuty", 0.5, 0.0),
            at(0x201, 5, U8, "CoilDuty", 0.5, 0.0),
            at(0x201, 6, U8, "VehicleSpeed", 1.0, 0.0),
            at(0x201, 7, U8, "EthanolPercent", 1.0, 0.0),
        ],
        words(
            0x202,
            S16,
            0.01,
            0.0,
            ["PedalPosition", "Tps1", "Tps2", "WastegatePosition"],
        ),
        vec![
            at(0x203, 0, U16, "Map", THIRTIETH, 0.0),
            at(0x203, 2, U8, "CoolantTemp", 1.0, -40.0),
            at(0x203, 3, U8, "IntakeAirTemp", 1.0, -40.0),
            at(0x203, 4, U8, "AuxTemp1", 1.0, -40.0),
            at(0x203, 5, U8, "AuxTemp2", 1.0, -40.0),
            at(0x203, 6, U8, "McuTemp", 1.0, -40.0),
            at(0x203, 7, U8, "FuelLevel", 0.5, 0.0),
            at(0x205, 0, U16, "CylinderAirMass", 1.0, 0.0),
            at(0x205, 2, U16, "EstimatedAirflow", 0.01, 0.0),
            at(0x205, 4, U16, "InjectorPulseWidth", 1.0 / 300.0, 0.0),
            at(0x205, 6, U16, "KnockCount", 1.0, 0.0),
            at(0x206, 0, U16, "FuelUsed", 1.0, 0.0),
            at(0x206, 2, U16, "FuelFlow", 0.005, 0.0),
            at(0x206, 4, S16, "FuelTrim1", 0.01, 0.0),
            at(0x206, 6, S16, "FuelTrim2", 0.01, 0.0),
            at(0x207, 0, U16, "Lambda1", 0.0001, 0.0),
            at(0x207, 2, U16, "Lambda2", 0.0001, 0.0),
            at(0x207, 4, low_side, "FuelPressureLow", THIRTIETH, 0.0),
            at(0x207, 6, U16, "FuelPressureHigh", 0.1, 0.0),
        ],
        cams.iter()
            .enumerate()
            .map(|(i, name)| at(0x208, i, S8, name, 1.0, 0.0))
            .collect(),
    ];
    if current {
        let egt = [
            "Egt1", "Egt2", "Egt3", "Egt4", "Egt5", "Egt6", "Egt7", "Egt8",
        ];
        let knock = [
            "KnockCyl1",
            "KnockCyl2",
            "KnockCyl3",
            "KnockCyl4",
            "KnockCyl5",
            "KnockCyl6",
            "KnockCyl7",
            "KnockCyl8",
        ];
        parts.push(
            egt.iter()
                .enumerate()
                .map(|(i, n)| at(0x209, i, U8, n, 5.0, 0.0))
                .collect(),
        );
        parts.push(
            knock
                .iter()
                .enumerate()
                .map(|(i, n)| at(0x20A, i, S8, n, 1.0, 0.0))
                .collect(),
        );
        parts.push(flags(0x20B, 0, &[(0, "BrakePedal")]));
    }
    family(
        if current { "rusefi" } else { "rusefi-legacy" },
        Order::Little,
        parts,
    )
}

fn megasquirt_dash() -> Family {
    family(
        "megasquirt-dash",
        Order::Big,
        vec![vec![
            at(0x5E8, 0, S16, "Map", 0.1, 0.0),
            at(0x5E8, 2, U16, "Rpm", 1.0, 0.0),
            at(0x5E8, 4, S16, "Clt", 0.1, 0.0),
            at(0x5E8, 6, S16, "Tps", 0.1, 0.0),
            at(0x5E9, 0, U16, "Pw1", 0.001, 0.0),
            at(0x5E9, 2, U16, "Pw2", 0.001, 0.0),
            at(0x5E9, 4, S16, "Mat", 0.1, 0.0),
            at(0x5E9, 6, S16, "Adv", 0.1, 0.0),
            at(0x5EA, 0, U8, "AfrTarget1", 0.1, 0.0),
            at(0x5EA, 1, U8, "Afr1", 0.1, 0.0),
            at(0x5EA, 2, S16, "EgoCor1", 0.1, 0.0),
            at(0x5EA, 4, S16, "Egt1", 0.1, 0.0),
            at(0x5EA, 6, S16, "PwSeq1", 0.001, 0.0),
            at(0x5EB, 0, S16, "Batt", 0.1, 0.0),
            at(0x5EB, 2, S16, "Sensor1", 0.01, 0.0),
            at(0x5EB, 4, S16, "Sensor2", 0.01, 0.0),
            at(0x5EB, 6, U8, "KnockRetard", 0.1, 0.0),
            at(0x5EC, 0, U16, "Vss1", 0.1, 0.0),
            at(0x5EC, 2, S16, "TcRetard", 0.1, 0.0),
            at(0x5EC, 4, S16, "LaunchTiming", 0.1, 0.0),
        ]],
    )
}

fn megasquirt_realtime() -> Family {
    let group = |n: u32| 0x5F0 + n;
    let duties = [
        "DutyPwm1", "DutyPwm2", "DutyPwm3", "DutyPwm4", "DutyPwm5", "DutyPwm6",
    ];
    family(
        "megasquirt-realtime",
        Order::Big,
        vec![
            words(group(0), U16, 1.0, 0.0, ["Seconds", "", "", "Rpm"]),
            words(group(0), U16, 0.001, 0.0, ["", "Pw1", "Pw2", ""]),
            vec![
                at(group(1), 0, S16, "AdvDeg", 0.1, 0.0),
                at(group(1), 2, U8, "Squirt", 1.0, 0.0),
                at(group(1), 3, U8, "Engine", 1.0, 0.0),
                at(group(1), 4, U8, "AfrTgt1", 0.1, 0.0),
                at(group(1), 5, U8, "AfrTgt2", 0.1, 0.0),
                at(group(1), 6, U8, "Wbo2En1", 1.0, 0.0),
                at(group(1), 7, U8, "Wbo2En2", 1.0, 0.0),
                at(group(2), 0, U16, "Baro", 0.1, 0.0),
            ],
            words(group(2), S16, 0.1, 0.0, ["", "Map", "Mat", "Clt"]),
            words(group(3), S16, 0.1, 0.0, ["Tps", "Batt", "Afr1", "Afr2"]),
            words(
                group(4),
                U16,
                0.1,
                0.0,
                ["Knock", "EgoCor1", "EgoCor2", "AirCor"],
            ),
            words(
                group(5),
                U16,
                0.1,
                0.0,
                ["WarmCor", "TpsAccel", "TpsFuelCut", "BaroCor"],
            ),
            words(group(6), U16, 0.1, 0.0, ["TotalCor", "Ve1", "Ve2", ""]),
            vec![at(group(6), 6, U16, "IacStep", 1.0, 0.0)],
            words(group(9), U16, 0.01, 0.0, ["EgoV1", "EgoV2", "", ""]),
            words(group(9), U16, 0.1, 0.0, ["", "", "Dwell", "DwellTrl"]),
            words(
                group(13),
                U16,
                0.1,
                0.0,
                ["Sensor1", "Sensor2", "Sensor3", "Sensor4"],
            ),
            words(
                group(14),
                U16,
                0.1,
                0.0,
                ["Sensor5", "Sensor6", "Sensor7", "Sensor8"],
            ),
            duties
                .iter()
                .enumerate()
                .map(|(i, n)| at(group(33), i, U8, n, 1.0, 0.0))
                .collect(),
            vec![
                at(group(33), 6, U8, "Gear", 1.0, 0.0),
                at(group(33), 7, U8, "Status8", 1.0, 0.0),
            ],
            words(group(42), U16, 0.1, 0.0, ["Vss1", "Vss2", "Vss3", "Vss4"]),
            words(
                group(53),
                U16,
                0.1,
                0.0,
                ["FuelPress1", "FuelPress2", "FuelTemp1", "FuelTemp2"],
            ),
        ],
    )
}

fn aemnet() -> Family {
    const LAMBDA: f64 = 0.00390625;
    let mut family = family(
        "aemnet",
        Order::Big,
        vec![vec![
            at(0x01F0_A000, 0, U16, "EngineSpeed", 0.39063, 0.0),
            at(0x01F0_A000, 2, U16, "EngineLoad", 0.0015259, 0.0),
            at(0x01F0_A000, 4, U16, "Throttle", 0.0015259, 0.0),
            at(0x01F0_A000, 6, S8, "IntakeAirTemp", 1.0, 0.0),
            at(0x01F0_A000, 7, S8, "CoolantTemp", 1.0, 0.0),
            at(0x01F0_A003, 0, U8, "Lambda1", LAMBDA, 0.5),
            at(0x01F0_A003, 1, U8, "Lambda2", LAMBDA, 0.5),
            at(0x01F0_A003, 2, U16, "VehicleSpeed", 0.0062865, 0.0),
            at(0x01F0_A003, 4, U8, "Gear", 1.0, 0.0),
            at(0x01F0_A003, 5, U8, "IgnitionTiming", 0.35156, -17.0),
            at(0x01F0_A003, 6, U16, "BatteryVoltage", 0.0002455, 0.0),
            at(0x01F0_A004, 0, U16, "Map", 0.1, 0.0),
            at(0x01F0_A004, 2, U8, "Ve", 1.0, 0.0),
            at(0x01F0_A004, 3, U8, "FuelPressure", 4.0, 0.0),
            at(0x01F0_A004, 4, U8, "OilPressure", 4.0, 0.0),
            at(0x01F0_A004, 5, U8, "LambdaTarget", LAMBDA, 0.5),
            at(0x01F0_A004, 6, Bits { bit: 1, len: 1 }, "Fan1", 1.0, 0.0),
            at(0x01F0_A007, 6, U8, "OilTemp", 1.0, -50.0),
        ]],
    );
    family.extended = true;
    family
}
