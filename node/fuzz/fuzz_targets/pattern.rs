//! Arbitrary text through the STIX pattern parser: it never panics, and a pattern it
//! accepts prints (`Display`) as text that parses back to the same tree, which is what
//! lets the node store and show patterns in canonical form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use synergia::stix::pattern;

fuzz_target!(|text: &str| {
    let Ok(parsed) = pattern::parse(text) else {
        return;
    };
    let printed = parsed.to_string();
    match pattern::parse(&printed) {
        Ok(reparsed) => assert_eq!(reparsed, parsed, "{text:?} printed as {printed:?}"),
        Err(e) => panic!("{text:?} printed as {printed:?}, which does not parse: {e}"),
    }
});
