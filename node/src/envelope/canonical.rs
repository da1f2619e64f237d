//! RFC 8785 (JSON Canonicalization Scheme) and the envelope id.
//!
//! Signatures cover the canonical form of the JSON value as received, never a
//! re-serialisation of our typed models: two nodes that agree on the value agree on
//! the bytes, whatever whitespace or key order a relay used.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::fmt;

/// A value that has no RFC 8785 form (a number JSON numbers as IEEE doubles cannot
/// represent exactly, for example).
#[derive(Debug, thiserror::Error)]
#[error("cannot canonicalise JSON: {0}")]
pub struct CanonicalError(String);

/// RFC 8785 canonical bytes of `value`.
pub fn canonical_bytes<T: Serialize>(value: &T) -> Result<Vec<u8>, CanonicalError> {
    serde_json_canonicalizer::to_vec(value).map_err(|e| CanonicalError(e.to_string()))
}

/// RFC 8785 canonical bytes of a JSON value, written directly from the tree.
///
/// Byte-for-byte the output of [`canonical_bytes`] (tests compare them on generated
/// values), but several times faster: the general serializer re-parses every object
/// key to find its UTF-16 sort order, which made canonicalisation the largest cost of
/// receiving a large envelope. Numbers other than integers within ±2^53 (whose
/// ECMAScript form is their decimal digits) go through the general serializer, so
/// the number formatting rules have one implementation.
pub fn canonical_value(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(4096);
    write_value(&mut out, value)?;
    Ok(out)
}

/// RFC 8785 canonical bytes of a JSON object (see [`canonical_value`]).
pub fn canonical_object(map: &Map<String, Value>) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(4096);
    write_object(&mut out, map, None)?;
    Ok(out)
}

/// RFC 8785 canonical bytes of a JSON object without its member `skip`: the signed
/// form of an envelope, computed without copying the (possibly large) bundle.
pub fn canonical_object_without(
    map: &Map<String, Value>,
    skip: &str,
) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(4096);
    write_object(&mut out, map, Some(skip))?;
    Ok(out)
}

fn write_value(out: &mut Vec<u8>, value: &Value) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(out, n)?,
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item)?;
            }
            out.push(b']');
        }
        Value::Object(map) => write_object(out, map, None)?,
    }
    Ok(())
}

fn write_object(
    out: &mut Vec<u8>,
    map: &Map<String, Value>,
    skip: Option<&str>,
) -> Result<(), CanonicalError> {
    write_members(out, map, skip, |out, k, v| {
        write_key(out, k);
        write_value(out, v)
    })
}

/// Writes `{…}` with the members of `map` (without `skip`) in RFC 8785 order, each
/// by `member` (which writes the key and the value, so callers can note positions as
/// they go).
///
/// RFC 8785 orders members by UTF-16 code units; the map's own order (UTF-8 bytes)
/// agrees except when a key holds a character from U+E000 on (UTF-8 lead byte 0xEE
/// or above). Such keys are rare, so the map's order is used as it is unless one is
/// present, and only then are the members sorted.
fn write_members<'m>(
    out: &mut Vec<u8>,
    map: &'m Map<String, Value>,
    skip: Option<&str>,
    mut member: impl FnMut(&mut Vec<u8>, &'m str, &'m Value) -> Result<(), CanonicalError>,
) -> Result<(), CanonicalError> {
    let needs_sort = map
        .keys()
        .any(|k| !k.is_ascii() && k.bytes().any(|b| b >= 0xEE));
    out.push(b'{');
    let mut first = true;
    let mut emit = |out: &mut Vec<u8>, k: &'m String, v: &'m Value| {
        if Some(k.as_str()) == skip {
            return Ok(());
        }
        if !first {
            out.push(b',');
        }
        first = false;
        member(out, k, v)
    };
    if needs_sort {
        let mut entries: Vec<(&String, &Value)> = map.iter().collect();
        entries.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
        for (k, v) in entries {
            emit(out, k, v)?;
        }
    } else {
        // The common case: the map's own order, no vector, no sort.
        for (k, v) in map {
            emit(out, k, v)?;
        }
    }
    out.push(b'}');
    Ok(())
}

/// `"key":`
fn write_key(out: &mut Vec<u8>, k: &str) {
    write_string(out, k);
    out.push(b':');
}

/// An envelope's signed form with the positions [`crate::store`] needs, found while
/// writing it rather than by scanning the bytes again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignedForm {
    /// RFC 8785 bytes of the envelope without its `signature` member.
    pub bytes: Vec<u8>,
    /// Where the `signature` member goes in `bytes`: the first byte of the first
    /// member that sorts after it, or the closing brace.
    pub signature_at: usize,
    /// `(offset, length)` in `bytes` of every element of `bundle.objects`.
    pub objects: Vec<(usize, usize)>,
}

/// The signed form of an envelope document (see [`SignedForm`]).
pub fn signed_form(doc: &Map<String, Value>) -> Result<SignedForm, CanonicalError> {
    const SKIP: &str = "signature";
    let mut out = Vec::with_capacity(4096);
    let mut signature_at = None;
    let mut objects = Vec::new();
    write_members(&mut out, doc, Some(SKIP), |out, k, v| {
        if signature_at.is_none() && k.encode_utf16().cmp(SKIP.encode_utf16()).is_gt() {
            signature_at = Some(out.len());
        }
        write_key(out, k);
        match (k, v) {
            ("bundle", Value::Object(bundle)) => write_bundle(out, bundle, &mut objects),
            _ => write_value(out, v),
        }
    })?;
    // Before the closing brace when no member sorts after `signature`.
    let signature_at = signature_at.unwrap_or(out.len() - 1);
    Ok(SignedForm {
        bytes: out,
        signature_at,
        objects,
    })
}

/// A bundle, noting the byte range of each element of its `objects` array.
fn write_bundle(
    out: &mut Vec<u8>,
    bundle: &Map<String, Value>,
    ranges: &mut Vec<(usize, usize)>,
) -> Result<(), CanonicalError> {
    write_members(out, bundle, None, |out, k, v| {
        write_key(out, k);
        match (k, v) {
            ("objects", Value::Array(items)) => {
                ranges.reserve(items.len());
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    let start = out.len();
                    write_value(out, item)?;
                    ranges.push((start, out.len() - start));
                    if i == 0 {
                        // Objects of one feed are of a size: room for the rest at the
                        // first one's, rather than the buffer doubling (and being
                        // copied) a dozen times on the way to a large envelope.
                        out.reserve((out.len() - start + 1) * (items.len() - 1) + 64);
                    }
                }
                out.push(b']');
                Ok(())
            }
            _ => write_value(out, v),
        }
    })
}

fn write_number(out: &mut Vec<u8>, n: &serde_json::Number) -> Result<(), CanonicalError> {
    const SAFE: u64 = 1 << 53;
    if let Some(u) = n.as_u64()
        && u <= SAFE
    {
        write_decimal(out, u);
    } else if let Some(i) = n.as_i64()
        && i.unsigned_abs() <= SAFE
    {
        out.push(b'-');
        write_decimal(out, i.unsigned_abs());
    } else {
        out.extend_from_slice(&canonical_bytes(n)?);
    }
    Ok(())
}

/// The decimal digits of `n`, without allocating.
fn write_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// A JSON string as ECMAScript's `JSON.stringify` writes it: only `"`, `\` and
/// control characters are escaped, with the short escapes where they exist.
///
/// Strings are checked eight bytes at a time: nearly all of them need no escape and
/// are copied whole.
fn write_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(s.len() + 2);
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if i + 8 <= bytes.len() {
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[i..i + 8]);
            if !crate::json::word_needs_escape(u64::from_le_bytes(word)) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => b"",
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[start..i]);
        if esc.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(esc);
        }
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Serialises a JSON object without one of its members, so the signed form can be
/// computed without copying the (possibly large) bundle.
pub struct Without<'a> {
    /// The object.
    pub map: &'a Map<String, Value>,
    /// The member left out.
    pub skip: &'a str,
}

impl Serialize for Without<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let len = self.map.len() - usize::from(self.map.contains_key(self.skip));
        let mut m = s.serialize_map(Some(len))?;
        for (k, v) in self.map {
            if k != self.skip {
                m.serialize_entry(k, v)?;
            }
        }
        m.end()
    }
}

/// `sha256:<hex>` of an envelope's signed canonical form: the envelope's identity
/// everywhere (dedup, cursors, provenance).
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct EnvelopeId(String);

impl EnvelopeId {
    /// The id of the given signed canonical bytes.
    pub fn of_signed_bytes(bytes: &[u8]) -> Self {
        EnvelopeId::from_digest_bytes(&Sha256::digest(bytes).into())
    }

    /// Parses `sha256:<64 lower-case hex>`.
    pub fn parse(s: &str) -> Option<Self> {
        let hex = s.strip_prefix("sha256:")?;
        (hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| EnvelopeId(s.to_string()))
    }

    /// The 32 digest bytes (compact form for indexes).
    pub fn digest_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        let hex = &self.0.as_bytes()[7..];
        for (i, o) in out.iter_mut().enumerate() {
            let hi = (hex[2 * i] as char).to_digit(16).unwrap_or(0);
            let lo = (hex[2 * i + 1] as char).to_digit(16).unwrap_or(0);
            *o = (hi * 16 + lo) as u8;
        }
        out
    }

    /// Rebuilds an id from its digest bytes. Feeds and pushes write one per envelope
    /// sent, so the hex is written directly rather than formatted byte by byte.
    pub fn from_digest_bytes(d: &[u8; 32]) -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(71);
        s.push_str("sha256:");
        for &b in d {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 15)]));
        }
        EnvelopeId(s)
    }

    /// The text form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EnvelopeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    //! RFC 8785 conformance: the Appendix B number vectors and the section 3.2.2 / 3.2.3
    //! examples.
    use super::*;

    /// Appendix B: IEEE-754 bit patterns and their required ECMAScript rendering.
    const NUMBER_VECTORS: &[(u64, &str)] = &[
        (0x0000000000000000, "0"),
        (0x8000000000000000, "0"),
        (0x0000000000000001, "5e-324"),
        (0x8000000000000001, "-5e-324"),
        (0x7fefffffffffffff, "1.7976931348623157e+308"),
        (0xffefffffffffffff, "-1.7976931348623157e+308"),
        (0x4340000000000000, "9007199254740992"),
        (0xc340000000000000, "-9007199254740992"),
        (0x4430000000000000, "295147905179352830000"),
        (0x44b52d02c7e14af5, "9.999999999999997e+22"),
        (0x44b52d02c7e14af6, "1e+23"),
        (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
        (0x444b1ae4d6e2ef4e, "999999999999999700000"),
        (0x444b1ae4d6e2ef4f, "999999999999999900000"),
        (0x444b1ae4d6e2ef50, "1e+21"),
        (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
        (0x3eb0c6f7a0b5ed8d, "0.000001"),
        (0x41b3de4355555553, "333333333.3333332"),
        (0x41b3de4355555554, "333333333.33333325"),
        (0x41b3de4355555555, "333333333.3333333"),
        (0x41b3de4355555556, "333333333.3333334"),
        (0x41b3de4355555557, "333333333.33333343"),
        (0xbecbf647612f3696, "-0.0000033333333333333333"),
        (0x43143ff3c1cb0959, "1424953923781206.2"),
    ];

    #[test]
    fn rfc8785_appendix_b_number_vectors() {
        for &(bits, expected) in NUMBER_VECTORS {
            let f = f64::from_bits(bits);
            let got = canonical_bytes(&serde_json::json!(f)).unwrap();
            assert_eq!(
                String::from_utf8(got).unwrap(),
                expected,
                "bits {bits:#018x}"
            );
        }
    }

    #[test]
    fn rfc8785_rejects_nan_and_infinity() {
        // serde_json cannot even hold them in a Value; the serializer path must refuse.
        assert!(canonical_bytes(&f64::NAN).is_err());
        assert!(canonical_bytes(&f64::INFINITY).is_err());
    }

    /// The example input of RFC 8785 section 3.2.2.
    const RFC_3_2_2_INPUT: &str = r#"{
            "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
            "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
            "literals": [null, true, false]
        }"#;

    #[test]
    fn rfc8785_section_3_2_2_example() {
        // The example input of section 3.2.2 and its canonical output (section 3.2.3).
        let input = RFC_3_2_2_INPUT;
        let v: Value = serde_json::from_str(input).unwrap();
        let out = String::from_utf8(canonical_bytes(&v).unwrap()).unwrap();
        assert_eq!(
            out,
            "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],\"string\":\"€$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}"
        );
    }

    #[test]
    fn rfc8785_section_3_2_3_sorting_by_utf16_code_units() {
        let input = r#"{
            "\u20ac": "Euro Sign",
            "\r": "Carriage Return",
            "\ufb33": "Hebrew Letter Dalet With Dagesh",
            "1": "One",
            "\ud83d\ude00": "Emoji: Grinning Face",
            "\u0080": "Control",
            "\u00f6": "Latin Small Letter O With Diaeresis"
        }"#;
        let v: Value = serde_json::from_str(input).unwrap();
        let out = String::from_utf8(canonical_bytes(&v).unwrap()).unwrap();
        let order: Vec<&str> = [
            "Carriage Return",
            "One",
            "Control",
            "Latin Small Letter O With Diaeresis",
            "Euro Sign",
            "Emoji: Grinning Face",
            "Hebrew Letter Dalet With Dagesh",
        ]
        .to_vec();
        let mut last = 0;
        for name in order {
            let pos = out.find(name).unwrap();
            assert!(pos > last, "{name} out of order in {out}");
            last = pos;
        }
    }

    #[test]
    fn without_skips_exactly_one_member() {
        let v = serde_json::json!({"b": 1, "signature": "x", "a": [1, 2]});
        let m = v.as_object().unwrap();
        let out = canonical_bytes(&Without {
            map: m,
            skip: "signature",
        })
        .unwrap();
        assert_eq!(out, br#"{"a":[1,2],"b":1}"#);
    }

    #[test]
    fn envelope_id_round_trips_through_digest_bytes() {
        let id = EnvelopeId::of_signed_bytes(b"abc");
        assert_eq!(
            id.as_str(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(EnvelopeId::from_digest_bytes(&id.digest_bytes()), id);
        assert_eq!(EnvelopeId::parse(id.as_str()), Some(id));
        assert_eq!(EnvelopeId::parse("sha256:ABC"), None);
    }

    /// The direct writer and the general serializer agree on arbitrary values,
    /// including keys that sort differently in UTF-8 and UTF-16 and every escape.
    #[test]
    fn direct_writer_matches_general_serializer() {
        use proptest::prelude::*;
        let key = prop_oneof![
            "[a-z_]{0,6}",
            Just("\u{e000}".to_string()),
            Just("\u{ffff}".to_string()),
            Just("\u{1f600}".to_string()),
            Just("\u{10000}a".to_string()),
            "\\PC{0,3}",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(|i| Value::from(i >> 8)),
            any::<u64>().prop_map(|u| Value::from(u >> 10)),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            "(\\PC|[\u{0}-\u{1f}\"\\\\\u{7f}\u{2028}])*".prop_map(Value::from),
        ];
        let value = leaf.prop_recursive(4, 64, 8, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(key.clone(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        });
        proptest!(ProptestConfig::with_cases(2000), |(v in value)| {
            prop_assert_eq!(canonical_value(&v).unwrap(), canonical_bytes(&v).unwrap());
            if let Value::Object(m) = &v {
                let skip = m.keys().next().cloned().unwrap_or_default();
                prop_assert_eq!(
                    canonical_object_without(m, &skip).unwrap(),
                    canonical_bytes(&Without { map: m, skip: &skip }).unwrap()
                );
            }
        });
    }

    /// The signed form is the document without `signature`, its object ranges are
    /// the objects' own canonical forms, and splicing the signature in at
    /// `signature_at` gives the whole document's canonical form, whatever other members
    /// sort around it.
    #[test]
    fn signed_form_positions_are_exact() {
        use proptest::prelude::*;
        let key = prop_oneof![
            "[a-z_]{1,10}",
            Just("signaturf".to_string()),
            Just("signatur".to_string()),
            Just("\u{e000}".to_string()),
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<i32>().prop_map(Value::from),
            "(\\PC|[\u{0}-\u{1f}\"\\\\])*".prop_map(Value::from),
        ];
        let object = prop::collection::btree_map("[a-z]{1,4}", leaf.clone(), 0..5)
            .prop_map(|m| Value::Object(m.into_iter().collect()));
        let doc = (
            prop::collection::btree_map(key, leaf, 0..6),
            prop::collection::vec(object, 0..5),
            any::<bool>(),
        );
        proptest!(ProptestConfig::with_cases(500), |((members, objects, with_bundle) in doc)| {
            let mut m: Map<String, Value> = members.into_iter().collect();
            if with_bundle {
                m.insert(
                    "bundle".into(),
                    serde_json::json!({"type": "bundle", "objects": objects.clone()}),
                );
            }
            let form = signed_form(&m).unwrap();
            prop_assert_eq!(&form.bytes, &canonical_object_without(&m, "signature").unwrap());
            let expected_ranges = if with_bundle { objects.len() } else { 0 };
            prop_assert_eq!(form.objects.len(), expected_ranges);
            for (&(off, len), o) in form.objects.iter().zip(&objects) {
                let own = canonical_value(o).unwrap();
                prop_assert_eq!(&form.bytes[off..off + len], own.as_slice());
            }
            let mut with_sig = m.clone();
            with_sig.insert("signature".into(), Value::from("SIG"));
            let at = form.signature_at;
            let member = br#""signature":"SIG""#;
            let mut spliced = form.bytes[..at].to_vec();
            if at + 1 == form.bytes.len() {
                if form.bytes.len() > 2 {
                    spliced.push(b',');
                }
                spliced.extend_from_slice(member);
            } else {
                spliced.extend_from_slice(member);
                spliced.push(b',');
            }
            spliced.extend_from_slice(&form.bytes[at..]);
            prop_assert_eq!(spliced, canonical_object(&with_sig).unwrap());
        });
    }

    #[test]
    fn direct_writer_passes_the_rfc_examples() {
        let input = RFC_3_2_2_INPUT;
        let v: Value = serde_json::from_str(input).unwrap();
        assert_eq!(
            String::from_utf8(canonical_value(&v).unwrap()).unwrap(),
            "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],\"string\":\"€$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}"
        );
        for &(bits, expected) in NUMBER_VECTORS {
            let got = canonical_value(&serde_json::json!(f64::from_bits(bits))).unwrap();
            assert_eq!(
                String::from_utf8(got).unwrap(),
                expected,
                "bits {bits:#018x}"
            );
        }
        // Integers beyond 2^53 take the double's form, as the general serializer does.
        let big = serde_json::json!([9007199254740993u64, -9007199254740993i64]);
        assert_eq!(
            canonical_value(&big).unwrap(),
            canonical_bytes(&big).unwrap()
        );
    }
}
