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

mod parser;

/// Largest integer magnitude with an exact IEEE-754 double form.
pub const MAX_SAFE_INTEGER: u64 = 1 << 53;

/// Parses JSON, refusing duplicate object keys and unsafe integers.
///
/// Text that is UTF-8 is read by the direct parser ([`parser`]); whatever it refuses,
/// and text that is not UTF-8, is read through serde, which says what is wrong.
pub fn from_slice_strict(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    match std::str::from_utf8(bytes) {
        Ok(text) => from_str_strict(text),
        Err(_) => from_slice_strict_serde(bytes),
    }
}

/// Parses JSON text strictly (see [`from_slice_strict`]).
pub fn from_str_strict(text: &str) -> Result<Value, serde_json::Error> {
    parser::parse(text).or_else(|parser::Refused| from_slice_strict_serde(text.as_bytes()))
}

/// The strict parse through serde: the reference the direct parser is tested against,
/// and what finds the message (with line and column) for input that parser refuses.
pub fn from_slice_strict_serde(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = StrictValue::deserialize(&mut de)?;
    de.end()?;
    Ok(v.0)
}

/// Parses a JSON document strictly (see [`from_slice_strict`]), parsing the elements of
/// a top-level `objects` array on every core.
///
/// Bundles and TAXII envelopes are almost entirely their `objects` array, and a publish
/// of ten thousand objects spent a fifth of its time here on one core. The document is
/// first read with that array's elements left as unparsed text (duplicate keys at the
/// top level are still refused), then the elements are parsed in parallel. Whatever
/// does not fit that shape, and every error, goes through [`from_slice_strict`] on the
/// whole document, so the result and the error messages (with their line and column)
/// are that function's. One difference: the nesting limit applies to each element on
/// its own, so an element may nest two levels deeper than in a plain parse of the
/// whole document (the stack is bounded the same way).
pub fn from_slice_strict_parallel(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    fast_objects(bytes).or_else(|_| from_slice_strict(bytes))
}

/// The fast path of [`from_slice_strict_parallel`]; any error sends the caller to the
/// plain parse.
fn fast_objects(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let RawObjects {
        mut members,
        objects: raw,
        ..
    } = RawObjects::split(bytes)?;
    let parsed = crate::parallel::map(&raw, 1000, |_, r| from_str_strict(r.get()));
    let mut objects = Vec::with_capacity(parsed.len());
    for p in parsed {
        objects.push(p?);
    }
    // `TopLevel` kept `objects` out of the map, so this adds the member.
    members.insert("objects".into(), Value::Array(objects));
    Ok(Value::Object(members))
}

/// A document with a top-level `objects` array (a bundle, a TAXII envelope) whose
/// elements are kept as text, to be parsed a window at a time: a large publish is
/// checked and stored window by window, so the parsed form of only one window is in
/// memory at once (`limits.publish_window_objects`).
#[derive(Debug)]
pub struct RawObjects<'a> {
    /// Every top-level member except `objects`, parsed strictly.
    pub members: Map<String, Value>,
    /// The text of each element of `objects`.
    pub objects: Vec<&'a serde_json::value::RawValue>,
    body: &'a [u8],
}

impl<'a> RawObjects<'a> {
    /// Splits `body` into its members and the text of its objects. An error means the
    /// document is not valid JSON of that shape; [`from_slice_strict`] then says what
    /// is wrong in the same words as for any other document.
    pub fn split(body: &'a [u8]) -> Result<Self, serde_json::Error> {
        Self::split_at(body, "objects")
    }

    /// [`RawObjects::split`] for a document whose array of elements to keep as text
    /// is the member `array` (`envelopes` in a push).
    pub fn split_at(body: &'a [u8], array: &'static str) -> Result<Self, serde_json::Error> {
        // Text found to be UTF-8 here as a whole is not checked again element by
        // element, here or when the elements are parsed.
        let (members, objects) = match std::str::from_utf8(body) {
            Ok(text) => top_level(serde_json::Deserializer::from_str(text), array)?,
            Err(_) => top_level(serde_json::Deserializer::from_slice(body), array)?,
        };
        Ok(RawObjects {
            members,
            objects,
            body,
        })
    }

    /// Parses the objects in `range` strictly, on every core. An error names the line
    /// and column in the whole document, as a parse of the whole document would.
    pub fn parse(&self, range: std::ops::Range<usize>) -> Result<Vec<Value>, String> {
        let raw = self.objects.get(range).unwrap_or_default();
        let parsed = crate::parallel::map(raw, 1000, |_, r| from_str_strict(r.get()));
        let mut out = Vec::with_capacity(parsed.len());
        for (r, p) in raw.iter().zip(parsed) {
            out.push(p.map_err(|e| self.locate(r.get(), &e))?);
        }
        Ok(out)
    }

    /// The message of an error in one element, with the position moved from the
    /// element's text to the whole document.
    fn locate(&self, element: &str, e: &serde_json::Error) -> String {
        let message = e.to_string();
        let what = message
            .rsplit_once(" at line ")
            .map_or(message.as_str(), |(what, _)| what);
        if e.line() == 0 {
            return what.to_string();
        }
        // The element is a slice of the body: its offset is where it starts.
        let start = (element.as_ptr() as usize).saturating_sub(self.body.as_ptr() as usize);
        let before = self.body.get(..start).unwrap_or_default();
        let start_line = 1 + before.iter().filter(|&&b| b == b'\n').count();
        let start_column = before.iter().rev().take_while(|&&b| b != b'\n').count();
        let (line, column) = if e.line() == 1 {
            (start_line, start_column + e.column())
        } else {
            (start_line + e.line() - 1, e.column())
        };
        format!("{what} at line {line} column {column}")
    }
}

/// The members of a top-level object, and the text of each element of its member
/// `array`.
type Split<'de> = (Map<String, Value>, Vec<&'de serde_json::value::RawValue>);

/// Reads a whole document as a [`TopLevel`].
fn top_level<'de, R: serde_json::de::Read<'de>>(
    mut de: serde_json::Deserializer<R>,
    array: &'static str,
) -> Result<Split<'de>, serde_json::Error> {
    let split = de.deserialize_map(TopLevel { array })?;
    de.end()?;
    Ok(split)
}

/// A top-level object whose member `array` is kept as the raw text of each element.
struct TopLevel {
    array: &'static str,
}

impl<'de> Visitor<'de> for TopLevel {
    type Value = Split<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a JSON object with an {} array", self.array)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Map::new();
        let mut objects = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == self.array {
                if objects.is_some() {
                    return Err(de::Error::custom(format!(
                        "duplicate object key {:?}",
                        self.array
                    )));
                }
                objects = Some(map.next_value::<Vec<&'de serde_json::value::RawValue>>()?);
                continue;
            }
            insert_member(&mut out, key, &mut map)?;
        }
        let objects =
            objects.ok_or_else(|| de::Error::custom(format!("no {} array", self.array)))?;
        Ok((out, objects))
    }
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
            insert_member(&mut out, key, &mut map)?;
        }
        Ok(Value::Object(out))
    }
}

/// Reads the value of member `key` into `out`, refusing a key already there.
///
/// One map lookup per key (this runs for every key of every ingested object), and the
/// error points at the repeated key, not past its value.
fn insert_member<'de, A: MapAccess<'de>>(
    out: &mut Map<String, Value>,
    key: String,
    map: &mut A,
) -> Result<(), A::Error> {
    match out.entry(key) {
        Entry::Vacant(slot) => {
            let StrictValue(v) = map.next_value()?;
            slot.insert(v);
            Ok(())
        }
        Entry::Occupied(slot) => Err(de::Error::custom(format!(
            "duplicate object key {:?}",
            slot.key()
        ))),
    }
}

/// Whether any of the eight bytes of `w` is a control character, `"` or `\`: the bytes
/// a JSON string cannot hold as they are, where a parser must look closer and a writer
/// must escape. The classic "some byte is zero" and "some byte is below n" word tricks,
/// which are exact for the question "any byte?" (not for which byte; the caller then
/// looks byte by byte).
pub(crate) fn word_needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS != 0;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGHS != 0;
    below_space || has_zero(w ^ (ONES * u64::from(b'"'))) || has_zero(w ^ (ONES * u64::from(b'\\')))
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
    fn windows_parse_like_the_whole_document_and_errors_say_where() {
        let good =
            "{\"type\": \"bundle\",\n \"objects\": [{\"a\": 1},\n  {\"b\": [2]}, {\"c\": \"d\"}]}";
        let raw = RawObjects::split(good.as_bytes()).unwrap();
        assert_eq!(raw.objects.len(), 3);
        assert_eq!(raw.members["type"], "bundle");
        let whole = from_slice_strict(good.as_bytes()).unwrap();
        let mut parsed = raw.parse(0..2).unwrap();
        parsed.extend(raw.parse(2..3).unwrap());
        assert_eq!(Value::Array(parsed), whole["objects"]);
        // Errors only the strict parse finds (the scan lets them through), on the
        // first line of an element and further down: same words as the whole parse.
        for bad in [
            "{\"objects\": [{\"a\": 1},\n  {\"b\": 1, \"b\": 2}]}",
            "{\"objects\": [{\"a\": 1}, {\"x\": 1,\n\"y\": 9007199254740993}],\n \"id\": 1}",
        ] {
            let raw = RawObjects::split(bad.as_bytes()).unwrap();
            let expected = from_slice_strict(bad.as_bytes()).unwrap_err().to_string();
            assert_eq!(raw.parse(0..2).unwrap_err(), expected, "{bad}");
            assert!(raw.parse(0..1).is_ok());
        }
        assert!(RawObjects::split(b"{\"objects\": [1,]}").is_err());
        assert!(RawObjects::split(b"{\"type\": \"bundle\"}").is_err());
    }

    #[test]
    fn parallel_parse_equals_the_plain_parse() {
        let many: Vec<String> = (0..2500)
            .map(|i| {
                format!(r#"{{"id": "x--{i}", "n": {i}, "s": "a\"b\u00e9", "v": [1.5, null]}}"#)
            })
            .collect();
        let big = format!(
            r#"{{"type": "bundle", "objects": [{}], "id": "b"}}"#,
            many.join(", ")
        );
        let docs = [
            big.clone(),
            r#"{"objects": []}"#.to_string(),
            r#"{"type": "bundle"}"#.to_string(),
            r#"{"objects": 5}"#.to_string(),
            r#"[{"objects": []}]"#.to_string(),
        ];
        for d in &docs {
            assert_eq!(
                from_slice_strict_parallel(d.as_bytes()).unwrap(),
                from_slice_strict(d.as_bytes()).unwrap(),
                "{d:.80}"
            );
        }
        // Errors are the plain parse's, position included.
        let bad = [
            big.replace(r#""n": 2000,"#, r#""n": 2000, "n": 1,"#),
            big.replace(r#""n": 1999"#, r#""n": 9007199254740993"#),
            big.replace(r#""id": "b""#, r#""id": "b", "objects": []"#),
            big.replace(r#""type": "bundle""#, r#""type": "bundle", "type": "x""#),
            format!("{big} trailing"),
            big[..big.len() - 10].to_string(),
        ];
        for d in &bad {
            let fast = from_slice_strict_parallel(d.as_bytes())
                .unwrap_err()
                .to_string();
            let plain = from_slice_strict(d.as_bytes()).unwrap_err().to_string();
            assert_eq!(fast, plain);
        }
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
