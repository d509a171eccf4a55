//! Replay source: reads capture files — `candump -L` logs, and the pcapng and serial byte logs
//! `ecu-bridge record` writes (format detected by content, see [`crate::capture`]) — and emits
//! their frames at the captured timing scaled by a speed factor, or as fast as the pipeline
//! accepts. pcapng datagrams and serial reads go through the live transport receivers with
//! their recorded receive times, so a replay yields the frames the live run produced.
//!
//! Edge policy: this source **blocks** on a full channel (backpressure), so a replay never drops.
//! Malformed input is counted by kind and the first few are logged with file and byte offset
//! (and line, for candump logs); it never stops the replay.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::capture::route::{ReceiverChoice, ReplayInputs};
use crate::capture::{CaptureReadError, CaptureReader};
use crate::pipeline::edge::{FRAMES_PER_BATCH, SourceBatch};
use crate::pipeline::weighed;
use crate::telemetry::Metrics;

/// How fast to replay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// As fast as the pipeline accepts.
    MaxSpeed,
    /// Captured timing divided by this factor (1.0 = real time, 2.0 = twice as fast).
    Speed(f64),
}

/// Why a replay source stopped early: the capture could not be read or was not a capture.
pub type ReplayError = CaptureReadError;

/// Input units (lines, packets, records) scanned by [`first_frame_time`] before giving up.
const FIRST_FRAME_SCAN: usize = 1000;

/// Capture-time jumps logged individually per file before the rest are only counted.
const LOGGED_JUMPS: u64 = 10;

/// The default for [`ReplaySource::max_gap`] (`replay --max-gap`): longer than any pause
/// between frames of a live stream, far shorter than a corrupt timestamp's jump.
pub const DEFAULT_MAX_GAP: Duration = Duration::from_secs(10);

/// What the replay sources have done so far, shared with whoever shows progress and writes
/// the summary. Counters only ever grow.
#[derive(Debug, Default)]
pub struct ReplayProgress {
    /// Capture bytes consumed, over every file.
    pub bytes_read: AtomicU64,
    /// Frames read.
    pub frames: AtomicU64,
    /// The latest capture time reached (ns since the UNIX epoch).
    pub capture_time_ns: AtomicU64,
    /// The receiver chosen for each recorded input stream, per file.
    choices: Mutex<Vec<(PathBuf, ReceiverChoice)>>,
}

impl ReplayProgress {
    /// Every receiver choice made so far, by file, in the order the files finished.
    pub fn receiver_choices(&self) -> Vec<(PathBuf, ReceiverChoice)> {
        self.choices
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// One capture file being replayed.
#[derive(Debug)]
pub struct ReplaySource {
    /// The capture.
    pub path: PathBuf,
    /// Pacing.
    pub pacing: Pacing,
    /// Capture time that maps to `start` (the earliest first frame of all captures).
    pub origin_ns: u64,
    /// When the replay started.
    pub start: Instant,
    /// The configured sources, to choose the receiver of each recorded input.
    pub inputs: Arc<ReplayInputs>,
    /// A capture-time jump (forward or back) longer than this is logged and not waited for:
    /// pacing carries on from the frame after the jump.
    pub max_gap: Duration,
    /// Shared progress and receiver choices.
    pub progress: Arc<ReplayProgress>,
}

/// Where pacing stands in one capture: the last capture time seen and the capture time
/// skipped by jumps so far.
#[derive(Debug)]
struct Clock {
    last_ns: u64,
    /// `max_gap` in nanoseconds (saturated), for the per-frame check.
    max_gap_ns: u64,
    skipped_ns: i128,
    jumps: u64,
}

impl ReplaySource {
    /// Reads the capture to the end (or until `cancel` turns true), sending frame batches.
    /// Returns the number of frames sent.
    pub async fn run(
        self,
        output: weighed::Sender<SourceBatch>,
        metrics: Arc<Metrics>,
        mut cancel: watch::Receiver<bool>,
    ) -> Result<u64, ReplayError> {
        let mut reader = CaptureReader::open(&self.path)
            .await?
            .with_inputs(self.inputs.clone());
        let mut batch = SourceBatch::with_capacity(FRAMES_PER_BATCH);
        // Frames of one input unit: a datagram or serial read may carry several.
        let mut unit = SourceBatch::default();
        let mut frames = 0u64;
        let mut clock = Clock {
            last_ns: self.origin_ns,
            max_gap_ns: u64::try_from(self.max_gap.as_nanos()).unwrap_or(u64::MAX),
            skipped_ns: 0,
            jumps: 0,
        };
        let mut consumed = 0;
        let max_speed = self.pacing == Pacing::MaxSpeed;
        while !*cancel.borrow() {
            // At max speed frames are read straight into the batch: nothing waits, so the
            // copy through `unit` would only cost time (`docs/performance.md`).
            let into = if max_speed { &mut batch } else { &mut unit };
            let before = (into.can.len(), into.native.len());
            if !reader.read_frames(into, &metrics).await? {
                break;
            }
            let read = (into.can.len() - before.0) + (into.native.len() - before.1);
            frames += read as u64;
            let offset = reader.offset();
            let progress = &self.progress;
            progress
                .bytes_read
                .fetch_add(offset - consumed, Ordering::Relaxed);
            progress.frames.fetch_add(read as u64, Ordering::Relaxed);
            consumed = offset;
            if max_speed {
                // Nothing to wait for: only jumps are noted, and progress once per read.
                let mut latest = 0;
                // Two loops, not one over a chain of both: a chain's every step asks which
                // half it is in.
                for timed in &batch.can[before.0..] {
                    self.follow_jumps(timed.time_ns, &mut clock);
                    latest = latest.max(timed.time_ns);
                }
                for native in &batch.native[before.1..] {
                    self.follow_jumps(native.time_ns, &mut clock);
                    latest = latest.max(native.time_ns);
                }
                progress
                    .capture_time_ns
                    .fetch_max(latest, Ordering::Relaxed);
            }
            for timed in unit.can.drain(..) {
                self.wait_until_due(timed.time_ns, &mut clock, &output, &mut batch, &mut cancel)
                    .await;
                batch.can.push(timed);
            }
            for native in unit.native.drain(..) {
                self.wait_until_due(native.time_ns, &mut clock, &output, &mut batch, &mut cancel)
                    .await;
                batch.native.push(native);
            }
            if batch.len() >= FRAMES_PER_BATCH {
                send(&output, &mut batch).await;
            }
        }
        send(&output, &mut batch).await;
        if clock.jumps > LOGGED_JUMPS {
            let jumps = clock.jumps;
            tracing::warn!(file = %self.path.display(), jumps, "capture time jumps not waited for, in total");
        }
        let mut choices = self
            .progress
            .choices
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        choices.extend(
            reader
                .receiver_choices()
                .map(|choice| (self.path.clone(), choice.clone())),
        );
        Ok(frames)
    }

    /// Waits until the frame captured at `time_ns` is due (or `cancel` changes), first sending
    /// the frames already due so they are not held back by the wait.
    async fn wait_until_due(
        &self,
        time_ns: u64,
        clock: &mut Clock,
        output: &weighed::Sender<SourceBatch>,
        batch: &mut SourceBatch,
        cancel: &mut watch::Receiver<bool>,
    ) {
        self.progress
            .capture_time_ns
            .fetch_max(time_ns, Ordering::Relaxed);
        self.follow_jumps(time_ns, clock);
        if let Some(wait) = self.delay_for(time_ns, clock) {
            send(output, batch).await;
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = cancel.changed() => {}
            }
        }
    }

    /// Notes a jump of the capture time beyond `max_gap` (logged) so pacing skips it.
    fn follow_jumps(&self, time_ns: u64, clock: &mut Clock) {
        let last_ns = std::mem::replace(&mut clock.last_ns, time_ns);
        // Every frame passes here: the common case in u64, without the 128-bit arithmetic.
        if time_ns.abs_diff(last_ns) <= clock.max_gap_ns {
            return;
        }
        let jump = i128::from(time_ns) - i128::from(last_ns);
        clock.skipped_ns += jump;
        clock.jumps += 1;
        if clock.jumps <= LOGGED_JUMPS {
            let seconds = jump as f64 / 1e9;
            let max_gap = self.max_gap.as_secs_f64();
            tracing::warn!(file = %self.path.display(), jump_s = seconds, max_gap_s = max_gap, "capture time jumps by more than --max-gap; not waited for");
        }
    }

    /// How long to wait before the frame captured at `time_ns` is due, if at all.
    fn delay_for(&self, time_ns: u64, clock: &Clock) -> Option<Duration> {
        let Pacing::Speed(speed) = self.pacing else {
            return None;
        };
        let offset = i128::from(time_ns) - i128::from(self.origin_ns) - clock.skipped_ns;
        let offset = Duration::from_nanos(u64::try_from(offset).ok()?).div_f64(speed);
        let due = self.start.checked_add(offset)?;
        let now = Instant::now();
        (due > now + Duration::from_micros(500)).then(|| due - now)
    }
}

async fn send(output: &weighed::Sender<SourceBatch>, batch: &mut SourceBatch) {
    if batch.is_empty() {
        return;
    }
    let full = std::mem::replace(batch, SourceBatch::with_capacity(FRAMES_PER_BATCH));
    // A closed channel means the pipeline is shutting down; the rest of the capture is moot.
    let _ = output.send(full).await;
}

/// The capture time of the first frame in `path` (any capture format), to align several
/// captures on one clock. Malformed input before it is skipped silently (the replay itself
/// counts and logs it).
pub async fn first_frame_time(
    path: &Path,
    inputs: Arc<ReplayInputs>,
) -> Result<Option<u64>, ReplayError> {
    let mut reader = CaptureReader::open(path).await?.quiet().with_inputs(inputs);
    let scratch = Metrics::default();
    let mut frames = SourceBatch::default();
    for _ in 0..FIRST_FRAME_SCAN {
        if !reader.read_frames(&mut frames, &scratch).await? {
            break;
        }
        if let Some(first) = frames.first_time_ns() {
            return Ok(Some(first));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    const T0: u64 = 1_778_936_400_000_000_000;

    fn capture(times_ms: &[u64]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        for ms in times_ms {
            let t = T0 + ms * 1_000_000;
            writeln!(
                file,
                "({}.{:06}) can0 123#{:02X}",
                t / 1_000_000_000,
                t % 1_000_000_000 / 1000,
                ms % 256
            )
            .expect("write");
        }
        writeln!(file, "(1778936400.000000) can0 123#GG").expect("write");
        file
    }

    /// Runs a replay and returns, per frame, its capture time and when (from start) it arrived.
    async fn replay(file: &Path, pacing: Pacing) -> (Vec<(u64, Duration)>, Arc<Metrics>) {
        let (tx, mut rx) = weighed::channel(16, usize::MAX);
        let (_cancel_tx, cancel) = watch::channel(false);
        let metrics = Arc::new(Metrics::default());
        let start = Instant::now();
        let source = ReplaySource {
            path: file.to_owned(),
            pacing,
            origin_ns: T0,
            start,
            inputs: Arc::default(),
            max_gap: DEFAULT_MAX_GAP,
            progress: Arc::default(),
        };
        let task = tokio::spawn(source.run(tx, metrics.clone(), cancel));
        let mut arrivals = Vec::new();
        while let Some(batch) = rx.recv().await {
            let at = start.elapsed();
            arrivals.extend(batch.can.iter().map(|timed| (timed.time_ns, at)));
        }
        assert_eq!(task.await.expect("task").expect("replay ok"), 4);
        (arrivals, metrics)
    }

    #[tokio::test(start_paused = true)]
    async fn speed_scales_the_captured_timing() {
        let file = capture(&[0, 500, 1000, 2000]);
        let (arrivals, metrics) = replay(file.path(), Pacing::Speed(2.0)).await;
        assert_eq!(arrivals.len(), 4);
        for (time, at) in &arrivals {
            let due = Duration::from_nanos(time - T0) / 2;
            assert!(
                *at + Duration::from_millis(1) >= due,
                "frame at {time} came early: {at:?} < {due:?}"
            );
            assert!(
                *at <= due + Duration::from_millis(5),
                "frame at {time} came late: {at:?} > {due:?}"
            );
        }
        assert_eq!(
            Metrics::get(&metrics.rejected_inputs),
            1,
            "the bad line is counted"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_jump_of_the_capture_time_is_not_waited_for() {
        // 300 years ahead (a corrupt timestamp) and back again.
        const JUMP_MS: u64 = 300 * 365 * 86_400 * 1000;
        let file = capture(&[0, 100, JUMP_MS, JUMP_MS + 100]);
        let (arrivals, _) = replay(file.path(), Pacing::Speed(1.0)).await;
        let at: Vec<Duration> = arrivals.iter().map(|(_, at)| *at).collect();
        assert_eq!(at.len(), 4);
        assert!(at[1] >= Duration::from_millis(99), "{at:?}");
        assert!(
            at[2] <= at[1] + Duration::from_millis(5),
            "the jump is skipped: {at:?}"
        );
        let after = at[3] - at[2];
        assert!(
            after >= Duration::from_millis(99) && after <= Duration::from_millis(105),
            "pacing goes on after the jump: {at:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_jump_back_in_capture_time_keeps_the_pacing() {
        // A stray frame 60 s ahead, then the capture carries on where it was.
        let file = capture(&[0, 60_000, 100, 200]);
        let (arrivals, _) = replay(file.path(), Pacing::Speed(1.0)).await;
        let at: Vec<Duration> = arrivals.iter().map(|(_, at)| *at).collect();
        assert_eq!(at.len(), 4);
        assert!(at[2] <= Duration::from_millis(5), "{at:?}");
        let paced = at[3] - at[2];
        assert!(
            paced >= Duration::from_millis(99) && paced <= Duration::from_millis(105),
            "100 ms after the way back: {at:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn max_speed_does_not_wait() {
        let file = capture(&[0, 500, 1000, 2000]);
        let (arrivals, _) = replay(file.path(), Pacing::MaxSpeed).await;
        assert!(
            arrivals
                .iter()
                .all(|(_, at)| *at < Duration::from_millis(1)),
            "{arrivals:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn pcapng_is_paced_by_its_receive_times_and_counts_bad_datagrams() {
        use decoders::can::{CanFlags, CanFrame, CanId};
        use decoders::wire::cannelloni::encode_datagram;

        use crate::capture::pcapng;

        let mut bytes = Vec::new();
        pcapng::write_section_header(&mut bytes);
        pcapng::write_interface("gw", &mut bytes);
        let addresses = (
            "10.0.0.1:1".parse().expect("addr"),
            "10.0.0.2:2".parse().expect("addr"),
        );
        for (sequence, ms) in [0u64, 500, 1000, 2000].into_iter().enumerate() {
            let frame = CanFrame::new(CanId::standard(0x123).expect("id"), CanFlags::empty(), &[1])
                .expect("frame");
            let mut datagram = Vec::new();
            encode_datagram(sequence as u8, &[frame], &mut datagram);
            let time = T0 + ms * 1_000_000;
            assert!(pcapng::write_packet(
                0, time, addresses, &datagram, &mut bytes
            ));
        }
        assert!(pcapng::write_packet(
            0,
            T0 + 3,
            addresses,
            b"junk",
            &mut bytes
        ));
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), &bytes).expect("write");
        assert_eq!(
            first_frame_time(file.path(), Arc::default())
                .await
                .expect("reads"),
            Some(T0)
        );
        let (arrivals, metrics) = replay(file.path(), Pacing::Speed(1.0)).await;
        for (time, at) in &arrivals {
            let due = Duration::from_nanos(time - T0);
            assert!(*at + Duration::from_millis(1) >= due && *at <= due + Duration::from_millis(5));
        }
        assert_eq!(
            Metrics::get(&metrics.rejected_inputs),
            1,
            "the junk datagram"
        );
    }

    #[tokio::test]
    async fn an_unknown_format_is_refused_with_its_first_line() {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        writeln!(file, "\n  \nTIME,ID,DATA").expect("write");
        let (tx, _rx) = weighed::channel(1, usize::MAX);
        let (_cancel_tx, cancel) = watch::channel(false);
        let source = ReplaySource {
            path: file.path().to_owned(),
            pacing: Pacing::MaxSpeed,
            origin_ns: 0,
            start: Instant::now(),
            inputs: Arc::default(),
            max_gap: DEFAULT_MAX_GAP,
            progress: Arc::default(),
        };
        let error = source
            .run(tx, Arc::default(), cancel)
            .await
            .expect_err("not candump");
        assert!(error.to_string().contains("TIME,ID,DATA"), "{error}");
    }
}
