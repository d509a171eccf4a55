//! `candump -L` capture lines (can-utils log format): a borrowed line parser and a writer that
//! prints exactly what candump prints.
//!
//! Owns the grammar `(SECONDS.MICROS) IFACE FRAME`, where FRAME is `ID#DATA`, `ID#R[dlc]` or
//! `ID##F` + FD data (`docs/can-formats.md` §4). Never does IO and never reads a clock: the
//! timestamp in the line *is* the capture time, parsed as integers to exact nanoseconds (never
//! through `f64`, which cannot hold microseconds of a current epoch exactly).
//!
//! Invariants: [`parse_line`] never panics, borrows the interface name from the line, and
//! reports malformed input with the byte offset within the line. Error frames are written with
//! an 8-digit id carrying `0x20000000`, as candump does; they parse to an extended [`CanId`]
//! holding the error class plus [`CanFlags::ERROR`].
//!
//! Tolerated beyond what candump writes (all seen in real logs or other writers): lower-case
//! hex, `.` between data bytes, several spaces between fields, a raw-DLC suffix `_X` on classic
//! frames (ignored), candump `-x`'s trailing ` R`/` T` direction, and a trailing CR/LF.

use std::fmt::Write;

use super::slcan::{HEX_DIGITS, hex_value};
use crate::can::{CanFlags, CanFrame, CanId};
use crate::error::DecodeError;

/// One parsed log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CandumpLine<'a> {
    /// Capture time, nanoseconds since the UNIX epoch (microsecond resolution in practice).
    pub time_ns: u64,
    /// The interface the frame was captured on, checked as UTF-8 by the parse (printable ASCII
    /// on the fast path). Kept as bytes: the replay reader never asks for it, and making a
    /// `str` of it was 3 % of a max-speed replay's instructions (`docs/performance.md`).
    interface: &'a [u8],
    /// The frame.
    pub frame: CanFrame,
}

impl<'a> CandumpLine<'a> {
    /// The interface the frame was captured on (`can0`).
    pub fn interface(&self) -> &'a str {
        // Both parse paths admit only UTF-8 here, so the default is never taken.
        std::str::from_utf8(self.interface).unwrap_or_default()
    }
}

/// Linux `CAN_ERR_FLAG`, as candump prints it inside an 8-digit id.
const ID_ERROR: u32 = 0x2000_0000;
/// `CAN_EFF_FLAG | CAN_RTR_FLAG`: never printed inside an id.
const ID_INVALID: u32 = 0xC000_0000;
/// CAN FD flags digit.
const FD_BRS: u32 = 0x1;
const FD_ESI: u32 = 0x2;
const NS_PER_SEC: u64 = 1_000_000_000;

/// Parses one `candump -L` line; a trailing CR and/or LF is ignored.
pub fn parse_line(line: &[u8]) -> Result<CandumpLine<'_>, DecodeError> {
    match parse_plain(line) {
        Some(parsed) => Ok(parsed),
        None => parse_any(line),
    }
}

/// The line as candump writes a classic data frame — `(SECONDS.FRACTION) IFACE ID#HEX`, single
/// spaces, a 3- or 8-digit id, data pairs without separators — in one pass with a hex table.
/// Nearly every line of a real log has this shape, so it decides the replay's speed. `None`
/// for anything else, valid or not: [`parse_any`] then parses it or says what is wrong, so the
/// two agree on every line this one accepts (a test beside them checks that).
fn parse_plain(line: &[u8]) -> Option<CandumpLine<'_>> {
    let line = match line {
        [line @ .., b'\r', b'\n'] | [line @ .., b'\n' | b'\r'] => line,
        _ => line,
    };
    let (head, data_text) = plain_head(line)?;
    plain_frame(head, data_text)
}

/// The next line of `text` (a read buffer: that line and whatever follows it) when it has the
/// shape [`parse_plain`] takes and ends in LF or CR LF: the line and its length, the line end
/// included. `None` for any other line, and for one whose end is not in `text` yet; the
/// caller then finds the line's end and calls [`parse_line`]. A replay so parses a line
/// without first searching it for its end, which cost a fifth as much as parsing it
/// (`docs/performance.md`). The two agree on every line this one accepts (a test checks it).
pub fn parse_next_line(text: &[u8]) -> Option<(CandumpLine<'_>, usize)> {
    let (head, rest) = plain_head(text)?;
    // An 8-byte frame's 16 digits are followed by the line end; any other length is looked
    // for among the at most 16 digits and a CR that can come before it.
    let newline = match rest.get(16) {
        Some(b'\n') => 16,
        _ => rest
            .iter()
            .take(2 * CanFrame::MAX_CLASSIC_LEN + 2)
            .position(|&b| b == b'\n')?,
    };
    let data_text = match &rest[..newline] {
        [data @ .., b'\r'] => data,
        data => data,
    };
    let used = text.len() - rest.len() + newline + 1;
    Some((plain_frame(head, data_text)?, used))
}

/// What a plain line says before its data: time, interface, id and flags.
#[derive(Clone, Copy)]
struct PlainHead<'a> {
    time_ns: u64,
    interface: &'a [u8],
    id: CanId,
    flags: CanFlags,
}

/// The fields of a plain line up to its data, and the text from the data on (to the line's
/// end for [`parse_plain`], to the buffer's for [`parse_next_line`]).
#[inline(always)]
fn plain_head(line: &[u8]) -> Option<(PlainHead<'_>, &[u8])> {
    let rest = line.strip_prefix(b"(")?;
    let (time_ns, rest) = match rest {
        // The shape of every candump log of this century: ten digits, a dot, six digits.
        [
            s0,
            s1,
            s2,
            s3,
            s4,
            s5,
            s6,
            s7,
            s8,
            s9,
            b'.',
            f0,
            f1,
            f2,
            f3,
            f4,
            f5,
            b')',
            b' ',
            ..,
        ] => {
            // The last two digits of the seconds and the six of the fraction make one word,
            // so the sixteen digits are two steps and the microseconds need no scaling.
            let high = eight_digits([*s0, *s1, *s2, *s3, *s4, *s5, *s6, *s7])?;
            let low = eight_digits([*s8, *s9, *f0, *f1, *f2, *f3, *f4, *f5])?;
            // Below 10^16 microseconds, whose nanoseconds fit a `u64`: nothing to check.
            ((high * 100_000_000 + low) * 1000, &rest[19..])
        }
        _ => {
            let (secs, _, rest) = plain_decimal(rest, 19)?;
            let rest = rest.strip_prefix(b".")?;
            let (fraction, digits, rest) = plain_decimal(rest, 9)?;
            let time_ns = secs
                .checked_mul(NS_PER_SEC)?
                .checked_add(fraction * 10u64.pow(9 - digits as u32))?;
            (time_ns, rest.strip_prefix(b") ")?)
        }
    };
    let (iface, rest) = interface(rest)?;
    let (id, flags, data_text) = match rest {
        [a, b, c, b'#', data @ ..] => {
            let raw = hex_value(&[*a, *b, *c], 0).ok()?;
            (CanId::standard(raw)?, CanFlags::empty(), data)
        }
        text if text.get(8) == Some(&b'#') => {
            let raw = hex_value(&text[..8], 0).ok()?;
            if raw & ID_INVALID != 0 {
                return None;
            }
            let flags = if raw & ID_ERROR != 0 {
                CanFlags::ERROR
            } else {
                CanFlags::empty()
            };
            (
                CanId::extended(raw & CanId::MAX_EXTENDED)?,
                flags,
                &text[9..],
            )
        }
        _ => return None,
    };
    let head = PlainHead {
        time_ns,
        interface: iface,
        id,
        flags,
    };
    Some((head, data_text))
}

/// The line of `head` whose data is spelt by all of `data_text`.
#[inline(always)]
fn plain_frame<'a>(head: PlainHead<'a>, data_text: &[u8]) -> Option<CandumpLine<'a>> {
    if !data_text.len().is_multiple_of(2) || data_text.len() > 2 * CanFrame::MAX_CLASSIC_LEN {
        return None;
    }
    let data = classic_data(data_text)?;
    // `classic_data` pads with '0' digits, so the bytes after the frame's are zero.
    let frame = CanFrame::classic(head.id, head.flags, data, data_text.len() / 2)?;
    Some(CandumpLine {
        time_ns: head.time_ns,
        interface: head.interface,
        frame,
    })
}

/// The interface name and what follows the one space after it; `None` unless the name is
/// printable ASCII, at least one byte. A name shorter than eight bytes (`can0`, `vcan1`) is
/// found in one word: a byte loop for the space and another for the check cost more than
/// the rest of the line's parse but the data.
#[inline]
fn interface(text: &[u8]) -> Option<(&[u8], &[u8])> {
    if let Some(word) = text.first_chunk::<8>() {
        let odd = not_graphic(u64::from_le_bytes(*word));
        if odd != 0 {
            // The first byte that is not printable ends the name, so it must be the space.
            let len = (odd.trailing_zeros() / 8) as usize;
            return (len > 0 && word[len] == b' ').then(|| (&text[..len], &text[len + 1..]));
        }
    }
    let space = text.iter().position(|&b| b == b' ')?;
    let (iface, rest) = text.split_at(space);
    (!iface.is_empty() && iface.iter().all(u8::is_ascii_graphic)).then(|| (iface, &rest[1..]))
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `bytes` that is within `low..=high`, for bytes below 0x80:
/// for those no sum carries into the next byte, so each byte's high bit says whether it is at
/// least `low`, and whether it is above `high`.
fn within(bytes: u64, low: u8, high: u8) -> u64 {
    // Wrapping, as a byte of 0x80 or more in the top byte would overflow: such a word's
    // result is not used (see `not_hex`).
    let at_least = bytes.wrapping_add(ONES * u64::from(0x80 - low));
    let above = bytes.wrapping_add(ONES * u64::from(0x7F - high));
    at_least & !above & HIGH_BITS
}

/// The high bit of each byte that is not printable ASCII (`u8::is_ascii_graphic`).
fn not_graphic(bytes: u64) -> u64 {
    !within(bytes & !HIGH_BITS, b'!', b'~') & HIGH_BITS | bytes & HIGH_BITS
}

/// The bytes spelt by `text`, an even number of hex digits (either case), at most 16; the
/// bytes past its end are zero. `None` if any is not a hex digit.
#[inline(always)]
fn classic_data(text: &[u8]) -> Option<[u8; CanFrame::MAX_CLASSIC_LEN]> {
    // '0' pads are digits too, so every length takes the same two 8-digit steps; a whole
    // 8-byte frame (nearly every frame) is read where it lies, without the copy.
    let mut padded = [b'0'; 2 * CanFrame::MAX_CLASSIC_LEN];
    let digits: &[u8; 16] = match text.try_into() {
        Ok(whole) => whole,
        Err(_) => {
            padded.get_mut(..text.len())?.copy_from_slice(text);
            &padded
        }
    };
    let digits = u128::from_le_bytes(*digits);
    let (first, second) = (digits as u64, (digits >> 64) as u64);
    // One branch for both words: a bad digit is rare, and the check is cheaper than a jump.
    if not_hex(first) | not_hex(second) != 0 {
        return None;
    }
    Some((u64::from(four_hex_bytes(first)) | u64::from(four_hex_bytes(second)) << 32).to_le_bytes())
}

/// The high bit of each byte that is not a hex digit (either case).
fn not_hex(digits: u64) -> u64 {
    const CASE_BITS: u64 = ONES * 0x20;
    // A byte of 0x80 or more may carry into its neighbour's tests below, but is reported by
    // its own high bit, and one bad byte is enough. Setting 0x20 folds 'A'..='F' onto
    // 'a'..='f' (and leaves the digits as they are).
    let letters = within(digits | CASE_BITS, b'a', b'f');
    (digits | !(within(digits, b'0', b'9') | letters)) & HIGH_BITS
}

/// Eight hex digits (the first in the lowest byte; [`not_hex`] found none bad) as the four
/// bytes they spell, the first in the lowest byte. Eight at once in one word: a table lookup
/// and a check per digit was 5 % of a max-speed replay's instructions.
fn four_hex_bytes(digits: u64) -> u32 {
    const LOW_NIBBLES: u64 = ONES * 0x0F;
    // A letter (bit 6 set) is its low four bits plus 9; a digit its low four bits.
    let nibbles = (digits & LOW_NIBBLES) + (digits >> 6 & ONES) * 9;
    let pairs = (nibbles << 4 | nibbles >> 8) & 0x00FF_00FF_00FF_00FF;
    let quads = (pairs | pairs >> 8) & 0x0000_FFFF_0000_FFFF;
    (quads | quads >> 16) as u32
}

/// Eight ASCII decimal digits as a number, all at once in one 64-bit word; `None` if any
/// byte is not a digit.
fn eight_digits(digits: [u8; 8]) -> Option<u64> {
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    // The first digit is the lowest byte, and the most significant.
    let values = u64::from_le_bytes(digits).wrapping_sub(ZEROS);
    // A byte below '0' wraps to 0x80 or more; one above '9' reaches 0x80 once 0x76 is added.
    if (values | values.wrapping_add(0x7676_7676_7676_7676)) & HIGH_BITS != 0 {
        return None;
    }
    // Pairs of digits, then pairs of pairs, then the two halves.
    let pairs = (values.wrapping_mul(10) + (values >> 8)) & 0x00FF_00FF_00FF_00FF;
    let quads = (pairs.wrapping_mul(100) + (pairs >> 16)) & 0x0000_FFFF_0000_FFFF;
    Some((quads.wrapping_mul(10_000) + (quads >> 32)) & 0xFFFF_FFFF)
}

/// 1..=`max` decimal digits (so at most 19 cannot overflow a `u64`): the value, the digit
/// count and what follows.
fn plain_decimal(text: &[u8], max: usize) -> Option<(u64, usize, &[u8])> {
    let mut value = 0u64;
    let mut digits = 0;
    for &byte in text {
        let digit = byte.wrapping_sub(b'0');
        if digit > 9 {
            break;
        }
        if digits == max {
            return None;
        }
        value = value * 10 + u64::from(digit);
        digits += 1;
    }
    (digits > 0).then(|| (value, digits, &text[digits..]))
}

/// Any line the module grammar allows, with the offset of what is wrong when it is not one.
fn parse_any(line: &[u8]) -> Result<CandumpLine<'_>, DecodeError> {
    let end = line
        .iter()
        .rposition(|&b| b != b'\n' && b != b'\r')
        .map_or(0, |i| i + 1);
    let line = &line[..end];
    let (time_ns, pos) = parse_time(line)?;
    let pos = skip_spaces(line, pos, "a space after the timestamp")?;
    let (iface, pos) = token(line, pos);
    std::str::from_utf8(iface).map_err(|e| DecodeError::Syntax {
        offset: pos - iface.len() + e.valid_up_to(),
        expected: "an ASCII interface name",
    })?;
    let pos = skip_spaces(line, pos, "a space after the interface")?;
    let (frame_text, after) = token(line, pos);
    let frame = parse_frame(frame_text, pos)?;
    check_tail(line, after)?;
    Ok(CandumpLine {
        time_ns,
        interface: iface,
        frame,
    })
}

/// Appends the line `candump -L` prints for `frame`, newline included.
///
/// The time is truncated to microseconds, as the kernel's `timeval` is. candump pads the
/// interface to the longest name it listens on; this writer, like candump on one interface,
/// does not pad. CAN FD flags are written as BRS (1) and ESI (2).
pub fn write_line(time_ns: u64, interface: &str, frame: &CanFrame, out: &mut String) {
    let secs = time_ns / NS_PER_SEC;
    let micros = time_ns % NS_PER_SEC / 1000;
    // Writing into a `String` cannot fail.
    let _ = write!(out, "({secs:010}.{micros:06}) {interface} ");
    let id = frame.id.id();
    if frame.flags.contains(CanFlags::ERROR) {
        push_hex(out, id | ID_ERROR, 8);
    } else if frame.id.is_extended() {
        push_hex(out, id, 8);
    } else {
        push_hex(out, id, 3);
    }
    out.push('#');
    if frame.is_remote() {
        out.push('R');
        if (1..=CanFrame::MAX_CLASSIC_LEN).contains(&frame.len()) {
            push_hex(out, frame.len() as u32, 1);
        }
    } else {
        if frame.is_fd() {
            let brs = if frame.flags.contains(CanFlags::BRS) {
                FD_BRS
            } else {
                0
            };
            let esi = if frame.flags.contains(CanFlags::ESI) {
                FD_ESI
            } else {
                0
            };
            out.push('#');
            push_hex(out, brs | esi, 1);
        }
        for &byte in frame.data() {
            push_hex(out, u32::from(byte), 2);
        }
    }
    out.push('\n');
}

/// `(SECONDS.FRACTION)` at the start of the line; returns nanoseconds and the next offset.
fn parse_time(line: &[u8]) -> Result<(u64, usize), DecodeError> {
    expect(line, 0, b'(', "'(' opening the timestamp")?;
    let (secs, digits) = decimal(line, 1, 20)?;
    let dot = 1 + digits;
    expect(line, dot, b'.', "'.' in the timestamp")?;
    let (fraction, frac_digits) = decimal(line, dot + 1, 9)?;
    let close = dot + 1 + frac_digits;
    expect(line, close, b')', "')' closing the timestamp")?;
    // 9 fraction digits at most, so the exponent is 0..=8 and the scale cannot overflow.
    let scale = 10u64.pow(9 - frac_digits as u32);
    let time_ns = secs
        .checked_mul(NS_PER_SEC)
        .and_then(|ns| ns.checked_add(fraction * scale))
        .ok_or(DecodeError::Syntax {
            offset: 1,
            expected: "a timestamp before the year 2554",
        })?;
    Ok((time_ns, close + 1))
}

/// 1..=`max` decimal digits at `at`; returns the value and the digit count.
fn decimal(line: &[u8], at: usize, max: usize) -> Result<(u64, usize), DecodeError> {
    let digits = line
        .get(at..)
        .unwrap_or_default()
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    if digits == 0 || digits > max {
        return Err(DecodeError::Syntax {
            offset: at,
            expected: "decimal digits",
        });
    }
    let value = line[at..at + digits].iter().try_fold(0u64, |acc, &b| {
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    });
    let value = value.ok_or(DecodeError::Syntax {
        offset: at,
        expected: "a timestamp before the year 2554",
    })?;
    Ok((value, digits))
}

/// `ID#...` starting at line offset `at`.
fn parse_frame(text: &[u8], at: usize) -> Result<CanFrame, DecodeError> {
    let hash = text.iter().position(|&b| b == b'#');
    let (id, flags) = match hash {
        Some(n @ (3 | 8)) => parse_id(&text[..n], at)?,
        _ => {
            let expected = "a 3 or 8 hex digit id and '#'";
            return Err(DecodeError::Syntax {
                offset: at,
                expected,
            });
        }
    };
    let body_at = hash.map_or(0, |n| n + 1);
    let body = &text[body_at..];
    let frame = match body.first() {
        Some(b'#') => parse_fd(id, flags, &body[1..], at + body_at + 1)?,
        Some(b'R' | b'r') => parse_remote(id, &body[1..], at + body_at + 1)?,
        _ => {
            let mut data = [0u8; CanFrame::MAX_FD_LEN];
            let max = CanFrame::MAX_CLASSIC_LEN;
            let len = parse_data(body, at + body_at, max, &mut data, true)?;
            CanFrame::new(id, flags, &data[..len])
        }
    };
    // `parse_data` and `parse_remote` already bound the length, so this only guards the
    // invariant instead of unwrapping.
    let mut frame = frame.ok_or(DecodeError::Syntax {
        offset: at + body_at,
        expected: "a payload that fits the frame kind",
    })?;
    frame.flags = frame.flags.with(flags);
    Ok(frame)
}

/// A 3-digit (standard) or 8-digit (extended or error) id.
fn parse_id(digits: &[u8], at: usize) -> Result<(CanId, CanFlags), DecodeError> {
    let raw = hex_value(digits, at)?;
    let bad = DecodeError::BadCanId {
        offset: at,
        id: raw,
    };
    if digits.len() == 3 {
        return CanId::standard(raw)
            .map(|id| (id, CanFlags::empty()))
            .ok_or(bad);
    }
    if raw & ID_INVALID != 0 {
        return Err(bad);
    }
    let flags = if raw & ID_ERROR != 0 {
        CanFlags::ERROR
    } else {
        CanFlags::empty()
    };
    let id = CanId::extended(raw & CanId::MAX_EXTENDED).ok_or(bad)?;
    Ok((id, flags))
}

/// After `##`: one flags digit, then up to 64 data bytes.
fn parse_fd(
    id: CanId,
    flags: CanFlags,
    text: &[u8],
    at: usize,
) -> Result<Option<CanFrame>, DecodeError> {
    let Some(digit) = text.first() else {
        return Err(DecodeError::Truncated {
            offset: at,
            need: 1,
            have: 0,
        });
    };
    let fd_bits = hex_value(std::slice::from_ref(digit), at)?;
    let mut flags = flags.with(CanFlags::FD);
    if fd_bits & FD_BRS != 0 {
        flags = flags.with(CanFlags::BRS);
    }
    if fd_bits & FD_ESI != 0 {
        flags = flags.with(CanFlags::ESI);
    }
    let mut data = [0u8; CanFrame::MAX_FD_LEN];
    let len = parse_data(&text[1..], at + 1, CanFrame::MAX_FD_LEN, &mut data, false)?;
    Ok(CanFrame::new(id, flags, &data[..len]))
}

/// After `#R`: an optional DLC digit 0..=8, and after `8` an optional raw DLC `_X` (ignored).
fn parse_remote(id: CanId, text: &[u8], at: usize) -> Result<Option<CanFrame>, DecodeError> {
    let dlc = match text {
        [] => 0,
        [digit] => hex_value(std::slice::from_ref(digit), at)?,
        [b'8', b'_', raw] => {
            hex_value(std::slice::from_ref(raw), at + 2)?;
            8
        }
        [_, ..] => {
            let extra = text.len() - 1;
            return Err(DecodeError::TrailingBytes {
                offset: at + 1,
                extra,
            });
        }
    };
    if dlc > 8 {
        let len = dlc as usize;
        return Err(DecodeError::BadLength {
            offset: at,
            len,
            max: 8,
        });
    }
    Ok(CanFrame::remote(id, dlc as u8))
}

/// Hex byte pairs (`.` separators skipped) into `data`; returns the byte count.
///
/// `raw_dlc` allows the classic `_X` suffix, which candump adds for DLCs 9..F on 8-byte frames.
fn parse_data(
    text: &[u8],
    at: usize,
    max: usize,
    data: &mut [u8; CanFrame::MAX_FD_LEN],
    raw_dlc: bool,
) -> Result<usize, DecodeError> {
    let mut len = 0;
    let mut pos = 0;
    while pos < text.len() {
        match text[pos] {
            b'.' => pos += 1,
            b'_' if raw_dlc && len == max => {
                let dlc_at = at + pos + 1;
                match text.get(pos + 1..) {
                    Some([digit]) => hex_value(std::slice::from_ref(digit), dlc_at)?,
                    _ => {
                        return Err(DecodeError::Syntax {
                            offset: dlc_at,
                            expected: "one raw DLC digit",
                        });
                    }
                };
                return Ok(len);
            }
            _ => {
                let Some(pair) = text.get(pos..pos + 2) else {
                    return Err(DecodeError::Truncated {
                        offset: at + pos,
                        need: 2,
                        have: 1,
                    });
                };
                if len == max {
                    return Err(DecodeError::BadLength {
                        offset: at,
                        len: len + 1,
                        max,
                    });
                }
                data[len] = hex_value(pair, at + pos)? as u8;
                len += 1;
                pos += 2;
            }
        }
    }
    Ok(len)
}

/// Only spaces and one optional `R`/`T` direction marker (candump `-x`) may follow the frame.
fn check_tail(line: &[u8], at: usize) -> Result<(), DecodeError> {
    let is_space = |b: &u8| *b == b' ' || *b == b'\t';
    let rest = &line[at..];
    let lead = rest.iter().take_while(|b| is_space(b)).count();
    let body = &rest[lead..];
    let body_len = body.iter().rposition(|b| !is_space(b)).map_or(0, |i| i + 1);
    match &body[..body_len] {
        [] | [b'R' | b'T'] => Ok(()),
        _ => Err(DecodeError::TrailingBytes {
            offset: at + lead,
            extra: body.len(),
        }),
    }
}

/// The bytes up to the next space or tab, and the offset after them.
fn token(line: &[u8], at: usize) -> (&[u8], usize) {
    let rest = line.get(at..).unwrap_or_default();
    let n = rest
        .iter()
        .position(|&b| b == b' ' || b == b'\t')
        .unwrap_or(rest.len());
    (&rest[..n], at + n)
}

/// One or more spaces or tabs at `at`; returns the offset after them.
fn skip_spaces(line: &[u8], at: usize, expected: &'static str) -> Result<usize, DecodeError> {
    let rest = line.get(at..).unwrap_or_default();
    let n = rest
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    let next_is_text = rest.get(n).is_some();
    if n == 0 || !next_is_text {
        return Err(DecodeError::Syntax {
            offset: at + n,
            expected,
        });
    }
    Ok(at + n)
}

fn expect(line: &[u8], at: usize, want: u8, expected: &'static str) -> Result<(), DecodeError> {
    match line.get(at) {
        Some(&b) if b == want => Ok(()),
        Some(_) => Err(DecodeError::Syntax {
            offset: at,
            expected,
        }),
        None => Err(DecodeError::Truncated {
            offset: at,
            need: 1,
            have: 0,
        }),
    }
}

fn push_hex(out: &mut String, value: u32, digits: u32) {
    for shift in (0..digits).rev() {
        out.push(char::from(
            HEX_DIGITS[(value >> (shift * 4) & 0xF) as usize],
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static CLASSIC: &[u8] = b"(1436509052.249713) can0 1A4#FFF1000007FFF124\n";
    static EXTENDED_REMOTE: &[u8] = b"(0000000001.000001) vcan1 18FEF100#R8";
    static FD: &[u8] = b"(1436509052.000000) can1 123##10102030405060708090A0B0C";
    static ERROR: &[u8] = b"(1436509052.500000) can0 20000004#0000100000000000";

    #[test]
    fn deconstruct() {
        let line = parse_line(CLASSIC).expect("valid");
        assert_eq!(
            (line.time_ns, line.interface()),
            (1_436_509_052_249_713_000, "can0")
        );
        assert_eq!(line.frame.id, CanId::standard(0x1A4).expect("id"));
        assert_eq!(
            line.frame.data(),
            &[0xFF, 0xF1, 0, 0, 0x07, 0xFF, 0xF1, 0x24]
        );
        let line = parse_line(EXTENDED_REMOTE).expect("valid");
        assert_eq!(line.time_ns, 1_000_001_000);
        assert!(line.frame.is_remote() && line.frame.id.is_extended());
        assert_eq!((line.frame.id.id(), line.frame.len()), (0x18FE_F100, 8));
        let line = parse_line(FD).expect("valid");
        assert!(line.frame.is_fd() && line.frame.flags.contains(CanFlags::BRS));
        assert_eq!(line.frame.len(), 12);
        let line = parse_line(ERROR).expect("valid");
        assert!(line.frame.flags.contains(CanFlags::ERROR));
        assert_eq!(line.frame.id.id(), 4);
        let tolerant = parse_line(b"(1.5)  can0  1a4#01.02 R\r\n").expect("tolerated");
        assert_eq!(
            (tolerant.time_ns, tolerant.frame.data()),
            (1_500_000_000, &[1, 2][..])
        );
        let raw_dlc = parse_line(b"(1.0) can0 1A4#0102030405060708_C").expect("tolerated");
        assert_eq!(raw_dlc.frame.len(), 8);
        let raw_dlc = parse_line(b"(1.0) can0 1A4#R8_F").expect("tolerated");
        assert_eq!((raw_dlc.frame.is_remote(), raw_dlc.frame.len()), (true, 8));
    }

    #[test]
    fn construct_round_trips_into_a_dirty_buffer() {
        for text in [CLASSIC, EXTENDED_REMOTE, FD, ERROR] {
            let line = parse_line(text).expect("valid");
            let mut out = String::from("junk");
            write_line(line.time_ns, line.interface(), &line.frame, &mut out);
            assert_eq!(&out[..4], "junk");
            let want = std::str::from_utf8(text).expect("ascii").trim_end();
            assert_eq!(&out[4..], format!("{want}\n"));
        }
        let mut out = String::new();
        let rtr = CanFrame::remote(CanId::standard(0x7DF).expect("id"), 0).expect("rtr");
        write_line(999, "can0", &rtr, &mut out);
        assert_eq!(out, "(0000000000.000000) can0 7DF#R\n");
    }

    #[test]
    fn truncated_and_impossible_lengths() {
        let bad = |line: &[u8]| parse_line(line).expect_err("malformed");
        assert_eq!(
            bad(b"(1436509052"),
            DecodeError::Truncated {
                offset: 11,
                need: 1,
                have: 0
            }
        );
        assert_eq!(
            bad(b"(1.0) can0 1A4#0102030405060708FF").kind(),
            "bad_length"
        );
        assert_eq!(
            bad(b"(1.0) can0 1A4#010"),
            DecodeError::Truncated {
                offset: 17,
                need: 2,
                have: 1
            }
        );
        assert_eq!(
            bad(b"(1.0) can0 800#"),
            DecodeError::BadCanId {
                offset: 11,
                id: 0x800
            }
        );
        assert_eq!(bad(b"(1.0) can0 1A45#").kind(), "syntax");
        assert_eq!(
            bad(b"(1.0) can0 1A4#R9"),
            DecodeError::BadLength {
                offset: 16,
                len: 9,
                max: 8
            }
        );
        assert_eq!(bad(b"(1.0) can0 1A4#01 junk").kind(), "trailing_bytes");
        assert_eq!(bad(b"(99999999999.0) can0 1A4#").kind(), "syntax");
        let fd65 = [&b"(1.0) can0 1A4##0"[..], &[b'0'; 130]].concat();
        assert_eq!(
            bad(&fd65),
            DecodeError::BadLength {
                offset: 17,
                len: 65,
                max: 64
            }
        );
    }

    /// Lines close to candump's own shape, with every kind of deviation mixed in: a space,
    /// tab, dot, `#`, `R`, `_`, CR, non-hex letters, digits of any count.
    fn near_candump_line() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let piece = prop_oneof![
            Just(b"(".to_vec()),
            Just(b")".to_vec()),
            Just(b".".to_vec()),
            Just(b" ".to_vec()),
            Just(b"\t".to_vec()),
            Just(b"#".to_vec()),
            Just(b"##".to_vec()),
            Just(b"R".to_vec()),
            Just(b"_".to_vec()),
            Just(b"\r".to_vec()),
            Just(b"can0".to_vec()),
            Just("é".as_bytes().to_vec()),
            "[0-9]{1,21}".prop_map(String::into_bytes),
            "[0-9A-Fa-fGg]{1,18}".prop_map(String::into_bytes),
        ];
        let plain = (
            "[0-9]{1,20}",
            "[0-9]{1,10}",
            "[0-9A-Fa-f]{3}|[0-9A-Fa-f]{8}",
            "([0-9A-Fa-f]{2}){0,9}",
        )
            .prop_map(|(secs, fraction, id, data)| {
                format!("({secs}.{fraction}) can0 {id}#{data}\n").into_bytes()
            });
        prop_oneof![
            plain,
            proptest::collection::vec(piece, 0..12).prop_map(|p| p.concat())
        ]
    }

    proptest::proptest! {
        /// The one-pass path is only a shortcut: whatever it accepts, the full grammar parses
        /// to the same line.
        #[test]
        fn the_plain_path_agrees_with_the_full_grammar(line in near_candump_line()) {
            if let Some(plain) = parse_plain(&line) {
                proptest::prop_assert_eq!(Ok(plain), parse_any(&line));
            }
        }
    }

    proptest::proptest! {
        /// Parsing the next line of a buffer is only a shortcut too: whatever it takes is one
        /// whole line, which the full grammar parses to the same; and every line the one-pass
        /// path takes, it takes, whatever follows the line.
        #[test]
        fn the_next_line_path_takes_one_whole_line_as_the_full_grammar_does(
            line in near_candump_line(),
            after in near_candump_line(),
        ) {
            let mut line = line;
            if line.last() != Some(&b'\n') {
                line.push(b'\n');
            }
            let text = [&line[..], &after[..]].concat();
            let next = parse_next_line(&text);
            if let Some((parsed, used)) = next {
                proptest::prop_assert_eq!(used, line.len());
                proptest::prop_assert_eq!(Ok(parsed), parse_line(&text[..used]));
            }
            if let Some(plain) = parse_plain(&line) {
                proptest::prop_assert_eq!(next, Some((plain, line.len())));
            }
            // Without its line end the line is not taken: the rest may still be on its way.
            proptest::prop_assert_eq!(parse_next_line(&line[..line.len() - 1]), None);
        }
    }

    proptest::proptest! {
        #[test]
        fn eight_digits_read_as_the_decimal_they_spell(
            // Digits and their neighbours, where a word-wide test could go wrong.
            near in proptest::collection::vec(proptest::sample::select(b"/0123456789:\x00\x7f\x80\xb0\xb9\xff".to_vec()), 8),
            n in 0u64..100_000_000,
        ) {
            let bytes: [u8; 8] = near.try_into().expect("8 bytes");
            let text = format!("{n:08}");
            let digits: [u8; 8] = text.as_bytes().try_into().expect("8 digits");
            proptest::prop_assert_eq!(eight_digits(digits), Some(n));
            let expected = bytes
                .iter()
                .all(u8::is_ascii_digit)
                .then(|| std::str::from_utf8(&bytes).ok()?.parse().ok())
                .flatten();
            proptest::prop_assert_eq!(eight_digits(bytes), expected);
        }

        #[test]
        fn classic_data_reads_hex_pairs_as_the_table_does(
            // Mostly hex digits of both cases, now and then a neighbour where a word-wide test
            // could go wrong, so a bad digit is often the only one (in either word).
            near in proptest::collection::vec(
                proptest::prop_oneof![
                    8 => proptest::sample::select(b"0123456789abcdefABCDEF".to_vec()),
                    1 => proptest::sample::select(b"/:@G`g\x00\x10\x19\x7f\x80\xb0\xc1\xe6\xff".to_vec()),
                ],
                0..=16,
            ),
            pairs in 0usize..=8,
        ) {
            use super::super::slcan::{HEX_VALUE, NOT_HEX};
            let mut text = near;
            text.truncate(2 * pairs);
            text.resize(2 * pairs, b'7');
            let mut expected = Some([0u8; 8]);
            for (i, pair) in text.chunks_exact(2).enumerate() {
                let (high, low) = (HEX_VALUE[usize::from(pair[0])], HEX_VALUE[usize::from(pair[1])]);
                match expected.as_mut() {
                    Some(bytes) if high != NOT_HEX && low != NOT_HEX => bytes[i] = high << 4 | low,
                    _ => expected = None,
                }
            }
            proptest::prop_assert_eq!(classic_data(&text), expected);
        }
    }

    proptest::proptest! {
        #[test]
        fn the_interface_word_agrees_with_the_byte_loops(
            // Printable bytes and their neighbours, so a bad or missing space is tried at every
            // position of the word and past it.
            text in proptest::collection::vec(
                proptest::prop_oneof![
                    6 => proptest::sample::select(b"can0vcan1_-.!~".to_vec()),
                    2 => proptest::sample::select(b" ".to_vec()),
                    1 => proptest::sample::select(b"\t\x00\x1f\x20\x7f\x80\xa0\xa1\xc3\xfe\xff".to_vec()),
                ],
                0..=12,
            ),
        ) {
            let expected = text.iter().position(|&b| b == b' ').and_then(|space| {
                let (iface, rest) = text.split_at(space);
                (!iface.is_empty() && iface.iter().all(u8::is_ascii_graphic))
                    .then(|| (iface, &rest[1..]))
            });
            proptest::prop_assert_eq!(interface(&text), expected);
        }
    }

    #[test]
    fn what_candump_writes_takes_the_plain_path() {
        assert!(parse_plain(CLASSIC).is_some());
        assert!(parse_plain(ERROR).is_some());
        assert!(parse_plain(b"(1436509052.249713) can0 123#\r\n").is_some());
        assert!(parse_plain(FD).is_none() && parse_plain(EXTENDED_REMOTE).is_none());
        let two = [CLASSIC, CLASSIC].concat();
        let (first, used) = parse_next_line(&two).expect("a classic line");
        assert_eq!((Ok(first), used), (parse_line(CLASSIC), CLASSIC.len()));
        assert_eq!(parse_next_line(&[FD, b"\n", CLASSIC].concat()), None);
    }
}
