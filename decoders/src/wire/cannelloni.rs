//! cannelloni v2 (CAN over UDP): a checked view over one `DATA` datagram with a lazy frame
//! iterator, and an encoder that packs frames into MTU-sized datagrams.
//!
//! Owns the byte layout of mguentner/cannelloni `doc/udp_format.md` (all fields big-endian).
//! Never does IO, never decides sequence-gap policy (the caller compares
//! [`Datagram::sequence`] values) and never allocates while parsing.
//!
//! Invariants:
//! - Parsing never panics and never reads past the slice; every error carries its byte offset
//!   from the start of the datagram.
//! - [`Frames`] stops after its first error: a corrupt length leaves no way to find the next
//!   record, so guessing would only invent frames.
//! - Bytes left over after `count` frames are reported as one [`DecodeError::TrailingBytes`]
//!   *after* the good frames, so the caller keeps the frames and still counts the datagram as
//!   suspicious (upstream ignores such bytes silently).
//! - Error frames (Linux `CAN_ERR_FLAG`) carry a 29-bit error class, so they are represented
//!   with an extended [`CanId`] plus [`CanFlags::ERROR`]; the encoder writes them back without
//!   the extended bit, as the kernel does.

use std::iter::FusedIterator;

use crate::can::{CanFlags, CanFrame, CanId};
use crate::error::DecodeError;

/// The only protocol version this module speaks.
pub const VERSION: u8 = 2;
/// Op code of a datagram that carries frames; ACK/NACK (1, 2) are never taken.
pub const OP_DATA: u8 = 0;
/// Bytes before the first frame record.
pub const HEADER_LEN: usize = 5;
/// The MTU upstream packs datagrams to, and the default for [`DatagramPacker`].
pub const DEFAULT_MTU: usize = 1500;

/// Byte positions in the header.
mod field {
    use std::ops::Range;

    pub const VERSION: usize = 0;
    pub const OP_CODE: usize = 1;
    pub const SEQUENCE: usize = 2;
    pub const COUNT: Range<usize> = 3..5;
}

/// Linux `can_id` flag bits, as cannelloni puts them on the wire.
const ID_EXTENDED: u32 = 0x8000_0000;
const ID_REMOTE: u32 = 0x4000_0000;
const ID_ERROR: u32 = 0x2000_0000;
/// Bit 7 of the `len` byte marks a CAN FD record (which then has a flags byte).
const LEN_FD: u8 = 0x80;
/// CAN FD flags byte.
const FD_BRS: u8 = 0x01;
const FD_ESI: u8 = 0x02;
/// `can_id` (4) + `len` (1).
const RECORD_HEAD_LEN: usize = 5;

/// A checked cannelloni `DATA` datagram borrowed from the receive buffer.
///
/// Only the header has been validated; frames are decoded lazily by [`Datagram::frames`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram<'a> {
    /// The whole datagram, so frame errors can report offsets from its start.
    bytes: &'a [u8],
    sequence: u8,
    count: u16,
}

/// Checks a datagram's header and returns a view over it.
///
/// Errors: [`DecodeError::Truncated`] below 5 bytes, [`DecodeError::BadVersion`] unless the
/// version is 2, [`DecodeError::UnsupportedType`] unless the op code is `DATA`.
pub fn parse_datagram(bytes: &[u8]) -> Result<Datagram<'_>, DecodeError> {
    // The version is checked before the length so a stray packet from another protocol is
    // reported as what it is, not as a short cannelloni datagram.
    if let Some(&found) = bytes.get(field::VERSION)
        && found != VERSION
    {
        return Err(DecodeError::BadVersion {
            offset: field::VERSION,
            found,
        });
    }
    let header = take(bytes, 0, HEADER_LEN)?;
    let op = header[field::OP_CODE];
    if op != OP_DATA {
        return Err(DecodeError::UnsupportedType {
            offset: field::OP_CODE,
            found: op,
        });
    }
    let count = &header[field::COUNT];
    Ok(Datagram {
        bytes,
        sequence: header[field::SEQUENCE],
        count: u16::from_be_bytes([count[0], count[1]]),
    })
}

impl<'a> Datagram<'a> {
    /// The sender's sequence number; wraps at 256, and a gap means datagrams were lost.
    pub fn sequence(&self) -> u8 {
        self.sequence
    }

    /// How many frames the header announces (the body may hold fewer; see [`Frames`]).
    pub fn count(&self) -> u16 {
        self.count
    }

    /// The whole datagram, header included.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Iterates over the frames, decoding each on demand.
    pub fn frames(&self) -> Frames<'a> {
        Frames {
            bytes: self.bytes,
            pos: HEADER_LEN,
            remaining: self.count,
            done: false,
        }
    }
}

/// Lazy iterator over a datagram's frame records.
///
/// Yields `count` frames, then one [`DecodeError::TrailingBytes`] if bytes remain; after any
/// error it yields nothing more.
#[derive(Debug, Clone)]
pub struct Frames<'a> {
    bytes: &'a [u8],
    /// Offset of the next record; never beyond `bytes.len()`.
    pos: usize,
    remaining: u16,
    done: bool,
}

impl Iterator for Frames<'_> {
    type Item = Result<CanFrame, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.remaining == 0 {
            self.done = true;
            let extra = self.bytes.len().saturating_sub(self.pos);
            return (extra > 0).then_some(Err(DecodeError::TrailingBytes {
                offset: self.pos,
                extra,
            }));
        }
        match parse_record(self.bytes, self.pos) {
            Ok((frame, next)) => {
                self.pos = next;
                self.remaining -= 1;
                Some(Ok(frame))
            }
            Err(err) => {
                self.done = true;
                Some(Err(err))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            (0, Some(0))
        } else {
            (0, Some(usize::from(self.remaining) + 1))
        }
    }
}

impl FusedIterator for Frames<'_> {}

/// Bytes `frame` takes in a datagram.
pub fn encoded_len(frame: &CanFrame) -> usize {
    RECORD_HEAD_LEN + usize::from(frame.is_fd()) + frame.data().len()
}

/// Appends one `DATA` datagram holding `frames` to `out` and returns how many were written.
///
/// The count field is 16 bits, so at most 65 535 frames are written; use [`DatagramPacker`]
/// to respect an MTU. Never fails: every [`CanFrame`] has a wire form.
pub fn encode_datagram(sequence: u8, frames: &[CanFrame], out: &mut Vec<u8>) -> usize {
    let frames = &frames[..frames.len().min(usize::from(u16::MAX))];
    let body: usize = frames.iter().map(encoded_len).sum();
    out.reserve(HEADER_LEN + body);
    // `frames.len()` fits: it was clamped to u16::MAX above.
    let count = u16::try_from(frames.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&[VERSION, OP_DATA, sequence]);
    out.extend_from_slice(&count.to_be_bytes());
    for frame in frames {
        encode_record(frame, out);
    }
    frames.len()
}

/// Splits a frame list into datagrams no larger than an MTU, numbering them in sequence.
///
/// A sans-IO state machine: call [`DatagramPacker::poll_datagram`] until it returns `None`,
/// sending each datagram it appends. An empty list yields no datagram at all.
#[derive(Debug, Clone)]
pub struct DatagramPacker<'f> {
    /// Frames not yet packed.
    frames: &'f [CanFrame],
    sequence: u8,
    mtu: usize,
}

impl<'f> DatagramPacker<'f> {
    /// Packs `frames` into datagrams of at most `mtu` bytes, the first numbered
    /// `first_sequence`.
    pub fn new(frames: &'f [CanFrame], first_sequence: u8, mtu: usize) -> Self {
        Self {
            frames,
            sequence: first_sequence,
            mtu,
        }
    }

    /// The sequence number the next datagram gets; hand it to the next packer so numbering
    /// continues across batches.
    pub fn next_sequence(&self) -> u8 {
        self.sequence
    }

    /// Appends the next datagram to `out` and returns its frame count, or `None` when done.
    ///
    /// Every datagram holds at least one frame, so an MTU smaller than one record still makes
    /// progress (that datagram is then larger than the MTU).
    pub fn poll_datagram(&mut self, out: &mut Vec<u8>) -> Option<usize> {
        if self.frames.is_empty() {
            return None;
        }
        let mut size = HEADER_LEN;
        let mut n = 0;
        for frame in self.frames.iter().take(usize::from(u16::MAX)) {
            let next = size + encoded_len(frame);
            if n > 0 && next > self.mtu {
                break;
            }
            size = next;
            n += 1;
        }
        let (now, later) = self.frames.split_at(n);
        let written = encode_datagram(self.sequence, now, out);
        self.frames = later;
        self.sequence = self.sequence.wrapping_add(1);
        Some(written)
    }
}

/// Decodes the record at `at`; returns the frame and the offset after it.
fn parse_record(bytes: &[u8], at: usize) -> Result<(CanFrame, usize), DecodeError> {
    let head = take(bytes, at, RECORD_HEAD_LEN)?;
    let raw = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let len_byte = head[4];
    let (id, mut flags) = decode_id(raw, at)?;
    let fd = len_byte & LEN_FD != 0;
    let len = usize::from(len_byte & !LEN_FD);
    let max = if fd {
        CanFrame::MAX_FD_LEN
    } else {
        CanFrame::MAX_CLASSIC_LEN
    };
    let bad_length = DecodeError::BadLength {
        offset: at + 4,
        len,
        max,
    };
    if len > max {
        return Err(bad_length);
    }
    let mut pos = at + RECORD_HEAD_LEN;
    if fd {
        flags = flags.with(decode_fd_flags(take(bytes, pos, 1)?[0]));
        pos += 1;
    }
    if raw & ID_REMOTE != 0 {
        if fd {
            return Err(DecodeError::BadFlags {
                offset: at,
                reason: "remote frame marked as CAN FD",
            });
        }
        // `len <= 8` was checked above, so the conversion and `remote` both succeed.
        let dlc = u8::try_from(len).map_err(|_| bad_length)?;
        let mut frame = CanFrame::remote(id, dlc).ok_or(bad_length)?;
        frame.flags = frame.flags.with(flags);
        // Upstream is authoritative: a remote record carries no data bytes.
        return Ok((frame, pos));
    }
    let data = take(bytes, pos, len)?;
    let frame = CanFrame::new(id, flags, data).ok_or(bad_length)?;
    Ok((frame, pos + len))
}

/// Splits a wire `can_id` into the id and the flags it implies.
fn decode_id(raw: u32, offset: usize) -> Result<(CanId, CanFlags), DecodeError> {
    let bits = raw & CanId::MAX_EXTENDED;
    let (id, flags) = if raw & ID_ERROR != 0 {
        (CanId::extended(bits), CanFlags::ERROR)
    } else if raw & ID_EXTENDED != 0 {
        (CanId::extended(bits), CanFlags::empty())
    } else {
        // A standard id with bits 11..28 set cannot come from a real bus.
        (CanId::standard(bits), CanFlags::empty())
    };
    id.map(|id| (id, flags))
        .ok_or(DecodeError::BadCanId { offset, id: bits })
}

fn decode_fd_flags(byte: u8) -> CanFlags {
    let mut flags = CanFlags::FD;
    if byte & FD_BRS != 0 {
        flags = flags.with(CanFlags::BRS);
    }
    if byte & FD_ESI != 0 {
        flags = flags.with(CanFlags::ESI);
    }
    flags
}

fn encode_record(frame: &CanFrame, out: &mut Vec<u8>) {
    let mut raw = frame.id.id();
    if frame.flags.contains(CanFlags::ERROR) {
        raw |= ID_ERROR;
    } else if frame.id.is_extended() {
        raw |= ID_EXTENDED;
    }
    if frame.is_remote() {
        raw |= ID_REMOTE;
    }
    out.extend_from_slice(&raw.to_be_bytes());
    // `CanFrame` keeps `len <= 64`, so it fits the 7 length bits.
    let len = u8::try_from(frame.len()).unwrap_or(u8::MAX) & !LEN_FD;
    if frame.is_fd() {
        let mut fd_flags = 0;
        if frame.flags.contains(CanFlags::BRS) {
            fd_flags |= FD_BRS;
        }
        if frame.flags.contains(CanFlags::ESI) {
            fd_flags |= FD_ESI;
        }
        out.extend_from_slice(&[len | LEN_FD, fd_flags]);
    } else {
        out.push(len);
    }
    out.extend_from_slice(frame.data());
}

/// `n` bytes at `at`, or `Truncated` saying how many were there.
fn take(bytes: &[u8], at: usize, n: usize) -> Result<&[u8], DecodeError> {
    bytes
        .get(at..)
        .and_then(|rest| rest.get(..n))
        .ok_or(DecodeError::Truncated {
            offset: at,
            need: n,
            have: bytes.len().saturating_sub(at),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example from `docs/can-formats.md` §1.
    static EXAMPLE: [u8; 23] = [
        0x02, 0x00, 0x07, 0x00, 0x02, // version 2, DATA, seq 7, 2 frames
        0x00, 0x00, 0x01, 0xA4, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1A, // 0x1A4
        0xD8, 0xFE, 0xF1, 0x00, 0x08, // extended RTR 0x18FEF100, DLC 8
    ];

    /// An FD frame with BRS and 12 bytes, then an error frame.
    static FD_AND_ERROR: [u8; 36] = [
        0x02, 0x00, 0xFF, 0x00, 0x02, //
        0x00, 0x00, 0x07, 0xFF, 0x8C, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, //
        0x20, 0x00, 0x00, 0x04, 0x08, 0, 0, 0x10, 0, 0, 0, 0, 0,
    ];

    #[test]
    fn deconstruct() {
        let dgram = parse_datagram(&EXAMPLE).expect("valid header");
        assert_eq!((dgram.sequence(), dgram.count()), (7, 2));
        let frames: Vec<_> = dgram.frames().collect::<Result<_, _>>().expect("valid");
        assert_eq!(frames[0].id, CanId::standard(0x1A4).expect("id"));
        assert_eq!(frames[0].data(), &[0, 0, 0, 0, 0, 0, 0, 0x1A]);
        assert!(frames[1].is_remote() && frames[1].id.is_extended());
        assert_eq!((frames[1].id.id(), frames[1].len()), (0x18FE_F100, 8));

        let dgram = parse_datagram(&FD_AND_ERROR).expect("valid header");
        let frames: Vec<_> = dgram.frames().collect::<Result<_, _>>().expect("valid");
        assert!(frames[0].is_fd() && frames[0].flags.contains(CanFlags::BRS));
        assert!(!frames[0].flags.contains(CanFlags::ESI));
        assert_eq!(frames[0].data().len(), 12);
        assert!(frames[1].flags.contains(CanFlags::ERROR));
        assert_eq!(frames[1].id.id(), 4);
    }

    #[test]
    fn construct_round_trips_into_a_dirty_buffer() {
        for bytes in [&EXAMPLE[..], &FD_AND_ERROR[..]] {
            let frames: Vec<_> = parse_datagram(bytes)
                .and_then(|d| d.frames().collect::<Result<Vec<_>, _>>())
                .expect("valid");
            let mut out = vec![0xEE; 3];
            let seq = bytes[field::SEQUENCE];
            assert_eq!(encode_datagram(seq, &frames, &mut out), frames.len());
            assert_eq!(&out[..3], &[0xEE; 3]);
            assert_eq!(&out[3..], bytes);
        }
        // 200 classic frames of 13 bytes: 115 fit in 1500 bytes, the rest in the next one.
        let frame = CanFrame::new(CanId::standard(1).expect("id"), CanFlags::empty(), &[7; 8]);
        let frames = vec![frame.expect("frame"); 200];
        let mut packer = DatagramPacker::new(&frames, 255, DEFAULT_MTU);
        let mut out = Vec::new();
        assert_eq!(packer.poll_datagram(&mut out), Some(115));
        assert_eq!(out.len(), HEADER_LEN + 115 * 13);
        assert_eq!(packer.poll_datagram(&mut out), Some(85));
        assert_eq!(
            (packer.poll_datagram(&mut out), packer.next_sequence()),
            (None, 1)
        );
        assert_eq!(parse_datagram(&out[1500..]).map(|d| d.sequence()), Ok(0));
    }

    #[test]
    fn truncated_and_impossible_lengths() {
        assert_eq!(
            parse_datagram(&EXAMPLE[..4]),
            Err(DecodeError::Truncated {
                offset: 0,
                need: 5,
                have: 4
            })
        );
        assert_eq!(
            parse_datagram(&[3, 0, 0, 0, 0]),
            Err(DecodeError::BadVersion {
                offset: 0,
                found: 3
            })
        );
        assert_eq!(
            parse_datagram(&[2, 1, 0, 0, 0]),
            Err(DecodeError::UnsupportedType {
                offset: 1,
                found: 1
            })
        );
        let cut = parse_datagram(&EXAMPLE[..20]).expect("header");
        let results: Vec<_> = cut.frames().collect();
        assert_eq!(results.len(), 2);
        assert_eq!(
            results[1],
            Err(DecodeError::Truncated {
                offset: 18,
                need: 5,
                have: 2
            })
        );
        let mut long = EXAMPLE;
        long[9] = 9; // classic length 9
        let first = parse_datagram(&long).expect("header").frames().next();
        assert_eq!(
            first,
            Some(Err(DecodeError::BadLength {
                offset: 9,
                len: 9,
                max: 8
            }))
        );
        long[9] = 0x80 | 65;
        let first = parse_datagram(&long).expect("header").frames().next();
        assert_eq!(
            first,
            Some(Err(DecodeError::BadLength {
                offset: 9,
                len: 65,
                max: 64
            }))
        );
        let mut extra = EXAMPLE.to_vec();
        extra.extend_from_slice(&[0, 0]);
        let last = parse_datagram(&extra).expect("header").frames().last();
        assert_eq!(
            last,
            Some(Err(DecodeError::TrailingBytes {
                offset: 23,
                extra: 2
            }))
        );
    }
}
