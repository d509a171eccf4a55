//! Placeholder until signal decoding lands.

/// Why a physical value could not be encoded into a frame.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("value cannot be encoded")]
pub struct EncodeError;
