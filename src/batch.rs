//! Batch stage: rows → Open Streaming row packets, one pending packet per data format,
//! flushed when it is `max_age` old (by arrival, so a replay at any speed keeps latency
//! bounded) or when it would pass `max_packet_bytes`. Rows keep their exact frame timestamps.
//!
//! Laps go out after every pending packet is flushed, so each marker follows its data.
//!
//! `max_age` is the latest a packet is handed on. The flush timer therefore wakes early by a
//! lead, and flushes every packet due within the lead. The lead is tokio's timer resolution
//! (1 ms, it rounds a deadline up) plus the longest overshoot of the last 64 flushes: how long
//! after its wake-up time a flush had handed its last packet on, which is the timer firing
//! late and the packets due together (one per format opened by the same frames) waiting for
//! the packet edge. So the last of them is handed on by its deadline even when the host's
//! timer runs late, not a tick and a queue later (`docs/performance.md`, paced latency). The
//! learned part is capped at a tenth of `max_age`, so back-pressure on the packet edge
//! cannot make packets go out ever earlier: at most a tenth early, so about a tenth more of
//! them.
//!
//! Edge policy: both edges **block** when full. On input close every pending packet is flushed.
//!
//! Rows held: the open packets together hold at most `max_held_bytes` of encoded rows and
//! timestamps. **When full**, the largest open packet is handed on at once, before its age or
//! size is reached (a smaller packet, nothing dropped); handing it on blocks while the packet
//! edge is full, which is back-pressure on decode and the sources. Without this bound, every
//! data format open at max speed could grow to `max_packet_bytes` (200 formats × 256 KiB).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use open_streaming::rows::{encode_row, max_encoded_row_len};

use crate::pipeline::edge::{Batch, Decoded, Queue, RowPacket};
use crate::pipeline::weighed;
use crate::telemetry::Metrics;

/// The timer's resolution: tokio fires a sleep on the first millisecond tick at or after its
/// deadline.
const TIMER_RESOLUTION: Duration = Duration::from_millis(1);

/// Flushes remembered to learn the timer's lead from.
const LEAD_MEMORY: usize = 64;

/// How early the flush timer wakes before the oldest packet is due (the module docs).
#[derive(Debug)]
struct FlushLead {
    /// How long after its wake-up time each of the last flushes handed its last packet on.
    overshoots: [Duration; LEAD_MEMORY],
    next: usize,
    cap: Duration,
    /// The lead the overshoots give, kept so the stage's loop need not look at all of them.
    lead: Duration,
}

impl FlushLead {
    fn new(max_age: Duration) -> Self {
        Self {
            overshoots: [Duration::ZERO; LEAD_MEMORY],
            next: 0,
            cap: max_age / 10,
            lead: TIMER_RESOLUTION,
        }
    }

    fn lead(&self) -> Duration {
        self.lead
    }

    /// A flush meant to wake at `wake` had handed its packets on at `finished`.
    fn observe(&mut self, wake: Instant, finished: Instant) {
        self.overshoots[self.next] = finished.saturating_duration_since(wake);
        self.next = (self.next + 1) % LEAD_MEMORY;
        let longest = self.overshoots.iter().max().copied().unwrap_or_default();
        self.lead = TIMER_RESOLUTION + longest.min(self.cap);
    }
}

/// Sleeps until `due`, or for ever when nothing is pending.
async fn sleep_until_due(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

/// The batch stage.
#[derive(Debug)]
pub struct BatchStage {
    /// Flush a packet this long after its first row arrived.
    pub max_age: Duration,
    /// Flush a packet before it would pass this many encoded bytes.
    pub max_packet_bytes: usize,
    /// Encoded rows and timestamps all open packets may hold together; beyond it the largest
    /// is flushed early (the module docs).
    pub max_held_bytes: usize,
    /// Counters (the stage reports its input queue depth).
    pub metrics: Arc<Metrics>,
    /// A jump in sample time longer than this starts a new session downstream: every pending
    /// packet goes out first, so no packet mixes samples of two sessions, then a
    /// [`Batch::Boundary`] with the first sample's time (also sent before the very first row).
    pub session_gap: Option<Duration>,
}

#[derive(Debug)]
struct Pending {
    packet: RowPacket,
    opened: Instant,
}

impl Pending {
    /// The bytes this packet counts against `max_held_bytes`.
    fn held_bytes(&self) -> usize {
        self.packet.timestamps.len() * 8 + self.packet.encoded_rows.len()
    }
}

/// The open packets, one per data format, and the bytes they hold together. Formats are the
/// decode stage's dense indices (from 0, one per format it announced), so a packet is found
/// through a slot per format: a hash map cost two lookups per row (`docs/performance.md`,
/// "The seventh turn").
#[derive(Debug, Default)]
struct Held {
    /// The open packets with their formats, in no order.
    open: Vec<(u32, Pending)>,
    /// By format index: where its packet is in `open`, or [`NOT_OPEN`].
    slots: Vec<u32>,
    bytes: usize,
    /// By format index: rows of the format's last packet, when it went out full; its next
    /// packet is made for as many, and for a whole packet of bytes.
    filled: Vec<Option<usize>>,
}

/// The slot of a format without an open packet.
const NOT_OPEN: u32 = u32::MAX;

impl Held {
    /// Where the open packet of `format` is in `open`.
    #[inline]
    fn position(&self, format: u32) -> Option<usize> {
        let slot = *self.slots.get(format as usize)?;
        (slot != NOT_OPEN).then_some(slot as usize)
    }

    /// The open packet of `format`.
    #[inline]
    fn get(&self, format: u32) -> Option<&Pending> {
        Some(&self.open[self.position(format)?].1)
    }

    /// The open packet of `format`, opened by `open` (given the rows of the format's last
    /// packet when it went out full) if there is none.
    #[inline]
    fn get_or_open(
        &mut self,
        format: u32,
        open: impl FnOnce(Option<usize>) -> Pending,
    ) -> &mut Pending {
        let position = match self.position(format) {
            Some(position) => position,
            None => {
                let index = format as usize;
                if index >= self.slots.len() {
                    self.slots.resize(index + 1, NOT_OPEN);
                }
                let filled = self.filled.get(index).copied().flatten();
                self.slots[index] = self.open.len() as u32;
                self.open.push((format, open(filled)));
                self.open.len() - 1
            }
        };
        &mut self.open[position].1
    }

    fn remove(&mut self, format: u32) -> Option<RowPacket> {
        if let Some(rows) = self.filled.get_mut(format as usize) {
            *rows = None;
        }
        let position = self.position(format)?;
        self.slots[format as usize] = NOT_OPEN;
        let (_, pending) = self.open.swap_remove(position);
        if let Some((moved, _)) = self.open.get(position) {
            self.slots[*moved as usize] = position as u32;
        }
        self.bytes -= pending.held_bytes();
        Some(pending.packet)
    }

    /// [`Held::remove`] for a packet that went out because it was full.
    fn remove_full(&mut self, format: u32) -> Option<RowPacket> {
        let packet = self.remove(format)?;
        let index = format as usize;
        if index >= self.filled.len() {
            self.filled.resize(index + 1, None);
        }
        self.filled[index] = Some(packet.timestamps.len());
        Some(packet)
    }

    /// Every open packet, oldest first; none stays open.
    fn take_all(&mut self) -> Vec<RowPacket> {
        let mut all: Vec<Pending> = Vec::with_capacity(self.open.len());
        for (format, pending) in self.open.drain(..) {
            self.slots[format as usize] = NOT_OPEN;
            all.push(pending);
        }
        all.sort_by_key(|p| p.opened);
        self.bytes = 0;
        self.filled.clear();
        all.into_iter().map(|p| p.packet).collect()
    }

    /// The open packets with their formats.
    fn open_packets(&self) -> impl Iterator<Item = (u32, &Pending)> {
        self.open.iter().map(|(format, pending)| (*format, pending))
    }

    /// The packets at least `max_age` old at `now` (a moment a little ahead: the flush
    /// timer's lead), oldest first.
    fn take_due(&mut self, now: Instant, max_age: Duration) -> Vec<RowPacket> {
        let mut due: Vec<(Instant, u32)> = self
            .open_packets()
            .filter(|(_, p)| now.duration_since(p.opened) >= max_age)
            .map(|(format, p)| (p.opened, format))
            .collect();
        due.sort_unstable();
        due.into_iter()
            .filter_map(|(_, format)| self.remove(format))
            .collect()
    }

    /// When the oldest open packet is due.
    fn next_due(&self, max_age: Duration) -> Option<Instant> {
        let opened = self.open_packets().map(|(_, p)| p.opened).min()?;
        Some(opened + max_age)
    }

    /// The format of the open packet holding the most bytes.
    fn largest(&self) -> Option<u32> {
        self.open_packets()
            .max_by_key(|(_, p)| p.held_bytes())
            .map(|(format, _)| format)
    }
}

impl BatchStage {
    /// Runs until the input closes, then flushes everything.
    pub async fn run(self, mut input: weighed::Receiver<Decoded>, output: mpsc::Sender<Batch>) {
        let mut held = Held::default();
        let mut latest_ns: Option<u64> = None;
        let mut lead = FlushLead::new(self.max_age);
        loop {
            // The oldest pending packet is due `max_age` after its first row arrived; the timer
            // wakes a lead before (the module docs).
            let lead_now = lead.lead();
            let wake = held
                .next_due(self.max_age)
                .map(|due| due.checked_sub(lead_now).unwrap_or(due));
            tokio::select! {
                received = input.recv() => {
                    let Some(decoded) = received else { break };
                    Metrics::set(&self.metrics.queue_depths[Queue::Batch.index()], input.len() as u64);
                    if self.take(decoded, &mut held, &mut latest_ns, &output).await.is_err() {
                        return;
                    }
                }
                () = sleep_until_due(wake) => {
                    let woke = Instant::now();
                    if send_all(held.take_due(woke + lead_now, self.max_age), &output).await.is_err() {
                        return;
                    }
                    if let Some(wake) = wake {
                        lead.observe(wake, Instant::now());
                    }
                }
            }
        }
        let _ = send_all(held.take_all(), &output).await;
    }

    async fn take(
        &self,
        mut decoded: Decoded,
        held: &mut Held,
        latest_ns: &mut Option<u64>,
        output: &mpsc::Sender<Batch>,
    ) -> Result<(), mpsc::error::SendError<Batch>> {
        if let Some(configuration) = decoded.reconfigure.take() {
            // Rows of the old map go out first: their format indices mean nothing after this.
            send_all(held.take_all(), output).await?;
            output.send(Batch::Reconfigure(configuration)).await?;
        }
        if !decoded.new_formats.is_empty() {
            let formats = std::mem::take(&mut decoded.new_formats);
            output.send(Batch::Formats(formats)).await?;
        }
        let decoded = &decoded;
        for (header, values) in decoded.rows.rows() {
            let gap = match (self.session_gap, *latest_ns) {
                (_, None) => true,
                (Some(gap), Some(latest)) => {
                    header.time_ns > latest.saturating_add(gap.as_nanos() as u64)
                }
                (None, Some(_)) => false,
            };
            if gap {
                send_all(held.take_all(), output).await?;
                output.send(Batch::Boundary(header.time_ns)).await?;
            }
            *latest_ns = Some(latest_ns.map_or(header.time_ns, |t| t.max(header.time_ns)));
            // At most this much: a packet may go out a row early, never over its size.
            let row_bytes = 8 + max_encoded_row_len(values.len());
            let full = held
                .get(header.format)
                .is_some_and(|p| p.packet.encoded_len() + row_bytes > self.max_packet_bytes);
            if full && let Some(packet) = held.remove_full(header.format) {
                output.send(Batch::Rows(packet)).await?;
            }
            let entry = held.get_or_open(header.format, |filled| {
                let (rows, capacity) = packet_size_guess(filled, self.max_packet_bytes, row_bytes);
                Pending {
                    packet: RowPacket {
                        format: header.format,
                        timestamps: Vec::with_capacity(rows),
                        encoded_rows: Vec::with_capacity(capacity),
                        samples: 0,
                        first_received: decoded.received,
                    },
                    opened: decoded.received,
                }
            });
            let before = entry.held_bytes();
            entry.packet.timestamps.push(header.time_ns);
            encode_row(values, &mut entry.packet.encoded_rows);
            entry.packet.samples += values.len();
            held.bytes += entry.held_bytes() - before;
            while held.bytes > self.max_held_bytes
                && let Some(packet) = held.largest().and_then(|format| held.remove(format))
            {
                output.send(Batch::Rows(packet)).await?;
            }
        }
        if !decoded.laps.is_empty() {
            // A lap marker must lie in data already sent: everything pending goes first.
            send_all(held.take_all(), output).await?;
            output.send(Batch::Laps(decoded.laps.clone())).await?;
        }
        Ok(())
    }
}

/// Rows and bytes of rows a new packet of a format is made for (more fit; the buffers then
/// grow): when the format's last packet went out full, as many rows (and a quarter more) and a
/// whole packet, which it will fill again; otherwise as many rows as fit (at most 1 024) and
/// 32 KiB. A busy format's buffer is so spared the copies of growing to its full size every
/// time; reserving the whole packet for a format that did not fill one held 200 × 256 KiB on
/// four buses at max speed (`docs/performance.md`). A whole packet's buffer also holds the data
/// format and timestamps the publish stage appends to the rows: a packet's rows leave room
/// for them within `max_packet_bytes` (`RowPacket::encoded_len`).
fn packet_size_guess(
    filled_rows: Option<usize>,
    max_packet_bytes: usize,
    row_bytes: usize,
) -> (usize, usize) {
    match filled_rows {
        Some(rows) => (rows + rows / 4, max_packet_bytes),
        None => {
            let fit = max_packet_bytes / row_bytes.max(1);
            (
                fit.min(1024),
                (fit * row_bytes).min(max_packet_bytes).min(32 << 10),
            )
        }
    }
}

/// Sends `packets`, in order.
async fn send_all(
    packets: Vec<RowPacket>,
    output: &mpsc::Sender<Batch>,
) -> Result<(), mpsc::error::SendError<Batch>> {
    for packet in packets {
        output.send(Batch::Rows(packet)).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use decoders::RowBatch;
    use proptest::prelude::*;
    use prost::Message;

    use super::*;
    use crate::pipeline::edge::LapEvent;
    use open_streaming::open_data::{DataStatus, RowDataPacket, sample_row};
    use open_streaming::rows::{encoded_row_len, row_data_content};

    /// The rows of an encoded `RowDataPacket`, through prost.
    fn decode_rows(bytes: &[u8]) -> Vec<(u64, Vec<f64>)> {
        let packet = RowDataPacket::decode(bytes).expect("valid packet");
        assert_eq!(packet.timestamps.len(), packet.rows.len());
        packet
            .timestamps
            .iter()
            .zip(&packet.rows)
            .map(|(time, row)| {
                let Some(sample_row::List::DoubleSamples(list)) = &row.list else {
                    panic!("double samples expected")
                };
                assert!(
                    list.samples
                        .iter()
                        .all(|s| s.status == DataStatus::Valid as i32)
                );
                (*time, list.samples.iter().map(|s| s.value).collect())
            })
            .collect()
    }

    /// A stage taking rows of up to 1 MiB packets, on channels of 4 in and 8 out.
    /// `rows` as the decode stage hands them on, received now, with nothing else.
    fn decoded(rows: RowBatch) -> Decoded {
        Decoded {
            new_formats: Vec::new(),
            rows,
            received: Instant::now(),
            reconfigure: None,
            laps: Vec::new(),
        }
    }

    fn start_stage(
        max_age: Duration,
        session_gap: Option<Duration>,
    ) -> (
        weighed::Sender<Decoded>,
        mpsc::Receiver<Batch>,
        tokio::task::JoinHandle<()>,
    ) {
        let (in_tx, in_rx) = weighed::channel(4, usize::MAX);
        let (out_tx, out_rx) = mpsc::channel(8);
        let stage = BatchStage {
            max_age,
            max_packet_bytes: 1 << 20,
            max_held_bytes: usize::MAX,
            metrics: Arc::default(),
            session_gap,
        };
        (in_tx, out_rx, tokio::spawn(stage.run(in_rx, out_tx)))
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime")
    }

    /// Rows as (format, time, values); each format keeps one width, as the decoder guarantees.
    fn rows_strategy() -> impl Strategy<Value = Vec<(u32, u64, Vec<f64>)>> {
        prop::collection::vec((0u32..4, any::<u32>()), 0..400).prop_map(|rows| {
            rows.into_iter()
                .enumerate()
                .map(|(i, (format, noise))| {
                    let width = format as usize + 1;
                    let values = (0..width).map(|k| f64::from(noise) + k as f64).collect();
                    (format, i as u64 * 1000, values)
                })
                .collect()
        })
    }

    fn run_stage(rows: &[(u32, u64, Vec<f64>)], chunk: usize, max_bytes: usize) -> Vec<RowPacket> {
        runtime().block_on(async {
            let (in_tx, in_rx) = weighed::channel(4, usize::MAX);
            let (out_tx, mut out_rx) = mpsc::channel(4);
            let stage = BatchStage {
                max_age: Duration::from_millis(100),
                max_packet_bytes: max_bytes,
                max_held_bytes: usize::MAX,
                metrics: Arc::default(),
                session_gap: None,
            };
            let task = tokio::spawn(stage.run(in_rx, out_tx));
            let feeder = {
                let rows = rows.to_vec();
                tokio::spawn(async move {
                    for part in rows.chunks(chunk.max(1)) {
                        let mut batch = RowBatch::new();
                        for (format, time, values) in part {
                            batch.begin_row(*time, *format);
                            values.iter().for_each(|v| batch.push_value(*v));
                        }
                        if in_tx.send(decoded(batch)).await.is_err() {
                            return;
                        }
                    }
                })
            };
            let mut packets = Vec::new();
            while let Some(batch) = out_rx.recv().await {
                if let Batch::Rows(packet) = batch {
                    packets.push(packet);
                }
            }
            feeder.await.expect("feeder");
            task.await.expect("stage");
            packets
        })
    }

    /// A format whose packets go out full has its next packets made whole: their row buffers
    /// never grow by copying what they hold, and never reserve more than a whole packet.
    #[test]
    fn a_format_that_fills_its_packets_gets_whole_ones() {
        const MAX_BYTES: usize = 48 << 10;
        let rows: Vec<(u32, u64, Vec<f64>)> = (0..3_000u64)
            .map(|i| (0, i * 1000, (0..8).map(|k| (i + k) as f64 + 0.5).collect()))
            .collect();
        let packets = run_stage(&rows, 40, MAX_BYTES);
        assert!(packets.len() >= 4, "{} packets", packets.len());
        for pair in packets.windows(2) {
            let (last, next) = (&pair[0], &pair[1]);
            assert_eq!(
                next.encoded_rows.capacity(),
                MAX_BYTES,
                "grew past its size"
            );
            assert_eq!(
                next.timestamps.capacity(),
                last.timestamps.len() + last.timestamps.len() / 4
            );
        }
        // The publish stage appends the data format and timestamps to the rows: a whole
        // packet's buffer takes them without growing.
        for packet in &packets[1..] {
            let mut content = packet.encoded_rows.clone();
            content.reserve_exact(MAX_BYTES - content.len());
            open_streaming::rows::push_row_data_tail(u64::MAX, &packet.timestamps, &mut content);
            assert!(content.len() <= MAX_BYTES, "{} bytes", content.len());
            assert!(content.len() <= packet.encoded_len());
        }
    }

    proptest! {
        #[test]
        fn no_row_is_lost_reordered_or_oversized(
            rows in rows_strategy(),
            chunk in 1usize..50,
            max_bytes in 64usize..2048,
        ) {
            let packets = run_stage(&rows, chunk, max_bytes);
            for format in 0..4u32 {
                let sent: Vec<(u64, Vec<f64>)> = rows
                    .iter()
                    .filter(|(f, _, _)| *f == format)
                    .map(|(_, t, v)| (*t, v.clone()))
                    .collect();
                let mut got = Vec::new();
                for packet in packets.iter().filter(|p| p.format == format) {
                    let bytes = row_data_content(7, &packet.timestamps, &packet.encoded_rows);
                    prop_assert!(bytes.len() <= packet.encoded_len());
                    prop_assert!(bytes.len() <= max_bytes || packet.timestamps.len() == 1, "{} bytes", bytes.len());
                    got.extend(decode_rows(&bytes));
                }
                prop_assert_eq!(got, sent);
            }
        }
    }

    #[test]
    fn a_lone_row_is_flushed_by_max_age_and_at_most_the_timer_lead_before() {
        runtime().block_on(async {
            let (in_tx, mut out_rx, task) = start_stage(Duration::from_millis(100), None);
            let mut batch = RowBatch::new();
            batch.begin_row(42, 0);
            batch.push_value(1.5);
            let sent_at = Instant::now();
            in_tx
                .send(Decoded {
                    new_formats: Vec::new(),
                    rows: batch,
                    received: sent_at,
                    reconfigure: None,
                    laps: Vec::new(),
                })
                .await
                .expect("send");
            let boundary = out_rx.recv().await.expect("the first row begins a session");
            assert!(matches!(boundary, Batch::Boundary(42)), "{boundary:?}");
            assert_eq!(sent_at.elapsed(), Duration::ZERO, "at once");
            let packet = out_rx
                .recv()
                .await
                .expect("flushed while the input stays open");
            let waited = sent_at.elapsed();
            assert!(
                waited >= Duration::from_millis(99),
                "not more than the timer's lead before max_age: {waited:?}"
            );
            assert!(
                waited <= Duration::from_millis(100),
                "by max_age, not a tick later: {waited:?}"
            );
            let Batch::Rows(packet) = packet else {
                panic!("rows expected")
            };
            assert_eq!((packet.format, packet.samples), (0, 1));
            let content = row_data_content(9, &packet.timestamps, &packet.encoded_rows);
            assert_eq!(decode_rows(&content), vec![(42, vec![1.5])]);
            assert_eq!(packet.first_received, sent_at);
            drop(in_tx);
            task.await.expect("stage ends when its input closes");
        });
    }

    /// Runs `groups` groups of three formats opened by the same frames (due together), 300 ms
    /// apart, through a one-packet edge whose reader takes `reader_delay(packet index)` for
    /// each packet; returns each packet's latency from its first row to the reader.
    fn hand_on_latencies(groups: u64, reader_delay: fn(usize) -> Duration) -> Vec<Duration> {
        runtime().block_on(async {
            let (in_tx, in_rx) = weighed::channel(4, usize::MAX);
            let (out_tx, mut out_rx) = mpsc::channel(1);
            let stage = BatchStage {
                max_age: Duration::from_millis(100),
                max_packet_bytes: 1 << 20,
                max_held_bytes: usize::MAX,
                metrics: Arc::default(),
                session_gap: None,
            };
            let task = tokio::spawn(stage.run(in_rx, out_tx));
            let reader = tokio::spawn(async move {
                let mut latencies = Vec::new();
                while let Some(batch) = out_rx.recv().await {
                    if let Batch::Rows(packet) = batch {
                        latencies.push(packet.first_received.elapsed());
                        tokio::time::sleep(reader_delay(latencies.len() - 1)).await;
                    }
                }
                latencies
            });
            for group in 0..groups {
                let mut rows = RowBatch::new();
                for format in 0..3 {
                    rows.begin_row(group * 1_000_000_000, format);
                    rows.push_value(1.0);
                }
                in_tx.send(decoded(rows)).await.expect("send");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            drop(in_tx);
            task.await.expect("stage ends");
            reader.await.expect("reader")
        })
    }

    /// Handing three packets on through a one-packet edge whose reader takes 1 ms each makes
    /// the last one late by 2 ms. The next flush wakes that much earlier, so all of its packets
    /// are handed on by their deadline.
    #[test]
    fn the_flush_timer_wakes_early_by_what_handing_on_took() {
        let latencies = hand_on_latencies(2, |_| Duration::from_millis(1));
        let ms = Duration::from_millis;
        assert_eq!(
            latencies[..3],
            [ms(99), ms(100), ms(101)],
            "a 1 ms lead at first"
        );
        assert_eq!(
            latencies[3..],
            [ms(98), ms(99), ms(100)],
            "then the 1 ms timer lead plus the 1 ms overshoot"
        );
    }

    /// One slow flush (a reader taking 3 ms a packet: handed on 3 ms after the wake-up) sets
    /// the lead for the next 64 flushes, then it is forgotten.
    #[test]
    fn the_flush_lead_remembers_the_longest_overshoot_of_the_last_64_flushes() {
        let latencies = hand_on_latencies(67, |packet| {
            Duration::from_millis(if packet < 3 { 3 } else { 0 })
        });
        let firsts: Vec<u128> = latencies
            .chunks(3)
            .map(|group| group[0].as_millis())
            .collect();
        assert_eq!(firsts.len(), 67);
        assert_eq!(firsts[0], 99, "a 1 ms lead at first");
        assert!(
            firsts[1..=64].iter().all(|&ms| ms == 96),
            "1 ms plus the 3 ms overshoot while remembered: {firsts:?}"
        );
        assert_eq!(firsts[65..], [99, 99], "then forgotten");
        assert!(
            latencies[3..]
                .iter()
                .all(|latency| *latency <= Duration::from_millis(100)),
            "after the slow flush, every packet by its deadline: {latencies:?}"
        );
    }

    /// A reader that stalls for 20 ms a packet cannot pull flushes earlier than a tenth of
    /// `max_age` (10 ms) besides the 1 ms timer lead.
    #[test]
    fn the_learned_flush_lead_is_capped_at_a_tenth_of_max_age() {
        let latencies = hand_on_latencies(3, |_| Duration::from_millis(20));
        let firsts: Vec<u128> = latencies
            .chunks(3)
            .map(|group| group[0].as_millis())
            .collect();
        assert_eq!(firsts, [99, 89, 89]);
    }

    #[test]
    fn laps_go_out_at_once_after_every_pending_row() {
        runtime().block_on(async {
            let (in_tx, mut out_rx, task) = start_stage(Duration::from_secs(10), None);
            let mut rows = RowBatch::new();
            for (time, format) in [(10, 0), (20, 1), (30, 0)] {
                rows.begin_row(time, format);
                rows.push_value(1.0);
            }
            let lap = LapEvent {
                time_ns: 20,
                lap: Some(1),
            };
            let sent_at = Instant::now();
            in_tx
                .send(Decoded {
                    new_formats: Vec::new(),
                    rows,
                    received: sent_at,
                    reconfigure: None,
                    laps: vec![lap],
                })
                .await
                .expect("send");
            let boundary = out_rx.recv().await.expect("boundary");
            assert!(matches!(boundary, Batch::Boundary(10)), "{boundary:?}");
            let mut samples = 0;
            for _ in 0..2 {
                match out_rx.recv().await.expect("rows") {
                    Batch::Rows(packet) => samples += packet.samples,
                    other => panic!("rows expected before the lap, got {other:?}"),
                }
            }
            assert_eq!(samples, 3, "every pending row before the lap");
            match out_rx.recv().await.expect("laps") {
                Batch::Laps(laps) => assert_eq!(laps, vec![lap]),
                other => panic!("laps expected, got {other:?}"),
            }
            assert_eq!(
                sent_at.elapsed(),
                Duration::ZERO,
                "without waiting for max_age"
            );
            drop(in_tx);
            task.await.expect("stage ends");
        });
    }

    #[test]
    fn a_jump_in_sample_time_flushes_and_marks_a_boundary() {
        runtime().block_on(async {
            let (in_tx, mut out_rx, task) =
                start_stage(Duration::from_secs(10), Some(Duration::from_secs(30)));
            let second = 1_000_000_000u64;
            let mut rows = RowBatch::new();
            // 30 s apart is not a gap; 31 s is.
            for time in [0, 30 * second, 61 * second] {
                rows.begin_row(time, 0);
                rows.push_value(1.0);
            }
            in_tx.send(decoded(rows)).await.expect("send");
            drop(in_tx);
            let mut seen = Vec::new();
            while let Some(batch) = out_rx.recv().await {
                seen.push(match batch {
                    Batch::Boundary(time) => format!("boundary {}", time / second),
                    Batch::Rows(packet) => format!("rows {:?}", packet.timestamps),
                    other => format!("{other:?}"),
                });
            }
            assert_eq!(
                seen,
                [
                    "boundary 0".to_owned(),
                    format!("rows {:?}", [0, 30 * second]),
                    "boundary 61".to_owned(),
                    format!("rows {:?}", [61 * second]),
                ]
            );
            task.await.expect("stage ends");
        });
    }

    #[test]
    fn a_burst_over_many_formats_stays_within_the_held_bytes_and_loses_nothing() {
        const HELD: usize = 4096;
        const FORMATS: u32 = 16;
        runtime().block_on(async {
            let (in_tx, in_rx) = weighed::channel(1, usize::MAX);
            let (out_tx, mut out_rx) = mpsc::channel(64);
            let stage = BatchStage {
                max_age: Duration::from_secs(3600),
                max_packet_bytes: 1 << 20,
                max_held_bytes: HELD,
                metrics: Arc::default(),
                session_gap: None,
            };
            let task = tokio::spawn(stage.run(in_rx, out_tx));
            let mut sent: Vec<Vec<(u64, Vec<f64>)>> = vec![Vec::new(); FORMATS as usize];
            let mut packets = Vec::new();
            let (mut fed_bytes, mut out_bytes) = (0, 0);
            let mut early = 0;
            for chunk in 0..100u64 {
                let mut rows = RowBatch::new();
                for row in 0..40u64 {
                    let time = chunk * 1000 + row;
                    let format = (time % u64::from(FORMATS)) as u32;
                    let values: Vec<f64> =
                        (0..=format).map(|k| (time + u64::from(k)) as f64).collect();
                    rows.begin_row(time, format);
                    values.iter().for_each(|v| rows.push_value(*v));
                    fed_bytes += 8 + encoded_row_len(&values);
                    sent[format as usize].push((time, values));
                }
                in_tx.send(decoded(rows)).await.expect("send");
                // Paused time moves on only once the stage is idle: every row so far is taken.
                tokio::time::sleep(Duration::from_millis(1)).await;
                while let Ok(batch) = out_rx.try_recv() {
                    if let Batch::Rows(packet) = batch {
                        out_bytes += packet.timestamps.len() * 8 + packet.encoded_rows.len();
                        early += 1;
                        packets.push(packet);
                    }
                }
                assert!(
                    fed_bytes - out_bytes <= HELD,
                    "{} bytes held after chunk {chunk}",
                    fed_bytes - out_bytes
                );
            }
            assert!(fed_bytes > 10 * HELD, "the burst is larger than the bound");
            assert!(early > 0, "packets went out before their age");
            drop(in_tx);
            while let Some(batch) = out_rx.recv().await {
                if let Batch::Rows(packet) = batch {
                    packets.push(packet);
                }
            }
            task.await.expect("stage ends");
            for format in 0..FORMATS {
                let got: Vec<(u64, Vec<f64>)> = packets
                    .iter()
                    .filter(|p| p.format == format)
                    .flat_map(|p| decode_rows(&row_data_content(3, &p.timestamps, &p.encoded_rows)))
                    .collect();
                assert_eq!(
                    got, sent[format as usize],
                    "format {format}: every row, in order"
                );
            }
        });
    }
}
