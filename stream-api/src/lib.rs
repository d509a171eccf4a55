//! The project's own test Stream API server (`ecu-bridge stream-api`): an h2c gRPC server that
//! answers like Motion Applied's v1.3 Stream API, lints every producer request against
//! docs/open-streaming.md §10 (B1–B14), and optionally records everything it sees.
//!
//! Layout:
//! - [`conformance`] + `lint` + `packet`: the sans-IO checker (events in, [`Violation`]s out);
//!   `seen` tells a producer's redelivery (same session, stream, `Packet.id`, content) from new
//!   data, so re-sent packets are counted in [`Stats::duplicate_packets`], not flagged;
//! - `registry`: sessions, data-format ids and offsets (the real server's Kafka-backed state);
//! - `core` + `server` + `keys`: the lock-guarded state and the tonic services over it;
//! - [`recording`]: the on-disk framing; [`inspect`]: reading a recording back.
//!
//! It never talks to Kafka and never changes an answer because of a violation unless
//! [`ServerOptions::strict`] is set. Shutdown ends open client streams, stops serving and
//! flushes the recording; a recording present at start is replayed first, so sessions survive
//! a restart.
//!
//! Served: SessionManagementService, DataFormatManagerService, PacketWriterService and the Key
//! Generator on one port. Not served (UNIMPLEMENTED): PacketReaderService and
//! ConnectionManagerService. The server models topic-based mode, so B11's partition-mode checks
//! (stream in PartitionMappings, one data source per server) are not made.

pub mod conformance;
pub mod inspect;
pub mod recording;

mod core;
mod keys;
mod lint;
mod packet;
mod registry;
mod row_shape;
mod seen;
mod server;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;

pub use conformance::{Severity, Violation};
pub use core::Stats;
use open_streaming::{api, key_generator};
pub use recording::RecordingError;

/// How long shutdown waits for connections to drain before cutting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// The largest HTTP/2 frame the server accepts (`SETTINGS_MAX_FRAME_SIZE`). At the protocol's
/// 16 KiB default a client sends a 250 KB packet as 16 frames, each its own socket write;
/// with 1 MiB frames a bridge replaying at full speed spent 7 % less CPU, the server the same
/// (`docs/performance.md`, "The twelfth turn").
const MAX_FRAME_BYTES: u32 = 1 << 20;

/// How to run the server.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Reject requests with an error-severity violation with INVALID_ARGUMENT (the real server
    /// accepts them silently; tests use this to fail fast).
    pub strict: bool,
    /// Append every request/response to this file (replayed first if it exists).
    pub record: Option<PathBuf>,
}

/// Failure to start or run the server.
#[derive(Debug, thiserror::Error)]
pub enum StreamApiError {
    /// The listener's address could not be read.
    #[error("reading the listener address: {0}")]
    LocalAddr(#[source] std::io::Error),
    /// The recording could not be opened, replayed or written.
    #[error(transparent)]
    Recording(#[from] RecordingError),
    /// The gRPC transport failed.
    #[error("gRPC transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The server task panicked.
    #[error("server task: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// A server running in the background (from [`spawn`]).
#[derive(Debug)]
pub struct ServerHandle {
    local_addr: SocketAddr,
    shared: Arc<core::Shared>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), StreamApiError>>,
}

impl ServerHandle {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Every violation found since this server started, in order.
    pub fn violations(&self) -> Vec<Violation> {
        self.shared.lock().violations.clone()
    }

    /// Number of violations per rule (`"B3"` → 2) since this server started.
    pub fn violation_counts(&self) -> BTreeMap<&'static str, u64> {
        self.shared.lock().counts.clone()
    }

    /// How many data-format ids this server has issued.
    pub fn data_formats_issued(&self) -> usize {
        self.shared.lock().registry.data_formats()
    }

    /// Progress counters of this run.
    pub fn stats(&self) -> Stats {
        self.shared.lock().stats
    }

    /// Waits until `condition` holds for the server's [`Stats`] (e.g. `|s| s.packets >= 10`) and
    /// returns them: the way to wait for writes whose RPC gives no acknowledgement.
    pub async fn wait_until(&self, mut condition: impl FnMut(&Stats) -> bool) -> Stats {
        let mut changes = self.shared.subscribe();
        // The sender lives in `self.shared`, which outlives this borrow, so the wait cannot fail.
        match changes.wait_for(|s| condition(s)).await {
            Ok(stats) => *stats,
            Err(_) => self.stats(),
        }
    }

    /// Stops at once, as a killed process would (restart tests): the serving task is aborted
    /// without draining, and the recording is closed where it stands, discarding anything not
    /// yet flushed. Connections already open may be served until their clients drop them, but
    /// nothing more is recorded; a new server can then open the same file.
    pub fn abort(self) {
        self.task.abort();
        if let Some(recorder) = self.shared.lock().recorder.take() {
            recorder.abandon();
        }
    }

    /// Stops accepting, ends open streams, waits (up to 5 s) for connections to drain, and
    /// flushes the recording. Reports a recording failure that happened while serving.
    pub async fn shutdown(self) -> Result<(), StreamApiError> {
        // The task may already have ended (transport error); its result is reported below.
        let _ = self.stop.send(());
        let result = self.task.await?;
        finish(&self.shared)?;
        result
    }
}

/// Starts a server on `listener` in the background. A recording given in `options` is opened
/// (and replayed) before this returns, so its errors surface here.
pub async fn spawn(
    listener: TcpListener,
    options: ServerOptions,
) -> Result<ServerHandle, StreamApiError> {
    let local_addr = listener.local_addr().map_err(StreamApiError::LocalAddr)?;
    let shared = Arc::new(open_shared(&options)?);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(run(listener, Arc::clone(&shared), async {
        // A dropped handle also stops the server.
        let _ = stopped.await;
    }));
    Ok(ServerHandle {
        local_addr,
        shared,
        stop,
        task,
    })
}

/// Runs a server on `listener` until `shutdown` completes, then flushes the recording (the CLI's
/// entry point).
pub async fn serve(
    listener: TcpListener,
    options: ServerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StreamApiError> {
    let shared = Arc::new(open_shared(&options)?);
    let result = run(listener, Arc::clone(&shared), shutdown).await;
    finish(&shared)?;
    result
}

/// Builds the shared state, opening and replaying the recording if any.
fn open_shared(options: &ServerOptions) -> Result<core::Shared, StreamApiError> {
    let mut state = core::Core::default();
    if let Some(path) = &options.record {
        let (recorder, parsed) = recording::Recorder::open(path)?;
        core::replay(&mut state, &parsed, path)?;
        // Stats count this run only.
        state.stats = Stats::default();
        if parsed.truncated {
            let path = path.display();
            tracing::warn!(%path, "recording ended in a torn record; cut back to the last whole record");
        }
        let records = parsed.records.len();
        tracing::info!(path = %path.display(), records, "replayed recording");
        state.recorder = Some(recorder);
    }
    Ok(core::Shared::new(options.strict, state))
}

/// Serves all services until `shutdown`, then ends open streams so the graceful drain finishes.
async fn run(
    listener: TcpListener,
    shared: Arc<core::Shared>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StreamApiError> {
    use api::data_format_manager_service_server::DataFormatManagerServiceServer;
    use api::packet_writer_service_server::PacketWriterServiceServer;
    use api::session_management_service_server::SessionManagementServiceServer;
    use key_generator::unique_key_generator_service_server::UniqueKeyGeneratorServiceServer;

    let (stop_streams, streams_stopped) = watch::channel(false);
    let mut drain_started = stop_streams.subscribe();
    let services = server::StreamApi::new(Arc::clone(&shared), streams_stopped);
    let limit = server::TRANSPORT_LIMIT_BYTES;
    let signal = async move {
        shutdown.await;
        let _ = stop_streams.send(true);
        let mut core = shared.lock();
        core.start_subs.clear();
        core.stop_subs.clear();
    };
    let serving = tonic::transport::Server::builder()
        .max_frame_size(Some(MAX_FRAME_BYTES))
        .add_service(
            SessionManagementServiceServer::new(services.clone()).max_decoding_message_size(limit),
        )
        .add_service(
            DataFormatManagerServiceServer::new(services.clone()).max_decoding_message_size(limit),
        )
        .add_service(
            PacketWriterServiceServer::new(services.clone()).max_decoding_message_size(limit),
        )
        .add_service(
            UniqueKeyGeneratorServiceServer::new(services).max_decoding_message_size(limit),
        )
        // Without TCP_NODELAY a small answer written while the client has not yet acknowledged
        // the previous segment waits for its delayed ACK: about 40 ms per unary call
        // (docs/performance.md, "Where the wall time went").
        .serve_with_incoming_shutdown(TcpIncoming::from(listener).with_nodelay(Some(true)), signal);
    // Graceful drain waits for every connection; a client that never closes gets SHUTDOWN_GRACE.
    let grace = async {
        let _ = drain_started.wait_for(|stop| *stop).await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        served = serving => served?,
        () = grace => tracing::warn!("connections did not drain in {SHUTDOWN_GRACE:?}; closing"),
    }
    Ok(())
}

/// Flushes the recording and surfaces the first recording failure.
fn finish(shared: &core::Shared) -> Result<(), StreamApiError> {
    let mut core = shared.lock();
    core.flush();
    match core.record_error.take() {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// The server's first SETTINGS frame, read off the wire after the client's preface.
    async fn server_settings(address: std::net::SocketAddr) -> Vec<(u16, u32)> {
        let mut stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        // An empty SETTINGS frame: length 0, type 4, no flags, stream 0.
        hello.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
        stream.write_all(&hello).await.expect("preface");
        loop {
            let mut head = [0u8; 9];
            stream.read_exact(&mut head).await.expect("frame header");
            let length = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let mut payload = vec![0u8; length];
            stream
                .read_exact(&mut payload)
                .await
                .expect("frame payload");
            let (kind, ack) = (head[3], head[4] & 1 == 1);
            if kind == 4 && !ack {
                return payload
                    .chunks_exact(6)
                    .map(|entry| {
                        (
                            u16::from_be_bytes([entry[0], entry[1]]),
                            u32::from_be_bytes([entry[2], entry[3], entry[4], entry[5]]),
                        )
                    })
                    .collect();
            }
        }
    }

    #[tokio::test]
    async fn the_server_takes_frames_of_a_mebibyte() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let server = spawn(listener, ServerOptions::default())
            .await
            .expect("server");
        let settings = tokio::time::timeout(
            Duration::from_secs(10),
            server_settings(server.local_addr()),
        )
        .await
        .expect("the server's SETTINGS within 10 s");
        // SETTINGS_MAX_FRAME_SIZE is identifier 5 (RFC 9113, 6.5.2).
        let max_frame = settings.iter().find(|(id, _)| *id == 5).map(|(_, v)| *v);
        assert_eq!(max_frame, Some(MAX_FRAME_BYTES), "{settings:?}");
    }
}
