//! A TCP fault proxy for tests: sits on 127.0.0.1:0 in front of a server and, on command, stalls
//! (`pause`), drops every connection and refuses new ones (`cut`), slows the link (`throttle`) or
//! points at a restarted server (`upstream`), counting the bytes it forwards.
//!
//! Tokio only. Each direction of a connection copies through one fixed [`CHUNK`]-byte buffer, so
//! memory per connection is bounded; while paused nothing is read, so TCP backpressure reaches the
//! sender as it would from a stalled server. Cut closes the listening socket (new connects are
//! refused, like a process that went away) and rebinds the same port on resume.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Bytes copied per read; also the granularity of throttling.
const CHUNK: usize = 8 * 1024;

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Forward,
    /// Connections stay open, nothing moves.
    Pause,
    /// Connections dropped, listener closed.
    Cut,
}

/// The proxy's controls, shared with its tasks.
#[derive(Debug)]
struct Control {
    mode: watch::Sender<Mode>,
    /// Whether the listening socket is open (false from a cut until it is rebound).
    listening: watch::Sender<bool>,
    /// Bytes per second per direction; 0 = unlimited.
    rate: AtomicU64,
    upstream: Mutex<SocketAddr>,
    /// Client → server bytes forwarded.
    up: AtomicU64,
    /// Server → client bytes forwarded.
    down: AtomicU64,
}

/// A running proxy; dropping it stops accepting and closes every connection.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    control: Arc<Control>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy on 127.0.0.1:0 forwarding to `upstream`.
    pub async fn start(upstream: SocketAddr) -> io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let control = Arc::new(Control {
            mode: watch::Sender::new(Mode::Forward),
            listening: watch::Sender::new(true),
            rate: AtomicU64::new(0),
            upstream: Mutex::new(upstream),
            up: AtomicU64::new(0),
            down: AtomicU64::new(0),
        });
        let accept = tokio::spawn(accept_loop(listener, addr, Arc::clone(&control)));
        Ok(Proxy {
            addr,
            control,
            accept,
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://` URI of [`Proxy::addr`], for tonic channels.
    pub fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops forwarding in both directions; connections stay open (a stalled server).
    pub fn pause(&self) {
        self.control.mode.send_replace(Mode::Pause);
    }

    /// Forwards again after [`Proxy::pause`] or [`Proxy::cut`]; after a cut, returns once the
    /// port accepts connections again.
    pub async fn resume(&self) {
        self.control.mode.send_replace(Mode::Forward);
        let mut listening = self.control.listening.subscribe();
        let _ = listening.wait_for(|open| *open).await;
    }

    /// Drops every connection and refuses new ones until [`Proxy::resume`] (the server went
    /// away); returns once the listening socket is closed.
    pub async fn cut(&self) {
        self.control.mode.send_replace(Mode::Cut);
        let mut listening = self.control.listening.subscribe();
        let _ = listening.wait_for(|open| !*open).await;
    }

    /// Limits each direction of each connection to about `bytes_per_second` (0 = unlimited).
    pub fn throttle(&self, bytes_per_second: u64) {
        self.control.rate.store(bytes_per_second, Ordering::Relaxed);
    }

    /// Sends new connections to `addr` (e.g. a restarted server); open ones keep their server.
    pub fn upstream(&self, addr: SocketAddr) {
        *self
            .control
            .upstream
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = addr;
    }

    /// Client → server bytes forwarded so far.
    pub fn bytes_up(&self) -> u64 {
        self.control.up.load(Ordering::Relaxed)
    }

    /// Server → client bytes forwarded so far.
    pub fn bytes_down(&self) -> u64 {
        self.control.down.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        // Connection tasks end when they see Cut (or the sender go away).
        self.control.mode.send_replace(Mode::Cut);
    }
}

/// Accepts while forwarding or paused; while cut the listener is closed and rebound on resume.
async fn accept_loop(listener: TcpListener, addr: SocketAddr, control: Arc<Control>) {
    let mut listener = Some(listener);
    let mut mode = control.mode.subscribe();
    loop {
        let Some(open) = listener.as_ref() else {
            if mode.wait_for(|m| *m != Mode::Cut).await.is_err() {
                return;
            }
            listener = rebind(addr).await;
            control.listening.send_replace(listener.is_some());
            continue;
        };
        tokio::select! {
            accepted = open.accept() => {
                if let Ok((client, _)) = accepted {
                    tokio::spawn(connection(client, Arc::clone(&control)));
                }
            }
            changed = mode.wait_for(|m| *m == Mode::Cut) => {
                if changed.is_err() {
                    return;
                }
                listener = None;
                control.listening.send_replace(false);
            }
        }
    }
}

/// The same port again (SO_REUSEADDR, so sockets in TIME_WAIT do not block it); retried briefly.
async fn rebind(addr: SocketAddr) -> Option<TcpListener> {
    for _ in 0..50 {
        let bound = TcpSocket::new_v4().and_then(|s| {
            s.set_reuseaddr(true)?;
            s.bind(addr)?;
            s.listen(128)
        });
        match bound {
            Ok(listener) => return Some(listener),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    None
}

/// One client connection: dial the upstream and pump both ways until either side closes or Cut.
async fn connection(client: TcpStream, control: Arc<Control>) {
    let upstream = *control
        .upstream
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_rx, client_tx) = client.into_split();
    let (server_rx, server_tx) = server.into_split();
    let up = pump(client_rx, server_tx, &control, Direction::Up);
    let down = pump(server_rx, client_tx, &control, Direction::Down);
    // Either direction ending (EOF, error or Cut) drops both sockets.
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}

#[derive(Debug, Clone, Copy)]
enum Direction {
    Up,
    Down,
}

/// Copies one direction through a fixed buffer, honouring pause, cut and throttle.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    control: &Control,
    direction: Direction,
) {
    let mut mode = control.mode.subscribe();
    let mut buf = vec![0u8; CHUNK];
    loop {
        match mode.wait_for(|m| *m != Mode::Pause).await.map(|m| *m) {
            Ok(Mode::Forward) => {}
            _ => return,
        }
        let rate = control.rate.load(Ordering::Relaxed);
        // A throttled link moves at most a tenth of a second's worth per step.
        let limit = if rate == 0 {
            CHUNK
        } else {
            usize::try_from(rate / 10).unwrap_or(CHUNK).clamp(1, CHUNK)
        };
        let n = tokio::select! {
            read = from.read(&mut buf[..limit]) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            // Re-evaluate on pause/cut even while idle.
            _ = mode.changed() => continue,
        };
        if rate != 0 {
            let secs = n as f64 / rate as f64;
            tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        }
        // Data read before a pause is held until resume; a cut discards it.
        match mode.wait_for(|m| *m != Mode::Pause).await.map(|m| *m) {
            Ok(Mode::Forward) => {}
            _ => return,
        }
        let cut = async {
            let _ = mode.wait_for(|m| *m == Mode::Cut).await;
        };
        tokio::select! {
            written = to.write_all(&buf[..n]) => if written.is_err() { return },
            () = cut => return,
        }
        let counter = match direction {
            Direction::Up => &control.up,
            Direction::Down => &control.down,
        };
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tokio::net::TcpListener;

    use super::*;
    use crate::util;

    /// GetCurrentSessions through `uri` with a fresh connection, bounded in time.
    async fn call(uri: &str) -> Result<(), String> {
        use open_streaming::api;
        use open_streaming::api::session_management_service_client::SessionManagementServiceClient;
        let attempt = async {
            let channel = tonic::transport::Channel::from_shared(uri.to_owned())
                .map_err(|e| e.to_string())?
                .connect()
                .await
                .map_err(|e| e.to_string())?;
            let request = api::GetCurrentSessionsRequest {
                data_source: util::DS.into(),
            };
            SessionManagementServiceClient::new(channel)
                .get_current_sessions(request)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        tokio::time::timeout(Duration::from_secs(5), attempt)
            .await
            .map_err(|_| "timed out".to_owned())?
    }

    #[tokio::test]
    async fn calls_pass_fail_while_cut_and_pass_after_resume() {
        use open_streaming::api::session_management_service_client::SessionManagementServiceClient;
        let (server, _) = util::start(false, None).await;
        let proxy = Proxy::start(server.local_addr()).await.expect("proxy");
        call(&proxy.uri()).await.expect("through the proxy");
        assert!(proxy.bytes_up() > 0 && proxy.bytes_down() > 0);

        // A long-lived channel through the proxy loses its connection on cut and redials later.
        let channel = tonic::transport::Channel::from_shared(proxy.uri())
            .expect("uri")
            .connect()
            .await
            .expect("connect");
        let mut kept = SessionManagementServiceClient::new(channel);
        let request = || open_streaming::api::GetSessionInfoRequest {
            session_key: "none".into(),
        };
        kept.get_session_info(request()).await.expect("before cut");
        proxy.cut().await;
        let refused = TcpStream::connect(proxy.addr()).await;
        assert!(refused.is_err(), "new connections are refused while cut");
        assert!(
            call(&proxy.uri()).await.is_err(),
            "a new call fails while cut"
        );
        let dropped =
            tokio::time::timeout(Duration::from_secs(5), kept.get_session_info(request()));
        assert!(
            matches!(dropped.await, Ok(Err(_))),
            "the open connection was dropped"
        );

        proxy.resume().await;
        call(&proxy.uri()).await.expect("after resume");
        kept.get_session_info(request())
            .await
            .expect("the kept channel redials");
        server.shutdown().await.expect("shutdown");
    }

    #[tokio::test]
    async fn pause_stalls_without_closing_and_upstream_switches_servers() {
        let (first, _) = util::start(false, None).await;
        let proxy = Proxy::start(first.local_addr()).await.expect("proxy");
        proxy.pause();
        let stalled = tokio::time::timeout(Duration::from_millis(300), call(&proxy.uri())).await;
        assert!(stalled.is_err(), "nothing moves while paused");
        proxy.resume().await;
        call(&proxy.uri()).await.expect("after resume");

        let (second, _) = util::start(false, None).await;
        first.shutdown().await.expect("shutdown first");
        proxy.upstream(second.local_addr());
        call(&proxy.uri())
            .await
            .expect("through to the second server");
        second.shutdown().await.expect("shutdown second");
    }

    #[tokio::test]
    async fn throttle_slows_a_transfer() {
        const BYTES: usize = 200 * 1024;
        let sink = TcpListener::bind("127.0.0.1:0").await.expect("bind sink");
        let sink_addr = sink.local_addr().expect("sink addr");
        let received = tokio::spawn(async move {
            let (mut conn, _) = sink.accept().await.expect("accept");
            let mut all = Vec::new();
            conn.read_to_end(&mut all).await.expect("read");
            all.len()
        });
        let proxy = Proxy::start(sink_addr).await.expect("proxy");
        proxy.throttle(400 * 1024);
        let started = Instant::now();
        let mut conn = TcpStream::connect(proxy.addr()).await.expect("connect");
        conn.write_all(&vec![7u8; BYTES]).await.expect("write");
        conn.shutdown().await.expect("half-close");
        let got = tokio::time::timeout(Duration::from_secs(20), received)
            .await
            .expect("transfer finished")
            .expect("sink task");
        let elapsed = started.elapsed();
        assert_eq!(got, BYTES);
        assert_eq!(proxy.bytes_up(), BYTES as u64);
        // 200 KiB at 400 KiB/s takes about 0.5 s; unthrottled loopback takes milliseconds.
        assert!(
            elapsed >= Duration::from_millis(350),
            "throttled transfer took only {elapsed:?}"
        );
    }
}
