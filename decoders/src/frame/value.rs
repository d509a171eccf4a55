//! Field layouts: where a value sits in a frame (byte offset, type, endianness, optional bit
//! field) and how its raw bits become a number.
//!
//! Reads never panic: a layout past the end of the slice gives `None`. One generic reader
//! serves both endiannesses rather than copy-pasted variants.

use serde::Deserialize;

/// The stored type of a field, named as in definition files (`u8` … `f64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueType {
    /// Unsigned 8-bit.
    U8,
    /// Unsigned 16-bit.
    U16,
    /// Unsigned 32-bit.
    U32,
    /// Unsigned 64-bit.
    U64,
    /// Two's-complement 8-bit.
    I8,
    /// Two's-complement 16-bit.
    I16,
    /// Two's-complement 32-bit.
    I32,
    /// Two's-complement 64-bit.
    I64,
    /// IEEE 754 single precision.
    F32,
    /// IEEE 754 double precision.
    F64,
}

impl ValueType {
    /// Size in bytes.
    pub fn size(self) -> usize {
        match self {
            Self::U8 | Self::I8 => 1,
            Self::U16 | Self::I16 => 2,
            Self::U32 | Self::I32 | Self::F32 => 4,
            Self::U64 | Self::I64 | Self::F64 => 8,
        }
    }

    /// Size in bits.
    pub fn bits(self) -> u32 {
        self.size() as u32 * 8
    }

    /// Whether the type is a two's-complement integer.
    pub fn is_signed(self) -> bool {
        matches!(self, Self::I8 | Self::I16 | Self::I32 | Self::I64)
    }

    /// Whether the type is an IEEE float.
    pub fn is_float(self) -> bool {
        matches!(self, Self::F32 | Self::F64)
    }
}

/// Byte order of a multi-byte value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Endian {
    /// Least significant byte first (Intel).
    #[default]
    Little,
    /// Most significant byte first (Motorola, network order).
    Big,
}

/// Where one value sits in a frame and how to read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldLayout {
    /// Byte offset of the (container) value from the record base.
    pub offset: usize,
    /// Stored type; for a bit field, the integer that contains it.
    pub ty: ValueType,
    /// Byte order of the stored value.
    pub endian: Endian,
    /// For a bit field: `(lowest bit, width)` within the container integer, bit 0 being its
    /// least significant bit. Signed containers give a signed bit field.
    pub bits: Option<(u8, u8)>,
}

impl FieldLayout {
    /// A whole-value layout.
    pub fn new(offset: usize, ty: ValueType, endian: Endian) -> Self {
        Self {
            offset,
            ty,
            endian,
            bits: None,
        }
    }

    /// One past the last byte the layout reads, relative to the record base.
    pub fn end(&self) -> usize {
        self.offset + self.ty.size()
    }

    /// The unsigned raw bits (the bit field's, if any), or `None` past the end of `frame`.
    pub fn raw(&self, frame: &[u8], base: usize) -> Option<u64> {
        let start = base.checked_add(self.offset)?;
        let bytes = frame.get(start..start.checked_add(self.ty.size())?)?;
        let raw = read_uint(bytes, self.endian);
        Some(match self.bits {
            Some((shift, width)) => (raw >> shift) & mask(u32::from(width)),
            None => raw,
        })
    }

    /// The numeric value before scaling, or `None` past the end of `frame`.
    pub fn value(&self, frame: &[u8], base: usize) -> Option<f64> {
        let raw = self.raw(frame, base)?;
        Some(match self.ty {
            ValueType::F32 => f64::from(f32::from_bits(raw as u32)),
            ValueType::F64 => f64::from_bits(raw),
            ty if ty.is_signed() => {
                let width = self.bits.map_or(ty.bits(), |(_, w)| u32::from(w));
                sign_extend(raw, width) as f64
            }
            _ => raw as f64,
        })
    }
}

/// An unsigned integer from up to 8 bytes in the given order.
pub fn read_uint(bytes: &[u8], endian: Endian) -> u64 {
    match endian {
        Endian::Big => bytes.iter().fold(0, |v, &b| (v << 8) | u64::from(b)),
        Endian::Little => bytes.iter().rev().fold(0, |v, &b| (v << 8) | u64::from(b)),
    }
}

fn mask(width: u32) -> u64 {
    if width >= 64 {
        u64::MAX
    } else {
        (1u64 << width) - 1
    }
}

fn sign_extend(raw: u64, width: u32) -> i64 {
    if width == 0 || width >= 64 {
        return raw as i64;
    }
    let shift = 64 - width;
    ((raw << shift) as i64) >> shift
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 16 bytes with a recognisable pattern.
    static BYTES: [u8; 16] = [
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0xFF, 0xFE, 0x80, 0x00, 0x00, 0x00, 0xF0,
        0x3F,
    ];

    fn value(offset: usize, ty: ValueType, endian: Endian) -> Option<f64> {
        FieldLayout::new(offset, ty, endian).value(&BYTES, 0)
    }

    #[test]
    fn unsigned_types_in_both_orders() {
        use Endian::{Big, Little};
        assert_eq!(value(0, ValueType::U8, Little), Some(1.0));
        assert_eq!(value(0, ValueType::U16, Little), Some(f64::from(0x0201u16)));
        assert_eq!(value(0, ValueType::U16, Big), Some(f64::from(0x0102u16)));
        assert_eq!(
            value(0, ValueType::U32, Little),
            Some(f64::from(0x0403_0201u32))
        );
        assert_eq!(
            value(0, ValueType::U32, Big),
            Some(f64::from(0x0102_0304u32))
        );
        assert_eq!(
            value(0, ValueType::U64, Little),
            Some(0x0807_0605_0403_0201u64 as f64)
        );
        assert_eq!(
            value(0, ValueType::U64, Big),
            Some(0x0102_0304_0506_0708u64 as f64)
        );
    }

    #[test]
    fn signed_types_in_both_orders() {
        use Endian::{Big, Little};
        assert_eq!(value(8, ValueType::I8, Little), Some(-1.0));
        assert_eq!(value(8, ValueType::I16, Little), Some(-257.0)); // 0xFEFF
        assert_eq!(value(8, ValueType::I16, Big), Some(-2.0)); // 0xFFFE
        assert_eq!(
            value(8, ValueType::I32, Little),
            Some(f64::from(0x0080_FEFFu32 as i32))
        );
        assert_eq!(
            value(8, ValueType::I32, Big),
            Some(f64::from(0xFFFE_8000u32 as i32))
        );
        assert_eq!(
            value(8, ValueType::I64, Big),
            Some(0xFFFE_8000_0000_F03Fu64 as i64 as f64)
        );
        assert_eq!(
            value(8, ValueType::I64, Little),
            Some(0x3FF0_0000_0080_FEFFu64 as f64)
        );
    }

    #[test]
    fn floats_in_both_orders() {
        // 1.0f64 little-endian is 00 00 00 00 00 00 F0 3F: bytes 8.. hold junk first, so build it.
        let mut frame = [0u8; 12];
        frame[..8].copy_from_slice(&1.0f64.to_le_bytes());
        frame[8..].copy_from_slice(&(-2.5f32).to_be_bytes());
        let f64_le = FieldLayout::new(0, ValueType::F64, Endian::Little);
        let f32_be = FieldLayout::new(8, ValueType::F32, Endian::Big);
        assert_eq!(f64_le.value(&frame, 0), Some(1.0));
        assert_eq!(f32_be.value(&frame, 0), Some(-2.5));
        frame[..8].copy_from_slice(&1.0f64.to_be_bytes());
        let f64_be = FieldLayout::new(0, ValueType::F64, Endian::Big);
        assert_eq!(f64_be.value(&frame, 0), Some(1.0));
        let f32_le = FieldLayout::new(0, ValueType::F32, Endian::Little);
        frame[..4].copy_from_slice(&0.25f32.to_le_bytes());
        assert_eq!(f32_le.value(&frame, 0), Some(0.25));
    }

    #[test]
    fn bit_fields_unsigned_and_signed() {
        // 0x0201 little-endian: bits 8..12 = 0x2, bits 0..4 = 0x1.
        let mut layout = FieldLayout::new(0, ValueType::U16, Endian::Little);
        layout.bits = Some((8, 4));
        assert_eq!(layout.value(&BYTES, 0), Some(2.0));
        // 0xFEFF big-endian = 0xFFFE: bits 1..4 = 0b111, signed 3-bit = -1.
        let mut signed = FieldLayout::new(8, ValueType::I16, Endian::Big);
        signed.bits = Some((1, 3));
        assert_eq!(signed.value(&BYTES, 0), Some(-1.0));
        signed.bits = Some((0, 1));
        assert_eq!(signed.value(&BYTES, 0), Some(0.0));
    }

    #[test]
    fn past_the_end_is_none_never_a_panic() {
        assert_eq!(value(15, ValueType::U16, Endian::Little), None);
        assert_eq!(value(usize::MAX, ValueType::U8, Endian::Little), None);
        let layout = FieldLayout::new(1, ValueType::U64, Endian::Big);
        assert_eq!(layout.value(&BYTES, usize::MAX - 2), None);
        assert_eq!(layout.value(&BYTES, 8), None);
    }
}
