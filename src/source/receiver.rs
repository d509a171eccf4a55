//! Transport receivers: datagrams or serial bytes, with their receive times, → timed CAN
//! frames (cannelloni, SLCAN) or whole native frames of a frame definition, plus counters.
//! Live sources, the recorder and replay all use these, so a recording replays into exactly
//! the frames (and timestamps) the live run produced.

use std::sync::Arc;

use bytes::Bytes;
use decoders::frame::{FramerStats, Framing, SequenceTracker, StreamFramer};
use decoders::wire::cannelloni::parse_datagram;
use decoders::wire::slcan::{SlcanFramer, SlcanLine, TimestampUnwrapper, parse_line};

use super::NativeInput;
use crate::pipeline::edge::{FRAMES_PER_BATCH, NativeFrame, SourceBatch, TimedFrame};
use crate::telemetry::{Metrics, SourceMetrics};

/// Turns datagrams into frames: cannelloni CAN, or native frames of a definition.
#[derive(Debug)]
pub enum DatagramReceiver {
    /// Cannelloni CAN-over-UDP.
    Cannelloni(CannelloniReceiver),
    /// Native frames of a frame definition (boxed: it holds a framer).
    Native(Box<NativeReceiver>),
}

impl DatagramReceiver {
    /// A cannelloni receiver, or a native one when the source carries `native` frames.
    pub fn new(native: Option<&NativeInput>) -> Self {
        match native {
            Some(input) => Self::Native(Box::new(NativeReceiver::new(input))),
            None => Self::Cannelloni(CannelloniReceiver::default()),
        }
    }

    /// An empty batch sized for what this receiver produces.
    pub fn empty_batch(&self) -> SourceBatch {
        match self {
            Self::Cannelloni(_) => SourceBatch::with_capacity(FRAMES_PER_BATCH),
            Self::Native(_) => SourceBatch::default(),
        }
    }

    /// Appends the frames of one datagram received at `time_ns` to `out`.
    pub fn handle_datagram(
        &mut self,
        time_ns: u64,
        datagram: &[u8],
        metrics: &SourceMetrics,
        out: &mut SourceBatch,
    ) {
        match self {
            Self::Cannelloni(receiver) => {
                receiver.handle_datagram(time_ns, datagram, metrics, &mut out.can);
            }
            Self::Native(receiver) => {
                receiver.handle_datagram(time_ns, datagram, metrics, &mut out.native);
            }
        }
    }
}

/// Turns a serial byte stream into frames: SLCAN CAN, or native frames of a definition.
#[derive(Debug)]
pub enum ByteStreamReceiver {
    /// SLCAN (Lawicel) ASCII lines (boxed: it holds a line buffer).
    Slcan(Box<SlcanReceiver>),
    /// Native frames of a frame definition, cut by its framing (boxed: it holds a framer).
    Native(Box<NativeReceiver>),
}

impl ByteStreamReceiver {
    /// An SLCAN receiver, or a native one when the source carries `native` frames.
    pub fn new(native: Option<&NativeInput>) -> Self {
        match native {
            Some(input) => Self::Native(Box::new(NativeReceiver::new(input))),
            None => Self::Slcan(Box::default()),
        }
    }

    /// Appends the frames completed by `bytes`, received at `time_ns`, to `out`.
    pub fn handle_bytes(
        &mut self,
        time_ns: u64,
        bytes: &[u8],
        metrics: &SourceMetrics,
        out: &mut SourceBatch,
    ) {
        match self {
            Self::Slcan(receiver) => receiver.handle_bytes(time_ns, bytes, metrics, &mut out.can),
            Self::Native(receiver) => {
                receiver.handle_bytes(time_ns, bytes, metrics, &mut out.native);
            }
        }
    }

    /// Forgets partial input (after the device reconnects).
    pub fn reset(&mut self) {
        match self {
            Self::Slcan(receiver) => receiver.reset(),
            Self::Native(receiver) => receiver.reset(),
        }
    }
}

/// Native frames of one definition: a datagram is one frame unless the definition carries its
/// own length, in which case datagrams and serial reads alike go through a [`StreamFramer`]
/// (bytes between frames are skipped, resyncs and check failures counted). Sequence counter
/// gaps are counted in `sequence_gaps` either way. Envelope checks of whole datagrams happen
/// at decode, where the plan reports them with their offset.
#[derive(Debug)]
pub struct NativeReceiver {
    definition: Arc<str>,
    framing: Framing,
    /// Definitions chosen instead by a datagram's sync bytes (see [`NativeInput::by_sync`]).
    by_sync: Vec<(Arc<str>, Vec<u8>)>,
    /// Present when the definition is delimited (fixed length or a length field).
    framer: Option<StreamFramer>,
    /// Counter of whole-datagram frames.
    sequence: SequenceTracker,
    /// Framer counts already moved into the source metrics.
    reported: FramerStats,
}

impl NativeReceiver {
    /// A receiver for the definition in `input`.
    pub fn new(input: &NativeInput) -> Self {
        Self {
            definition: input.definition.clone(),
            framing: input.framing.clone(),
            by_sync: input.by_sync.clone(),
            framer: StreamFramer::new(&input.framing).ok(),
            sequence: SequenceTracker::new(),
            reported: FramerStats::default(),
        }
    }

    /// Appends the frames of one datagram received at `time_ns` to `out`.
    pub fn handle_datagram(
        &mut self,
        time_ns: u64,
        datagram: &[u8],
        metrics: &SourceMetrics,
        out: &mut Vec<NativeFrame>,
    ) {
        if self.framer.is_some() {
            self.handle_bytes(time_ns, datagram, metrics, out);
            return;
        }
        if let Some((value, bits)) = self.framing.counter(datagram) {
            let gap = self.sequence.observe(value, bits);
            Metrics::add(&metrics.sequence_gaps, gap);
        }
        out.push(NativeFrame {
            time_ns,
            definition: self.definition_of(datagram).clone(),
            bytes: Bytes::copy_from_slice(datagram),
        });
        Metrics::add(&metrics.frames, 1);
    }

    /// The definition a whole datagram belongs to: this source's, unless its sync does not
    /// match and another definition's does (a mismatch nobody claims is decoded, and counted
    /// as bad sync, by this source's definition).
    fn definition_of(&self, datagram: &[u8]) -> &Arc<str> {
        if self.by_sync.is_empty() || self.framing.sync_prefix_matches(datagram) {
            return &self.definition;
        }
        self.by_sync
            .iter()
            .find(|(_, sync)| datagram.starts_with(sync))
            .map_or(&self.definition, |(name, _)| name)
    }

    /// Appends the frames completed by `bytes`, received at `time_ns`, to `out`.
    pub fn handle_bytes(
        &mut self,
        time_ns: u64,
        bytes: &[u8],
        metrics: &SourceMetrics,
        out: &mut Vec<NativeFrame>,
    ) {
        let Some(framer) = &mut self.framer else {
            // Configuration refuses such a source; counted rather than guessed at.
            metrics.count_decode_errors("not_delimited", 1);
            return;
        };
        let definition = &self.definition;
        framer.push(bytes, |frame| {
            out.push(NativeFrame {
                time_ns,
                definition: definition.clone(),
                bytes: Bytes::copy_from_slice(frame),
            });
        });
        let now = framer.stats();
        let was = std::mem::replace(&mut self.reported, now);
        Metrics::add(&metrics.frames, now.frames - was.frames);
        Metrics::add(&metrics.sequence_gaps, now.lost_frames - was.lost_frames);
        metrics.count_decode_errors("resync", now.resyncs - was.resyncs);
        metrics.count_decode_errors("bad_check", now.check_failures - was.check_failures);
        metrics.count_decode_errors("bad_length", now.bad_lengths - was.bad_lengths);
    }

    /// Forgets partial frames and the last counter value.
    pub fn reset(&mut self) {
        if let Some(framer) = &mut self.framer {
            framer.reset();
        }
        self.sequence.reset();
    }
}

/// Decodes cannelloni datagrams and counts sequence gaps.
#[derive(Debug, Default)]
pub struct CannelloniReceiver {
    last_sequence: Option<u8>,
    /// The socket's kernel drop count when the previous datagram arrived.
    kernel_drops_seen: u64,
}

/// A jump of the 8-bit sequence by this much or more, with no kernel drop to explain it, is
/// read as the counter going back (a restarted gateway), not as datagrams lost in between:
/// losing 128 datagrams in a row on the way to the socket (a LAN, loopback) while the kernel
/// dropped none is far less likely than a sender restarting.
const CANNELLONI_RESET_JUMP: u64 = 128;
/// A jump onto sequence 0 by this much or more is read as a restart too.
const CANNELLONI_RESTART_JUMP: u64 = 8;

/// The datagrams lost before the socket between two sequence numbers, given the datagrams the
/// kernel dropped at the socket in the same interval (reported with the datagram after them):
/// `Ok(lost)`, or `Err(())` when the counter went back (a reset).
fn cannelloni_gap(last: u8, sequence: u8, kernel_dropped: u64) -> Result<u64, ()> {
    let jump = u64::from(sequence.wrapping_sub(last.wrapping_add(1)));
    if kernel_dropped > 0 {
        // The counter sees the kernel's drops modulo 256; what it skipped beyond them was lost
        // before the socket. Counting only that keeps the two counters from adding up the
        // same datagrams, and a burst of 256 or more drops does not alias to a small gap.
        return Ok((jump + 256 - kernel_dropped % 256) % 256);
    }
    // A restarted gateway starts again at 0: a jump onto 0 longer than a burst of loss.
    if jump >= CANNELLONI_RESET_JUMP || (sequence == 0 && jump >= CANNELLONI_RESTART_JUMP) {
        return Err(());
    }
    Ok(jump)
}

impl CannelloniReceiver {
    /// Appends the frames of one datagram received at `time_ns` to `out`.
    ///
    /// A gap in the 8-bit sequence counts the datagrams lost before the socket: those the
    /// kernel dropped at the socket are in `kernel_drops` and not counted again; a jump back
    /// is a sender restart (`sequence_resets`), not 255 losses.
    pub fn handle_datagram(
        &mut self,
        time_ns: u64,
        datagram: &[u8],
        metrics: &SourceMetrics,
        out: &mut Vec<TimedFrame>,
    ) {
        let parsed = match parse_datagram(datagram) {
            Ok(parsed) => parsed,
            Err(error) => {
                metrics.count_decode_error(error.kind());
                return;
            }
        };
        let kernel_drops = Metrics::get(&metrics.kernel_drops);
        let kernel_dropped = kernel_drops.saturating_sub(self.kernel_drops_seen);
        self.kernel_drops_seen = kernel_drops;
        if let Some(last) = self.last_sequence {
            match cannelloni_gap(last, parsed.sequence(), kernel_dropped) {
                Ok(lost) => Metrics::add(&metrics.sequence_gaps, lost),
                Err(()) => Metrics::add(&metrics.sequence_resets, 1),
            }
        }
        self.last_sequence = Some(parsed.sequence());
        let before = out.len();
        for frame in parsed.frames() {
            match frame {
                Ok(frame) => out.push(TimedFrame { time_ns, frame }),
                Err(error) => metrics.count_decode_error(error.kind()),
            }
        }
        Metrics::add(&metrics.frames, (out.len() - before) as u64);
    }
}

/// A gap in the byte stream longer than this makes the adapter's millisecond timestamps
/// ambiguous (they wrap every 60 s): the next frame is re-anchored on its receive time.
const SLCAN_REANCHOR_NS: u64 = 30_000_000_000;

/// Decodes an SLCAN byte stream: frames the lines, parses them, and turns the adapter's
/// wrapping millisecond timestamps into epoch nanoseconds anchored on the receive time.
#[derive(Debug, Default)]
pub struct SlcanReceiver {
    framer: SlcanFramer,
    unwrapper: Option<TimestampUnwrapper>,
    last_receive_ns: u64,
}

impl SlcanReceiver {
    /// A receiver with an empty line buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets partial lines and the timestamp anchor (after the device reconnects).
    pub fn reset(&mut self) {
        self.framer.reset();
        self.unwrapper = None;
    }

    /// Appends the frames completed by `bytes`, received at `time_ns`, to `out`.
    pub fn handle_bytes(
        &mut self,
        time_ns: u64,
        bytes: &[u8],
        metrics: &SourceMetrics,
        out: &mut Vec<TimedFrame>,
    ) {
        if time_ns.saturating_sub(self.last_receive_ns) > SLCAN_REANCHOR_NS {
            self.unwrapper = None;
        }
        self.last_receive_ns = time_ns;
        let before = out.len();
        let Self {
            framer, unwrapper, ..
        } = self;
        framer.push(bytes, |line| {
            let parsed = line.and_then(parse_line);
            match parsed {
                Ok(SlcanLine::Frame {
                    frame,
                    timestamp_ms,
                }) => {
                    let frame_time = match timestamp_ms {
                        Some(ms) => unwrapper
                            .get_or_insert_with(|| TimestampUnwrapper::new(time_ns))
                            .unwrap_ms(ms),
                        None => time_ns,
                    };
                    out.push(TimedFrame {
                        time_ns: frame_time,
                        frame,
                    });
                }
                // Garbage on the line: counted like a malformed frame.
                Ok(SlcanLine::Unknown(_)) => metrics.count_decode_error("unknown_line"),
                // Replies to our set-up commands and transmit acknowledgements carry no data.
                Ok(_) => {}
                Err(error) => {
                    if !error.is_recoverable() {
                        *unwrapper = None;
                    }
                    metrics.count_decode_error(error.kind());
                }
            }
        });
        Metrics::add(&metrics.frames, (out.len() - before) as u64);
    }
}

#[cfg(test)]
mod tests {
    use decoders::can::{CanFlags, CanFrame, CanId};
    use decoders::wire::cannelloni::encode_datagram;
    use decoders::wire::slcan::encode_frame;

    use super::*;

    fn frame(id: u32, data: &[u8]) -> CanFrame {
        CanFrame::new(CanId::standard(id).expect("id"), CanFlags::empty(), data).expect("frame")
    }

    #[test]
    fn cannelloni_gaps_leave_out_kernel_drops_and_see_resets() {
        // Follows on: no loss.
        assert_eq!(cannelloni_gap(7, 8, 0), Ok(0));
        // Three datagrams lost on the way, none by the kernel.
        assert_eq!(cannelloni_gap(7, 11, 0), Ok(3));
        // Wraps: 254, 255 lost.
        assert_eq!(cannelloni_gap(253, 0, 0), Ok(2));
        // The kernel dropped the three: nothing more is counted.
        assert_eq!(cannelloni_gap(7, 11, 3), Ok(0));
        // 300 dropped by the kernel: the counter moved 300 mod 256 = 44 past; no alias.
        assert_eq!(cannelloni_gap(7, 8 + 44, 300), Ok(0));
        // The kernel dropped 2, the counter skipped 5: 3 lost before the socket.
        assert_eq!(cannelloni_gap(10, 16, 2), Ok(3));
        // A gateway restarting from 0 after 200: a reset, not 55 losses.
        assert_eq!(cannelloni_gap(200, 0, 0), Err(()));
        // A loss of a few across the wrap onto 0 stays a loss.
        assert_eq!(cannelloni_gap(250, 0, 0), Ok(5));
        assert_eq!(cannelloni_gap(9, 0, 0), Err(()));
    }

    #[test]
    fn a_restarted_sender_counts_a_reset() {
        let metrics = SourceMetrics::new("gw");
        let mut receiver = CannelloniReceiver::default();
        let mut out = Vec::new();
        let frame = CanFrame::new(CanId::standard(0x10).expect("id"), CanFlags::empty(), &[1])
            .expect("frame");
        for sequence in [0u8, 1, 2, 3, 0, 1, 5] {
            let mut datagram = Vec::new();
            encode_datagram(sequence, &[frame], &mut datagram);
            receiver.handle_datagram(1, &datagram, &metrics, &mut out);
        }
        assert_eq!(Metrics::get(&metrics.sequence_resets), 1);
        assert_eq!(Metrics::get(&metrics.sequence_gaps), 3);
        assert_eq!(out.len(), 7);
    }

    #[test]
    fn cannelloni_frames_are_stamped_and_gaps_counted() {
        let metrics = SourceMetrics::new("gw");
        let mut receiver = CannelloniReceiver::default();
        let mut out = Vec::new();
        for sequence in [7u8, 8, 11, 12] {
            let mut datagram = Vec::new();
            encode_datagram(
                sequence,
                &[frame(0x100, &[sequence]), frame(0x200, &[])],
                &mut datagram,
            );
            receiver.handle_datagram(u64::from(sequence) * 1000, &datagram, &metrics, &mut out);
        }
        receiver.handle_datagram(99, &[3, 0, 0, 0, 0], &metrics, &mut out);
        assert_eq!(out.len(), 8);
        assert_eq!((out[4].time_ns, out[4].frame.data()), (11_000, &[11u8][..]));
        assert_eq!(
            Metrics::get(&metrics.sequence_gaps),
            2,
            "9 and 10 were lost"
        );
        assert_eq!(Metrics::get(&metrics.frames), 8);
        assert_eq!(metrics.decode_errors().get("bad_version"), Some(&1));
    }

    #[test]
    fn slcan_timestamps_unwrap_from_the_first_receive_time() {
        let metrics = SourceMetrics::new("usb");
        let mut receiver = SlcanReceiver::new();
        let mut bytes = Vec::new();
        encode_frame(&frame(0x123, &[1, 2]), Some(59_990), &mut bytes);
        encode_frame(&frame(0x123, &[3]), Some(5), &mut bytes);
        bytes.extend_from_slice(b"\x07garbage-line\r");
        let mut out = Vec::new();
        let (first, rest) = bytes.split_at(7);
        receiver.handle_bytes(1_000_000_000, first, &metrics, &mut out);
        receiver.handle_bytes(1_000_500_000, rest, &metrics, &mut out);
        let times: Vec<u64> = out.iter().map(|f| f.time_ns).collect();
        assert_eq!(
            times,
            [1_000_500_000, 1_015_500_000],
            "15 ms after the wrap"
        );
        assert_eq!(out[1].frame.data(), &[3]);
        assert_eq!(
            metrics.decode_errors().values().sum::<u64>(),
            1,
            "the garbage line"
        );
    }

    fn native(definition: &str) -> NativeInput {
        let plan = decoders::frame::FramePlan::load("test.toml", definition).expect("valid");
        NativeInput {
            definition: Arc::from(plan.name()),
            framing: plan.framing().clone(),
            by_sync: Vec::new(),
        }
    }

    /// Whole-datagram frames (no length): a counter, no sync.
    const COUNTED: &str = r#"
[frame]
name = "counted"
application = "T"

[frame.counter]
offset = 0
type = "u8"

[[message]]
name = "M"
length = 2

[[message.field]]
name = "v"
offset = 1
type = "u8"
"#;

    /// Delimited frames: sync, a length byte counting the whole frame, xor-8 at the end.
    const DELIMITED: &str = r#"
[frame]
name = "delimited"
application = "T"
sync = [0xA5]
max_length = 16

[frame.length]
offset = 1
type = "u8"
counts = "frame_bytes"

[frame.check]
algorithm = "xor8"
start = 0
end = -1
at = -1

[[message]]
name = "M"
length = 4

[[message.field]]
name = "v"
offset = 2
type = "u8"
"#;

    fn delimited_frame(value: u8) -> Vec<u8> {
        let mut frame = vec![0xA5, 4, value];
        frame.push(frame.iter().fold(0, |x, b| x ^ b));
        frame
    }

    #[test]
    fn whole_datagrams_are_frames_and_counter_gaps_are_counted() {
        let metrics = SourceMetrics::new("sim");
        let mut receiver = DatagramReceiver::new(Some(&native(COUNTED)));
        let mut out = receiver.empty_batch();
        for (counter, time) in [(250u8, 1u64), (251, 2), (254, 3), (0, 4)] {
            receiver.handle_datagram(time, &[counter, 7], &metrics, &mut out);
        }
        assert!(out.can.is_empty());
        let frames: Vec<(u64, &[u8])> = out
            .native
            .iter()
            .map(|f| (f.time_ns, &f.bytes[..]))
            .collect();
        assert_eq!(frames[2], (3, &[254u8, 7][..]));
        assert_eq!(frames.len(), 4);
        assert!(out.native.iter().all(|f| &*f.definition == "counted"));
        assert_eq!(Metrics::get(&metrics.frames), 4);
        assert_eq!(
            Metrics::get(&metrics.sequence_gaps),
            3,
            "252, 253 and 255 lost"
        );
    }

    #[test]
    fn delimited_frames_are_cut_from_datagrams_and_byte_streams_alike() {
        let metrics = SourceMetrics::new("ecu");
        let mut datagrams = DatagramReceiver::new(Some(&native(DELIMITED)));
        let mut out = SourceBatch::default();
        let mut two = delimited_frame(1);
        two.extend_from_slice(b"junk");
        two.extend_from_slice(&delimited_frame(2));
        datagrams.handle_datagram(10, &two, &metrics, &mut out);
        let mut damaged = delimited_frame(3);
        damaged[2] ^= 0xFF;
        datagrams.handle_datagram(11, &damaged, &metrics, &mut out);
        let values: Vec<u8> = out.native.iter().map(|f| f.bytes[2]).collect();
        assert_eq!(values, [1, 2]);
        let errors = metrics.decode_errors();
        assert_eq!(errors.get("bad_check"), Some(&1), "{errors:?}");
        assert!(errors.get("resync").is_some_and(|n| *n >= 1), "{errors:?}");

        // The same frames split byte by byte over serial reads; a reset drops a partial frame.
        let metrics = SourceMetrics::new("tty");
        let mut stream = ByteStreamReceiver::new(Some(&native(DELIMITED)));
        let mut out = SourceBatch::default();
        for (time, byte) in two.iter().enumerate() {
            stream.handle_bytes(time as u64, &[*byte], &metrics, &mut out);
        }
        stream.handle_bytes(99, &delimited_frame(4)[..2], &metrics, &mut out);
        stream.reset();
        stream.handle_bytes(100, &delimited_frame(5), &metrics, &mut out);
        let values: Vec<(u64, u8)> = out.native.iter().map(|f| (f.time_ns, f.bytes[2])).collect();
        assert_eq!(values, [(3, 1), (11, 2), (100, 5)]);
        assert_eq!(Metrics::get(&metrics.frames), 3);
    }
}
