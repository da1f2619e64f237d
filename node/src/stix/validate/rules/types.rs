//! The rules of one object type that relate several of its properties.

use super::super::check_stix_pattern;
use super::super::checks::{self, Ctx, Ptr};
use super::kinds::*;
use super::values::*;
use crate::stix::observable::keys_from_pattern;
use serde_json::Value;

pub(super) fn seen(cx: &mut Ctx, at: Ptr, m: &Obj) {
    order(cx, at, m, "first_seen", "last_seen", false);
}

pub(super) fn indicator(cx: &mut Ctx, at: Ptr, m: &Obj) {
    order(cx, at, m, "valid_from", "valid_until", true);
    if m.get("pattern_type").and_then(Value::as_str) == Some("stix")
        && let Some(p) = m.get("pattern").and_then(Value::as_str)
    {
        match check_stix_pattern(p) {
            Ok(pattern) => cx.pattern_keys = Some(keys_from_pattern(&pattern)),
            Err((offset, msg)) => cx.error(
                "invalid-pattern",
                at.key("pattern"),
                format!("pattern does not parse at character {offset}: {msg}"),
            ),
        }
    }
}

pub(super) fn location(cx: &mut Ctx, at: Ptr, m: &Obj) {
    let lat = m.contains_key("latitude");
    let lon = m.contains_key("longitude");
    if lat != lon {
        cx.error(
            "dependent-property",
            at.key(if lat { "longitude" } else { "latitude" }),
            "latitude and longitude must be given together".into(),
        );
    }
    if m.contains_key("precision") && !(lat && lon) {
        cx.error(
            "dependent-property",
            at.key("precision"),
            "precision requires latitude and longitude".into(),
        );
    }
    if !(m.contains_key("region") || m.contains_key("country") || (lat && lon)) {
        cx.error(
            "missing-property",
            at,
            "a location needs region, country, or latitude and longitude".into(),
        );
    }
}

pub(super) fn malware(cx: &mut Ctx, at: Ptr, m: &Obj) {
    seen(cx, at, m);
    if m.get("is_family") == Some(&Value::Bool(true)) && !m.contains_key("name") {
        cx.error(
            "missing-property",
            at.key("name"),
            "a malware family (is_family: true) needs a name".into(),
        );
    }
}

pub(super) fn malware_analysis(cx: &mut Ctx, at: Ptr, m: &Obj) {
    if !(m.contains_key("result") || m.contains_key("analysis_sco_refs")) {
        cx.error(
            "missing-property",
            at,
            "a malware-analysis needs result or analysis_sco_refs".into(),
        );
    }
    order(cx, at, m, "analysis_started", "analysis_ended", false);
}

pub(super) fn observed_data(cx: &mut Ctx, at: Ptr, m: &Obj) {
    order(cx, at, m, "first_observed", "last_observed", false);
    match (m.contains_key("objects"), m.contains_key("object_refs")) {
        (true, true) => cx.error(
            "mutually-exclusive",
            at.key("objects"),
            "objects and object_refs must not both be present".into(),
        ),
        (false, false) => cx.error(
            "missing-property",
            at.key("object_refs"),
            "observed-data needs object_refs (or the deprecated objects)".into(),
        ),
        (true, false) => cx.warn(
            "deprecated-property",
            at.key("objects"),
            "'objects' is deprecated; use object_refs".into(),
        ),
        _ => {}
    }
}

pub(super) fn relationship(cx: &mut Ctx, at: Ptr, m: &Obj) {
    order(cx, at, m, "start_time", "stop_time", true);
    if let Some(t) = m.get("relationship_type").and_then(Value::as_str)
        && (t.is_empty()
            || !t
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-'))
    {
        cx.error(
            "invalid-relationship-type",
            at.key("relationship_type"),
            format!("'{t}' may only contain a-z, 0-9 and '-'"),
        );
    }
}

pub(super) fn language_content(cx: &mut Ctx, at: Ptr, m: &Obj) {
    let Some(Value::Object(c)) = m.get("contents") else {
        return;
    };
    let cp = at.key("contents");
    for (lang, tr) in c {
        if !checks::language_tag_ok(lang) {
            cx.error(
                "invalid-language",
                cp.key(lang),
                format!("'{lang}' is not an RFC 5646 language tag"),
            );
        }
        match tr {
            Value::Object(t) => {
                for k in t.keys() {
                    if let Some(why) = checks::property_name_error(k) {
                        cx.error(
                            "invalid-property-name",
                            cp.key(lang).key(k),
                            format!("'{k}': {why}"),
                        );
                    }
                }
            }
            _ => cx.error(
                "invalid-property-type",
                cp.key(lang),
                "each language's contents must be an object".into(),
            ),
        }
    }
}

pub(super) fn extension_definition(cx: &mut Ctx, at: Ptr, m: &Obj) {
    if !m.contains_key("created_by_ref") {
        cx.error(
            "missing-property",
            at.key("created_by_ref"),
            "an extension-definition needs created_by_ref".into(),
        );
    }
}

/// TLP 1.0 levels and the ids the specification fixes for them.
pub(super) const TLP1: &[(&str, &str)] = &[
    (
        "white",
        "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9",
    ),
    (
        "green",
        "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
    ),
    (
        "amber",
        "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82",
    ),
    (
        "red",
        "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed",
    ),
];

/// TLP 2.0 levels and their fixed ids.
pub(super) const TLP2: &[(&str, &str)] = &[
    (
        "clear",
        "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    ),
    (
        "green",
        "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    ),
    (
        "amber",
        "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    ),
    (
        "amber+strict",
        "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    ),
    (
        "red",
        "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
    ),
];

pub(super) const TLP2_EXTENSION: &str =
    "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d";

pub(super) fn marking_definition(cx: &mut Ctx, at: Ptr, m: &Obj) {
    let id = m.get("id").and_then(Value::as_str).unwrap_or("");
    if let Some(Value::Array(refs)) = m.get("object_marking_refs")
        && refs.iter().any(|r| r.as_str() == Some(id))
    {
        cx.error(
            "circular-marking",
            at.key("object_marking_refs"),
            "a marking definition must not mark itself".into(),
        );
    }
    let dt = m.get("definition_type").and_then(Value::as_str);
    let has_ext = m.contains_key("extensions");
    match (
        dt.is_some() || m.contains_key("definition_type"),
        m.get("definition"),
    ) {
        (true, None) => cx.error(
            "missing-property",
            at.key("definition"),
            "definition_type requires definition".into(),
        ),
        (false, Some(_)) => cx.error(
            "missing-property",
            at.key("definition_type"),
            "definition requires definition_type".into(),
        ),
        (false, None) if !has_ext => cx.error(
            "missing-property",
            at.key("definition_type"),
            "a marking definition needs definition_type and definition, or extensions".into(),
        ),
        _ => {}
    }
    let def = m.get("definition");
    let dp = at.key("definition");
    match dt {
        Some("tlp") => {
            let level = def.and_then(|d| d.get("tlp")).and_then(Value::as_str);
            match level.and_then(|l| TLP1.iter().find(|(n, _)| *n == l)) {
                None => cx.error(
                    "invalid-tlp",
                    dp.key("tlp"),
                    "a TLP definition needs tlp: white, green, amber or red".into(),
                ),
                Some((l, fixed)) if *fixed != id => cx.error(
                    "tlp-id-mismatch",
                    at.key("id"),
                    format!(
                        "TLP:{} must use the predefined id {fixed}",
                        l.to_uppercase()
                    ),
                ),
                Some(_) => {}
            }
        }
        Some("statement")
            if def
                .and_then(|d| d.get("statement"))
                .and_then(Value::as_str)
                .is_none() =>
        {
            cx.error(
                "missing-property",
                dp.key("statement"),
                "a statement marking needs definition.statement (a string)".into(),
            );
        }
        _ => {}
    }
    if let Some(ext) = m.get("extensions").and_then(|e| e.get(TLP2_EXTENSION)) {
        let exts = at.key("extensions");
        let ep = exts.key(TLP2_EXTENSION);
        let level = ext.get("tlp_2_0").and_then(Value::as_str);
        match level.and_then(|l| TLP2.iter().find(|(n, _)| *n == l)) {
            None => cx.error(
                "invalid-tlp",
                ep.key("tlp_2_0"),
                "the TLP 2.0 extension needs tlp_2_0: clear, green, amber, amber+strict or red"
                    .into(),
            ),
            Some((l, fixed)) if *fixed != id => cx.warn(
                "tlp-id-mismatch",
                at.key("id"),
                format!(
                    "TLP:{} should use the predefined id {fixed}",
                    l.to_uppercase()
                ),
            ),
            Some(_) => {}
        }
    }
}

pub(super) fn artifact(cx: &mut Ctx, at: Ptr, m: &Obj) {
    match (m.contains_key("payload_bin"), m.contains_key("url")) {
        (true, true) => cx.error(
            "mutually-exclusive",
            at.key("url"),
            "payload_bin and url must not both be present".into(),
        ),
        (false, true) if !m.contains_key("hashes") => cx.error(
            "missing-property",
            at.key("hashes"),
            "an artifact with url needs hashes".into(),
        ),
        _ => {}
    }
    if m.contains_key("decryption_key") && !m.contains_key("encryption_algorithm") {
        cx.error(
            "dependent-property",
            at.key("decryption_key"),
            "decryption_key requires encryption_algorithm".into(),
        );
    }
    sco_id(cx, at, m);
}

pub(super) fn email_message(cx: &mut Ctx, at: Ptr, m: &Obj) {
    match m.get("is_multipart") {
        Some(Value::Bool(true)) if m.contains_key("body") => cx.error(
            "mutually-exclusive",
            at.key("body"),
            "a multipart message uses body_multipart, not body".into(),
        ),
        Some(Value::Bool(false)) if m.contains_key("body_multipart") => cx.error(
            "mutually-exclusive",
            at.key("body_multipart"),
            "a non-multipart message uses body, not body_multipart".into(),
        ),
        _ => {}
    }
    if let Some(Value::Array(parts)) = m.get("body_multipart") {
        let bp = at.key("body_multipart");
        for (i, p) in parts.iter().enumerate() {
            match p {
                Value::Object(pm) => {
                    if pm.contains_key("body") && pm.contains_key("body_raw_ref") {
                        cx.error(
                            "mutually-exclusive",
                            bp.idx(i),
                            "a MIME part has body or body_raw_ref, not both".into(),
                        );
                    }
                    if let Some(r) = pm.get("body_raw_ref") {
                        reference(
                            cx,
                            bp.idx(i).key("body_raw_ref"),
                            "body_raw_ref",
                            r,
                            FILE_ARTIFACT,
                        );
                    }
                }
                _ => cx.error(
                    "invalid-property-type",
                    bp.idx(i),
                    "a MIME part must be an object".into(),
                ),
            }
        }
    }
    sco_id(cx, at, m);
}

pub(super) fn file(cx: &mut Ctx, at: Ptr, m: &Obj) {
    if !(m.contains_key("hashes") || m.contains_key("name")) {
        cx.error("missing-property", at, "a file needs hashes or name".into());
    }
    sco_id(cx, at, m);
}

pub(super) fn network_traffic(cx: &mut Ctx, at: Ptr, m: &Obj) {
    if !(m.contains_key("src_ref") || m.contains_key("dst_ref")) {
        cx.error(
            "missing-property",
            at,
            "network-traffic needs src_ref or dst_ref".into(),
        );
    }
    if m.get("is_active") == Some(&Value::Bool(true)) && m.contains_key("end") {
        cx.error(
            "mutually-exclusive",
            at.key("end"),
            "an active flow (is_active: true) must not have end".into(),
        );
    }
    order(cx, at, m, "start", "end", false);
    sco_id(cx, at, m);
}

pub(super) fn process(cx: &mut Ctx, at: Ptr, m: &Obj) {
    if let Some(id) = m.get("id").and_then(Value::as_str)
        && checks::identifier(id).is_ok()
        && checks::uuid_version(id) != Some(4)
    {
        cx.error(
            "sco-id-not-v4",
            at.key("id"),
            "a process id must be a UUIDv4".into(),
        );
    }
    if m.len() <= 2
        || m.keys()
            .all(|k| matches!(k.as_str(), "type" | "id" | "spec_version"))
    {
        cx.error(
            "missing-property",
            at,
            "a process needs at least one property".into(),
        );
    }
}

pub(super) fn registry_key(cx: &mut Ctx, at: Ptr, m: &Obj) {
    if let Some(Value::Array(vals)) = m.get("values") {
        let vp = at.key("values");
        for (i, v) in vals.iter().enumerate() {
            match v {
                Value::Object(vm) => {
                    let item = vp.idx(i);
                    for (k, x) in vm {
                        let here = item.key(k);
                        match k.as_str() {
                            "name" | "data" => {
                                str_of(cx, here, k, x);
                            }
                            "data_type" => closed(cx, here, k, x, REG_DATATYPES),
                            _ => {}
                        }
                    }
                }
                _ => cx.error(
                    "invalid-property-type",
                    vp.idx(i),
                    "a registry value must be an object".into(),
                ),
            }
        }
    }
    sco_id(cx, at, m);
}

pub(super) fn x509(cx: &mut Ctx, at: Ptr, m: &Obj) {
    if m.keys().all(|k| {
        matches!(
            k.as_str(),
            "type"
                | "id"
                | "spec_version"
                | "object_marking_refs"
                | "granular_markings"
                | "defanged"
                | "extensions"
        )
    }) {
        cx.error(
            "missing-property",
            at,
            "an x509-certificate needs at least one certificate property".into(),
        );
    }
    order(
        cx,
        at,
        m,
        "validity_not_before",
        "validity_not_after",
        false,
    );
    sco_id(cx, at, m);
}

/// The namespace STIX 2.1 uses for deterministic SCO ids (UUIDv5).
pub(super) const SCO_NAMESPACE: uuid::Uuid = uuid::Uuid::from_bytes([
    0x00, 0xab, 0xed, 0xb4, 0xaa, 0x42, 0x46, 0x6c, 0x9c, 0x01, 0xfe, 0xd2, 0x33, 0x15, 0xa9, 0xb7,
]);

pub(super) fn id_contributing(ty: &str) -> &'static [&'static str] {
    match ty {
        "artifact" => &["hashes", "payload_bin"],
        "autonomous-system" => &["number"],
        "directory" => &["path"],
        "domain-name" | "email-addr" | "ipv4-addr" | "ipv6-addr" | "mac-addr" | "url" => &["value"],
        "email-message" => &["from_ref", "subject", "body"],
        "file" => &["hashes", "name", "extensions", "parent_directory_ref"],
        "mutex" => &["name"],
        "network-traffic" => &[
            "start",
            "end",
            "src_ref",
            "dst_ref",
            "src_port",
            "dst_port",
            "protocols",
            "extensions",
        ],
        "software" => &["name", "cpe", "swid", "vendor", "version"],
        "user-account" => &["account_type", "user_id", "account_login"],
        "windows-registry-key" => &["key", "values"],
        "x509-certificate" => &["hashes", "serial_number"],
        _ => &[],
    }
}

pub(super) fn uuid5_of(map: &Obj) -> Option<String> {
    let bytes = serde_json_canonicalizer::to_vec(map).ok()?;
    Some(uuid::Uuid::new_v5(&SCO_NAMESPACE, &bytes).to_string())
}

/// Warns when an SCO's id is not the deterministic UUIDv5 of its id-contributing
/// properties (so two producers reporting the same observable would use different
/// ids), and errors when an SCO without any of them does not use a UUIDv4.
pub(super) fn sco_id(cx: &mut Ctx, at: Ptr, m: &Obj) {
    let (Some(ty), Some(id)) = (
        m.get("type").and_then(Value::as_str),
        m.get("id").and_then(Value::as_str),
    ) else {
        return;
    };
    if checks::identifier(id).is_err() {
        return;
    }
    let Some((_, uuid)) = id.split_once("--") else {
        return;
    };
    let props = id_contributing(ty);
    let mut contrib = Obj::new();
    for p in props {
        if let Some(v) = m.get(*p) {
            contrib.insert((*p).to_string(), v.clone());
        }
    }
    if contrib.is_empty() {
        if checks::uuid_version(id) != Some(4) {
            cx.error(
                "sco-id-not-v4",
                at.key("id"),
                "an SCO without id-contributing properties must use a UUIDv4".into(),
            );
        }
        return;
    }
    let uuid = uuid.to_ascii_lowercase();
    let mut candidates = vec![uuid5_of(&contrib)];
    // Producers differ on `hashes`: the specification's examples use one preferred
    // hash, so accept the id made from any single hash too.
    if let Some(Value::Object(h)) = contrib.get("hashes").cloned() {
        for (alg, d) in h {
            let mut one = contrib.clone();
            let mut hm = Obj::new();
            hm.insert(alg, d);
            one.insert("hashes".into(), Value::Object(hm));
            candidates.push(uuid5_of(&one));
        }
    }
    if !candidates.iter().flatten().any(|c| *c == uuid) {
        let expected = candidates.first().cloned().flatten().unwrap_or_default();
        cx.warn(
            "sco-id-not-deterministic",
            at.key("id"),
            format!("the id of this {ty} should be {ty}--{expected} (UUIDv5 of its id-contributing properties)"),
        );
    }
}
