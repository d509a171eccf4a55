//! Builds the bounded channels, spawns the stages and owns the shutdown order:
//! `source → decode → batch → publish`. Shutdown cancels only the sources; every later stage
//! ends when its input closes (drain by drop), and publish flushes and ends the session.

pub mod edge;
pub mod queues;
pub mod sources;
pub mod weighed;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use decoders::channel_map::ChannelMap;
use decoders::laps::LapDetector;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::batch::BatchStage;
use crate::capture::replay::{Pacing, ReplayError};
use crate::config::Config;
use crate::decode::DecodeStage;
use crate::publish::configuration::configuration_packet;
use crate::publish::producer::{
    Producer, ProducerConfig, ProducerStats, PublishError, RetryPolicy, SpoolPlace,
};
use crate::publish::sessions::{RunCounter, SessionPlan, SessionTemplate};
use crate::publish::{PublishStage, SessionSummary};
use crate::telemetry::Metrics;
use edge::Queue;
use sources::{ReplayOptions, Source, replay_inputs, replay_sources};

/// Bytes of finished packets that may wait for the publish stage. The packet edge is bounded
/// in bytes as well as in batches: at max speed every edge is full, and 64 packets of up to
/// `batch.max_packet_bytes` each held 16 MiB or more there (`docs/performance.md`).
const PUBLISH_QUEUE_BYTES: usize = 2 << 20;
/// Bytes of frames that may wait for the decode stage. The frames edge is bounded in bytes as
/// well as in batches: 64 batches of 256 classic frames weigh 1.5 MiB, but one cannelloni
/// datagram can carry thousands of frames, a UDP source hands on at once everything it held
/// back while the edge was full (up to `HOLD_FRAMES`), and native frames are whole datagrams
/// (`weighed`).
pub const FRAMES_QUEUE_BYTES: usize = 4 << 20;
/// Bytes of decoded rows that may wait for the batch stage. The rows edge is bounded in bytes
/// as well as in batches: a batch's rows weigh 20 KiB for a powertrain CAN map and up to
/// 1 MiB for wide CAN FD frames, so 64 batches alone could hold 64 MiB (`weighed`).
const ROWS_QUEUE_BYTES: usize = 4 << 20;
/// Bytes of encoded rows the batch stage's open packets may hold together (one per data
/// format; when full the largest goes out early, `src/batch.rs`). Four classic buses at max
/// speed keep 200 formats open, each of which could otherwise grow to `max_packet_bytes`.
/// A paced 1.1 M samples/s holds about 1.5 MiB in a 100 ms window, well below.
const HELD_ROWS_BYTES: usize = 8 << 20;

/// What a finished run did.
#[derive(Debug)]
pub struct RunSummary {
    /// The Open Streaming session key (of the first session; empty when no data came).
    pub session_key: String,
    /// Every session the run wrote, in order.
    pub sessions: Vec<SessionSummary>,
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
    /// The channel map's configuration cannot reach ATLAS through a v1.3 Stream API.
    #[error(transparent)]
    Configuration(#[from] crate::publish::configuration::ConfigurationTooLarge),
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
    Publish(Result<(Vec<SessionSummary>, ProducerStats), PublishError>),
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
        streams: config.data_streams(),
        call_timeout: config.call_timeout,
        retry: RetryPolicy::default(),
        drain_timeout: config.drain_timeout,
        spool: match &config.spool.dir {
            Some(dir) => SpoolPlace::Dir(dir.clone(), config.spool.config.clone()),
            None => SpoolPlace::Temporary,
        },
        split_configuration: config.server_version.reads_configuration_parts(),
    }
}

/// The flush window of a replay at max speed (see [`run_reloadable`]).
const MAX_SPEED_FLUSH_AGE: Duration = Duration::from_secs(10);

/// Items each edge holds at most in a replay at max speed (`batch.channel_capacity` when that
/// is fewer). Its sources are capture files, which wait when an edge is full, so there is no
/// burst to absorb; a deeper edge only spread the frames and rows over more memory, first
/// touched and out of cache by the time the next stage read them: 4 rather than 64 took 6 %
/// less CPU on the replay case (`docs/performance.md`, "The fourteenth turn").
const MAX_SPEED_CHANNEL_CAPACITY: usize = 4;

/// How this configuration's sessions are cut and named, with what the bridge knows added to
/// the details (version, channel map, files).
fn session_plan(
    config: &Config,
    map: &ChannelMap,
    configuration: &open_streaming::open_data::ConfigurationPacket,
    sources: &[Source],
    producer: &ProducerConfig,
) -> SessionPlan {
    let mut details = config.session.details.clone();
    let mut known = |key: &str, value: String| {
        details.entry(key.to_owned()).or_insert(value);
    };
    known(
        "bridge",
        format!("ecu-bridge {}", env!("CARGO_PKG_VERSION")),
    );
    known("channel map", map.application().to_owned());
    known("parameters", map.parameters().len().to_string());
    // The configuration's content without its per-send id: equal maps, equal hashes.
    let hash = crc32c::crc32c(&prost::Message::encode_to_vec(configuration));
    known("channel map hash", format!("crc32c:{hash:08x}"));
    let inis = config.car.ini.iter().map(|(_, path)| path);
    let files: Vec<String> = config
        .car
        .profiles
        .iter()
        .map(|p| format!("profile {}", p.name))
        .chain(
            config
                .car
                .dbc
                .iter()
                .chain(&config.car.definitions)
                .chain(inis)
                .map(|path| {
                    path.file_name().map_or_else(
                        || path.display().to_string(),
                        |n| n.to_string_lossy().into_owned(),
                    )
                }),
        )
        .collect();
    if !files.is_empty() {
        known("channel map files", files.join(", "));
    }
    let source: Vec<String> = sources.iter().map(Source::name).collect();
    SessionPlan {
        template: SessionTemplate {
            identifier: config.session.identifier.clone(),
            data_source: config.session.data_source.clone(),
            session_type: config.session.session_type.clone(),
            utc_offset_seconds: config.session.utc_offset_seconds,
            details,
            car: map.application().to_owned(),
            source: source.join("+"),
        },
        idle_end: config.session.idle_end,
        in_lap: config.session.in_lap,
        runs: RunCounter::new(match &producer.spool {
            SpoolPlace::Dir(dir, _) => Some(dir.clone()),
            SpoolPlace::Temporary => None,
        }),
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
    run_reloadable(
        config,
        map,
        endpoint,
        sources,
        shutdown,
        RunHooks::default(),
    )
    .await
}

/// What a daemon adds to a run: channel-map reloads, shared counters, and the end of the drain.
#[derive(Debug, Default)]
pub struct RunHooks {
    /// Reloaded channel maps (SIGHUP): each is published as a new configuration while samples
    /// keep flowing.
    pub reloads: Option<mpsc::Receiver<ChannelMap>>,
    /// The pipeline's counters (shared, so a caller can watch the run).
    pub metrics: Arc<Metrics>,
    /// Turns true when the stop timeout has passed: the drain starts no further call, waits
    /// for those in flight, and leaves the rest in the spool.
    pub give_up: Option<watch::Receiver<bool>>,
    /// Requests to end the open session by hand (SIGUSR1): the next frame begins a new one.
    pub new_sessions: Option<mpsc::Receiver<()>>,
}

/// [`run`] with the daemon's [`RunHooks`].
pub async fn run_reloadable(
    config: &Config,
    map: ChannelMap,
    endpoint: String,
    sources: Vec<Source>,
    shutdown: impl Future<Output = ()> + Send,
    hooks: RunHooks,
) -> Result<RunSummary, PipelineError> {
    let RunHooks {
        reloads,
        metrics,
        give_up,
        new_sessions,
    } = hooks;
    let started = std::time::Instant::now();
    let max_speed = !sources.is_empty() && sources.iter().all(Source::is_max_speed_capture);
    let configured = config.batch.channel_capacity;
    let capacity = if max_speed {
        configured.min(MAX_SPEED_CHANNEL_CAPACITY)
    } else {
        configured
    };
    let (frames_tx, frames_rx) = weighed::channel(capacity, FRAMES_QUEUE_BYTES);
    let (rows_tx, rows_rx) = weighed::channel(capacity, ROWS_QUEUE_BYTES);
    let packets_waiting = (PUBLISH_QUEUE_BYTES / config.batch.max_packet_bytes.max(1)).max(2);
    let (batches_tx, batches_rx) = mpsc::channel(capacity.min(packets_waiting));
    let queue_sampler = queues::spawn_sampler(
        metrics.clone(),
        vec![
            (Queue::Decode, queues::probe(frames_tx.downgrade())),
            (Queue::Batch, queues::probe(rows_tx.downgrade())),
            (Queue::Publish, queues::probe(batches_tx.downgrade())),
        ],
    );
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let configuration = configuration_packet(&map);
    crate::publish::configuration::check_packet_size(
        &configuration,
        config.server_version.reads_configuration_parts(),
    )?;
    let producer_config = producer_config(config, endpoint);
    let plan = session_plan(config, &map, &configuration, &sources, &producer_config);
    let router = crate::config::StreamRouter::new(config);
    let streams = router.names().to_vec();
    let laps = config
        .laps
        .as_ref()
        .map(|laps| LapDetector::new(laps.signal, &laps.parameter, &map));

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
        laps,
        streams: router,
    };
    stages.spawn(async move {
        decode.run(frames_rx, rows_tx).await;
        StageResult::Done
    });
    let batch = BatchStage {
        // At max speed rows arrive far faster than any flush window, and while delivery holds
        // the input back (`pace_to_delivery`) every open packet would age past it: flushing by
        // age then sent one tiny packet per data format each window, slowing the replay down
        // fourfold on many formats (`docs/performance.md`). Packets go by size instead.
        max_age: if max_speed {
            config.batch.max_age.max(MAX_SPEED_FLUSH_AGE)
        } else {
            config.batch.max_age
        },
        max_packet_bytes: config.batch.max_packet_bytes,
        max_held_bytes: HELD_ROWS_BYTES,
        metrics: metrics.clone(),
        session_gap: config.session.idle_end,
    };
    stages.spawn(async move {
        batch.run(rows_rx, batches_tx).await;
        StageResult::Done
    });
    let publish_metrics = metrics.clone();
    stages.spawn(async move {
        let result = async {
            let producer = Producer::open(producer_config, configuration).await?;
            let stage = PublishStage {
                producer,
                streams,
                plan,
                metrics: publish_metrics.clone(),
                new_sessions,
                pace_to_delivery: max_speed,
            };
            let (producer, sessions) = stage.run(batches_rx).await?;
            let ending = producer.is_open();
            let give_up = async move {
                match give_up {
                    Some(mut give_up) => {
                        let _ = give_up.wait_for(|given_up| *given_up).await;
                    }
                    None => std::future::pending().await,
                }
            };
            let stats = producer
                .finish_observed(
                    |producer| crate::publish::report_producer(producer, &publish_metrics),
                    give_up,
                )
                .await?;
            crate::publish::report_stats(&stats, &publish_metrics);
            Metrics::set(&publish_metrics.samples_waiting, 0);
            if ending {
                Metrics::set(&publish_metrics.session_state, 2);
                Metrics::add(&publish_metrics.sessions_ended, 1);
            }
            Ok((sessions, stats))
        };
        StageResult::Publish(result.await)
    });
    let outcome = collect(stages, cancel_tx, shutdown, metrics, started).await;
    queue_sampler.abort();
    outcome
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
    let (sessions, producer) = published.unwrap_or_default();
    Ok(RunSummary {
        session_key: sessions.first().map(|s| s.key.clone()).unwrap_or_default(),
        sessions,
        metrics,
        producer,
        frames_per_source,
        elapsed: started.elapsed(),
    })
}
