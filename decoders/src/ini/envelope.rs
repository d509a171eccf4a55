//! msEnvelope_1.0, the framing of Speeduino, rusEFI and MS3 serial commands and replies:
//! payload length u16 big-endian, the payload, CRC-32 (zlib) of the payload big-endian. Also the
//! status byte that opens every reply payload.
//!
//! [`EnvelopeDecoder`] is a sans-IO state machine over received bytes: `Ok(None)` while a frame
//! is incomplete; on a bad CRC or impossible length it drops one byte, reports the problem and
//! resynchronises on the next call, so a serial glitch never wedges the stream.

use crate::error::DecodeError;
use crate::frame::crc::crc32;

/// Bytes of length prefix and CRC around a payload.
pub const ENVELOPE_OVERHEAD: usize = 6;

/// The status byte at the start of a reply payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// 0x00: the request succeeded; data follows.
    Ok,
    /// 0x04: a burn to flash succeeded.
    BurnOk,
    /// 0x80: the ECU timed out waiting for the rest of the request.
    Timeout,
    /// 0x82: the ECU saw a bad CRC on the request.
    CrcError,
    /// 0x83: the ECU does not know the command.
    UnknownCommand,
    /// 0x84: offset or count past the end of the block.
    RangeError,
    /// 0x85: the ECU is busy; ask again.
    Busy,
    /// Any other byte, kept so the caller can count it.
    Other(u8),
}

impl Status {
    /// The status for byte `code`.
    pub fn from_byte(code: u8) -> Self {
        match code {
            0x00 => Self::Ok,
            0x04 => Self::BurnOk,
            0x80 => Self::Timeout,
            0x82 => Self::CrcError,
            0x83 => Self::UnknownCommand,
            0x84 => Self::RangeError,
            0x85 => Self::Busy,
            other => Self::Other(other),
        }
    }

    /// The byte on the wire.
    pub fn to_byte(self) -> u8 {
        match self {
            Self::Ok => 0x00,
            Self::BurnOk => 0x04,
            Self::Timeout => 0x80,
            Self::CrcError => 0x82,
            Self::UnknownCommand => 0x83,
            Self::RangeError => 0x84,
            Self::Busy => 0x85,
            Self::Other(code) => code,
        }
    }

    /// Whether asking again may succeed (timeouts, CRC errors and busy are transient).
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Timeout | Self::CrcError | Self::Busy)
    }
}

/// A reply payload split into its status and data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply<'a> {
    /// The first payload byte.
    pub status: Status,
    /// The rest: for a realtime read, the requested block bytes.
    pub data: &'a [u8],
}

impl<'a> Reply<'a> {
    /// Splits `payload`; an empty payload has no status and is an error.
    pub fn parse(payload: &'a [u8]) -> Result<Self, DecodeError> {
        match payload.split_first() {
            Some((status, data)) => Ok(Self {
                status: Status::from_byte(*status),
                data,
            }),
            None => Err(DecodeError::Truncated {
                offset: 2,
                need: 1,
                have: 0,
            }),
        }
    }
}

/// Appends the envelope around `payload` to `out`. A payload longer than 65 535 bytes cannot be
/// framed and is an error.
pub fn encode_envelope(payload: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
    let len = u16::try_from(payload.len()).map_err(|_| DecodeError::BadLength {
        offset: 0,
        len: payload.len(),
        max: usize::from(u16::MAX),
    })?;
    out.reserve(payload.len() + ENVELOPE_OVERHEAD);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&crc32(payload).to_be_bytes());
    Ok(())
}

/// Checks one whole envelope at the start of `bytes`: `Ok(None)` if more bytes are needed,
/// else the payload and the bytes the envelope used.
pub fn decode_envelope(
    bytes: &[u8],
    max_payload: usize,
) -> Result<Option<(&[u8], usize)>, DecodeError> {
    let Some(prefix) = bytes.get(..2) else {
        return Ok(None);
    };
    let len = usize::from(u16::from_be_bytes([prefix[0], prefix[1]]));
    if len == 0 || len > max_payload {
        return Err(DecodeError::BadLength {
            offset: 0,
            len,
            max: max_payload,
        });
    }
    let Some(frame) = bytes.get(..len + ENVELOPE_OVERHEAD) else {
        return Ok(None);
    };
    let (payload, crc) = frame[2..].split_at(len);
    let computed = crc32(payload);
    let found = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if computed != found {
        return Err(DecodeError::BadCheck {
            offset: 2 + len,
            computed,
            found,
        });
    }
    Ok(Some((payload, len + ENVELOPE_OVERHEAD)))
}

/// Incremental envelope decoder over a byte stream.
#[derive(Debug, Clone)]
pub struct EnvelopeDecoder {
    /// Received bytes not yet consumed; `start` marks the first live one.
    buffer: Vec<u8>,
    start: usize,
    /// Bytes of the envelope returned by the last poll, consumed on the next call.
    returned: usize,
    /// Largest payload accepted; a longer length field is treated as noise.
    max_payload: usize,
    /// Bytes dropped while resynchronising, for the caller's counters.
    dropped: u64,
}

impl EnvelopeDecoder {
    /// A decoder accepting payloads up to `max_payload` bytes (status byte included), e.g. the
    /// blocking factor plus one.
    pub fn new(max_payload: usize) -> Self {
        Self {
            buffer: Vec::new(),
            start: 0,
            returned: 0,
            max_payload: max_payload.clamp(1, usize::from(u16::MAX)),
            dropped: 0,
        }
    }

    /// Takes received bytes.
    pub fn handle_bytes(&mut self, bytes: &[u8]) {
        self.consume_returned();
        // Compact once the dead prefix outweighs the live bytes, so the buffer stays bounded.
        if self.start > 0 && self.start >= self.buffer.len() - self.start {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete payload: `Ok(None)` until one is complete; on a bad CRC or length one
    /// byte is dropped and the error returned (call again to continue).
    pub fn poll_payload(&mut self) -> Result<Option<&[u8]>, DecodeError> {
        self.consume_returned();
        let live = &self.buffer[self.start..];
        match decode_envelope(live, self.max_payload) {
            Ok(Some((_, used))) => {
                self.returned = used;
                let from = self.start + 2;
                Ok(self.buffer.get(from..self.start + used - 4))
            }
            Ok(None) => Ok(None),
            Err(error) => {
                self.start += 1;
                self.dropped += 1;
                Err(error)
            }
        }
    }

    /// Bytes dropped while resynchronising so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Bytes received but not yet framed.
    pub fn pending(&self) -> usize {
        self.buffer.len() - self.start - self.returned
    }

    /// Forgets everything buffered (after a timeout, before the next request).
    pub fn clear(&mut self) {
        self.buffer.clear();
        self.start = 0;
        self.returned = 0;
    }

    fn consume_returned(&mut self) {
        self.start += std::mem::take(&mut self.returned);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors of `docs/tunerstudio-ini.md` ("Envelope test vectors").
    static OK_EMPTY: [u8; 7] = [0x00, 0x01, 0x00, 0xD2, 0x02, 0xEF, 0x8D];
    static QUERY: [u8; 7] = [0x00, 0x01, 0x51, 0xCE, 0x6E, 0x8E, 0xEF];
    static SPEEDUINO_130: [u8; 13] = [
        0x00, 0x07, 0x72, 0x00, 0x30, 0x00, 0x00, 0x82, 0x00, 0x4E, 0x0F, 0x5C, 0x33,
    ];
    static RUSEFI_2044: [u8; 11] = [
        0x00, 0x05, 0x4F, 0x00, 0x00, 0xFC, 0x07, 0x3A, 0xEC, 0x03, 0x97,
    ];

    #[test]
    fn construct_matches_the_vectors() {
        let mut out = vec![0xEE];
        encode_envelope(&[0x00], &mut out).expect("fits");
        assert_eq!(out[1..], OK_EMPTY);
        out.clear();
        encode_envelope(b"Q", &mut out).expect("fits");
        assert_eq!(out, QUERY);
        out.clear();
        encode_envelope(&super::super::speeduino_realtime(0, 0, 130), &mut out).expect("fits");
        assert_eq!(out, SPEEDUINO_130);
        out.clear();
        encode_envelope(&super::super::rusefi_output_channels(0, 2044), &mut out).expect("fits");
        assert_eq!(out, RUSEFI_2044);
        assert!(encode_envelope(&vec![0; 70_000], &mut out).is_err());
    }

    #[test]
    fn deconstruct_a_reply() {
        let (payload, used) = decode_envelope(&OK_EMPTY, 256)
            .expect("valid")
            .expect("whole");
        assert_eq!(used, 7);
        let reply = Reply::parse(payload).expect("has status");
        assert_eq!(reply.status, Status::Ok);
        assert!(reply.data.is_empty());
        assert_eq!(Status::from_byte(0x84), Status::RangeError);
        assert_eq!(Status::from_byte(0x99).to_byte(), 0x99);
        assert!(Status::Busy.is_retryable() && !Status::UnknownCommand.is_retryable());
        assert!(Reply::parse(&[]).is_err());
    }

    #[test]
    fn truncated_input_waits_and_bad_input_is_reported() {
        for end in 0..SPEEDUINO_130.len() {
            assert_eq!(decode_envelope(&SPEEDUINO_130[..end], 256), Ok(None));
        }
        let mut bad = SPEEDUINO_130;
        bad[12] ^= 1;
        assert!(matches!(
            decode_envelope(&bad, 256),
            Err(DecodeError::BadCheck { offset: 9, .. })
        ));
        assert!(matches!(
            decode_envelope(&SPEEDUINO_130, 4),
            Err(DecodeError::BadLength { len: 7, .. })
        ));
        assert!(decode_envelope(&[0, 0, 0], 256).is_err());
    }

    #[test]
    fn decoder_splits_any_way_and_resyncs_after_noise() {
        let mut stream = vec![0xF0]; // the byte some boards send after a reset
        stream.extend_from_slice(&OK_EMPTY);
        stream.extend_from_slice(&[0x00, 0x01, 0x51, 0xCE, 0x6E, 0x8E, 0x00]); // bad CRC
        stream.extend_from_slice(&QUERY);
        for split in 1..stream.len() {
            let mut decoder = EnvelopeDecoder::new(251);
            let mut payloads = Vec::new();
            let mut errors = 0;
            for piece in [&stream[..split], &stream[split..]] {
                decoder.handle_bytes(piece);
                loop {
                    match decoder.poll_payload() {
                        Ok(Some(payload)) => payloads.push(payload.to_vec()),
                        Ok(None) => break,
                        Err(_) => errors += 1,
                    }
                }
            }
            assert_eq!(payloads, [vec![0x00], vec![b'Q']], "split at {split}");
            assert!(errors >= 2, "split at {split}");
            assert_eq!(decoder.pending(), 0);
        }
    }
}
