//! Faults of the link and of the spool's disk, with a counter in every CAN frame (ENGINE.RPM =
//! n / 4, as in `outage.rs`): a link slower than the car when the bridge is stopped (what the
//! metrics call published is exactly what the server holds; the rest waits in the spool and the
//! next start delivers it), and a spool whose file system is full (the bridge keeps publishing
//! from memory and counts the failure; the spool gives back the space of what was
//! acknowledged). All on 127.0.0.1, the daemon in-process.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ecu_bridge::config::Config;
use ecu_bridge::daemon::RunError;
use ecu_bridge::spool::{Spool, SpoolConfig, SpoolError, SpoolRecord, SyncPolicy};
use ecu_bridge::telemetry::Metrics;
use stream_api::inspect;

use crate::outage::{Bridge, config, counters, send_at, server, until};
use crate::proxy::Proxy;

/// Frames per millisecond tick: 10 000 frames/s (one ENGINE.RPM sample each).
const FRAMES_PER_TICK: u32 = 10;
/// The slow link: 200 KB/s each way.
const LINK_BYTES_PER_SECOND: u64 = 200_000;

/// Samples per frame of [`wide_counter_config`].
const SAMPLES_PER_FRAME: u64 = 2;

/// Frames (rows of RPM and COOLANT) the Stream API acknowledged.
fn frames_published(metrics: &Metrics) -> u64 {
    let samples = Metrics::get(&metrics.samples_published);
    assert_eq!(samples % SAMPLES_PER_FRAME, 0, "packets carry whole rows");
    samples / SAMPLES_PER_FRAME
}

/// The outage car publishing RPM and COOLANT: counters up to 2^24.
fn wide_counter_config(dir: &Path, endpoint: &str, stop_timeout_ms: u64) -> Config {
    crate::outage::config_of(
        dir,
        endpoint,
        stop_timeout_ms,
        r#"identifier = "slow link""#,
        r#""ENGINE.RPM", "ENGINE.COOLANT""#,
    )
}

/// Every exported figure of `metrics`, one per line.
fn dump(metrics: &Metrics) -> String {
    Metrics::EXPORTED
        .iter()
        .map(|e| format!("{} {}", e.name, Metrics::get((e.field)(metrics))))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits until `metrics` count `at_least` samples published. The limit only catches a hang:
/// the second start of the slow-link test delivers about 370 000 frames, 3.3 s in a debug
/// build on a quiet host and 15.0 s with the host's two cores three times oversubscribed.
async fn until_published(metrics: &Metrics, at_least: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Metrics::get(&metrics.samples_published) < at_least {
        assert!(
            Instant::now() < deadline,
            "{at_least} samples never published:\n{}",
            dump(metrics)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn missing(found: &std::collections::BTreeSet<u64>, to: u64) -> Vec<u64> {
    (0..to).filter(|n| !found.contains(n)).collect()
}

/// Sixty seconds at 10 000 frames/s through a 200 KB/s link (the car needs more), then a stop
/// whose drain cannot finish. Published (acknowledged) samples are exactly the distinct samples
/// the server holds; everything else waits in the spool and the next start delivers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_link_at_stop_publishes_exactly_what_the_server_holds_and_spools_the_rest() {
    // 60 s at 10 000 frames/s: counters past 65 535 carry their high bits in COOLANT.
    const FRAMES: u32 = 600_000;
    const MORE: u32 = 100;
    let dir = tempfile::tempdir().expect("temp dir");
    let record = dir.path().join("server.osrec");
    let first = server("127.0.0.1:0", &record).await;
    let address = first.local_addr();
    let proxy = Proxy::start(address).await.expect("proxy");
    proxy.throttle(LINK_BYTES_PER_SECOND);
    let bridge = Bridge::start(wide_counter_config(dir.path(), &proxy.uri(), 500));
    let metrics = bridge.metrics.clone();
    let started = Instant::now();
    send_at(bridge.udp, 0, FRAMES, FRAMES_PER_TICK).await;
    let sent_in = started.elapsed();
    let up = proxy.bytes_up();
    let published_while_sending = frames_published(&metrics);
    // The link is the bottleneck: the bytes per acknowledged frame, times the car's rate, is
    // more than the link carries, and frames were left waiting.
    let bytes_per_frame = up as f64 / published_while_sending.max(1) as f64;
    let needed = bytes_per_frame * f64::from(FRAMES) / sent_in.as_secs_f64();
    eprintln!(
        "slow link: {FRAMES} frames in {sent_in:.2?}; {up} bytes up ({:.0} B/s, link {LINK_BYTES_PER_SECOND} B/s), \
         {bytes_per_frame:.1} B/frame, the car needs {needed:.0} B/s; {published_while_sending} frames published",
        up as f64 / sent_in.as_secs_f64()
    );
    assert!(
        needed > 1.2 * LINK_BYTES_PER_SECOND as f64,
        "the link must be the bottleneck: {needed:.0} B/s needed"
    );
    assert!(
        published_while_sending < u64::from(FRAMES) * 9 / 10,
        "{published_while_sending} published: the link was not slow"
    );

    // The oldest waiting frame is the first not published (delivery keeps the order): it was
    // sent that long ago. The gauge, in whole seconds, says so within its rounding and the
    // moments between the readings.
    let age = Metrics::get(&metrics.oldest_waiting_age_seconds);
    let expected =
        sent_in.as_secs_f64() - published_while_sending as f64 / f64::from(FRAMES_PER_TICK * 1_000);
    assert!(
        (age as f64 - expected).abs() <= 2.0,
        "the oldest waiting sample is {age} s old by the gauge, {expected:.1} s in truth"
    );
    // Every frame in the pipeline before the stop, so that the stop loses none.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Metrics::get(&metrics.rows_decoded) < u64::from(FRAMES) {
        assert!(
            Instant::now() < deadline,
            "frames lost:\n{}",
            dump(&metrics)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Stop with 500 ms to drain: the backlog cannot cross the link in time.
    let outcome = bridge.finish().await;
    assert!(
        matches!(outcome, Err(RunError::DrainTimeout(_))),
        "{outcome:?}"
    );
    let published = frames_published(&metrics);
    assert_eq!(
        Metrics::get(&metrics.rows_decoded),
        u64::from(FRAMES),
        "every frame reached the first run:\n{}",
        dump(&metrics)
    );
    first.shutdown().await.expect("server stops");
    let (found, samples) = counters(&[&record]);
    eprintln!(
        "at stop: {published} frames published, the server holds {} distinct ({samples} frames), \
         {} wait",
        found.len(),
        u64::from(FRAMES) - published
    );
    // Acknowledged ⇔ held: every published sample is on the server, in order (one call at a
    // time, in spool order), and nothing more: at the stop timeout the drain starts no further
    // call and waits for the answer of the one in flight, so no OK is lost.
    let held = found.len() as u64;
    let lost = missing(&found, published);
    assert!(lost.is_empty(), "acknowledged but not held: {lost:?}");
    assert_eq!(samples, found.len(), "no counter twice");
    assert_eq!(
        held, published,
        "the server holds exactly what was counted as published"
    );
    assert!(
        published < u64::from(FRAMES),
        "something waits in the spool"
    );

    // The next start, the link no longer throttled, delivers what waited into its session.
    let second = server(&address.to_string(), &record).await;
    proxy.throttle(0);
    let resumed = Instant::now();
    let bridge = Bridge::start(wide_counter_config(dir.path(), &proxy.uri(), 20_000));
    send_at(bridge.udp, FRAMES, FRAMES + MORE, FRAMES_PER_TICK).await;
    let metrics = bridge.metrics.clone();
    until_published(
        &metrics,
        SAMPLES_PER_FRAME * (u64::from(FRAMES) - published + u64::from(MORE)),
    )
    .await;
    bridge.finish().await.expect("second run ends cleanly");
    eprintln!(
        "second start delivered {} samples in {:.2?}",
        Metrics::get(&metrics.samples_published),
        resumed.elapsed()
    );
    second.shutdown().await.expect("server stops");

    let (found, _) = counters(&[&record]);
    let lost = missing(&found, u64::from(FRAMES + MORE));
    assert!(
        lost.is_empty(),
        "{} lost: {:?}…",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    let recording = inspect::read_recording(&record).expect("recording");
    assert_eq!(recording.violations(), &[], "{}", recording.summary());
    let duplicates = recording.duplicates();
    assert!(
        duplicates.is_empty(),
        "no packet was sent twice: {duplicates:?}"
    );
}

/// A tmpfs of `bytes` mounted on a folder, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, bytes: u64) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| e.to_string())?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).into_owned());
        }
        Ok(Self(dir.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes `path` until its file system is full.
fn fill(path: &Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).expect("filler");
    let chunk = [0u8; 1024];
    let full = loop {
        if let Err(error) = file.write_all(&chunk) {
            break error;
        }
    };
    assert_eq!(full.raw_os_error(), Some(28), "ENOSPC: {full}");
}

/// On a full file system the spool gives back what it holds: a segment whose every record
/// was acknowledged is deleted at the failed write, and the record is written again into a
/// new segment in the space freed, without waiting for anyone else to free some.
#[test]
fn a_full_disk_takes_the_spools_acknowledged_segment_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spool_dir = dir.path().join("spool");
    let _tmpfs = Tmpfs::mount(&spool_dir, 64 * 1024)
        .expect("mount a 64 KiB tmpfs for the spool (the test runs as root)");
    let record = |i: u64| SpoolRecord {
        stream: String::new(),
        kind: 0,
        packet_id: i,
        samples: 1,
        first_time_ns: i,
        last_time_ns: i,
        session: 0,
        payload: Bytes::from(vec![i as u8; 1000]),
    };
    // No interval sync: its thread would rewrite the acks file on the full disk (another
    // failure to count) at times of its own.
    let config = SpoolConfig {
        sync: SyncPolicy::Never,
        ..SpoolConfig::default()
    };
    let (mut spool, _) = Spool::open(&spool_dir, config.clone()).expect("spool");
    let mut appended = Vec::new();
    let full = loop {
        match spool.append(&record(appended.len() as u64)) {
            Ok(seq) => appended.push(seq),
            Err(error) => break error,
        }
        assert!(appended.len() < 1_000, "a 64 KiB file system fills up");
    };
    assert!(matches!(full, SpoolError::Full { .. }), "{full}");
    assert!(
        appended.len() > 10,
        "{} records before full",
        appended.len()
    );
    assert_eq!(spool.stats().write_failures, 1);
    // Still full while one record waits in the segment.
    let last = appended.pop().expect("one appended");
    for &seq in &appended {
        assert!(spool.ack(seq));
    }
    let waiting = spool.append(&record(1_000));
    assert!(
        matches!(waiting, Err(SpoolError::Full { .. })),
        "{waiting:?}"
    );
    assert_eq!(spool.stats().write_failures, 2);
    // Once it is acknowledged, the segment makes room for the next record.
    assert!(spool.ack(last));
    let seq = spool
        .append(&record(1_001))
        .expect("appended in the space given back");
    let stats = spool.stats();
    assert_eq!(stats.write_failures, 3, "the failed write is still counted");
    assert_eq!((stats.segments, stats.records_pending), (1, 1));
    assert!(stats.bytes_on_disk < 2_000, "{} bytes", stats.bytes_on_disk);
    spool.close().expect("closes");
    let (spool, recovery) = Spool::open(&spool_dir, config).expect("reopens");
    assert_eq!(recovery.corrupt_records, 0);
    let pending: Vec<u64> = spool.pending().map(|p| p.expect("readable").seq).collect();
    assert_eq!(pending, vec![seq]);
}

/// The spool's folder is a 256 KiB tmpfs with 32 KiB left, full within a second. The bridge
/// keeps publishing (the delivery holds the packets in memory), counts the failed writes,
/// keeps the session's order when the server stalls meanwhile and space is freed (packets
/// queued in memory are not overtaken by those the spool takes again), and every sample
/// reaches the server. Once those in memory are delivered, the spool takes packets again: a
/// last stall leaves them waiting on its disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_disk_keeps_publishing_from_memory() {
    const FRAMES: u32 = 6_400;
    let dir = tempfile::tempdir().expect("temp dir");
    // A real file system running out of space (ENOSPC in the middle of a segment), which needs
    // root; the spool's unit tests cover the unprivileged case with a /dev/full segment.
    let _tmpfs = Tmpfs::mount(&dir.path().join("spool"), 256 * 1024)
        .expect("mount a 256 KiB tmpfs for the spool (the test runs as root)");
    // Another file takes all but 32 KiB, and is removed while the server stalls: then there
    // is room for every packet the rest of the run spools.
    let filler = dir.path().join("spool").join("filler");
    std::fs::write(&filler, vec![0u8; 224 * 1024]).expect("filler");
    let record = dir.path().join("server.osrec");
    let stream_api = server("127.0.0.1:0", &record).await;
    let proxy = Proxy::start(stream_api.local_addr()).await.expect("proxy");
    let config: Config = config(dir.path(), &proxy.uri(), 20_000);
    let bridge = Bridge::start(config);
    let metrics = bridge.metrics.clone();
    let started = Instant::now();
    // 2 000 frames/s, 40 samples a packet: the spool fills in about a second.
    send_at(bridge.udp, 0, 3_000, 2).await;
    let failures = Metrics::get(&metrics.spool_write_failures);
    assert!(failures > 0, "the spool's disk is full after 1.5 s");
    let published_at_full = Metrics::get(&metrics.samples_published);
    // The server stalls for a second: packets queue in memory. Half way, space is freed: the
    // spool takes packets again, after those held in memory.
    proxy.pause();
    send_at(bridge.udp, 3_000, 4_000, 2).await;
    std::fs::remove_file(&filler).expect("space freed");
    send_at(bridge.udp, 4_000, 5_000, 2).await;
    proxy.resume().await;
    send_at(bridge.udp, 5_000, 6_000, 2).await;
    // Every packet held in memory delivered: the next ones go to the spool, and wait there
    // while the server stalls again.
    until_published(&metrics, 6_000).await;
    let failures_after_freeing = Metrics::get(&metrics.spool_write_failures);
    let spooled_before = Metrics::get(&metrics.spool_bytes);
    proxy.pause();
    send_at(bridge.udp, 6_000, FRAMES, 2).await;
    until("the spool takes packets again once space is freed", || {
        Metrics::get(&metrics.spool_bytes) > spooled_before
    })
    .await;
    let spooled_stalled = Metrics::get(&metrics.spool_bytes);
    proxy.resume().await;
    until_published(&metrics, u64::from(FRAMES)).await;
    assert!(!bridge.run.is_finished(), "the daemon keeps running");
    let failures_at_end = Metrics::get(&metrics.spool_write_failures);
    eprintln!(
        "disk full: {failures} failed spool writes after 1.5 s ({published_at_full} published), \
         {failures_after_freeing} once space was freed, {failures_at_end} after {:.2?}; \
         spool bytes {spooled_before} before the last stall, {spooled_stalled} during it",
        started.elapsed()
    );
    assert!(failures_after_freeing >= failures);
    assert_eq!(
        failures_at_end, failures_after_freeing,
        "no write fails with space to spare"
    );
    // Full again at the stop: ending the session cannot write the spool's session journal,
    // which must not keep it from ending.
    fill(&filler);
    let report = bridge.finish().await.expect("the run ends cleanly");
    stream_api.shutdown().await.expect("server stops");

    assert_eq!(
        Metrics::get(&report.summary.metrics.samples_published),
        u64::from(FRAMES)
    );
    assert!(
        Metrics::get(&report.summary.metrics.spool_write_failures) > failures_at_end,
        "the journal write at the end failed and was counted"
    );
    assert_eq!(
        Metrics::get(&report.summary.metrics.samples_lost_no_room),
        0
    );
    let (found, samples) = counters(&[&record]);
    let lost = missing(&found, u64::from(FRAMES));
    assert!(
        lost.is_empty(),
        "{} lost: {:?}…",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    assert_eq!(samples, FRAMES as usize);
    let recording = inspect::read_recording(&record).expect("recording");
    assert_eq!(recording.violations(), &[], "{}", recording.summary());
}
