//! Opening a spool after a clean stop or a crash: reads the state files, scans every segment
//! record by record (checksums verified, damage skipped and counted), deletes segments with
//! nothing pending, and rebuilds the per-segment summaries. Appends then go to a new segment,
//! never after a possibly torn tail.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::segment::{
    HeaderCheck, SEGMENT_HEADER_LEN, Scanned, SegmentScanner, check_header, parse_segment_name,
    segment_path,
};
use super::state::{self, ACKS_FILE, AckState, SESSIONS_FILE, SessionRecord};
use super::{LOCK_FILE, Now, SegmentMeta, Spool, SpoolConfig, SpoolError, SpoolStats, WriteBehind};

/// What `Spool::open` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Unacknowledged records, to be delivered first.
    pub records_pending: u64,
    /// Samples in them.
    pub samples_pending: u64,
    /// Damaged records skipped (bad checksum or header between two valid records), plus
    /// damaged segment headers and state files.
    pub corrupt_records: u64,
    /// Bytes of torn or damaged segment tails skipped (a crash mid-write looks like this).
    pub truncated_bytes: u64,
    /// Earliest first-sample time among pending records.
    pub oldest_time_ns: Option<u64>,
    /// Latest last-sample time among pending records.
    pub newest_time_ns: Option<u64>,
    /// The session journal.
    pub sessions: Vec<SessionRecord>,
}

pub(super) fn open(
    dir: &Path,
    config: SpoolConfig,
    now: Now,
) -> Result<(Spool, Recovery), SpoolError> {
    config.validate()?;
    fs::create_dir_all(dir).map_err(|e| SpoolError::io(dir, e))?;
    let lock = lock(dir)?;
    let mut recovery = Recovery::default();
    let (mut acks, saved_next) = match read_optional(&dir.join(ACKS_FILE))? {
        Some(bytes) => state::decode_acks(&bytes).unwrap_or_else(|| {
            // Forgetting acks only redelivers (duplicates); never loses a record.
            recovery.corrupt_records += 1;
            (AckState::default(), 1)
        }),
        None => (AckState::default(), 1),
    };
    let sessions: BTreeMap<u32, SessionRecord> = match read_optional(&dir.join(SESSIONS_FILE))? {
        Some(bytes) => state::decode_sessions(&bytes).unwrap_or_else(|| {
            recovery.corrupt_records += 1;
            Vec::new()
        }),
        None => Vec::new(),
    }
    .into_iter()
    .map(|s| (s.index, s))
    .collect();

    let mut next_seq = saved_next
        .max(acks.low_water + 1)
        .max(acks.above.last().map_or(1, |s| s + 1));
    let mut segments = VecDeque::new();
    for first_seq in list_segments(dir)? {
        // A segment named `first_seq` was created when that was the next seq.
        next_seq = next_seq.max(first_seq);
        let path = segment_path(dir, first_seq);
        let Some(meta) = scan_segment(&path, first_seq, &acks, &mut recovery)? else {
            continue;
        };
        next_seq = next_seq.max(meta.last_seq + 1);
        if meta.pending() == 0 {
            remove_quietly(&path);
        } else {
            segments.push_back(meta);
        }
    }
    let floor = segments
        .front()
        .map_or(next_seq, |s: &SegmentMeta| s.first_seq);
    acks.advance_to(floor - 1);
    recovery.sessions = sessions.values().cloned().collect();

    let spool = Spool {
        syncer: None,
        _lock: lock,
        dir: dir.to_path_buf(),
        config,
        segments,
        writer: None,
        acks,
        acks_dirty: true,
        behind: WriteBehind::default(),
        next_seq,
        sessions,
        buf: Vec::new(),
        last_sync: now.mono,
        stats: SpoolStats {
            corrupt_records: recovery.corrupt_records,
            ..SpoolStats::default()
        },
    };
    Ok((spool, recovery))
}

/// Counts the records of a segment file not in `acks`, and their samples.
pub(super) fn count_pending(path: &Path, acks: &AckState) -> io::Result<(u64, u64)> {
    let mut file = File::open(path)?;
    skip_header(&mut file)?;
    let mut scanner = SegmentScanner::new(file, SEGMENT_HEADER_LEN as u64);
    let (mut records, mut samples) = (0, 0);
    while let Some(event) = scanner.next_event()? {
        if let (Scanned::Record, Some(view)) = (event, scanner.record())
            && !acks.is_acked(view.seq())
        {
            records += 1;
            samples += u64::from(view.samples());
        }
    }
    Ok((records, samples))
}

/// Takes the spool folder's lock, held as long as the returned file is open: two processes
/// appending to one spool would interleave their records and acknowledge each other's.
fn lock(dir: &Path) -> Result<Flock<File>, SpoolError> {
    let path = dir.join(LOCK_FILE);
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| SpoolError::io(&path, e))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(lock),
        Err((_, Errno::EWOULDBLOCK)) => Err(SpoolError::Locked {
            dir: dir.to_path_buf(),
        }),
        Err((_, errno)) => Err(SpoolError::io(&path, io::Error::from(errno))),
    }
}

/// Segment first seqs in the directory, ascending; removes leftover temp files.
fn list_segments(dir: &Path) -> Result<Vec<u64>, SpoolError> {
    let mut firsts = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| SpoolError::io(dir, e))? {
        let entry = entry.map_err(|e| SpoolError::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(first) = parse_segment_name(name) {
            firsts.push(first);
        } else if name.ends_with(".tmp") {
            remove_quietly(&entry.path());
        }
    }
    firsts.sort_unstable();
    Ok(firsts)
}

/// Scans one segment into its summary, or `None` if the file was set aside.
fn scan_segment(
    path: &Path,
    first_seq: u64,
    acks: &AckState,
    recovery: &mut Recovery,
) -> Result<Option<SegmentMeta>, SpoolError> {
    let io_err = |e| SpoolError::io(path, e);
    let mut file = File::open(path).map_err(io_err)?;
    let metadata = file.metadata().map_err(io_err)?;
    let mut head = Vec::with_capacity(SEGMENT_HEADER_LEN);
    (&mut file)
        .take(SEGMENT_HEADER_LEN as u64)
        .read_to_end(&mut head)
        .map_err(io_err)?;
    match check_header(&head) {
        HeaderCheck::Ok => {}
        HeaderCheck::Torn => {
            recovery.truncated_bytes += metadata.len();
            remove_quietly(path);
            return Ok(None);
        }
        HeaderCheck::BadMagic => {
            recovery.corrupt_records += 1;
            // Kept for inspection under a name the spool ignores.
            fs::rename(path, path.with_extension("bad")).map_err(io_err)?;
            return Ok(None);
        }
        HeaderCheck::NewerVersion(version) => {
            return Err(SpoolError::UnsupportedVersion {
                path: path.to_path_buf(),
                version,
            });
        }
    }
    let mut meta = SegmentMeta {
        first_seq,
        last_seq: first_seq - 1,
        records: 0,
        acked: 0,
        samples: 0,
        bytes: metadata.len(),
        min_time_ns: None,
        last_write: metadata.modified().map_err(io_err)?,
    };
    let mut scanner = SegmentScanner::new(file, SEGMENT_HEADER_LEN as u64);
    while let Some(event) = scanner.next_event().map_err(io_err)? {
        match event {
            Scanned::Record => {
                let Some(view) = scanner.record() else {
                    continue;
                };
                if view.seq() <= meta.last_seq {
                    // Valid checksum but out of order: not written by this segment's writer.
                    recovery.corrupt_records += 1;
                    continue;
                }
                meta.last_seq = view.seq();
                meta.records += 1;
                meta.samples += u64::from(view.samples());
                // A record without samples (a session announcement) has no time: 0.
                if view.first_time_ns() != 0 {
                    meta.min_time_ns = Some(
                        meta.min_time_ns
                            .map_or(view.first_time_ns(), |t| t.min(view.first_time_ns())),
                    );
                }
                if acks.is_acked(view.seq()) {
                    meta.acked += 1;
                } else {
                    recovery.records_pending += 1;
                    recovery.samples_pending += u64::from(view.samples());
                    let (first, last) = (view.first_time_ns(), view.last_time_ns());
                    if first != 0 {
                        recovery.oldest_time_ns =
                            Some(recovery.oldest_time_ns.map_or(first, |t| t.min(first)));
                        recovery.newest_time_ns = recovery.newest_time_ns.max(Some(last));
                    }
                }
            }
            Scanned::Corrupt { offset, bytes } => {
                recovery.corrupt_records += 1;
                tracing::warn!(path = %path.display(), offset, bytes, "spool: damaged record skipped");
            }
            Scanned::Truncated { offset, bytes } => {
                recovery.truncated_bytes += bytes;
                tracing::warn!(path = %path.display(), offset, bytes, "spool: torn segment tail skipped");
            }
        }
    }
    Ok(Some(meta))
}

fn skip_header(file: &mut File) -> io::Result<()> {
    let mut head = [0; SEGMENT_HEADER_LEN];
    file.read_exact(&mut head)
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, SpoolError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(SpoolError::io(path, error)),
    }
}

/// Removes a file whose loss is harmless (fully acknowledged, empty, or a temp file); a
/// failure leaves it for the next open to retry.
fn remove_quietly(path: &Path) {
    let _ = fs::remove_file(path);
}
