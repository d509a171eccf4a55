//! Sources: the only stage that touches captures, sockets or serial lines. Each emits batches of
//! [`TimedFrame`]s, stamped with capture time (replay) or receive time (live).

pub mod replay;

use decoders::CanFrame;

/// A CAN frame and when it was seen, in nanoseconds since the UNIX epoch.
#[derive(Debug, Clone, Copy)]
pub struct TimedFrame {
    /// Capture or receive time.
    pub time_ns: u64,
    /// The frame.
    pub frame: CanFrame,
}

/// Frames per batch sent to the decode stage: large enough to amortise channel costs, small
/// enough to keep latency far below the flush window.
pub const FRAMES_PER_BATCH: usize = 256;
