//! The human-readable form of an inspect [`Summary`]: what `ecu-bridge stream-api inspect`
//! prints. Formatting only; every figure comes from [`Recording::summary`](super::Recording::summary).

use std::fmt;

use super::Summary;
use super::time::utc;
use super::values::LAP_MARKER_TYPE;

impl Summary {
    /// The lap markers of session `key`, in time order; one written to several streams
    /// counts once.
    fn laps_of(&self, key: &str) -> Vec<(u64, &str)> {
        let mut laps: Vec<(u64, &str)> = self
            .markers
            .iter()
            .filter(|m| m.session_key == key && m.marker.r#type == LAP_MARKER_TYPE)
            .map(|m| (m.marker.timestamp, m.marker.label.as_str()))
            .collect();
        laps.sort_unstable();
        laps.dedup();
        laps
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let torn = if self.truncated {
            " (torn last record ignored)"
        } else {
            ""
        };
        writeln!(f, "{} records{torn}", self.records)?;
        writeln!(f, "Sessions ({}):", self.sessions.len())?;
        for s in &self.sessions {
            let end = s.ended_ns.map_or_else(|| "not ended".to_owned(), utc);
            writeln!(
                f,
                "  {} {:?} data source {:?}: {} → {end}",
                s.key,
                s.identifier,
                s.data_source,
                utc(s.started_ns)
            )?;
            for key in &s.associates {
                writeln!(f, "    associated with {key}")?;
            }
            for (stream, n) in &s.streams {
                writeln!(f, "    stream {stream:?}: {n} packets")?;
            }
            let laps = self.laps_of(&s.key);
            if !laps.is_empty() {
                writeln!(f, "    laps ({}):", laps.len())?;
                for (time_ns, label) in laps {
                    writeln!(f, "      {} {label:?}", utc(time_ns))?;
                }
            }
            if s.duplicates > 0 {
                writeln!(f, "    Duplicate packets ({})", s.duplicates)?;
            }
        }
        writeln!(f, "Parameters ({}):", self.parameters.len())?;
        for p in &self.parameters {
            let (a, b) = p.range_ns;
            writeln!(
                f,
                "  {} [{}]: {} samples, {} → {}, mean {:.3} Hz",
                p.identifier,
                p.units,
                p.samples,
                utc(a),
                utc(b),
                p.mean_rate_hz
            )?;
        }
        writeln!(f, "Markers ({}):", self.markers.len())?;
        for m in &self.markers {
            let k = &m.marker;
            writeln!(
                f,
                "  {} {:?} {:?} value {} source {:?} on stream {:?}",
                utc(k.timestamp),
                k.r#type,
                k.label,
                k.value,
                k.source,
                m.stream
            )?;
        }
        writeln!(f, "Protocol violations ({}):", self.violations.len())?;
        for v in &self.violations {
            writeln!(f, "  {v}")?;
        }
        Ok(())
    }
}
