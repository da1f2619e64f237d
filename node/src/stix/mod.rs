//! STIX 2.1: object models, validation, patterning, observables and TLP markings.

pub mod observable;
pub mod pattern;
pub mod timestamp;
pub mod tlp;

use serde_json::Value;

/// Checks that a bundle is valid STIX 2.1, summarising the errors in one line.
///
/// Used wherever content crosses a trust boundary (publish, envelope verification).
pub fn check_bundle(bundle: &Value) -> Result<(), String> {
    // INTEGRATION: replaced by the full validator when it lands.
    let objects = bundle
        .get("objects")
        .and_then(Value::as_array)
        .ok_or("bundle has no objects array")?;
    for (i, o) in objects.iter().enumerate() {
        let ty = o.get("type").and_then(Value::as_str);
        let id = o.get("id").and_then(Value::as_str);
        match (ty, id) {
            (Some(t), Some(id)) if id.starts_with(t) && id[t.len()..].starts_with("--") => {}
            _ => return Err(format!("/objects/{i}: missing or inconsistent type and id")),
        }
    }
    Ok(())
}
