//! Arbitrary bytes through what a node does with a received bundle: strict JSON
//! parsing, validation, and the typed model.
//!
//! Checks that nothing panics, and that the model never changes what a producer signed:
//! a valid bundle that the model reads serialises back to the same RFC 8785 canonical
//! form, and whatever the model reads it reads again identically from its own output.
#![no_main]

use libfuzzer_sys::fuzz_target;
use synergia::stix::model::Bundle;
use synergia::stix::validate::validate_bundle;

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = synergia::json::from_slice_strict(data) else {
        return;
    };
    let report = validate_bundle(&doc);
    for f in &report.findings {
        assert!(f.pointer.is_empty() || f.pointer.starts_with('/'), "{f:?}");
    }
    let Ok(bundle) = serde_json::from_value::<Bundle>(doc.clone()) else {
        return;
    };
    let again = serde_json::to_value(&bundle).expect("a model always serialises");
    let reread: Bundle = serde_json::from_value(again).expect("the model reads its own output");
    assert_eq!(reread, bundle);
    if report.is_valid()
        && let Ok(raw) = serde_json_canonicalizer::to_vec(&doc)
    {
        let typed = serde_json_canonicalizer::to_vec(&bundle).expect("canonical form of the model");
        assert_eq!(
            String::from_utf8_lossy(&raw),
            String::from_utf8_lossy(&typed),
            "the model changed a valid bundle's canonical form"
        );
    }
});
