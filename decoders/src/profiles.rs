//! Built-in ECU profiles: the DBC channel maps in the repository's `profiles/` folder, compiled
//! into the crate so a car can name its ECU's broadcast instead of shipping a DBC file.
//!
//! This module owns only the table; it never parses. The caller feeds [`Profile::dbc`] to
//! [`crate::dbc::parse_dbc`] under the name [`Profile::dbc_file`], exactly as if the text had
//! been read from disk, so warnings and errors name the same file a user would copy.
//! Invariants (checked by `decoders/tests/profiles.rs`): names are unique kebab-case, every DBC
//! loads without warnings, and every [`Alternative`] names a profile of this table.

/// One built-in profile: an ECU family's CAN broadcast as a DBC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    /// Kebab-case name a car configuration selects the profile by.
    pub name: &'static str,
    /// Human title: vendor, ECUs and stream name.
    pub title: &'static str,
    /// File name under `profiles/`; used as the DBC name in warnings and when copied out.
    pub dbc_file: &'static str,
    /// The DBC text.
    pub dbc: &'static str,
    /// The bus bit rate the stream uses when it is fixed or has a firm default; `None` when
    /// the user sets it on the ECU and sources show more than one value.
    pub bus_bitrate: Option<u32>,
    /// One line: how much of the published stream the DBC covers.
    pub coverage: &'static str,
    /// What to check before trusting the profile on a car (ids, settings, known doubts).
    pub notes: &'static str,
}

/// A small DBC that replaces some messages of a profile where public sources disagree in a
/// way an `[car.override]` (unit, limits, description) cannot express.
///
/// Load it *before* the profile's DBC: the loader keeps the first definition of a message id
/// and drops the later one with a `Duplicate` warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alternative {
    /// Kebab-case name.
    pub name: &'static str,
    /// The [`Profile::name`] it modifies.
    pub profile: &'static str,
    /// File name under `profiles/`.
    pub dbc_file: &'static str,
    /// The DBC text.
    pub dbc: &'static str,
    /// Which reading it encodes and when to choose it.
    pub notes: &'static str,
}

/// Every built-in profile, in the order `docs/profiles.md` lists them.
pub fn all() -> &'static [Profile] {
    PROFILES
}

/// The profile called `name` (exact, kebab case).
pub fn find(name: &str) -> Option<&'static Profile> {
    PROFILES.iter().find(|profile| profile.name == name)
}

/// Every alternative DBC, for documentation and for `init`-style tooling.
pub fn alternatives() -> &'static [Alternative] {
    ALTERNATIVES
}

macro_rules! profile_dbc {
    ($file:literal) => {
        include_str!(concat!("../../profiles/", $file))
    };
}

static PROFILES: &[Profile] = &[
    Profile {
        name: "haltech-v2",
        title: "Haltech Elite / Nexus CAN broadcast V2",
        dbc_file: "haltech-v2.dbc",
        dbc: profile_dbc!("haltech-v2.dbc"),
        bus_bitrate: Some(1_000_000),
        coverage: "every frame of the v2.0 document except 0x700 (PDM data, undecoded by any source)",
        notes: "Fixed ids 0x360-0x701, big-endian. Full set needs Nexus 1.24 / Elite 3.10. \
                Older Sport-series layout of 0x362/0x369: alternative haltech-v2-fty.",
    },
    Profile {
        name: "link-generic-dash",
        title: "Link G4+/G4X/G5 Generic Dash",
        dbc_file: "link-generic-dash.dbc",
        dbc: profile_dbc!("link-generic-dash.dbc"),
        bus_bitrate: None,
        coverage: "all 14 frame indices (0-13); G4+ firmware sends 0-12",
        notes: "One id, default 1000 (0x3E8), set in PCLink with the bit rate (1 Mbit/s or \
                500 kbit/s). Little-endian, multiplexed by byte 0. No vehicle speed.",
    },
    Profile {
        name: "link-generic-dash-2",
        title: "Link Generic Dash 2 (Dash2Pro)",
        dbc_file: "link-generic-dash-2.dbc",
        dbc: profile_dbc!("link-generic-dash-2.dbc"),
        bus_bitrate: None,
        coverage: "partial: 4 frames, fields with known scaling only",
        notes: "Ids base+0..3, default base 1000 (same as Generic Dash: do not load both). \
                Big-endian. Bit rate set in PCLink (500 kbit/s seen).",
    },
    Profile {
        name: "ecumaster-emu",
        title: "ECUMaster EMU Black / EMU PRO CAN stream",
        dbc_file: "ecumaster-emu.dbc",
        dbc: profile_dbc!("ecumaster-emu.dbc"),
        bus_bitrate: None,
        coverage: "the default 8-frame stream 0x600-0x607, flags split into bits",
        notes: "Base 0x600 configurable; little-endian. EMU Black bit rate as set (500 kbit/s \
                tested), EMU PRO CAN1 fixed at 1 Mbit/s. Rates unknown.",
    },
    Profile {
        name: "rusefi",
        title: "rusEFI verbose CAN broadcast (current firmware)",
        dbc_file: "rusefi-broadcast.dbc",
        dbc: profile_dbc!("rusefi-broadcast.dbc"),
        bus_bitrate: Some(500_000),
        coverage: "all 12 frames 0x200-0x20B of can_verbose.cpp",
        notes: "Enable enableVerboseCanTx; base 0x200. If 0x204 carries AFR and VVT position \
                and 0x209-0x20B never appear, use rusefi-legacy.",
    },
    Profile {
        name: "rusefi-legacy",
        title: "rusEFI verbose CAN broadcast (legacy DBC layout)",
        dbc_file: "rusefi-broadcast-legacy.dbc",
        dbc: profile_dbc!("rusefi-broadcast-legacy.dbc"),
        bus_bitrate: Some(500_000),
        coverage: "all 9 frames 0x200-0x208 of rusEFI_CAN_verbose.dbc",
        notes: "Older firmware: 0x204 carries AFR (deprecated) and VVT position; no distance, \
                no 0x209-0x20B.",
    },
    Profile {
        name: "megasquirt-dash",
        title: "MegaSquirt simplified dash broadcast",
        dbc_file: "megasquirt-dash.dbc",
        dbc: profile_dbc!("megasquirt-dash.dbc"),
        bus_bitrate: Some(500_000),
        coverage: "all 5 frames 0x5E8-0x5EC",
        notes: "Temperatures in degF as sent. Generic sensors and VSS unit to confirm in \
                TunerStudio. Rates set in TunerStudio.",
    },
    Profile {
        name: "megasquirt-realtime",
        title: "MegaSquirt MS3 advanced realtime data broadcast",
        dbc_file: "megasquirt-realtime.dbc",
        dbc: profile_dbc!("megasquirt-realtime.dbc"),
        bus_bitrate: Some(500_000),
        coverage: "core groups 0-6, 9, 13, 14, 33, 42, 53 of 64, base 0x5F0",
        notes: "Only enabled groups are sent. Base 1520 (0x5F0); one source says 1512, which \
                would clash with the dash broadcast. Temperatures in degF.",
    },
    Profile {
        name: "aemnet",
        title: "AEM Infinity AEMnet",
        dbc_file: "aemnet.dbc",
        dbc: profile_dbc!("aemnet.dbc"),
        bus_bitrate: Some(500_000),
        coverage: "partial: core channels from 4 frames (0x01F0A000, 03, 04, 07)",
        notes: "29-bit ids. Oil temperature position disputed (byte 6 here): alternative \
                aemnet-oil-temp-byte4.",
    },
];

static ALTERNATIVES: &[Alternative] = &[
    Alternative {
        name: "haltech-v2-fty",
        profile: "haltech-v2",
        dbc_file: "haltech-v2-fty.dbc",
        dbc: profile_dbc!("haltech-v2-fty.dbc"),
        notes: "Older Sport-series layout: trailing ignition angle in 0x362 bytes 6-7, four \
                trigger counters in 0x369.",
    },
    Alternative {
        name: "aemnet-oil-temp-byte4",
        profile: "aemnet",
        dbc_file: "aemnet-oil-temp-byte4.dbc",
        dbc: profile_dbc!("aemnet-oil-temp-byte4.dbc"),
        notes: "Oil temperature in byte 4 of 0x01F0A007 (SCRCAN) instead of byte 6.",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_kebab_case_and_found() {
        for (index, profile) in all().iter().enumerate() {
            let name = profile.name;
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{name}"
            );
            assert_eq!(find(name).map(|p| p.dbc_file), Some(profile.dbc_file));
            assert!(all()[..index].iter().all(|p| p.name != name), "{name}");
            assert!(!profile.coverage.contains('\n'), "{name}: one line");
        }
        assert_eq!(find("haltech"), None);
        assert_eq!(find("HALTECH-V2"), None);
    }

    #[test]
    fn alternatives_modify_a_listed_profile() {
        for alternative in alternatives() {
            assert!(find(alternative.profile).is_some(), "{}", alternative.name);
            assert!(find(alternative.name).is_none(), "{}", alternative.name);
        }
    }
}
