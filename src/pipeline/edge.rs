//! The pipeline's edges: the types that flow from one stage to the next, and each edge's
//! when-full policy. A stage imports these types, never another stage.
//!
//! ```text
//! source ──SourceBatch──▶ decode ──Decoded──▶ batch ──Batch──▶ publish ──gRPC──▶ Stream API
//! ```
//!
//! Every edge is a bounded channel of `batch.channel_capacity` items (at most 4 in a replay at
//! max speed), built by [`crate::pipeline`], and bounded in bytes too: the [`SourceBatch`] and
//! [`Decoded`] edges hold at most 4 MiB of frames or rows ([`crate::pipeline::weighed`]; a
//! heavier item goes alone), the [`Batch`] edge at most 2 MiB of packets, whichever is fewer.
//! When one is full (in items or in bytes):
//!
//! | edge | sender | when full |
//! |---|---|---|
//! | [`SourceBatch`] | replay and serial sources | **block**: the capture or the adapter waits, nothing is lost |
//! | [`SourceBatch`] | UDP sources | **hold, then drop and count**: the reader keeps frames while the channel is full, up to `source::udp::HOLD_FRAMES`, and drops (counting `channel_drops`, `frames_dropped`) only frames beyond: an ECU cannot be slowed down, and a blocked socket reader would only move the loss into the kernel |
//! | [`Decoded`] | decode | **block** |
//! | [`Batch`] | batch | **block** |
//!
//! Between the [`Decoded`] and [`Batch`] edges, the batch stage's open packets hold at most
//! 8 MiB of encoded rows together; when full, the largest open packet is handed on early,
//! which blocks like any send on the [`Batch`] edge (`src/batch.rs`). Nothing is dropped.
//!
//! No Open Streaming (protobuf) type crosses an edge before the publish stage: decode hands on
//! format indices and, on a reload, the new compiled map; batch hands on rows already encoded in
//! the packet's wire layout ([`open_streaming::rows`]), which publish wraps without a rebuild.

use std::sync::Arc;

use super::weighed::Weighed;
use bytes::Bytes;
use decoders::channel_map::ChannelMap;
pub use decoders::laps::LapEvent;
use decoders::{CanFrame, RowBatch, RowHeader};
use tokio::time::Instant;

/// Stage inputs whose depth [`crate::telemetry::Metrics::queue_depths`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    /// Frame batches waiting for the decode stage.
    Decode = 0,
    /// Decoded rows waiting for the batch stage.
    Batch = 1,
    /// Packets waiting for the publish stage.
    Publish = 2,
}

impl Queue {
    /// The queue's position in [`crate::telemetry::Metrics::queue_depths`].
    pub fn index(self) -> usize {
        self as usize
    }
}

// ---- source → decode

/// Frames per batch sent to the decode stage: large enough to amortise channel costs, small
/// enough to keep latency far below the flush window.
pub const FRAMES_PER_BATCH: usize = 256;

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

    /// Keeps the first `frames` frames (CAN frames first, then native ones); returns how many
    /// were removed.
    pub fn keep_first(&mut self, frames: usize) -> usize {
        let before = self.len();
        if before <= frames {
            return 0;
        }
        self.can.truncate(frames);
        self.native.truncate(frames - self.can.len());
        before - self.len()
    }

    /// Empties the batch, keeping its capacity.
    pub fn clear(&mut self) {
        self.can.clear();
        self.native.clear();
    }
}

// ---- decode → batch

/// A data format first seen: its index, its ordered parameter identifiers, and the data
/// stream its rows go to (an index into the run's stream names, `[car] stream` = 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatAnnouncement {
    /// The format index rows carry.
    pub format: u32,
    /// Its parameters, in row order.
    pub identifiers: Vec<String>,
    /// Its data stream.
    pub stream: u16,
}

/// What the decode stage hands to the batch stage.
#[derive(Debug)]
pub struct Decoded {
    /// Formats first used by `rows`.
    pub new_formats: Vec<FormatAnnouncement>,
    /// The decoded rows.
    pub rows: RowBatch,
    /// When the decode stage received the frames: the start of the publish latency.
    pub received: tokio::time::Instant,
    /// A reloaded channel map: everything before belongs to the old map,
    /// `new_formats` and `rows` to the new one (format indices start again from 0).
    pub reconfigure: Option<Arc<ChannelMap>>,
    /// Laps completed by samples in `rows`, in time order.
    pub laps: Vec<LapEvent>,
}

impl Weighed for SourceBatch {
    /// The frames, and the bytes of native frames.
    fn weight(&self) -> usize {
        self.can.len() * std::mem::size_of::<TimedFrame>()
            + self
                .native
                .iter()
                .map(|native| std::mem::size_of::<NativeFrame>() + native.bytes.len())
                .sum::<usize>()
    }
}

impl Weighed for Decoded {
    /// The rows' headers and values (announcements and laps are small and rare).
    fn weight(&self) -> usize {
        self.rows.len() * std::mem::size_of::<RowHeader>()
            + self.rows.sample_count() * std::mem::size_of::<f64>()
    }
}

// ---- batch → publish

/// What the batch stage hands to the publish stage.
#[derive(Debug, Clone)]
pub enum Batch {
    /// Data formats to resolve before the rows that use them.
    Formats(Vec<FormatAnnouncement>),
    /// One row packet's worth of rows of one format.
    Rows(RowPacket),
    /// A reloaded channel map: publish its configuration, and forget the old formats.
    Reconfigure(Arc<ChannelMap>),
    /// The samples that follow begin a session (the first ever, or after a silence of the
    /// session's `idle_end` in sample time): the first one's time, ns since the UNIX epoch.
    /// Every row before it was handed on before.
    Boundary(u64),
    /// Laps completed; every row up to them was handed on before (so a lap marker lies in
    /// the data range already sent: `docs/open-streaming.md` rule 36).
    Laps(Vec<LapEvent>),
}

/// Rows of one data format, encoded as they arrived, ready to become a `RowDataPacket`.
#[derive(Debug, Clone, PartialEq)]
pub struct RowPacket {
    /// The format index.
    pub format: u32,
    /// One timestamp per row, ns since the UNIX epoch.
    pub timestamps: Vec<u64>,
    /// The packet's `rows` field: one encoded `SampleRow` per timestamp
    /// ([`open_streaming::rows::encode_row`]).
    pub encoded_rows: Vec<u8>,
    /// Samples in all rows.
    pub samples: usize,
    /// When the first of these rows reached the pipeline (publish latency starts here).
    pub first_received: Instant,
}

impl RowPacket {
    /// Encoded size of the `RowDataPacket` this becomes, within the few bytes of its header.
    pub fn encoded_len(&self) -> usize {
        PACKET_HEADER_BYTES + self.timestamps.len() * 8 + self.encoded_rows.len()
    }
}

/// Upper bound of a `RowDataPacket`'s bytes besides timestamps and rows: the data-format
/// field (≤ 13) and the timestamps field's tag and length (≤ 11).
const PACKET_HEADER_BYTES: usize = 24;
