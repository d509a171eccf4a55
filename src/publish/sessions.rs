//! What each session of a run is called and when it ends (`docs/sessions.md`): the identifier
//! template filled from the session's first sample (`{date}`, `{time}`, `{run}`, `{car}`,
//! `{source}`, `{data_source}`), the per-day run counter kept in the state directory, and the
//! idle time after which a quiet car's session ends.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::utc_date_time;
use crate::publish::session::SessionIdentity;

/// The run counter's file in the state directory: one line, `YYYY-MM-DD N`.
const RUNS_FILE: &str = "runs";

/// How sessions are cut and named.
#[derive(Debug, Clone)]
pub struct SessionPlan {
    /// What each session is called and described as.
    pub template: SessionTemplate,
    /// A session ends after this long without data; `None`: one session for the whole run.
    pub idle_end: Option<Duration>,
    /// Mark an "In Lap" at each session's last sample.
    pub in_lap: bool,
    /// Numbers the runs of a day.
    pub runs: RunCounter,
}

/// A session's identity before its first sample is known.
#[derive(Debug, Clone, Default)]
pub struct SessionTemplate {
    /// The identifier with its placeholders.
    pub identifier: String,
    /// Kafka topic root and ATLAS recorder data source.
    pub data_source: String,
    /// Session type.
    pub session_type: String,
    /// Seconds east of Greenwich where the data is recorded.
    pub utc_offset_seconds: i64,
    /// Details from the configuration plus what the bridge knows (version, channel map).
    pub details: BTreeMap<String, String>,
    /// `{car}`: the car's name.
    pub car: String,
    /// `{source}`: the sources' names, joined by `+`.
    pub source: String,
}

impl SessionTemplate {
    /// The identity of the session whose first sample is at `first_ns` and which is the
    /// `run`th of its day.
    pub fn identity(&self, first_ns: u64, run: u32) -> SessionIdentity {
        let (date, time) = utc_date_time(first_ns / 1_000_000_000);
        let identifier = self
            .identifier
            .replace("{data_source}", &self.data_source)
            .replace("{date}", &date)
            .replace("{time}", &time)
            .replace("{run}", &run.to_string())
            .replace("{car}", &self.car)
            .replace("{source}", &self.source);
        let mut details = self.details.clone();
        details.insert("run".to_owned(), run.to_string());
        SessionIdentity {
            data_source: self.data_source.clone(),
            identifier,
            session_type: self.session_type.clone(),
            utc_offset_seconds: self.utc_offset_seconds,
            details,
            creation_ns: Some(first_ns),
        }
    }
}

/// Numbers sessions per day (UTC date of their first sample), 1, 2, 3…; kept in a file so a
/// restarted bridge goes on counting, or in memory only when there is no state directory.
#[derive(Debug, Clone, Default)]
pub struct RunCounter {
    file: Option<PathBuf>,
    last: Option<(String, u32)>,
    failure_logged: bool,
}

impl RunCounter {
    /// A counter kept in `dir` (the state directory), or in memory when `None`.
    pub fn new(dir: Option<PathBuf>) -> Self {
        let file = dir.map(|dir| dir.join(RUNS_FILE));
        let last = file
            .as_ref()
            .and_then(|file| std::fs::read_to_string(file).ok())
            .and_then(|text| parse_runs(&text));
        Self {
            file,
            last,
            failure_logged: false,
        }
    }

    /// The next run number for a session first sampled at `first_ns`, recorded at once.
    pub fn next(&mut self, first_ns: u64) -> u32 {
        let (date, _) = utc_date_time(first_ns / 1_000_000_000);
        let run = match &self.last {
            Some((last_date, run)) if *last_date == date => run + 1,
            _ => 1,
        };
        self.last = Some((date.clone(), run));
        if let Some(file) = &self.file {
            let written = write_runs(file, &format!("{date} {run}\n"));
            if let Err(error) = written
                && !self.failure_logged
            {
                self.failure_logged = true;
                tracing::warn!(file = %file.display(), %error, "run counter not saved; a restart may number runs again (logged once)");
            }
        }
        run
    }
}

fn parse_runs(text: &str) -> Option<(String, u32)> {
    let mut parts = text.split_whitespace();
    let date = parts.next()?.to_owned();
    let run = parts.next()?.parse().ok()?;
    Some((date, run))
}

/// Replaces `file` with `text` so a crash leaves the old or the new content, never a mix.
fn write_runs(file: &std::path::Path, text: &str) -> std::io::Result<()> {
    let staged = file.with_extension("new");
    std::fs::write(&staged, text)?;
    std::fs::rename(&staged, file)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-05-16 13:00:00 UTC.
    const DRIVEN_NS: u64 = 1_778_936_400 * 1_000_000_000;

    #[test]
    fn the_identifier_is_filled_from_the_first_sample_and_the_run() {
        let template = SessionTemplate {
            identifier: "{car} {date} {time} run {run} ({source}, {data_source})".into(),
            data_source: "ecu".into(),
            car: "Demo".into(),
            source: "can0".into(),
            ..SessionTemplate::default()
        };
        let identity = template.identity(DRIVEN_NS, 3);
        assert_eq!(
            identity.identifier,
            "Demo 2026-05-16 13:00:00 run 3 (can0, ecu)"
        );
        assert_eq!(identity.creation_ns, Some(DRIVEN_NS));
        assert_eq!(identity.details.get("run").map(String::as_str), Some("3"));
    }

    #[test]
    fn runs_count_per_day_and_survive_a_restart() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut runs = RunCounter::new(Some(dir.path().to_owned()));
        assert_eq!(runs.next(DRIVEN_NS), 1);
        assert_eq!(runs.next(DRIVEN_NS + 3_600_000_000_000), 2);
        let mut restarted = RunCounter::new(Some(dir.path().to_owned()));
        assert_eq!(restarted.next(DRIVEN_NS), 3);
        let next_day = DRIVEN_NS + 86_400 * 1_000_000_000;
        assert_eq!(restarted.next(next_day), 1);
        assert_eq!(
            std::fs::read_to_string(dir.path().join(RUNS_FILE)).expect("file"),
            "2026-05-17 1\n"
        );
    }

    #[test]
    fn without_a_state_directory_runs_count_in_memory() {
        let mut runs = RunCounter::new(None);
        assert_eq!(runs.next(DRIVEN_NS), 1);
        assert_eq!(runs.next(DRIVEN_NS), 2);
    }
}
