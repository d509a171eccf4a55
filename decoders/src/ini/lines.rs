//! The line layer of a TunerStudio INI: comments, `[Section]` headers, the `#if`/`#elif`/
//! `#else`/`#endif` preprocessor with `#set`/`#unset`, and `key = value` splitting into
//! comma-separated fields that keep their columns (for error messages).
//!
//! Quotes protect `;`, `,` and `=`; braces protect `,` (expressions may contain calls).

use super::IniWarning;

/// One active `key = value` line.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Entry<'a> {
    /// 1-based line number.
    pub line: u32,
    /// The section the line is in (`""` before the first header).
    pub section: &'a str,
    /// The text before `=`, trimmed.
    pub key: &'a str,
    /// The comma-separated fields after `=`, trimmed, each with its 1-based column.
    pub fields: Vec<(u32, &'a str)>,
}

/// Walks `text`, keeping only lines whose `#if` conditions hold for `settings` (caller-given
/// names, plus `#set`, less `#unset`), and hands each active `key = value` entry and section
/// header to the callbacks.
pub(super) fn walk<'a>(
    text: &'a str,
    settings: &[&str],
    warnings: &mut Vec<IniWarning>,
    mut on_section: impl FnMut(u32, &'a str),
    mut on_entry: impl FnMut(Entry<'a>, &mut Vec<IniWarning>),
) {
    let mut set: Vec<&str> = settings.to_vec();
    // One frame per open `#if`: (enclosing branch active, this branch active, a branch taken).
    let mut stack: Vec<(bool, bool, bool)> = Vec::new();
    let mut section = "";
    for (index, raw) in text.lines().enumerate() {
        let line = u32::try_from(index + 1).unwrap_or(u32::MAX);
        let code = strip_comment(raw).trim();
        let active = stack.last().is_none_or(|frame| frame.1);
        // `# text` (a space after the hash) is how menus write separators: a comment.
        if let Some(directive) = code.strip_prefix('#').filter(|d| !d.starts_with(' ')) {
            directive_line(directive, line, active, &mut stack, &mut set, warnings);
            continue;
        }
        if !active || code.is_empty() || code.starts_with('#') {
            continue;
        }
        if let Some(name) = code.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = name.trim();
            on_section(line, section);
            continue;
        }
        let Some(eq) = find_outside_quotes(code, b'=') else {
            warnings.push(IniWarning::new(
                line,
                format!("ignored line without '=': {code}"),
            ));
            continue;
        };
        let base = raw.len() - raw.trim_start().len();
        let value_start = base + eq + 1;
        let fields = split_fields(&raw[value_start..raw.len().min(base + code.len())])
            .into_iter()
            .map(|(col, field)| (u32::try_from(value_start + col + 1).unwrap_or(0), field))
            .collect();
        on_entry(
            Entry {
                line,
                section,
                key: code[..eq].trim(),
                fields,
            },
            warnings,
        );
    }
    if !stack.is_empty() {
        warnings.push(IniWarning::new(
            0,
            "#if without #endif at end of file".into(),
        ));
    }
}

fn directive_line<'a>(
    directive: &'a str,
    line: u32,
    active: bool,
    stack: &mut Vec<(bool, bool, bool)>,
    set: &mut Vec<&'a str>,
    warnings: &mut Vec<IniWarning>,
) {
    let mut words = directive.split_whitespace();
    let word = words.next().unwrap_or("");
    let name = words.next().unwrap_or("");
    let holds = |set: &Vec<&str>| match name.strip_prefix('!') {
        Some(negated) => !set.contains(&negated),
        None => set.contains(&name),
    };
    match word {
        "if" => {
            let taken = active && holds(set);
            stack.push((active, taken, taken));
        }
        "elif" | "else" => {
            let Some(frame) = stack.last_mut() else {
                warnings.push(IniWarning::new(line, format!("#{word} without #if")));
                return;
            };
            let this = frame.0 && !frame.2 && (word == "else" || holds(set));
            frame.1 = this;
            frame.2 |= this;
        }
        "endif" if stack.pop().is_none() => {
            warnings.push(IniWarning::new(line, "#endif without #if".into()));
        }
        "endif" => {}
        "set" if active && !set.contains(&name) => set.push(name),
        "unset" if active => set.retain(|s| *s != name),
        // `#define` feeds option lists of tune constants, which the bridge does not read.
        "set" | "unset" | "define" => {}
        _ if active => warnings.push(IniWarning::new(line, format!("unknown directive #{word}"))),
        _ => {}
    }
}

/// The line up to a `;` that is not inside quotes.
fn strip_comment(line: &str) -> &str {
    match find_outside_quotes(line, b';') {
        Some(at) => &line[..at],
        None => line,
    }
}

/// Byte position of the first `wanted` outside double quotes (a `\"` does not close them).
fn find_outside_quotes(text: &str, wanted: u8) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (at, byte) in text.bytes().enumerate() {
        match byte {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            _ if byte == wanted && !quoted => return Some(at),
            _ => {}
        }
    }
    None
}

/// Splits at commas outside quotes and braces; each field trimmed, with its byte column.
fn split_fields(value: &str) -> Vec<(usize, &str)> {
    let mut fields = Vec::new();
    let (mut quoted, mut escaped, mut braces, mut start) = (false, false, 0usize, 0usize);
    let mut push = |from: usize, to: usize| {
        let field = &value[from..to];
        let lead = field.len() - field.trim_start().len();
        fields.push((from + lead, field.trim()));
    };
    for (at, byte) in value.bytes().enumerate() {
        match byte {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b'{' if !quoted => braces += 1,
            b'}' if !quoted => braces = braces.saturating_sub(1),
            b',' if !quoted && braces == 0 => {
                push(start, at);
                start = at + 1;
            }
            _ => {}
        }
    }
    push(start, value.len());
    fields
}

/// The text between double quotes, or `None` if `field` is not one quoted string.
pub(super) fn unquote(field: &str) -> Option<&str> {
    field
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .filter(|_| field.len() >= 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    static TEXT: &str = "#unset B\n[Sec]\n a = 1, \"x;y\", { f(1, 2) } ; note\n#if A\nb = 2\n#elif B\nc = 3\n#else\nd = 4\n#endif\nnoequals\n#endif\n";

    /// (line, key, [(column, field)]) per entry.
    type Collected = Vec<(u32, String, Vec<(u32, String)>)>;

    fn collect(settings: &[&str]) -> (Collected, Vec<IniWarning>) {
        let mut warnings = Vec::new();
        let mut out = Vec::new();
        walk(
            TEXT,
            settings,
            &mut warnings,
            |_, _| {},
            |e, _| {
                let fields = e.fields.iter().map(|(c, f)| (*c, f.to_string())).collect();
                out.push((e.line, e.key.to_string(), fields));
            },
        );
        (out, warnings)
    }

    #[test]
    fn deconstruct_fields_with_columns() {
        let (entries, _) = collect(&[]);
        assert_eq!(entries[0].0, 3);
        assert_eq!(entries[0].1, "a");
        let fields: Vec<(u32, &str)> = entries[0].2.iter().map(|(c, f)| (*c, f.as_str())).collect();
        assert_eq!(fields, [(6, "1"), (9, "\"x;y\""), (16, "{ f(1, 2) }")]);
    }

    #[test]
    fn conditionals_pick_one_branch() {
        let keys = |settings: &[&str]| -> Vec<String> {
            collect(settings)
                .0
                .into_iter()
                .skip(1)
                .map(|e| e.1)
                .collect()
        };
        assert_eq!(keys(&[]), ["d"]);
        assert_eq!(keys(&["A"]), ["b"]);
        // `#unset B` at the top removes the caller's B.
        assert_eq!(keys(&["B"]), ["d"]);
    }

    #[test]
    fn stray_lines_and_directives_warn() {
        let (_, warnings) = collect(&[]);
        let lines: Vec<u32> = warnings.iter().map(|w| w.line).collect();
        assert_eq!(lines, [11, 12]);
    }

    #[test]
    fn unquote_needs_both_quotes() {
        assert_eq!(unquote("\"abc\""), Some("abc"));
        assert_eq!(unquote("\""), None);
        assert_eq!(unquote("abc"), None);
    }
}
