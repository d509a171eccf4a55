//! The frame envelope a definition describes: sync bytes, a length or count field, a sequence
//! counter, a message id and a check value over a byte range.
//!
//! These are the parts shared by whole-datagram decoding ([`super::FramePlan::decode`]), the
//! serial stream framer ([`super::StreamFramer`]) and CAN reassembly
//! ([`super::CompoundAssembler`]). Everything here is a pure function of the bytes.

use serde::Deserialize;

use super::crc::CheckKind;
use super::value::{Endian, FieldLayout, read_uint};
use crate::error::DecodeError;

/// What a length field counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LengthUnit {
    /// Payload bytes: frame length = header + value + trailer.
    PayloadBytes,
    /// 16-bit payload words: frame length = header + 2 × value + trailer.
    Words16,
    /// The whole frame, sync to check value inclusive.
    FrameBytes,
}

/// A length or count field and how it maps to the frame length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LengthField {
    /// Where the field sits (an unsigned integer).
    pub layout: FieldLayout,
    /// What its value counts.
    pub counts: LengthUnit,
    /// Bytes before the payload (sync, length, counter, id…); ignored for `FrameBytes`.
    pub header: usize,
    /// Bytes after the payload (the check value); ignored for `FrameBytes`.
    pub trailer: usize,
}

/// A check value: which algorithm, over which bytes, stored where.
///
/// Positions are byte offsets from the frame start, or from its end when negative (`-2` is
/// the second-last byte), so one definition serves variable-length frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    /// The algorithm.
    pub kind: CheckKind,
    /// First covered byte.
    pub start: i64,
    /// One past the last covered byte.
    pub end: i64,
    /// Where the check value starts; it is [`CheckKind::width`] bytes wide.
    pub at: i64,
    /// Byte order of the stored check value.
    pub endian: Endian,
}

/// The envelope of every frame a definition describes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Framing {
    /// Bytes every frame starts with (may be empty).
    pub sync: Vec<u8>,
    /// Every frame has exactly this many bytes.
    pub fixed_length: Option<usize>,
    /// Frames longer than this are rejected; bounds the stream framer's buffer.
    pub max_length: usize,
    /// A field giving the frame length.
    pub length: Option<LengthField>,
    /// A wrapping sequence counter (unsigned integer) whose gaps reveal loss.
    pub counter: Option<FieldLayout>,
    /// The field whose value selects the message layout.
    pub message_id: Option<FieldLayout>,
    /// The frame's check value.
    pub check: Option<Check>,
}

impl Framing {
    /// Whether frames carry their own length (fixed or a length field), so that a byte stream
    /// can be cut into frames.
    pub fn is_delimited(&self) -> bool {
        self.fixed_length.is_some() || self.length.is_some()
    }

    /// Whether `buf` starts with the sync bytes, as far as `buf` goes.
    pub fn sync_prefix_matches(&self, buf: &[u8]) -> bool {
        let n = buf.len().min(self.sync.len());
        buf[..n] == self.sync[..n]
    }

    /// The length of the frame starting at `buf[0]`: `Ok(None)` if `buf` is too short to tell;
    /// the whole of `buf` when frames carry no length (one frame per datagram).
    pub fn frame_len(&self, buf: &[u8]) -> Result<Option<usize>, DecodeError> {
        if let Some(fixed) = self.fixed_length {
            return Ok(Some(fixed));
        }
        let Some(length) = &self.length else {
            return Ok(Some(buf.len()));
        };
        let Some(value) = length.layout.raw(buf, 0) else {
            return Ok(None);
        };
        let len = usize::try_from(value)
            .ok()
            .and_then(|v| match length.counts {
                LengthUnit::FrameBytes => Some(v),
                LengthUnit::PayloadBytes => {
                    length.header.checked_add(length.trailer)?.checked_add(v)
                }
                LengthUnit::Words16 => v
                    .checked_mul(2)?
                    .checked_add(length.header)?
                    .checked_add(length.trailer),
            });
        match len {
            Some(len) if len <= self.max_length && len >= length.layout.end() => Ok(Some(len)),
            _ => Err(DecodeError::BadLength {
                offset: length.layout.offset,
                len: len.unwrap_or(usize::MAX),
                max: self.max_length,
            }),
        }
    }

    /// Checks the sync bytes and the check value of one whole frame.
    pub fn verify(&self, frame: &[u8]) -> Result<(), DecodeError> {
        if let Some(offset) = self.sync.iter().zip(frame).position(|(a, b)| a != b) {
            return Err(DecodeError::BadSync { offset });
        }
        if frame.len() < self.sync.len() {
            return Err(truncated(0, self.sync.len(), frame.len()));
        }
        match &self.check {
            Some(check) => check.verify(frame),
            None => Ok(()),
        }
    }

    /// The sequence counter of `frame` and its width in bits, if the framing has one.
    pub fn counter(&self, frame: &[u8]) -> Option<(u64, u32)> {
        let layout = self.counter?;
        let bits = layout.bits.map_or(layout.ty.bits(), |(_, w)| u32::from(w));
        Some((layout.raw(frame, 0)?, bits))
    }
}

impl Check {
    /// Verifies the check value of `frame`.
    pub fn verify(&self, frame: &[u8]) -> Result<(), DecodeError> {
        let len = frame.len();
        let width = self.kind.width();
        let (Some(start), Some(end), Some(at)) = (
            resolve(self.start, len),
            resolve(self.end, len),
            resolve(self.at, len),
        ) else {
            return Err(truncated(0, self.min_len(), len));
        };
        let (Some(covered), Some(stored)) = (frame.get(start..end), frame.get(at..at + width))
        else {
            return Err(truncated(at.min(start), self.min_len(), len));
        };
        let computed = self.kind.compute(covered);
        let found = read_uint(stored, self.endian) as u32;
        if computed == found {
            Ok(())
        } else {
            Err(DecodeError::BadCheck {
                offset: at,
                computed,
                found,
            })
        }
    }

    /// The shortest frame for which every check position exists.
    pub fn min_len(&self) -> usize {
        let need = |pos: i64, extra: usize| -> usize {
            if pos >= 0 {
                pos as usize + extra
            } else {
                pos.unsigned_abs() as usize
            }
        };
        need(self.start, 0)
            .max(need(self.end, 0))
            .max(need(self.at, self.kind.width()))
    }
}

/// A position counted from the start (`pos >= 0`) or the end (`pos < 0`) of a `len`-byte frame.
pub fn resolve(pos: i64, len: usize) -> Option<usize> {
    if pos >= 0 {
        let pos = usize::try_from(pos).ok()?;
        (pos <= len).then_some(pos)
    } else {
        len.checked_sub(usize::try_from(pos.unsigned_abs()).ok()?)
    }
}

fn truncated(offset: usize, need: usize, have: usize) -> DecodeError {
    DecodeError::Truncated { offset, need, have }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::value::ValueType;

    /// `AA 55`, length u8 of payload bytes, counter u8, payload, CRC-16/CCITT-FALSE big-endian
    /// over everything before it.
    fn serial() -> Framing {
        Framing {
            sync: vec![0xAA, 0x55],
            max_length: 64,
            length: Some(LengthField {
                layout: FieldLayout::new(2, ValueType::U8, Endian::Little),
                counts: LengthUnit::PayloadBytes,
                header: 4,
                trailer: 2,
            }),
            counter: Some(FieldLayout::new(3, ValueType::U8, Endian::Little)),
            check: Some(Check {
                kind: CheckKind::Crc16CcittFalse,
                start: 0,
                end: -2,
                at: -2,
                endian: Endian::Big,
            }),
            ..Framing::default()
        }
    }

    fn frame(counter: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0xAA, 0x55, payload.len() as u8, counter];
        out.extend_from_slice(payload);
        let crc = CheckKind::Crc16CcittFalse.compute(&out) as u16;
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    #[test]
    fn length_counter_and_check_of_a_good_frame() {
        let framing = serial();
        let bytes = frame(7, &[1, 2, 3]);
        assert_eq!(framing.frame_len(&bytes[..2]), Ok(None));
        assert_eq!(framing.frame_len(&bytes), Ok(Some(9)));
        assert_eq!(framing.verify(&bytes), Ok(()));
        assert_eq!(framing.counter(&bytes), Some((7, 8)));
    }

    #[test]
    fn bad_sync_check_and_length_are_errors() {
        let mut framing = serial();
        let mut bytes = frame(7, &[1, 2, 3]);
        bytes[5] ^= 1;
        assert!(matches!(
            framing.verify(&bytes),
            Err(DecodeError::BadCheck { offset: 7, .. })
        ));
        bytes[1] = 0;
        assert_eq!(
            framing.verify(&bytes),
            Err(DecodeError::BadSync { offset: 1 })
        );
        framing.max_length = 8;
        assert!(matches!(
            framing.frame_len(&bytes),
            Err(DecodeError::BadLength { len: 9, .. })
        ));
        assert!(matches!(
            framing.verify(&[0xAA]),
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn words_and_whole_frame_lengths() {
        let mut framing = serial();
        let length = framing.length.as_mut().map(|l| {
            l.counts = LengthUnit::Words16;
            *l
        });
        assert!(length.is_some());
        assert_eq!(framing.frame_len(&[0xAA, 0x55, 3, 0]), Ok(Some(12)));
        if let Some(l) = framing.length.as_mut() {
            l.counts = LengthUnit::FrameBytes;
        }
        assert_eq!(framing.frame_len(&[0xAA, 0x55, 9, 0]), Ok(Some(9)));
        assert!(framing.frame_len(&[0xAA, 0x55, 2, 0]).is_err());
    }

    #[test]
    fn positions_resolve_from_either_end() {
        assert_eq!(resolve(0, 5), Some(0));
        assert_eq!(resolve(5, 5), Some(5));
        assert_eq!(resolve(6, 5), None);
        assert_eq!(resolve(-2, 5), Some(3));
        assert_eq!(resolve(-6, 5), None);
        assert_eq!(resolve(i64::MIN, 5), None);
    }
}
