//! Synthetic ECU broadcasts for `tests/profiles.rs`: per-family field tables typed from the
//! published layouts (byte positions, widths, byte order, scale, offset, frame index) and an
//! encoder that turns engineering values into CAN payloads byte by byte.
//!
//! Deliberately independent of the DBC code: positions are bytes and bit numbers as the
//! vendors describe them, never DBC start bits, and nothing here calls `decoders::dbc`. A DBC
//! whose start bit, sign or scale disagrees with these tables fails the decode comparison.

mod families;
mod haltech;

pub use families::all as families;

/// Byte order of multi-byte fields in a family's frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Most significant byte first (Haltech, Link GD2, MegaSquirt, AEMnet).
    Big,
    /// Least significant byte first (Link Generic Dash, ECUMaster, rusEFI).
    Little,
}

/// How a field sits in the payload, starting at [`Field::byte`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    U8,
    S8,
    U16,
    S16,
    U32,
    S32,
    /// Unsigned bits. Big-endian families: `bit` is the most significant bit inside the first
    /// byte and the field runs on towards bit 0 and then into the next byte, as the documents
    /// write "6:3-7:0". Little-endian families: `bit` is the least significant bit, counted
    /// from bit 0 of the first byte across the following bytes (Link "status bits 12-14").
    Bits {
        bit: u8,
        len: u8,
    },
}

impl Kind {
    /// Raw range the field can carry.
    pub fn raw_range(self) -> (i64, i64) {
        match self {
            Kind::U8 => (0, 0xFF),
            Kind::S8 => (-0x80, 0x7F),
            Kind::U16 => (0, 0xFFFF),
            Kind::S16 => (-0x8000, 0x7FFF),
            Kind::U32 => (0, 0xFFFF_FFFF),
            Kind::S32 => (-0x8000_0000, 0x7FFF_FFFF),
            Kind::Bits { len, .. } => (0, (1i64 << len) - 1),
        }
    }
}

/// One channel of a family's broadcast.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// Signal name the profile's DBC must use.
    pub name: &'static str,
    /// Bus id (29-bit when the family is extended).
    pub id: u32,
    /// Frame index for multiplexed streams (Link Generic Dash byte 0).
    pub mux: Option<u8>,
    /// First byte of the field, 0-7 in the order sent.
    pub byte: usize,
    pub kind: Kind,
    pub scale: f64,
    pub offset: f64,
}

/// A family's stream as the generator knows it.
#[derive(Debug, Clone)]
pub struct Family {
    /// The `decoders::profiles` name it checks.
    pub profile: &'static str,
    pub order: Order,
    /// 29-bit ids.
    pub extended: bool,
    /// The multiplexer signal's name, for streams with a frame index in byte 0.
    pub switch: Option<&'static str>,
    pub fields: Vec<Field>,
}

/// Physical value → raw integer, as the ECU would round it.
pub fn to_raw(field: &Field, physical: f64) -> i64 {
    let raw = ((physical - field.offset) / field.scale).round() as i64;
    let (lo, hi) = field.kind.raw_range();
    assert!(
        (lo..=hi).contains(&raw),
        "{}: {physical} does not fit",
        field.name
    );
    raw
}

/// Writes `physical` into `data` at the field's place. Panics if a bit is written twice, so
/// overlapping table entries are caught.
pub fn encode(order: Order, field: &Field, physical: f64, data: &mut [u8; 8], used: &mut [u8; 8]) {
    let raw = to_raw(field, physical);
    let bytes: Vec<u8> = match (field.kind, order) {
        (Kind::U8 | Kind::S8, _) => vec![raw as u8],
        (Kind::U16 | Kind::S16, Order::Big) => (raw as u16).to_be_bytes().to_vec(),
        (Kind::U16 | Kind::S16, Order::Little) => (raw as u16).to_le_bytes().to_vec(),
        (Kind::U32 | Kind::S32, Order::Big) => (raw as u32).to_be_bytes().to_vec(),
        (Kind::U32 | Kind::S32, Order::Little) => (raw as u32).to_le_bytes().to_vec(),
        (Kind::Bits { bit, len }, _) => {
            write_bits(order, field, bit, len, raw as u64, data, used);
            return;
        }
    };
    for (i, byte) in bytes.into_iter().enumerate() {
        let at = field.byte + i;
        assert_eq!(used[at], 0, "{} overlaps byte {at}", field.name);
        used[at] = 0xFF;
        data[at] = byte;
    }
}

fn write_bits(
    order: Order,
    field: &Field,
    bit: u8,
    len: u8,
    raw: u64,
    data: &mut [u8; 8],
    used: &mut [u8; 8],
) {
    for i in 0..usize::from(len) {
        let (byte, mask, value) = match order {
            // Walk from the named MSB downwards in send order: 6:3, 6:2 … 6:0, 7:7 …
            Order::Big => {
                let from_top = field.byte * 8 + (7 - usize::from(bit)) + i;
                let value = (raw >> (usize::from(len) - 1 - i)) & 1;
                (from_top / 8, 1u8 << (7 - from_top % 8), value)
            }
            Order::Little => {
                let position = field.byte * 8 + usize::from(bit) + i;
                (position / 8, 1u8 << (position % 8), (raw >> i) & 1)
            }
        };
        assert_eq!(used[byte] & mask, 0, "{} overlaps byte {byte}", field.name);
        used[byte] |= mask;
        if value == 1 {
            data[byte] |= mask;
        }
    }
}
