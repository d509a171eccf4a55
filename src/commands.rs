//! The binary's commands: each loads what it needs, runs the library, and reports to the
//! terminal. The only place (with main.rs) that uses `anyhow`.

mod progress;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use decoders::channel_map::ChannelMap;
use ecu_bridge::capture::RecordStats;
use ecu_bridge::capture::replay::{Pacing, ReplayProgress};
use ecu_bridge::config::{Config, ParameterTable, StreamApiTarget};
use ecu_bridge::daemon::{self, Daemon, EmbeddedReport};
use ecu_bridge::init::{InitRequest, starting_config};
use ecu_bridge::pipeline::RunSummary;
use ecu_bridge::pipeline::sources::{self, LiveSources, ReplayOptions};
use ecu_bridge::service::notify::Notifier;
use ecu_bridge::service::{ServiceOptions, signals};
use ecu_bridge::telemetry::{Metrics, SourceMetrics};
use stream_api::ServerOptions;
use stream_api::inspect::{self, Recording, WideTable};
use tokio::net::TcpListener;
use tokio::sync::watch;
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

/// `ecu-bridge replay` arguments.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The car's bridge configuration (TOML).
    #[arg(long)]
    pub config: PathBuf,
    /// Replay speed relative to the captured timing (1 = real time).
    #[arg(long, conflicts_with = "max_speed", default_value_t = 1.0)]
    pub speed: f64,
    /// Replay as fast as the pipeline accepts.
    #[arg(long)]
    pub max_speed: bool,
    /// Read every input with this configured source's receiver (default: chosen from what the
    /// capture says; see docs/replay.md).
    #[arg(long)]
    pub source: Option<String>,
    /// A jump of the capture time longer than this (90s, 500ms, 10) is logged and not waited
    /// for at --speed.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub max_gap: Duration,
    /// Fail when more than this share (0 to 1) of the inputs read was rejected as malformed.
    #[arg(long, default_value_t = 0.01)]
    pub max_rejected_share: f64,
    /// Keep the embedded Stream API's recording in this file (default: none kept).
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// Worker threads of the runtime (1 or more; default: 1 with --max-speed, otherwise one
    /// per core). One thread runs every stage: see docs/replay.md.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    /// Capture files.
    #[arg(required = true)]
    pub captures: Vec<PathBuf>,
}

impl ReplayArgs {
    /// The runtime's worker threads: `--threads`, else one with `--max-speed` (the stages then
    /// hand their batches on without waking a second thread; at full speed two workers cost
    /// more CPU than they saved in wall time: `docs/performance.md`, "The twelfth turn"), else
    /// `None`, one per core as for `run`.
    pub fn worker_threads(&self) -> Option<usize> {
        match self.threads {
            Some(threads) => Some(usize::from(threads)),
            None if self.max_speed => Some(1),
            None => None,
        }
    }
}

/// `ecu-bridge replay`: fails when nothing was published or too much input was rejected.
pub async fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    let pacing = if args.max_speed {
        Pacing::MaxSpeed
    } else {
        Pacing::Speed(args.speed)
    };
    if let Pacing::Speed(speed) = pacing
        && !(speed.is_finite() && speed > 0.0)
    {
        bail!("--speed must be a positive number, got {speed}");
    }
    let share = args.max_rejected_share;
    if !(0.0..=1.0).contains(&share) {
        bail!("--max-rejected-share must be between 0 and 1, got {share}");
    }
    let (mut config, map) = load(&args.config)?;
    // A replay reports through its progress bar and its final summary, not periodic lines.
    config.service.summary_interval = None;
    // The summary lists what the embedded server received, so it keeps a recording: the
    // user's file, or one in a private folder removed when this function returns.
    let scratch = embedded_recording(&mut config, args.record.as_deref())?;
    let inputs = Arc::new(sources::replay_inputs(
        &config,
        &map,
        args.source.as_deref(),
    )?);
    let options = ReplayOptions {
        max_gap: args.max_gap,
        ..ReplayOptions::new(pacing)
    };
    let progress = options.progress.clone();
    let total_bytes = args
        .captures
        .iter()
        .filter_map(|path| std::fs::metadata(path).ok())
        .map(|meta| meta.len())
        .sum();
    let sources = sources::replay_sources(args.captures, options, inputs).await?;
    let daemon = Daemon {
        sources,
        ..service_daemon(&args.config, config, map).await?
    };
    let bar = progress::show(progress.clone(), total_bytes);
    let report = daemon::run(daemon, signals::shutdown_signal()).await;
    bar.finish();
    let report = report?;
    let embedded = EmbeddedSummary::read(report.embedded)?;
    drop(scratch);
    print_quietly(|out| {
        write_run_summary(out, &report.summary)?;
        write_receiver_choices(out, &progress)?;
        embedded.as_ref().map_or(Ok(()), |e| e.write(out))
    })?;
    if let Some(embedded) = &embedded {
        embedded.check()?;
    }
    check_replay_outcome(&report.summary, share)
}

/// Points an embedded endpoint's recording at `keep`, or at a file in a temporary folder
/// (returned, so it lives until the summary is read) when the configuration names none.
fn embedded_recording(
    config: &mut Config,
    keep: Option<&Path>,
) -> anyhow::Result<Option<tempfile::TempDir>> {
    let StreamApiTarget::Embedded { record, .. } = &mut config.stream_api else {
        if keep.is_some() {
            bail!(
                "--record keeps the embedded Stream API's recording; this configuration publishes to a remote endpoint"
            );
        }
        return Ok(None);
    };
    if let Some(keep) = keep {
        *record = Some(keep.to_owned());
    }
    if record.is_some() {
        return Ok(None);
    }
    let scratch = tempfile::Builder::new()
        .prefix("ecu-bridge-replay-")
        .tempdir()
        .context("creating a temporary folder for the replay summary")?;
    *record = Some(scratch.path().join("summary.osrec"));
    Ok(Some(scratch))
}

/// Which receiver read each capture, and why (docs/replay.md).
fn write_receiver_choices(out: &mut impl Write, progress: &ReplayProgress) -> std::io::Result<()> {
    for (path, choice) in progress.receiver_choices() {
        let file = path
            .file_name()
            .unwrap_or(path.as_os_str())
            .to_string_lossy();
        writeln!(out, "  {file} → {choice}")?;
    }
    Ok(())
}

/// The replay's verdict: an error (non-zero exit) when nothing was published or more than
/// `max_rejected_share` of the inputs was rejected.
fn check_replay_outcome(summary: &RunSummary, max_rejected_share: f64) -> anyhow::Result<()> {
    let m = &summary.metrics;
    let rejected = Metrics::get(&m.rejected_inputs);
    let read = Metrics::get(&m.frames_in) + rejected;
    let share = if read == 0 {
        0.0
    } else {
        rejected as f64 / read as f64
    };
    if Metrics::get(&m.samples_published) == 0 {
        bail!(
            "nothing was published: {} frames read, {rejected} inputs rejected, {} samples decoded",
            Metrics::get(&m.frames_in),
            Metrics::get(&m.samples_decoded)
        );
    }
    if share > max_rejected_share {
        bail!(
            "{rejected} of {read} inputs ({:.1} %) were rejected as malformed, more than --max-rejected-share {max_rejected_share}",
            share * 100.0
        );
    }
    Ok(())
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
    let embedded = EmbeddedSummary::read(report.embedded)?;
    let recorded = match live.recorder {
        Some(recorder) => Some(recorder.await.context("recorder task")??),
        None => None,
    };
    print_quietly(|out| {
        write_run_summary(out, &report.summary)?;
        write_source_metrics(out, &live.metrics)?;
        if let Some(embedded) = &embedded {
            embedded.write(out)?;
        }
        recorded
            .as_ref()
            .map_or(Ok(()), |stats| write_record_stats(out, stats))
    })?;
    embedded.map_or(Ok(()), |e| e.check())
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
    for warning in config.pattern_warnings(&map) {
        tracing::warn!("{warning}");
    }
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
        new_sessions: signals::new_session_on_sigusr1(),
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
    let (frames, mut drain) =
        ecu_bridge::pipeline::weighed::channel(64, ecu_bridge::pipeline::FRAMES_QUEUE_BYTES);
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
    let recorded = match live.recorder {
        Some(recorder) => Some(recorder.await.context("recorder task")??),
        None => None,
    };
    print_quietly(|out| {
        write_source_metrics(out, &live.metrics)?;
        recorded
            .as_ref()
            .map_or(Ok(()), |stats| write_record_stats(out, stats))
    })
}

/// What the embedded server received, for the summary: from its recording when there is
/// one, else its counters.
struct EmbeddedSummary {
    text: String,
    violations: usize,
}

impl EmbeddedSummary {
    /// Reads the recording (the only step that can fail); `None` for a remote endpoint.
    fn read(embedded: Option<EmbeddedReport>) -> anyhow::Result<Option<Self>> {
        let Some(embedded) = embedded else {
            return Ok(None);
        };
        if let Some(record) = &embedded.recording {
            let recording = inspect::read_recording(record)
                .with_context(|| format!("reading recording {}", record.display()))?;
            return Ok(Some(Self {
                text: recording.summary().to_string(),
                violations: recording.violations().len(),
            }));
        }
        let stats = &embedded.stats;
        let mut text = format!(
            "embedded Stream API (not recording): {} session(s) created, {} ended; {} packets ({} redelivered); {} protocol violations",
            stats.sessions_created,
            stats.sessions_ended,
            stats.packets,
            stats.duplicate_packets,
            embedded.violations.len()
        );
        for violation in &embedded.violations {
            text.push_str(&format!("\n  {violation}"));
        }
        Ok(Some(Self {
            text,
            violations: embedded.violations.len(),
        }))
    }

    fn write(&self, out: &mut impl Write) -> std::io::Result<()> {
        writeln!(out, "\n{}", self.text)
    }

    /// Fails when the server saw protocol violations.
    fn check(&self) -> anyhow::Result<()> {
        if self.violations > 0 {
            bail!(
                "the embedded Stream API recorded {} protocol violations",
                self.violations
            );
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
        signals::shutdown_signal(),
    )
    .await?;
    Ok(())
}

/// `ecu-bridge inspect`: the recording's summary, or the named parameters' values (`values`),
/// as CSV (`csv`) and as a PNG of time plots (`plot`).
pub fn inspect(
    file: &Path,
    parameters: &[String],
    values: bool,
    csv: Option<&Path>,
    plot: Option<&Path>,
) -> anyhow::Result<()> {
    let recording = inspect::read_recording(file)
        .with_context(|| format!("reading recording {}", file.display()))?;
    if !values && csv.is_none() && plot.is_none() {
        if !parameters.is_empty() {
            bail!("parameter names are for --values, --csv or --plot");
        }
        return print_quietly(|out| writeln!(out, "{}", recording.summary()));
    }
    if values {
        if parameters.is_empty() {
            bail!("--values needs the names of the parameters to show");
        }
        let series = recording.series(parameters)?;
        print_quietly(|out| inspect::write_values(&series, out))?;
    }
    if let Some(path) = csv {
        write_csv(&recording, parameters, path)?;
    }
    if let Some(path) = plot {
        if parameters.is_empty() {
            bail!("--plot needs the names of the parameters to draw");
        }
        let series = recording.series(parameters)?;
        inspect::plot_png(&series, &recording.laps(), path)?;
        eprintln!(
            "plotted {} parameter(s) into {}",
            series.len(),
            path.display()
        );
    }
    Ok(())
}

fn write_csv(recording: &Recording, parameters: &[String], path: &Path) -> anyhow::Result<()> {
    let table = WideTable::new(&recording.series(parameters)?);
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    table
        .write_csv(std::io::BufWriter::new(file))
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!(
        "wrote {} rows of {} parameter(s) to {}",
        table.rows.len(),
        table.columns.len(),
        path.display()
    );
    Ok(())
}

/// Writes to standard output; a reader that closed the pipe early (`| head`) ends the output
/// quietly instead of failing the command.
fn print_quietly(
    write: impl FnOnce(&mut std::io::BufWriter<std::io::StdoutLock<'static>>) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match write(&mut out).and_then(|()| out.flush()) {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        result => result.context("writing to standard output"),
    }
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

/// `ecu-bridge validate`: every problem at once, each with file, line, column and key; with
/// `list`, every parameter the configuration publishes.
pub fn validate(config_path: &Path, list: bool) -> anyhow::Result<()> {
    let (config, map, warnings) = match Config::validate_file(config_path) {
        Ok(checked) => checked,
        Err(errors) => {
            for error in &errors.0 {
                eprintln!("error: {error}");
            }
            bail!("{}: {} problem(s)", config_path.display(), errors.0.len());
        }
    };
    if let Err(too_large) = ecu_bridge::publish::configuration::check_configuration_size(
        &map,
        config.server_version.reads_configuration_parts(),
    ) {
        eprintln!("error: {}: {too_large}", config_path.display());
        bail!("{}: 1 problem(s)", config_path.display());
    }
    let pattern_warnings = config.pattern_warnings(&map);
    let mut report = String::new();
    for warning in warnings.iter().map(ToString::to_string) {
        report.push_str(&format!("warning: {warning}\n"));
    }
    for warning in &pattern_warnings {
        report.push_str(&format!("warning: {warning}\n"));
    }
    if list {
        report.push_str(&format!("{}\n", ParameterTable(&map)));
    }
    report.push_str(&format!(
        "{}: ok — {} parameters from {} DBC file(s) and {} frame definition(s), {} source(s), {} warning(s)",
        config_path.display(),
        map.parameters().len(),
        config.car.dbc.len(),
        map.definitions().len(),
        config.sources.len(),
        warnings.len() + pattern_warnings.len()
    ));
    print_quietly(|out| writeln!(out, "{report}"))
}

/// What a recorder wrote, per source, for people.
fn write_record_stats(out: &mut impl Write, stats: &RecordStats) -> std::io::Result<()> {
    writeln!(out, "recorded:")?;
    for source in &stats.sources {
        writeln!(
            out,
            "  source {}: {} datagrams/reads, {} bytes, {} CAN frames{}",
            source.name,
            source.captures,
            source.bytes,
            source.frames,
            if source.oversized > 0 {
                format!(", {} datagrams too large for the pcapng", source.oversized)
            } else {
                String::new()
            }
        )?;
        for file in &source.files {
            writeln!(out, "    {}", file.display())?;
        }
        for (kind, count) in &source.decode_errors {
            writeln!(out, "    {kind}: {count}")?;
        }
    }
    if stats.unknown_source > 0 {
        writeln!(
            out,
            "  {} captures from sources not configured for recording were dropped",
            stats.unknown_source
        )?;
    }
    Ok(())
}

fn write_source_metrics(
    out: &mut impl Write,
    sources: &[Arc<SourceMetrics>],
) -> std::io::Result<()> {
    for m in sources {
        writeln!(
            out,
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
        )?;
        if Metrics::get(&m.poll_requests) > 0 {
            writeln!(
                out,
                "    polled: {} requests, {} replies, {} timeouts, {} bad CRCs, {} retries, {} blocks dropped; status busy {}, timeout {}, CRC error {}, unknown command {}, range error {}, other {}; last rate {:.1} Hz",
                Metrics::get(&m.poll_requests),
                Metrics::get(&m.poll_replies),
                Metrics::get(&m.poll_timeouts),
                Metrics::get(&m.poll_crc_failures),
                Metrics::get(&m.poll_retries),
                Metrics::get(&m.poll_failed_blocks),
                Metrics::get(&m.poll_status_busy),
                Metrics::get(&m.poll_status_timeout),
                Metrics::get(&m.poll_status_crc_error),
                Metrics::get(&m.poll_status_unknown_command),
                Metrics::get(&m.poll_status_range_error),
                Metrics::get(&m.poll_status_other),
                Metrics::get(&m.poll_rate_millihertz) as f64 / 1000.0,
            )?;
        }
        for (kind, count) in m.decode_errors() {
            writeln!(out, "    {kind}: {count}")?;
        }
    }
    Ok(())
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

/// `YYYY-MM-DD HH:MM:SS.mmm` (UTC) of a time in ns since the UNIX epoch.
fn utc_stamp(time_ns: u64) -> String {
    let (date, time) = ecu_bridge::config::utc_date_time(time_ns / 1_000_000_000);
    format!("{date} {time}.{:03}", time_ns % 1_000_000_000 / 1_000_000)
}

fn write_run_summary(out: &mut impl Write, summary: &RunSummary) -> std::io::Result<()> {
    let m = &summary.metrics;
    let seconds = summary.elapsed.as_secs_f64().max(1e-9);
    let published = Metrics::get(&m.samples_published);
    let sessions = match summary.sessions.len() {
        0 => "no session (no sample decoded)".to_owned(),
        1 => "1 session".to_owned(),
        n => format!("{n} sessions"),
    };
    writeln!(out, "finished in {seconds:.2} s — {sessions}")?;
    for session in &summary.sessions {
        writeln!(
            out,
            "  session {} \"{}\": samples {} → {} UTC ({:.1} s), {} laps completed",
            session.key,
            session.identifier,
            utc_stamp(session.first_ns),
            utc_stamp(session.last_ns),
            session.last_ns.saturating_sub(session.first_ns) as f64 / 1e9,
            session.laps,
        )?;
    }
    for (path, frames) in &summary.frames_per_source {
        writeln!(out, "  {path}: {frames} frames")?;
    }
    writeln!(
        out,
        "  decoded {} rows, {} samples; published {} samples in {} packets ({:.0} samples/s)",
        Metrics::get(&m.rows_decoded),
        Metrics::get(&m.samples_decoded),
        published,
        Metrics::get(&m.packets_published),
        published as f64 / seconds,
    )?;
    writeln!(
        out,
        "  frames with unknown id or message {}, short {}, without values {}; rejected inputs {}",
        Metrics::get(&m.unknown_ids),
        Metrics::get(&m.short_frames),
        Metrics::get(&m.frames_without_values),
        Metrics::get(&m.rejected_inputs),
    )?;
    for (kind, count) in m.decode_errors() {
        writeln!(out, "    {kind}: {count}")?;
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
        writeln!(out, "  samples not delivered:")?;
        for (reason, count) in lost.iter().filter(|(_, n)| *n > 0) {
            writeln!(out, "    {reason}: {count}")?;
        }
    }
    Ok(())
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

/// `ecu-bridge simulate-ecu`'s options.
#[derive(Debug, clap::Args)]
pub struct SimulateEcu {
    /// The TunerStudio INI of the ECU to simulate.
    #[arg(long)]
    ini: PathBuf,
    /// Answer on a new pseudo-terminal (its path is printed); the default.
    #[arg(long, conflicts_with = "tcp")]
    pty: bool,
    /// Also make this symlink point at the pseudo-terminal (as `/dev/serial/by-id/...`).
    #[arg(long, requires = "pty")]
    link: Option<PathBuf>,
    /// Answer on this TCP address instead (port 0 picks one; the address is printed).
    #[arg(long)]
    tcp: Option<SocketAddr>,
    /// Settings switched on for the INI's `#if` (repeatable).
    #[arg(long = "setting")]
    settings: Vec<String>,
    /// Fix an output channel's value: NAME=VALUE in engineering units (repeatable).
    #[arg(long = "set", value_parser = parse_assignment)]
    values: Vec<(String, f64)>,
    /// Sweep every channel not set over its display range once per this period (e.g. 10s).
    #[arg(long, value_parser = parse_duration)]
    ramp: Option<Duration>,
    /// Corrupt the CRC of every N-th realtime reply.
    #[arg(long, default_value_t = 0)]
    crc_error_every: u64,
    /// Answer every N-th realtime request busy (0x85).
    #[arg(long, default_value_t = 0)]
    busy_every: u64,
    /// Leave every N-th realtime request unanswered and stall for --stall-ms.
    #[arg(long, default_value_t = 0)]
    stall_every: u64,
    /// How long a stall lasts, in milliseconds.
    #[arg(long, default_value_t = 3000)]
    stall_ms: u64,
}

fn parse_assignment(text: &str) -> Result<(String, f64), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not NAME=VALUE"))?;
    let value = value
        .trim()
        .parse()
        .map_err(|_| format!("{value:?} is not a number"))?;
    Ok((name.trim().to_owned(), value))
}

/// `ecu-bridge simulate-ecu`: answers the INI's protocol until Ctrl-C or SIGTERM.
pub async fn simulate_ecu(options: SimulateEcu) -> anyhow::Result<()> {
    use ecu_bridge::simulate::{PeriodicFaults, PtyEnd, Simulator, serve_tcp};
    let text = std::fs::read_to_string(&options.ini)
        .with_context(|| format!("reading {}", options.ini.display()))?;
    let settings: Vec<&str> = options.settings.iter().map(String::as_str).collect();
    let name = options.ini.display().to_string();
    let (ini, warnings) = decoders::ini::IniFile::parse(&name, &text, &settings)?;
    let (scalars, bits, computed) = ini.output_channels.counts();
    tracing::info!(ini = %name, scalars, bits, computed, warnings = warnings.len(),
        signature = ini.signature.as_deref().unwrap_or(""), "simulating ECU");
    let simulator = Simulator::new(&ini)?;
    let control = simulator.control();
    for (channel, value) in &options.values {
        control.set(channel, *value)?;
    }
    if let Some(period) = options.ramp {
        control.ramp(period);
    }
    control.periodic(PeriodicFaults {
        crc_every: options.crc_error_every,
        busy_every: options.busy_every,
        stall_every: options.stall_every,
        stall: Duration::from_millis(options.stall_ms),
    });
    let serving = async {
        if let Some(address) = options.tcp {
            let listener = TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen on {address}"))?;
            println!("tcp {}", listener.local_addr()?);
            serve_tcp(listener, simulator).await?;
            return Ok(());
        }
        let mut pty = PtyEnd::open().context("opening a pseudo-terminal")?;
        if let Some(link) = &options.link {
            let _ = std::fs::remove_file(link);
            std::os::unix::fs::symlink(&pty.path, link)
                .with_context(|| format!("linking {}", link.display()))?;
        }
        println!("pty {}", pty.path.display());
        pty.serve(&simulator).await?;
        anyhow::Ok(())
    };
    tokio::select! {
        result = serving => result,
        () = signals::shutdown_signal() => Ok(()),
    }
}
