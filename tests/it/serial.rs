//! Serial source over real pseudo-terminals: a fake SLCAN adapter on the master side, the
//! source on the slave through a symlink (as `/dev/serial/by-id/...`). Unplug is closing the
//! master; replug is a new pair with the symlink re-pointed.
//!
//! Real IO, so real time: every await is bounded by [`LIMIT`] instead of sleeping.

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ecu_bridge::config::{FlowControl, Parity, SerialSourceConfig, SlcanSetup};
use ecu_bridge::pipeline::edge::{SourceBatch, TimedFrame};
use ecu_bridge::pipeline::weighed;
use ecu_bridge::source::SourceError;
use ecu_bridge::source::serial::SerialSource;
use ecu_bridge::telemetry::{Metrics, SourceMetrics};
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::{Notify, watch};
use tracing::instrument::WithSubscriber;

/// Bounds every await, so a failing test ends instead of hanging.
const LIMIT: Duration = Duration::from_secs(10);

/// The adapter's side of a pty pair. Dropping it closes the master: an unplug.
pub(crate) struct FakeAdapter {
    /// The master, for reading the host's commands.
    rx: pipe::Receiver,
    /// A duplicate of the master, for answering.
    tx: pipe::Sender,
    /// Held open so the master never sees a hang-up before the source opens the slave.
    _slave: OwnedFd,
    /// Commands received but not yet answered.
    pending: Vec<u8>,
}

impl FakeAdapter {
    /// A new pty pair; returns the adapter and the slave's path (`/dev/pts/N`).
    pub(crate) fn new() -> (Self, PathBuf) {
        let pty = nix::pty::openpty(None, None).expect("openpty");
        let slave_path = std::fs::read_link(format!("/proc/self/fd/{}", pty.slave.as_raw_fd()))
            .expect("slave path");
        fcntl(&pty.master, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).expect("non-blocking");
        let writer = pty.master.try_clone().expect("dup master");
        let adapter = Self {
            // A pty master reads and writes like a pipe end; only the FIFO check is skipped.
            rx: pipe::Receiver::from_owned_fd_unchecked(pty.master).expect("register master"),
            tx: pipe::Sender::from_owned_fd_unchecked(writer).expect("register master"),
            _slave: pty.slave,
            pending: Vec::new(),
        };
        (adapter, slave_path)
    }

    pub(crate) async fn write_all(&mut self, data: &[u8]) {
        self.tx.write_all(data).await.expect("write to master");
    }

    /// Waits (bounded) until the host has opened the slave and put it in raw mode, so bytes
    /// written now are neither echoed nor held for a line (a source with no set-up handshake).
    pub(crate) async fn until_raw(&self) {
        let deadline = tokio::time::Instant::now() + LIMIT;
        loop {
            let termios = nix::sys::termios::tcgetattr(&self._slave).expect("tcgetattr");
            if !termios
                .local_flags
                .contains(nix::sys::termios::LocalFlags::ICANON)
            {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "port never opened");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Everything the host has written so far (without waiting for more).
    pub(crate) fn sent_by_host(&mut self) -> Vec<u8> {
        let mut sent = std::mem::take(&mut self.pending);
        let mut chunk = [0u8; 256];
        while let Ok(n) = self.rx.try_read(&mut chunk) {
            if n == 0 {
                break;
            }
            sent.extend_from_slice(&chunk[..n]);
        }
        sent
    }

    /// Answers commands with `answer(command)` until `L` or `O`; returns all the host sent.
    pub(crate) async fn serve_init(&mut self, answer: impl Fn(&[u8]) -> &'static [u8]) -> Vec<u8> {
        let mut seen = Vec::new();
        let mut chunk = [0u8; 64];
        loop {
            while let Some(end) = self.pending.iter().position(|&b| b == b'\r') {
                let command: Vec<u8> = self.pending.drain(..=end).collect();
                seen.extend_from_slice(&command);
                let command = &command[..end];
                self.write_all(answer(command)).await;
                if command == b"L" || command == b"O" {
                    return seen;
                }
            }
            let n = self.rx.read(&mut chunk).await.expect("read commands");
            assert!(n > 0, "host hung up during init");
            self.pending.extend_from_slice(&chunk[..n]);
        }
    }
}

/// Log lines written by the source, for counting and awaiting messages.
#[derive(Clone, Default)]
struct Logs {
    text: Arc<Mutex<Vec<u8>>>,
    written: Arc<Notify>,
}

impl Logs {
    fn count(&self, message: &str) -> usize {
        let text = self.text.lock().expect("logs");
        String::from_utf8_lossy(&text).matches(message).count()
    }

    /// Resolves once `message` has been logged.
    async fn logged(&self, message: &str) {
        loop {
            let written = self.written.notified();
            tokio::pin!(written);
            written.as_mut().enable();
            if self.count(message) > 0 {
                return;
            }
            written.await;
        }
    }

    /// A subscriber writing here, debug level and up.
    fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync + 'static {
        let logs = self.clone();
        tracing_subscriber::fmt()
            .with_writer(move || logs.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.text.lock().expect("logs").extend_from_slice(buf);
        self.written.notify_waiters();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn config(device: &Path) -> SerialSourceConfig {
    SerialSourceConfig {
        device: device.to_owned(),
        baud: 115_200,
        data_bits: 8,
        parity: Parity::None,
        stop_bits: 1,
        flow_control: FlowControl::None,
        slcan: Some(SlcanSetup {
            bitrate: 500_000,
            listen_only: true,
            timestamps: true,
        }),
        reconnect_initial: Duration::from_millis(10),
        reconnect_max: Duration::from_millis(100),
    }
}

/// Points `link` at `target`, atomically (the path never vanishes).
pub(crate) fn point(link: &Path, target: &Path) {
    let temporary = link.with_extension("new");
    std::os::unix::fs::symlink(target, &temporary).expect("symlink");
    std::fs::rename(&temporary, link).expect("re-point symlink");
}

async fn receive(rx: &mut weighed::Receiver<SourceBatch>, count: usize) -> Vec<TimedFrame> {
    let mut frames = Vec::new();
    while frames.len() < count {
        let batch = tokio::time::timeout(LIMIT, rx.recv())
            .await
            .expect("frames in time")
            .expect("source running");
        frames.extend(batch.can);
    }
    assert_eq!(frames.len(), count);
    frames
}

pub(crate) fn ok(_: &[u8]) -> &'static [u8] {
    b"\r"
}

#[tokio::test]
async fn serial_source_reads_frames_and_survives_unplug() {
    let dir = tempfile::tempdir().expect("temp dir");
    let link = dir.path().join("usb-CANable-if00");
    let (mut adapter, slave) = FakeAdapter::new();
    point(&link, &slave);

    let metrics = Arc::new(SourceMetrics::new("usb"));
    let logs = Logs::default();
    let subscriber = logs.subscriber();
    let (tx, mut rx) = weighed::channel(8, usize::MAX);
    let (cancel_tx, cancel) = watch::channel(false);
    let source = SerialSource::new("usb", config(&link), metrics.clone());
    let task = tokio::spawn(source.run(tx, None, cancel).with_subscriber(subscriber));

    // An adapter that was already closed refuses `C`; that is fine.
    let seen = tokio::time::timeout(
        LIMIT,
        adapter.serve_init(|c| match c {
            b"C" => b"\x07",
            _ => b"\r",
        }),
    )
    .await
    .expect("init in time");
    assert_eq!(seen, b"C\rS6\rZ1\rL\r");
    adapter
        .write_all(b"t1232AABB0064\rt4561CC\rhello\rT18FEF10020102006E\r")
        .await;
    let frames = receive(&mut rx, 3).await;
    assert_eq!(frames[0].frame.id.id(), 0x123);
    assert_eq!(frames[0].frame.data(), &[0xAA, 0xBB]);
    assert_eq!(frames[1].frame.id.id(), 0x456);
    assert_eq!(frames[1].frame.data(), &[0xCC]);
    assert_eq!(frames[2].frame.id.id(), 0x18FE_F100);
    assert!(frames[2].frame.id.is_extended());
    assert_eq!(
        frames[2].time_ns - frames[0].time_ns,
        10_000_000,
        "adapter timestamps 100 ms and 110 ms"
    );
    assert_eq!(metrics.decode_errors().values().sum::<u64>(), 1, "hello");

    // Unplug, then replug as a new pty at the same stable path.
    drop(adapter);
    let (mut adapter, slave) = FakeAdapter::new();
    point(&link, &slave);
    let seen = tokio::time::timeout(LIMIT, adapter.serve_init(ok))
        .await
        .expect("re-init in time");
    assert_eq!(seen, b"C\rS6\rZ1\rL\r", "initialised again after replug");
    adapter.write_all(b"t7FF3010203\r").await;
    let frames = receive(&mut rx, 1).await;
    assert_eq!(frames[0].frame.id.id(), 0x7FF);
    assert_eq!(frames[0].frame.data(), &[1, 2, 3]);

    assert_eq!(Metrics::get(&metrics.outages), 1);
    assert_eq!(Metrics::get(&metrics.reconnects), 1);
    assert_eq!(Metrics::get(&metrics.frames), 4);
    assert_eq!(logs.count("device lost"), 1, "warned once");
    assert_eq!(logs.count("device back"), 1, "back once");

    cancel_tx.send(true).expect("source listening");
    tokio::time::timeout(LIMIT, task)
        .await
        .expect("stops when cancelled")
        .expect("task")
        .expect("clean stop");
}

#[tokio::test]
async fn refused_bitrate_at_start_fails_naming_the_command() {
    let dir = tempfile::tempdir().expect("temp dir");
    let link = dir.path().join("adapter");
    let (mut adapter, slave) = FakeAdapter::new();
    point(&link, &slave);
    let (tx, _rx) = weighed::channel(1, usize::MAX);
    let (_cancel_tx, cancel) = watch::channel(false);
    let source = SerialSource::new("usb", config(&link), Arc::default());
    let task = tokio::spawn(source.run(tx, None, cancel));
    let _fake = tokio::spawn(async move {
        adapter
            .serve_init(|c| match c {
                b"S6" => b"\x07",
                _ => b"\r",
            })
            .await
    });
    let error = tokio::time::timeout(LIMIT, task)
        .await
        .expect("fails in time")
        .expect("task")
        .expect_err("refused");
    assert!(matches!(error, SourceError::Setup { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .ends_with("adapter refused S6 (bitrate 500000)"),
        "{error}"
    );
}

#[tokio::test]
async fn a_device_absent_at_start_is_waited_for_and_other_open_failures_are_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let link = dir.path().join("adapter");
    let logs = Logs::default();
    let (tx, mut rx) = weighed::channel(4, usize::MAX);
    let (_cancel_tx, cancel) = watch::channel(false);
    let metrics = Arc::new(SourceMetrics::new("usb"));
    let source = SerialSource::new("usb", config(&link), metrics.clone());
    let running = tokio::spawn(
        source
            .run(tx, None, cancel)
            .with_subscriber(logs.subscriber()),
    );
    tokio::time::timeout(
        LIMIT,
        logs.logged("device not present at start; waiting for it"),
    )
    .await
    .expect("logged in time");
    assert!(
        !running.is_finished(),
        "an absent device is not a start-up error"
    );
    // The adapter enumerates later (as at boot): the source opens and initialises it.
    let (mut adapter, slave) = FakeAdapter::new();
    point(&link, &slave);
    let init = tokio::time::timeout(LIMIT, adapter.serve_init(ok))
        .await
        .expect("init in time");
    assert_eq!(init, b"C\rS6\rZ1\rL\r");
    adapter.write_all(b"t1232BEEF\r").await;
    let frames = receive(&mut rx, 1).await;
    assert_eq!(frames[0].frame.data(), &[0xBE, 0xEF]);
    assert_eq!(
        (
            Metrics::get(&metrics.outages),
            Metrics::get(&metrics.reconnects)
        ),
        (1, 1)
    );
    assert_eq!(logs.count("device not present at start"), 1);
    drop(rx);
    tokio::time::timeout(LIMIT, running)
        .await
        .expect("stops when the output closes")
        .expect("task")
        .expect("no error");

    // A path that exists but is no serial device is a configuration mistake: an error at once.
    let (tx, _rx) = weighed::channel(1, usize::MAX);
    let (_cancel_tx, cancel) = watch::channel(false);
    let source = SerialSource::new("usb", config(dir.path()), Arc::default());
    let error = tokio::time::timeout(LIMIT, source.run(tx, None, cancel))
        .await
        .expect("fails in time")
        .expect_err("a directory is no device");
    assert!(error.to_string().contains("opening"), "{error}");
}

#[tokio::test]
async fn cancel_stops_the_reconnect_backoff() {
    let dir = tempfile::tempdir().expect("temp dir");
    let link = dir.path().join("adapter");
    let (mut adapter, slave) = FakeAdapter::new();
    point(&link, &slave);
    let logs = Logs::default();
    let (tx, mut rx) = weighed::channel(1, usize::MAX);
    let (cancel_tx, cancel) = watch::channel(false);
    let mut config = config(&link);
    // Far longer than the test: only cancellation can end the wait.
    config.reconnect_initial = Duration::from_secs(600);
    config.reconnect_max = Duration::from_secs(600);
    let metrics = Arc::new(SourceMetrics::new("usb"));
    let source = SerialSource::new("usb", config, metrics.clone());
    let task = tokio::spawn(
        source
            .run(tx, None, cancel)
            .with_subscriber(logs.subscriber()),
    );
    tokio::time::timeout(LIMIT, adapter.serve_init(ok))
        .await
        .expect("init in time");
    // Unplug only once the session runs (an unplug during set-up is a start-up failure).
    adapter.write_all(b"t1230\r").await;
    receive(&mut rx, 1).await;
    drop(adapter);
    tokio::time::timeout(LIMIT, logs.logged("device lost"))
        .await
        .expect("unplug noticed");
    cancel_tx.send(true).expect("source listening");
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("stops promptly during backoff")
        .expect("task")
        .expect("clean stop");
    assert_eq!(Metrics::get(&metrics.outages), 1);
    assert_eq!(Metrics::get(&metrics.reconnects), 0);
}

#[tokio::test]
async fn vanished_device_path_is_an_outage_even_if_reads_do_not_fail() {
    let dir = tempfile::tempdir().expect("temp dir");
    let link = dir.path().join("adapter");
    let (mut adapter, slave) = FakeAdapter::new();
    point(&link, &slave);
    let logs = Logs::default();
    let metrics = Arc::new(SourceMetrics::new("usb"));
    let (tx, mut rx) = weighed::channel(1, usize::MAX);
    let (cancel_tx, cancel) = watch::channel(false);
    let source = SerialSource::new("usb", config(&link), metrics.clone());
    let task = tokio::spawn(
        source
            .run(tx, None, cancel)
            .with_subscriber(logs.subscriber()),
    );
    tokio::time::timeout(LIMIT, adapter.serve_init(ok))
        .await
        .expect("init in time");
    adapter.write_all(b"t1230\r").await;
    receive(&mut rx, 1).await;

    // The pty stays up (reads never fail); only the path goes, then comes back.
    std::fs::remove_file(&link).expect("remove symlink");
    tokio::time::timeout(LIMIT, logs.logged("device path vanished"))
        .await
        .expect("vanishing noticed by the path check");
    point(&link, &slave);
    let seen = tokio::time::timeout(LIMIT, adapter.serve_init(ok))
        .await
        .expect("re-init in time");
    assert_eq!(seen, b"C\rS6\rZ1\rL\r");
    adapter.write_all(b"t4560\r").await;
    assert_eq!(receive(&mut rx, 1).await[0].frame.id.id(), 0x456);
    assert_eq!(Metrics::get(&metrics.outages), 1);
    assert_eq!(Metrics::get(&metrics.reconnects), 1);

    cancel_tx.send(true).expect("source listening");
    tokio::time::timeout(LIMIT, task)
        .await
        .expect("stops when cancelled")
        .expect("task")
        .expect("clean stop");
}
