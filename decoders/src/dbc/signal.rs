//! Bit-level decoding and encoding of one DBC signal: [`BitLayout`], precomputed from a
//! [`Signal`] at load time so the per-frame path is one load of at most 16 bytes, one shift and
//! one mask (about 3 ns a signal in release builds).
//!
//! Never allocates and never panics on any input: a signal that does not fit in the bytes given
//! decodes to `None`, and encoding reports why it could not write instead of truncating.

use super::{ByteOrder, Multiplexing, Signal, ValueType};

/// Why a physical value could not be encoded into a frame.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum EncodeError {
    /// The physical value is NaN or infinite, or scaling made it so (scale 0).
    #[error("value {value} is not finite after scaling")]
    NotFinite {
        /// The physical value asked for.
        value: f64,
    },
    /// The raw value the physical value needs does not fit the signal's bits.
    #[error("raw value {raw} outside {min}..={max}")]
    OutOfRange {
        /// The rounded raw value the physical value maps to.
        raw: f64,
        /// Smallest raw value the signal holds.
        min: f64,
        /// Largest raw value the signal holds (rounded to f64).
        max: f64,
    },
    /// Raw bits wider than the signal (from [`BitLayout::write_raw`]).
    #[error("raw value {raw:#x} wider than {length} bits")]
    RawTooWide {
        /// The raw value given.
        raw: u64,
        /// The signal's width.
        length: u16,
    },
    /// The buffer ends before the signal's last byte.
    #[error("buffer too short: need {need} bytes, have {have}")]
    BufferTooShort {
        /// Bytes the signal reaches.
        need: usize,
        /// Bytes given.
        have: usize,
    },
    /// The layout's length is outside 1..=64 bits, so no bits can be written.
    #[error("signal length {length} outside 1..=64")]
    InvalidLayout {
        /// The impossible length.
        length: u16,
    },
}

/// Where a signal's bits are and how they become a physical value, precomputed for speed.
///
/// Invariant: for a valid layout (length 1..=64) the signal lies in `span <= 9` consecutive bytes
/// starting at `first_byte`, and its raw value is `(window >> shift) & mask` where `window` is
/// those bytes read as one integer in the signal's byte order. When the frame has at least 8
/// bytes and `span <= 8` (nearly every classic CAN signal), any 8-byte window covering the
/// signal is read as one `u64` instead, shifted by an amount derived from `lsb_pos`. An
/// invalid layout has `span == 0` and never decodes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BitLayout {
    byte_order: ByteOrder,
    start_bit: u16,
    length: u16,
    signed: bool,
    value_type: ValueType,
    scale: f64,
    offset: f64,
    first_byte: usize,
    span: usize,
    shift: u32,
    /// Position of the least significant bit, counted from bit 0 of byte 0 upwards (Intel)
    /// or from bit 7 of byte 0 in reading order (Motorola); lets `raw` shift any window.
    lsb_pos: usize,
    mask: u64,
    /// `64 - length`, so sign extension is two shifts with no branch on the width.
    sign_shift: u32,
    /// The word-field form of an integer signal in the first 8 bytes (see
    /// [`Self::is_word_field`]): raw = `(words[big_word].rotate_left(rotate) & keep) as i64 >>
    /// field_shift`. The rotate brings the most significant bit to bit 63 when signed, or to
    /// bit 62 when unsigned with bit 63 masked off, so the one arithmetic shift drops the bits
    /// below the signal and extends its sign or zeros. A rotate, not a left shift, so that
    /// bit 63 of the word still reaches bit 62. The raw value is then an `i64`, whose
    /// conversion to `f64` is a single instruction where a `u64`'s is several.
    keep: u64,
    rotate: u8,
    field_shift: u8,
    /// The big-endian word (Motorola) rather than the little-endian one (Intel).
    big_word: bool,
}

impl BitLayout {
    /// An unsigned-or-signed integer layout with scale 1 and offset 0.
    ///
    /// `start_bit` is as the DBC writes it: the least significant bit for Intel, the most
    /// significant bit in sawtooth numbering for Motorola. A `length` outside 1..=64 gives a
    /// layout that never decodes or encodes.
    pub fn new(byte_order: ByteOrder, start_bit: u16, length: u16, signed: bool) -> Self {
        let valid = (1..=64).contains(&length);
        let start = usize::from(start_bit);
        let len = usize::from(length.max(1));
        // Motorola positions are counted from the MSB of byte 0 ("big-endian linear"), in
        // which walking to less significant bits is simply +1.
        let (last_byte, shift, lsb_pos) = match byte_order {
            ByteOrder::LittleEndian => ((start + len - 1) / 8, start % 8, start),
            ByteOrder::BigEndian => {
                let lsb = (start / 8) * 8 + 7 - start % 8 + len - 1;
                (lsb / 8, 7 - lsb % 8, lsb)
            }
        };
        let first_byte = start / 8;
        let (big_word, lsb) = match byte_order {
            ByteOrder::LittleEndian => (false, lsb_pos),
            ByteOrder::BigEndian => (true, 63usize.wrapping_sub(lsb_pos)),
        };
        let (top, keep): (usize, u64) = if signed {
            (63, u64::MAX)
        } else {
            (62, u64::MAX >> 1)
        };
        // Only meaningful when the signal lies in the first word (`is_word_field`); the
        // arithmetic is kept in range for every other layout so building one never panics.
        let msb = lsb.wrapping_add(len - 1);
        Self {
            byte_order,
            start_bit,
            length,
            signed,
            value_type: ValueType::Integer,
            scale: 1.0,
            offset: 0.0,
            first_byte,
            span: if valid { last_byte - first_byte + 1 } else { 0 },
            shift: shift as u32,
            lsb_pos,
            mask: u64::MAX >> (64 - len.min(64)),
            sign_shift: 64 - len.min(64) as u32,
            keep,
            rotate: ((top + 64).wrapping_sub(msb) % 64) as u8,
            field_shift: ((top + 1).saturating_sub(len.min(64))) as u8,
            big_word,
        }
    }

    /// The same layout with its raw bits read as `value_type`.
    #[must_use]
    pub fn with_value_type(mut self, value_type: ValueType) -> Self {
        self.value_type = value_type;
        self
    }

    /// The same layout with physical = raw × `scale` + `offset`.
    #[must_use]
    pub fn with_scaling(mut self, scale: f64, offset: f64) -> Self {
        self.scale = scale;
        self.offset = offset;
        self
    }

    /// Intel or Motorola numbering.
    pub fn byte_order(&self) -> ByteOrder {
        self.byte_order
    }

    /// Start bit as the DBC writes it.
    pub fn start_bit(&self) -> u16 {
        self.start_bit
    }

    /// Width in bits.
    pub fn length(&self) -> u16 {
        self.length
    }

    /// Whether integer raw values are two's complement.
    pub fn signed(&self) -> bool {
        self.signed
    }

    /// Integer or IEEE float.
    pub fn value_type(&self) -> ValueType {
        self.value_type
    }

    /// Whether the length is 1..=64, so the layout can decode at all.
    pub fn is_valid(&self) -> bool {
        self.span != 0
    }

    /// How many payload bytes the signal's bits reach (`usize::MAX` for an invalid layout).
    pub fn bytes_needed(&self) -> usize {
        if self.is_valid() {
            self.first_byte + self.span
        } else {
            usize::MAX
        }
    }

    /// The raw bits, or `None` if the signal does not fit in `data`.
    #[inline]
    pub fn raw(&self, data: &[u8]) -> Option<u64> {
        let end = self.first_byte + self.span;
        if !self.is_valid() || data.len() < end {
            return None;
        }
        if self.span <= 8 && data.len() >= 8 {
            return self.raw_from_word(data);
        }
        let window = data.get(self.first_byte..end)?;
        // Truncation to u64 is intended: the mask keeps at most 64 bits.
        Some(((self.load(window) >> self.shift) as u64) & self.mask)
    }

    /// Whether the signal lies within the first 8 payload bytes, so that
    /// [`Self::raw_in_first_word`] can read it.
    pub fn in_first_word(&self) -> bool {
        self.is_valid() && self.first_byte + self.span <= 8
    }

    /// The raw bits of a signal that is [`Self::in_first_word`], from an 8-byte payload read
    /// once as a little-endian and a big-endian integer: a frame's signals then share one load
    /// and need no bounds check each.
    #[inline]
    pub fn raw_in_first_word(&self, little: u64, big: u64) -> u64 {
        let word = match self.byte_order {
            ByteOrder::LittleEndian => little >> self.lsb_pos,
            ByteOrder::BigEndian => big >> (63 - self.lsb_pos),
        };
        word & self.mask
    }

    /// Whether [`Self::physical_in_first_word`] decodes this layout: an integer signal within
    /// the first 8 bytes, except an unsigned 64-bit one, whose raw value has no room in an
    /// `i64`.
    pub fn is_word_field(&self) -> bool {
        let integer = matches!(self.value_type, ValueType::Integer);
        self.in_first_word() && integer && (self.signed || self.length < 64)
    }

    /// The physical value of an [`Self::is_word_field`] layout from an 8-byte payload read as
    /// `[little-endian, big-endian]` words, with no branch on byte order, signedness or width;
    /// equal, bit for bit, to [`Self::physical`] on those bytes. Meaningless for any other
    /// layout.
    #[inline]
    pub fn physical_in_first_word(&self, words: &[u64; 2]) -> f64 {
        self.physical_in_word(words[usize::from(self.big_word)])
    }

    /// [`Self::physical_in_first_word`] given only the word this layout reads
    /// ([`Self::reads_big_word`]), so that a message whose signals share a byte order picks
    /// the word once per frame rather than once per signal.
    #[inline]
    pub fn physical_in_word(&self, word: u64) -> f64 {
        let raw =
            ((word.rotate_left(u32::from(self.rotate)) & self.keep) as i64) >> self.field_shift;
        raw as f64 * self.scale + self.offset
    }

    /// Whether [`Self::physical_in_word`] takes the big-endian word (Motorola) rather than the
    /// little-endian one (Intel).
    pub fn reads_big_word(&self) -> bool {
        self.big_word
    }

    /// The physical value, or `None` if the signal does not fit in `data`.
    #[inline]
    pub fn physical(&self, data: &[u8]) -> Option<f64> {
        self.raw(data).map(|raw| self.raw_to_physical(raw))
    }

    /// Sign extension or float reinterpretation of `raw`, then raw × scale + offset.
    #[inline]
    pub fn raw_to_physical(&self, raw: u64) -> f64 {
        let value = match self.value_type {
            ValueType::Integer if self.signed => {
                (((raw << self.sign_shift) as i64) >> self.sign_shift) as f64
            }
            ValueType::Integer => raw as f64,
            ValueType::Float32 => f64::from(f32::from_bits(raw as u32)),
            ValueType::Float64 => f64::from_bits(raw),
        };
        value * self.scale + self.offset
    }

    /// The raw bits for `physical`: (physical − offset) / scale rounded to the nearest integer
    /// (or converted to the float type), checked against the signal's width.
    pub fn physical_to_raw(&self, physical: f64) -> Result<u64, EncodeError> {
        let scaled = (physical - self.offset) / self.scale;
        match self.value_type {
            ValueType::Integer => self.integer_raw(physical, scaled.round()),
            ValueType::Float32 => {
                let narrowed = scaled as f32;
                if scaled.is_finite() && narrowed.is_infinite() {
                    let max = f64::from(f32::MAX);
                    return Err(EncodeError::OutOfRange {
                        raw: scaled,
                        min: -max,
                        max,
                    });
                }
                Ok(u64::from(narrowed.to_bits()))
            }
            ValueType::Float64 => Ok(scaled.to_bits()),
        }
    }

    /// Encodes `physical` into `data`, leaving every other bit untouched.
    pub fn encode(&self, physical: f64, data: &mut [u8]) -> Result<(), EncodeError> {
        let raw = self.physical_to_raw(physical)?;
        self.write_raw(raw, data)
    }

    /// Writes raw bits into `data`, leaving every other bit untouched.
    pub fn write_raw(&self, raw: u64, data: &mut [u8]) -> Result<(), EncodeError> {
        if !self.is_valid() {
            return Err(EncodeError::InvalidLayout {
                length: self.length,
            });
        }
        if raw & !self.mask != 0 {
            return Err(EncodeError::RawTooWide {
                raw,
                length: self.length,
            });
        }
        let have = data.len();
        let need = self.bytes_needed();
        let window = data
            .get_mut(self.first_byte..need)
            .ok_or(EncodeError::BufferTooShort { need, have })?;
        let field = u128::from(self.mask) << self.shift;
        let word = (self.load(window) & !field) | (u128::from(raw) << self.shift);
        self.store(word, window);
        Ok(())
    }

    /// The common case: a frame of 8 bytes or more and a signal within 8 bytes. Any 8-byte
    /// window that covers the signal works; this one is a fixed-size load with no copy loop.
    #[inline]
    fn raw_from_word(&self, data: &[u8]) -> Option<u64> {
        let base = self.first_byte.min(data.len() - 8);
        let bytes: [u8; 8] = data.get(base..base + 8)?.try_into().ok()?;
        let word = match self.byte_order {
            ByteOrder::LittleEndian => u64::from_le_bytes(bytes) >> (self.lsb_pos - 8 * base),
            ByteOrder::BigEndian => u64::from_be_bytes(bytes) >> (8 * base + 63 - self.lsb_pos),
        };
        Some(word & self.mask)
    }

    /// The window's bytes as one integer in the signal's byte order (`window.len() <= 9`).
    #[inline]
    fn load(&self, window: &[u8]) -> u128 {
        let mut buf = [0u8; 16];
        match self.byte_order {
            ByteOrder::LittleEndian => {
                buf[..window.len()].copy_from_slice(window);
                u128::from_le_bytes(buf)
            }
            ByteOrder::BigEndian => {
                buf[16 - window.len()..].copy_from_slice(window);
                u128::from_be_bytes(buf)
            }
        }
    }

    /// Inverse of [`Self::load`].
    fn store(&self, word: u128, window: &mut [u8]) {
        let n = window.len();
        match self.byte_order {
            ByteOrder::LittleEndian => window.copy_from_slice(&word.to_le_bytes()[..n]),
            ByteOrder::BigEndian => window.copy_from_slice(&word.to_be_bytes()[16 - n..]),
        }
    }

    /// Range-checks a rounded integer raw value; the bounds are exact powers of two so the
    /// comparison is exact even for 64-bit signals.
    fn integer_raw(&self, physical: f64, raw: f64) -> Result<u64, EncodeError> {
        if !raw.is_finite() {
            return Err(EncodeError::NotFinite { value: physical });
        }
        let bits = i32::from(self.length.clamp(1, 64));
        let (min, end) = if self.signed {
            (-(2f64.powi(bits - 1)), 2f64.powi(bits - 1))
        } else {
            (0.0, 2f64.powi(bits))
        };
        if raw < min || raw >= end {
            return Err(EncodeError::OutOfRange {
                raw,
                min,
                max: end - 1.0,
            });
        }
        if self.signed {
            Ok((raw as i64) as u64 & self.mask)
        } else {
            Ok(raw as u64)
        }
    }
}

impl Signal {
    /// The signal's bit layout and scaling, for decoding frames.
    pub fn layout(&self) -> BitLayout {
        BitLayout::new(self.byte_order, self.start_bit, self.length, self.signed)
            .with_value_type(self.value_type)
            .with_scaling(self.scale, self.offset)
    }
}

impl Multiplexing {
    /// Whether a signal with this role is present when its switch has raw value `switch_raw`.
    ///
    /// Signals that are not multiplexed are always present; the caller decodes the switch
    /// named in [`Multiplexing::Multiplexed`] and passes its raw value.
    pub fn is_present_for(&self, switch_raw: u64) -> bool {
        match self {
            Self::None | Self::Multiplexor => true,
            Self::Multiplexed { ranges, .. } => ranges
                .iter()
                .any(|&(low, high)| (low..=high).contains(&switch_raw)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    /// Byte i of D holds 0x12, 0x34, … so every nibble in a vector can be traced by eye.
    static D: [u8; 8] = [0x12, 0x34, 0x56, 0x78, 0x9A, 0xBC, 0xDE, 0xF0];
    /// D plus a ninth byte, for 64-bit signals that do not start on a byte boundary.
    static D9: [u8; 9] = [0x12, 0x34, 0x56, 0x78, 0x9A, 0xBC, 0xDE, 0xF0, 0x0F];
    static ONES: [u8; 8] = [0xFF; 8];

    fn intel(start: u16, len: u16, signed: bool) -> BitLayout {
        BitLayout::new(ByteOrder::LittleEndian, start, len, signed)
    }

    fn motorola(start: u16, len: u16, signed: bool) -> BitLayout {
        BitLayout::new(ByteOrder::BigEndian, start, len, signed)
    }

    #[test]
    fn intel_vectors() {
        // Little-endian word of D: 0xF0DE_BC9A_7856_3412.
        // start 0, len 8: byte 0 = 0x12 = 18.
        assert_eq!(intel(0, 8, false).physical(&D), Some(18.0));
        // start 4, len 12: 0x3412 >> 4 = 0x341 = 833.
        assert_eq!(intel(4, 12, false).physical(&D), Some(833.0));
        // start 12, len 9: 0x7856_3412 >> 12 = 0x78563; & 0x1FF = 0x163 = 355, top bit set,
        // so signed it is 355 - 512 = -157.
        assert_eq!(intel(12, 9, false).physical(&D), Some(355.0));
        assert_eq!(intel(12, 9, true).physical(&D), Some(-157.0));
        // start 19, len 5: bits 7..3 of byte 2 (0x56 = 0101_0110) = 01010 = 0x0A.
        assert_eq!(intel(19, 5, false).raw(&D), Some(0x0A));
        // start 63, len 1: top bit of 0xF0 = 1; signed 1-bit 1 is -1.
        assert_eq!(intel(63, 1, false).physical(&D), Some(1.0));
        assert_eq!(intel(63, 1, true).physical(&D), Some(-1.0));
    }

    #[test]
    fn motorola_vectors() {
        // start 7, len 16: bytes 0..2 big-endian = 0x1234 = 4660.
        assert_eq!(motorola(7, 16, false).physical(&D), Some(4660.0));
        // start 10, len 5: byte 1 (0x34 = 0011_0100) bits 2..0 = 100, then byte 2
        // (0x56 = 0101_0110) bits 7..6 = 01: 0b10001 = 17.
        assert_eq!(motorola(10, 5, false).physical(&D), Some(17.0));
        // start 39, len 12: byte 4 = 0x9A then the high nibble of byte 5 (0xB): 0x9AB = 2475;
        // signed 12-bit: 2475 - 4096 = -1621.
        assert_eq!(motorola(39, 12, false).physical(&D), Some(2475.0));
        assert_eq!(motorola(39, 12, true).physical(&D), Some(-1621.0));
        // start 3, len 20: low nibble of byte 0 (2), bytes 1 and 2: 0x23456 = 144470.
        assert_eq!(motorola(3, 20, false).physical(&D), Some(144_470.0));
        // start 56, len 1: bit 0 of byte 7 (0xF0) = 0.
        assert_eq!(motorola(56, 1, false).physical(&D), Some(0.0));
    }

    #[test]
    fn sixty_four_bit_vectors() {
        assert_eq!(intel(0, 64, false).raw(&D), Some(0xF0DE_BC9A_7856_3412));
        assert_eq!(motorola(7, 64, false).raw(&D), Some(0x1234_5678_9ABC_DEF0));
        // Unaligned: the 9-byte LE word 0x0F_F0DE_BC9A_7856_3412 >> 4.
        assert_eq!(intel(4, 64, false).raw(&D9), Some(0xFF0D_EBC9_A785_6341));
        // Unaligned Motorola: drop the first and last nibble of 0x1234…F00F.
        assert_eq!(motorola(3, 64, false).raw(&D9), Some(0x2345_6789_ABCD_EF00));
        // Signed 64-bit: 0xF0DE_BC9A_7856_3412 as i64 = -(0x0F21_4365_87A9_CBEE).
        let expected = -(0x0F21_4365_87A9_CBEE_i64 as f64);
        assert_eq!(intel(0, 64, true).physical(&D), Some(expected));
        // 64 ones: u64::MAX unsigned, -1 signed.
        assert_eq!(intel(0, 64, false).raw(&ONES), Some(u64::MAX));
        assert_eq!(motorola(7, 64, true).physical(&ONES), Some(-1.0));
    }

    #[test]
    fn limits() {
        // All ones in 13 bits: 8191 unsigned, -1 signed.
        assert_eq!(intel(5, 13, false).physical(&ONES), Some(8191.0));
        assert_eq!(intel(5, 13, true).physical(&ONES), Some(-1.0));
        assert_eq!(motorola(21, 13, true).physical(&ONES), Some(-1.0));
        // Most negative: only the sign bit set.
        static MIN: [u8; 2] = [0x00, 0x80];
        assert_eq!(intel(8, 8, true).physical(&MIN), Some(-128.0));
        assert_eq!(intel(0, 16, true).physical(&MIN), Some(-32768.0));
        assert_eq!(motorola(15, 8, true).physical(&MIN), Some(-128.0));
    }

    #[test]
    fn floats() {
        // 1.5f32 = 0x3FC0_0000.
        static F32_LE: [u8; 4] = [0x00, 0x00, 0xC0, 0x3F];
        static F32_BE: [u8; 4] = [0x3F, 0xC0, 0x00, 0x00];
        let le = intel(0, 32, false).with_value_type(ValueType::Float32);
        let be = motorola(7, 32, false).with_value_type(ValueType::Float32);
        assert_eq!(le.physical(&F32_LE), Some(1.5));
        assert_eq!(be.physical(&F32_BE), Some(1.5));
        // Scaling applies after reinterpretation: 1.5 × 2 + 1 = 4.
        assert_eq!(le.with_scaling(2.0, 1.0).physical(&F32_LE), Some(4.0));
        // -2.5f64 = 0xC004_0000_0000_0000.
        static F64_LE: [u8; 8] = [0, 0, 0, 0, 0, 0, 0x04, 0xC0];
        static F64_BE: [u8; 8] = [0xC0, 0x04, 0, 0, 0, 0, 0, 0];
        let le = intel(0, 64, false).with_value_type(ValueType::Float64);
        let be = motorola(7, 64, false).with_value_type(ValueType::Float64);
        assert_eq!(le.physical(&F64_LE), Some(-2.5));
        assert_eq!(be.physical(&F64_BE), Some(-2.5));
        let mut out = [0xAAu8; 8];
        be.encode(-2.5, &mut out).expect("fits");
        assert_eq!(out, F64_BE);
    }

    #[test]
    fn short_frames_decode_what_fits() {
        let short = &D[..7];
        assert_eq!(intel(0, 8, false).raw(short), Some(0x12));
        // start 52, len 4: high nibble of byte 6 (0xDE) = 0xD.
        assert_eq!(intel(52, 4, false).raw(short), Some(0xD));
        assert_eq!(intel(52, 5, false).raw(short), None);
        assert_eq!(motorola(7, 64, false).raw(short), None);
        assert_eq!(motorola(7, 64, false).bytes_needed(), 8);
        assert_eq!(motorola(3, 64, false).bytes_needed(), 9);
        assert_eq!(intel(0, 8, false).raw(&[]), None);
    }

    #[test]
    fn impossible_layouts_never_decode() {
        for layout in [
            intel(0, 0, false),
            motorola(7, 65, true),
            intel(u16::MAX, 64, true),
        ] {
            assert_eq!(layout.raw(&D9), None);
            let mut out = [0u8; 8];
            assert!(layout.encode(1.0, &mut out).is_err());
        }
        assert_eq!(intel(0, 0, false).bytes_needed(), usize::MAX);
    }

    #[test]
    fn encode_errors_say_why() {
        let mut out = [0u8; 8];
        let byte = intel(0, 8, false).with_scaling(0.5, -10.0);
        assert_eq!(byte.encode(0.0, &mut out), Ok(()));
        assert_eq!(out[0], 20);
        assert!(matches!(
            byte.encode(200.0, &mut out),
            Err(EncodeError::OutOfRange { raw, .. }) if raw == 420.0
        ));
        assert!(matches!(
            byte.encode(f64::NAN, &mut out),
            Err(EncodeError::NotFinite { .. })
        ));
        assert_eq!(
            intel(56, 8, false).encode(1.0, &mut out[..7]),
            Err(EncodeError::BufferTooShort { need: 8, have: 7 })
        );
        assert_eq!(
            intel(0, 4, false).write_raw(0x10, &mut out),
            Err(EncodeError::RawTooWide {
                raw: 0x10,
                length: 4
            })
        );
        // Signed 8-bit holds -128..=127; 127.4 rounds to 127, 127.5 rounds to 128.
        let signed = intel(0, 8, true);
        assert_eq!(signed.encode(127.4, &mut out), Ok(()));
        assert!(signed.encode(127.5, &mut out).is_err());
        assert_eq!(signed.encode(-128.0, &mut out), Ok(()));
        assert_eq!(out[0], 0x80);
    }

    #[test]
    fn mux_ranges() {
        let mux = Multiplexing::Multiplexed {
            switch: "MUX".into(),
            ranges: vec![(3, 3), (5, 7)],
            is_switch: false,
        };
        assert!(mux.is_present_for(3) && mux.is_present_for(6));
        assert!(!mux.is_present_for(4) && !mux.is_present_for(8));
        assert!(Multiplexing::None.is_present_for(42));
    }

    /// The DBC's own definition, one bit at a time: the oracle the shift/mask code is checked
    /// against. Returns (byte, bit) from the most significant bit down.
    fn bits_msb_first(layout: &BitLayout) -> Vec<(usize, usize)> {
        let len = usize::from(layout.length());
        let start = usize::from(layout.start_bit());
        match layout.byte_order() {
            ByteOrder::LittleEndian => (0..len)
                .rev()
                .map(|i| ((start + i) / 8, (start + i) % 8))
                .collect(),
            ByteOrder::BigEndian => {
                let mut bit = start;
                let mut out = Vec::new();
                for _ in 0..len {
                    out.push((bit / 8, bit % 8));
                    // Sawtooth: down within a byte, then bit 7 of the next byte.
                    bit = if bit % 8 == 0 { bit + 15 } else { bit - 1 };
                }
                out
            }
        }
    }

    fn arb_layout() -> impl Strategy<Value = BitLayout> {
        (any::<bool>(), 1u16..=64, 0u16..64, any::<bool>()).prop_map(|(le, len, start, signed)| {
            let order = if le {
                ByteOrder::LittleEndian
            } else {
                ByteOrder::BigEndian
            };
            BitLayout::new(order, start, len, signed)
        })
    }

    proptest! {
        #[test]
        fn the_first_word_read_equals_the_general_read(layout in arb_layout(), data in any::<[u8; 8]>()) {
            if layout.in_first_word() {
                let (little, big) = (u64::from_le_bytes(data), u64::from_be_bytes(data));
                prop_assert_eq!(Some(layout.raw_in_first_word(little, big)), layout.raw(&data));
            } else {
                prop_assert!(layout.bytes_needed() > 8);
            }
        }

        #[test]
        fn the_word_field_equals_the_general_decode(
            layout in arb_layout(),
            data in any::<[u8; 8]>(),
            scale in prop::sample::select(vec![1.0, 0.5, 0.01, -0.1, 10.0, 1e-300]),
            offset in prop::sample::select(vec![0.0, -40.0, 0.5, 1e300]),
        ) {
            let layout = layout.with_scaling(scale, offset);
            let words = [u64::from_le_bytes(data), u64::from_be_bytes(data)];
            if layout.is_word_field() {
                let expected = layout.physical(&data).expect("in the first word");
                prop_assert_eq!(layout.physical_in_first_word(&words).to_bits(), expected.to_bits());
            } else {
                prop_assert!(!layout.in_first_word() || (!layout.signed() && layout.length() == 64));
            }
        }

        #[test]
        fn raw_matches_bitwise_oracle_and_leaves_neighbours(
            layout in arb_layout(),
            junk in prop::collection::vec(any::<u8>(), 16),
            value in any::<u64>(),
        ) {
            let raw = value & (u64::MAX >> (64 - layout.length()));
            let mut data = junk.clone();
            layout.write_raw(raw, &mut data).expect("16 bytes hold any layout here");
            let bits = bits_msb_first(&layout);
            let mut oracle = 0u64;
            for &(byte, bit) in &bits {
                oracle = (oracle << 1) | u64::from(data[byte] >> bit & 1);
            }
            prop_assert_eq!(oracle, raw);
            prop_assert_eq!(layout.raw(&data), Some(raw));
            let needed = bits.iter().map(|&(byte, _)| byte + 1).max().unwrap_or(0);
            prop_assert_eq!(layout.bytes_needed(), needed);
            // Exactly as many bytes as needed, and one fewer: exercises both load paths.
            prop_assert_eq!(layout.raw(&data[..needed]), Some(raw));
            prop_assert_eq!(layout.raw(&data[..needed - 1]), None);
            for byte in 0..data.len() {
                for bit in 0..8 {
                    if !bits.contains(&(byte, bit)) {
                        prop_assert_eq!(data[byte] >> bit & 1, junk[byte] >> bit & 1);
                    }
                }
            }
        }

        #[test]
        fn physical_round_trip(
            layout in arb_layout(),
            junk in prop::collection::vec(any::<u8>(), 16),
            value in any::<u64>(),
            scale in prop::sample::select(vec![1.0, 0.5, 0.01, -0.02, 0.125, 10.0]),
            offset in -1000.0f64..1000.0,
        ) {
            // Beyond 2^32 raw values the scaled f64 cannot round-trip exactly, so wide
            // signals are checked with identity scaling and exact raw values.
            let wide = layout.length() > 32;
            let layout = if wide { layout } else { layout.with_scaling(scale, offset) };
            let raw = value & (u64::MAX >> (64 - layout.length())) & (u64::MAX >> 11);
            let physical = layout.raw_to_physical(raw);
            let mut data = junk.clone();
            layout.encode(physical, &mut data).expect("in range");
            prop_assert_eq!(layout.physical(&data), Some(physical));
        }

        #[test]
        fn float_round_trip(bits in any::<u64>(), start in 0u16..64, le in any::<bool>()) {
            let order = if le { ByteOrder::LittleEndian } else { ByteOrder::BigEndian };
            let f64_layout = BitLayout::new(order, start, 64, false)
                .with_value_type(ValueType::Float64);
            let value = f64::from_bits(bits);
            let mut data = [0x5Au8; 16];
            f64_layout.encode(value, &mut data).expect("any f64 encodes");
            let back = f64_layout.physical(&data).expect("fits");
            prop_assert!(back == value || (back.is_nan() && value.is_nan()));
            let f32_layout = BitLayout::new(order, start, 32, false)
                .with_value_type(ValueType::Float32);
            let narrow = f64::from(f32::from_bits(bits as u32));
            f32_layout.encode(narrow, &mut data).expect("any f32 encodes");
            let back = f32_layout.physical(&data).expect("fits");
            prop_assert!(back == narrow || (back.is_nan() && narrow.is_nan()));
        }
    }
}
