//! Arbitrary bytes through what a node does with a received bundle: strict JSON
//! parsing and validation.
//!
//! Checks that nothing panics and that every finding points into the document with an
//! RFC 6901 pointer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use synergia::stix::validate::validate_bundle;

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = synergia::json::from_slice_strict(data) else {
        return;
    };
    let report = validate_bundle(&doc);
    for f in &report.findings {
        assert!(f.pointer.is_empty() || f.pointer.starts_with('/'), "{f:?}");
    }
});
