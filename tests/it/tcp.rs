//! TCP byte-stream sources (`kind = "tcp"`): an SLCAN adapter behind a serial-to-TCP bridge on
//! 127.0.0.1, initialised and read as over a serial device; the bridge dropping the
//! connection is an outage, and the source reconnects, initialises again and reads on.

use std::sync::Arc;
use std::time::Duration;

use ecu_bridge::config::{SlcanSetup, TcpSourceConfig};
use ecu_bridge::pipeline::edge::SourceBatch;
use ecu_bridge::pipeline::weighed;
use ecu_bridge::source::link::Link;
use ecu_bridge::source::serial::SerialSource;
use ecu_bridge::telemetry::{Metrics, SourceMetrics};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

/// Bounds every await.
const LIMIT: Duration = Duration::from_secs(10);

/// Accepts the source's connection and answers its SLCAN set-up (four commands, each `\r`);
/// returns the connection and the commands received.
async fn accept_and_initialise(listener: &TcpListener) -> (TcpStream, Vec<u8>) {
    let (mut stream, _) = tokio::time::timeout(LIMIT, listener.accept())
        .await
        .expect("the source connects in time")
        .expect("accept");
    let mut seen = Vec::new();
    let mut chunk = [0u8; 64];
    let mut answered = 0;
    while answered < 4 {
        let n = tokio::time::timeout(LIMIT, stream.read(&mut chunk))
            .await
            .expect("commands in time")
            .expect("read");
        assert!(n > 0, "source hung up during set-up: {seen:?}");
        seen.extend_from_slice(&chunk[..n]);
        let commands = seen.iter().filter(|&&b| b == b'\r').count();
        while answered < commands {
            stream.write_all(b"\r").await.expect("answer");
            answered += 1;
        }
    }
    (stream, seen)
}

async fn frames(rx: &mut weighed::Receiver<SourceBatch>, count: usize) -> Vec<u32> {
    let mut ids = Vec::new();
    while ids.len() < count {
        let batch = tokio::time::timeout(LIMIT, rx.recv())
            .await
            .expect("frames in time")
            .expect("source running");
        ids.extend(batch.can.iter().map(|f| f.frame.id.id()));
    }
    ids
}

#[tokio::test]
async fn slcan_over_tcp_is_initialised_read_and_reconnected() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let link = Link::Tcp(TcpSourceConfig {
        address: listener.local_addr().expect("address").to_string(),
        slcan: Some(SlcanSetup {
            bitrate: 500_000,
            listen_only: true,
            timestamps: false,
        }),
        reconnect_initial: Duration::from_millis(20),
        reconnect_max: Duration::from_millis(200),
    });
    let metrics = Arc::new(SourceMetrics::new("bridge"));
    let source = SerialSource::over("bridge", link, metrics.clone());
    let (tx, mut rx) = weighed::channel(16, usize::MAX);
    let (tap, mut tapped) = mpsc::channel(1024);
    let (cancel_tx, cancel) = watch::channel(false);
    let run = tokio::spawn(source.run(tx, Some(tap), cancel));

    let (mut stream, setup) = accept_and_initialise(&listener).await;
    assert_eq!(setup, b"C\rS6\rZ0\rL\r");
    stream
        .write_all(b"t1231AA\rt4562BBCC\r")
        .await
        .expect("frames");
    assert_eq!(frames(&mut rx, 2).await, [0x123, 0x456]);

    // The bridge drops the connection: an outage, then a reconnect with a fresh set-up.
    drop(stream);
    let (mut stream, setup) = accept_and_initialise(&listener).await;
    assert_eq!(setup, b"C\rS6\rZ0\rL\r");
    stream.write_all(b"t7891DD\r").await.expect("frames");
    assert_eq!(frames(&mut rx, 1).await, [0x789]);
    assert_eq!(Metrics::get(&metrics.outages), 1);
    assert_eq!(Metrics::get(&metrics.reconnects), 1);
    assert_eq!(Metrics::get(&metrics.frames), 3);

    let _ = cancel_tx.send(true);
    run.await.expect("task").expect("source ends cleanly");
    let mut recorded = Vec::new();
    while let Ok(capture) = tapped.try_recv() {
        recorded.push(capture.bytes.to_vec());
    }
    assert!(
        recorded.iter().any(Vec::is_empty),
        "the reconnect is marked in the recording, as for a serial device"
    );
    assert_eq!(
        recorded.concat(),
        b"t1231AA\rt4562BBCC\rt7891DD\r",
        "every byte read is recorded"
    );
}
