//! The Haltech CAN broadcast V2 field table (0x360-0x701), from the v2.0 layout as published;
//! the largest family, kept apart from the others in `families.rs`.

use super::Kind::*;
use super::families::{at, family, flags, words};
use super::{Family, Field, Order};

/// Haltech: absolute kPa ×10 minus 101.3 gives gauge pressure.
const GAUGE: f64 = -101.3;
/// Haltech: kelvin ×10 minus 273.1 gives °C.
const KELVIN: f64 = -273.1;

pub(super) fn haltech() -> Family {
    let temp = |id, names| words(id, U16, 0.1, KELVIN, names);
    family(
        "haltech-v2",
        Order::Big,
        vec![
            vec![
                at(0x360, 0, U16, "EngineSpeed", 1.0, 0.0),
                at(0x360, 2, U16, "ManifoldPressure", 0.1, 0.0),
                at(0x360, 4, U16, "ThrottlePosition", 0.1, 0.0),
                at(0x360, 6, U16, "CoolantPressure", 0.1, GAUGE),
                at(0x361, 0, U16, "FuelPressure", 0.1, GAUGE),
                at(0x361, 2, U16, "OilPressure", 0.1, GAUGE),
                at(0x361, 4, U16, "EngineDemand", 0.1, 0.0),
                at(0x361, 6, U16, "WastegatePressure", 0.1, GAUGE),
                at(0x362, 0, U16, "InjStage1Duty", 0.1, 0.0),
                at(0x362, 2, U16, "InjStage2Duty", 0.1, 0.0),
                at(0x362, 4, S16, "IgnitionAngleLeading", 0.1, 0.0),
                at(0x363, 0, S16, "WheelSlip", 0.1, 0.0),
                at(0x363, 2, S16, "WheelDiff", 0.1, 0.0),
                at(0x363, 6, U16, "LaunchControlEndRpm", 1.0, 0.0),
            ],
            words(
                0x364,
                U16,
                0.001,
                0.0,
                [
                    "InjStage1Time",
                    "InjStage2Time",
                    "InjStage3Time",
                    "InjStage4Time",
                ],
            ),
            words(
                0x368,
                U16,
                0.001,
                0.0,
                ["Wideband1", "Wideband2", "Wideband3", "Wideband4"],
            ),
            words(
                0x369,
                U16,
                1.0,
                0.0,
                [
                    "TriggerErrorCount",
                    "TriggerCounter",
                    "",
                    "TriggerSyncLevel",
                ],
            ),
            words(
                0x36A,
                U16,
                0.01,
                0.0,
                ["KnockLevel1", "KnockLevel2", "", ""],
            ),
            vec![
                at(0x36B, 0, U16, "BrakePressureFront", 1.0, GAUGE),
                at(0x36B, 2, U16, "NosPressure1", 0.22, GAUGE),
                at(0x36B, 4, U16, "TurboSpeed1", 10.0, 0.0),
                at(0x36B, 6, S16, "LateralG", 0.1, 0.0),
            ],
            words(
                0x36C,
                U16,
                0.1,
                0.0,
                [
                    "WheelSpeedFL",
                    "WheelSpeedFR",
                    "WheelSpeedRL",
                    "WheelSpeedRR",
                ],
            ),
            words(
                0x36D,
                S16,
                0.1,
                0.0,
                ["", "", "ExhaustCamAngle1", "ExhaustCamAngle2"],
            ),
            vec![
                at(0x36E, 0, U16, "EngineLimitingActive", 1.0, 0.0),
                at(0x36E, 2, S16, "LaunchIgnitionRetard", 0.1, 0.0),
                at(0x36E, 4, S16, "LaunchFuelEnrich", 0.1, 0.0),
                at(0x36E, 6, S16, "LongitudinalG", 0.1, 0.0),
            ],
            words(
                0x36F,
                U16,
                0.1,
                0.0,
                ["GenericOutput1Duty", "BoostControlOutput", "", ""],
            ),
            vec![
                at(0x370, 0, U16, "VehicleSpeed", 0.1, 0.0),
                at(0x370, 2, S8, "GearSelector370", 1.0, 0.0),
                at(0x370, 3, S8, "Gear370", 1.0, 0.0),
                at(0x370, 4, S16, "IntakeCamAngle1", 0.1, 0.0),
                at(0x370, 6, S16, "IntakeCamAngle2", 0.1, 0.0),
            ],
            words(0x371, U16, 1.0, 0.0, ["FuelFlow", "FuelFlowReturn", "", ""]),
            vec![
                at(0x372, 0, U16, "BatteryVoltage", 0.1, 0.0),
                at(0x372, 4, U16, "TargetBoost", 0.1, 0.0),
                at(0x372, 6, U16, "BarometricPressure", 0.1, 0.0),
            ],
            temp(0x373, ["Egt1", "Egt2", "Egt3", "Egt4"]),
            temp(0x374, ["Egt5", "Egt6", "Egt7", "Egt8"]),
            temp(0x375, ["Egt9", "Egt10", "Egt11", "Egt12"]),
            vec![
                at(0x376, 0, U16, "AmbientAirTemp", 0.1, KELVIN),
                at(0x376, 2, S16, "RelativeHumidity", 0.1, 0.0),
                at(0x376, 4, U16, "SpecificHumidity", 100.0, 0.0),
                at(0x376, 6, U16, "AbsoluteHumidity", 0.1, 0.0),
                at(0x377, 0, U16, "BoostPreIntercooler", 0.1, 0.0),
            ],
            temp(
                0x3E0,
                ["CoolantTemp", "IntakeAirTemp", "FuelTemp", "OilTemp"],
            ),
            vec![
                at(0x3E1, 0, U16, "GearboxOilTemp", 0.1, KELVIN),
                at(0x3E1, 2, U16, "DiffOilTemp", 0.1, KELVIN),
                at(0x3E1, 4, U16, "FuelComposition", 0.1, 0.0),
                at(0x3E1, 6, U16, "PreIntercoolerAirTemp", 0.1, KELVIN),
                at(0x3E2, 0, U16, "FuelLevel", 0.1, 0.0),
                at(0x3E2, 2, S16, "EstimatedFuelFlow", 0.1, 0.0),
                at(0x3E2, 4, U16, "AverageFuelMileage", 0.1, 0.0),
            ],
            words(
                0x3E3,
                S16,
                0.1,
                0.0,
                [
                    "FuelTrimShortTermBank1",
                    "FuelTrimShortTermBank2",
                    "FuelTrimLongTermBank1",
                    "FuelTrimLongTermBank2",
                ],
            ),
            haltech_switches(),
            haltech_3e5_to_3ed(),
            haltech_chassis(),
            haltech_470s(),
            haltech_6fx(),
        ],
    )
}

fn haltech_switches() -> Vec<Field> {
    let mut fields = flags(
        0x3E4,
        1,
        &[
            (7, "NeutralSwitch"),
            (6, "ReverseSwitch"),
            (5, "GearSwitch"),
            (4, "DecelCutActive"),
            (3, "TransientThrottleActive"),
            (2, "BrakePedalSwitch"),
            (1, "ClutchSwitch"),
            (0, "OilPressureLight"),
        ],
    );
    fields.extend(flags(
        0x3E4,
        2,
        &[
            (7, "LaunchActive"),
            (6, "LaunchSwitch"),
            (5, "AuxRpmLimiterActive"),
            (4, "BrakeFluidLevelSwitch"),
            (3, "FlatShiftSwitch"),
            (2, "ClutchPressureSensor"),
            (1, "TorqueReductionActive"),
        ],
    ));
    fields.extend(flags(
        0x3E4,
        3,
        &[
            (7, "TractionControlEnabled"),
            (6, "TractionControlActive"),
            (5, "AcRequest"),
            (4, "AcOutput"),
            (3, "ThermoFan4"),
            (2, "ThermoFan3"),
            (1, "ThermoFan2"),
            (0, "ThermoFan1"),
        ],
    ));
    fields.extend([
        at(0x3E4, 4, S8, "RotaryTrimPot1", 1.0, 0.0),
        at(0x3E4, 5, S8, "RotaryTrimPot2", 1.0, 0.0),
        at(0x3E4, 6, S8, "RotaryTrimPot3", 1.0, 0.0),
    ]);
    fields.extend(flags(
        0x3E4,
        7,
        &[
            (7, "CheckEngineLight"),
            (6, "BatteryLight"),
            (1, "HandBrake"),
            (0, "TractionControlLight"),
        ],
    ));
    fields
}

fn haltech_3e5_to_3ed() -> Vec<Field> {
    let mut fields = vec![
        at(0x3E5, 0, U8, "IgnitionSwitch", 1.0, 0.0),
        at(0x3E5, 1, U8, "TurboTimerTimeLeft", 1.0, 0.0),
        at(0x3E5, 2, U8, "TurboTimerEngineTimeLeft", 1.0, 0.0),
        at(0x3E5, 4, S16, "SteeringWheelAngle", 0.1, 0.0),
        at(0x3E5, 6, U16, "DriveshaftRpm", 1.0, 0.0),
    ];
    fields.extend(flags(
        0x3E5,
        3,
        &[
            (6, "PitLimiterError"),
            (5, "PitLimiterActive"),
            (4, "PitLimiterSwitch"),
            (2, "AbsError"),
            (1, "AbsActive"),
            (0, "AbsArmed"),
        ],
    ));
    fields.extend(words(
        0x3E6,
        U16,
        0.22,
        GAUGE,
        ["NosPressure2", "NosPressure3", "NosPressure4", ""],
    ));
    fields.push(at(0x3E6, 6, U16, "TurboSpeed2", 10.0, 0.0));
    fields.extend(words(
        0x3E7,
        U16,
        1.0,
        0.0,
        [
            "GenericSensor1",
            "GenericSensor2",
            "GenericSensor3",
            "GenericSensor4",
        ],
    ));
    fields.extend(words(
        0x3E8,
        U16,
        1.0,
        0.0,
        [
            "GenericSensor5",
            "GenericSensor6",
            "GenericSensor7",
            "GenericSensor8",
        ],
    ));
    fields.extend([
        at(0x3E9, 0, U16, "GenericSensor9", 1.0, 0.0),
        at(0x3E9, 2, U16, "GenericSensor10", 1.0, 0.0),
        at(0x3E9, 4, U16, "TargetLambda", 0.001, 0.0),
        at(0x3E9, 7, S8, "TorqueManagementKnob", 1.0, 0.0),
    ]);
    fields.extend(flags(
        0x3E9,
        6,
        &[
            (7, "NitrousStage1Output"),
            (6, "NitrousStage2Output"),
            (5, "NitrousStage3Output"),
            (4, "NitrousStage4Output"),
            (3, "NitrousStage5Output"),
            (2, "NitrousStage6Output"),
            (1, "WaterInjectionOutput"),
        ],
    ));
    fields.extend([
        at(0x3EA, 0, U16, "GearboxLinePressure", 0.1, GAUGE),
        at(0x3EA, 2, U16, "InjStage3Duty", 0.1, 0.0),
        at(0x3EA, 4, U16, "InjStage4Duty", 0.1, 0.0),
        at(0x3EA, 6, U16, "CrankcasePressure", 0.1, GAUGE),
        at(0x3EB, 0, U32, "RaceTimer", 1.0, 0.0),
        at(0x3EB, 4, S16, "IgnitionAngleBank1", 0.1, 0.0),
        at(0x3EB, 6, S16, "IgnitionAngleBank2", 0.1, 0.0),
        at(0x3EC, 0, S16, "TmDriveshaftRpmTarget", 1.0, 0.0),
        at(0x3EC, 2, S16, "TmDriveshaftRpmError", 1.0, 0.0),
        at(0x3EC, 4, S16, "TmErrorIgnCorrection", 0.1, 0.0),
        at(0x3EC, 6, S16, "TmTimedIgnCorrection", 0.1, 0.0),
        at(0x3ED, 0, S16, "TmCombinedIgnCorrection", 0.1, 0.0),
    ]);
    fields
}

fn haltech_chassis() -> Vec<Field> {
    let mut fields = words(
        0x3EE,
        U16,
        0.001,
        0.0,
        ["Wideband5", "Wideband6", "Wideband7", "Wideband8"],
    );
    fields.extend(words(
        0x3EF,
        U16,
        0.001,
        0.0,
        ["Wideband9", "Wideband10", "Wideband11", "Wideband12"],
    ));
    fields.extend(words(
        0x3F0,
        U16,
        0.1,
        0.0,
        [
            "ShockTravelUncalFL",
            "ShockTravelUncalFR",
            "ShockTravelUncalRL",
            "ShockTravelUncalRR",
        ],
    ));
    fields.extend(words(
        0x3F1,
        S16,
        0.1,
        0.0,
        [
            "ShockTravelFL",
            "ShockTravelFR",
            "ShockTravelRL",
            "ShockTravelRR",
        ],
    ));
    fields.extend(words(
        0x3F2,
        S16,
        0.1,
        0.0,
        [
            "RideHeightFront",
            "RideHeightFrontUncal",
            "RideHeightFrontRate",
            "",
        ],
    ));
    fields.extend(words(
        0x3F3,
        S16,
        0.1,
        0.0,
        [
            "RideHeightRear",
            "RideHeightRearUncal",
            "RideHeightRearRate",
            "",
        ],
    ));
    fields.extend([
        at(0x469, 0, U16, "EcuTemp", 0.1, KELVIN),
        at(0x469, 4, U16, "OilLevel", 0.1, 0.0),
    ]);
    fields
}

fn haltech_470s() -> Vec<Field> {
    let mut fields = words(
        0x470,
        U16,
        0.001,
        0.0,
        ["WidebandOverall", "WidebandBank1", "WidebandBank2", ""],
    );
    fields.extend([
        at(0x470, 6, S8, "GearSelector", 1.0, 0.0),
        at(0x470, 7, S8, "Gear", 1.0, 0.0),
        at(0x471, 0, S16, "InjectorDiffPressure", 0.1, 0.0),
        at(0x471, 2, U16, "AcceleratorPedal", 0.1, 0.0),
        at(0x471, 4, U16, "ExhaustManifoldPressure", 0.1, 0.0),
        at(0x472, 0, U16, "CruiseTargetSpeed", 0.1, 0.0),
        at(0x472, 2, U16, "CruiseLastTargetSpeed", 0.1, 0.0),
        at(0x472, 4, S16, "CruiseSpeedError", 0.1, 0.0),
        at(0x472, 6, Bits { bit: 7, len: 4 }, "CruiseState", 1.0, 0.0),
        at(
            0x472,
            6,
            Bits { bit: 3, len: 12 },
            "CruiseInputState",
            1.0,
            0.0,
        ),
        at(0x473, 0, U32, "TotalFuelUsed", 1.0, 0.0),
    ]);
    fields.extend(flags(
        0x473,
        4,
        &[
            (7, "RollingAntilagSwitch"),
            (6, "AntilagSwitch"),
            (5, "AntilagOutput"),
            (4, "TractionControlSwitch"),
            (3, "PrimaryFuelPumpOutput"),
            (2, "AuxFuelPump1Output"),
            (1, "AuxFuelPump2Output"),
            (0, "AuxFuelPump3Output"),
        ],
    ));
    fields.extend(flags(
        0x473,
        5,
        &[
            (7, "Nitrous1EnableSwitch"),
            (6, "Nitrous1EnableOutput"),
            (5, "Nitrous2EnableSwitch"),
            (4, "Nitrous2EnableOutput"),
            (3, "Nitrous3EnableSwitch"),
            (2, "Nitrous3EnableOutput"),
            (1, "Nitrous4EnableSwitch"),
            (0, "Nitrous4EnableOutput"),
        ],
    ));
    fields.extend(flags(
        0x473,
        6,
        &[
            (7, "NitrousOverride1Switch"),
            (6, "NitrousOverride1Output"),
            (5, "NitrousOverride2Switch"),
            (4, "NitrousOverride2Output"),
            (3, "NitrousOverride3Switch"),
            (2, "NitrousOverride3Output"),
            (1, "NitrousOverride4Switch"),
            (0, "NitrousOverride4Output"),
        ],
    ));
    fields.extend(flags(
        0x473,
        7,
        &[
            (7, "WaterInjectionEnableSwitch"),
            (6, "WaterInjectionEnableOutput"),
            (5, "WaterInjectionOverrideSwitch"),
            (4, "WaterInjectionOverrideOutput"),
        ],
    ));
    fields.push(at(
        0x473,
        7,
        Bits { bit: 3, len: 4 },
        "CutPercentageMethod",
        1.0,
        0.0,
    ));
    fields.push(at(0x474, 0, S16, "VerticalG", 0.1, 0.0));
    fields.extend(words(
        0x474,
        S16,
        0.1,
        0.0,
        ["", "PitchRate", "RollRate", "YawRate"],
    ));
    fields.extend(words(
        0x475,
        U16,
        0.1,
        0.0,
        [
            "FuelPumpDutyPrimary",
            "FuelPumpDutyAux1",
            "FuelPumpDutyAux2",
            "FuelPumpDutyAux3",
        ],
    ));
    fields.extend([
        at(0x476, 0, U16, "BrakePressureRear", 1.0, GAUGE),
        at(0x476, 2, U16, "BrakePressureFrontRatio", 0.1, 0.0),
        at(0x476, 4, U16, "BrakePressureRearRatio", 0.1, 0.0),
        at(0x476, 6, S16, "BrakePressureDifference", 1.0, 0.0),
        at(0x477, 0, U16, "EngineLimiterMaxRpm", 1.0, 0.0),
        at(0x477, 2, U16, "CutPercentage", 0.1, 0.0),
        at(0x477, 4, U8, "EngineLimiterFunction", 1.0, 0.0),
        at(0x477, 5, U8, "RpmLimiterFunction", 1.0, 0.0),
        at(0x477, 6, U8, "CutPercentageFunction", 1.0, 0.0),
        at(
            0x477,
            7,
            Bits { bit: 7, len: 4 },
            "EngineLimiterMethod",
            1.0,
            0.0,
        ),
        at(
            0x477,
            7,
            Bits { bit: 3, len: 4 },
            "RpmLimiterMethod",
            1.0,
            0.0,
        ),
    ]);
    fields
}

fn haltech_6fx() -> Vec<Field> {
    let mut fields = words(
        0x6F0,
        U16,
        0.1,
        GAUGE,
        [
            "TyrePressureFL",
            "TyrePressureFR",
            "TyrePressureRL",
            "TyrePressureRR",
        ],
    );
    fields.extend(words(
        0x6F1,
        U16,
        0.1,
        KELVIN,
        ["TyreTempFL", "TyreTempFR", "TyreTempRL", "TyreTempRR"],
    ));
    fields.extend(words(
        0x6F2,
        U16,
        0.001,
        0.0,
        [
            "TyreBatteryFL",
            "TyreBatteryFR",
            "TyreBatteryRL",
            "TyreBatteryRR",
        ],
    ));
    fields.extend(words(
        0x6F3,
        U16,
        0.1,
        GAUGE,
        ["TyrePressureTargetFront", "TyrePressureTargetRear", "", ""],
    ));
    fields.extend(flags(
        0x6F3,
        4,
        &[
            (0, "TyreLeakFL"),
            (1, "TyreLeakFR"),
            (2, "TyreLeakRL"),
            (3, "TyreLeakRR"),
        ],
    ));
    fields.extend([
        at(0x6F3, 5, U8, "EngineProtectionLevel", 1.0, 0.0),
        at(0x6F3, 6, U16, "EngineProtectionReason", 1.0, 0.0),
    ]);
    fields.extend(flags(
        0x6F4,
        0,
        &[
            (0, "ParkLights"),
            (1, "HeadLights"),
            (2, "HighBeam"),
            (3, "LeftIndicator"),
            (4, "RightIndicator"),
        ],
    ));
    fields.extend([
        at(0x6F4, 1, Bits { bit: 3, len: 4 }, "EngineState", 1.0, 0.0),
        at(0x6F6, 0, S32, "TripFuelUsed", 1.0, 0.0),
        at(0x6F6, 4, S32, "TripMeter1", 1.0, 0.0),
        at(0x6F7, 0, U32, "GenericOutputStates", 1.0, 0.0),
        at(0x6F7, 4, U16, "CalculatedAirTemp", 0.1, KELVIN),
        at(0x6F7, 6, U16, "WaterInjectionDuty", 0.1, 0.0),
        at(0x6F8, 0, S8, "ExhaustCutoutState", 1.0, 0.0),
        at(0x6F8, 1, S8, "NitrousBottleOpenerState", 1.0, 0.0),
        at(0x6F8, 2, S8, "OpenLoopMotor1State", 1.0, 0.0),
        at(0x6F8, 3, S8, "OpenLoopMotor2State", 1.0, 0.0),
        at(0x6F8, 4, S8, "OpenLoopMotor3State", 1.0, 0.0),
        at(0x6F8, 6, U16, "FuelLevelTank0", 0.1, 0.0),
        at(0x6F9, 0, U16, "FuelLevelTank1", 0.1, 0.0),
    ]);
    fields.extend(words(
        0x6FF,
        S16,
        0.1,
        GAUGE,
        [
            "TorqueConverterPressure",
            "TransferCasePressure",
            "AcPressure",
            "",
        ],
    ));
    fields.extend([
        at(0x6FF, 6, S16, "PowerSteeringPressure", 0.01, GAUGE),
        at(0x701, 0, U16, "AverageFuelEconomy", 0.1, 0.0),
        at(0x701, 2, U16, "InstantFuelEconomy", 0.1, 0.0),
        at(0x701, 4, S16, "AcTemp", 0.1, KELVIN),
    ]);
    fields
}
