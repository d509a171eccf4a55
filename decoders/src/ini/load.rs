//! The INI loader: text in, [`IniFile`] and warnings out. Reads the signature and query
//! commands, the communication settings and `[OutputChannels]`; everything else in a real INI
//! (menus, tables, tune constants) is counted or warned about, never a hard error.
//!
//! A line in a section the bridge uses that cannot be understood (a bad type, offset or number)
//! is an [`IniError`] naming file, line and column.

use super::channels::{Channel, ChannelKind, DataType, OutputChannels, Pending};
use super::command::{Command, CommandError};
use super::expr::{Expr, ExprError};
use super::lines::{self, Entry, unquote};
use super::resolve::Computed;
use super::{IniError, IniWarning};
use crate::frame::Endian;

/// A loaded TunerStudio INI: what the bridge needs to poll an ECU and decode its answers.
#[derive(Debug, Clone, PartialEq)]
pub struct IniFile {
    /// `signature`: what the ECU answers to the query command; compared to detect a mismatch.
    pub signature: Option<String>,
    /// `queryCommand`, as written (escapes not yet expanded; see [`super::Command`]).
    pub query_command: Option<String>,
    /// `versionInfo`, as written.
    pub version_info: Option<String>,
    /// `ochGetCommand`, as written (`None` means the legacy `A`).
    pub och_get_command: Option<String>,
    /// `messageEnvelopeFormat` (e.g. `msEnvelope_1.0`); `None` means bare commands.
    pub message_envelope_format: Option<String>,
    /// `blockingFactor`: the most data bytes one reply carries.
    pub blocking_factor: Option<u32>,
    /// `blockReadTimeout` in milliseconds.
    pub block_read_timeout_ms: Option<u32>,
    /// `delayAfterPortOpen` in milliseconds.
    pub delay_after_port_open_ms: Option<u32>,
    /// The realtime block and its channels.
    pub output_channels: OutputChannels,
}

/// Sections read for values; keys in them the loader does not know become warnings.
const USED: &[&str] = &[
    "MegaTune",
    "TunerStudio",
    "Constants",
    "OutputChannels",
    "GaugeConfigurations",
];

/// Entry types of tune constants in `[Constants]` (and channel types skipped in
/// `[OutputChannels]`).
const TUNE_TYPES: &[&str] = &["scalar", "bits", "array", "string"];

/// Keys of used sections that are known but not needed to poll and decode.
const IGNORED_KEYS: &[&str] = &[
    "MTversion",
    "iniSpecVersion",
    "nPages",
    "pageSize",
    "pageIdentifier",
    "pageReadCommand",
    "pageValueWrite",
    "pageChunkWrite",
    "burnCommand",
    "crc32CheckCommand",
    "tableCrcCommand",
    "pageActivate",
    "pageActivationDelay",
    "interWriteDelay",
    "writeBlocks",
    "tsWriteBlocks",
    "retrieveConfigError",
    "restrictSquirtRelationship",
    "page",
];

/// Accumulates what the walk finds.
#[derive(Default)]
struct Builder {
    file: String,
    signature: Option<String>,
    query_command: Option<String>,
    version_info: Option<String>,
    och_get_command: Option<String>,
    envelope: Option<String>,
    blocking_factor: Option<u32>,
    block_read_timeout_ms: Option<u32>,
    delay_after_port_open_ms: Option<u32>,
    block_size: Option<usize>,
    endian: Option<Endian>,
    pending: Vec<Pending>,
    tune_constants: usize,
    /// Display ranges from the first gauge showing each channel.
    gauges: Vec<(String, (f64, f64))>,
    error: Option<IniError>,
}

impl IniFile {
    /// Loads `text` (the INI named `file` in messages) with the caller's `settings` switched
    /// on for `#if` (e.g. `CELSIUS`, `mcu_stm32`). Returns the model and the warnings.
    pub fn parse(
        file: &str,
        text: &str,
        settings: &[&str],
    ) -> Result<(Self, Vec<IniWarning>), IniError> {
        let mut warnings = Vec::new();
        let mut b = Builder {
            file: file.to_owned(),
            ..Builder::default()
        };
        // Unused sections are noted once each, after the walk (which holds `warnings`).
        let mut unused: Vec<(u32, &str)> = Vec::new();
        lines::walk(
            text,
            settings,
            &mut warnings,
            |line, section| {
                if !USED.contains(&section) && !unused.iter().any(|(_, s)| *s == section) {
                    unused.push((line, section));
                }
            },
            |entry, warnings| {
                if b.error.is_none()
                    && USED.contains(&entry.section)
                    && let Err(error) = b.entry(&entry, warnings)
                {
                    b.error = Some(error);
                }
            },
        );
        if let Some(error) = b.error.take() {
            return Err(error);
        }
        for (line, section) in unused {
            let note = format!("section [{section}] is not used by the bridge");
            warnings.push(IniWarning::new(line, note));
        }
        if b.tune_constants > 0 {
            let note = format!("{} tune constants in [Constants] skipped", b.tune_constants);
            warnings.push(IniWarning::new(0, note));
        }
        b.finish(warnings)
    }

    /// The realtime command: `ochGetCommand` compiled, or the legacy `A` when the INI has none.
    pub fn och_command(&self) -> Result<Command, CommandError> {
        Command::parse(self.och_get_command.as_deref().unwrap_or("A"))
    }

    /// The signature query: `queryCommand` compiled, or `Q` (the MegaSquirt default).
    pub fn query(&self) -> Result<Command, CommandError> {
        Command::parse(self.query_command.as_deref().unwrap_or("Q"))
    }

    /// Whether commands and replies travel in msEnvelope_1.0 frames.
    pub fn uses_envelope(&self) -> bool {
        self.message_envelope_format.as_deref() == Some("msEnvelope_1.0")
    }
}

impl Builder {
    fn error(&self, line: u32, column: u32, message: String) -> IniError {
        IniError {
            file: self.file.clone(),
            line,
            column,
            message,
        }
    }

    fn entry(&mut self, e: &Entry<'_>, warnings: &mut Vec<IniWarning>) -> Result<(), IniError> {
        let first = e.fields.first().map_or("", |f| f.1);
        let text = || unquote(first).map(str::to_owned);
        match e.key {
            "signature" => self.signature = text().or(self.signature.take()),
            "queryCommand" => self.query_command = text(),
            "versionInfo" => self.version_info = text(),
            "ochGetCommand" => self.och_get_command = text(),
            "messageEnvelopeFormat" => self.envelope = Some(first.to_owned()),
            "endianness" => {
                self.endian = Some(match first {
                    "little" => Endian::Little,
                    "big" => Endian::Big,
                    _ => {
                        return Err(self.error(
                            e.line,
                            e.fields[0].0,
                            format!("endianness {first:?} is neither little nor big"),
                        ));
                    }
                })
            }
            "ochBlockSize" => self.block_size = Some(self.number(e, 0)? as usize),
            "blockingFactor" => self.blocking_factor = Some(self.number(e, 0)?),
            "blockReadTimeout" => self.block_read_timeout_ms = Some(self.number(e, 0)?),
            "delayAfterPortOpen" => self.delay_after_port_open_ms = Some(self.number(e, 0)?),
            _ if e.section == "OutputChannels" => self.channel(e, warnings)?,
            "gaugeCategory" => {}
            _ if e.section == "GaugeConfigurations" => self.gauge(e, warnings),
            _ if e.section == "Constants" && TUNE_TYPES.contains(&first) => {
                self.tune_constants += 1
            }
            key if IGNORED_KEYS.contains(&key) => {}
            key => warnings.push(IniWarning::new(
                e.line,
                format!("unknown key {key} in [{}]", e.section),
            )),
        }
        Ok(())
    }

    /// Field `index` of `e` as an unsigned integer.
    fn number(&self, e: &Entry<'_>, index: usize) -> Result<u32, IniError> {
        let (column, text) = e.fields.get(index).copied().unwrap_or((0, ""));
        text.parse::<u32>().map_err(|_| {
            self.error(
                e.line,
                column,
                format!("{}: {text:?} is not a whole number", e.key),
            )
        })
    }

    fn channel(&mut self, e: &Entry<'_>, warnings: &mut Vec<IniWarning>) -> Result<(), IniError> {
        let (kind_column, kind) = e.fields.first().copied().unwrap_or((0, ""));
        let pending = if let Some(body) = kind.strip_prefix('{') {
            let body = body.strip_suffix('}').ok_or_else(|| {
                self.error(e.line, kind_column, "expression without closing '}'".into())
            })?;
            let unit = e
                .fields
                .get(1)
                .and_then(|f| unquote(f.1))
                .unwrap_or("")
                .to_owned();
            match Expr::parse(body) {
                Ok(expr) => Pending::Computed(Computed {
                    name: e.key.to_owned(),
                    unit,
                    expr,
                    line: e.line,
                }),
                Err(ExprError::Syntax { offset, expected }) => {
                    let column = kind_column + 1 + offset as u32;
                    return Err(self.error(
                        e.line,
                        column,
                        format!("{}: expected {expected}", e.key),
                    ));
                }
                Err(other) => {
                    warnings.push(IniWarning::new(
                        e.line,
                        format!("computed channel {}: {other}; skipped", e.key),
                    ));
                    return Ok(());
                }
            }
        } else {
            match kind {
                "scalar" | "bits" => match self.data_channel(e, warnings)? {
                    Some(channel) => Pending::Ready(channel),
                    None => return Ok(()),
                },
                other if TUNE_TYPES.contains(&other) => {
                    warnings.push(IniWarning::new(
                        e.line,
                        format!("{other} output channel {} not supported; skipped", e.key),
                    ));
                    return Ok(());
                }
                other => {
                    warnings.push(IniWarning::new(
                        e.line,
                        format!("unknown key {} = {other} in [OutputChannels]", e.key),
                    ));
                    return Ok(());
                }
            }
        };
        if let Some(old) = self.pending.iter().position(|p| p.name() == pending.name()) {
            warnings.push(IniWarning::new(
                e.line,
                format!("channel {} defined again; the later line wins", e.key),
            ));
            self.pending.remove(old);
        }
        self.pending.push(pending);
        Ok(())
    }

    /// `name = channel, "title", "units", lo, hi, …`: the display range of `channel`. Gauges
    /// only decorate, so a line that does not fit is a warning, never an error.
    fn gauge(&mut self, e: &Entry<'_>, warnings: &mut Vec<IniWarning>) {
        let channel = e.fields.first().map_or("", |f| f.1);
        let bound = |i: usize| {
            let text = e.fields.get(i)?.1;
            match text.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                Some(body) => Expr::parse(body).ok()?.constant(),
                None => text.parse::<f64>().ok(),
            }
        };
        match (bound(3), bound(4)) {
            (Some(lo), Some(hi)) if lo < hi => {
                if !self.gauges.iter().any(|(name, _)| name == channel) {
                    self.gauges.push((channel.to_owned(), (lo, hi)));
                }
            }
            _ => {
                let note = format!("gauge {} has no constant range; not used", e.key);
                warnings.push(IniWarning::new(e.line, note));
            }
        }
    }

    /// A `scalar` or `bits` line; `None` (with a warning) if its scale needs the tune.
    fn data_channel(
        &self,
        e: &Entry<'_>,
        warnings: &mut Vec<IniWarning>,
    ) -> Result<Option<Channel>, IniError> {
        let field = |i: usize| {
            e.fields
                .get(i)
                .copied()
                .unwrap_or((e.fields.last().map_or(0, |f| f.0), ""))
        };
        let (ty_column, ty_text) = field(1);
        let ty = DataType::parse(ty_text).ok_or_else(|| {
            self.error(
                e.line,
                ty_column,
                format!("{}: unknown type {ty_text:?}", e.key),
            )
        })?;
        let offset = self.number(e, 2)? as usize;
        let name = e.key.to_owned();
        if e.fields[0].1 == "bits" {
            let (column, range) = field(3);
            let (low, high) = range
                .strip_prefix('[')
                .and_then(|r| r.strip_suffix(']'))
                .and_then(|r| r.split_once(':'))
                .and_then(|(l, h)| {
                    Some((l.trim().parse::<u8>().ok()?, h.trim().parse::<u8>().ok()?))
                })
                .filter(|(l, h)| l <= h && usize::from(*h) < ty.size() * 8)
                .ok_or_else(|| {
                    self.error(e.line, column, format!("{name}: bad bit range {range:?}"))
                })?;
            let kind = ChannelKind::Bits {
                ty,
                offset,
                low,
                high,
            };
            return Ok(Some(Channel {
                name,
                unit: String::new(),
                kind,
                line: e.line,
                range: None,
            }));
        }
        // Units, scale and translate may be left out (real rusEFI INIs do): "", 1 and 0.
        let unit_text = e.fields.get(3).map_or("\"\"", |f| f.1);
        let unit = match unquote(unit_text) {
            Some(unit) => unit.to_owned(),
            None => {
                let note = format!("{name}: units given as {unit_text:?}; left empty");
                warnings.push(IniWarning::new(e.line, note));
                String::new()
            }
        };
        let mut factors = [1.0, 0.0];
        for (slot, index) in factors.iter_mut().zip([4, 5]) {
            let Some(&(column, text)) = e.fields.get(index) else {
                continue;
            };
            *slot = match text.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                Some(body) => match Expr::parse(body).ok().and_then(|x| x.constant()) {
                    Some(value) => value,
                    None => {
                        let note = format!(
                            "{name}: scale or translate {text} depends on the tune; skipped"
                        );
                        warnings.push(IniWarning::new(e.line, note));
                        return Ok(None);
                    }
                },
                None => text.parse::<f64>().map_err(|_| {
                    self.error(e.line, column, format!("{name}: {text:?} is not a number"))
                })?,
            };
        }
        let kind = ChannelKind::Scalar {
            ty,
            offset,
            scale: factors[0],
            translate: factors[1],
        };
        Ok(Some(Channel {
            name,
            unit,
            kind,
            line: e.line,
            range: None,
        }))
    }

    fn finish(self, mut warnings: Vec<IniWarning>) -> Result<(IniFile, Vec<IniWarning>), IniError> {
        let block_size = self
            .block_size
            .ok_or_else(|| self.error(0, 0, "[OutputChannels] has no ochBlockSize".into()))?;
        let endian = self.endian.unwrap_or_else(|| {
            warnings.push(IniWarning::new(
                0,
                "no endianness given; big-endian assumed (MegaSquirt default)".into(),
            ));
            Endian::Big
        });
        for pending in &self.pending {
            if let Pending::Ready(channel) = pending {
                let end = match channel.kind {
                    ChannelKind::Scalar { ty, offset, .. }
                    | ChannelKind::Bits { ty, offset, .. } => offset + ty.size(),
                    ChannelKind::Computed { .. } => 0,
                };
                if end > block_size {
                    let note = format!(
                        "channel {} ends at byte {end}, past ochBlockSize {block_size}; it reads NaN",
                        channel.name
                    );
                    warnings.push(IniWarning::new(channel.line, note));
                }
            }
        }
        let mut output_channels =
            OutputChannels::resolve(block_size, endian, self.pending, &mut warnings);
        output_channels.set_ranges(&self.gauges);
        let ini = IniFile {
            signature: self.signature,
            query_command: self.query_command,
            version_info: self.version_info,
            och_get_command: self.och_get_command,
            message_envelope_format: self.envelope,
            blocking_factor: self.blocking_factor,
            block_read_timeout_ms: self.block_read_timeout_ms,
            delay_after_port_open_ms: self.delay_after_port_open_ms,
            output_channels,
        };
        Ok((ini, warnings))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static INI: &str = r#"
[MegaTune]
   queryCommand = "Q"
   signature    = "test 1.0"
[Constants]
   endianness = little
   blockingFactor = 251
   blockReadTimeout = 2000
   delayAfterPortOpen=1000
   messageEnvelopeFormat = msEnvelope_1.0
   veTable = array, U08, 0, [16x16], "%", 1.0, 0, 0, 255, 0
   mystery = 7
[Menu]
   menu = "x"
[OutputChannels]
   ochGetCommand = "r\$tsCanId\x30%2o%2c"
   ochBlockSize = 8
   secl       = scalar, U08, 0, "sec", 1.000, 0.000
   running    = bits,   U08, 1, [0:0]
   mode       = bits,   U08, 1, [1:3]
   rpm        = scalar, U16, 2, "rpm", 1.000, 0.000
   clt        = scalar, S16, 4, "C", 0.1, -400
   tpsFrom    = scalar, F32, 4
   idle       = scalar, U08, 6, "%", { 2 * 0.5 }, 0
   idleTune   = scalar, U08, 6, "%", { idleScale }, 0
#if CELSIUS
   coolant    = { clt }, "C"
#else
   coolant    = { clt * 1.8 + 32 }, "F"
#endif
   revTime    = { rpm ? 60000 / rpm : 0 }, "ms"
   both       = { revTime + coolant }
   lambda     = { afr / stoich }
   a          = { b }
   b          = { a }
   smooth     = { smoothBasic(rpm, 75) }
"#;

    #[test]
    fn deconstruct_commands_and_settings() {
        let (ini, warnings) = IniFile::parse("t.ini", INI, &[]).expect("test input is valid");
        assert_eq!(ini.signature.as_deref(), Some("test 1.0"));
        assert_eq!(ini.query_command.as_deref(), Some("Q"));
        assert_eq!(
            ini.och_get_command.as_deref(),
            Some(r"r\$tsCanId\x30%2o%2c")
        );
        assert_eq!(
            ini.message_envelope_format.as_deref(),
            Some("msEnvelope_1.0")
        );
        assert_eq!(
            (
                ini.blocking_factor,
                ini.block_read_timeout_ms,
                ini.delay_after_port_open_ms
            ),
            (Some(251), Some(2000), Some(1000))
        );
        assert_eq!(ini.output_channels.block_size, 8);
        assert_eq!(ini.output_channels.counts(), (5, 2, 3));
        let lines: Vec<u32> = warnings.iter().map(|w| w.line).collect();
        // mystery, idleTune, lambda, a/b cycle, smooth, [Menu], the tune-constant note.
        for line in [12, 13, 25, 33, 34, 35, 36] {
            assert!(
                lines.contains(&line),
                "no warning for line {line}: {warnings:?}"
            );
        }
    }

    #[test]
    fn settings_choose_the_branch() {
        let (ini, _) = IniFile::parse("t.ini", INI, &["CELSIUS"]).expect("test input is valid");
        let slot = ini
            .output_channels
            .slot("coolant")
            .expect("test input is valid");
        assert_eq!(ini.output_channels.channels()[slot].unit, "C");
        let (ini, _) = IniFile::parse("t.ini", INI, &[]).expect("test input is valid");
        let slot = ini
            .output_channels
            .slot("coolant")
            .expect("test input is valid");
        assert_eq!(ini.output_channels.channels()[slot].unit, "F");
    }

    #[test]
    fn broken_lines_name_file_line_and_column() {
        let bad_type = INI.replace("scalar, U16, 2", "scalar, U17, 2");
        let error = IniFile::parse("t.ini", &bad_type, &[]).expect_err("must fail");
        assert_eq!((error.line, error.column), (21, 25));
        assert!(
            error
                .to_string()
                .starts_with("t.ini:21:25: rpm: unknown type")
        );
        let bad_bits = INI.replace("[1:3]", "[3:1]");
        assert_eq!(
            IniFile::parse("t.ini", &bad_bits, &[])
                .expect_err("must fail")
                .line,
            20
        );
        let bad_expr = INI.replace("{ b }", "{ b + }");
        let error = IniFile::parse("t.ini", &bad_expr, &[]).expect_err("must fail");
        assert_eq!((error.line, error.column), (34, 23));
        let no_size = INI.replace("ochBlockSize = 8", "");
        assert!(IniFile::parse("t.ini", &no_size, &[]).is_err());
    }

    #[test]
    fn truncated_text_never_panics() {
        for end in 0..INI.len() {
            if INI.is_char_boundary(end) {
                let _ = IniFile::parse("t.ini", &INI[..end], &[]);
            }
        }
    }
}
