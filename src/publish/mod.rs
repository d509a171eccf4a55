//! Publish stage: batches → the Stream API through one [`Producer`]. Sessions follow the car
//! (`docs/sessions.md`): a session begins with the first sample (dated by it, named from the
//! template), gets an "Out Lap" at that sample and a lap marker for every lap the car signals
//! (rules 34–36), and ends when no data came for `idle_end` (optionally with an "In Lap" at
//! its last sample, and `termination_time` from it) or when the input closes; the next frame
//! begins the next session. Resolves each data format's id once per session and wraps the
//! already-encoded rows into `RowData` packets.
//!
//! Edge policy: the input **blocks** when full. Input is taken whenever it arrives, also while
//! the Stream API is away: packets wait in the spool, not in the channels. The one exception is
//! [`PublishStage::pace_to_delivery`] (a replay, whose capture can wait): while the server is
//! reachable but delivery is behind, input waits for delivery instead of spilling to the spool
//! and being read back, until delivery has nearly caught up (`docs/performance.md`).

pub mod configuration;
pub mod delivery;
pub mod producer;
pub mod session;
pub mod sessions;
mod write_call;

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::Instant;

use open_streaming::open_data::MarkerPacket;
use open_streaming::rows::push_row_data_tail;

use crate::pipeline::edge::{Batch, LapEvent, Queue, RowPacket};
use crate::telemetry::Metrics;
use configuration::configuration_packet;
use producer::{MAIN_STREAM, PacketKind, Producer, PublishError};
use sessions::SessionPlan;

/// The publish stage.
#[derive(Debug)]
pub struct PublishStage {
    /// The producer (spool and delivery); sessions are begun and ended here.
    pub producer: Producer,
    /// The data streams; a format's announcement says which one its rows go to.
    pub streams: Vec<String>,
    /// How sessions are cut and named.
    pub plan: SessionPlan,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Requests to end the open session by hand (SIGUSR1).
    pub new_sessions: Option<mpsc::Receiver<()>>,
    /// Hold input while delivery is behind and the server is there (see the module doc):
    /// for sources that wait for room (a capture), never for a live source, which would drop.
    pub pace_to_delivery: bool,
}

/// The open session as this stage sees it.
#[derive(Debug, Default)]
struct Open {
    /// Sample time span so far (ns since the UNIX epoch).
    first_ns: u64,
    last_ns: u64,
    /// When data last came (for `idle_end`).
    last_data: Option<Instant>,
    /// Laps numbered here (beacon, lap time), per session.
    laps_counted: u32,
    /// The Out Lap on `""` is still to be written.
    out_lap_due: bool,
    /// Per data stream: the sample time range of the packets written to it so far.
    sent: Vec<Option<(u64, u64)>>,
    /// Per data stream: its Out Lap is written.
    out_lap_sent: Vec<bool>,
}

impl Open {
    /// A session whose first sample is at `first_ns`, writing to `streams` data streams.
    fn new(first_ns: u64, streams: usize) -> Self {
        Self {
            first_ns,
            last_ns: first_ns,
            out_lap_due: true,
            sent: vec![None; streams],
            out_lap_sent: vec![false; streams],
            ..Self::default()
        }
    }

    /// The earliest sample time of the packets written on any stream.
    fn sent_from(&self) -> Option<u64> {
        self.sent.iter().flatten().map(|(from, _)| *from).min()
    }

    /// Data streams whose data sent so far covers `time_ns`: a marker there lies inside it
    /// (rule 36, B8).
    fn streams_covering(&self, time_ns: u64) -> Vec<usize> {
        (0..self.sent.len())
            .filter(|index| {
                self.sent[*index].is_some_and(|(from, to)| from <= time_ns && time_ns <= to)
            })
            .collect()
    }
}

/// A session this stage ended or is writing, for the run's summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionSummary {
    /// Its key.
    pub key: String,
    /// Its identifier.
    pub identifier: String,
    /// First and last sample times, ns since the UNIX epoch.
    pub first_ns: u64,
    /// See `first_ns`.
    pub last_ns: u64,
    /// Lap markers written (Out Lap and In Lap not counted).
    pub laps: u32,
}

impl PublishStage {
    /// Publishes until the input closes; returns the producer (its session, if one is open,
    /// still to be ended by the caller) and the sessions written.
    pub async fn run(
        mut self,
        mut input: mpsc::Receiver<Batch>,
    ) -> Result<(Producer, Vec<SessionSummary>), PublishError> {
        let mut formats: Vec<Option<(Vec<String>, u16)>> = Vec::new();
        let mut open: Option<Open> = None;
        let mut sessions: Vec<SessionSummary> = Vec::new();
        // Input held while delivery catches up (`pace_to_delivery`).
        let mut hold_input = false;
        loop {
            let waiting = self.producer.has_pending();
            hold_input = self.pace_to_delivery && self.producer.delivery_holds_input(hold_input);
            let idle_at = match (&open, self.plan.idle_end) {
                (
                    Some(Open {
                        last_data: Some(at),
                        ..
                    }),
                    Some(idle),
                ) => Some(*at + idle),
                _ => None,
            };
            let step = tokio::select! {
                biased;
                batch = input.recv(), if !hold_input => {
                    let Some(batch) = batch else { break };
                    Metrics::set(
                        &self.metrics.queue_depths[Queue::Publish.index()],
                        input.len() as u64,
                    );
                    self.handle(batch, &mut formats, &mut open, &mut sessions).await?;
                    Step::Handled
                }
                () = sleep_until(idle_at) => Step::Idle,
                Some(()) = next_request(&mut self.new_sessions) => Step::NewSession,
                due = self.producer.wait(), if waiting => if due { Step::Probe } else { Step::Handled },
            };
            match step {
                Step::Probe => self.producer.probe().await?,
                Step::Idle => {
                    if let Some(ended) = open.take() {
                        tracing::info!(
                            idle_s = self.plan.idle_end.unwrap_or_default().as_secs(),
                            "no data from the car: ending the session"
                        );
                        self.end(ended).await?;
                    }
                }
                Step::NewSession => {
                    if let Some(ended) = open.take() {
                        tracing::info!(
                            "ending the session by request; the next frame begins a new one"
                        );
                        self.end(ended).await?;
                    }
                }
                Step::Handled => {}
            }
            self.report();
        }
        if let Some(ended) = open.take() {
            self.end_marks(&ended).await?;
        }
        self.report();
        Ok((self.producer, sessions))
    }

    async fn handle(
        &mut self,
        batch: Batch,
        formats: &mut Vec<Option<(Vec<String>, u16)>>,
        open: &mut Option<Open>,
        sessions: &mut Vec<SessionSummary>,
    ) -> Result<(), PublishError> {
        match batch {
            Batch::Formats(announced) => {
                for announcement in announced {
                    let index = announcement.format as usize;
                    if formats.len() <= index {
                        formats.resize(index + 1, None);
                    }
                    formats[index] = Some((announcement.identifiers, announcement.stream));
                }
                if open.is_some() {
                    self.producer
                        .resolve_data_format_ids(formats.iter().flatten().map(|(ids, _)| ids))
                        .await?;
                }
            }
            Batch::Reconfigure(map) => {
                self.producer.configure(configuration_packet(&map)).await?;
                formats.clear();
                tracing::info!("reloaded channel map published as a new configuration");
            }
            Batch::Rows(packet) => {
                let Some(Some((identifiers, stream))) = formats.get(packet.format as usize) else {
                    tracing::error!(
                        format = packet.format,
                        "rows for an unannounced format dropped"
                    );
                    return Ok(());
                };
                let (identifiers, stream) = (identifiers.clone(), usize::from(*stream));
                let stream = stream.min(self.streams.len().saturating_sub(1));
                let (Some(&first), Some(&last)) =
                    (packet.timestamps.first(), packet.timestamps.last())
                else {
                    return Ok(());
                };
                if open.is_none() {
                    // After a session ended by request or idleness: the next packet begins one.
                    self.open_session(first, formats, open, sessions).await?;
                }
                let Some(session) = open.as_mut() else {
                    return Ok(());
                };
                session.first_ns = session.first_ns.min(first);
                session.last_ns = session.last_ns.max(last);
                session.last_data = Some(Instant::now());
                let id = self.producer.data_format_id(&identifiers).await?;
                session.sent[stream] = Some(
                    session.sent[stream]
                        .map_or((first, last), |(a, b)| (a.min(first), b.max(last))),
                );
                self.write_rows(stream, id, packet).await?;
                self.write_out_laps(session).await?;
                self.producer.set_last_sample(session.last_ns);
                if let Some(summary) = sessions.last_mut() {
                    summary.first_ns = session.first_ns;
                    summary.last_ns = session.last_ns;
                }
            }
            Batch::Boundary(first_ns) => {
                // Samples after a silence of `idle_end` in sample time (a replay at any
                // speed) begin a new session, as a quiet car does live.
                if let Some(ended) = open.take() {
                    self.end(ended).await?;
                }
                // Begun now, not at the first packet, so the session's calls overlap the
                // first packets' flush window.
                self.open_session(first_ns, formats, open, sessions).await?;
            }
            Batch::Laps(laps) => {
                let Some(session) = open.as_mut() else {
                    return Ok(());
                };
                for lap in laps {
                    self.write_lap(session, lap).await?;
                    if let Some(summary) = sessions.last_mut() {
                        summary.laps += 1;
                    }
                }
            }
        }
        Ok(())
    }

    /// Begins a session whose first sample is at `first_ns`, opens it, and resolves the
    /// data-format ids of every format announced so far (all at once, before their first
    /// packets).
    async fn open_session(
        &mut self,
        first_ns: u64,
        formats: &[Option<(Vec<String>, u16)>],
        open: &mut Option<Open>,
        sessions: &mut Vec<SessionSummary>,
    ) -> Result<(), PublishError> {
        self.begin(first_ns, sessions).await?;
        *open = Some(Open::new(first_ns, self.streams.len()));
        self.producer
            .resolve_data_format_ids(formats.iter().flatten().map(|(ids, _)| ids))
            .await
    }

    /// Begins a session whose first sample is at `first_ns`.
    async fn begin(
        &mut self,
        first_ns: u64,
        sessions: &mut Vec<SessionSummary>,
    ) -> Result<(), PublishError> {
        let run = self.plan.runs.next(first_ns);
        let identity = self.plan.template.identity(first_ns, run);
        let identifier = identity.identifier.clone();
        self.producer.begin(identity).await?;
        let key = self.producer.session_key().to_owned();
        tracing::info!(session = %key, %identifier, "session begun");
        self.metrics.set_session(&key);
        Metrics::set(&self.metrics.session_state, 1);
        Metrics::add(&self.metrics.sessions_begun, 1);
        sessions.push(SessionSummary {
            key,
            identifier,
            first_ns,
            last_ns: first_ns,
            laps: 0,
        });
        Ok(())
    }

    /// Ends a session whose car went quiet.
    async fn end(&mut self, session: Open) -> Result<(), PublishError> {
        self.end_marks(&session).await?;
        self.producer.end_session(Some(session.last_ns)).await?;
        Metrics::set(&self.metrics.session_state, 2);
        Metrics::add(&self.metrics.sessions_ended, 1);
        Ok(())
    }

    /// What a session gets at its end before EndOfSession: the optional In Lap.
    async fn end_marks(&mut self, session: &Open) -> Result<(), PublishError> {
        if self.plan.in_lap {
            let number = i64::from(session.laps_counted) + 1;
            let marker = lap_marker(session.last_ns, "In Lap", number, "session end");
            self.write_marker(session, &marker).await?;
        }
        Ok(())
    }

    async fn write_lap(&mut self, session: &mut Open, lap: LapEvent) -> Result<(), PublishError> {
        let number = match lap.lap {
            Some(number) => number,
            None => {
                session.laps_counted += 1;
                session.laps_counted
            }
        };
        session.laps_counted = session.laps_counted.max(number);
        let value = i64::from(number);
        let marker = lap_marker(
            lap.time_ns,
            &format!("Lap {number}"),
            value,
            "lap completed",
        );
        self.write_marker(session, &marker).await?;
        Metrics::add(&self.metrics.laps_marked, 1);
        Ok(())
    }

    /// The Out Lap (rule 35), once the packet holding the session's first sample is sent (a
    /// marker outside the data sent is dropped by readers: rule 36): on `""` at that sample,
    /// and on each data stream at its own first sample sent — the same time on the stream that
    /// holds it; a stream whose data starts later gets its Out Lap with its first packet.
    async fn write_out_laps(&mut self, session: &mut Open) -> Result<(), PublishError> {
        if session.out_lap_due {
            if session
                .sent_from()
                .is_none_or(|from| from > session.first_ns)
            {
                return Ok(());
            }
            session.out_lap_due = false;
            self.producer
                .write(MAIN_STREAM, PacketKind::Marker, &out_lap(session.first_ns))
                .await?;
        }
        for index in 0..session.sent.len() {
            if let (Some((from, _)), false) = (session.sent[index], session.out_lap_sent[index]) {
                session.out_lap_sent[index] = true;
                self.producer
                    .write(&self.streams[index], PacketKind::Marker, &out_lap(from))
                    .await?;
            }
        }
        Ok(())
    }

    /// A marker on `""` and on every data stream whose data sent covers its time (rule 36).
    async fn write_marker(
        &mut self,
        session: &Open,
        marker: &MarkerPacket,
    ) -> Result<(), PublishError> {
        self.producer
            .write(MAIN_STREAM, PacketKind::Marker, marker)
            .await?;
        for stream in session.streams_covering(marker.timestamp) {
            self.producer
                .write(&self.streams[stream], PacketKind::Marker, marker)
                .await?;
        }
        Ok(())
    }

    async fn write_rows(
        &mut self,
        stream: usize,
        data_format: u64,
        packet: RowPacket,
    ) -> Result<(), PublishError> {
        let samples = u32::try_from(packet.samples).unwrap_or(u32::MAX);
        let received = packet.first_received;
        let times = (
            packet.timestamps.first().copied().unwrap_or_default(),
            packet.timestamps.last().copied().unwrap_or_default(),
        );
        // The packet is the buffer the batch stage encoded the rows into, with the data format
        // and timestamps appended (a full packet's buffer has room for them: `src/batch.rs`),
        // held until the server's OK. The queues bound packets by their length, so a buffer
        // made for far more than it holds is cut to size first (in place: no copy).
        let mut content = packet.encoded_rows;
        push_row_data_tail(data_format, &packet.timestamps, &mut content);
        if content.capacity() - content.len() > content.len() / 8 {
            content.shrink_to_fit();
        }
        let content = bytes::Bytes::from(content);
        self.producer
            .write_encoded(
                &self.streams[stream],
                PacketKind::RowData,
                content,
                samples,
                times,
            )
            .await?;
        self.metrics.publish_latency.record(received.elapsed());
        Ok(())
    }

    /// Publishes the producer's figures: what the server accepted, what waits, what was lost.
    fn report(&self) {
        report_producer(&self.producer, &self.metrics);
    }
}

/// What woke the stage.
enum Step {
    Handled,
    Probe,
    Idle,
    NewSession,
}

/// The next request on `requests`, or never when there is no channel or it closed.
async fn next_request(requests: &mut Option<mpsc::Receiver<()>>) -> Option<()> {
    match requests {
        Some(receiver) => match receiver.recv().await {
            Some(()) => Some(()),
            None => {
                *requests = None;
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}

/// Sleeps until `at`, or for ever.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Sets the pipeline's publish counters from `producer`: only acknowledged packets count as
/// published.
pub fn report_producer(producer: &Producer, metrics: &Metrics) {
    let stats = producer.stats();
    report_stats(&stats, metrics);
    let spool = producer.spool().stats();
    Metrics::set(&metrics.samples_waiting, stats.delivery.samples_waiting);
    Metrics::set(&metrics.spool_bytes, spool.bytes_on_disk);
    Metrics::set(&metrics.spool_write_failures, spool.write_failures);
    Metrics::set(&metrics.spool_dropped_samples, spool.dropped_samples);
    let age_s = producer.oldest_waiting_ns().map_or(0, |oldest| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos() as u64);
        now.saturating_sub(oldest) / 1_000_000_000
    });
    Metrics::set(&metrics.oldest_waiting_age_seconds, age_s);
}

/// Sets the publish counters from a producer's `stats` (also after it ended).
pub fn report_stats(stats: &producer::ProducerStats, metrics: &Metrics) {
    let delivery = stats.delivery;
    Metrics::set(&metrics.packets_published, delivery.packets_accepted);
    Metrics::set(&metrics.samples_published, delivery.samples_accepted);
    Metrics::set(&metrics.bytes_published, delivery.bytes_accepted);
    Metrics::set(&metrics.stream_reopens, stats.reopened_streams);
    Metrics::set(&metrics.samples_rejected, delivery.samples_rejected);
    Metrics::set(&metrics.packets_resent, delivery.resent);
    Metrics::set(&metrics.publish_outages, delivery.outages);
    Metrics::set(&metrics.samples_lost_no_room, delivery.samples_lost_no_room);
}

/// A "Lap Trigger" marker (rule 34): `label` ("Out Lap", "Lap 3"), lap number `value`.
pub fn lap_marker(time_ns: u64, label: &str, value: i64, description: &str) -> MarkerPacket {
    MarkerPacket {
        timestamp: time_ns,
        end_time: 0,
        label: label.to_owned(),
        r#type: "Lap Trigger".to_owned(),
        description: description.to_owned(),
        source: "0".to_owned(),
        value,
    }
}

/// The lap marker ATLAS uses to overlay sessions, at the first sample time (rule 35).
pub fn out_lap(time_ns: u64) -> MarkerPacket {
    lap_marker(time_ns, "Out Lap", 0, "session start")
}
