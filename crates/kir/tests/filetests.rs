//! `.kir` file tests: KIR text in, expected text out.
//!
//! Every `crates/kir/filetests/*.kir` file starts with a `; test: <command>`
//! line; the file as a whole is the input (a kernel or a module; comments,
//! including the check lines, are ignored by the parser, so line numbers in
//! parse errors are the file's own). Lines of the form `; check: <line>` hold
//! the expected output, one line each, compared exactly and in order.
//!
//! Commands:
//! - `roundtrip`: the module printed after parsing; printing must also be a
//!   fixed point (parse → print → parse → print gives the same text).
//! - `parse-error`: the `ParseError`'s display (`line L, column C: message`);
//!   parsing successfully is a failure.
//! - `verify`: `ok`, or one line per `weft_kir::verifier::verify` error
//!   (`entity: message`).
//! - `analyze`: the lines of `weft_kir::analysis::report`.
//!
//! For `verify` and `analyze`, a module of several kernels prefixes each
//! output line with `@name: `.
//!
//! Bless mode: with `WEFT_BLESS=1` the harness rewrites each file's check
//! lines with the actual output (at the end of the file) instead of failing,
//! for when a change of output is intended. Review the diff before committing.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use weft_kir::text::parse_module;
use weft_kir::{analysis, verifier, Module};

const CHECK: &str = "; check:";
const TEST: &str = "; test:";

#[test]
fn filetests() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("filetests");
    let bless = std::env::var("WEFT_BLESS").is_ok_and(|v| v == "1");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|ext| ext == "kir"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .kir files in {}", dir.display());

    let mut failures = Vec::new();
    for path in &files {
        if let Err(message) = run_file(path, bless) {
            failures.push(format!("{}:\n{message}", path.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} file tests failed:\n\n{}",
        failures.len(),
        files.len(),
        failures.join("\n\n")
    );
}

/// Runs one file; `Err` is a readable failure report.
fn run_file(path: &Path, bless: bool) -> Result<(), String> {
    let text = fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let command = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .and_then(|l| l.strip_prefix(TEST))
        .map(str::trim)
        .ok_or_else(|| format!("the first line must be `{TEST} <command>`"))?;
    let expected: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix(CHECK))
        .map(|rest| rest.strip_prefix(' ').unwrap_or(rest).to_string())
        .collect();
    let actual = run_command(command, &text)?;
    if actual == expected {
        return Ok(());
    }
    if bless {
        fs::write(path, blessed(&text, &actual)).map_err(|e| format!("cannot bless: {e}"))?;
        eprintln!("blessed {}", path.display());
        return Ok(());
    }
    Err(format!(
        "output differs from the `{CHECK}` lines (- expected, + actual):\n{}\
         If the new output is intended, rerun with WEFT_BLESS=1 to update the file.",
        diff(&expected, &actual)
    ))
}

/// The output of `command` on `src`, or why the test fails regardless of
/// the expectations.
fn run_command(command: &str, src: &str) -> Result<Vec<String>, String> {
    let parse = |src: &str| parse_module(src).map_err(|e| format!("parse error: {e}"));
    match command {
        "roundtrip" => {
            let printed = parse(src)?.to_string();
            let reprinted = parse(&printed)?.to_string();
            if reprinted != printed {
                return Err(format!(
                    "printing is not a fixed point (- first print, + second print):\n{}",
                    diff(&lines(&printed), &lines(&reprinted))
                ));
            }
            Ok(lines(&printed))
        }
        "parse-error" => match parse_module(src) {
            Ok(m) => Err(format!("expected a parse error, but the text parsed:\n{m}")),
            Err(e) => Ok(vec![e.to_string()]),
        },
        "verify" => Ok(per_kernel(&parse(src)?, |k| match verifier::verify(k) {
            Ok(()) => vec!["ok".to_string()],
            Err(errors) => errors.errors.iter().map(ToString::to_string).collect(),
        })),
        "analyze" => Ok(per_kernel(&parse(src)?, |k| lines(&analysis::report(k)))),
        other => Err(format!("unknown test command `{other}` (expected roundtrip, parse-error, verify or analyze)")),
    }
}

/// Runs `f` on each kernel; with more than one kernel, lines are prefixed
/// with the kernel's name so the output says which kernel each is about.
fn per_kernel(m: &Module, f: impl Fn(&weft_kir::KernelDef) -> Vec<String>) -> Vec<String> {
    let several = m.kernels.len() > 1;
    m.kernels
        .values()
        .flat_map(|k| {
            let out = f(k);
            out.into_iter().map(move |l| if several { format!("@{}: {l}", k.name) } else { l }).collect::<Vec<_>>()
        })
        .collect()
}

fn lines(s: &str) -> Vec<String> {
    s.lines().map(str::to_string).collect()
}

/// `text` with its check lines replaced by `actual`, appended after a blank line.
fn blessed(text: &str, actual: &[String]) -> String {
    let mut body: Vec<&str> = text.lines().filter(|l| !l.starts_with(CHECK)).collect();
    while body.last().is_some_and(|l| l.trim().is_empty()) {
        body.pop();
    }
    let mut out = body.join("\n");
    out.push('\n');
    if !actual.is_empty() {
        out.push('\n');
    }
    for line in actual {
        if line.is_empty() {
            out.push_str(CHECK);
        } else {
            let _ = write!(out, "{CHECK} {line}");
        }
        out.push('\n');
    }
    out
}

/// A line diff (longest common subsequence): unchanged lines with two
/// spaces, removed with `-`, added with `+`.
fn diff(expected: &[String], actual: &[String]) -> String {
    let (n, m) = (expected.len(), actual.len());
    // lcs[i][j]: length of the LCS of expected[i..] and actual[j..].
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if expected[i] == actual[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let mut out = String::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && expected[i] == actual[j] {
            let _ = writeln!(out, "  {}", expected[i]);
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            let _ = writeln!(out, "- {}", expected[i]);
            i += 1;
        } else {
            let _ = writeln!(out, "+ {}", actual[j]);
            j += 1;
        }
    }
    out
}

#[test]
fn diff_marks_changed_lines() {
    let a = lines("a\nb\nc");
    let b = lines("a\nx\nc\nd");
    assert_eq!(diff(&a, &b), "  a\n- b\n+ x\n  c\n+ d\n");
}

#[test]
fn bless_replaces_check_lines_at_the_end() {
    let text = "; test: roundtrip\nkernel\n; check: old\n\n";
    let out = blessed(text, &["new".to_string(), String::new()]);
    assert_eq!(out, "; test: roundtrip\nkernel\n\n; check: new\n; check:\n");
}
