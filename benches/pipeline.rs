//! End-to-end benchmark: generated captures replayed through the whole pipeline into
//! `ecu-bridge stream-api` (a separate process, recording off) over real gRPC on loopback.
//!
//! `cargo bench --bench pipeline` runs the full size (1 024 channels at 1 kHz for 60 s on CAN
//! FD, and 4 classic CAN buses at full load for 60 s) and prints samples/s, frames/s, CPU
//! seconds per million samples and peak RSS of the bridge process (each case's own), and publish latency
//! p50/p99/max at a paced 1.1 million samples/s. `cargo test --benches` runs a tiny size once,
//! so the benchmark cannot silently break; its figures mean nothing.
//!
//! Name cases after `--` to run only those: `cargo bench --bench pipeline -- paced` (the
//! others are `fd` and `buses`).

use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use decoders::can::{CanFlags, CanFrame, CanId};
use decoders::wire::candump::write_line;
use ecu_bridge::capture::replay::Pacing;
use ecu_bridge::config::Config;
use ecu_bridge::pipeline::{self, RunSummary};
use ecu_bridge::telemetry::Metrics;
use nix::sys::resource::UsageWho;
use support::StreamApiProcess;

mod support;

const T0: u64 = 1_778_936_400_000_000_000;
/// CAN FD: 32 signals of 16 bits fill a 64-byte frame.
const SIGNALS_PER_FD_FRAME: usize = 32;
/// Classic CAN: 4 signals of 16 bits per 8-byte frame.
const SIGNALS_PER_CLASSIC_FRAME: usize = 4;
/// Frames per second one 1 Mbit/s bus carries at full load (≈125 bits per 8-byte frame).
const CLASSIC_FRAMES_PER_BUS: u64 = 8_000;

struct Size {
    channels: usize,
    seconds: u64,
    paced_seconds: u64,
}

fn main() {
    let full = std::env::args().any(|arg| arg == "--bench");
    let named: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .collect();
    let wanted = |case: &str| named.is_empty() || named.iter().any(|name| name == case);
    let size = if full {
        Size {
            channels: 1024,
            seconds: 60,
            paced_seconds: 20,
        }
    } else {
        Size {
            channels: 64,
            seconds: 1,
            paced_seconds: 1,
        }
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let fd_dbc = fd_dbc(dir.path(), size.channels);
    let server = StreamApiProcess::start();
    let endpoint = server.endpoint();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    println!(
        "\n== ecu-bridge end-to-end ({})",
        if full {
            "full size"
        } else {
            "quick mode: figures not meaningful"
        }
    );

    if wanted("paced") {
        let capture = fd_capture_slice(dir.path(), size.channels, size.paced_seconds);
        let samples_per_second = (size.channels * 1000) as f64;
        let speed = 1.1e6 / samples_per_second;
        reset_peak_rss();
        let paced = runtime.block_on(run(
            dir.path(),
            &fd_dbc,
            &endpoint,
            vec![capture],
            Pacing::Speed(speed),
        ));
        report_paced(&paced, size.channels, size.paced_seconds, speed);
    }
    if wanted("fd") {
        let capture = fd_capture(dir.path(), "fd.log", size.channels, size.seconds);
        reset_peak_rss();
        let fd = runtime.block_on(run(
            dir.path(),
            &fd_dbc,
            &endpoint,
            vec![capture],
            Pacing::MaxSpeed,
        ));
        report(
            &format!(
                "max speed, CAN FD, {} channels at 1 kHz, {} s",
                size.channels, size.seconds
            ),
            &fd,
            peak_rss_mib(),
        );
    }
    if wanted("buses") {
        let (bus_dbc, bus_captures) = bus_captures(dir.path(), size.seconds);
        reset_peak_rss();
        let buses = runtime.block_on(run(
            dir.path(),
            &bus_dbc,
            &endpoint,
            bus_captures,
            Pacing::MaxSpeed,
        ));
        report(
            &format!(
                "max speed, 4 classic CAN buses at full load, {} s",
                size.seconds
            ),
            &buses,
            peak_rss_mib(),
        );
    }
    drop(server);
}

/// Latency of the paced case, with its histogram around the 100 ms flush window.
fn report_paced(paced: &Run, channels: usize, seconds: u64, speed: f64) {
    let peak_rss = peak_rss_mib();
    println!(
        "paced at 1.10 M samples/s ({channels} channels at 1 kHz × speed {speed:.3}, {seconds} s):"
    );
    let latency = &paced.summary.metrics.publish_latency;
    let ms = |d: Option<Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1e3);
    println!(
        "  publish latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} packets; peak RSS {peak_rss:.1} MiB",
        ms(latency.quantile(0.5)),
        ms(latency.quantile(0.99)),
        ms(Some(latency.max())),
        latency.count()
    );
    let within = latency.cumulative_counts(&[100, 102]);
    println!(
        "  handed on within the 100 ms window: {} packets, within it + 2 ms: {}",
        within[0], within[1]
    );
    let edges: Vec<u64> = (97..=110).collect();
    let below = latency.cumulative_counts(&edges);
    let mut line = String::from("  packets per 1 ms bucket:");
    let _ = write!(line, " <97: {}", below[0]);
    // The last edge's window is everything from it on: printed below as such.
    for (edge, pair) in edges.iter().zip(below.windows(2)).take(edges.len() - 1) {
        let _ = write!(line, ", {edge}: {}", pair[1] - pair[0]);
    }
    let _ = write!(
        line,
        ", ≥110: {}",
        below[below.len() - 1] - below[below.len() - 2]
    );
    println!("{line}");
}

struct Run {
    summary: RunSummary,
    wall: Duration,
    cpu: Duration,
}

async fn run(
    dir: &Path,
    dbc: &Path,
    endpoint: &str,
    captures: Vec<PathBuf>,
    pacing: Pacing,
) -> Run {
    let text = format!(
        "[stream_api]\nendpoint = \"{endpoint}\"\ndrain_timeout_ms = 5000\n\n[session]\ndata_source = \"Bench\"\nidentifier = \"bench\"\n\n[car]\napplication = \"Bench\"\ndbc = [\"{}\"]\nstream = \"can0\"\n",
        dbc.display()
    );
    let path = dir.join("bench.toml");
    std::fs::write(&path, text).expect("config");
    let config = Config::load(&path).expect("config valid");
    let (map, _) = config.load_channel_map().expect("map");
    let cpu_before = cpu_time();
    let started = Instant::now();
    let summary = pipeline::replay(
        &config,
        map,
        endpoint.to_owned(),
        captures,
        pacing,
        std::future::pending(),
    )
    .await
    .expect("replay");
    Run {
        summary,
        wall: started.elapsed(),
        cpu: cpu_time() - cpu_before,
    }
}

fn report(title: &str, run: &Run, peak_rss: f64) {
    let m = &run.summary.metrics;
    let samples = Metrics::get(&m.samples_published) as f64;
    let frames = Metrics::get(&m.frames_in) as f64;
    let seconds = run.wall.as_secs_f64();
    println!("{title}:");
    println!(
        "  {:.0} samples in {} packets in {seconds:.2} s: {:.2} M samples/s, {:.0} k frames/s; CPU {:.2} s = {:.3} CPU-s per million samples",
        samples,
        Metrics::get(&m.packets_published),
        samples / seconds / 1e6,
        frames / seconds / 1e3,
        run.cpu.as_secs_f64(),
        run.cpu.as_secs_f64() / (samples / 1e6)
    );
    println!("  peak RSS of the bridge process in this run: {peak_rss:.1} MiB");
}

fn cpu_time() -> Duration {
    support::rusage_cpu(UsageWho::RUSAGE_SELF)
}

/// Peak resident set of this process (the bridge; the server is another process).
fn peak_rss_mib() -> f64 {
    support::vm_hwm_mib("self").unwrap_or(f64::NAN)
}

/// Starts a new peak: writing 5 to `/proc/self/clear_refs` sets `VmHWM` back to the current
/// resident set, so each case reports its own peak (what stays resident from an earlier case,
/// such as the runtime's threads, counts in each).
fn reset_peak_rss() {
    if let Err(error) = std::fs::write("/proc/self/clear_refs", "5") {
        eprintln!("peak RSS not reset ({error}): later figures include earlier cases");
    }
}

fn fd_dbc(dir: &Path, channels: usize) -> PathBuf {
    let mut text = String::new();
    for message in 0..channels.div_ceil(SIGNALS_PER_FD_FRAME) {
        let _ = writeln!(text, "BO_ {} FD_{message}: 64 ECU", 0x100 + message);
        for signal in 0..SIGNALS_PER_FD_FRAME {
            let _ = writeln!(
                text,
                " SG_ CH_{message}_{signal} : {}|16@1+ (0.01,0) [0|655.35] \"u\" X",
                signal * 16
            );
        }
    }
    let path = dir.join("fd.dbc");
    std::fs::write(&path, text).expect("dbc");
    path
}

/// Every channel at 1 kHz: one FD frame per message per millisecond, values sweeping.
fn write_fd(out: &mut impl Write, channels: usize, seconds: u64) {
    let messages = channels.div_ceil(SIGNALS_PER_FD_FRAME);
    let mut line = String::with_capacity(256);
    let mut data = [0u8; 64];
    for ms in 0..seconds * 1000 {
        for message in 0..messages {
            for (signal, chunk) in data.chunks_exact_mut(2).enumerate() {
                let raw = (ms as usize * 7 + signal * 131 + message) as u16;
                chunk.copy_from_slice(&raw.to_le_bytes());
            }
            let id = CanId::standard(0x100 + message as u32).expect("id");
            let frame = CanFrame::new(id, CanFlags::FD, &data).expect("fd frame");
            line.clear();
            write_line(
                T0 + ms * 1_000_000 + message as u64 * 1000,
                "can0",
                &frame,
                &mut line,
            );
            out.write_all(line.as_bytes()).expect("write");
        }
    }
}

fn fd_capture(dir: &Path, name: &str, channels: usize, seconds: u64) -> PathBuf {
    let path = dir.join(name);
    let mut out = BufWriter::new(std::fs::File::create(&path).expect("capture"));
    write_fd(&mut out, channels, seconds);
    out.flush().expect("flush");
    path
}

fn fd_capture_slice(dir: &Path, channels: usize, seconds: u64) -> PathBuf {
    fd_capture(dir, "paced.log", channels, seconds)
}

/// Four 1 Mbit/s buses at full load: 8 000 classic frames/s each, 50 ids per bus.
fn bus_captures(dir: &Path, seconds: u64) -> (PathBuf, Vec<PathBuf>) {
    let mut dbc = String::new();
    for id in 0..200u32 {
        let _ = writeln!(dbc, "BO_ {} BUS_{id}: 8 ECU", 0x200 + id);
        for signal in 0..SIGNALS_PER_CLASSIC_FRAME {
            let _ = writeln!(
                dbc,
                " SG_ S_{id}_{signal} : {}|16@1- (0.1,0) [-3276.8|3276.7] \"u\" X",
                signal * 16
            );
        }
    }
    let dbc_path = dir.join("buses.dbc");
    std::fs::write(&dbc_path, dbc).expect("dbc");
    let step_ns = 1_000_000_000 / CLASSIC_FRAMES_PER_BUS;
    let captures = (0..4u32)
        .map(|bus| {
            let path = dir.join(format!("can{bus}.log"));
            let mut out = BufWriter::new(std::fs::File::create(&path).expect("capture"));
            let mut line = String::with_capacity(64);
            for n in 0..seconds * CLASSIC_FRAMES_PER_BUS {
                let id = CanId::standard(0x200 + bus * 50 + (n % 50) as u32).expect("id");
                let value = (n as u16).wrapping_mul(31).to_le_bytes();
                let data = [value[0], value[1], 1, 2, value[1], value[0], 3, 4];
                let frame = CanFrame::new(id, CanFlags::empty(), &data).expect("frame");
                line.clear();
                write_line(T0 + n * step_ns, &format!("can{bus}"), &frame, &mut line);
                out.write_all(line.as_bytes()).expect("write");
            }
            out.flush().expect("flush");
            path
        })
        .collect();
    (dbc_path, captures)
}
