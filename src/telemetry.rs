//! Pipeline counters: one struct of atomics shared by every stage, bumped outside tight loops
//! (per batch, not per sample where possible) and read for logs, summaries and metrics.
//!
//! Every counter and gauge is declared once, with its Prometheus HELP text, in a `counters!`
//! block below; `src/service/exposition.rs` exports all of them from the `EXPORTED` lists, so
//! nothing else changes when one is added. Plain atomics (not prometheus-client metric types)
//! because the stages update them with `Metrics::add`/`set` and read them for summaries, and
//! publish sets a counter's running total.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::live_values::LiveValues;

/// Names of the three stage inputs, in the order of [`Metrics::queue_depths`].
pub const QUEUES: [&str; 3] = ["decode", "batch", "publish"];

/// Whether an exported field only grows or can go down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportedKind {
    /// A total since start.
    Counter,
    /// A value that is set.
    Gauge,
}

/// One field exported as a Prometheus family of its own: the name is the field's name (the
/// exposition adds the `ecu_bridge_` prefix and, for counters, `_total`).
#[derive(Debug)]
pub struct Exported<T: 'static> {
    /// The field's name.
    pub name: &'static str,
    /// The family's `# HELP` text, also the field's doc.
    pub help: &'static str,
    /// Counter or gauge.
    pub kind: ExportedKind,
    /// Reads the field.
    pub field: fn(&T) -> &AtomicU64,
}

/// Declares a counters struct: first the exported `AtomicU64` fields, each as
/// `Kind name: "HELP text",` (the HELP text is also its doc), then after `;` the other fields.
/// It also lists the exported ones in `EXPORTED`, which `src/service/exposition.rs` turns into
/// Prometheus families, so a new counter is one line here.
macro_rules! counters {
    (
        $(#[$attr:meta])*
        pub struct $name:ident {
            $( $kind:ident $field:ident: $help:literal, )*
            ;
            $( $(#[$other_attr:meta])* $vis:vis $other:ident: $ty:ty, )*
        }
    ) => {
        $(#[$attr])*
        pub struct $name {
            $( #[doc = $help] pub $field: AtomicU64, )*
            $( $(#[$other_attr])* $vis $other: $ty, )*
        }

        impl $name {
            /// The fields exported as families of their own, in declaration order.
            pub const EXPORTED: &[Exported<Self>] = &[
                $( Exported {
                    name: stringify!($field),
                    help: $help,
                    kind: ExportedKind::$kind,
                    field: |m| &m.$field,
                }, )*
            ];
        }
    };
}

counters! {
    /// Counters for one pipeline run: totals since start, except the gauges noted.
    #[derive(Debug, Default)]
    pub struct Metrics {
        Counter frames_in: "Frames read from sources.",
        // Also counted by kind in `decode_errors`.
        Counter rejected_inputs: "Capture lines or datagrams rejected as malformed.",
        // Message ids are those of frame definitions.
        Counter unknown_ids: "Frames whose CAN id or message id no selected message has.",
        // Decoded as far as they go.
        Counter short_frames: "Frames shorter than their DBC message.",
        Counter frames_without_values: "Remote, error or empty frames, which carry no values.",
        Counter format_limit_drops: "Frames dropped because the format table was full.",
        Counter samples_decoded: "Samples decoded.",
        Counter rows_decoded: "Rows (frames with values) decoded.",
        Counter packets_published: "Packets the Stream API acknowledged.",
        Counter samples_published: "Samples in packets the Stream API acknowledged.",
        Counter bytes_published: "Bytes of packet content the Stream API acknowledged.",
        // Publish sets the running total.
        Counter stream_reopens: "Times the Stream API came back after an outage.",
        Counter publish_outages: "Outages: a write failed and packets began to wait in the spool.",
        Counter packets_resent: "Packets sent again after an outage or a restart.",
        Counter samples_rejected: "Samples in packets the Stream API refused for good (dropped).",
        Counter samples_lost_no_room: "Samples dropped: neither the spool nor memory could hold them.",
        Gauge samples_waiting: "Samples in the spool not yet acknowledged by the Stream API.",
        Gauge oldest_waiting_age_seconds: "Age of the oldest waiting sample (sample time to now), whole seconds.",
        Gauge spool_bytes: "Bytes of spool segments on disk.",
        Counter spool_write_failures: "Spool writes that failed (disk full, I/O error).",
        Counter spool_dropped_samples: "Samples the spool dropped to stay within its size and age bounds.",
        // 0 while CreateSession is pending.
        Gauge session_state: "Open Streaming session: 0 none yet, 1 open, 2 ended (waiting for the car).",
        Counter sessions_begun: "Sessions begun (CreateSession) with the car's first sample.",
        Counter sessions_ended: "Sessions ended (EndSession), after the car went quiet or at the stop.",
        Counter laps_marked: "Lap markers written from the car's lap signal.",
        ;
        /// Batches waiting in front of decode, batch and publish: set by each stage as it receives
        /// and read from the channels every 250 ms (`crate::pipeline::queues`), so a blocked stage
        /// does not freeze them.
        pub queue_depths: [AtomicU64; 3],
        /// Frame batch received by decode → its packet handed to the Stream API.
        pub publish_latency: LatencyHistogram,
        /// The latest value of every parameter, written by decode, served at `/values`.
        pub live_values: LiveValues,
        /// The Open Streaming session being written (empty before CreateSession returns).
        session: Mutex<String>,
        decode_errors: Mutex<BTreeMap<&'static str, u64>>,
    }
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

    /// Sets a gauge.
    pub fn set(gauge: &AtomicU64, value: u64) {
        gauge.store(value, Ordering::Relaxed);
    }

    /// Counts one malformed input of `kind` (a `DecodeError::kind` label).
    pub fn count_decode_error(&self, kind: &'static str) {
        self.count_decode_errors(kind, 1);
    }

    /// Counts `n` malformed inputs of `kind` (nothing when `n` is 0).
    pub fn count_decode_errors(&self, kind: &'static str, n: u64) {
        if n == 0 {
            return;
        }
        Self::add(&self.rejected_inputs, n);
        if let Ok(mut errors) = self.decode_errors.lock() {
            *errors.entry(kind).or_insert(0) += n;
        }
    }

    /// Malformed inputs by kind.
    pub fn decode_errors(&self) -> BTreeMap<&'static str, u64> {
        self.decode_errors
            .lock()
            .map(|errors| errors.clone())
            .unwrap_or_default()
    }

    /// Records the session key once CreateSession returned.
    pub fn set_session(&self, key: &str) {
        if let Ok(mut session) = self.session.lock() {
            key.clone_into(&mut session);
        }
    }

    /// The session being written, or an empty string before it exists.
    pub fn session(&self) -> String {
        self.session.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

counters! {
    /// Counters for one source (a UDP socket, a serial device, a capture file).
    #[derive(Debug, Default)]
    pub struct SourceMetrics {
        Counter frames: "CAN or native frames taken from the transport and handed on.",
        Counter bytes: "Bytes received.",
        Counter reads: "Reads from the socket or device: one per UDP datagram, one per serial read.",
        // The socket's cumulative `SO_RXQ_OVFL` count.
        Counter kernel_drops: "Datagrams the kernel dropped for this socket (SO_RXQ_OVFL).",
        // Cannelloni: datagrams the kernel dropped are not counted again here.
        Counter sequence_gaps:
            "Datagrams (cannelloni) or native frames lost before the socket, by their sequence counters.",
        Counter sequence_resets: "Times a sender's sequence counter jumped back (the sender restarted).",
        Counter truncated: "Datagrams larger than the receive buffer, cut short.",
        // UDP only: the one edge that drops rather than blocks.
        Counter channel_drops: "Frame batches dropped because the decode channel was full.",
        Counter frames_dropped: "Frames inside the dropped batches.",
        Counter outages: "Times the device or socket was lost.",
        Counter reconnects: "Times the device or socket came back.",
        Counter poll_requests:
            "TunerStudio requests sent (each blocking-factor piece of a block, retries included).",
        Counter poll_replies: "TunerStudio replies received whole with a good CRC, whatever their status.",
        Counter poll_timeouts: "TunerStudio requests with no whole reply within the reply timeout.",
        Counter poll_crc_failures: "TunerStudio replies dropped for a bad CRC or an impossible length.",
        Counter poll_retries: "TunerStudio requests sent again after a timeout, a bad CRC or a retryable status.",
        Counter poll_failed_blocks: "Output-channel blocks given up after every retry (nothing published for them).",
        Counter poll_status_timeout: "TunerStudio replies with status 0x80 (the ECU timed out reading the request).",
        Counter poll_status_crc_error: "TunerStudio replies with status 0x82 (the ECU saw a bad CRC on the request).",
        Counter poll_status_unknown_command: "TunerStudio replies with status 0x83 (unknown command).",
        Counter poll_status_range_error: "TunerStudio replies with status 0x84 (offset or count past the block).",
        Counter poll_status_busy: "TunerStudio replies with status 0x85 (busy).",
        Counter poll_status_other: "TunerStudio replies with any other status than 0x00.",
        Gauge poll_rate_millihertz: "Output-channel blocks completed per second over the last second, in thousandths.",
        ;
        /// The source's configured name (metrics label).
        pub name: String,
        decode_errors: Mutex<BTreeMap<&'static str, u64>>,
    }
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
        self.count_decode_errors(kind, 1);
    }

    /// Counts `n` malformed inputs of `kind` (nothing when `n` is 0).
    pub fn count_decode_errors(&self, kind: &'static str, n: u64) {
        if n == 0 {
            return;
        }
        if let Ok(mut errors) = self.decode_errors.lock() {
            *errors.entry(kind).or_insert(0) += n;
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

/// Publish latency (frame batch received by the decode stage → packet handed to the Stream API
/// write stream): 1 ms buckets up to 1 s, then one overflow bucket, plus the exact maximum.
/// Lock-free; recorded once per packet, not per sample.
#[derive(Debug)]
pub struct LatencyHistogram {
    buckets: Vec<AtomicU64>,
    max_ns: AtomicU64,
    sum_ns: AtomicU64,
}

/// Width of one histogram bucket.
const BUCKET_NS: u64 = 1_000_000;
/// Buckets of `BUCKET_NS`; one more holds everything slower.
const BUCKETS: usize = 1000;

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            buckets: (0..=BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            max_ns: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
        }
    }
}

impl LatencyHistogram {
    /// Records one latency.
    pub fn record(&self, latency: std::time::Duration) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        let index = usize::try_from(ns / BUCKET_NS)
            .unwrap_or(BUCKETS)
            .min(BUCKETS);
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        self.max_ns.fetch_max(ns, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// How many latencies were recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// The largest latency recorded.
    pub fn max(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.max_ns.load(Ordering::Relaxed))
    }

    /// Sum of all latencies (for a Prometheus `_sum`).
    pub fn sum(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.sum_ns.load(Ordering::Relaxed))
    }

    /// The `q` quantile (0..=1) as the upper edge of its bucket (1 ms resolution), capped at
    /// the maximum; `None` when nothing was recorded.
    pub fn quantile(&self, q: f64) -> Option<std::time::Duration> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, bucket) in self.buckets.iter().enumerate() {
            seen += bucket.load(Ordering::Relaxed);
            if seen >= rank && index < BUCKETS {
                let edge = std::time::Duration::from_nanos((index as u64 + 1) * BUCKET_NS);
                return Some(edge.min(self.max()));
            }
        }
        Some(self.max())
    }

    /// Cumulative counts for a Prometheus histogram, read in one pass so they never decrease
    /// while latencies are being recorded: for each edge of `below_ms` (ascending, whole
    /// milliseconds, at most 1000) the latencies under it, then the total. Buckets are
    /// `[n, n + 1)` ms, so a latency exactly on an edge counts above it.
    pub fn cumulative_counts(&self, below_ms: &[u64]) -> Vec<u64> {
        let mut counts = Vec::with_capacity(below_ms.len() + 1);
        let mut edges = below_ms.iter().peekable();
        let mut seen = 0;
        for (index, bucket) in self.buckets.iter().enumerate() {
            while let Some(&&edge) = edges.peek() {
                if edge > index as u64 {
                    break;
                }
                counts.push(seen);
                edges.next();
            }
            seen += bucket.load(Ordering::Relaxed);
        }
        counts.extend(edges.map(|_| seen));
        counts.push(seen);
        counts
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn quantiles_come_from_millisecond_buckets() {
        let histogram = LatencyHistogram::default();
        assert_eq!(histogram.quantile(0.5), None);
        for ms in 1..=100u64 {
            histogram.record(Duration::from_micros(ms * 1000 - 500));
        }
        histogram.record(Duration::from_secs(3));
        assert_eq!(histogram.count(), 101);
        assert_eq!(histogram.quantile(0.5), Some(Duration::from_millis(51)));
        assert_eq!(histogram.quantile(0.99), Some(Duration::from_millis(100)));
        assert_eq!(histogram.quantile(1.0), Some(Duration::from_secs(3)));
        assert_eq!(histogram.max(), Duration::from_secs(3));
    }
}
