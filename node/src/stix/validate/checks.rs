//! Building blocks of the validator: JSON pointers, the per-object context that
//! records findings, and syntactic checks on identifiers, names and hashes.

use super::{Finding, Report, Severity};
use crate::stix::observable::ObservableKey;
use crate::stix::timestamp::Timestamp;
use serde_json::Value;

/// A JSON pointer under construction, kept on the stack and rendered only when a
/// finding needs it.
#[derive(Clone, Copy)]
pub(crate) struct Ptr<'a> {
    parent: Option<&'a Ptr<'a>>,
    seg: Seg<'a>,
}

#[derive(Clone, Copy)]
enum Seg<'a> {
    Base(&'a str),
    Key(&'a str),
    Index(usize),
}

impl<'a> Ptr<'a> {
    /// A pointer rooted at an already rendered pointer (`""`, `/objects/2`).
    pub(crate) fn root(base: &'a str) -> Self {
        Ptr {
            parent: None,
            seg: Seg::Base(base),
        }
    }

    /// The pointer to member `k` of this location.
    pub(crate) fn key<'b>(&'b self, k: &'b str) -> Ptr<'b> {
        Ptr {
            parent: Some(self),
            seg: Seg::Key(k),
        }
    }

    /// The pointer to element `i` of this location.
    pub(crate) fn idx<'b>(&'b self, i: usize) -> Ptr<'b> {
        Ptr {
            parent: Some(self),
            seg: Seg::Index(i),
        }
    }

    /// Renders the RFC 6901 text (`~` → `~0`, `/` → `~1` in member names).
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        self.render_into(&mut out);
        out
    }

    fn render_into(&self, out: &mut String) {
        if let Some(p) = self.parent {
            p.render_into(out);
        }
        match self.seg {
            Seg::Base(b) => out.push_str(b),
            Seg::Key(k) => {
                out.push('/');
                for c in k.chars() {
                    match c {
                        '~' => out.push_str("~0"),
                        '/' => out.push_str("~1"),
                        c => out.push(c),
                    }
                }
            }
            Seg::Index(i) => {
                out.push('/');
                out.push_str(&i.to_string());
            }
        }
    }
}

/// Records findings for one object.
pub(crate) struct Ctx<'r> {
    pub(crate) report: &'r mut Report,
    pub(crate) id: Option<&'r str>,
    /// The observable keys of the object's STIX pattern, once it parsed.
    pub(crate) pattern_keys: Option<Vec<ObservableKey>>,
}

impl Ctx<'_> {
    pub(crate) fn push(
        &mut self,
        severity: Severity,
        code: &'static str,
        at: Ptr,
        message: String,
    ) {
        self.report.findings.push(Finding {
            severity,
            code,
            object_id: self.id.map(str::to_owned),
            pointer: at.render(),
            message,
        });
    }

    pub(crate) fn error(&mut self, code: &'static str, at: Ptr, message: String) {
        self.push(Severity::Error, code, at, message);
    }

    pub(crate) fn warn(&mut self, code: &'static str, at: Ptr, message: String) {
        self.push(Severity::Warning, code, at, message);
    }
}

/// A JSON type name for messages.
pub(crate) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_hex(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

/// RFC 4122 UUID text form (versions 1–5, variant 10xx), as STIX identifiers need.
pub(crate) fn uuid_error(u: &str) -> Option<&'static str> {
    let b = u.as_bytes();
    if b.len() != 36 {
        return Some("the UUID must be 36 characters");
    }
    for (i, &c) in b.iter().enumerate() {
        let ok = if matches!(i, 8 | 13 | 18 | 23) {
            c == b'-'
        } else {
            is_hex(c)
        };
        if !ok {
            return Some("the UUID is not in 8-4-4-4-12 hex form");
        }
    }
    if !(b'1'..=b'5').contains(&b[14]) {
        return Some("the UUID version must be 1 to 5 (RFC 4122)");
    }
    if !matches!(b[19], b'8' | b'9' | b'a' | b'b' | b'A' | b'B') {
        return Some("the UUID variant must be RFC 4122 (8, 9, a or b)");
    }
    None
}

/// The UUID version digit of a well-formed identifier.
pub(crate) fn uuid_version(id: &str) -> Option<u8> {
    let (_, u) = split_identifier(id)?;
    u.as_bytes().get(14).map(|c| c.wrapping_sub(b'0'))
}

/// Checks `<type>--<uuid>`; returns the type prefix when the syntax is right.
pub(crate) fn identifier(s: &str) -> Result<&str, String> {
    if let Some(ty) = well_formed_identifier(s) {
        return Ok(ty);
    }
    let Some((ty, uuid)) = split_identifier(s) else {
        return Err(format!("'{s}' is not an identifier (<type>--<uuid>)"));
    };
    if let Some(why) = type_name_error(ty) {
        return Err(format!("'{s}' has an invalid type part: {why}"));
    }
    if let Some(why) = uuid_error(uuid) {
        return Err(format!("'{s}': {why}"));
    }
    Ok(ty)
}

/// What each byte may be in an identifier: bit 0 a type-name byte (`a-z`, `0-9`, `-`),
/// bit 1 a hex digit, bit 2 a lowercase letter.
static ID_BYTES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        let lower = b.is_ascii_lowercase();
        let digit = b.is_ascii_digit();
        if lower || digit || b == b'-' {
            t[c] |= 1;
        }
        if b.is_ascii_hexdigit() {
            t[c] |= 2;
        }
        if lower {
            t[c] |= 4;
        }
        c += 1;
    }
    t
};

/// The type of an identifier that [`identifier`] accepts, found without building
/// anything: every reference of every object is checked, and the general checks below
/// (split, then type and UUID each byte by byte with a branch per position) were a
/// few percent of receiving. `None` sends the caller to those checks, which then
/// accept it or say what is wrong; this never accepts what they refuse: the type part
/// ends before the last 38 bytes (`--` and 36 of UUID), and since it neither contains
/// nor ends with `-` … `-`, that `--` is the first one, where [`split_identifier`] cuts.
fn well_formed_identifier(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    let cut = b.len().checked_sub(38)?;
    let (ty, rest) = b.split_at(cut);
    if ty.len() < 3 || ty.len() > 250 || rest[..2] != *b"--" {
        return None;
    }
    if ID_BYTES[usize::from(ty[0])] & 4 == 0 || ty[ty.len() - 1] == b'-' {
        return None;
    }
    let mut prev = 0u8;
    for &c in ty {
        if ID_BYTES[usize::from(c)] & 1 == 0 || (c == b'-' && prev == b'-') {
            return None;
        }
        prev = c;
    }
    let u = &rest[2..];
    if u[8] != b'-' || u[13] != b'-' || u[18] != b'-' || u[23] != b'-' {
        return None;
    }
    let hex = |r: std::ops::Range<usize>| u[r].iter().all(|&c| ID_BYTES[usize::from(c)] & 2 != 0);
    if !(hex(0..8) && hex(9..13) && hex(14..18) && hex(19..23) && hex(24..36)) {
        return None;
    }
    if !(b'1'..=b'5').contains(&u[14]) || !matches!(u[19], b'8' | b'9' | b'a' | b'b' | b'A' | b'B')
    {
        return None;
    }
    // All ASCII so far, so `cut` is a char boundary.
    s.get(..cut)
}

/// Splits at the first `--`, like `s.split_once("--")`.
///
/// Every reference in every object goes through here, and every stored object's id;
/// a byte scan for `-` is several times cheaper than the general substring search for
/// so short a needle.
pub(crate) fn split_identifier(s: &str) -> Option<(&str, &str)> {
    let b = s.as_bytes();
    let i = b.windows(2).position(|w| w == b"--")?;
    // Both halves end or start next to an ASCII '-', so they are on char boundaries.
    Some((s.get(..i)?, s.get(i + 2..)?))
}

/// STIX type names: 3–250 characters of `a-z`, `0-9` and single hyphens, starting
/// with a letter.
pub(crate) fn type_name_error(t: &str) -> Option<&'static str> {
    let b = t.as_bytes();
    if b.len() < 3 || b.len() > 250 {
        return Some("type names must be 3 to 250 characters long");
    }
    if !b[0].is_ascii_lowercase() {
        return Some("type names must start with a lowercase letter");
    }
    let mut prev = 0u8;
    for &c in b {
        if !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-') {
            return Some("type names may only contain a-z, 0-9 and '-'");
        }
        if c == b'-' && prev == b'-' {
            return Some("type names must not contain '--'");
        }
        prev = c;
    }
    None
}

/// Property names: 3–250 characters of `a-z`, `0-9` and `_` (`id` is the exception).
pub(crate) fn property_name_error(n: &str) -> Option<&'static str> {
    if n == "id" {
        return None;
    }
    let b = n.as_bytes();
    if b.len() < 3 || b.len() > 250 {
        return Some("property names must be 3 to 250 characters long");
    }
    if !b
        .iter()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
    {
        return Some("property names may only contain a-z, 0-9 and '_'");
    }
    None
}

/// Dictionary keys (hashes, extensions' dictionaries): up to 250 characters of ASCII
/// letters, digits, `_` and `-`.
pub(crate) fn dict_key_error(k: &str) -> Option<&'static str> {
    if k.len() > 250 {
        return Some("dictionary keys must be at most 250 characters");
    }
    if !k
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
    {
        return Some("dictionary keys may only contain a-z, A-Z, 0-9, '_' and '-'");
    }
    None
}

/// Parses a timestamp and, when `millis` is set, requires at least three fractional
/// digits (the precision the specification demands of `created` and `modified`).
pub(crate) fn timestamp(s: &str, millis: bool) -> Result<Timestamp, String> {
    let t = Timestamp::parse(s).map_err(|e| format!("'{s}' is not a valid timestamp: {e}"))?;
    if millis {
        let frac = s
            .find('.')
            .map(|dot| s.len().saturating_sub(dot + 2))
            .unwrap_or(0);
        if frac < 3 {
            return Err(format!("'{s}' must be precise to the millisecond"));
        }
    }
    Ok(t)
}

/// Hex digest length of each standard hash algorithm; `None` for non-hex ones.
fn hash_hex_len(alg: &str) -> Option<usize> {
    Some(match alg {
        "MD5" => 32,
        "SHA-1" => 40,
        "SHA-256" | "SHA3-256" => 64,
        "SHA-512" | "SHA3-512" => 128,
        _ => return None,
    })
}

/// Checks a `hashes` dictionary, reporting each bad entry.
pub(crate) fn hashes(cx: &mut Ctx, at: Ptr, v: &Value) {
    let Value::Object(m) = v else {
        cx.error(
            "invalid-property-type",
            at,
            format!("hashes must be an object, not {}", json_type(v)),
        );
        return;
    };
    if m.is_empty() {
        cx.error("empty-dictionary", at, "hashes must not be empty".into());
    }
    for (alg, digest) in m {
        let here = at.key(alg);
        let Value::String(d) = digest else {
            cx.error(
                "invalid-property-type",
                here,
                format!("the {alg} hash must be a string"),
            );
            continue;
        };
        if let Some(n) = hash_hex_len(alg) {
            if d.len() != n || !d.bytes().all(is_hex) {
                cx.error(
                    "invalid-hash",
                    here,
                    format!("a {alg} hash must be {n} hexadecimal digits, got '{d}'"),
                );
            }
            continue;
        }
        match alg.as_str() {
            "SSDEEP" => {
                if d.is_empty()
                    || d.len() > 128
                    || !d
                        .bytes()
                        .all(|c| c.is_ascii_alphanumeric() || b"/+:.".contains(&c))
                {
                    cx.error("invalid-hash", here, format!("'{d}' is not an SSDEEP hash"));
                }
            }
            "TLSH" => {
                if d.len() != 70 || !d.bytes().all(is_hex) {
                    cx.error(
                        "invalid-hash",
                        here,
                        format!("a TLSH hash must be 70 hexadecimal digits, got '{d}'"),
                    );
                }
            }
            _ => {
                if alg.len() < 3
                    || alg.len() > 250
                    || !alg
                        .bytes()
                        .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
                {
                    cx.error(
                        "invalid-hash-algorithm",
                        here,
                        format!("'{alg}' is not a valid hash algorithm name"),
                    );
                } else if !alg.starts_with("x_") {
                    cx.warn(
                        "hash-algorithm-not-in-vocabulary",
                        here,
                        format!("'{alg}' is not in hash-algorithm-ov; custom names should start with 'x_'"),
                    );
                }
            }
        }
    }
}

/// Shape of an RFC 5646 language tag (`en`, `pt-BR`, `zh-Hant-TW`).
pub(crate) fn language_tag_ok(s: &str) -> bool {
    let mut parts = s.split('-');
    let Some(first) = parts.next() else {
        return false;
    };
    let first_ok = (2..=8).contains(&first.len()) && first.bytes().all(|c| c.is_ascii_alphabetic());
    first_ok
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|c| c.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert_eq!(
            identifier("indicator--33fe3b22-0201-47cf-85d0-97c02164528d"),
            Ok("indicator")
        );
        assert!(identifier("indicator--33fe3b22-0201-07cf-85d0-97c02164528d").is_err());
        assert!(identifier("indicator--33fe3b22-0201-47cf-c5d0-97c02164528d").is_err());
        assert!(identifier("indicator-33fe3b22-0201-47cf-85d0-97c02164528d").is_err());
        assert!(identifier("Indicator--33fe3b22-0201-47cf-85d0-97c02164528d").is_err());
    }

    #[test]
    fn pointers_escape() {
        let r = Ptr::root("/objects/1");
        let k = r.key("a/b~c");
        assert_eq!(k.idx(2).render(), "/objects/1/a~1b~0c/2");
    }

    #[test]
    fn timestamps_need_millis_when_asked() {
        assert!(timestamp("2020-01-01T00:00:00Z", false).is_ok());
        assert!(timestamp("2020-01-01T00:00:00Z", true).is_err());
        assert!(timestamp("2020-01-01T00:00:00.12Z", true).is_err());
        assert!(timestamp("2020-01-01T00:00:00.123Z", true).is_ok());
    }
}

#[cfg(test)]
mod split_tests {
    use super::split_identifier;

    #[test]
    fn splits_like_split_once() {
        for s in [
            "a--b",
            "--",
            "a-b--c--d",
            "a---b",
            "no",
            "",
            "é--ü",
            "x-",
            "-",
            "ab--",
        ] {
            assert_eq!(split_identifier(s), s.split_once("--"), "{s:?}");
        }
    }
}

#[cfg(test)]
mod identifier_tests {
    use super::*;
    use proptest::prelude::*;

    /// The checks `identifier` runs when the quick path declines.
    fn general(s: &str) -> Result<&str, String> {
        let (ty, uuid) = split_identifier(s).ok_or("split")?;
        if type_name_error(ty).is_some() || uuid_error(uuid).is_some() {
            return Err("refused".into());
        }
        Ok(ty)
    }

    /// Valid identifiers with each byte in turn replaced by bytes that matter here
    /// (dashes, hex and non-hex letters, digits, upper case, non-ASCII), cut short
    /// and lengthened: the quick path accepts only what the general checks accept,
    /// with the same type, and accepts every valid one.
    #[test]
    fn the_quick_path_agrees_with_the_general_checks() {
        let valid = [
            "indicator--33fe3b22-0201-47cf-85d0-97c02164528d",
            "x-custom-thing--33FE3B22-0201-17cf-B5d0-97c02164528d",
            "abc--00000000-0000-5000-a000-000000000000",
        ];
        let mut tried = 0;
        for v in valid {
            assert_eq!(well_formed_identifier(v), general(v).ok(), "{v}");
            assert!(well_formed_identifier(v).is_some(), "{v}");
            for i in 0..v.len() {
                for b in ["-", "--", "a", "g", "G", "A", "0", "6", "9", "é", ""] {
                    let s = format!("{}{b}{}", &v[..i], &v[i + 1..]);
                    let quick = well_formed_identifier(&s);
                    assert_eq!(quick, general(&s).ok(), "{s:?}");
                    tried += 1;
                }
                let cut = &v[..i];
                assert_eq!(well_formed_identifier(cut), general(cut).ok(), "{cut:?}");
            }
        }
        assert!(tried > 1000);
    }

    proptest! {
        #[test]
        fn quick_never_accepts_what_the_general_checks_refuse(
            ty in "[a-z0-9-]{0,12}",
            sep in "-{0,3}",
            uuid in "[0-9a-fA-F-]{30,40}",
        ) {
            let s = format!("{ty}{sep}{uuid}");
            if let Some(t) = well_formed_identifier(&s) {
                prop_assert_eq!(general(&s), Ok(t));
            }
        }
    }
}
