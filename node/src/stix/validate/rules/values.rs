//! The checks of one property value.

use super::super::checks::{self, Ctx, Ptr, json_type};
use super::kinds::*;
use crate::stix::timestamp::Timestamp;
use serde_json::Value;

pub(super) fn str_of<'v>(cx: &mut Ctx, at: Ptr, name: &str, v: &'v Value) -> Option<&'v str> {
    match v {
        Value::String(s) => Some(s),
        _ => {
            cx.error(
                "invalid-property-type",
                at,
                format!("'{name}' must be a string, not {}", json_type(v)),
            );
            None
        }
    }
}

pub(super) fn list_of<'v>(cx: &mut Ctx, at: Ptr, name: &str, v: &'v Value) -> Option<&'v [Value]> {
    match v {
        Value::Array(a) if a.is_empty() => {
            cx.error(
                "empty-list",
                at,
                format!("'{name}' must not be an empty list"),
            );
            None
        }
        Value::Array(a) => Some(a),
        _ => {
            cx.error(
                "invalid-property-type",
                at,
                format!("'{name}' must be a list, not {}", json_type(v)),
            );
            None
        }
    }
}

pub(super) fn reference(cx: &mut Ctx, at: Ptr, name: &str, v: &Value, targets: &[&str]) {
    let Some(s) = str_of(cx, at, name, v) else {
        return;
    };
    match checks::identifier(s) {
        Ok(t) if !target_ok(t, targets) => cx.error(
            "invalid-reference-type",
            at,
            format!(
                "'{name}' must refer to {}, not a {t}",
                describe_targets(targets)
            ),
        ),
        Ok(_) => {}
        Err(e) => cx.error("invalid-identifier", at, e),
    }
}

pub(super) fn vocab(
    cx: &mut Ctx,
    at: Ptr,
    name: &str,
    v: &Value,
    vocab_name: &str,
    values: &[&str],
) {
    if let Some(s) = str_of(cx, at, name, v)
        && !values.contains(&s)
    {
        cx.warn(
            "vocabulary-value",
            at,
            format!("'{s}' is not in the {vocab_name} vocabulary"),
        );
    }
}

pub(super) fn closed(cx: &mut Ctx, at: Ptr, name: &str, v: &Value, values: &[&str]) {
    if let Some(s) = str_of(cx, at, name, v)
        && !values.contains(&s)
    {
        cx.error(
            "invalid-enum-value",
            at,
            format!(
                "'{s}' is not allowed for '{name}'; use one of {}",
                values.join(", ")
            ),
        );
    }
}

/// Checks one property value against its kind.
pub(super) fn value(cx: &mut Ctx, at: Ptr, name: &str, v: &Value, k: Kind, obj: &Obj) {
    match k {
        Kind::Any => {}
        Kind::Str => {
            str_of(cx, at, name, v);
        }
        Kind::Bool => {
            if !v.is_boolean() {
                cx.error(
                    "invalid-property-type",
                    at,
                    format!("'{name}' must be a boolean, not {}", json_type(v)),
                );
            }
        }
        Kind::Int(lo, hi) => match v.as_i64() {
            Some(n) if n < lo || n > hi => cx.error(
                "out-of-range",
                at,
                format!("'{name}' must be between {lo} and {hi}, got {n}"),
            ),
            Some(_) => {}
            None => {
                if v.as_u64().is_some() {
                    cx.error("out-of-range", at, format!("'{name}' is too large"));
                } else {
                    cx.error(
                        "invalid-property-type",
                        at,
                        format!("'{name}' must be an integer, not {v}"),
                    );
                }
            }
        },
        Kind::Num(lo, hi) => match v.as_f64() {
            Some(n) if n < lo || n > hi => cx.error(
                "out-of-range",
                at,
                format!("'{name}' must be between {lo} and {hi}, got {n}"),
            ),
            Some(_) => {}
            None => cx.error(
                "invalid-property-type",
                at,
                format!("'{name}' must be a number, not {}", json_type(v)),
            ),
        },
        Kind::Ts | Kind::TsMs => {
            if let Some(s) = str_of(cx, at, name, v)
                && let Err(e) = checks::timestamp(s, matches!(k, Kind::TsMs))
            {
                cx.error("invalid-timestamp", at, format!("'{name}': {e}"));
            }
        }
        Kind::Ref(t) => reference(cx, at, name, v, t),
        Kind::Refs(t) => {
            if let Some(a) = list_of(cx, at, name, v) {
                for (i, e) in a.iter().enumerate() {
                    reference(cx, at.idx(i), name, e, t);
                }
            }
        }
        Kind::Strs => {
            if let Some(a) = list_of(cx, at, name, v) {
                for (i, e) in a.iter().enumerate() {
                    str_of(cx, at.idx(i), name, e);
                }
            }
        }
        Kind::Open(vn, vals) => vocab(cx, at, name, v, vn, vals),
        Kind::OpenList(vn, vals) => {
            if let Some(a) = list_of(cx, at, name, v) {
                for (i, e) in a.iter().enumerate() {
                    vocab(cx, at.idx(i), name, e, vn, vals);
                }
            }
        }
        Kind::Closed(vals) => closed(cx, at, name, v, vals),
        Kind::ClosedList(vals) => {
            if let Some(a) = list_of(cx, at, name, v) {
                for (i, e) in a.iter().enumerate() {
                    closed(cx, at.idx(i), name, e, vals);
                }
            }
        }
        Kind::Hashes => checks::hashes(cx, at, v),
        Kind::Phases => {
            if let Some(a) = list_of(cx, at, name, v) {
                for (i, e) in a.iter().enumerate() {
                    kill_chain_phase(cx, at.idx(i), e);
                }
            }
        }
        Kind::Dict => match v {
            Value::Object(d) if d.is_empty() => cx.error(
                "empty-dictionary",
                at,
                format!("'{name}' must not be empty"),
            ),
            Value::Object(d) => {
                for k in d.keys() {
                    if let Some(why) = checks::dict_key_error(k) {
                        cx.warn("dictionary-key-format", at.key(k), format!("'{k}': {why}"));
                    }
                }
            }
            _ => cx.error(
                "invalid-property-type",
                at,
                format!("'{name}' must be an object, not {}", json_type(v)),
            ),
        },
        Kind::List => {
            list_of(cx, at, name, v);
        }
        Kind::Hex => {
            if let Some(s) = str_of(cx, at, name, v)
                && (s.len() % 2 != 0 || !s.bytes().all(|c| c.is_ascii_hexdigit()))
            {
                cx.error("invalid-hex", at, format!("'{name}' must be hexadecimal"));
            }
        }
        Kind::Binary => {
            if let Some(s) = str_of(cx, at, name, v) {
                use base64::Engine;
                if base64::engine::general_purpose::STANDARD.decode(s).is_err() {
                    cx.error("invalid-binary", at, format!("'{name}' must be base64"));
                }
            }
        }
        Kind::Lang => {
            if let Some(s) = str_of(cx, at, name, v)
                && !checks::language_tag_ok(s)
            {
                cx.error(
                    "invalid-language",
                    at,
                    format!("'{s}' is not an RFC 5646 language tag"),
                );
            }
        }
        Kind::SpecVersion => {
            if let Some(s) = str_of(cx, at, name, v)
                && s != "2.1"
            {
                cx.error(
                    "invalid-spec-version",
                    at,
                    format!("spec_version must be '2.1', not '{s}'"),
                );
            }
        }
        Kind::ExtRefs => {
            if let Some(a) = list_of(cx, at, name, v) {
                for (i, e) in a.iter().enumerate() {
                    external_reference(cx, at.idx(i), e);
                }
            }
        }
        Kind::Granular => {
            if let Some(a) = list_of(cx, at, name, v) {
                for (i, e) in a.iter().enumerate() {
                    granular_marking(cx, at.idx(i), e, obj);
                }
            }
        }
        Kind::Extensions => extensions(cx, at, v),
    }
}

pub(super) fn kill_chain_phase(cx: &mut Ctx, at: Ptr, v: &Value) {
    let Value::Object(m) = v else {
        cx.error(
            "invalid-property-type",
            at,
            "a kill chain phase must be an object".into(),
        );
        return;
    };
    for p in ["kill_chain_name", "phase_name"] {
        match m.get(p) {
            None => cx.error(
                "missing-property",
                at.key(p),
                format!("kill chain phase needs '{p}'"),
            ),
            Some(v) => {
                if let Some(s) = str_of(cx, at.key(p), p, v)
                    && !s
                        .bytes()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
                {
                    cx.warn(
                        "kill-chain-name-format",
                        at.key(p),
                        format!("'{s}' should be all lowercase with hyphens"),
                    );
                }
            }
        }
    }
}

pub(super) fn external_reference(cx: &mut Ctx, at: Ptr, v: &Value) {
    let Value::Object(m) = v else {
        cx.error(
            "invalid-property-type",
            at,
            "an external reference must be an object".into(),
        );
        return;
    };
    let source = match m.get("source_name") {
        None => {
            cx.error(
                "missing-property",
                at.key("source_name"),
                "external reference needs 'source_name'".into(),
            );
            None
        }
        Some(v) => str_of(cx, at.key("source_name"), "source_name", v),
    };
    for p in ["description", "url", "external_id"] {
        if let Some(v) = m.get(p) {
            str_of(cx, at.key(p), p, v);
        }
    }
    if let Some(h) = m.get("hashes") {
        checks::hashes(cx, at.key("hashes"), h);
    }
    if !(m.contains_key("description") || m.contains_key("url") || m.contains_key("external_id")) {
        cx.error(
            "external-reference-incomplete",
            at,
            "an external reference needs at least one of description, url, external_id".into(),
        );
    }
    let ext_id = m.get("external_id").and_then(Value::as_str);
    match (source, ext_id) {
        (Some("cve"), Some(id)) if !cve_ok(id) => cx.error(
            "invalid-external-id",
            at.key("external_id"),
            format!("'{id}' is not a CVE id (CVE-YYYY-NNNN)"),
        ),
        (Some("capec"), Some(id)) if !capec_ok(id) => cx.error(
            "invalid-external-id",
            at.key("external_id"),
            format!("'{id}' is not a CAPEC id (CAPEC-N)"),
        ),
        (Some(s @ ("cve" | "capec")), None) => cx.error(
            "missing-property",
            at.key("external_id"),
            format!("a '{s}' external reference needs 'external_id'"),
        ),
        _ => {}
    }
}

pub(super) fn cve_ok(id: &str) -> bool {
    let Some(rest) = id.strip_prefix("CVE-") else {
        return false;
    };
    let Some((year, num)) = rest.split_once('-') else {
        return false;
    };
    year.len() == 4
        && year.bytes().all(|c| c.is_ascii_digit())
        && num.len() >= 4
        && num.bytes().all(|c| c.is_ascii_digit())
        && (num.len() == 4 || !num.starts_with('0'))
}

pub(super) fn capec_ok(id: &str) -> bool {
    id.strip_prefix("CAPEC-")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()))
}

pub(super) fn granular_marking(cx: &mut Ctx, at: Ptr, v: &Value, obj: &Obj) {
    let Value::Object(m) = v else {
        cx.error(
            "invalid-property-type",
            at,
            "a granular marking must be an object".into(),
        );
        return;
    };
    match (m.get("marking_ref"), m.get("lang")) {
        (Some(r), None) => reference(cx, at.key("marking_ref"), "marking_ref", r, MARKING),
        (None, Some(l)) => value(cx, at.key("lang"), "lang", l, Kind::Lang, obj),
        (Some(_), Some(_)) => cx.error(
            "granular-marking-ambiguous",
            at,
            "a granular marking has either marking_ref or lang, not both".into(),
        ),
        (None, None) => cx.error(
            "missing-property",
            at.key("marking_ref"),
            "a granular marking needs marking_ref or lang".into(),
        ),
    }
    let Some(sel) = m.get("selectors") else {
        cx.error(
            "missing-property",
            at.key("selectors"),
            "a granular marking needs selectors".into(),
        );
        return;
    };
    let sp = at.key("selectors");
    if let Some(a) = list_of(cx, sp, "selectors", sel) {
        for (i, s) in a.iter().enumerate() {
            if let Some(s) = str_of(cx, sp.idx(i), "selectors", s)
                && !selector_resolves(obj, s)
            {
                cx.error(
                    "invalid-selector",
                    sp.idx(i),
                    format!("selector '{s}' does not select a property of this object"),
                );
            }
        }
    }
}

/// Whether a granular-marking selector (`a.b.[0].c`) names a part of the object.
pub(super) fn selector_resolves(obj: &Obj, sel: &str) -> bool {
    let mut parts = sel.split('.');
    let Some(first) = parts.next() else {
        return false;
    };
    let Some(mut cur) = obj.get(first) else {
        return false;
    };
    for part in parts {
        let next = if let Some(ix) = part.strip_prefix('[').and_then(|p| p.strip_suffix(']')) {
            match (ix.parse::<usize>(), cur) {
                (Ok(i), Value::Array(a)) => a.get(i),
                _ => None,
            }
        } else {
            cur.as_object().and_then(|m| m.get(part))
        };
        match next {
            Some(n) => cur = n,
            None => return false,
        }
    }
    true
}

pub(super) fn extensions(cx: &mut Ctx, at: Ptr, v: &Value) {
    let Value::Object(m) = v else {
        cx.error(
            "invalid-property-type",
            at,
            format!("extensions must be an object, not {}", json_type(v)),
        );
        return;
    };
    if m.is_empty() {
        cx.error(
            "empty-dictionary",
            at,
            "extensions must not be empty".into(),
        );
    }
    for (k, e) in m {
        let here = at.key(k);
        if k.starts_with("extension-definition--") {
            match checks::identifier(k) {
                Ok(_) => {}
                Err(e) => cx.error("invalid-extension-key", here, e),
            }
            match e {
                Value::Object(em) => match em.get("extension_type") {
                    Some(t) => closed(
                        cx,
                        here.key("extension_type"),
                        "extension_type",
                        t,
                        EXTENSION_TYPES,
                    ),
                    None => cx.error(
                        "missing-property",
                        here.key("extension_type"),
                        "an extension-definition extension needs 'extension_type'".into(),
                    ),
                },
                _ => cx.error(
                    "invalid-property-type",
                    here,
                    "an extension must be an object".into(),
                ),
            }
        } else {
            let ok = k
                .strip_suffix("-ext")
                .is_some_and(|n| checks::type_name_error(&format!("{n}-ext")).is_none());
            if !ok {
                cx.error(
                    "invalid-extension-key",
                    here,
                    format!("'{k}' is neither an extension-definition id nor a '<name>-ext' name"),
                );
            }
            match e {
                Value::Object(em) if em.is_empty() => cx.error(
                    "empty-dictionary",
                    here,
                    "an extension must not be empty".into(),
                ),
                Value::Object(_) => {}
                _ => cx.error(
                    "invalid-property-type",
                    here,
                    "an extension must be an object".into(),
                ),
            }
        }
    }
}

pub(super) fn ts_of(m: &Obj, k: &str) -> Option<Timestamp> {
    m.get(k)
        .and_then(Value::as_str)
        .and_then(|s| Timestamp::parse(s).ok())
}

/// `later` must be at or after `earlier` (strictly after when `strict`); compared as
/// instants, not as text.
pub(super) fn order(cx: &mut Ctx, at: Ptr, m: &Obj, earlier: &str, later: &str, strict: bool) {
    // `later` is the one usually absent (valid_until, last_seen), so look at it first;
    // identical text is the same instant (or unparseable, reported elsewhere), which
    // saves parsing `created` and `modified` a second time on nearly every object.
    let Some(later_v) = m.get(later) else {
        return;
    };
    if !strict && m.get(earlier) == Some(later_v) {
        return;
    }
    let (Some(a), Some(b)) = (ts_of(m, earlier), ts_of(m, later)) else {
        return;
    };
    let bad = if strict { b <= a } else { b < a };
    if bad {
        cx.error(
            "timestamp-order",
            at.key(later),
            format!(
                "'{later}' must be {} '{earlier}'",
                if strict {
                    "later than"
                } else {
                    "later than or equal to"
                }
            ),
        );
    }
}
