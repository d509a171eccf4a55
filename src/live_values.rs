//! The latest decoded value of every parameter, for people watching a running bridge: the
//! decode stage writes it once per batch ([`LiveValues::record`]), the metrics endpoint serves
//! it as JSON at `/values` ([`ValuesReport`]), and `ecu-bridge watch` draws it.
//!
//! Not a stage: nothing waits on it and it holds no samples, only one slot per parameter of
//! the current channel map. The decode path pays one uncontended lock per batch and, per
//! sample, three stores into that slot; names, units and rates are worked out only when a
//! report is asked for. Rates are samples per second over the last whole window of at least
//! [`RATE_WINDOW`], measured when reports are made, so any number of readers see the same rate.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use decoders::RowBatch;
use decoders::channel_map::ChannelMap;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::telemetry::{Metrics, SourceMetrics};

/// The shortest span a reported rate is measured over.
pub const RATE_WINDOW: Duration = Duration::from_secs(1);

/// One slot per parameter of the current channel map; see the module doc.
#[derive(Debug, Default)]
pub struct LiveValues {
    table: Mutex<Table>,
}

/// What `/values` answers: every parameter of the map, then the pipeline's counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValuesReport {
    /// In channel-map order.
    pub parameters: Vec<ParameterValue>,
    /// Totals since the bridge started.
    pub counters: PipelineCounters,
}

/// One parameter's latest value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParameterValue {
    /// `Name:Application`.
    pub identifier: String,
    /// Physical unit (may be empty).
    pub unit: String,
    /// Decimal places worth showing, from the signal's scale.
    pub decimals: u8,
    /// The latest value; `None` until the parameter is first decoded.
    pub value: Option<f64>,
    /// The value table's text for the latest value, when the parameter has one.
    pub text: Option<String>,
    /// Sample time of the latest value, nanoseconds since the UNIX epoch.
    pub time_ns: Option<u64>,
    /// Samples decoded since start (or since the last channel-map reload).
    pub samples: u64,
    /// Samples per second over the last rate window.
    pub rate_hz: f64,
}

/// The pipeline counters a person watching cares about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineCounters {
    /// Frames read from the sources.
    pub frames_in: u64,
    /// Frames whose id no selected message has.
    pub unknown_ids: u64,
    /// Capture lines or datagrams rejected as malformed.
    pub rejected_inputs: u64,
    /// Samples decoded.
    pub samples_decoded: u64,
    /// Samples the Stream API acknowledged.
    pub samples_published: u64,
    /// Samples in the spool not yet acknowledged.
    pub samples_waiting: u64,
    /// Frames the sources dropped because the pipeline was full.
    pub frames_dropped: u64,
    /// Datagrams the kernel dropped before a UDP source read them.
    pub kernel_drops: u64,
    /// The Open Streaming session being written (empty before it opens).
    pub session: String,
}

#[derive(Debug, Default)]
struct Table {
    slots: Vec<Slot>,
    /// When the current rate window started, and each slot's sample count then.
    window_start: Option<Instant>,
    window_counts: Vec<u64>,
    /// Rates measured over the last whole window, or since the first window started.
    rates: Vec<f64>,
    /// Whether `rates` covers a whole window (else it is recomputed at every report).
    whole_window: bool,
    /// Scratch of [`LiveValues::record`], by format index (all zero between calls).
    batch_formats: Vec<FormatInBatch>,
    /// Scratch of [`LiveValues::record`]: the formats met in the batch.
    touched: Vec<u32>,
}

/// One format's rows in the batch being recorded.
#[derive(Debug, Clone, Copy, Default)]
struct FormatInBatch {
    rows: u64,
    last_row: usize,
}

#[derive(Debug, Default)]
struct Slot {
    identifier: String,
    unit: String,
    decimals: u8,
    value_descriptions: Vec<(i64, String)>,
    value: f64,
    time_ns: u64,
    samples: u64,
}

impl LiveValues {
    /// Starts over with the parameters of `map` (at start and after a reload, since parameter
    /// indices are the map's own).
    pub fn reset(&self, map: &ChannelMap, now: Instant) {
        let slots = map
            .parameters()
            .iter()
            .map(|parameter| Slot {
                identifier: parameter.identifier.clone(),
                unit: parameter.unit.clone(),
                decimals: parameter.decimals,
                value_descriptions: parameter.value_descriptions.clone(),
                ..Slot::default()
            })
            .collect::<Vec<_>>();
        let mut table = self.lock();
        table.window_counts = vec![0; slots.len()];
        table.rates.clear();
        table.whole_window = false;
        table.window_start = Some(now);
        table.slots = slots;
    }

    /// Keeps the latest value of every parameter in `rows`, decoded with `map`.
    ///
    /// Works per row, not per sample: each format's rows are counted and only its last row's
    /// values are stored (every row of a format carries the same parameters). Formats are
    /// stored in the order of their last rows, so a parameter in several formats keeps the
    /// value of the latest row, as if every row had been stored in turn.
    pub fn record(&self, map: &ChannelMap, rows: &RowBatch) {
        if rows.is_empty() {
            return;
        }
        let mut table = self.lock();
        let Table {
            slots,
            batch_formats,
            touched,
            ..
        } = &mut *table;
        for (index, header) in rows.headers().iter().enumerate() {
            let format = header.format as usize;
            if format >= batch_formats.len() {
                batch_formats.resize(format + 1, FormatInBatch::default());
            }
            let seen = &mut batch_formats[format];
            if seen.rows == 0 {
                touched.push(header.format);
            }
            seen.rows += 1;
            seen.last_row = index;
        }
        touched.sort_unstable_by_key(|format| batch_formats[*format as usize].last_row);
        for format_index in touched.drain(..) {
            let seen = std::mem::take(&mut batch_formats[format_index as usize]);
            let (Some(format), Some((header, values))) =
                (map.format(format_index), rows.row(seen.last_row))
            else {
                continue;
            };
            for (parameter, value) in format.parameters.iter().zip(values) {
                if let Some(slot) = slots.get_mut(*parameter as usize) {
                    slot.value = *value;
                    slot.time_ns = header.time_ns;
                    slot.samples += seen.rows;
                }
            }
        }
    }

    /// Every parameter's latest value and rate at `now`.
    pub fn snapshot(&self, now: Instant) -> Vec<ParameterValue> {
        let mut table = self.lock();
        table.roll_rate_window(now);
        table
            .slots
            .iter()
            .enumerate()
            .map(|(index, slot)| {
                let seen = slot.samples > 0;
                ParameterValue {
                    identifier: slot.identifier.clone(),
                    unit: slot.unit.clone(),
                    decimals: slot.decimals,
                    value: seen.then_some(slot.value),
                    text: seen.then(|| slot.text()).flatten(),
                    time_ns: seen.then_some(slot.time_ns),
                    samples: slot.samples,
                    rate_hz: table.rates.get(index).copied().unwrap_or(0.0),
                }
            })
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // A panic while holding the lock leaves at worst a half-written value: still a value.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Table {
    /// Measures the rates over the window when it is at least [`RATE_WINDOW`] old and starts
    /// the next; before the first whole window, rates are measured since it started.
    fn roll_rate_window(&mut self, now: Instant) {
        let start = *self.window_start.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start);
        if elapsed.is_zero() || (elapsed < RATE_WINDOW && self.whole_window) {
            return;
        }
        let seconds = elapsed.as_secs_f64();
        self.rates = self
            .slots
            .iter()
            .zip(&self.window_counts)
            .map(|(slot, before)| slot.samples.saturating_sub(*before) as f64 / seconds)
            .collect();
        if elapsed >= RATE_WINDOW {
            self.whole_window = true;
            self.window_counts = self.slots.iter().map(|slot| slot.samples).collect();
            self.window_start = Some(now);
        }
    }
}

impl Slot {
    fn text(&self) -> Option<String> {
        if self.value.fract() != 0.0 {
            return None;
        }
        let raw = self.value as i64;
        self.value_descriptions
            .iter()
            .find(|(value, _)| *value == raw)
            .map(|(_, text)| text.clone())
    }
}

impl ValuesReport {
    /// The report at `now`: `metrics.live_values` and the counters of the run and its sources.
    pub fn collect(
        metrics: &Metrics,
        sources: &[std::sync::Arc<SourceMetrics>],
        now: Instant,
    ) -> Self {
        let sum = |field: fn(&SourceMetrics) -> &std::sync::atomic::AtomicU64| {
            sources.iter().map(|s| Metrics::get(field(s))).sum()
        };
        Self {
            parameters: metrics.live_values.snapshot(now),
            counters: PipelineCounters {
                frames_in: Metrics::get(&metrics.frames_in),
                unknown_ids: Metrics::get(&metrics.unknown_ids),
                rejected_inputs: Metrics::get(&metrics.rejected_inputs),
                samples_decoded: Metrics::get(&metrics.samples_decoded),
                samples_published: Metrics::get(&metrics.samples_published),
                samples_waiting: Metrics::get(&metrics.samples_waiting),
                frames_dropped: sum(|s| &s.frames_dropped),
                kernel_drops: sum(|s| &s.kernel_drops),
                session: metrics.session(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use decoders::dbc::parse_dbc;

    use super::*;

    const DBC: &str = "VERSION \"\"\n\nBU_: ECU\n\n\
        BO_ 256 ENGINE: 8 ECU\n \
        SG_ RPM : 0|16@1+ (1,0) [0|16000] \"rpm\" Vector__XXX\n \
        SG_ Gear : 16|8@1+ (1,0) [0|8] \"\" Vector__XXX\n\n\
        BO_ 257 BODY: 8 ECU\n \
        SG_ Speed : 0|16@1+ (0.1,0) [0|400] \"km/h\" Vector__XXX\n\n\
        VAL_ 256 Gear 0 \"Neutral\" 1 \"First\" ;\n";

    fn map() -> ChannelMap {
        let parsed = parse_dbc("live.dbc", DBC).expect("dbc");
        let selection = decoders::channel_map::Selection {
            application: "Live".into(),
            ..Default::default()
        };
        ChannelMap::compile(&parsed.dbc, &selection).expect("map")
    }

    fn engine_frame(rpm: u16, gear: u8) -> decoders::CanFrame {
        let [low, high] = rpm.to_le_bytes();
        let id = decoders::CanId::standard(256).expect("id");
        decoders::CanFrame::new(
            id,
            decoders::CanFlags::empty(),
            &[low, high, gear, 0, 0, 0, 0, 0],
        )
        .expect("frame")
    }

    /// The test map and a table reset for it now, with that start time.
    fn started() -> (ChannelMap, LiveValues, Instant) {
        let map = map();
        let live = LiveValues::default();
        let start = Instant::now();
        live.reset(&map, start);
        (map, live, start)
    }

    #[test]
    fn the_latest_value_wins_and_unseen_parameters_have_none() {
        let (mut map, live, start) = started();
        let mut rows = RowBatch::new();
        map.decode(10, &engine_frame(3000, 0), &mut rows);
        map.decode(20, &engine_frame(3500, 1), &mut rows);
        live.record(&map, &rows);

        let values = live.snapshot(start + Duration::from_secs(2));
        let by_name = |name: &str| {
            values
                .iter()
                .find(|v| v.identifier == name)
                .unwrap_or_else(|| panic!("{name} in {values:?}"))
        };
        assert_eq!(by_name("RPM:Live").value, Some(3500.0));
        assert_eq!(by_name("RPM:Live").unit, "rpm");
        assert_eq!(by_name("RPM:Live").time_ns, Some(20));
        assert_eq!(by_name("Gear:Live").text.as_deref(), Some("First"));
        assert_eq!(by_name("Speed:Live").value, None);
        assert_eq!(by_name("Speed:Live").samples, 0);
        assert_eq!(by_name("RPM:Live").samples, 2);
        assert_eq!(by_name("RPM:Live").rate_hz, 1.0, "2 samples over 2 s");
    }

    #[test]
    fn a_parameter_in_two_formats_keeps_the_latest_rows_value() {
        let (mut map, live, start) = started();
        let id = decoders::CanId::standard(256).expect("id");
        // Two bytes hold RPM but not Gear: a second format holding only RPM.
        let rpm_only =
            decoders::CanFrame::new(id, decoders::CanFlags::empty(), &[0xD0, 0x07]).expect("frame");
        let mut rows = RowBatch::new();
        map.decode(10, &engine_frame(1000, 0), &mut rows);
        map.decode(20, &rpm_only, &mut rows);
        map.decode(30, &engine_frame(3000, 1), &mut rows);
        assert_ne!(rows.headers()[0].format, rows.headers()[1].format);
        live.record(&map, &rows);
        let values = live.snapshot(start + Duration::from_secs(1));
        let rpm = values
            .iter()
            .find(|v| v.identifier == "RPM:Live")
            .expect("RPM");
        assert_eq!(
            (rpm.value, rpm.time_ns, rpm.samples),
            (Some(3000.0), Some(30), 3)
        );
        let gear = values
            .iter()
            .find(|v| v.identifier == "Gear:Live")
            .expect("Gear");
        assert_eq!((gear.value, gear.samples), (Some(1.0), 2));
    }

    #[test]
    fn rates_come_from_the_last_whole_window_and_fall_to_zero_when_data_stops() {
        let (mut map, live, start) = started();
        let mut rows = RowBatch::new();
        for n in 0..20 {
            map.decode(n, &engine_frame(1000, 0), &mut rows);
        }
        live.record(&map, &rows);
        let rate = |at: Duration| live.snapshot(start + at)[0].rate_hz;
        assert_eq!(
            rate(Duration::from_millis(500)),
            40.0,
            "provisional, since start"
        );
        assert_eq!(rate(Duration::from_secs(1)), 20.0, "first whole window");
        assert_eq!(
            rate(Duration::from_millis(1500)),
            20.0,
            "kept inside the next window"
        );
        assert_eq!(
            rate(Duration::from_secs(2)),
            0.0,
            "nothing arrived in this window"
        );
    }

    #[test]
    fn a_reset_forgets_the_previous_map() {
        let (mut map, live, start) = started();
        let mut rows = RowBatch::new();
        map.decode(1, &engine_frame(1000, 0), &mut rows);
        live.record(&map, &rows);
        live.reset(&map, start);
        assert!(live.snapshot(start).iter().all(|v| v.value.is_none()));
    }
}
