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
