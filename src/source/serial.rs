//! Serial source: an SLCAN adapter (CANable, USBtin, CANUSB …) on a serial device, or an ECU
//! streaming native frames of a frame definition; the same over a TCP serial bridge
//! (`kind = "tcp"`, see [`super::link`]), where a refused or dropped connection is an outage.
//!
//! Owns the device and its life cycle: opens it (symlinks such as `/dev/serial/by-id/...` are
//! followed), initialises an SLCAN adapter (`C`, `S<n>`, `Z1`/`Z0`, `O`/`L`), reads, and survives
//! unplugs. Never parses frames itself: every read goes, with its receive time, to a
//! [`ByteStreamReceiver`], which frames SLCAN lines (unwrapping timestamps) or cuts native
//! frames by their definition's sync, length and check, and counts garbage. During SLCAN
//! initialisation it only tells the adapter's replies (a bare CR, or BEL) from other lines.
//!
//! Edge policy: this source **blocks** on a full decode channel and on the capture tap
//! (backpressure, never a drop here); while it waits, the tty driver and the adapter buffer.
//!
//! Life cycle: a device that is not there yet at start (`ENOENT`: a USB adapter still
//! enumerating at boot, or unplugged) is waited for as if it had just been unplugged — logged
//! once, counted as an outage — so the daemon never opens a session it must then abandon. Any
//! other failure of the first open (permissions, not a tty) or of the adapter's initialisation
//! (a refused bitrate) is a start-up error. After that, a read error, end of file or the device path
//! vanishing is an outage: logged once at warn, counted, then the device is reopened with
//! exponential backoff (attempts at debug), re-initialised, the receiver reset, and the return
//! logged once at info and counted. Only `cancel` or a closed output ends the source.

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use decoders::wire::slcan::{BEL, CR, SlcanBitrate, SlcanCommand};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::link::{Link, Port};
use super::receiver::ByteStreamReceiver;
use super::{CaptureTap, NativeInput, RawCapture, SourceError};
use crate::config::{SerialSourceConfig, SlcanSetup};
use crate::pipeline::edge::{FRAMES_PER_BATCH, SourceBatch};
use crate::pipeline::weighed;
use crate::telemetry::{Metrics, SourceMetrics};

/// How long the adapter has to answer each set-up command.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(1);

/// Bytes asked for per read: far more than a USB packet, so one read takes all that is queued.
const READ_CAPACITY: usize = 4096;

/// How often an idle session checks that the device path still exists (drivers that do not
/// fail reads on removal).
const PATH_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// One SLCAN adapter on a serial device, read until cancelled.
#[derive(Debug)]
pub struct SerialSource {
    /// The source's configured name, for logs, metrics and captures.
    name: Arc<str>,
    /// Device (or TCP bridge), line settings, adapter set-up and reconnect delays.
    link: Link,
    /// Reads, bytes, frames, garbage, outages and reconnects of this source.
    metrics: Arc<SourceMetrics>,
    /// Native frames of this definition instead of SLCAN.
    native: Option<NativeInput>,
}

/// Why the adapter could not be initialised.
#[derive(Debug, thiserror::Error)]
pub enum SlcanInitError {
    /// The bitrate has no `S<n>` preset.
    #[error("SLCAN has no preset for bitrate {0} (10k 20k 50k 100k 125k 250k 500k 800k 1M)")]
    UnsupportedBitrate(u32),
    /// The adapter answered BEL.
    #[error("adapter refused {}", Described(*.0))]
    Refused(SlcanCommand),
    /// No reply in time.
    #[error("adapter did not answer {} within {timeout:?}", Described(*.command))]
    NoReply {
        /// The command left unanswered.
        command: SlcanCommand,
        /// How long we waited.
        timeout: Duration,
    },
    /// The device reached end of file while waiting for a reply.
    #[error("device closed while waiting for the reply to {}", Described(*.0))]
    Closed(SlcanCommand),
    /// Writing the command or reading the reply failed.
    #[error("sending {}: {error}", Described(*.command))]
    Io {
        /// The command being sent.
        command: SlcanCommand,
        /// The OS error.
        error: io::Error,
    },
}

/// Initialises an SLCAN adapter: `C` (a BEL is tolerated: a closed adapter refuses to close),
/// `S<n>`, `Z1`/`Z0`, then `L` or `O`, each of which must be answered by CR within
/// `reply_timeout`.
///
/// Lines that are not replies (frames from a busy bus, garbage) are skipped. Returns the bytes
/// that followed the last reply — the first received frames — for the frame reader.
pub async fn initialise<S>(
    port: &mut S,
    setup: &SlcanSetup,
    reply_timeout: Duration,
) -> Result<Bytes, SlcanInitError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let bitrate = SlcanBitrate::from_bps(setup.bitrate)
        .ok_or(SlcanInitError::UnsupportedBitrate(setup.bitrate))?;
    let open = if setup.listen_only {
        SlcanCommand::ListenOnly
    } else {
        SlcanCommand::Open
    };
    let commands = [
        SlcanCommand::Close,
        SlcanCommand::SetBitrate(bitrate),
        SlcanCommand::Timestamps(setup.timestamps),
        open,
    ];
    let mut scanner = ReplyScanner::default();
    let mut buf = BytesMut::with_capacity(READ_CAPACITY);
    for command in commands {
        let reply = tokio::time::timeout(
            reply_timeout,
            send_command(port, command, &mut scanner, &mut buf),
        )
        .await
        .map_err(|_| SlcanInitError::NoReply {
            command,
            timeout: reply_timeout,
        })??;
        if reply == Reply::Error && command != SlcanCommand::Close {
            return Err(SlcanInitError::Refused(command));
        }
        if command != open {
            // Whatever followed this reply was sent before the next command: it cannot be
            // that command's reply, so it only moves the scanner's line state on.
            scanner.skip(&buf);
            buf.clear();
        }
    }
    Ok(buf.freeze())
}

impl SerialSource {
    /// A source reading the device in `config`, counting into `metrics`.
    pub fn new(name: &str, config: SerialSourceConfig, metrics: Arc<SourceMetrics>) -> Self {
        Self::over(name, Link::Device(config), metrics)
    }

    /// A source reading `link` (a serial device or a TCP bridge), counting into `metrics`.
    pub fn over(name: &str, link: Link, metrics: Arc<SourceMetrics>) -> Self {
        Self {
            name: name.into(),
            link,
            metrics,
            native: None,
        }
    }

    /// Reads the device as native frames of `input`'s definition: no adapter set-up.
    #[must_use]
    pub fn carrying(mut self, input: NativeInput) -> Self {
        self.native = Some(input);
        self
    }

    /// Opens the device, initialises the adapter, reads frames until cancelled; survives
    /// unplugs.
    ///
    /// Returns an error only if the first open fails for another reason than the device being
    /// absent, or the first initialisation fails. Returns `Ok` when
    /// `cancel` turns true (or its sender is dropped) or `output` closes.
    pub async fn run(
        self,
        output: weighed::Sender<SourceBatch>,
        tap: Option<CaptureTap>,
        mut cancel: watch::Receiver<bool>,
    ) -> Result<(), SourceError> {
        let device = self.link.describe();
        let connected = tokio::select! {
            biased;
            () = cancelled(&mut cancel) => return Ok(()),
            connected = self.connect() => connected,
        };
        let (mut port, mut first) = match connected {
            Ok(connected) => connected,
            Err(ConnectError::Open(error)) if self.link.is_absent(&error) => {
                warn!(source = %self.name, %device, %error,
                    "device not present at start; waiting for it");
                Metrics::add(&self.metrics.outages, 1);
                let Some((port, first, attempts)) = self.reconnect(&output, &mut cancel).await
                else {
                    return Ok(());
                };
                Metrics::add(&self.metrics.reconnects, 1);
                info!(source = %self.name, %device, attempts, "device present");
                (port, first)
            }
            Err(error) => return Err(self.source_error(error)),
        };
        info!(source = %self.name, %device, "serial device open");
        let mut reader = Reader {
            name: self.name.clone(),
            metrics: self.metrics.clone(),
            receiver: ByteStreamReceiver::new(self.native.as_ref()),
            buf: BytesMut::with_capacity(READ_CAPACITY),
            frames: SourceBatch::with_capacity(FRAMES_PER_BATCH),
            output,
            tap,
        };
        loop {
            let session = reader.read_session(&mut port, first, self.link.device(), &mut cancel);
            let loss = match session.await {
                SessionEnd::Stop => return Ok(()),
                SessionEnd::Lost(loss) => loss,
            };
            drop(port);
            warn!(source = %self.name, %device, reason = %loss,
                "device lost; reconnecting");
            Metrics::add(&self.metrics.outages, 1);
            let Some((new_port, new_first, attempts)) =
                self.reconnect(&reader.output, &mut cancel).await
            else {
                return Ok(());
            };
            (port, first) = (new_port, new_first);
            reader.receiver.reset();
            if reader.mark_reopen(&mut cancel).await.is_err() {
                return Ok(());
            }
            Metrics::add(&self.metrics.reconnects, 1);
            info!(source = %self.name, %device, attempts, "device back");
        }
    }

    /// Opens the device and initialises the adapter (SLCAN only: native ECUs just stream).
    async fn connect(&self) -> Result<(Port, Bytes), ConnectError> {
        let mut port = self.link.open().await.map_err(ConnectError::Open)?;
        let Some(slcan) = self.link.slcan() else {
            return Ok((port, Bytes::new()));
        };
        let first = initialise(&mut port, slcan, REPLY_TIMEOUT)
            .await
            .map_err(ConnectError::Init)?;
        Ok((port, first))
    }

    /// Retries [`Self::connect`] with exponential backoff; `None` when cancelled or the
    /// output closed first. Also returns the number of attempts.
    async fn reconnect(
        &self,
        output: &weighed::Sender<SourceBatch>,
        cancel: &mut watch::Receiver<bool>,
    ) -> Option<(Port, Bytes, u32)> {
        let (mut delay, reconnect_max) = self.link.reconnect_delays();
        for attempt in 1u32.. {
            let connected = tokio::select! {
                biased;
                () = cancelled(cancel) => return None,
                () = output.closed() => return None,
                connected = async {
                    tokio::time::sleep(delay).await;
                    self.connect().await
                } => connected,
            };
            match connected {
                Ok((port, first)) => return Some((port, first, attempt)),
                Err(error) => debug!(source = %self.name, attempt, ?delay, %error,
                    "device not back yet"),
            }
            delay = delay.saturating_mul(2).min(reconnect_max);
        }
        None
    }

    fn source_error(&self, error: ConnectError) -> SourceError {
        let device = self.link.describe();
        match error {
            ConnectError::Open(error) => SourceError::Io {
                source_name: self.name.to_string(),
                action: format!("opening {device}"),
                error,
            },
            ConnectError::Init(error) => SourceError::Setup {
                source_name: self.name.to_string(),
                message: format!("{device}: {error}"),
            },
        }
    }
}

/// Why one connection attempt failed.
#[derive(Debug, thiserror::Error)]
enum ConnectError {
    #[error("opening: {0}")]
    Open(io::Error),
    #[error(transparent)]
    Init(SlcanInitError),
}

/// Why a session over an open port ended.
#[derive(Debug)]
enum SessionEnd {
    /// Cancelled, or the output closed: the source stops.
    Stop,
    /// The device went away: reconnect.
    Lost(Loss),
}

/// How the device went away.
#[derive(Debug)]
enum Loss {
    Eof,
    Read(io::Error),
    PathVanished,
}

impl fmt::Display for Loss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Eof => f.write_str("end of file"),
            Self::Read(error) => write!(f, "read failed: {error}"),
            Self::PathVanished => f.write_str("device path vanished"),
        }
    }
}

/// Reading state that outlives one connection.
#[derive(Debug)]
struct Reader {
    name: Arc<str>,
    metrics: Arc<SourceMetrics>,
    receiver: ByteStreamReceiver,
    /// The one read buffer; each read is split off and frozen, so the tap shares it uncopied.
    buf: BytesMut,
    /// Frames completed by the current read, sent on in batches.
    frames: SourceBatch,
    output: weighed::Sender<SourceBatch>,
    /// `None` when not recording, or once the recorder has gone.
    tap: Option<CaptureTap>,
}

impl Reader {
    /// Delivers `first` (bytes read during initialisation), then reads `port` until it fails,
    /// `device` (when given) vanishes, `cancel` turns true or the output closes.
    async fn read_session<S: AsyncRead + Unpin>(
        &mut self,
        port: &mut S,
        first: Bytes,
        device: Option<&Path>,
        cancel: &mut watch::Receiver<bool>,
    ) -> SessionEnd {
        if !first.is_empty() && self.deliver(first, cancel).await.is_err() {
            return SessionEnd::Stop;
        }
        let mut path_check = tokio::time::interval(PATH_CHECK_INTERVAL);
        path_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.buf.reserve(READ_CAPACITY);
            let read = tokio::select! {
                biased;
                () = cancelled(cancel) => return SessionEnd::Stop,
                () = self.output.closed() => return SessionEnd::Stop,
                read = port.read_buf(&mut self.buf) => read,
                _ = path_check.tick(), if device.is_some() => {
                    let exists = match device {
                        Some(path) => tokio::fs::try_exists(path).await.unwrap_or(true),
                        None => true,
                    };
                    if exists {
                        continue;
                    }
                    return SessionEnd::Lost(Loss::PathVanished);
                }
            };
            match read {
                Ok(0) => return SessionEnd::Lost(Loss::Eof),
                Ok(_) => {}
                Err(error) => return SessionEnd::Lost(Loss::Read(error)),
            }
            let chunk = self.buf.split().freeze();
            if self.deliver(chunk, cancel).await.is_err() {
                return SessionEnd::Stop;
            }
        }
    }

    /// Tells the recorder that the device was reopened here (a record with no bytes), so a
    /// replay resets its receiver at the same point the live source did. `Err` means stop.
    async fn mark_reopen(&mut self, cancel: &mut watch::Receiver<bool>) -> Result<(), ()> {
        let Some(tap) = &self.tap else {
            return Ok(());
        };
        let marker = RawCapture {
            source: self.name.clone(),
            time_ns: now_ns(),
            bytes: Bytes::new(),
            addresses: None,
        };
        let sent = tokio::select! {
            biased;
            () = cancelled(cancel) => return Err(()),
            sent = tap.send(marker) => sent,
        };
        if sent.is_err() {
            warn!(source = %self.name, "capture tap closed; no longer recording this source");
            self.tap = None;
        }
        Ok(())
    }

    /// Counts one read, hands it to the tap, and sends its frames. `Err` means stop.
    async fn deliver(
        &mut self,
        bytes: Bytes,
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<(), ()> {
        let time_ns = now_ns();
        Metrics::add(&self.metrics.reads, 1);
        Metrics::add(&self.metrics.bytes, bytes.len() as u64);
        if let Some(tap) = &self.tap {
            let capture = RawCapture {
                source: self.name.clone(),
                time_ns,
                bytes: bytes.clone(),
                addresses: None,
            };
            let sent = tokio::select! {
                biased;
                () = cancelled(cancel) => return Err(()),
                sent = tap.send(capture) => sent,
            };
            if sent.is_err() {
                warn!(source = %self.name, "capture tap closed; no longer recording this source");
                self.tap = None;
            }
        }
        self.receiver
            .handle_bytes(time_ns, &bytes, &self.metrics, &mut self.frames);
        // One read holds at most a few KiB, so its native frames go as one batch; CAN frames
        // are cut to the usual batch size.
        let native = std::mem::take(&mut self.frames.native);
        let mut batches: Vec<SourceBatch> = self
            .frames
            .can
            .chunks(FRAMES_PER_BATCH)
            .map(|chunk| SourceBatch {
                can: chunk.to_vec(),
                native: Vec::new(),
            })
            .collect();
        if !native.is_empty() {
            batches.push(SourceBatch {
                can: Vec::new(),
                native,
            });
        }
        self.frames.clear();
        for batch in batches {
            let sent = tokio::select! {
                biased;
                () = cancelled(cancel) => Err(()),
                sent = self.output.send(batch) => sent.map_err(|_| ()),
            };
            if sent.is_err() {
                return Err(());
            }
        }
        Ok(())
    }
}

/// An adapter reply during initialisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    /// A bare CR.
    Ok,
    /// BEL.
    Error,
}

/// Finds replies in the adapter's byte stream: a CR that ends an empty line is OK, a BEL is an
/// error; CRs ending other lines (frames, garbage) are not replies. Leading LFs are ignored,
/// as [`decoders::wire::slcan::SlcanFramer`] does, so CRLF adapters work.
#[derive(Debug, Default)]
struct ReplyScanner {
    /// Bytes of the current (non-reply) line seen so far.
    line_len: usize,
}

impl ReplyScanner {
    /// The first reply in `bytes`, and the offset just after it.
    fn handle_bytes(&mut self, bytes: &[u8]) -> Option<(Reply, usize)> {
        for (i, &byte) in bytes.iter().enumerate() {
            match byte {
                BEL => {
                    self.line_len = 0;
                    return Some((Reply::Error, i + 1));
                }
                CR if self.line_len == 0 => return Some((Reply::Ok, i + 1)),
                CR => self.line_len = 0,
                b'\n' if self.line_len == 0 => {}
                _ => self.line_len += 1,
            }
        }
        None
    }

    /// Moves over `bytes`, ignoring any replies in them.
    fn skip(&mut self, mut bytes: &[u8]) {
        while let Some((_, end)) = self.handle_bytes(bytes) {
            bytes = &bytes[end..];
        }
    }
}

/// Writes `command` and reads until its reply; `buf` keeps the bytes after the reply.
async fn send_command<S>(
    port: &mut S,
    command: SlcanCommand,
    scanner: &mut ReplyScanner,
    buf: &mut BytesMut,
) -> Result<Reply, SlcanInitError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let io = |error| SlcanInitError::Io { command, error };
    let mut line = Vec::with_capacity(4);
    command.encode(&mut line);
    port.write_all(&line).await.map_err(io)?;
    port.flush().await.map_err(io)?;
    loop {
        buf.clear();
        buf.reserve(READ_CAPACITY);
        if port.read_buf(buf).await.map_err(io)? == 0 {
            return Err(SlcanInitError::Closed(command));
        }
        if let Some((reply, end)) = scanner.handle_bytes(buf) {
            let _ = buf.split_to(end);
            return Ok(reply);
        }
    }
}

/// Resolves when `cancel` turns true or its sender is dropped (nobody can cancel any more).
async fn cancelled(cancel: &mut watch::Receiver<bool>) {
    let _ = cancel.wait_for(|cancelled| *cancelled).await;
}

/// Wall-clock receive time in ns since the UNIX epoch (0 if the clock is before it).
fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64)
}

/// A command as sent, without CR, with what it means: `S6 (bitrate 500000)`.
struct Described(SlcanCommand);

impl fmt::Display for Described {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = Vec::with_capacity(4);
        self.0.encode(&mut text);
        text.pop();
        f.write_str(&String::from_utf8_lossy(&text))?;
        match self.0 {
            SlcanCommand::Close => f.write_str(" (close)"),
            SlcanCommand::SetBitrate(rate) => write!(f, " (bitrate {})", rate.bps()),
            SlcanCommand::Timestamps(on) => {
                write!(f, " (timestamps {})", if on { "on" } else { "off" })
            }
            SlcanCommand::Open => f.write_str(" (open)"),
            SlcanCommand::ListenOnly => f.write_str(" (open listen-only)"),
            SlcanCommand::ReadStatus => f.write_str(" (status)"),
            SlcanCommand::Version => f.write_str(" (version)"),
            SlcanCommand::Serial => f.write_str(" (serial number)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};

    use super::*;

    const SETUP: SlcanSetup = SlcanSetup {
        bitrate: 500_000,
        listen_only: true,
        timestamps: true,
    };
    /// Bounds every await, so a failing test ends instead of hanging.
    const LIMIT: Duration = Duration::from_secs(5);

    /// Plays the adapter's side of initialisation: answers each CR-terminated command with
    /// `answer(command)` until `O` or `L`, and returns everything the host sent.
    async fn serve_init(
        io: &mut DuplexStream,
        mut answer: impl FnMut(&[u8]) -> Vec<u8>,
    ) -> Vec<u8> {
        let mut seen = Vec::new();
        let mut start = 0;
        let mut chunk = [0u8; 64];
        loop {
            let n = io.read(&mut chunk).await.expect("adapter read");
            assert!(n > 0, "host hung up during init: {seen:?}");
            seen.extend_from_slice(&chunk[..n]);
            while let Some(end) = seen[start..].iter().position(|&b| b == CR) {
                let command = seen[start..start + end].to_vec();
                start += end + 1;
                io.write_all(&answer(&command))
                    .await
                    .expect("adapter write");
                if command == b"L" || command == b"O" {
                    return seen;
                }
            }
        }
    }

    #[tokio::test]
    async fn initialise_sends_close_bitrate_timestamps_listen_only() {
        let (mut host, mut adapter) = duplex(1024);
        let fake = tokio::spawn(async move {
            // The first frames arrive in the same write as the last OK.
            serve_init(&mut adapter, |command| match command {
                b"L" => b"\rt1230\r".to_vec(),
                _ => b"\r".to_vec(),
            })
            .await
        });
        let first = tokio::time::timeout(LIMIT, initialise(&mut host, &SETUP, REPLY_TIMEOUT))
            .await
            .expect("in time")
            .expect("initialised");
        let seen = fake.await.expect("adapter");
        assert_eq!(seen, b"C\rS6\rZ1\rL\r");
        assert_eq!(&first[..], b"t1230\r");
    }

    #[tokio::test]
    async fn bel_to_close_is_tolerated_and_open_is_normal_without_timestamps() {
        let (mut host, mut adapter) = duplex(1024);
        let fake = tokio::spawn(async move {
            serve_init(&mut adapter, |command| match command {
                b"C" => vec![BEL],
                _ => b"\r".to_vec(),
            })
            .await
        });
        let setup = SlcanSetup {
            bitrate: 125_000,
            listen_only: false,
            timestamps: false,
        };
        let first = tokio::time::timeout(LIMIT, initialise(&mut host, &setup, REPLY_TIMEOUT))
            .await
            .expect("in time")
            .expect("initialised");
        assert_eq!(fake.await.expect("adapter"), b"C\rS4\rZ0\rO\r");
        assert!(first.is_empty());
    }

    #[tokio::test]
    async fn bel_to_bitrate_names_the_command() {
        let (mut host, mut adapter) = duplex(1024);
        tokio::spawn(async move {
            serve_init(&mut adapter, |command| match command {
                b"S6" => vec![BEL],
                _ => b"\r".to_vec(),
            })
            .await
        });
        let error = tokio::time::timeout(LIMIT, initialise(&mut host, &SETUP, REPLY_TIMEOUT))
            .await
            .expect("in time")
            .expect_err("refused");
        assert_eq!(error.to_string(), "adapter refused S6 (bitrate 500000)");
    }

    #[tokio::test(start_paused = true)]
    async fn silence_times_out_naming_the_command() {
        let (mut host, mut adapter) = duplex(1024);
        let _fake = tokio::spawn(async move {
            serve_init(&mut adapter, |command| match command {
                b"Z1" => Vec::new(),
                _ => b"\r".to_vec(),
            })
            .await
        });
        let error = initialise(&mut host, &SETUP, REPLY_TIMEOUT)
            .await
            .expect_err("no reply");
        assert_eq!(
            error.to_string(),
            "adapter did not answer Z1 (timestamps on) within 1s"
        );
    }

    #[tokio::test]
    async fn frames_interleaved_with_replies_do_not_count_as_replies() {
        let (mut host, mut adapter) = duplex(1024);
        let fake = tokio::spawn(async move {
            serve_init(&mut adapter, |command| match command {
                // A busy bus: a frame before the OK.
                b"C" => b"t1238001122\r\r".to_vec(),
                // Garbage, the OK, then a frame cut short by the end of the write.
                b"S6" => b"junk\r\rt12".to_vec(),
                // The frame's end (its CR is no reply), the OK, and a stale extra OK.
                b"Z1" => b"30\r\r\r".to_vec(),
                // CRLF adapter: a frame, the OK, then the first frames of the session.
                _ => b"\nt4561AA\r\r\nt1230\rt12".to_vec(),
            })
            .await
        });
        let first = tokio::time::timeout(LIMIT, initialise(&mut host, &SETUP, REPLY_TIMEOUT))
            .await
            .expect("in time")
            .expect("initialised");
        assert_eq!(fake.await.expect("adapter"), b"C\rS6\rZ1\rL\r");
        assert_eq!(&first[..], b"\nt1230\rt12");
    }

    fn test_reader(output: weighed::Sender<SourceBatch>, tap: Option<CaptureTap>) -> Reader {
        Reader {
            name: "usb".into(),
            metrics: Arc::new(SourceMetrics::new("usb")),
            receiver: ByteStreamReceiver::new(None),
            buf: BytesMut::with_capacity(READ_CAPACITY),
            frames: SourceBatch::default(),
            output,
            tap,
        }
    }

    #[tokio::test]
    async fn session_sends_all_frames_in_bounded_batches_then_reports_eof() {
        let (mut port, mut adapter) = duplex(1 << 16);
        let (tx, mut rx) = weighed::channel(4, usize::MAX);
        let (tap_tx, mut tap_rx) = tokio::sync::mpsc::channel(1024);
        let (_cancel_tx, mut cancel) = watch::channel(false);
        let mut reader = test_reader(tx, Some(tap_tx));
        let mut written = Vec::new();
        for i in 0..600u32 {
            written.extend_from_slice(format!("t{:03X}1{:02X}\r", i % 0x800, i % 256).as_bytes());
        }
        written.extend_from_slice(b"garbage\r");
        let feed = written.clone();
        tokio::spawn(async move {
            adapter.write_all(&feed).await.expect("write");
            // Dropping the adapter's end is end of file for the reader.
        });
        let session = tokio::spawn(async move {
            let end = reader
                .read_session(&mut port, Bytes::from_static(b"t7FF0\r"), None, &mut cancel)
                .await;
            (end, reader)
        });
        let mut frames = Vec::new();
        while frames.len() < 601 {
            let batch = tokio::time::timeout(LIMIT, rx.recv())
                .await
                .expect("in time")
                .expect("a batch");
            assert!(!batch.is_empty() && batch.len() <= FRAMES_PER_BATCH);
            frames.extend(batch.can);
        }
        let (end, reader) = tokio::time::timeout(LIMIT, session)
            .await
            .expect("in time")
            .expect("task");
        assert!(matches!(end, SessionEnd::Lost(Loss::Eof)), "{end:?}");
        assert_eq!(frames.len(), 601);
        assert_eq!(frames[0].frame.id.id(), 0x7FF);
        assert_eq!(frames[600].frame.id.id(), 599);
        assert_eq!(frames[600].frame.data(), &[(599 % 256) as u8]);
        let mut tapped = Vec::new();
        while let Ok(capture) = tap_rx.try_recv() {
            tapped.extend_from_slice(&capture.bytes);
        }
        assert_eq!(&tapped[6..], &written[..], "the tap sees every byte read");
        let metrics = &reader.metrics;
        assert_eq!(Metrics::get(&metrics.bytes), tapped.len() as u64);
        assert_eq!(Metrics::get(&metrics.frames), 601);
        assert_eq!(
            metrics.decode_errors().values().sum::<u64>(),
            1,
            "the garbage line"
        );
    }

    #[tokio::test]
    async fn session_stops_when_the_output_closes_even_if_the_line_is_idle() {
        let (mut port, _adapter) = duplex(64);
        let (tx, rx) = weighed::channel(1, usize::MAX);
        let (_cancel_tx, mut cancel) = watch::channel(false);
        let mut reader = test_reader(tx, None);
        drop(rx);
        let end = tokio::time::timeout(
            LIMIT,
            reader.read_session(&mut port, Bytes::new(), None, &mut cancel),
        )
        .await
        .expect("in time");
        assert!(matches!(end, SessionEnd::Stop), "{end:?}");
    }
}
