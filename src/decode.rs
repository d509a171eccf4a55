//! Decode stage: frame batches → rows, through the compiled channel map.
//!
//! Edge policy: input and output both **block** when full (backpressure reaches the sources;
//! only the UDP source converts it into counted drops). New data formats (multiplexed
//! combinations seen for the first time) travel in-band ahead of the rows that use them.

use std::sync::Arc;

use decoders::RowBatch;
use decoders::channel_map::{ChannelMap, FrameOutcome};
use tokio::sync::mpsc;

use crate::configuration::configuration_packet;
use crate::proto::open_data::ConfigurationPacket;
use crate::source::TimedFrame;
use crate::telemetry::Metrics;

/// A format's index and its ordered parameter identifiers.
pub type FormatAnnouncement = (u32, Vec<String>);

/// What the decode stage hands to the batch stage.
#[derive(Debug)]
pub struct Decoded {
    /// Formats first used by `rows` (or all formats, in the first batch).
    pub new_formats: Vec<FormatAnnouncement>,
    /// The decoded rows.
    pub rows: RowBatch,
    /// When the decode stage received the frames: the start of the publish latency.
    pub received: tokio::time::Instant,
    /// A reloaded channel map's configuration: everything before belongs to the old map,
    /// `new_formats` and `rows` to the new one (format indices start again from 0).
    pub reconfigure: Option<ConfigurationPacket>,
}

/// The next reloaded map, or never when reloads are off or their sender is gone.
async fn next_reload(reloads: &mut Option<mpsc::Receiver<ChannelMap>>) -> Option<ChannelMap> {
    match reloads {
        Some(receiver) => match receiver.recv().await {
            Some(map) => Some(map),
            None => {
                *reloads = None;
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}

/// The decode stage.
#[derive(Debug)]
pub struct DecodeStage {
    /// The compiled map (owned: multiplexed messages register formats as they are seen).
    pub map: ChannelMap,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Reloaded channel maps (SIGHUP), applied between two frame batches.
    pub reloads: Option<mpsc::Receiver<ChannelMap>>,
}

impl DecodeStage {
    /// Runs until the input closes.
    pub async fn run(
        mut self,
        mut input: mpsc::Receiver<Vec<TimedFrame>>,
        output: mpsc::Sender<Decoded>,
    ) {
        let mut announced = 0usize;
        let mut reloads = self.reloads.take();
        loop {
            let mut reconfigure = None;
            let frames = tokio::select! {
                biased;
                Some(map) = next_reload(&mut reloads) => {
                    reconfigure = Some(configuration_packet(&map));
                    self.map = map;
                    announced = 0;
                    Vec::new()
                }
                frames = input.recv() => match frames {
                    Some(frames) => {
                        Metrics::set(&self.metrics.queue_depths[0], input.len() as u64);
                        frames
                    }
                    None => break,
                },
            };
            let mut decoded = Decoded {
                new_formats: Vec::new(),
                rows: RowBatch::with_capacity(frames.len(), 8),
                received: tokio::time::Instant::now(),
                reconfigure,
            };
            self.decode_batch(&frames, &mut decoded.rows);
            decoded.new_formats = self.announce_from(&mut announced);
            if decoded.rows.is_empty()
                && decoded.new_formats.is_empty()
                && decoded.reconfigure.is_none()
            {
                continue;
            }
            if output.send(decoded).await.is_err() {
                break;
            }
        }
    }

    fn decode_batch(&mut self, frames: &[TimedFrame], rows: &mut RowBatch) {
        let (mut unknown, mut short, mut without_values, mut limit) = (0, 0, 0, 0);
        for timed in frames {
            match self.map.decode(timed.time_ns, &timed.frame, rows) {
                FrameOutcome::Decoded { short: true, .. } => short += 1,
                FrameOutcome::Decoded { .. } => {}
                FrameOutcome::Unknown => unknown += 1,
                FrameOutcome::NoData | FrameOutcome::Empty => without_values += 1,
                FrameOutcome::FormatLimit => limit += 1,
            }
        }
        let metrics = &self.metrics;
        Metrics::add(&metrics.frames_in, frames.len() as u64);
        Metrics::add(&metrics.unknown_ids, unknown);
        Metrics::add(&metrics.short_frames, short);
        Metrics::add(&metrics.frames_without_values, without_values);
        Metrics::add(&metrics.format_limit_drops, limit);
        Metrics::add(&metrics.rows_decoded, rows.len() as u64);
        Metrics::add(&metrics.samples_decoded, rows.sample_count() as u64);
    }

    fn announce_from(&self, announced: &mut usize) -> Vec<FormatAnnouncement> {
        let count = self.map.format_count();
        let new = (*announced..count)
            .filter_map(|index| {
                let format = self.map.format(index as u32)?;
                let identifiers = format
                    .parameters
                    .iter()
                    .map(|p| self.map.parameters()[*p as usize].identifier.clone())
                    .collect();
                Some((index as u32, identifiers))
            })
            .collect();
        *announced = count;
        new
    }
}
