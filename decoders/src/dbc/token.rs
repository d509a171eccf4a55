//! Token-level DBC parsers shared by the statement grammar in `syntax.rs`: strings, numbers,
//! names, bracketed pairs, value lists, line and statement ends, and the error type that
//! carries "what was expected" to the caller.
//!
//! Every parser consumes at least one byte or fails, and every error points into its input
//! (a suffix of it), which is how `parse.rs` turns it into a line and column.

use std::borrow::Cow;

use nom::bytes::complete::take_while1;
use nom::character::complete::{char, digit1, multispace0, space0};
use nom::combinator::{opt, recognize};
use nom::number::complete::recognize_float;
use nom::{IResult, Parser};

use super::syntax::{AttrValue, Statement, ValuePairs};

/// Why and where a statement stopped parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SyntaxError<'a> {
    /// The input from the point of failure on.
    pub at: &'a str,
    /// What was expected there; empty until the innermost labelled parser names it.
    pub expected: &'static str,
}

impl<'a> nom::error::ParseError<&'a str> for SyntaxError<'a> {
    fn from_error_kind(input: &'a str, _kind: nom::error::ErrorKind) -> Self {
        Self {
            at: input,
            expected: "",
        }
    }

    fn append(_input: &'a str, _kind: nom::error::ErrorKind, other: Self) -> Self {
        other
    }
}

pub(super) type Res<'a, T> = IResult<&'a str, T, SyntaxError<'a>>;

/// Punctuation and labels of a bracketed number pair such as `(scale,offset)`.
pub(super) struct PairSyntax {
    open: char,
    sep: char,
    close: char,
    /// Error labels: open, first number, separator, second number, close.
    labels: [&'static str; 5],
}

pub(super) const SCALING: PairSyntax = PairSyntax {
    open: '(',
    sep: ',',
    close: ')',
    labels: [
        "expected '(' before scale",
        "expected scale",
        "expected ',' between scale and offset",
        "expected offset",
        "expected ')' after offset",
    ],
};

pub(super) const RANGE: PairSyntax = PairSyntax {
    open: '[',
    sep: '|',
    close: ']',
    labels: [
        "expected '[' before minimum",
        "expected minimum",
        "expected '|' between minimum and maximum",
        "expected maximum",
        "expected ']' after maximum",
    ],
};

pub(super) fn parse_pair<'a>(syntax: &PairSyntax, input: &'a str) -> Res<'a, (f64, f64)> {
    let [open, first, sep, second, close] = syntax.labels;
    let (input, _) = label(open, sp_then(char(syntax.open)))(input)?;
    let (input, a) = label(first, sp_then(number))(input)?;
    let (input, _) = label(sep, sp_then(char(syntax.sep)))(input)?;
    let (input, b) = label(second, sp_then(number))(input)?;
    let (input, _) = label(close, sp_then(char(syntax.close)))(input)?;
    Ok((input, (a, b)))
}

/// `(<raw> "<text>")* ;` with the semicolon, and whether the semicolon was there.
///
/// Real files end some value lists at the end of the line without the `;`: the list ends
/// there unless the next line carries on with another value.
pub(super) fn value_pairs(mut input: &str) -> Res<'_, (ValuePairs<'_>, bool)> {
    let mut values = Vec::new();
    loop {
        let (rest, _) = space0(input)?;
        if let Some(rest) = rest.strip_prefix(';') {
            return Ok((rest, (values, true)));
        }
        let (next, _) = multispace0(rest)?;
        let continues = next.starts_with(|c: char| c.is_ascii_digit() || c == '-');
        if let (Ok((after_line, ())), false) = (end_of_line(rest), continues) {
            return Ok((after_line, (values, false)));
        }
        let (rest, raw) = label("expected value or ';'", raw_value)(next)?;
        let (rest, text) = label("expected quoted value description", ws_then(quoted))(rest)?;
        values.push((raw, text));
        input = rest;
    }
}

/// Skips to the statement's `;`, stepping over quoted strings. Unknown keywords may also end
/// at the end of the line, since nothing says they are `;`-terminated.
pub(super) fn skip_statement(input: &str, needs_semicolon: bool) -> Res<'_, Statement<'_>> {
    let mut rest = input;
    loop {
        let stop = rest.find(['"', ';', '\n']).unwrap_or(rest.len());
        let (before, after) = rest.split_at(stop);
        match after.as_bytes().first() {
            Some(b'"') => rest = quoted(after)?.0,
            Some(b';') => return Ok((&after[1..], Statement::Skipped)),
            Some(b'\n') if !needs_semicolon => return Ok((after, Statement::Skipped)),
            Some(_) => rest = &after[1..],
            None if needs_semicolon => {
                return Err(fail(
                    &before[before.len()..],
                    "expected ';' before end of file",
                ));
            }
            None => return Ok((after, Statement::Skipped)),
        }
    }
}

/// A double-quoted string; `\"` and `\\` are escapes, newlines are allowed.
pub(super) fn quoted(input: &str) -> Res<'_, Cow<'_, str>> {
    let (body, _) = char('"')(input)?;
    let bytes = body.as_bytes();
    let mut owned: Option<String> = None;
    let (mut i, mut copied) = (0, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let text = match owned {
                    Some(mut s) => {
                        s.push_str(&body[copied..i]);
                        Cow::Owned(s)
                    }
                    None => Cow::Borrowed(&body[..i]),
                };
                return Ok((&body[i + 1..], text));
            }
            // Only ASCII escapes, so every slice boundary is an ASCII byte.
            b'\\' if matches!(bytes.get(i + 1), Some(b'"' | b'\\')) => {
                let s = owned.get_or_insert_with(String::new);
                s.push_str(&body[copied..i]);
                copied = i + 1;
                i += 2;
            }
            _ => i += 1,
        }
    }
    Err(fail(input, "unterminated string"))
}

pub(super) fn attr_value(input: &str) -> Res<'_, AttrValue<'_>> {
    if input.starts_with('"') {
        quoted(input).map(|(rest, text)| (rest, AttrValue::Text(text)))
    } else {
        number(input).map(|(rest, n)| (rest, AttrValue::Number(n)))
    }
}

/// A `VAL_` raw value; values above `i64::MAX` (64-bit unsigned signals) wrap, as the raw
/// bits do.
pub(super) fn raw_value(input: &str) -> Res<'_, i64> {
    let (rest, text) = recognize((opt(char('-')), digit1)).parse(input)?;
    let value = text
        .parse::<i64>()
        .ok()
        .or_else(|| text.parse::<u64>().ok().map(|v| v as i64));
    value
        .map(|v| (rest, v))
        .ok_or_else(|| fail(input, "value out of range"))
}

pub(super) fn signal_length(input: &str) -> Res<'_, u16> {
    let (rest, length) = uint::<u16>(input)?;
    if (1..=64).contains(&length) {
        Ok((rest, length))
    } else {
        Err(fail(input, "signal length must be 1 to 64"))
    }
}

pub(super) fn uint<T: std::str::FromStr>(input: &str) -> Res<'_, T> {
    let (rest, digits) = digit1(input)?;
    match digits.parse() {
        Ok(value) => Ok((rest, value)),
        Err(_) => Err(fail(input, "number out of range")),
    }
}

pub(super) fn number(input: &str) -> Res<'_, f64> {
    let (rest, text) = recognize_float(input)?;
    match text.parse() {
        Ok(value) => Ok((rest, value)),
        Err(_) => Err(fail(input, "expected a number")),
    }
}

pub(super) fn ident(input: &str) -> Res<'_, &str> {
    take_while1(is_ident_char)(input)
}

pub(super) fn one_of_char<'a>(set: &'static str) -> impl Fn(&'a str) -> Res<'a, char> {
    move |input: &'a str| match input.chars().next() {
        Some(c) if set.contains(c) => Ok((&input[c.len_utf8()..], c)),
        _ => Err(fail(input, "")),
    }
}

/// Optional spaces or tabs, then the line's end (optionally after a stray `;`).
pub(super) fn end_of_line(input: &str) -> Res<'_, ()> {
    let (input, _) = space0(input)?;
    let input = input.strip_prefix(';').unwrap_or(input);
    let (input, _) = space0(input)?;
    let input = input.strip_prefix('\r').unwrap_or(input);
    if input.is_empty() {
        return Ok((input, ()));
    }
    match input.strip_prefix('\n') {
        Some(rest) => Ok((rest, ())),
        None => Err(fail(input, "expected end of line")),
    }
}

pub(super) fn rest_of_line(input: &str) -> (&str, &str) {
    match input.split_once('\n') {
        Some((line, rest)) => (rest, line),
        None => ("", input),
    }
}

pub(super) fn semicolon(input: &str) -> Res<'_, ()> {
    let (input, _) = multispace0(input)?;
    match input.strip_prefix(';') {
        Some(rest) => Ok((rest, ())),
        None => Err(fail(input, "expected ';'")),
    }
}

/// Names the failure of `parser` unless an inner parser already did.
pub(super) fn label<'a, O>(
    expected: &'static str,
    mut parser: impl FnMut(&'a str) -> Res<'a, O>,
) -> impl FnMut(&'a str) -> Res<'a, O> {
    move |input| {
        parser(input).map_err(|err| {
            err.map(|mut e| {
                if e.expected.is_empty() {
                    e.expected = expected;
                }
                e
            })
        })
    }
}

/// Spaces and tabs (never a newline), then `parser`: fields of one-line statements.
pub(super) fn sp_then<'a, O>(
    mut parser: impl FnMut(&'a str) -> Res<'a, O>,
) -> impl FnMut(&'a str) -> Res<'a, O> {
    move |input| parser(space0(input)?.0)
}

/// Any white space, then `parser`: fields of `;`-terminated statements.
pub(super) fn ws_then<'a, O>(
    mut parser: impl FnMut(&'a str) -> Res<'a, O>,
) -> impl FnMut(&'a str) -> Res<'a, O> {
    move |input| parser(multispace0(input)?.0)
}

pub(super) fn fail<'a>(at: &'a str, expected: &'static str) -> nom::Err<SyntaxError<'a>> {
    nom::Err::Error(SyntaxError { at, expected })
}

pub(super) fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

pub(super) fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

pub(super) fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_strings() {
        assert_eq!(
            quoted("\"plain\" rest"),
            Ok((" rest", Cow::Borrowed("plain")))
        );
        let (rest, text) = quoted(r#""say \"hi\" \\ \n é\é";"#).expect("closed");
        assert_eq!((rest, text.as_ref()), (";", r#"say "hi" \ \n é\é"#));
        assert_eq!(
            quoted("\"two\nlines\"").map(|(_, t)| t),
            Ok(Cow::Borrowed("two\nlines"))
        );
        let open = "\"never closed \\\"";
        assert_eq!(quoted(open), Err(fail(open, "unterminated string")));
    }

    #[test]
    fn numbers() {
        assert_eq!(number("1e-05)"), Ok((")", 1e-05)));
        assert_eq!(number("-1.609375,"), Ok((",", -1.609375)));
        assert_eq!(number("+3]"), Ok(("]", 3.0)));
        assert!(number("nan").is_err() && number("inf").is_err());
        assert_eq!(uint::<u8>("255 "), Ok((" ", 255)));
        assert_eq!(uint::<u8>("256"), Err(fail("256", "number out of range")));
        // The largest 64-bit raw value wraps to -1, as its bits do.
        assert_eq!(raw_value("18446744073709551615 "), Ok((" ", -1)));
        assert_eq!(raw_value("-5 "), Ok((" ", -5)));
    }

    #[test]
    fn value_lists() {
        let (rest, (values, terminated)) = value_pairs(" 1 \"a\"\n  2 \"b\" ; x").expect("list");
        assert_eq!((rest, values.len(), terminated), (" x", 2, true));
        // Missing ';': the list ends with its line when the next line is a new statement.
        let (rest, (values, terminated)) = value_pairs(" 0 \"off\"\nVAL_ 1").expect("list");
        assert_eq!((rest, values.len(), terminated), ("VAL_ 1", 1, false));
        assert_eq!(
            value_pairs(" 0 \"off\"").map(|(_, (v, t))| (v.len(), t)),
            Ok((1, false))
        );
    }

    #[test]
    fn statement_skipping() {
        assert_eq!(
            skip_statement(" \"a;b\" c; next", true),
            Ok((" next", Statement::Skipped))
        );
        assert_eq!(
            skip_statement(" a\nb;", false),
            Ok(("\nb;", Statement::Skipped))
        );
        assert!(skip_statement(" a\nb", true).is_err());
        assert!(skip_statement(" \"open", false).is_err());
    }

    #[test]
    fn line_ends() {
        assert_eq!(end_of_line("  \r\nnext"), Ok(("next", ())));
        assert_eq!(end_of_line(" ;"), Ok(("", ())));
        assert_eq!(end_of_line(" x"), Err(fail("x", "expected end of line")));
    }
}
