//! Capture files: `ecu-bridge record` writes live traffic exactly as received, with receive
//! times, and `replay` reads it back through the same transport receivers the live sources use,
//! so a replay yields the frames and timestamps the live run produced.
//!
//! ```text
//! RawCapture ─▶ CaptureWriter ─┬─ UDP source    ─▶ <name>.pcapng       (pcapng: wire format, Wireshark)
//!                         ├─ serial source ─▶ <name>.serial       (serial_log: timestamped reads)
//!                         └─ both          ─▶ <name>.candump.log  (decoded frames, candump -L)
//! <any of them> ─▶ CaptureReader ─▶ TimedFrame   (format detected by content)
//! ```
//!
//! `pcapng` and `serial_log` own byte layouts only (caller buffers, no IO, no clock); the
//! recorder and reader own the files. Formats are documented in `docs/capture-formats.md`.

pub mod pcapng;
pub mod reader;
pub mod replay;
pub mod route;
pub mod serial_log;
pub mod writer;

use std::path::PathBuf;

pub use reader::{CaptureReadError, CaptureReader};
pub use writer::{CaptureWriter, RecordStats, SourceRecordStats};

/// The capture file formats, told apart by their first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureFormat {
    /// pcapng of UDP datagrams (starts `0A 0D 0D 0A`).
    Pcapng,
    /// Serial byte log (starts `ECUBSER1`).
    SerialLog,
    /// `candump -L` text (first non-blank byte `(`).
    Candump,
}

impl CaptureFormat {
    /// The format of a file starting with `head`; `None` if unknown. `head` should hold at
    /// least 8 bytes, or the whole file if shorter; leading blank lines are skipped for
    /// candump logs.
    pub fn detect(head: &[u8]) -> Option<Self> {
        if head.starts_with(&pcapng::MAGIC) {
            Some(Self::Pcapng)
        } else if head.starts_with(&serial_log::MAGIC) {
            Some(Self::SerialLog)
        } else {
            match head.iter().find(|b| !b.is_ascii_whitespace()) {
                Some(b'(') => Some(Self::Candump),
                _ => None,
            }
        }
    }
}

/// Why recording failed. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// A capture file could not be created (it may already exist: recordings never overwrite).
    #[error("{path}: creating: {source}")]
    Create {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Writing or flushing a capture file failed.
    #[error("{path}: writing: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}
