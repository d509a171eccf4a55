//! The DBC grammar: nom parsers that turn the text of one statement into a borrowed
//! [`Statement`]. Knows nothing of the model, of other statements or of warnings; `parse.rs`
//! applies statements in order.
//!
//! Invariants: every parser consumes at least one byte or fails, and every error points into
//! the input (a suffix of it), so the caller can turn it into a line and column. Work is linear
//! in the input: nothing backtracks further than one token.

use std::borrow::Cow;

use nom::bytes::complete::take_while;
use nom::character::complete::{char, multispace0, space0};

pub(super) use super::token::SyntaxError;
use super::token::{
    RANGE, Res, SCALING, attr_value, end_of_line, fail, ident, is_ident_byte, is_ident_char,
    is_ident_start, label, one_of_char, parse_pair, quoted, rest_of_line, semicolon, signal_length,
    skip_statement, sp_then, uint, value_pairs, ws_then,
};

/// Raw value → description, as `VAL_` and `VAL_TABLE_` list them.
pub(super) type ValuePairs<'a> = Vec<(i64, Cow<'a, str>)>;

/// One DBC statement, borrowing names from the text.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Statement<'a> {
    /// `BO_ <id> <name>: <size> <sender>`.
    Message {
        id: u32,
        name: &'a str,
        size: u8,
        sender: &'a str,
    },
    /// `SG_ …` inside the preceding message.
    Signal(SignalDef<'a>),
    /// `CM_ …`.
    Comment(Comment<'a>),
    /// `BA_ "name" <target> <value>;`.
    Attribute {
        name: Cow<'a, str>,
        target: Target<'a>,
        value: AttrValue<'a>,
    },
    /// `BA_DEF_DEF_ "name" <value>;`.
    AttributeDefault {
        name: Cow<'a, str>,
        value: AttrValue<'a>,
    },
    /// `VAL_ <id> <signal> (<raw> "<text>")* ;`; `terminated` is false when the `;` is
    /// missing at the end of the line (a quirk of real files).
    ValueDescriptions {
        id: u32,
        signal: &'a str,
        values: ValuePairs<'a>,
        terminated: bool,
    },
    /// `SIG_VALTYPE_ <id> <signal> : <type>;`.
    ValueType { id: u32, signal: &'a str, kind: u32 },
    /// `SG_MUL_VAL_ <id> <signal> <switch> <low>-<high>, …;`.
    MuxValues {
        id: u32,
        signal: &'a str,
        switch: &'a str,
        ranges: Vec<(u64, u64)>,
    },
    /// A keyword the model does not use, checked and skipped.
    Skipped,
    /// A keyword the grammar does not know; skipped to `;` or the end of the line.
    Unknown(&'a str),
}

/// The fields of an `SG_` line.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct SignalDef<'a> {
    pub name: &'a str,
    pub mux: MuxMarker,
    pub start_bit: u16,
    pub length: u16,
    /// `true` for `@1` (Intel).
    pub little_endian: bool,
    pub signed: bool,
    pub scale: f64,
    pub offset: f64,
    pub min: f64,
    pub max: f64,
    pub unit: Cow<'a, str>,
    pub receivers: Vec<&'a str>,
}

/// The multiplexing marker between a signal's name and its colon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MuxMarker {
    None,
    /// `M`.
    Switch,
    /// `m<n>`, or `m<n>M` when `is_switch`.
    Value {
        value: u64,
        is_switch: bool,
    },
}

/// What a `CM_` comments on.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Comment<'a> {
    /// `CM_ "text";`
    Global(Cow<'a, str>),
    /// `CM_ BO_ <id> "text";`
    Message { id: u32, text: Cow<'a, str> },
    /// `CM_ SG_ <id> <name> "text";`, or with `name: None` the quirk without a name.
    Signal {
        id: u32,
        name: Option<&'a str>,
        text: Cow<'a, str>,
    },
    /// `CM_ BU_` and `CM_ EV_`: not modelled.
    Other,
}

/// What a `BA_` sets an attribute on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Target<'a> {
    Network,
    Node,
    Message(u32),
    Signal(u32, &'a str),
    EnvVar,
}

/// An attribute value: a number or a string.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum AttrValue<'a> {
    Number(f64),
    Text(Cow<'a, str>),
}

/// Keywords whose statements end at `;` and that the model does not use.
const SKIPPED: &[&str] = &[
    "BA_DEF_",
    "BA_DEF_REL_",
    "BA_REL_",
    "BA_DEF_DEF_REL_",
    "BU_SG_REL_",
    "BU_EV_REL_",
    "BU_BO_REL_",
    "BA_DEF_SGTYPE_",
    "BA_SGTYPE_",
    "SIG_GROUP_",
    "SIG_TYPE_REF_",
    "SIGTYPE_VALTYPE_",
    "SGTYPE_",
    "SGTYPE_VAL_",
    "CAT_DEF_",
    "CAT_",
    "FILTER",
    "EV_",
    "ENVVAR_DATA_",
    "EV_DATA_",
    "BO_TX_BU_",
];

/// Skips blank space and `//` comment lines before a statement.
pub(super) fn skip_blank(mut input: &str) -> &str {
    loop {
        input = input.trim_start();
        match input.strip_prefix("//") {
            Some(rest) => input = rest.find('\n').map_or("", |end| &rest[end..]),
            None => return input,
        }
    }
}

/// Parses one statement starting at its keyword.
pub(super) fn parse_statement(input: &str) -> Res<'_, Statement<'_>> {
    let (rest, keyword) = label("expected a keyword", ident)(input)?;
    match keyword {
        "VERSION" => parse_version(rest),
        "NS_" => parse_new_symbols(rest),
        "BS_" | "BU_" => Ok((rest_of_line(rest).0, Statement::Skipped)),
        "BO_" => parse_message(rest),
        "SG_" => parse_signal(rest).map(|(rest, def)| (rest, Statement::Signal(def))),
        "CM_" => parse_comment(rest),
        "BA_" => parse_attribute(rest),
        "BA_DEF_DEF_" => parse_attribute_default(rest),
        "VAL_" => parse_value_descriptions(rest),
        "VAL_TABLE_" => parse_value_table(rest),
        "SIG_VALTYPE_" => parse_value_type(rest),
        "SG_MUL_VAL_" => parse_mux_values(rest),
        known if SKIPPED.contains(&known) => skip_statement(rest, true),
        unknown => {
            let (rest, _) = skip_statement(rest, false)?;
            Ok((rest, Statement::Unknown(unknown)))
        }
    }
}

fn parse_version(input: &str) -> Res<'_, Statement<'_>> {
    let (input, _) = label("expected quoted version", ws_then(quoted))(input)?;
    let (input, ()) = end_of_line(input)?;
    Ok((input, Statement::Skipped))
}

/// `NS_ :` and its list of symbol names, one per indented line. The block ends at the first
/// line that is not blank and not a lone indented identifier.
fn parse_new_symbols(input: &str) -> Res<'_, Statement<'_>> {
    let (mut input, _) = rest_of_line(input);
    loop {
        let (line, next) = input.split_once('\n').unwrap_or((input, ""));
        let body = line.trim();
        let indented = line.starts_with([' ', '\t']);
        let lone_ident = indented && !body.is_empty() && body.bytes().all(is_ident_byte);
        if body.is_empty() && next.is_empty() {
            return Ok((next, Statement::Skipped));
        }
        if !(body.is_empty() || lone_ident) {
            return Ok((input, Statement::Skipped));
        }
        input = next;
    }
}

fn parse_message(input: &str) -> Res<'_, Statement<'_>> {
    let (input, id) = label("expected message id", sp_then(uint::<u32>))(input)?;
    let (input, name) = label("expected message name", sp_then(ident))(input)?;
    let (input, _) = label("expected ':' after message name", sp_then(char(':')))(input)?;
    let (input, size) = label("expected message size", sp_then(uint::<u8>))(input)?;
    // Some generators leave the sender out; the model records it as empty.
    let (input, sender) = sp_then(take_while(is_ident_char))(input)?;
    let (input, ()) = end_of_line(input)?;
    Ok((
        input,
        Statement::Message {
            id,
            name,
            size,
            sender,
        },
    ))
}

fn parse_signal(input: &str) -> Res<'_, SignalDef<'_>> {
    let (input, name) = label("expected signal name", sp_then(ident))(input)?;
    let (input, mux) = sp_then(parse_mux_marker)(input)?;
    let (input, _) = label("expected ':' after signal name", sp_then(char(':')))(input)?;
    let (input, start_bit) = label("expected start bit", sp_then(uint::<u16>))(input)?;
    let (input, _) = label(
        "expected '|' between start bit and length",
        sp_then(char('|')),
    )(input)?;
    let (input, length) = label("expected signal length", sp_then(signal_length))(input)?;
    let (input, _) = label("expected '@' before byte order", sp_then(char('@')))(input)?;
    let (input, order) = label("expected byte order 0 or 1", one_of_char("01"))(input)?;
    let (input, sign) = label("expected sign '+' or '-'", one_of_char("+-"))(input)?;
    let (input, (scale, offset)) = parse_pair(&SCALING, input)?;
    let (input, (min, max)) = parse_pair(&RANGE, input)?;
    let (input, unit) = label("expected quoted unit", sp_then(quoted))(input)?;
    let (input, receivers) = parse_receivers(input)?;
    let def = SignalDef {
        name,
        mux,
        start_bit,
        length,
        little_endian: order == '1',
        signed: sign == '-',
        scale,
        offset,
        min,
        max,
        unit,
        receivers,
    };
    Ok((input, def))
}

/// `M`, `m<n>`, `m<n>M` or nothing (the colon follows).
fn parse_mux_marker(input: &str) -> Res<'_, MuxMarker> {
    if input.starts_with(':') {
        return Ok((input, MuxMarker::None));
    }
    let (rest, token) = label("expected ':' after signal name", ident)(input)?;
    let marker = match token.strip_prefix('m') {
        _ if token == "M" => Some(MuxMarker::Switch),
        Some(body) => {
            let (digits, is_switch) = match body.strip_suffix('M') {
                Some(digits) => (digits, true),
                None => (body, false),
            };
            // `ident` admits no sign, so `parse` accepts exactly the all-digit bodies.
            let value = digits.parse().ok();
            value.map(|value| MuxMarker::Value { value, is_switch })
        }
        None => None,
    };
    match marker {
        Some(marker) => Ok((rest, marker)),
        None => Err(fail(
            input,
            "expected multiplexer marker 'M', 'm<n>' or ':'",
        )),
    }
}

/// Receiver names separated by commas or spaces, up to the end of the line.
fn parse_receivers(mut input: &str) -> Res<'_, Vec<&str>> {
    let mut receivers = Vec::new();
    loop {
        let (rest, _) = space0(input)?;
        if let Ok((rest, ())) = end_of_line(rest) {
            return Ok((rest, receivers));
        }
        if let Some(rest) = rest.strip_prefix(',') {
            input = rest;
            continue;
        }
        let (rest, name) = label("expected receiver name or end of line", ident)(rest)?;
        receivers.push(name);
        input = rest;
    }
}

fn parse_comment(input: &str) -> Res<'_, Statement<'_>> {
    let (input, _) = multispace0(input)?;
    let (input, comment) = if input.starts_with('"') {
        let (input, text) = quoted(input)?;
        (input, Comment::Global(text))
    } else {
        parse_comment_target(input)?
    };
    let (input, ()) = semicolon(input)?;
    Ok((input, Statement::Comment(comment)))
}

/// The part of a `CM_` after the keyword when it names what it comments on.
fn parse_comment_target<'a>(start: &'a str) -> Res<'a, Comment<'a>> {
    let (input, target) = label("expected comment target or string", ident)(start)?;
    let text = |i: &'a str| label("expected quoted comment", ws_then(quoted))(i);
    match target {
        "BO_" => {
            let (input, id) = label("expected message id", ws_then(uint::<u32>))(input)?;
            let (input, text) = text(input)?;
            Ok((input, Comment::Message { id, text }))
        }
        "SG_" => {
            let (input, id) = label("expected message id", ws_then(uint::<u32>))(input)?;
            let (input, _) = multispace0(input)?;
            // The quirk: some files write the text straight after the id.
            let (input, name) = if input.starts_with('"') {
                (input, None)
            } else {
                let (input, name) = label("expected signal name", ident)(input)?;
                (input, Some(name))
            };
            let (input, text) = text(input)?;
            Ok((input, Comment::Signal { id, name, text }))
        }
        "BU_" | "EV_" => {
            let (input, _) = label("expected name", ws_then(ident))(input)?;
            let (input, _) = text(input)?;
            Ok((input, Comment::Other))
        }
        _ => Err(fail(start, "expected comment target BU_, BO_, SG_ or EV_")),
    }
}

fn parse_attribute(input: &str) -> Res<'_, Statement<'_>> {
    let (input, name) = label("expected quoted attribute name", ws_then(quoted))(input)?;
    let (input, _) = multispace0(input)?;
    let (input, target) = if input.starts_with(is_ident_start) {
        let (rest, keyword) = ident(input)?;
        match keyword {
            "BU_" => (
                label("expected node name", ws_then(ident))(rest)?.0,
                Target::Node,
            ),
            "EV_" => (
                label("expected name", ws_then(ident))(rest)?.0,
                Target::EnvVar,
            ),
            "BO_" => {
                let (rest, id) = label("expected message id", ws_then(uint::<u32>))(rest)?;
                (rest, Target::Message(id))
            }
            "SG_" => {
                let (rest, id) = label("expected message id", ws_then(uint::<u32>))(rest)?;
                let (rest, sig) = label("expected signal name", ws_then(ident))(rest)?;
                (rest, Target::Signal(id, sig))
            }
            _ => {
                return Err(fail(
                    input,
                    "expected attribute target BU_, BO_, SG_ or EV_",
                ));
            }
        }
    } else {
        (input, Target::Network)
    };
    let (input, value) = label("expected attribute value", ws_then(attr_value))(input)?;
    let (input, ()) = semicolon(input)?;
    Ok((
        input,
        Statement::Attribute {
            name,
            target,
            value,
        },
    ))
}

fn parse_attribute_default(input: &str) -> Res<'_, Statement<'_>> {
    let (input, name) = label("expected quoted attribute name", ws_then(quoted))(input)?;
    let (input, value) = label("expected attribute value", ws_then(attr_value))(input)?;
    let (input, ()) = semicolon(input)?;
    Ok((input, Statement::AttributeDefault { name, value }))
}

fn parse_value_descriptions(input: &str) -> Res<'_, Statement<'_>> {
    let (input, _) = multispace0(input)?;
    // `VAL_ <env var> …` has no message id; environment variables are not modelled.
    if !input.starts_with(|c: char| c.is_ascii_digit()) {
        let (input, _) = label("expected message id or name", ident)(input)?;
        let (input, _) = value_pairs(input)?;
        return Ok((input, Statement::Skipped));
    }
    let (input, id) = uint::<u32>(input)?;
    let (input, signal) = label("expected signal name", ws_then(ident))(input)?;
    let (input, (values, terminated)) = value_pairs(input)?;
    let statement = Statement::ValueDescriptions {
        id,
        signal,
        values,
        terminated,
    };
    Ok((input, statement))
}

fn parse_value_table(input: &str) -> Res<'_, Statement<'_>> {
    let (input, _) = label("expected table name", ws_then(ident))(input)?;
    let (input, _) = value_pairs(input)?;
    Ok((input, Statement::Skipped))
}

fn parse_value_type(input: &str) -> Res<'_, Statement<'_>> {
    let (input, id) = label("expected message id", ws_then(uint::<u32>))(input)?;
    let (input, signal) = label("expected signal name", ws_then(ident))(input)?;
    let (input, _) = multispace0(input)?;
    let input = input.strip_prefix(':').unwrap_or(input);
    let (input, kind) = label("expected value type 0, 1 or 2", ws_then(uint::<u32>))(input)?;
    let (input, ()) = semicolon(input)?;
    Ok((input, Statement::ValueType { id, signal, kind }))
}

fn parse_mux_values(input: &str) -> Res<'_, Statement<'_>> {
    let (input, id) = label("expected message id", ws_then(uint::<u32>))(input)?;
    let (input, signal) = label("expected signal name", ws_then(ident))(input)?;
    let (input, switch) = label("expected switch name", ws_then(ident))(input)?;
    let mut ranges = Vec::new();
    let mut input = input;
    loop {
        let (rest, low) = label("expected range start", ws_then(uint::<u64>))(input)?;
        let (rest, _) = label("expected '-' in range", ws_then(char('-')))(rest)?;
        let (rest, high) = label("expected range end", ws_then(uint::<u64>))(rest)?;
        ranges.push((low, high));
        let (rest, _) = multispace0(rest)?;
        match rest.strip_prefix(',') {
            Some(rest) => input = rest,
            None => {
                let (rest, ()) = semicolon(rest)?;
                return Ok((
                    rest,
                    Statement::MuxValues {
                        id,
                        signal,
                        switch,
                        ranges,
                    },
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement(text: &str) -> Statement<'_> {
        parse_statement(text).expect("parses").1
    }

    fn signal(line: &str) -> SignalDef<'_> {
        match statement(line) {
            Statement::Signal(def) => def,
            other => panic!("not a signal: {other:?}"),
        }
    }

    #[test]
    fn signal_lines() {
        let def = signal("SG_ S m12M : 7|16@0- (0.5,-1e2) [-1|1.5] \"km/h\" A,B C\n");
        assert_eq!(
            def.mux,
            MuxMarker::Value {
                value: 12,
                is_switch: true
            }
        );
        assert_eq!(
            (def.start_bit, def.length, def.little_endian, def.signed),
            (7, 16, false, true)
        );
        assert_eq!(
            (def.scale, def.offset, def.min, def.max),
            (0.5, -100.0, -1.0, 1.5)
        );
        assert_eq!(
            (def.unit.as_ref(), def.receivers),
            ("km/h", vec!["A", "B", "C"])
        );
        assert_eq!(
            signal("SG_ S M : 0|1@1+ (1,0) [0|1] \"\" X").mux,
            MuxMarker::Switch
        );
        assert_eq!(
            signal("SG_ S: 0|1@1+ (1,0) [0|1] \"\"").receivers,
            Vec::<&str>::new()
        );
        for bad in [
            "SG_ S mM : 0|1@1+ (1,0) [0|1] \"\" X",
            "SG_ S x3 : 0|1@1+ (1,0) [0|1] \"\" X",
        ] {
            assert!(parse_statement(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn message_lines() {
        let expected = Statement::Message {
            id: 2_147_483_649,
            name: "EXT",
            size: 64,
            sender: "",
        };
        assert_eq!(statement("BO_ 2147483649 EXT: 64\n"), expected);
    }

    #[test]
    fn comments() {
        assert_eq!(
            statement("CM_ \"hi\";"),
            Statement::Comment(Comment::Global("hi".into()))
        );
        let no_name = Comment::Signal {
            id: 304,
            name: None,
            text: "t".into(),
        };
        assert_eq!(statement("CM_ SG_ 304 \"t\";"), Statement::Comment(no_name));
        let named = Comment::Signal {
            id: 1,
            name: Some("S"),
            text: "a\nb".into(),
        };
        assert_eq!(
            statement("CM_ SG_ 1 S \"a\nb\" ;"),
            Statement::Comment(named)
        );
        assert_eq!(
            statement("CM_ BU_ N \"x\";"),
            Statement::Comment(Comment::Other)
        );
        assert_eq!(
            statement("CM_ EV_ E \"x\";"),
            Statement::Comment(Comment::Other)
        );
        assert!(parse_statement("CM_ XX_ 1 \"x\";").is_err());
    }

    #[test]
    fn attributes_and_tables() {
        let cycle = Statement::Attribute {
            name: "GenMsgCycleTime".into(),
            target: Target::Message(100),
            value: AttrValue::Number(20.0),
        };
        assert_eq!(statement("BA_ \"GenMsgCycleTime\" BO_ 100 20;"), cycle);
        let on_signal = statement("BA_ \"X\" SG_ 1 S \"v\";");
        assert!(matches!(
            on_signal,
            Statement::Attribute {
                target: Target::Signal(1, "S"),
                ..
            }
        ));
        let float = Statement::ValueType {
            id: 7,
            signal: "F",
            kind: 2,
        };
        assert_eq!(statement("SIG_VALTYPE_ 7 F 2;"), float);
        let mux = Statement::MuxValues {
            id: 1,
            signal: "S",
            switch: "M",
            ranges: vec![(0, 3), (8, 8)],
        };
        assert_eq!(statement("SG_MUL_VAL_ 1 S M 0-3, 8-8;"), mux);
        assert_eq!(
            statement("VAL_TABLE_ T 1 \"a\" 0 \"b\" ;"),
            Statement::Skipped
        );
        assert_eq!(statement("VAL_ ENV_VAR 1 \"a\";"), Statement::Skipped);
        assert_eq!(
            statement("BA_DEF_ BO_ \"x;y\" STRING ;"),
            Statement::Skipped
        );
    }

    #[test]
    fn headers_and_unknown_keywords() {
        let text = "NS_ :\n\tCM_\n\n\tBA_\nBS_:\n";
        assert_eq!(parse_statement(text), Ok(("BS_:\n", Statement::Skipped)));
        assert_eq!(
            parse_statement("FOO_ a b\nBO_"),
            Ok(("\nBO_", Statement::Unknown("FOO_")))
        );
        assert_eq!(skip_blank("  // note\n\n  BO_"), "BO_");
    }
}
