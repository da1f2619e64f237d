//! A strict JSON parser that builds `serde_json::Value`s directly, without serde's
//! visitor machinery.
//!
//! Every published or received object is parsed once, and parsing through serde
//! (a `Visitor` per value, a UTF-8 check per string, a key deserialiser per member)
//! was a sixth of what a publish costs. This parser reads text that is already known to
//! be UTF-8 in one pass: strings are scanned eight bytes at a time and copied whole
//! when they hold no escape, numbers are read in place.
//!
//! It accepts exactly what the serde-based strict parse accepts, with the same values
//! (numbers included: integers as serde_json classifies them, other numbers correctly
//! rounded as serde_json's `float_roundtrip` rounds them), and answers [`Refused`] for
//! everything else without saying why: the caller then runs the serde-based parse, which
//! refuses the input with its usual message, line and column. So an input this parser
//! refuses by mistake costs time, never a wrong answer; the tests compare the two
//! parsers on many valid and broken documents.

use super::MAX_SAFE_INTEGER;
use serde_json::{Map, Number, Value};

/// Containers nested this deep are refused, as serde_json's recursion limit refuses
/// them (its counter starts at 128 and an error is raised when it reaches zero).
const MAX_DEPTH: u32 = 128;

/// The input is not strict JSON (or is something this parser leaves to serde).
#[derive(Debug, PartialEq, Eq)]
pub struct Refused;

type Parsed<T> = Result<T, Refused>;

/// Parses `text` as one JSON value with nothing but whitespace around it.
pub fn parse(text: &str) -> Parsed<Value> {
    let mut p = Parser {
        text,
        bytes: text.as_bytes(),
        at: 0,
        depth: 0,
    };
    p.whitespace();
    let v = p.value()?;
    p.whitespace();
    if p.at == p.bytes.len() {
        Ok(v)
    } else {
        Err(Refused)
    }
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
    depth: u32,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Parsed<()> {
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(Refused)
        }
    }

    fn value(&mut self) -> Parsed<Value> {
        match self.peek().ok_or(Refused)? {
            b'"' => self.string().map(Value::String),
            b'{' => self.object(),
            b'[' => self.array(),
            b't' => self.literal(b"true", Value::Bool(true)),
            b'f' => self.literal(b"false", Value::Bool(false)),
            b'n' => self.literal(b"null", Value::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(Refused),
        }
    }

    fn literal(&mut self, word: &[u8], v: Value) -> Parsed<Value> {
        if self.bytes[self.at..].starts_with(word) {
            self.at += word.len();
            Ok(v)
        } else {
            Err(Refused)
        }
    }

    fn enter(&mut self) -> Parsed<()> {
        self.depth += 1;
        if self.depth >= MAX_DEPTH {
            return Err(Refused);
        }
        self.at += 1;
        self.whitespace();
        Ok(())
    }

    /// Leaves a container at its closing bracket.
    fn leave(&mut self) {
        self.at += 1;
        self.depth -= 1;
    }

    /// Right after an opening bracket: whether the container closes at once (empty).
    fn closes_at_once(&mut self, close: u8) -> bool {
        let empty = self.peek() == Some(close);
        if empty {
            self.leave();
        }
        empty
    }

    /// After an element: `true` at a comma (another element follows), `false` at the
    /// closing bracket (the container is left).
    fn another(&mut self, close: u8) -> Parsed<bool> {
        self.whitespace();
        match self.peek() {
            Some(b',') => {
                self.at += 1;
                self.whitespace();
                Ok(true)
            }
            Some(b) if b == close => {
                self.leave();
                Ok(false)
            }
            _ => Err(Refused),
        }
    }

    fn object(&mut self) -> Parsed<Value> {
        self.enter()?;
        let mut members: Vec<(String, Value)> = Vec::new();
        if self.closes_at_once(b'}') {
            return Ok(Value::Object(Map::new()));
        }
        loop {
            if self.peek() != Some(b'"') {
                return Err(Refused);
            }
            let key = self.string()?;
            self.whitespace();
            self.eat(b':')?;
            self.whitespace();
            members.push((key, self.value()?));
            if !self.another(b'}')? {
                return object_of(members).map(Value::Object);
            }
        }
    }

    fn array(&mut self) -> Parsed<Value> {
        self.enter()?;
        let mut items = Vec::new();
        if !self.closes_at_once(b']') {
            loop {
                items.push(self.value()?);
                if !self.another(b']')? {
                    break;
                }
            }
        }
        Ok(Value::Array(items))
    }

    /// Moves to the next `"`, `\` or control character of a string (or the end).
    fn skip_plain(&mut self) {
        while let Some(chunk) = self.bytes.get(self.at..self.at + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            if super::word_needs_escape(u64::from_le_bytes(word)) {
                break;
            }
            self.at += 8;
        }
        while let Some(b) = self.peek() {
            if b == b'"' || b == b'\\' || b < 0x20 {
                return;
            }
            self.at += 1;
        }
    }

    /// A string, the opening quote at `self.at`.
    fn string(&mut self) -> Parsed<String> {
        self.at += 1;
        let start = self.at;
        self.skip_plain();
        match self.peek() {
            Some(b'"') => {
                // `"` is ASCII, so this is a character boundary; `get` never panics.
                let s = self.text.get(start..self.at).ok_or(Refused)?;
                self.at += 1;
                Ok(s.to_owned())
            }
            Some(b'\\') => self.escaped_string(start),
            // A raw control character, or the end of the text.
            _ => Err(Refused),
        }
    }

    /// The rest of a string that has an escape at `self.at`; it began at `start`.
    fn escaped_string(&mut self, start: usize) -> Parsed<String> {
        let mut out = String::from(self.text.get(start..self.at).ok_or(Refused)?);
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.at += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.at += 1;
                    self.escape(&mut out)?;
                }
                Some(_) => {
                    let from = self.at;
                    self.skip_plain();
                    if self.at == from {
                        // A raw control character.
                        return Err(Refused);
                    }
                    out.push_str(self.text.get(from..self.at).ok_or(Refused)?);
                }
                None => return Err(Refused),
            }
        }
    }

    /// One escape, its backslash already read. Surrogates must come in pairs (a
    /// `String` cannot hold a lone one), as serde_json requires.
    fn escape(&mut self, out: &mut String) -> Parsed<()> {
        let c = self.peek().ok_or(Refused)?;
        self.at += 1;
        let ch = match c {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let n = self.hex4()?;
                match n {
                    0xD800..=0xDBFF => {
                        if !self.bytes[self.at..].starts_with(b"\\u") {
                            return Err(Refused);
                        }
                        self.at += 2;
                        let low = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return Err(Refused);
                        }
                        let code =
                            0x1_0000 + ((u32::from(n) - 0xD800) << 10) + (u32::from(low) - 0xDC00);
                        char::from_u32(code).ok_or(Refused)?
                    }
                    0xDC00..=0xDFFF => return Err(Refused),
                    _ => char::from_u32(u32::from(n)).ok_or(Refused)?,
                }
            }
            _ => return Err(Refused),
        };
        out.push(ch);
        Ok(())
    }

    fn hex4(&mut self) -> Parsed<u16> {
        let digits = self.bytes.get(self.at..self.at + 4).ok_or(Refused)?;
        let mut n = 0u16;
        for &d in digits {
            let v = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                b'A'..=b'F' => d - b'A' + 10,
                _ => return Err(Refused),
            };
            n = n << 4 | u16::from(v);
        }
        self.at += 4;
        Ok(n)
    }

    fn digits(&mut self) -> usize {
        let from = self.at;
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
        self.at - from
    }

    /// A number, classified as serde_json classifies it: an integer literal that fits
    /// a `u64` (or, negative, an `i64`) is an integer and must be within ±2^53; any
    /// other number (a fraction, an exponent, `-0`, an integer beyond 64 bits) is a
    /// double, correctly rounded, and must be finite.
    fn number(&mut self) -> Parsed<Value> {
        let start = self.at;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.at += 1;
        }
        let int_start = self.at;
        match self.digits() {
            0 => return Err(Refused),
            1 => {}
            // No leading zero.
            _ if self.bytes[int_start] == b'0' => return Err(Refused),
            _ => {}
        }
        let int_end = self.at;
        let mut is_integer = true;
        if self.peek() == Some(b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return Err(Refused);
            }
            is_integer = false;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            if self.digits() == 0 {
                return Err(Refused);
            }
            is_integer = false;
        }
        let text = self.text.get(start..self.at).ok_or(Refused)?;
        if is_integer {
            let mut significand: u64 = 0;
            let mut fits = true;
            for &d in &self.bytes[int_start..int_end] {
                match significand
                    .checked_mul(10)
                    .and_then(|s| s.checked_add(u64::from(d - b'0')))
                {
                    Some(s) => significand = s,
                    None => {
                        fits = false;
                        break;
                    }
                }
            }
            if fits {
                return integer(negative, significand);
            }
        }
        let f: f64 = text.parse().map_err(|_| Refused)?;
        Number::from_f64(f).map(Value::Number).ok_or(Refused)
    }
}

/// The map of an object's members, refusing a repeated key (it has two readings).
///
/// Members are gathered first and the map built from them in one go: the map is built
/// from sorted keys without a search per key, and members that arrive sorted (any
/// canonical form, and so every envelope between nodes) are not even moved.
fn object_of(mut members: Vec<(String, Value)>) -> Parsed<Map<String, Value>> {
    let increasing = |m: &[(String, Value)]| m.windows(2).all(|w| w[0].0 < w[1].0);
    if !increasing(&members) {
        members.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        if !increasing(&members) {
            return Err(Refused);
        }
    }
    Ok(members.into_iter().collect())
}

/// An integer literal that fits 64 bits, as serde_json reads it: negative ones that do
/// not fit an `i64`, and `-0`, become doubles.
fn integer(negative: bool, significand: u64) -> Parsed<Value> {
    if !negative {
        return if significand > MAX_SAFE_INTEGER {
            Err(Refused)
        } else {
            Ok(Value::Number(significand.into()))
        };
    }
    let neg = (significand as i64).wrapping_neg();
    if neg >= 0 {
        let f = -(significand as f64);
        return Number::from_f64(f).map(Value::Number).ok_or(Refused);
    }
    if neg.unsigned_abs() > MAX_SAFE_INTEGER {
        Err(Refused)
    } else {
        Ok(Value::Number(neg.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::from_slice_strict_serde as reference;
    use proptest::prelude::*;

    /// The two parsers give the same verdict and, when both accept, the same value
    /// (numbers to the bit: the serialised forms tell `0` from `0.0` and `-0.0`).
    fn agrees(text: &str) -> Result<(), String> {
        let same = |a: &Value, b: &Value| {
            a == b && serde_json::to_vec(a).ok() == serde_json::to_vec(b).ok()
        };
        match (parse(text), reference(text.as_bytes())) {
            (Ok(a), Ok(b)) if same(&a, &b) => Ok(()),
            (Ok(a), Ok(b)) => Err(format!("{text:?}: {a} here, {b} through serde")),
            (Err(Refused), Err(_)) => Ok(()),
            (Ok(a), Err(e)) => Err(format!("{text:?}: accepted as {a}, serde refuses: {e}")),
            (Err(Refused), Ok(b)) => Err(format!("{text:?}: refused, serde accepts {b}")),
        }
    }

    #[test]
    fn numbers_are_read_and_classified_as_serde_reads_them() {
        for n in [
            "0",
            "-0",
            "7",
            "-7",
            "0.0",
            "-0.0",
            "1.5",
            "1e5",
            "1E+5",
            "-1e-5",
            "0.1e-2",
            "9007199254740992",
            "9007199254740993",
            "-9007199254740992",
            "-9007199254740993",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775807",
            "-9223372036854775808",
            "-9223372036854775809",
            "123456789012345678901234567890",
            "123456789012345678901234567890.125e-10",
            "1e400",
            "-1e400",
            "1e-400",
            "-1e-400",
            "0e99999999999999999999",
            "1e-99999999999999999999",
            "1e99999999999999999999",
            "1.7976931348623157e308",
            "1.7976931348623159e308",
            "2.2250738585072014e-308",
            "4.9e-324",
            "5e-324",
            "2.4703282292062327e-324",
            "2.4703282292062328e-324",
            "0.30000000000000004",
            "01",
            "-01",
            "00",
            "-",
            "--1",
            "+1",
            "1.",
            ".5",
            "1.e5",
            "1e",
            "1e+",
            "1e-",
            "0x10",
            "1_000",
            "Infinity",
            "NaN",
            "1.5.3",
            "1e5e5",
        ] {
            agrees(n).unwrap();
            agrees(&format!("[{n}]")).unwrap();
            agrees(&format!("{{\"n\": {n} }}")).unwrap();
        }
    }

    #[test]
    fn strings_escapes_and_surrogates_follow_serde() {
        for s in [
            r#""""#,
            r#""plain""#,
            r#""é 😀 ü""#,
            r#""\"\\\/\b\f\n\r\t""#,
            r#""\u00e9\u0000""#,
            r#""\ud83d\ude00""#,
            r#""\uD83D\uDE00""#,
            r#""\ud800""#,
            r#""\udc00""#,
            r#""\ud800x""#,
            r#""\ud800\n""#,
            r#""\ud800\u0041""#,
            r#""\ud800\ud800""#,
            r#""\ud800\u""#,
            r#""\u12""#,
            r#""\u12g4""#,
            r#""\x41""#,
            r#""\'""#,
            r#""\""#,
            "\"a\u{1}b\"",
            "\"tab\there\"",
            "\"nl\nhere\"",
            "\"del\u{7f}\"",
            r#""unterminated"#,
            r#""long string without any escape at all, more than eight bytes""#,
            r#""long string with an escape \n after more than eight bytes""#,
        ] {
            agrees(s).unwrap();
            agrees(&format!("{{{s}: 1}}")).unwrap();
        }
    }

    #[test]
    fn structure_whitespace_duplicates_and_depth_follow_serde() {
        for d in [
            "",
            " ",
            "true",
            "false",
            "null",
            "tru",
            "nul",
            "truex",
            "[]",
            "{}",
            "[1,]",
            "[,1]",
            "[1 2]",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\" 1}",
            "{\"a\":1,}",
            "{,}",
            "{\"a\":1 \"b\":2}",
            "{1: 2}",
            " [ 1 , { \"a\" : [ ] } ] ",
            "\t\n\r[1]\r\n",
            "\u{b}[1]",
            "\u{feff}[1]",
            "[1] x",
            "[1]]",
            "{\"b\":1,\"a\":2}",
            "{\"a\":1,\"a\":1}",
            "{\"b\":1,\"a\":2,\"b\":3}",
            "[{\"x\":{\"y\":1,\"y\":2}}]",
            "{\"\":1}",
            "{\"a\":1,\"A\":2,\"é\":3,\"aa\":4}",
        ] {
            agrees(d).unwrap();
        }
        for depth in [126, 127, 128, 129, 1000] {
            agrees(&format!("{}{}", "[".repeat(depth), "]".repeat(depth))).unwrap();
            agrees(&format!(
                "{}1{}",
                "{\"a\":".repeat(depth),
                "}".repeat(depth)
            ))
            .unwrap();
        }
    }

    /// JSON-like text: mostly valid, with the mistakes a broken or hostile client
    /// makes (bad numbers and escapes, repeated keys, stray commas, control
    /// characters).
    fn json_text() -> impl Strategy<Value = String> {
        let ws = "[ \t\r\n]{0,2}";
        let number = "-?(0|[1-9][0-9]{0,22}|0[0-9])(\\.[0-9]{0,18})?([eE][+-]?[0-9]{0,4})?";
        let string = "\"([a-z0-9 é😀\\x00-\\x1f]|\\\\[\"\\\\/bfnrtux]|\\\\u[0-9a-fA-F]{4}|\\\\u[dD][89abAB][0-9a-f]{2}(\\\\u[dD][c-fC-F][0-9a-f]{2})?){0,12}\"";
        let leaf = prop_oneof![
            number.prop_map(String::from),
            string.prop_map(String::from),
            prop_oneof![Just("true"), Just("false"), Just("null"), Just("tru")]
                .prop_map(String::from),
        ];
        leaf.prop_recursive(5, 64, 6, move |inner| {
            let key = "\"[abc]{0,2}\"";
            prop_oneof![
                (
                    prop::collection::vec((ws, inner.clone()), 0..6),
                    ws,
                    prop::bool::weighted(0.05)
                )
                    .prop_map(|(items, end, trailing)| {
                        let body: Vec<String> =
                            items.into_iter().map(|(w, v)| format!("{w}{v}")).collect();
                        let comma = if trailing { "," } else { "" };
                        format!("[{}{comma}{end}]", body.join(","))
                    }),
                (
                    prop::collection::vec((key, ws, inner), 0..6),
                    prop::bool::weighted(0.05)
                )
                    .prop_map(|(members, trailing)| {
                        let body: Vec<String> = members
                            .into_iter()
                            .map(|(k, w, v)| format!("{k}{w}:{w}{v}"))
                            .collect();
                        let comma = if trailing { "," } else { "" };
                        format!("{{{}{comma}}}", body.join(","))
                    }),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn random_documents_get_the_verdict_and_value_serde_gives(text in json_text()) {
            prop_assert!(agrees(&text).is_ok(), "{}", agrees(&text).unwrap_err());
        }

        #[test]
        fn damaged_documents_get_the_verdict_serde_gives(
            text in json_text(),
            at in any::<prop::sample::Index>(),
            edit in 0..4u8,
            byte in prop::sample::select(b"\"\\{}[],:0-.e \x01a".to_vec()),
        ) {
            let mut chars: Vec<char> = text.chars().collect();
            let i = at.index(chars.len() + 1);
            match edit {
                0 if i < chars.len() => { chars.remove(i); }
                1 if i < chars.len() => chars[i] = char::from(byte),
                _ => chars.insert(i, char::from(byte)),
            }
            let damaged: String = chars.into_iter().collect();
            prop_assert!(agrees(&damaged).is_ok(), "{}", agrees(&damaged).unwrap_err());
        }
    }
}
