//! The server's per-packet work for `WriteDataPacket`, in-process on one thread: decode the
//! request from its wire bytes (as the transport hands it over), measure its size (the 4 MiB
//! check), and check every producer rule on it (`Checker::handle_packet`), for RowData packets
//! of the bridge's shape: 2 875 rows of 8 doubles (23 000 samples, about 256 KiB).
//!
//! `cargo bench -p stream-api --bench check` prints samples/s checked on one core;
//! `cargo test --benches` runs it once on a few packets (figures not meaningful there).

use std::time::Instant;

use open_streaming::{api, open_data};
use prost::Message;
use stream_api::conformance::{Checker, Event, FormatKind};

const DS: &str = "DemoCivic";
const KEY: &str = "session-1";
const FID: u64 = 1;
const ROWS: usize = 2_875;
const COLUMNS: usize = 8;
/// 2026-05-16 13:00 UTC: a plausible epoch time for B7.
const T0: u64 = 1_778_936_400_000_000_000;

fn main() {
    let full = std::env::args().any(|arg| arg == "--bench");
    let packets = if full { 2_000 } else { 3 };
    let names: Vec<String> = (0..COLUMNS).map(|c| format!("P{c}:Civic")).collect();
    let mut checker = ready_checker(&names);
    let requests: Vec<Vec<u8>> = (0..packets)
        .map(|n| row_request(n as u64 + 2, n).encode_to_vec())
        .collect();
    let started = Instant::now();
    let mut violations = 0;
    for bytes in &requests {
        let request = api::WriteDataPacketRequest::decode(bytes.as_slice()).expect("decodes");
        std::hint::black_box(request.encoded_len());
        let detail = request.detail.expect("detail");
        let verdict = checker.handle_packet(T0 + 3_600_000_000_000, &detail);
        violations += verdict.violations.len();
    }
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(violations, 0, "the benchmark's packets are conforming");
    let samples = (packets * ROWS * COLUMNS) as f64;
    println!(
        "\n== stream-api check path ({})",
        if full {
            "full size"
        } else {
            "quick mode: figures not meaningful"
        }
    );
    println!(
        "{packets} RowData packets of {ROWS} rows × {COLUMNS} doubles ({} bytes each): {:.3} s, {:.1} M samples/s on one core, {:.1} ns/sample",
        requests[0].len(),
        elapsed,
        samples / elapsed / 1e6,
        elapsed * 1e9 / samples
    );
}

/// A checker that has seen the session created, its format issued, NewSession and the
/// Configuration on the main stream.
fn ready_checker(names: &[String]) -> Checker {
    let mut checker = Checker::new();
    let request = api::CreateSessionRequest {
        data_source: DS.into(),
        identifier: "bench".into(),
        version: 1,
        utc_offset: Some(prost_types::Duration::default()),
        ..Default::default()
    };
    let response = api::CreateSessionResponse {
        session_key: KEY.into(),
        new_session: None,
        success: true,
    };
    let created = Event::SessionCreated {
        request: &request,
        response: &response,
    };
    assert!(checker.handle(T0, created).is_empty());
    let issued = Event::DataFormatIssued {
        data_source: DS,
        kind: FormatKind::Parameter,
        identifiers: names,
        id: FID,
    };
    assert!(checker.handle(T0, issued).is_empty());
    let new_session = open_data::NewSessionPacket {
        data_source: DS.into(),
        ..Default::default()
    };
    let configuration = open_data::ConfigurationPacket {
        config_id: "bench-config".into(),
        parameter_definitions: names
            .iter()
            .map(|name| open_data::ParameterDefinition {
                identifier: name.clone(),
                application_name: "Civic".into(),
                max_value: 1.0,
                includes_row_data: true,
                ..Default::default()
            })
            .collect(),
        group_definitions: vec![open_data::GroupDefinition {
            application_name: "Civic".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    for (id, (kind, content, essential)) in [
        ("NewSession", new_session.encode_to_vec(), false),
        ("Configuration", configuration.encode_to_vec(), true),
    ]
    .into_iter()
    .enumerate()
    {
        let detail = details(kind, content, id as u64, essential);
        let found = checker.handle(T0, Event::PacketWritten(&detail));
        assert!(found.is_empty(), "{found:?}");
    }
    checker
}

fn details(kind: &str, content: Vec<u8>, id: u64, essential: bool) -> api::DataPacketDetails {
    api::DataPacketDetails {
        message: Some(open_data::Packet {
            r#type: kind.into(),
            session_key: KEY.into(),
            is_essential: essential,
            content: content.into(),
            id,
        }),
        data_source: DS.into(),
        stream: String::new(),
        session_key: KEY.into(),
    }
}

/// Packet `id`, the `n`-th of the run: rows 10 ms apart, values sweeping.
fn row_request(id: u64, n: usize) -> api::WriteDataPacketRequest {
    let first = T0 + (n * ROWS) as u64 * 10_000_000;
    let rows = (0..ROWS)
        .map(|r| open_data::SampleRow {
            list: Some(open_data::sample_row::List::DoubleSamples(
                open_data::DoubleSampleList {
                    samples: (0..COLUMNS)
                        .map(|c| open_data::DoubleSample {
                            value: (r * COLUMNS + c) as f64 * 0.25,
                            status: open_data::DataStatus::Valid as i32,
                        })
                        .collect(),
                },
            )),
        })
        .collect();
    let row_data = open_data::RowDataPacket {
        data_format: Some(open_data::SampleDataFormat {
            format: Some(open_data::sample_data_format::Format::DataFormatIdentifier(
                FID,
            )),
        }),
        timestamps: (0..ROWS as u64).map(|r| first + r * 10_000_000).collect(),
        rows,
    };
    api::WriteDataPacketRequest {
        detail: Some(details("RowData", row_data.encode_to_vec(), id, false)),
    }
}
