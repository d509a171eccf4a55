//! Building the [`Dbc`] model from parsed statements: message and signal definitions as they
//! come, then every statement that refers to them once all files are read, with the quirks of
//! real files recorded as [`DbcWarning`]s rather than refused.
//!
//! Invariants: a message id is defined once (later duplicates are dropped with their
//! signals); signal names are unique within a message; every `Multiplexed` signal names an
//! existing switch once [`Builder::finish`] returns.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use super::parse::Parsed;
use super::syntax::{AttrValue, Comment, MuxMarker, SignalDef, Statement, Target};
use super::{
    ByteOrder, Dbc, DbcWarning, Location, Message, Multiplexing, Signal, ValueType, WarningKind,
};
use crate::can::CanId;

/// Where `SG_` lines go: the message they follow.
#[derive(Debug, Clone, Copy, Default)]
pub(super) enum Current {
    /// No `BO_` directly before: an `SG_` here is an error.
    #[default]
    Nothing,
    /// Index into `Builder::messages`.
    Message(usize),
    /// A duplicate message, whose signals are dropped with it.
    Dropped,
}

/// A statement that refers to messages or signals, applied after all files are read.
#[derive(Debug)]
struct Pending<'a> {
    location: Location,
    statement: Statement<'a>,
}

/// The model under construction.
#[derive(Debug, Default)]
pub(super) struct Builder<'a> {
    /// The file being read, for locations.
    pub(super) file: &'a str,
    messages: Vec<Message>,
    /// Message id (as written) → index, so references resolve in O(1).
    by_id: HashMap<u32, usize>,
    /// Message name → first index: names become parameter groups, so repeats are reported.
    by_name: HashMap<&'a str, usize>,
    /// Per message: signal name → index.
    signals: Vec<HashMap<&'a str, usize>>,
    /// Per message: whether a `BA_ "GenMsgCycleTime"` set its cycle time (even to none), so
    /// the `BA_DEF_DEF_` default does not override it.
    cycle_set: Vec<bool>,
    cycle_default: Option<u32>,
    pub(super) current: Current,
    pending: Vec<Pending<'a>>,
    /// Signals whose multiplexing came from `SG_MUL_VAL_`; a second line for the same signal
    /// adds ranges instead of replacing them.
    extended_mux: HashSet<(usize, usize)>,
    warnings: Vec<DbcWarning>,
    imports: Vec<String>,
}

impl<'a> Builder<'a> {
    /// Applies one statement read at `line`; `Err` is a message for a [`DbcError`] there.
    pub(super) fn handle(
        &mut self,
        statement: Statement<'a>,
        line: u32,
    ) -> Result<(), &'static str> {
        let location = Location {
            file: self.file.to_owned(),
            line,
        };
        let current = std::mem::take(&mut self.current);
        match statement {
            Statement::Message {
                id,
                name,
                size,
                sender,
            } => self.handle_message(id, name, size, sender, location),
            Statement::Signal(def) => {
                self.current = current;
                match current {
                    Current::Nothing => return Err("signal outside a message"),
                    Current::Dropped => {}
                    Current::Message(index) => self.handle_signal(index, def, location),
                }
            }
            Statement::Comment(Comment::Global(text)) => {
                self.handle_global_comment(&text, location)
            }
            Statement::Comment(Comment::Signal { name: None, id, .. }) => self.warn(
                location,
                WarningKind::CommentWithoutSignal,
                format!("signal comment for message {id} has no signal name; ignored"),
            ),
            Statement::AttributeDefault { name, value } => self.handle_default(&name, &value),
            Statement::Unknown(keyword) => self.warn(
                location,
                WarningKind::UnsupportedSection,
                format!("unknown keyword {keyword}; skipped"),
            ),
            Statement::Skipped | Statement::Comment(Comment::Other) => {}
            statement => self.defer(statement, location),
        }
        Ok(())
    }

    /// Keeps a statement that refers to messages for [`Self::finish`].
    fn defer(&mut self, statement: Statement<'a>, location: Location) {
        if let Statement::ValueDescriptions {
            terminated: false, ..
        } = statement
        {
            let text = "value table ends at the end of the line without ';'".to_owned();
            self.warn(location.clone(), WarningKind::MissingSemicolon, text);
        }
        self.pending.push(Pending {
            location,
            statement,
        });
    }

    fn handle_message(
        &mut self,
        id: u32,
        name: &'a str,
        size: u8,
        sender: &str,
        location: Location,
    ) {
        if let Some(&first) = self.by_id.get(&id) {
            let first = self.messages[first].location.clone();
            self.warn(
                location,
                WarningKind::Duplicate,
                format!("message id {id} already defined at {first}; ignored"),
            );
            self.current = Current::Dropped;
            return;
        }
        if let Some(&other) = self.by_name.get(name) {
            let other = self.messages[other].location.clone();
            let text = format!("message name {name} also used at {other}");
            self.warn(location.clone(), WarningKind::Duplicate, text);
        }
        self.by_name.entry(name).or_insert(self.messages.len());
        if pseudo_id(id) {
            self.warn(
                location.clone(),
                WarningKind::PseudoId,
                format!("message {name} has id {id:#x}, not a valid CAN id; kept as written"),
            );
        }
        self.by_id.insert(id, self.messages.len());
        self.current = Current::Message(self.messages.len());
        self.messages.push(Message {
            id: CanId::from_dbc(id),
            name: name.to_owned(),
            size,
            sender: sender.to_owned(),
            signals: Vec::new(),
            comment: None,
            cycle_time_ms: None,
            location,
        });
        self.signals.push(HashMap::new());
        self.cycle_set.push(false);
    }

    fn handle_signal(&mut self, index: usize, def: SignalDef<'a>, location: Location) {
        let message = &self.messages[index];
        if self.signals[index].contains_key(def.name) {
            let text = format!(
                "signal {} repeated in message {}; ignored",
                def.name, message.name
            );
            return self.warn(location, WarningKind::Duplicate, text);
        }
        let signal = signal_from_def(&def, location.clone());
        if signal.layout().bytes_needed() > usize::from(message.size) {
            let text = format!(
                "signal {} reaches byte {} of {}-byte message {}",
                def.name,
                signal.layout().bytes_needed(),
                message.size,
                message.name
            );
            self.warn(location, WarningKind::SignalOutsideMessage, text);
        }
        let message = &mut self.messages[index];
        self.signals[index].insert(def.name, message.signals.len());
        message.signals.push(signal);
    }

    fn handle_global_comment(&mut self, text: &str, location: Location) {
        let import = text.trim().strip_prefix("IMPORT");
        if let Some(file) = import.filter(|rest| rest.starts_with(char::is_whitespace)) {
            let file = file.trim().trim_matches('"').to_owned();
            let message = format!("generator stub imports {file}; load it first");
            self.imports.push(file);
            self.warn(location, WarningKind::Import, message);
        }
    }

    fn handle_default(&mut self, name: &str, value: &AttrValue<'_>) {
        if let (GEN_MSG_CYCLE_TIME, AttrValue::Number(ms)) = (name, value) {
            self.cycle_default = cycle_time(*ms);
        }
    }

    fn warn(&mut self, location: Location, kind: WarningKind, message: String) {
        self.warnings.push(DbcWarning {
            location,
            kind,
            message,
        });
    }

    /// Applies the deferred statements and resolves multiplexing.
    pub(super) fn finish(mut self) -> Parsed {
        for pending in std::mem::take(&mut self.pending) {
            self.apply(pending.statement, pending.location);
        }
        for index in 0..self.messages.len() {
            self.resolve_switches(index);
            if !self.cycle_set[index] {
                self.messages[index].cycle_time_ms = self.cycle_default;
            }
        }
        Parsed {
            dbc: Dbc {
                messages: self.messages,
            },
            warnings: self.warnings,
            imports: self.imports,
        }
    }

    fn apply(&mut self, statement: Statement<'a>, location: Location) {
        match statement {
            Statement::Comment(Comment::Message { id, text }) => {
                if let Some(index) = self.find_message(id, &location) {
                    let slot = &mut self.messages[index].comment;
                    set_once(slot, text, location, &mut self.warnings);
                }
            }
            Statement::Comment(Comment::Signal {
                id,
                name: Some(name),
                text,
            }) => {
                if let Some((m, s)) = self.find_signal(id, name, &location) {
                    let slot = &mut self.messages[m].signals[s].comment;
                    set_once(slot, text, location, &mut self.warnings);
                }
            }
            Statement::Attribute {
                name,
                target,
                value,
            } => self.apply_attribute(&name, target, &value, &location),
            Statement::ValueDescriptions {
                id, signal, values, ..
            } => self.apply_values(id, signal, values, location),
            Statement::ValueType { id, signal, kind } => {
                self.apply_value_type(id, signal, kind, location);
            }
            Statement::MuxValues {
                id,
                signal,
                switch,
                ranges,
            } => self.apply_mux(id, signal, switch, ranges, location),
            _ => {}
        }
    }

    fn apply_attribute(
        &mut self,
        name: &str,
        target: Target<'_>,
        value: &AttrValue<'_>,
        at: &Location,
    ) {
        match target {
            Target::Message(id) => {
                let Some(index) = self.find_message(id, at) else {
                    return;
                };
                if let (GEN_MSG_CYCLE_TIME, AttrValue::Number(ms)) = (name, value) {
                    self.messages[index].cycle_time_ms = cycle_time(*ms);
                    self.cycle_set[index] = true;
                }
            }
            Target::Signal(id, signal) => {
                self.find_signal(id, signal, at);
            }
            Target::Network | Target::Node | Target::EnvVar => {}
        }
    }

    fn apply_values(
        &mut self,
        id: u32,
        signal: &str,
        values: Vec<(i64, Cow<'_, str>)>,
        location: Location,
    ) {
        let Some((m, s)) = self.find_signal(id, signal, &location) else {
            return;
        };
        let values: Vec<(i64, String)> = values
            .into_iter()
            .map(|(raw, text)| (raw, text.into_owned()))
            .collect();
        let slot = &mut self.messages[m].signals[s].value_descriptions;
        if !slot.is_empty() && *slot != values {
            let text = format!("second value table for {signal}; the later one is used");
            self.warn(location, WarningKind::Duplicate, text);
        }
        self.messages[m].signals[s].value_descriptions = values;
    }

    fn apply_value_type(&mut self, id: u32, signal: &str, kind: u32, location: Location) {
        let Some((m, s)) = self.find_signal(id, signal, &location) else {
            return;
        };
        let target = &mut self.messages[m].signals[s];
        let value_type = match (kind, target.length) {
            (0, _) => ValueType::Integer,
            (1, 32) => ValueType::Float32,
            (2, 64) => ValueType::Float64,
            _ => {
                let text = format!(
                    "value type {kind} does not fit {}-bit signal {signal}; kept as integer",
                    target.length
                );
                return self.warn(location, WarningKind::ValueTypeMismatch, text);
            }
        };
        target.value_type = value_type;
    }

    fn apply_mux(
        &mut self,
        id: u32,
        signal: &str,
        switch: &str,
        ranges: Vec<(u64, u64)>,
        location: Location,
    ) {
        let Some((m, s)) = self.find_signal(id, signal, &location) else {
            return;
        };
        if self.find_signal(id, switch, &location).is_none() {
            return;
        }
        let first = self.extended_mux.insert((m, s));
        let target = &mut self.messages[m].signals[s];
        let is_switch = matches!(
            target.mux,
            Multiplexing::Multiplexor
                | Multiplexing::Multiplexed {
                    is_switch: true,
                    ..
                }
        );
        match &mut target.mux {
            Multiplexing::Multiplexed {
                switch: current,
                ranges: existing,
                ..
            } if !first && current == switch => existing.extend(ranges),
            _ if first => {
                target.mux = Multiplexing::Multiplexed {
                    switch: switch.to_owned(),
                    ranges,
                    is_switch,
                };
            }
            _ => {
                let text = format!("second switch {switch} for signal {signal}; ignored");
                self.warn(location, WarningKind::Duplicate, text);
            }
        }
    }

    /// Gives each simple `m<n>` signal the message's `M` signal as its switch; drops the
    /// signal when there is no single `M` to give.
    fn resolve_switches(&mut self, index: usize) {
        let message = &mut self.messages[index];
        let mut switches = message
            .signals
            .iter()
            .filter(|s| s.mux == Multiplexing::Multiplexor);
        let switch = match (switches.next(), switches.next()) {
            (Some(only), None) => Some(only.name.clone()),
            _ => None,
        };
        let mut dropped = Vec::new();
        message.signals.retain_mut(|signal| match &mut signal.mux {
            Multiplexing::Multiplexed { switch: name, .. } if name.is_empty() => match &switch {
                Some(switch) => {
                    name.clone_from(switch);
                    true
                }
                None => {
                    dropped.push((signal.name.clone(), signal.location.clone()));
                    false
                }
            },
            _ => true,
        });
        let message_name = message.name.clone();
        for (name, location) in dropped {
            let text = format!(
                "multiplexed signal {name} in {message_name} has no single 'M' switch; dropped"
            );
            self.warn(location, WarningKind::UnresolvedMultiplexer, text);
        }
    }

    fn find_message(&mut self, id: u32, at: &Location) -> Option<usize> {
        let found = self.by_id.get(&id).copied();
        if found.is_none() {
            let text = format!("reference to undefined message {id}; ignored");
            self.warn(at.clone(), WarningKind::UnknownSignal, text);
        }
        found
    }

    fn find_signal(&mut self, id: u32, name: &str, at: &Location) -> Option<(usize, usize)> {
        let message = self.find_message(id, at)?;
        let found = self.signals[message].get(name).copied();
        if found.is_none() {
            let text = format!("reference to undefined signal {name} in message {id}; ignored");
            self.warn(at.clone(), WarningKind::UnknownSignal, text);
        }
        found.map(|signal| (message, signal))
    }
}

/// The attribute whose value on a `BO_` is the message's send period.
const GEN_MSG_CYCLE_TIME: &str = "GenMsgCycleTime";

/// A cycle time in ms; 0 means "not periodic" in DBC tools, so it maps to none.
fn cycle_time(ms: f64) -> Option<u32> {
    (ms >= 0.5 && ms <= f64::from(u32::MAX)).then(|| ms.round() as u32)
}

/// Ids above 0x7FF without the extended flag, and flagged ids above 29 bits, never appear on
/// a bus: generators use them as layout aliases (e.g. `VECTOR__INDEPENDENT_SIG_MSG`).
fn pseudo_id(id: u32) -> bool {
    if id & CanId::EXTENDED_FLAG == 0 {
        id > CanId::MAX_STANDARD
    } else {
        id & !CanId::EXTENDED_FLAG > CanId::MAX_EXTENDED
    }
}

fn signal_from_def(def: &SignalDef<'_>, location: Location) -> Signal {
    let mux = match def.mux {
        MuxMarker::None => Multiplexing::None,
        MuxMarker::Switch => Multiplexing::Multiplexor,
        // The switch is named once the whole message is known (`resolve_switches`).
        MuxMarker::Value { value, is_switch } => Multiplexing::Multiplexed {
            switch: String::new(),
            ranges: vec![(value, value)],
            is_switch,
        },
    };
    Signal {
        name: def.name.to_owned(),
        start_bit: def.start_bit,
        length: def.length,
        byte_order: if def.little_endian {
            ByteOrder::LittleEndian
        } else {
            ByteOrder::BigEndian
        },
        signed: def.signed,
        value_type: ValueType::Integer,
        scale: def.scale,
        offset: def.offset,
        min: def.min,
        max: def.max,
        unit: def.unit.clone().into_owned(),
        receivers: def.receivers.iter().map(|r| (*r).to_owned()).collect(),
        mux,
        comment: None,
        value_descriptions: Vec::new(),
        location,
    }
}

/// Sets a comment, warning when a second, different one replaces the first.
fn set_once(
    slot: &mut Option<String>,
    text: Cow<'_, str>,
    location: Location,
    warnings: &mut Vec<DbcWarning>,
) {
    if slot.as_deref().is_some_and(|old| old != text) {
        warnings.push(DbcWarning {
            location,
            kind: WarningKind::Duplicate,
            message: "second, different comment; the later one is used".to_owned(),
        });
    }
    *slot = Some(text.into_owned());
}
