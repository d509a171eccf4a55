//! Decode stage: frame batches → rows, through the compiled channel map: CAN frames by their
//! DBC messages (or reassembled into a definition's compound message), native frames by their
//! frame definition, and the whole blocks of polled TunerStudio ECUs (native frames named after
//! their INI message) by the INI's output channels. Laps the car signals (`[laps]`) are found
//! here, where values are known.
//!
//! Edge policy: input and output both **block** when full (backpressure reaches the sources;
//! only the UDP source converts it into counted drops). New data formats (multiplexed
//! combinations seen for the first time) travel in-band ahead of the rows that use them.

use std::sync::Arc;

use decoders::RowBatch;
use decoders::channel_map::{CanOutcome, ChannelMap};
use decoders::frame::{self, CompoundStats};
use decoders::laps::LapDetector;
use tokio::sync::mpsc;

use crate::config::StreamRouter;
use crate::pipeline::edge::{
    Decoded, FormatAnnouncement, NativeFrame, Queue, SourceBatch, TimedFrame,
};
use crate::pipeline::weighed;
use crate::telemetry::Metrics;

/// Rejected frames logged one by one (with the reason and byte offset) before the rest are only
/// counted, so a source sending garbage cannot flood the journal.
const LOGGED_REJECTIONS: u64 = 10;

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

/// What a native frame's name refers to in the map.
#[derive(Debug, Clone, Copy)]
enum NativeTarget {
    /// A frame definition, by index.
    Definition(usize),
    /// A polled ECU's INI block, by index.
    Ini(usize),
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
    /// Frames rejected so far whose reason was logged.
    pub logged_rejections: u64,
    /// Follows the car's lap signal, when `[laps]` names one.
    pub laps: Option<LapDetector>,
    /// Which data stream each message's rows go to.
    pub streams: StreamRouter,
}

impl DecodeStage {
    /// Runs until the input closes.
    pub async fn run(
        mut self,
        mut input: weighed::Receiver<SourceBatch>,
        output: weighed::Sender<Decoded>,
    ) {
        // Formats announced downstream, by index: each once, with its first rows.
        let mut announced: Vec<bool> = Vec::new();
        let mut reloads = self.reloads.take();
        let mut compound_seen = CompoundStats::default();
        // Values per frame in the last batch, in eighths: a batch's values are reserved at
        // once, a little over the last batch's width, since growing them by doubling copied
        // them (`docs/performance.md`, "The seventh turn").
        let mut width_eighths: usize = 8 * 8;
        self.metrics
            .live_values
            .reset(&self.map, tokio::time::Instant::now());
        loop {
            let mut reconfigure = None;
            let frames = tokio::select! {
                biased;
                Some(map) = next_reload(&mut reloads) => {
                    reconfigure = Some(Arc::new(map.clone()));
                    self.map = map;
                    if let Some(laps) = self.laps.as_mut() {
                        laps.follow(&self.map);
                    }
                    self.metrics.live_values.reset(&self.map, tokio::time::Instant::now());
                    announced.clear();
                    compound_seen = CompoundStats::default();
                    SourceBatch::default()
                }
                frames = input.recv() => match frames {
                    Some(frames) => {
                        Metrics::set(&self.metrics.queue_depths[Queue::Decode.index()], input.len() as u64);
                        frames
                    }
                    None => break,
                },
            };
            let mut decoded = Decoded {
                new_formats: Vec::new(),
                rows: RowBatch::with_capacity(frames.len(), width_eighths.div_ceil(8) + 1),
                received: tokio::time::Instant::now(),
                reconfigure,
                laps: Vec::new(),
            };
            self.decode_batch(&frames.can, &mut decoded.rows);
            self.decode_native(&frames.native, &mut decoded.rows);
            if !frames.is_empty() {
                width_eighths = decoded.rows.sample_count() * 8 / frames.len();
            }
            if let Some(laps) = self.laps.as_mut() {
                laps.observe(&self.map, &decoded.rows, &mut decoded.laps);
            }
            if !frames.can.is_empty() {
                self.count_compound(&mut compound_seen);
            }
            self.metrics.live_values.record(&self.map, &decoded.rows);
            // Counted once their values are in the live table: whoever sees a frame counted
            // (`/values`, `watch`) sees its values too.
            Metrics::add(&self.metrics.frames_in, frames.len() as u64);
            decoded.new_formats = self.announce_used(&decoded.rows, &mut announced);
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
        if frames.is_empty() {
            return;
        }
        let rows_before = (rows.len(), rows.sample_count());
        let (mut unknown, mut short, mut without_values, mut limit) = (0, 0, 0, 0);
        for timed in frames {
            match self.map.decode(timed.time_ns, &timed.frame, rows) {
                CanOutcome::Decoded { short: true, .. } => short += 1,
                CanOutcome::Decoded { .. } | CanOutcome::Assembling => {}
                CanOutcome::Unknown => unknown += 1,
                CanOutcome::NoData | CanOutcome::Empty => without_values += 1,
                CanOutcome::FormatLimit => limit += 1,
                CanOutcome::Invalid(error) => {
                    self.metrics.count_decode_error(error.kind());
                    let id = timed.frame.id;
                    self.log_rejection(format_args!("compound message on CAN id {id:?}"), &error);
                }
            }
        }
        let metrics = &self.metrics;
        Metrics::add(&metrics.unknown_ids, unknown);
        Metrics::add(&metrics.short_frames, short);
        Metrics::add(&metrics.frames_without_values, without_values);
        Metrics::add(&metrics.format_limit_drops, limit);
        Self::count_rows(metrics, rows, rows_before);
    }

    /// Decodes native frames by their definition or INI message, found by name (once per run
    /// of frames of the same name, so a reload that drops or reorders them is followed).
    fn decode_native(&mut self, frames: &[NativeFrame], rows: &mut RowBatch) {
        if frames.is_empty() {
            return;
        }
        let rows_before = (rows.len(), rows.sample_count());
        let mut unknown = 0;
        let mut current: Option<(&str, Option<NativeTarget>)> = None;
        for native in frames {
            let target = match current {
                Some((name, target)) if name == &*native.definition => target,
                _ => {
                    let name = &*native.definition;
                    let target = match self.map.definition_index(name) {
                        Some(index) => Some(NativeTarget::Definition(index)),
                        None => self.map.ini_index(name).map(NativeTarget::Ini),
                    };
                    current = Some((name, target));
                    target
                }
            };
            let outcome = match target {
                None => {
                    self.metrics.count_decode_error("unknown_definition");
                    continue;
                }
                Some(NativeTarget::Definition(index)) => {
                    self.map
                        .decode_definition(index, native.time_ns, &native.bytes, rows)
                }
                Some(NativeTarget::Ini(index)) => {
                    self.map
                        .decode_ini(index, native.time_ns, &native.bytes, rows)
                }
            };
            match outcome {
                Ok(frame::NativeOutcome::Decoded { .. }) => {}
                Ok(frame::NativeOutcome::Unknown { .. }) => unknown += 1,
                Err(error) => {
                    self.metrics.count_decode_error(error.kind());
                    let what = format_args!(
                        "{} frame of {} bytes",
                        native.definition,
                        native.bytes.len()
                    );
                    self.log_rejection(what, &error);
                }
            }
        }
        Metrics::add(&self.metrics.unknown_ids, unknown);
        Self::count_rows(&self.metrics, rows, rows_before);
    }

    /// Logs why a frame was rejected, for the first [`LOGGED_REJECTIONS`] (all are counted).
    fn log_rejection(&mut self, what: std::fmt::Arguments<'_>, error: &decoders::DecodeError) {
        self.logged_rejections += 1;
        match self.logged_rejections {
            n if n <= LOGGED_REJECTIONS => tracing::warn!(%error, "{what} rejected"),
            n if n == LOGGED_REJECTIONS + 1 => tracing::warn!(
                "further rejected frames are only counted (ecu_bridge_decode_errors_total)"
            ),
            _ => {}
        }
    }

    fn count_rows(metrics: &Metrics, rows: &RowBatch, (before, samples_before): (usize, usize)) {
        Metrics::add(&metrics.rows_decoded, (rows.len() - before) as u64);
        let samples = rows.sample_count() - samples_before;
        Metrics::add(&metrics.samples_decoded, samples as u64);
    }

    /// Moves what compound reassembly counted since `seen` into the decode errors.
    fn count_compound(&self, seen: &mut CompoundStats) {
        let now = self.map.compound_stats();
        let metrics = &self.metrics;
        metrics.count_decode_errors("compound_incomplete", now.incomplete - seen.incomplete);
        metrics.count_decode_errors(
            "compound_bad_check",
            now.check_failures - seen.check_failures,
        );
        metrics.count_decode_errors("compound_bad_length", now.bad_lengths - seen.bad_lengths);
        metrics.count_decode_errors("compound_stray_frame", now.stray_frames - seen.stray_frames);
        *seen = now;
    }

    /// Announcements of the formats that have rows in `rows` and were not announced yet: a
    /// format is announced with its first rows, so the publish stage asks the Stream API for
    /// the ids of the formats the car sends, not of every message in its map.
    fn announce_used(&self, rows: &RowBatch, announced: &mut Vec<bool>) -> Vec<FormatAnnouncement> {
        let mut new = Vec::new();
        for header in rows.headers() {
            let index = header.format as usize;
            if index >= announced.len() {
                announced.resize(index + 1, false);
            }
            if announced[index] {
                continue;
            }
            announced[index] = true;
            let Some(format) = self.map.format(header.format) else {
                continue;
            };
            new.push(FormatAnnouncement {
                format: header.format,
                identifiers: format
                    .parameters
                    .iter()
                    .map(|p| self.map.parameters()[*p as usize].identifier.clone())
                    .collect(),
                stream: self.streams.stream_of(&self.map, &format.message),
            });
        }
        new
    }
}
