//! Laps from the car's own signals: a lap counter, a beacon (lap trigger) or a lap-time
//! parameter, turned into lap events at the triggering sample's time (`docs/sessions.md`).

use crate::channel_map::ChannelMap;
use crate::sample::RowBatch;

/// Which kind of signal marks a new lap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LapSignal {
    /// A lap number kept by the ECU or logger: a lap is completed when it increases, and the
    /// lap is the new value.
    Counter,
    /// A beacon or lap-trigger input: a lap is completed on each rising edge (from ≤ 0.5 to
    /// > 0.5).
    Beacon,
    /// The last lap's time, updated by the logger when a lap completes: a lap is completed
    /// each time it changes to a positive value.
    LapTime,
}

/// One completed lap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LapEvent {
    /// The triggering sample's time, ns since the UNIX epoch.
    pub time_ns: u64,
    /// The lap number the car reported ([`LapSignal::Counter`]); `None` when laps are counted
    /// by edges, so the consumer numbers them (per session).
    pub lap: Option<u32>,
}

/// Follows one parameter through decoded rows and reports laps.
#[derive(Debug, Clone)]
pub struct LapDetector {
    signal: LapSignal,
    identifier: String,
    /// The parameter's index in the map, if the map has it.
    parameter: Option<u32>,
    /// Per format: the parameter's position in its rows (`None`: not carried).
    positions: Vec<Option<usize>>,
    last: Option<f64>,
}

impl LapDetector {
    /// A detector of `signal` on the parameter `identifier` (`Name:App`) of `map`.
    pub fn new(signal: LapSignal, identifier: &str, map: &ChannelMap) -> Self {
        let mut detector = Self {
            signal,
            identifier: identifier.to_owned(),
            parameter: None,
            positions: Vec::new(),
            last: None,
        };
        detector.follow(map);
        detector
    }

    /// Whether `map` has the parameter (else nothing is ever detected).
    pub fn is_bound(&self) -> bool {
        self.parameter.is_some()
    }

    /// Follows the parameter in a reloaded `map` (its formats are numbered anew). The last value
    /// is kept: the car did not change.
    pub fn follow(&mut self, map: &ChannelMap) {
        self.parameter = map
            .parameters()
            .iter()
            .position(|p| p.identifier == self.identifier)
            .and_then(|index| u32::try_from(index).ok());
        self.positions.clear();
    }

    /// Appends to `laps` every lap completed in `rows` (decoded through `map`), in row order.
    pub fn observe(&mut self, map: &ChannelMap, rows: &RowBatch, laps: &mut Vec<LapEvent>) {
        let Some(parameter) = self.parameter else {
            return;
        };
        for (header, values) in rows.rows() {
            let format = header.format as usize;
            if format >= self.positions.len() {
                self.extend_positions(map, parameter);
            }
            let Some(Some(position)) = self.positions.get(format) else {
                continue;
            };
            let Some(&value) = values.get(*position) else {
                continue;
            };
            if !value.is_finite() {
                continue;
            }
            if let Some(lap) = self.step(value) {
                laps.push(LapEvent {
                    time_ns: header.time_ns,
                    lap,
                });
            }
        }
    }

    fn extend_positions(&mut self, map: &ChannelMap, parameter: u32) {
        for index in self.positions.len()..map.format_count() {
            let position = map
                .format(index as u32)
                .and_then(|format| format.parameters.iter().position(|p| *p == parameter));
            self.positions.push(position);
        }
    }

    /// The lap completed by `value`, if any: `Some(Some(n))` for a counter's lap `n`,
    /// `Some(None)` for an edge.
    fn step(&mut self, value: f64) -> Option<Option<u32>> {
        let last = self.last.replace(value)?;
        match self.signal {
            LapSignal::Counter if value > last && value >= 1.0 => {
                Some(Some(value.min(f64::from(u32::MAX)) as u32))
            }
            LapSignal::Beacon if last <= 0.5 && value > 0.5 => Some(None),
            LapSignal::LapTime if value != last && value > 0.0 => Some(None),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detector(signal: LapSignal) -> LapDetector {
        LapDetector {
            signal,
            identifier: "LAP:App".into(),
            parameter: Some(0),
            positions: Vec::new(),
            last: None,
        }
    }

    fn run(signal: LapSignal, values: &[f64]) -> Vec<Option<Option<u32>>> {
        let mut detector = detector(signal);
        values.iter().map(|v| detector.step(*v)).collect()
    }

    #[test]
    fn a_counter_reports_each_increase_with_the_cars_number() {
        let laps = run(LapSignal::Counter, &[0.0, 0.0, 1.0, 1.0, 2.0, 3.0, 3.0]);
        assert_eq!(
            laps,
            [
                None,
                None,
                Some(Some(1)),
                None,
                Some(Some(2)),
                Some(Some(3)),
                None
            ]
        );
    }

    #[test]
    fn a_counter_that_starts_high_or_resets_reports_nothing_until_it_increases() {
        let laps = run(LapSignal::Counter, &[5.0, 0.0, 1.0]);
        assert_eq!(laps, [None, None, Some(Some(1))]);
    }

    #[test]
    fn a_beacon_reports_rising_edges_only() {
        let laps = run(LapSignal::Beacon, &[1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0]);
        assert_eq!(laps, [None, None, Some(None), None, None, None, Some(None)]);
    }

    #[test]
    fn a_lap_time_reports_each_new_positive_value() {
        let laps = run(LapSignal::LapTime, &[0.0, 0.0, 92.4, 92.4, 91.8, 0.0]);
        assert_eq!(laps, [None, None, Some(None), None, Some(None), None]);
    }
}
