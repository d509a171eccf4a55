//! The binary's commands: each loads what it needs, runs the library, and reports to the
//! terminal. The only place (with main.rs) that uses `anyhow`.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use decoders::channel_map::ChannelMap;
use ecu_bridge::capture::replay::Pacing;
use ecu_bridge::config::{Config, StreamApiTarget};
use ecu_bridge::pipeline::sources::LiveSources;
use ecu_bridge::pipeline::{self, RunSummary};
use ecu_bridge::service::metrics_http;
use ecu_bridge::service::notify::{Check, Notifier, Progress, WatchdogPolicy, spawn_watchdog};
use ecu_bridge::telemetry::{Metrics, SourceMetrics};
use stream_api::{ServerOptions, inspect};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

/// Log line formats.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (no timestamps or colours under systemd, which adds its own).
    Plain,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Sets up tracing; `RUST_LOG` overrides the default `info` level.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Plain if std::env::var_os("JOURNAL_STREAM").is_some() => {
            builder.without_time().with_ansi(false).init();
        }
        LogFormat::Plain => builder.with_ansi(false).init(),
    }
}

/// `ecu-bridge replay`.
pub async fn replay(
    config_path: &Path,
    captures: Vec<PathBuf>,
    pacing: Pacing,
) -> anyhow::Result<()> {
    if let Pacing::Speed(speed) = pacing
        && !(speed.is_finite() && speed > 0.0)
    {
        bail!("--speed must be a positive number, got {speed}");
    }
    let config = Config::load(config_path)?;
    let (map, warnings) = config.load_channel_map()?;
    tracing::info!(
        parameters = map.parameters().len(),
        dbc_warnings = warnings.len(),
        "channel map loaded (`ecu-bridge validate` lists DBC warnings)"
    );
    let target = StreamApi::start(&config).await?;
    let endpoint = target.endpoint.clone();
    let native = Arc::new(pipeline::native_inputs(&config, &map));
    let sources = pipeline::replay_sources(captures, pacing, native).await?;
    let service = Service::start(&config, Vec::new()).await?;
    let reloads = reload_on_sighup(config_path.to_owned(), service.notifier.clone());
    let summary = service
        .run(pipeline::run_reloadable(
            &config,
            map,
            endpoint,
            sources,
            service.stopped(),
            reloads,
            service.metrics.clone(),
        ))
        .await?;
    let (summary, recording) = target.finish(summary).await?;
    print_run_summary(&summary);
    recording.report()
}

/// `ecu-bridge run`: the live sources of the configuration into the Stream API, until SIGTERM
/// or SIGINT; with `record`, every raw input is also captured there.
pub async fn run(config_path: &Path, record: Option<PathBuf>) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    let (map, warnings) = config.load_channel_map()?;
    tracing::info!(
        parameters = map.parameters().len(),
        dbc_warnings = warnings.len(),
        "channel map loaded"
    );
    let live = LiveSources::prepare(&config, &map, record.as_deref())?;
    let target = StreamApi::start(&config).await?;
    let endpoint = target.endpoint.clone();
    let service = Service::start(&config, live.metrics.clone()).await?;
    let reloads = reload_on_sighup(config_path.to_owned(), service.notifier.clone());
    let summary = service
        .run(pipeline::run_reloadable(
            &config,
            map,
            endpoint,
            live.specs,
            service.stopped(),
            reloads,
            service.metrics.clone(),
        ))
        .await?;
    let (summary, recording) = target.finish(summary).await?;
    print_run_summary(&summary);
    print_source_metrics(&live.metrics);
    recording.report()?;
    if let Some(recorder) = live.recorder {
        let stats = recorder.await.context("recorder task")??;
        println!("recorded: {stats:?}");
    }
    Ok(())
}

/// `ecu-bridge record`: captures the live sources exactly as received, without publishing.
pub async fn record(
    config_path: &Path,
    out: &Path,
    duration: Option<Duration>,
) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    // Sources of native frames take their framing from the map's definitions.
    let (map, _) = config.load_channel_map()?;
    let live = LiveSources::prepare(&config, &map, Some(out))?;
    let (frames, mut drain) = mpsc::channel(64);
    // The recorder decodes its own candump copy; the sources' frames are not needed here.
    let drained = tokio::spawn(async move { while drain.recv().await.is_some() {} });
    let (cancel, cancelled) = watch::channel(false);
    let metrics = Arc::new(Metrics::default());
    let mut sources = JoinSet::new();
    for spec in live.specs {
        sources.spawn((spec.start)(
            frames.clone(),
            metrics.clone(),
            cancelled.clone(),
        ));
    }
    drop(frames);
    tracing::info!(out = %out.display(), "recording; stop with Ctrl-C or SIGTERM");
    match duration {
        Some(duration) => tokio::select! {
            () = tokio::time::sleep(duration) => {}
            () = shutdown_signal() => {}
        },
        None => shutdown_signal().await,
    }
    let _ = cancel.send(true);
    while let Some(result) = sources.join_next().await {
        result.context("source task")??;
    }
    drained.await.context("drain task")?;
    print_source_metrics(&live.metrics);
    if let Some(recorder) = live.recorder {
        let stats = recorder.await.context("recorder task")??;
        println!("recorded into {}: {stats:?}", out.display());
    }
    Ok(())
}

/// The Stream API a run publishes to: a remote URL, or our server started in-process.
struct StreamApi {
    endpoint: String,
    server: Option<stream_api::ServerHandle>,
    record: Option<PathBuf>,
}

impl StreamApi {
    async fn start(config: &Config) -> anyhow::Result<Self> {
        match &config.stream_api {
            StreamApiTarget::Remote(url) => Ok(Self {
                endpoint: url.clone(),
                server: None,
                record: None,
            }),
            StreamApiTarget::Embedded { record, strict } => {
                let record = record.clone().unwrap_or_else(temporary_recording);
                let listener =
                    TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
                let options = ServerOptions {
                    strict: *strict,
                    record: Some(record.clone()),
                };
                let server = stream_api::spawn(listener, options).await?;
                let endpoint = format!("http://{}", server.local_addr());
                tracing::info!(%endpoint, recording = %record.display(), "embedded Stream API started");
                Ok(Self {
                    endpoint,
                    server: Some(server),
                    record: Some(record),
                })
            }
        }
    }

    /// Stops the embedded server; the run's outcome and what the server recorded.
    async fn finish<T>(
        self,
        outcome: Result<T, pipeline::PipelineError>,
    ) -> anyhow::Result<(T, EmbeddedRecording)> {
        if let Some(server) = self.server {
            server
                .shutdown()
                .await
                .context("stopping the embedded Stream API")?;
        }
        Ok((outcome?, EmbeddedRecording(self.record)))
    }
}

/// The embedded server's recording, if the run used one.
struct EmbeddedRecording(Option<PathBuf>);

impl EmbeddedRecording {
    /// Prints the recording's summary; fails if the server saw protocol violations.
    fn report(self) -> anyhow::Result<()> {
        let Some(record) = self.0 else {
            return Ok(());
        };
        let recording = inspect::read_recording(&record)
            .with_context(|| format!("reading recording {}", record.display()))?;
        println!("\n{}", recording.summary());
        let violations = recording.violations().len();
        if violations > 0 {
            bail!("the embedded Stream API recorded {violations} protocol violations");
        }
        Ok(())
    }
}

/// `ecu-bridge stream-api`.
pub async fn stream_api(
    listen: SocketAddr,
    strict: bool,
    record: Option<PathBuf>,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(address = %listener.local_addr()?, strict, "Stream API listening (h2c)");
    stream_api::serve(
        listener,
        ServerOptions { strict, record },
        shutdown_signal(),
    )
    .await?;
    Ok(())
}

/// `ecu-bridge inspect`.
pub fn inspect(file: &Path) -> anyhow::Result<()> {
    let recording = inspect::read_recording(file)
        .with_context(|| format!("reading recording {}", file.display()))?;
    println!("{}", recording.summary());
    Ok(())
}

/// `ecu-bridge validate`: every problem at once, each with file, line, column and key.
pub fn validate(config_path: &Path) -> anyhow::Result<()> {
    let (config, map, warnings) = match Config::validate_file(config_path) {
        Ok(checked) => checked,
        Err(errors) => {
            for error in &errors.0 {
                eprintln!("error: {error}");
            }
            bail!("{}: {} problem(s)", config_path.display(), errors.0.len());
        }
    };
    for warning in &warnings {
        println!("warning: {warning}");
    }
    println!(
        "{}: ok — {} parameters from {} DBC file(s) and {} frame definition(s), {} source(s), {} warning(s)",
        config_path.display(),
        map.parameters().len(),
        config.car.dbc.len(),
        map.definitions().len(),
        config.sources.len(),
        warnings.len()
    );
    Ok(())
}

fn print_source_metrics(sources: &[Arc<SourceMetrics>]) {
    for m in sources {
        println!(
            "  source {}: {} datagrams/reads, {} bytes, {} frames; kernel drops {}, sequence gaps {}, truncated {}, channel drops {} ({} frames); outages {}, reconnects {}",
            m.name,
            Metrics::get(&m.datagrams),
            Metrics::get(&m.bytes),
            Metrics::get(&m.frames),
            Metrics::get(&m.kernel_drops),
            Metrics::get(&m.sequence_gaps),
            Metrics::get(&m.truncated),
            Metrics::get(&m.channel_drops),
            Metrics::get(&m.frames_dropped),
            Metrics::get(&m.outages),
            Metrics::get(&m.reconnects),
        );
        for (kind, count) in m.decode_errors() {
            println!("    {kind}: {count}");
        }
    }
}

/// A duration like `90s`, `5m`, `2h` or plain seconds (`30`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 90s, 5m or 2h"))?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?} (use ms, s, m or h)"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("{text:?} is not a valid duration"))
}

fn temporary_recording() -> PathBuf {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    std::env::temp_dir().join(format!("ecu-bridge-{}-{stamp}.osrec", std::process::id()))
}

fn print_run_summary(summary: &RunSummary) {
    let m = &summary.metrics;
    let seconds = summary.elapsed.as_secs_f64().max(1e-9);
    let published = Metrics::get(&m.samples_published);
    println!(
        "finished in {:.2} s — session {}",
        seconds, summary.session_key
    );
    for (path, frames) in &summary.frames_per_source {
        println!("  {path}: {frames} frames");
    }
    println!(
        "  decoded {} rows, {} samples; published {} samples in {} packets ({:.0} samples/s)",
        Metrics::get(&m.rows_decoded),
        Metrics::get(&m.samples_decoded),
        published,
        Metrics::get(&m.packets_published),
        published as f64 / seconds,
    );
    println!(
        "  frames with unknown id or message {}, short {}, without values {}; rejected inputs {}",
        Metrics::get(&m.unknown_ids),
        Metrics::get(&m.short_frames),
        Metrics::get(&m.frames_without_values),
        Metrics::get(&m.rejected_inputs),
    );
    for (kind, count) in m.decode_errors() {
        println!("    {kind}: {count}");
    }
}

/// On every SIGHUP, reloads the configuration at `path` and sends its compiled channel map to
/// the pipeline. A map that fails to load or compile is rejected with the reason, and the
/// pipeline keeps the map it has. Only the channel map reloads: sources and the Stream API
/// target need a restart.
fn reload_on_sighup(path: PathBuf, notifier: Notifier) -> Option<mpsc::Receiver<ChannelMap>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(error) => {
            tracing::warn!(%error, "SIGHUP reload unavailable");
            return None;
        }
    };
    let (reloads, received) = mpsc::channel(1);
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            notifier.reloading();
            let loaded = Config::load(&path).and_then(|config| config.load_channel_map());
            notifier.ready();
            match loaded {
                Ok((map, warnings)) => {
                    tracing::info!(
                        config = %path.display(),
                        parameters = map.parameters().len(),
                        dbc_warnings = warnings.len(),
                        "SIGHUP: channel map reloaded"
                    );
                    if reloads.send(map).await.is_err() {
                        return;
                    }
                }
                Err(error) => {
                    tracing::error!(%error, "SIGHUP: reload rejected; keeping the current channel map");
                }
            }
        }
    });
    Some(received)
}

/// Service plumbing shared by `run` and `replay`: sd_notify (READY, WATCHDOG driven by the
/// pipeline's progress, STATUS, STOPPING, RELOADING), the metrics endpoint, and the deadline
/// for stopping after SIGTERM or SIGINT.
struct Service {
    notifier: Notifier,
    metrics: Arc<Metrics>,
    stop: watch::Receiver<bool>,
    stop_timeout: Duration,
}

/// How often the watchdog looks at progress when systemd asks for no watchdog.
const DEFAULT_WATCHDOG: Duration = Duration::from_secs(10);

impl Service {
    async fn start(config: &Config, sources: Vec<Arc<SourceMetrics>>) -> anyhow::Result<Self> {
        let notifier = Notifier::from_env();
        let metrics = Arc::new(Metrics::default());
        let alive = Arc::new(AtomicBool::new(true));
        let watchdog = Notifier::watchdog_interval().unwrap_or(DEFAULT_WATCHDOG);
        let policy = WatchdogPolicy::new(watchdog, watchdog);
        // READY before the first watchdog check, which fires as soon as the task starts: the
        // sources are bound and the pipeline starts right after this returns.
        notifier.ready();
        let watchdog = spawn_watchdog(
            notifier.clone(),
            policy,
            progress_of(metrics.clone()),
            status_of(metrics.clone(), alive.clone()),
        );
        let (stop_tx, stop) = watch::channel(false);
        let stopping = notifier.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            watchdog.abort();
            stopping.stopping();
            let _ = stop_tx.send(true);
        });
        if let Some(address) = config.service.metrics_listen {
            let listener = TcpListener::bind(address)
                .await
                .with_context(|| format!("metrics endpoint cannot listen on {address}"))?;
            tracing::info!(address = %listener.local_addr()?, "metrics endpoint listening (/metrics, /health)");
            let (metrics, mut stop) = (metrics.clone(), stop.clone());
            let health = move || alive.load(Ordering::Relaxed);
            tokio::spawn(async move {
                let shutdown = async move {
                    let _ = stop.wait_for(|stopped| *stopped).await;
                };
                if let Err(error) =
                    metrics_http::serve(listener, metrics, sources, health, shutdown).await
                {
                    tracing::error!(%error, "metrics endpoint failed");
                }
            });
        }
        Ok(Self {
            notifier,
            metrics,
            stop,
            stop_timeout: config.service.stop_timeout,
        })
    }

    /// Resolves once SIGTERM or SIGINT arrived.
    fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut stop = self.stop.clone();
        async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        }
    }

    /// Runs `pipeline`, failing if it has not drained `stop_timeout` after the stop signal.
    async fn run<T>(
        &self,
        pipeline: impl Future<Output = Result<T, pipeline::PipelineError>>,
    ) -> anyhow::Result<Result<T, pipeline::PipelineError>> {
        let timeout = self.stop_timeout;
        let deadline = {
            let stopped = self.stopped();
            async move {
                stopped.await;
                tokio::time::sleep(timeout).await;
            }
        };
        tokio::select! {
            outcome = pipeline => Ok(outcome),
            () = deadline => bail!("the pipeline did not drain within {timeout:?} of the stop signal"),
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

/// `STATUS=` text (frames/s since the last check, the session) and the health `/health` reports.
fn status_of(
    metrics: Arc<Metrics>,
    alive: Arc<AtomicBool>,
) -> impl FnMut(&Check) -> String + Send + 'static {
    let mut last = (std::time::Instant::now(), 0u64);
    move |check: &Check| {
        alive.store(check.health.is_alive(), Ordering::Relaxed);
        let frames = Metrics::get(&metrics.frames_in);
        let seconds = last.0.elapsed().as_secs_f64().max(1e-3);
        let rate = frames.saturating_sub(last.1) as f64 / seconds;
        last = (std::time::Instant::now(), frames);
        let session = metrics.session();
        let session = if session.is_empty() {
            "starting".to_owned()
        } else {
            session
        };
        format!("{}: {rate:.0} frames/s, session {session}", check.health)
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
