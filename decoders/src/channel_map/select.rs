//! What a car's selection does to a DBC signal or a definition field: whether it is selected
//! (`include`/`exclude` globs), which patterns select or remove nothing, that renames and
//! overrides name something, and the unit, range and decimals a parameter is published with.

use std::collections::HashMap;

use super::{ChannelMapError, DefinitionUse, IniUse, Override, Selection, definitions, ini};
use crate::dbc::{Dbc, Signal};

/// The override for `key` (default if none), and the display range it leaves of `default`,
/// with the maximum kept above the minimum.
pub(super) fn presentation(
    selection: &Selection,
    key: &str,
    default: (f64, f64),
) -> (Override, f64, f64) {
    let over = selection
        .overrides
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, o)| o.clone())
        .unwrap_or_default();
    let min = over.min.unwrap_or(default.0);
    let mut max = over.max.unwrap_or(default.1);
    if max <= min {
        max = min + 1.0;
    }
    (over, min, max)
}

pub(super) fn check_keys_exist<'a>(
    dbc: &Dbc,
    definitions: &[DefinitionUse<'_>],
    inis: &[IniUse<'_>],
    section: &'static str,
    keys: impl Iterator<Item = &'a String>,
) -> Result<(), ChannelMapError> {
    for key in keys {
        let found = key.split_once('.').is_some_and(|(message, signal)| {
            dbc.message_by_name(message)
                .is_some_and(|m| m.signals.iter().any(|s| s.name == signal))
                || definitions::has_field(definitions, message, signal)
                || ini::has_channel(inis, message, signal)
        });
        if !found {
            return Err(ChannelMapError::UnknownSignal {
                section,
                key: key.clone(),
            });
        }
    }
    Ok(())
}

pub(super) fn shared_signal_names(dbc: &Dbc) -> HashMap<&str, usize> {
    let mut counts = HashMap::new();
    for message in &dbc.messages {
        for signal in &message.signals {
            *counts.entry(signal.name.as_str()).or_insert(0) += 1;
        }
    }
    counts
}

/// Whether the patterns select `message.signal` (a DBC signal or a definition's field).
pub(super) fn is_selected(selection: &Selection, message: &str, signal: &str) -> bool {
    let included = selection.include.is_empty()
        || selection
            .include
            .iter()
            .any(|p| pattern_matches(p, message, signal));
    included
        && !selection
            .exclude
            .iter()
            .any(|p| pattern_matches(p, message, signal))
}

/// An `include` or `exclude` pattern of the selection that has no effect, most often a typo
/// next to valid patterns: an include pattern matching no signal or field at all, or an
/// exclude pattern removing nothing the include patterns let in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnmatchedPattern {
    /// `include` or `exclude`, the key it is written under.
    pub list: &'static str,
    /// Its position in that list, so the caller can point at the line.
    pub index: usize,
    /// The pattern as written.
    pub pattern: String,
}

impl std::fmt::Display for UnmatchedPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.list {
            "include" => write!(
                f,
                "include pattern {:?} matches no message or signal of the loaded DBC files and definitions",
                self.pattern
            ),
            _ => write!(
                f,
                "exclude pattern {:?} removes nothing the include patterns select",
                self.pattern
            ),
        }
    }
}

/// The patterns that select or remove nothing among `candidates` (every `(message, signal)`
/// the map could publish, before selection).
pub(super) fn unmatched_patterns<'a>(
    selection: &Selection,
    candidates: impl Iterator<Item = (&'a str, &'a str)> + Clone,
) -> Vec<UnmatchedPattern> {
    let mut unmatched = Vec::new();
    for (index, pattern) in selection.include.iter().enumerate() {
        if !candidates
            .clone()
            .any(|(m, s)| pattern_matches(pattern, m, s))
        {
            unmatched.push(UnmatchedPattern {
                list: "include",
                index,
                pattern: pattern.clone(),
            });
        }
    }
    let included = |m: &str, s: &str| {
        selection.include.is_empty() || selection.include.iter().any(|p| pattern_matches(p, m, s))
    };
    for (index, pattern) in selection.exclude.iter().enumerate() {
        let removes = candidates
            .clone()
            .any(|(m, s)| included(m, s) && pattern_matches(pattern, m, s));
        if !removes {
            unmatched.push(UnmatchedPattern {
                list: "exclude",
                index,
                pattern: pattern.clone(),
            });
        }
    }
    unmatched
}

/// A pattern with a `.` matches `Message.Signal`; without, it matches the message name.
fn pattern_matches(pattern: &str, message: &str, signal: &str) -> bool {
    match pattern.split_once('.') {
        Some((m, s)) => glob(m, message) && glob(s, signal),
        None => glob(pattern, message),
    }
}

/// Matches `*` (any run) and `?` (one character); everything else literally.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (pattern, text): (Vec<char>, Vec<char>) =
        (pattern.chars().collect(), text.chars().collect());
    let (mut p, mut t) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                backtrack = Some((p, t));
                p += 1;
            }
            Some(c) if *c == '?' || *c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match backtrack {
                Some((star, matched)) => {
                    p = star + 1;
                    t = matched + 1;
                    backtrack = Some((star, matched + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

/// The physical values the raw field can express (for DBCs that leave `[0|0]`).
pub(super) fn physical_range(signal: &Signal) -> (f64, f64) {
    let bits = u32::from(signal.length.min(64));
    let (raw_lo, raw_hi) = if signal.signed {
        (
            -(2f64.powi(bits as i32 - 1)),
            2f64.powi(bits as i32 - 1) - 1.0,
        )
    } else {
        (0.0, 2f64.powi(bits as i32) - 1.0)
    };
    let a = raw_lo * signal.scale + signal.offset;
    let b = raw_hi * signal.scale + signal.offset;
    (a.min(b), a.max(b))
}

/// Decimal places that a value of this resolution deserves (0.01 → 2, 0.5 → 1, 1 → 0).
pub(super) fn decimals(scale: f64) -> u8 {
    let scale = scale.abs();
    if scale == 0.0 || !scale.is_finite() {
        return 0;
    }
    let mut places = 0u8;
    let mut value = scale;
    while places < 9 && (value - value.round()).abs() > 1e-9 * value.max(1.0) {
        value *= 10.0;
        places += 1;
    }
    places
}
