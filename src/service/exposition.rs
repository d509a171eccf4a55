//! The Prometheus text exposition format (v0.0.4) of the bridge's counters: pure formatting of
//! [`Metrics`] and [`SourceMetrics`] into a `String`, no IO.
//!
//! Every family is written once with its `# HELP` and `# TYPE` lines, then one sample per
//! source (label `source`) or per decode-error `kind`. Names follow Prometheus conventions:
//! `ecu_bridge_` prefix, `_total` on counters, seconds for the latency histogram.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use crate::telemetry::{Metrics, QUEUES, SourceMetrics};

/// `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper edges (ms) of the exported latency buckets: a subset of the histogram's 1 ms buckets,
/// dense around the batcher's default 100 ms flush age.
pub const LATENCY_BUCKETS_MS: [u64; 13] = [1, 2, 5, 10, 25, 50, 75, 100, 150, 200, 250, 500, 1000];

/// One per-source counter family: name, help, and the field it reads.
type SourceCounter = (&'static str, &'static str, fn(&SourceMetrics) -> &AtomicU64);

const SOURCE_COUNTERS: [SourceCounter; 10] = [
    (
        "ecu_bridge_source_frames_total",
        "CAN or native frames taken from the transport and handed on.",
        |s| &s.frames,
    ),
    ("ecu_bridge_source_bytes_total", "Bytes received.", |s| {
        &s.bytes
    }),
    (
        "ecu_bridge_source_datagrams_total",
        "Datagrams (UDP) or reads (serial) received.",
        |s| &s.datagrams,
    ),
    (
        "ecu_bridge_source_kernel_drops_total",
        "Datagrams the kernel dropped for this socket (SO_RXQ_OVFL).",
        |s| &s.kernel_drops,
    ),
    (
        "ecu_bridge_source_sequence_gaps_total",
        "Datagrams (cannelloni) or native frames lost according to their sequence counters.",
        |s| &s.sequence_gaps,
    ),
    (
        "ecu_bridge_source_truncated_total",
        "Datagrams larger than the receive buffer, cut short.",
        |s| &s.truncated,
    ),
    (
        "ecu_bridge_source_channel_drops_total",
        "Frame batches dropped because the decode channel was full.",
        |s| &s.channel_drops,
    ),
    (
        "ecu_bridge_source_frames_dropped_total",
        "Frames inside the dropped batches.",
        |s| &s.frames_dropped,
    ),
    (
        "ecu_bridge_source_outages_total",
        "Times the device or socket was lost.",
        |s| &s.outages,
    ),
    (
        "ecu_bridge_source_reconnects_total",
        "Times the device or socket came back.",
        |s| &s.reconnects,
    ),
];

/// One pipeline counter: name, help, and the field it reads.
type PipelineCounter = (&'static str, &'static str, fn(&Metrics) -> &AtomicU64);

const PIPELINE_COUNTERS: [PipelineCounter; 12] = [
    (
        "ecu_bridge_frames_in_total",
        "Frames read from sources.",
        |m| &m.frames_in,
    ),
    (
        "ecu_bridge_samples_decoded_total",
        "Samples decoded.",
        |m| &m.samples_decoded,
    ),
    (
        "ecu_bridge_rows_decoded_total",
        "Rows (frames with values) decoded.",
        |m| &m.rows_decoded,
    ),
    (
        "ecu_bridge_samples_published_total",
        "Samples in data packets handed to the Stream API.",
        |m| &m.samples_published,
    ),
    (
        "ecu_bridge_packets_published_total",
        "Data packets handed to the Stream API.",
        |m| &m.packets_published,
    ),
    (
        "ecu_bridge_bytes_published_total",
        "Bytes of data packet content handed to the Stream API.",
        |m| &m.bytes_published,
    ),
    (
        "ecu_bridge_stream_reopens_total",
        "Times the Stream API write stream was reopened after the server ended it.",
        |m| &m.stream_reopens,
    ),
    (
        "ecu_bridge_rejected_inputs_total",
        "Capture lines or datagrams rejected as malformed.",
        |m| &m.rejected_inputs,
    ),
    (
        "ecu_bridge_unknown_ids_total",
        "Frames whose CAN id or message id no selected message has.",
        |m| &m.unknown_ids,
    ),
    (
        "ecu_bridge_short_frames_total",
        "Frames shorter than their DBC message.",
        |m| &m.short_frames,
    ),
    (
        "ecu_bridge_frames_without_values_total",
        "Remote, error or empty frames, which carry no values.",
        |m| &m.frames_without_values,
    ),
    (
        "ecu_bridge_format_limit_drops_total",
        "Frames dropped because the format table was full.",
        |m| &m.format_limit_drops,
    ),
];

/// The exposition of `metrics` and `sources` (in the order given).
pub fn render(metrics: &Metrics, sources: &[Arc<SourceMetrics>]) -> String {
    let mut out = String::with_capacity(8 * 1024);
    for (name, help, field) in SOURCE_COUNTERS {
        header(&mut out, name, help, "counter");
        for source in sources {
            let value = Metrics::get(field(source));
            let _ = writeln!(out, "{name}{{source=\"{}\"}} {value}", escape(&source.name));
        }
    }
    let name = "ecu_bridge_source_decode_errors_total";
    header(
        &mut out,
        name,
        "Malformed inputs per source, by kind.",
        "counter",
    );
    for source in sources {
        for (kind, count) in source.decode_errors() {
            let _ = writeln!(
                out,
                "{name}{{source=\"{}\",kind=\"{}\"}} {count}",
                escape(&source.name),
                escape(kind)
            );
        }
    }
    for (name, help, field) in PIPELINE_COUNTERS {
        header(&mut out, name, help, "counter");
        let _ = writeln!(out, "{name} {}", Metrics::get(field(metrics)));
    }
    let name = "ecu_bridge_decode_errors_total";
    header(
        &mut out,
        name,
        "Malformed inputs in the pipeline, by kind.",
        "counter",
    );
    for (kind, count) in metrics.decode_errors() {
        let _ = writeln!(out, "{name}{{kind=\"{}\"}} {count}", escape(kind));
    }
    let name = "ecu_bridge_queue_depth";
    header(
        &mut out,
        name,
        "Batches waiting in front of a stage (bounded channels).",
        "gauge",
    );
    for (stage, depth) in QUEUES.iter().zip(&metrics.queue_depths) {
        let _ = writeln!(out, "{name}{{stage=\"{stage}\"}} {}", Metrics::get(depth));
    }
    let name = "ecu_bridge_session_state";
    header(
        &mut out,
        name,
        "Open Streaming session: 0 starting, 1 open, 2 ended.",
        "gauge",
    );
    let _ = writeln!(out, "{name} {}", Metrics::get(&metrics.session_state));
    render_latency(&mut out, metrics);
    out
}

/// The publish latency histogram: cumulative `_bucket`s, `+Inf`, `_sum` and `_count`.
fn render_latency(out: &mut String, metrics: &Metrics) {
    let name = "ecu_bridge_publish_latency_seconds";
    header(
        out,
        name,
        "Frame batch received by decode to its packet handed to the Stream API.",
        "histogram",
    );
    let counts = metrics
        .publish_latency
        .cumulative_counts(&LATENCY_BUCKETS_MS);
    for (ms, count) in LATENCY_BUCKETS_MS.iter().zip(&counts) {
        let le = *ms as f64 / 1000.0;
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {count}");
    }
    // `cumulative_counts` ends with the total; the same figure is the `+Inf` bucket and `_count`.
    let total = counts.last().copied().unwrap_or(0);
    let sum = metrics.publish_latency.sum().as_secs_f64();
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
    let _ = writeln!(out, "{name}_sum {sum}");
    let _ = writeln!(out, "{name}_count {total}");
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value with `\`, `"` and newlines escaped as the format requires.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn every_family_has_help_and_type_before_its_samples() {
        let metrics = Metrics::default();
        let source = Arc::new(SourceMetrics::new("can0"));
        source.count_decode_error("checksum");
        let text = render(&metrics, &[source]);
        let mut typed = std::collections::BTreeSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap_or_default();
                assert!(typed.insert(name.to_owned()), "{name} typed twice");
            } else if !line.starts_with("# HELP ") {
                let name = line.split(['{', ' ']).next().unwrap_or_default();
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| name.strip_suffix(suffix))
                    .filter(|base| typed.contains(*base))
                    .unwrap_or(name);
                assert!(typed.contains(family), "{line} before its TYPE");
            }
        }
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_in_the_count() {
        let metrics = Metrics::default();
        for ms in [0, 3, 3, 99, 400, 2000] {
            metrics
                .publish_latency
                .record(Duration::from_millis(ms) + Duration::from_micros(10));
        }
        let text = render(&metrics, &[]);
        let expected = [
            "ecu_bridge_publish_latency_seconds_bucket{le=\"0.001\"} 1",
            "ecu_bridge_publish_latency_seconds_bucket{le=\"0.005\"} 3",
            "ecu_bridge_publish_latency_seconds_bucket{le=\"0.1\"} 4",
            "ecu_bridge_publish_latency_seconds_bucket{le=\"0.5\"} 5",
            "ecu_bridge_publish_latency_seconds_bucket{le=\"1\"} 5",
            "ecu_bridge_publish_latency_seconds_bucket{le=\"+Inf\"} 6",
            "ecu_bridge_publish_latency_seconds_count 6",
            "ecu_bridge_publish_latency_seconds_sum 2.50506",
        ];
        for line in expected {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
