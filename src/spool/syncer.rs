//! The interval sync of `SyncPolicy::Every`, on a thread of its own: `fdatasync` of the
//! active segment (through a second handle to its file) and the atomic rewrite of the `acks`
//! file; also a rolled segment's last sync, a new segment's directory sync and the deletion of
//! fully acknowledged segments. Done inline, each sync stalled the caller (the publish stage) for 4 to 40 ms every
//! interval on a virtio disk, and every packet waiting behind it (`docs/performance.md`).
//!
//! An interval sync waiting or running when the next one falls due is not queued again: the
//! spool asks on its next call after it finished. So the power-cut bound becomes `sync_interval` plus the duration of
//! one sync (`docs/spool.md`). A rolled segment's final sync is queued behind it. The spool
//! waits for every job before a sync of its own (`sync`, `close`), so `acks` files are never
//! written out of order. Jobs run in the order they were submitted.

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;

use super::state;

/// What one background sync does.
#[derive(Debug, Default)]
pub(crate) struct SyncJob {
    /// The active segment's first seq and a second handle to its file, to `fdatasync`.
    pub(crate) segment: Option<(u64, File)>,
    /// The spool folder, the state file name and its new content, to write atomically.
    pub(crate) acks: Option<(PathBuf, &'static str, Vec<u8>)>,
    /// A segment whose records are all acknowledged, to delete: unlinking a 64 MiB file
    /// took up to 27 ms inline. Never the name a new segment could take (it held records).
    pub(crate) remove: Option<PathBuf>,
    /// A folder to fsync (a new segment's directory entry).
    pub(crate) sync_dir: Option<PathBuf>,
    /// This is the interval sync (at most one waits or runs at a time).
    pub(crate) interval: bool,
}

/// What failed in one background sync.
#[derive(Debug, Default)]
pub(crate) struct SyncOutcome {
    /// The segment (by first seq) whose `fdatasync` failed.
    pub(crate) segment_failed: Option<u64>,
    /// The `acks` rewrite failed: it must be written again.
    pub(crate) acks_failed: bool,
    /// The removal or the directory sync failed (counted only, as inline).
    pub(crate) other_failed: bool,
    /// It was the interval sync.
    pub(crate) interval: bool,
}

/// The sync thread and the one job it may be running.
#[derive(Debug)]
pub(crate) struct Syncer {
    jobs: Option<mpsc::Sender<SyncJob>>,
    outcomes: mpsc::Receiver<SyncOutcome>,
    /// Jobs submitted whose outcome has not been taken.
    in_flight: usize,
    /// One of them is the interval sync.
    interval_in_flight: bool,
    thread: Option<JoinHandle<()>>,
}

impl Syncer {
    /// Starts the thread.
    pub(crate) fn start() -> io::Result<Self> {
        let (jobs, job_rx) = mpsc::channel::<SyncJob>();
        let (outcome_tx, outcomes) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("spool-sync".to_owned())
            .spawn(move || {
                for job in job_rx {
                    if outcome_tx.send(run(job)).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Self {
            jobs: Some(jobs),
            outcomes,
            in_flight: 0,
            interval_in_flight: false,
            thread: Some(thread),
        })
    }

    /// The outcome of the oldest job if it has finished; `None` while it runs or when there
    /// is none.
    pub(crate) fn poll(&mut self) -> Option<SyncOutcome> {
        if self.in_flight == 0 {
            return None;
        }
        match self.outcomes.try_recv() {
            Ok(outcome) => Some(self.taken(outcome)),
            Err(mpsc::TryRecvError::Empty) => None,
            Err(mpsc::TryRecvError::Disconnected) => self.lost(),
        }
    }

    /// Whether an interval sync waits or runs.
    pub(crate) fn interval_sync_in_flight(&self) -> bool {
        self.interval_in_flight
    }

    /// Hands `job` to the thread, behind any job in flight; false when the thread is gone.
    pub(crate) fn submit(&mut self, job: SyncJob) -> bool {
        let interval = job.interval;
        let sent = self
            .jobs
            .as_ref()
            .is_some_and(|jobs| jobs.send(job).is_ok());
        if sent {
            self.in_flight += 1;
            self.interval_in_flight |= interval;
        }
        sent
    }

    fn taken(&mut self, outcome: SyncOutcome) -> SyncOutcome {
        self.in_flight -= 1;
        if outcome.interval {
            self.interval_in_flight = false;
        }
        outcome
    }

    /// Waits for every job in flight and returns their outcomes.
    pub(crate) fn finish(&mut self) -> Vec<SyncOutcome> {
        let mut outcomes = Vec::new();
        while self.in_flight > 0 {
            match self.outcomes.recv() {
                Ok(outcome) => outcomes.push(self.taken(outcome)),
                Err(mpsc::RecvError) => outcomes.extend(self.lost()),
            }
        }
        outcomes
    }

    /// The thread is gone (it cannot panic short of a bug): `acks` is written again, and the
    /// spool syncs inline from now on (a submit fails). Segment data is with the OS; the next
    /// sync covers the active segment.
    fn lost(&mut self) -> Option<SyncOutcome> {
        self.in_flight = 0;
        self.interval_in_flight = false;
        self.jobs = None;
        Some(SyncOutcome {
            segment_failed: None,
            acks_failed: true,
            other_failed: false,
            interval: false,
        })
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        // Closing the job channel ends the thread once its job is done.
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(job: SyncJob) -> SyncOutcome {
    let interval = job.interval;
    let segment_failed = job
        .segment
        .and_then(|(first_seq, file)| file.sync_data().err().map(|_| first_seq));
    let acks_failed = job
        .acks
        .is_some_and(|(dir, name, bytes)| state::write_atomic(&dir, name, &bytes, true).is_err());
    let removed = job
        .remove
        .is_none_or(|path| match std::fs::remove_file(path) {
            Ok(()) => true,
            Err(error) => error.kind() == io::ErrorKind::NotFound,
        });
    let dir_synced = job.sync_dir.is_none_or(|dir| state::sync_dir(&dir).is_ok());
    SyncOutcome {
        segment_failed,
        acks_failed,
        other_failed: !removed || !dir_synced,
        interval,
    }
}
