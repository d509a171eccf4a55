//! Which `Packet.id`s one (session, stream) has already had accepted, so a redelivered packet is
//! told apart from new data and from an id reused for other content.
//!
//! A producer that keeps unacknowledged packets and re-sends them after a reconnect (rule 48: OK
//! of the unary write is the only acknowledgement) makes the server see the same packet twice.
//! Ids are numbered upwards (rule 45), so the seen set is kept as a few disjoint ranges, not one
//! entry per id; memory stays bounded by [`MAX_RANGES`] and [`RECENT`] whatever the traffic.
//! Sans-IO and deterministic: the server's replay and `inspect` rebuild the same answers.

use std::collections::{BTreeMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};

use open_streaming::open_data;

/// Most disjoint id ranges kept per (session, stream); above it the lowest range is forgotten
/// (a redelivery that old then counts as new). Contiguous numbering keeps one range.
pub const MAX_RANGES: usize = 4096;
/// How many of the latest accepted ids keep a content fingerprint. A producer re-sends only its
/// unacknowledged tail, so a repeated id is compared with what it carried when it is this recent;
/// an older repeated id is taken as a redelivery on its id alone.
pub const RECENT: usize = 1024;

/// What a packet's id means for its (session, stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Not accepted before, and above the last new id.
    New,
    /// Not accepted before, but at or below the last new id (`last`): out of order (B13).
    Late {
        /// The id of the previous new packet.
        last: u64,
    },
    /// Accepted before with the same content: a redelivery, counted and not checked again.
    Duplicate,
    /// Accepted before with other content: a reused id, checked as new data and flagged (B13).
    Reused,
}

/// The seen ids of one (session, stream).
#[derive(Debug, Clone, Default)]
pub struct SeenIds {
    /// Disjoint inclusive ranges `start → end` of accepted ids.
    ranges: BTreeMap<u64, u64>,
    /// `(id, fingerprint)` of the latest [`RECENT`] accepted packets, oldest first.
    recent: VecDeque<(u64, u64)>,
    /// The id of the previous new packet (B13 compares against it).
    last: Option<u64>,
}

impl SeenIds {
    /// Classifies `packet` and, unless it is a [`Seen::Duplicate`], remembers it as accepted.
    pub fn handle(&mut self, packet: &open_data::Packet) -> Seen {
        let (id, print) = (packet.id, fingerprint(packet));
        if self.contains(id) {
            // The latest content sent under this id is what a redelivery repeats.
            let last_print = self.recent.iter().rev().find(|(i, _)| *i == id);
            if last_print.is_none_or(|(_, p)| *p == print) {
                return Seen::Duplicate;
            }
            self.remember(id, print);
            return Seen::Reused;
        }
        let seen = match self.last {
            Some(last) if id <= last => Seen::Late { last },
            _ => Seen::New,
        };
        self.insert(id);
        self.remember(id, print);
        self.last = Some(id);
        seen
    }

    /// Whether `id` was accepted (and not yet forgotten).
    pub fn contains(&self, id: u64) -> bool {
        self.ranges
            .range(..=id)
            .next_back()
            .is_some_and(|(_, end)| *end >= id)
    }

    /// Number of disjoint ranges kept (1 for gap-free numbering).
    #[cfg(test)]
    pub fn ranges(&self) -> usize {
        self.ranges.len()
    }

    fn remember(&mut self, id: u64, print: u64) {
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back((id, print));
    }

    /// Adds an id not yet contained, merging it with the ranges it touches.
    fn insert(&mut self, id: u64) {
        let before = self
            .ranges
            .range(..id)
            .next_back()
            .map(|(s, e)| (*s, *e))
            // `e < id` (id is not contained), so `e + 1` cannot overflow.
            .filter(|(_, e)| e + 1 == id);
        let after = id
            .checked_add(1)
            .and_then(|n| self.ranges.get(&n).map(|e| (n, *e)));
        match (before, after) {
            (Some((start, _)), Some((next, end))) => {
                self.ranges.remove(&next);
                self.ranges.insert(start, end);
            }
            (Some((start, _)), None) => {
                self.ranges.insert(start, id);
            }
            (None, Some((next, end))) => {
                self.ranges.remove(&next);
                self.ranges.insert(id, end);
            }
            (None, None) => {
                self.ranges.insert(id, id);
                if self.ranges.len() > MAX_RANGES {
                    self.ranges.pop_first();
                }
            }
        }
    }
}

/// A hash of what a packet carries (type, content, essential flag, key), not of its id.
fn fingerprint(packet: &open_data::Packet) -> u64 {
    // DefaultHasher::new() has fixed keys, so replay in the same build gives the same prints.
    // The content, the only large part (up to 4 MiB per packet), goes in as its CRC-32C and
    // length: SipHash over every byte cost the server more than checking the packet's rules.
    let mut h = DefaultHasher::new();
    packet.r#type.hash(&mut h);
    crc32c::crc32c(&packet.content).hash(&mut h);
    packet.content.len().hash(&mut h);
    packet.is_essential.hash(&mut h);
    packet.session_key.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(id: u64, content: &[u8]) -> open_data::Packet {
        open_data::Packet {
            r#type: "PeriodicData".into(),
            session_key: "k".into(),
            content: content.to_vec().into(),
            id,
            is_essential: false,
        }
    }

    #[test]
    fn redelivery_is_a_duplicate_and_other_content_is_reuse() {
        let mut seen = SeenIds::default();
        assert_eq!(seen.handle(&packet(0, b"a")), Seen::New);
        assert_eq!(seen.handle(&packet(1, b"b")), Seen::New);
        assert_eq!(seen.handle(&packet(1, b"b")), Seen::Duplicate);
        assert_eq!(seen.handle(&packet(0, b"x")), Seen::Reused);
        assert_eq!(seen.handle(&packet(3, b"d")), Seen::New);
        assert_eq!(seen.handle(&packet(2, b"c")), Seen::Late { last: 3 });
        assert_eq!(seen.handle(&packet(2, b"c")), Seen::Duplicate);
        assert_eq!(seen.ranges(), 1, "0..=3 merged into one range");
    }

    #[test]
    fn contiguous_ids_keep_one_range_and_gaps_are_bounded() {
        let mut seen = SeenIds::default();
        for id in (0..10_000).rev() {
            seen.handle(&packet(id, b"p"));
        }
        assert_eq!(seen.ranges(), 1);
        assert!(seen.contains(0) && seen.contains(9_999) && !seen.contains(10_000));
        assert!(seen.recent.len() <= RECENT);
        let mut sparse = SeenIds::default();
        for id in 0..(MAX_RANGES as u64 + 10) {
            sparse.handle(&packet(id * 2, b"p"));
        }
        assert_eq!(sparse.ranges(), MAX_RANGES);
        assert!(!sparse.contains(0), "the oldest range was forgotten");
        assert!(sparse.contains(2 * (MAX_RANGES as u64 + 9)));
        assert!(!seen.contains(u64::MAX));
        assert_eq!(seen.handle(&packet(u64::MAX, b"m")), Seen::New);
        assert_eq!(seen.handle(&packet(u64::MAX, b"m")), Seen::Duplicate);
    }
}
