//! The service around a running pipeline: READY, watchdog pings driven by the pipeline's
//! progress, `STATUS=` text, the metrics endpoint with its health verdict, the periodic
//! summary lines, and STOPPING when the stop begins.
//!
//! It reads counters and sends notifications; it never starts, stops or reads the pipeline's
//! channels. [`crate::daemon`] starts it beside the pipeline and tells it when stopping begins.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::health::spawn_health_monitor;
use super::metrics_http;
use super::notify::{Check, Notifier, Progress, WatchdogPolicy, spawn_watchdog};
use super::summary;
use crate::config::ServiceConfig;
use crate::telemetry::{Metrics, SourceMetrics};

/// How often the watchdog looks at progress when systemd asks for no watchdog.
pub const DEFAULT_WATCHDOG: Duration = Duration::from_secs(10);

/// What the service needs from its caller.
#[derive(Debug, Default)]
pub struct ServiceOptions {
    /// Where sd_notify messages go (inert when not under systemd).
    pub notifier: Notifier,
    /// systemd's `WatchdogSec`; [`DEFAULT_WATCHDOG`] when absent (then pings go nowhere, but
    /// `/health` still follows the same checks).
    pub watchdog: Option<Duration>,
    /// A bound listener for `/metrics` and `/health` (bound by the caller, so tests can use
    /// port 0 and know the address).
    pub metrics_listener: Option<TcpListener>,
}

/// The running service.
#[derive(Debug)]
pub struct Service {
    notifier: Notifier,
    watchdog: JoinHandle<()>,
    stop_endpoint: watch::Sender<bool>,
    endpoint: Option<JoinHandle<()>>,
    health: JoinHandle<()>,
    /// The periodic summary, when the configuration asks for one (then a final line too).
    summaries: Option<JoinHandle<()>>,
    metrics: Arc<Metrics>,
    sources: Vec<Arc<SourceMetrics>>,
    started: tokio::time::Instant,
}

impl Service {
    /// Says READY, starts the watchdog and the health monitor over `metrics`, the periodic
    /// summary when `settings` ask for it and, with a listener, the metrics endpoint over
    /// `metrics` and `sources`.
    pub fn start(
        options: ServiceOptions,
        settings: &ServiceConfig,
        metrics: Arc<Metrics>,
        sources: Vec<Arc<SourceMetrics>>,
    ) -> Self {
        let ServiceOptions {
            notifier,
            watchdog,
            metrics_listener,
        } = options;
        let watchdog = watchdog.unwrap_or(DEFAULT_WATCHDOG);
        let policy = WatchdogPolicy::new(watchdog, watchdog);
        // READY before the first watchdog check, which fires as soon as the task starts: the
        // sources are bound and the pipeline starts right after this returns.
        notifier.ready();
        let watchdog = spawn_watchdog(
            notifier.clone(),
            policy,
            progress_of(metrics.clone()),
            status_of(metrics.clone()),
        );
        let (healthy, health) = spawn_health_monitor(metrics.clone(), settings.health_grace);
        let summaries = settings
            .summary_interval
            .map(|every| summary::spawn_summaries(metrics.clone(), sources.clone(), every));
        let (stop_endpoint, stopped) = watch::channel(false);
        let endpoint_metrics = metrics.clone();
        let endpoint_sources = sources.clone();
        let endpoint = metrics_listener.map(|listener| {
            let health = move || healthy.load(Ordering::Relaxed);
            let mut stopped = stopped;
            let (metrics, sources) = (endpoint_metrics, endpoint_sources);
            tokio::spawn(async move {
                let shutdown = async move {
                    let _ = stopped.wait_for(|stopped| *stopped).await;
                };
                if let Err(error) =
                    metrics_http::serve(listener, metrics, sources, health, shutdown).await
                {
                    tracing::error!(%error, "metrics endpoint failed");
                }
            })
        });
        Self {
            notifier,
            watchdog,
            stop_endpoint,
            endpoint,
            health,
            summaries,
            metrics,
            sources,
            started: tokio::time::Instant::now(),
        }
    }

    /// The stop has begun: no more watchdog pings, `STOPPING=1`. The metrics endpoint keeps
    /// answering while the pipeline drains.
    pub fn stopping(&self) {
        self.watchdog.abort();
        self.notifier.stopping();
    }

    /// Stops the metrics endpoint, the watchdog and the monitors; logs the final summary when
    /// summaries were asked for.
    pub async fn finish(self) {
        self.watchdog.abort();
        self.health.abort();
        if let Some(summaries) = self.summaries {
            summaries.abort();
            summary::log_final(&self.metrics, &self.sources, self.started.elapsed());
        }
        let _ = self.stop_endpoint.send(true);
        if let Some(endpoint) = self.endpoint {
            let _ = endpoint.await;
        }
    }
}

/// Progress for the watchdog: packets published, and whether decoded samples are waiting.
fn progress_of(metrics: Arc<Metrics>) -> impl FnMut() -> Progress + Send + 'static {
    move || Progress {
        completed: Metrics::get(&metrics.packets_published),
        pending: Metrics::get(&metrics.samples_decoded) > Metrics::get(&metrics.samples_published),
    }
}

/// `STATUS=` text (frames/s since the last check, the session).
fn status_of(metrics: Arc<Metrics>) -> impl FnMut(&Check) -> String + Send + 'static {
    let mut last = (tokio::time::Instant::now(), 0u64);
    move |check: &Check| {
        let frames = Metrics::get(&metrics.frames_in);
        let seconds = last.0.elapsed().as_secs_f64().max(1e-3);
        let rate = frames.saturating_sub(last.1) as f64 / seconds;
        last = (tokio::time::Instant::now(), frames);
        let session = metrics.session();
        let session = if session.is_empty() {
            "starting".to_owned()
        } else {
            session
        };
        format!("{}: {rate:.0} frames/s, session {session}", check.health)
    }
}
