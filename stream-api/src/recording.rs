//! The recording file: a magic header, then framed records of official Open Streaming protobuf
//! messages (format in `docs/recording-format.md`).
//!
//! This module owns only the framing: it writes records (`Recorder`) and splits bytes back into
//! [`RawRecord`]s. It never interprets the payloads; `inspect` and the server's replay do. A
//! truncated last record (a crash mid-write) is tolerated: parsing stops before it and reports it.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use prost::Message;

/// The 8 bytes every recording starts with: "ECUBSAR" (ecu-bridge Stream API recording) + version 1.
pub const MAGIC: [u8; 8] = *b"ECUBSAR\x01";

/// Longest payload a reader accepts; anything larger is treated as corruption (the server refuses
/// requests above 4 MiB, so a legitimate record is far smaller).
const MAX_PAYLOAD: u64 = 64 * 1024 * 1024;

/// What a record's payload is. The byte value is the first byte of the record on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum RecordKind {
    /// `ma.streaming.api.v1.CreateSessionRequest`.
    CreateSessionRequest = 1,
    /// `ma.streaming.api.v1.CreateSessionResponse`.
    CreateSessionResponse = 2,
    /// `ma.streaming.api.v1.EndSessionRequest`.
    EndSessionRequest = 3,
    /// `ma.streaming.api.v1.EndSessionResponse`.
    EndSessionResponse = 4,
    /// `ma.streaming.api.v1.GetCurrentSessionsRequest`.
    GetCurrentSessionsRequest = 5,
    /// `ma.streaming.api.v1.GetCurrentSessionsResponse`.
    GetCurrentSessionsResponse = 6,
    /// `ma.streaming.api.v1.GetSessionInfoRequest`.
    GetSessionInfoRequest = 7,
    /// `ma.streaming.api.v1.GetSessionInfoResponse`.
    GetSessionInfoResponse = 8,
    /// `ma.streaming.api.v1.UpdateSessionIdentifierRequest`.
    UpdateSessionIdentifierRequest = 9,
    /// `ma.streaming.api.v1.UpdateSessionIdentifierResponse`.
    UpdateSessionIdentifierResponse = 10,
    /// `ma.streaming.api.v1.UpdateSessionDetailsRequest`.
    UpdateSessionDetailsRequest = 11,
    /// `ma.streaming.api.v1.UpdateSessionDetailsResponse`.
    UpdateSessionDetailsResponse = 12,
    /// `ma.streaming.api.v1.AddAssociateSessionRequest`.
    AddAssociateSessionRequest = 13,
    /// `ma.streaming.api.v1.AddAssociateSessionResponse`.
    AddAssociateSessionResponse = 14,
    /// `ma.streaming.api.v1.GetParameterDataFormatIdRequest`.
    GetParameterDataFormatIdRequest = 15,
    /// `ma.streaming.api.v1.GetParameterDataFormatIdResponse`.
    GetParameterDataFormatIdResponse = 16,
    /// `ma.streaming.api.v1.GetEventDataFormatIdRequest`.
    GetEventDataFormatIdRequest = 17,
    /// `ma.streaming.api.v1.GetEventDataFormatIdResponse`.
    GetEventDataFormatIdResponse = 18,
    /// `ma.streaming.api.v1.GetParametersListRequest`.
    GetParametersListRequest = 19,
    /// `ma.streaming.api.v1.GetParametersListResponse`.
    GetParametersListResponse = 20,
    /// `ma.streaming.api.v1.GetEventRequest`.
    GetEventRequest = 21,
    /// `ma.streaming.api.v1.GetEventResponse`.
    GetEventResponse = 22,
    /// `ma.streaming.api.v1.DataPacketDetails`: one written packet (from either write RPC).
    DataPacketDetails = 23,
    /// `ma.streaming.api.v1.WriteInfoPacketRequest` (WriteInfoPackets messages have the same fields).
    WriteInfoPacketRequest = 24,
    /// `ma.streaming.key_generator.v1.GenerateUniqueKeyRequest`.
    GenerateUniqueKeyRequest = 25,
    /// `ma.streaming.key_generator.v1.GenerateUniqueKeyResponse`.
    GenerateUniqueKeyResponse = 26,
    /// `ma.streaming.open_data.v1.ErrorPacket`: a protocol violation found by the checker.
    Violation = 27,
}

impl RecordKind {
    /// Every kind, in byte order.
    pub const ALL: [RecordKind; 27] = {
        use RecordKind::*;
        [
            CreateSessionRequest,
            CreateSessionResponse,
            EndSessionRequest,
            EndSessionResponse,
            GetCurrentSessionsRequest,
            GetCurrentSessionsResponse,
            GetSessionInfoRequest,
            GetSessionInfoResponse,
            UpdateSessionIdentifierRequest,
            UpdateSessionIdentifierResponse,
            UpdateSessionDetailsRequest,
            UpdateSessionDetailsResponse,
            AddAssociateSessionRequest,
            AddAssociateSessionResponse,
            GetParameterDataFormatIdRequest,
            GetParameterDataFormatIdResponse,
            GetEventDataFormatIdRequest,
            GetEventDataFormatIdResponse,
            GetParametersListRequest,
            GetParametersListResponse,
            GetEventRequest,
            GetEventResponse,
            DataPacketDetails,
            WriteInfoPacketRequest,
            GenerateUniqueKeyRequest,
            GenerateUniqueKeyResponse,
            Violation,
        ]
    };

    /// The kind for a byte read from a file, or `None` for a kind this version does not know.
    pub fn from_byte(byte: u8) -> Option<Self> {
        Self::ALL.iter().copied().find(|kind| *kind as u8 == byte)
    }
}

/// One framed record, payload still encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    /// The kind byte as stored (kept raw so unknown future kinds survive a read).
    pub kind: u8,
    /// Server receive time, nanoseconds since the UNIX epoch.
    pub time_ns: u64,
    /// The protobuf message bytes.
    pub payload: Bytes,
}

impl RawRecord {
    /// The known kind, if any.
    pub fn kind(&self) -> Option<RecordKind> {
        RecordKind::from_byte(self.kind)
    }

    /// Decodes the payload as `M`.
    pub fn decode<M: Message + Default>(&self) -> Result<M, prost::DecodeError> {
        M::decode(self.payload.clone())
    }
}

/// The records of a file and whether its tail was cut short.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    /// Complete records, in file order.
    pub records: Vec<RawRecord>,
    /// Bytes of the file covered by the header and the complete records.
    pub valid_len: u64,
    /// True when bytes after the last complete record were ignored.
    pub truncated: bool,
}

/// Failure to open, read, parse or append to a recording.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    /// The file could not be opened, read or written.
    #[error("recording {}: {source}", path.display())]
    Io {
        /// The recording file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The file does not start with [`MAGIC`].
    #[error("recording {}: not an ecu-bridge Stream API recording (bad magic)", path.display())]
    BadMagic {
        /// The recording file.
        path: PathBuf,
    },
    /// A record's payload did not decode as the message its kind names.
    #[error("recording {}: record {index} ({kind:?}): {source}", path.display())]
    Decode {
        /// The recording file.
        path: PathBuf,
        /// Position of the record in the file (0-based).
        index: usize,
        /// The record kind.
        kind: RecordKind,
        /// The protobuf error.
        source: prost::DecodeError,
    },
}

/// Splits recording bytes into records. A missing or partial header is "truncated" only when the
/// bytes present are a prefix of [`MAGIC`]; other bytes are [`RecordingError::BadMagic`].
pub fn parse(bytes: &[u8], path: &Path) -> Result<Parsed, RecordingError> {
    if bytes.len() < MAGIC.len() {
        if MAGIC.starts_with(bytes) {
            let truncated = !bytes.is_empty();
            return Ok(Parsed {
                truncated,
                ..Parsed::default()
            });
        }
        return Err(RecordingError::BadMagic {
            path: path.to_owned(),
        });
    }
    if bytes[..MAGIC.len()] != MAGIC {
        return Err(RecordingError::BadMagic {
            path: path.to_owned(),
        });
    }
    let mut parsed = Parsed {
        valid_len: MAGIC.len() as u64,
        ..Parsed::default()
    };
    let mut rest = &bytes[MAGIC.len()..];
    while !rest.is_empty() {
        match parse_record(rest) {
            Some((record, used)) => {
                parsed.records.push(record);
                parsed.valid_len += used as u64;
                rest = &rest[used..];
            }
            None => {
                parsed.truncated = true;
                break;
            }
        }
    }
    Ok(parsed)
}

/// Reads and parses a whole recording file.
pub fn read_file(path: &Path) -> Result<Parsed, RecordingError> {
    let io_err = |source| RecordingError::Io {
        path: path.to_owned(),
        source,
    };
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(io_err)?;
    parse(&bytes, path)
}

/// One record from the front of `bytes` and its length, or `None` if `bytes` holds less than a
/// whole record (or an impossible length, which only a torn write produces).
fn parse_record(bytes: &[u8]) -> Option<(RawRecord, usize)> {
    let kind = *bytes.first()?;
    let time_ns = u64::from_le_bytes(bytes.get(1..9)?.try_into().ok()?);
    let (len, varint_len) = parse_varint(bytes.get(9..)?)?;
    if len > MAX_PAYLOAD {
        return None;
    }
    let start = 9 + varint_len;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    let payload = Bytes::copy_from_slice(bytes.get(start..end)?);
    Some((
        RawRecord {
            kind,
            time_ns,
            payload,
        },
        end,
    ))
}

/// A protobuf base-128 varint and its encoded length; `None` if cut short or longer than 10 bytes.
fn parse_varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, byte) in bytes.iter().take(10).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Appends records to a recording file, flushing after each call to [`Recorder::flush`].
#[derive(Debug)]
pub struct Recorder {
    path: PathBuf,
    out: BufWriter<File>,
}

impl Recorder {
    /// Opens `path` for appending. A new or empty file gets the header; an existing one is parsed,
    /// cut back to its last complete record, and its records returned for replay.
    pub fn open(path: &Path) -> Result<(Self, Parsed), RecordingError> {
        let io_err = |source| RecordingError::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io_err)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io_err)?;
        let parsed = parse(&bytes, path)?;
        if parsed.valid_len < MAGIC.len() as u64 {
            file.set_len(0).map_err(io_err)?;
            file.seek(SeekFrom::Start(0)).map_err(io_err)?;
            file.write_all(&MAGIC).map_err(io_err)?;
        } else {
            file.set_len(parsed.valid_len).map_err(io_err)?;
            file.seek(SeekFrom::End(0)).map_err(io_err)?;
        }
        let recorder = Recorder {
            path: path.to_owned(),
            out: BufWriter::new(file),
        };
        Ok((recorder, parsed))
    }

    /// Buffers one record.
    pub fn append(
        &mut self,
        kind: RecordKind,
        time_ns: u64,
        message: &impl Message,
    ) -> Result<(), RecordingError> {
        let mut frame = Vec::with_capacity(20 + message.encoded_len());
        frame.push(kind as u8);
        frame.extend_from_slice(&time_ns.to_le_bytes());
        message
            .encode_length_delimited(&mut frame)
            .map_err(|e| RecordingError::Io {
                path: self.path.clone(),
                source: io::Error::other(e),
            })?;
        self.out.write_all(&frame).map_err(|source| self.io(source))
    }

    /// Pushes buffered records to the OS, so a crash of this process loses nothing written so far.
    pub fn flush(&mut self) -> Result<(), RecordingError> {
        self.out.flush().map_err(|source| self.io(source))
    }

    /// Closes the file without flushing buffered records, as a crash would.
    pub fn abandon(self) {
        // into_parts hands back the buffer instead of writing it out (as drop would).
        let (_file, _unwritten) = self.out.into_parts();
    }

    fn io(&self, source: io::Error) -> RecordingError {
        RecordingError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use open_streaming::api;

    fn sample_request() -> api::EndSessionRequest {
        api::EndSessionRequest {
            data_source: "ds".into(),
            session_key: "k".into(),
            ..Default::default()
        }
    }

    #[test]
    fn round_trip_and_truncated_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rec.bin");
        let (mut rec, parsed) = Recorder::open(&path).expect("open");
        assert!(parsed.records.is_empty());
        rec.append(RecordKind::EndSessionRequest, 42, &sample_request())
            .expect("append");
        rec.append(RecordKind::EndSessionRequest, 43, &sample_request())
            .expect("append");
        rec.flush().expect("flush");
        drop(rec);
        let mut bytes = std::fs::read(&path).expect("read");
        assert_eq!(&bytes[..8], &MAGIC);
        let whole = parse(&bytes, &path).expect("parse");
        assert_eq!(whole.records.len(), 2);
        assert_eq!(whole.records[1].time_ns, 43);
        let back: api::EndSessionRequest = whole.records[0].decode().expect("decode");
        assert_eq!(back, sample_request());
        bytes.truncate(bytes.len() - 3);
        let cut = parse(&bytes, &path).expect("parse cut");
        assert!(cut.truncated);
        assert_eq!(cut.records.len(), 1);
        // Reopening cuts the torn tail so appends stay aligned.
        std::fs::write(&path, &bytes).expect("write");
        let (mut rec, parsed) = Recorder::open(&path).expect("reopen");
        assert_eq!(parsed.records.len(), 1);
        rec.append(RecordKind::EndSessionRequest, 44, &sample_request())
            .expect("append");
        rec.flush().expect("flush");
        let again = read_file(&path).expect("read again");
        assert!(!again.truncated);
        assert_eq!(
            again.records.iter().map(|r| r.time_ns).collect::<Vec<_>>(),
            [42, 44]
        );
    }

    proptest::proptest! {
        /// Any cut of a valid file parses to a prefix of its records, flagged truncated unless the
        /// cut falls on a record boundary; arbitrary bytes never panic.
        #[test]
        fn any_cut_is_a_prefix(times in proptest::collection::vec(0u64..u64::MAX, 1..8), cut in 0usize..400, junk in proptest::collection::vec(0u8..=255, 0..64)) {
            let mut bytes = MAGIC.to_vec();
            let mut ends = vec![bytes.len()];
            for t in &times {
                bytes.push(RecordKind::EndSessionRequest as u8);
                bytes.extend_from_slice(&t.to_le_bytes());
                sample_request().encode_length_delimited(&mut bytes).expect("vec grows");
                ends.push(bytes.len());
            }
            let cut = cut.min(bytes.len());
            let parsed = parse(&bytes[..cut], Path::new("p")).expect("valid prefix");
            let whole = ends.iter().filter(|e| **e <= cut).count().saturating_sub(1);
            proptest::prop_assert_eq!(parsed.records.len(), whole);
            proptest::prop_assert_eq!(parsed.truncated, !ends.contains(&cut) && cut > 0);
            let got: Vec<u64> = parsed.records.iter().map(|r| r.time_ns).collect();
            proptest::prop_assert_eq!(&got[..], &times[..whole]);
            let mut noisy = MAGIC.to_vec();
            noisy.extend_from_slice(&junk);
            let _ = parse(&noisy, Path::new("p"));
        }
    }

    #[test]
    fn bad_magic_is_an_error() {
        let err = parse(b"not a recording", Path::new("x")).expect_err("bad magic");
        assert!(matches!(err, RecordingError::BadMagic { .. }));
    }
}
