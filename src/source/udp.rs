//! UDP live source: one socket carrying cannelloni datagrams from a CAN-to-Ethernet gateway, or
//! native frames of a frame definition (a sim's telemetry, an ECU's own protocol), turned into
//! [`SourceBatch`]es for the decode stage.
//!
//! Owns the socket set-up (`SO_RCVBUF`, multicast membership, `SO_RXQ_OVFL`, `SO_TIMESTAMPNS`)
//! and the receive loop; turning datagrams into frames is [`DatagramReceiver`]'s, so a
//! recording replays into the same frames. Never parses frames itself, never blocks its reader.
//!
//! Invariants:
//! - Edge policy: the batch goes out through room reserved without waiting
//!   (`try_reserve` by its weight). While the channel is full (in batches or in bytes) the reader
//!   keeps its frames and goes on reading, up to [`HOLD_FRAMES`] (a stall of about half a
//!   second at 100 000 frames/s, about 5 MiB); only frames beyond that are dropped and
//!   counted (`channel_drops`, `frames_dropped`), logged once per episode. An ECU cannot be
//!   slowed down, and a blocked reader would only move the loss into the kernel, unseen.
//! - Accounting: every datagram the kernel accepted for this socket is either received
//!   (`datagrams`) or dropped by the kernel (`kernel_drops`, the cumulative `SO_RXQ_OVFL` count,
//!   which the kernel reports on the next datagram queued after a drop). Every decoded frame
//!   (`frames`) is either handed on or in `frames_dropped`.
//! - Per datagram: no allocation (one reused receive buffer and control buffer) and no logging,
//!   except the copy handed to the capture tap when recording.

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, setsockopt, sockopt,
};
use nix::sys::time::TimeSpec;
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::watch;

use super::receiver::DatagramReceiver;
use super::{CaptureTap, NativeInput, RawCapture, SourceError};
use crate::config::{Multicast, UdpSourceConfig};
use crate::pipeline::edge::{FRAMES_PER_BATCH, SourceBatch};
use crate::pipeline::weighed::{self, Weighed};
use crate::telemetry::{Metrics, SourceMetrics};

/// Datagrams read in one pass before the loop goes back to check `cancel` and the output.
const DATAGRAMS_PER_PASS: usize = 1024;
/// Frames a reader holds while the decode channel is full before it drops them: the decode
/// channel is counted in batches, so this is what turns a short stall downstream (a disk
/// sync, a burst of catch-up delivery on the same cores) into latency rather than loss.
pub const HOLD_FRAMES: usize = 64 * 1024;

/// A bound UDP socket, ready to [`run`](Self::run).
#[derive(Debug)]
pub struct UdpSource {
    /// The source's configured name (logs, capture records).
    name: Arc<str>,
    /// Bound, non-blocking, options set; registered with tokio only in `run`, so binding works
    /// outside a runtime.
    socket: std::net::UdpSocket,
    /// Read back after binding (port 0 becomes the real port).
    local_addr: SocketAddr,
    /// `SO_RCVBUF` as the kernel reports it.
    granted_receive_buffer: usize,
    /// Larger datagrams are counted as truncated and not decoded.
    max_datagram_bytes: usize,
    /// Shared with the pipeline's summaries.
    metrics: Arc<SourceMetrics>,
    /// Native frames of this definition instead of cannelloni.
    native: Option<NativeInput>,
}

impl UdpSource {
    /// Binds now (and joins multicast), so callers know the address before `run`.
    ///
    /// Sets `SO_REUSEADDR`, `SO_RCVBUF` (the granted size is logged at info; Linux caps it at
    /// `net.core.rmem_max` and reports twice the effective size), `SO_RXQ_OVFL` and
    /// `SO_TIMESTAMPNS`.
    pub fn bind(
        name: &str,
        config: &UdpSourceConfig,
        metrics: Arc<SourceMetrics>,
    ) -> Result<Self, SourceError> {
        let (socket, local_addr, granted_receive_buffer) =
            open_socket(config).map_err(|error| match error {
                SetupError::Io(action, error) => SourceError::Io {
                    source_name: name.to_owned(),
                    action: format!("{action} ({})", config.bind),
                    error,
                },
                SetupError::Setup(message) => SourceError::Setup {
                    source_name: name.to_owned(),
                    message,
                },
            })?;
        tracing::info!(
            source = name,
            %local_addr,
            requested = config.receive_buffer_bytes,
            granted = granted_receive_buffer,
            "udp source bound (SO_RCVBUF granted as reported by Linux: twice the usable size)"
        );
        if granted_receive_buffer / 2 < config.receive_buffer_bytes {
            tracing::warn!(
                source = name,
                requested = config.receive_buffer_bytes,
                usable = granted_receive_buffer / 2,
                "receive buffer capped by net.core.rmem_max; raise it to absorb bursts"
            );
        }
        Ok(Self {
            name: Arc::from(name),
            socket,
            local_addr,
            granted_receive_buffer,
            max_datagram_bytes: config.max_datagram_bytes,
            metrics,
            native: None,
        })
    }

    /// Reads datagrams as native frames of `input`'s definition instead of cannelloni.
    #[must_use]
    pub fn carrying(mut self, input: NativeInput) -> Self {
        self.native = Some(input);
        self
    }

    /// The bound address (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `SO_RCVBUF` as the kernel granted it (read back; Linux reports twice the usable size).
    pub fn granted_receive_buffer(&self) -> usize {
        self.granted_receive_buffer
    }

    /// Receives until `cancel` turns true (or its sender is dropped) or `output` closes.
    ///
    /// Returns an error only when the socket itself fails; malformed, truncated or lost
    /// datagrams are counted in the metrics and skipped.
    pub async fn run(
        self,
        output: weighed::Sender<SourceBatch>,
        tap: Option<CaptureTap>,
        mut cancel: watch::Receiver<bool>,
    ) -> Result<(), SourceError> {
        let Self {
            name,
            socket,
            local_addr,
            max_datagram_bytes,
            metrics,
            native,
            ..
        } = self;
        let io = |action: &'static str| {
            let name = &name;
            move |error| SourceError::Io {
                source_name: name.to_string(),
                action: action.to_owned(),
                error,
            }
        };
        let socket = UdpSocket::from_std(socket).map_err(io("registering socket"))?;
        let receiver = DatagramReceiver::new(native.as_ref());
        let mut reader = Reader::new(
            name.clone(),
            local_addr,
            metrics,
            max_datagram_bytes,
            receiver,
            tap,
        );
        let mut drain = true;
        while !*cancel.borrow_and_update() {
            tokio::select! {
                biased;
                changed = cancel.changed() => {
                    // A dropped sender can never cancel us: its owner is gone, so stop.
                    if changed.is_err() {
                        drain = false;
                        break;
                    }
                    continue;
                }
                () = output.closed() => break,
                ready = socket.readable() => ready.map_err(io("waiting for datagrams"))?,
                // Frames held back by a full channel go as soon as it has room, even if no
                // further datagram arrives.
                permit = output.reserve(reader.pending.weight()), if !reader.pending.is_empty() => {
                    let Ok(permit) = permit else { break };
                    reader.send_held(permit);
                    continue;
                }
            }
            match reader.read_pass(&socket, &output) {
                Ok(Pass::Continue) => {}
                Ok(Pass::OutputClosed) => break,
                Err(error) => return Err(io("receiving")(error)),
            }
        }
        if drain {
            // Datagrams the kernel took before the stop are the car's data too.
            reader.drain_socket(&socket, &output);
        }
        reader.hand_on_held(&output).await;
        reader.finish();
        Ok(())
    }
}

/// The receive loop's state, kept apart from the socket set-up.
#[derive(Debug)]
struct Reader {
    /// Log field and capture label.
    name: Arc<str>,
    /// The capture's "arrived at" address (the bound one: the group's for multicast).
    local_addr: SocketAddr,
    metrics: Arc<SourceMetrics>,
    /// Keeps the last sequence number, to count gaps across datagrams.
    receiver: DatagramReceiver,
    /// Frames not yet sent; replaced by a fresh batch only when one is handed on.
    pending: SourceBatch,
    /// `max_datagram_bytes + 1`, so a datagram of exactly the maximum is not mistaken for a
    /// truncated one.
    buffer: Vec<u8>,
    /// Space for one `SO_TIMESTAMPNS` and one `SO_RXQ_OVFL` message.
    control: Vec<u8>,
    max_datagram_bytes: usize,
    tap: Option<CaptureTap>,
    /// Captures the tap could not take (no counter in `SourceMetrics`: logged instead).
    tap_drops: u64,
    /// Batches dropped in the current full-channel episode (0: not in one).
    episode_drops: u64,
    /// The time given to the last datagram ([`in_arrival_order`]).
    last_time_ns: u64,
}

/// What a read pass ended with.
enum Pass {
    Continue,
    OutputClosed,
}

/// One datagram as `recvmsg` returned it; the bytes are in the reader's buffer.
struct Datagram {
    len: usize,
    truncated: bool,
    kernel_time_ns: Option<u64>,
    kernel_drops: Option<u32>,
    peer: Option<SocketAddr>,
}

impl Reader {
    fn new(
        name: Arc<str>,
        local_addr: SocketAddr,
        metrics: Arc<SourceMetrics>,
        max_datagram_bytes: usize,
        receiver: DatagramReceiver,
        tap: Option<CaptureTap>,
    ) -> Self {
        Self {
            name,
            local_addr,
            metrics,
            pending: receiver.empty_batch(),
            receiver,
            buffer: vec![0; max_datagram_bytes + 1],
            control: nix::cmsg_space!(TimeSpec, u32),
            max_datagram_bytes,
            tap,
            tap_drops: 0,
            episode_drops: 0,
            last_time_ns: 0,
        }
    }

    /// Reads what the socket has ready (at most [`DATAGRAMS_PER_PASS`]), then sends the
    /// pending frames so latency stays low when traffic is light.
    fn read_pass(
        &mut self,
        socket: &UdpSocket,
        output: &weighed::Sender<SourceBatch>,
    ) -> io::Result<Pass> {
        let fd = socket.as_raw_fd();
        for _ in 0..DATAGRAMS_PER_PASS {
            let received = socket.try_io(Interest::READABLE, || {
                receive(fd, &mut self.buffer, &mut self.control)
            });
            match received {
                Ok(datagram) => self.handle_datagram(&datagram),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
            if self.pending.len() >= FRAMES_PER_BATCH && !self.send_pending(output) {
                return Ok(Pass::OutputClosed);
            }
        }
        Ok(if self.send_pending(output) {
            Pass::Continue
        } else {
            Pass::OutputClosed
        })
    }

    /// Counts one datagram, hands a copy to the tap, decodes it into `pending`.
    fn handle_datagram(&mut self, datagram: &Datagram) {
        let metrics = &*self.metrics;
        Metrics::add(&metrics.reads, 1);
        Metrics::add(&metrics.bytes, datagram.len as u64);
        if let Some(drops) = datagram.kernel_drops {
            metrics
                .kernel_drops
                .store(u64::from(drops), Ordering::Relaxed);
        }
        // Truncated datagrams are neither decoded nor recorded: a partial datagram would
        // replay as a decode error rather than the truncation the live run counted.
        if datagram.truncated || datagram.len > self.max_datagram_bytes {
            Metrics::add(&metrics.truncated, 1);
            return;
        }
        let stamped = datagram.kernel_time_ns.unwrap_or_else(now_ns);
        let time_ns = in_arrival_order(stamped, self.last_time_ns);
        self.last_time_ns = time_ns;
        let bytes = &self.buffer[..datagram.len];
        if let Some(tap) = &self.tap {
            let capture = RawCapture {
                source: self.name.clone(),
                time_ns,
                bytes: Bytes::copy_from_slice(bytes),
                addresses: datagram.peer.map(|peer| (peer, self.local_addr)),
            };
            match tap.try_send(capture) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    if self.tap_drops == 0 {
                        tracing::warn!(source = %self.name, "capture tap full: captures dropped");
                    }
                    self.tap_drops += 1;
                }
                Err(TrySendError::Closed(_)) => {
                    tracing::warn!(source = %self.name, "capture tap closed: recording stopped");
                    self.tap = None;
                }
            }
        }
        self.receiver
            .handle_datagram(time_ns, bytes, metrics, &mut self.pending);
    }

    /// Hands `pending` on without waiting. A full channel leaves it pending (more frames join
    /// it) up to [`HOLD_FRAMES`]; frames beyond are dropped and counted, the held ones kept
    /// (the oldest, contiguous with what went before). Returns false when
    /// the channel is closed.
    fn send_pending(&mut self, output: &weighed::Sender<SourceBatch>) -> bool {
        if self.pending.is_empty() {
            return true;
        }
        match output.try_reserve(self.pending.weight()) {
            Ok(permit) => {
                self.send_held(permit);
                true
            }
            Err(TrySendError::Full(())) => {
                let excess = self.pending.keep_first(HOLD_FRAMES);
                if excess > 0 {
                    Metrics::add(&self.metrics.channel_drops, 1);
                    Metrics::add(&self.metrics.frames_dropped, excess as u64);
                    if self.episode_drops == 0 {
                        tracing::warn!(source = %self.name, held = HOLD_FRAMES, "decode channel full and the frames held back reached their bound: dropping new frames");
                    }
                    self.episode_drops += 1;
                }
                true
            }
            Err(TrySendError::Closed(())) => false,
        }
    }

    /// At the stop: reads what the socket already holds, straight from the (non-blocking)
    /// descriptor, since the runtime's readiness flag may lag; at most a bounded number of
    /// datagrams, never waiting.
    fn drain_socket(&mut self, socket: &UdpSocket, output: &weighed::Sender<SourceBatch>) {
        const MAX_DATAGRAMS: usize = 64 * DATAGRAMS_PER_PASS;
        let fd = socket.as_raw_fd();
        for _ in 0..MAX_DATAGRAMS {
            match receive(fd, &mut self.buffer, &mut self.control) {
                Ok(datagram) => self.handle_datagram(&datagram),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
            if self.pending.len() >= FRAMES_PER_BATCH && !self.send_pending(output) {
                return;
            }
        }
        self.send_pending(output);
    }

    /// At the stop: the frames held back wait for room (the later stages drain), or are
    /// counted as dropped if the pipeline is gone.
    async fn hand_on_held(&mut self, output: &weighed::Sender<SourceBatch>) {
        if self.pending.is_empty() {
            return;
        }
        let held = std::mem::take(&mut self.pending);
        if let Err(unsent) = output.send(held).await {
            Metrics::add(&self.metrics.channel_drops, 1);
            Metrics::add(&self.metrics.frames_dropped, unsent.0.len() as u64);
        }
    }

    /// Sends `pending` through a reserved slot.
    fn send_held(&mut self, permit: weighed::Permit<'_, SourceBatch>) {
        let fresh = self.receiver.empty_batch();
        permit.send(std::mem::replace(&mut self.pending, fresh));
        if self.episode_drops > 0 {
            tracing::info!(
                source = %self.name,
                batches = self.episode_drops,
                "decode channel accepting again"
            );
            self.episode_drops = 0;
        }
    }

    /// Logs what was only counted locally.
    fn finish(&self) {
        if self.tap_drops > 0 {
            tracing::warn!(source = %self.name, captures = self.tap_drops, "captures dropped (tap full)");
        }
    }
}

/// A datagram's time, given the one before it: never earlier. The socket's queue is first in,
/// first out, but the kernel's receive stamps can run backwards when a source starts: its
/// timestamping is switched on system-wide a moment after the first socket asks, and a datagram
/// that arrived before that is stamped when it is read, later than the arrival stamps of the
/// datagrams behind it. Such datagrams keep their order, 1 ns apart.
fn in_arrival_order(stamped_ns: u64, previous_ns: u64) -> u64 {
    stamped_ns.max(previous_ns.saturating_add(1))
}

/// One `recvmsg` into `buffer`, with the kernel's receive time and drop count.
fn receive(fd: RawFd, buffer: &mut [u8], control: &mut [u8]) -> io::Result<Datagram> {
    let mut iov = [IoSliceMut::new(buffer)];
    let message = recvmsg::<SockaddrStorage>(fd, &mut iov, Some(control), MsgFlags::empty())?;
    let mut datagram = Datagram {
        len: message.bytes,
        truncated: message.flags.contains(MsgFlags::MSG_TRUNC),
        kernel_time_ns: None,
        kernel_drops: None,
        peer: message.address.as_ref().and_then(socket_addr),
    };
    // Control data cut short (`MSG_CTRUNC`) cannot happen with the space reserved for exactly
    // these two messages; if it did, the datagram still counts, stamped with the read time.
    if let Ok(messages) = message.cmsgs() {
        for control in messages {
            match control {
                ControlMessageOwned::ScmTimestampns(time) => {
                    datagram.kernel_time_ns = timespec_ns(time);
                }
                ControlMessageOwned::RxqOvfl(drops) => datagram.kernel_drops = Some(drops),
                _ => {}
            }
        }
    }
    Ok(datagram)
}

fn socket_addr(address: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = address.as_sockaddr_in() {
        Some(SocketAddr::from(*v4))
    } else {
        address.as_sockaddr_in6().map(|v6| SocketAddr::from(*v6))
    }
}

fn timespec_ns(time: TimeSpec) -> Option<u64> {
    let seconds = u64::try_from(time.tv_sec()).ok()?;
    let nanos = u64::try_from(time.tv_nsec()).ok()?;
    seconds.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// Read time, for datagrams without a kernel timestamp.
fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
        })
}

/// Why the socket could not be set up: a failed call (and what it was doing), or a
/// configuration this system cannot honour.
enum SetupError {
    Io(&'static str, io::Error),
    Setup(String),
}

/// Creates, configures and binds the socket; returns it with its address and granted
/// `SO_RCVBUF`.
fn open_socket(
    config: &UdpSourceConfig,
) -> Result<(std::net::UdpSocket, SocketAddr, usize), SetupError> {
    let io = |action| move |error| SetupError::Io(action, error);
    let errno = |action| move |errno: nix::Error| SetupError::Io(action, errno.into());
    let socket = Socket::new(
        Domain::for_address(config.bind),
        Type::DGRAM,
        Some(Protocol::UDP),
    )
    .map_err(io("creating socket"))?;
    socket
        .set_reuse_address(true)
        .map_err(io("setting SO_REUSEADDR"))?;
    socket
        .set_recv_buffer_size(config.receive_buffer_bytes)
        .map_err(io("setting SO_RCVBUF"))?;
    let granted = socket.recv_buffer_size().map_err(io("reading SO_RCVBUF"))?;
    setsockopt(&socket, sockopt::RxqOvfl, &1).map_err(errno("setting SO_RXQ_OVFL"))?;
    setsockopt(&socket, sockopt::ReceiveTimestampns, &true)
        .map_err(errno("setting SO_TIMESTAMPNS"))?;
    socket
        .set_nonblocking(true)
        .map_err(io("setting O_NONBLOCK"))?;
    socket.bind(&config.bind.into()).map_err(io("binding"))?;
    if let Some(multicast) = &config.multicast {
        join_multicast(&socket, config.bind, multicast)?;
    }
    let socket = std::net::UdpSocket::from(socket);
    let local_addr = socket.local_addr().map_err(io("reading local address"))?;
    Ok((socket, local_addr, granted))
}

/// Joins `multicast.group` on the named interface (or, for IPv4, the interface holding an
/// address), and limits the socket to that group's traffic (`IP_MULTICAST_ALL` off).
fn join_multicast(
    socket: &Socket,
    bind: SocketAddr,
    multicast: &Multicast,
) -> Result<(), SetupError> {
    let interface_index = |name: &str| {
        nix::net::if_::if_nametoindex(name)
            .map_err(|_| SetupError::Setup(format!("no network interface named {name:?}")))
    };
    match (multicast.group, bind) {
        (IpAddr::V4(group), SocketAddr::V4(_)) if group.is_multicast() => {
            let interface = match multicast.interface.as_deref() {
                None => InterfaceIndexOrAddress::Address(Ipv4Addr::UNSPECIFIED),
                Some(name) => match name.parse::<Ipv4Addr>() {
                    Ok(address) => InterfaceIndexOrAddress::Address(address),
                    Err(_) => InterfaceIndexOrAddress::Index(interface_index(name)?),
                },
            };
            socket
                .join_multicast_v4_n(&group, &interface)
                .map_err(|error| SetupError::Io("joining multicast group", error))?;
            socket
                .set_multicast_all_v4(false)
                .map_err(|error| SetupError::Io("clearing IP_MULTICAST_ALL", error))
        }
        (IpAddr::V6(group), SocketAddr::V6(_)) if group.is_multicast() => {
            let index = match multicast.interface.as_deref() {
                None => 0,
                Some(name) => interface_index(name)?,
            };
            socket
                .join_multicast_v6(&group, index)
                .map_err(|error| SetupError::Io("joining multicast group", error))?;
            socket
                .set_multicast_all_v6(false)
                .map_err(|error| SetupError::Io("clearing IPV6_MULTICAST_ALL", error))
        }
        (group, _) => Err(SetupError::Setup(format!(
            "multicast group {group} is not a multicast address of the same family as bind {bind}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::in_arrival_order;

    #[test]
    fn datagram_times_keep_the_order_of_the_socket_queue() {
        // Two datagrams stamped when read (1 000, 1 001), then three stamped on arrival before.
        let stamps = [1_000, 1_001, 400, 500, 2_000];
        let mut previous = 0;
        let times: Vec<u64> = stamps
            .iter()
            .map(|&stamp| {
                previous = in_arrival_order(stamp, previous);
                previous
            })
            .collect();
        assert_eq!(times, [1_000, 1_001, 1_002, 1_003, 2_000]);
    }
}
