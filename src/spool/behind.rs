//! Write-behind ([`SpoolConfig::write_behind_bytes`](super::SpoolConfig)): the newest records a
//! spool has taken but not yet written, held in memory (the payloads are shared, not copied)
//! until they are acknowledged, which drops them unwritten, or until they pass the bound,
//! which writes them all. Every held seq is above every seq on disk.

use std::collections::VecDeque;

use super::record::SpoolRecord;
use super::state::AckState;

/// The held records, seqs `first_seq..first_seq + records.len()`, oldest first. The oldest
/// is never acknowledged: acknowledged records at the front are dropped at once.
#[derive(Debug, Clone, Default)]
pub(super) struct WriteBehind {
    records: VecDeque<SpoolRecord>,
    first_seq: u64,
    bytes: u64,
}

impl WriteBehind {
    pub(super) fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Encoded bytes held.
    pub(super) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Seq of the oldest record held.
    pub(super) fn first_seq(&self) -> Option<u64> {
        (!self.is_empty()).then_some(self.first_seq)
    }

    pub(super) fn holds(&self, seq: u64) -> bool {
        seq >= self.first_seq && seq - self.first_seq < self.records.len() as u64
    }

    /// Holds `records`, whose seqs start at `first_seq`: the next seqs after those held.
    pub(super) fn push(&mut self, first_seq: u64, records: &[SpoolRecord]) {
        if self.is_empty() {
            self.first_seq = first_seq;
        }
        debug_assert_eq!(first_seq, self.first_seq + self.records.len() as u64);
        for record in records {
            self.bytes += record.encoded_len() as u64;
            self.records.push_back(record.clone());
        }
    }

    /// Gives back the newest `count` records (an append that could not be taken).
    pub(super) fn pop_newest(&mut self, count: usize) {
        for _ in 0..count {
            if let Some(record) = self.records.pop_back() {
                self.bytes -= record.encoded_len() as u64;
            }
        }
    }

    /// Drops the acknowledged records at the front: they never need writing.
    pub(super) fn drop_acknowledged(&mut self, acks: &AckState) {
        while !self.records.is_empty() && acks.is_acked(self.first_seq) {
            if let Some(record) = self.records.pop_front() {
                self.bytes -= record.encoded_len() as u64;
            }
            self.first_seq += 1;
        }
    }

    /// The held records (their payloads shared) and the seq of the first, to be written.
    /// They stay held until [`Self::clear`]: while they are written, the spool's
    /// acknowledgement floor must still see them.
    pub(super) fn to_batch(&self) -> (u64, Vec<SpoolRecord>) {
        (self.first_seq, self.records.iter().cloned().collect())
    }

    /// Forgets every record (they were written).
    pub(super) fn clear(&mut self) {
        self.records.clear();
        self.bytes = 0;
    }

    /// The records held and not acknowledged, with their seqs, oldest first.
    pub(super) fn unacknowledged<'a>(
        &'a self,
        acks: &'a AckState,
    ) -> impl Iterator<Item = (u64, &'a SpoolRecord)> + 'a {
        (self.first_seq..)
            .zip(&self.records)
            .filter(|(seq, _)| !acks.is_acked(*seq))
    }

    /// Takes the records out, with the seq of the first.
    pub(super) fn into_parts(self) -> (u64, VecDeque<SpoolRecord>) {
        (self.first_seq, self.records)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn record(byte: u8) -> SpoolRecord {
        SpoolRecord {
            stream: String::new(),
            kind: 0,
            packet_id: u64::from(byte),
            samples: 1,
            first_time_ns: 1,
            last_time_ns: 1,
            session: 0,
            payload: Bytes::from(vec![byte; 10]),
        }
    }

    #[test]
    fn acknowledged_records_leave_only_from_the_front() {
        let mut held = WriteBehind::default();
        held.push(5, &[record(5), record(6), record(7)]);
        let per_record = record(0).encoded_len() as u64;
        assert_eq!(held.bytes(), 3 * per_record);
        assert!(held.holds(5) && held.holds(7) && !held.holds(4) && !held.holds(8));
        let mut acks = AckState::default();
        acks.insert(6);
        held.drop_acknowledged(&acks);
        assert_eq!(held.first_seq(), Some(5), "5 still waits");
        let waiting: Vec<u64> = held.unacknowledged(&acks).map(|(seq, _)| seq).collect();
        assert_eq!(waiting, vec![5, 7]);
        acks.insert(5);
        held.drop_acknowledged(&acks);
        assert_eq!(held.first_seq(), Some(7));
        assert_eq!(held.bytes(), per_record);
        held.pop_newest(1);
        assert!(held.is_empty());
        assert_eq!(held.bytes(), 0);
    }
}
