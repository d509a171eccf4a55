//! Unit tests of the conformance checker, fed events directly (no gRPC, no clock).

use prost::Message;

use super::*;

const NOW: u64 = 1_789_000_100_000_000_000;
const T0: u64 = 1_789_000_000_000_000_000;
const DS: &str = "car1";
const KEY: &str = "k1";
const S: &str = "chassis";
const FID: u64 = 7;

/// A checker with session `KEY`, format `FID` = [Speed:Car], NewSession + config on "" and `S`.
struct Harness {
    checker: Checker,
    next_id: u64,
}

impl Harness {
    fn new() -> Self {
        let mut h = Harness {
            checker: Checker::new(),
            next_id: 1,
        };
        let request = api::CreateSessionRequest {
            data_source: DS.into(),
            identifier: "run".into(),
            version: 1,
            utc_offset: Some(prost_types::Duration::default()),
            ..Default::default()
        };
        let response = api::CreateSessionResponse {
            session_key: KEY.into(),
            new_session: None,
            success: true,
        };
        assert_eq!(
            h.checker.handle(
                NOW,
                Event::SessionCreated {
                    request: &request,
                    response: &response
                }
            ),
            vec![]
        );
        let ids = ["Speed:Car".to_owned()];
        let issued = Event::DataFormatIssued {
            data_source: DS,
            kind: FormatKind::Parameter,
            identifiers: &ids,
            id: FID,
        };
        assert_eq!(h.checker.handle(NOW, issued), vec![]);
        for stream in ["", S] {
            let new_session = open_data::NewSessionPacket {
                data_source: DS.into(),
                ..Default::default()
            };
            assert_eq!(h.send(stream, "NewSession", false, &new_session), vec![]);
            assert_eq!(
                h.send(
                    stream,
                    "Configuration",
                    true,
                    &config("c1", "Speed:Car", "Car")
                ),
                vec![]
            );
        }
        h
    }

    fn send(
        &mut self,
        stream: &str,
        ty: &str,
        essential: bool,
        content: &impl Message,
    ) -> Vec<Violation> {
        let packet = open_data::Packet {
            r#type: ty.into(),
            session_key: KEY.into(),
            is_essential: essential,
            content: content.encode_to_vec().into(),
            id: self.next_id,
        };
        self.next_id += 1;
        let details = api::DataPacketDetails {
            message: Some(packet),
            data_source: DS.into(),
            stream: stream.into(),
            session_key: KEY.into(),
        };
        self.checker.handle(NOW, Event::PacketWritten(&details))
    }

    fn periodic(&mut self, start: u64, n: usize) -> Vec<Violation> {
        self.send(S, "PeriodicData", false, &periodic(start, n))
    }
}

fn config(id: &str, param: &str, app: &str) -> open_data::ConfigurationPacket {
    open_data::ConfigurationPacket {
        config_id: id.into(),
        parameter_definitions: vec![open_data::ParameterDefinition {
            identifier: param.into(),
            application_name: app.into(),
            max_value: 1.0,
            ..Default::default()
        }],
        group_definitions: vec![open_data::GroupDefinition {
            application_name: "Car".into(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn periodic(start: u64, n: usize) -> open_data::PeriodicDataPacket {
    let samples = (0..n)
        .map(|_| open_data::DoubleSample {
            value: 1.0,
            status: open_data::DataStatus::Valid as i32,
        })
        .collect();
    open_data::PeriodicDataPacket {
        data_format: Some(open_data::SampleDataFormat {
            format: Some(sample_data_format::Format::DataFormatIdentifier(FID)),
        }),
        start_time: start,
        interval: 1_000_000,
        columns: vec![open_data::SampleColumn {
            list: Some(open_data::sample_column::List::DoubleSamples(
                open_data::DoubleSampleList { samples },
            )),
        }],
    }
}

fn rules(found: &[Violation]) -> Vec<&'static str> {
    found.iter().map(|v| v.rule).collect()
}

use open_data::{event_data_format, sample_data_format};

#[test]
fn contiguous_periodic_packets_are_clean_and_gaps_overlaps_are_b7() {
    let mut h = Harness::new();
    assert_eq!(h.periodic(T0, 10), vec![]);
    assert_eq!(h.periodic(T0 + 10_000_000, 10), vec![]);
    let gap = h.periodic(T0 + 30_000_000, 10);
    assert_eq!(rules(&gap), ["B7"]);
    assert!(
        gap[0].message.contains("gap") && gap[0].message.contains("+10000000 ns"),
        "{}",
        gap[0]
    );
    let overlap = h.periodic(T0 + 35_000_000, 10);
    assert!(overlap[0].message.contains("overlaps"), "{}", overlap[0]);
    let single = h.periodic(T0 + 45_000_000, 1);
    assert!(single[0].message.contains("single-sample") && single[0].severity == Severity::Warning);
}

#[test]
fn lap_markers_need_a_byte_source_an_i16_value_and_a_time_inside_the_data() {
    let mut h = Harness::new();
    let mut lap = open_data::MarkerPacket {
        timestamp: T0 + 5_000_000,
        r#type: "Lap Trigger".into(),
        source: "0".into(),
        value: 1,
        ..Default::default()
    };
    assert_eq!(
        rules(&h.send(S, "Marker", true, &lap)),
        ["B8"],
        "no data sent yet"
    );
    assert_eq!(h.periodic(T0, 10), vec![]);
    assert_eq!(h.send(S, "Marker", true, &lap), vec![]);
    assert_eq!(
        h.send("", "Marker", true, &lap),
        vec![],
        "main stream uses the session's data range"
    );
    lap.source = "256".into();
    lap.value = 40_000;
    let found = h.send(S, "Marker", true, &lap);
    assert_eq!(rules(&found), ["B8", "B8"]);
    assert!(found[0].message.contains("\"256\"") && found[1].message.contains("40000"));
}

#[test]
fn config_reuse_naming_and_limits_are_b4() {
    let mut h = Harness::new();
    assert_eq!(
        h.send(S, "Configuration", true, &config("c1", "Speed:Car", "Car")),
        vec![],
        "same content, same id is fine"
    );
    let reused = h.send(S, "Configuration", true, &config("c1", "Rpm:Car", "Car"));
    assert!(reused[0].message.contains("reused"), "{reused:?}");
    let found = h.send(S, "Configuration", false, &config("c2", "Rpm", "Eng"));
    let messages: Vec<&str> = found.iter().map(|v| v.message.as_str()).collect();
    assert_eq!(rules(&found), ["B4", "B4", "B4"], "{messages:?}");
    assert!(
        messages[0].contains("is_essential")
            && messages[1].contains("exactly one ':'")
            && messages[2].contains("group's")
    );
    let mut bad_limits = config("c3", "Rpm:Car", "Car");
    bad_limits.parameter_definitions[0].min_value = 2.0;
    bad_limits.parameter_definitions[0].frequencies = vec![0.0];
    assert_eq!(
        rules(&h.send(S, "Configuration", true, &bad_limits)),
        ["B4", "B4"]
    );
}

#[test]
fn undefined_parameters_and_foreign_format_ids_are_b5() {
    let mut h = Harness::new();
    let ids = ["Rpm:Car".to_owned()];
    let other = Event::DataFormatIssued {
        data_source: "car2",
        kind: FormatKind::Parameter,
        identifiers: &ids,
        id: 8,
    };
    h.checker.handle(NOW, other);
    let mut p = periodic(T0, 10);
    p.data_format = Some(open_data::SampleDataFormat {
        format: Some(sample_data_format::Format::DataFormatIdentifier(8)),
    });
    let found = h.send(S, "PeriodicData", false, &p);
    assert!(
        found[0].rule == "B5" && found[0].message.contains("\"car2\""),
        "{found:?}"
    );
    let list = open_data::ParameterList {
        parameter_identifiers: vec!["Rpm:Car".into()],
    };
    p.data_format = Some(open_data::SampleDataFormat {
        format: Some(sample_data_format::Format::ParameterIdentifiers(list)),
    });
    let found = h.send(S, "PeriodicData", false, &p);
    assert!(
        found[0].rule == "B5" && found[0].message.contains("Rpm:Car"),
        "{found:?}"
    );
}

#[test]
fn unspecified_status_and_column_mismatch_are_b6() {
    let mut h = Harness::new();
    let mut p = periodic(T0, 3);
    if let Some(open_data::sample_column::List::DoubleSamples(l)) = p.columns[0].list.as_mut() {
        l.samples[2].status = open_data::DataStatus::Unspecified as i32;
    }
    p.columns.push(p.columns[0].clone());
    let found = h.send(S, "PeriodicData", false, &p);
    assert!(found.iter().all(|v| v.rule == "B6"), "{found:?}");
    assert!(
        found
            .iter()
            .any(|v| v.message.contains("2 columns for 1 parameters"))
    );
    assert!(
        found
            .iter()
            .any(|v| v.message.contains("sample 2 has DATA_STATUS_UNSPECIFIED"))
    );
}

#[test]
fn writes_for_unknown_or_ended_sessions_are_b2() {
    let mut h = Harness::new();
    let eos = open_data::EndOfSessionPacket {
        data_source: DS.into(),
        ..Default::default()
    };
    assert_eq!(h.send("", "EndOfSession", false, &eos), vec![]);
    let request = api::EndSessionRequest {
        data_source: DS.into(),
        session_key: KEY.into(),
        ..Default::default()
    };
    let response = api::EndSessionResponse {
        end_session: None,
        success: true,
    };
    let found = h.checker.handle(
        NOW,
        Event::SessionEnded {
            request: &request,
            response: &response,
        },
    );
    assert!(
        found.len() == 1 && found[0].message.contains("\"chassis\""),
        "{found:?}"
    );
    assert_eq!(rules(&h.periodic(T0, 10)), ["B2"]);
    let details = api::DataPacketDetails {
        message: Some(open_data::Packet::default()),
        data_source: DS.into(),
        stream: S.into(),
        session_key: "nope".into(),
    };
    let found = h.checker.handle(NOW, Event::PacketWritten(&details));
    assert!(
        rules(&found).contains(&"B2") && rules(&found).contains(&"B1"),
        "{found:?}"
    );
}

#[test]
fn order_within_a_stream_is_b3() {
    let mut h = Harness::new();
    let new_session = open_data::NewSessionPacket {
        data_source: DS.into(),
        ..Default::default()
    };
    let found = h.send(S, "NewSession", false, &new_session);
    assert!(
        found[0].rule == "B3" && found[0].message.contains("not the first"),
        "{found:?}"
    );
    let eos = open_data::EndOfSessionPacket {
        data_source: DS.into(),
        ..Default::default()
    };
    assert_eq!(h.send(S, "EndOfSession", false, &eos), vec![]);
    let late = h.periodic(T0, 10);
    assert!(
        late[0].rule == "B3" && late[0].message.contains("after EndOfSession"),
        "{late:?}"
    );
}

#[test]
fn events_need_an_event_format_and_definition() {
    let mut h = Harness::new();
    let ids = ["1A:Car".to_owned()];
    let issued = Event::DataFormatIssued {
        data_source: DS,
        kind: FormatKind::Event,
        identifiers: &ids,
        id: 9,
    };
    h.checker.handle(NOW, issued);
    let by_id = |id| open_data::EventDataFormat {
        format: Some(event_data_format::Format::DataFormatIdentifier(id)),
    };
    let event = |id| open_data::EventPacket {
        data_format: Some(by_id(id)),
        timestamp: T0,
        raw_values: vec![1.0],
    };
    let undefined = h.send(S, "Event", false, &event(9));
    assert!(
        undefined[0].rule == "B5" && undefined[0].message.contains("no EventDefinition"),
        "{undefined:?}"
    );
    let mut cfg = config("c-ev", "Speed:Car", "Car");
    cfg.event_definitions.push(open_data::EventDefinition {
        identifier: "1A:Car".into(),
        ..Default::default()
    });
    assert_eq!(h.send(S, "Configuration", true, &cfg), vec![]);
    assert_eq!(h.send(S, "Event", false, &event(9)), vec![]);
    let wrong_kind = h.send(S, "Event", false, &event(FID));
    assert!(
        wrong_kind[0].message.contains("Parameter format"),
        "{wrong_kind:?}"
    );
}

/// The details `Harness::send` would build for packet `id` (a producer's spooled copy).
fn spooled(id: u64, stream: &str, ty: &str, content: &impl Message) -> api::DataPacketDetails {
    api::DataPacketDetails {
        message: Some(open_data::Packet {
            r#type: ty.into(),
            session_key: KEY.into(),
            is_essential: ty == "Configuration",
            content: content.encode_to_vec().into(),
            id,
        }),
        data_source: DS.into(),
        stream: stream.into(),
        session_key: KEY.into(),
    }
}

#[test]
fn redeliveries_are_duplicates_and_other_repeats_are_still_flagged() {
    let mut h = Harness::new();
    // One id left unused, to be sent late.
    let skipped = h.next_id;
    h.next_id += 1;
    let id = h.next_id;
    assert_eq!(h.periodic(T0, 10), vec![]);
    assert_eq!(h.periodic(T0 + 10_000_000, 10), vec![]);
    // Ids 1..=4 were the prelude: NewSession and Configuration on "" then on S.
    let again = [
        spooled(id, S, "PeriodicData", &periodic(T0, 10)),
        spooled(
            1,
            "",
            "NewSession",
            &open_data::NewSessionPacket {
                data_source: DS.into(),
                ..Default::default()
            },
        ),
        spooled(4, S, "Configuration", &config("c1", "Speed:Car", "Car")),
    ];
    for details in &again {
        let verdict = h.checker.handle_packet(NOW, details);
        assert_eq!(
            verdict,
            PacketVerdict {
                duplicate: true,
                violations: vec![]
            }
        );
    }
    // Same id, other content: checked as data (B7 overlap) and flagged as reuse (B13).
    let reused = spooled(id, S, "PeriodicData", &periodic(T0 + 5_000_000, 10));
    let verdict = h.checker.handle_packet(NOW, &reused);
    assert!(!verdict.duplicate);
    assert_eq!(rules(&verdict.violations), ["B13", "B7"]);
    // An id never seen but below the last one is out of order (B13), not a duplicate.
    h.next_id = skipped;
    let late = h.periodic(T0 + 15_000_000, 10);
    assert_eq!(rules(&late), ["B13"]);
    assert!(late[0].message.contains("does not increase"), "{}", late[0]);
    // A redelivery into an ended session is still a write after EndSession (B2).
    let end = api::EndSessionRequest {
        data_source: DS.into(),
        session_key: KEY.into(),
        ..Default::default()
    };
    let ended = api::EndSessionResponse {
        end_session: None,
        success: true,
    };
    let _ = h.checker.handle(
        NOW,
        Event::SessionEnded {
            request: &end,
            response: &ended,
        },
    );
    let verdict = h.checker.handle_packet(NOW, &again[2]);
    assert!(verdict.duplicate);
    assert_eq!(rules(&verdict.violations), ["B2"]);
    h.next_id = 100;
    let fresh = h.periodic(T0 + 25_000_000, 10);
    assert_eq!(rules(&fresh), ["B2"], "new data after EndSession");
}
