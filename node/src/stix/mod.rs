//! STIX 2.1: validation, patterning, observables, timestamps and TLP markings (on
//! `serde_json::Value`: the node stores and forwards what producers signed, byte for
//! byte, so it never maps objects into types of its own).

pub mod observable;
pub mod pattern;
pub mod split;
pub mod timestamp;
pub mod tlp;
pub mod validate;

use serde_json::Value;

/// Per object of a bundle, in order, the observable keys of its STIX pattern when it
/// has one that parsed: found by validation, kept so that storing does not parse each
/// pattern again.
pub type PatternKeys = Vec<Option<Vec<observable::ObservableKey>>>;

/// Object types this process's validator refuses on top of the STIX rules: none unless
/// a test set some ([`refuse_types`]).
static REFUSED_TYPES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();

/// Makes this process's validator refuse objects of `types`, as an older or stricter
/// validator would refuse what a peer's accepted.
///
/// For fault tests only: `synergia serve` reads it from `SYNERGIA_TEST_REFUSE_TYPES`
/// (comma-separated). The first call wins.
pub fn refuse_types(types: Vec<String>) {
    let _ = REFUSED_TYPES.set(types);
}

/// Why a bundle's content is refused. Keeps every error the validator found; shown
/// as one line (the first three errors and how many more).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContentError {
    /// An object of a type this node refuses outright (a test switch).
    #[error("/objects [refused-type] objects of type {0} are refused by this validator")]
    RefusedType(String),
    /// The validator's errors (warnings never refuse content).
    #[error("{}", summary(.0))]
    Invalid(Vec<validate::Finding>),
}

fn summary(errors: &[validate::Finding]) -> String {
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
    msg
}

/// Checks that a bundle is valid STIX 2.1.
///
/// Used wherever content crosses a trust boundary (publish, envelope verification):
/// warnings never refuse content, errors do.
pub fn check_bundle(bundle: &Value) -> Result<(), ContentError> {
    check_bundle_noting(bundle).map(drop)
}

/// [`check_bundle`], also returning what validation found in each object on the way:
/// the observable keys of its STIX pattern and what its own markings say of its TLP
/// level (see [`validate::validate_bundle_noting`]).
pub fn check_bundle_noting(
    bundle: &Value,
) -> Result<(PatternKeys, Vec<tlp::OwnLevel>), ContentError> {
    if let Some(refused) = REFUSED_TYPES.get()
        && let Some(t) = bundle
            .get("objects")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|o| o.get("type").and_then(Value::as_str))
            .find(|t| refused.iter().any(|r| r == t))
    {
        return Err(ContentError::RefusedType(t.to_string()));
    }
    let (report, keys, levels) = validate::validate_bundle_noting(bundle);
    if report.is_valid() {
        return Ok((keys, levels));
    }
    Err(ContentError::Invalid(report.errors().cloned().collect()))
}
