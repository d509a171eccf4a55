//! Sources: the only stage that touches captures, sockets or serial lines. Each emits
//! [`SourceBatch`]es — CAN frames from a CAN transport, or whole native frames of a frame
//! definition — stamped with capture time (replay) or receive time (live), and may hand every
//! raw input to a [`CaptureTap`] for `ecu-bridge record`.
//!
//! Edge policies (toward the decode stage): UDP never blocks its socket reader — a full
//! channel drops the batch and counts it (`channel_drops`, `frames_dropped`), because an ECU
//! cannot be slowed down; serial and replay sources block (backpressure).

pub mod replay;
pub mod serial;
pub mod transport;
pub mod udp;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use decoders::CanFrame;
use decoders::frame::Framing;
use tokio::sync::mpsc;

/// A CAN frame and when it was seen, in nanoseconds since the UNIX epoch.
#[derive(Debug, Clone, Copy)]
pub struct TimedFrame {
    /// Capture or receive time.
    pub time_ns: u64,
    /// The frame.
    pub frame: CanFrame,
}

/// One whole native frame (a datagram, or a frame cut from a byte stream) of a frame
/// definition, and when it was seen.
#[derive(Debug, Clone)]
pub struct NativeFrame {
    /// Capture or receive time, ns since the UNIX epoch.
    pub time_ns: u64,
    /// The definition that describes it (looked up by name in the channel map).
    pub definition: Arc<str>,
    /// The frame, envelope included.
    pub bytes: Bytes,
}

/// What a source hands to the decode stage: the frames of one or more inputs. A CAN source
/// fills `can`, a source of native frames `native`.
#[derive(Debug, Clone, Default)]
pub struct SourceBatch {
    /// CAN frames from a CAN transport.
    pub can: Vec<TimedFrame>,
    /// Native frames of a frame definition.
    pub native: Vec<NativeFrame>,
}

impl SourceBatch {
    /// An empty batch with room for `frames` CAN frames.
    pub fn with_capacity(frames: usize) -> Self {
        Self {
            can: Vec::with_capacity(frames),
            native: Vec::new(),
        }
    }

    /// Frames of both kinds.
    pub fn len(&self) -> usize {
        self.can.len() + self.native.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.can.is_empty() && self.native.is_empty()
    }

    /// The earliest time in the batch, if any.
    pub fn first_time_ns(&self) -> Option<u64> {
        let can = self.can.iter().map(|f| f.time_ns);
        can.chain(self.native.iter().map(|f| f.time_ns)).min()
    }

    /// Empties the batch, keeping its capacity.
    pub fn clear(&mut self) {
        self.can.clear();
        self.native.clear();
    }
}

/// A source that carries native frames of a frame definition instead of a CAN transport:
/// which definition, and its envelope (to cut byte streams and follow counters).
#[derive(Debug, Clone)]
pub struct NativeInput {
    /// The definition's name.
    pub definition: Arc<str>,
    /// Its framing, from the compiled channel map.
    pub framing: Framing,
}

/// Frames per batch sent to the decode stage: large enough to amortise channel costs, small
/// enough to keep latency far below the flush window.
pub const FRAMES_PER_BATCH: usize = 256;

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
