//! Placeholder until the DBC parser lands.
use super::{Dbc, DbcError, DbcWarning};

/// One DBC file's name and text.
#[derive(Debug, Clone, Copy)]
pub struct DbcSource<'a> {
    /// File name used in warnings and errors.
    pub name: &'a str,
    /// File contents.
    pub text: &'a str,
}

/// A loaded DBC and what loading noticed.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    /// The messages.
    pub dbc: Dbc,
    /// Quirks survived.
    pub warnings: Vec<DbcWarning>,
    /// Files named by `CM_ "IMPORT …"` lines, for the caller to load first.
    pub imports: Vec<String>,
}

/// Parses one DBC file.
pub fn parse_dbc(name: &str, text: &str) -> Result<Parsed, DbcError> {
    parse_dbc_set(&[DbcSource { name, text }])
}

/// Parses several files as one DBC, in order (imported files first).
pub fn parse_dbc_set(_sources: &[DbcSource<'_>]) -> Result<Parsed, DbcError> {
    Ok(Parsed::default())
}
