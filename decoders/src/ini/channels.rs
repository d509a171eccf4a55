//! `[OutputChannels]` as a decode plan: scalar and bit-field channels read from the realtime
//! block, computed channels evaluated afterwards in dependency order, and the inverse (engineering
//! values into a block) for simulators and tests.
//!
//! Invariant kept by [`OutputChannels::resolve`]: every computed program reads only slots of
//! channels placed before it in [`OutputChannels::channels`], so one pass in order decodes all.

use super::IniWarning;
use super::expr::Program;
use super::resolve::{self, Computed};
use crate::error::DecodeError;
use crate::frame::{Endian, FieldLayout, ValueType};

/// A raw field type of a scalar or bit-field channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    /// Unsigned 8-bit.
    U08,
    /// Signed 8-bit.
    S08,
    /// Unsigned 16-bit.
    U16,
    /// Signed 16-bit.
    S16,
    /// Unsigned 32-bit.
    U32,
    /// Signed 32-bit.
    S32,
    /// IEEE 754 single.
    F32,
}

impl DataType {
    /// Parses an INI type name (`U08` …).
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "U08" => Self::U08,
            "S08" => Self::S08,
            "U16" => Self::U16,
            "S16" => Self::S16,
            "U32" => Self::U32,
            "S32" => Self::S32,
            "F32" => Self::F32,
            _ => return None,
        })
    }

    /// Size in bytes.
    pub fn size(self) -> usize {
        match self {
            Self::U08 | Self::S08 => 1,
            Self::U16 | Self::S16 => 2,
            Self::U32 | Self::S32 | Self::F32 => 4,
        }
    }

    /// The smallest and largest raw value.
    pub fn range(self) -> (f64, f64) {
        match self {
            Self::U08 => (0.0, 255.0),
            Self::S08 => (-128.0, 127.0),
            Self::U16 => (0.0, 65_535.0),
            Self::S16 => (-32_768.0, 32_767.0),
            Self::U32 => (0.0, 4_294_967_295.0),
            Self::S32 => (-2_147_483_648.0, 2_147_483_647.0),
            Self::F32 => (f64::from(f32::MIN), f64::from(f32::MAX)),
        }
    }

    /// Where a value of this type at `offset` sits, in the frame decoders' terms; `bits`
    /// selects an unsigned field `(lowest bit, width)`. Reads share the frame decoders' reader.
    fn layout(self, offset: usize, endian: Endian, bits: Option<(u8, u8)>) -> FieldLayout {
        let ty = match self {
            Self::U08 => ValueType::U8,
            Self::S08 => ValueType::I8,
            Self::U16 => ValueType::U16,
            Self::S16 => ValueType::I16,
            Self::U32 => ValueType::U32,
            Self::S32 => ValueType::I32,
            Self::F32 => ValueType::F32,
        };
        FieldLayout {
            offset,
            ty,
            endian,
            bits,
        }
    }

    /// Writes `raw` (rounded and clamped to the type) at `offset`; `None` past the end.
    fn write(self, block: &mut [u8], offset: usize, endian: Endian, raw: f64) -> Option<()> {
        let (lo, hi) = self.range();
        let bits = match self {
            Self::F32 => (raw as f32).to_bits(),
            _ => raw.round().clamp(lo, hi) as i64 as u32,
        };
        self.write_word(block, offset, endian, bits)
    }

    /// Stores the low `size` bytes of `bits` at `offset`.
    fn write_word(self, block: &mut [u8], offset: usize, endian: Endian, bits: u32) -> Option<()> {
        let size = self.size();
        let target = block.get_mut(offset..offset.checked_add(size)?)?;
        let mut word = bits.to_le_bytes();
        if endian == Endian::Big {
            word[..size].reverse();
        }
        target.copy_from_slice(&word[..size]);
        Some(())
    }
}

/// How one output channel gets its value.
#[derive(Debug, Clone, PartialEq)]
pub enum ChannelKind {
    /// `scalar, TYPE, OFFSET, "UNITS", SCALE, TRANSLATE`: (raw + translate) × scale.
    Scalar {
        /// Raw type.
        ty: DataType,
        /// Byte offset in the block.
        offset: usize,
        /// Multiplier applied after `translate`.
        scale: f64,
        /// Added to the raw value before scaling.
        translate: f64,
    },
    /// `bits, TYPE, OFFSET, [LOW:HIGH]`: an unsigned field of the raw word.
    Bits {
        /// Raw type holding the field.
        ty: DataType,
        /// Byte offset in the block.
        offset: usize,
        /// Lowest bit (0 = least significant).
        low: u8,
        /// Highest bit, inclusive.
        high: u8,
    },
    /// `name = { expression }`: computed from other channels after the block is read.
    Computed {
        /// The compiled expression over channel slots.
        program: Program,
    },
}

/// One output channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    /// The INI name (what gauges and logs call it).
    pub name: String,
    /// Units as written (empty when absent or given as an expression).
    pub unit: String,
    /// Where the value comes from.
    pub kind: ChannelKind,
    /// The INI line, so later stages can point at the definition.
    pub line: u32,
    /// Display range (lo, hi) from the INI's first gauge on this channel, if any.
    pub range: Option<(f64, f64)>,
}

impl Channel {
    /// The display range: the gauge's if the INI has one, else what the raw type can carry
    /// after scaling (bits: 0 to all ones), else `None` (computed channels without a gauge).
    pub fn display_range(&self) -> Option<(f64, f64)> {
        if self.range.is_some() {
            return self.range;
        }
        match self.kind {
            ChannelKind::Scalar {
                ty,
                scale,
                translate,
                ..
            } if ty != DataType::F32 => {
                let (lo, hi) = ty.range();
                let (a, b) = ((lo + translate) * scale, (hi + translate) * scale);
                Some((a.min(b), a.max(b)))
            }
            ChannelKind::Bits { low, high, .. } => {
                Some((0.0, f64::from(field_mask(low, high) >> low.min(31))))
            }
            _ => None,
        }
    }
}

/// A channel definition before computed channels are compiled.
#[derive(Debug, Clone)]
pub(super) enum Pending {
    /// A scalar or bits channel, already final.
    Ready(Channel),
    /// A computed channel: its parsed expression.
    Computed(Computed),
}

impl Pending {
    pub(super) fn name(&self) -> &str {
        match self {
            Self::Ready(channel) => &channel.name,
            Self::Computed(computed) => &computed.name,
        }
    }
}

/// The realtime block layout and its channels, ready to decode.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputChannels {
    /// `ochBlockSize`: bytes in one realtime block.
    pub block_size: usize,
    /// Byte order of multi-byte values (`endianness` in `[Constants]`).
    pub endian: Endian,
    /// Scalar and bit channels first (INI order), then computed ones in dependency order;
    /// a channel's index is its slot in the value buffer.
    channels: Vec<Channel>,
}

impl OutputChannels {
    /// Builds the plan from pending definitions: data channels keep INI order; computed
    /// channels whose references are unknown, skipped or cyclic are dropped with a warning.
    pub(super) fn resolve(
        block_size: usize,
        endian: Endian,
        pending: Vec<Pending>,
        warnings: &mut Vec<IniWarning>,
    ) -> Self {
        let mut channels = Vec::new();
        let mut computed = Vec::new();
        for item in pending {
            match item {
                Pending::Ready(channel) => channels.push(channel),
                Pending::Computed(definition) => computed.push(definition),
            }
        }
        resolve::append_computed(&mut channels, computed, warnings);
        Self {
            block_size,
            endian,
            channels,
        }
    }

    /// Gives each channel named in `gauges` its display range.
    pub(super) fn set_ranges(&mut self, gauges: &[(String, (f64, f64))]) {
        for (name, range) in gauges {
            if let Some(channel) = self.channels.iter_mut().find(|c| &c.name == name) {
                channel.range = Some(*range);
            }
        }
    }

    /// Every channel; index = slot in the value buffer of [`OutputChannels::decode`].
    pub fn channels(&self) -> &[Channel] {
        &self.channels
    }

    /// The slot of channel `name`.
    pub fn slot(&self, name: &str) -> Option<usize> {
        self.channels.iter().position(|c| c.name == name)
    }

    /// How many channels of each kind: (scalar, bits, computed).
    pub fn counts(&self) -> (usize, usize, usize) {
        self.channels
            .iter()
            .fold((0, 0, 0), |(s, b, c), channel| match channel.kind {
                ChannelKind::Scalar { .. } => (s + 1, b, c),
                ChannelKind::Bits { .. } => (s, b + 1, c),
                ChannelKind::Computed { .. } => (s, b, c + 1),
            })
    }

    /// Decodes `block` at `time_s` seconds (what `timeNow` reads) into `values`, one per
    /// channel in [`OutputChannels::channels`] order. `block` must hold `block_size` bytes and
    /// `values` must have room for every channel; otherwise nothing is written.
    pub fn decode(&self, block: &[u8], time_s: f64, values: &mut [f64]) -> Result<(), DecodeError> {
        self.check(block.len(), values.len())?;
        // `check` proved `values` has a slot per channel, so the indexing below is in range.
        for (slot, channel) in self.channels.iter().enumerate() {
            let value = match &channel.kind {
                ChannelKind::Scalar {
                    ty,
                    offset,
                    scale,
                    translate,
                } => ty
                    .layout(*offset, self.endian, None)
                    .value(block, 0)
                    .map_or(f64::NAN, |raw| (raw + translate) * scale),
                ChannelKind::Bits {
                    ty,
                    offset,
                    low,
                    high,
                } if low <= high && usize::from(*high) < ty.size() * 8 => ty
                    // Bits read unsigned (`raw`, never sign-extended), as the INI format says.
                    .layout(*offset, self.endian, Some((*low, high - low + 1)))
                    .raw(block, 0)
                    .map_or(f64::NAN, |field| field as f64),
                // Only a hand-built plan can hold an impossible range; the loader refuses one.
                ChannelKind::Bits { .. } => f64::NAN,
                ChannelKind::Computed { program } => program.evaluate(&values[..slot], time_s),
            };
            values[slot] = value;
        }
        Ok(())
    }

    /// Writes the scalar and bit channels of `values` (engineering units, channel order) into
    /// `block`, the inverse of [`OutputChannels::decode`]; computed slots are ignored. Bits not
    /// covered by any channel keep what `block` held.
    pub fn encode(&self, values: &[f64], block: &mut [u8]) -> Result<(), DecodeError> {
        self.check(block.len(), values.len())?;
        for (channel, value) in self.channels.iter().zip(values) {
            match &channel.kind {
                ChannelKind::Scalar {
                    ty,
                    offset,
                    scale,
                    translate,
                } => {
                    let raw = if *scale == 0.0 {
                        0.0
                    } else {
                        value / scale - translate
                    };
                    ty.write(block, *offset, self.endian, raw);
                }
                ChannelKind::Bits {
                    ty,
                    offset,
                    low,
                    high,
                } => {
                    let layout = ty.layout(*offset, self.endian, None);
                    let word = layout.raw(block, 0).unwrap_or(0) as u32;
                    let mask = field_mask(*low, *high);
                    let field = (*value as u32).checked_shl(u32::from(*low)).unwrap_or(0) & mask;
                    ty.write_word(block, *offset, self.endian, (word & !mask) | field);
                }
                ChannelKind::Computed { .. } => {}
            }
        }
        Ok(())
    }

    fn check(&self, block: usize, values: usize) -> Result<(), DecodeError> {
        if block < self.block_size {
            return Err(DecodeError::Truncated {
                offset: 0,
                need: self.block_size,
                have: block,
            });
        }
        if values < self.channels.len() {
            return Err(DecodeError::BadLength {
                offset: 0,
                len: values,
                max: self.channels.len(),
            });
        }
        Ok(())
    }
}

/// Ones over bits `low..=high` of a `u32`; 0 for an empty or out-of-range field.
fn field_mask(low: u8, high: u8) -> u32 {
    if low > high || high > 31 {
        return 0;
    }
    let width = u32::from(high - low) + 1;
    let ones = if width >= 32 {
        u32::MAX
    } else {
        (1u32 << width) - 1
    };
    ones << low
}

#[cfg(test)]
mod tests {
    use super::super::IniFile;
    use super::*;

    static INI: &str = "[Constants]\nendianness = big\n[OutputChannels]\nochBlockSize = 8\n\
        rpm = scalar, U16, 0, \"rpm\", 1, 0\nclt = scalar, S08, 2, \"C\", 0.5, -80\n\
        running = bits, U08, 3, [0:0]\nmode = bits, U08, 3, [1:3]\nflow = scalar, F32, 4, \"\", 1, 0\n\
        hot = { clt > 50 && running }\nhalf = { rpm / 2 }\n";

    /// rpm 0x0BB8 = 3000 (big-endian), clt raw -2 → (-2 - 80) × 0.5 = -41, bits 0b1011, 1.5f32.
    static BLOCK: [u8; 8] = [0x0B, 0xB8, 0xFE, 0x0B, 0x3F, 0xC0, 0x00, 0x00];

    fn plan() -> OutputChannels {
        IniFile::parse("t.ini", INI, &[])
            .expect("test input is valid")
            .0
            .output_channels
    }

    #[test]
    fn deconstruct_block() {
        let plan = plan();
        let mut values = [f64::NAN; 7];
        plan.decode(&BLOCK, 0.0, &mut values)
            .expect("test input is valid");
        assert_eq!(values, [3000.0, -41.0, 1.0, 5.0, 1.5, 0.0, 1500.0]);
    }

    #[test]
    fn encode_round_trips_into_a_junk_block() {
        let plan = plan();
        let mut block = [0xA5u8; 8];
        plan.encode(&[3000.0, -41.0, 1.0, 5.0, 1.5, 99.0, 99.0], &mut block)
            .expect("test input is valid");
        // Bits 4..7 of byte 3 are no channel's and keep the junk.
        assert_eq!(block, [0x0B, 0xB8, 0xFE, 0xAB, 0x3F, 0xC0, 0x00, 0x00]);
    }

    #[test]
    fn short_block_or_buffer_is_an_error() {
        let plan = plan();
        let mut values = [0.0; 7];
        assert!(matches!(
            plan.decode(&BLOCK[..7], 0.0, &mut values),
            Err(DecodeError::Truncated {
                need: 8,
                have: 7,
                ..
            })
        ));
        assert!(plan.decode(&BLOCK, 0.0, &mut values[..6]).is_err());
        assert!(plan.encode(&values, &mut [0u8; 3]).is_err());
    }

    #[test]
    fn impossible_bit_ranges_read_nan_instead_of_panicking() {
        let bits = |low, high| Channel {
            name: format!("b{low}_{high}"),
            unit: String::new(),
            kind: ChannelKind::Bits {
                ty: DataType::U32,
                offset: 0,
                low,
                high,
            },
            line: 0,
            range: None,
        };
        let plan = OutputChannels {
            block_size: 4,
            endian: Endian::Little,
            channels: vec![bits(0, 31), bits(5, 7), bits(3, 2), bits(0, 200)],
        };
        let mut values = [0.0; 4];
        plan.decode(&[0xA0, 0xFF, 0xFF, 0xFF], 0.0, &mut values)
            .expect("fits");
        assert_eq!(values[..2], [f64::from(0xFFFF_FFA0u32), 5.0]);
        assert!(values[2].is_nan() && values[3].is_nan());
        assert_eq!(field_mask(3, 2), 0);
    }
}
