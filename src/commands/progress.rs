//! The replay progress bar: capture time reached, frames, frame rate and time left, drawn on
//! stderr while a replay runs, and only when stderr is a terminal (nothing in pipes, files or
//! the journal). Reads the counters the replay sources keep; never slows them down.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ecu_bridge::capture::replay::ReplayProgress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;

/// How often the bar is brought up to date.
const REFRESH: Duration = Duration::from_millis(250);

/// A progress bar being drawn, or nothing when stderr is not a terminal.
#[derive(Debug)]
pub struct Progress {
    shown: Option<(ProgressBar, JoinHandle<()>)>,
}

/// Starts drawing the replay's progress through `total_bytes` of captures.
pub fn show(progress: Arc<ReplayProgress>, total_bytes: u64) -> Progress {
    if !std::io::stderr().is_terminal() {
        return Progress { shown: None };
    }
    let bar = ProgressBar::with_draw_target(Some(total_bytes), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{bar:24} {percent:>3}% {msg}, {eta} left")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    let updating = bar.clone();
    let task = tokio::spawn(async move {
        let started = tokio::time::Instant::now();
        loop {
            update(&updating, &progress, started.elapsed());
            tokio::time::sleep(REFRESH).await;
        }
    });
    Progress {
        shown: Some((bar, task)),
    }
}

impl Progress {
    /// Stops drawing and clears the bar, leaving the terminal to the summary.
    pub fn finish(self) {
        if let Some((bar, task)) = self.shown {
            task.abort();
            bar.finish_and_clear();
        }
    }
}

fn update(bar: &ProgressBar, progress: &ReplayProgress, elapsed: Duration) {
    let frames = progress.frames.load(Ordering::Relaxed);
    let capture_ns = progress.capture_time_ns.load(Ordering::Relaxed);
    let rate = frames as f64 / elapsed.as_secs_f64().max(1e-3);
    bar.set_position(progress.bytes_read.load(Ordering::Relaxed));
    bar.set_message(format!(
        "capture {} UTC, {frames} frames, {rate:.0} frames/s",
        time_of_day(capture_ns)
    ));
}

/// `HH:MM:SS` of an epoch time in ns (`--:--:--` before the first frame).
fn time_of_day(ns: u64) -> String {
    if ns == 0 {
        return "--:--:--".to_owned();
    }
    let seconds = ns / 1_000_000_000 % 86_400;
    format!(
        "{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_time_reads_as_utc_time_of_day() {
        assert_eq!(time_of_day(0), "--:--:--");
        // 2026-05-16T13:00:00Z
        assert_eq!(time_of_day(1_778_936_400_000_000_000), "13:00:00");
        assert_eq!(
            time_of_day(1_778_936_400_000_000_000 + 3_723_000_000_000),
            "14:02:03"
        );
    }
}
