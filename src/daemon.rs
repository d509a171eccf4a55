//! The bridge as a library function: [`run`] carries a configuration's sources through the
//! pipeline into the Stream API — remote, or our own server started in-process for
//! `endpoint = "embedded"` — with the service around it (sd_notify, watchdog, metrics
//! endpoint, channel-map reloads), until the sources end or `shutdown` resolves; then it drains
//! within the configured stop timeout.
//!
//! `ecu-bridge run` and `replay` are this function with live or replay [`Source`]s; the binary
//! passes SIGTERM/SIGINT as `shutdown` and SIGHUP reloads as `reloads`, tests pass a oneshot and
//! listeners bound to 127.0.0.1:0.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use decoders::channel_map::ChannelMap;
use stream_api::{ServerHandle, ServerOptions};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::config::{Config, StreamApiTarget};
use crate::pipeline::sources::Source;
use crate::pipeline::{self, PipelineError, RunSummary};
use crate::service::{Service, ServiceOptions};
use crate::telemetry::{Metrics, SourceMetrics};

/// Everything a run needs besides the stop signal.
#[derive(Debug)]
pub struct Daemon {
    /// The validated configuration.
    pub config: Config,
    /// Its compiled channel map.
    pub map: ChannelMap,
    /// The sources to read.
    pub sources: Vec<Source>,
    /// The sources' counters, exported by the metrics endpoint.
    pub source_metrics: Vec<Arc<SourceMetrics>>,
    /// Reloaded channel maps (SIGHUP in the binary), applied while samples keep flowing.
    pub reloads: Option<mpsc::Receiver<ChannelMap>>,
    /// Requests to end the open session by hand (SIGUSR1 in the binary).
    pub new_sessions: Option<mpsc::Receiver<()>>,
    /// sd_notify, watchdog and metrics endpoint.
    pub service: ServiceOptions,
    /// The pipeline's counters (shared, so a caller can watch a run in progress).
    pub metrics: Arc<Metrics>,
}

/// What a finished run did.
#[derive(Debug)]
pub struct RunReport {
    /// The pipeline's summary.
    pub summary: RunSummary,
    /// What the embedded Stream API saw, when the run used one.
    pub embedded: Option<EmbeddedReport>,
}

/// What the embedded Stream API saw in one run, from its memory (a recording is kept only
/// when the configuration names one).
#[derive(Debug)]
pub struct EmbeddedReport {
    /// Its recording, when `[stream_api] record` asked for one.
    pub recording: Option<PathBuf>,
    /// Its counters for this run.
    pub stats: stream_api::Stats,
    /// The protocol violations it found, in order.
    pub violations: Vec<stream_api::Violation>,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The pipeline failed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// The embedded Stream API could not bind 127.0.0.1.
    #[error("the embedded Stream API could not listen on 127.0.0.1: {0}")]
    EmbeddedBind(#[source] std::io::Error),
    /// The embedded Stream API failed to start or stop.
    #[error("embedded Stream API: {0}")]
    Embedded(#[from] stream_api::StreamApiError),
    /// The drain did not finish within the stop timeout.
    #[error("the pipeline did not drain within {0:?} of the stop signal")]
    DrainTimeout(Duration),
}

impl Daemon {
    /// A run of `sources` with no service around it (no notifications, no metrics endpoint,
    /// no reloads): what tests and tools start from.
    pub fn new(config: Config, map: ChannelMap, sources: Vec<Source>) -> Self {
        Self {
            config,
            map,
            sources,
            source_metrics: Vec::new(),
            reloads: None,
            new_sessions: None,
            service: ServiceOptions::default(),
            metrics: Arc::new(Metrics::default()),
        }
    }
}

/// Runs `daemon` until its sources end or `shutdown` resolves, then drains (flush,
/// EndOfSession, EndSession) within `service.stop_timeout`.
pub async fn run(
    daemon: Daemon,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<RunReport, RunError> {
    let Daemon {
        config,
        map,
        sources,
        source_metrics,
        reloads,
        new_sessions,
        service,
        metrics,
    } = daemon;
    let target = Target::start(&config).await?;
    let service = Service::start(service, &config.service, metrics.clone(), source_metrics);
    let (stop, stopped) = watch::channel(false);
    let (give_up, given_up) = watch::channel(false);
    let pipeline = pipeline::run_reloadable(
        &config,
        map,
        target.endpoint.clone(),
        sources,
        wait_for_stop(stopped),
        pipeline::RunHooks {
            reloads,
            metrics,
            give_up: Some(given_up),
            new_sessions,
        },
    );
    let stop_timeout = config.service.stop_timeout;
    let limits = DrainLimits {
        stop_timeout,
        // The calls in flight at the stop timeout are answered within their deadline.
        answer_grace: config.call_timeout + Duration::from_secs(1),
    };
    let outcome = drain_on_shutdown(
        pipeline,
        shutdown,
        limits,
        || {
            service.stopping();
            let _ = stop.send(true);
        },
        || {
            let _ = give_up.send(true);
        },
    )
    .await;
    service.finish().await;
    let embedded = target.finish().await;
    let summary = outcome??;
    Ok(RunReport {
        summary,
        embedded: embedded?,
    })
}

/// How long a stop may take.
#[derive(Debug, Clone, Copy)]
struct DrainLimits {
    /// From the stop signal to giving up the drain.
    stop_timeout: Duration,
    /// From giving up to the end: the calls in flight get their answers, so that what counts
    /// as published is what the server holds.
    answer_grace: Duration,
}

/// Drives `pipeline`; when `shutdown` resolves, calls `on_stop` and allows `stop_timeout` for
/// the pipeline to finish; then calls `on_give_up` and allows `answer_grace` more.
async fn drain_on_shutdown<T>(
    pipeline: impl Future<Output = T>,
    shutdown: impl Future<Output = ()>,
    limits: DrainLimits,
    on_stop: impl FnOnce(),
    on_give_up: impl FnOnce(),
) -> Result<T, RunError> {
    tokio::pin!(pipeline, shutdown);
    tokio::select! {
        outcome = &mut pipeline => return Ok(outcome),
        () = &mut shutdown => on_stop(),
    }
    if let Ok(outcome) = tokio::time::timeout(limits.stop_timeout, &mut pipeline).await {
        return Ok(outcome);
    }
    on_give_up();
    match tokio::time::timeout(limits.answer_grace, pipeline).await {
        // Cut short: whatever the pipeline says, the run did not drain.
        Ok(_) | Err(_) => Err(RunError::DrainTimeout(limits.stop_timeout)),
    }
}

async fn wait_for_stop(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stopped| *stopped).await;
}

/// The Stream API a run publishes to: a remote URL, or our server started in-process.
struct Target {
    endpoint: String,
    server: Option<ServerHandle>,
    record: Option<PathBuf>,
}

impl Target {
    async fn start(config: &Config) -> Result<Self, RunError> {
        match &config.stream_api {
            StreamApiTarget::Remote(url) => Ok(Self {
                endpoint: url.clone(),
                server: None,
                record: None,
            }),
            StreamApiTarget::Embedded { record, strict } => {
                let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
                    .await
                    .map_err(RunError::EmbeddedBind)?;
                // Recording only when asked: a long `run` must not grow a file without bound.
                let options = ServerOptions {
                    strict: *strict,
                    record: record.clone(),
                };
                let server = stream_api::spawn(listener, options).await?;
                let endpoint = format!("http://{}", server.local_addr());
                match record {
                    Some(record) => {
                        tracing::info!(%endpoint, recording = %record.display(), "embedded Stream API started")
                    }
                    None => {
                        tracing::info!(%endpoint, "embedded Stream API started (not recording)")
                    }
                }
                Ok(Self {
                    endpoint,
                    server: Some(server),
                    record: record.clone(),
                })
            }
        }
    }

    /// Stops the embedded server and reports what it saw.
    async fn finish(self) -> Result<Option<EmbeddedReport>, RunError> {
        let Some(server) = self.server else {
            return Ok(None);
        };
        let (stats, violations) = (server.stats(), server.violations());
        server.shutdown().await?;
        Ok(Some(EmbeddedReport {
            recording: self.record,
            stats,
            violations,
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    const LIMITS: DrainLimits = DrainLimits {
        stop_timeout: Duration::from_secs(5),
        answer_grace: Duration::from_secs(11),
    };

    #[tokio::test(start_paused = true)]
    async fn a_drain_that_outlives_the_stop_timeout_gives_up_then_is_an_error() {
        let stopped = AtomicBool::new(false);
        let gave_up = AtomicBool::new(false);
        let started = tokio::time::Instant::now();
        let outcome = drain_on_shutdown(
            std::future::pending::<()>(),
            tokio::time::sleep(Duration::from_secs(1)),
            LIMITS,
            || stopped.store(true, Ordering::Relaxed),
            || gave_up.store(true, Ordering::Relaxed),
        )
        .await;
        assert!(matches!(outcome, Err(RunError::DrainTimeout(t)) if t == Duration::from_secs(5)));
        assert!(stopped.load(Ordering::Relaxed));
        assert!(gave_up.load(Ordering::Relaxed));
        assert_eq!(started.elapsed(), Duration::from_secs(1 + 5 + 11));
    }

    #[tokio::test(start_paused = true)]
    async fn a_drain_given_up_ends_when_the_calls_in_flight_are_answered() {
        let (give_up, mut given_up) = watch::channel(false);
        let started = tokio::time::Instant::now();
        let outcome = drain_on_shutdown(
            async move {
                let _ = given_up.wait_for(|g| *g).await;
                // The call in flight answers 2 s later.
                tokio::time::sleep(Duration::from_secs(2)).await;
            },
            tokio::time::sleep(Duration::from_secs(1)),
            LIMITS,
            || {},
            || {
                let _ = give_up.send(true);
            },
        )
        .await;
        assert!(matches!(outcome, Err(RunError::DrainTimeout(_))));
        assert_eq!(started.elapsed(), Duration::from_secs(1 + 5 + 2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_pipeline_that_ends_first_needs_no_stop() {
        let outcome = drain_on_shutdown(
            async { 7 },
            std::future::pending(),
            LIMITS,
            || panic!("no stop expected"),
            || panic!("no give-up expected"),
        )
        .await;
        assert_eq!(outcome.ok(), Some(7));
    }

    #[tokio::test(start_paused = true)]
    async fn a_drain_within_the_timeout_returns_its_outcome() {
        let started = tokio::time::Instant::now();
        let outcome = drain_on_shutdown(
            async {
                tokio::time::sleep(Duration::from_secs(4)).await;
                "drained"
            },
            tokio::time::sleep(Duration::from_secs(1)),
            LIMITS,
            || {},
            || panic!("no give-up expected"),
        )
        .await;
        assert_eq!(outcome.ok(), Some("drained"));
        assert_eq!(started.elapsed(), Duration::from_secs(4));
    }
}
