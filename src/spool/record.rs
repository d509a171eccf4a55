//! The spool's record wire format: one [`SpoolRecord`] plus its sequence number, framed by a
//! sync word, a CRC-32C and explicit lengths. Pure byte work, no IO: `encode` appends to a
//! caller buffer (`encode_head` only the part before the payload, for a vectored write) and
//! `check` validates a borrowed slice, never panicking on any input.
//!
//! Layout (little-endian, documented in `docs/spool.md`):
//!
//! ```text
//! 0  4 magic "SPr1"     8  4 payload_len   14 1 kind     16 8 seq        32 4 samples
//! 4  4 crc32c of 8..end 12 2 stream_len    15 1 flags=0  24 8 packet_id  36 4 session
//! 40 8 first_time_ns    48 8 last_time_ns  56 stream_len bytes of stream, then payload
//! ```

use std::io::IoSlice;

use bytes::Bytes;

/// Marks the start of every record, so a reader that lost its place (a corrupt length or a
/// flipped byte) can scan forward for the next record instead of trusting the length.
pub(crate) const MAGIC: [u8; 4] = *b"SPr1";
/// Bytes before the stream name.
pub(crate) const HEADER_LEN: usize = 56;
/// Largest payload accepted. The Stream API drops packets over 1 MB anyway
/// (`docs/open-streaming.md` rule 52); the cap stops a corrupt length from
/// making a reader wait for, or allocate, gigabytes.
pub const MAX_PAYLOAD: usize = 16 << 20;
/// Largest stream name, bounded by its `u16` length field.
pub const MAX_STREAM: usize = u16::MAX as usize;

mod field {
    use std::ops::Range;
    pub const MAGIC: Range<usize> = 0..4;
    pub const CRC: Range<usize> = 4..8;
    pub const PAYLOAD_LEN: Range<usize> = 8..12;
    pub const STREAM_LEN: Range<usize> = 12..14;
    pub const KIND: usize = 14;
    pub const FLAGS: usize = 15;
    pub const SEQ: Range<usize> = 16..24;
    pub const PACKET_ID: Range<usize> = 24..32;
    pub const SAMPLES: Range<usize> = 32..36;
    pub const SESSION: Range<usize> = 36..40;
    pub const FIRST_TIME: Range<usize> = 40..48;
    pub const LAST_TIME: Range<usize> = 48..56;
}

/// One encoded Open Streaming packet waiting for the Stream API to accept it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SpoolRecord {
    /// Data stream the packet goes to; `""` is the session's main stream.
    pub stream: String,
    /// Caller-defined packet kind (row data, markers, ...), so replay can route it.
    pub kind: u8,
    /// The packet's stable `Packet.id`, so a redelivery is recognisable as a duplicate.
    pub packet_id: u64,
    /// Samples carried, for the pending and dropped counts.
    pub samples: u32,
    /// Time of the first sample (epoch ns), for the age of the oldest waiting sample.
    pub first_time_ns: u64,
    /// Time of the last sample (epoch ns).
    pub last_time_ns: u64,
    /// Index into the session journal, naming the session the packet belongs to.
    pub session: u32,
    /// The encoded packet.
    pub payload: Bytes,
}

impl SpoolRecord {
    /// Bytes this record takes in a segment.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.stream.len() + self.payload.len()
    }
}

/// Why a slice is not a valid record at its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Invalid {
    /// Fewer bytes than the header, or than the lengths announce: `need` in total.
    Short { need: usize },
    /// Wrong magic, impossible lengths, bad checksum or a non-UTF-8 stream name.
    Corrupt,
}

/// Appends `record` with sequence number `seq` to `out`. The caller has checked the lengths
/// against [`MAX_PAYLOAD`] and [`MAX_STREAM`]. (The spool writes [`encode_head`] and the
/// payload instead; this is the whole record in one buffer, for tests.)
#[cfg(test)]
pub(crate) fn encode(seq: u64, record: &SpoolRecord, out: &mut Vec<u8>) {
    let start = out.len();
    encode_head(seq, record, out);
    out.extend_from_slice(&record.payload);
    debug_assert_eq!(out.len() - start, record.encoded_len());
}

/// Appends the part of `record`'s encoding before its payload (header and stream name) to
/// `out`, its checksum already covering the payload: written followed by `record.payload`,
/// it is the record, without copying the payload.
pub(crate) fn encode_head(seq: u64, record: &SpoolRecord, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(record.payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&(record.stream.len() as u16).to_le_bytes());
    out.push(record.kind);
    out.push(0);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&record.packet_id.to_le_bytes());
    out.extend_from_slice(&record.samples.to_le_bytes());
    out.extend_from_slice(&record.session.to_le_bytes());
    out.extend_from_slice(&record.first_time_ns.to_le_bytes());
    out.extend_from_slice(&record.last_time_ns.to_le_bytes());
    out.extend_from_slice(record.stream.as_bytes());
    let crc = crc32c::crc32c(&out[start + field::PAYLOAD_LEN.start..]);
    let crc = crc32c::crc32c_append(crc, &record.payload);
    out[start + field::CRC.start..start + field::CRC.end].copy_from_slice(&crc.to_le_bytes());
}

/// The records from `first_seq` on as the parts of one vectored write: each record's head
/// (encoded into `heads`, cleared first) followed by its payload as it is, not copied.
pub(crate) fn encode_parts<'a>(
    first_seq: u64,
    records: &'a [SpoolRecord],
    heads: &'a mut Vec<u8>,
) -> Vec<IoSlice<'a>> {
    heads.clear();
    let mut ends = Vec::with_capacity(records.len());
    for (seq, record) in (first_seq..).zip(records) {
        encode_head(seq, record, heads);
        ends.push(heads.len());
    }
    let heads: &'a [u8] = heads;
    let mut parts = Vec::with_capacity(2 * records.len());
    let mut start = 0;
    for (record, end) in records.iter().zip(ends) {
        parts.push(IoSlice::new(&heads[start..end]));
        if !record.payload.is_empty() {
            parts.push(IoSlice::new(&record.payload));
        }
        start = end;
    }
    parts
}

/// A validated record at the start of a byte slice.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordView<'a> {
    bytes: &'a [u8],
    stream_len: usize,
}

impl<'a> RecordView<'a> {
    /// Checks the record at the start of `bytes`: magic, lengths, checksum, stream name.
    pub(crate) fn check(bytes: &'a [u8]) -> Result<Self, Invalid> {
        let Some(header) = bytes.get(..HEADER_LEN) else {
            return Err(Invalid::Short { need: HEADER_LEN });
        };
        if header[field::MAGIC] != MAGIC || header[field::FLAGS] != 0 {
            return Err(Invalid::Corrupt);
        }
        let payload_len = u32_at(header, field::PAYLOAD_LEN.start) as usize;
        let stream_len = usize::from(u16::from_le_bytes([
            header[field::STREAM_LEN.start],
            header[field::STREAM_LEN.start + 1],
        ]));
        if payload_len > MAX_PAYLOAD {
            return Err(Invalid::Corrupt);
        }
        let total = HEADER_LEN + stream_len + payload_len;
        let Some(bytes) = bytes.get(..total) else {
            return Err(Invalid::Short { need: total });
        };
        let stored = u32_at(bytes, field::CRC.start);
        if crc32c::crc32c(&bytes[field::PAYLOAD_LEN.start..]) != stored {
            return Err(Invalid::Corrupt);
        }
        if std::str::from_utf8(&bytes[HEADER_LEN..HEADER_LEN + stream_len]).is_err() {
            return Err(Invalid::Corrupt);
        }
        Ok(Self { bytes, stream_len })
    }

    /// Bytes the record takes.
    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }

    pub(crate) fn seq(&self) -> u64 {
        u64_at(self.bytes, field::SEQ.start)
    }

    pub(crate) fn samples(&self) -> u32 {
        u32_at(self.bytes, field::SAMPLES.start)
    }

    pub(crate) fn first_time_ns(&self) -> u64 {
        u64_at(self.bytes, field::FIRST_TIME.start)
    }

    pub(crate) fn last_time_ns(&self) -> u64 {
        u64_at(self.bytes, field::LAST_TIME.start)
    }

    /// The owned record (copies the stream name and payload).
    pub(crate) fn to_record(self) -> SpoolRecord {
        let stream_end = HEADER_LEN + self.stream_len;
        SpoolRecord {
            // `check` verified UTF-8; a lossy conversion keeps this panic-free regardless.
            stream: String::from_utf8_lossy(&self.bytes[HEADER_LEN..stream_end]).into_owned(),
            kind: self.bytes[field::KIND],
            packet_id: u64_at(self.bytes, field::PACKET_ID.start),
            samples: self.samples(),
            first_time_ns: self.first_time_ns(),
            last_time_ns: self.last_time_ns(),
            session: u32_at(self.bytes, field::SESSION.start),
            payload: Bytes::copy_from_slice(&self.bytes[stream_end..]),
        }
    }
}

/// Little-endian `u32` at `at`; callers index within a checked header, so the slice is whole.
fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SpoolRecord {
        SpoolRecord {
            stream: "chassis".into(),
            kind: 3,
            packet_id: 0x0102_0304_0506_0708,
            samples: 42,
            first_time_ns: 1_000,
            last_time_ns: 2_000,
            session: 7,
            payload: Bytes::from_static(b"\x0a\x03abc"),
        }
    }

    #[test]
    fn deconstructs_known_bytes() {
        let mut out = Vec::new();
        encode(9, &sample(), &mut out);
        assert_eq!(&out[..4], b"SPr1");
        assert_eq!(&out[8..12], &5u32.to_le_bytes());
        assert_eq!(&out[12..14], &7u16.to_le_bytes());
        assert_eq!(out[14], 3);
        assert_eq!(&out[16..24], &9u64.to_le_bytes());
        assert_eq!(&out[56..63], b"chassis");
        assert_eq!(&out[63..], b"\x0a\x03abc");
        assert_eq!(out.len(), sample().encoded_len());
    }

    #[test]
    fn round_trips_into_a_buffer_prefilled_with_junk() {
        let mut out = vec![0xAA; 13];
        encode(u64::MAX, &sample(), &mut out);
        let view = RecordView::check(&out[13..]).expect("valid");
        assert_eq!(view.seq(), u64::MAX);
        assert_eq!(view.len(), sample().encoded_len());
        assert_eq!(view.to_record(), sample());
    }

    /// The vectored parts (each record's head, then its payload as it is) are the records.
    #[test]
    fn the_vectored_parts_are_the_records() {
        let mut empty = sample();
        empty.payload = Bytes::new();
        let records = [sample(), empty, sample()];
        let mut expected = Vec::new();
        for (seq, record) in (4..).zip(&records) {
            encode(seq, record, &mut expected);
        }
        let mut heads = Vec::new();
        let parts = encode_parts(4, &records, &mut heads);
        assert_eq!(parts.len(), 5, "no part for an empty payload");
        let written: Vec<u8> = parts.iter().flat_map(|part| part.iter().copied()).collect();
        assert_eq!(written, expected);
        assert_eq!(parts[1].as_ptr(), records[0].payload.as_ptr(), "not copied");
    }

    #[test]
    fn truncated_and_impossible_lengths_are_rejected_without_panic() {
        let mut out = Vec::new();
        encode(1, &sample(), &mut out);
        for cut in 0..out.len() {
            assert!(matches!(
                RecordView::check(&out[..cut]),
                Err(Invalid::Short { .. })
            ));
        }
        let mut huge = out.clone();
        huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(RecordView::check(&huge).err(), Some(Invalid::Corrupt));
        for at in 0..out.len() {
            let mut flipped = out.clone();
            flipped[at] ^= 0x10;
            assert!(
                RecordView::check(&flipped).is_err(),
                "flip at {at} undetected"
            );
        }
    }
}
