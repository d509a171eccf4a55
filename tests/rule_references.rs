//! Every rule reference in the code resolves to an entry of `docs/open-streaming.md`, and no
//! comment points at a file outside the repository.
//!
//! Comments such as `(rules 16–18, 62–63)`, `B4`, `§10 A2–A3` or `§2.6` cite the numbered
//! entries of `docs/open-streaming.md` (**Rule N.**, **Bn.**, **An.** and the `§` section
//! headings). Those numbers are fixed; this test keeps the two sides in step. Std only, so it
//! also compiles on its own:
//! `CARGO_MANIFEST_DIR=$PWD rustc --edition 2024 --test tests/rule_references.rs -o /tmp/rr && /tmp/rr`
//! (`env!` is read at compile time, hence the variable on the `rustc` command).
//!
//! # What is scanned
//!
//! All `.rs` files under `src/`, `decoders/src/`, `decoders/tests/` and `tests/`. A small lexer
//! ([`regions`]) splits each file into code, comments (`//…`, `/* … */`, nested) and string
//! literals (`"…"`, `b"…"`, raw `r#"…"#`; char literals such as `'"'` are skipped, lifetimes
//! are told apart by the absence of a closing quote). Only comment and string text is searched,
//! line by line, so identifiers in code (a variant `B1`, a constant `0xB4`) are never read as
//! references. For the path check, the comment lines of `decoders/definitions/*.toml` and the
//! lines of `docs/*.md` and `README.md` are scanned as well.
//!
//! # The matcher (no regular expressions)
//!
//! Within a line of comment or string text ([`references`]):
//!
//! - `rule` / `rules` (any case of the first letter), as a whole word, then a space and a number
//!   list: numbers joined by `, ` or ` and `, each optionally a range `N–M` (en dash or hyphen).
//!   `rules 7–8, 61, 70` gives 7, 8, 61, 70. A bare `(62–63)` is not a reference.
//! - `B` + 1–2 digits and `A` + 1 digit, not glued to a letter, digit or `_` on either side
//!   (so `0xB4`, `AB12`, `B1x` are not matches), optionally a range `Bn–Bm`. `A` references are
//!   taken from comments only: in strings they are too easily data.
//! - `§` + digits, optionally `.` + digits (`§2.6`), optionally a range `§1–§3`. A `§` reference
//!   belongs to the last `*.md` file named before it on the same line: with none it cites
//!   `docs/open-streaming.md`; a `docs/….md` page must have that `§` heading; any other file is
//!   outside the repository and therefore an error.
//!
//! # Path check
//!
//! Comment text (and the scanned Markdown/TOML lines) must not contain any of [`FORBIDDEN`], nor
//! a path starting with the name of the reference folder's `formats` subfolder: those point
//! into the team's shared reference folder, which is not part of the repository. Every `docs/…`
//! path named in a comment or document must exist.
//!
//! This file itself is not scanned: its unit tests feed the matcher deliberately bad examples.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const RULES_DOC: &str = "docs/open-streaming.md";
const SOURCE_DIRS: [&str; 7] = [
    "src",
    "decoders/src",
    "decoders/tests",
    "tests",
    "stream-api/src",
    "proto/src",
    "benches",
];
const FORBIDDEN: [&str; 4] = ["../shared", "producer-rules.md", "interface.md", "shared/"];
/// This file, left out of the scans (see the module docs).
const SELF: &str = "tests/rule_references.rs";

// ---------------------------------------------------------------------------------------------
// Lexer: comment and string text of a Rust file.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Comment,
    Str,
}

/// One line of comment or string text, with its 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Region {
    line: usize,
    kind: Kind,
    text: String,
}

/// Splits Rust source into lines of comment and string text; code is dropped.
fn regions(source: &str) -> Vec<Region> {
    let c: Vec<char> = source.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    // Pushes the text c[from..to] as regions of `kind`, one per line, and advances `line`.
    let emit = |from: usize, to: usize, kind: Kind, line: &mut usize, out: &mut Vec<Region>| {
        let mut text = String::new();
        for &ch in &c[from..to] {
            if ch == '\n' {
                out.push(Region {
                    line: *line,
                    kind,
                    text: std::mem::take(&mut text),
                });
                *line += 1;
            } else {
                text.push(ch);
            }
        }
        out.push(Region {
            line: *line,
            kind,
            text,
        });
    };
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    while i < c.len() {
        let at = |k: usize| c.get(k).copied().unwrap_or('\0');
        match c[i] {
            '\n' => {
                line += 1;
                i += 1;
            }
            '/' if at(i + 1) == '/' => {
                let end = c[i..]
                    .iter()
                    .position(|&ch| ch == '\n')
                    .map_or(c.len(), |p| i + p);
                emit(i + 2, end, Kind::Comment, &mut line, &mut out);
                i = end;
            }
            '/' if at(i + 1) == '*' => {
                let mut depth = 1;
                let mut j = i + 2;
                while j < c.len() && depth > 0 {
                    if c[j] == '/' && at(j + 1) == '*' {
                        depth += 1;
                        j += 2;
                    } else if c[j] == '*' && at(j + 1) == '/' {
                        depth -= 1;
                        j += 2;
                    } else {
                        j += 1;
                    }
                }
                emit(
                    i + 2,
                    j.saturating_sub(2).max(i + 2),
                    Kind::Comment,
                    &mut line,
                    &mut out,
                );
                i = j;
            }
            'r' | 'b' if i == 0 || !ident(c[i - 1]) => {
                // r"…", r#"…"#, br"…", b"…"; anything else is an identifier.
                let mut j = i + 1;
                if c[i] == 'b' && at(j) == 'r' {
                    j += 1;
                }
                let raw = c[i] == 'r' || at(i + 1) == 'r';
                let mut hashes = 0;
                while raw && at(j) == '#' {
                    hashes += 1;
                    j += 1;
                }
                if at(j) != '"' {
                    // An identifier (or raw identifier): skip it whole.
                    i += 1;
                    while i < c.len() && ident(c[i]) {
                        i += 1;
                    }
                    continue;
                }
                let start = j + 1;
                let end = if raw {
                    let mut k = start;
                    loop {
                        if k >= c.len() {
                            break c.len();
                        }
                        if c[k] == '"' && (1..=hashes).all(|h| at(k + h) == '#') {
                            break k;
                        }
                        k += 1;
                    }
                } else {
                    string_end(&c, start)
                };
                emit(start, end, Kind::Str, &mut line, &mut out);
                i = (end + 1 + if raw { hashes } else { 0 }).min(c.len());
            }
            '"' => {
                let end = string_end(&c, i + 1);
                emit(i + 1, end, Kind::Str, &mut line, &mut out);
                i = (end + 1).min(c.len());
            }
            '\'' => {
                // A char literal ('x', '\n', '\u{1F600}', '"') or a lifetime / label ('a).
                if at(i + 1) == '\\' {
                    let close = c[i + 2..].iter().position(|&ch| ch == '\'');
                    i = close.map_or(c.len(), |p| i + 2 + p + 1);
                } else if at(i + 2) == '\'' {
                    i += 3;
                } else {
                    i += 1;
                }
            }
            ch if ident(ch) => {
                while i < c.len() && ident(c[i]) {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    out
}

/// Index of the closing quote of a non-raw string whose text starts at `start`.
fn string_end(c: &[char], start: usize) -> usize {
    let mut k = start;
    while k < c.len() {
        match c[k] {
            '\\' => k += 2,
            '"' => return k,
            _ => k += 1,
        }
    }
    c.len()
}

// ---------------------------------------------------------------------------------------------
// Matcher: the references in one line of text.

/// A reference found in the code.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Ref {
    Rule(u32),
    B(u32),
    A(u32),
    /// A section: the document it belongs to (`Err`: a file outside `docs/`, named as found)
    /// and the section number as written (`"2"`, `"2.6"`).
    Section {
        doc: Result<String, String>,
        section: String,
    },
}

fn is_word(ch: char) -> bool {
    ch.is_alphanumeric() || ch == '_'
}

/// Reads digits at `c[*i..]`, advancing `*i`.
fn number(c: &[char], i: &mut usize) -> Option<u32> {
    let start = *i;
    while *i < c.len() && c[*i].is_ascii_digit() {
        *i += 1;
    }
    let digits: String = c[start..*i].iter().collect();
    digits.parse().ok()
}

/// Whether `c[i..]` starts with `s`.
fn starts(c: &[char], i: usize, s: &str) -> bool {
    let n = s.chars().count();
    c.get(i..i + n)
        .is_some_and(|window| window.iter().copied().eq(s.chars()))
}

/// The `*.md` path that ends just before `end` (a run of path characters ending in `.md`).
fn md_before(c: &[char], end: usize) -> Option<String> {
    let path_char = |ch: char| ch.is_alphanumeric() || "._/-".contains(ch);
    let mut last = None;
    let mut k = 0;
    while k < end {
        if path_char(c[k]) {
            let start = k;
            while k < end && path_char(c[k]) {
                k += 1;
            }
            let token: String = c[start..k].iter().collect();
            let token = token.trim_end_matches('.');
            if token.ends_with(".md") {
                last = Some(token.to_string());
            }
        } else {
            k += 1;
        }
    }
    last
}

/// Every reference in one line of comment or string text.
fn references(text: &str, kind: Kind) -> Vec<Ref> {
    let c: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let before_ok = i == 0 || !is_word(c[i - 1]);
        // rule N / rules N–M, N and N
        if before_ok && (starts(&c, i, "rule") || starts(&c, i, "Rule")) {
            let mut j = i + 4;
            if c.get(j) == Some(&'s') {
                j += 1;
            }
            if c.get(j) == Some(&' ') && c.get(j + 1).is_some_and(|ch| ch.is_ascii_digit()) {
                j += 1;
                while let Some(from) = number(&c, &mut j) {
                    let mut to = from;
                    if matches!(c.get(j), Some('–' | '-'))
                        && c.get(j + 1).is_some_and(|ch| ch.is_ascii_digit())
                    {
                        j += 1;
                        to = number(&c, &mut j).unwrap_or(from);
                    }
                    out.extend((from..=to.max(from)).map(Ref::Rule));
                    let sep = [", ", " and "].iter().find(|s| starts(&c, j, s));
                    match sep {
                        Some(s)
                            if c.get(j + s.chars().count())
                                .is_some_and(|ch| ch.is_ascii_digit()) =>
                        {
                            j += s.chars().count();
                        }
                        _ => break,
                    }
                }
                i = j;
                continue;
            }
        }
        // Bn, Bn–Bm, An
        let letter = c[i];
        if before_ok && (letter == 'B' || (letter == 'A' && kind == Kind::Comment)) {
            let mut j = i + 1;
            let start = j;
            let n = number(&c, &mut j);
            let width = j - start;
            let max_width = if letter == 'B' { 2 } else { 1 };
            let after_ok = c.get(j).is_none_or(|&ch| !is_word(ch));
            if let (Some(from), true, true) = (n, (1..=max_width).contains(&width), after_ok) {
                let mut to = from;
                if matches!(c.get(j), Some('–' | '-')) && c.get(j + 1) == Some(&letter) {
                    let mut k = j + 2;
                    let m = number(&c, &mut k);
                    if let (Some(m), true) = (m, c.get(k).is_none_or(|&ch| !is_word(ch))) {
                        to = m;
                        j = k;
                    }
                }
                let make = if letter == 'B' { Ref::B } else { Ref::A };
                out.extend((from..=to.max(from)).map(make));
                i = j;
                continue;
            }
        }
        // §n, §n.m, §n–§m
        if c[i] == '§' {
            let doc = match md_before(&c, i) {
                None => Ok(RULES_DOC.to_string()),
                Some(path) if path.starts_with("docs/") => Ok(path),
                Some(path) => Err(path),
            };
            let mut j = i + 1;
            if let Some(from) = number(&c, &mut j) {
                let mut section = from.to_string();
                if c.get(j) == Some(&'.') && c.get(j + 1).is_some_and(|ch| ch.is_ascii_digit()) {
                    j += 1;
                    let sub = number(&c, &mut j).unwrap_or(0);
                    section = format!("{from}.{sub}");
                }
                let mut sections = vec![section];
                if matches!(c.get(j), Some('–' | '-')) && c.get(j + 1) == Some(&'§') {
                    let mut k = j + 2;
                    if let Some(to) = number(&c, &mut k) {
                        sections.extend((from + 1..=to).map(|n| n.to_string()));
                        j = k;
                    }
                }
                out.extend(sections.into_iter().map(|section| Ref::Section {
                    doc: doc.clone(),
                    section,
                }));
            }
            i = j;
            continue;
        }
        i += 1;
    }
    out
}

/// Paths in `text` that point outside the repository, or at a `docs/` file that does not exist.
fn bad_paths(text: &str, root: &Path) -> Vec<String> {
    let mut bad = Vec::new();
    for needle in FORBIDDEN {
        if text.contains(needle) {
            bad.push(format!("names `{needle}` (outside the repository)"));
        }
    }
    let c: Vec<char> = text.chars().collect();
    let path_char = |ch: char| ch.is_alphanumeric() || "._/-".contains(ch);
    for (i, _) in c.iter().enumerate() {
        let starts_path = i == 0 || !path_char(c[i - 1]);
        if !starts_path {
            continue;
        }
        if starts(&c, i, "formats/") {
            bad.push("names `formats/…` (outside the repository)".to_string());
        }
        if starts(&c, i, "docs/") {
            let mut k = i;
            while k < c.len() && path_char(c[k]) {
                k += 1;
            }
            let path: String = c[i..k].iter().collect();
            let path = path.trim_end_matches(['.', '/']);
            if path != "docs" && !root.join(path).exists() {
                bad.push(format!("names `{path}`, which does not exist"));
            }
        }
    }
    bad
}

// ---------------------------------------------------------------------------------------------
// The documents: what they define.

/// The numbered entries of a document: rules, B and A checks, `§` headings, each with the
/// 1-based lines that define it (more than one line is a duplicate).
#[derive(Debug, Default)]
struct Entries {
    rules: BTreeMap<u32, Vec<usize>>,
    b: BTreeMap<u32, Vec<usize>>,
    a: BTreeMap<u32, Vec<usize>>,
    sections: BTreeMap<String, Vec<usize>>,
}

fn entries(doc: &str) -> Entries {
    let mut e = Entries::default();
    // "**Rule 12.**" → 12; "**B3.**" → 3.
    let numbered = |line: &str, prefix: &str| -> Option<u32> {
        let rest = line.strip_prefix(prefix)?;
        let (n, tail) = rest.split_once(".**")?;
        if tail.starts_with(|ch: char| ch.is_ascii_digit()) {
            return None;
        }
        n.parse().ok()
    };
    for (index, line) in doc.lines().enumerate() {
        let at = index + 1;
        if let Some(n) = numbered(line, "**Rule ") {
            e.rules.entry(n).or_default().push(at);
        } else if let Some(n) = numbered(line, "**B") {
            e.b.entry(n).or_default().push(at);
        } else if let Some(n) = numbered(line, "**A") {
            e.a.entry(n).or_default().push(at);
        } else if let Some((_, after)) = line.split_once('§').filter(|_| line.starts_with('#')) {
            let id: String = after
                .chars()
                .take_while(|ch| ch.is_ascii_digit() || *ch == '.')
                .collect();
            let id = id.trim_end_matches('.');
            if !id.is_empty() {
                e.sections.entry(id.to_string()).or_default().push(at);
            }
        }
    }
    e
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// Every file under `dir` (recursively) whose name ends in `suffix`, sorted.
fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(listing) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in listing.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().ends_with(suffix) && !path.ends_with(SELF) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

fn relative(path: &Path) -> String {
    path.strip_prefix(ROOT)
        .unwrap_or(path)
        .display()
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// The checks.

#[test]
fn every_rule_reference_resolves() {
    let root = Path::new(ROOT);
    // Documents are parsed once, when first cited.
    let load = |doc: &str, docs: &mut BTreeMap<String, Entries>| {
        if !docs.contains_key(doc) {
            let text = fs::read_to_string(root.join(doc)).unwrap_or_default();
            docs.insert(doc.to_string(), entries(&text));
        }
    };
    let mut docs: BTreeMap<String, Entries> = BTreeMap::new();
    load(RULES_DOC, &mut docs);
    let mut problems = Vec::new();
    let mut counted = 0;
    for dir in SOURCE_DIRS {
        for file in files(&root.join(dir), ".rs") {
            for region in regions(&read(&file)) {
                for reference in references(&region.text, region.kind) {
                    counted += 1;
                    let rules = &docs[RULES_DOC];
                    let missing = match &reference {
                        Ref::Rule(n) => (!rules.rules.contains_key(n)).then(|| format!("rule {n}")),
                        Ref::B(n) => (!rules.b.contains_key(n)).then(|| format!("B{n}")),
                        Ref::A(n) => (!rules.a.contains_key(n)).then(|| format!("A{n}")),
                        Ref::Section {
                            doc: Err(path),
                            section,
                        } => Some(format!("§{section} of `{path}`, a file outside docs/")),
                        Ref::Section {
                            doc: Ok(doc),
                            section,
                        } => {
                            load(doc, &mut docs);
                            (!docs[doc.as_str()].sections.contains_key(section))
                                .then(|| format!("§{section} (no such heading in {doc})"))
                        }
                    };
                    if let Some(what) = missing {
                        problems.push(format!("{}:{}: {what}", relative(&file), region.line));
                    }
                }
            }
        }
    }
    eprintln!("{counted} references checked");
    assert!(
        counted > 100,
        "only {counted} references found: is the matcher broken?"
    );
    assert!(
        problems.is_empty(),
        "unresolved references:\n{}",
        problems.join("\n")
    );
}

#[test]
fn no_reference_points_outside_the_repository() {
    let root = Path::new(ROOT);
    let mut problems = Vec::new();
    let mut report = |file: &Path, line: usize, text: &str| {
        for bad in bad_paths(text, root) {
            problems.push(format!("{}:{line}: {bad}", relative(file)));
        }
    };
    for dir in SOURCE_DIRS {
        for file in files(&root.join(dir), ".rs") {
            for region in regions(&read(&file)) {
                if region.kind == Kind::Comment {
                    report(&file, region.line, &region.text);
                }
            }
        }
    }
    for file in files(&root.join("decoders/definitions"), ".toml") {
        for (index, line) in read(&file).lines().enumerate() {
            if let Some((_, comment)) = line.split_once('#') {
                report(&file, index + 1, comment);
            }
        }
    }
    let mut markdown = files(&root.join("docs"), ".md");
    markdown.push(root.join("README.md"));
    for file in markdown {
        for (index, line) in read(&file).lines().enumerate() {
            report(&file, index + 1, line);
        }
    }
    assert!(
        problems.is_empty(),
        "references outside the repository:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_rules_document_is_numbered_consistently() {
    let e = entries(&read(&Path::new(ROOT).join(RULES_DOC)));
    let duplicates = |what: &str, map: &BTreeMap<String, Vec<usize>>| -> Vec<String> {
        map.iter()
            .filter(|(_, lines)| lines.len() > 1)
            .map(|(id, lines)| format!("{what}{id} defined on lines {lines:?}"))
            .collect()
    };
    let by_name = |map: &BTreeMap<u32, Vec<usize>>| -> BTreeMap<String, Vec<usize>> {
        map.iter()
            .map(|(n, lines)| (n.to_string(), lines.clone()))
            .collect()
    };
    let mut problems = Vec::new();
    problems.extend(duplicates("rule ", &by_name(&e.rules)));
    problems.extend(duplicates("B", &by_name(&e.b)));
    problems.extend(duplicates("A", &by_name(&e.a)));
    problems.extend(duplicates("§", &e.sections));
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // Rules and checks are numbered without gaps, as the code cites them.
    let contiguous = |map: &BTreeMap<u32, Vec<usize>>| map.keys().copied().eq(1..=map.len() as u32);
    assert!(
        contiguous(&e.rules),
        "rule numbers have gaps: {:?}",
        e.rules.keys()
    );
    assert!(
        e.rules.len() >= 95,
        "rules 1–95 expected, found {}",
        e.rules.len()
    );
    assert!(
        contiguous(&e.b) && e.b.len() == 14,
        "B1–B14 expected: {:?}",
        e.b.keys()
    );
    assert!(
        contiguous(&e.a) && e.a.len() == 5,
        "A1–A5 expected: {:?}",
        e.a.keys()
    );
    // §1–§10 as headings, and each subsection under an existing section.
    let sections: BTreeSet<&str> = e.sections.keys().map(String::as_str).collect();
    for n in 1..=10 {
        assert!(sections.contains(n.to_string().as_str()), "no heading §{n}");
    }
    for id in &sections {
        if let Some((major, _)) = id.split_once('.') {
            assert!(sections.contains(major), "§{id} has no §{major} heading");
        }
    }
}

#[test]
fn the_lexer_reads_only_comments_and_strings() {
    let source = concat!(
        "enum Rule { B1, B2 } // see B3 and rule 7\n",
        "let x = 0xB4; let c = '\"'; let l: &'a str = \"rule 8\";\n",
        "/* block §2.6\n nested /* B4 */ still */ let r = r#\"B5 \"quoted\"\"#;\n",
        "let s = \"escaped \\\" B6\"; let b = b\"B7\"; fn f<'b>() {} // A2\n",
    );
    let found: Vec<(usize, Kind, Vec<Ref>)> = regions(source)
        .into_iter()
        .map(|r| (r.line, r.kind, references(&r.text, r.kind)))
        .filter(|(_, _, refs)| !refs.is_empty())
        .collect();
    let section = |s: &str| Ref::Section {
        doc: Ok(RULES_DOC.to_string()),
        section: s.to_string(),
    };
    assert_eq!(
        found,
        vec![
            (1, Kind::Comment, vec![Ref::B(3), Ref::Rule(7)]),
            (2, Kind::Str, vec![Ref::Rule(8)]),
            (3, Kind::Comment, vec![section("2.6")]),
            (4, Kind::Comment, vec![Ref::B(4)]),
            (4, Kind::Str, vec![Ref::B(5)]),
            (5, Kind::Str, vec![Ref::B(6)]),
            (5, Kind::Str, vec![Ref::B(7)]),
            (5, Kind::Comment, vec![Ref::A(2)]),
        ]
    );
}

#[test]
fn the_matcher_reads_lists_ranges_and_sections() {
    let refs = |text: &str| references(text, Kind::Comment);
    assert_eq!(
        refs("(rules 7–8, 61, 70) and Rules 1-2 and 5; rule 9(a)"),
        [7, 8, 61, 70, 1, 2, 5, 9].map(Ref::Rule)
    );
    assert_eq!(refs("(62–63) rulesets 4 overrule 5"), Vec::<Ref>::new());
    assert_eq!(refs("B1–B14"), (1..=14).map(Ref::B).collect::<Vec<_>>());
    assert_eq!(
        refs("B3–B9, B4/B8"),
        [3, 4, 5, 6, 7, 8, 9, 4, 8].map(Ref::B)
    );
    assert_eq!(refs("0xB4 AB12 B1x B123 _B2 A12"), Vec::<Ref>::new());
    assert_eq!(references("A2 in a string", Kind::Str), Vec::<Ref>::new());
    let section = |doc: Result<&str, &str>, s: &str| Ref::Section {
        doc: doc.map(str::to_string).map_err(str::to_string),
        section: s.to_string(),
    };
    assert_eq!(
        refs("§1–§3 of the producer rules, §10 A2–A3"),
        vec![
            section(Ok(RULES_DOC), "1"),
            section(Ok(RULES_DOC), "2"),
            section(Ok(RULES_DOC), "3"),
            section(Ok(RULES_DOC), "10"),
            Ref::A(2),
            Ref::A(3),
        ]
    );
    assert_eq!(
        refs("`docs/can-formats.md` §3"),
        [section(Ok("docs/can-formats.md"), "3")]
    );
    assert_eq!(
        refs("`shared/formats/can.md` §4."),
        [section(Err("shared/formats/can.md"), "4")]
    );
}

#[test]
fn the_path_check_flags_outside_paths() {
    let root = Path::new(ROOT);
    let good = bad_paths(
        "see `docs/open-streaming.md` and docs/capture-formats.md.",
        root,
    );
    assert!(good.is_empty(), "{good:?}");
    assert_eq!(bad_paths("see `formats/can.md`", root).len(), 1);
    assert!(!bad_paths("see shared/formats/can.md", root).is_empty());
    assert_eq!(bad_paths("producer-rules.md §10", root).len(), 1);
    assert_eq!(bad_paths("(`docs/no-such-page.md`)", root).len(), 1);
}
