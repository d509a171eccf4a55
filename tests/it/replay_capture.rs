//! `ecu-bridge replay` as a user meets it with captures made elsewhere: a tshark capture on `lo`
//! of F1 23 and F1 24 packets sent by this test over a real UDP socket replays through the
//! sim-car configuration (both game years loaded) into exactly the values sent, and the summary
//! names the receiver and why; replays that publish nothing or reject too much exit non-zero
//! with a one-line reason; a capture-time jump is not waited for.

use std::io::{BufRead as _, BufReader};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use stream_api::inspect;

use crate::cli::bridge;

/// Known values of the player's car in one packet.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sent {
    format: u16,
    speed: u16,
    gear: i8,
    rpm: u16,
    brake_temperature_fl: u16,
    tyre_pressure_rr: f32,
}

const PLAYER: usize = 3;

/// A whole car-telemetry packet of `sent.format` (2023 or 2024; same layout, see
/// docs/frame-definitions.md) with the player's record holding `sent` and decoys elsewhere.
fn f1_packet(sent: &Sent) -> Vec<u8> {
    let mut packet = vec![0u8; 1352];
    packet[0..2].copy_from_slice(&sent.format.to_le_bytes());
    packet[2] = (sent.format - 2000) as u8;
    packet[6] = 6;
    packet[27] = PLAYER as u8;
    packet[28] = 255;
    for index in 0..22 {
        let record = &mut packet[29 + 60 * index..29 + 60 * (index + 1)];
        let decoy = Sent {
            speed: 1,
            gear: 1,
            rpm: 1,
            brake_temperature_fl: 1,
            tyre_pressure_rr: 1.0,
            ..*sent
        };
        let car = if index == PLAYER { sent } else { &decoy };
        record[0..2].copy_from_slice(&car.speed.to_le_bytes());
        record[15] = car.gear as u8;
        record[16..18].copy_from_slice(&car.rpm.to_le_bytes());
        // Brake temperatures RL, RR, FL, FR from 22; tyre pressures RL, RR, FL, FR from 40.
        record[26..28].copy_from_slice(&car.brake_temperature_fl.to_le_bytes());
        record[44..48].copy_from_slice(&car.tyre_pressure_rr.to_le_bytes());
    }
    packet
}

fn sent(n: u16, format: u16) -> Sent {
    Sent {
        format,
        speed: 120 + 3 * n,
        gear: if n == 4 { -1 } else { (n % 8) as i8 },
        rpm: 9000 + 17 * n,
        brake_temperature_fl: 300 + n,
        tyre_pressure_rr: 22.0 + f32::from(n) / 8.0,
    }
}

/// tshark capturing `lo` into a pcapng until it has seen `packets` datagrams to `port`.
struct Tshark {
    child: std::process::Child,
}

impl Tshark {
    /// Starts tshark and waits until it reports that it is capturing.
    fn start(file: &Path, port: u16, packets: usize) -> Self {
        let mut child = Command::new("tshark")
            .args(["-i", "lo", "-q", "-w"])
            .arg(file)
            .args(["-f", &format!("udp dst port {port}")])
            .args(["-c", &packets.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect(
                "tshark runs (installed by .ci/run; capturing on lo needs root or capabilities)",
            );
        let stderr = child.stderr.take().expect("stderr piped");
        let (ready, started) = mpsc::channel();
        std::thread::spawn(move || {
            let mut said = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                said.push_str(&line);
                said.push('\n');
                if line.contains("Capturing on") || line.contains("Capture started") {
                    let _ = ready.send(Ok(()));
                }
            }
            let _ = ready.send(Err(said));
        });
        match started.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(())) => {}
            Ok(Err(said)) => panic!("tshark ended before capturing:\n{said}"),
            Err(_) => panic!("tshark did not start capturing within 30 s"),
        }
        // tshark reports before its capture loop takes the first packet; a datagram sent in
        // that instant would be missed and `-c` would then never be reached (a clear failure
        // below, not a wrong result).
        std::thread::sleep(Duration::from_millis(500));
        Self { child }
    }

    /// Waits until tshark has captured its packets and exited.
    fn finish(mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("tshark status") {
                assert!(status.success(), "tshark failed: {status}");
                return;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("tshark did not capture every datagram sent within 30 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The sim-car configuration with F1 23 loaded beside F1 24, its `game` source bound to
/// `port`, and a second UDP source (cannelloni) so that only the port can choose.
fn sim_car_with_both_years(dir: &Path, port: u16) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let definitions = root.join("decoders/definitions");
    let text = std::fs::read_to_string(root.join("fixtures/sim-car/bridge.toml"))
        .expect("sim-car config")
        .replace(
            "definitions = [\"../../decoders/definitions/f1_24_car_telemetry.toml\"]",
            &format!(
                "definitions = [{:?}, {:?}]",
                definitions.join("f1_23_car_telemetry.toml"),
                definitions.join("f1_24_car_telemetry.toml")
            ),
        )
        .replace("127.0.0.1:20777", &format!("127.0.0.1:{port}"));
    assert!(text.contains(&format!(":{port}\"")), "{text}");
    let text = format!(
        "{text}\n[[source]]\nname = \"gateway\"\nkind = \"udp\"\nbind = \"127.0.0.1:{}\"\n",
        if port == 1 { 2 } else { port - 1 }
    );
    let config = dir.join("bridge.toml");
    std::fs::write(&config, text).expect("config");
    config
}

fn stdout(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn a_tshark_capture_of_f1_packets_replays_into_the_values_sent() {
    let dir = tempfile::tempdir().expect("temp dir");
    // The packets' destination: a real socket on a port chosen by the kernel, kept open so no
    // ICMP error follows them.
    let receiver = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = receiver.local_addr().expect("address").port();
    let packets: Vec<Sent> = (0..20)
        .map(|n| sent(n, 2024))
        .chain((20..26).map(|n| sent(n, 2023)))
        .collect();
    let capture = dir.path().join("drive.pcapng");
    let tshark = Tshark::start(&capture, port, packets.len());
    let sender = UdpSocket::bind("127.0.0.1:0").expect("bind");
    for packet in &packets {
        sender
            .send_to(&f1_packet(packet), ("127.0.0.1", port))
            .expect("send");
        // 10 ms apart, so the capture has a timing to pace by.
        std::thread::sleep(Duration::from_millis(10));
    }
    tshark.finish();

    let config = sim_car_with_both_years(dir.path(), port);
    let record = dir.path().join("replay.osrec");
    let output = bridge(
        &["replay", "--max-speed", "--record"],
        &[&record, Path::new("--config"), &config, &capture],
    );
    let text = stdout(&output);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "drive.pcapng → source `game` (UDP destination port {port} matches its bind port)"
        )),
        "{text}"
    );
    assert!(text.contains("rejected inputs 0"), "{text}");

    let recording = inspect::read_recording(&record).expect("recording");
    assert_eq!(recording.violations(), &[], "no protocol violations");
    let samples = recording.samples();
    let values = |name: &str| -> Vec<f64> {
        let found = samples
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing"));
        found.iter().map(|(_, value)| *value).collect()
    };
    for (year, format) in [("F1_24", 2024), ("F1_23", 2023)] {
        let of_year: Vec<&Sent> = packets.iter().filter(|p| p.format == format).collect();
        let expect = |value: fn(&Sent) -> f64| of_year.iter().map(|p| value(p)).collect::<Vec<_>>();
        assert_eq!(
            values(&format!("{year}_vCar:SimCar")),
            expect(|p| f64::from(p.speed))
        );
        assert_eq!(
            values(&format!("{year}_nEngine:SimCar")),
            expect(|p| f64::from(p.rpm))
        );
        assert_eq!(
            values(&format!("{year}_gear:SimCar")),
            expect(|p| f64::from(p.gear))
        );
        assert_eq!(
            values(&format!("{year}_brake_temperature_FL:SimCar")),
            expect(|p| f64::from(p.brake_temperature_fl))
        );
        assert_eq!(
            values(&format!("{year}_tyre_pressure_RR:SimCar")),
            expect(|p| f64::from(p.tyre_pressure_rr))
        );
    }

    // Forced onto the cannelloni source, the same capture is all rejected: a failure that
    // says so, not exit 0.
    let output = bridge(
        &["replay", "--max-speed", "--source", "gateway", "--config"],
        &[&config, &capture],
    );
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("drive.pcapng → source `gateway` (forced by --source)"),
        "{text}"
    );
    assert!(
        text.contains("error: nothing was published: 0 frames read, 26 inputs rejected"),
        "{text}"
    );
    drop(receiver);
}

fn sim_car() -> (PathBuf, PathBuf) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sim-car");
    (root.join("bridge.toml"), root.join("lap.pcapng"))
}

/// Replays `captures` at full speed through the sim-car configuration with `flags`.
fn replay_sim_car(flags: &[&str], captures: &[&Path]) -> (Option<i32>, String) {
    let (config, _) = sim_car();
    let mut args = vec!["replay", "--max-speed"];
    args.extend(flags);
    args.push("--config");
    let mut paths = vec![config.as_path()];
    paths.extend(captures);
    let output = bridge(&args, &paths);
    (output.status.code(), stdout(&output))
}

/// The error line (the last line on stderr).
fn error_line(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|line| line.starts_with("error: "))
        .unwrap_or("")
}

#[test]
fn an_empty_capture_fails_saying_nothing_was_published() {
    let dir = tempfile::tempdir().expect("temp dir");
    let empty = dir.path().join("empty.log");
    std::fs::write(&empty, "").expect("capture");
    let (code, text) = replay_sim_car(&[], &[&empty]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("empty.log → candump -L log (CAN frames, no receiver needed)"),
        "{text}"
    );
    assert_eq!(
        error_line(&text),
        "error: nothing was published: 0 frames read, 0 inputs rejected, 0 samples decoded",
        "{text}"
    );
}

#[test]
fn a_capture_of_rejected_lines_only_fails_and_a_share_of_them_is_bounded() {
    let dir = tempfile::tempdir().expect("temp dir");
    let junk = dir.path().join("junk.log");
    let lines: String = (0..5)
        .map(|n| format!("(1778936400.{n:06}) can0 123#GG\n"))
        .collect();
    std::fs::write(&junk, lines).expect("capture");
    let (code, text) = replay_sim_car(&[], &[&junk]);
    assert_eq!(code, Some(1), "{text}");
    assert_eq!(
        error_line(&text),
        "error: nothing was published: 0 frames read, 5 inputs rejected, 0 samples decoded",
        "{text}"
    );

    // Beside the 120 good packets of the lap, 5 rejected lines are 4 %: over the default 1 %.
    let (_, lap) = sim_car();
    let (code, text) = replay_sim_car(&[], &[&lap, &junk]);
    assert_eq!(code, Some(1), "{text}");
    assert_eq!(
        error_line(&text),
        "error: 5 of 125 inputs (4.0 %) were rejected as malformed, more than --max-rejected-share 0.01",
        "{text}"
    );
    assert!(text.contains("published 1920 samples"), "{text}");
    let (code, text) = replay_sim_car(&["--max-rejected-share", "0.05"], &[&lap, &junk]);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = replay_sim_car(&["--max-rejected-share", "2"], &[&lap]);
    assert_eq!(code, Some(1), "{text}");
    assert_eq!(
        error_line(&text),
        "error: --max-rejected-share must be between 0 and 1, got 2"
    );
}

#[test]
fn a_pcapng_with_a_bit_flipped_header_fails_with_its_rejections_counted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_, lap) = sim_car();
    let mut bytes = std::fs::read(&lap).expect("lap");
    // The Interface Description Block follows the Section Header Block; its link type is the
    // first field of its body (offset 8): raw IP (101) becomes 100, a link type we cannot read.
    let section_len = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes")) as usize;
    assert_eq!(bytes[section_len + 8], 101, "raw IP link type");
    bytes[section_len + 8] ^= 1;
    let flipped = dir.path().join("flipped.pcapng");
    std::fs::write(&flipped, bytes).expect("capture");
    let (code, text) = replay_sim_car(&[], &[&flipped]);
    assert_eq!(code, Some(1), "{text}");
    assert_eq!(
        error_line(&text),
        "error: nothing was published: 0 frames read, 120 inputs rejected, 0 samples decoded",
        "{text}"
    );
}

#[test]
fn a_file_of_one_ten_megabyte_line_is_one_rejected_input() {
    let dir = tempfile::tempdir().expect("temp dir");
    let long = dir.path().join("long.log");
    let mut line = vec![b'A'; 10 << 20];
    line[0] = b'(';
    std::fs::write(&long, line).expect("capture");
    let started = Instant::now();
    let (code, text) = replay_sim_car(&[], &[&long]);
    assert_eq!(code, Some(1), "{text}");
    assert_eq!(
        error_line(&text),
        "error: nothing was published: 0 frames read, 1 inputs rejected, 0 samples decoded",
        "{text}"
    );
    assert!(text.contains("line_too_long: 1"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(60), "no hang");
}

#[test]
fn an_embedded_replay_leaves_no_recording_unless_asked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let before = leftover_recordings();
    let (_, lap) = sim_car();
    // TMPDIR is where a temporary recording would go: a folder of this test's own.
    let (config, _) = sim_car();
    let output = Command::new(env!("CARGO_BIN_EXE_ecu-bridge"))
        .args(["replay", "--max-speed", "--config"])
        .arg(&config)
        .arg(&lap)
        .env("TMPDIR", dir.path())
        .output()
        .expect("run ecu-bridge");
    let text = stdout(&output);
    assert!(output.status.success(), "{text}");
    // The summary still lists what the server received.
    assert!(text.contains("vCar:SimCar [km/h]: 80 samples"), "{text}");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("temp dir")
        .map(|entry| entry.expect("entry").file_name())
        .collect();
    assert_eq!(
        left,
        Vec::<std::ffi::OsString>::new(),
        "nothing left behind"
    );
    assert_eq!(
        leftover_recordings(),
        before,
        "nothing new in the system temp folder"
    );

    let kept = dir.path().join("kept.osrec");
    let (code, text) = replay_sim_car(&["--record", kept.to_str().expect("utf-8")], &[&lap]);
    assert_eq!(code, Some(0), "{text}");
    let recording = inspect::read_recording(&kept).expect("kept recording");
    assert_eq!(recording.samples()["vCar:SimCar"].len(), 80);
}

/// `ecu-bridge-*.osrec` files in the system temp folder (where older versions left them).
fn leftover_recordings() -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(std::env::temp_dir())
        .expect("temp dir")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            name.is_some_and(|n| n.starts_with("ecu-bridge-") && n.ends_with(".osrec"))
        })
        .collect();
    found.sort();
    found
}

#[test]
fn progress_shows_on_a_terminal_and_not_in_a_pipe() {
    use std::io::Read as _;

    let (config, lap) = sim_car();
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let terminal = std::fs::File::from(pty.slave);
    // 8 s of capture at 4x: long enough for the bar to be drawn a few times.
    let mut child = Command::new(env!("CARGO_BIN_EXE_ecu-bridge"))
        .args(["replay", "--speed", "4", "--config"])
        .arg(&config)
        .arg(&lap)
        .stdin(Stdio::null())
        .stdout(terminal.try_clone().expect("pty"))
        .stderr(terminal)
        .spawn()
        .expect("run ecu-bridge");
    let mut master = std::fs::File::from(pty.master);
    let reader = std::thread::spawn(move || {
        let mut screen = Vec::new();
        let mut chunk = [0u8; 4096];
        // The read fails (EIO) once the child has closed the terminal's last descriptor.
        while let Ok(n) = master.read(&mut chunk) {
            if n == 0 {
                break;
            }
            screen.extend_from_slice(&chunk[..n]);
        }
        String::from_utf8_lossy(&screen).into_owned()
    });
    let status = child.wait().expect("ecu-bridge ends");
    let screen = reader.join().expect("reader");
    assert!(status.success(), "{screen}");
    for expected in ["capture 13:00:0", "frames/s", "left"] {
        assert!(screen.contains(expected), "{expected:?} missing:\n{screen}");
    }

    let (code, text) = replay_sim_car(&[], &[&lap]);
    assert_eq!(code, Some(0), "{text}");
    assert!(!text.contains("frames/s"), "no progress in a pipe:\n{text}");
}

/// The number after `label` in `text`.
fn count_after(text: &str, label: &str) -> u64 {
    text.split(label)
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse().ok())
        .unwrap_or_else(|| panic!("no count after {label:?} in:\n{text}"))
}

#[test]
fn a_max_speed_replay_publishes_every_sample_once_on_one_thread_or_on_several() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo-car");
    let (config, capture) = (root.join("bridge.toml"), root.join("drive.log"));
    let mut recordings = Vec::new();
    // One thread is a max-speed replay's default; `--threads 2` a work-stealing pool.
    for threads in [None, Some("2")] {
        let record = dir.path().join(format!("{}.osrec", threads.unwrap_or("1")));
        let record_arg = record.to_str().expect("utf-8");
        let mut args = vec!["replay", "--max-speed", "--record", record_arg];
        if let Some(threads) = threads {
            args.extend(["--threads", threads]);
        }
        args.push("--config");
        let output = bridge(&args, &[&config, &capture]);
        let text = stdout(&output);
        assert!(output.status.success(), "{text}");
        let decoded = count_after(&text, "rows, ");
        let published = count_after(&text, "published ");
        assert_eq!(published, decoded, "{text}");
        let samples = inspect::read_recording(&record)
            .expect("recording")
            .samples();
        let received: usize = samples.values().map(Vec::len).sum();
        assert_eq!(received as u64, published, "threads {threads:?}: {text}");
        recordings.push(samples);
    }
    assert!(recordings[0].len() > 10, "{:?}", recordings[0].keys());
    assert_eq!(
        recordings[0], recordings[1],
        "the same samples on one thread and on two"
    );
}
