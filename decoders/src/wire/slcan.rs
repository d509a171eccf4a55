//! SLCAN / Lawicel ASCII (CAN over a serial line): line parser, frame and command encoders, a
//! bounded sans-IO line framer, and a timestamp unwrapper.
//!
//! Owns the text grammar of `docs/can-formats.md` §3: frame lines `t T r R d D b B`, the
//! adapter's replies, and the host's setup commands. Never does IO and never reads a clock:
//! the serial reader feeds bytes to [`SlcanFramer`] and passes receive times to
//! [`TimestampUnwrapper`].
//!
//! Invariants:
//! - [`parse_line`] never panics; a line it does not recognise is [`SlcanLine::Unknown`], and
//!   a malformed frame is a [`DecodeError`] with the offset within the line.
//! - [`SlcanFramer`] holds at most [`MAX_LINE_LEN`] bytes whatever the input; longer lines are
//!   dropped and reported, and it resynchronises at the next CR.
//! - Nothing allocates per frame: lines are borrowed and frames are [`CanFrame`] values.
//!
//! The grammar is fixed-width, so a hand-written cursor is used rather than nom: each field's
//! absolute offset is known up front and goes straight into the error.

use crate::can::{CanFlags, CanFrame, CanId};
use crate::error::DecodeError;

/// Line terminator for commands, frames and the adapter's OK.
pub const CR: u8 = 0x0D;
/// The adapter's error reply; always a line of its own.
pub const BEL: u8 = 0x07;
/// Timestamps count milliseconds modulo this value (0..=0xEA5F).
pub const TIMESTAMP_WRAP_MS: u16 = 60_000;
/// Longest line the framer keeps: an extended FD frame with 64 bytes and a timestamp is
/// 1 + 8 + 1 + 128 + 4 = 142 bytes; the rest is slack for vendor replies.
pub const MAX_LINE_LEN: usize = 160;

/// Payload length for each FD DLC digit (0..=F); classic frames use only 0..=8.
const FD_LENS: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 32, 48, 64];
/// Upper-case digits, as adapters and candump print them.
pub(super) const HEX_DIGITS: &[u8; 16] = b"0123456789ABCDEF";

/// One line from the adapter, without its CR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlcanLine<'a> {
    /// A received frame, with the adapter's millisecond timestamp when `Z1` is on.
    Frame {
        /// The frame.
        frame: CanFrame,
        /// Milliseconds modulo 60 000; unwrap with [`TimestampUnwrapper`].
        timestamp_ms: Option<u16>,
    },
    /// An empty line: the adapter's OK (a bare CR).
    Ok,
    /// BEL: the adapter rejected the last command.
    Error,
    /// `z` / `Z`: a frame the host sent was queued for transmission.
    TransmitAck {
        /// `Z` (extended) rather than `z` (standard).
        extended: bool,
    },
    /// `V` reply: hardware and software version digits as sent.
    Version(&'a [u8]),
    /// `N` reply: the adapter's serial number as sent.
    Serial(&'a [u8]),
    /// `F` reply: the status flags byte (bus errors, overruns).
    Status(u8),
    /// Anything else; counted by the caller, never an error.
    Unknown(&'a [u8]),
}

/// Parses one line (without its CR) from the adapter.
pub fn parse_line(line: &[u8]) -> Result<SlcanLine<'_>, DecodeError> {
    let Some((&first, rest)) = line.split_first() else {
        return Ok(SlcanLine::Ok);
    };
    Ok(match first {
        b't' | b'T' | b'r' | b'R' | b'd' | b'D' | b'b' | b'B' => parse_frame(line)?,
        BEL if rest.is_empty() => SlcanLine::Error,
        b'z' if rest.is_empty() => SlcanLine::TransmitAck { extended: false },
        b'Z' if rest.is_empty() => SlcanLine::TransmitAck { extended: true },
        b'V' => SlcanLine::Version(rest),
        b'N' => SlcanLine::Serial(rest),
        b'F' if rest.len() == 2 => match hex_value(rest, 1) {
            Ok(flags) => SlcanLine::Status(flags as u8),
            Err(_) => SlcanLine::Unknown(line),
        },
        _ => SlcanLine::Unknown(line),
    })
}

/// Appends `frame` as an SLCAN transmit line, CR included.
///
/// FD payloads whose length is not in the FD table are padded with zeros up to the next
/// legal length, as the bus would. SLCAN has no error frames: an error frame is written as a
/// data frame with its error-class id. Timestamps at or above 60 000 are reduced modulo it.
pub fn encode_frame(frame: &CanFrame, timestamp_ms: Option<u16>, out: &mut Vec<u8>) {
    let extended = frame.id.is_extended();
    let fd = frame.is_fd() && !frame.is_remote();
    let letter = match (frame.is_remote(), fd, frame.flags.contains(CanFlags::BRS)) {
        (true, _, _) => b'r',
        (false, true, true) => b'b',
        (false, true, false) => b'd',
        (false, false, _) => b't',
    };
    out.push(if extended {
        letter.to_ascii_uppercase()
    } else {
        letter
    });
    push_hex(out, frame.id.id(), if extended { 8 } else { 3 });
    let len = frame.len().min(CanFrame::MAX_FD_LEN);
    let dlc = if fd {
        fd_dlc(len)
    } else {
        len.min(CanFrame::MAX_CLASSIC_LEN)
    };
    push_hex(out, dlc as u32, 1);
    let data = frame.data();
    for &byte in data {
        push_hex(out, u32::from(byte), 2);
    }
    if fd {
        let padded = usize::from(FD_LENS[dlc]);
        for _ in data.len()..padded {
            out.extend_from_slice(b"00");
        }
    }
    if let Some(ms) = timestamp_ms {
        push_hex(out, u32::from(ms % TIMESTAMP_WRAP_MS), 4);
    }
    out.push(CR);
}

/// Bus bitrates the `S0`…`S8` commands select.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SlcanBitrate {
    /// `S0`: 10 kbit/s.
    Kbit10,
    /// `S1`: 20 kbit/s.
    Kbit20,
    /// `S2`: 50 kbit/s.
    Kbit50,
    /// `S3`: 100 kbit/s.
    Kbit100,
    /// `S4`: 125 kbit/s.
    Kbit125,
    /// `S5`: 250 kbit/s.
    Kbit250,
    /// `S6`: 500 kbit/s.
    Kbit500,
    /// `S7`: 800 kbit/s.
    Kbit800,
    /// `S8`: 1 Mbit/s.
    Mbit1,
}

impl SlcanBitrate {
    const ALL: [(Self, u32); 9] = [
        (Self::Kbit10, 10_000),
        (Self::Kbit20, 20_000),
        (Self::Kbit50, 50_000),
        (Self::Kbit100, 100_000),
        (Self::Kbit125, 125_000),
        (Self::Kbit250, 250_000),
        (Self::Kbit500, 500_000),
        (Self::Kbit800, 800_000),
        (Self::Mbit1, 1_000_000),
    ];

    /// The setting for `bps` bits per second; `None` if SLCAN has no such preset.
    pub fn from_bps(bps: u32) -> Option<Self> {
        Self::ALL
            .iter()
            .find(|(_, b)| *b == bps)
            .map(|(rate, _)| *rate)
    }

    /// Bits per second.
    pub fn bps(self) -> u32 {
        Self::ALL[self.code()].1
    }

    /// The digit after `S` (0..=8).
    fn code(self) -> usize {
        self as usize
    }
}

/// A command the host sends to the adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SlcanCommand {
    /// `C`: close the channel (required before changing settings).
    Close,
    /// `Sn`: set the bus bitrate.
    SetBitrate(SlcanBitrate),
    /// `O`: open the channel for receive and transmit.
    Open,
    /// `L`: open listen-only, so the adapter never acks or transmits on the bus.
    ListenOnly,
    /// `Z1` / `Z0`: append millisecond timestamps to received frames, or not.
    Timestamps(bool),
    /// `F`: read the status flags.
    ReadStatus,
    /// `V`: read the version.
    Version,
    /// `N`: read the serial number.
    Serial,
}

impl SlcanCommand {
    /// Appends the command, CR included.
    pub fn encode(self, out: &mut Vec<u8>) {
        match self {
            Self::Close => out.push(b'C'),
            Self::SetBitrate(rate) => out.extend_from_slice(&[b'S', HEX_DIGITS[rate.code()]]),
            Self::Open => out.push(b'O'),
            Self::ListenOnly => out.push(b'L'),
            Self::Timestamps(on) => out.extend_from_slice(if on { b"Z1" } else { b"Z0" }),
            Self::ReadStatus => out.push(b'F'),
            Self::Version => out.push(b'V'),
            Self::Serial => out.push(b'N'),
        }
        out.push(CR);
    }
}

/// Splits a serial byte stream into lines, with bounded memory.
///
/// Lines end at CR (not included). BEL is a line of its own and also ends any partial line
/// before it. LFs at the start of a line are dropped, so CRLF adapters work. A line longer than
/// [`MAX_LINE_LEN`] is reported once as [`DecodeError::LineTooLong`] (offset = its first byte
/// in the stream) and skipped up to the next CR or BEL.
#[derive(Debug, Clone)]
pub struct SlcanFramer {
    /// The partial line carried over from earlier chunks.
    buf: [u8; MAX_LINE_LEN],
    len: usize,
    /// Skipping an over-long line until the next terminator.
    discarding: bool,
    /// Stream offset of the current line's first byte.
    line_start: usize,
    /// Bytes pushed so far, for error offsets.
    consumed: usize,
    dropped_lines: u64,
}

impl Default for SlcanFramer {
    fn default() -> Self {
        Self::new()
    }
}

impl SlcanFramer {
    /// A framer at stream offset 0 with nothing buffered.
    pub fn new() -> Self {
        Self {
            buf: [0; MAX_LINE_LEN],
            len: 0,
            discarding: false,
            line_start: 0,
            consumed: 0,
            dropped_lines: 0,
        }
    }

    /// Feeds `chunk` and calls `on_line` for every line it completes, in order.
    ///
    /// Lines inside `chunk` are passed without copying; only a trailing partial line is kept.
    pub fn push(&mut self, chunk: &[u8], mut on_line: impl FnMut(Result<&[u8], DecodeError>)) {
        let base = self.consumed;
        let mut start = 0;
        while let Some(i) = chunk[start..].iter().position(|&b| b == CR || b == BEL) {
            let end = start + i;
            let segment = self.skip_leading_lf(&chunk[start..end]);
            let bel = chunk[end] == BEL;
            // A BEL right after a terminator must not invent an empty (OK) line before it.
            if !bel || self.len > 0 || self.discarding || !segment.is_empty() {
                self.finish_line(segment, &mut on_line);
            }
            if bel {
                on_line(Ok(&[BEL]));
            }
            start = end + 1;
            self.line_start = base.wrapping_add(start);
        }
        let tail = self.skip_leading_lf(&chunk[start..]);
        self.keep_partial(tail, &mut on_line);
        self.consumed = base.wrapping_add(chunk.len());
    }

    /// Over-long lines dropped so far.
    pub fn dropped_lines(&self) -> u64 {
        self.dropped_lines
    }

    /// Bytes of the partial line held for the next chunk.
    pub fn pending_len(&self) -> usize {
        self.len
    }

    /// Forgets any partial line, e.g. after the serial port was reopened.
    pub fn reset(&mut self) {
        self.len = 0;
        self.discarding = false;
        self.line_start = self.consumed;
    }

    /// Ends the current line with `tail` as its last bytes.
    fn finish_line(&mut self, tail: &[u8], on_line: &mut impl FnMut(Result<&[u8], DecodeError>)) {
        if std::mem::take(&mut self.discarding) {
            return;
        }
        if self.len + tail.len() > MAX_LINE_LEN {
            self.len = 0;
            self.report_too_long(on_line);
            return;
        }
        let line = if self.len == 0 {
            tail
        } else {
            self.buf[self.len..self.len + tail.len()].copy_from_slice(tail);
            &self.buf[..self.len + tail.len()]
        };
        on_line(Ok(line));
        self.len = 0;
    }

    /// Stores the unterminated end of a chunk, or starts discarding if it is too long.
    fn keep_partial(&mut self, tail: &[u8], on_line: &mut impl FnMut(Result<&[u8], DecodeError>)) {
        if self.discarding || tail.is_empty() {
            return;
        }
        if self.len + tail.len() > MAX_LINE_LEN {
            self.len = 0;
            self.discarding = true;
            self.report_too_long(on_line);
            return;
        }
        self.buf[self.len..self.len + tail.len()].copy_from_slice(tail);
        self.len += tail.len();
    }

    /// Drops LFs at the start of a line, so CRLF adapters give the same lines as CR ones
    /// however the stream is split.
    fn skip_leading_lf<'c>(&self, segment: &'c [u8]) -> &'c [u8] {
        if self.len > 0 || self.discarding {
            return segment;
        }
        let lfs = segment.iter().take_while(|&&b| b == b'\n').count();
        &segment[lfs..]
    }

    fn report_too_long(&mut self, on_line: &mut impl FnMut(Result<&[u8], DecodeError>)) {
        self.dropped_lines += 1;
        on_line(Err(DecodeError::LineTooLong {
            offset: self.line_start,
            max: MAX_LINE_LEN,
        }));
    }
}

/// Turns the adapter's wrapping millisecond timestamps into monotonic nanoseconds.
///
/// The first timestamp maps to the reference time the caller passes (typically the receive
/// time of that frame); later ones add the elapsed milliseconds modulo 60 000. A silence
/// longer than 60 s is invisible in the timestamps, so after one (or after a
/// [`DecodeError::LineTooLong`]) the caller should [`TimestampUnwrapper::rebase`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampUnwrapper {
    reference_ns: u64,
    /// The previous raw timestamp; `None` until the first one after (re)basing.
    last_ms: Option<u16>,
    /// Milliseconds elapsed since the first timestamp after (re)basing.
    elapsed_ms: u64,
}

impl TimestampUnwrapper {
    /// An unwrapper whose next timestamp maps to `reference_ns`.
    pub fn new(reference_ns: u64) -> Self {
        Self {
            reference_ns,
            last_ms: None,
            elapsed_ms: 0,
        }
    }

    /// Makes the next timestamp map to `reference_ns`, forgetting the history.
    pub fn rebase(&mut self, reference_ns: u64) {
        *self = Self::new(reference_ns);
    }

    /// The time of a frame stamped `timestamp_ms`; never earlier than the previous result.
    pub fn unwrap_ms(&mut self, timestamp_ms: u16) -> u64 {
        let now = timestamp_ms % TIMESTAMP_WRAP_MS;
        if let Some(last) = self.last_ms {
            let wrap = u32::from(TIMESTAMP_WRAP_MS);
            let delta = (u32::from(now) + wrap - u32::from(last)) % wrap;
            self.elapsed_ms = self.elapsed_ms.saturating_add(u64::from(delta));
        }
        self.last_ms = Some(now);
        self.reference_ns
            .saturating_add(self.elapsed_ms.saturating_mul(1_000_000))
    }
}

/// The value of 1..=8 hex digits; errors name the offending digit's offset (`at` = offset of
/// `digits[0]`).
pub(super) fn hex_value(digits: &[u8], at: usize) -> Result<u32, DecodeError> {
    digits
        .iter()
        .enumerate()
        .try_fold(0u32, |acc, (i, &b)| match HEX_VALUE[usize::from(b)] {
            NOT_HEX => Err(DecodeError::BadHex {
                offset: at + i,
                found: b,
            }),
            nibble => Ok(acc << 4 | u32::from(nibble)),
        })
}

/// The value of each byte as a hex digit (either case), [`NOT_HEX`] where it is not one.
pub(super) const HEX_VALUE: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'A' as usize + i] = 10 + i as u8;
        table[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};
/// All bits set, so OR-ing it with any digit's value still gives it.
pub(super) const NOT_HEX: u8 = 0xFF;

/// Appends the low `digits` nibbles of `value` as upper-case hex.
fn push_hex(out: &mut Vec<u8>, value: u32, digits: u32) {
    for shift in (0..digits).rev() {
        out.push(HEX_DIGITS[(value >> (shift * 4) & 0xF) as usize]);
    }
}

/// The smallest FD DLC whose length holds `len` bytes.
fn fd_dlc(len: usize) -> usize {
    FD_LENS
        .iter()
        .position(|&l| usize::from(l) >= len)
        .unwrap_or(FD_LENS.len() - 1)
}

/// A frame line; `line[0]` is one of `t T r R d D b B`.
fn parse_frame(line: &[u8]) -> Result<SlcanLine<'_>, DecodeError> {
    let letter = line[0];
    let extended = letter.is_ascii_uppercase();
    let remote = matches!(letter, b'r' | b'R');
    let fd = matches!(letter, b'd' | b'D' | b'b' | b'B');
    let id_len = if extended { 8 } else { 3 };
    let raw = hex_value(field(line, 1, id_len)?, 1)?;
    let id = if extended {
        CanId::extended(raw)
    } else {
        CanId::standard(raw)
    }
    .ok_or(DecodeError::BadCanId { offset: 1, id: raw })?;
    let dlc_at = 1 + id_len;
    let dlc = hex_value(field(line, dlc_at, 1)?, dlc_at)? as usize;
    let len = if fd { usize::from(FD_LENS[dlc]) } else { dlc };
    if len > CanFrame::MAX_CLASSIC_LEN && !fd {
        let max = CanFrame::MAX_CLASSIC_LEN;
        return Err(DecodeError::BadLength {
            offset: dlc_at,
            len,
            max,
        });
    }
    let mut pos = dlc_at + 1;
    let frame = if remote {
        // `len <= 8` was checked above.
        CanFrame::remote(id, len as u8)
    } else {
        let mut data = [0u8; CanFrame::MAX_FD_LEN];
        let digits = field(line, pos, 2 * len)?;
        for (i, byte) in data[..len].iter_mut().enumerate() {
            *byte = hex_value(&digits[2 * i..2 * i + 2], pos + 2 * i)? as u8;
        }
        pos += 2 * len;
        CanFrame::new(id, fd_flags(letter), &data[..len])
    };
    let frame = frame.ok_or(DecodeError::BadLength {
        offset: dlc_at,
        len,
        max: 8,
    })?;
    let timestamp_ms = parse_timestamp(line, pos)?;
    Ok(SlcanLine::Frame {
        frame,
        timestamp_ms,
    })
}

fn fd_flags(letter: u8) -> CanFlags {
    match letter {
        b'd' | b'D' => CanFlags::FD,
        b'b' | b'B' => CanFlags::FD.with(CanFlags::BRS),
        _ => CanFlags::empty(),
    }
}

/// The optional 4-digit timestamp that ends a frame line at `pos`.
fn parse_timestamp(line: &[u8], pos: usize) -> Result<Option<u16>, DecodeError> {
    let rest = line.len().saturating_sub(pos);
    match rest {
        0 => Ok(None),
        4 => {
            let ms = hex_value(&line[pos..], pos)?;
            if ms >= u32::from(TIMESTAMP_WRAP_MS) {
                let expected = "a timestamp below 0xEA60";
                return Err(DecodeError::Syntax {
                    offset: pos,
                    expected,
                });
            }
            Ok(Some(ms as u16))
        }
        1..4 => Err(DecodeError::Truncated {
            offset: pos,
            need: 4,
            have: rest,
        }),
        _ => Err(DecodeError::TrailingBytes {
            offset: pos + 4,
            extra: rest - 4,
        }),
    }
}

/// `n` bytes at `at`, or `Truncated`.
fn field(line: &[u8], at: usize, n: usize) -> Result<&[u8], DecodeError> {
    line.get(at..)
        .and_then(|rest| rest.get(..n))
        .ok_or(DecodeError::Truncated {
            offset: at,
            need: n,
            have: line.len().saturating_sub(at),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    static STANDARD: &[u8] = b"t1A48FFF1000007FFF124";
    static EXTENDED: &[u8] = b"T18FEF10020102";
    static REMOTE: &[u8] = b"R000007DF8";
    static FD_BRS_TS: &[u8] = b"b1239000102030405060708090A0B1234";

    fn frame_of(line: &[u8]) -> (CanFrame, Option<u16>) {
        match parse_line(line) {
            Ok(SlcanLine::Frame {
                frame,
                timestamp_ms,
            }) => (frame, timestamp_ms),
            other => panic!("not a frame: {other:?}"),
        }
    }

    #[test]
    fn deconstruct() {
        let (frame, ts) = frame_of(STANDARD);
        assert_eq!(
            (frame.id.id(), frame.id.is_extended(), ts),
            (0x1A4, false, None)
        );
        assert_eq!(frame.data(), &[0xFF, 0xF1, 0, 0, 0x07, 0xFF, 0xF1, 0x24]);
        let (frame, _) = frame_of(EXTENDED);
        assert_eq!((frame.id.id(), frame.data()), (0x18FE_F100, &[1, 2][..]));
        let (frame, _) = frame_of(REMOTE);
        assert!(frame.is_remote() && frame.id.is_extended());
        assert_eq!((frame.id.id(), frame.len()), (0x7DF, 8));
        let (frame, ts) = frame_of(FD_BRS_TS);
        assert!(frame.is_fd() && frame.flags.contains(CanFlags::BRS));
        assert_eq!((frame.len(), ts), (12, Some(0x1234)));
        assert_eq!(parse_line(b""), Ok(SlcanLine::Ok));
        assert_eq!(parse_line(&[BEL]), Ok(SlcanLine::Error));
        assert_eq!(
            parse_line(b"Z"),
            Ok(SlcanLine::TransmitAck { extended: true })
        );
        assert_eq!(parse_line(b"V1013"), Ok(SlcanLine::Version(b"1013")));
        assert_eq!(parse_line(b"F0C"), Ok(SlcanLine::Status(0x0C)));
        assert_eq!(parse_line(b"?x"), Ok(SlcanLine::Unknown(b"?x")));
    }

    #[test]
    fn construct_round_trips_into_a_dirty_buffer() {
        for line in [STANDARD, EXTENDED, REMOTE, FD_BRS_TS] {
            let (frame, ts) = frame_of(line);
            let mut out = b"junk".to_vec();
            encode_frame(&frame, ts, &mut out);
            assert_eq!(&out[..4], b"junk");
            assert_eq!(&out[4..out.len() - 1], line);
            assert_eq!(out.last(), Some(&CR));
        }
        let mut out = Vec::new();
        SlcanCommand::Close.encode(&mut out);
        SlcanCommand::SetBitrate(SlcanBitrate::from_bps(500_000).expect("preset")).encode(&mut out);
        SlcanCommand::Timestamps(true).encode(&mut out);
        SlcanCommand::ListenOnly.encode(&mut out);
        assert_eq!(out, b"C\rS6\rZ1\rL\r");

        let mut framer = SlcanFramer::new();
        let mut lines = Vec::new();
        for chunk in [&b"t1A4"[..], b"0\rV10", b"13\r\x07\r\nz\r"] {
            framer.push(chunk, |l| lines.push(l.map(<[u8]>::to_vec)));
        }
        let want: [&[u8]; 5] = [b"t1A40", b"V1013", &[BEL], b"", b"z"];
        assert_eq!(lines, want.map(|l| Ok(l.to_vec())));

        let mut clock = TimestampUnwrapper::new(1_000_000_000);
        assert_eq!(clock.unwrap_ms(59_990), 1_000_000_000);
        assert_eq!(clock.unwrap_ms(5), 1_015_000_000);
    }

    #[test]
    fn truncated_and_impossible_lengths() {
        let bad = |line: &[u8]| parse_line(line).expect_err("malformed");
        assert_eq!(
            bad(b"t1A"),
            DecodeError::Truncated {
                offset: 1,
                need: 3,
                have: 2
            }
        );
        assert_eq!(
            bad(b"t1A48FF"),
            DecodeError::Truncated {
                offset: 5,
                need: 16,
                have: 2
            }
        );
        assert_eq!(
            bad(b"t1A49"),
            DecodeError::BadLength {
                offset: 4,
                len: 9,
                max: 8
            }
        );
        assert_eq!(
            bad(b"t8001"),
            DecodeError::BadCanId {
                offset: 1,
                id: 0x800
            }
        );
        assert_eq!(
            bad(b"t1A41G0"),
            DecodeError::BadHex {
                offset: 5,
                found: b'G'
            }
        );
        assert_eq!(
            bad(b"t1A4012"),
            DecodeError::Truncated {
                offset: 5,
                need: 4,
                have: 2
            }
        );
        assert_eq!(
            bad(b"t1A41001234X"),
            DecodeError::TrailingBytes {
                offset: 11,
                extra: 1
            }
        );
        let ts = bad(b"t1A40EA60");
        assert_eq!((ts.kind(), ts.offset()), ("syntax", 5));

        let mut framer = SlcanFramer::new();
        let mut seen = Vec::new();
        framer.push(b"t1\r", |_| {});
        framer.push(&[b'x'; 200], |l| seen.push(l.map(<[u8]>::to_vec)));
        framer.push(b"yyy\rt\r", |l| seen.push(l.map(<[u8]>::to_vec)));
        let err = DecodeError::LineTooLong {
            offset: 3,
            max: MAX_LINE_LEN,
        };
        assert_eq!(seen, vec![Err(err), Ok(b"t".to_vec())]);
        assert_eq!((framer.dropped_lines(), framer.pending_len()), (1, 0));
    }
}
