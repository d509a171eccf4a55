//! `run`'s one-line summaries: every `[service] summary_interval_s` (a minute by default) a
//! log line with frames in, samples published, waiting and dropped, and the session; one
//! more when the run stops. They read counters only.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::health::Backlog;
use crate::telemetry::{Metrics, SourceMetrics};

/// The totals a summary line reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    /// Frames read from the sources.
    pub frames_in: u64,
    /// Samples the Stream API acknowledged.
    pub samples_published: u64,
    /// Samples decoded and not yet answered by the Stream API.
    pub samples_waiting: u64,
    /// Frames UDP sources dropped because the decode channel stayed full.
    pub frames_dropped: u64,
    /// Samples refused by the Stream API, dropped by the spool's bounds or for want of room.
    pub samples_dropped: u64,
}

impl Totals {
    /// The totals `metrics` and `sources` show now.
    pub fn of(metrics: &Metrics, sources: &[Arc<SourceMetrics>]) -> Self {
        Self {
            frames_in: Metrics::get(&metrics.frames_in),
            samples_published: Metrics::get(&metrics.samples_published),
            samples_waiting: Backlog::of(metrics).waiting,
            frames_dropped: sources
                .iter()
                .map(|s| Metrics::get(&s.frames_dropped))
                .sum(),
            samples_dropped: Metrics::get(&metrics.samples_rejected)
                + Metrics::get(&metrics.samples_lost_no_room)
                + Metrics::get(&metrics.spool_dropped_samples),
        }
    }

    /// The line: `what`, the totals, the frame rate since `previous` (`seconds` ago), and
    /// the session.
    pub fn line(&self, what: &str, previous: &Self, seconds: f64, session: &str) -> String {
        let rate = self.frames_in.saturating_sub(previous.frames_in) as f64 / seconds.max(1e-3);
        let session = if session.is_empty() {
            "none yet"
        } else {
            session
        };
        format!(
            "{what}: {} frames in ({rate:.0}/s), {} samples published, {} waiting, dropped {} frames and {} samples; session {session}",
            self.frames_in,
            self.samples_published,
            self.samples_waiting,
            self.frames_dropped,
            self.samples_dropped,
        )
    }
}

/// Spawns the periodic summary: one line every `every`, the first `every` after the start.
/// Runs until aborted.
pub fn spawn_summaries(
    metrics: Arc<Metrics>,
    sources: Vec<Arc<SourceMetrics>>,
    every: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(Instant::now() + every, every);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut previous = (Instant::now(), Totals::default());
        loop {
            let now = ticks.tick().await;
            let totals = Totals::of(&metrics, &sources);
            let seconds = now.duration_since(previous.0).as_secs_f64();
            let line = totals.line("running", &previous.1, seconds, &metrics.session());
            tracing::info!("{line}");
            previous = (now, totals);
        }
    })
}

/// Logs the final summary of a run that lasted `elapsed`.
pub fn log_final(metrics: &Metrics, sources: &[Arc<SourceMetrics>], elapsed: Duration) {
    let totals = Totals::of(metrics, sources);
    let line = totals.line(
        "stopped",
        &Totals::default(),
        elapsed.as_secs_f64(),
        &metrics.session(),
    );
    tracing::info!("{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_names_every_total_and_the_session() {
        let metrics = Metrics::default();
        Metrics::add(&metrics.frames_in, 1_200);
        Metrics::add(&metrics.samples_decoded, 5_000);
        Metrics::add(&metrics.samples_published, 4_000);
        Metrics::add(&metrics.samples_rejected, 10);
        let source = Arc::new(SourceMetrics::new("gw"));
        Metrics::add(&source.frames_dropped, 7);
        let totals = Totals::of(&metrics, &[source]);
        let previous = Totals {
            frames_in: 600,
            ..Totals::default()
        };
        assert_eq!(
            totals.line("running", &previous, 60.0, ""),
            "running: 1200 frames in (10/s), 4000 samples published, 990 waiting, dropped 7 frames and 10 samples; session none yet"
        );
        assert!(
            totals
                .line("stopped", &previous, 1.0, "abc")
                .ends_with("session abc")
        );
    }
}
