//! STIX 2.1: object models, validation, patterning, observables and TLP markings.

pub mod model;
pub mod observable;
pub mod pattern;
pub mod timestamp;
pub mod tlp;
pub mod validate;

use serde_json::Value;

/// Checks that a bundle is valid STIX 2.1, summarising the errors in one line.
///
/// Used wherever content crosses a trust boundary (publish, envelope verification):
/// warnings never refuse content, errors do.
pub fn check_bundle(bundle: &Value) -> Result<(), String> {
    let report = validate::validate_bundle(bundle);
    if report.is_valid() {
        return Ok(());
    }
    let errors: Vec<_> = report.errors().collect();
    let mut msg = String::new();
    for f in errors.iter().take(3) {
        if !msg.is_empty() {
            msg.push_str("; ");
        }
        msg.push_str(&format!("{} [{}] {}", f.pointer, f.code, f.message));
    }
    if errors.len() > 3 {
        msg.push_str(&format!("; and {} more", errors.len() - 3));
    }
    Err(msg)
}
