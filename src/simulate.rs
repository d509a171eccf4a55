//! A TunerStudio ECU simulator (`ecu-bridge simulate-ecu`): answers the signature query and
//! realtime requests of an INI on a pseudo-terminal or a TCP port, with channel values the
//! caller controls (set, or a ramp) and faults it injects (corrupted CRCs, busy replies,
//! stalls), so the polling source can be exercised without an ECU.
//!
//! [`Simulator::serve`] answers one connection over any reader and writer; the CLI and tests
//! share it, and steer it through a [`SimControl`]. Replies follow `docs/polled-ecus.md`:
//! msEnvelope frames when the INI has `messageEnvelopeFormat`, bare bytes otherwise.

use std::collections::VecDeque;
use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use decoders::DecodeError;
use decoders::frame::Endian;
use decoders::ini::{Command, EnvelopeDecoder, IniFile, OutputChannels, Status, encode_envelope};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::net::unix::pipe;

/// Bytes asked for per read.
const READ_CAPACITY: usize = 4096;

/// A fault injected into the answer to one realtime request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The reply's CRC is wrong.
    Crc,
    /// The reply is status 0x85 (busy) with no data.
    Busy,
    /// No reply at all; for this long nothing is read, and what arrived meanwhile is lost (as
    /// an ECU whose receive buffer overflows while it is stuck).
    Stall(Duration),
}

/// Faults injected periodically: every n-th realtime request (0 = never).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeriodicFaults {
    /// Every n-th reply gets a wrong CRC.
    pub crc_every: u64,
    /// Every n-th request is answered busy.
    pub busy_every: u64,
    /// Every n-th request is not answered, and the ECU stalls for `stall`.
    pub stall_every: u64,
    /// How long a stall lasts.
    pub stall: Duration,
}

/// What the simulator has done, for tests and the CLI's summary.
#[derive(Debug, Default)]
pub struct SimStats {
    /// Realtime requests received.
    pub requests: AtomicU64,
    /// Realtime requests for offset 0 answered: blocks started.
    pub blocks: AtomicU64,
    /// Replies sent with a wrong CRC.
    pub crc_injected: AtomicU64,
    /// Busy replies sent.
    pub busy_injected: AtomicU64,
    /// Requests left unanswered.
    pub stalls_injected: AtomicU64,
    /// Requests whose own CRC was bad (answered 0x82).
    pub bad_requests: AtomicU64,
}

impl SimStats {
    /// Reads one counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Why the simulator could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// An INI command cannot be parsed.
    #[error("{0}")]
    Command(String),
    /// `--set` names no output channel.
    #[error("no output channel {0:?} in the INI")]
    UnknownChannel(String),
}

#[derive(Debug)]
struct Shared {
    /// One value per output channel, in engineering units (computed slots unused).
    values: Vec<f64>,
    /// Channels swept over their display range with this period, unless set.
    ramp: Option<Duration>,
    /// Channels set explicitly (not ramped).
    fixed: Vec<bool>,
    one_shot: VecDeque<Fault>,
    periodic: PeriodicFaults,
}

/// A handle steering a running simulator: values and faults. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SimControl {
    shared: Arc<Mutex<Shared>>,
    channels: Arc<OutputChannels>,
    /// What the simulator did.
    pub stats: Arc<SimStats>,
}

impl SimControl {
    /// Sets channel `name` to `value` (engineering units); it stops ramping.
    pub fn set(&self, name: &str, value: f64) -> Result<(), SimError> {
        let slot = self
            .channels
            .slot(name)
            .ok_or_else(|| SimError::UnknownChannel(name.to_owned()))?;
        self.with(|shared| {
            shared.values[slot] = value;
            shared.fixed[slot] = true;
        });
        Ok(())
    }

    /// Sweeps every channel not set over its display range once per `period`.
    pub fn ramp(&self, period: Duration) {
        self.with(|shared| shared.ramp = Some(period));
    }

    /// Injects `fault` into the answer to the next realtime request.
    pub fn inject(&self, fault: Fault) {
        self.with(|shared| shared.one_shot.push_back(fault));
    }

    /// Injects faults periodically.
    pub fn periodic(&self, faults: PeriodicFaults) {
        self.with(|shared| shared.periodic = faults);
    }

    /// Faults injected but not yet used.
    pub fn pending_faults(&self) -> usize {
        self.with(|shared| shared.one_shot.len())
    }

    fn with<T>(&self, f: impl FnOnce(&mut Shared) -> T) -> T {
        // A poisoned lock only means a panic elsewhere; the values are still usable.
        let mut guard = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }
}

/// An ECU answering the protocol of one INI.
#[derive(Debug, Clone)]
pub struct Simulator {
    signature: Vec<u8>,
    query: Vec<u8>,
    och: Command,
    endian: Endian,
    envelope: bool,
    block_size: usize,
    control: SimControl,
    started: tokio::time::Instant,
}

impl Simulator {
    /// A simulator of `ini`, with every channel at 0 and no faults.
    pub fn new(ini: &IniFile) -> Result<Self, SimError> {
        let och = ini
            .och_command()
            .map_err(|e| SimError::Command(format!("ochGetCommand: {e}")))?;
        let endian = ini.output_channels.endian;
        let mut query = Vec::new();
        ini.query()
            .map_err(|e| SimError::Command(format!("queryCommand: {e}")))?
            .build(0, 0, 0, endian, &mut query);
        let channels = Arc::new(ini.output_channels.clone());
        let count = channels.channels().len();
        let control = SimControl {
            shared: Arc::new(Mutex::new(Shared {
                values: vec![0.0; count],
                ramp: None,
                fixed: vec![false; count],
                one_shot: VecDeque::new(),
                periodic: PeriodicFaults::default(),
            })),
            channels,
            stats: Arc::default(),
        };
        Ok(Self {
            signature: ini.signature.clone().unwrap_or_default().into_bytes(),
            query,
            och,
            endian,
            envelope: ini.uses_envelope(),
            block_size: ini.output_channels.block_size,
            control,
            started: tokio::time::Instant::now(),
        })
    }

    /// The handle steering this simulator (shared by every connection it serves).
    pub fn control(&self) -> SimControl {
        self.control.clone()
    }

    /// Answers requests read from `reader` on `writer` until the reader ends or fails.
    pub async fn serve<R, W>(&self, mut reader: R, mut writer: W) -> io::Result<()>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut block = vec![0u8; self.block_size];
        let mut decoder = EnvelopeDecoder::new(usize::from(u16::MAX));
        let mut pending = Vec::new();
        let mut chunk = vec![0u8; READ_CAPACITY];
        let mut out = Vec::new();
        loop {
            let n = reader.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            if self.envelope {
                decoder.handle_bytes(&chunk[..n]);
                loop {
                    let payload = match decoder.poll_payload() {
                        Ok(Some(payload)) => payload.to_vec(),
                        Ok(None) => break,
                        Err(DecodeError::BadCheck { .. }) => {
                            SimStats::add(&self.control.stats.bad_requests);
                            decoder.clear();
                            out.clear();
                            envelope(&[Status::CrcError.to_byte()], &mut out);
                            writer.write_all(&out).await?;
                            break;
                        }
                        // Noise (a reset byte, a cut-off request): skipped byte by byte.
                        Err(_) => continue,
                    };
                    if let Some(pause) = self
                        .answer_enveloped(&payload, &mut block, &mut writer)
                        .await?
                    {
                        stall(&mut reader, pause).await?;
                        decoder.clear();
                        break;
                    }
                }
            } else {
                pending.extend_from_slice(&chunk[..n]);
                if let Some(pause) = self
                    .answer_bare(&mut pending, &mut block, &mut writer)
                    .await?
                {
                    stall(&mut reader, pause).await?;
                    pending.clear();
                }
            }
        }
    }

    /// Answers one request; `Some(pause)` when a stall was injected instead.
    async fn answer_enveloped<W: AsyncWrite + Unpin>(
        &self,
        payload: &[u8],
        block: &mut [u8],
        writer: &mut W,
    ) -> io::Result<Option<Duration>> {
        let mut reply = Vec::with_capacity(self.block_size + 1);
        if payload == self.query.as_slice() {
            reply.push(Status::Ok.to_byte());
            reply.extend_from_slice(&self.signature);
        } else if let Some((_, offset, count)) = self.och.parse_request(payload, self.endian)
            && self.och.is_ranged()
        {
            SimStats::add(&self.control.stats.requests);
            match self.fault() {
                Some(Fault::Stall(pause)) => return Ok(Some(pause)),
                Some(Fault::Busy) => reply.push(Status::Busy.to_byte()),
                fault => {
                    self.realtime(offset, count, block, &mut reply);
                    let mut out = Vec::new();
                    envelope(&reply, &mut out);
                    if fault == Some(Fault::Crc)
                        && let Some(last) = out.last_mut()
                    {
                        *last ^= 0xFF;
                    }
                    writer.write_all(&out).await?;
                    return Ok(None);
                }
            }
        } else {
            // Enveloped `A`, and anything else: an unknown command, as rusEFI answers.
            reply.push(Status::UnknownCommand.to_byte());
        }
        let mut out = Vec::new();
        envelope(&reply, &mut out);
        writer.write_all(&out).await?;
        Ok(None)
    }

    /// Bare protocol: the query answers the signature, the realtime command the block.
    /// `Some(pause)` when a stall was injected.
    async fn answer_bare<W: AsyncWrite + Unpin>(
        &self,
        pending: &mut Vec<u8>,
        block: &mut [u8],
        writer: &mut W,
    ) -> io::Result<Option<Duration>> {
        let och_len = self.och.len();
        while !pending.is_empty() {
            if pending.starts_with(&self.query) {
                pending.drain(..self.query.len());
                writer.write_all(&self.signature).await?;
                continue;
            }
            if self.query.starts_with(pending) || pending.len() < och_len {
                return Ok(None);
            }
            let Some((_, offset, count)) = self.och.parse_request(&pending[..och_len], self.endian)
            else {
                pending.remove(0);
                continue;
            };
            pending.drain(..och_len);
            SimStats::add(&self.control.stats.requests);
            let (offset, count) = match self.och.is_ranged() {
                true => (offset, count),
                false => (0, self.block_size as u32),
            };
            // Without an envelope there is no CRC or status to corrupt: only stalls apply.
            if let Some(Fault::Stall(pause)) = self.bare_fault() {
                return Ok(Some(pause));
            }
            let mut reply = Vec::new();
            self.realtime(offset, count, block, &mut reply);
            writer.write_all(&reply[1..]).await?;
        }
        Ok(None)
    }

    /// Appends the status and data answering a realtime read to `reply`.
    fn realtime(&self, offset: u32, count: u32, block: &mut [u8], reply: &mut Vec<u8>) {
        let stats = &self.control.stats;
        let (start, end) = (offset as usize, offset as usize + count as usize);
        if end > block.len() {
            reply.push(Status::RangeError.to_byte());
            return;
        }
        // A block is encoded when its first piece is asked for, so its pieces agree.
        if start == 0 {
            SimStats::add(&stats.blocks);
            self.encode(block);
        }
        reply.push(Status::Ok.to_byte());
        reply.extend_from_slice(&block[start..end]);
    }

    /// Writes the current values into `block`.
    fn encode(&self, block: &mut [u8]) {
        let elapsed = self.started.elapsed().as_secs_f64();
        let channels = &self.control.channels;
        self.control.with(|shared| {
            if let Some(period) = shared.ramp {
                let count = shared.values.len().max(1) as f64;
                let phase = elapsed / period.as_secs_f64().max(1e-3);
                for (slot, channel) in channels.channels().iter().enumerate() {
                    if shared.fixed[slot] {
                        continue;
                    }
                    let (lo, hi) = channel.display_range().unwrap_or((0.0, 100.0));
                    let fraction = (phase + slot as f64 / count).fract();
                    shared.values[slot] = lo + (hi - lo) * fraction;
                }
            }
            // The block is as long as the INI says, so encoding cannot fail.
            let _ = channels.encode(&shared.values, block);
        });
    }

    /// The fault for the realtime request just counted, if any: one injected, else a
    /// periodic one.
    fn fault(&self) -> Option<Fault> {
        let stats = &self.control.stats;
        let number = SimStats::get(&stats.requests);
        let fault = self.control.with(|shared| {
            let every = |n: u64| n > 0 && number.is_multiple_of(n);
            let periodic = shared.periodic;
            shared
                .one_shot
                .pop_front()
                .or(if every(periodic.crc_every) {
                    Some(Fault::Crc)
                } else if every(periodic.busy_every) {
                    Some(Fault::Busy)
                } else if every(periodic.stall_every) {
                    Some(Fault::Stall(periodic.stall))
                } else {
                    None
                })
        });
        match fault {
            Some(Fault::Crc) => SimStats::add(&stats.crc_injected),
            Some(Fault::Busy) => SimStats::add(&stats.busy_injected),
            Some(Fault::Stall(_)) => SimStats::add(&stats.stalls_injected),
            None => {}
        }
        fault
    }
}

impl Simulator {
    /// [`Simulator::fault`] for the bare protocol, where only stalls can be shown: other
    /// faults are left for a later request.
    fn bare_fault(&self) -> Option<Fault> {
        let stall = self.control.with(|shared| {
            let position = shared
                .one_shot
                .iter()
                .position(|fault| matches!(fault, Fault::Stall(_)));
            position.and_then(|at| shared.one_shot.remove(at))
        });
        let periodic = self.control.with(|shared| shared.periodic);
        let number = SimStats::get(&self.control.stats.requests);
        let fault = stall.or((periodic.stall_every > 0
            && number.is_multiple_of(periodic.stall_every))
        .then_some(Fault::Stall(periodic.stall)));
        if fault.is_some() {
            SimStats::add(&self.control.stats.stalls_injected);
        }
        fault
    }
}

/// Reads nothing for `pause`, then throws away whatever arrived meanwhile.
async fn stall<R: AsyncRead + Unpin>(reader: &mut R, pause: Duration) -> io::Result<()> {
    tokio::time::sleep(pause).await;
    let mut chunk = [0u8; READ_CAPACITY];
    loop {
        match tokio::time::timeout(Duration::from_millis(1), reader.read(&mut chunk)).await {
            Ok(Ok(0)) | Err(_) => return Ok(()),
            Ok(Ok(_)) => {}
            Ok(Err(error)) => return Err(error),
        }
    }
}

impl SimStats {
    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Frames a reply; replies are far below the envelope's 64 KiB limit.
fn envelope(payload: &[u8], out: &mut Vec<u8>) {
    let _ = encode_envelope(payload, out);
}

/// The ECU's end of a pseudo-terminal: a bridge opens `path` as it would a USB serial port.
#[derive(Debug)]
pub struct PtyEnd {
    /// The slave's path (`/dev/pts/N`).
    pub path: PathBuf,
    /// Reads what the bridge writes.
    pub reader: pipe::Receiver,
    /// Writes what the bridge reads.
    pub writer: pipe::Sender,
    /// Held open so the master sees no hang-up while the bridge reopens the slave.
    _slave: OwnedFd,
}

impl PtyEnd {
    /// Opens a pseudo-terminal pair in raw mode.
    pub fn open() -> io::Result<Self> {
        use nix::fcntl::{FcntlArg, OFlag, fcntl};
        use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
        use std::os::fd::AsRawFd;
        let pty = nix::pty::openpty(None, None)?;
        let mut termios = tcgetattr(&pty.slave)?;
        cfmakeraw(&mut termios);
        tcsetattr(&pty.slave, SetArg::TCSANOW, &termios)?;
        let path = std::fs::read_link(format!("/proc/self/fd/{}", pty.slave.as_raw_fd()))?;
        fcntl(&pty.master, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
        let writer = pty.master.try_clone()?;
        Ok(Self {
            path,
            // A pty master reads and writes like a pipe end; only the FIFO check is skipped.
            reader: pipe::Receiver::from_owned_fd_unchecked(pty.master)?,
            writer: pipe::Sender::from_owned_fd_unchecked(writer)?,
            _slave: pty.slave,
        })
    }
}

impl PtyEnd {
    /// Answers the bridge until the master fails for good. The master reads EIO for a while
    /// whenever the bridge closes its end (Linux reports the hang-up even though this end
    /// still holds the slave), so EIO is waited out: the bridge reopening is served again.
    pub async fn serve(&mut self, simulator: &Simulator) -> io::Result<()> {
        loop {
            match simulator.serve(&mut self.reader, &mut self.writer).await {
                Err(error) if error.raw_os_error() == Some(nix::libc::EIO) => {
                    tokio::time::sleep(HANG_UP_POLL).await;
                }
                other => return other,
            }
        }
    }
}

/// How often a hung-up pty master is tried again.
const HANG_UP_POLL: Duration = Duration::from_millis(5);

/// Serves every connection to `listener`, one task each, until an accept fails. Dropping
/// the future closes every connection (a test's "ECU switched off").
pub async fn serve_tcp(listener: TcpListener, simulator: Simulator) -> io::Result<()> {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            Some(_) = connections.join_next() => continue,
        };
        stream.set_nodelay(true)?;
        let simulator = simulator.clone();
        connections.spawn(async move {
            let (reader, writer) = stream.into_split();
            if let Err(error) = simulator.serve(reader, writer).await {
                tracing::debug!(%error, "simulated ECU connection ended");
            }
        });
    }
}
