//! Loading DBC text into a [`Dbc`]: runs the grammar in `syntax.rs` statement by statement and
//! applies each statement to the model, turning the quirks of real files into [`DbcWarning`]s.
//!
//! Messages and signals are built as they are read; everything that refers to them (`CM_`,
//! `BA_`, `VAL_`, `SIG_VALTYPE_`, `SG_MUL_VAL_`) is applied after the last file, so a later file
//! can annotate an earlier one and order inside a file does not matter. Only a statement that
//! cannot be parsed at all is a [`DbcError`].

use super::assemble::{Builder, Current};
use super::syntax::{self, SyntaxError};
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
    /// Quirks survived, in file order.
    pub warnings: Vec<DbcWarning>,
    /// Files named by `CM_ "IMPORT …"` lines, for the caller to load first.
    pub imports: Vec<String>,
}

/// Parses one DBC file.
pub fn parse_dbc(name: &str, text: &str) -> Result<Parsed, DbcError> {
    parse_dbc_set(&[DbcSource { name, text }])
}

/// Parses several files as one DBC, in order (imported files first).
///
/// A message id defined twice keeps its first definition; the second, with its signals, is
/// dropped with a [`WarningKind::Duplicate`](super::WarningKind::Duplicate) warning.
pub fn parse_dbc_set<'a>(sources: &[DbcSource<'a>]) -> Result<Parsed, DbcError> {
    let mut builder = Builder::default();
    for source in sources {
        parse_source(source, &mut builder)?;
    }
    let mut parsed = builder.finish();
    // Warnings from deferred statements come last; put them back in file order.
    let rank = |file: &str| sources.iter().position(|s| s.name == file);
    parsed
        .warnings
        .sort_by_key(|w| (rank(&w.location.file), w.location.line));
    Ok(parsed)
}

/// Runs the grammar over one file, feeding `builder`.
fn parse_source<'a>(source: &DbcSource<'a>, builder: &mut Builder<'a>) -> Result<(), DbcError> {
    let text = source.text.strip_prefix('\u{feff}').unwrap_or(source.text);
    builder.file = source.name;
    builder.current = Current::Nothing;
    let (mut line, mut counted) = (1u32, 0usize);
    let mut rest = syntax::skip_blank(text);
    while !rest.is_empty() {
        let at = text.len() - rest.len();
        // Counting only the newly consumed slice keeps line tracking linear overall.
        line += text[counted..at].bytes().filter(|&b| b == b'\n').count() as u32;
        counted = at;
        let (next, statement) = syntax::parse_statement(rest).map_err(|err| {
            let err = match err {
                nom::Err::Error(e) | nom::Err::Failure(e) => e,
                nom::Err::Incomplete(_) => SyntaxError {
                    at: "",
                    expected: "",
                },
            };
            // Grammar invariant: errors point at a suffix of the input (checked by the fuzz
            // tests through this assertion), so the length gives the offset.
            debug_assert!(
                err.at.is_empty()
                    || err.at.as_ptr() as usize + err.at.len()
                        == text.as_ptr() as usize + text.len()
            );
            error_at(source.name, text, text.len() - err.at.len(), err.expected)
        })?;
        builder
            .handle(statement, line)
            .map_err(|message| error_at(source.name, text, at, message))?;
        rest = syntax::skip_blank(next);
    }
    Ok(())
}

/// A [`DbcError`] at byte `offset` of `text`, with a 1-based line and character column.
fn error_at(file: &str, text: &str, offset: usize, expected: &str) -> DbcError {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let message = if expected.is_empty() {
        "unexpected text"
    } else {
        expected
    };
    DbcError {
        file: file.to_owned(),
        line: before.bytes().filter(|&b| b == b'\n').count() as u32 + 1,
        column: before[line_start..].chars().count() as u32 + 1,
        message: message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::can::CanId;
    use crate::dbc::{Message, Multiplexing, Signal, ValueType, WarningKind};

    /// Simple and extended multiplexing, a float, comments, attributes and value tables.
    static SAMPLE: &str = r#"VERSION "1.0"

NS_ :
	CM_
	BA_DEF_

BS_:

BU_: ECU GW

BO_ 100 MUXED: 8 ECU
 SG_ MUX M : 0|8@1+ (1,0) [0|255] "" GW
 SG_ TEMP m1 : 8|16@1- (0.5,-40) [-40|200] "degC" GW
 SG_ PRESSURE m2 : 8|16@1+ (0.5,0) [0|1000] "kPa" GW,ECU

BO_ 2566844672 EXT_MUX: 8 ECU
 SG_ SW1 M : 7|4@0+ (1,0) [0|15] "" GW
 SG_ SW2 m1M : 3|4@0+ (1,0) [0|15] "" GW
 SG_ DEEP m3 : 15|8@0+ (1,0) [0|255] "" GW
 SG_ F32 : 16|32@1- (1,0) [0|0] "" GW

CM_ "global comment";
CM_ BO_ 100 "multi
line \"quoted\"";
CM_ SG_ 100 TEMP "coolant";
BA_DEF_ BO_ "GenMsgCycleTime" INT 0 10000;
BA_DEF_DEF_ "GenMsgCycleTime" 0;
BA_ "GenMsgCycleTime" BO_ 100 50;
VAL_ 100 MUX 1 "temperature" 2 "pressure" ;
SIG_VALTYPE_ 2566844672 F32 : 1;
SG_MUL_VAL_ 2566844672 SW2 SW1 1-1;
SG_MUL_VAL_ 2566844672 DEEP SW2 3-3, 5-6;
"#;

    fn sample() -> Parsed {
        parse_dbc("sample.dbc", SAMPLE).expect("sample parses")
    }

    fn signal<'m>(message: &'m Message, name: &str) -> &'m Signal {
        message
            .signals
            .iter()
            .find(|s| s.name == name)
            .expect("signal exists")
    }

    /// Whether `name` is present in `data`, following the switch chain up.
    fn present(message: &Message, name: &str, data: &[u8]) -> bool {
        let sig = signal(message, name);
        match &sig.mux {
            Multiplexing::Multiplexed { switch, .. } => {
                let raw = signal(message, switch).layout().raw(data).expect("fits");
                sig.mux.is_present_for(raw) && present(message, switch, data)
            }
            _ => true,
        }
    }

    fn kinds(parsed: &Parsed) -> Vec<(WarningKind, u32)> {
        parsed
            .warnings
            .iter()
            .map(|w| (w.kind, w.location.line))
            .collect()
    }

    #[test]
    fn sample_model() {
        let parsed = sample();
        assert_eq!(kinds(&parsed), []);
        let muxed = parsed.dbc.message_by_name("MUXED").expect("defined");
        assert_eq!(muxed.id, CanId::from_dbc(100));
        assert_eq!(muxed.location.line, 11);
        assert_eq!(muxed.cycle_time_ms, Some(50));
        assert_eq!(muxed.comment.as_deref(), Some("multi\nline \"quoted\""));
        let temp = signal(muxed, "TEMP");
        assert_eq!(temp.comment.as_deref(), Some("coolant"));
        assert_eq!(
            (temp.unit.as_str(), temp.min, temp.max),
            ("degC", -40.0, 200.0)
        );
        assert_eq!(
            temp.mux,
            Multiplexing::Multiplexed {
                switch: "MUX".into(),
                ranges: vec![(1, 1)],
                is_switch: false
            }
        );
        assert_eq!(signal(muxed, "PRESSURE").receivers, ["GW", "ECU"]);
        assert_eq!(
            signal(muxed, "MUX").value_descriptions[1],
            (2, "pressure".to_owned())
        );
        let ext = parsed
            .dbc
            .message(CanId::extended(0x18FE_F100).expect("valid"))
            .expect("defined");
        assert_eq!(ext.cycle_time_ms, None);
        assert_eq!(signal(ext, "F32").value_type, ValueType::Float32);
        assert_eq!(
            signal(ext, "SW2").mux,
            Multiplexing::Multiplexed {
                switch: "SW1".into(),
                ranges: vec![(1, 1)],
                is_switch: true
            }
        );
        assert_eq!(
            signal(ext, "DEEP").mux,
            Multiplexing::Multiplexed {
                switch: "SW2".into(),
                ranges: vec![(3, 3), (5, 6)],
                is_switch: false
            }
        );
    }

    #[test]
    fn simple_multiplexing_decodes() {
        let parsed = sample();
        let muxed = parsed.dbc.message_by_name("MUXED").expect("defined");
        // MUX = 1; TEMP = LE 0xFF38 = -200 signed; -200 × 0.5 - 40 = -140.
        static TEMP: [u8; 8] = [0x01, 0x38, 0xFF, 0, 0, 0, 0, 0];
        assert!(present(muxed, "TEMP", &TEMP) && !present(muxed, "PRESSURE", &TEMP));
        assert_eq!(signal(muxed, "TEMP").layout().physical(&TEMP), Some(-140.0));
        // MUX = 2; PRESSURE = LE 0x0190 = 400; 400 × 0.5 = 200 kPa.
        static PRESSURE: [u8; 8] = [0x02, 0x90, 0x01, 0, 0, 0, 0, 0];
        assert!(!present(muxed, "TEMP", &PRESSURE) && present(muxed, "PRESSURE", &PRESSURE));
        assert_eq!(
            signal(muxed, "PRESSURE").layout().physical(&PRESSURE),
            Some(200.0)
        );
    }

    #[test]
    fn extended_multiplexing_decodes() {
        let parsed = sample();
        let ext = parsed.dbc.message_by_name("EXT_MUX").expect("defined");
        // Byte 0 = 0x13: SW1 (high nibble) = 1 so SW2 is present; SW2 (low nibble) = 3 so DEEP
        // is present; DEEP = byte 1 = 0xAB = 171; F32 = bytes 2..6 LE 0x3FC0_0000 = 1.5.
        static ON: [u8; 8] = [0x13, 0xAB, 0x00, 0x00, 0xC0, 0x3F, 0, 0];
        assert!(present(ext, "DEEP", &ON));
        assert_eq!(signal(ext, "DEEP").layout().physical(&ON), Some(171.0));
        assert_eq!(signal(ext, "F32").layout().physical(&ON), Some(1.5));
        // SW2 = 6 is inside 5-6.
        static RANGE: [u8; 2] = [0x16, 0x01];
        assert!(present(ext, "DEEP", &RANGE));
        // SW1 = 2: SW2 absent, so DEEP is absent although its own switch reads 3.
        static OFF: [u8; 2] = [0x23, 0xAB];
        assert!(!present(ext, "SW2", &OFF) && !present(ext, "DEEP", &OFF));
    }

    fn error(text: &str) -> (u32, u32, String) {
        let err = parse_dbc("bad.dbc", text).expect_err("malformed");
        assert_eq!(err.file, "bad.dbc");
        (err.line, err.column, err.message)
    }

    #[test]
    fn malformed_lines_name_line_and_column() {
        let bo = "BO_ 1 A: 8 X\n";
        let cases: &[(String, (u32, u32, &str))] = &[
            (
                format!("{bo} SG_ S : 0 8@1+ (1,0) [0|1] \"\" X\n"),
                (2, 12, "expected '|' between start bit and length"),
            ),
            (
                format!("{bo} SG_ S : 0|0@1+ (1,0) [0|1] \"\" X\n"),
                (2, 12, "signal length must be 1 to 64"),
            ),
            (
                format!("{bo} SG_ S : 0|8@2+ (1,0) [0|1] \"\" X\n"),
                (2, 14, "expected byte order 0 or 1"),
            ),
            (
                format!("{bo} SG_ S : 0|8@1+ (1;0) [0|1] \"\" X\n"),
                (2, 19, "expected ',' between scale and offset"),
            ),
            (
                format!("{bo} SG_ S : 0|8@1+ (1,0) [0|1] \"\" X ?\n"),
                (2, 34, "expected receiver name or end of line"),
            ),
            (
                format!("{bo} SG_ S x : 0|8@1+ (1,0) [0|1] \"\" X\n"),
                (2, 8, "expected multiplexer marker 'M', 'm<n>' or ':'"),
            ),
            (
                format!("\n\n{bo}BO_ x B: 8 X\n"),
                (4, 5, "expected message id"),
            ),
            (
                "BO_ 1 A 8 X\n".to_owned(),
                (1, 9, "expected ':' after message name"),
            ),
            (
                " SG_ S : 0|8@1+ (1,0) [0|1] \"\" X\n".to_owned(),
                (1, 2, "signal outside a message"),
            ),
            (
                "CM_ SG_ 1 S \"open;\n".to_owned(),
                (1, 13, "unterminated string"),
            ),
            (
                "VAL_ 1 S 1 \"a\" x;\n".to_owned(),
                (1, 16, "expected value or ';'"),
            ),
            ("BA_ \"x\" 1\n".to_owned(), (2, 1, "expected ';'")),
            (
                "CM_ XX_ 1 \"x\";\n".to_owned(),
                (1, 5, "expected comment target BU_, BO_, SG_ or EV_"),
            ),
            (
                "BO_ 1 A: 8 X\n@@@\n".to_owned(),
                (2, 1, "expected a keyword"),
            ),
            (
                "BO_ 99999999999 A: 8 X\n".to_owned(),
                (1, 5, "number out of range"),
            ),
        ];
        for (text, (line, column, message)) in cases {
            assert_eq!(
                error(text),
                (*line, *column, (*message).to_owned()),
                "{text}"
            );
        }
    }

    #[test]
    fn quirks_are_warnings() {
        let text = r#"BO_ 10 A: 2 X
 SG_ WIDE : 0|32@1+ (1,0) [0|0] "" X
 SG_ WIDE : 0|8@1+ (1,0) [0|0] "" X
 SG_ ORPHAN m1 : 8|8@1+ (1,0) [0|0] "" X
BO_ 10 B: 8 X
 SG_ LOST : 0|8@1+ (1,0) [0|0] "" X
BO_ 3221225472 VECTOR__INDEPENDENT_SIG_MSG: 0 Vector__XXX
BO_ 12 A: 8 X
CM_ "IMPORT _common.dbc";
FOO_ bar baz;
SIG_VALTYPE_ 10 WIDE : 2;
VAL_ 10 NOPE 1 "x" ;
CM_ SG_ 11 X "no such message";
"#;
        let parsed = parse_dbc("q.dbc", text).expect("only warnings");
        use WarningKind::*;
        assert_eq!(
            kinds(&parsed),
            [
                (SignalOutsideMessage, 2),
                (Duplicate, 3),
                (UnresolvedMultiplexer, 4),
                (Duplicate, 5),
                (PseudoId, 7),
                (Duplicate, 8),
                (Import, 9),
                (UnsupportedSection, 10),
                (ValueTypeMismatch, 11),
                (UnknownSignal, 12),
                (UnknownSignal, 13),
            ]
        );
        assert_eq!(parsed.imports, ["_common.dbc"]);
        let names: Vec<&str> = parsed
            .dbc
            .messages
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(names, ["A", "VECTOR__INDEPENDENT_SIG_MSG", "A"]);
        assert_eq!(parsed.dbc.messages[0].signals.len(), 1);
        assert!(parsed.warnings[0].to_string().starts_with("q.dbc:2: "));
    }

    #[test]
    fn later_files_annotate_earlier_ones() {
        let base = "BO_ 5 BASE: 8 X\n SG_ S : 0|8@1+ (1,0) [0|0] \"\" X\n";
        let stub = "CM_ \"IMPORT base.dbc\";\nVAL_ 5 S 0 \"off\" 1 \"on\";\nVAL_ 6 T 0 \"x\";\n";
        let parsed = parse_dbc_set(&[
            DbcSource {
                name: "base.dbc",
                text: base,
            },
            DbcSource {
                name: "stub.dbc",
                text: stub,
            },
        ])
        .expect("parses");
        let s = &parsed.dbc.messages[0].signals[0];
        assert_eq!(
            s.value_descriptions,
            [(0, "off".to_owned()), (1, "on".to_owned())]
        );
        let at: Vec<String> = parsed
            .warnings
            .iter()
            .map(|w| w.location.to_string())
            .collect();
        assert_eq!(at, ["stub.dbc:1", "stub.dbc:3"]);
    }

    #[test]
    fn tolerates_crlf_bom_comments_and_empty_input() {
        let text = "\u{feff}// generated\r\nBO_ 1 A: 8 X\r\n SG_ S : 0|8@1+ (1,0) [0|0] \"\" X\r\n";
        let parsed = parse_dbc("crlf.dbc", text).expect("parses");
        assert_eq!(parsed.dbc.messages[0].signals[0].location.line, 3);
        assert!(
            parse_dbc("empty.dbc", "")
                .expect("empty is fine")
                .dbc
                .messages
                .is_empty()
        );
    }
}
