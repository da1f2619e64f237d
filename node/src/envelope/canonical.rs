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
        let digest = Sha256::digest(bytes);
        let mut s = String::with_capacity(7 + 64);
        s.push_str("sha256:");
        for b in digest {
            s.push_str(&format!("{b:02x}"));
        }
        EnvelopeId(s)
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

    /// Rebuilds an id from its digest bytes.
    pub fn from_digest_bytes(d: &[u8; 32]) -> Self {
        let mut s = String::with_capacity(71);
        s.push_str("sha256:");
        for b in d {
            s.push_str(&format!("{b:02x}"));
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

    #[test]
    fn rfc8785_section_3_2_2_example() {
        // The example input of section 3.2.2 and its canonical output (section 3.2.3).
        let input = r#"{
            "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
            "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
            "literals": [null, true, false]
        }"#;
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
}
