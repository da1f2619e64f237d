//! The JSON readers and writers on the trust boundary, compared with their references
//! on arbitrary bytes:
//!
//! - the direct strict parser behind `json::from_slice_strict` against serde_json's
//!   strict path (`json::from_slice_strict_serde`): the same verdict and the same
//!   value. (The direct parser hands whatever it refuses to serde, so a wrong refusal
//!   costs only time; this finds a wrong acceptance or a wrong value.)
//! - the node's RFC 8785 writer (`envelope::canonical::canonical_value`) against
//!   `serde_json_canonicalizer`: the same bytes for every value both write, and the
//!   same refusals.
//! - the wire scanner (`envelope::wire::signed_form_of_canonical`), which finds an
//!   envelope's signed form in its bytes without parsing them, against the signed form
//!   of the parsed document (`envelope::canonical::signed_form`): equal whenever the
//!   scanner gives one for bytes that parse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use synergia::envelope::{canonical, wire};
use synergia::json;

fuzz_target!(|data: &[u8]| {
    let direct = json::from_slice_strict(data);
    let reference = json::from_slice_strict_serde(data);
    let value = match (direct, reference) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, b, "the two strict paths read different values");
            b
        }
        (Err(_), Err(_)) => return,
        (a, b) => panic!(
            "the strict paths disagree: direct {:?}, serde {:?}",
            a.map(drop),
            b.map(drop)
        ),
    };
    match (
        canonical::canonical_value(&value),
        serde_json_canonicalizer::to_vec(&value),
    ) {
        (Ok(ours), Ok(theirs)) => assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs),
            "the canonical writer differs from the reference"
        ),
        (Err(_), Err(_)) => {}
        (ours, theirs) => panic!(
            "one canonical writer refused: ours {:?}, reference {:?}",
            ours.map(drop),
            theirs.map(drop)
        ),
    }
    if let Some(scanned) = wire::signed_form_of_canonical(data)
        && let Some(doc) = value.as_object()
    {
        let full = canonical::signed_form(doc).expect("a document the scanner read has a signed form");
        assert_eq!(scanned, full, "the wire scanner's signed form differs from the parsed one");
    }
});
