//! The Prometheus text exposition (v0.0.4) of the bridge's counters: a prometheus-client
//! [`Registry`] whose collectors read [`Metrics`] and [`SourceMetrics`] at scrape time. No IO.
//!
//! Which fields are exported, and their HELP texts, is declared once in `src/telemetry.rs`
//! (`EXPORTED`); this module only adds the families that are not one field each: decode errors
//! by `kind`, queue depths by `stage` and the publish latency histogram. Names carry the
//! `ecu_bridge_` prefix, per-source ones `ecu_bridge_source_` and a `source` label; the encoder
//! adds `_total` to counters and escapes label values.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet, prometheus_text,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::telemetry::{Exported, ExportedKind, Metrics, QUEUES, SourceMetrics};

/// `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Upper edges (ms) of the exported latency buckets: a subset of the histogram's 1 ms buckets,
/// dense around the batcher's default 100 ms flush age.
pub const LATENCY_BUCKETS_MS: [u64; 13] = [1, 2, 5, 10, 25, 50, 75, 100, 150, 200, 250, 500, 1000];

/// A registry exporting `metrics` and `sources` (in the order given) as they are when encoded.
pub fn registry(metrics: Arc<Metrics>, sources: Vec<Arc<SourceMetrics>>) -> Registry {
    let mut registry = Registry::with_prefix("ecu_bridge");
    registry.register_collector(Box::new(Pipeline(metrics)));
    registry
        .sub_registry_with_prefix("source")
        .register_collector(Box::new(Sources(sources)));
    registry
}

/// The exposition of everything in `registry`. Writing to a `String` cannot fail, so an error
/// means a collector could not be encoded.
pub fn render(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut out = String::with_capacity(8 * 1024);
    prometheus_text::encode(&mut out, registry)?;
    Ok(out)
}

/// The pipeline's families.
#[derive(Debug)]
struct Pipeline(Arc<Metrics>);

impl Collector for Pipeline {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let metrics = &*self.0;
        for exported in Metrics::EXPORTED {
            let family = descriptor(&mut encoder, exported)?;
            encode_value(
                exported.kind,
                Metrics::get((exported.field)(metrics)),
                family,
            )?;
        }
        let mut family = encoder.encode_descriptor(
            "decode_errors",
            "Malformed inputs in the pipeline, by kind.",
            None,
            MetricType::Counter,
        )?;
        for (kind, count) in metrics.decode_errors() {
            ConstCounter::new(count).encode(family.encode_family(&[("kind", kind)])?)?;
        }
        let mut family = encoder.encode_descriptor(
            "queue_depth",
            "Batches waiting in front of a stage (bounded channels), read every 250 ms.",
            None,
            MetricType::Gauge,
        )?;
        for (stage, depth) in QUEUES.iter().zip(&metrics.queue_depths) {
            ConstGauge::new(Metrics::get(depth))
                .encode(family.encode_family(&[("stage", *stage)])?)?;
        }
        encode_latency(&mut encoder, metrics)
    }
}

/// The per-source families, one sample per source.
#[derive(Debug)]
struct Sources(Vec<Arc<SourceMetrics>>);

impl Collector for Sources {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for exported in SourceMetrics::EXPORTED {
            let mut family = descriptor(&mut encoder, exported)?;
            for source in &self.0 {
                let value = Metrics::get((exported.field)(source));
                let labels = [("source", source.name.as_str())];
                encode_value(exported.kind, value, family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "decode_errors",
            "Malformed inputs per source, by kind.",
            None,
            MetricType::Counter,
        )?;
        for source in &self.0 {
            for (kind, count) in source.decode_errors() {
                let labels = [("source", source.name.as_str()), ("kind", kind)];
                ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

fn descriptor<'a, T>(
    encoder: &'a mut DescriptorEncoder,
    exported: &'a Exported<T>,
) -> Result<MetricEncoder<'a>, std::fmt::Error> {
    let kind = match exported.kind {
        ExportedKind::Counter => MetricType::Counter,
        ExportedKind::Gauge => MetricType::Gauge,
    };
    encoder.encode_descriptor(exported.name, exported.help, None, kind)
}

fn encode_value(
    kind: ExportedKind,
    value: u64,
    encoder: MetricEncoder,
) -> Result<(), std::fmt::Error> {
    match kind {
        ExportedKind::Counter => ConstCounter::new(value).encode(encoder),
        ExportedKind::Gauge => ConstGauge::new(value).encode(encoder),
    }
}

/// The publish latency histogram over [`LATENCY_BUCKETS_MS`] and `+Inf`.
fn encode_latency(
    encoder: &mut DescriptorEncoder,
    metrics: &Metrics,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(
        "publish_latency_seconds",
        "Frame batch received by decode to its packet handed to the Stream API.",
        None,
        MetricType::Histogram,
    )?;
    // One consistent read: cumulative per edge, then the total (which is also `_count`).
    let cumulative = metrics
        .publish_latency
        .cumulative_counts(&LATENCY_BUCKETS_MS);
    let total = cumulative.last().copied().unwrap_or(0);
    let edges = LATENCY_BUCKETS_MS
        .iter()
        .map(|&ms| ms as f64 / 1000.0)
        .chain([f64::INFINITY]);
    // The encoder takes per-bucket counts and accumulates them itself.
    let mut below = 0;
    let buckets: Vec<(f64, u64)> = edges
        .zip(&cumulative)
        .map(|(edge, &upto)| (edge, upto - std::mem::replace(&mut below, upto)))
        .collect();
    let sum = metrics.publish_latency.sum().as_secs_f64();
    family.encode_histogram::<NoLabelSet>(sum, total, &buckets, None)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn text(metrics: Metrics, sources: Vec<Arc<SourceMetrics>>) -> String {
        render(&registry(Arc::new(metrics), sources)).expect("encodes")
    }

    #[test]
    fn every_family_has_help_and_type_before_its_samples() {
        let source = Arc::new(SourceMetrics::new("can0"));
        source.count_decode_error("checksum");
        let text = text(Metrics::default(), vec![source]);
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
    fn every_exported_field_is_a_family_with_its_value() {
        let metrics = Metrics::default();
        for (n, exported) in (1..).zip(Metrics::EXPORTED) {
            Metrics::set((exported.field)(&metrics), n);
        }
        let source = Arc::new(SourceMetrics::new("can0"));
        for (n, exported) in (100..).zip(SourceMetrics::EXPORTED) {
            Metrics::set((exported.field)(&source), n);
        }
        let text = text(metrics, vec![source]);
        let total = |kind| {
            if kind == ExportedKind::Counter {
                "_total"
            } else {
                ""
            }
        };
        for (n, exported) in (1..).zip(Metrics::EXPORTED) {
            let line = format!("ecu_bridge_{}{} {n}", exported.name, total(exported.kind));
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
        for (n, exported) in (100..).zip(SourceMetrics::EXPORTED) {
            let name = format!(
                "ecu_bridge_source_{}{}",
                exported.name,
                total(exported.kind)
            );
            let line = format!("{name}{{source=\"can0\"}} {n}");
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
            assert!(text.contains(&format!("# HELP {name} {}\n", exported.help)));
        }
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_in_the_count() {
        let metrics = Metrics::default();
        for ms in [0, 3, 3, 99, 400, 2000] {
            metrics
                .publish_latency
                .record(Duration::from_millis(ms) + Duration::from_micros(10));
        }
        let text = text(metrics, Vec::new());
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
        assert_eq!(text.matches("le=\"+Inf\"").count(), 1, "{text}");
    }

    #[test]
    fn label_values_are_escaped() {
        let source = Arc::new(SourceMetrics::new("a\"b\\c\nd"));
        let text = text(Metrics::default(), vec![source]);
        let line = "ecu_bridge_source_frames_total{source=\"a\\\"b\\\\c\\nd\"} 0";
        assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
    }
}
