//! Publish stage: batches → the Stream API through one [`Producer`] session. Resolves each data
//! format's id once, wraps the already-encoded rows into `RowData` packets, sends the "Out Lap" marker once
//! data exists on the stream (rules 35–36), and ends the session when the input closes.
//!
//! Edge policy: the input **blocks** when full. While the Stream API is unreachable the
//! producer retries with backoff and this stage stops reading, so the bounded channels before it
//! fill and the sources feel backpressure (replay waits; UDP counts drops).

pub mod configuration;
pub mod producer;

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
    /// Publishes until the input closes, then ends the session.
    pub async fn run(mut self, mut input: mpsc::Receiver<Batch>) -> Result<Producer, PublishError> {
        let mut formats: Vec<Option<Vec<String>>> = Vec::new();
        let mut marker_sent = false;
        while let Some(batch) = input.recv().await {
            Metrics::set(
                &self.metrics.queue_depths[Queue::Publish.index()],
                input.len() as u64,
            );
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
                        continue;
                    };
                    let id = self.producer.data_format_id(identifiers).await?;
                    let first_time = packet.timestamps.first().copied();
                    self.write_rows(id, packet).await?;
                    if let (false, Some(time)) = (marker_sent, first_time) {
                        self.producer
                            .write_marker(&self.stream, &out_lap(time))
                            .await?;
                        marker_sent = true;
                    }
                }
            }
            if input.is_empty() {
                self.producer.flush().await?;
                let reopens = self.producer.stats().reopened_streams;
                Metrics::set(&self.metrics.stream_reopens, reopens);
            }
        }
        self.producer.flush().await?;
        Ok(self.producer)
    }

    async fn write_rows(
        &mut self,
        data_format: u64,
        packet: RowPacket,
    ) -> Result<(), PublishError> {
        let samples = packet.samples as u64;
        let received = packet.first_received;
        let content = row_data_content(data_format, &packet.timestamps, &packet.encoded_rows);
        Metrics::add(&self.metrics.bytes_published, content.len() as u64);
        self.producer
            .write_encoded(&self.stream, PacketKind::RowData, content)
            .await?;
        self.metrics.publish_latency.record(received.elapsed());
        Metrics::add(&self.metrics.packets_published, 1);
        Metrics::add(&self.metrics.samples_published, samples);
        Ok(())
    }
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
