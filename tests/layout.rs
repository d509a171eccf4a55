//! The daemon's layout, checked: data flows one way through `source → decode → batch →
//! publish`. A stage imports the pipeline's edge types (`crate::pipeline::edge`), the
//! configuration, the counters and the libraries, never another stage, the wiring
//! (`pipeline`, `daemon`) or the service; capture files may use the live sources' receivers,
//! never the reverse; no Open Streaming message type appears before the publish stage (batch
//! may use the protocol crate's row encoding, which writes bytes, not messages).
//!
//! Std only: it reads `use crate::…` paths (and `crate::…` paths in code) from each stage's
//! files, skipping comments and test modules, and compares them with the table below.

use std::path::{Path, PathBuf};

/// A stage (one file or a folder under `src/`) and the crate modules it must not name.
struct Rule {
    stage: &'static str,
    forbidden: &'static [&'static str],
    /// Open Streaming paths it must not name.
    forbidden_protocol: &'static [&'static str],
}

const WIRING: [&str; 3] = ["daemon", "service", "pipeline::sources"];
const NO_MESSAGES: [&str; 3] = [
    "open_streaming::open_data",
    "open_streaming::api",
    "open_streaming::key_generator",
];

fn rules() -> Vec<Rule> {
    let with_wiring = |stages: &[&'static str]| -> &'static [&'static str] {
        let mut all: Vec<&'static str> = stages.to_vec();
        all.extend(WIRING);
        all.push("pipeline::run");
        Box::leak(all.into_boxed_slice())
    };
    vec![
        Rule {
            stage: "source",
            forbidden: with_wiring(&["capture", "decode", "batch", "publish"]),
            forbidden_protocol: &["open_streaming"],
        },
        Rule {
            stage: "capture",
            forbidden: with_wiring(&["decode", "batch", "publish"]),
            forbidden_protocol: &["open_streaming"],
        },
        Rule {
            stage: "decode.rs",
            forbidden: with_wiring(&["source", "capture", "batch", "publish"]),
            forbidden_protocol: &["open_streaming"],
        },
        Rule {
            stage: "batch.rs",
            forbidden: with_wiring(&["source", "capture", "decode", "publish"]),
            forbidden_protocol: &NO_MESSAGES,
        },
        Rule {
            stage: "publish",
            forbidden: with_wiring(&["source", "capture", "decode", "batch"]),
            forbidden_protocol: &[],
        },
        Rule {
            stage: "pipeline/edge.rs",
            forbidden: with_wiring(&["source", "capture", "decode", "batch", "publish"]),
            forbidden_protocol: &NO_MESSAGES,
        },
    ]
}

fn rust_files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_owned()];
    }
    let mut files = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
        .map(|entry| entry.expect("dir entry").path())
        .collect();
    entries.sort();
    for entry in entries {
        if entry.is_dir() {
            files.extend(rust_files(&entry));
        } else if entry.extension().is_some_and(|ext| ext == "rs") {
            files.push(entry);
        }
    }
    files
}

/// Code lines (line comments and doc comments removed) with their numbers, up to the file's
/// `#[cfg(test)]` module: tests may reach across stages to check them.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, String)> + '_ {
    let end = text
        .lines()
        .position(|line| line.trim() == "#[cfg(test)]")
        .unwrap_or(usize::MAX);
    text.lines().take(end).enumerate().map(|(index, line)| {
        let code = match line.find("//") {
            Some(comment) => &line[..comment],
            None => line,
        };
        (index + 1, code.to_owned())
    })
}

/// Every `crate::a::b` path named on a line, including each item of a `use crate::{a, b::c}`
/// group, as `a::b` strings.
fn crate_paths(line: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let mut rest = line;
    while let Some(start) = rest.find("crate::") {
        let after = &rest[start + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            paths.extend(group[..end].split(',').map(|item| item.trim().to_owned()));
        } else {
            let end = after
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(after.len());
            paths.push(after[..end].trim_end_matches(':').to_owned());
        }
        rest = &after[1.min(after.len())..];
    }
    paths.into_iter().filter(|p| !p.is_empty()).collect()
}

fn names(path: &str, module: &str) -> bool {
    path == module || path.starts_with(&format!("{module}::"))
}

#[test]
fn no_stage_imports_another_stage_or_the_wiring() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut violations = Vec::new();
    for rule in rules() {
        let files = rust_files(&src.join(rule.stage));
        assert!(!files.is_empty(), "no files for stage {}", rule.stage);
        for file in files {
            let text = std::fs::read_to_string(&file).expect("read");
            for (number, line) in code_lines(&text) {
                for path in crate_paths(&line) {
                    if let Some(module) = rule.forbidden.iter().find(|m| names(&path, m)) {
                        violations.push(format!(
                            "{}:{number}: stage {} names crate::{path} ({module})",
                            file.display(),
                            rule.stage
                        ));
                    }
                }
                for protocol in rule.forbidden_protocol {
                    if line.contains(protocol) {
                        violations.push(format!(
                            "{}:{number}: stage {} names {protocol}",
                            file.display(),
                            rule.stage
                        ));
                    }
                }
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn the_path_reader_sees_groups_and_plain_paths() {
    assert_eq!(
        crate_paths("use crate::pipeline::edge::{Batch, Queue};"),
        vec!["pipeline::edge"]
    );
    assert_eq!(
        crate_paths("use crate::{decode::Decoded, telemetry::Metrics};"),
        vec!["decode::Decoded", "telemetry::Metrics"]
    );
    assert_eq!(
        crate_paths("    let x = crate::publish::out_lap(1);"),
        vec!["publish::out_lap"]
    );
    assert!(names("decode::Decoded", "decode"));
    assert!(!names("decoders::RowBatch", "decode"));
    assert!(!names("pipeline::edge::Batch", "pipeline::sources"));
}
