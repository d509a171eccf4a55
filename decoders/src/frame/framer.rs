//! Cutting a byte stream (a serial link) into whole frames of a definition: find the sync
//! bytes, read the length, verify the check; on a bad frame drop one byte and resynchronise.
//!
//! Bounded: at most `max_length` bytes are held between calls, however the stream is split, so
//! a stream of garbage cannot grow memory. Nothing is silent: skipped bytes, resyncs, bad
//! lengths, check failures and sequence-counter gaps are counted in [`FramerStats`]. Any split
//! of the same stream into chunks gives the same frames and the same counts.

use super::framing::Framing;
use crate::error::DecodeError;

/// Counters of what the framer saw, for the daemon's metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FramerStats {
    /// Frames emitted (sync, length and check all good).
    pub frames: u64,
    /// Runs of bytes dropped while looking for the next good frame.
    pub resyncs: u64,
    /// Bytes dropped in those runs.
    pub skipped_bytes: u64,
    /// Candidate frames whose length field was impossible.
    pub bad_lengths: u64,
    /// Candidate frames whose check value did not match.
    pub check_failures: u64,
    /// Times the sequence counter did not follow the previous frame's.
    pub counter_gaps: u64,
    /// Frames missing according to the counter (sum of the gaps).
    pub lost_frames: u64,
}

/// Why a framer cannot be built for a definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FramerError {
    /// The frames carry neither a fixed length nor a length field: a byte stream cannot be cut.
    #[error("frames need fixed_length or a [frame.length] field to be read from a byte stream")]
    NotDelimited,
    /// `max_length` is smaller than the fixed length or than the header needed to read the
    /// length field.
    #[error("max_length {max} is too small for frames needing {need} bytes")]
    MaxTooSmall {
        /// The definition's `max_length`.
        max: usize,
        /// Bytes the framing needs at least.
        need: usize,
    },
}

/// Splits a byte stream into the frames of one definition.
#[derive(Debug, Clone)]
pub struct StreamFramer {
    framing: Framing,
    /// Bytes carried over between pushes; never more than `framing.max_length`.
    buf: Vec<u8>,
    stats: FramerStats,
    /// Follows the counter of emitted frames, to detect gaps.
    sequence: SequenceTracker,
    /// Inside a run of dropped bytes (one resync per run).
    skipping: bool,
}

impl StreamFramer {
    /// A framer for `framing` (usually [`super::FramePlan::framing`]).
    pub fn new(framing: &Framing) -> Result<Self, FramerError> {
        if !framing.is_delimited() || framing.fixed_length == Some(0) || framing.max_length == 0 {
            return Err(FramerError::NotDelimited);
        }
        let need = [
            framing.fixed_length.unwrap_or(0),
            framing.length.map_or(0, |l| l.layout.end()),
            framing.sync.len(),
        ]
        .into_iter()
        .max()
        .unwrap_or(0);
        if need > framing.max_length {
            let max = framing.max_length;
            return Err(FramerError::MaxTooSmall { max, need });
        }
        Ok(Self {
            framing: framing.clone(),
            buf: Vec::with_capacity(framing.max_length),
            stats: FramerStats::default(),
            sequence: SequenceTracker::new(),
            skipping: false,
        })
    }

    /// Feeds `chunk` and calls `on_frame` with every whole, verified frame it completes.
    pub fn push(&mut self, mut chunk: &[u8], mut on_frame: impl FnMut(&[u8])) {
        while !chunk.is_empty() {
            let room = self.framing.max_length - self.buf.len();
            let (now, rest) = chunk.split_at(room.min(chunk.len()));
            self.buf.extend_from_slice(now);
            chunk = rest;
            let mut used = self.drain(&mut on_frame);
            if used == 0 && self.buf.len() == self.framing.max_length {
                // Unreachable given the checks in `new`; keeps the loop finite regardless.
                self.skip(1);
                used = 1;
            }
            self.buf.drain(..used);
        }
    }

    /// What the framer has counted so far.
    pub fn stats(&self) -> FramerStats {
        self.stats
    }

    /// Bytes held for the next push.
    pub fn pending_len(&self) -> usize {
        self.buf.len()
    }

    /// Forgets buffered bytes and the last counter, e.g. after the port was reopened.
    pub fn reset(&mut self) {
        self.buf.clear();
        self.sequence.reset();
        self.skipping = false;
    }

    /// Emits every frame found in the buffer; returns how many bytes are used up.
    fn drain(&mut self, on_frame: &mut impl FnMut(&[u8])) -> usize {
        let mut start = 0;
        loop {
            let skip = sync_candidate(&self.framing.sync, &self.buf[start..]);
            self.skip(skip);
            start += skip;
            let avail = &self.buf[start..];
            if avail.len() < self.framing.sync.len().max(1) {
                return start;
            }
            let verdict = match self.framing.frame_len(avail) {
                Ok(None) => return start,
                Ok(Some(len)) if len > avail.len() => return start,
                Ok(Some(len)) => self.framing.verify(&avail[..len]).map(|()| len),
                Err(error) => Err(error),
            };
            match verdict {
                Ok(len) => {
                    let frame = &self.buf[start..start + len];
                    let counter = self.framing.counter(frame);
                    on_frame(frame);
                    self.emitted(counter);
                    start += len;
                }
                Err(error) => {
                    match error {
                        DecodeError::BadCheck { .. } => self.stats.check_failures += 1,
                        DecodeError::BadLength { .. } => self.stats.bad_lengths += 1,
                        _ => {}
                    }
                    self.skip(1);
                    start += 1;
                }
            }
        }
    }

    fn skip(&mut self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        if !self.skipping {
            self.stats.resyncs += 1;
            self.skipping = true;
        }
        self.stats.skipped_bytes += bytes as u64;
    }

    fn emitted(&mut self, counter: Option<(u64, u32)>) {
        self.stats.frames += 1;
        self.skipping = false;
        if let Some((value, bits)) = counter {
            let lost = self.sequence.observe(value, bits);
            if lost != 0 {
                self.stats.counter_gaps += 1;
                self.stats.lost_frames += lost;
            }
        }
    }
}

/// Follows a wrapping sequence counter and reports how many values were skipped.
///
/// Used by [`StreamFramer`]; a daemon decoding whole datagrams feeds it
/// [`Framing::counter`] itself. The first value after creation or [`SequenceTracker::reset`]
/// reports no gap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SequenceTracker {
    last: Option<u64>,
}

impl SequenceTracker {
    /// A tracker that has seen no value yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `value` of a `bits`-wide counter; returns how many values were skipped since the
    /// previous one (0 when it follows on, or for the first value).
    pub fn observe(&mut self, value: u64, bits: u32) -> u64 {
        let mask = if bits >= 64 {
            u64::MAX
        } else {
            (1u64 << bits) - 1
        };
        let gap = self
            .last
            .map_or(0, |last| value.wrapping_sub(last.wrapping_add(1)) & mask);
        self.last = Some(value & mask);
        gap
    }

    /// Forgets the last value (after a reconnect, when a jump is expected).
    pub fn reset(&mut self) {
        self.last = None;
    }
}

/// Offset of the first position in `buf` where a frame could start: where the sync bytes
/// begin, or where a prefix of them ends the buffer. `buf.len()` if there is none.
fn sync_candidate(sync: &[u8], buf: &[u8]) -> usize {
    let Some(&first) = sync.first() else {
        return 0;
    };
    let mut from = 0;
    while let Some(i) = buf[from..].iter().position(|&b| b == first) {
        let at = from + i;
        let rest = &buf[at..];
        let n = rest.len().min(sync.len());
        if rest[..n] == sync[..n] {
            return at;
        }
        from = at + 1;
    }
    buf.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::FramePlan;

    const SERIAL: &str = include_str!("../../definitions/example_serial_ecu.toml");

    fn framer() -> StreamFramer {
        let plan = FramePlan::load("example_serial_ecu.toml", SERIAL).expect("loads");
        StreamFramer::new(plan.framing()).expect("delimited")
    }

    fn frame(counter: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0xAA, 0x55, payload.len() as u8, counter, 2];
        out.extend_from_slice(payload);
        let crc = crate::frame::CheckKind::Crc16CcittFalse.compute(&out[2..]) as u16;
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    fn collect(framer: &mut StreamFramer, chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for chunk in chunks {
            framer.push(chunk, |f| out.push(f.to_vec()));
        }
        out
    }

    #[test]
    fn garbage_bad_checks_and_counter_gaps_are_counted() {
        let (a, b, c) = (frame(1, &[1, 2]), frame(2, &[3]), frame(5, &[]));
        let mut bad = frame(3, &[9, 9]);
        bad[5] ^= 0xFF;
        let stream = [
            &[0x00, 0xAA, 0x01][..],
            &a,
            &bad,
            &b,
            &[0xAA, 0x55, 0xFF],
            &c,
        ]
        .concat();
        let mut framer = framer();
        let frames = collect(&mut framer, &[&stream]);
        assert_eq!(frames, vec![a, b, c]);
        let stats = framer.stats();
        assert_eq!(stats.frames, 3);
        assert_eq!(stats.check_failures, 1);
        assert_eq!(stats.resyncs, 3);
        assert_eq!(stats.skipped_bytes, 3 + 9 + 3);
        assert_eq!((stats.counter_gaps, stats.lost_frames), (1, 2));
        assert!(framer.stats().bad_lengths >= 1, "{stats:?}");
    }

    #[test]
    fn holds_a_partial_frame_and_never_more_than_max_length() {
        let a = frame(1, &[7; 20]);
        let mut framer = framer();
        assert!(collect(&mut framer, &[&a[..10]]).is_empty());
        assert_eq!(framer.pending_len(), 10);
        assert_eq!(collect(&mut framer, &[&a[10..]]), vec![a]);
        let garbage = [0x55u8; 1000];
        assert!(collect(&mut framer, &[&garbage]).is_empty());
        assert_eq!(framer.pending_len(), 0);
        framer.push(&[0xAA; 500], |_| {});
        assert!(framer.pending_len() <= 64);
    }

    #[test]
    fn sequence_tracker_wraps_at_the_counter_width() {
        let mut tracker = SequenceTracker::new();
        assert_eq!(tracker.observe(254, 8), 0);
        assert_eq!(tracker.observe(255, 8), 0);
        assert_eq!(tracker.observe(0, 8), 0);
        assert_eq!(tracker.observe(3, 8), 2);
        assert_eq!(tracker.observe(1, 8), 253);
        tracker.reset();
        assert_eq!(tracker.observe(9, 4), 0);
        assert_eq!(tracker.observe(0, 4), 6);
    }

    #[test]
    fn undelimited_framing_is_refused() {
        let framing = Framing {
            max_length: 10,
            ..Framing::default()
        };
        assert_eq!(
            StreamFramer::new(&framing).err(),
            Some(FramerError::NotDelimited)
        );
    }
}
