//! [`Pending`]: the unacknowledged records in seq order, streamed from the segment files
//! one record at a time, then those write-behind held. It owns a snapshot (segment paths, the
//! held records, acks, seq bounds) instead of borrowing the spool, so the caller can
//! acknowledge while it delivers.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;

use super::SpoolError;
use super::record::SpoolRecord;
use super::segment::{SEGMENT_HEADER_LEN, Scanned, SegmentScanner};
use super::state::AckState;

/// One record waiting for the Stream API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRecord {
    /// The seq to pass to `Spool::ack` once the server accepted the packet.
    pub seq: u64,
    /// The record as appended.
    pub record: SpoolRecord,
}

/// Iterator over pending records, from [`Spool::pending`](super::Spool::pending).
///
/// Yields `Err` once for a segment that cannot be read and then goes on with the next.
/// Segments deleted meanwhile (fully acknowledged) are skipped; damaged records are skipped
/// silently (recovery counted them).
#[derive(Debug)]
pub struct Pending {
    /// Segment paths still to read.
    segments: VecDeque<PathBuf>,
    acks: AckState,
    /// Lowest seq to yield.
    from: u64,
    /// Seqs at or above this were appended after the snapshot: not yielded.
    until: u64,
    current: Option<(PathBuf, SegmentScanner<File>)>,
    /// The records held in memory when the snapshot was taken (above every seq on disk), and
    /// the seq of the first.
    held: VecDeque<SpoolRecord>,
    held_seq: u64,
}

impl Pending {
    pub(super) fn new(
        segments: VecDeque<PathBuf>,
        (held_seq, held): (u64, VecDeque<SpoolRecord>),
        acks: AckState,
        from: u64,
        until: u64,
    ) -> Self {
        Self {
            segments,
            acks,
            from,
            until,
            current: None,
            held,
            held_seq,
        }
    }

    /// The next held record to yield, once the segments are read.
    fn next_held(&mut self) -> Option<PendingRecord> {
        while let Some(record) = self.held.pop_front() {
            let seq = self.held_seq;
            self.held_seq += 1;
            if seq >= self.from && seq < self.until && !self.acks.is_acked(seq) {
                return Some(PendingRecord { seq, record });
            }
        }
        None
    }

    fn open_next(&mut self) -> Option<Result<(), SpoolError>> {
        let path = self.segments.pop_front()?;
        let opened = File::open(&path).and_then(|mut file| {
            let mut head = [0; SEGMENT_HEADER_LEN];
            file.read_exact(&mut head)?;
            Ok(file)
        });
        match opened {
            Ok(file) => {
                let scanner = SegmentScanner::new(file, SEGMENT_HEADER_LEN as u64);
                self.current = Some((path, scanner));
                Some(Ok(()))
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => Some(Ok(())),
            Err(error) => Some(Err(SpoolError::io(&path, error))),
        }
    }
}

impl Iterator for Pending {
    type Item = Result<PendingRecord, SpoolError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let Some((path, scanner)) = self.current.as_mut() else {
                let Some(opened) = self.open_next() else {
                    return self.next_held().map(Ok);
                };
                match opened {
                    Ok(()) => continue,
                    Err(error) => return Some(Err(error)),
                }
            };
            let event = match scanner.next_event() {
                Ok(Some(event)) => event,
                Ok(None) => {
                    self.current = None;
                    continue;
                }
                Err(error) => {
                    let error = SpoolError::io(path, error);
                    self.current = None;
                    return Some(Err(error));
                }
            };
            let Scanned::Record = event else {
                continue;
            };
            let Some(view) = scanner.record() else {
                continue;
            };
            let seq = view.seq();
            if seq >= self.until {
                self.current = None;
                continue;
            }
            if seq >= self.from && !self.acks.is_acked(seq) {
                return Some(Ok(PendingRecord {
                    seq,
                    record: view.to_record(),
                }));
            }
        }
    }
}
