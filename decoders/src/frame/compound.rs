//! Compound messages on CAN: one message (sync, count, payload, check) spread over consecutive
//! frames of one CAN id, reassembled into the bytes a [`super::FramePlan`] decodes.
//!
//! A frame whose data starts with the sync bytes begins a message, abandoning (and counting)
//! any incomplete one: real captures drop frames, and the next sync is the only safe place to
//! start again. Frames arriving with no message begun are counted as stray. A message whose
//! length is impossible or whose check fails is counted and never emitted. Memory is bounded by
//! the definition's `max_length`. The caller filters by CAN id; this type sees only data bytes.

use super::framer::FramerError;
use super::framing::Framing;

/// Counters of what reassembly saw, for the daemon's metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompoundStats {
    /// Messages completed and verified.
    pub messages: u64,
    /// Messages abandoned because a new sync arrived first (a frame was lost).
    pub incomplete: u64,
    /// Messages whose check value did not match.
    pub check_failures: u64,
    /// Messages whose length field was impossible.
    pub bad_lengths: u64,
    /// Frames that arrived while no message was begun.
    pub stray_frames: u64,
}

/// Reassembles compound messages from the data of consecutive CAN frames of one id.
#[derive(Debug, Clone)]
pub struct CompoundAssembler {
    framing: Framing,
    /// The message being assembled; empty when none is begun.
    buf: Vec<u8>,
    stats: CompoundStats,
    /// `buf` holds the message returned last; cleared on the next frame.
    emitted: bool,
}

impl CompoundAssembler {
    /// An assembler for `framing`, which needs sync bytes and a length (fixed or a field).
    pub fn new(framing: &Framing) -> Result<Self, FramerError> {
        if framing.sync.is_empty() || !framing.is_delimited() {
            return Err(FramerError::NotDelimited);
        }
        Ok(Self {
            framing: framing.clone(),
            buf: Vec::with_capacity(framing.max_length),
            stats: CompoundStats::default(),
            emitted: false,
        })
    }

    /// Takes the data of the next CAN frame; returns the whole message once its last frame
    /// arrives and its check passes (CAN padding after the message end is ignored).
    pub fn handle_frame(&mut self, data: &[u8]) -> Option<&[u8]> {
        if self.emitted {
            // The slice handed out last time is no longer borrowed: forget it.
            self.buf.clear();
            self.emitted = false;
        }
        if data.starts_with(&self.framing.sync) {
            if !self.buf.is_empty() {
                self.stats.incomplete += 1;
            }
            self.buf.clear();
        } else if self.buf.is_empty() {
            self.stats.stray_frames += 1;
            return None;
        }
        let room = self.framing.max_length.saturating_sub(self.buf.len());
        self.buf.extend_from_slice(&data[..data.len().min(room)]);
        let len = match self.framing.frame_len(&self.buf) {
            Ok(Some(len)) if len <= self.buf.len() => len,
            Ok(_) => return None,
            Err(_) => {
                self.stats.bad_lengths += 1;
                self.buf.clear();
                return None;
            }
        };
        self.buf.truncate(len);
        match self.framing.verify(&self.buf) {
            Ok(()) => {
                self.stats.messages += 1;
                self.emitted = true;
                Some(&self.buf)
            }
            Err(_) => {
                self.stats.check_failures += 1;
                self.buf.clear();
                None
            }
        }
    }

    /// What reassembly has counted so far.
    pub fn stats(&self) -> CompoundStats {
        self.stats
    }

    /// Forgets any partial message, e.g. after the bus was reopened.
    pub fn reset(&mut self) {
        self.buf.clear();
        self.emitted = false;
    }
}
