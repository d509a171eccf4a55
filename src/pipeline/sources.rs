//! Live sources from the configuration: binds the UDP sockets and prepares the serial devices
//! of `[[source]]`, optionally tapping every raw input into a [`CaptureWriter`] — the shared part
//! of `ecu-bridge run` (publish) and `ecu-bridge record` (capture only).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use decoders::channel_map::ChannelMap;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::capture::reader::NativeInputs;
use crate::capture::replay::{
    DEFAULT_MAX_GAP, Pacing, ReplayProgress, ReplaySource, first_frame_time,
};
use crate::capture::route::{RecordedSource, RecordedTransport, ReplayInputs};
use crate::capture::{CaptureError, CaptureWriter, RecordStats};
use crate::config::{Config, ConfigErrors, SourceKind};
use crate::pipeline::PipelineError;
use crate::pipeline::edge::SourceBatch;
use crate::pipeline::weighed;
use crate::source::SourceError;
use crate::source::link::Link;
use crate::source::serial::SerialSource;
use crate::source::tunerstudio::{PollPlan, PolledSource, polled_input};
use crate::source::udp::UdpSource;
use crate::source::{CaptureTap, NativeInput};
use crate::telemetry::{Metrics, SourceMetrics};

/// Raw inputs queued toward the recorder before UDP sources start counting them as lost
/// (serial sources wait instead).
const RECORD_QUEUE: usize = 4096;

/// The configured live sources, bound and ready to start.
#[derive(Debug)]
pub struct LiveSources {
    /// One per `[[source]]`, in configuration order, for [`crate::pipeline::run`].
    pub sources: Vec<Source>,
    /// Each source's counters, in configuration order.
    pub metrics: Vec<Arc<SourceMetrics>>,
    /// Where each UDP source listens (useful when bound to port 0).
    pub udp_addresses: Vec<(String, SocketAddr)>,
    /// The recorder, when recording.
    pub recorder: Option<JoinHandle<Result<RecordStats, CaptureError>>>,
}

/// Why live sources could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// A source could not bind or be set up.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The recording could not be created.
    #[error(transparent)]
    Capture(#[from] CaptureError),
    /// A polled ECU's INI could not be loaded.
    #[error(transparent)]
    Config(#[from] ConfigErrors),
    /// The configuration names no live source.
    #[error("{0}: no [[source]] configured (replay captures with `ecu-bridge replay`)")]
    NoSources(String),
}

impl LiveSources {
    /// Binds every `[[source]]` of `config` (sources of native frames take their definition's
    /// framing from `map`); with `record_dir`, also starts a recorder there.
    pub fn prepare(
        config: &Config,
        map: &ChannelMap,
        record_dir: Option<&Path>,
    ) -> Result<Self, LiveError> {
        if config.sources.is_empty() {
            return Err(LiveError::NoSources(config.path.display().to_string()));
        }
        let (tap, recorder) = match record_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|error| SourceError::Io {
                    source_name: "record".to_owned(),
                    action: format!("creating {}", dir.display()),
                    error,
                })?;
                let recorder = CaptureWriter::create(dir, &config.sources)?;
                let (tap, input) = mpsc::channel(RECORD_QUEUE);
                (Some(tap), Some(tokio::spawn(recorder.run(input))))
            }
            None => (None, None),
        };
        let mut live = Self {
            sources: Vec::new(),
            metrics: Vec::new(),
            udp_addresses: Vec::new(),
            recorder,
        };
        let mut native = native_inputs(config, map);
        let inis = match config.sources.iter().any(|source| source.poll.is_some()) {
            true => config.load_inis()?,
            false => Vec::new(),
        };
        for source in &config.sources {
            let native = native.remove(&source.name);
            let metrics = Arc::new(SourceMetrics::new(&source.name));
            live.metrics.push(metrics.clone());
            if source.poll.is_some() {
                live.sources
                    .push(polled_source(config, &inis, source, tap.clone(), metrics)?);
                continue;
            }
            let source = match &source.kind {
                SourceKind::Udp(udp) => {
                    let mut bound = UdpSource::bind(&source.name, udp, metrics.clone())?;
                    if let Some(input) = native {
                        bound = bound.carrying(input);
                    }
                    live.udp_addresses
                        .push((source.name.clone(), bound.local_addr()));
                    Source::Udp {
                        socket: bound,
                        tap: tap.clone(),
                        metrics,
                    }
                }
                SourceKind::Serial(_) | SourceKind::Tcp(_) => {
                    let link = Link::of(&source.kind).ok_or_else(|| SourceError::Setup {
                        source_name: source.name.clone(),
                        message: "not a byte stream".into(),
                    })?;
                    let mut device = SerialSource::over(&source.name, link, metrics.clone());
                    if let Some(input) = native {
                        device = device.carrying(input);
                    }
                    Source::Serial {
                        device,
                        tap: tap.clone(),
                        metrics,
                    }
                }
            };
            live.sources.push(source);
        }
        Ok(live)
    }
}

/// A TunerStudio source polling the INI `inis` give it.
fn polled_source(
    config: &Config,
    inis: &[crate::config::LoadedIni],
    source: &crate::config::SourceConfig,
    tap: Option<CaptureTap>,
    metrics: Arc<SourceMetrics>,
) -> Result<Source, LiveError> {
    let setup = |message: String| SourceError::Setup {
        source_name: source.name.clone(),
        message,
    };
    let (Some(poll), Some(link)) = (&source.poll, Link::of(&source.kind)) else {
        return Err(setup("only serial and tcp sources can poll".into()).into());
    };
    let loaded = Config::ini_of(inis, source).map_err(setup)?;
    let ini_name = config
        .car
        .ini
        .iter()
        .find(|(written, _)| *written == loaded.written)
        .map_or(loaded.written.clone(), |(_, path)| {
            path.display().to_string()
        });
    let plan = PollPlan::new(&ini_name, &loaded.file, poll).map_err(setup)?;
    let ecu = PolledSource::new(&source.name, link, plan, &loaded.message, metrics.clone());
    Ok(Source::Polled { ecu, tap, metrics })
}

/// The configured sources that carry native frames, with their definitions' framing from
/// `map` (a source naming a definition the map lacks is left out: validation refuses it),
/// and the polled ECUs, whose whole blocks travel as native frames of their INI message.
/// A source of whole-datagram frames with sync bytes also takes, by their sync, the frames of
/// every other such definition the car loads.
pub fn native_inputs(config: &Config, map: &ChannelMap) -> NativeInputs {
    let whole_datagrams = |plan: &&decoders::frame::FramePlan| {
        !plan.framing().is_delimited() && !plan.framing().sync.is_empty()
    };
    config
        .sources
        .iter()
        .filter_map(|source| {
            if let Some(message) = config.polled_message(source) {
                let size = map.ini_block_size(map.ini_index(&message)?)?;
                return Some((source.name.clone(), polled_input(&message, size)));
            }
            let name = source.definition.as_deref()?;
            let plan = &map.definitions()[map.definition_index(name)?];
            let by_sync = match source.kind {
                SourceKind::Udp(_) if whole_datagrams(&plan) => map
                    .definitions()
                    .iter()
                    .filter(whole_datagrams)
                    .filter(|other| other.name() != name)
                    .map(|other| (Arc::from(other.name()), other.framing().sync.clone()))
                    .collect(),
                _ => Vec::new(),
            };
            let input = NativeInput {
                definition: Arc::from(name),
                framing: plan.framing().clone(),
                by_sync,
            };
            Some((source.name.clone(), input))
        })
        .collect()
}

/// The configured sources as replay chooses among them (docs/replay.md); `forced` names the
/// source that reads every input (`replay --source`).
pub fn replay_inputs(
    config: &Config,
    map: &ChannelMap,
    forced: Option<&str>,
) -> Result<ReplayInputs, PipelineError> {
    let mut native = native_inputs(config, map);
    let sources: Vec<RecordedSource> = config
        .sources
        .iter()
        .map(|source| RecordedSource {
            name: source.name.clone(),
            transport: match &source.kind {
                SourceKind::Udp(udp) => RecordedTransport::Udp {
                    port: udp.bind.port(),
                },
                // A TCP byte stream is recorded like a serial line.
                SourceKind::Serial(_) | SourceKind::Tcp(_) => RecordedTransport::Serial,
            },
            native: native.remove(&source.name),
        })
        .collect();
    let forced = match forced {
        Some(name) => Some(
            sources
                .iter()
                .position(|source| source.name == name)
                .ok_or_else(|| PipelineError::UnknownReplaySource {
                    name: name.to_owned(),
                    known: sources.iter().map(|s| s.name.clone()).collect(),
                })?,
        ),
        None => None,
    };
    Ok(ReplayInputs { sources, forced })
}

/// How replay sources read and pace their captures.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Pacing.
    pub pacing: Pacing,
    /// Capture-time jumps longer than this are logged and not waited for.
    pub max_gap: Duration,
    /// Where the sources report progress and their receiver choices.
    pub progress: Arc<ReplayProgress>,
}

impl ReplayOptions {
    /// `pacing` with the default gap and a fresh progress record.
    pub fn new(pacing: Pacing) -> Self {
        Self {
            pacing,
            max_gap: DEFAULT_MAX_GAP,
            progress: Arc::default(),
        }
    }
}

/// One replay source per capture, all on one clock: the earliest first frame maps to now.
/// Each recorded input is read by the receiver of the source `inputs` chooses for it.
pub async fn replay_sources(
    captures: Vec<PathBuf>,
    options: ReplayOptions,
    inputs: Arc<ReplayInputs>,
) -> Result<Vec<Source>, PipelineError> {
    let mut origin_ns = u64::MAX;
    for capture in &captures {
        if let Some(first) = first_frame_time(capture, inputs.clone()).await? {
            origin_ns = origin_ns.min(first);
        }
    }
    let start = tokio::time::Instant::now();
    let sources = captures
        .into_iter()
        .map(|path| {
            let source = ReplaySource {
                path: path.clone(),
                pacing: options.pacing,
                origin_ns,
                start,
                inputs: inputs.clone(),
                max_gap: options.max_gap,
                progress: options.progress.clone(),
            };
            Source::Replay(source)
        })
        .collect();
    Ok(sources)
}

/// A source ready to run: a closed set chosen by the command (replay files, UDP sockets,
/// serial devices), dispatched by `match`.
#[derive(Debug)]
pub enum Source {
    /// A capture file read at its captured timing (scaled) or as fast as the pipeline accepts.
    Replay(ReplaySource),
    /// A bound UDP socket, optionally tapped into a recording.
    Udp {
        /// The bound socket and its receiver.
        socket: UdpSource,
        /// Where raw datagrams go when recording.
        tap: Option<CaptureTap>,
        /// The source's counters (its frame count is the run's figure for it).
        metrics: Arc<SourceMetrics>,
    },
    /// A serial device or TCP bridge, optionally tapped into a recording.
    Serial {
        /// The device and its receiver.
        device: SerialSource,
        /// Where raw reads go when recording.
        tap: Option<CaptureTap>,
        /// The source's counters.
        metrics: Arc<SourceMetrics>,
    },
    /// A polled TunerStudio ECU (serial or TCP), optionally tapped into a recording.
    Polled {
        /// The ECU's link and polling plan.
        ecu: PolledSource,
        /// Where whole blocks go when recording.
        tap: Option<CaptureTap>,
        /// The source's counters.
        metrics: Arc<SourceMetrics>,
    },
}

impl Source {
    /// Name for logs and the summary (a path or the configured source name).
    pub fn name(&self) -> String {
        match self {
            Self::Replay(replay) => replay.path.display().to_string(),
            Self::Udp { metrics, .. }
            | Self::Serial { metrics, .. }
            | Self::Polled { metrics, .. } => metrics.name.clone(),
        }
    }

    /// Whether the source reads as fast as the pipeline takes its frames (a capture replayed
    /// at max speed) and waits when it is full, rather than dropping what arrives meanwhile
    /// (a live source) or keeping a timing (a paced replay).
    pub fn is_max_speed_capture(&self) -> bool {
        matches!(self, Self::Replay(replay) if replay.pacing == Pacing::MaxSpeed)
    }

    /// Reads until the input ends or `cancel` turns true, sending frame batches to `frames`;
    /// returns how many frames it read.
    pub async fn run(
        self,
        frames: weighed::Sender<SourceBatch>,
        pipeline_metrics: Arc<Metrics>,
        cancel: watch::Receiver<bool>,
    ) -> Result<u64, PipelineError> {
        match self {
            Self::Replay(replay) => Ok(replay.run(frames, pipeline_metrics, cancel).await?),
            Self::Udp {
                socket,
                tap,
                metrics,
            } => {
                socket.run(frames, tap, cancel).await?;
                Ok(Metrics::get(&metrics.frames))
            }
            Self::Serial {
                device,
                tap,
                metrics,
            } => {
                device.run(frames, tap, cancel).await?;
                Ok(Metrics::get(&metrics.frames))
            }
            Self::Polled { ecu, tap, metrics } => {
                ecu.run(frames, tap, cancel).await?;
                Ok(Metrics::get(&metrics.frames))
            }
        }
    }
}
