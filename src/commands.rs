//! The binary's commands: each loads what it needs, runs the library, and reports to the
//! terminal. The only place (with main.rs) that uses `anyhow`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use decoders::channel_map::ChannelMap;
use ecu_bridge::capture::replay::Pacing;
use ecu_bridge::config::Config;
use ecu_bridge::daemon::{self, Daemon};
use ecu_bridge::init::{InitRequest, starting_config};
use ecu_bridge::pipeline::RunSummary;
use ecu_bridge::pipeline::sources::{self, LiveSources};
use ecu_bridge::service::notify::Notifier;
use ecu_bridge::service::{ServiceOptions, signals};
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
    let (config, map) = load(config_path)?;
    let native = Arc::new(sources::native_inputs(&config, &map));
    let sources = sources::replay_sources(captures, pacing, native).await?;
    let daemon = Daemon {
        sources,
        ..service_daemon(config_path, config, map).await?
    };
    let report = daemon::run(daemon, signals::shutdown_signal()).await?;
    print_run_summary(&report.summary);
    report_recording(report.embedded_recording)
}

/// `ecu-bridge run`: the live sources of the configuration into the Stream API, until SIGTERM
/// or SIGINT; with `capture`, every raw input is also captured into that folder.
pub async fn run(config_path: &Path, capture: Option<PathBuf>) -> anyhow::Result<()> {
    let (mut config, map) = load(config_path)?;
    // A live run's spool outlives the process: what waits is delivered by the next start.
    let spool = config.spool.dir.get_or_insert_with(default_spool_dir);
    tracing::info!(spool = %spool.display(), "packets wait in this spool until the Stream API accepts them");
    let live = LiveSources::prepare(&config, &map, capture.as_deref())?;
    let daemon = Daemon {
        sources: live.sources,
        source_metrics: live.metrics.clone(),
        ..service_daemon(config_path, config, map).await?
    };
    let report = daemon::run(daemon, signals::shutdown_signal()).await?;
    print_run_summary(&report.summary);
    print_source_metrics(&live.metrics);
    report_recording(report.embedded_recording)?;
    if let Some(recorder) = live.recorder {
        let stats = recorder.await.context("recorder task")??;
        println!("recorded: {stats:?}");
    }
    Ok(())
}

/// Where `run` keeps its spool when the configuration names none: under systemd's
/// `StateDirectory` (`$STATE_DIRECTORY`), else in the working folder.
fn default_spool_dir() -> PathBuf {
    match std::env::var_os("STATE_DIRECTORY") {
        // systemd may list several folders separated by ':'; the first is ours.
        Some(dirs) => {
            let first = dirs
                .to_string_lossy()
                .split(':')
                .next()
                .unwrap_or(".")
                .to_owned();
            PathBuf::from(first).join("spool")
        }
        None => PathBuf::from("ecu-bridge-spool"),
    }
}

/// The configuration and its channel map, with the load logged.
fn load(config_path: &Path) -> anyhow::Result<(Config, ChannelMap)> {
    let config = Config::load(config_path)?;
    let (map, warnings) = config.load_channel_map()?;
    tracing::info!(
        parameters = map.parameters().len(),
        dbc_warnings = warnings.len(),
        "channel map loaded (`ecu-bridge validate` lists DBC warnings)"
    );
    Ok((config, map))
}

/// A daemon with the service as systemd sees it: sd_notify from the environment, the
/// configured metrics endpoint, SIGHUP reloads of `config_path`. Sources are the caller's.
async fn service_daemon(
    config_path: &Path,
    config: Config,
    map: ChannelMap,
) -> anyhow::Result<Daemon> {
    let notifier = Notifier::from_env();
    let metrics_listener = match config.service.metrics_listen {
        Some(address) => {
            let listener = TcpListener::bind(address)
                .await
                .with_context(|| format!("metrics endpoint cannot listen on {address}"))?;
            tracing::info!(address = %listener.local_addr()?, "metrics endpoint listening (/metrics, /health)");
            Some(listener)
        }
        None => None,
    };
    let reloads = signals::reload_on_sighup(config_path.to_owned(), notifier.clone());
    Ok(Daemon {
        reloads,
        service: ServiceOptions {
            notifier,
            watchdog: Notifier::watchdog_interval(),
            metrics_listener,
        },
        ..Daemon::new(config, map, Vec::new())
    })
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
    for source in live.sources {
        sources.spawn(source.run(frames.clone(), metrics.clone(), cancelled.clone()));
    }
    drop(frames);
    tracing::info!(out = %out.display(), "recording; stop with Ctrl-C or SIGTERM");
    match duration {
        Some(duration) => tokio::select! {
            () = tokio::time::sleep(duration) => {}
            () = signals::shutdown_signal() => {}
        },
        None => signals::shutdown_signal().await,
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

/// Prints the embedded server's recording summary; fails if it saw protocol violations.
fn report_recording(recording: Option<PathBuf>) -> anyhow::Result<()> {
    let Some(record) = recording else {
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
        signals::shutdown_signal(),
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

/// `ecu-bridge profiles`: the built-in ECU profiles, one block each.
pub fn profiles() {
    for profile in decoders::profiles::all() {
        let bitrate = profile.bus_bitrate.map_or_else(
            || "any bitrate".to_owned(),
            |b| format!("{} kbit/s", b / 1000),
        );
        println!("{:<22} {} ({bitrate})", profile.name, profile.title);
        println!("{:<22} {}", "", profile.coverage);
    }
    println!(
        "\nUse one in a car's configuration: [car] profile = [\"<name>\"]; docs/profiles.md has the details."
    );
}

/// `ecu-bridge init`: the starting configuration to standard output, or into `out`, which
/// must not exist yet.
pub fn init(
    profiles: Vec<String>,
    source: &str,
    can_bitrate: Option<u32>,
    out: Option<&Path>,
) -> anyhow::Result<()> {
    let request = InitRequest {
        profiles,
        source: source.parse()?,
        can_bitrate,
    };
    let text = starting_config(&request)?;
    let Some(out) = out else {
        print!("{text}");
        return Ok(());
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(out)
        .with_context(|| {
            format!(
                "cannot create {} (init never overwrites a file)",
                out.display()
            )
        })?;
    std::io::Write::write_all(&mut file, text.as_bytes())
        .with_context(|| format!("writing {}", out.display()))?;
    println!(
        "wrote {0}; check it with `ecu-bridge validate --config {0}`",
        out.display()
    );
    Ok(())
}

/// `ecu-bridge watch`: the live view of the bridge whose metrics endpoint is `endpoint`.
pub async fn watch(endpoint: &str) -> anyhow::Result<()> {
    ecu_bridge::watch::run(endpoint).await?;
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
            "  source {}: {} datagrams/reads, {} bytes, {} frames; kernel drops {}, sequence gaps {} (resets {}), truncated {}, channel drops {} ({} frames); outages {}, reconnects {}",
            m.name,
            Metrics::get(&m.reads),
            Metrics::get(&m.bytes),
            Metrics::get(&m.frames),
            Metrics::get(&m.kernel_drops),
            Metrics::get(&m.sequence_gaps),
            Metrics::get(&m.sequence_resets),
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

/// A duration like `90s`, `5m`, `2h`, `1h30m` or `500ms` (humantime's syntax), or a plain
/// number of seconds (`30`), which `--duration` has always accepted.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds)
            .map_err(|_| format!("{text:?} is not a valid number of seconds"));
    }
    humantime::parse_duration(text).map_err(|error| {
        format!("{text:?} is not a duration like 90s, 5m, 1h30m or 500ms: {error}")
    })
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
    let lost = [
        (
            "refused by the Stream API",
            Metrics::get(&m.samples_rejected),
        ),
        (
            "dropped by the spool's bounds",
            Metrics::get(&m.spool_dropped_samples),
        ),
        (
            "no room in spool or memory",
            Metrics::get(&m.samples_lost_no_room),
        ),
        (
            "still waiting in the spool",
            Metrics::get(&m.samples_waiting),
        ),
    ];
    if lost.iter().any(|(_, n)| *n > 0) {
        println!("  samples not delivered:");
        for (reason, count) in lost.iter().filter(|(_, n)| *n > 0) {
            println!("    {reason}: {count}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_or_as_plain_seconds() {
        for (text, expected) in [
            ("90s", Duration::from_secs(90)),
            ("5m", Duration::from_secs(300)),
            ("2h", Duration::from_secs(7_200)),
            ("1h30m", Duration::from_secs(5_400)),
            ("500ms", Duration::from_millis(500)),
            ("30", Duration::from_secs(30)),
            (" 1.5 ", Duration::from_millis(1_500)),
        ] {
            assert_eq!(parse_duration(text), Ok(expected), "{text}");
        }
        for text in ["", "-3", "5 parsecs", "m5"] {
            let error = parse_duration(text).expect_err(text);
            assert!(error.contains("is not a"), "{text}: {error}");
        }
    }
}
