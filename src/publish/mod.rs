//! Publish stage: batches → the Stream API through one [`Producer`] session. Resolves each data
//! format's id once, wraps the already-encoded rows into `RowData` packets, sends the "Out Lap" marker once
//! data exists on the stream (rules 35–36), and ends the session when the input closes.
//!
//! Edge policy: the input **blocks** when full. While the Stream API is unreachable the
//! producer retries with backoff and this stage stops reading, so the bounded channels before it
//! fill and the sources feel backpressure (replay waits; UDP counts drops).

pub mod configuration;
pub mod delivery;
pub mod producer;
pub mod session;

use std::sync::Arc;

use tokio::sync::mpsc;

use open_streaming::open_data::MarkerPacket;
use open_streaming::rows::row_data_content;

use crate::pipeline::edge::{Batch, Queue, RowPacket};
use crate::telemetry::Metrics;
use configuration::configuration_packet;
use producer::{PacketKind, Producer, PublishError};

/// The publish stage.
#[derive(Debug)]
pub struct PublishStage {
    /// The open session.
    pub producer: Producer,
    /// The data stream samples go to.
    pub stream: String,
    /// Counters.
    pub metrics: Arc<Metrics>,
}

impl PublishStage {
    /// Publishes until the input closes; returns the producer for the caller to end the
    /// session. Input is taken whenever it arrives, also while the Stream API is away: packets
    /// wait in the spool, not in the channels, so the sources never feel an outage.
    pub async fn run(mut self, mut input: mpsc::Receiver<Batch>) -> Result<Producer, PublishError> {
        let mut formats: Vec<Option<Vec<String>>> = Vec::new();
        let mut marker_sent = false;
        loop {
            let waiting = self.producer.has_pending();
            let probe_due = tokio::select! {
                biased;
                batch = input.recv() => {
                    let Some(batch) = batch else { break };
                    Metrics::set(
                        &self.metrics.queue_depths[Queue::Publish.index()],
                        input.len() as u64,
                    );
                    self.handle(batch, &mut formats, &mut marker_sent).await?;
                    false
                }
                due = self.producer.wait(), if waiting => due,
            };
            if probe_due {
                self.producer.probe().await?;
            }
            self.report();
        }
        self.report();
        Ok(self.producer)
    }

    async fn handle(
        &mut self,
        batch: Batch,
        formats: &mut Vec<Option<Vec<String>>>,
        marker_sent: &mut bool,
    ) -> Result<(), PublishError> {
        match batch {
            Batch::Formats(announced) => {
                for (index, identifiers) in announced {
                    let index = index as usize;
                    if formats.len() <= index {
                        formats.resize(index + 1, None);
                    }
                    formats[index] = Some(identifiers);
                }
            }
            Batch::Reconfigure(map) => {
                self.producer.configure(configuration_packet(&map)).await?;
                formats.clear();
                tracing::info!("reloaded channel map published as a new configuration");
            }
            Batch::Rows(packet) => {
                let Some(Some(identifiers)) = formats.get(packet.format as usize) else {
                    tracing::error!(
                        format = packet.format,
                        "rows for an unannounced format dropped"
                    );
                    return Ok(());
                };
                let id = self.producer.data_format_id(identifiers).await?;
                let first_time = packet.timestamps.first().copied();
                self.write_rows(id, packet).await?;
                if let (false, Some(time)) = (*marker_sent, first_time) {
                    self.producer
                        .write_marker(&self.stream, &out_lap(time))
                        .await?;
                    *marker_sent = true;
                }
            }
        }
        Ok(())
    }

    async fn write_rows(
        &mut self,
        data_format: u64,
        packet: RowPacket,
    ) -> Result<(), PublishError> {
        let samples = u32::try_from(packet.samples).unwrap_or(u32::MAX);
        let received = packet.first_received;
        let times = (
            packet.timestamps.first().copied().unwrap_or_default(),
            packet.timestamps.last().copied().unwrap_or_default(),
        );
        let content = row_data_content(data_format, &packet.timestamps, &packet.encoded_rows);
        self.producer
            .write_encoded(&self.stream, PacketKind::RowData, content, samples, times)
            .await?;
        self.metrics.publish_latency.record(received.elapsed());
        Ok(())
    }

    /// Publishes the producer's figures: what the server accepted, what waits, what was lost.
    fn report(&self) {
        report_producer(&self.producer, &self.metrics);
    }
}

/// Sets the pipeline's publish counters from `producer`: only acknowledged packets count as
/// published.
pub fn report_producer(producer: &Producer, metrics: &Metrics) {
    let stats = producer.stats();
    report_stats(&stats, metrics);
    let spool = producer.spool().stats();
    Metrics::set(&metrics.samples_waiting, stats.delivery.samples_waiting);
    Metrics::set(&metrics.spool_bytes, spool.bytes_on_disk);
    Metrics::set(&metrics.spool_write_failures, spool.write_failures);
    Metrics::set(&metrics.spool_dropped_samples, spool.dropped_samples);
    let age_s = spool.oldest_pending_time_ns.map_or(0, |oldest| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos() as u64);
        now.saturating_sub(oldest) / 1_000_000_000
    });
    Metrics::set(&metrics.oldest_waiting_age_seconds, age_s);
}

/// Sets the publish counters from a producer's `stats` (also after it ended).
pub fn report_stats(stats: &producer::ProducerStats, metrics: &Metrics) {
    let delivery = stats.delivery;
    Metrics::set(&metrics.packets_published, delivery.packets_accepted);
    Metrics::set(&metrics.samples_published, delivery.samples_accepted);
    Metrics::set(&metrics.bytes_published, delivery.bytes_accepted);
    Metrics::set(&metrics.stream_reopens, stats.reopened_streams);
    Metrics::set(&metrics.samples_rejected, delivery.samples_rejected);
    Metrics::set(&metrics.packets_resent, delivery.resent);
    Metrics::set(&metrics.publish_outages, delivery.outages);
    Metrics::set(&metrics.samples_lost_no_room, delivery.samples_lost_no_room);
}

/// The lap marker ATLAS uses to overlay sessions, at the first sample time (rule 35).
pub fn out_lap(time_ns: u64) -> MarkerPacket {
    MarkerPacket {
        timestamp: time_ns,
        end_time: 0,
        label: "Out Lap".to_owned(),
        r#type: "Lap Trigger".to_owned(),
        description: "session start".to_owned(),
        source: "0".to_owned(),
        value: 0,
    }
}
