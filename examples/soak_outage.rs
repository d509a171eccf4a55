//! Soak run of a Stream API outage: the real `ecu-bridge run` (built beside this example)
//! receives CAN frames over UDP on 127.0.0.1 carrying a counter, the Stream API (our server,
//! in this process) goes away for a long time and comes back, and every frame is checked in
//! the server's recording. Prints the bridge's peak RSS (from /proc, sampled every second),
//! the spool's size at the end of the outage, and what was lost or duplicated.
//!
//! ```sh
//! cargo build --release && cargo run --release --example soak_outage -- --outage-s 600 --rate 100000
//! ```
//!
//! `--rate` is frames per second (one sample each), `--outage-s` the outage length, and
//! `--before-s`/`--after-s` the traffic around it (defaults 10 and 30). Needs a few GiB of free
//! disk for a 10-minute outage at 100 000 samples/s. Run by hand, not by `cargo test`.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use decoders::can::{CanFlags, CanFrame, CanId};
use decoders::wire::cannelloni::encode_datagram;
use stream_api::{ServerOptions, inspect};

/// Frames per datagram (a cannelloni gateway batches frames the same way).
const FRAMES_PER_DATAGRAM: u32 = 10;

fn argument(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|arg| arg == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let rate = argument("--rate", 100_000);
    let before = argument("--before-s", 10);
    let outage = argument("--outage-s", 600);
    let after = argument("--after-s", 30);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let record = dir.path().join("server.osrec");
    let server = runtime.block_on(start_server("127.0.0.1:0", &record));
    let address = server.local_addr();
    let config = write_config(dir.path(), address);
    let bridge_binary = std::env::current_exe()
        .expect("exe")
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("ecu-bridge");
    let (mut bridge, lines) = start_bridge(&bridge_binary, &config);
    let udp: SocketAddr = logged(&lines, "udp source bound", "local_addr=")
        .parse()
        .expect("udp address");
    let metrics = logged(&lines, "metrics endpoint listening", "address=");
    let mut peak_rss = 0u64;
    let mut counter = 0u32;
    let socket = UdpSocket::bind("127.0.0.1:0").expect("sender");

    println!("{before} s of traffic at {rate} frames/s");
    send_for(
        &socket,
        udp,
        rate,
        before,
        &mut counter,
        &mut peak_rss,
        bridge.id(),
    );
    runtime.block_on(server.shutdown()).expect("server stops");
    println!("Stream API stopped; {outage} s of outage");
    send_for(
        &socket,
        udp,
        rate,
        outage,
        &mut counter,
        &mut peak_rss,
        bridge.id(),
    );
    let body = http_get(&metrics, "/metrics");
    println!(
        "end of outage: spool {} bytes, {} samples waiting, bridge peak RSS so far {:.1} MiB",
        metric(&body, "ecu_bridge_spool_bytes"),
        metric(&body, "ecu_bridge_samples_waiting"),
        peak_rss as f64 / 1024.0
    );
    let server = runtime.block_on(start_server(&address.to_string(), &record));
    println!("Stream API back; {after} s of traffic");
    send_for(
        &socket,
        udp,
        rate,
        after,
        &mut counter,
        &mut peak_rss,
        bridge.id(),
    );
    // Everything that entered the pipeline must be acknowledged (frames the UDP edge dropped
    // are counted there, not waited for).
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let body = http_get(&metrics, "/metrics");
        let published = metric(&body, "ecu_bridge_samples_published_total");
        if published >= metric(&body, "ecu_bridge_frames_in_total") || Instant::now() > deadline {
            break;
        }
        peak_rss = peak_rss.max(rss_kib(bridge.id()));
        std::thread::sleep(Duration::from_millis(500));
    }
    let body = http_get(&metrics, "/metrics");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(bridge.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let status = bridge.wait().expect("bridge exits");
    runtime.block_on(server.shutdown()).expect("server stops");

    let recording = inspect::read_recording(&record).expect("recording");
    let found: BTreeSet<u64> = recording
        .samples()
        .remove("COUNT:SoakCar")
        .unwrap_or_default()
        .iter()
        .map(|(_, value)| *value as u64)
        .collect();
    let sent = u64::from(counter);
    let missing = (0..sent).filter(|n| !found.contains(n)).count();
    println!(
        "sent {sent} frames; {} entered the pipeline, {} published; {} distinct counter values \
         missing; duplicates received by the server {}; kernel drops {}, channel drops {} \
         frames; violations {}; bridge exit {status}; bridge peak RSS {:.1} MiB",
        metric(&body, "ecu_bridge_frames_in_total"),
        metric(&body, "ecu_bridge_samples_published_total"),
        missing,
        recording.duplicates().len(),
        metric(&body, "ecu_bridge_source_kernel_drops_total{source=\"gw\"}"),
        metric(
            &body,
            "ecu_bridge_source_frames_dropped_total{source=\"gw\"}"
        ),
        recording.violations().len(),
        peak_rss as f64 / 1024.0
    );
}

async fn start_server(address: &str, record: &Path) -> stream_api::ServerHandle {
    let listener = tokio::net::TcpListener::bind(address).await.expect("bind");
    stream_api::spawn(
        listener,
        ServerOptions {
            strict: false,
            record: Some(record.to_owned()),
        },
    )
    .await
    .expect("server")
}

fn write_config(dir: &Path, server: SocketAddr) -> std::path::PathBuf {
    let dbc = dir.join("soak.dbc");
    std::fs::write(
        &dbc,
        "VERSION \"\"\n\nNS_ :\n\nBS_:\n\nBU_: ECU\n\nBO_ 256 ENGINE: 8 ECU\n SG_ COUNT : 0|32@1+ (1,0) [0|4294967295] \"\" ECU\n",
    )
    .expect("dbc");
    let text = format!(
        "[stream_api]\nendpoint = \"http://{server}\"\n\n[session]\ndata_source = \"SoakCar\"\nidentifier = \"soak\"\n\n[car]\napplication = \"SoakCar\"\ndbc = [\"{}\"]\nstream = \"can0\"\n\n[service]\nmetrics_listen = \"127.0.0.1:0\"\nstop_timeout_ms = 600000\n\n[spool]\ndir = \"spool\"\n\n[[source]]\nname = \"gw\"\nkind = \"udp\"\nbind = \"127.0.0.1:0\"\nreceive_buffer_bytes = 8388608\n",
        dbc.display()
    );
    let path = dir.join("soak.toml");
    std::fs::write(&path, text).expect("config");
    path
}

fn start_bridge(binary: &Path, config: &Path) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(binary)
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| {
            panic!(
                "start {}: {error} (cargo build --release first)",
                binary.display()
            )
        });
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

fn logged(lines: &mpsc::Receiver<String>, marker: &str, field: &str) -> String {
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(30))
            .expect("bridge log line");
        if line.contains(marker) {
            let value = line.split(field).nth(1).expect("field");
            return value
                .split_whitespace()
                .next()
                .expect("value")
                .trim_matches('"')
                .to_owned();
        }
    }
}

/// Sends `rate` frames a second for `seconds`, counting in `counter`, sampling the bridge's RSS.
fn send_for(
    socket: &UdpSocket,
    to: SocketAddr,
    rate: u64,
    seconds: u64,
    counter: &mut u32,
    peak_rss: &mut u64,
    bridge: u32,
) {
    let id = CanId::standard(0x100).expect("id");
    let datagrams_per_second = (rate / u64::from(FRAMES_PER_DATAGRAM)).max(1);
    let started = Instant::now();
    let mut next_rss = Instant::now();
    let mut sent = 0u64;
    let mut datagram = Vec::with_capacity(256);
    while started.elapsed() < Duration::from_secs(seconds) {
        let due = started.elapsed().as_secs_f64() * datagrams_per_second as f64;
        while (sent as f64) < due {
            let frames: Vec<CanFrame> = (0..FRAMES_PER_DATAGRAM)
                .map(|i| {
                    let value = *counter + i;
                    let mut data = [0u8; 8];
                    data[..4].copy_from_slice(&value.to_le_bytes());
                    CanFrame::new(id, CanFlags::empty(), &data).expect("frame")
                })
                .collect();
            datagram.clear();
            encode_datagram(sent as u8, &frames, &mut datagram);
            socket.send_to(&datagram, to).expect("send");
            *counter += FRAMES_PER_DATAGRAM;
            sent += 1;
        }
        if Instant::now() >= next_rss {
            *peak_rss = (*peak_rss).max(rss_kib(bridge));
            next_rss += Duration::from_secs(1);
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// Resident set size of `pid` in KiB (0 if it cannot be read).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix("VmRSS:")
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|kib| kib.parse().ok())
            })
        })
        .unwrap_or(0)
}

fn http_get(address: &str, path: &str) -> String {
    let Ok(mut stream) = std::net::TcpStream::connect(address) else {
        return String::new();
    };
    let _ = write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n"
    );
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
}

fn metric(body: &str, name: &str) -> u64 {
    body.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0)
}
