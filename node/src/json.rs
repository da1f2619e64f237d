//! Strict JSON parsing for everything that arrives from outside.
//!
//! Signed content must have exactly one meaning: an object with a repeated key is
//! read differently by different parsers (first wins, last wins), and an integer
//! beyond ±2^53 has no exact RFC 8785 (IEEE double) form. Both are refused here, before
//! anything is signed, verified or stored. Nesting depth is bounded by serde_json's
//! recursion limit (128), so hostile nesting cannot overflow the stack.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::map::Entry;
use serde_json::{Map, Number, Value};
use std::fmt;

/// Largest integer magnitude with an exact IEEE-754 double form.
pub const MAX_SAFE_INTEGER: u64 = 1 << 53;

/// Parses JSON, refusing duplicate object keys and unsafe integers.
pub fn from_slice_strict(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = StrictValue::deserialize(&mut de)?;
    de.end()?;
    Ok(v.0)
}

/// Parses JSON text strictly (see [`from_slice_strict`]).
pub fn from_str_strict(s: &str) -> Result<Value, serde_json::Error> {
    from_slice_strict(s.as_bytes())
}

struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        if v.unsigned_abs() > MAX_SAFE_INTEGER {
            return Err(E::custom(format!(
                "integer {v} is beyond ±2^53 and has no exact canonical form"
            )));
        }
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        if v > MAX_SAFE_INTEGER {
            return Err(E::custom(format!(
                "integer {v} is beyond 2^53 and has no exact canonical form"
            )));
        }
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number is not finite"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(StrictValue(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            // One map lookup per key (this runs for every key of every ingested
            // object), and the error points at the repeated key, not past its value.
            match out.entry(key) {
                Entry::Vacant(slot) => {
                    let StrictValue(v) = map.next_value()?;
                    slot.insert(v);
                }
                Entry::Occupied(slot) => {
                    return Err(de::Error::custom(format!(
                        "duplicate object key {:?}",
                        slot.key()
                    )));
                }
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_json() {
        let v = from_str_strict(
            r#"{"a": [1, 2.5, -3, true, null, "x"], "b": {"c": 9007199254740992}}"#,
        )
        .unwrap();
        assert_eq!(v["b"]["c"], 9007199254740992u64);
        assert_eq!(v["a"][1], 2.5);
    }

    #[test]
    fn refuses_duplicate_keys_at_any_depth() {
        let e = from_str_strict(r#"{"a": 1, "a": 2}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("duplicate object key \"a\""), "{e}");
        assert!(from_str_strict(r#"[{"x": {"y": 1, "y": 1}}]"#).is_err());
    }

    #[test]
    fn refuses_unsafe_integers_and_trailing_garbage() {
        assert!(from_str_strict("9007199254740993").is_err());
        assert!(from_str_strict("-9007199254740993").is_err());
        assert!(
            from_str_strict("18446744073709551616").is_ok(),
            "parsed as a float"
        );
        assert!(from_str_strict("1e400").is_err());
        assert!(from_str_strict("{} x").is_err());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = "[".repeat(100_000);
        assert!(from_str_strict(&deep).is_err());
        let ok = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(from_str_strict(&ok).is_ok());
    }

    #[test]
    fn refuses_lone_surrogates_and_invalid_utf8() {
        assert!(from_str_strict(r#""\ud800""#).is_err());
        assert!(from_slice_strict(b"\"\xff\"").is_err());
    }
}
