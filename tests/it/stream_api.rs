//! The test Stream API over real TCP: server behaviour (§10 A), one negative test per checked
//! B-rule (plain and strict), recording, inspect and restart.

use open_streaming::{api, key_generator, open_data};
use stream_api::inspect::read_recording;
use tonic::Code;

use crate::util::{self, DS, INTERVAL, Producer, RPM, SPEED, STREAM, T0};

mod redelivery;

/// 100 samples of SPEED from `start`, values `base + i`.
fn speed_values(base: f64) -> Vec<f64> {
    (0..100).map(|i| base + f64::from(i)).collect()
}

#[tokio::test]
async fn conforming_session_has_no_violations_and_round_trips_samples() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rec.osr");
    let (server, clients) = util::start(true, Some(path.clone())).await;
    let mut p = Producer::create(clients.clone(), util::create_request()).await;
    p.prelude().await;

    // Two contiguous periodic packets over WriteDataPackets (half-closed, answered promptly).
    let second_start = T0 + 100 * u64::from(INTERVAL);
    let batch = vec![
        p.details(
            STREAM,
            "PeriodicData",
            false,
            &util::periodic(p.speed_fid, T0, &speed_values(0.0)),
        ),
        p.details(
            STREAM,
            "PeriodicData",
            false,
            &util::periodic(p.speed_fid, second_start, &speed_values(100.0)),
        ),
    ];
    let request = api::WriteDataPacketsRequest { details: batch };
    let mut writer = clients.writer.clone();
    writer
        .write_data_packets(tokio_stream::iter(vec![request]))
        .await
        .expect("write packets");

    let rows = open_data::RowDataPacket {
        data_format: util::by_id(p.both_fid),
        timestamps: vec![T0 + 5, T0 + 15_000_005],
        rows: vec![util::row(&[7.5, 3000.0]), util::row(&[8.5, 3100.0])],
    };
    p.write(STREAM, "RowData", false, &rows)
        .await
        .expect("row data");
    let rpm_fid = p.format_id(&[RPM]).await;
    let synchro = open_data::SynchroDataPacket {
        data_format: util::by_id(rpm_fid),
        start_time: T0 + 20_000_000,
        intervals: vec![1_000, 2_000],
        columns: vec![util::column(&[3200.0, 3300.0, 3400.0])],
    };
    p.write(STREAM, "SynchroData", false, &synchro)
        .await
        .expect("synchro data");
    for stream in ["", STREAM] {
        p.write(stream, "Marker", true, &util::lap(T0 + 1_000_000_000, 1))
            .await
            .expect("lap");
    }
    assert!(p.finish().await.success);
    assert_eq!(
        server.violations(),
        vec![],
        "a conforming producer is clean"
    );
    server.shutdown().await.expect("shutdown");

    let recording = read_recording(&path).expect("read recording");
    let samples = recording.samples();
    let mut expected: Vec<(u64, f64)> = (0..200)
        .map(|i| (T0 + i * u64::from(INTERVAL), i as f64))
        .collect();
    expected.extend([(T0 + 5, 7.5), (T0 + 15_000_005, 8.5)]);
    expected.sort_by_key(|s| s.0);
    assert_eq!(samples[SPEED], expected);
    assert_eq!(
        samples[RPM],
        vec![
            (T0 + 5, 3000.0),
            (T0 + 15_000_005, 3100.0),
            (T0 + 20_000_000, 3200.0),
            (T0 + 20_001_000, 3300.0),
            (T0 + 20_003_000, 3400.0),
        ]
    );
    let markers = recording.markers();
    assert_eq!(markers.len(), 2);
    assert_eq!(markers[1].stream, STREAM);
    assert_eq!(markers[1].marker.value, 1);
    let summary = recording.summary();
    assert_eq!(summary.sessions.len(), 1);
    assert!(summary.sessions[0].ended_ns.is_some());
    assert_eq!(summary.sessions[0].streams[STREAM], 8);
    assert_eq!(summary.sessions[0].streams[""], 4);
    let speed = summary
        .parameters
        .iter()
        .find(|s| s.identifier == SPEED)
        .expect("speed summary");
    assert_eq!((speed.samples, speed.units.as_str()), (202, "u"));
    assert!(
        (speed.mean_rate_hz - 201.0 / 1.99).abs() < 1e-6,
        "{}",
        speed.mean_rate_hz
    );
    let text = summary.to_string();
    assert!(
        text.contains("Test run") && text.contains("Speed:Car [u]: 202 samples"),
        "{text}"
    );
    assert!(text.contains("Protocol violations (0)"), "{text}");
}

/// Commits the violation of `rule` after a conforming prelude.
async fn violate(rule: &str, p: &mut Producer) -> Result<(), tonic::Status> {
    let fid = p.speed_fid;
    match rule {
        "B1" => {
            p.write(
                STREAM,
                "PeriodicDataPacket",
                false,
                &util::periodic(fid, T0, &speed_values(0.0)),
            )
            .await
        }
        "B2" => {
            let mut d = p.details(
                STREAM,
                "PeriodicData",
                false,
                &util::periodic(fid, T0, &speed_values(0.0)),
            );
            if let Some(packet) = d.message.as_mut() {
                packet.session_key = "someone-else".into();
            }
            p.write_details(d).await
        }
        "B3" => {
            p.write(
                "brakes",
                "PeriodicData",
                false,
                &util::periodic(fid, T0, &speed_values(0.0)),
            )
            .await
        }
        "B4" => {
            let mut cfg = util::config("two-groups", &[SPEED]);
            cfg.group_definitions.push(cfg.group_definitions[0].clone());
            p.write(STREAM, "Configuration", true, &cfg).await
        }
        "B5" => {
            p.write(
                STREAM,
                "PeriodicData",
                false,
                &util::periodic(987_654, T0, &speed_values(0.0)),
            )
            .await
        }
        "B6" => {
            let rows = open_data::RowDataPacket {
                data_format: util::by_id(fid),
                timestamps: vec![T0, T0 + 1],
                rows: vec![util::row(&[1.0])],
            };
            p.write(STREAM, "RowData", false, &rows).await
        }
        "B7" => {
            p.write(
                STREAM,
                "PeriodicData",
                false,
                &util::periodic(fid, T0 / 1_000_000, &speed_values(0.0)),
            )
            .await
        }
        "B8" => {
            p.write(
                STREAM,
                "PeriodicData",
                false,
                &util::periodic(fid, T0, &speed_values(0.0)),
            )
            .await?;
            p.write(
                STREAM,
                "Marker",
                true,
                &util::lap(T0 + 3_600_000_000_000, 1),
            )
            .await
        }
        "B9" => {
            p.write(
                STREAM,
                "PeriodicData",
                true,
                &util::periodic(fid, T0, &speed_values(0.0)),
            )
            .await
        }
        "B10" => {
            let big: Vec<f64> = (0..100_000).map(f64::from).collect();
            p.write(
                STREAM,
                "PeriodicData",
                false,
                &util::periodic(fid, T0, &big),
            )
            .await
        }
        "B11" => {
            p.write(
                "Main",
                "NewSession",
                false,
                &open_data::NewSessionPacket {
                    data_source: DS.into(),
                    ..Default::default()
                },
            )
            .await
        }
        "B12" => {
            let request = api::CreateSessionRequest {
                version: 0,
                ..util::create_request()
            };
            p.clients.session.create_session(request).await.map(|_| ())
        }
        "B13" => {
            p.next_id = 1;
            p.write(
                STREAM,
                "PeriodicData",
                false,
                &util::periodic(fid, T0, &speed_values(0.0)),
            )
            .await
        }
        "B14" => {
            let request = api::WriteInfoPacketRequest {
                message: None,
                r#type: api::InfoType::SessionInfo as i32,
            };
            p.clients
                .writer
                .write_info_packet(request)
                .await
                .map(|_| ())
        }
        other => panic!("no negative case for {other}"),
    }
}

#[tokio::test]
async fn every_checked_rule_has_a_negative_case() {
    let warnings_only = ["B13", "B14"];
    for rule in [
        "B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B9", "B10", "B11", "B12", "B13", "B14",
    ] {
        for strict in [false, true] {
            let (server, clients) = util::start(strict, None).await;
            let mut p = Producer::create(clients, util::create_request()).await;
            p.prelude().await;
            assert_eq!(server.violations(), vec![], "{rule}: prelude is clean");
            let result = violate(rule, &mut p).await;
            let counts = server.violation_counts();
            assert!(
                counts.get(rule).copied().unwrap_or(0) >= 1,
                "{rule} (strict={strict}) not flagged: {counts:?}"
            );
            // Only the rule under test (B3's stray stream also lacks the parameter definitions: B5).
            let stray: Vec<_> = counts
                .keys()
                .filter(|r| **r != rule && !(rule == "B3" && **r == "B5"))
                .collect();
            assert!(stray.is_empty(), "{rule}: also flagged {stray:?}");
            let flagged = server
                .violations()
                .into_iter()
                .find(|v| v.rule == rule)
                .expect("violation");
            assert!(!flagged.message.is_empty());
            match (strict && !warnings_only.contains(&rule), result) {
                (true, Err(status)) => {
                    assert_eq!(status.code(), Code::InvalidArgument, "{rule}: {status:?}")
                }
                (true, Ok(())) => panic!("{rule}: strict mode accepted a violating request"),
                (false, result) => assert!(result.is_ok(), "{rule} (strict={strict}): {result:?}"),
            }
            server.shutdown().await.expect("shutdown");
        }
    }
}

#[tokio::test]
async fn end_session_without_end_of_session_is_b3_and_late_writes_are_b2() {
    let (server, clients) = util::start(false, None).await;
    let mut p = Producer::create(clients, util::create_request()).await;
    p.prelude().await;
    assert!(p.end_session().await.success);
    let v = server.violations();
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(
        v[0].rule == "B3" && v[0].message.contains("\"chassis\""),
        "{v:?}"
    );
    p.write(
        STREAM,
        "PeriodicData",
        false,
        &util::periodic(p.speed_fid, T0, &speed_values(0.0)),
    )
    .await
    .expect("accepted");
    assert!(
        server
            .violations()
            .iter()
            .any(|v| v.rule == "B2" && v.message.contains("after EndSession"))
    );
    server.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn oversized_request_is_resource_exhausted_and_b10() {
    let (server, clients) = util::start(false, None).await;
    let mut p = Producer::create(clients, util::create_request()).await;
    let big: Vec<f64> = (0..400_000).map(f64::from).collect();
    let status = p
        .write(STREAM, "PeriodicData", false, &util::periodic(1, T0, &big))
        .await
        .expect_err("too large");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(server.violation_counts().get("B10"), Some(&1));
    server.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn strict_write_data_packets_ends_the_stream_with_invalid_argument() {
    let (server, clients) = util::start(true, None).await;
    let mut p = Producer::create(clients.clone(), util::create_request()).await;
    p.prelude().await;
    let bad = p.details(
        STREAM,
        "RowDataPacket",
        false,
        &util::periodic(p.speed_fid, T0, &speed_values(0.0)),
    );
    let mut writer = clients.writer.clone();
    let request = api::WriteDataPacketsRequest { details: vec![bad] };
    let status = writer
        .write_data_packets(tokio_stream::iter(vec![request]))
        .await
        .expect_err("rejected");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("B1"), "{}", status.message());
    server.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn session_management_mirrors_the_real_server() {
    let (server, mut clients) = util::start(false, None).await;
    let mut starts = clients
        .session
        .get_session_start_notification(api::GetSessionStartNotificationRequest {
            data_source: DS.into(),
        })
        .await
        .expect("subscribe")
        .into_inner();
    let request = api::CreateSessionRequest {
        r#type: String::new(),
        version: 0,
        ..util::create_request()
    };
    let created = clients
        .session
        .create_session(request)
        .await
        .expect("create")
        .into_inner();
    assert!(created.success);
    uuid::Uuid::parse_str(&created.session_key).expect("session key is a GUID");
    let new_session = created.new_session.expect("NewSessionPacket echoed");
    let info = new_session.session_info.expect("session info");
    assert_eq!(
        (info.r#type.as_str(), info.version, info.identifier.as_str()),
        ("Session", 0, "Test run")
    );
    assert_eq!(new_session.utc_offset.map(|d| d.seconds), Some(3600));
    assert!(
        new_session.topic_partition_offsets.contains_key("car1:0"),
        "{:?}",
        new_session.topic_partition_offsets
    );
    let note = starts.message().await.expect("notification").expect("open");
    assert_eq!(note.session_key, created.session_key);

    let key = created.session_key.clone();
    let got = clients
        .session
        .get_session_info(api::GetSessionInfoRequest {
            session_key: key.clone(),
        })
        .await
        .expect("info")
        .into_inner();
    assert!(got.success && !got.is_complete && got.data_source == DS);
    let current = clients
        .session
        .get_current_sessions(api::GetCurrentSessionsRequest {
            data_source: DS.into(),
        })
        .await
        .expect("current")
        .into_inner();
    assert_eq!(current.session_keys, vec![key.clone()]);
    let renamed = api::UpdateSessionIdentifierRequest {
        session_key: key.clone(),
        identifier: "Renamed".into(),
    };
    assert!(
        clients
            .session
            .update_session_identifier(renamed)
            .await
            .expect("rename")
            .into_inner()
            .success
    );

    let unknown = "00000000-0000-0000-0000-000000000000".to_owned();
    let end = api::EndSessionRequest {
        session_key: unknown.clone(),
        ..Default::default()
    };
    assert!(
        !clients
            .session
            .end_session(end)
            .await
            .expect("OK status")
            .into_inner()
            .success
    );
    let info = clients
        .session
        .get_session_info(api::GetSessionInfoRequest {
            session_key: unknown.clone(),
        })
        .await
        .expect("OK status");
    assert!(!info.into_inner().success);
    let rename = api::UpdateSessionIdentifierRequest {
        session_key: unknown.clone(),
        identifier: "x".into(),
    };
    assert!(
        !clients
            .session
            .update_session_identifier(rename)
            .await
            .expect("OK status")
            .into_inner()
            .success
    );
    let details = api::UpdateSessionDetailsRequest {
        session_key: unknown,
        details: Default::default(),
    };
    assert!(
        !clients
            .session
            .update_session_details(details)
            .await
            .expect("OK status")
            .into_inner()
            .success
    );
    drop(starts);
    server.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn data_format_ids_are_memoised_and_round_trip() {
    let (server, mut clients) = util::start(false, None).await;
    let mut ask = async |params: &[&str]| {
        let request = api::GetParameterDataFormatIdRequest {
            data_source: DS.into(),
            parameters: params.iter().map(|p| p.to_string()).collect(),
        };
        clients
            .formats
            .get_parameter_data_format_id(request)
            .await
            .expect("id")
            .into_inner()
            .data_format_identifier
    };
    let ab = ask(&[SPEED, RPM]).await;
    let again = ask(&[SPEED, RPM]).await;
    let ba = ask(&[RPM, SPEED]).await;
    assert!(ab != 0 && ab == again && ba != ab, "{ab} {again} {ba}");
    let list = clients
        .formats
        .get_parameters_list(api::GetParametersListRequest {
            data_source: DS.into(),
            data_format_identifier: ba,
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(list.parameters, vec![RPM.to_owned(), SPEED.to_owned()]);
    let unknown = api::GetParametersListRequest {
        data_source: DS.into(),
        data_format_identifier: 424_242,
    };
    assert!(
        clients
            .formats
            .get_parameters_list(unknown)
            .await
            .expect("OK")
            .into_inner()
            .parameters
            .is_empty()
    );
    let event = api::GetEventDataFormatIdRequest {
        data_source: DS.into(),
        event: "1A:Car".into(),
    };
    let eid = clients
        .formats
        .get_event_data_format_id(event)
        .await
        .expect("event id")
        .into_inner()
        .data_format_identifier;
    assert!(eid != 0 && eid != ab && eid != ba);
    let got = clients
        .formats
        .get_event(api::GetEventRequest {
            data_source: DS.into(),
            data_format_identifier: eid,
        })
        .await
        .expect("event");
    assert_eq!(got.into_inner().event, "1A:Car");
    server.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn key_generator_issues_unique_keys() {
    use key_generator::generate_unique_key_response::Key;
    let (server, mut clients) = util::start(false, None).await;
    let mut keys = Vec::new();
    for ty in [
        key_generator::KeyType::Ulong,
        key_generator::KeyType::Ulong,
        key_generator::KeyType::String,
    ] {
        let resp = clients
            .keys
            .generate_unique_key(key_generator::GenerateUniqueKeyRequest { r#type: ty as i32 })
            .await
            .expect("key");
        keys.push(resp.into_inner().key.expect("key set"));
    }
    match keys.as_slice() {
        [Key::UlongKey(a), Key::UlongKey(b), Key::StringKey(s)] => {
            assert!(*a != 0 && *b != 0 && a != b);
            uuid::Uuid::parse_str(s).expect("GUID");
        }
        other => panic!("unexpected keys {other:?}"),
    }
    let bad = key_generator::GenerateUniqueKeyRequest {
        r#type: key_generator::KeyType::Unspecified as i32,
    };
    let status = clients
        .keys
        .generate_unique_key(bad)
        .await
        .expect_err("unspecified");
    assert_eq!(status.code(), Code::InvalidArgument);
    server.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_session_survives_a_server_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rec.osr");
    let (server, clients) = util::start(true, Some(path.clone())).await;
    let mut p = Producer::create(clients, util::create_request()).await;
    p.prelude().await;
    p.write(
        STREAM,
        "PeriodicData",
        false,
        &util::periodic(p.speed_fid, T0, &speed_values(0.0)),
    )
    .await
    .expect("data");
    server.shutdown().await.expect("shutdown");

    let (server, clients) = util::start(true, Some(path.clone())).await;
    p.clients = clients;
    let info = p
        .clients
        .session
        .get_session_info(api::GetSessionInfoRequest {
            session_key: p.key.clone(),
        })
        .await
        .expect("info");
    assert!(
        info.into_inner().success,
        "session rebuilt from the recording"
    );
    assert_eq!(p.format_id(&[SPEED]).await, p.speed_fid, "memo rebuilt");
    let fresh = p.format_id(&[RPM]).await;
    assert!(fresh > p.both_fid, "id counter rebuilt: {fresh}");
    let next = T0 + 100 * u64::from(INTERVAL);
    p.write(
        STREAM,
        "PeriodicData",
        false,
        &util::periodic(p.speed_fid, next, &speed_values(100.0)),
    )
    .await
    .expect("continue");
    assert!(p.finish().await.success);
    assert_eq!(server.violations(), vec![], "no B2/B3/B7 after restart");
    server.shutdown().await.expect("shutdown");
    let samples = read_recording(&path).expect("read").samples();
    assert_eq!(samples[SPEED].len(), 200);
}

#[tokio::test]
async fn a_torn_recording_is_read_and_resumed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rec.osr");
    let (server, clients) = util::start(false, Some(path.clone())).await;
    let mut p = Producer::create(clients, util::create_request()).await;
    p.prelude().await;
    server.shutdown().await.expect("shutdown");
    let bytes = std::fs::read(&path).expect("read");
    std::fs::write(&path, &bytes[..bytes.len() - 3]).expect("tear");

    let torn = read_recording(&path).expect("torn recording still reads");
    assert!(torn.truncated());
    assert_eq!(torn.sessions().len(), 1);
    assert!(
        torn.summary()
            .to_string()
            .contains("torn last record ignored")
    );

    let (server, clients) = util::start(false, Some(path.clone())).await;
    p.clients = clients;
    p.finish().await;
    server.shutdown().await.expect("shutdown");
    let resumed = read_recording(&path).expect("resumed");
    assert!(!resumed.truncated());
    assert!(resumed.sessions()[0].ended_ns.is_some());
}

#[tokio::test]
async fn violations_are_recorded_as_error_packets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rec.osr");
    let (server, clients) = util::start(false, Some(path.clone())).await;
    let mut p = Producer::create(clients, util::create_request()).await;
    p.prelude().await;
    p.write(
        STREAM,
        "PeriodicData",
        true,
        &util::periodic(p.speed_fid, T0, &speed_values(0.0)),
    )
    .await
    .expect("accepted");
    let live = server.violations();
    server.shutdown().await.expect("shutdown");
    let recorded = read_recording(&path).expect("read").violations();
    assert_eq!(recorded, live);
    assert_eq!(recorded[0].rule, "B9");
}

#[tokio::test]
async fn an_open_write_stream_is_awaited_by_stats_and_ended_by_shutdown() {
    let (server, clients) = util::start(false, None).await;
    let mut p = Producer::create(clients.clone(), util::create_request()).await;
    p.prelude().await;
    let before = server.stats().packets;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut writer = clients.writer.clone();
    // The producer never half-closes: the call stays open, as rule 49 recommends.
    let call = tokio::spawn(async move {
        writer
            .write_data_packets(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    let bad = p.details(
        STREAM,
        "PeriodicData",
        true,
        &util::periodic(p.speed_fid, T0, &speed_values(0.0)),
    );
    tx.send(api::WriteDataPacketsRequest { details: vec![bad] })
        .await
        .expect("send");
    let stats = server.wait_until(|s| s.packets > before).await;
    assert_eq!(stats.packets, before + 1);
    assert_eq!(server.violation_counts().get("B9"), Some(&1));
    server
        .shutdown()
        .await
        .expect("shutdown with an open stream");
    // The server ended the call; whatever status the client saw, it is no longer pending.
    let _ = call.await.expect("call task");
    drop(tx);
}

#[tokio::test]
async fn a_foreign_or_corrupt_recording_is_a_clear_error() {
    use stream_api::{ServerOptions, StreamApiError, recording::RecordingError};
    let dir = tempfile::tempdir().expect("tempdir");
    let foreign = dir.path().join("notes.txt");
    std::fs::write(&foreign, "hello, not a recording").expect("write");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let options = ServerOptions {
        strict: false,
        record: Some(foreign.clone()),
    };
    let err = stream_api::spawn(listener, options)
        .await
        .expect_err("bad magic");
    assert!(matches!(
        err,
        StreamApiError::Recording(RecordingError::BadMagic { .. })
    ));
    assert!(err.to_string().contains("notes.txt"), "{err}");
    assert_eq!(
        std::fs::read(&foreign).expect("read"),
        b"hello, not a recording",
        "left untouched"
    );

    // A whole record whose payload is not a DataPacketDetails (field 1 claims 5 bytes, has 1).
    let corrupt = dir.path().join("corrupt.osr");
    let mut bytes = b"ECUBSAR\x01".to_vec();
    bytes.push(23);
    bytes.extend_from_slice(&T0.to_le_bytes());
    bytes.extend_from_slice(&[3, 0x0a, 0x05, 0x00]);
    std::fs::write(&corrupt, &bytes).expect("write");
    let err = read_recording(&corrupt).expect_err("undecodable payload");
    let text = err.to_string();
    assert!(
        text.contains("corrupt.osr")
            && text.contains("record 0")
            && text.contains("DataPacketDetails"),
        "{text}"
    );
}

#[tokio::test]
async fn end_session_notifies_and_completes_the_session_info() {
    let (server, mut clients) = util::start(false, None).await;
    let mut stops = clients
        .session
        .get_session_stop_notification(api::GetSessionStopNotificationRequest {
            data_source: DS.into(),
        })
        .await
        .expect("subscribe")
        .into_inner();
    let mut p = Producer::create(clients.clone(), util::create_request()).await;
    p.prelude().await;
    let ended = p.finish().await;
    assert!(ended.success);
    let offsets = ended
        .end_session
        .expect("EndOfSessionPacket")
        .topic_partition_offsets;
    assert_eq!(
        offsets.get("car1.chassis:0"),
        Some(&3),
        "NewSession, Configuration, EndOfSession"
    );
    let note = stops.message().await.expect("notification").expect("open");
    assert_eq!(
        (note.session_key.as_str(), note.data_source.as_str()),
        (p.key.as_str(), DS)
    );
    let info = clients
        .session
        .get_session_info(api::GetSessionInfoRequest {
            session_key: p.key.clone(),
        })
        .await
        .expect("info")
        .into_inner();
    assert!(info.is_complete && info.termination_time.is_some());
    assert_eq!(info.streams, vec![STREAM.to_owned()]);
    let current = clients
        .session
        .get_current_sessions(api::GetCurrentSessionsRequest {
            data_source: DS.into(),
        })
        .await
        .expect("current");
    assert!(current.into_inner().session_keys.is_empty());
    assert_eq!(server.stats().sessions_ended, 1);
    drop(stops);
    server.shutdown().await.expect("shutdown");
}

/// Sequential unary writes of large packets are answered without a delayed-ACK stall: the
/// server sets TCP_NODELAY on its connections, so 20 calls take far less than the 20 × 40 ms a
/// stalled answer costs each (docs/performance.md, the replay case).
#[tokio::test]
async fn large_unary_writes_are_answered_without_a_delayed_ack_stall() {
    let (server, clients) = util::start(false, None).await;
    let mut writer = clients.writer.clone();
    let request = api::WriteDataPacketRequest {
        detail: Some(api::DataPacketDetails {
            message: Some(open_data::Packet {
                r#type: "Metadata".into(),
                session_key: "no-such-session".into(),
                is_essential: false,
                // 256 KiB: large enough for the server to send flow-control updates mid-call.
                content: vec![0; 256 * 1024].into(),
                id: 1,
            }),
            data_source: DS.into(),
            stream: String::new(),
            session_key: "no-such-session".into(),
        }),
    };
    // The first call also sets the connection up; it is not timed.
    writer
        .write_data_packet(request.clone())
        .await
        .expect("first write");
    let started = std::time::Instant::now();
    for _ in 0..20 {
        writer
            .write_data_packet(request.clone())
            .await
            .expect("write");
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed < std::time::Duration::from_millis(400),
        "20 sequential 256 KiB writes took {elapsed:?}"
    );
    server.shutdown().await.expect("shutdown");
}
