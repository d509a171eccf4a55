//! The serial byte log (`.serial`): every read from a serial source, exactly as received, with
//! its receive time. Layout (all integers little-endian; see `docs/capture-formats.md`):
//!
//! ```text
//! header:  "ECUBSER1"  u16 name_len  name (UTF-8)
//! record:  u64 time_ns  u32 len  len bytes          (repeated to the end of the file)
//! ```
//!
//! A record with no bytes (a read never has none) marks the source reopening the device: its
//! receiver was reset there, and a reader must reset its own to replay the same frames.
//!
//! Owns the byte layout only: callers hand in output buffers and read buffers and do the IO.
//! Invariants: parsing never panics; a record cut short by the end of the file is reported as
//! incomplete (`Ok(None)`), never as a shorter record.

/// The first eight bytes of a serial log; the digit is the format version.
pub const MAGIC: [u8; 8] = *b"ECUBSER1";

/// Bytes before a record's data: time and length.
pub const RECORD_HEADER: usize = 12;

/// Records longer than this are treated as corruption, not waited for (a serial read is at
/// most a few KiB).
pub const MAX_RECORD: usize = 16 << 20;

/// Why a serial log cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SerialLogError {
    /// The file does not start with [`MAGIC`].
    #[error("not a serial log (no ECUBSER1 magic)")]
    BadMagic,
    /// The source name is not UTF-8.
    #[error("source name is not UTF-8")]
    BadName,
    /// A record claims an impossible length, so the next record cannot be found.
    #[error("record length {0} is impossible")]
    BadLength(u32),
}

/// One record: a read and when it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SerialRecord<'a> {
    /// Receive time, ns since the UNIX epoch.
    pub time_ns: u64,
    /// The bytes of that read.
    pub bytes: &'a [u8],
}

/// Appends the file header naming the source. Names longer than 65 535 bytes are cut (source
/// names are short identifiers).
pub fn write_header(source: &str, out: &mut Vec<u8>) {
    let name = &source.as_bytes()[..source.len().min(usize::from(u16::MAX))];
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(name);
}

/// Appends one record. Reads longer than 4 GiB cannot happen on a serial line.
pub fn write_record(time_ns: u64, bytes: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&time_ns.to_le_bytes());
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Parses the header: `Ok(None)` until `buf` holds all of it; otherwise the source name and
/// the header's length.
pub fn parse_header(buf: &[u8]) -> Result<Option<(&str, usize)>, SerialLogError> {
    let magic_len = buf.len().min(MAGIC.len());
    if buf[..magic_len] != MAGIC[..magic_len] {
        return Err(SerialLogError::BadMagic);
    }
    let Some(&[lo, hi]) = buf.get(8..10) else {
        return Ok(None);
    };
    let end = 10 + usize::from(u16::from_le_bytes([lo, hi]));
    let Some(name) = buf.get(10..end) else {
        return Ok(None);
    };
    let name = std::str::from_utf8(name).map_err(|_| SerialLogError::BadName)?;
    Ok(Some((name, end)))
}

/// Parses the record at the start of `buf`: `Ok(None)` until all of it is there; otherwise
/// the record and its length in bytes.
pub fn parse_record(buf: &[u8]) -> Result<Option<(SerialRecord<'_>, usize)>, SerialLogError> {
    let Some(header) = buf.get(..RECORD_HEADER) else {
        return Ok(None);
    };
    let mut time = [0; 8];
    time.copy_from_slice(&header[..8]);
    let len = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    if len as usize > MAX_RECORD {
        return Err(SerialLogError::BadLength(len));
    }
    let end = RECORD_HEADER + len as usize;
    let Some(bytes) = buf.get(RECORD_HEADER..end) else {
        return Ok(None);
    };
    let time_ns = u64::from_le_bytes(time);
    Ok(Some((SerialRecord { time_ns, bytes }, end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Header for source "usb", then one record: 2 bytes at t = 0x0102030405060708 ns.
    static LOG: &[u8] = &[
        b'E', b'C', b'U', b'B', b'S', b'E', b'R', b'1', 3, 0, b'u', b's', b'b', //
        8, 7, 6, 5, 4, 3, 2, 1, 2, 0, 0, 0, b't', b'\r',
    ];

    #[test]
    fn deconstruct() {
        let (name, at) = parse_header(LOG).expect("ok").expect("complete");
        assert_eq!((name, at), ("usb", 13));
        let (record, used) = parse_record(&LOG[at..]).expect("ok").expect("complete");
        assert_eq!(record.time_ns, 0x0102_0304_0506_0708);
        assert_eq!((record.bytes, used), (&b"t\r"[..], 14));
    }

    #[test]
    fn construct_into_a_dirty_buffer() {
        let mut out = vec![0xAA];
        write_header("usb", &mut out);
        write_record(0x0102_0304_0506_0708, b"t\r", &mut out);
        assert_eq!((&out[..1], &out[1..]), (&[0xAA][..], LOG));
    }

    #[test]
    fn documented_example() {
        let t = 1_778_936_400_000_000_500;
        let mut out = Vec::new();
        write_header("usb", &mut out);
        write_record(t, b"t12", &mut out);
        write_record(t + 987_654, b"31AA\r", &mut out);
        let hex: Vec<String> = out.iter().map(|b| format!("{b:02x}")).collect();
        let documented = "45 43 55 42 53 45 52 31 03 00 75 73 62 f4 21 03 08 3b 0d b0 18 03 00 00 00 \
            74 31 32 fa 33 12 08 3b 0d b0 18 05 00 00 00 33 31 41 41 0d";
        assert_eq!(
            hex.join(" "),
            documented.split_whitespace().collect::<Vec<_>>().join(" ")
        );
    }

    #[test]
    fn truncated_and_impossible_lengths() {
        for cut in 0..LOG.len() {
            let (header, record) = (
                parse_header(&LOG[..cut]),
                parse_record(&LOG[13..cut.max(13)]),
            );
            assert!(
                cut >= 13 || header == Ok(None),
                "header cut at {cut}: {header:?}"
            );
            assert!(
                cut < 13 || record == Ok(None),
                "record cut at {cut}: {record:?}"
            );
        }
        assert_eq!(parse_header(b"ECUBSER2"), Err(SerialLogError::BadMagic));
        assert_eq!(
            parse_header(b"ECUBSER1\x01\x00\xFF"),
            Err(SerialLogError::BadName)
        );
        let huge = [0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF];
        assert_eq!(
            parse_record(&huge),
            Err(SerialLogError::BadLength(u32::MAX))
        );
    }
}
