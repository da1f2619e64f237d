//! `synergia validate`.
//!
//! Publishers run this before pushing a feed, so it reports everything at once: every
//! error and warning of every file, each with the object id and a JSON pointer, rather
//! than stopping at the first problem. A file that is not even JSON is an invalid file
//! (its finding gives the line and column), not a failure of the command: only a file
//! that cannot be read at all makes the command fail, since then no verdict exists.

use super::{EXIT_ERROR, EXIT_INVALID};
use anyhow::Context as _;
use serde::Serialize;
use std::io::{Read as _, Write};
use std::path::{Path, PathBuf};
use synergia::stix::validate::{Finding, Report, Severity, validate_bundle};

/// Check STIX 2.1 bundles offline and report every error and warning.
///
/// Exit status: 0 every file is valid (warnings allowed), 1 some file is invalid,
/// 2 some file could not be read.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Bundle files (JSON), or - for standard input.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Print one JSON document: an array of {"file", "valid", "findings"}, in the
    /// order of the arguments (an unreadable file has "valid": null and an "error").
    #[arg(long, conflicts_with = "quiet")]
    json: bool,
    /// Print only one verdict line per file.
    #[arg(long, short)]
    quiet: bool,
}

/// The verdict on one file.
enum Outcome {
    /// The file was read; the report says whether it is valid.
    Checked(Report),
    /// The file could not be read; the message says why.
    Unreadable(String),
}

/// One element of the `--json` output.
#[derive(Serialize)]
struct JsonResult<'a> {
    file: String,
    valid: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    findings: &'a [Finding],
}

pub fn run(a: Args) -> anyhow::Result<u8> {
    // Every error returned by `report` is a failed write to standard output (files
    // that cannot be read are reported, not returned).
    report(a).map_err(|e| match e.downcast::<std::io::Error>() {
        Ok(io) => super::out::closed_quietly(io).into(),
        Err(e) => e,
    })
}

fn report(a: Args) -> anyhow::Result<u8> {
    let stdout = std::io::stdout();
    // Findings of a large feed run to many thousands of lines: one buffered, locked
    // writer instead of a lock and a write per line.
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut any_invalid = false;
    let mut any_unreadable = false;
    if a.json {
        out.write_all(b"[")?;
    }
    // Each file is validated and printed before the next is read, so memory holds one
    // document at a time however many files are given.
    for (i, path) in a.files.iter().enumerate() {
        let outcome = check_file(path);
        match &outcome {
            Outcome::Checked(r) => any_invalid |= !r.is_valid(),
            Outcome::Unreadable(e) => {
                any_unreadable = true;
                eprintln!("error: {e}");
            }
        }
        if a.json {
            if i > 0 {
                out.write_all(b",")?;
            }
            write_json(&mut out, path, &outcome)?;
        } else {
            write_human(&mut out, path, &outcome, a.quiet)?;
        }
    }
    if a.json {
        out.write_all(b"]\n")?;
    }
    out.flush().context("writing to standard output")?;
    Ok(if any_unreadable {
        EXIT_ERROR
    } else if any_invalid {
        EXIT_INVALID
    } else {
        0
    })
}

/// How a file is named in the output: `-` stays `-`, so a script can match it.
fn display_name(path: &Path) -> String {
    path.display().to_string()
}

fn read_input(path: &Path) -> std::io::Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut b = Vec::new();
        std::io::stdin().lock().read_to_end(&mut b)?;
        Ok(b)
    } else {
        std::fs::read(path)
    }
}

fn check_file(path: &Path) -> Outcome {
    let bytes = match read_input(path) {
        Ok(b) => b,
        Err(e) if path.as_os_str() == "-" => {
            return Outcome::Unreadable(format!("cannot read standard input: {e}"));
        }
        Err(e) => return Outcome::Unreadable(format!("cannot read {}: {e}", path.display())),
    };
    Outcome::Checked(validate_bytes(&bytes))
}

/// Parses strictly (duplicate keys and unsafe integers are errors, as on ingest) and
/// validates; a parse error becomes the file's only finding.
fn validate_bytes(bytes: &[u8]) -> Report {
    match synergia::json::from_slice_strict(bytes) {
        Ok(doc) => validate_bundle(&doc),
        Err(e) => {
            // serde_json appends the position to its message; say it once, first.
            let text = e.to_string();
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            let reason = text.strip_suffix(&suffix).unwrap_or(&text);
            Report {
                findings: vec![Finding {
                    severity: Severity::Error,
                    code: "invalid-json",
                    object_id: None,
                    pointer: String::new(),
                    message: format!(
                        "not valid JSON at line {}, column {}: {reason}",
                        e.line(),
                        e.column()
                    ),
                }],
            }
        }
    }
}

fn write_json(out: &mut impl Write, path: &Path, outcome: &Outcome) -> anyhow::Result<()> {
    let result = match outcome {
        Outcome::Checked(r) => JsonResult {
            file: display_name(path),
            valid: Some(r.is_valid()),
            error: None,
            findings: &r.findings,
        },
        Outcome::Unreadable(e) => JsonResult {
            file: display_name(path),
            valid: None,
            error: Some(e),
            findings: &[],
        },
    };
    serde_json::to_writer(&mut *out, &result).context("writing to standard output")
}

fn write_human(
    out: &mut impl Write,
    path: &Path,
    outcome: &Outcome,
    quiet: bool,
) -> anyhow::Result<()> {
    let name = display_name(path);
    let report = match outcome {
        Outcome::Checked(r) => r,
        Outcome::Unreadable(e) => {
            writeln!(out, "{name}: UNREADABLE ({e})")?;
            return Ok(());
        }
    };
    let errors = report.errors().count();
    let warnings = report.findings.len() - errors;
    let verdict = if errors == 0 { "valid" } else { "INVALID" };
    writeln!(
        out,
        "{name}: {verdict} ({errors} {}, {warnings} {})",
        plural(errors, "error", "errors"),
        plural(warnings, "warning", "warnings")
    )?;
    if quiet {
        return Ok(());
    }
    for f in &report.findings {
        let severity = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let pointer = if f.pointer.is_empty() {
            "(document root)"
        } else {
            f.pointer.as_str()
        };
        match &f.object_id {
            Some(id) => writeln!(
                out,
                "  {severity} [{}] {id} at {pointer}: {}",
                f.code, f.message
            )?,
            None => writeln!(out, "  {severity} [{}] at {pointer}: {}", f.code, f.message)?,
        }
    }
    Ok(())
}

fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_are_invalid_with_line_and_column() {
        let r = validate_bytes(b"{\n  \"type\": \"bundle\",\n  \"type\": \"bundle\"\n}");
        assert!(!r.is_valid());
        let f = &r.findings[0];
        assert_eq!(f.code, "invalid-json");
        assert!(f.message.contains("line 3"), "{}", f.message);
        assert!(f.message.contains("duplicate object key"), "{}", f.message);
    }

    #[test]
    fn human_output_names_pointer_and_object() {
        let r = validate_bytes(
            br#"{"type":"bundle","id":"bundle--44af6c39-c09b-49c5-9de2-394224b04982","objects":[{"type":"indicator","id":"indicator--44af6c39-c09b-49c5-9de2-394224b04982"}]}"#,
        );
        let mut buf = Vec::new();
        write_human(&mut buf, Path::new("x.json"), &Outcome::Checked(r), false).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert!(text.starts_with("x.json: INVALID ("), "{text}");
        assert!(
            text.contains("indicator--44af6c39-c09b-49c5-9de2-394224b04982 at /objects/0"),
            "{text}"
        );
    }
}
