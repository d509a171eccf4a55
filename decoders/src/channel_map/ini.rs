//! TunerStudio output channels inside a car's channel map: the realtime block of a polled
//! serial ECU is one message whose selected channels become parameters (units and display
//! ranges from the INI), selected, renamed and overridden by the map's rules, keyed
//! `Message.channel` like DBC signals and definition fields, and decoded into one row per block.
//!
//! The message name is the caller's (`OutputChannels`, the INI section, unless a car polls two
//! ECUs and needs two names), so keys read `OutputChannels.rpm` and the parameters of one block
//! share that subgroup.

use std::collections::HashMap;

use super::{
    ChannelMap, ChannelMapError, Format, Override, Parameter, Selection, decimals, presentation,
};
use crate::error::DecodeError;
use crate::frame::NativeOutcome;
use crate::ini::{Channel, ChannelKind, OutputChannels};
use crate::sample::RowBatch;

/// The output channels of one polled ECU, and the message name they publish under.
#[derive(Debug, Clone, Copy)]
pub struct IniUse<'a> {
    /// Message (subgroup) name and the first part of selection keys; `OutputChannels` unless a
    /// car polls several ECUs.
    pub message: &'a str,
    /// The loaded `[OutputChannels]`.
    pub channels: &'a OutputChannels,
}

/// One INI block compiled into the map.
#[derive(Debug, Clone)]
pub(super) struct IniPlan {
    message: String,
    channels: OutputChannels,
    /// Slots of the selected channels, in row order.
    selected: Vec<usize>,
    format: u32,
    /// Every channel's value for the block being decoded (computed ones read the others),
    /// reused so decoding allocates nothing.
    scratch: Vec<f64>,
}

/// Whether any INI use has a message `message` with a channel `channel` (before selection).
pub(super) fn has_channel(inis: &[IniUse<'_>], message: &str, channel: &str) -> bool {
    inis.iter()
        .any(|used| used.message == message && used.channels.slot(channel).is_some())
}

impl ChannelMap {
    /// Adds `used` to the map: its selected channels become parameters and its block one
    /// format; `seen` holds every identifier so far, to catch collisions.
    pub(super) fn attach_ini(
        &mut self,
        used: &IniUse<'_>,
        selection: &Selection,
        seen: &mut HashMap<String, String>,
    ) -> Result<(), ChannelMapError> {
        let message = used.message.to_owned();
        if self.inis.iter().any(|plan| plan.message == message) {
            return Err(ChannelMapError::DuplicateIniMessage(message));
        }
        let mut selected = Vec::new();
        let mut parameters = Vec::new();
        for (slot, channel) in used.channels.channels().iter().enumerate() {
            if !super::is_selected(selection, &message, &channel.name) {
                continue;
            }
            let parameter = self.ini_parameter(&message, channel, selection)?;
            let key = format!("{message}.{}", channel.name);
            if let Some(first) = seen.insert(parameter.identifier.clone(), key.clone()) {
                return Err(ChannelMapError::DuplicateIdentifier {
                    identifier: parameter.identifier,
                    first,
                    second: key,
                });
            }
            selected.push(slot);
            parameters.push(self.parameters.len() as u32);
            self.parameters.push(parameter);
        }
        if selected.is_empty() {
            return Ok(());
        }
        let format = self.formats.len() as u32;
        self.formats.push(Format {
            message: message.clone(),
            parameters,
        });
        self.inis.push(IniPlan {
            message,
            channels: used.channels.clone(),
            selected,
            format,
            scratch: vec![0.0; used.channels.channels().len()],
        });
        Ok(())
    }

    fn ini_parameter(
        &self,
        message: &str,
        channel: &Channel,
        selection: &Selection,
    ) -> Result<Parameter, ChannelMapError> {
        let key = format!("{message}.{}", channel.name);
        let name = match selection.renames.iter().find(|(k, _)| *k == key) {
            Some((_, name)) => name.trim().to_owned(),
            None => channel.name.clone(),
        };
        if name.is_empty() || name.contains(':') {
            return Err(ChannelMapError::BadName { name, signal: key });
        }
        let range = channel.display_range().unwrap_or((0.0, 1.0));
        let (over, min, max) = presentation(selection, &key, range);
        let scale = match channel.kind {
            ChannelKind::Scalar { scale, .. } => scale,
            ChannelKind::Bits { .. } => 1.0,
            // Computed values are rarely whole numbers; two places suit most gauges.
            ChannelKind::Computed { .. } => 0.01,
        };
        let Override {
            unit, description, ..
        } = over;
        Ok(Parameter {
            identifier: format!("{name}:{}", self.application),
            name,
            message: message.to_owned(),
            signal: channel.name.clone(),
            unit: unit.unwrap_or_else(|| channel.unit.clone()),
            description: description.unwrap_or_default(),
            min,
            max,
            decimals: decimals(scale),
            frequency_hz: None,
            value_descriptions: Vec::new(),
        })
    }

    /// The index of the INI block published as `message`, for [`ChannelMap::decode_ini`].
    pub fn ini_index(&self, message: &str) -> Option<usize> {
        self.inis.iter().position(|plan| plan.message == message)
    }

    /// The realtime block size (`ochBlockSize`) of INI use `index`.
    pub fn ini_block_size(&self, index: usize) -> Option<usize> {
        self.inis.get(index).map(|plan| plan.channels.block_size)
    }

    /// Decodes one whole realtime block of INI use `index`, received at `time_ns` (also what
    /// `timeNow` reads, in seconds), into a row of `out`. An index the map does not have reads
    /// as an unknown message; a block shorter than `ochBlockSize` is an error and adds no row.
    pub fn decode_ini(
        &mut self,
        index: usize,
        time_ns: u64,
        block: &[u8],
        out: &mut RowBatch,
    ) -> Result<NativeOutcome, DecodeError> {
        let Some(plan) = self.inis.get_mut(index) else {
            return Ok(NativeOutcome::Unknown { id: 0 });
        };
        let time_s = time_ns as f64 / 1e9;
        plan.channels.decode(block, time_s, &mut plan.scratch)?;
        out.begin_row(time_ns, plan.format);
        for slot in &plan.selected {
            out.push_value(plan.scratch.get(*slot).copied().unwrap_or(f64::NAN));
        }
        Ok(NativeOutcome::Decoded {
            message: 0,
            samples: plan.selected.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel_map::Override;
    use crate::dbc::Dbc;
    use crate::ini::IniFile;
    use std::sync::LazyLock;

    static INI: &str = "[Constants]\nendianness = little\n[OutputChannels]\nochBlockSize = 4\n\
        rpm = scalar, U16, 0, \"rpm\", 1, 0\nclt = scalar, U08, 2, \"C\", 1, -40\n\
        sync = bits, U08, 3, [7:7]\nrevTime = { rpm ? 60000 / rpm : 0 }, \"ms\"\n\
        [GaugeConfigurations]\ncltGauge = clt, \"Coolant\", \"C\", -40, 120, 0, 0, 0, 0, 0, 0\n";

    /// rpm 3000, clt raw 130 → 90 °C, sync set.
    static BLOCK: [u8; 4] = [0xB8, 0x0B, 130, 0x80];

    static CHANNELS: LazyLock<OutputChannels> = LazyLock::new(|| {
        IniFile::parse("t.ini", INI, &[])
            .expect("valid")
            .0
            .output_channels
    });

    fn uses() -> [IniUse<'static>; 1] {
        [IniUse {
            message: "OutputChannels",
            channels: &CHANNELS,
        }]
    }

    fn selection() -> Selection {
        Selection {
            application: "Car".into(),
            exclude: vec!["OutputChannels.sync".into()],
            renames: vec![("OutputChannels.rpm".into(), "EngineSpeed".into())],
            overrides: vec![(
                "OutputChannels.revTime".into(),
                Override {
                    max: Some(100.0),
                    ..Override::default()
                },
            )],
            ..Selection::default()
        }
    }

    #[test]
    fn channels_join_the_map_and_decode_one_row_per_block() {
        let inis = uses();
        let mut map =
            ChannelMap::compile_all(&Dbc::default(), &[], &inis, &selection()).expect("compiles");
        let names: Vec<&str> = map
            .parameters()
            .iter()
            .map(|p| p.identifier.as_str())
            .collect();
        assert_eq!(names, ["EngineSpeed:Car", "clt:Car", "revTime:Car"]);
        let clt = &map.parameters()[1];
        assert_eq!((clt.unit.as_str(), clt.min, clt.max), ("C", -40.0, 120.0));
        assert_eq!(
            (map.parameters()[2].min, map.parameters()[2].max),
            (0.0, 100.0)
        );
        let index = map.ini_index("OutputChannels").expect("attached");
        let mut out = RowBatch::new();
        let outcome = map.decode_ini(index, 2_000_000_000, &BLOCK, &mut out);
        assert_eq!(
            outcome,
            Ok(NativeOutcome::Decoded {
                message: 0,
                samples: 3
            })
        );
        let (header, values) = out.row(0).expect("one row");
        assert_eq!(header.time_ns, 2_000_000_000);
        assert_eq!(
            map.format(header.format).map(|f| f.message.as_str()),
            Some("OutputChannels")
        );
        assert_eq!(values, [3000.0, 90.0, 20.0]);
    }

    #[test]
    fn short_blocks_unknown_indexes_and_bad_keys() {
        let inis = uses();
        let mut map =
            ChannelMap::compile_all(&Dbc::default(), &[], &inis, &selection()).expect("compiles");
        let mut out = RowBatch::new();
        assert!(map.decode_ini(0, 0, &BLOCK[..3], &mut out).is_err());
        assert_eq!(
            map.decode_ini(7, 0, &BLOCK, &mut out),
            Ok(NativeOutcome::Unknown { id: 0 })
        );
        assert!(out.is_empty());
        let mut bad = selection();
        bad.renames.push(("OutputChannels.nope".into(), "x".into()));
        let error = ChannelMap::compile_all(&Dbc::default(), &[], &inis, &bad);
        assert!(matches!(error, Err(ChannelMapError::UnknownSignal { .. })));
        let twice = [inis[0], inis[0]];
        let error = ChannelMap::compile_all(&Dbc::default(), &[], &twice, &selection());
        assert!(matches!(
            error,
            Err(ChannelMapError::DuplicateIniMessage(_))
        ));
    }
}
