//! Serial commands of TunerStudio ECUs as bytes: INI command strings (`\xNN` escapes,
//! `$tsCanId`, `%2o` offset and `%2c` count placeholders) compiled once into templates, the
//! fixed realtime requests of Speeduino, rusEFI and legacy firmware, and the split of one block
//! read into `blockingFactor`-sized requests.
//!
//! Builders write into a caller-owned `Vec<u8>` (cleared first) and never allocate otherwise.

use crate::frame::Endian;

/// Speeduino's realtime command byte after `r` and the CAN id (`0x30`: output channels).
pub const SPEEDUINO_REALTIME: u8 = 0x30;

/// The legacy realtime request: the whole block, no envelope.
pub const LEGACY_REALTIME: u8 = b'A';

/// One piece of a command template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    /// Bytes sent as they are.
    Bytes(Vec<u8>),
    /// `$tsCanId`: the CAN id byte of the addressed ECU (0 for the one on the port).
    CanId,
    /// `%2o`: the offset, `width` bytes in the INI's byte order.
    Offset(u8),
    /// `%2c`: the count, `width` bytes in the INI's byte order.
    Count(u8),
}

/// A command string from an INI compiled into byte pieces and placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    parts: Vec<Part>,
}

/// Why a command string could not be compiled; `offset` is the byte in the string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// A `\` escape that is not `\xNN`, `\\`, `\"` or `\$tsCanId`.
    #[error("bad escape at byte {offset}")]
    BadEscape {
        /// Where the backslash is.
        offset: usize,
    },
    /// A `%` placeholder other than `%Nc`, `%No` (N = 1, 2 or 4), or `%2i` page ids, which
    /// realtime commands never need.
    #[error("unsupported placeholder at byte {offset}")]
    BadPlaceholder {
        /// Where the `%` is.
        offset: usize,
    },
    /// A `$name` other than `$tsCanId`.
    #[error("unknown variable at byte {offset}")]
    UnknownVariable {
        /// Where the `$` is.
        offset: usize,
    },
}

impl Command {
    /// Compiles an INI command string as written between its quotes (e.g. `r\$tsCanId\x30%2o%2c`).
    pub fn parse(text: &str) -> Result<Self, CommandError> {
        let bytes = text.as_bytes();
        let mut parts: Vec<Part> = Vec::new();
        let mut literal = Vec::new();
        let mut at = 0;
        while let Some(&byte) = bytes.get(at) {
            let rest = &bytes[at..];
            // INIs write the variable both escaped (`\$tsCanId`) and bare.
            let variable = [&b"\\$tsCanId"[..], b"$tsCanId"]
                .into_iter()
                .find(|name| rest.starts_with(name));
            let (part, used) = match (variable, byte) {
                (Some(name), _) => (Part::CanId, name.len()),
                (None, b'$') => return Err(CommandError::UnknownVariable { offset: at }),
                (None, b'%') => (placeholder(rest, at)?, 3),
                (None, b'\\') => {
                    let (escaped, used) =
                        escape(rest).ok_or(CommandError::BadEscape { offset: at })?;
                    literal.push(escaped);
                    at += used;
                    continue;
                }
                (None, other) => {
                    literal.push(other);
                    at += 1;
                    continue;
                }
            };
            if !literal.is_empty() {
                parts.push(Part::Bytes(std::mem::take(&mut literal)));
            }
            parts.push(part);
            at += used;
        }
        if !literal.is_empty() {
            parts.push(Part::Bytes(literal));
        }
        Ok(Self { parts })
    }

    /// Whether the command takes an offset and count (a ranged realtime read).
    pub fn is_ranged(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Offset(_)))
            && self.parts.iter().any(|p| matches!(p, Part::Count(_)))
    }

    /// Reads a request built from this template back (what an ECU, or a simulator of one,
    /// does): `Some((can_id, offset, count))` when `bytes` is exactly this command, with 0 for
    /// placeholders the template lacks; `None` when any literal byte or the length differs.
    pub fn parse_request(&self, bytes: &[u8], endian: Endian) -> Option<(u8, u32, u32)> {
        let (mut can_id, mut offset, mut count) = (0, 0, 0);
        let mut rest = bytes;
        for part in &self.parts {
            match part {
                Part::Bytes(literal) => rest = rest.strip_prefix(literal.as_slice())?,
                Part::CanId => {
                    let (&byte, tail) = rest.split_first()?;
                    can_id = byte;
                    rest = tail;
                }
                Part::Offset(width) => offset = take(&mut rest, *width, endian)?,
                Part::Count(width) => count = take(&mut rest, *width, endian)?,
            }
        }
        rest.is_empty().then_some((can_id, offset, count))
    }

    /// The length in bytes of every request built from this template.
    pub fn len(&self) -> usize {
        self.parts
            .iter()
            .map(|part| match part {
                Part::Bytes(bytes) => bytes.len(),
                Part::CanId => 1,
                Part::Offset(width) | Part::Count(width) => usize::from(*width),
            })
            .sum()
    }

    /// Whether requests from this template have no bytes (an empty command string).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the command for `can_id`, `offset` and `count` into `out` (cleared first);
    /// multi-byte placeholders follow `endian`, the INI's byte order. Values wider than a
    /// placeholder keep their low bytes.
    pub fn build(&self, can_id: u8, offset: u32, count: u32, endian: Endian, out: &mut Vec<u8>) {
        out.clear();
        for part in &self.parts {
            match part {
                Part::Bytes(bytes) => out.extend_from_slice(bytes),
                Part::CanId => out.push(can_id),
                Part::Offset(width) => put(out, offset, *width, endian),
                Part::Count(width) => put(out, count, *width, endian),
            }
        }
    }
}

/// Speeduino's realtime request: `r`, CAN id, 0x30, offset and length as u16 little-endian.
pub fn speeduino_realtime(can_id: u8, offset: u16, length: u16) -> [u8; 7] {
    let [o0, o1] = offset.to_le_bytes();
    let [l0, l1] = length.to_le_bytes();
    [b'r', can_id, SPEEDUINO_REALTIME, o0, o1, l0, l1]
}

/// rusEFI's output-channel request: `O`, offset and count as u16 little-endian.
pub fn rusefi_output_channels(offset: u16, count: u16) -> [u8; 5] {
    let [o0, o1] = offset.to_le_bytes();
    let [c0, c1] = count.to_le_bytes();
    [b'O', o0, o1, c0, c1]
}

/// The (offset, length) requests that read a block of `block_size` bytes when one reply
/// carries at most `blocking_factor` data bytes; a factor of 0 means one request for all.
pub fn chunks(block_size: u32, blocking_factor: u32) -> impl Iterator<Item = (u32, u32)> {
    let step = if blocking_factor == 0 {
        block_size.max(1)
    } else {
        blocking_factor
    };
    (0..block_size)
        .step_by(step as usize)
        .map(move |offset| (offset, step.min(block_size - offset)))
}

/// The byte of a `\xNN`, `\\` or `\"` escape at the start of `rest`, and its length.
fn escape(rest: &[u8]) -> Option<(u8, usize)> {
    match rest.get(1)? {
        b'x' => {
            let digits = rest
                .get(2..4)
                .filter(|d| d.iter().all(u8::is_ascii_hexdigit))?;
            let hex = std::str::from_utf8(digits).ok()?;
            Some((u8::from_str_radix(hex, 16).ok()?, 4))
        }
        b'\\' => Some((b'\\', 2)),
        b'"' => Some((b'"', 2)),
        _ => None,
    }
}

/// A `%Nc` or `%No` placeholder at the start of `rest`.
fn placeholder(rest: &[u8], at: usize) -> Result<Part, CommandError> {
    let bad = CommandError::BadPlaceholder { offset: at };
    let width = match rest.get(1) {
        Some(b'1') => 1,
        Some(b'2') => 2,
        Some(b'4') => 4,
        _ => return Err(bad),
    };
    match rest.get(2) {
        Some(b'o') => Ok(Part::Offset(width)),
        Some(b'c') => Ok(Part::Count(width)),
        _ => Err(bad),
    }
}

/// Reads a `width`-byte unsigned value in `endian` order off the front of `rest`.
fn take(rest: &mut &[u8], width: u8, endian: Endian) -> Option<u32> {
    let width = usize::from(width);
    let (field, tail) = (rest.get(..width)?, &rest[width..]);
    *rest = tail;
    let mut word = [0u8; 4];
    match endian {
        Endian::Little => word[..width].copy_from_slice(field),
        Endian::Big => word[4 - width..].copy_from_slice(field),
    }
    Some(match endian {
        Endian::Little => u32::from_le_bytes(word),
        Endian::Big => u32::from_be_bytes(word),
    })
}

fn put(out: &mut Vec<u8>, value: u32, width: u8, endian: Endian) {
    let width = usize::from(width);
    match endian {
        Endian::Little => out.extend_from_slice(&value.to_le_bytes()[..width]),
        Endian::Big => out.extend_from_slice(&value.to_be_bytes()[4 - width..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deconstruct_the_real_commands() {
        let mut out = vec![0xEE; 3];
        let speeduino = Command::parse(r"r\$tsCanId\x30%2o%2c").expect("valid");
        assert!(speeduino.is_ranged());
        speeduino.build(0, 0, 130, Endian::Little, &mut out);
        assert_eq!(out, [0x72, 0x00, 0x30, 0x00, 0x00, 0x82, 0x00]);
        assert_eq!(out, speeduino_realtime(0, 0, 130));
        let rusefi = Command::parse("O%2o%2c").expect("valid");
        rusefi.build(0, 0, 2044, Endian::Little, &mut out);
        assert_eq!(out, [0x4F, 0x00, 0x00, 0xFC, 0x07]);
        assert_eq!(out, rusefi_output_channels(0, 2044));
        let big = Command::parse("$tsCanId\\x00%2o%1c").expect("valid");
        big.build(3, 0x0102, 0x0304, Endian::Big, &mut out);
        assert_eq!(out, [3, 0, 1, 2, 4]);
        assert!(!Command::parse("Q").expect("valid").is_ranged());
    }

    #[test]
    fn requests_parse_back_into_their_placeholders() {
        let mut out = Vec::new();
        let speeduino = Command::parse(r"r\$tsCanId\x30%2o%2c").expect("valid");
        speeduino.build(2, 121, 18, Endian::Little, &mut out);
        assert_eq!(speeduino.len(), out.len());
        assert_eq!(
            speeduino.parse_request(&out, Endian::Little),
            Some((2, 121, 18))
        );
        let big = Command::parse("$tsCanId\\x00%2o%1c").expect("valid");
        big.build(3, 0x0102, 0x04, Endian::Big, &mut out);
        assert_eq!(big.parse_request(&out, Endian::Big), Some((3, 0x0102, 4)));
        assert_eq!(
            speeduino.parse_request(b"r\x00\x31\x00\x00\x01\x00", Endian::Little),
            None
        );
        assert_eq!(speeduino.parse_request(&out[..3], Endian::Little), None);
        let legacy = Command::parse("A").expect("valid");
        assert_eq!(legacy.parse_request(b"A", Endian::Little), Some((0, 0, 0)));
        assert_eq!(legacy.parse_request(b"AA", Endian::Little), None);
        assert!(!legacy.is_empty() && legacy.len() == 1);
    }

    #[test]
    fn broken_command_strings_are_errors() {
        assert_eq!(
            Command::parse(r"\q"),
            Err(CommandError::BadEscape { offset: 0 })
        );
        assert_eq!(
            Command::parse(r"a\x3"),
            Err(CommandError::BadEscape { offset: 1 })
        );
        assert_eq!(
            Command::parse("p%2i"),
            Err(CommandError::BadPlaceholder { offset: 1 })
        );
        assert_eq!(
            Command::parse("%"),
            Err(CommandError::BadPlaceholder { offset: 0 })
        );
        assert_eq!(
            Command::parse("$nope"),
            Err(CommandError::UnknownVariable { offset: 0 })
        );
    }

    #[test]
    fn chunks_cover_the_block_in_blocking_factor_steps() {
        let speeduino: Vec<_> = chunks(139, 121).collect();
        assert_eq!(speeduino, [(0, 121), (121, 18)]);
        let rusefi: Vec<_> = chunks(2200, 1024).collect();
        assert_eq!(rusefi, [(0, 1024), (1024, 1024), (2048, 152)]);
        assert_eq!(chunks(130, 0).collect::<Vec<_>>(), [(0, 130)]);
        assert_eq!(chunks(0, 251).count(), 0);
    }
}
