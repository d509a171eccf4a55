//! The replay case of `docs/performance.md`: a Civic's drive repeated into a capture of
//! 576 000 frames, replayed by the release `ecu-bridge replay --max-speed` (spool on) into a
//! separate `ecu-bridge stream-api` process (recording off) on 127.0.0.1 port 0, and the same
//! capture sent by a Python peer written the way a user would (`benches/peer/peer.py`:
//! cantools + grpcio) into a fresh server of its own.
//!
//! `cargo bench --bench replay_case` prints, for each, wall time, CPU-seconds of the bridge and
//! of its server, samples/s and the bridge's peak RSS, then the ratios. The bridge's CPU at max
//! speed, without what a run pays once, is printed too: the difference to runs of the first
//! half of the capture. The two take turns, in rounds of three bridge runs and one peer run,
//! and the CPU ratio is the peer's median over the bridge's, with each round's beside it. The
//! Python peer runs
//! when `python3` can import cantools, grpc and grpc_tools (`pip install cantools grpcio
//! grpcio-tools`); otherwise the benchmark says it was not run. `cargo test --benches` runs
//! the bridge once on one repetition of the drive so the benchmark cannot silently break (its
//! figures mean nothing, and the Python peer is not run there).

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::resource::UsageWho;
use support::StreamApiProcess;

mod support;

const DRIVE: &str = "fixtures/demo-car/drive.log";
const DBC: &str = "fixtures/dbc/honda_civic_hatchback_ex_2017_can.dbc";
/// Full size: 40 repetitions of the 40-second drive, 576 000 frames.
const REPETITIONS: u32 = 40;
/// Rounds at full size: each runs the bridge [`BRIDGE_RUNS_PER_ROUND`] times, then the Python
/// peer once, so both meet the host in the same state. The host's speed drifts by several per
/// cent within a minute (`docs/performance.md`), and a ratio of runs taken apart carried it.
const ROUNDS: usize = 3;
/// Bridge runs in each round; the median by wall time of all of them is reported.
const BRIDGE_RUNS_PER_ROUND: usize = 3;
/// Bridge runs of the first half of the capture, for the CPU at max speed.
const HALF_RUNS: usize = 7;
/// Each repetition starts this much after the previous one (the drive lasts 40 s).
const DRIVE_SECONDS: u64 = 40;

fn main() {
    let full = std::env::args().any(|arg| arg == "--bench");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("temp dir");
    let repetitions = if full { REPETITIONS } else { 1 };
    let capture = repeated_capture(&root.join(DRIVE), dir.path(), repetitions);
    let dbc = root.join(DBC);

    println!(
        "\n== replay case ({}); load before: {}",
        if full {
            "full size"
        } else {
            "quick mode: figures not meaningful"
        },
        load_average()
    );
    // A bridge run lasts a tenth of a second, so one run says little on a shared machine: the
    // run of median wall time out of several is the figure, with the spread beside it.
    let peer_missing = full.then(python_peer_missing).flatten();
    let with_peer = full && peer_missing.is_none();
    let mut runs: Vec<Measured> = Vec::new();
    // Each peer run with the median CPU of the bridge runs of its round.
    let mut peers: Vec<(Measured, String, f64)> = Vec::new();
    for _ in 0..if full { ROUNDS } else { 1 } {
        let round: Vec<Measured> = (0..if full { BRIDGE_RUNS_PER_ROUND } else { 1 })
            .map(|_| run_bridge(dir.path(), &dbc, &capture))
            .collect();
        let round_cpu = median_cpu(&round);
        runs.extend(round);
        if with_peer {
            let (peer, versions) = run_python(root, &dbc, &capture);
            peers.push((peer, versions, round_cpu));
        }
    }
    runs.sort_by_key(|run| run.wall);
    let spread = |pick: fn(&Measured) -> f64| {
        let values: Vec<f64> = runs.iter().map(pick).collect();
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(0.0, f64::max);
        format!("{min:.3}–{max:.3}")
    };
    let wall_spread = spread(|run| run.wall.as_secs_f64());
    let cpu_spread = spread(|run| run.cpu.as_secs_f64());
    let full_cpu = median_cpu(&runs);
    let bridge_runs = runs.len();
    let bridge = runs.swap_remove(runs.len() / 2);
    bridge.print(&format!(
        "ecu-bridge replay --max-speed (the median of {bridge_runs} runs by wall time; wall {wall_spread} s, CPU {cpu_spread} s over all, median {full_cpu:.3} s)"
    ));
    assert!(bridge.samples > 0, "the bridge published nothing");
    let one_frame = first_line(&capture, dir.path());
    let one_frame_runs: Vec<Measured> = (0..5)
        .map(|_| run_bridge(dir.path(), &dbc, &one_frame))
        .collect();
    let mut whole_runs: Vec<Duration> = one_frame_runs.iter().map(|run| run.wall).collect();
    whole_runs.sort();
    println!(
        "start-up bound: a one-frame capture, process start to exit (config and DBC load, session start, the frame's packet accepted, end of session): median {:.1} ms of 5 (min {:.1}, max {:.1})",
        whole_runs[2].as_secs_f64() * 1e3,
        whole_runs[0].as_secs_f64() * 1e3,
        whole_runs[4].as_secs_f64() * 1e3,
    );
    if !full {
        return;
    }
    // CPU at max speed, without what every run pays once (process start, config and DBC load,
    // session, end of session, the temporary spool): the difference to a run of the first half
    // of the capture, and the whole run less a one-frame run.
    let half = repeated_capture(&root.join(DRIVE), dir.path(), REPETITIONS / 2);
    let half_runs: Vec<Measured> = (0..HALF_RUNS)
        .map(|_| run_bridge(dir.path(), &dbc, &half))
        .collect();
    let half_cpu = median_cpu(&half_runs);
    let one_frame_cpu = median_cpu(&one_frame_runs);
    let half_samples = half_runs[0].samples;
    let full_samples = bridge.samples;
    assert!(full_samples > half_samples, "the half capture is smaller");
    println!(
        "bridge CPU at max speed: {:.4} CPU-s per million samples between the first half and the whole capture (medians of {HALF_RUNS} and {bridge_runs} runs: {half_cpu:.3} s for {half_samples} samples, {full_cpu:.3} s for {full_samples}); {:.4} for the whole capture less a one-frame run's {:.1} ms",
        (full_cpu - half_cpu) / ((full_samples - half_samples) as f64 / 1e6),
        (full_cpu - one_frame_cpu) / (full_samples as f64 / 1e6),
        one_frame_cpu * 1e3,
    );
    if let Some(why) = peer_missing {
        println!("Python peer: not run ({why})");
    } else {
        let by_round: Vec<String> = peers
            .iter()
            .map(|(peer, _, round_cpu)| format!("{:.1}×", peer.cpu.as_secs_f64() / round_cpu))
            .collect();
        let cpu: Vec<String> = peers
            .iter()
            .map(|(run, _, _)| format!("{:.3}", run.cpu.as_secs_f64()))
            .collect();
        let versions = peers.first().map(|(_, v, _)| v.clone()).unwrap_or_default();
        let mut peer_runs: Vec<Measured> = peers.into_iter().map(|(run, _, _)| run).collect();
        let peer_cpu = median_cpu(&peer_runs);
        peer_runs.sort_by_key(|run| run.wall);
        let peer = peer_runs.swap_remove(peer_runs.len() / 2);
        peer.print(&format!(
            "Python peer (cantools + grpcio; {versions}; one run a round, after the round's bridge runs; the median of {ROUNDS} by wall time; CPU of all {ROUNDS} in round order: {} s, median {peer_cpu:.3} s)",
            cpu.join(", ")
        ));
        println!(
            "ratios: CPU {:.1}× less (the peer's median over the bridge's, bridge process; {:.1}× with its server; each round's peer run against the median of the bridge runs before it: {}), wall {:.1}× faster, {:.1}× less peak RSS",
            peer_cpu / full_cpu,
            (peer.cpu + peer.server_cpu).as_secs_f64()
                / (bridge.cpu + bridge.server_cpu).as_secs_f64(),
            by_round.join(", "),
            peer.wall.as_secs_f64() / bridge.wall.as_secs_f64(),
            peer.peak_rss_mib / bridge.peak_rss_mib,
        );
    }
    println!("load after: {}", load_average());
}

/// The median CPU-seconds of `runs`.
fn median_cpu(runs: &[Measured]) -> f64 {
    let mut cpu: Vec<f64> = runs.iter().map(|run| run.cpu.as_secs_f64()).collect();
    cpu.sort_by(f64::total_cmp);
    cpu[cpu.len() / 2]
}

/// What one peer's run cost.
struct Measured {
    samples: u64,
    frames: u64,
    wall: Duration,
    cpu: Duration,
    server_cpu: Duration,
    peak_rss_mib: f64,
    server_peak_rss_mib: f64,
}

impl Measured {
    fn print(&self, title: &str) {
        let seconds = self.wall.as_secs_f64();
        let cpu = self.cpu.as_secs_f64();
        println!("{title}:");
        println!(
            "  {} frames, {} samples in {seconds:.3} s wall: {:.2} M samples/s",
            self.frames,
            self.samples,
            self.samples as f64 / seconds / 1e6
        );
        println!(
            "  CPU: peer {cpu:.3} s ({:.4} CPU-s per million samples), its server {:.3} s; peak RSS: peer {:.1} MiB, server {:.1} MiB",
            cpu / (self.samples as f64 / 1e6),
            self.server_cpu.as_secs_f64(),
            self.peak_rss_mib,
            self.server_peak_rss_mib,
        );
    }
}

fn run_bridge(dir: &Path, dbc: &Path, capture: &Path) -> Measured {
    let server = StreamApiProcess::start();
    let config = dir.join("bridge.toml");
    std::fs::write(
        &config,
        format!(
            "[stream_api]\nendpoint = \"http://{}\"\ndrain_timeout_ms = 10000\n\n[session]\ndata_source = \"DemoCivic\"\nidentifier = \"replay case\"\n\n[car]\napplication = \"Civic\"\ndbc = [\"{}\"]\nstream = \"can0\"\n",
            server.address,
            dbc.display()
        ),
    )
    .expect("config");
    let mut command = Command::new(env!("CARGO_BIN_EXE_ecu-bridge"));
    command
        .args(["replay", "--max-speed", "--config"])
        .arg(&config)
        .arg(capture)
        .env("RUST_LOG", "warn");
    let (run, output) = measure(command);
    assert!(run.success, "ecu-bridge replay failed:\n{output}");
    let samples = number_after(&output, "published ").expect("published N samples");
    let frames = number_after(&output, "decoded ").expect("decoded N rows");
    let (server_cpu, server_peak_rss_mib) = server_figures(server);
    Measured {
        samples,
        frames,
        wall: run.wall,
        cpu: run.cpu,
        server_cpu,
        peak_rss_mib: run.peak_rss_mib,
        server_peak_rss_mib,
    }
}

/// The peer's run and the versions it ran on (`python=… cantools=…`, as it printed them).
fn run_python(root: &Path, dbc: &Path, capture: &Path) -> (Measured, String) {
    let server = StreamApiProcess::start();
    let mut command = Command::new("python3");
    command
        .arg(root.join("benches/peer/peer.py"))
        .arg("--dbc")
        .arg(dbc)
        .arg("--capture")
        .arg(capture)
        .args(["--endpoint", &server.address, "--proto-dir"])
        .arg(root.join("proto"));
    let (run, output) = measure(command);
    assert!(run.success, "the Python peer failed:\n{output}");
    let field = |name: &str| {
        output
            .split_whitespace()
            .find_map(|word| word.strip_prefix(name))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let (server_cpu, server_peak_rss_mib) = server_figures(server);
    let versions = output
        .split_whitespace()
        .filter(|word| {
            ["python=", "cantools=", "grpcio=", "protobuf="]
                .iter()
                .any(|name| word.starts_with(name))
        })
        .collect::<Vec<_>>()
        .join(" ");
    let measured = Measured {
        samples: field("samples="),
        frames: field("frames="),
        wall: run.wall,
        cpu: run.cpu,
        server_cpu,
        peak_rss_mib: run.peak_rss_mib,
        server_peak_rss_mib,
    };
    (measured, versions)
}

/// Why the Python peer cannot run here, if it cannot.
fn python_peer_missing() -> Option<String> {
    let probe = Command::new("python3")
        .args(["-c", "import cantools, grpc, grpc_tools"])
        .stderr(Stdio::piped())
        .output();
    match probe {
        Err(e) => Some(format!("python3: {e}")),
        Ok(out) if !out.status.success() => Some(format!(
            "{}; pip install cantools grpcio grpcio-tools",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("import failed")
        )),
        Ok(_) => None,
    }
}

struct ChildRun {
    success: bool,
    wall: Duration,
    cpu: Duration,
    peak_rss_mib: f64,
}

/// Runs `command` to its end: wall time, its CPU (user + system, from the kernel's accounting
/// of waited-for children) and its peak RSS (`VmHWM`, read every 2 ms while it runs). Returns
/// its stdout and stderr together.
fn measure(mut command: Command) -> (ChildRun, String) {
    let cpu_before = children_cpu();
    let started = Instant::now();
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let mut peak: f64 = 0.0;
            while !done.load(Ordering::Relaxed) {
                if let Some(hwm) = support::vm_hwm_mib(&pid.to_string()) {
                    peak = peak.max(hwm);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            peak
        })
    };
    let output = child.wait_with_output().expect("wait");
    let wall = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let peak_rss_mib = sampler.join().expect("sampler");
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (
        ChildRun {
            success: output.status.success(),
            wall,
            cpu: children_cpu() - cpu_before,
            peak_rss_mib,
        },
        text,
    )
}

fn children_cpu() -> Duration {
    support::rusage_cpu(UsageWho::RUSAGE_CHILDREN)
}

/// User + system CPU of a running process, from `/proc/PID/stat` (in clock ticks of 1/100 s,
/// the kernel's `USER_HZ` on Linux).
fn proc_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at the state, field 3.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |index: usize| fields.get(index).and_then(|f| f.parse::<u64>().ok());
    let total = ticks(11).unwrap_or(0) + ticks(12).unwrap_or(0);
    Duration::from_millis(total * 10)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// The first number after `marker` in `text`.
fn number_after(text: &str, marker: &str) -> Option<u64> {
    let rest = &text[text.find(marker)? + marker.len()..];
    rest.split_whitespace().next()?.parse().ok()
}

/// A capture of the first frame of `capture` alone.
fn first_line(capture: &Path, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(capture).expect("capture");
    let path = dir.join("one-frame.log");
    std::fs::write(
        &path,
        text.lines().next().unwrap_or_default().to_owned() + "\n",
    )
    .expect("one-frame capture");
    path
}

/// The demo drive repeated `repetitions` times, each repetition's times shifted by 40 s.
fn repeated_capture(drive: &Path, dir: &Path, repetitions: u32) -> PathBuf {
    let text = std::fs::read_to_string(drive).expect("demo drive");
    let path = dir.join(format!("drive-repeated-{repetitions}.log"));
    let mut out = BufWriter::new(std::fs::File::create(&path).expect("capture"));
    for repetition in 0..u64::from(repetitions) {
        for line in text.lines() {
            let (time, rest) = line
                .strip_prefix('(')
                .and_then(|l| l.split_once(')'))
                .expect("candump -L line");
            let (seconds, micros) = time.split_once('.').expect("seconds.micros");
            let seconds: u64 = seconds.parse().expect("seconds");
            let shifted = seconds + repetition * DRIVE_SECONDS;
            writeln!(out, "({shifted}.{micros}){rest}").expect("write");
        }
    }
    out.flush().expect("flush");
    path
}

/// The server's CPU and peak RSS so far; it stops as it is dropped.
fn server_figures(server: StreamApiProcess) -> (Duration, f64) {
    let pid = server.pid();
    let peak = support::vm_hwm_mib(&pid.to_string()).unwrap_or(f64::NAN);
    (proc_cpu(pid), peak)
}
