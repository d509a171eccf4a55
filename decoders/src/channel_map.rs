//! A car's channel map compiled for decoding: which DBC signals become which Open Streaming
//! parameters (names, units, limits), and a dense id → message plan so that decoding a frame
//! does no string work and no allocation.
//!
//! Naming rule (stable whatever the include/exclude patterns): a signal's parameter name is
//! its signal name when no other message in the loaded DBC set has a signal of that name, and
//! `<Message>_<Signal>` otherwise; a rename in the map replaces either. The identifier is
//! `<Name>:<Application>`. Two parameters ending with the same identifier is a map error.
//!
//! Data formats: a frame's values form one row. A message without multiplexing has one format
//! (its selected signals in DBC order). A multiplexed message has one format per set of signals
//! actually present (the always-present ones plus those the switch selects), registered the first
//! time that set is seen, so rows never carry absent signals.
//!
//! Frame definitions ([`crate::frame`]) join the same map (see [`DefinitionUse`]): their fields
//! are selected, renamed and overridden by the same rules, keyed `Message.field`, published
//! under the car's application name, and given formats in the same index space, so one
//! batching and publishing path serves CAN signals and native frames alike.
//!
//! TunerStudio output channels of polled serial ECUs ([`crate::ini`]) join the same way (see
//! [`IniUse`]): one realtime block is one message and one format, keyed `Message.channel`.

mod definitions;
mod ini;
mod select;

use std::collections::HashMap;

pub use definitions::DefinitionUse;
pub use ini::IniUse;
pub use select::{UnmatchedPattern, glob};
use select::{
    check_keys_exist, decimals, is_selected, physical_range, presentation, shared_signal_names,
    unmatched_patterns,
};

use crate::can::{CanFrame, CanId};
use crate::dbc::{BitLayout, Dbc, Message, Multiplexing, Signal};
use crate::error::DecodeError;
use crate::frame::{CompoundAssembler, FramePlan};
use crate::sample::RowBatch;

/// Which signals to publish and how to present them; read from the car's map by the daemon.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    /// Application name: the `App` part of every identifier and the top-level group.
    pub application: String,
    /// Glob patterns (`*`, `?`) a signal must match to be published; empty means all.
    /// A pattern with a `.` matches `Message.Signal`; without, it matches the message name.
    pub include: Vec<String>,
    /// Glob patterns that remove signals the include patterns let in.
    pub exclude: Vec<String>,
    /// `Message.Signal` → parameter name.
    pub renames: Vec<(String, String)>,
    /// `Message.Signal` → presentation overrides.
    pub overrides: Vec<(String, Override)>,
}

/// Unit, limit and description overrides for one signal.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Override {
    /// Replaces the DBC unit.
    pub unit: Option<String>,
    /// Replaces the DBC minimum.
    pub min: Option<f64>,
    /// Replaces the DBC maximum.
    pub max: Option<f64>,
    /// Replaces the DBC comment.
    pub description: Option<String>,
}

/// One published parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Parameter {
    /// `Name:Application`.
    pub identifier: String,
    /// The `Name` part.
    pub name: String,
    /// The DBC message it comes from (its subgroup).
    pub message: String,
    /// The DBC signal it comes from.
    pub signal: String,
    /// Physical unit.
    pub unit: String,
    /// Description (the DBC comment unless overridden).
    pub description: String,
    /// Display minimum; always below `max`.
    pub min: f64,
    /// Display maximum.
    pub max: f64,
    /// Decimal places worth showing, from the signal's scale.
    pub decimals: u8,
    /// Expected update rate from `GenMsgCycleTime`.
    pub frequency_hz: Option<f64>,
    /// Value → text table.
    pub value_descriptions: Vec<(i64, String)>,
}

/// A problem in the channel map; names the signal or key involved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelMapError {
    /// The application name is empty or contains ':'.
    #[error("application name {0:?} must be non-empty and contain no ':'")]
    BadApplication(String),
    /// A rename or override names a signal the DBC set does not have.
    #[error("{key:?} in [{section}] names no signal of the loaded DBCs (write Message.Signal)")]
    UnknownSignal {
        /// The map section (`rename` or `override`).
        section: &'static str,
        /// The key as written.
        key: String,
    },
    /// A parameter name is empty or contains ':'.
    #[error("parameter name {name:?} (from {signal}) must be non-empty and contain no ':'")]
    BadName {
        /// The name.
        name: String,
        /// `Message.Signal`.
        signal: String,
    },
    /// Two signals end up with the same identifier.
    #[error("{first} and {second} would both publish as {identifier:?}: rename one of them")]
    DuplicateIdentifier {
        /// The identifier.
        identifier: String,
        /// One `Message.Signal`.
        first: String,
        /// The other.
        second: String,
    },
    /// A message has more selected signals than a row format can track.
    #[error("message {message} has {count} selected signals; at most 128 are supported")]
    TooManySignals {
        /// The message.
        message: String,
        /// How many were selected.
        count: usize,
    },
    /// Nothing matched the include patterns.
    #[error("the include/exclude patterns select no signal")]
    NothingSelected,
    /// Two frame definitions share a name (sources name definitions, so names must be unique).
    #[error("two frame definitions are named {0:?}")]
    DuplicateDefinition(String),
    /// Two INI output-channel blocks publish under the same message name.
    #[error("two INI output-channel blocks are named {0:?}: give each ECU its own message name")]
    DuplicateIniMessage(String),
    /// A definition said to be carried on CAN cannot be reassembled from CAN frames.
    #[error("frame definition {definition:?} cannot be carried on CAN id {can_id}: {reason}")]
    NotCompound {
        /// The definition.
        definition: String,
        /// The CAN id it was given.
        can_id: String,
        /// Why not.
        reason: String,
    },
    /// A definition that does not compile once its fields are selected.
    #[error("frame definition {definition:?}: {reason}")]
    BadDefinition {
        /// The definition.
        definition: String,
        /// Why.
        reason: String,
    },
}

/// What decoding one frame did, for the caller's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CanOutcome {
    /// A row was added with this many samples; `short` if the frame was shorter than the DBC
    /// size (only the signals that fit were decoded).
    Decoded {
        /// Samples in the row.
        samples: usize,
        /// The frame was shorter than its message.
        short: bool,
    },
    /// No selected message has this id.
    Unknown,
    /// Remote or error frames carry no signal values.
    NoData,
    /// The frame was too short for any selected signal.
    Empty,
    /// The message produced a new combination of present signals but the format table is full.
    FormatLimit,
    /// The frame was taken into a compound message (a frame definition carried on this CAN id)
    /// that is not complete yet; the assembler counts losses and check failures.
    Assembling,
    /// A completed compound message could not be decoded by its definition.
    Invalid(DecodeError),
}

/// The compiled map: parameters, formats, and the decode plan.
#[derive(Debug, Clone)]
pub struct ChannelMap {
    application: String,
    parameters: Vec<Parameter>,
    formats: Vec<Format>,
    messages: Vec<MessagePlan>,
    standard: Vec<u32>,
    extended: HashMap<u32, u32>,
    format_by_mask: HashMap<(u32, u128), u32>,
    /// Frame definitions, compiled with their formats placed after the DBC messages'.
    definitions: Vec<FramePlan>,
    /// Definitions carried as compound messages on a CAN id: (id, definition, assembler).
    compound: Vec<(CanId, usize, CompoundAssembler)>,
    /// INI output-channel blocks, with their formats placed after the definitions'.
    inis: Vec<ini::IniPlan>,
    /// Include/exclude patterns that had no effect (warnings for the user, not errors).
    unmatched_patterns: Vec<UnmatchedPattern>,
}

/// An ordered list of parameters that share rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Format {
    /// The message the rows come from.
    pub message: String,
    /// Indices into [`ChannelMap::parameters`], in row order.
    pub parameters: Vec<u32>,
}

#[derive(Debug, Clone)]
struct MessagePlan {
    size: usize,
    signals: Vec<SignalPlan>,
    /// The format of rows where every signal is present; for messages without multiplexing
    /// this is the only one.
    full_format: u32,
    multiplexed: bool,
    /// Payload bytes that hold every signal (`usize::MAX` if one never fits): at or above it,
    /// a message without multiplexing has every signal present, with no test per signal.
    all_fit: usize,
    /// Every signal lies in the first 8 bytes (and there is no multiplexing): an 8-byte
    /// frame is read as one word for all of them.
    first_word: bool,
    /// When, in addition, every signal is an integer that [`BitLayout::is_word_field`] and all
    /// share one byte order: their layouts alone, packed, so that the commonest frame decodes
    /// with no branch per signal. Empty otherwise (a float, an unsigned 64-bit signal or mixed
    /// byte orders take the `first_word` path).
    word_fields: Vec<BitLayout>,
    /// The byte order `word_fields` share: the big-endian read of the payload (Motorola).
    big_word: bool,
}

impl MessagePlan {
    /// Appends the row of an 8-byte payload whose signals are all word fields (see
    /// `word_fields`); returns its sample count.
    #[inline]
    fn push_word_row(&self, time_ns: u64, payload: [u8; 8], out: &mut RowBatch) -> usize {
        let word = if self.big_word {
            u64::from_be_bytes(payload)
        } else {
            u64::from_le_bytes(payload)
        };
        out.begin_row(time_ns, self.full_format);
        out.extend_values(
            self.word_fields
                .iter()
                .map(|layout| layout.physical_in_word(word)),
        );
        self.word_fields.len()
    }
}

#[derive(Debug, Clone)]
struct SignalPlan {
    layout: BitLayout,
    parameter: u32,
    /// For multiplexed signals: the switch's layout (published or not) and the raw ranges of
    /// the switch for which this signal is present.
    condition: Option<(BitLayout, Vec<(u64, u64)>)>,
}

/// Upper bound on formats, so a hostile bus cannot grow the table without end.
const MAX_FORMATS: usize = 65_536;

impl ChannelMap {
    /// Compiles `selection` over the DBC set.
    pub fn compile(dbc: &Dbc, selection: &Selection) -> Result<Self, ChannelMapError> {
        Self::compile_with(dbc, &[], selection)
    }

    /// Compiles `selection` over the DBC set (which may be empty) and the frame definitions.
    pub fn compile_with(
        dbc: &Dbc,
        definitions: &[DefinitionUse<'_>],
        selection: &Selection,
    ) -> Result<Self, ChannelMapError> {
        Self::compile_all(dbc, definitions, &[], selection)
    }

    /// Compiles `selection` over the DBC set, the frame definitions and the INI output
    /// channels of polled serial ECUs, in that order of parameters and formats.
    pub fn compile_all(
        dbc: &Dbc,
        definitions: &[DefinitionUse<'_>],
        inis: &[IniUse<'_>],
        selection: &Selection,
    ) -> Result<Self, ChannelMapError> {
        let app = selection.application.trim();
        if app.is_empty() || app.contains(':') {
            return Err(ChannelMapError::BadApplication(app.to_owned()));
        }
        let renamed = selection.renames.iter().map(|(key, _)| key);
        check_keys_exist(dbc, definitions, inis, "rename", renamed)?;
        let overridden = selection.overrides.iter().map(|(key, _)| key);
        check_keys_exist(dbc, definitions, inis, "override", overridden)?;
        let mut map = Self {
            application: app.to_owned(),
            parameters: Vec::new(),
            formats: Vec::new(),
            messages: Vec::new(),
            standard: vec![0; CanId::MAX_STANDARD as usize + 1],
            extended: HashMap::new(),
            format_by_mask: HashMap::new(),
            definitions: Vec::new(),
            compound: Vec::new(),
            inis: Vec::new(),
            unmatched_patterns: Vec::new(),
        };
        let shared_names = shared_signal_names(dbc);
        let mut seen: HashMap<String, String> = HashMap::new();
        for message in &dbc.messages {
            let chosen: Vec<&Signal> = message
                .signals
                .iter()
                .filter(|signal| is_selected(selection, &message.name, &signal.name))
                .collect();
            if chosen.is_empty() {
                continue;
            }
            if chosen.len() > 128 {
                return Err(ChannelMapError::TooManySignals {
                    message: message.name.clone(),
                    count: chosen.len(),
                });
            }
            let mut parameters = Vec::with_capacity(chosen.len());
            for signal in &chosen {
                let parameter = map.parameter(message, signal, selection, &shared_names)?;
                let key = format!("{}.{}", message.name, signal.name);
                if let Some(first) = seen.insert(parameter.identifier.clone(), key.clone()) {
                    return Err(ChannelMapError::DuplicateIdentifier {
                        identifier: parameter.identifier,
                        first,
                        second: key,
                    });
                }
                parameters.push(map.parameters.len() as u32);
                map.parameters.push(parameter);
            }
            map.add_message(message, &chosen, parameters);
        }
        let shared = map.shared_field_names(definitions, selection)?;
        for definition in definitions {
            map.attach(definition, selection, &shared, &mut seen)?;
        }
        for used in inis {
            map.attach_ini(used, selection, &mut seen)?;
        }
        if map.parameters.is_empty() {
            return Err(ChannelMapError::NothingSelected);
        }
        let dbc_signals = dbc.messages.iter().flat_map(|m| {
            let message = m.name.as_str();
            m.signals.iter().map(move |s| (message, s.name.as_str()))
        });
        let fields = definitions.iter().flat_map(|used| {
            used.definition.messages.iter().flat_map(|m| {
                let message = m.name.as_str();
                m.fields.iter().map(move |f| (message, f.name.as_str()))
            })
        });
        let channels = inis.iter().flat_map(|used| {
            let message = used.message;
            used.channels
                .channels()
                .iter()
                .map(move |c| (message, c.name.as_str()))
        });
        map.unmatched_patterns =
            unmatched_patterns(selection, dbc_signals.chain(fields).chain(channels));
        Ok(map)
    }

    /// The include/exclude patterns that selected or removed nothing (see
    /// [`UnmatchedPattern`]); the map compiles without them, so these are warnings.
    pub fn unmatched_patterns(&self) -> &[UnmatchedPattern] {
        &self.unmatched_patterns
    }

    /// The application name (`App` of every identifier).
    pub fn application(&self) -> &str {
        &self.application
    }

    /// All published parameters, grouped by message in DBC order.
    pub fn parameters(&self) -> &[Parameter] {
        &self.parameters
    }

    /// Format `index` (as found in [`crate::RowHeader::format`]).
    pub fn format(&self, index: u32) -> Option<&Format> {
        self.formats.get(index as usize)
    }

    /// Number of formats registered so far.
    pub fn format_count(&self) -> usize {
        self.formats.len()
    }

    /// The messages that have at least one published parameter, in DBC order.
    pub fn messages(&self) -> impl Iterator<Item = &str> {
        let mut last: Option<&str> = None;
        self.parameters.iter().filter_map(move |parameter| {
            let name = parameter.message.as_str();
            (last != Some(name)).then(|| {
                last = Some(name);
                name
            })
        })
    }

    /// Decodes one frame received at `time_ns` into a row of `out`.
    ///
    /// Inlined into the caller's loop for the commonest frame, an 8-byte data frame of a
    /// standard-id message of word fields (see [`Self::decode_words`]): it then costs no call,
    /// and no outcome goes through memory. Everything else goes to [`Self::decode_general`].
    #[inline]
    pub fn decode(&mut self, time_ns: u64, frame: &CanFrame, out: &mut RowBatch) -> CanOutcome {
        match self.decode_words(time_ns, frame, out) {
            Some(outcome) => outcome,
            None => self.decode_general(time_ns, frame, out),
        }
    }

    /// The fast path of [`Self::decode`], or `None` where it does not apply; its outcomes are
    /// those `decode_general` would give, taken in the same order (no data, compound, unknown).
    #[inline]
    fn decode_words(
        &self,
        time_ns: u64,
        frame: &CanFrame,
        out: &mut RowBatch,
    ) -> Option<CanOutcome> {
        if frame.is_remote()
            || frame.flags.contains(crate::can::CanFlags::ERROR)
            || !self.compound.is_empty()
            || frame.id.is_extended()
        {
            return None;
        }
        let Some(plan_index) = self.plan_index(frame.id) else {
            return Some(CanOutcome::Unknown);
        };
        let plan = &self.messages[plan_index];
        if plan.word_fields.is_empty() {
            return None;
        }
        let word: [u8; 8] = frame.data().try_into().ok()?;
        let samples = plan.push_word_row(time_ns, word, out);
        Some(CanOutcome::Decoded {
            samples,
            short: 8 < plan.size,
        })
    }

    fn decode_general(&mut self, time_ns: u64, frame: &CanFrame, out: &mut RowBatch) -> CanOutcome {
        if frame.is_remote() || frame.flags.contains(crate::can::CanFlags::ERROR) {
            return CanOutcome::NoData;
        }
        if !self.compound.is_empty()
            && let Some(outcome) = self.decode_compound(time_ns, frame, out)
        {
            return outcome;
        }
        let Some(plan_index) = self.plan_index(frame.id) else {
            return CanOutcome::Unknown;
        };
        let plan = &self.messages[plan_index];
        let data = frame.data();
        let short = data.len() < plan.size;
        if let (false, Ok(word)) = (plan.word_fields.is_empty(), <[u8; 8]>::try_from(data)) {
            // Word fields reach here only for extended ids or when compound messages are on.
            let samples = plan.push_word_row(time_ns, word, out);
            return CanOutcome::Decoded { samples, short };
        }
        if let (true, Ok(word)) = (plan.first_word, <[u8; 8]>::try_from(data)) {
            let (little, big) = (u64::from_le_bytes(word), u64::from_be_bytes(word));
            out.begin_row(time_ns, plan.full_format);
            out.extend_values(plan.signals.iter().map(|signal| {
                let layout = &signal.layout;
                layout.raw_to_physical(layout.raw_in_first_word(little, big))
            }));
            let samples = plan.signals.len();
            return CanOutcome::Decoded { samples, short };
        }
        if !plan.multiplexed && data.len() >= plan.all_fit && !plan.signals.is_empty() {
            out.begin_row(time_ns, plan.full_format);
            // Every signal fits, so `physical` cannot be `None` here.
            out.extend_values(
                plan.signals
                    .iter()
                    .map(|signal| signal.layout.physical(data).unwrap_or(f64::NAN)),
            );
            let samples = plan.signals.len();
            return CanOutcome::Decoded { samples, short };
        }
        let (mask, full) = presence_mask(plan, data);
        if mask == 0 {
            return CanOutcome::Empty;
        }
        let format = if full {
            plan.full_format
        } else {
            match self.format_for_mask(plan_index, mask) {
                Some(format) => format,
                None => return CanOutcome::FormatLimit,
            }
        };
        let plan = &self.messages[plan_index];
        out.begin_row(time_ns, format);
        let mut samples = 0;
        for (index, signal) in plan.signals.iter().enumerate() {
            if mask & (1u128 << index) != 0 {
                // Presence implies the signal fits, so `physical` cannot be `None` here.
                out.push_value(signal.layout.physical(data).unwrap_or(f64::NAN));
                samples += 1;
            }
        }
        CanOutcome::Decoded { samples, short }
    }

    #[inline]
    fn plan_index(&self, id: CanId) -> Option<usize> {
        let slot = if id.is_extended() {
            self.extended.get(&id.id()).copied().unwrap_or(0)
        } else {
            self.standard.get(id.id() as usize).copied().unwrap_or(0)
        };
        (slot != 0).then(|| slot as usize - 1)
    }

    fn format_for_mask(&mut self, plan_index: usize, mask: u128) -> Option<u32> {
        if let Some(format) = self.format_by_mask.get(&(plan_index as u32, mask)) {
            return Some(*format);
        }
        if self.formats.len() >= MAX_FORMATS {
            return None;
        }
        let plan = &self.messages[plan_index];
        let parameters = plan
            .signals
            .iter()
            .enumerate()
            .filter(|(index, _)| mask & (1u128 << index) != 0)
            .map(|(_, signal)| signal.parameter)
            .collect();
        let message = self.formats[plan.full_format as usize].message.clone();
        let format = self.formats.len() as u32;
        self.formats.push(Format {
            message,
            parameters,
        });
        self.format_by_mask
            .insert((plan_index as u32, mask), format);
        Some(format)
    }

    fn add_message(&mut self, message: &Message, chosen: &[&Signal], parameters: Vec<u32>) {
        let full_format = self.formats.len() as u32;
        self.formats.push(Format {
            message: message.name.clone(),
            parameters: parameters.clone(),
        });
        let signals = chosen
            .iter()
            .zip(&parameters)
            .map(|(signal, parameter)| SignalPlan {
                layout: signal.layout(),
                parameter: *parameter,
                condition: condition(message, signal),
            })
            .collect::<Vec<_>>();
        let multiplexed = signals.iter().any(|signal| signal.condition.is_some());
        let slot = self.messages.len() as u32 + 1;
        let all_fit = signals
            .iter()
            .map(|signal| signal.layout.bytes_needed())
            .max()
            .unwrap_or(0);
        let first_word = !multiplexed
            && !signals.is_empty()
            && signals.iter().all(|signal| signal.layout.in_first_word());
        let big_word = signals
            .first()
            .is_some_and(|signal| signal.layout.reads_big_word());
        let word_fields = if first_word
            && signals.iter().all(|signal| {
                signal.layout.is_word_field() && signal.layout.reads_big_word() == big_word
            }) {
            signals.iter().map(|signal| signal.layout).collect()
        } else {
            Vec::new()
        };
        self.messages.push(MessagePlan {
            size: usize::from(message.size),
            signals,
            full_format,
            multiplexed,
            all_fit,
            first_word,
            word_fields,
            big_word,
        });
        // Pseudo ids above 0x7FF without the extended flag never occur on a bus: not indexed.
        if message.id.is_extended() {
            self.extended.insert(message.id.id(), slot);
        } else if let Some(entry) = self.standard.get_mut(message.id.id() as usize) {
            *entry = slot;
        }
    }

    fn parameter(
        &self,
        message: &Message,
        signal: &Signal,
        selection: &Selection,
        shared_names: &HashMap<&str, usize>,
    ) -> Result<Parameter, ChannelMapError> {
        let key = format!("{}.{}", message.name, signal.name);
        let renamed = selection.renames.iter().find(|(k, _)| *k == key);
        let name = match renamed {
            Some((_, name)) => name.trim().to_owned(),
            None if shared_names.get(signal.name.as_str()).copied().unwrap_or(0) > 1 => {
                format!("{}_{}", message.name, signal.name)
            }
            None => signal.name.clone(),
        };
        if name.is_empty() || name.contains(':') {
            return Err(ChannelMapError::BadName { name, signal: key });
        }
        let dbc_range = if signal.min < signal.max {
            (signal.min, signal.max)
        } else {
            physical_range(signal)
        };
        let (over, min, max) = presentation(selection, &key, dbc_range);
        Ok(Parameter {
            identifier: format!("{name}:{}", self.application),
            name,
            message: message.name.clone(),
            signal: signal.name.clone(),
            unit: over.unit.unwrap_or_else(|| signal.unit.clone()),
            description: over
                .description
                .or_else(|| signal.comment.clone())
                .unwrap_or_default(),
            min,
            max,
            decimals: decimals(signal.scale),
            frequency_hz: message
                .cycle_time_ms
                .filter(|ms| *ms > 0)
                .map(|ms| 1000.0 / f64::from(ms)),
            value_descriptions: signal.value_descriptions.clone(),
        })
    }
}

/// Which multiplexed signals are present, as a bit mask over the plan's signals, and whether
/// every signal is present (the common, pre-registered case).
fn presence_mask(plan: &MessagePlan, data: &[u8]) -> (u128, bool) {
    let mut mask = 0u128;
    let mut all = true;
    for (index, signal) in plan.signals.iter().enumerate() {
        let fits = signal.layout.bytes_needed() <= data.len();
        let selected = !plan.multiplexed
            || match &signal.condition {
                None => true,
                Some((switch, ranges)) => switch
                    .raw(data)
                    .is_some_and(|raw| ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&raw))),
            };
        if fits && selected {
            mask |= 1u128 << index;
        } else {
            all = false;
        }
    }
    (mask, all)
}

fn condition(message: &Message, signal: &Signal) -> Option<(BitLayout, Vec<(u64, u64)>)> {
    let Multiplexing::Multiplexed { switch, ranges, .. } = &signal.mux else {
        return None;
    };
    // A switch missing from the DBC makes the signal's presence unknowable: never present.
    let layout = message
        .signals
        .iter()
        .find(|candidate| &candidate.name == switch)
        .map(Signal::layout);
    Some(match layout {
        Some(layout) => (layout, ranges.clone()),
        None => (signal.layout(), Vec::new()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::can::CanFlags;
    use crate::dbc::parse_dbc;

    const DBC: &str = r#"
BO_ 256 ENGINE: 8 ECU
 SG_ RPM : 0|16@1+ (0.25,0) [0|0] "rpm" X
 SG_ CHECKSUM : 56|8@1+ (1,0) [0|255] "" X

BO_ 512 GEARBOX: 8 ECU
 SG_ GEAR : 0|4@1+ (1,0) [0|8] "" X
 SG_ CHECKSUM : 56|8@1+ (1,0) [0|255] "" X

BO_ 2566844672 TYRES: 4 ECU
 SG_ CORNER M : 0|8@1+ (1,0) [0|3] "" X
 SG_ TEMP_FL m0 : 8|16@1+ (0.1,-50) [-50|200] "degC" X
 SG_ TEMP_FR m1 : 8|16@1+ (0.1,-50) [-50|200] "degC" X
 SG_ STATUS : 24|8@1+ (1,0) [0|255] "" X

BA_ "GenMsgCycleTime" BO_ 256 10;
VAL_ 512 GEAR 0 "N" 1 "1st" ;
"#;

    fn selection() -> Selection {
        Selection {
            application: "Car".into(),
            ..Selection::default()
        }
    }

    fn compile(selection: &Selection) -> Result<ChannelMap, ChannelMapError> {
        let dbc = parse_dbc("test.dbc", DBC).expect("parses").dbc;
        ChannelMap::compile(&dbc, selection)
    }

    fn frame(id: CanId, data: &[u8]) -> CanFrame {
        CanFrame::new(id, CanFlags::empty(), data).expect("classic")
    }

    fn identifiers(map: &ChannelMap) -> Vec<&str> {
        map.parameters()
            .iter()
            .map(|p| p.identifier.as_str())
            .collect()
    }

    #[test]
    fn names_are_qualified_only_when_a_signal_name_repeats() {
        let map = compile(&selection()).expect("compiles");
        assert_eq!(
            identifiers(&map),
            [
                "RPM:Car",
                "ENGINE_CHECKSUM:Car",
                "GEAR:Car",
                "GEARBOX_CHECKSUM:Car",
                "CORNER:Car",
                "TEMP_FL:Car",
                "TEMP_FR:Car",
                "STATUS:Car"
            ]
        );
        let rpm = &map.parameters()[0];
        assert_eq!(rpm.frequency_hz, Some(100.0));
        assert_eq!(
            (rpm.min, rpm.max),
            (0.0, 65535.0 * 0.25),
            "range from the raw field"
        );
        assert_eq!(rpm.decimals, 2);
        assert_eq!(map.parameters()[2].value_descriptions.len(), 2);
    }

    #[test]
    fn selection_does_not_change_names_and_renames_apply() {
        let mut only_engine = selection();
        only_engine.include = vec!["ENGINE".into()];
        only_engine.exclude = vec!["*.CHECKSUM".into()];
        only_engine.renames = vec![("ENGINE.RPM".into(), "EngineSpeed".into())];
        let map = compile(&only_engine).expect("compiles");
        assert_eq!(identifiers(&map), ["EngineSpeed:Car"]);
        let mut checksums = selection();
        checksums.include = vec!["*.CHECKSUM".into()];
        let map = compile(&checksums).expect("compiles");
        assert_eq!(
            identifiers(&map),
            ["ENGINE_CHECKSUM:Car", "GEARBOX_CHECKSUM:Car"]
        );
        assert!(map.unmatched_patterns().is_empty());
    }

    #[test]
    fn patterns_that_select_or_remove_nothing_are_reported_by_position() {
        let mut typo = selection();
        typo.include = vec!["ENGINE".into(), "GEARBX".into(), "TYRES.TEMP_*".into()];
        typo.exclude = vec!["*.CHECKSUM".into(), "TYRES.STATUS".into(), "*.CRC".into()];
        let map = compile(&typo).expect("the valid patterns still compile");
        assert_eq!(identifiers(&map), ["RPM:Car", "TEMP_FL:Car", "TEMP_FR:Car"]);
        let unmatched: Vec<(&str, usize, &str)> = map
            .unmatched_patterns()
            .iter()
            .map(|u| (u.list, u.index, u.pattern.as_str()))
            .collect();
        // TYRES.STATUS exists but was never included, so excluding it removes nothing.
        assert_eq!(
            unmatched,
            [
                ("include", 1, "GEARBX"),
                ("exclude", 1, "TYRES.STATUS"),
                ("exclude", 2, "*.CRC")
            ]
        );
        assert_eq!(
            map.unmatched_patterns()[0].to_string(),
            "include pattern \"GEARBX\" matches no message or signal of the loaded DBC files and definitions"
        );
    }

    #[test]
    fn map_errors_name_the_culprit() {
        let mut clash = selection();
        clash.renames = vec![("GEARBOX.GEAR".into(), "RPM".into())];
        let error = compile(&clash).expect_err("duplicate");
        assert!(error.to_string().contains("ENGINE.RPM"), "{error}");
        assert!(error.to_string().contains("GEARBOX.GEAR"), "{error}");
        let mut unknown = selection();
        unknown.overrides = vec![("ENGINE.NOPE".into(), Override::default())];
        assert!(matches!(
            compile(&unknown),
            Err(ChannelMapError::UnknownSignal { .. })
        ));
        let mut nothing = selection();
        nothing.include = vec!["ABS*".into()];
        assert_eq!(
            compile(&nothing).err(),
            Some(ChannelMapError::NothingSelected)
        );
        let mut colon = selection();
        colon.application = "A:B".into();
        assert!(matches!(
            compile(&colon),
            Err(ChannelMapError::BadApplication(_))
        ));
    }

    #[test]
    fn frames_become_rows_and_short_frames_decode_what_fits() {
        let mut map = compile(&selection()).expect("compiles");
        let mut rows = RowBatch::new();
        let engine = CanId::standard(256).expect("id");
        let full = map.decode(
            5,
            &frame(engine, &[0x10, 0x27, 0, 0, 0, 0, 0, 0xAB]),
            &mut rows,
        );
        assert_eq!(
            full,
            CanOutcome::Decoded {
                samples: 2,
                short: false
            }
        );
        let short = map.decode(6, &frame(engine, &[0x10, 0x27]), &mut rows);
        assert_eq!(
            short,
            CanOutcome::Decoded {
                samples: 1,
                short: true
            }
        );
        let (first, values) = rows.row(0).expect("row");
        assert_eq!((first.time_ns, values), (5, &[2500.0, 171.0][..]));
        let (second, values) = rows.row(1).expect("row");
        assert_eq!(values, &[2500.0]);
        assert_ne!(second.format, first.format, "a subset gets its own format");
        let subset = map.format(second.format).expect("format");
        assert_eq!(subset.parameters, vec![0]);
        assert_eq!(
            map.decode(
                7,
                &frame(CanId::standard(0x7FF).expect("id"), &[1]),
                &mut rows
            ),
            CanOutcome::Unknown
        );
        let remote = CanFrame::remote(engine, 8).expect("remote");
        assert_eq!(map.decode(8, &remote, &mut rows), CanOutcome::NoData);
        assert_eq!(
            map.decode(9, &frame(engine, &[]), &mut rows),
            CanOutcome::Empty
        );
        assert_eq!(rows.len(), 2);
    }

    #[test]
    fn multiplexed_rows_carry_only_present_signals() {
        let mut map = compile(&selection()).expect("compiles");
        let tyres = CanId::extended(0x18FE_F100).expect("id");
        let mut rows = RowBatch::new();
        // Corner 0: TEMP_FL = 1000 raw → 50.0 degC; STATUS 7.
        map.decode(1, &frame(tyres, &[0, 0xE8, 0x03, 7]), &mut rows);
        map.decode(2, &frame(tyres, &[1, 0xE8, 0x03, 9]), &mut rows);
        map.decode(3, &frame(tyres, &[0, 0xE8, 0x03, 8]), &mut rows);
        // A switch value no signal is defined for: only the always-present signals.
        map.decode(4, &frame(tyres, &[3, 0, 0, 1]), &mut rows);
        let formats: Vec<_> = rows.rows().map(|(h, _)| h.format).collect();
        assert_eq!(formats[0], formats[2]);
        assert_ne!(formats[0], formats[1]);
        let names = |format: u32| -> Vec<String> {
            map.format(format)
                .expect("format")
                .parameters
                .iter()
                .map(|p| map.parameters()[*p as usize].name.clone())
                .collect()
        };
        assert_eq!(names(formats[0]), ["CORNER", "TEMP_FL", "STATUS"]);
        assert_eq!(names(formats[1]), ["CORNER", "TEMP_FR", "STATUS"]);
        let (_, values) = rows.row(1).expect("row");
        assert_eq!(values, &[1.0, 50.0, 9.0]);
        let (header, values) = rows.row(3).expect("row");
        assert_eq!(names(header.format), ["CORNER", "STATUS"]);
        assert_eq!(values, &[3.0, 1.0]);
    }

    /// Every way a message can leave the word-field path, next to messages that take it:
    /// signed Intel and Motorola, a 63-bit unsigned field (the widest one that takes it), an
    /// unsigned 64-bit one, a float, mixed byte orders, a signal past byte 8, an extended id.
    const EDGES: &str = r#"
BO_ 16 INTEL_SIGNED: 8 ECU
 SG_ A : 0|12@1- (0.5,-3) [0|0] "" X
 SG_ B : 12|1@1- (1,0) [0|0] "" X
 SG_ C : 13|51@1- (1,0) [0|0] "" X

BO_ 17 MOTOROLA_SIGNED: 8 ECU
 SG_ A : 7|16@0- (-0.1,0) [0|0] "" X
 SG_ B : 23|40@0- (1,7) [0|0] "" X
 SG_ C : 63|8@0+ (2,0) [0|0] "" X

BO_ 18 WIDE: 8 ECU
 SG_ U63 : 1|63@1+ (1,0) [0|0] "" X

BO_ 19 WIDEST: 8 ECU
 SG_ U64 : 0|64@1+ (1,0) [0|0] "" X

BO_ 20 SIGNED_WIDEST: 8 ECU
 SG_ I64 : 7|64@0- (1,0) [0|0] "" X

BO_ 21 FLOAT: 8 ECU
 SG_ F : 0|32@1- (1,0) [0|0] "" X
 SG_ N : 32|8@1+ (1,0) [0|0] "" X

BO_ 22 MIXED: 8 ECU
 SG_ I : 0|8@1+ (1,0) [0|0] "" X
 SG_ M : 15|8@0+ (1,0) [0|0] "" X

BO_ 23 FD: 12 ECU
 SG_ LOW : 0|8@1+ (1,0) [0|0] "" X
 SG_ HIGH : 64|8@1+ (1,0) [0|0] "" X

BO_ 2147483672 EXTENDED: 8 ECU
 SG_ E : 7|12@0- (0.25,1) [0|0] "" X

SIG_VALTYPE_ 21 F : 1;
"#;

    proptest::proptest! {
        /// The decoded row equals each signal decoded on its own through its layout, whatever
        /// path the message takes, including short frames and frames of a longer message.
        #[test]
        fn rows_equal_the_signals_decoded_one_by_one(
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..=12),
        ) {
            let dbc = parse_dbc("edges.dbc", EDGES).expect("parses").dbc;
            let mut map = ChannelMap::compile(&dbc, &selection()).expect("compiles");
            for message in &dbc.messages {
                let flags = if data.len() > 8 { CanFlags::FD } else { CanFlags::empty() };
                let frame = CanFrame::new(message.id, flags, &data).expect("fits");
                let mut rows = RowBatch::new();
                let outcome = map.decode(3, &frame, &mut rows);
                let expected: Vec<u64> = message
                    .signals
                    .iter()
                    .filter_map(|signal| signal.layout().physical(&data))
                    .map(f64::to_bits)
                    .collect();
                if expected.is_empty() {
                    proptest::prop_assert_eq!(outcome, CanOutcome::Empty);
                    continue;
                }
                let short = data.len() < usize::from(message.size);
                let samples = expected.len();
                proptest::prop_assert_eq!(outcome, CanOutcome::Decoded { samples, short });
                let (_, values) = rows.row(0).expect("a row");
                let values: Vec<u64> = values.iter().map(|v| v.to_bits()).collect();
                proptest::prop_assert_eq!(values, expected, "{}", message.name);
            }
        }
    }

    #[test]
    fn glob_matches_stars_and_marks() {
        assert!(glob("*", "ENGINE"));
        assert!(glob("ENG*", "ENGINE"));
        assert!(glob("*GIN?", "ENGINE"));
        assert!(glob("E*N*E", "ENGINE"));
        assert!(!glob("E*X", "ENGINE"));
        assert!(!glob("ENGINE?", "ENGINE"));
        assert!(glob("", ""));
    }

    #[test]
    fn decimals_follow_the_resolution() {
        assert_eq!(decimals(1.0), 0);
        assert_eq!(decimals(0.5), 1);
        assert_eq!(decimals(0.01), 2);
        assert_eq!(decimals(0.0625), 4);
        assert_eq!(decimals(2.0), 0);
    }
}
