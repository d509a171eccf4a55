//! Durable spool for the publish stage: every encoded Open Streaming packet the Stream API has
//! not yet accepted, on disk, so an outage, a slow link, SIGTERM, SIGKILL or a power cut never
//! silently loses data. Synchronous std file IO; under the interval policy the syncs, `acks`
//! rewrites and segment deletions run on the spool's own thread (`syncer.rs`), so a call costs
//! one vectored `write`.
//!
//! Contract (format and arithmetic in `docs/spool.md`):
//! - `append` hands each record to the OS with one vectored `write` before returning, so a
//!   killed process loses nothing appended; `fdatasync` runs at most every `sync_interval`
//!   (and on roll and close), so a power cut loses at most that interval of appends, plus
//!   those made while one background sync ran.
//! - `ack` marks one seq accepted, in any order. The acknowledgement state is persisted at the
//!   same interval, so a crash redelivers at most that interval's acks (duplicates, which the
//!   caller recognises by `packet_id`). Segments whose records are all acknowledged are deleted.
//! - `max_bytes` and `max_age` drop the oldest whole segments, counted in [`SpoolStats`].
//! - Memory is bounded regardless of spool size: per segment only a summary, plus the acked
//!   seqs above the low-water mark; records are streamed from disk by [`Pending`].
//! - Damaged bytes are skipped per record (resync on the record magic) and counted; the spool
//!   never panics on file contents.

mod behind;
mod config;
mod error;
mod pending;
mod record;
mod recover;
mod segment;
mod state;
mod syncer;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, OpenOptions};
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

pub use config::{SpoolConfig, SyncPolicy};
pub use error::SpoolError;
pub use pending::{Pending, PendingRecord};
pub use record::{MAX_PAYLOAD, MAX_STREAM, SpoolRecord};
pub use recover::Recovery;
pub use state::{SessionRecord, SessionState};

use behind::WriteBehind;
use segment::{SEGMENT_HEADER_LEN, SegmentWriter, segment_path};
use state::{ACKS_FILE, AckState, SESSIONS_FILE};
use syncer::{SyncJob, SyncOutcome, Syncer};

/// The lock file: one process per spool folder.
const LOCK_FILE: &str = "lock";

/// Figures for metrics: what waits, how old it is, what was lost.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpoolStats {
    /// Segment bytes on disk.
    pub bytes_on_disk: u64,
    /// Records not yet acknowledged.
    pub records_pending: u64,
    /// Samples in them; pro-rated within a partly acknowledged segment.
    pub samples_pending: u64,
    /// First-sample time of the oldest segment with pending records, for "age of the oldest
    /// waiting sample".
    pub oldest_pending_time_ns: Option<u64>,
    /// Records appended since open.
    pub appended: u64,
    /// Acknowledgements of pending records since open.
    pub acknowledged: u64,
    /// Pending records dropped by `max_bytes` or `max_age` since open.
    pub dropped_records: u64,
    /// Samples in them.
    pub dropped_samples: u64,
    /// Damaged records skipped by recovery.
    pub corrupt_records: u64,
    /// Failed writes, syncs and segment creations since open.
    pub write_failures: u64,
    /// Segment files.
    pub segments: u64,
}

/// Summary of one segment file: all the spool keeps in memory per segment.
#[derive(Debug, Clone)]
struct SegmentMeta {
    first_seq: u64,
    /// Seq of the last record; `first_seq - 1` while empty.
    last_seq: u64,
    records: u64,
    acked: u64,
    samples: u64,
    bytes: u64,
    min_time_ns: Option<u64>,
    /// When it was last appended to (file mtime after a restart), for `max_age`.
    last_write: SystemTime,
}

impl SegmentMeta {
    fn pending(&self) -> u64 {
        self.records - self.acked.min(self.records)
    }

    fn pending_samples(&self) -> u64 {
        if self.records == 0 {
            return 0;
        }
        (u128::from(self.samples) * u128::from(self.pending()) / u128::from(self.records)) as u64
    }
}

/// Both clocks, read once per operation; tests pass their own.
#[derive(Debug, Clone, Copy)]
struct Now {
    mono: Instant,
    wall: SystemTime,
}

impl Now {
    fn read() -> Self {
        Self {
            mono: Instant::now(),
            wall: SystemTime::now(),
        }
    }
}

/// The spool: one directory of segment files plus the `acks` and `sessions` state files.
#[derive(Debug)]
pub struct Spool {
    /// The thread running interval syncs, started by the first one. First field: dropping
    /// the spool waits for its sync before the lock below is released.
    syncer: Option<Syncer>,
    /// The folder's lock (released when the spool is dropped).
    _lock: nix::fcntl::Flock<fs::File>,
    dir: PathBuf,
    config: SpoolConfig,
    /// In seq order; when `writer` is set, the last one is being written.
    segments: VecDeque<SegmentMeta>,
    writer: Option<SegmentWriter<fs::File>>,
    acks: AckState,
    /// Acks changed since the acks file was last written.
    acks_dirty: bool,
    /// Records taken but not written yet (`SpoolConfig::write_behind_bytes`).
    behind: WriteBehind,
    next_seq: u64,
    sessions: BTreeMap<u32, SessionRecord>,
    /// Encode buffer reused by every append.
    buf: Vec<u8>,
    last_sync: Instant,
    stats: SpoolStats,
}

impl Spool {
    /// Opens (or creates) the spool in `dir`, scanning every segment; see [`Recovery`].
    pub fn open(
        dir: impl AsRef<Path>,
        config: SpoolConfig,
    ) -> Result<(Self, Recovery), SpoolError> {
        recover::open(dir.as_ref(), config, Now::read())
    }

    /// Appends one record and returns its seq. It has reached the OS when this returns.
    pub fn append(&mut self, record: &SpoolRecord) -> Result<u64, SpoolError> {
        let seqs = self.append_batch_at(std::slice::from_ref(record), Now::read())?;
        Ok(seqs.start)
    }

    /// Appends `records` (heads and payloads in vectored writes, the payloads not copied) and
    /// returns their seqs. All or none are appended.
    pub fn append_batch(&mut self, records: &[SpoolRecord]) -> Result<Range<u64>, SpoolError> {
        self.append_batch_at(records, Now::read())
    }

    /// Marks `seq` accepted by the Stream API. False if it was already acknowledged, dropped
    /// or never appended.
    pub fn ack(&mut self, seq: u64) -> bool {
        self.ack_at(seq, Now::read())
    }

    /// The unacknowledged records, in seq order, streamed from disk (then those held by
    /// write-behind). The iterator does not borrow the spool: the caller may ack (and append)
    /// while delivering.
    pub fn pending(&self) -> Pending {
        self.pending_from(0)
    }

    /// As [`pending`](Self::pending), starting at seq `from`.
    pub fn pending_from(&self, from: u64) -> Pending {
        let segments = self
            .segments
            .iter()
            .filter(|s| s.pending() > 0 && s.last_seq >= from)
            .map(|s| segment_path(&self.dir, s.first_seq))
            .collect();
        let held = self.behind.clone().into_parts();
        Pending::new(segments, held, self.acks.clone(), from, self.next_seq)
    }

    /// Records or replaces the session `session.index`, durably before returning.
    pub fn put_session(&mut self, session: SessionRecord) -> Result<(), SpoolError> {
        self.sessions.insert(session.index, session);
        self.write_sessions()
    }

    /// Forgets a session the publisher no longer needs (ended, nothing pending).
    pub fn forget_session(&mut self, index: u32) -> Result<(), SpoolError> {
        if self.sessions.remove(&index).is_some() {
            self.write_sessions()?;
        }
        Ok(())
    }

    /// The session journal, by index.
    pub fn sessions(&self) -> impl Iterator<Item = &SessionRecord> {
        self.sessions.values()
    }

    /// Writes what write-behind holds, forces appended data and the ack state to stable
    /// storage now, whatever the interval (under `SyncPolicy::Never` the ack state is only
    /// written), and applies `max_age`.
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        let now = Now::read();
        self.write_held(now)?;
        self.enforce_age(now.wall);
        let durable = self.config.sync != SyncPolicy::Never;
        self.sync_now(now, durable)
    }

    /// Writes what write-behind holds, syncs (unless the policy is `Never`) and closes.
    pub fn close(mut self) -> Result<(), SpoolError> {
        self.write_held(Now::read())?;
        let durable = self.config.sync != SyncPolicy::Never;
        self.sync_now(Now::read(), durable)
    }

    /// Current figures.
    pub fn stats(&self) -> SpoolStats {
        let mut stats = self.stats.clone();
        stats.segments = self.segments.len() as u64;
        stats.bytes_on_disk = self.segments.iter().map(|s| s.bytes).sum();
        stats.records_pending = self.segments.iter().map(SegmentMeta::pending).sum();
        stats.samples_pending = self.segments.iter().map(SegmentMeta::pending_samples).sum();
        stats.oldest_pending_time_ns = self
            .segments
            .iter()
            .find(|s| s.pending() > 0)
            .and_then(|s| s.min_time_ns);
        for (_, record) in self.behind.unacknowledged(&self.acks) {
            stats.records_pending += 1;
            stats.samples_pending += u64::from(record.samples);
            if stats.oldest_pending_time_ns.is_none() && record.first_time_ns != 0 {
                stats.oldest_pending_time_ns = Some(record.first_time_ns);
            }
        }
        stats
    }

    /// The directory the spool lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn append_batch_at(
        &mut self,
        records: &[SpoolRecord],
        now: Now,
    ) -> Result<Range<u64>, SpoolError> {
        let total = self.check_batch(records)?;
        let first = self.next_seq;
        let end = first + records.len() as u64;
        if records.is_empty() {
            return Ok(first..end);
        }
        let limit = self.config.write_behind_bytes;
        if total <= limit {
            self.behind.push(first, records);
            if self.behind.bytes() > limit
                && let Err(error) = self.write_held(now)
            {
                self.behind.pop_newest(records.len());
                return Err(error);
            }
        } else {
            // What is held goes first: the disk keeps seq order.
            self.write_held(now)?;
            self.write_batch(first, records, total, now)?;
        }
        self.next_seq = end;
        self.stats.appended += records.len() as u64;
        Ok(first..end)
    }

    /// Writes every record write-behind holds, as one batch. They stay held while they are
    /// written: a segment deleted to make room for them sets the acknowledgement floor below
    /// the first seq it still sees.
    fn write_held(&mut self, now: Now) -> Result<(), SpoolError> {
        if self.behind.is_empty() {
            return Ok(());
        }
        let (first, records) = self.behind.to_batch();
        self.write_batch(first, &records, self.behind.bytes(), now)?;
        self.behind.clear();
        Ok(())
    }

    /// Writes `records`, whose seqs start at `first` (above every seq on disk), to the
    /// active segment; all or none are written. Seqs already acknowledged (held records
    /// acknowledged out of order) count as acknowledged in the segment.
    fn write_batch(
        &mut self,
        first: u64,
        records: &[SpoolRecord],
        total: u64,
        now: Now,
    ) -> Result<(), SpoolError> {
        self.enforce_age(now.wall);
        self.make_room(total + SEGMENT_HEADER_LEN as u64);
        let path = segment_path(&self.dir, self.active_first_seq(first));
        let mut writer = match self.writer.take() {
            Some(writer) => writer,
            None => self.start_segment(&path, first, now)?,
        };
        // Each record's head, then its payload as it is: a packet's bytes are not copied.
        let mut parts = record::encode_parts(first, records, &mut self.buf);
        let written = writer.write_parts(&mut parts);
        let bytes = writer.len();
        if !writer.is_poisoned() {
            self.writer = Some(writer);
        } else if self.segments.back().is_some_and(|s| s.records == 0) {
            // Its file holds no record; the next segment reuses (truncates) the name.
            self.segments.pop_back();
        }
        if let Err(error) = written {
            self.stats.write_failures += 1;
            if self.give_back_acknowledged_segment() {
                // Once only: the new segment holds no record, so it is never given back.
                return self.write_batch(first, records, total, now);
            }
            return Err(SpoolError::io(&path, error));
        }
        let end = first + records.len() as u64;
        let acknowledged = (first..end).filter(|&seq| self.acks.is_acked(seq)).count();
        if let Some(meta) = self.segments.back_mut() {
            meta.records += records.len() as u64;
            meta.acked += acknowledged as u64;
            meta.last_seq = end - 1;
            meta.samples += records.iter().map(|r| u64::from(r.samples)).sum::<u64>();
            meta.bytes = bytes;
            // A record without samples (a session announcement) has no time: 0.
            let batch_min = records
                .iter()
                .map(|r| r.first_time_ns)
                .filter(|&t| t != 0)
                .min();
            meta.min_time_ns = match (meta.min_time_ns, batch_min) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            meta.last_write = now.wall;
        }
        if bytes >= self.config.segment_bytes {
            self.seal(now);
        } else {
            self.maybe_sync(now);
        }
        Ok(())
    }

    fn check_batch(&self, records: &[SpoolRecord]) -> Result<u64, SpoolError> {
        let mut total = 0u64;
        for record in records {
            if record.payload.len() > MAX_PAYLOAD || record.stream.len() > MAX_STREAM {
                return Err(SpoolError::TooLarge {
                    len: record.encoded_len() as u64,
                    limit: (MAX_PAYLOAD + MAX_STREAM) as u64,
                });
            }
            total += record.encoded_len() as u64;
        }
        let limit = self.config.max_bytes - SEGMENT_HEADER_LEN as u64;
        if total > limit {
            return Err(SpoolError::TooLarge { len: total, limit });
        }
        Ok(total)
    }

    /// First seq of the segment being written, or of the one a batch from `first` creates.
    fn active_first_seq(&self, first: u64) -> u64 {
        match (&self.writer, self.segments.back()) {
            (Some(_), Some(meta)) => meta.first_seq,
            _ => first,
        }
    }

    /// Creates the segment starting at `first`. Any file of that name holds no record: every
    /// record ever written has a smaller seq, so truncating it loses nothing.
    fn start_segment(
        &mut self,
        path: &Path,
        first: u64,
        now: Now,
    ) -> Result<SegmentWriter<fs::File>, SpoolError> {
        let created = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .and_then(SegmentWriter::create);
        let writer = match created {
            Ok(writer) => writer,
            Err(error) => {
                self.stats.write_failures += 1;
                return Err(SpoolError::io(path, error));
            }
        };
        let dir_job = SyncJob {
            sync_dir: Some(self.dir.clone()),
            ..SyncJob::default()
        };
        if self.config.sync != SyncPolicy::Never
            && !self.queue_in_background(dir_job)
            && state::sync_dir(&self.dir).is_err()
        {
            // The segment still works; only its directory entry may not survive a power cut.
            self.stats.write_failures += 1;
        }
        self.segments.push_back(SegmentMeta {
            first_seq: first,
            last_seq: first - 1,
            records: 0,
            acked: 0,
            samples: 0,
            bytes: writer.len(),
            min_time_ns: None,
            last_write: now.wall,
        });
        Ok(writer)
    }

    fn ack_at(&mut self, seq: u64, now: Now) -> bool {
        if self.behind.holds(seq) {
            if !self.acks.insert(seq) {
                return false;
            }
            self.acks_dirty = true;
            self.stats.acknowledged += 1;
            self.behind.drop_acknowledged(&self.acks);
            self.maybe_sync(now);
            return true;
        }
        let index = self.segments.partition_point(|s| s.first_seq <= seq);
        let Some(position) = index.checked_sub(1) else {
            return false;
        };
        if seq > self.segments[position].last_seq || !self.acks.insert(seq) {
            return false;
        }
        self.acks_dirty = true;
        self.stats.acknowledged += 1;
        let active = self.writer.is_some() && position + 1 == self.segments.len();
        let meta = &mut self.segments[position];
        meta.acked += 1;
        if meta.pending() == 0 && !active {
            self.remove_segment(position);
        }
        self.maybe_sync(now);
        true
    }

    /// Closes the segment being written (synced unless the policy is `Never`).
    fn seal(&mut self, now: Now) {
        if let Some(mut writer) = self.writer.take()
            && self.config.sync != SyncPolicy::Never
            && !self.sync_sealed_in_background(&writer)
            && writer.sync().is_err()
        {
            self.stats.write_failures += 1;
        }
        if let Some(meta) = self.segments.back()
            && meta.pending() == 0
        {
            self.remove_segment(self.segments.len() - 1);
        }
        // The roll synced only the segment; the ack state keeps its own interval.
        self.maybe_sync(now);
    }

    fn maybe_sync(&mut self, now: Now) {
        while let Some(outcome) = self.syncer.as_mut().and_then(Syncer::poll) {
            self.account_sync(outcome);
        }
        let due = match self.config.sync {
            SyncPolicy::Always => true,
            SyncPolicy::Every(interval) => now.mono.duration_since(self.last_sync) >= interval,
            SyncPolicy::Never => false,
        };
        if !due || matches!(self.config.sync, SyncPolicy::Every(_)) && self.sync_in_background(now)
        {
            return;
        }
        // A failed sync is counted and leaves the data with the OS; the append stands.
        if self.sync_now(now, true).is_err() {
            self.stats.write_failures += 1;
        }
    }

    /// Hands the interval sync to the sync thread (`syncer.rs`); false when it has to run
    /// inline (no thread, or no second handle to the segment).
    fn sync_in_background(&mut self, now: Now) -> bool {
        if self.syncer.is_none() {
            self.syncer = Syncer::start().ok();
        }
        let Some(syncer) = self.syncer.as_mut() else {
            return false;
        };
        if syncer.interval_sync_in_flight() {
            // The last one still waits or runs: ask again on the next call, never queue two.
            return true;
        }
        let segment = match (self.writer.as_ref(), self.segments.back()) {
            (Some(writer), Some(meta)) => match writer.sink().try_clone() {
                Ok(file) => Some((meta.first_seq, file)),
                Err(_) => return false,
            },
            _ => None,
        };
        let acks = self.acks_dirty.then(|| {
            let bytes = state::encode_acks(&self.acks, self.next_seq);
            (self.dir.clone(), ACKS_FILE, bytes)
        });
        let job = SyncJob {
            segment,
            acks,
            interval: true,
            ..SyncJob::default()
        };
        if !syncer.submit(job) {
            self.syncer = None;
            return false;
        }
        self.last_sync = now.mono;
        self.acks_dirty = false;
        true
    }

    /// Queues the final sync of the segment `writer` finished (interval policy only); false
    /// when it has to run inline.
    fn sync_sealed_in_background(&mut self, writer: &SegmentWriter<fs::File>) -> bool {
        if !matches!(self.config.sync, SyncPolicy::Every(_)) {
            return false;
        }
        if self.syncer.is_none() {
            self.syncer = Syncer::start().ok();
        }
        let (Some(syncer), Some(meta), Ok(file)) = (
            self.syncer.as_mut(),
            self.segments.back(),
            writer.sink().try_clone(),
        ) else {
            return false;
        };
        let job = SyncJob {
            segment: Some((meta.first_seq, file)),
            ..SyncJob::default()
        };
        syncer.submit(job)
    }

    /// Queues `job` (a removal or a directory sync) when the policy is the interval one;
    /// false when the caller has to do it inline.
    fn queue_in_background(&mut self, job: SyncJob) -> bool {
        if !matches!(self.config.sync, SyncPolicy::Every(_)) {
            return false;
        }
        if self.syncer.is_none() {
            self.syncer = Syncer::start().ok();
        }
        self.syncer
            .as_mut()
            .is_some_and(|syncer| syncer.submit(job))
    }

    /// Counts what a background sync could not do, as an inline one would have.
    fn account_sync(&mut self, outcome: SyncOutcome) {
        if outcome.acks_failed {
            self.acks_dirty = true;
            self.stats.write_failures += 1;
        }
        if outcome.other_failed {
            self.stats.write_failures += 1;
        }
        if let Some(first_seq) = outcome.segment_failed {
            self.stats.write_failures += 1;
            // After a failed fsync the page cache state is unknown: start a new segment.
            if self.writer.is_some()
                && self
                    .segments
                    .back()
                    .is_some_and(|s| s.first_seq == first_seq)
            {
                self.writer = None;
            }
        }
    }

    /// fdatasyncs the active segment and rewrites the acks file if it changed, after the
    /// background sync in flight (so acks files are written in order).
    fn sync_now(&mut self, now: Now, durable: bool) -> Result<(), SpoolError> {
        let outcomes = self.syncer.as_mut().map(Syncer::finish).unwrap_or_default();
        for outcome in outcomes {
            self.account_sync(outcome);
        }
        self.last_sync = now.mono;
        if durable && let Some(writer) = self.writer.as_mut() {
            let first = self.segments.back().map_or(self.next_seq, |s| s.first_seq);
            if let Err(error) = writer.sync() {
                // After a failed fsync the page cache state is unknown: start a new segment.
                self.writer = None;
                return Err(SpoolError::io(&segment_path(&self.dir, first), error));
            }
        }
        if self.acks_dirty {
            let bytes = state::encode_acks(&self.acks, self.next_seq);
            state::write_atomic(&self.dir, ACKS_FILE, &bytes, durable)
                .map_err(|e| SpoolError::io(&self.dir.join(ACKS_FILE), e))?;
            self.acks_dirty = false;
        }
        Ok(())
    }

    fn write_sessions(&mut self) -> Result<(), SpoolError> {
        let bytes = state::encode_sessions(self.sessions.values());
        let durable = self.config.sync != SyncPolicy::Never;
        let written = state::write_atomic(&self.dir, SESSIONS_FILE, &bytes, durable);
        if written.is_err() {
            self.stats.write_failures += 1;
        }
        written.map_err(|e| SpoolError::io(&self.dir.join(SESSIONS_FILE), e))
    }

    /// Drops the oldest segments while `max_age` says they are too old.
    fn enforce_age(&mut self, now: SystemTime) {
        let Some(max_age) = self.config.max_age else {
            return;
        };
        while let Some(oldest) = self.segments.front() {
            let age = now.duration_since(oldest.last_write).unwrap_or_default();
            if age <= max_age {
                break;
            }
            self.drop_oldest();
        }
    }

    /// Drops the oldest segments until `incoming` more bytes fit under `max_bytes`.
    fn make_room(&mut self, incoming: u64) {
        let mut on_disk: u64 = self.segments.iter().map(|s| s.bytes).sum();
        while on_disk + incoming > self.config.max_bytes
            && let Some(oldest) = self.segments.front()
        {
            on_disk -= oldest.bytes;
            self.drop_oldest();
        }
    }

    /// Deletes the oldest segment, counting its unacknowledged records as dropped.
    fn drop_oldest(&mut self) {
        if self.segments.len() == 1 {
            self.writer = None;
        }
        let Some(meta) = self.segments.front() else {
            return;
        };
        let (records, samples) = if meta.acked == 0 {
            (meta.records, meta.samples)
        } else {
            let path = segment_path(&self.dir, meta.first_seq);
            recover::count_pending(&path, &self.acks).unwrap_or((meta.pending(), 0))
        };
        self.stats.dropped_records += records;
        self.stats.dropped_samples += samples;
        self.remove_segment(0);
    }

    /// After a failed write: if every record of the segment written was acknowledged, it is
    /// deleted at once (not in the background) and true returned, so that on a full disk the
    /// append can be tried again in a new segment, in the space this one gave back, rather
    /// than wait for others to free some.
    fn give_back_acknowledged_segment(&mut self) -> bool {
        let acknowledged = self
            .segments
            .back()
            .is_some_and(|s| s.records > 0 && s.pending() == 0);
        if acknowledged {
            self.writer = None;
            self.delete_segment(self.segments.len() - 1, false);
        }
        acknowledged
    }

    /// Deletes segment `position` (its file by the sync thread, if there is one) and forgets
    /// acks inside its seq range.
    fn remove_segment(&mut self, position: usize) {
        self.delete_segment(position, true);
    }

    /// [`remove_segment`](Self::remove_segment), the file deleted on this thread unless
    /// `in_background`.
    fn delete_segment(&mut self, position: usize, in_background: bool) {
        let Some(meta) = self.segments.remove(position) else {
            return;
        };
        let path = segment_path(&self.dir, meta.first_seq);
        // A segment that held records has a name no new segment can take (names are first
        // seqs, and seqs only grow), so deleting it later cannot hit a newer file.
        let job = SyncJob {
            remove: Some(path.clone()),
            ..SyncJob::default()
        };
        let queued = in_background && meta.records > 0 && self.queue_in_background(job);
        if !queued
            && let Err(error) = fs::remove_file(path)
            && error.kind() != io::ErrorKind::NotFound
        {
            self.stats.write_failures += 1;
        }
        if position == 0 {
            let unwritten = self.behind.first_seq().unwrap_or(self.next_seq);
            let floor = self.segments.front().map_or(unwritten, |s| s.first_seq);
            self.acks.advance_to(floor - 1);
        } else {
            let above = self.acks.above.split_off(&meta.first_seq);
            let keep = above.range(meta.last_seq + 1..).copied();
            self.acks.above.extend(keep);
        }
        self.acks_dirty = true;
    }
}
