//! Live sources: the only code that touches sockets or serial lines (capture files are read by
//! `capture::replay`). Each emits [`SourceBatch`](crate::pipeline::edge::SourceBatch)es — CAN
//! frames from a CAN transport, or whole native frames of a frame definition — stamped with
//! their receive time, and may hand every raw input to a [`CaptureTap`] for `ecu-bridge record`.
//!
//! Edge policies (toward the decode stage): UDP never blocks its socket reader — while the
//! channel is full it holds frames up to a bound, then drops and counts the rest
//! (`channel_drops`, `frames_dropped`), because an ECU cannot be slowed down; serial and replay sources block (backpressure).

pub mod link;
pub mod receiver;
pub mod serial;
pub mod tunerstudio;
pub mod udp;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use decoders::frame::Framing;
use tokio::sync::mpsc;

/// A source that carries native frames of a frame definition instead of a CAN transport:
/// which definition, and its envelope (to cut byte streams and follow counters).
#[derive(Debug, Clone)]
pub struct NativeInput {
    /// The definition's name.
    pub definition: Arc<str>,
    /// Its framing, from the compiled channel map.
    pub framing: Framing,
    /// Other loaded definitions of whole-datagram frames, with their sync bytes: a datagram
    /// that does not start with this definition's sync but with one of theirs is theirs (F1 23
    /// and F1 24 packets on one port, told apart by the packet format).
    pub by_sync: Vec<(Arc<str>, Vec<u8>)>,
}

/// One input exactly as received, for recording.
#[derive(Debug, Clone)]
pub struct RawCapture {
    /// The source's configured name.
    pub source: Arc<str>,
    /// Receive time (kernel timestamp where available), ns since the UNIX epoch.
    pub time_ns: u64,
    /// The bytes: one datagram (UDP) or one read (serial).
    pub bytes: Bytes,
    /// For UDP: who sent it and where it arrived.
    pub addresses: Option<(SocketAddr, SocketAddr)>,
}

/// Where sources send raw inputs when recording. Bounded; UDP uses `try_send` and counts
/// what it cannot hand over, serial awaits.
pub type CaptureTap = mpsc::Sender<RawCapture>;

/// Why a live source stopped or could not start. (A malformed datagram or line is not an
/// error: it is counted in the source's metrics and skipped.)
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A system call failed.
    #[error("source {source_name}: {action}: {error}")]
    Io {
        /// The source's configured name.
        source_name: String,
        /// What was being done ("binding 0.0.0.0:20000", "opening /dev/ttyACM0").
        action: String,
        /// The OS error.
        error: std::io::Error,
    },
    /// The source could not be set up as configured.
    #[error("source {source_name}: {message}")]
    Setup {
        /// The source's configured name.
        source_name: String,
        /// What went wrong, specifically.
        message: String,
    },
}
