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
