//! Live sources from the configuration: binds the UDP sockets and prepares the serial devices
//! of `[[source]]`, optionally tapping every raw input into a [`Recorder`] — the shared part
//! of `ecu-bridge run` (publish) and `ecu-bridge record` (capture only).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use decoders::channel_map::ChannelMap;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::capture::{CaptureError, RecordStats, Recorder};
use crate::config::{Config, SourceKind};
use crate::pipeline::{FrameSender, PipelineError, SourceSpec, native_inputs};
use crate::source::SourceError;
use crate::source::serial::SerialSource;
use crate::source::udp::UdpSource;
use crate::telemetry::{Metrics, SourceMetrics};

/// Raw inputs queued toward the recorder before UDP sources start counting them as lost
/// (serial sources wait instead).
const RECORD_QUEUE: usize = 4096;

/// The configured live sources, bound and ready to start.
#[derive(Debug)]
pub struct LiveSources {
    /// One spec per source, for [`crate::pipeline::run`].
    pub specs: Vec<SourceSpec>,
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
                let recorder = Recorder::create(dir, &config.sources)?;
                let (tap, input) = mpsc::channel(RECORD_QUEUE);
                (Some(tap), Some(tokio::spawn(recorder.run(input))))
            }
            None => (None, None),
        };
        let mut live = Self {
            specs: Vec::new(),
            metrics: Vec::new(),
            udp_addresses: Vec::new(),
            recorder,
        };
        let mut native = native_inputs(config, map);
        for source in &config.sources {
            let native = native.remove(&source.name);
            let metrics = Arc::new(SourceMetrics::new(&source.name));
            live.metrics.push(metrics.clone());
            let source_spec = match &source.kind {
                SourceKind::Udp(udp) => {
                    let mut bound = UdpSource::bind(&source.name, udp, metrics.clone())?;
                    if let Some(input) = native {
                        bound = bound.carrying(input);
                    }
                    live.udp_addresses
                        .push((source.name.clone(), bound.local_addr()));
                    let tap = tap.clone();
                    spec(&source.name, metrics, move |frames, cancel| {
                        bound.run(frames, tap, cancel)
                    })
                }
                SourceKind::Serial(serial) => {
                    let mut device =
                        SerialSource::new(&source.name, serial.clone(), metrics.clone());
                    if let Some(input) = native {
                        device = device.carrying(input);
                    }
                    let tap = tap.clone();
                    spec(&source.name, metrics, move |frames, cancel| {
                        device.run(frames, tap, cancel)
                    })
                }
            };
            live.specs.push(source_spec);
        }
        Ok(live)
    }
}

/// A spec that runs `run` and reports the frames the source's own counters saw.
fn spec<F, Fut>(name: &str, metrics: Arc<SourceMetrics>, run: F) -> SourceSpec
where
    F: FnOnce(FrameSender, watch::Receiver<bool>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), SourceError>> + Send + 'static,
{
    SourceSpec {
        name: name.to_owned(),
        start: Box::new(move |frames: FrameSender, _: Arc<Metrics>, cancel| {
            Box::pin(async move {
                run(frames, cancel).await?;
                Ok::<u64, PipelineError>(Metrics::get(&metrics.frames))
            })
        }),
    }
}
