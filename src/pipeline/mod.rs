//! Builds the bounded channels, spawns the stages and owns the shutdown order:
//! `source → decode → batch → publish`. Shutdown cancels only the sources; every later stage
//! ends when its input closes (drain by drop), and publish flushes and ends the session.

pub mod edge;
pub mod sources;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use decoders::channel_map::ChannelMap;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::batch::BatchStage;
use crate::capture::replay::{Pacing, ReplayError};
use crate::config::Config;
use crate::decode::DecodeStage;
use crate::publish::PublishStage;
use crate::publish::configuration::configuration_packet;
use crate::publish::producer::{
    Producer, ProducerConfig, ProducerStats, PublishError, RetryPolicy, SpoolPlace,
};
use crate::telemetry::Metrics;
use sources::{ReplayOptions, Source, replay_inputs, replay_sources};

/// What a finished run did.
#[derive(Debug)]
pub struct RunSummary {
    /// The Open Streaming session key.
    pub session_key: String,
    /// The pipeline's counters.
    pub metrics: Arc<Metrics>,
    /// What the producer sent.
    pub producer: ProducerStats,
    /// Frames read per source.
    pub frames_per_source: Vec<(String, u64)>,
    /// Wall time of the run.
    pub elapsed: Duration,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A replay source failed.
    #[error(transparent)]
    Replay(#[from] ReplayError),
    /// A live source failed.
    #[error(transparent)]
    Source(#[from] crate::source::SourceError),
    /// Publishing failed.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// A stage task panicked or was cancelled.
    #[error("a pipeline stage failed: {0}")]
    Stage(#[from] tokio::task::JoinError),
    /// `replay --source` names no configured source.
    #[error("--source {name:?} is not a configured [[source]] (configured: {known:?})")]
    UnknownReplaySource {
        /// The name given.
        name: String,
        /// The configured names.
        known: Vec<String>,
    },
}

enum StageResult {
    Source(String, Result<u64, PipelineError>),
    Publish(Result<(String, ProducerStats), PublishError>),
    Done,
}

/// The producer settings for this configuration and endpoint.
pub fn producer_config(config: &Config, endpoint: String) -> ProducerConfig {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    ProducerConfig {
        endpoint,
        key_generator: config.key_generator.clone(),
        data_source: config.session.data_source.clone(),
        identifier: config.session_identifier(now),
        session_type: config.session.session_type.clone(),
        utc_offset_seconds: config.session.utc_offset_seconds,
        details: config.session.details.clone(),
        streams: vec![config.car.stream.clone()],
        call_timeout: config.call_timeout,
        retry: RetryPolicy::default(),
        drain_timeout: config.drain_timeout,
        spool: match &config.spool.dir {
            Some(dir) => SpoolPlace::Dir(dir.clone(), config.spool.config.clone()),
            None => SpoolPlace::Temporary,
        },
    }
}

/// Replays `captures` through the whole pipeline into the Stream API at `endpoint`.
pub async fn replay(
    config: &Config,
    map: ChannelMap,
    endpoint: String,
    captures: Vec<PathBuf>,
    pacing: Pacing,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<RunSummary, PipelineError> {
    let inputs = Arc::new(replay_inputs(config, &map, None)?);
    let sources = replay_sources(captures, ReplayOptions::new(pacing), inputs).await?;
    run(config, map, endpoint, sources, shutdown).await
}

/// Runs `sources` through decode, batch and publish into the Stream API at `endpoint`, until
/// every source ends or `shutdown` resolves (which cancels the sources; the rest drains).
pub async fn run(
    config: &Config,
    map: ChannelMap,
    endpoint: String,
    sources: Vec<Source>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<RunSummary, PipelineError> {
    let metrics = Arc::new(Metrics::default());
    run_reloadable(config, map, endpoint, sources, shutdown, None, metrics).await
}

/// [`run`], taking reloaded channel maps from `reloads` (SIGHUP): each is published as a new
/// configuration while samples keep flowing.
pub async fn run_reloadable(
    config: &Config,
    map: ChannelMap,
    endpoint: String,
    sources: Vec<Source>,
    shutdown: impl Future<Output = ()> + Send,
    reloads: Option<mpsc::Receiver<ChannelMap>>,
    metrics: Arc<Metrics>,
) -> Result<RunSummary, PipelineError> {
    let started = std::time::Instant::now();
    let capacity = config.batch.channel_capacity;
    let (frames_tx, frames_rx) = mpsc::channel(capacity);
    let (rows_tx, rows_rx) = mpsc::channel(capacity);
    let (batches_tx, batches_rx) = mpsc::channel(capacity);
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let configuration = configuration_packet(&map);
    let producer_config = producer_config(config, endpoint);
    let stream = config.car.stream.clone();

    let mut stages = JoinSet::new();
    for source in sources {
        let name = source.name();
        let running = source.run(frames_tx.clone(), metrics.clone(), cancel_rx.clone());
        stages.spawn(async move { StageResult::Source(name, running.await) });
    }
    drop(frames_tx);
    let decode = DecodeStage {
        map,
        metrics: metrics.clone(),
        reloads,
        logged_rejections: 0,
    };
    stages.spawn(async move {
        decode.run(frames_rx, rows_tx).await;
        StageResult::Done
    });
    let batch = BatchStage {
        max_age: config.batch.max_age,
        max_packet_bytes: config.batch.max_packet_bytes,
        metrics: metrics.clone(),
    };
    stages.spawn(async move {
        batch.run(rows_rx, batches_tx).await;
        StageResult::Done
    });
    let publish_metrics = metrics.clone();
    stages.spawn(async move {
        let result = async {
            let producer = Producer::start(producer_config, configuration).await?;
            publish_metrics.set_session(producer.session_key());
            Metrics::set(&publish_metrics.session_state, 1);
            let stage = PublishStage {
                producer,
                stream,
                metrics: publish_metrics.clone(),
            };
            let producer = stage.run(batches_rx).await?;
            let key = producer.session_key().to_owned();
            // Figures kept current through the drain: a stop timeout may cut it short.
            let stats = producer
                .finish_observed(|producer| {
                    crate::publish::report_producer(producer, &publish_metrics);
                })
                .await?;
            crate::publish::report_stats(&stats, &publish_metrics);
            Metrics::set(&publish_metrics.samples_waiting, 0);
            Metrics::set(&publish_metrics.session_state, 2);
            Ok((key, stats))
        };
        StageResult::Publish(result.await)
    });
    collect(stages, cancel_tx, shutdown, metrics, started).await
}

async fn collect(
    mut stages: JoinSet<StageResult>,
    cancel: watch::Sender<bool>,
    shutdown: impl Future<Output = ()> + Send,
    metrics: Arc<Metrics>,
    started: std::time::Instant,
) -> Result<RunSummary, PipelineError> {
    let mut frames_per_source = Vec::new();
    let mut published = None;
    let mut first_error: Option<PipelineError> = None;
    tokio::pin!(shutdown);
    let mut shutting_down = false;
    loop {
        let joined = tokio::select! {
            joined = stages.join_next() => joined,
            () = &mut shutdown, if !shutting_down => {
                shutting_down = true;
                let _ = cancel.send(true);
                continue;
            }
        };
        let Some(joined) = joined else { break };
        match joined {
            Ok(StageResult::Source(path, Ok(frames))) => frames_per_source.push((path, frames)),
            Ok(StageResult::Source(_, Err(error))) => {
                first_error.get_or_insert(error);
            }
            Ok(StageResult::Publish(Ok(done))) => published = Some(done),
            Ok(StageResult::Publish(Err(error))) => {
                // Without a publisher nothing can progress: stop the sources too.
                let _ = cancel.send(true);
                first_error.get_or_insert(error.into());
            }
            Ok(StageResult::Done) => {}
            Err(join) => {
                first_error.get_or_insert(join.into());
            }
        }
    }
    if let Some(error) = first_error {
        return Err(error);
    }
    let (session_key, producer) = published.unwrap_or_default();
    Ok(RunSummary {
        session_key,
        metrics,
        producer,
        frames_per_source,
        elapsed: started.elapsed(),
    })
}
