//! Stateless producer-lint checks on single messages (the content parts of §10 B4, B6, B7, B8,
//! B11, B12), used by the stateful [`Checker`](super::conformance::Checker).
//!
//! Every function here looks at one message and pushes findings into a [`Findings`]; none keeps
//! state, reads a clock or does IO (the receive time comes in as `now_ns`).

use std::fmt;

use open_data::{sample_column, sample_row};
use open_streaming::{api, open_data};

use super::conformance::{Severity, Violation};
use super::row_shape::{ListShape, RowSummary};

/// One day in nanoseconds: a timestamp below it is a time of day, not an epoch time.
pub const DAY_NS: u64 = 86_400_000_000_000;
/// 2000-01-01T00:00:00Z in epoch nanoseconds: the earliest plausible telemetry time.
pub const Y2000_NS: u64 = 946_684_800_000_000_000;
/// The reserved essentials stream name (rule 61).
pub const ESSENTIAL_STREAM: &str = "@stream@::_essential";
/// Synchro packets above this many samples per column break the C# recorder (rule 31).
const SYNCHRO_MAX_SAMPLES: usize = 255;

/// Violations collected for one (session, stream) while a message is checked.
#[derive(Debug)]
pub struct Findings<'a> {
    /// Session the message belongs to (as the producer sent it).
    pub session_key: &'a str,
    /// Stream the message was written to (`""` = main; empty for session RPCs).
    pub stream: &'a str,
    /// What was found, in check order.
    pub out: Vec<Violation>,
}

impl<'a> Findings<'a> {
    /// An empty set of findings for `session_key` / `stream`.
    pub fn new(session_key: &'a str, stream: &'a str) -> Self {
        Findings {
            session_key,
            stream,
            out: Vec::new(),
        }
    }

    /// Records an error-severity violation of `rule`.
    pub fn error(&mut self, rule: &'static str, message: String) {
        self.push(rule, Severity::Error, message);
    }

    /// Records a warning-severity violation of `rule`.
    pub fn warn(&mut self, rule: &'static str, message: String) {
        self.push(rule, Severity::Warning, message);
    }

    fn push(&mut self, rule: &'static str, severity: Severity, message: String) {
        self.out.push(Violation {
            rule,
            severity,
            session_key: self.session_key.to_owned(),
            stream: self.stream.to_owned(),
            message,
        });
    }
}

/// A borrowed sample list of any of the four sample types (columns and rows share the shapes).
#[derive(Debug, Clone, Copy)]
pub enum ListRef<'a> {
    /// `double_samples`.
    Double(&'a open_data::DoubleSampleList),
    /// `int32_samples`.
    Int32(&'a open_data::Int32SampleList),
    /// `bool_samples`.
    Bool(&'a open_data::BoolSampleList),
    /// `string_samples`.
    String(&'a open_data::StringSampleList),
}

impl<'a> ListRef<'a> {
    /// The list of a periodic/synchro column.
    pub fn of_column(column: &'a open_data::SampleColumn) -> Option<Self> {
        Some(match column.list.as_ref()? {
            sample_column::List::DoubleSamples(l) => ListRef::Double(l),
            sample_column::List::Int32Samples(l) => ListRef::Int32(l),
            sample_column::List::BoolSamples(l) => ListRef::Bool(l),
            sample_column::List::StringSamples(l) => ListRef::String(l),
        })
    }

    /// The list of a row.
    pub fn of_row(row: &'a open_data::SampleRow) -> Option<Self> {
        Some(match row.list.as_ref()? {
            sample_row::List::DoubleSamples(l) => ListRef::Double(l),
            sample_row::List::Int32Samples(l) => ListRef::Int32(l),
            sample_row::List::BoolSamples(l) => ListRef::Bool(l),
            sample_row::List::StringSamples(l) => ListRef::String(l),
        })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        match self {
            ListRef::Double(l) => l.samples.len(),
            ListRef::Int32(l) => l.samples.len(),
            ListRef::Bool(l) => l.samples.len(),
            ListRef::String(l) => l.samples.len(),
        }
    }

    /// Index of the first sample whose status is `DATA_STATUS_UNSPECIFIED`, if any (no
    /// allocation: the server runs this on every row of every packet).
    pub fn first_unspecified(&self) -> Option<usize> {
        let unspecified = open_data::DataStatus::Unspecified as i32;
        match self {
            ListRef::Double(l) => l.samples.iter().position(|s| s.status == unspecified),
            ListRef::Int32(l) => l.samples.iter().position(|s| s.status == unspecified),
            ListRef::Bool(l) => l.samples.iter().position(|s| s.status == unspecified),
            ListRef::String(l) => l.samples.iter().position(|s| s.status == unspecified),
        }
    }

    /// Numeric value of each sample (`None` for strings; bools are 0/1).
    pub fn values(&self) -> Vec<Option<f64>> {
        match self {
            ListRef::Double(l) => l.samples.iter().map(|s| Some(s.value)).collect(),
            ListRef::Int32(l) => l.samples.iter().map(|s| Some(f64::from(s.value))).collect(),
            ListRef::Bool(l) => l
                .samples
                .iter()
                .map(|s| Some(f64::from(u8::from(s.value))))
                .collect(),
            ListRef::String(l) => l.samples.iter().map(|_| None).collect(),
        }
    }
}

/// B11: data source and stream names (rule 61). `stream` is `None` for session RPCs.
pub fn check_names(data_source: &str, stream: Option<&str>, f: &mut Findings<'_>) {
    let legal = |s: &str| {
        s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    };
    if data_source.is_empty() {
        f.error("B11", "data_source is empty".into());
    } else if !legal(data_source) {
        f.error(
            "B11",
            format!("data_source {data_source:?} has characters outside [A-Za-z0-9._-]"),
        );
    }
    let Some(stream) = stream else { return };
    if stream == ESSENTIAL_STREAM {
        f.error(
            "B11",
            format!("stream {stream:?} is the reserved essentials stream"),
        );
    } else if stream.eq_ignore_ascii_case("main") {
        f.error(
            "B11",
            format!("stream {stream:?}: the main stream is \"\", not {stream:?}"),
        );
    } else if stream.contains('.') {
        f.error(
            "B11",
            format!("stream {stream:?} contains '.' (breaks stream discovery)"),
        );
    } else if !legal(stream) {
        f.error(
            "B11",
            format!("stream {stream:?} has characters outside [A-Za-z0-9._-]"),
        );
    }
}

/// B11 + B12: the fields of a CreateSession request (rules 7–8, 61, 70).
pub fn check_create_session(request: &api::CreateSessionRequest, f: &mut Findings<'_>) {
    check_names(&request.data_source, None, f);
    if request.identifier.is_empty() {
        f.error(
            "B12",
            "CreateSession identifier is empty (readers wait for a non-empty one)".into(),
        );
    }
    if request.version == 0 {
        f.error(
            "B12",
            "CreateSession version is 0 (the server does not default it; send 1)".into(),
        );
    }
    if request.utc_offset.is_none() {
        f.warn("B12", "CreateSession utc_offset is not set".into());
    }
}

/// B4: the content of one ConfigurationPacket (rules 16–18, 62–63); reuse of `config_id` across
/// sessions and the per-stream parts are checked by the caller.
pub fn check_configuration(
    config: &open_data::ConfigurationPacket,
    essential: bool,
    f: &mut Findings<'_>,
) {
    let id = &config.config_id;
    if id.is_empty() {
        f.error("B4", "Configuration config_id is empty".into());
    }
    if !essential {
        f.error(
            "B4",
            format!("Configuration {id:?} is not marked is_essential=true"),
        );
    }
    let group_app = match config.group_definitions.as_slice() {
        [group] => Some(group.application_name.as_str()),
        groups => {
            let n = groups.len();
            f.error(
                "B4",
                format!("Configuration {id:?} has {n} top-level GroupDefinitions (need exactly 1)"),
            );
            None
        }
    };
    for def in &config.parameter_definitions {
        check_parameter(def, group_app, f);
    }
}

/// B4: one ParameterDefinition against the naming and limit rules (62–63).
fn check_parameter(
    def: &open_data::ParameterDefinition,
    group_app: Option<&str>,
    f: &mut Findings<'_>,
) {
    let id = &def.identifier;
    let parts: Vec<&str> = id.split(':').collect();
    if let [_, app] = parts.as_slice() {
        if def.application_name != *app {
            f.error(
                "B4",
                format!(
                    "parameter {id:?}: application_name {:?} differs from the id's App part {app:?}",
                    def.application_name
                ),
            );
        }
    } else {
        f.error(
            "B4",
            format!("parameter {id:?}: identifier must contain exactly one ':' (\"Name:App\")"),
        );
    }
    if let Some(group_app) = group_app
        && def.application_name != group_app
    {
        f.error(
            "B4",
            format!(
                "parameter {id:?}: application_name {:?} differs from the group's {group_app:?}",
                def.application_name
            ),
        );
    }
    if def.min_value.partial_cmp(&def.max_value) != Some(std::cmp::Ordering::Less) {
        f.error(
            "B4",
            format!(
                "parameter {id:?}: min_value {} is not below max_value {}",
                def.min_value, def.max_value
            ),
        );
    }
    if let Some(bad) = def
        .frequencies
        .iter()
        .find(|hz| hz.partial_cmp(&&0.0) != Some(std::cmp::Ordering::Greater))
    {
        f.error(
            "B4",
            format!("parameter {id:?}: frequency {bad} Hz is not > 0"),
        );
    }
}

/// B6: one sample list's length against the expected count, its statuses, its type (30–32).
/// `what` names the list; it is formatted only when something is found.
pub fn check_list(
    what: fmt::Arguments<'_>,
    list: Option<ListShape>,
    expected: usize,
    f: &mut Findings<'_>,
) {
    let Some(list) = list else {
        f.error("B6", format!("{what}: no sample list set"));
        return;
    };
    if list.len != expected {
        f.error(
            "B6",
            format!("{what}: {} samples, expected {expected}", list.len),
        );
    }
    if let Some(i) = list.first_unspecified {
        f.error(
            "B6",
            format!("{what}: sample {i} has DATA_STATUS_UNSPECIFIED (use DATA_STATUS_VALID)"),
        );
    }
    if list.strings {
        f.warn(
            "B6",
            format!("{what}: string samples are not supported by the sample recorders"),
        );
    }
}

/// B6: a periodic packet's shape given its parameter count (rules 26–27, 65).
pub fn check_periodic_shape(
    p: &open_data::PeriodicDataPacket,
    n_params: usize,
    f: &mut Findings<'_>,
) {
    if p.interval == 0 {
        f.error("B6", "PeriodicData interval is 0".into());
    }
    if p.columns.len() != n_params {
        f.error(
            "B6",
            format!(
                "PeriodicData has {} columns for {n_params} parameters",
                p.columns.len()
            ),
        );
    }
    let len = p
        .columns
        .first()
        .and_then(ListRef::of_column)
        .map_or(0, |l| l.len());
    for (i, column) in p.columns.iter().enumerate() {
        check_list(
            format_args!("PeriodicData column {i}"),
            ListRef::of_column(column).map(|l| ListShape::of(&l)),
            len,
            f,
        );
    }
}

/// B6: a row packet's shape given its parameter count (rules 30, 65).
pub fn check_row_shape(p: &RowSummary, n_params: usize, f: &mut Findings<'_>) {
    if p.timestamps.len() != p.rows.len() {
        f.error(
            "B6",
            format!(
                "RowData has {} timestamps for {} rows",
                p.timestamps.len(),
                p.rows.len()
            ),
        );
    }
    for (i, row) in p.rows.iter().enumerate() {
        check_list(format_args!("RowData row {i}"), *row, n_params, f);
    }
}

/// B6: a synchro packet's shape given its parameter count (rule 31).
pub fn check_synchro_shape(
    p: &open_data::SynchroDataPacket,
    n_params: usize,
    f: &mut Findings<'_>,
) {
    if p.columns.len() != n_params {
        f.error(
            "B6",
            format!(
                "SynchroData has {} columns for {n_params} parameters",
                p.columns.len()
            ),
        );
    }
    let expected = p.intervals.len() + 1;
    if expected > SYNCHRO_MAX_SAMPLES {
        f.warn(
            "B6",
            format!("SynchroData has {expected} samples per column (C# recorder limit 255)"),
        );
    }
    for (i, column) in p.columns.iter().enumerate() {
        check_list(
            format_args!("SynchroData column {i}"),
            ListRef::of_column(column).map(|l| ListShape::of(&l)),
            expected,
            f,
        );
    }
}

/// B7: one timestamp is plausible epoch nanoseconds (rules 68–69). Returns false if flagged.
pub fn check_timestamp(what: &str, t: u64, now_ns: u64, f: &mut Findings<'_>) -> bool {
    let latest = now_ns.saturating_add(DAY_NS);
    let plausible = |v: u128| (u128::from(Y2000_NS)..=u128::from(latest)).contains(&v);
    let unit = [
        (1_000_000_000u128, "seconds"),
        (1_000_000, "milliseconds"),
        (1_000, "microseconds"),
    ]
    .into_iter()
    .find(|(scale, _)| plausible(u128::from(t) * scale));
    let problem = if let Some((_, unit)) = unit {
        format!("{what} {t} looks like {unit} since the epoch, not nanoseconds")
    } else if t < DAY_NS {
        format!("{what} {t} is below 86,400e9: a time of day, not epoch nanoseconds")
    } else if t < Y2000_NS {
        format!("{what} {t} is before 2000-01-01 in epoch nanoseconds")
    } else if t > latest {
        format!("{what} {t} is more than a day in the future")
    } else {
        return true;
    };
    f.error("B7", problem);
    false
}

/// B8: the fields of a `Lap Trigger` marker (rule 34); the time-range part is stateful.
pub fn check_lap_marker(m: &open_data::MarkerPacket, f: &mut Findings<'_>) {
    if m.source.parse::<u8>().is_err() {
        f.error(
            "B8",
            format!(
                "Lap Trigger {:?}: source {:?} is not a decimal 0-255",
                m.label, m.source
            ),
        );
    }
    if i16::try_from(m.value).is_err() {
        f.error(
            "B8",
            format!(
                "Lap Trigger {:?}: value {} does not fit int16",
                m.label, m.value
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_790_000_000_000_000_000;

    fn flagged(t: u64) -> Vec<String> {
        let mut f = Findings::new("k", "s");
        check_timestamp("t", t, NOW, &mut f);
        f.out.into_iter().map(|v| v.message).collect()
    }

    #[test]
    fn timestamp_units_are_recognised() {
        assert!(flagged(NOW - 5).is_empty());
        assert!(flagged(NOW / 1_000_000_000)[0].contains("seconds"));
        assert!(flagged(NOW / 1_000_000)[0].contains("milliseconds"));
        assert!(flagged(NOW / 1_000)[0].contains("microseconds"));
        assert!(flagged(45_000_000_000_000)[0].contains("time of day"));
        assert!(flagged(NOW + 2 * DAY_NS)[0].contains("future"));
    }

    #[test]
    fn names() {
        let mut f = Findings::new("k", "");
        check_names("car1", Some("Main"), &mut f);
        check_names("bad ds", Some("a.b"), &mut f);
        check_names("car1", Some("chassis"), &mut f);
        let rules: Vec<_> = f.out.iter().map(|v| v.message.as_str()).collect();
        assert_eq!(rules.len(), 3, "{rules:?}");
    }
}
