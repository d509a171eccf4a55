//! Capture files end to end: raw captures from a UDP (cannelloni) and a serial (SLCAN) source
//! are recorded, and every file written replays into exactly the frames the live transport
//! receivers produce from the same captures. With tshark installed, Wireshark's reading of
//! the files is checked too.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use decoders::can::{CanFlags, CanFrame, CanId};
use decoders::wire::cannelloni::encode_datagram;
use decoders::wire::slcan::encode_frame;
use ecu_bridge::capture::pcapng::{self, PcapngEvent, PcapngReader};
use ecu_bridge::capture::replay::{Pacing, ReplaySource};
use ecu_bridge::capture::{CaptureError, CaptureFormat, CaptureReader, CaptureWriter, serial_log};
use ecu_bridge::config::{
    FlowControl, Parity, SerialSourceConfig, SlcanSetup, SourceConfig, SourceKind, UdpSourceConfig,
};
use ecu_bridge::pipeline::edge::TimedFrame;
use ecu_bridge::pipeline::weighed;
use ecu_bridge::source::RawCapture;
use ecu_bridge::source::receiver::{CannelloniReceiver, SlcanReceiver};
use ecu_bridge::telemetry::{Metrics, SourceMetrics};
use tokio::sync::{mpsc, watch};

/// Receive times with nanosecond digits, which pcapng and serial logs must keep.
const T0: u64 = 1_778_936_400_123_456_789;

fn frames() -> Vec<CanFrame> {
    let id = |raw| CanId::standard(raw).expect("id");
    vec![
        CanFrame::new(id(0x123), CanFlags::empty(), &[1, 2, 3]).expect("frame"),
        CanFrame::new(
            CanId::extended(0x18FE_F100).expect("id"),
            CanFlags::empty(),
            &[9; 8],
        )
        .expect("frame"),
        CanFrame::remote(id(0x7DF), 8).expect("remote"),
        CanFrame::new(id(0x456), CanFlags::FD.with(CanFlags::BRS), &[0x55; 12]).expect("fd"),
    ]
}

fn udp_source(name: &str) -> SourceConfig {
    SourceConfig {
        name: name.to_owned(),
        kind: SourceKind::Udp(UdpSourceConfig {
            bind: "127.0.0.1:0".parse().expect("addr"),
            receive_buffer_bytes: 1 << 20,
            multicast: None,
            max_datagram_bytes: 1500,
        }),
        definition: None,
        poll: None,
    }
}

fn serial_source(name: &str) -> SourceConfig {
    SourceConfig {
        name: name.to_owned(),
        kind: SourceKind::Serial(SerialSourceConfig {
            device: "/dev/null".into(),
            baud: 115_200,
            data_bits: 8,
            parity: Parity::None,
            stop_bits: 1,
            flow_control: FlowControl::None,
            slcan: Some(SlcanSetup {
                bitrate: 500_000,
                listen_only: true,
                timestamps: true,
            }),
            reconnect_initial: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
        }),
        definition: None,
        poll: None,
    }
}

fn capture(
    source: &str,
    time_ns: u64,
    bytes: Vec<u8>,
    addresses: Option<(SocketAddr, SocketAddr)>,
) -> RawCapture {
    RawCapture {
        source: Arc::from(source),
        time_ns,
        bytes: Bytes::from(bytes),
        addresses,
    }
}

/// Cannelloni datagrams (with a sequence gap and one that is not cannelloni), v4, v6 and no
/// addresses.
fn udp_captures() -> Vec<RawCapture> {
    let frames = frames();
    let v4 = (
        "192.168.10.7:20000".parse().expect("addr"),
        "192.168.10.2:20001".parse().expect("addr"),
    );
    let v6 = (
        "[fd00::7]:20000".parse().expect("addr"),
        "[fd00::2]:20001".parse().expect("addr"),
    );
    let datagram = |sequence, frames: &[CanFrame]| {
        let mut out = Vec::new();
        encode_datagram(sequence, frames, &mut out);
        out
    };
    vec![
        capture("gw", T0, datagram(0, &frames[..2]), Some(v4)),
        capture("gw", T0 + 1_000_001, datagram(1, &frames[2..]), Some(v6)),
        capture("gw", T0 + 2_000_002, b"not cannelloni".to_vec(), Some(v4)),
        capture("gw", T0 + 3_000_003, datagram(3, &frames), None),
    ]
}

/// An SLCAN stream with adapter timestamps, split into reads mid-line.
fn serial_captures() -> Vec<RawCapture> {
    let mut stream = Vec::new();
    for (i, frame) in frames().iter().enumerate() {
        encode_frame(frame, Some(59_998 + i as u16), &mut stream);
    }
    stream.extend_from_slice(b"\x07garbage\r");
    let mut captures = Vec::new();
    let mut time = T0 + 500;
    for chunk in stream.chunks(11) {
        captures.push(capture("usb", time, chunk.to_vec(), None));
        time += 987_654;
    }
    captures
}

/// What the live sources produce from these captures.
fn live_frames(captures: &[RawCapture]) -> Vec<(u64, CanFrame)> {
    let metrics = SourceMetrics::new("live");
    let (mut udp, mut serial) = (CannelloniReceiver::default(), SlcanReceiver::new());
    let mut out = Vec::new();
    for capture in captures {
        match &*capture.source == "gw" {
            true => udp.handle_datagram(capture.time_ns, &capture.bytes, &metrics, &mut out),
            false => serial.handle_bytes(capture.time_ns, &capture.bytes, &metrics, &mut out),
        }
    }
    pairs(&out)
}

fn pairs(frames: &[TimedFrame]) -> Vec<(u64, CanFrame)> {
    frames
        .iter()
        .map(|timed| (timed.time_ns, timed.frame))
        .collect()
}

/// candump logs keep microseconds only.
fn to_micros(frames: &[(u64, CanFrame)]) -> Vec<(u64, CanFrame)> {
    frames
        .iter()
        .map(|(time, frame)| (time / 1000 * 1000, *frame))
        .collect()
}

async fn record(dir: &Path, captures: Vec<RawCapture>) -> ecu_bridge::capture::RecordStats {
    let recorder =
        CaptureWriter::create(dir, &[udp_source("gw"), serial_source("usb")]).expect("create");
    let (tx, rx) = mpsc::channel(4);
    let task = tokio::spawn(recorder.run(rx));
    for capture in captures {
        tx.send(capture).await.expect("recorder running");
    }
    drop(tx);
    task.await.expect("task").expect("recorded")
}

async fn replay(path: &Path) -> (Vec<(u64, CanFrame)>, Arc<Metrics>) {
    let (tx, mut rx) = weighed::channel(16, usize::MAX);
    let (_cancel_tx, cancel) = watch::channel(false);
    let metrics = Arc::new(Metrics::default());
    let source = ReplaySource {
        path: path.to_owned(),
        pacing: Pacing::MaxSpeed,
        origin_ns: 0,
        start: tokio::time::Instant::now(),
        inputs: Arc::default(),
        max_gap: ecu_bridge::capture::replay::DEFAULT_MAX_GAP,
        progress: Arc::default(),
    };
    let task = tokio::spawn(source.run(tx, metrics.clone(), cancel));
    let mut frames = Vec::new();
    while let Some(batch) = rx.recv().await {
        frames.extend(pairs(&batch.can));
    }
    let sent = task.await.expect("task").expect("replayed");
    assert_eq!(sent as usize, frames.len());
    (frames, metrics)
}

#[tokio::test]
async fn recordings_replay_into_the_live_frames() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (udp, serial) = (udp_captures(), serial_captures());
    let (udp_live, serial_live) = (live_frames(&udp), live_frames(&serial));
    assert_eq!(
        (udp_live.len(), serial_live.len()),
        (8, 4),
        "fixtures decode"
    );
    let mut all = udp.clone();
    all.extend(serial.clone());
    all.push(capture("nobody", T0, vec![1], None));
    let stats = record(dir.path(), all).await;
    assert_eq!(stats.unknown_source, 1);
    let names: Vec<_> = stats
        .sources
        .iter()
        .map(|s| (s.name.as_str(), s.captures, s.frames))
        .collect();
    assert_eq!(names, [("gw", 4, 8), ("usb", serial.len() as u64, 4)]);

    let cases = [
        ("gw.pcapng", CaptureFormat::Pcapng, udp_live.clone(), 1),
        (
            "gw.candump.log",
            CaptureFormat::Candump,
            to_micros(&udp_live),
            0,
        ),
        (
            "usb.serial",
            CaptureFormat::SerialLog,
            serial_live.clone(),
            1,
        ),
        (
            "usb.candump.log",
            CaptureFormat::Candump,
            to_micros(&serial_live),
            0,
        ),
    ];
    for (file, format, want, rejected) in cases {
        let path = dir.path().join(file);
        let reader = CaptureReader::open(&path).await.expect("opens");
        assert_eq!(reader.format(), format, "{file}");
        let (got, metrics) = replay(&path).await;
        assert_eq!(got, want, "{file}");
        assert_eq!(
            Metrics::get(&metrics.rejected_inputs),
            rejected,
            "{file}: the bad datagram or line"
        );
        let first = ecu_bridge::capture::replay::first_frame_time(&path, Arc::default())
            .await
            .expect("readable");
        assert_eq!(first, Some(want[0].0), "{file}");
    }
}

#[tokio::test]
async fn pcapng_keeps_times_addresses_and_payloads_exactly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let captures = udp_captures();
    record(dir.path(), captures.clone()).await;
    let bytes = std::fs::read(dir.path().join("gw.pcapng")).expect("pcapng");
    let mut reader = PcapngReader::new();
    let (mut at, mut packets) = (0, Vec::new());
    while let Some((used, event)) = reader.handle_block(&bytes[at..]).expect("well formed") {
        if let PcapngEvent::Packet(packet) = event {
            packets.push((
                packet.time_ns,
                packet.peer,
                packet.local,
                packet.payload.to_vec(),
            ));
        }
        at += used;
    }
    assert_eq!(at, bytes.len(), "no trailing bytes");
    let unspecified: SocketAddr = "0.0.0.0:0".parse().expect("addr");
    let want: Vec<_> = captures
        .iter()
        .map(|c| {
            let (peer, local) = c.addresses.unwrap_or((unspecified, unspecified));
            (c.time_ns, peer, local, c.bytes.to_vec())
        })
        .collect();
    assert_eq!(packets, want);
    assert!(!pcapng::write_packet(
        0,
        T0,
        (unspecified, unspecified),
        &[0; 65_508],
        &mut Vec::new()
    ));
}

#[tokio::test]
async fn a_serial_log_cut_mid_record_replays_up_to_the_cut() {
    let dir = tempfile::tempdir().expect("temp dir");
    let serial = serial_captures();
    record(dir.path(), serial.clone()).await;
    let path = dir.path().join("usb.serial");
    let bytes = std::fs::read(&path).expect("serial log");
    let (_, header) = serial_log::parse_header(&bytes)
        .expect("ok")
        .expect("header");
    assert!(bytes[header..].len() > serial_log::RECORD_HEADER);
    // Keep all records but the last, plus 3 bytes of it.
    let last = serial.last().expect("captures").bytes.len() + serial_log::RECORD_HEADER;
    std::fs::write(&path, &bytes[..bytes.len() - last + 3]).expect("cut");
    let (got, metrics) = replay(&path).await;
    assert_eq!(got, live_frames(&serial[..serial.len() - 1]));
    assert_eq!(metrics.decode_errors().get("truncated"), Some(&1));
}

#[tokio::test]
async fn a_recording_never_overwrites_and_names_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("usb.candump.log"), "keep me").expect("write");
    let error = CaptureWriter::create(dir.path(), &[serial_source("usb")]).expect_err("exists");
    assert!(matches!(error, CaptureError::Create { .. }), "{error}");
    assert!(error.to_string().contains("usb.candump.log"), "{error}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("usb.candump.log")).expect("read"),
        "keep me"
    );
}

/// Wireshark's reading of our recordings. tshark is required (`.ci/run` installs it).
#[tokio::test]
async fn tshark_reads_the_recordings() {
    let version = std::process::Command::new("tshark")
        .arg("--version")
        .output();
    assert!(
        version.is_ok_and(|output| output.status.success()),
        "tshark is required for this check: apt-get install tshark (.ci/run does)"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let udp = udp_captures();
    record(dir.path(), udp.clone()).await;
    let fields = |file: &str, field: &str| -> Vec<String> {
        let path: PathBuf = dir.path().join(file);
        let output = std::process::Command::new("tshark")
            .args([
                "-n",
                "-o",
                "ip.check_checksum:TRUE",
                "-o",
                "udp.check_checksum:TRUE",
                "-r",
            ])
            .arg(&path)
            .args(["-T", "fields", "-e", field])
            .output()
            .expect("tshark runs");
        assert!(
            output.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let lengths = fields("gw.pcapng", "udp.length");
    let want: Vec<String> = udp
        .iter()
        .map(|c| (c.bytes.len() + 8).to_string())
        .collect();
    assert_eq!(lengths, want, "one UDP packet per datagram");
    let times = fields("gw.pcapng", "frame.time_epoch");
    assert_eq!(
        times[0],
        format!("{}.{:09}", T0 / 1_000_000_000, T0 % 1_000_000_000)
    );
    // 1 = good; the IPv6 packet has no IP checksum.
    assert_eq!(
        fields("gw.pcapng", "ip.checksum.status"),
        ["1", "", "1", "1"]
    );
    assert_eq!(fields("gw.pcapng", "udp.checksum.status"), ["1"; 4]);
    assert_eq!(fields("gw.pcapng", "frame.interface_name")[0], "gw");
    assert_eq!(
        fields("gw.candump.log", "frame.number").len(),
        8,
        "one packet per frame"
    );
    // A pcapng written by Wireshark's own code (its options, its block layout) reads back the same.
    let rewritten = dir.path().join("rewritten.pcapng");
    let status = std::process::Command::new("tshark")
        .arg("-r")
        .arg(dir.path().join("gw.pcapng"))
        .arg("-w")
        .arg(&rewritten)
        .args(["-F", "pcapng"])
        .status()
        .expect("tshark runs");
    assert!(status.success());
    assert_eq!(replay(&rewritten).await.0, live_frames(&udp));
}

#[tokio::test(start_paused = true)]
async fn a_running_recording_is_readable_within_a_second() {
    let dir = tempfile::tempdir().expect("temp dir");
    let recorder = CaptureWriter::create(dir.path(), &[udp_source("gw")]).expect("create");
    let (tx, rx) = mpsc::channel(4);
    let task = tokio::spawn(recorder.run(rx));
    let udp = udp_captures();
    tokio::time::sleep(Duration::from_millis(300)).await;
    tx.send(udp[0].clone()).await.expect("recorder running");
    let start = tokio::time::Instant::now();
    let path = dir.path().join("gw.pcapng");
    loop {
        // Virtual time: each sleep returns as soon as the runtime is idle.
        tokio::time::sleep(Duration::from_millis(10)).await;
        if !replay(&path).await.0.is_empty() {
            break;
        }
        assert!(start.elapsed() < Duration::from_millis(1000), "not flushed");
    }
    assert_eq!(replay(&path).await.0, live_frames(&udp[..1]));
    drop(tx);
    task.await.expect("task").expect("recorded");
}
