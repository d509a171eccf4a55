//! Seeing the values, as a user would: the demo capture is replayed by the binary into the
//! embedded Stream API with its recording kept, then `inspect --csv`, `--values` and `--plot`
//! read that recording back and are checked against the capture decoded independently (the
//! decoders crate on the candump log, with the same channel map). Also `validate --list`, a
//! typo'd include pattern, `inspect … | head` and the `record` summary.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use decoders::RowBatch;
use decoders::channel_map::CanOutcome;
use decoders::wire::candump;
use ecu_bridge::config::Config;
use stream_api::inspect;

use crate::cli::bridge;

/// Expected values: time → identifier → value, decoded straight from the capture.
type Decoded = BTreeMap<u64, BTreeMap<String, f64>>;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The demo car's configuration, its DBC path made absolute, with `extra` in `[stream_api]`
/// and the include list replaced by `include` when given.
pub(crate) fn demo_config(dir: &Path, extra: &str, include: Option<&str>) -> PathBuf {
    let text =
        std::fs::read_to_string(root().join("fixtures/demo-car/bridge.toml")).expect("demo config");
    let dbc = root().join("fixtures/dbc/honda_civic_hatchback_ex_2017_can.dbc");
    let mut text = text
        .replace(
            "\"../dbc/honda_civic_hatchback_ex_2017_can.dbc\"",
            &format!("{:?}", dbc.display().to_string()),
        )
        .replace(
            "drain_timeout_ms = 500",
            &format!("drain_timeout_ms = 500\n{extra}"),
        );
    if let Some(include) = include {
        let start = text.find("include = [").expect("include line");
        let end = start + text[start..].find('\n').expect("end of line");
        text.replace_range(start..end, include);
    }
    let path = dir.join("car.toml");
    std::fs::write(&path, text).expect("config");
    path
}

/// Replays the demo capture with the embedded server's recording kept; the recording's path.
pub(crate) fn replay_demo(dir: &Path) -> PathBuf {
    let recording = dir.join("demo.osrec");
    let config = demo_config(
        dir,
        &format!("record = {:?}", recording.display().to_string()),
        None,
    );
    let capture = root().join("fixtures/demo-car/drive.log");
    let output = bridge(&["replay", "--max-speed", "--config"], &[&config, &capture]);
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(recording.exists(), "the recording is kept");
    recording
}

/// The demo capture decoded by the decoders crate with the configuration's channel map.
fn decode_demo(config: &Path) -> Decoded {
    let config = Config::load(config).expect("config");
    let (mut map, _) = config.load_channel_map().expect("channel map");
    let text = std::fs::read(root().join("fixtures/demo-car/drive.log")).expect("capture");
    let mut rows = RowBatch::new();
    for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let line = candump::parse_line(line).expect("the demo capture is well formed");
        let outcome = map.decode(line.time_ns, &line.frame, &mut rows);
        assert!(matches!(outcome, CanOutcome::Decoded { .. }), "{outcome:?}");
    }
    let mut decoded = Decoded::new();
    for (header, values) in rows.rows() {
        let format = map.format(header.format).expect("format");
        for (index, value) in format.parameters.iter().zip(values) {
            let identifier = map.parameters()[*index as usize].identifier.clone();
            let previous = decoded
                .entry(header.time_ns)
                .or_default()
                .insert(identifier, *value);
            assert_eq!(previous, None, "one value per parameter and time");
        }
    }
    decoded
}

#[test]
fn inspect_csv_holds_exactly_the_values_published_and_values_and_plot_show_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let recording = replay_demo(dir.path());
    let expected = decode_demo(&dir.path().join("car.toml"));

    // --csv, every parameter: one row per decoded timestamp, every cell equal bit for bit.
    let csv_path = dir.path().join("all.csv");
    let output = bridge(&["inspect"], &[&recording, Path::new("--csv"), &csv_path]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut reader = csv::Reader::from_path(&csv_path).expect("csv");
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(str::to_owned)
        .collect();
    let mut columns: Vec<String> = expected
        .values()
        .flat_map(|row| row.keys().cloned())
        .collect();
    columns.sort();
    columns.dedup();
    assert_eq!(header[0], "time_utc");
    assert_eq!(
        header[1..],
        columns[..],
        "one column per published parameter"
    );
    let mut rows = 0;
    for (record, (time, values)) in reader.records().zip(&expected) {
        let record = record.expect("csv row");
        assert_eq!(&record[0], inspect::utc(*time), "row {rows}: time");
        for (cell, column) in record.iter().skip(1).zip(&columns) {
            match values.get(column) {
                Some(value) => {
                    let got: f64 = cell
                        .parse()
                        .unwrap_or_else(|_| panic!("{column} at {time}: {cell:?}"));
                    assert_eq!(got.to_bits(), value.to_bits(), "{column} at {time}");
                }
                None => assert_eq!(cell, "", "{column} at {time}: no sample, empty cell"),
            }
        }
        rows += 1;
    }
    assert_eq!(rows, expected.len(), "every decoded timestamp has its row");
    assert_eq!(rows, 14_400, "the demo's frames have distinct times");

    // --csv with chosen parameters: just those columns, in the order asked.
    let chosen = dir.path().join("two.csv");
    let output = bridge(
        &["inspect"],
        &[
            &recording,
            Path::new("--csv"),
            &chosen,
            Path::new("Throttle"),
            Path::new("EngineSpeed:Civic"),
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&chosen).expect("csv");
    assert!(
        text.starts_with("time_utc,Throttle:Civic,EngineSpeed:Civic\n"),
        "{}",
        &text[..80]
    );
    assert_eq!(
        text.lines().count(),
        1 + 4_000,
        "POWERTRAIN_DATA's 4000 frames"
    );

    // --values: one line per sample, time, identifier, value and unit.
    let output = bridge(
        &["inspect"],
        &[&recording, Path::new("--values"), Path::new("EngineSpeed")],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let rpm: Vec<(u64, f64)> = expected
        .iter()
        .filter_map(|(t, row)| Some((*t, *row.get("EngineSpeed:Civic")?)))
        .collect();
    assert_eq!(stdout.lines().count(), rpm.len());
    let (time, value) = rpm[2_000];
    let line = format!("{}  EngineSpeed:Civic  {value} rpm", inspect::utc(time));
    assert!(value > 1_000.0, "mid-drive the engine runs: {value}");
    assert_eq!(stdout.lines().nth(2_000), Some(line.as_str()));

    // A typo is named, with what the recording has.
    let output = bridge(
        &["inspect"],
        &[&recording, Path::new("--values"), Path::new("EngineSped")],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("no parameter \"EngineSped\"") && stderr.contains("EngineSpeed:Civic"),
        "{stderr}"
    );

    check_plot(dir.path(), &recording);
}

/// --plot: the PNG decodes, has one panel's height per parameter, and holds the drawn lines:
/// many pixels of the first two panels' line colours and of the lap marker's colour, which a
/// blank or axes-only image would not have.
fn check_plot(dir: &Path, recording: &Path) {
    let png_path = dir.join("drive.png");
    let output = bridge(
        &["inspect"],
        &[
            recording,
            Path::new("--plot"),
            &png_path,
            Path::new("EngineSpeed"),
            Path::new("Throttle"),
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&png_path).expect("png"),
    ));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut pixels).expect("decodes");
    assert_eq!((info.width, info.height), inspect::image_size(2));
    assert_eq!(info.color_type, png::ColorType::Rgb);
    let count = |rgb: [u8; 3]| {
        pixels[..info.buffer_size()]
            .chunks(3)
            .filter(|p| *p == rgb)
            .count()
    };
    let white = count([255, 255, 255]);
    let total = (info.width * info.height) as usize;
    assert!(
        white < total * 97 / 100 && white > total / 2,
        "{white} of {total} white"
    );
    // A line across a 1400-pixel panel colours at least a pixel per column it spans.
    let (first, second, lap) = (
        count([31, 119, 180]),
        count([214, 39, 40]),
        count([230, 120, 0]),
    );
    assert!(first > 1_200, "the first panel's line: {first} pixels");
    assert!(second > 1_200, "the second panel's line: {second} pixels");
    assert!(lap > 200, "the lap marker: {lap} pixels");
}

#[test]
fn inspect_into_a_pipe_closed_early_ends_quietly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let recording = replay_demo(dir.path());
    // Far more than a pipe buffers, so the reader closes while the bridge is still writing.
    let mut child = Command::new(env!("CARGO_BIN_EXE_ecu-bridge"))
        .arg("inspect")
        .arg(&recording)
        .args([
            "--values",
            "EngineSpeed",
            "Throttle",
            "STEER_ANGLE",
            "GAS_PRESSED",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut first = [0u8; 64];
    stdout.read_exact(&mut first).expect("some output");
    drop(stdout);
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        first.starts_with(b"2026-05-16T13:00:00."),
        "{:?}",
        String::from_utf8_lossy(&first)
    );
    assert!(
        output.status.success(),
        "exit {:?}: {stderr}",
        output.status.code()
    );
    assert!(stderr.is_empty(), "nothing on stderr: {stderr}");
}

#[test]
fn validate_lists_every_parameter_and_warns_of_patterns_that_match_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = demo_config(
        dir.path(),
        "",
        Some("include = [\"ENGINE_DTA\", \"POWERTRAIN_DATA\", \"STEERING_SENSORS\"]"),
    );
    let text = std::fs::read_to_string(&config).expect("config").replace(
        "exclude = [\"*.COUNTER\", \"*.CHECKSUM\"]",
        "exclude = [\"*.COUNTER\", \"*.CHEKSUM\"]",
    );
    std::fs::write(&config, &text).expect("config");
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).expect("line") + 1;
    let output = bridge(&["validate", "--list", "--config"], &[&config]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let path = config.display();
    for expected in [
        format!(
            "warning: {path}:{}:12: [car.include[0]] include pattern \"ENGINE_DTA\" matches no message or signal",
            line_of("ENGINE_DTA")
        ),
        format!(
            "warning: {path}:{}:25: [car.exclude[1]] exclude pattern \"*.CHEKSUM\" removes nothing",
            line_of("CHEKSUM")
        ),
    ] {
        assert!(
            stdout.contains(&expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    let table: Vec<Vec<&str>> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("PARAMETER"))
        .take_while(|l| !l.is_empty())
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect();
    assert_eq!(table[0], ["PARAMETER", "SOURCE", "UNIT", "RANGE", "RATE"]);
    assert!(
        table.contains(&vec![
            "EngineSpeed:Civic",
            "POWERTRAIN_DATA.ENGINE_RPM",
            "rpm",
            "0 .. 15000",
            "unknown"
        ]),
        "{stdout}"
    );
    assert!(
        table.contains(&vec![
            "STEER_ANGLE:Civic",
            "STEERING_SENSORS.STEER_ANGLE",
            "deg",
            "-500 .. 500",
            "unknown"
        ]),
        "{stdout}"
    );
    // The typo let ENGINE_DATA out and the checksums in; the list shows exactly what publishes.
    assert!(!stdout.contains("ENGINE_DATA."), "{stdout}");
    assert!(stdout.contains("POWERTRAIN_DATA.CHECKSUM"), "{stdout}");
    let listed = table.len() - 1;
    assert!(
        stdout.contains(&format!("ok — {listed} parameters")),
        "{stdout}"
    );
}

#[test]
fn record_ends_with_a_readable_summary() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = demo_config(dir.path(), "", None);
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str("\n[[source]]\nname = \"gateway\"\nkind = \"udp\"\nbind = \"127.0.0.1:0\"\n");
    std::fs::write(&config, text).expect("config");
    let out = dir.path().join("captures");
    let output = bridge(
        &["record", "--duration", "200ms", "--config"],
        &[&config, Path::new("--out"), &out],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("recorded:\n  source gateway: 0 datagrams/reads, 0 bytes, 0 CAN frames\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&out.join("gateway").display().to_string()),
        "files listed: {stdout}"
    );
    assert!(
        !stdout.contains('{') && !stdout.contains("Stats"),
        "no Debug dump: {stdout}"
    );
}
