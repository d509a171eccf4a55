//! A minimal HTTP/1.1 server for `GET /metrics` (Prometheus text, [`exposition`]) and
//! `GET /health` (200 while the caller's health check passes, else 503); anything else is 404.
//!
//! One request per connection (`Connection: close`), which every Prometheus scraper and health
//! probe handles. Bounded by [`Limits`]: a request head larger than `max_request_bytes` gets 431,
//! one not complete within `read_timeout` gets 408, and at most `max_connections` are served at
//! once (the rest wait in the listen backlog). Request bodies are never parsed, only discarded
//! (at most 64 KiB, within `read_timeout`) after the response so that closing does not reset
//! it. Shutdown stops accepting and drops the connections in flight: a scrape is cheap to retry.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::service::exposition;
use crate::telemetry::{Metrics, SourceMetrics};

/// Resource limits of the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request head (request line and headers) read; larger gets 431.
    pub max_request_bytes: usize,
    /// Time a client has to send its request head, and then to take the response.
    pub read_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_bytes: 8 * 1024,
            read_timeout: Duration::from_secs(5),
            max_connections: 16,
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

/// As [`serve`], with explicit limits. Returns when `shutdown` completes; accept errors other
/// than running out of file descriptors or connection resets end it early with the error.
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
    let state = Arc::new(State {
        limits,
        metrics,
        sources,
        health: Box::new(health),
    });
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        let accepted = tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = accept(&listener, &permits) => accepted,
        };
        let Some((stream, permit)) = accepted? else {
            continue;
        };
        let state = state.clone();
        connections.spawn(async move {
            if let Err(error) = handle_connection(stream, &state).await {
                tracing::debug!(%error, "metrics connection ended");
            }
            drop(permit);
        });
    }
}

/// What the connection tasks share.
struct State {
    limits: Limits,
    metrics: Arc<Metrics>,
    sources: Vec<Arc<SourceMetrics>>,
    health: Box<dyn Fn() -> bool + Send + Sync>,
}

/// Waits for a free connection slot, then a connection. `Ok(None)` for transient accept errors
/// (the peer reset, descriptors exhausted), after a short pause so they cannot spin.
async fn accept(
    listener: &TcpListener,
    permits: &Arc<Semaphore>,
) -> io::Result<Option<(TcpStream, tokio::sync::OwnedSemaphorePermit)>> {
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

/// Reads one request head (bounded in size and time), answers it, and closes.
async fn handle_connection(mut stream: TcpStream, state: &State) -> io::Result<()> {
    let limits = state.limits;
    let head = tokio::time::timeout(
        limits.read_timeout,
        read_head(&mut stream, limits.max_request_bytes),
    )
    .await;
    let response = match head {
        Err(_elapsed) => Response::text(408, "Request Timeout", "request timeout\n"),
        Ok(Err(error)) => return Err(error),
        Ok(Ok(None)) => Response::text(431, "Request Header Fields Too Large", "too large\n"),
        Ok(Ok(Some(head))) => route(&head, state),
    };
    let written = tokio::time::timeout(limits.read_timeout, async {
        stream.write_all(&response.into_bytes()).await?;
        stream.shutdown().await
    })
    .await;
    written.unwrap_or_else(|_elapsed| Err(io::ErrorKind::TimedOut.into()))?;
    // Lingering close: closing with unread request bytes (an oversized head, a body) makes the
    // kernel send RST, which can destroy the response before the client has read it. So discard
    // input until the client closes, bounded in size and time.
    let _ = tokio::time::timeout(limits.read_timeout, discard(&mut stream, LINGER_BYTES)).await;
    Ok(())
}

/// Reads and drops up to `limit` bytes, or until EOF or an error.
async fn discard(stream: &mut TcpStream, limit: usize) {
    let mut sink = [0u8; 1024];
    let mut drained = 0;
    while drained < limit {
        match stream.read(&mut sink).await {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

/// Request bytes discarded after the response before closing regardless.
const LINGER_BYTES: usize = 64 * 1024;

/// Reads until the blank line ending the head: `Some(head)`, or `None` once `max` bytes arrived
/// without one. EOF before the end is an error.
async fn read_head(stream: &mut TcpStream, max: usize) -> io::Result<Option<Vec<u8>>> {
    let mut head = Vec::with_capacity(max.min(1024));
    let mut chunk = [0u8; 1024];
    loop {
        let room = (max + 1).saturating_sub(head.len()).min(chunk.len());
        let n = stream.read(&mut chunk[..room]).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        // Search from just before the new bytes: the terminator may straddle two reads.
        let from = head.len().saturating_sub(3);
        head.extend_from_slice(&chunk[..n]);
        if let Some(end) = head[from..].windows(4).position(|w| w == b"\r\n\r\n") {
            head.truncate(from + end);
            return Ok((head.len() <= max).then_some(head));
        }
        if head.len() > max {
            return Ok(None);
        }
    }
}

/// The response to a complete request head.
fn route(head: &[u8], state: &State) -> Response {
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Response::text(400, "Bad Request", "bad request\n");
    };
    if !version.starts_with(b"HTTP/1.") {
        return Response::text(400, "Bad Request", "bad request\n");
    }
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    let head_only = method == b"HEAD";
    let response = match (method, path) {
        (b"GET" | b"HEAD", b"/metrics") => Response {
            status: 200,
            reason: "OK",
            content_type: exposition::CONTENT_TYPE,
            body: exposition::render(&state.metrics, &state.sources).into_bytes(),
            allow: false,
            omit_body: false,
        },
        (b"GET" | b"HEAD", b"/health") if (state.health)() => Response::text(200, "OK", "ok\n"),
        (b"GET" | b"HEAD", b"/health") => Response::text(503, "Service Unavailable", "unhealthy\n"),
        (_, b"/metrics" | b"/health") => Response {
            allow: true,
            ..Response::text(405, "Method Not Allowed", "method not allowed\n")
        },
        _ => Response::text(404, "Not Found", "not found\n"),
    };
    Response {
        omit_body: head_only,
        ..response
    }
}

/// A response; always `Connection: close`.
struct Response {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    /// Adds `Allow: GET, HEAD` (405 responses).
    allow: bool,
    /// Sends the headers only, with the body's length (a HEAD request).
    omit_body: bool,
}

impl Response {
    fn text(status: u16, reason: &'static str, body: &str) -> Self {
        Self {
            status,
            reason,
            content_type: "text/plain; charset=utf-8",
            body: body.as_bytes().to_vec(),
            allow: false,
            omit_body: false,
        }
    }

    fn into_bytes(self) -> Vec<u8> {
        let allow = if self.allow {
            "Allow: GET, HEAD\r\n"
        } else {
            ""
        };
        let mut bytes = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
            self.status,
            self.reason,
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        if !self.omit_body {
            bytes.extend_from_slice(&self.body);
        }
        bytes
    }
}
