//! The walk over a bundle and its objects, applying the tables and rules.

use super::super::Report;
use super::super::checks::{self, Ctx, Ptr, json_type};
use super::kinds::*;
use super::table::*;
use super::values::*;
use crate::stix::observable::ObservableKey;
use crate::stix::tlp::{OwnLevel, level_of_markings, own_level};
use serde_json::Value;
use std::collections::HashSet;

/// Validates a bundle document; returns, for each of its objects, the observable
/// keys of its STIX pattern when it has one that parsed.
///
/// `levels` gets, per object, what its own markings say of its TLP level (found here
/// while the object is in cache).
pub(crate) fn bundle(
    doc: &Value,
    report: &mut Report,
    levels: &mut Vec<OwnLevel>,
) -> Vec<Option<Vec<ObservableKey>>> {
    let root = Ptr::root("");
    let id = doc.get("id").and_then(Value::as_str);
    let mut cx = Ctx {
        report,
        id,
        pattern_keys: None,
    };
    let Value::Object(m) = doc else {
        cx.error(
            "invalid-property-type",
            root,
            format!("a bundle must be a JSON object, not {}", json_type(doc)),
        );
        return Vec::new();
    };
    match m.get("type") {
        Some(Value::String(t)) if t == "bundle" => {}
        Some(v) => cx.error(
            "invalid-bundle",
            root.key("type"),
            format!("a bundle's type must be 'bundle', not {v}"),
        ),
        None => cx.error(
            "missing-property",
            root.key("type"),
            "a bundle needs 'type'".into(),
        ),
    }
    match m.get("id") {
        Some(Value::String(s)) => match checks::identifier(s) {
            Ok("bundle") => {}
            Ok(t) => cx.error(
                "id-type-mismatch",
                root.key("id"),
                format!("a bundle id must start with 'bundle--', not '{t}--'"),
            ),
            Err(e) => cx.error("invalid-identifier", root.key("id"), e),
        },
        Some(v) => cx.error(
            "invalid-property-type",
            root.key("id"),
            format!("id must be a string, not {}", json_type(v)),
        ),
        None => cx.error(
            "missing-property",
            root.key("id"),
            "a bundle needs 'id'".into(),
        ),
    }
    let Some(objects) = m.get("objects") else {
        return Vec::new();
    };
    let Value::Array(objects) = objects else {
        cx.error(
            "invalid-property-type",
            root.key("objects"),
            "objects must be an array".into(),
        );
        return Vec::new();
    };
    if objects.is_empty() {
        cx.error(
            "empty-list",
            root.key("objects"),
            "objects must not be empty".into(),
        );
    }
    let objs_ptr = root.key("objects");
    // Versions seen so far, to find duplicates while each object is still in cache
    // (a second pass over a large bundle costs a cache miss per object) and in
    // expected linear time.
    let mut versions: HashSet<(&str, Option<&str>)> = HashSet::with_capacity(objects.len());
    let mut keys = Vec::with_capacity(objects.len());
    levels.reserve(objects.len());
    for (i, obj) in objects.iter().enumerate() {
        keys.push(object_at(obj, objs_ptr.idx(i), report));
        let fields = Fields::of(obj);
        duplicate(&fields, i, &mut versions, objs_ptr, report);
        levels.push(match fields.type_name {
            Some("marking-definition") => own_level(obj),
            _ => level_of_markings(fields.marking_refs, fields.granular_markings),
        });
    }
    keys
}

/// The properties of an object that the bundle-level checks read (duplicate versions,
/// TLP level), found in one pass over its members.
///
/// A map search compares the name with member names one by one, for each of the five;
/// one walk compares each member's name only with those of the same length. This runs
/// for every object published or received.
#[derive(Default)]
pub(super) struct Fields<'a> {
    id: Option<&'a str>,
    modified: Option<&'a str>,
    type_name: Option<&'a str>,
    marking_refs: Option<&'a Value>,
    granular_markings: Option<&'a Value>,
}

impl<'a> Fields<'a> {
    fn of(obj: &'a Value) -> Fields<'a> {
        let mut f = Fields::default();
        if let Value::Object(m) = obj {
            for (k, v) in m {
                match k.as_str() {
                    "id" => f.id = v.as_str(),
                    "modified" => f.modified = v.as_str(),
                    "type" => f.type_name = v.as_str(),
                    "object_marking_refs" => f.marking_refs = Some(v),
                    "granular_markings" => f.granular_markings = Some(v),
                    _ => {}
                }
            }
        }
        f
    }
}

/// Warns about an object whose id and version already appeared earlier in the bundle
/// (at the later occurrence, so the first copy stays unflagged).
pub(super) fn duplicate<'a>(
    fields: &Fields<'a>,
    i: usize,
    versions: &mut HashSet<(&'a str, Option<&'a str>)>,
    at: Ptr,
    report: &mut Report,
) {
    let Some(id) = fields.id else {
        return;
    };
    let modified = fields.modified;
    if !versions.insert((id, modified)) {
        let mut cx = Ctx {
            report,
            id: Some(id),
            pattern_keys: None,
        };
        cx.warn(
            "duplicate-object",
            at.idx(i),
            format!("object {id} appears twice with the same version"),
        );
    }
}

/// Validates one object at `base`; returns the observable keys of its STIX pattern
/// when it has one that parsed.
pub(crate) fn object(v: &Value, base: &str, report: &mut Report) -> Option<Vec<ObservableKey>> {
    object_at(v, Ptr::root(base), report)
}

/// Validates one object at `at` (the pointer is rendered only for a finding).
pub(super) fn object_at(v: &Value, at: Ptr, report: &mut Report) -> Option<Vec<ObservableKey>> {
    let Value::Object(m) = v else {
        let mut cx = Ctx {
            report,
            id: None,
            pattern_keys: None,
        };
        cx.error(
            "invalid-property-type",
            at,
            format!("a STIX object must be a JSON object, not {}", json_type(v)),
        );
        return None;
    };
    let id = m.get("id").and_then(Value::as_str);
    let mut cx = Ctx {
        report,
        id,
        pattern_keys: None,
    };
    let ty = match m.get("type") {
        Some(Value::String(t)) => {
            if let Some(why) = checks::type_name_error(t) {
                cx.error("invalid-type-name", at.key("type"), format!("'{t}': {why}"));
            } else if t == "action" {
                cx.error(
                    "reserved-type",
                    at.key("type"),
                    "'action' is a reserved type".into(),
                );
            }
            Some(t.as_str())
        }
        Some(v) => {
            cx.error(
                "invalid-property-type",
                at.key("type"),
                format!("type must be a string, not {}", json_type(v)),
            );
            None
        }
        None => {
            cx.error(
                "missing-property",
                at.key("type"),
                "every object needs 'type'".into(),
            );
            None
        }
    };
    match m.get("id") {
        Some(Value::String(s)) => match checks::identifier(s) {
            Ok(p) => {
                if let Some(t) = ty
                    && p != t
                {
                    cx.error(
                        "id-type-mismatch",
                        at.key("id"),
                        format!("the id prefix '{p}' does not match the type '{t}'"),
                    );
                }
            }
            Err(e) => cx.error("invalid-identifier", at.key("id"), e),
        },
        Some(v) => cx.error(
            "invalid-property-type",
            at.key("id"),
            format!("id must be a string, not {}", json_type(v)),
        ),
        None => cx.error(
            "missing-property",
            at.key("id"),
            "every object needs 'id'".into(),
        ),
    }
    let ty = ty?;
    match rule_for(ty) {
        Some(rule) => known(&mut cx, at, m, rule),
        None => custom_object(&mut cx, at, ty, m),
    }
    cx.pattern_keys
}

/// Most property-table entries (common ones included) any type has; [`known`] keeps
/// one slot per entry on the stack. A test checks every table fits.
pub(super) const MAX_PROPS: usize = 48;

/// Where property `k` is in the table `common` followed by `props`.
///
/// Each table is searched as a plain slice (a chained iterator was most of this
/// function's time), and names of equal length rarely share a first byte, so
/// comparing those two first skips almost every string comparison.
pub(super) fn table_index(common: &[Prop], props: &[Prop], k: &str) -> Option<usize> {
    let kb = k.as_bytes();
    let find = |table: &[Prop]| table.iter().position(|p| same_name(p.name.as_bytes(), kb));
    find(common).or_else(|| find(props).map(|i| common.len() + i))
}

/// Whether two property names are equal: length and first byte first, then the rest,
/// compared in place (names are short: a library call costs more than the bytes).
pub(super) fn same_name(n: &[u8], k: &[u8]) -> bool {
    n.len() == k.len() && n.first() == k.first() && n.iter().zip(k).all(|(a, b)| a == b)
}

pub(super) fn known(cx: &mut Ctx, at: Ptr, m: &Obj, rule: &TypeRule) {
    let common = match rule.class {
        Class::Sdo | Class::Sro | Class::Meta => COMMON,
        Class::Sco => SCO_COMMON,
        Class::Marking => MARKING_COMMON,
    };
    // One pass over the object files each property under its table entry: this runs
    // for every ingested object, and one map lookup per table entry (most of them
    // absent) cost more than the checks themselves.
    let mut slots: [Option<&Value>; MAX_PROPS] = [None; MAX_PROPS];
    let mut customs = 0usize;
    for (k, v) in m {
        match table_index(common, rule.props, k) {
            Some(i) => {
                if let Some(slot) = slots.get_mut(i) {
                    *slot = Some(v);
                }
            }
            None if k == "type" || k == "id" => {}
            None => customs += 1,
        }
    }
    for (i, p) in common.iter().chain(rule.props).enumerate() {
        let found = if i < MAX_PROPS {
            slots[i]
        } else {
            m.get(p.name)
        };
        match found {
            Some(v) => value(cx, at.key(p.name), p.name, v, p.kind, m),
            None if p.required => cx.error(
                "missing-property",
                at.key(p.name),
                format!("required property '{}' is missing", p.name),
            ),
            None => {}
        }
    }
    if customs > 0 {
        for (k, v) in m {
            if k == "type" || k == "id" || table_index(common, rule.props, k).is_some() {
                continue;
            }
            custom_property(cx, at, k, v);
        }
    }
    if rule.class != Class::Sco && rule.class != Class::Marking {
        order(cx, at, m, "created", "modified", false);
    }
    (rule.extra)(cx, at, m);
}

pub(super) fn custom_property(cx: &mut Ctx, at: Ptr, k: &str, v: &Value) {
    let here = at.key(k);
    if RESERVED.contains(&k) {
        cx.error(
            "reserved-property",
            here,
            format!("'{k}' is reserved and must not be used"),
        );
        return;
    }
    if let Some(why) = checks::property_name_error(k) {
        cx.error("invalid-property-name", here, format!("'{k}': {why}"));
    } else if !k.starts_with("x_") {
        cx.warn(
            "custom-property-prefix",
            here,
            format!("custom property '{k}' should start with 'x_'"),
        );
    }
    match v {
        Value::Null => cx.error("null-value", here, format!("'{k}' must not be null")),
        Value::Array(a) if a.is_empty() => cx.error(
            "empty-list",
            here,
            format!("'{k}' must not be an empty list"),
        ),
        _ => {}
    }
}

/// Objects of types the specification does not define: custom objects.
pub(super) fn custom_object(cx: &mut Ctx, at: Ptr, ty: &str, m: &Obj) {
    if !ty.starts_with("x-") {
        cx.warn(
            "custom-object-prefix",
            at.key("type"),
            format!("custom object type '{ty}' should start with 'x-'"),
        );
    }
    for (k, v) in m {
        let here = at.key(k);
        match k.as_str() {
            "type" | "id" => {}
            "spec_version" => value(cx, here, k, v, Kind::SpecVersion, m),
            "created" | "modified" => value(cx, here, k, v, Kind::TsMs, m),
            "created_by_ref" => value(cx, here, k, v, Kind::Ref(IDENTITY), m),
            "object_marking_refs" => value(cx, here, k, v, Kind::Refs(MARKING), m),
            "granular_markings" => value(cx, here, k, v, Kind::Granular, m),
            "external_references" => value(cx, here, k, v, Kind::ExtRefs, m),
            "confidence" => value(cx, here, k, v, Kind::Int(0, 100), m),
            "revoked" | "defanged" => value(cx, here, k, v, Kind::Bool, m),
            "extensions" => value(cx, here, k, v, Kind::Extensions, m),
            "lang" => value(cx, here, k, v, Kind::Lang, m),
            _ => {
                if let Some(why) = checks::property_name_error(k) {
                    cx.error("invalid-property-name", here, format!("'{k}': {why}"));
                }
                if RESERVED.contains(&k.as_str()) {
                    cx.error("reserved-property", here, format!("'{k}' is reserved"));
                }
                if v.is_null() {
                    cx.error("null-value", here, format!("'{k}' must not be null"));
                }
            }
        }
    }
    if m.contains_key("created") || m.contains_key("modified") {
        for req in ["spec_version", "created", "modified"] {
            if !m.contains_key(req) {
                cx.error(
                    "missing-property",
                    at.key(req),
                    format!("custom object is missing required property '{req}'"),
                );
            }
        }
    }
    order(cx, at, m, "created", "modified", false);
}

#[cfg(test)]
mod table_tests {
    use super::*;

    /// `known` files each property under one table slot: every table must fit the
    /// slots and name each property once.
    #[test]
    fn every_property_table_fits_and_has_unique_names() {
        let types = SDO_TYPES.iter().chain(SCO_TYPES).chain(NON_SDO_SCO);
        let mut checked = 0;
        for ty in types {
            let Some(rule) = rule_for(ty) else { continue };
            let common = match rule.class {
                Class::Sdo | Class::Sro | Class::Meta => COMMON,
                Class::Sco => SCO_COMMON,
                Class::Marking => MARKING_COMMON,
            };
            let names: Vec<&str> = common.iter().chain(rule.props).map(|p| p.name).collect();
            assert!(names.len() <= MAX_PROPS, "{ty}: {} properties", names.len());
            let unique: HashSet<&str> = names.iter().copied().collect();
            assert_eq!(
                unique.len(),
                names.len(),
                "{ty}: a property is listed twice"
            );
            for (i, n) in names.iter().enumerate() {
                assert_eq!(table_index(common, rule.props, n), Some(i));
                // Names that are not in the table are not found: one byte more, one
                // less, the last byte changed.
                for other in [
                    format!("{n}x"),
                    n[..n.len() - 1].to_string(),
                    format!("{}~", &n[..n.len() - 1]),
                ] {
                    if !names.contains(&other.as_str()) {
                        assert_eq!(table_index(common, rule.props, &other), None, "{other}");
                    }
                }
            }
            assert_eq!(table_index(common, rule.props, "type"), None);
            assert_eq!(table_index(common, rule.props, "id"), None);
            checked += 1;
        }
        assert!(checked >= 40, "only {checked} types have rules");
    }
}
