//! Where each key of the configuration file is written: an index from dotted key paths
//! (`session.data_source`, `source[1].can_bitrate`, `car.rename."ENGINE.RPM"`) to 1-based
//! line and column, built once from the TOML parser's spans. It never reads the text again
//! afterwards, so `Config` keeps this index instead of the file's text.

use std::collections::BTreeMap;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// Dotted key path → (line, column) of where that key, table header or array-of-tables
/// element starts in the file.
#[derive(Debug, Clone, Default)]
pub(super) struct Locations(BTreeMap<String, (usize, usize)>);

impl Locations {
    /// Indexes every key of `document`, parsed from `text`.
    pub(super) fn index(text: &str, document: &Spanned<DeTable<'_>>) -> Self {
        let mut locations = Self::default();
        locations.add_table(text, "", document.get_ref());
        locations
    }

    /// Where dotted `key` is written: the key itself, else the nearest enclosing table that is
    /// written (a `[header]` or `[[header]]`), else the top of the file. A key is missing when
    /// its default was used, and then its table is the place to add it.
    pub(super) fn at(&self, key: &str) -> (usize, usize) {
        let cuts = key
            .char_indices()
            .filter(|&(_, c)| c == '.' || c == '[')
            .map(|(index, _)| index)
            .rev();
        // A cut inside a quoted segment yields a path that is never in the index: harmless.
        std::iter::once(key.len())
            .chain(cuts)
            .find_map(|end| self.0.get(&key[..end]).copied())
            .unwrap_or((1, 1))
    }

    fn add_table(&mut self, text: &str, prefix: &str, table: &DeTable<'_>) {
        for (key, value) in table {
            let path = child(prefix, key.get_ref());
            self.add_value(text, path, key.span(), value);
        }
    }

    fn add_value(
        &mut self,
        text: &str,
        path: String,
        key: Range<usize>,
        value: &Spanned<DeValue<'_>>,
    ) {
        // A `[table]` or `[[array]]` header starts before its key; a `key = value` at its key.
        let start = key.start.min(value.span().start);
        self.0.insert(path.clone(), line_column(text, start));
        match value.get_ref() {
            DeValue::Table(table) => self.add_table(text, &path, table),
            DeValue::Array(array) => {
                for (index, item) in array.iter().enumerate() {
                    let path = format!("{path}[{index}]");
                    // An element's span is its own `[[header]]` (or its place in `[a, b]`).
                    self.0
                        .insert(path.clone(), line_column(text, item.span().start));
                    if let DeValue::Table(table) = item.get_ref() {
                        self.add_table(text, &path, table);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The dotted path of key `leaf` in table `table` (`""` for the top level); `leaf` is quoted
/// when it is not a bare TOML key, so `car.rename."ENGINE.RPM"` stays one segment.
pub(super) fn child(table: &str, leaf: &str) -> String {
    let bare = !leaf.is_empty()
        && leaf
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let leaf = if bare {
        leaf.to_owned()
    } else {
        format!("{leaf:?}")
    };
    if table.is_empty() {
        leaf
    } else {
        format!("{table}.{leaf}")
    }
}

/// 1-based line and column (in bytes) of byte `offset` in `text`.
pub(super) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"top = 1

[session]
data_source = "Demo"

[car]
application = "Demo"
  dbc = ["a.dbc"]

[car.rename]
"ENGINE.RPM" = "rpm"

[car.override."ENGINE.TPS"]
unit = "%"

[[source]]
name = "a"

[[source]]
name = "b"
bind = "0.0.0.0:1"
"#;

    fn locations() -> Locations {
        let document = DeTable::parse(TEXT).expect("valid TOML");
        Locations::index(TEXT, &document)
    }

    #[test]
    fn keys_headers_and_array_elements_are_found() {
        let at = locations();
        assert_eq!(at.at("top"), (1, 1));
        assert_eq!(at.at("session"), (3, 1));
        assert_eq!(at.at("session.data_source"), (4, 1));
        assert_eq!(at.at("car.dbc"), (8, 3));
        assert_eq!(at.at(&child("car.rename", "ENGINE.RPM")), (11, 1));
        assert_eq!(at.at(&child("car.override", "ENGINE.TPS")), (13, 1));
        assert_eq!(at.at("car.override.\"ENGINE.TPS\".unit"), (14, 1));
        assert_eq!(at.at("source[0]"), (16, 1));
        assert_eq!(at.at("source[1].bind"), (21, 1));
    }

    #[test]
    fn a_missing_key_falls_back_to_its_table_then_the_top() {
        let at = locations();
        assert_eq!(at.at("session.identifier"), (3, 1));
        assert_eq!(at.at(&child("car.rename", "ENGINE.NO_SUCH")), (10, 1));
        assert_eq!(at.at("source[1].can_bitrate"), (19, 1));
        assert_eq!(at.at("batch.max_age_ms"), (1, 1));
    }

    #[test]
    fn only_keys_that_are_not_bare_are_quoted() {
        assert_eq!(child("", "car"), "car");
        assert_eq!(child("car.compound_can", "ecu_1"), "car.compound_can.ecu_1");
        assert_eq!(child("car.rename", "A.B"), "car.rename.\"A.B\"");
        assert_eq!(child("car.rename", ""), "car.rename.\"\"");
    }
}
