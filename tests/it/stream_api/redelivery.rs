//! The test Stream API under a producer that re-sends unacknowledged packets (rule 48) and
//! continues after server restarts: duplicates are counted not flagged, a killed server restarts
//! from its recording with sessions, format ids, configurations and seen ids, and a session
//! linked to an earlier one may announce itself again.

use std::path::Path;
use std::process::Child;
use std::sync::mpsc as std_mpsc;

use open_streaming::{api, open_data};
use stream_api::inspect::read_recording;

use super::speed_values;
use crate::util::{self, DS, INTERVAL, Producer, SPEED, STREAM, T0};

/// The periodic SPEED packet `n` of a gap-free series (100 samples each).
fn nth_periodic(p: &mut Producer, n: u64) -> api::DataPacketDetails {
    let start = T0 + n * 100 * u64::from(INTERVAL);
    let values = speed_values(n as f64 * 100.0);
    p.details(
        STREAM,
        "PeriodicData",
        false,
        &util::periodic(p.speed_fid, start, &values),
    )
}

/// GetSessionInfo for `key` on `p`'s clients.
async fn session_info(p: &mut Producer, key: &str) -> api::GetSessionInfoResponse {
    let request = api::GetSessionInfoRequest {
        session_key: key.to_owned(),
    };
    p.clients
        .session
        .get_session_info(request)
        .await
        .expect("session info")
        .into_inner()
}

/// Drops the last `n` bytes of `path`: the torn record a kill mid-write leaves.
fn tear(path: &Path, n: usize) {
    let bytes = std::fs::read(path).expect("read recording");
    std::fs::write(path, &bytes[..bytes.len() - n]).expect("tear recording");
}

#[tokio::test]
async fn a_redelivered_packet_is_counted_not_flagged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rec.osr");
    let (server, clients) = util::start(true, Some(path.clone())).await;
    let mut p = Producer::create(clients, util::create_request()).await;
    p.prelude().await;
    // The prelude's first packet, byte for byte: NewSession on "" with id 1.
    let mut first = p.details("", "NewSession", false, &new_session());
    if let Some(m) = first.message.as_mut() {
        m.id = 1;
    }
    let a = nth_periodic(&mut p, 0);
    let b = nth_periodic(&mut p, 1);
    for d in [&a, &b, &first, &a, &b] {
        p.write_details(d.clone())
            .await
            .expect("strict server accepts");
    }
    let stats = server.stats();
    assert_eq!(stats.duplicate_packets, 3, "{stats:?}");
    assert_eq!(
        server.violations(),
        vec![],
        "redeliveries are not violations"
    );

    // The same id with other content is new data under a reused id: checked and flagged.
    let mut reused = nth_periodic(&mut p, 2);
    let reused_id = a.message.as_ref().map(|m| m.id).expect("packet");
    if let Some(m) = reused.message.as_mut() {
        m.id = reused_id;
    }
    p.write_details(reused).await.expect("B13 is a warning");
    assert_eq!(server.violation_counts().get("B13"), Some(&1));
    assert_eq!(server.stats().duplicate_packets, 3);
    assert!(p.finish().await.success);
    // A redelivery after EndSession is still a write after EndSession.
    let late = p.write_details(b.clone()).await;
    assert!(late.is_err(), "strict mode rejects B2");
    assert_eq!(server.violation_counts().get("B2"), Some(&1));
    assert_eq!(server.stats().duplicate_packets, 4, "still a redelivery");
    server.shutdown().await.expect("shutdown");

    let recording = read_recording(&path).expect("read");
    let ids: Vec<u64> = recording.duplicates().iter().map(|d| d.id).collect();
    let id = |d: &api::DataPacketDetails| d.message.as_ref().map(|m| m.id).expect("packet");
    assert_eq!(
        ids,
        vec![id(&first), id(&a), id(&b), id(&b)],
        "in arrival order"
    );
    assert_eq!(recording.sessions()[0].duplicates, 4);
    assert_eq!(
        recording.samples()[SPEED].len(),
        300,
        "packets 0, 1 and the reused-id packet, each once"
    );
    let text = recording.summary().to_string();
    assert!(text.contains("Duplicate packets (4)"), "{text}");
}

#[tokio::test]
async fn a_killed_server_restarts_from_its_torn_recording() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rec.osr");
    let (server, clients) = util::start(true, Some(path.clone())).await;
    let mut p = Producer::create(clients, util::create_request()).await;
    p.prelude().await;
    let (a, b) = (nth_periodic(&mut p, 0), nth_periodic(&mut p, 1));
    p.write_details(a.clone()).await.expect("a");
    p.write_details(b.clone()).await.expect("b");
    server.abort();
    // The kill tore b's record: the restarted server never saw b.
    tear(&path, 3);

    let (server, clients) = util::start(true, Some(path.clone())).await;
    p.clients = clients;
    let key = p.key.clone();
    let info = session_info(&mut p, &key).await;
    assert!(info.success && !info.is_complete, "still known and open");
    assert_eq!(p.format_id(&[SPEED]).await, p.speed_fid, "same format id");
    // The producer had no acknowledgement it trusts: it re-sends both, then goes on.
    p.write_details(a).await.expect("a again");
    p.write_details(b).await.expect("b again");
    let c = nth_periodic(&mut p, 2);
    p.write_details(c).await.expect("c");
    let stats = server.stats();
    assert_eq!(
        (stats.duplicate_packets, stats.packets),
        (1, 3),
        "a was seen before the kill, b was torn off"
    );
    assert!(p.finish().await.success);
    assert_eq!(
        server.violations(),
        vec![],
        "configuration and order survived"
    );
    server.shutdown().await.expect("shutdown");
    let samples = read_recording(&path).expect("read").samples();
    assert_eq!(samples[SPEED].len(), 300, "each packet's samples once");
}

#[tokio::test]
async fn a_session_linked_to_an_earlier_one_may_announce_itself_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rec.osr");
    let (server, clients) = util::start(true, Some(path.clone())).await;
    let mut old = Producer::create(clients.clone(), util::create_request()).await;
    old.prelude().await;
    let a = nth_periodic(&mut old, 0);
    old.write_details(a).await.expect("old data");

    // What a producer does when GetSessionInfo no longer knows its session (rule 11).
    let request = api::CreateSessionRequest {
        associate_session_key: vec![old.key.clone()],
        ..util::create_request()
    };
    let mut new = Producer::create(clients, request).await;
    new.prelude().await;
    assert_eq!(
        new.speed_fid, old.speed_fid,
        "formats re-requested: memoised"
    );
    let b = nth_periodic(&mut new, 1);
    new.write_details(b).await.expect("new data");
    let link = api::AddAssociateSessionRequest {
        session_key: new.key.clone(),
        associate_session_key: "earlier".into(),
    };
    let added = new.clients.session.add_associate_session(link).await;
    assert!(added.expect("add associate").into_inner().success);
    let key = new.key.clone();
    let info = session_info(&mut new, &key).await;
    assert_eq!(
        info.associate_session_keys,
        vec![old.key.clone(), "earlier".to_owned()]
    );
    assert!(new.finish().await.success);
    assert!(old.finish().await.success);
    assert_eq!(
        server.violations(),
        vec![],
        "re-announcing is not a violation"
    );
    server.shutdown().await.expect("shutdown");

    let recording = read_recording(&path).expect("read");
    let linked = &recording.sessions()[1];
    assert_eq!(
        linked.associates,
        vec![old.key.clone(), "earlier".to_owned()]
    );
    let text = recording.summary().to_string();
    assert!(
        text.contains(&format!("associated with {}", old.key)),
        "{text}"
    );
}

/// `ecu-bridge stream-api --record FILE` on port 0; stderr lines to the receiver.
fn start_process(record: &Path) -> (Child, std_mpsc::Receiver<String>) {
    let record = record.to_str().expect("utf-8 path");
    // No notify socket listens there: the server only needs the test's folder.
    let notify = Path::new(record).with_file_name("notify.sock");
    crate::daemon::start(
        &["stream-api", "--listen", "127.0.0.1:0", "--record", record],
        &notify,
    )
}

/// Sends `signal` to `child` and waits for it to exit.
fn signal(child: &mut Child, signal: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    nix::sys::signal::kill(pid, signal).expect("signal");
    child.wait().expect("wait");
}

#[tokio::test]
async fn a_sigkilled_stream_api_process_restarts_with_its_sessions() {
    use nix::sys::signal::Signal;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rec.osr");
    let (mut child, lines) = start_process(&path);
    let addr = crate::daemon::logged_address(&lines, "Stream API listening", "address=");
    let mut p = Producer::create(
        util::connect(addr.parse().expect("addr")).await,
        util::create_request(),
    )
    .await;
    p.prelude().await;
    let (a, b) = (nth_periodic(&mut p, 0), nth_periodic(&mut p, 1));
    p.write_details(a.clone()).await.expect("a");
    p.write_details(b.clone()).await.expect("b");
    signal(&mut child, Signal::SIGKILL);
    // As if the kill came mid-write: b's record is torn.
    tear(&path, 3);

    let (mut child, lines) = start_process(&path);
    let addr = crate::daemon::logged_address(&lines, "Stream API listening", "address=");
    p.clients = util::connect(addr.parse().expect("addr")).await;
    let key = p.key.clone();
    let info = session_info(&mut p, &key).await;
    assert!(info.success && !info.is_complete, "still known and open");
    assert_eq!(p.format_id(&[SPEED]).await, p.speed_fid, "same format id");
    p.write_details(a.clone()).await.expect("a again");
    p.write_details(b).await.expect("b again");
    let c = nth_periodic(&mut p, 2);
    p.write_details(c).await.expect("c");
    assert!(p.finish().await.success);
    signal(&mut child, Signal::SIGTERM);

    let recording = read_recording(&path).expect("read");
    assert_eq!(recording.violations(), vec![]);
    let duplicates: Vec<u64> = recording.duplicates().iter().map(|d| d.id).collect();
    assert_eq!(
        duplicates,
        a.message.iter().map(|m| m.id).collect::<Vec<_>>()
    );
    assert_eq!(recording.samples()[SPEED].len(), 300, "a, b, c once each");
    assert!(recording.sessions()[0].ended_ns.is_some());
}

fn new_session() -> open_data::NewSessionPacket {
    open_data::NewSessionPacket {
        data_source: DS.into(),
        ..Default::default()
    }
}
