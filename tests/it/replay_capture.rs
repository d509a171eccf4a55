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
            .expect("tshark runs (installed by .ci/run; capturing on lo needs root or capabilities)");
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
        let found = samples.get(name).unwrap_or_else(|| panic!("{name} missing"));
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
