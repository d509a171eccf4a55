//! The values a recording holds, for people and tools: chosen parameters as time series
//! ([`Series`], what `inspect --values` and `--plot` show), the lap markers, and every chosen
//! series merged into one wide table with one time column ([`WideTable`], what `inspect --csv`
//! writes).
//!
//! Values are the doubles the server received, unchanged (bools as 0/1, like
//! [`Recording::samples`]); times are the packets' epoch ns. Only reads.

use std::collections::BTreeMap;
use std::io;

use super::{Recording, time::utc};

/// One parameter's samples across the recording.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// `"Name:App"`.
    pub identifier: String,
    /// Units from its ParameterDefinition (empty if none was sent).
    pub units: String,
    /// `(time_ns, value)`, sorted by time; equal times keep write order.
    pub samples: Vec<(u64, f64)>,
}

/// A parameter name that picks no parameter, or more than one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    /// Neither an identifier nor the name part of one.
    #[error("the recording has no parameter {name:?}; it has: {known}")]
    Unknown {
        /// As asked.
        name: String,
        /// The identifiers it has, comma-separated.
        known: String,
    },
    /// A name part shared by parameters of several applications.
    #[error("{name:?} names several parameters ({matches}): give the full Name:App identifier")]
    Ambiguous {
        /// As asked.
        name: String,
        /// The identifiers it matches, comma-separated.
        matches: String,
    },
}

/// The `MarkerPacket.type` of a lap marker (rule 34).
pub const LAP_MARKER_TYPE: &str = "Lap Trigger";

/// A lap marker (`type = "Lap Trigger"`, rule 34).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lap {
    /// When the lap starts (epoch ns).
    pub time_ns: u64,
    /// Its label ("Out Lap", "Lap 5").
    pub label: String,
}

/// Series merged on time: one row per distinct timestamp, a cell per series, empty where that
/// series has no sample at that time.
#[derive(Debug, Clone, PartialEq)]
pub struct WideTable {
    /// Parameter identifiers, one per cell of each row.
    pub columns: Vec<String>,
    /// Rows in time order.
    pub rows: Vec<WideRow>,
}

/// One row of a [`WideTable`].
#[derive(Debug, Clone, PartialEq)]
pub struct WideRow {
    /// Epoch ns.
    pub time_ns: u64,
    /// One per column; `None` where the parameter has no sample at this time.
    pub cells: Vec<Option<f64>>,
}

impl Recording {
    /// The chosen parameters' series, in the order asked; every parameter (by identifier) when
    /// `chosen` is empty. A name is a full identifier (`EngineSpeed:Civic`) or, when only one
    /// application uses it, the name part alone (`EngineSpeed`).
    pub fn series(&self, chosen: &[String]) -> Result<Vec<Series>, SelectError> {
        let mut samples = self.samples();
        let units = self.units();
        let identifiers: Vec<String> = if chosen.is_empty() {
            samples.keys().cloned().collect()
        } else {
            let known: Vec<&String> = samples.keys().collect();
            chosen
                .iter()
                .map(|name| pick(name, &known))
                .collect::<Result<_, _>>()?
        };
        Ok(identifiers
            .into_iter()
            .map(|identifier| Series {
                units: units.get(&identifier).cloned().unwrap_or_default(),
                samples: samples.remove(&identifier).unwrap_or_default(),
                identifier,
            })
            .collect())
    }

    /// Lap markers in time order; a marker written to several streams counts once.
    pub fn laps(&self) -> Vec<Lap> {
        let mut laps: Vec<Lap> = self
            .markers()
            .into_iter()
            .filter(|m| m.marker.r#type == LAP_MARKER_TYPE)
            .map(|m| Lap {
                time_ns: m.marker.timestamp,
                label: m.marker.label,
            })
            .collect();
        laps.sort_by(|a, b| (a.time_ns, &a.label).cmp(&(b.time_ns, &b.label)));
        laps.dedup();
        laps
    }
}

impl WideTable {
    /// Merges `series` on time. Two samples of one series at the same time (a parameter
    /// published twice) get a row each, so no value is lost.
    pub fn new(series: &[Series]) -> Self {
        // time → per series, its samples at that time in write order.
        let mut at: BTreeMap<u64, Vec<Vec<f64>>> = BTreeMap::new();
        for (column, s) in series.iter().enumerate() {
            for &(time, value) in &s.samples {
                at.entry(time)
                    .or_insert_with(|| vec![Vec::new(); series.len()])[column]
                    .push(value);
            }
        }
        let mut rows = Vec::with_capacity(at.len());
        for (time_ns, values) in at {
            let depth = values.iter().map(Vec::len).max().unwrap_or(0);
            for level in 0..depth {
                let cells = values.iter().map(|v| v.get(level).copied()).collect();
                rows.push(WideRow { time_ns, cells });
            }
        }
        Self {
            columns: series.iter().map(|s| s.identifier.clone()).collect(),
            rows,
        }
    }

    /// Writes the table as CSV: a header `time_utc,<identifier>…`, then one line per row with
    /// the time as ISO-8601 UTC with nanoseconds and each value in the shortest form that reads
    /// back to the same double; missing cells are empty.
    pub fn write_csv(&self, out: impl io::Write) -> Result<(), csv::Error> {
        let mut writer = csv::Writer::from_writer(out);
        writer.write_record(
            std::iter::once("time_utc").chain(self.columns.iter().map(String::as_str)),
        )?;
        for row in &self.rows {
            let cells = row
                .cells
                .iter()
                .map(|cell| cell.map(|v| v.to_string()).unwrap_or_default());
            writer.write_record(std::iter::once(utc(row.time_ns)).chain(cells))?;
        }
        writer.flush()?;
        Ok(())
    }
}

/// Writes every sample of `series` as one line, in time order (equal times in the order the
/// series are given): `<ISO-8601 UTC time>  <identifier>  <value> <units>`, identifiers padded
/// to one width so values line up. Stops at the first write error (a closed pipe, say).
pub fn write_values(series: &[Series], out: &mut impl io::Write) -> io::Result<()> {
    let width = series
        .iter()
        .map(|s| s.identifier.chars().count())
        .max()
        .unwrap_or(0);
    let mut lines: Vec<(u64, usize, f64)> = series
        .iter()
        .enumerate()
        .flat_map(|(index, s)| s.samples.iter().map(move |&(t, v)| (t, index, v)))
        .collect();
    // Stable, so one series' samples at one time keep their write order.
    lines.sort_by_key(|&(t, index, _)| (t, index));
    for (time, index, value) in lines {
        let s = &series[index];
        let line = format!(
            "{}  {:<width$}  {value} {}",
            utc(time),
            s.identifier,
            s.units
        );
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// How many known identifiers an unknown-name error lists before it says how many more.
const KNOWN_LISTED: usize = 30;

/// The identifier `name` stands for among `known`.
fn pick(name: &str, known: &[&String]) -> Result<String, SelectError> {
    if known.iter().any(|k| *k == name) {
        return Ok(name.to_owned());
    }
    let matches: Vec<&str> = known
        .iter()
        .filter(|k| k.split_once(':').is_some_and(|(n, _)| n == name))
        .map(|k| k.as_str())
        .collect();
    match matches.as_slice() {
        [one] => Ok((*one).to_owned()),
        [] => {
            let mut listed: Vec<&str> = known
                .iter()
                .take(KNOWN_LISTED)
                .map(|k| k.as_str())
                .collect();
            let more = known.len().saturating_sub(KNOWN_LISTED);
            let more = format!("… and {more} more (`ecu-bridge inspect FILE` lists them)");
            if known.len() > KNOWN_LISTED {
                listed.push(&more);
            }
            Err(SelectError::Unknown {
                name: name.to_owned(),
                known: listed.join(", "),
            })
        }
        _ => Err(SelectError::Ambiguous {
            name: name.to_owned(),
            matches: matches.join(", "),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(identifier: &str, samples: &[(u64, f64)]) -> Series {
        Series {
            identifier: identifier.to_owned(),
            units: String::new(),
            samples: samples.to_vec(),
        }
    }

    #[test]
    fn equal_times_merge_into_one_row_and_missing_cells_stay_empty() {
        let table = WideTable::new(&[
            series("A:X", &[(10, 1.0), (20, 2.0)]),
            series("B:X", &[(20, 0.5), (30, -3.25)]),
        ]);
        let rows: Vec<(u64, Vec<Option<f64>>)> = table
            .rows
            .iter()
            .map(|r| (r.time_ns, r.cells.clone()))
            .collect();
        assert_eq!(
            rows,
            [
                (10, vec![Some(1.0), None]),
                (20, vec![Some(2.0), Some(0.5)]),
                (30, vec![None, Some(-3.25)]),
            ]
        );
        let mut csv = Vec::new();
        table.write_csv(&mut csv).expect("csv");
        assert_eq!(
            String::from_utf8(csv).expect("utf-8"),
            "time_utc,A:X,B:X\n\
             1970-01-01T00:00:00.000000010Z,1,\n\
             1970-01-01T00:00:00.000000020Z,2,0.5\n\
             1970-01-01T00:00:00.000000030Z,,-3.25\n"
        );
    }

    #[test]
    fn a_series_twice_at_one_time_keeps_both_values() {
        let table = WideTable::new(&[
            series("A:X", &[(5, 1.0), (5, 2.0)]),
            series("B:X", &[(5, 9.0)]),
        ]);
        let cells: Vec<Vec<Option<f64>>> = table.rows.iter().map(|r| r.cells.clone()).collect();
        assert_eq!(cells, [vec![Some(1.0), Some(9.0)], vec![Some(2.0), None]]);
    }

    #[test]
    fn values_print_in_time_order_aligned_with_units() {
        let mut rpm = series(
            "EngineSpeed:Car",
            &[(2_000_000_000, 850.0), (1_000_000_000, 0.0)],
        );
        rpm.samples.sort_by_key(|(t, _)| *t);
        rpm.units = "rpm".to_owned();
        let gear = series("Gear:Car", &[(1_000_000_000, 1.0)]);
        let mut out = Vec::new();
        write_values(&[rpm, gear], &mut out).expect("write");
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "1970-01-01T00:00:01.000000000Z  EngineSpeed:Car  0 rpm\n\
             1970-01-01T00:00:01.000000000Z  Gear:Car         1\n\
             1970-01-01T00:00:02.000000000Z  EngineSpeed:Car  850 rpm\n"
        );
    }

    #[test]
    fn names_pick_identifiers_exactly_or_by_their_name_part() {
        let (a, b, c) = (
            "Rpm:Car".to_owned(),
            "Gear:Car".to_owned(),
            "Gear:Sim".to_owned(),
        );
        let known = [&a, &b, &c];
        assert_eq!(pick("Rpm", &known), Ok(a.clone()));
        assert_eq!(pick("Gear:Sim", &known), Ok(c.clone()));
        assert!(matches!(
            pick("Gear", &known),
            Err(SelectError::Ambiguous { .. })
        ));
        let unknown = pick("Rmp", &known).expect_err("typo");
        assert_eq!(
            unknown.to_string(),
            "the recording has no parameter \"Rmp\"; it has: Rpm:Car, Gear:Car, Gear:Sim"
        );
    }
}
