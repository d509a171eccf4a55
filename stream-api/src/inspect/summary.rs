//! The human-readable form of an inspect [`Summary`]: what `ecu-bridge stream-api inspect`
//! prints. Formatting only; every figure comes from [`Recording::summary`](super::Recording::summary).

use std::fmt;

use super::Summary;

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

/// Epoch ns as `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` (proleptic Gregorian, Howard Hinnant's algorithm).
fn utc(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    format!(
        "{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{:09}Z",
        ns % 1_000_000_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            utc(1_700_000_000_123_456_789),
            "2023-11-14T22:13:20.123456789Z"
        );
        assert_eq!(
            utc(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000000000Z"
        );
    }
}
