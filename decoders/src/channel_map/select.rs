//! What a car's selection does to a DBC signal or a definition field: whether it is selected
//! (`include`/`exclude` globs), that renames and overrides name something, and the unit,
//! range and decimals a parameter is published with.

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
    let matches = |pattern: &String| match pattern.split_once('.') {
        Some((m, s)) => glob(m, message) && glob(s, signal),
        None => glob(pattern, message),
    };
    let included = selection.include.is_empty() || selection.include.iter().any(matches);
    included && !selection.exclude.iter().any(matches)
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
