//! The signed form of a received envelope, taken from its bytes when they are already
//! canonical.
//!
//! Nodes store and send envelopes in their RFC 8785 form (signature included). The
//! signed form of such an envelope is those bytes without the `signature` member, so
//! a receiver need not write the whole envelope out again (a walk of every parsed
//! value, about a tenth of what taking an envelope cost) to find the bytes the
//! signature and the id are over. It must only be sure the bytes are canonical: this
//! module checks that in one pass over them, and answers `None` for anything it does
//! not recognise as canonical at a glance. The caller then writes the signed form
//! from the parsed value as before, so an unusual but valid envelope costs time, never
//! a wrong id.
//!
//! What passes: no whitespace; object keys of printable ASCII without escapes, in
//! strictly increasing order (for such keys byte order is RFC 8785's UTF-16 order);
//! strings escaped exactly as RFC 8785 writes them; integers of at most 2^53 in
//! magnitude written plainly (no fraction, exponent, `-0` or leading zero); `true`,
//! `false`, `null`. Anything else, including every non-integer number, is left to the
//! writer.

use super::canonical::SignedForm;

/// Nesting beyond this is left to the writer (the strict parser bounds it anyway).
const MAX_DEPTH: usize = 128;

/// The signed form of an envelope whose bytes are its own RFC 8785 form, or `None`
/// when that is not plain from the bytes (see the module documentation). The bytes
/// must also parse strictly; this does not replace parsing.
pub fn signed_form_of_canonical(bytes: &[u8]) -> Option<SignedForm> {
    let mut s = Scan {
        b: bytes,
        at: 0,
        objects: Vec::new(),
    };
    // The members of the envelope, noting where `signature` is and the elements of
    // `bundle.objects`.
    s.expect(b'{')?;
    // The bytes to cut out, and whether `signature` was the first member.
    let mut cut: Option<(usize, usize, bool)> = None;
    let mut prev: Option<&[u8]> = None;
    let mut first = true;
    if s.peek()? != b'}' {
        loop {
            let member_start = s.at;
            let key = s.key(&mut prev)?;
            s.expect(b':')?;
            match key {
                b"signature" => {
                    if s.peek()? != b'"' {
                        return None;
                    }
                    s.string()?;
                    // Cut the member with the comma that joins it to its neighbours:
                    // the one before it, or (first member) the one after it.
                    cut = Some(if first {
                        (member_start, s.at + usize::from(s.peek()? == b','), true)
                    } else {
                        (member_start - 1, s.at, false)
                    });
                }
                b"bundle" => s.bundle()?,
                _ => s.value(1)?,
            }
            first = false;
            match s.next()? {
                b',' => continue,
                b'}' => break,
                _ => return None,
            }
        }
    } else {
        s.at += 1;
    }
    if s.at != bytes.len() {
        return None;
    }
    let (from, to, was_first) = cut?;
    let mut signed = Vec::with_capacity(bytes.len() - (to - from));
    signed.extend_from_slice(&bytes[..from]);
    signed.extend_from_slice(&bytes[to..]);
    // Where the signature member goes back: the first byte of the member after it, or
    // the closing brace. After a cut that kept the comma following it, that member
    // starts just past the comma.
    let signature_at = if was_first || bytes[to] == b'}' {
        from
    } else {
        from + 1
    };
    let removed = to - from;
    let objects = s
        .objects
        .into_iter()
        .map(|(off, len)| {
            if off >= to {
                (off - removed, len)
            } else {
                (off, len)
            }
        })
        .collect();
    Some(SignedForm {
        bytes: signed,
        signature_at,
        objects,
    })
}

struct Scan<'a> {
    b: &'a [u8],
    at: usize,
    /// `(offset, length)` of each element of `bundle.objects`.
    objects: Vec<(usize, usize)>,
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.at += 1;
        Some(c)
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    /// A member key: printable ASCII, no escapes, after `prev` in byte order.
    fn key(&mut self, prev: &mut Option<&'a [u8]>) -> Option<&'a [u8]> {
        self.expect(b'"')?;
        let start = self.at;
        loop {
            match self.next()? {
                b'"' => break,
                b'\\' => return None,
                0x20..=0x7e => {}
                _ => return None,
            }
        }
        let key = &self.b[start..self.at - 1];
        if prev.is_some_and(|p| p >= key) {
            return None;
        }
        *prev = Some(key);
        Some(key)
    }

    /// A string as RFC 8785 writes it (the opening quote is next).
    fn string(&mut self) -> Option<()> {
        self.expect(b'"')?;
        loop {
            // Eight bytes at a time while none needs a look.
            while let Some(w) = self.b.get(self.at..self.at + 8) {
                let mut word = [0u8; 8];
                word.copy_from_slice(w);
                if crate::json::word_needs_escape(u64::from_le_bytes(word)) {
                    break;
                }
                self.at += 8;
            }
            match self.next()? {
                b'"' => return Some(()),
                b'\\' => match self.next()? {
                    b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                    b'u' => {
                        // Only the control characters without a short escape.
                        let hex = self.b.get(self.at..self.at + 4)?;
                        let v = match hex {
                            [b'0', b'0', h @ (b'0' | b'1'), l] => {
                                let l = match l {
                                    b'0'..=b'9' => l - b'0',
                                    b'a'..=b'f' => l - b'a' + 10,
                                    _ => return None,
                                };
                                (h - b'0') * 16 + l
                            }
                            _ => return None,
                        };
                        if matches!(v, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d) {
                            return None;
                        }
                        self.at += 4;
                    }
                    _ => return None,
                },
                0x00..=0x1f => return None,
                _ => {}
            }
        }
    }

    /// An integer as RFC 8785 writes it, of at most 2^53 in magnitude.
    fn integer(&mut self) -> Option<()> {
        let negative = self.peek()? == b'-';
        if negative {
            self.at += 1;
        }
        let start = self.at;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.at += 1;
        }
        let digits = &self.b[start..self.at];
        match digits {
            [] => return None,
            [b'0'] if negative => return None,
            [b'0'] => {}
            [b'0', ..] => return None,
            _ if digits.len() > 16 => return None,
            _ => {
                let n = digits
                    .iter()
                    .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
                if n > 1 << 53 {
                    return None;
                }
            }
        }
        // A fraction or an exponent: not an integer as written; the writer decides.
        if matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        Some(())
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.b.get(self.at..self.at + word.len())? != word {
            return None;
        }
        self.at += word.len();
        Some(())
    }

    /// Any canonical value.
    fn value(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'{' => {
                self.at += 1;
                if self.peek()? == b'}' {
                    self.at += 1;
                    return Some(());
                }
                let mut prev = None;
                loop {
                    self.key(&mut prev)?;
                    self.expect(b':')?;
                    self.value(depth + 1)?;
                    match self.next()? {
                        b',' => {}
                        b'}' => return Some(()),
                        _ => return None,
                    }
                }
            }
            b'[' => {
                self.at += 1;
                if self.peek()? == b']' {
                    self.at += 1;
                    return Some(());
                }
                loop {
                    self.value(depth + 1)?;
                    match self.next()? {
                        b',' => {}
                        b']' => return Some(()),
                        _ => return None,
                    }
                }
            }
            b'"' => self.string(),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.integer(),
            _ => None,
        }
    }

    /// The envelope's `bundle`, noting the elements of its `objects`.
    fn bundle(&mut self) -> Option<()> {
        self.expect(b'{')?;
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        let mut prev = None;
        loop {
            let key = self.key(&mut prev)?;
            self.expect(b':')?;
            if key == b"objects" && self.peek()? == b'[' {
                self.at += 1;
                if self.peek()? == b']' {
                    self.at += 1;
                } else {
                    loop {
                        let start = self.at;
                        self.value(3)?;
                        self.objects.push((start, self.at - start));
                        match self.next()? {
                            b',' => {}
                            b']' => break,
                            _ => return None,
                        }
                    }
                }
            } else {
                self.value(2)?;
            }
            match self.next()? {
                b',' => {}
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::canonical::{canonical_value, signed_form};
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn written(doc: &Value) -> SignedForm {
        signed_form(doc.as_object().unwrap()).unwrap()
    }

    fn envelope(objects: Vec<Value>) -> Value {
        json!({
            "type": "synergia-envelope", "version": 1, "origin": "kaspersky",
            "origin_identity": "identity--6a4c3ff4-3c4b-4a32-9d7c-2bc3f0b5a2d1",
            "key_id": "kaspersky-2026a", "seq": 17, "signed_at": "2026-11-27T03:44:23.123Z",
            "tlp": "green", "recipients": [],
            "bundle": {"type": "bundle", "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d", "objects": objects},
            "signature": "c2lnbmF0dXJl"
        })
    }

    /// Envelopes as nodes send them take the fast path, and it gives exactly the
    /// signed form the writer gives: bytes, signature position, object ranges.
    #[test]
    fn canonical_envelopes_give_the_written_signed_form() {
        let objects = vec![
            json!({"type": "indicator", "id": "indicator--1", "name": "a \"quoted\" \\ back\nslash\t\u{1}\u{1f}\u{7f} é ☃ 😀", "confidence": 85, "n": -9007199254740992i64, "z": 0, "ok": true, "no": false, "none": null}),
            json!({"type": "x", "nested": {"a": [1, [2, {}], []], "b": {"c": {}}}}),
            json!({}),
        ];
        for doc in [
            envelope(objects.clone()),
            envelope(vec![]),
            // `signature` first, and last.
            json!({"signature": "x", "tlp": "green", "bundle": {"objects": [{"a": 1}]}}),
            json!({"bundle": {"objects": [{"a": 1}]}, "origin": "o", "signature": "x"}),
            json!({"signature": "x"}),
        ] {
            let wire = canonical_value(&doc).unwrap();
            let fast = signed_form_of_canonical(&wire)
                .unwrap_or_else(|| panic!("not taken for {}", String::from_utf8_lossy(&wire)));
            assert_eq!(fast, written(&doc), "{}", String::from_utf8_lossy(&wire));
        }
    }

    /// What a node sends (generated feeds of every kind of object, signed) takes the
    /// fast path.
    #[test]
    fn generated_envelopes_take_the_fast_path() {
        let opts = crate::workload::GenOptions {
            count: 300,
            seed: 9,
            origin: "kaspersky".into(),
            identity: None,
            overlap: 0.3,
            tlp: None,
        };
        let signer = crate::envelope::tests::signer(7, "kaspersky-2026a");
        let meta = crate::envelope::EnvelopeMeta {
            seq: 1,
            signed_at: crate::stix::timestamp::Timestamp::now(),
            tlp: crate::stix::tlp::TlpLevel::Amber,
            recipients: vec![],
        };
        let env =
            crate::envelope::Envelope::sign(crate::workload::bundle(&opts), &signer, meta).unwrap();
        let wire = env.to_canonical_bytes();
        assert_eq!(
            signed_form_of_canonical(&wire).as_ref(),
            Some(env.signed_form())
        );
    }

    /// Text that is not plainly canonical, even when it means the same, is left to
    /// the writer.
    #[test]
    fn anything_not_plainly_canonical_is_left_to_the_writer() {
        let base =
            String::from_utf8(canonical_value(&envelope(vec![json!({"a": "b", "n": 5})])).unwrap())
                .unwrap();
        assert!(signed_form_of_canonical(base.as_bytes()).is_some());
        for (from, to) in [
            ("{\"a\":\"b\"", "{ \"a\":\"b\""),
            ("\"n\":5", "\"n\": 5"),
            ("\"n\":5", "\"n\":5.0"),
            ("\"n\":5", "\"n\":5e0"),
            ("\"n\":5", "\"n\":05"),
            ("\"n\":5", "\"n\":-0"),
            ("\"n\":5", "\"n\":9007199254740993"),
            ("\"a\":\"b\"", "\"a\":\"\\u0062\""),
            ("\"a\":\"b\"", "\"a\":\"\\/\""),
            ("\"a\":\"b\"", "\"a\":\"\\u000a\""),
            ("\"a\":\"b\"", "\"a\":\"\\u001F\""),
            ("{\"a\":\"b\",\"n\":5}", "{\"n\":5,\"a\":\"b\"}"),
            ("{\"a\":\"b\",\"n\":5}", "{\"a\":\"b\",\"a\":\"c\",\"n\":5}"),
            ("{\"a\":\"b\"", "{\"\\u0061\":\"b\""),
            ("{\"a\":\"b\"", "{\"é\":\"b\""),
        ] {
            assert!(base.contains(from), "{from}");
            let text = base.replacen(from, to, 1);
            assert!(
                signed_form_of_canonical(text.as_bytes()).is_none(),
                "{text}"
            );
        }
        // Without a signature there is nothing to cut out.
        let unsigned =
            canonical_value(&json!({"bundle": {"objects": []}, "tlp": "green"})).unwrap();
        assert!(signed_form_of_canonical(&unsigned).is_none());
        assert!(signed_form_of_canonical(b"").is_none());
        assert!(signed_form_of_canonical(&base.as_bytes()[..base.len() - 1]).is_none());
        assert!(signed_form_of_canonical(format!("{base} ").as_bytes()).is_none());
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let text = "[a-c\\\\\"\\n\\u{1}\\u{1f}\\u{7f}é\\u{e000}😀/ ]{0,6}";
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-(1i64 << 53)..=(1i64 << 53)).prop_map(|n| json!(n)),
            (-1e6f64..1e6).prop_map(|f| json!(f)),
            text.prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 40, 5, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::btree_map(text, inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Whatever text the fast path accepts (canonical, or as other writers put the
        /// same value), its answer is the writer's answer for what the text parses to.
        #[test]
        fn the_fast_path_never_disagrees_with_the_writer(objects in prop::collection::vec(json_value(), 0..4)) {
            let doc = envelope(objects);
            for text in [
                canonical_value(&doc).unwrap(),
                serde_json::to_vec(&doc).unwrap(),
                serde_json::to_vec_pretty(&doc).unwrap(),
            ] {
                let Ok(parsed) = crate::json::from_slice_strict(&text) else { continue };
                if let Some(fast) = signed_form_of_canonical(&text) {
                    prop_assert_eq!(fast, written(&parsed));
                }
            }
        }
    }
}
