//! Spool benchmarks: append throughput of 4 KiB records under the default sync policy
//! (fdatasync at most every 200 ms), and the recovery scan (`Spool::open` over full segments,
//! every checksum verified). `cargo bench --bench spool` prints MB/s and records/s; the spool
//! lives in a temp dir under `$TMPDIR`, so that is the disk measured.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ecu_bridge::spool::{Spool, SpoolConfig, SpoolRecord, SyncPolicy};
use tempfile::TempDir;

const RECORD: usize = 4096;
/// Records per measured iteration: 16 MiB, about one sync interval at 200 MB/s.
const RECORDS: u64 = 4096;

fn record(i: u64) -> SpoolRecord {
    SpoolRecord {
        stream: String::new(),
        kind: 1,
        packet_id: i,
        samples: 300,
        first_time_ns: i,
        last_time_ns: i + 1,
        session: 0,
        payload: Bytes::from(vec![i as u8; RECORD]),
    }
}

fn append(c: &mut Criterion) {
    let records: Vec<_> = (0..RECORDS).map(record).collect();
    let encoded = records[0].encoded_len() as u64;
    let mut group = c.benchmark_group("spool_append_4k");
    group.sample_size(10);
    // The same sustained loop measured once per unit criterion can print, and once without
    // fdatasync to show what the disk's sync costs.
    for (name, throughput, sync) in [
        (
            "mb_per_s",
            Throughput::Bytes(encoded * RECORDS),
            SpoolConfig::default().sync,
        ),
        (
            "records_per_s",
            Throughput::Elements(RECORDS),
            SpoolConfig::default().sync,
        ),
        (
            "mb_per_s_sync_never",
            Throughput::Bytes(encoded * RECORDS),
            SyncPolicy::Never,
        ),
    ] {
        let dir = TempDir::new().expect("tempdir");
        let config = SpoolConfig {
            sync,
            ..SpoolConfig::default()
        };
        let (mut spool, _) = Spool::open(dir.path(), config).expect("opens");
        group.throughput(throughput);
        group.bench_function(name, |b| {
            b.iter(|| {
                for r in &records {
                    let seq = spool.append(r).expect("appends");
                    // Acknowledged as a server would, so segments are deleted and the disk
                    // use stays flat; rolls and interval syncs fall inside the measurement.
                    spool.ack(black_box(seq));
                }
            })
        });
        assert_eq!(spool.stats().write_failures, 0);
        spool.close().expect("closes");
    }
    group.finish();
}

fn recovery(c: &mut Criterion) {
    let dir = TempDir::new().expect("tempdir");
    let config = SpoolConfig {
        segment_bytes: 8 << 20,
        ..SpoolConfig::default()
    };
    let (mut spool, _) = Spool::open(dir.path(), config.clone()).expect("opens");
    let records: Vec<_> = (0..RECORDS * 4).map(record).collect();
    for r in &records {
        spool.append(r).expect("appends");
    }
    spool.close().expect("closes");
    let bytes: u64 = records.iter().map(|r| r.encoded_len() as u64).sum();
    let mut group = c.benchmark_group("spool_recovery");
    group.throughput(Throughput::Bytes(bytes));
    group.sample_size(10);
    group.bench_function("open_scan_64MiB", |b| {
        b.iter(|| {
            let (spool, recovery) = Spool::open(dir.path(), config.clone()).expect("opens");
            assert_eq!(recovery.records_pending, RECORDS * 4);
            drop(spool);
        })
    });
    group.bench_function("pending_read_64MiB", |b| {
        let (spool, _) = Spool::open(dir.path(), config.clone()).expect("opens");
        b.iter(|| {
            let mut n = 0u64;
            for pending in spool.pending() {
                black_box(pending.expect("reads"));
                n += 1;
            }
            assert_eq!(n, RECORDS * 4);
        })
    });
    group.finish();
}

criterion_group!(benches, append, recovery);
criterion_main!(benches);
