//! Pipeline counters: one struct of atomics shared by every stage, bumped outside tight loops
//! (per batch, not per sample where possible) and read for logs, summaries and metrics.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters for one pipeline run. All are totals since start.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Frames read from sources.
    pub frames_in: AtomicU64,
    /// Capture lines or datagrams rejected as malformed (also in `decode_errors`).
    pub rejected_inputs: AtomicU64,
    /// Frames whose id no selected message has.
    pub unknown_ids: AtomicU64,
    /// Frames shorter than their DBC message (decoded as far as they go).
    pub short_frames: AtomicU64,
    /// Remote, error or empty frames, which carry no values.
    pub frames_without_values: AtomicU64,
    /// Frames dropped because the format table was full.
    pub format_limit_drops: AtomicU64,
    /// Samples decoded.
    pub samples_decoded: AtomicU64,
    /// Rows (frames with values) decoded.
    pub rows_decoded: AtomicU64,
    /// Data packets handed to the Stream API.
    pub packets_published: AtomicU64,
    /// Samples in those packets.
    pub samples_published: AtomicU64,
    decode_errors: Mutex<BTreeMap<&'static str, u64>>,
}

impl Metrics {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Counts one malformed input of `kind` (a `DecodeError::kind` label).
    pub fn count_decode_error(&self, kind: &'static str) {
        Self::add(&self.rejected_inputs, 1);
        if let Ok(mut errors) = self.decode_errors.lock() {
            *errors.entry(kind).or_insert(0) += 1;
        }
    }

    /// Malformed inputs by kind.
    pub fn decode_errors(&self) -> BTreeMap<&'static str, u64> {
        self.decode_errors
            .lock()
            .map(|errors| errors.clone())
            .unwrap_or_default()
    }
}

/// Counters for one source (a UDP socket, a serial device, a capture file).
#[derive(Debug, Default)]
pub struct SourceMetrics {
    /// The source's configured name (metrics label).
    pub name: String,
    /// Datagrams (UDP) or reads (serial) received.
    pub datagrams: AtomicU64,
    /// Bytes received.
    pub bytes: AtomicU64,
    /// Datagrams larger than the receive buffer, cut short by the kernel.
    pub truncated: AtomicU64,
    /// Datagrams the kernel dropped for this socket (cumulative `SO_RXQ_OVFL` count).
    pub kernel_drops: AtomicU64,
    /// Datagrams lost according to the transport's sequence numbers (cannelloni).
    pub sequence_gaps: AtomicU64,
    /// CAN frames decoded from the transport and handed on.
    pub frames: AtomicU64,
    /// Frame batches dropped because the decode stage's channel was full (UDP only).
    pub channel_drops: AtomicU64,
    /// Frames inside those dropped batches.
    pub frames_dropped: AtomicU64,
    /// Times the device or socket was lost.
    pub outages: AtomicU64,
    /// Times it came back.
    pub reconnects: AtomicU64,
    decode_errors: Mutex<BTreeMap<&'static str, u64>>,
}

impl SourceMetrics {
    /// Counters for the source called `name`.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            ..Self::default()
        }
    }

    /// Counts one malformed datagram, line or frame of `kind`.
    pub fn count_decode_error(&self, kind: &'static str) {
        if let Ok(mut errors) = self.decode_errors.lock() {
            *errors.entry(kind).or_insert(0) += 1;
        }
    }

    /// Malformed inputs by kind.
    pub fn decode_errors(&self) -> BTreeMap<&'static str, u64> {
        self.decode_errors
            .lock()
            .map(|errors| errors.clone())
            .unwrap_or_default()
    }
}
