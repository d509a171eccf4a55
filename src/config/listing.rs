//! What `ecu-bridge validate --list` prints: every parameter the compiled channel map will
//! publish, one aligned row each. Formatting only; every figure comes from the map.

use std::fmt;

use decoders::channel_map::{ChannelMap, Parameter};

/// The parameter table of a compiled map (`Display`).
#[derive(Debug, Clone, Copy)]
pub struct ParameterTable<'a>(pub &'a ChannelMap);

impl fmt::Display for ParameterTable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header = ["PARAMETER", "SOURCE", "UNIT", "RANGE", "RATE"].map(str::to_owned);
        let rows: Vec<[String; 5]> = self.0.parameters().iter().map(row).collect();
        let mut widths = header.each_ref().map(|h| h.chars().count());
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        for row in std::iter::once(&header).chain(&rows) {
            let mut line = String::new();
            for (cell, width) in row.iter().zip(widths) {
                line.push_str(&format!("{cell:<width$}  "));
            }
            writeln!(f, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

/// Identifier, `Message.Signal` (or `Message.field`), unit, display range and expected rate
/// (the DBC's `GenMsgCycleTime` where it gives one).
fn row(p: &Parameter) -> [String; 5] {
    let unit = if p.unit.is_empty() { "-" } else { &p.unit };
    let rate = p
        .frequency_hz
        .map_or_else(|| "unknown".to_owned(), |hz| format!("{hz} Hz"));
    [
        p.identifier.clone(),
        format!("{}.{}", p.message, p.signal),
        unit.to_owned(),
        format!("{} .. {}", p.min, p.max),
        rate,
    ]
}
