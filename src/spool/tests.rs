//! Spool tests through the public API (plus the clock-taking internals for `max_age`):
//! round trips, crashes, damage, bounds, write failures and a model-based property test.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use proptest::prelude::*;
use tempfile::TempDir;

use super::segment::segment_path;
use super::*;

/// Small segments so a few records span several files; no fsync, to keep tests fast.
fn small() -> SpoolConfig {
    SpoolConfig {
        segment_bytes: 1024,
        max_bytes: 1 << 30,
        max_age: None,
        sync: SyncPolicy::Never,
        write_behind_bytes: 0,
    }
}

/// [`small`] with write-behind holding two records (of 356 or 363 bytes) and not three.
fn held_back() -> SpoolConfig {
    SpoolConfig {
        write_behind_bytes: 800,
        ..small()
    }
}

fn segment_files(dir: &Path) -> usize {
    fs::read_dir(dir)
        .expect("lists")
        .filter(|entry| {
            let name = entry.as_ref().expect("entry").file_name();
            segment::parse_segment_name(&name.to_string_lossy()).is_some()
        })
        .count()
}

/// Record `i`: 300 payload bytes (a 1024-byte segment holds three), `i` samples.
fn rec(i: u64) -> SpoolRecord {
    SpoolRecord {
        stream: if i.is_multiple_of(2) {
            String::new()
        } else {
            "chassis".into()
        },
        kind: (i % 7) as u8,
        packet_id: 1000 + i,
        samples: i as u32,
        first_time_ns: i * 1_000,
        last_time_ns: i * 1_000 + 999,
        session: (i % 3) as u32,
        payload: Bytes::from(vec![i as u8; 300]),
    }
}

fn open(dir: &Path, config: SpoolConfig) -> (Spool, Recovery) {
    Spool::open(dir, config).expect("opens")
}

fn pending_seqs(spool: &Spool) -> Vec<u64> {
    spool.pending().map(|p| p.expect("readable").seq).collect()
}

/// Asserts that `pending` yields exactly records `rec(seq)` at `seqs`, in order.
fn assert_pending_records(spool: &Spool, seqs: &[u64]) {
    let pending: Vec<_> = spool.pending().map(|p| p.expect("readable")).collect();
    let expected: Vec<_> = seqs
        .iter()
        .map(|&seq| PendingRecord {
            seq,
            record: rec(seq),
        })
        .collect();
    assert_eq!(pending, expected);
}

fn append_all(spool: &mut Spool, ids: impl IntoIterator<Item = u64>) -> Vec<u64> {
    ids.into_iter()
        .map(|i| spool.append(&rec(i)).expect("appends"))
        .collect()
}

#[test]
fn append_ack_reopen_round_trip() {
    let dir = TempDir::new().expect("tempdir");
    let (mut spool, recovery) = open(dir.path(), small());
    assert_eq!(recovery, Recovery::default());
    let seqs = append_all(&mut spool, 1..=10);
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
    assert!(spool.stats().segments >= 3, "{:?}", spool.stats());
    for seq in [1, 2, 3, 7] {
        assert!(spool.ack(seq));
    }
    assert!(!spool.ack(2), "second ack of the same seq");
    assert!(!spool.ack(99), "never appended");
    spool.close().expect("closes");

    let (spool, recovery) = open(dir.path(), small());
    assert_eq!(recovery.records_pending, 6);
    assert_eq!(recovery.samples_pending, 4 + 5 + 6 + 8 + 9 + 10);
    assert_eq!(recovery.oldest_time_ns, Some(4_000));
    assert_eq!(recovery.newest_time_ns, Some(10_999));
    assert_eq!((recovery.corrupt_records, recovery.truncated_bytes), (0, 0));
    assert_pending_records(&spool, &[4, 5, 6, 8, 9, 10]);
    let from_8: Vec<_> = spool.pending_from(8).map(|p| p.expect("ok").seq).collect();
    assert_eq!(from_8, vec![8, 9, 10]);
    // Segment [1,2,3] was fully acknowledged and deleted.
    assert!(!segment_path(dir.path(), 1).exists());
}

#[test]
fn crash_loses_no_append_and_redelivers_unsynced_acks() {
    let dir = TempDir::new().expect("tempdir");
    let config = SpoolConfig {
        sync: SyncPolicy::Every(Duration::from_secs(3600)),
        ..small()
    };
    let (mut spool, _) = open(dir.path(), config.clone());
    append_all(&mut spool, 1..=5);
    spool.sync().expect("syncs");
    spool.ack(1);
    spool.ack(4);
    drop(spool); // SIGKILL: no close, and the interval has not passed since the sync.

    let (mut spool, recovery) = open(dir.path(), config.clone());
    assert_eq!(
        recovery.records_pending, 5,
        "acks after the last sync come back"
    );
    assert_eq!(pending_seqs(&spool), vec![1, 2, 3, 4, 5]);
    spool.ack(2);
    spool.sync().expect("syncs");
    spool.ack(3);
    drop(spool);

    let (spool, _) = open(dir.path(), config);
    assert_eq!(pending_seqs(&spool), vec![1, 3, 4, 5]);
}

/// [`small`] whose interval sync every call finds due: a background sync is always running
/// or due.
fn always_due() -> SpoolConfig {
    SpoolConfig {
        sync: SyncPolicy::Every(Duration::ZERO),
        ..small()
    }
}

#[test]
fn background_interval_syncs_keep_acks_in_order_and_lose_nothing() {
    let dir = TempDir::new().expect("tempdir");
    let config = always_due();
    let (mut spool, _) = open(dir.path(), config.clone());
    let seqs = append_all(&mut spool, 1..=30);
    for seq in seqs.iter().filter(|seq| *seq % 2 == 1) {
        assert!(spool.ack(*seq));
    }
    // Waits for the background sync, then writes the latest acks itself: an older acks file
    // written after it would bring the odd seqs back.
    spool.sync().expect("syncs");
    assert_eq!(spool.stats().write_failures, 0);
    drop(spool);
    let (mut spool, _) = open(dir.path(), config.clone());
    let evens: Vec<u64> = (2..=30).step_by(2).collect();
    assert_eq!(pending_seqs(&spool), evens);

    // A crash while syncs run in the background: every unacknowledged record is still there.
    let later = append_all(&mut spool, 31..=40);
    for seq in &later[..5] {
        spool.ack(*seq);
    }
    drop(spool);
    let (spool, _) = open(dir.path(), config);
    let pending = pending_seqs(&spool);
    for seq in evens.iter().chain(&later[5..]) {
        assert!(pending.contains(seq), "seq {seq} lost: {pending:?}");
    }
}

#[test]
fn a_failing_background_acks_write_is_counted_and_written_again() {
    let dir = TempDir::new().expect("tempdir");
    let config = always_due();
    let (mut spool, _) = open(dir.path(), config.clone());
    // A folder where the acks file is written first: every rewrite fails.
    let blocker = dir.path().join("acks.tmp");
    fs::create_dir(&blocker).expect("blocker");
    let seqs = append_all(&mut spool, 1..=6);
    for seq in &seqs[..4] {
        spool.ack(*seq);
    }
    assert!(spool.sync().is_err(), "the inline rewrite fails too");
    // `sync()` reports its own failure as an error; the count comes from the sync thread.
    assert!(
        spool.stats().write_failures >= 1,
        "the background failure is counted"
    );
    fs::remove_dir(&blocker).expect("unblock");
    spool.sync().expect("written again once possible");
    drop(spool);
    let (spool, _) = open(dir.path(), config);
    assert_eq!(pending_seqs(&spool), seqs[4..].to_vec());
}

#[test]
fn out_of_order_acks_delete_segments_when_complete() {
    let dir = TempDir::new().expect("tempdir");
    let (mut spool, _) = open(dir.path(), small());
    append_all(&mut spool, 1..=7);
    let before = spool.stats().segments;
    for seq in [5, 3, 6, 1] {
        assert!(spool.ack(seq));
    }
    let stats = spool.stats();
    assert_eq!(stats.records_pending, 3);
    assert_eq!(stats.acknowledged, 4);
    assert_eq!(pending_seqs(&spool), vec![2, 4, 7]);
    assert_eq!(stats.segments, before, "no segment complete yet");
    assert!(spool.ack(4));
    // Segment [4,5,6] is complete and sealed: deleted while [1,2,3] still waits for 2.
    assert_eq!(spool.stats().segments, before - 1);
    assert!(spool.ack(2));
    assert!(spool.ack(7));
    let stats = spool.stats();
    assert_eq!((stats.records_pending, stats.samples_pending), (0, 0));
    spool.close().expect("closes");
    let (spool, recovery) = open(dir.path(), small());
    assert_eq!(recovery.records_pending, 0);
    assert_eq!(spool.stats().segments, 0);
}

#[test]
fn flipped_byte_mid_segment_costs_exactly_that_record() {
    let dir = TempDir::new().expect("tempdir");
    let config = SpoolConfig {
        segment_bytes: 1 << 20,
        ..small()
    };
    let (mut spool, _) = open(dir.path(), config.clone());
    append_all(&mut spool, 1..=5);
    spool.close().expect("closes");
    let path = segment_path(dir.path(), 1);
    let mut bytes = fs::read(&path).expect("reads");
    let record_len = rec(3).encoded_len();
    bytes[16 + 2 * record_len + 100] ^= 0x5A;
    fs::write(&path, bytes).expect("writes");

    let (spool, recovery) = open(dir.path(), config);
    assert_eq!(recovery.corrupt_records, 1);
    assert_eq!(recovery.truncated_bytes, 0);
    assert_eq!(recovery.records_pending, 4);
    assert_eq!(pending_seqs(&spool), vec![1, 2, 4, 5]);
    assert_eq!(spool.stats().corrupt_records, 1);
}

#[test]
fn truncated_tail_is_counted_and_seqs_continue() {
    let dir = TempDir::new().expect("tempdir");
    let config = SpoolConfig {
        segment_bytes: 1 << 20,
        ..small()
    };
    let (mut spool, _) = open(dir.path(), config.clone());
    append_all(&mut spool, 1..=3);
    spool.close().expect("closes");
    let path = segment_path(dir.path(), 1);
    let len = fs::metadata(&path).expect("exists").len();
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_len(len - 10))
        .expect("truncates");

    let (mut spool, recovery) = open(dir.path(), config.clone());
    assert_eq!(recovery.truncated_bytes, rec(3).encoded_len() as u64 - 10);
    assert_eq!(recovery.corrupt_records, 0);
    assert_eq!(pending_seqs(&spool), vec![1, 2]);
    assert_eq!(
        spool.append(&rec(4)).expect("appends"),
        4,
        "seq 3 is never reused"
    );
    spool.close().expect("closes");
    let (spool, _) = open(dir.path(), config);
    assert_eq!(pending_seqs(&spool), vec![1, 2, 4]);
}

#[test]
fn seqs_continue_after_everything_was_acknowledged() {
    let dir = TempDir::new().expect("tempdir");
    let (mut spool, _) = open(dir.path(), small());
    for seq in append_all(&mut spool, 1..=4) {
        spool.ack(seq);
    }
    spool.close().expect("closes");
    let (mut spool, recovery) = open(dir.path(), small());
    assert_eq!(recovery.records_pending, 0);
    assert_eq!(spool.append(&rec(5)).expect("appends"), 5);
    assert_eq!(
        spool.append_batch(&[rec(6), rec(7)]).expect("appends"),
        6..8
    );
}

#[test]
fn max_bytes_drops_oldest_segments_and_counts() {
    let dir = TempDir::new().expect("tempdir");
    let config = SpoolConfig {
        max_bytes: 4096,
        ..small()
    };
    let (mut spool, _) = open(dir.path(), config.clone());
    append_all(&mut spool, 1..=30);
    spool.ack(30);
    let stats = spool.stats();
    assert!(stats.bytes_on_disk <= 4096, "{stats:?}");
    let pending = pending_seqs(&spool);
    let first = pending[0];
    assert!(first > 1, "oldest dropped");
    assert_eq!(
        pending,
        (first..30).collect::<Vec<_>>(),
        "a contiguous newest run"
    );
    assert_eq!(stats.dropped_records, first - 1);
    assert_eq!(stats.dropped_samples, (1..first).sum::<u64>());
    assert_eq!(stats.records_pending + stats.dropped_records + 1, 30);
    assert!(!spool.ack(1), "a dropped record cannot be acknowledged");
}

#[test]
fn dropping_a_partly_acknowledged_segment_counts_only_its_pending_records() {
    let dir = TempDir::new().expect("tempdir");
    let config = SpoolConfig {
        max_bytes: 4096,
        ..small()
    };
    let (mut spool, _) = open(dir.path(), config);
    append_all(&mut spool, 1..=3);
    spool.ack(2);
    append_all(&mut spool, 4..=12);
    let stats = spool.stats();
    assert_eq!(pending_seqs(&spool)[0], 4);
    assert_eq!((stats.dropped_records, stats.dropped_samples), (2, 1 + 3));
}

#[test]
fn max_age_drops_segments_last_written_too_long_ago() {
    let dir = TempDir::new().expect("tempdir");
    let config = SpoolConfig {
        max_age: Some(Duration::from_secs(3600)),
        ..small()
    };
    let (mut spool, _) = open(dir.path(), config);
    let t0 = Now {
        mono: Instant::now(),
        wall: SystemTime::now(),
    };
    for i in 1..=6 {
        spool.append_batch_at(&[rec(i)], t0).expect("appends");
    }
    let later = Now {
        mono: t0.mono,
        wall: t0.wall + Duration::from_secs(2 * 3600),
    };
    spool.append_batch_at(&[rec(7)], later).expect("appends");
    let stats = spool.stats();
    assert_eq!(pending_seqs(&spool), vec![7]);
    assert_eq!(stats.dropped_records, 6);
    assert_eq!(stats.dropped_samples, 21);
    assert_eq!(stats.segments, 1);
}

#[test]
fn disk_full_is_a_typed_error_and_the_spool_recovers() {
    // A real full device: the next segment's name points at /dev/full (ENOSPC on write).
    let full = Path::new("/dev/full");
    assert!(full.exists(), "Linux provides /dev/full");
    let dir = TempDir::new().expect("tempdir");
    let (mut spool, _) = open(dir.path(), small());
    let path = segment_path(dir.path(), 1);
    std::os::unix::fs::symlink(full, &path).expect("symlinks");
    for attempt in 1..=2 {
        match spool.append(&rec(1)) {
            Err(SpoolError::Full { path: failed, .. }) => assert_eq!(failed, path),
            other => panic!("expected Full, got {other:?}"),
        }
        assert_eq!(spool.stats().write_failures, attempt);
    }
    assert_eq!(spool.stats().appended, 0);
    fs::remove_file(&path).expect("space frees");
    assert_eq!(
        spool.append(&rec(1)).expect("appends"),
        1,
        "no seq consumed"
    );
    assert_eq!(spool.append(&rec(2)).expect("appends"), 2);
    spool.close().expect("closes");
    let (spool, recovery) = open(dir.path(), small());
    assert_eq!(recovery.corrupt_records + recovery.truncated_bytes, 0);
    assert_eq!(pending_seqs(&spool), vec![1, 2]);
}

#[test]
fn oversized_records_are_refused_without_consuming_a_seq() {
    let dir = TempDir::new().expect("tempdir");
    let (mut spool, _) = open(
        dir.path(),
        SpoolConfig {
            max_bytes: 2048,
            ..small()
        },
    );
    let big = SpoolRecord {
        payload: Bytes::from(vec![0; 4096]),
        ..rec(1)
    };
    assert!(matches!(
        spool.append(&big),
        Err(SpoolError::TooLarge { .. })
    ));
    assert_eq!(spool.append(&rec(1)).expect("appends"), 1);
}

#[test]
fn session_journal_keeps_the_latest_state_per_index() {
    let dir = TempDir::new().expect("tempdir");
    let (mut spool, _) = open(dir.path(), small());
    let session = |index, state| SessionRecord {
        index,
        session_key: format!("key-{index}"),
        data_source: "car".into(),
        streams: vec!["".into(), "chassis".into()],
        state,
        opaque: Bytes::from_static(b"config"),
    };
    spool
        .put_session(session(0, SessionState::Open))
        .expect("puts");
    spool
        .put_session(session(1, SessionState::Open))
        .expect("puts");
    spool
        .put_session(session(0, SessionState::Ended))
        .expect("puts");
    drop(spool);
    let (mut spool, recovery) = open(dir.path(), small());
    assert_eq!(
        recovery.sessions,
        vec![
            session(0, SessionState::Ended),
            session(1, SessionState::Open)
        ]
    );
    spool.forget_session(0).expect("forgets");
    drop(spool);
    let (spool, _) = open(dir.path(), small());
    assert_eq!(
        spool.sessions().map(|s| s.index).collect::<Vec<_>>(),
        vec![1]
    );
}

#[test]
fn default_max_bytes_holds_thirty_minutes_of_a_million_samples_per_second() {
    // An 8-channel row of non-zero doubles plus its 8-byte timestamp, as batch.rs encodes it.
    let row = [1.5f64; 8];
    let per_sample = (open_streaming::rows::encoded_row_len(&row) + 8) as f64 / 8.0;
    assert!((14.0..15.0).contains(&per_sample), "{per_sample}");
    // Plus the spool header per 16 KiB record and the Packet envelope (~60 bytes each).
    let overhead = 1.0 + (56.0 + 60.0) / 16384.0;
    let needed = 1_800.0 * 1e6 * per_sample * overhead;
    let default = SpoolConfig::default().max_bytes as f64;
    assert!(default >= needed, "{default} < {needed}");
    assert!(default < needed * 1.1, "not grossly oversized");
}

/// The live pending records, after checking that every outstanding record missing from
/// them was counted as dropped since the last call (and forgetting those).
fn forget_dropped(
    spool: &Spool,
    outstanding: &mut std::collections::BTreeMap<u64, u64>,
    dropped_before: &mut u64,
) -> Result<Vec<PendingRecord>, TestCaseError> {
    let live: Vec<_> = spool.pending().map(|p| p.expect("readable")).collect();
    let dropped = spool.stats().dropped_records - *dropped_before;
    *dropped_before += dropped;
    let missing: Vec<u64> = outstanding
        .keys()
        .filter(|seq| !live.iter().any(|p| p.seq == **seq))
        .copied()
        .collect();
    prop_assert_eq!(
        missing.len() as u64,
        dropped,
        "gone uncounted: {:?}",
        missing
    );
    for seq in missing {
        outstanding.remove(&seq);
    }
    Ok(live)
}

/// One step of the property test.
#[derive(Debug, Clone)]
enum Op {
    Append(usize),
    /// Acknowledge the n-th (modulo) outstanding seq.
    Ack(usize),
    Sync,
    /// Reopen, cleanly (`close`) or as after SIGKILL (drop).
    Reopen {
        clean: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1usize..4).prop_map(Op::Append),
        4 => any::<usize>().prop_map(Op::Ack),
        1 => Just(Op::Sync),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// No loss, no duplicates, order kept: after any sequence of appends, acks and reopens,
    /// `pending` yields every appended record not acknowledged, exactly once, in seq order.
    /// After a crash, acks since the last sync may come back, and nothing else.
    /// With write-behind, a crash loses the records held in memory (by design: only a spool
    /// no later run resumes holds any), and nothing else. Under a tight `max_bytes` whole
    /// segments are dropped: every record that leaves without an ack is counted as dropped.
    #[test]
    fn pending_matches_a_simple_model(
        ops in prop::collection::vec(op(), 1..40),
        layout in 0usize..4,
    ) {
        let dir = TempDir::new().expect("tempdir");
        let tight = |config: SpoolConfig| SpoolConfig {
            segment_bytes: 2048,
            max_bytes: 2048,
            ..config
        };
        let config = match layout {
            0 => small(),
            1 => held_back(),
            2 => tight(small()),
            _ => tight(held_back()),
        };
        let write_behind = config.write_behind_bytes > 0;
        let (mut spool, _) = open(dir.path(), config.clone());
        // Records the size bound dropped, as the spool counted them since it was opened.
        let mut dropped_before = 0;
        // seq -> record id, for appended and not (durably or volatilely) acknowledged.
        let mut outstanding = std::collections::BTreeMap::new();
        // Acks not yet synced: may reappear after a crash.
        let mut volatile = std::collections::BTreeMap::new();
        let mut next_id = 1u64;
        for op in ops {
            match op {
                Op::Append(n) => {
                    let batch: Vec<_> = (next_id..next_id + n as u64).map(rec).collect();
                    let seqs = spool.append_batch(&batch).expect("appends");
                    for (seq, id) in seqs.zip(next_id..) {
                        outstanding.insert(seq, id);
                    }
                    next_id += n as u64;
                }
                Op::Ack(pick) if !outstanding.is_empty() => {
                    let seq = *outstanding.keys().nth(pick % outstanding.len()).expect("non-empty");
                    prop_assert!(spool.ack(seq));
                    let id = outstanding.remove(&seq).expect("present");
                    volatile.insert(seq, id);
                }
                Op::Ack(_) => {}
                Op::Sync => {
                    spool.sync().expect("syncs");
                    volatile.clear();
                }
                Op::Reopen { clean } => {
                    if clean {
                        // Writing what write-behind holds may drop the oldest segments to make
                        // room: done first, so that the drops are seen and counted.
                        spool.sync().expect("syncs");
                        forget_dropped(&spool, &mut outstanding, &mut dropped_before)?;
                        spool.close().expect("closes");
                        volatile.clear();
                    } else {
                        let held: Vec<u64> =
                            spool.behind.unacknowledged(&spool.acks).map(|(seq, _)| seq).collect();
                        prop_assert!(write_behind || held.is_empty());
                        for seq in held {
                            outstanding.remove(&seq);
                        }
                        drop(spool);
                    }
                    let (reopened, recovery) = open(dir.path(), config.clone());
                    spool = reopened;
                    dropped_before = 0;
                    prop_assert_eq!(recovery.corrupt_records, 0);
                    let pending: Vec<_> =
                        spool.pending().map(|p| p.expect("readable")).collect();
                    let seqs: Vec<u64> = pending.iter().map(|p| p.seq).collect();
                    prop_assert!(seqs.windows(2).all(|w| w[0] < w[1]), "order {:?}", seqs);
                    for p in &pending {
                        let id = outstanding.get(&p.seq).or(volatile.get(&p.seq));
                        let expected = id.map(|&i| rec(i));
                        prop_assert_eq!(Some(&p.record), expected.as_ref());
                    }
                    for seq in outstanding.keys() {
                        prop_assert!(seqs.contains(seq), "lost {} in {:?}", seq, seqs);
                    }
                    // Redelivered acks are outstanding again; the rest stay acknowledged.
                    for p in &pending {
                        if let Some(id) = volatile.remove(&p.seq) {
                            outstanding.insert(p.seq, id);
                        }
                    }
                    volatile.clear();
                    prop_assert_eq!(recovery.records_pending, outstanding.len() as u64);
                }
            }
            // Live, too: exactly the records appended and neither acknowledged nor counted as
            // dropped, in seq order.
            let live = forget_dropped(&spool, &mut outstanding, &mut dropped_before)?;
            let expected: Vec<_> = outstanding
                .iter()
                .map(|(&seq, &id)| PendingRecord { seq, record: rec(id) })
                .collect();
            prop_assert_eq!(live, expected);
            prop_assert_eq!(spool.stats().records_pending, outstanding.len() as u64);
        }
    }
}

#[test]
fn write_behind_writes_nothing_the_server_takes_in_time() {
    let dir = TempDir::new().expect("tempdir");
    let (mut spool, _) = open(dir.path(), held_back());
    for i in 1..=20 {
        let seq = spool.append(&rec(i)).expect("appends");
        assert_eq!(seq, i);
        let stats = spool.stats();
        assert_eq!((stats.records_pending, stats.samples_pending), (1, i));
        assert_eq!(stats.oldest_pending_time_ns, Some(i * 1_000));
        assert!(spool.ack(seq));
        assert!(!spool.ack(seq), "second ack of the same seq");
    }
    let stats = spool.stats();
    assert_eq!((stats.appended, stats.acknowledged), (20, 20));
    assert_eq!((stats.records_pending, stats.bytes_on_disk), (0, 0));
    assert_eq!(segment_files(dir.path()), 0, "no record reached the disk");
    spool.close().expect("closes");
    let (mut spool, recovery) = open(dir.path(), held_back());
    assert_eq!(recovery.records_pending, 0);
    assert_eq!(spool.append(&rec(21)).expect("appends"), 21, "seqs go on");
}

#[test]
fn write_behind_past_its_bound_writes_in_order_and_pending_reads_disk_then_memory() {
    let dir = TempDir::new().expect("tempdir");
    let (mut spool, _) = open(dir.path(), held_back());
    append_all(&mut spool, 1..=2);
    assert_eq!(segment_files(dir.path()), 0, "two records fit");
    assert!(
        spool.ack(2),
        "acknowledged while held, behind an unacknowledged one"
    );
    append_all(&mut spool, 3..=8);
    assert!(spool.stats().bytes_on_disk > 0, "the bound was passed");
    assert!(spool.ack(7));
    assert_pending_records(&spool, &[1, 3, 4, 5, 6, 8]);
    assert_eq!(
        spool
            .pending_from(5)
            .map(|p| p.expect("ok").seq)
            .collect::<Vec<_>>(),
        vec![5, 6, 8]
    );
    let stats = spool.stats();
    assert_eq!(stats.records_pending, 6);
    assert_eq!(stats.samples_pending, 1 + 3 + 4 + 5 + 6 + 8);
    assert_eq!(stats.oldest_pending_time_ns, Some(1_000));
    spool.close().expect("closes: what is held is written");
    let (spool, recovery) = open(dir.path(), held_back());
    assert_eq!(recovery.records_pending, 6);
    assert_eq!(recovery.corrupt_records, 0);
    assert_eq!(pending_seqs(&spool), vec![1, 3, 4, 5, 6, 8]);
}

#[test]
fn write_behind_making_room_for_what_it_held_keeps_every_held_record_pending() {
    // One segment of records 1–3, all acknowledged and still open; writing 4–6 then needs its
    // room under `max_bytes`, so that segment is deleted first: the acknowledgement floor it
    // leaves must stop below the held records.
    let config = SpoolConfig {
        segment_bytes: 2048,
        max_bytes: 2048,
        ..held_back()
    };
    let dir = TempDir::new().expect("tempdir");
    let (mut spool, _) = open(dir.path(), config.clone());
    append_all(&mut spool, 1..=3);
    assert_eq!(segment_files(dir.path()), 1);
    for seq in 1..=3 {
        assert!(spool.ack(seq));
    }
    append_all(&mut spool, 4..=6);
    assert_eq!(
        spool.stats().dropped_records,
        0,
        "only acknowledged records went"
    );
    assert_eq!(pending_seqs(&spool), vec![4, 5, 6]);
    assert_eq!(spool.stats().records_pending, 3);
    spool.close().expect("closes");
    let (spool, _) = open(dir.path(), config);
    assert_eq!(pending_seqs(&spool), vec![4, 5, 6]);
}

#[test]
fn write_behind_on_a_full_disk_refuses_the_append_and_keeps_what_it_held() {
    let dir = TempDir::new().expect("tempdir");
    let (mut spool, _) = open(dir.path(), held_back());
    append_all(&mut spool, 1..=2);
    std::os::unix::fs::symlink("/dev/full", segment_path(dir.path(), 1)).expect("symlinks");
    match spool.append(&rec(3)) {
        Err(SpoolError::Full { .. }) => {}
        other => panic!("expected Full, got {other:?}"),
    }
    let stats = spool.stats();
    assert_eq!((stats.appended, stats.write_failures), (2, 1));
    assert_eq!(pending_seqs(&spool), vec![1, 2], "held records still wait");
    fs::remove_file(segment_path(dir.path(), 1)).expect("space frees");
    assert_eq!(
        spool.append(&rec(3)).expect("appends"),
        3,
        "no seq consumed"
    );
    spool.close().expect("closes");
    let (spool, _) = open(dir.path(), held_back());
    let pending: Vec<_> = spool.pending().map(|p| p.expect("readable")).collect();
    assert_eq!(
        pending
            .iter()
            .map(|p| (p.seq, p.record.packet_id))
            .collect::<Vec<_>>(),
        vec![(1, 1001), (2, 1002), (3, 1003)]
    );
}

#[test]
fn a_second_process_cannot_open_a_spool_in_use() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (first, _) = Spool::open(dir.path(), SpoolConfig::default()).expect("opens");
    let second = Spool::open(dir.path(), SpoolConfig::default());
    let Err(error) = second else {
        panic!("refused while the first is open")
    };
    assert!(matches!(error, SpoolError::Locked { .. }), "{error}");
    assert!(
        error.to_string().contains("in use by another process"),
        "{error}"
    );
    drop(first);
    Spool::open(dir.path(), SpoolConfig::default()).expect("free again once the first is gone");
}
