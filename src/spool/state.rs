//! The spool's two small state files, each replaced atomically (write a temp file, fsync,
//! rename, fsync the directory) and guarded by a CRC-32C: `acks` (the acknowledgement
//! low-water mark, the acknowledged seqs above it, and the next seq) and `sessions` (the
//! session journal, latest state per index). A damaged file reads as `None`: the spool then
//! redelivers (acks) or loses only the re-announcement data (sessions), never a record.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use bytes::Bytes;

pub(crate) const ACKS_FILE: &str = "acks";
pub(crate) const SESSIONS_FILE: &str = "sessions";
const ACKS_MAGIC: [u8; 8] = *b"ECUSPACK";
const SESSIONS_MAGIC: [u8; 8] = *b"ECUSPSES";
const VERSION: u32 = 1;

/// Whether a session is still being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// Packets may still arrive for it.
    Open,
    /// The session was ended; its packets may still be pending.
    Ended,
}

/// What the publisher needs to re-announce a session after a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The index [`SpoolRecord::session`](super::SpoolRecord::session) refers to.
    pub index: u32,
    /// The Open Streaming session key.
    pub session_key: String,
    /// The data source the session belongs to.
    pub data_source: String,
    /// Data streams opened for the session.
    pub streams: Vec<String>,
    /// Open or ended.
    pub state: SessionState,
    /// Whatever else the publisher needs (e.g. encoded configuration and data-format
    /// mappings); the spool never looks inside.
    pub opaque: Bytes,
}

/// Acknowledged seqs: every seq ≤ `low_water`, plus the members of `above`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AckState {
    pub(crate) low_water: u64,
    pub(crate) above: BTreeSet<u64>,
}

impl AckState {
    pub(crate) fn is_acked(&self, seq: u64) -> bool {
        seq <= self.low_water || self.above.contains(&seq)
    }

    /// Marks `seq` acknowledged; false if it already was.
    pub(crate) fn insert(&mut self, seq: u64) -> bool {
        if self.is_acked(seq) {
            return false;
        }
        self.above.insert(seq);
        self.advance_to(self.low_water);
        true
    }

    /// Raises the low-water mark to at least `seq` (no record at or below it remains), then
    /// over any contiguous run of acknowledged seqs.
    pub(crate) fn advance_to(&mut self, seq: u64) {
        if seq > self.low_water {
            self.low_water = seq;
            self.above = self.above.split_off(&(seq + 1));
        }
        while self.above.first() == Some(&(self.low_water + 1)) {
            self.above.pop_first();
            self.low_water += 1;
        }
    }
}

/// Encodes the acks file body.
pub(crate) fn encode_acks(acks: &AckState, next_seq: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + acks.above.len() * 8);
    out.extend_from_slice(&ACKS_MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&next_seq.to_le_bytes());
    out.extend_from_slice(&acks.low_water.to_le_bytes());
    out.extend_from_slice(&(acks.above.len() as u64).to_le_bytes());
    for seq in &acks.above {
        out.extend_from_slice(&seq.to_le_bytes());
    }
    seal(out)
}

/// Decodes an acks file into the state and the next seq, `None` if damaged.
pub(crate) fn decode_acks(bytes: &[u8]) -> Option<(AckState, u64)> {
    let mut r = Reader::open(bytes, &ACKS_MAGIC)?;
    let next_seq = r.u64()?;
    let low_water = r.u64()?;
    let count = r.u64()?;
    let mut above = BTreeSet::new();
    for _ in 0..count {
        above.insert(r.u64()?);
    }
    r.end()?;
    Some((AckState { low_water, above }, next_seq))
}

/// Encodes the session journal.
pub(crate) fn encode_sessions<'a>(sessions: impl Iterator<Item = &'a SessionRecord>) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&SESSIONS_MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    for session in sessions {
        out.extend_from_slice(&session.index.to_le_bytes());
        out.push(match session.state {
            SessionState::Open => 0,
            SessionState::Ended => 1,
        });
        put_bytes(&mut out, session.session_key.as_bytes());
        put_bytes(&mut out, session.data_source.as_bytes());
        out.extend_from_slice(&(session.streams.len() as u32).to_le_bytes());
        for stream in &session.streams {
            put_bytes(&mut out, stream.as_bytes());
        }
        put_bytes(&mut out, &session.opaque);
    }
    seal(out)
}

/// Decodes the session journal, `None` if damaged.
pub(crate) fn decode_sessions(bytes: &[u8]) -> Option<Vec<SessionRecord>> {
    let mut r = Reader::open(bytes, &SESSIONS_MAGIC)?;
    let mut sessions = Vec::new();
    while !r.rest.is_empty() {
        let index = r.u32()?;
        let state = match r.take(1)? {
            [0] => SessionState::Open,
            [1] => SessionState::Ended,
            _ => return None,
        };
        let session_key = r.string()?;
        let data_source = r.string()?;
        let count = r.u32()?;
        let mut streams = Vec::new();
        for _ in 0..count {
            streams.push(r.string()?);
        }
        let opaque = Bytes::copy_from_slice(r.bytes()?);
        sessions.push(SessionRecord {
            index,
            session_key,
            data_source,
            streams,
            state,
            opaque,
        });
    }
    Some(sessions)
}

/// Replaces `dir/name` with `bytes` atomically; with `durable`, fsyncs the data and the
/// directory so the rename survives a power cut.
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8], durable: bool) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    file.write_all(bytes)?;
    if durable {
        file.sync_all()?;
    }
    fs::rename(&tmp, dir.join(name))?;
    if durable {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Fsyncs a directory, making file creations, renames and removals in it durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Appends the CRC-32C of everything before it.
fn seal(mut out: Vec<u8>) -> Vec<u8> {
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// A bounds-checked cursor over a sealed state file body.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Checks the trailing CRC, magic and version; the cursor then covers the body.
    fn open(bytes: &'a [u8], magic: &[u8; 8]) -> Option<Self> {
        let body_len = bytes.len().checked_sub(4)?;
        let (body, crc) = bytes.split_at(body_len);
        if crc32c::crc32c(body).to_le_bytes() != crc {
            return None;
        }
        let mut r = Self { rest: body };
        if r.take(8)? != magic || r.u32()? != VERSION {
            return None;
        }
        Some(r)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.rest.len() {
            return None;
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }

    fn end(&self) -> Option<()> {
        self.rest.is_empty().then_some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_advance_over_contiguous_runs_only() {
        let mut acks = AckState::default();
        assert!(acks.insert(2));
        assert!(acks.insert(3));
        assert_eq!(acks.low_water, 0);
        assert!(acks.insert(1));
        assert_eq!((acks.low_water, acks.above.len()), (3, 0));
        assert!(!acks.insert(2));
        assert!(acks.insert(7));
        acks.advance_to(5);
        assert_eq!(acks.low_water, 5);
        assert!(acks.insert(6));
        assert_eq!((acks.low_water, acks.above.len()), (7, 0));
    }

    #[test]
    fn acks_file_round_trips_and_rejects_damage() {
        let acks = AckState {
            low_water: 10,
            above: [12, 15, 99].into_iter().collect(),
        };
        let bytes = encode_acks(&acks, 100);
        assert_eq!(decode_acks(&bytes), Some((acks, 100)));
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 1;
            assert_eq!(decode_acks(&bad), None, "flip at {at}");
        }
        assert_eq!(decode_acks(&bytes[..bytes.len() - 1]), None);
        assert_eq!(decode_acks(&[]), None);
    }

    #[test]
    fn sessions_round_trip_and_reject_damage() {
        let sessions = vec![
            SessionRecord {
                index: 0,
                session_key: "k0".into(),
                data_source: "car".into(),
                streams: vec!["".into(), "chassis".into()],
                state: SessionState::Ended,
                opaque: Bytes::from_static(b"\x01\x02"),
            },
            SessionRecord {
                index: 1,
                session_key: "k1".into(),
                data_source: "car".into(),
                streams: vec![],
                state: SessionState::Open,
                opaque: Bytes::new(),
            },
        ];
        let bytes = encode_sessions(sessions.iter());
        assert_eq!(decode_sessions(&bytes), Some(sessions));
        let mut bad = bytes.clone();
        bad[20] ^= 4;
        assert_eq!(decode_sessions(&bad), None);
    }
}
