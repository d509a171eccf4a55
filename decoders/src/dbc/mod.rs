//! DBC channel maps: the model of a DBC file (messages, signals, multiplexing, value tables,
//! comments, cycle times), its parser, and the bit-level decoding and encoding of signals.
//!
//! Loading is tolerant of the quirks real files carry (see `docs/can-formats.md` §5): a quirk becomes a
//! [`DbcWarning`] naming file and line, never an error. A line that cannot be understood at all
//! is a [`DbcError`] with file, line and column.

mod assemble;
mod parse;
mod signal;
mod syntax;
mod token;

pub use parse::{DbcSource, Parsed, parse_dbc, parse_dbc_set};
pub use signal::{BitLayout, EncodeError};

use crate::can::CanId;

/// A parsed DBC: the messages it defines, in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dbc {
    /// Messages in the order they were defined.
    pub messages: Vec<Message>,
}

impl Dbc {
    /// The message with this id, if the DBC defines one.
    pub fn message(&self, id: CanId) -> Option<&Message> {
        self.messages.iter().find(|message| message.id == id)
    }

    /// The message with this name, if any.
    pub fn message_by_name(&self, name: &str) -> Option<&Message> {
        self.messages.iter().find(|message| message.name == name)
    }
}

/// One `BO_` message and its signals.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The id as the DBC writes it (bit 31 = extended).
    pub id: CanId,
    /// Message name; becomes the parameter subgroup.
    pub name: String,
    /// Declared payload size in bytes (the DLC).
    pub size: u8,
    /// Transmitting node.
    pub sender: String,
    /// Signals in file order; this order is the data-format order.
    pub signals: Vec<Signal>,
    /// `CM_ BO_` comment.
    pub comment: Option<String>,
    /// `BA_ "GenMsgCycleTime"` in milliseconds: the expected send period.
    pub cycle_time_ms: Option<u32>,
    /// Where the message is defined (file name as given to the parser, 1-based line).
    pub location: Location,
}

/// One `SG_` signal.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    /// Signal name (unique within its message).
    pub name: String,
    /// Start bit as written in the DBC (LSB for Intel, MSB in sawtooth numbering for Motorola).
    pub start_bit: u16,
    /// Width in bits, 1..=64.
    pub length: u16,
    /// Intel (little-endian) or Motorola (big-endian).
    pub byte_order: ByteOrder,
    /// Two's-complement signed raw value.
    pub signed: bool,
    /// Integer, or IEEE float per `SIG_VALTYPE_`.
    pub value_type: ValueType,
    /// Physical = raw × scale + offset.
    pub scale: f64,
    /// Physical = raw × scale + offset.
    pub offset: f64,
    /// Declared physical minimum (`[min|max]`).
    pub min: f64,
    /// Declared physical maximum.
    pub max: f64,
    /// Physical unit.
    pub unit: String,
    /// Receiving nodes.
    pub receivers: Vec<String>,
    /// Role in multiplexing.
    pub mux: Multiplexing,
    /// `CM_ SG_` comment; becomes the parameter description.
    pub comment: Option<String>,
    /// `VAL_` table: raw value → text, in file order; becomes a text conversion.
    pub value_descriptions: Vec<(i64, String)>,
    /// Where the signal is defined.
    pub location: Location,
}

/// Bit numbering of a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteOrder {
    /// `@1`: Intel, start bit is the least significant bit.
    LittleEndian,
    /// `@0`: Motorola, start bit is the most significant bit (sawtooth numbering).
    BigEndian,
}

/// How the raw bits are interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// Plain integer (signed or not per [`Signal::signed`]).
    Integer,
    /// IEEE 754 single (`SIG_VALTYPE_ … : 1`), 32 bits.
    Float32,
    /// IEEE 754 double (`SIG_VALTYPE_ … : 2`), 64 bits.
    Float64,
}

/// A signal's role in multiplexing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Multiplexing {
    /// Always present.
    None,
    /// `M`: the switch whose raw value selects which multiplexed signals are present.
    Multiplexor,
    /// `m<n>` or `m<n>M`, or described by `SG_MUL_VAL_`: present only while `switch` has a
    /// raw value inside one of `ranges` (inclusive).
    Multiplexed {
        /// Name of the switch signal in the same message.
        switch: String,
        /// Inclusive raw ranges of the switch for which this signal is present.
        ranges: Vec<(u64, u64)>,
        /// Whether this signal is itself a switch for others (`m<n>M`, extended multiplexing).
        is_switch: bool,
    },
}

/// A place in a DBC file, for warnings and errors.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Location {
    /// File name as given to the parser.
    pub file: String,
    /// 1-based line.
    pub line: u32,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// A DBC line that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct DbcError {
    /// File name as given to the parser.
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column where parsing stopped.
    pub column: u32,
    /// What was wrong, in lower case.
    pub message: String,
}

/// A quirk of a real DBC that loading survived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbcWarning {
    /// Where the quirk is.
    pub location: Location,
    /// Which quirk.
    pub kind: WarningKind,
    /// Human-readable detail.
    pub message: String,
}

impl std::fmt::Display for DbcWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// The kinds of survivable DBC quirks.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WarningKind {
    /// `VAL_` (or `CM_`, `BA_`, `SIG_VALTYPE_`) for a signal or message that does not exist.
    UnknownSignal,
    /// `CM_ SG_ <id> "text";` with the signal name missing.
    CommentWithoutSignal,
    /// A message id above 0x7FF without the extended flag (a layout alias, never on a bus).
    PseudoId,
    /// `CM_ "IMPORT file.dbc";`: a generator stub; the import is reported in [`Parsed::imports`].
    Import,
    /// A keyword or section the parser does not model (skipped).
    UnsupportedSection,
    /// A signal that does not fit in its message's declared size.
    SignalOutsideMessage,
    /// Two messages with the same id (the later one is dropped) or name, two signals with the
    /// same name in a message (the later one is dropped), or a second, different comment,
    /// value table or switch for the same item.
    Duplicate,
    /// An `m<n>` signal whose switch cannot be found (no single `M` signal, no
    /// `SG_MUL_VAL_`); the signal is dropped because its presence is unknowable.
    UnresolvedMultiplexer,
    /// `SIG_VALTYPE_` naming an unknown type, or a float type on a signal of the wrong width;
    /// the signal stays an integer.
    ValueTypeMismatch,
    /// A `VAL_` list that ends at the end of its line without the closing `;`.
    MissingSemicolon,
}
