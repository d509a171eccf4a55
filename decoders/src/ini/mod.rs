//! TunerStudio INI files for polled serial ECUs (Speeduino, rusEFI, MegaSquirt): the loader,
//! the `[OutputChannels]` decode plan with its expression evaluator, and the sans-IO pieces of
//! the serial protocol (command templates, msEnvelope framing, reply status).
//!
//! Like the rest of the crate: text and bytes in, values out; no IO, no clock (the time that
//! `timeNow` reads is an argument), no logging. Real INIs are untidy, so only a broken line in
//! a section the bridge reads is an [`IniError`]; everything else is an [`IniWarning`] with its
//! line. What is supported is written up in `docs/tunerstudio-ini.md`.

mod channels;
mod command;
mod envelope;
pub mod expr;
mod expr_parse;
mod lines;
mod load;
mod resolve;

pub use channels::{Channel, ChannelKind, DataType, OutputChannels};
pub use command::{
    Command, CommandError, LEGACY_REALTIME, SPEEDUINO_REALTIME, chunks, rusefi_output_channels,
    speeduino_realtime,
};
pub use envelope::{
    ENVELOPE_OVERHEAD, EnvelopeDecoder, Reply, Status, decode_envelope, encode_envelope,
};
pub use expr::{Expr, ExprError, FUNCTIONS, Program};
pub use load::IniFile;

/// A line of an INI section the bridge reads that cannot be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct IniError {
    /// The file name the caller gave.
    pub file: String,
    /// 1-based line (0 when the problem is the file as a whole).
    pub line: u32,
    /// 1-based column of the offending field (0 when not one field).
    pub column: u32,
    /// What is wrong.
    pub message: String,
}

/// Something in an INI the loader skipped or guessed; loading went on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IniWarning {
    /// 1-based line (0 for a note about the whole file).
    pub line: u32,
    /// What was skipped and why.
    pub message: String,
}

impl IniWarning {
    pub(crate) fn new(line: u32, message: String) -> Self {
        Self { line, message }
    }
}

impl std::fmt::Display for IniWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}
