//! `/health`'s verdict: unhealthy when decoded samples wait and the Stream API acknowledged
//! nothing for a grace period (`[service] health_grace_ms`); healthy again as soon as an
//! acknowledgement arrives. A quiet car, with nothing waiting, is healthy however long it is
//! quiet. [`PublishHealth`] judges from samples it is given (no clock, no IO);
//! [`spawn_health_monitor`] feeds it the pipeline's counters every [`HEALTH_SAMPLE_PERIOD`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::telemetry::Metrics;

/// How long samples may wait with nothing acknowledged before `/health` says 503, when the
/// configuration does not say.
pub const DEFAULT_HEALTH_GRACE: Duration = Duration::from_secs(2);

/// How often the monitor reads the counters: well inside any sensible grace.
pub const HEALTH_SAMPLE_PERIOD: Duration = Duration::from_millis(250);

/// The publish side at one moment, from the pipeline's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Backlog {
    /// Samples the Stream API answered for (accepted, or refused for good): grows only when
    /// the server responds.
    pub answered: u64,
    /// Samples decoded and neither answered nor dropped: data that waits somewhere between
    /// the decode stage and the Stream API.
    pub waiting: u64,
}

impl Backlog {
    /// The backlog `metrics` show now.
    pub fn of(metrics: &Metrics) -> Self {
        let answered =
            Metrics::get(&metrics.samples_published) + Metrics::get(&metrics.samples_rejected);
        // Samples dropped by the spool's bounds or for want of room no longer wait.
        let gone = answered
            + Metrics::get(&metrics.samples_lost_no_room)
            + Metrics::get(&metrics.spool_dropped_samples);
        Self {
            answered,
            waiting: Metrics::get(&metrics.samples_decoded).saturating_sub(gone),
        }
    }
}

/// Judges health from successive [`Backlog`]s and the times they were read.
#[derive(Debug, Clone)]
pub struct PublishHealth {
    grace: Duration,
    /// `answered` at the previous sample; `None` before the first.
    last_answered: Option<u64>,
    /// Since when samples have waited with no answer (the last answer, or the moment
    /// something began to wait).
    unanswered_since: Instant,
}

impl PublishHealth {
    /// A judge that forgives `grace` of waiting without an answer; healthy until it has seen
    /// that much.
    pub fn new(grace: Duration, now: Instant) -> Self {
        Self {
            grace,
            last_answered: None,
            unanswered_since: now,
        }
    }

    /// Whether the bridge is healthy, given the backlog read at `now`.
    pub fn handle_sample(&mut self, now: Instant, backlog: Backlog) -> bool {
        let answered_since_last = self.last_answered != Some(backlog.answered);
        self.last_answered = Some(backlog.answered);
        if answered_since_last || backlog.waiting == 0 {
            self.unanswered_since = now;
            return true;
        }
        now.duration_since(self.unanswered_since) < self.grace
    }
}

/// Spawns the monitor over `metrics`; the returned flag is what `/health` reports. Runs until
/// aborted.
pub fn spawn_health_monitor(
    metrics: Arc<Metrics>,
    grace: Duration,
) -> (Arc<AtomicBool>, JoinHandle<()>) {
    let healthy = Arc::new(AtomicBool::new(true));
    let flag = healthy.clone();
    let task = tokio::spawn(async move {
        let mut judge = PublishHealth::new(grace, Instant::now());
        let mut ticks = tokio::time::interval(HEALTH_SAMPLE_PERIOD);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let now = ticks.tick().await;
            let verdict = judge.handle_sample(now, Backlog::of(&metrics));
            flag.store(verdict, Ordering::Relaxed);
        }
    });
    (healthy, task)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backlog(answered: u64, waiting: u64) -> Backlog {
        Backlog { answered, waiting }
    }

    #[test]
    fn waiting_without_answers_is_unhealthy_after_the_grace_and_an_answer_heals() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut judge = PublishHealth::new(Duration::from_secs(2), start);
        assert!(judge.handle_sample(at(0), backlog(0, 0)));
        assert!(judge.handle_sample(at(500), backlog(0, 40)));
        // Counted from the last sample with nothing waiting.
        assert!(judge.handle_sample(at(1_900), backlog(0, 90)));
        assert!(!judge.handle_sample(at(2_100), backlog(0, 90)));
        assert!(!judge.handle_sample(at(9_000), backlog(0, 300)));
        assert!(judge.handle_sample(at(9_250), backlog(50, 250)));
        assert!(judge.handle_sample(at(11_000), backlog(50, 250)));
        assert!(!judge.handle_sample(at(11_300), backlog(50, 250)));
    }

    #[test]
    fn a_quiet_car_stays_healthy() {
        let start = Instant::now();
        let mut judge = PublishHealth::new(Duration::from_secs(2), start);
        for second in 0..600 {
            assert!(judge.handle_sample(start + Duration::from_secs(second), backlog(70, 0)));
        }
    }

    #[test]
    fn dropped_samples_do_not_count_as_waiting_nor_as_answered() {
        let metrics = Metrics::default();
        Metrics::add(&metrics.samples_decoded, 100);
        Metrics::add(&metrics.samples_published, 60);
        Metrics::add(&metrics.samples_rejected, 5);
        Metrics::add(&metrics.spool_dropped_samples, 10);
        assert_eq!(Backlog::of(&metrics), backlog(65, 25));
    }

    #[tokio::test(start_paused = true)]
    async fn the_monitor_turns_unhealthy_while_samples_wait_and_recovers_on_acknowledgement() {
        let metrics = Arc::new(Metrics::default());
        let (healthy, task) = spawn_health_monitor(metrics.clone(), DEFAULT_HEALTH_GRACE);
        let is_healthy = || healthy.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(is_healthy(), "an idle bridge is healthy");
        Metrics::add(&metrics.samples_decoded, 500);
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert!(is_healthy(), "within the grace");
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        assert!(
            !is_healthy(),
            "samples waited 2.5 s with nothing acknowledged"
        );
        Metrics::add(&metrics.samples_published, 100);
        tokio::time::sleep(HEALTH_SAMPLE_PERIOD * 2).await;
        assert!(is_healthy(), "acknowledgements resumed");
        Metrics::add(&metrics.samples_published, 400);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(is_healthy(), "everything acknowledged: idle again");
        task.abort();
    }
}
