//! TunerStudio polling source: a Speeduino, rusEFI or MegaSquirt ECU on a serial device or a
//! TCP serial bridge, which streams nothing and answers realtime-data requests described by
//! its INI (`docs/polled-ecus.md`).
//!
//! Per connection: open, wait `delayAfterPortOpen`, drop whatever the ECU sent on reset, ask
//! for the signature and compare it with the INI's (a mismatch stops the source with both
//! named), then request the output-channel block at the configured rate: in pieces of
//! `blockingFactor` bytes, each in an msEnvelope frame with CRC-32, or with the bare command
//! (legacy `A`) when the INI has no envelope. A whole block is stamped at the midpoint of its
//! first request and its last reply and handed on as one native frame of the INI's message,
//! through the same fixed-length receiver a replay of its recording uses.
//!
//! Faults: a timeout, a bad CRC and a retryable status (timeout, CRC error, busy) are counted
//! and the piece asked for again, up to [`ATTEMPTS`] times; then the block is dropped (nothing
//! is published for it). After a timeout the line is drained until quiet, so a late reply is not
//! read as the answer to the next request. [`WEDGED_AFTER`] dropped blocks in a row, a read
//! error or end of file mean the ECU is wedged or gone: the link is closed and reopened with
//! exponential backoff, as the serial source does after an unplug.
//!
//! Edge policy: like the serial source, this source **blocks** on a full decode channel and
//! on the capture tap.

use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use decoders::frame::{Endian, Framing};
use decoders::ini::{Command, EnvelopeDecoder, IniFile, Reply, Status, chunks, encode_envelope};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, info, warn};

use super::link::{Link, Port};
use super::receiver::ByteStreamReceiver;
use super::{CaptureTap, NativeInput, RawCapture, SourceError};
use crate::config::PollConfig;
use crate::pipeline::edge::SourceBatch;
use crate::pipeline::weighed;
use crate::telemetry::{Metrics, SourceMetrics};

/// Times one piece of a block is asked for before the block is dropped.
pub const ATTEMPTS: u32 = 3;

/// Dropped blocks in a row after which the ECU is taken as wedged and the link reopened.
pub const WEDGED_AFTER: u32 = 3;

/// Silence that ends a drain: the rest of a late or corrupted reply has passed by then.
const DRAIN_QUIET: Duration = Duration::from_millis(20);

/// Reply timeout when neither the source nor the INI (`blockReadTimeout`) gives one.
const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(1);

/// Periods a poll may fall behind its schedule and still make the missed requests up.
const MAX_BEHIND: u32 = 25;

/// Bytes asked for per read.
const READ_CAPACITY: usize = 4096;

/// The native input a polled ECU's blocks travel as: whole blocks of `block_size` bytes of
/// the INI message `message`. Live polling and replaying its recording both cut blocks with
/// it, so they decode alike.
pub fn polled_input(message: &str, block_size: usize) -> NativeInput {
    let size = block_size.max(1);
    NativeInput {
        definition: Arc::from(message),
        framing: Framing {
            fixed_length: Some(size),
            max_length: size,
            ..Framing::default()
        },
        by_sync: Vec::new(),
    }
}

/// What to send and expect, worked out once from the INI and the source's settings.
#[derive(Debug, Clone)]
pub struct PollPlan {
    /// The INI file's name, for messages.
    pub ini_name: String,
    /// The INI's `signature`; not checked when absent.
    pub signature: Option<String>,
    /// Commands and replies travel in msEnvelope frames.
    pub envelope: bool,
    /// The signature query as bytes.
    pub query: Vec<u8>,
    /// The realtime command.
    pub och: Command,
    /// `$tsCanId`.
    pub can_id: u8,
    /// Byte order of the command's offset and count.
    pub endian: Endian,
    /// Bytes in one block.
    pub block_size: usize,
    /// The (offset, length) requests that read one block.
    pub pieces: Vec<(u32, u32)>,
    /// How long one reply may take.
    pub reply_timeout: Duration,
    /// The wait after opening.
    pub open_delay: Duration,
    /// Time between block requests.
    pub period: Duration,
}

impl PollPlan {
    /// The plan for `ini` (named `ini_name`) polled as `poll` says.
    pub fn new(ini_name: &str, ini: &IniFile, poll: &PollConfig) -> Result<Self, String> {
        let bad = |what: &str, error: decoders::ini::CommandError| {
            format!("{ini_name}: {what} cannot be sent: {error}")
        };
        let och = ini.och_command().map_err(|e| bad("ochGetCommand", e))?;
        let endian = ini.output_channels.endian;
        let mut query = Vec::new();
        ini.query().map_err(|e| bad("queryCommand", e))?.build(
            poll.can_id,
            0,
            0,
            endian,
            &mut query,
        );
        let block_size = ini.output_channels.block_size;
        if block_size == 0 {
            return Err(format!("{ini_name}: ochBlockSize is missing or 0"));
        }
        let size = u32::try_from(block_size).map_err(|_| format!("{ini_name}: block too large"))?;
        // A command without offset and count (legacy `A`) reads the whole block at once.
        let pieces = if och.is_ranged() {
            chunks(size, ini.blocking_factor.unwrap_or(0)).collect()
        } else {
            vec![(0, size)]
        };
        let from_ini = |ms: Option<u32>| ms.map(|ms| Duration::from_millis(u64::from(ms)));
        Ok(Self {
            ini_name: ini_name.to_owned(),
            signature: ini.signature.clone(),
            envelope: ini.uses_envelope(),
            query,
            och,
            can_id: poll.can_id,
            endian,
            block_size,
            pieces,
            reply_timeout: poll
                .reply_timeout
                .or(from_ini(ini.block_read_timeout_ms))
                .unwrap_or(DEFAULT_REPLY_TIMEOUT),
            open_delay: poll
                .open_delay
                .or(from_ini(ini.delay_after_port_open_ms))
                .unwrap_or(Duration::ZERO),
            period: Duration::from_secs_f64(1.0 / poll.rate_hz),
        })
    }

    /// The largest payload a reply may carry: a status byte and the longest piece, or a
    /// signature.
    fn max_payload(&self) -> usize {
        let piece = self.pieces.iter().map(|p| p.1 as usize).max().unwrap_or(0);
        piece.max(256) + 1
    }
}

/// A polled TunerStudio ECU, read until cancelled.
#[derive(Debug)]
pub struct PolledSource {
    name: Arc<str>,
    link: Link,
    plan: PollPlan,
    input: NativeInput,
    metrics: Arc<SourceMetrics>,
}

impl PolledSource {
    /// A source polling over `link` as `plan` says, publishing blocks as `message`.
    pub fn new(
        name: &str,
        link: Link,
        plan: PollPlan,
        message: &str,
        metrics: Arc<SourceMetrics>,
    ) -> Self {
        let input = polled_input(message, plan.block_size);
        Self {
            name: name.into(),
            link,
            plan,
            input,
            metrics,
        }
    }

    /// Polls until `cancel` turns true or `output` closes; survives timeouts, CRC errors,
    /// a wedged ECU and unplugs. Errors: the first open failing for another reason than the
    /// device or bridge being absent, and a signature that does not match the INI.
    pub async fn run(
        self,
        output: weighed::Sender<SourceBatch>,
        tap: Option<CaptureTap>,
        mut cancel: watch::Receiver<bool>,
    ) -> Result<(), SourceError> {
        let (initial, max) = self.link.reconnect_delays();
        let link = self.link.describe();
        let mut state = PollState {
            receiver: ByteStreamReceiver::new(Some(&self.input)),
            batch: SourceBatch::default(),
            output,
            tap,
            lost: false,
            opened: false,
        };
        let mut delay = initial;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let opened = tokio::select! {
                biased;
                () = cancelled(&mut cancel) => return Ok(()),
                opened = self.link.open() => opened,
            };
            let end = match opened {
                Err(error) if !state.opened && !state.lost && !self.link.is_absent(&error) => {
                    return Err(SourceError::Io {
                        source_name: self.name.to_string(),
                        action: format!("opening {link}"),
                        error,
                    });
                }
                Err(error) => {
                    if !state.lost {
                        warn!(source = %self.name, %link, %error, "ECU not reachable; waiting for it");
                        Metrics::add(&self.metrics.outages, 1);
                        state.lost = true;
                    } else {
                        debug!(source = %self.name, attempts, ?delay, %error, "ECU not back yet");
                    }
                    None
                }
                Ok(port) => {
                    state.opened = true;
                    let session = self.session(port, &mut state, attempts);
                    Some(tokio::select! {
                        biased;
                        () = cancelled(&mut cancel) => return Ok(()),
                        end = session => end,
                    })
                }
            };
            match end {
                Some(SessionEnd::Stop) => return Ok(()),
                Some(SessionEnd::Fatal(message)) => {
                    return Err(SourceError::Setup {
                        source_name: self.name.to_string(),
                        message: format!("{link}: {message}"),
                    });
                }
                Some(SessionEnd::Lost { reason, polled }) => {
                    if polled {
                        delay = initial;
                        attempts = 0;
                    }
                    if !state.lost {
                        warn!(source = %self.name, %link, %reason, "ECU lost; reopening");
                        Metrics::add(&self.metrics.outages, 1);
                        state.lost = true;
                    } else {
                        debug!(source = %self.name, %link, %reason, "ECU not back yet");
                    }
                }
                None => {}
            }
            tokio::select! {
                biased;
                () = cancelled(&mut cancel) => return Ok(()),
                () = state.output.closed() => return Ok(()),
                () = tokio::time::sleep(delay) => {}
            }
            delay = delay.saturating_mul(2).min(max);
        }
    }

    /// One connection: handshake, then blocks until the link fails, the ECU wedges or the
    /// output closes.
    async fn session(&self, port: Port, state: &mut PollState, attempts: u32) -> SessionEnd {
        let plan = &self.plan;
        let mut conn = Conn {
            port,
            decoder: EnvelopeDecoder::new(plan.max_payload()),
            buf: Vec::with_capacity(READ_CAPACITY),
        };
        tokio::time::sleep(plan.open_delay).await;
        // Some boards send a byte (0xF0) when the open resets them: never a reply.
        if let Err(error) = conn.drain(plan.reply_timeout).await {
            return SessionEnd::lost(error);
        }
        match self.handshake(&mut conn).await {
            Ok(()) => {}
            Err(Handshake::Mismatch(message)) => return SessionEnd::Fatal(message),
            Err(Handshake::Failed(reason)) => {
                return SessionEnd::Lost {
                    reason,
                    polled: false,
                };
            }
        }
        if state.lost {
            state.lost = false;
            Metrics::add(&self.metrics.reconnects, 1);
            info!(source = %self.name, link = %self.link.describe(), attempts, "ECU back");
            state.receiver.reset();
            if state.mark_reopen(&self.name).await.is_err() {
                return SessionEnd::Stop;
            }
        } else {
            info!(source = %self.name, link = %self.link.describe(),
                rate_hz = 1.0 / plan.period.as_secs_f64(), pieces = plan.pieces.len(),
                "polling TunerStudio ECU");
        }
        self.poll(&mut conn, state).await
    }

    /// Asks for the signature and compares it with the INI's.
    async fn handshake(&self, conn: &mut Conn) -> Result<(), Handshake> {
        let plan = &self.plan;
        let answer = if plan.envelope {
            Metrics::add(&self.metrics.poll_requests, 1);
            match conn.exchange(plan, &plan.query).await {
                Ok(Exchange::Reply(Status::Ok, data)) => data,
                Ok(Exchange::Reply(status, _)) => {
                    return Err(Handshake::Failed(format!(
                        "the signature query got status {:#04X}",
                        status.to_byte()
                    )));
                }
                Ok(Exchange::BadFrame) => {
                    return Err(Handshake::Failed("bad CRC on the signature".into()));
                }
                Ok(Exchange::Timeout) => {
                    return Err(Handshake::Failed("no answer to the signature query".into()));
                }
                Err(error) => return Err(Handshake::Failed(error.to_string())),
            }
        } else {
            let expected = plan.signature.as_ref().map_or(1, String::len);
            conn.bare_text(plan, &plan.query, expected)
                .await
                .map_err(|error| Handshake::Failed(error.to_string()))?
        };
        let found = trim_signature(&answer);
        match &plan.signature {
            Some(wanted) if trim_signature(wanted.as_bytes()) != found => {
                Err(Handshake::Mismatch(format!(
                    "the ECU's signature {found:?} does not match {wanted:?} of {}; use the INI that came with this firmware",
                    plan.ini_name
                )))
            }
            _ => Ok(()),
        }
    }

    /// Requests blocks at the plan's rate until something ends the session.
    async fn poll(&self, conn: &mut Conn, state: &mut PollState) -> SessionEnd {
        let plan = &self.plan;
        let mut block = vec![0u8; plan.block_size];
        let mut ticker = tokio::time::interval(plan.period);
        // Requests missed while a reply was slow are made up at once, so a slow moment costs
        // no block; after a longer stall (more than MAX_BEHIND periods) the schedule starts
        // again instead of flooding the ECU.
        ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let mut failed_in_row = 0u32;
        let mut window = RateWindow::new(Instant::now());
        let mut polled = false;
        loop {
            let due = ticker.tick().await;
            if due.elapsed() > plan.period * MAX_BEHIND {
                ticker.reset();
            }
            let started = now_ns();
            let mut whole = true;
            for &(offset, length) in &plan.pieces {
                let range = offset as usize..(offset + length) as usize;
                match self
                    .read_piece(conn, offset, length, &mut block[range])
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => {
                        whole = false;
                        break;
                    }
                    Err(error) => {
                        return SessionEnd::Lost {
                            reason: error.to_string(),
                            polled,
                        };
                    }
                }
            }
            if whole {
                let finished = now_ns();
                let time_ns = started + finished.saturating_sub(started) / 2;
                polled = true;
                failed_in_row = 0;
                if state
                    .deliver(&self.name, &self.metrics, time_ns, &block)
                    .await
                    .is_err()
                {
                    return SessionEnd::Stop;
                }
                window.count(&self.metrics, Instant::now());
            } else {
                Metrics::add(&self.metrics.poll_failed_blocks, 1);
                failed_in_row += 1;
                if failed_in_row >= WEDGED_AFTER {
                    return SessionEnd::Lost {
                        reason: format!("{failed_in_row} blocks in a row failed: ECU wedged"),
                        polled,
                    };
                }
            }
        }
    }

    /// Reads one piece into `into`: `Ok(true)` when it arrived, `Ok(false)` when every
    /// attempt failed (all counted), `Err` when the link failed.
    async fn read_piece(
        &self,
        conn: &mut Conn,
        offset: u32,
        length: u32,
        into: &mut [u8],
    ) -> io::Result<bool> {
        let plan = &self.plan;
        let metrics = &self.metrics;
        let mut request = Vec::with_capacity(16);
        plan.och
            .build(plan.can_id, offset, length, plan.endian, &mut request);
        let mut timed_out = false;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                Metrics::add(&metrics.poll_retries, 1);
            }
            Metrics::add(&metrics.poll_requests, 1);
            let exchange = if plan.envelope {
                conn.exchange(plan, &request).await?
            } else {
                conn.bare_block(plan, &request, into.len()).await?
            };
            match exchange {
                Exchange::Reply(Status::Ok, data) if data.len() == into.len() => {
                    Metrics::add(&metrics.poll_replies, 1);
                    into.copy_from_slice(&data);
                    if timed_out {
                        // A slow ECU may still answer the request that timed out: let that
                        // answer pass, or it would be read as the next piece's.
                        conn.drain(plan.reply_timeout).await?;
                    }
                    return Ok(true);
                }
                Exchange::Reply(Status::Ok, _) => {
                    Metrics::add(&metrics.poll_replies, 1);
                    metrics.count_decode_error("poll_reply_length");
                }
                Exchange::Reply(status, _) => {
                    Metrics::add(&metrics.poll_replies, 1);
                    count_status(metrics, status);
                    if !status.is_retryable() {
                        debug!(source = %self.name, status = status.to_byte(), offset, length,
                            "ECU refused the request");
                        return Ok(false);
                    }
                }
                Exchange::BadFrame => {
                    Metrics::add(&metrics.poll_crc_failures, 1);
                    conn.drain(plan.reply_timeout).await?;
                }
                Exchange::Timeout => {
                    Metrics::add(&metrics.poll_timeouts, 1);
                    timed_out = true;
                    conn.drain(plan.reply_timeout).await?;
                }
            }
        }
        Ok(false)
    }
}

/// State that outlives one connection.
#[derive(Debug)]
struct PollState {
    receiver: ByteStreamReceiver,
    batch: SourceBatch,
    output: weighed::Sender<SourceBatch>,
    tap: Option<CaptureTap>,
    /// The ECU was lost (or never reached) and has not answered since.
    lost: bool,
    /// The link opened at least once.
    opened: bool,
}

impl PollState {
    /// Records a whole block, cuts it into its native frame and sends it on. `Err`: stop.
    async fn deliver(
        &mut self,
        name: &Arc<str>,
        metrics: &SourceMetrics,
        time_ns: u64,
        block: &[u8],
    ) -> Result<(), ()> {
        Metrics::add(&metrics.reads, 1);
        Metrics::add(&metrics.bytes, block.len() as u64);
        if let Some(tap) = &self.tap {
            let capture = RawCapture {
                source: name.clone(),
                time_ns,
                bytes: Bytes::copy_from_slice(block),
                addresses: None,
            };
            if tap.send(capture).await.is_err() {
                warn!(source = %name, "capture tap closed; no longer recording this source");
                self.tap = None;
            }
        }
        self.receiver
            .handle_bytes(time_ns, block, metrics, &mut self.batch);
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        self.output.send(batch).await.map_err(|_| ())
    }

    /// Tells the recorder the link was reopened (an empty record), as the serial source does.
    async fn mark_reopen(&mut self, name: &Arc<str>) -> Result<(), ()> {
        let Some(tap) = &self.tap else {
            return Ok(());
        };
        let marker = RawCapture {
            source: name.clone(),
            time_ns: now_ns(),
            bytes: Bytes::new(),
            addresses: None,
        };
        if tap.send(marker).await.is_err() {
            self.tap = None;
        }
        if self.output.is_closed() {
            return Err(());
        }
        Ok(())
    }
}

/// Blocks per second over about one second, into the `poll_rate_millihertz` gauge.
#[derive(Debug)]
struct RateWindow {
    start: Instant,
    blocks: u64,
}

impl RateWindow {
    fn new(start: Instant) -> Self {
        Self { start, blocks: 0 }
    }

    fn count(&mut self, metrics: &SourceMetrics, now: Instant) {
        self.blocks += 1;
        let elapsed = now.duration_since(self.start);
        if elapsed >= Duration::from_secs(1) {
            let millihertz = self.blocks as f64 * 1000.0 / elapsed.as_secs_f64();
            Metrics::set(&metrics.poll_rate_millihertz, millihertz.round() as u64);
            *self = Self::new(now);
        }
    }
}

/// What one request got back.
#[derive(Debug)]
enum Exchange {
    /// A whole reply: its status and data (enveloped), or the bytes asked for (bare).
    Reply(Status, Vec<u8>),
    /// An envelope with a bad CRC or an impossible length.
    BadFrame,
    /// Nothing whole within the reply timeout.
    Timeout,
}

/// Why the handshake failed.
#[derive(Debug)]
enum Handshake {
    /// The signature differs from the INI's: fatal.
    Mismatch(String),
    /// No usable answer: retry later.
    Failed(String),
}

/// Why a session ended.
#[derive(Debug)]
enum SessionEnd {
    /// Cancelled or the output closed.
    Stop,
    /// Cannot go on with this ECU at all.
    Fatal(String),
    /// The link failed or the ECU wedged; `polled` when blocks arrived before.
    Lost { reason: String, polled: bool },
}

impl SessionEnd {
    fn lost(error: io::Error) -> Self {
        Self::Lost {
            reason: error.to_string(),
            polled: false,
        }
    }
}

/// An open link with its receive state.
struct Conn {
    port: Port,
    decoder: EnvelopeDecoder,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("port", &self.port).finish()
    }
}

impl Conn {
    /// Sends `payload` in an envelope and waits for the enveloped reply.
    async fn exchange(&mut self, plan: &PollPlan, payload: &[u8]) -> io::Result<Exchange> {
        let mut frame = Vec::with_capacity(payload.len() + 6);
        encode_envelope(payload, &mut frame)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        // One write per request: a half-sent length field can hang some firmware.
        self.port.write_all(&frame).await?;
        self.port.flush().await?;
        let deadline = Instant::now() + plan.reply_timeout;
        loop {
            match self.decoder.poll_payload() {
                Ok(Some(payload)) => {
                    let reply = Reply::parse(payload).map(|r| (r.status, r.data.to_vec()));
                    return Ok(match reply {
                        Ok((status, data)) => Exchange::Reply(status, data),
                        Err(_) => Exchange::BadFrame,
                    });
                }
                Ok(None) => {}
                Err(_) => return Ok(Exchange::BadFrame),
            }
            if !self.read_until(deadline).await? {
                return Ok(Exchange::Timeout);
            }
        }
    }

    /// Sends a bare request and reads exactly `length` bytes back.
    async fn bare_block(
        &mut self,
        plan: &PollPlan,
        request: &[u8],
        length: usize,
    ) -> io::Result<Exchange> {
        self.port.write_all(request).await?;
        self.port.flush().await?;
        let deadline = Instant::now() + plan.reply_timeout;
        let mut got = Vec::with_capacity(length);
        loop {
            let take = self.buf.len().min(length - got.len());
            got.extend(self.buf.drain(..take));
            if got.len() == length {
                // Anything beyond the block is not part of an answer.
                self.buf.clear();
                return Ok(Exchange::Reply(Status::Ok, got));
            }
            if !self.read_raw_until(deadline).await? {
                return Ok(Exchange::Timeout);
            }
        }
    }

    /// Sends a bare query and reads its text: `expected` bytes and a quiet gap (a trailing
    /// NUL may follow), or whatever came before the reply timeout.
    async fn bare_text(
        &mut self,
        plan: &PollPlan,
        request: &[u8],
        expected: usize,
    ) -> io::Result<Vec<u8>> {
        self.port.write_all(request).await?;
        self.port.flush().await?;
        let deadline = Instant::now() + plan.reply_timeout;
        while self.buf.len() < expected && self.read_raw_until(deadline).await? {}
        let quiet = (Instant::now() + DRAIN_QUIET).min(deadline);
        while self.read_raw_until(quiet).await? {}
        if self.buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no answer to the signature query",
            ));
        }
        Ok(std::mem::take(&mut self.buf))
    }

    /// Reads once into the envelope decoder; `false` when `deadline` passed first.
    async fn read_until(&mut self, deadline: Instant) -> io::Result<bool> {
        let mut chunk = [0u8; READ_CAPACITY];
        let read = tokio::time::timeout_at(deadline, self.port.read(&mut chunk)).await;
        match read {
            Err(_) => Ok(false),
            Ok(Ok(0)) => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "end of file")),
            Ok(Ok(n)) => {
                self.decoder.handle_bytes(&chunk[..n]);
                Ok(true)
            }
            Ok(Err(error)) => Err(error),
        }
    }

    /// Reads once into the bare buffer; `false` when `deadline` passed first.
    async fn read_raw_until(&mut self, deadline: Instant) -> io::Result<bool> {
        let mut chunk = [0u8; READ_CAPACITY];
        let read = tokio::time::timeout_at(deadline, self.port.read(&mut chunk)).await;
        match read {
            Err(_) => Ok(false),
            Ok(Ok(0)) => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "end of file")),
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
            Ok(Err(error)) => Err(error),
        }
    }

    /// Discards input until [`DRAIN_QUIET`] passes without any (at most `limit`), and forgets
    /// everything buffered.
    async fn drain(&mut self, limit: Duration) -> io::Result<()> {
        let end = Instant::now() + limit;
        let mut chunk = [0u8; READ_CAPACITY];
        loop {
            let quiet = (Instant::now() + DRAIN_QUIET).min(end);
            match tokio::time::timeout_at(quiet, self.port.read(&mut chunk)).await {
                Err(_) => break,
                Ok(Ok(0)) => {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "end of file"));
                }
                Ok(Ok(_)) if Instant::now() < end => {}
                Ok(Ok(_)) => break,
                Ok(Err(error)) => return Err(error),
            }
        }
        self.decoder.clear();
        self.buf.clear();
        Ok(())
    }
}

/// Counts a reply's status other than OK.
fn count_status(metrics: &SourceMetrics, status: Status) {
    let counter = match status {
        Status::Ok => return,
        Status::Timeout => &metrics.poll_status_timeout,
        Status::CrcError => &metrics.poll_status_crc_error,
        Status::UnknownCommand => &metrics.poll_status_unknown_command,
        Status::RangeError => &metrics.poll_status_range_error,
        Status::Busy => &metrics.poll_status_busy,
        Status::BurnOk | Status::Other(_) => &metrics.poll_status_other,
    };
    Metrics::add(counter, 1);
}

/// A signature without the trailing NULs and white space some firmware sends.
fn trim_signature(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .trim_end_matches(['\0', ' ', '\r', '\n'])
        .to_owned()
}

/// Resolves when `cancel` turns true or its sender is dropped.
async fn cancelled(cancel: &mut watch::Receiver<bool>) {
    let _ = cancel.wait_for(|cancelled| *cancelled).await;
}

/// Wall-clock time in ns since the UNIX epoch (0 if the clock is before it).
fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_compare_without_trailing_nul() {
        assert_eq!(trim_signature(b"rusEFI 2026\0"), "rusEFI 2026");
        assert_eq!(
            trim_signature(b"speeduino 202504-dev"),
            "speeduino 202504-dev"
        );
    }

    #[test]
    fn plans_follow_the_ini_and_the_source() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/ini/speeduino.ini"
        ))
        .expect("fixture");
        let (ini, _) = IniFile::parse("speeduino.ini", &text, &[]).expect("loads");
        let poll = PollConfig {
            ini: None,
            rate_hz: 50.0,
            can_id: 0,
            reply_timeout: None,
            open_delay: Some(Duration::ZERO),
        };
        let plan = PollPlan::new("speeduino.ini", &ini, &poll).expect("plan");
        assert!(plan.envelope);
        assert_eq!(plan.query, b"Q");
        assert_eq!(plan.pieces, [(0, 139)]);
        assert_eq!(plan.reply_timeout, Duration::from_millis(2000));
        assert_eq!(plan.open_delay, Duration::ZERO);
        assert_eq!(plan.period, Duration::from_millis(20));
        let input = polled_input("OutputChannels", plan.block_size);
        assert_eq!(input.framing.fixed_length, Some(139));
    }
}
