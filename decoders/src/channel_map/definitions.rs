//! Frame definitions inside a car's channel map: selecting, renaming and overriding their
//! fields with the map's rules, compiling them into the map's parameter and format index space,
//! and decoding their frames (whole, from a source, or reassembled from CAN).

use std::collections::{HashMap, HashSet};

use super::{CanOutcome, ChannelMap, ChannelMapError, Format, Selection, is_selected};
use crate::can::{CanFrame, CanId};
use crate::error::DecodeError;
use crate::frame::{self, CompoundAssembler, CompoundStats, FrameDefinition, FramePlan};
use crate::sample::RowBatch;

/// A frame definition the car uses, and whether it also arrives as compound messages on a CAN
/// id (reassembled from that id's frames instead of decoded by the DBC).
#[derive(Debug, Clone, Copy)]
pub struct DefinitionUse<'a> {
    /// The validated definition.
    pub definition: &'a FrameDefinition,
    /// The CAN id carrying it as a compound message, if any.
    pub can_id: Option<CanId>,
}

/// Whether any definition has a message `message` with a field `field` (before selection).
pub(super) fn has_field(definitions: &[DefinitionUse<'_>], message: &str, field: &str) -> bool {
    definitions.iter().any(|used| {
        used.definition
            .messages
            .iter()
            .any(|m| m.name == message && m.fields.iter().any(|f| f.name == field))
    })
}

impl ChannelMap {
    /// Field names (after renames) that more than one of `definitions` publishes, such as the
    /// same layout of two game years: [`ChannelMap::attach`] prefixes them with each
    /// definition's own application name, so both load and their parameters stay distinct.
    pub(super) fn shared_field_names(
        &self,
        definitions: &[DefinitionUse<'_>],
        selection: &Selection,
    ) -> Result<HashSet<String>, ChannelMapError> {
        let mut owners: HashMap<String, usize> = HashMap::new();
        for used in definitions {
            let selected = self.select_fields(used.definition, selection)?;
            let names: HashSet<String> = selected
                .messages
                .into_iter()
                .flat_map(|message| message.fields)
                .map(|field| field.name)
                .collect();
            for name in names {
                *owners.entry(name).or_insert(0) += 1;
            }
        }
        Ok(owners
            .into_iter()
            .filter(|(_, count)| *count > 1)
            .map(|(name, _)| name)
            .collect())
    }

    /// Adds `used` to the map: its selected fields become parameters (after the DBC ones) and
    /// its messages formats; `seen` holds every identifier so far, to catch collisions, and
    /// `shared` the field names another definition publishes too (prefixed, see
    /// [`ChannelMap::shared_field_names`]).
    pub(super) fn attach(
        &mut self,
        used: &DefinitionUse<'_>,
        selection: &Selection,
        shared: &HashSet<String>,
        seen: &mut HashMap<String, String>,
    ) -> Result<(), ChannelMapError> {
        let name = used.definition.name.clone();
        if self.definitions.iter().any(|plan| plan.name() == name) {
            return Err(ChannelMapError::DuplicateDefinition(name));
        }
        let mut selected = self.select_fields(used.definition, selection)?;
        let prefix = used.definition.application.trim();
        for field in selected.messages.iter_mut().flat_map(|m| &mut m.fields) {
            if shared.contains(&field.name) {
                field.name = format!("{prefix}_{}", field.name);
            }
        }
        let format_base = self.formats.len() as u32;
        let plan = FramePlan::compile(&selected)
            .map_err(|error| ChannelMapError::BadDefinition {
                definition: name.clone(),
                reason: error.message,
            })?
            .with_format_base(format_base);
        let parameter_base = self.parameters.len() as u32;
        for parameter in plan.parameters() {
            let key = format!("{name}: {}.{}", parameter.message, parameter.signal);
            if let Some(first) = seen.insert(parameter.identifier.clone(), key.clone()) {
                return Err(ChannelMapError::DuplicateIdentifier {
                    identifier: parameter.identifier.clone(),
                    first,
                    second: key,
                });
            }
            self.parameters.push(parameter.clone());
        }
        for index in 0..plan.format_count() as u32 {
            if let Some(format) = plan.format(index) {
                self.formats.push(Format {
                    message: format.message.clone(),
                    parameters: format
                        .parameters
                        .iter()
                        .map(|p| p + parameter_base)
                        .collect(),
                });
            }
        }
        if let Some(can_id) = used.can_id {
            let assembler = CompoundAssembler::new(plan.framing()).map_err(|error| {
                ChannelMapError::NotCompound {
                    definition: name.clone(),
                    can_id: format!("{can_id:?}"),
                    reason: error.to_string(),
                }
            })?;
            self.compound
                .push((can_id, self.definitions.len(), assembler));
        }
        self.definitions.push(plan);
        Ok(())
    }

    /// `definition` with only the selected fields, renamed and overridden, under the car's
    /// application name; messages left without fields are dropped (their frames then count as
    /// unknown messages).
    fn select_fields(
        &self,
        definition: &FrameDefinition,
        selection: &Selection,
    ) -> Result<FrameDefinition, ChannelMapError> {
        let mut selected = definition.clone();
        selected.application.clone_from(&self.application);
        for message in &mut selected.messages {
            message
                .fields
                .retain(|field| is_selected(selection, &message.name, &field.name));
            for field in &mut message.fields {
                let key = format!("{}.{}", message.name, field.name);
                if let Some((_, name)) = selection.renames.iter().find(|(k, _)| *k == key) {
                    field.name = name.trim().to_owned();
                }
                if field.name.is_empty() || field.name.contains(':') {
                    let name = field.name.clone();
                    return Err(ChannelMapError::BadName { name, signal: key });
                }
                if let Some((_, over)) = selection.overrides.iter().find(|(k, _)| *k == key) {
                    if let Some(unit) = &over.unit {
                        field.unit.clone_from(unit);
                    }
                    if let Some(description) = &over.description {
                        field.description.clone_from(description);
                    }
                    field.min = over.min.unwrap_or(field.min);
                    field.max = over.max.unwrap_or(field.max);
                    if field.max <= field.min {
                        field.max = field.min + 1.0;
                    }
                }
            }
        }
        selected
            .messages
            .retain(|message| !message.fields.is_empty());
        Ok(selected)
    }

    /// The compiled frame definitions, in configuration order.
    pub fn definitions(&self) -> &[FramePlan] {
        &self.definitions
    }

    /// The index of the definition called `name`, for [`ChannelMap::decode_definition`].
    pub fn definition_index(&self, name: &str) -> Option<usize> {
        self.definitions.iter().position(|plan| plan.name() == name)
    }

    /// Decodes one whole frame of definition `index` received at `time_ns` into a row of `out`.
    /// An index the map does not have reads as an unknown message.
    pub fn decode_definition(
        &self,
        index: usize,
        time_ns: u64,
        bytes: &[u8],
        out: &mut RowBatch,
    ) -> Result<frame::NativeOutcome, DecodeError> {
        match self.definitions.get(index) {
            Some(plan) => plan.decode(time_ns, bytes, out),
            None => Ok(frame::NativeOutcome::Unknown { id: 0 }),
        }
    }

    /// Reassembly counters summed over every definition carried on CAN.
    pub fn compound_stats(&self) -> CompoundStats {
        self.compound
            .iter()
            .fold(CompoundStats::default(), |sum, (_, _, assembler)| {
                let one = assembler.stats();
                CompoundStats {
                    messages: sum.messages + one.messages,
                    incomplete: sum.incomplete + one.incomplete,
                    check_failures: sum.check_failures + one.check_failures,
                    bad_lengths: sum.bad_lengths + one.bad_lengths,
                    stray_frames: sum.stray_frames + one.stray_frames,
                }
            })
    }

    /// Feeds `frame` to the compound message its id carries; `None` if the id carries none.
    pub(super) fn decode_compound(
        &mut self,
        time_ns: u64,
        frame: &CanFrame,
        out: &mut RowBatch,
    ) -> Option<CanOutcome> {
        let (_, definition, assembler) = self
            .compound
            .iter_mut()
            .find(|(id, _, _)| *id == frame.id)?;
        let Some(message) = assembler.handle_frame(frame.data()) else {
            return Some(CanOutcome::Assembling);
        };
        let plan = &self.definitions[*definition];
        Some(match plan.decode(time_ns, message, out) {
            Ok(frame::NativeOutcome::Decoded { samples, .. }) => CanOutcome::Decoded {
                samples,
                short: false,
            },
            Ok(frame::NativeOutcome::Unknown { .. }) => CanOutcome::Unknown,
            Err(error) => CanOutcome::Invalid(error),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CanFlags;
    use crate::channel_map::Override;
    use crate::dbc::parse_dbc;

    const DEFINITION: &str = r#"
[frame]
name = "ecu"
application = "Ignored"
endian = "big"
sync = [0xAA]
max_length = 16

[frame.length]
offset = 1
type = "u8"
counts = "frame_bytes"

[frame.message_id]
offset = 2
type = "u8"

[[message]]
name = "Engine"
id = 1
length = 7

[[message.field]]
name = "rpm"
offset = 3
type = "u16"
unit = "rpm"
max = 12000

[[message.field]]
name = "oil"
offset = 5
type = "u16"
scale = 0.1

[[message]]
name = "Spare"
id = 2
length = 4

[[message.field]]
name = "spare"
offset = 3
type = "u8"
"#;

    const DBC: &str = "BO_ 256 ENGINE: 8 ECU\n SG_ RPM : 0|16@1+ (1,0) [0|0] \"rpm\" X\n";

    fn definition() -> FrameDefinition {
        FrameDefinition::parse("ecu.toml", DEFINITION).expect("valid")
    }

    fn selection() -> Selection {
        Selection {
            application: "Car".into(),
            ..Selection::default()
        }
    }

    fn compile(
        definition: &FrameDefinition,
        can_id: Option<CanId>,
        selection: &Selection,
    ) -> Result<ChannelMap, ChannelMapError> {
        let dbc = parse_dbc("car.dbc", DBC).expect("parses").dbc;
        let used = DefinitionUse { definition, can_id };
        ChannelMap::compile_with(&dbc, &[used], selection)
    }

    #[test]
    fn fields_join_the_dbc_parameters_under_the_car_application() {
        let map = compile(&definition(), None, &selection()).expect("compiles");
        let identifiers: Vec<_> = map.parameters().iter().map(|p| &p.identifier).collect();
        assert_eq!(identifiers, ["RPM:Car", "rpm:Car", "oil:Car", "spare:Car"]);
        // The DBC message is format 0; the definition's two messages follow.
        assert_eq!(map.format_count(), 3);
        assert_eq!(
            map.format(1).map(|f| f.parameters.clone()),
            Some(vec![1, 2])
        );
        assert_eq!(map.format(2).map(|f| f.message.as_str()), Some("Spare"));

        let index = map.definition_index("ecu").expect("known");
        let mut rows = RowBatch::new();
        let frame = [0xAA, 7, 1, 0x1F, 0x40, 0x03, 0x84];
        let outcome = map.decode_definition(index, 42, &frame, &mut rows);
        assert_eq!(
            outcome,
            Ok(frame::NativeOutcome::Decoded {
                message: 0,
                samples: 2
            })
        );
        let (header, values) = rows.row(0).expect("one row");
        assert_eq!((header.time_ns, header.format), (42, 1));
        assert_eq!(values, [8000.0, 90.0]);
        assert_eq!(map.definition_index("other"), None);
    }

    #[test]
    fn selection_renames_and_overrides_apply_to_fields() {
        let selection = Selection {
            exclude: vec!["Spare".into(), "Engine.oil".into()],
            renames: vec![("Engine.rpm".into(), "EngineSpeed".into())],
            overrides: vec![(
                "Engine.rpm".into(),
                Override {
                    unit: Some("1/min".into()),
                    max: Some(9000.0),
                    ..Override::default()
                },
            )],
            ..selection()
        };
        let map = compile(&definition(), None, &selection).expect("compiles");
        let last = map.parameters().last().expect("parameters");
        assert_eq!(last.identifier, "EngineSpeed:Car");
        assert_eq!((last.unit.as_str(), last.max), ("1/min", 9000.0));
        assert_eq!(map.parameters().len(), 2);
        // Spare lost all its fields: its frames are unknown messages, never empty rows.
        let mut rows = RowBatch::new();
        let spare = [0xAA, 4, 2, 9];
        let outcome = map.decode_definition(0, 1, &spare, &mut rows);
        assert_eq!(outcome, Ok(frame::NativeOutcome::Unknown { id: 2 }));
        assert!(rows.is_empty());
    }

    #[test]
    fn collisions_and_unknown_keys_are_named() {
        let clash = Selection {
            renames: vec![("Engine.rpm".into(), "RPM".into())],
            ..selection()
        };
        let error = compile(&definition(), None, &clash).expect_err("clash");
        assert_eq!(
            error.to_string(),
            "ENGINE.RPM and ecu: Engine.RPM would both publish as \"RPM:Car\": rename one of them"
        );
        let unknown = Selection {
            renames: vec![("Engine.boost".into(), "Boost".into())],
            ..selection()
        };
        let error = compile(&definition(), None, &unknown).expect_err("unknown");
        assert!(
            matches!(error, ChannelMapError::UnknownSignal { .. }),
            "{error}"
        );

        let dbc = parse_dbc("car.dbc", DBC).expect("parses").dbc;
        let definition = definition();
        let twice = [None, None].map(|can_id| DefinitionUse {
            definition: &definition,
            can_id,
        });
        let error = ChannelMap::compile_with(&dbc, &twice, &selection()).expect_err("twice");
        assert_eq!(error, ChannelMapError::DuplicateDefinition("ecu".into()));
    }

    #[test]
    fn a_map_of_definitions_only_needs_no_dbc() {
        let dbc = crate::dbc::Dbc::default();
        let definition = definition();
        let used = DefinitionUse {
            definition: &definition,
            can_id: None,
        };
        let map = ChannelMap::compile_with(&dbc, &[used], &selection()).expect("compiles");
        assert_eq!(map.parameters().len(), 3);
        assert_eq!(map.format(0).map(|f| f.message.as_str()), Some("Engine"));
        let error = ChannelMap::compile_with(&dbc, &[], &selection()).expect_err("empty");
        assert_eq!(error, ChannelMapError::NothingSelected);
    }

    #[test]
    fn compound_messages_on_can_reassemble_before_the_dbc_sees_the_id() {
        let id = CanId::standard(0x100).expect("valid");
        let mut map = compile(&definition(), Some(id), &selection()).expect("compiles");
        let can = |data: &[u8]| CanFrame::new(id, CanFlags::empty(), data).expect("classic");
        let mut rows = RowBatch::new();
        let first = map.decode(5, &can(&[0xAA, 7, 1, 0x1F]), &mut rows);
        assert_eq!(first, CanOutcome::Assembling);
        let last = map.decode(6, &can(&[0x40, 0x03, 0x84]), &mut rows);
        assert_eq!(
            last,
            CanOutcome::Decoded {
                samples: 2,
                short: false
            }
        );
        let (header, values) = rows.row(0).expect("one row");
        assert_eq!((header.time_ns, header.format), (6, 1));
        assert_eq!(values, [8000.0, 90.0]);
        // A stray continuation frame is counted by the assembler, not decoded by the DBC.
        assert_eq!(
            map.decode(7, &can(&[1, 2]), &mut rows),
            CanOutcome::Assembling
        );
        let stats = map.compound_stats();
        assert_eq!((stats.messages, stats.stray_frames), (1, 1));
        assert_eq!(rows.len(), 1);
    }
}
