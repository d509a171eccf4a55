//! `DecodeError`: why one frame, datagram or line could not be decoded, with the byte offset.
//!
//! Errors are `Copy` and allocation-free so the hot path can count them by [`DecodeError::kind`]
//! without formatting. Load-time errors (DBC files) live in [`crate::dbc::DbcError`] instead.

/// A frame, datagram or line that could not be decoded.
///
/// Every variant carries `offset`: the byte position in the input where the problem was seen.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ends before a field it announces.
    #[error("truncated at byte {offset}: need {need} bytes, have {have}")]
    Truncated {
        /// Where the cut-off field starts.
        offset: usize,
        /// Bytes the field needs.
        need: usize,
        /// Bytes left.
        have: usize,
    },
    /// A protocol version this decoder does not speak.
    #[error("unsupported version {found} at byte {offset}")]
    BadVersion {
        /// Where the version byte is.
        offset: usize,
        /// The version found.
        found: u8,
    },
    /// A message type (op code, frame letter) this decoder does not take.
    #[error("unsupported message type {found:#04x} at byte {offset}")]
    UnsupportedType {
        /// Where the type byte is.
        offset: usize,
        /// The byte found.
        found: u8,
    },
    /// A length field larger than its format allows.
    #[error("length {len} at byte {offset} exceeds {max}")]
    BadLength {
        /// Where the length field is.
        offset: usize,
        /// The length found.
        len: usize,
        /// The largest legal length.
        max: usize,
    },
    /// A character that is not a hex digit where one was required.
    #[error("bad hex digit {found:#04x} at byte {offset}")]
    BadHex {
        /// Where the character is.
        offset: usize,
        /// The byte found.
        found: u8,
    },
    /// A CAN id outside the 11- or 29-bit range.
    #[error("can id {id:#x} at byte {offset} is out of range")]
    BadCanId {
        /// Where the id starts.
        offset: usize,
        /// The id found.
        id: u32,
    },
    /// Text that does not follow the format's grammar.
    #[error("syntax error at byte {offset}: expected {expected}")]
    Syntax {
        /// Where parsing stopped.
        offset: usize,
        /// What the grammar wanted there.
        expected: &'static str,
    },
    /// Bytes left over after a complete record.
    #[error("{extra} trailing bytes at byte {offset}")]
    TrailingBytes {
        /// Where the leftover starts.
        offset: usize,
        /// How many bytes are left over.
        extra: usize,
    },
}

impl DecodeError {
    /// The byte offset at which the problem was found.
    pub fn offset(&self) -> usize {
        match *self {
            Self::Truncated { offset, .. }
            | Self::BadVersion { offset, .. }
            | Self::UnsupportedType { offset, .. }
            | Self::BadLength { offset, .. }
            | Self::BadHex { offset, .. }
            | Self::BadCanId { offset, .. }
            | Self::Syntax { offset, .. }
            | Self::TrailingBytes { offset, .. } => offset,
        }
    }

    /// A short stable label for metrics (`decode_errors{kind=...}`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Truncated { .. } => "truncated",
            Self::BadVersion { .. } => "bad_version",
            Self::UnsupportedType { .. } => "unsupported_type",
            Self::BadLength { .. } => "bad_length",
            Self::BadHex { .. } => "bad_hex",
            Self::BadCanId { .. } => "bad_can_id",
            Self::Syntax { .. } => "syntax",
            Self::TrailingBytes { .. } => "trailing_bytes",
        }
    }

    /// Whether the caller can skip this unit and go on with the next one.
    ///
    /// All current variants concern one self-delimited unit (a datagram or a line), so the
    /// answer is yes; stream framers that must resynchronise will add variants that say no.
    pub fn is_recoverable(&self) -> bool {
        true
    }
}
