//! STIX 2.1 validation that reports every violation, with where and why.
//!
//! The validator works on `serde_json::Value` rather than the typed models so it can
//! judge documents that do not even have the right shape, and point at the exact
//! place of each problem with an RFC 6901 JSON pointer. It never stops at the first
//! problem: a publisher fixing a feed wants the whole list at once.
//!
//! Errors are violations of the specification's MUST rules; warnings are SHOULD rules
//! and values outside open vocabularies (as the OASIS reference validator reports
//! them). A document is valid when it has no errors. `docs/stix-validation.md` lists
//! every check and code.
//!
//! It runs on every ingested object, so the hot path avoids allocation: JSON pointers
//! are built from a stack-allocated path only when a finding is recorded.

mod checks;
pub(crate) use checks::{split_identifier, type_name_error};
mod rules;
pub mod vocab;

use crate::stix::observable::ObservableKey;
use crate::stix::pattern::Pattern;
use crate::stix::tlp::OwnLevel;
use serde::Serialize;
use serde_json::Value;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A MUST of the specification is violated: the object is invalid.
    Error,
    /// A SHOULD is not met or a value is outside an open vocabulary.
    Warning,
}

/// One problem found in a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Error or warning.
    pub severity: Severity,
    /// Stable machine-readable code (`missing-property`, `invalid-timestamp`, …).
    pub code: &'static str,
    /// The `id` of the object the finding is about, when it has one.
    pub object_id: Option<String>,
    /// RFC 6901 pointer into the validated document.
    pub pointer: String,
    /// Human-readable explanation.
    pub message: String,
}

/// Every finding for a document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Findings in document order.
    pub findings: Vec<Finding>,
}

impl Report {
    /// True when there is no error (warnings do not make a document invalid).
    pub fn is_valid(&self) -> bool {
        !self.findings.iter().any(|f| f.severity == Severity::Error)
    }

    /// The errors.
    pub fn errors(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
    }

    /// The warnings.
    pub fn warnings(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Warning)
    }
}

/// Validates a `bundle` document and every object in it.
pub fn validate_bundle(doc: &Value) -> Report {
    validate_bundle_noting(doc).0
}

/// [`validate_bundle`], also returning for each object the observable keys of its
/// STIX pattern when it has one that parsed (what
/// [`keys_from_object`](crate::stix::observable::keys_from_object) gives for it) and
/// what its own markings say of its TLP level
/// ([`own_level`](crate::stix::tlp::own_level)): validation parses
/// every pattern and has each object in cache, and a caller that stores the objects
/// passes these on rather than walk the objects again.
pub fn validate_bundle_noting(
    doc: &Value,
) -> (Report, Vec<Option<Vec<ObservableKey>>>, Vec<OwnLevel>) {
    let mut report = Report::default();
    let mut levels = Vec::new();
    let keys = rules::bundle(doc, &mut report, &mut levels);
    (report, keys, levels)
}

/// Validates one STIX object located at `pointer` (`""` for a stand-alone object,
/// `/objects/3` inside a bundle), appending findings to `report`.
pub fn validate_object(obj: &Value, pointer: &str, report: &mut Report) {
    rules::object(obj, pointer, report);
}

/// [`validate_object`], also returning the observable keys of the object's STIX
/// pattern when it has one that parsed (see [`validate_bundle_noting_keys`]).
pub fn validate_object_noting_keys(
    obj: &Value,
    pointer: &str,
    report: &mut Report,
) -> Option<Vec<ObservableKey>> {
    rules::object(obj, pointer, report)
}

/// Checks a STIX pattern with the pattern grammar: the parsed pattern, or
/// `(position, message)` when it does not parse (position is a 0-based character
/// offset).
///
/// Beyond the grammar, the object types and first property names the pattern uses
/// must be well-formed STIX names (a known SCO type, or a custom type name), as the
/// specification requires and the OASIS validator checks.
fn check_stix_pattern(pattern: &str) -> Result<Pattern, (usize, String)> {
    let parsed = crate::stix::pattern::parse(pattern).map_err(|e| (e.position, e.message))?;
    for path in parsed.object_paths() {
        let ty = path.object_type.as_str();
        if !rules::SCO_TYPES.contains(&ty) && !is_type_name(ty) {
            return Err((0, format!("'{ty}' is not a valid observable type name")));
        }
        if let Some(prop) = path.property_names().next() {
            let well_formed = (3..=250).contains(&prop.len())
                && prop
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !well_formed {
                return Err((
                    0,
                    format!("'{prop}' is not a valid observable property name"),
                ));
            }
        }
    }
    Ok(parsed)
}

/// STIX type name syntax: 3–250 characters of `a-z`, `0-9` and single hyphens.
fn is_type_name(t: &str) -> bool {
    let core = t.strip_prefix('-').unwrap_or(t);
    let core = core.strip_suffix('-').unwrap_or(core);
    (3..=250).contains(&t.len())
        && !core.is_empty()
        && core.split('-').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

#[cfg(test)]
mod tests;
