//! The HTTP endpoint: `GET /metrics` (Prometheus text, [`exposition`]), `GET /health` (200
//! while the caller's health check passes, else 503) and `GET /values` (the latest value and
//! rate of every parameter with the pipeline counters, as JSON: [`ValuesReport`], read by
//! `ecu-bridge watch`); other paths get 404, other methods 405.
//! Routing is an axum `Router`; each connection is a hyper HTTP/1 connection.
//!
//! Slow or idle clients cannot blind a scrape: every connection is served in a task of its own
//! from the moment it is accepted, gets `read_timeout` to send its request head (hyper's header
//! read timeout, then closed) and `connection_timeout` in all, and serves one request
//! (`Connection: close`). Up to `max_connections` (generous) are served at once; more wait in
//! the listen backlog until one ends. Shutdown stops accepting, lets requests in flight finish
//! (hyper's graceful shutdown) for up to a second, then drops what is left.

use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use prometheus_client::registry::Registry;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

use crate::live_values::ValuesReport;
use crate::service::exposition;
use crate::telemetry::{Metrics, SourceMetrics};

/// Resource limits of the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request head (request line and headers); larger gets 431.
    pub max_request_bytes: usize,
    /// Time a client has to send its request head from connecting; then it is closed.
    pub read_timeout: Duration,
    /// Time a connection may take in all, head to last response byte; then it is dropped.
    pub connection_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_bytes: 8 * 1024,
            read_timeout: Duration::from_secs(5),
            connection_timeout: Duration::from_secs(10),
            // Far above what scrapers and probes use, and half the 1024 descriptors systemd
            // gives a unit by default (systemd/ecu-bridge.service sets no LimitNOFILE); each
            // slot frees within `connection_timeout` whatever the client does.
            max_connections: 512,
        }
    }
}

/// Serves `/metrics` and `/health` on `listener` with default [`Limits`] until `shutdown`.
pub async fn serve<H, F>(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    sources: Vec<Arc<SourceMetrics>>,
    health: H,
    shutdown: F,
) -> io::Result<()>
where
    H: Fn() -> bool + Send + Sync + 'static,
    F: Future<Output = ()>,
{
    serve_with(
        Limits::default(),
        listener,
        metrics,
        sources,
        health,
        shutdown,
    )
    .await
}

/// As [`serve`], with explicit limits. Returns once `shutdown` completed and the connections
/// then open have ended; accept errors other than running out of file descriptors or
/// connection resets end it early with the error.
pub async fn serve_with<H, F>(
    limits: Limits,
    listener: TcpListener,
    metrics: Arc<Metrics>,
    sources: Vec<Arc<SourceMetrics>>,
    health: H,
    shutdown: F,
) -> io::Result<()>
where
    H: Fn() -> bool + Send + Sync + 'static,
    F: Future<Output = ()>,
{
    let app = router(Arc::new(Endpoint {
        registry: exposition::registry(metrics.clone(), sources.clone()),
        metrics,
        sources,
        health: Box::new(health),
    }));
    let service = TowerToHyperService::new(app);
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.read_timeout)
        .max_header_size(limits.max_request_bytes)
        // Header names spelled as the endpoint always sent them (`Content-Type`).
        .title_case_headers(true)
        .keep_alive(false);
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop, stopping) = watch::channel(());
    let mut connections = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = accept(&listener, &permits) => accepted,
        };
        let Some((stream, permit)) = accepted? else {
            continue;
        };
        let connection = http.serve_connection(TokioIo::new(stream), service.clone());
        connections.spawn(run_connection(connection, limits, stopping.clone(), permit));
    }
    drop(listener);
    let _ = stop.send(());
    // hyper closes a connection gracefully only between requests, so one still waiting for its
    // head would hold shutdown up to its read timeout. Answering takes microseconds: what is
    // still open after a short grace is a client that has not sent its request. Drop those.
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.shutdown().await;
    }
    Ok(())
}

/// One accepted connection as hyper serves it.
type Connection = http1::Connection<TokioIo<TcpStream>, TowerToHyperService<Router>>;

/// Serves `connection` until it ends, its deadline passes, or, once `stopping` changes, its
/// request in flight is answered; holds its slot (`permit`) until then.
async fn run_connection(
    connection: Connection,
    limits: Limits,
    mut stopping: watch::Receiver<()>,
    permit: OwnedSemaphorePermit,
) {
    let mut connection = pin!(connection);
    let served = tokio::time::timeout(limits.connection_timeout, async {
        tokio::select! {
            served = connection.as_mut() => served,
            _ = stopping.changed() => {
                connection.as_mut().graceful_shutdown();
                connection.as_mut().await
            }
        }
    })
    .await;
    match served {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::debug!(%error, "metrics connection failed"),
        Err(_elapsed) => tracing::debug!("metrics connection cut off at its deadline"),
    }
    drop(permit);
}

/// How long requests in flight at shutdown get to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// What the request handlers share.
struct Endpoint {
    registry: Registry,
    /// Read by `/values`, which reports more than the registry's totals.
    metrics: Arc<Metrics>,
    sources: Vec<Arc<SourceMetrics>>,
    health: Box<dyn Fn() -> bool + Send + Sync>,
}

fn router(endpoint: Arc<Endpoint>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .route("/health", get(health))
        .route("/values", get(values))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .with_state(endpoint)
}

async fn scrape(State(endpoint): State<Arc<Endpoint>>) -> Response {
    match exposition::render(&endpoint.registry) {
        Ok(text) => ([(header::CONTENT_TYPE, exposition::CONTENT_TYPE)], text).into_response(),
        Err(std::fmt::Error) => {
            tracing::warn!("metrics could not be encoded");
            (StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n").into_response()
        }
    }
}

async fn health(State(endpoint): State<Arc<Endpoint>>) -> (StatusCode, &'static str) {
    if (endpoint.health)() {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unhealthy\n")
    }
}

async fn values(State(endpoint): State<Arc<Endpoint>>) -> Response {
    let report = ValuesReport::collect(
        &endpoint.metrics,
        &endpoint.sources,
        tokio::time::Instant::now(),
    );
    match serde_json::to_string(&report) {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(error) => {
            tracing::warn!(%error, "values could not be encoded");
            (StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n").into_response()
        }
    }
}

/// Waits for a free connection slot, then a connection. `Ok(None)` for transient accept errors
/// (the peer reset, descriptors exhausted), after a short pause so they cannot spin.
async fn accept(
    listener: &TcpListener,
    permits: &Arc<Semaphore>,
) -> io::Result<Option<(TcpStream, OwnedSemaphorePermit)>> {
    // The semaphore is never closed, so acquiring only fails if that invariant breaks.
    let permit = permits
        .clone()
        .acquire_owned()
        .await
        .map_err(io::Error::other)?;
    match listener.accept().await {
        Ok((stream, _)) => Ok(Some((stream, permit))),
        Err(error) if is_transient(&error) => {
            tracing::warn!(%error, "metrics endpoint: accept failed");
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

fn is_transient(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    ) || matches!(error.raw_os_error(), Some(23 | 24)) // ENFILE, EMFILE
}
