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
    /// Flags that contradict each other or the frame kind (a remote CAN FD frame).
    #[error("invalid flags at byte {offset}: {reason}")]
    BadFlags {
        /// Where the flag-carrying field starts.
        offset: usize,
        /// Which combination was seen.
        reason: &'static str,
    },
    /// A stream line longer than the framer's bound; its bytes up to the next terminator are
    /// dropped.
    #[error("line at stream byte {offset} exceeds {max} bytes; dropped")]
    LineTooLong {
        /// Stream position of the line's first byte (counted from the framer's creation).
        offset: usize,
        /// The framer's line bound.
        max: usize,
    },
    /// The frame does not start with its definition's sync bytes.
    #[error("sync bytes missing at byte {offset}")]
    BadSync {
        /// Where the first mismatching sync byte is.
        offset: usize,
    },
    /// The frame's check value (CRC or checksum) does not match its bytes.
    #[error("check value {found:#x} at byte {offset} does not match computed {computed:#x}")]
    BadCheck {
        /// Where the check value sits.
        offset: usize,
        /// The value computed over the covered bytes.
        computed: u32,
        /// The value the frame carries.
        found: u32,
    },
    /// A field that selects one record of an array holds an index past the array's end.
    #[error("record index {index} at byte {offset} is not below the array count {count}")]
    BadIndex {
        /// Where the selecting field is.
        offset: usize,
        /// The index found.
        index: u64,
        /// Records in the array.
        count: u32,
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
            | Self::TrailingBytes { offset, .. }
            | Self::BadFlags { offset, .. }
            | Self::LineTooLong { offset, .. }
            | Self::BadSync { offset }
            | Self::BadCheck { offset, .. }
            | Self::BadIndex { offset, .. } => offset,
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
            Self::BadFlags { .. } => "bad_flags",
            Self::LineTooLong { .. } => "line_too_long",
            Self::BadSync { .. } => "bad_sync",
            Self::BadCheck { .. } => "bad_check",
            Self::BadIndex { .. } => "bad_index",
        }
    }

    /// Whether the caller can skip this unit and go on with the next one.
    ///
    /// Variants about one self-delimited unit (a datagram or a line) say yes: skip it and go
    /// on. [`DecodeError::LineTooLong`] says no: the stream lost bytes up to the next line
    /// terminator (the framer has already resynchronised there), so state that spans lines,
    /// such as timestamp unwrapping, should be treated as after a gap.
    pub fn is_recoverable(&self) -> bool {
        match self {
            Self::Truncated { .. }
            | Self::BadVersion { .. }
            | Self::UnsupportedType { .. }
            | Self::BadLength { .. }
            | Self::BadHex { .. }
            | Self::BadCanId { .. }
            | Self::Syntax { .. }
            | Self::TrailingBytes { .. }
            | Self::BadFlags { .. }
            | Self::BadSync { .. }
            | Self::BadCheck { .. }
            | Self::BadIndex { .. } => true,
            Self::LineTooLong { .. } => false,
        }
    }
}
