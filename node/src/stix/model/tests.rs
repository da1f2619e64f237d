use super::*;
use proptest::prelude::*;
use serde_json::json;

fn canonical(v: &impl Serialize) -> Vec<u8> {
    serde_json_canonicalizer::to_vec(v).unwrap()
}

fn corpus_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/bundles/valid")
}

/// Every object of every valid bundle (which include the shared OASIS corpus) keeps its
/// canonical form through the typed model, and the bundle does too.
#[test]
fn corpus_round_trip_keeps_canonical_form() {
    let mut objects = 0;
    let mut files = 0;
    for entry in std::fs::read_dir(corpus_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        files += 1;
        let raw: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let bundle: Bundle = serde_json::from_value(raw.clone())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(canonical(&raw), canonical(&bundle), "{}", path.display());
        for obj in raw["objects"].as_array().unwrap() {
            let typed: StixObject = serde_json::from_value(obj.clone()).unwrap();
            assert_eq!(
                String::from_utf8(canonical(obj)).unwrap(),
                String::from_utf8(canonical(&typed)).unwrap(),
                "{}",
                path.display()
            );
            objects += 1;
        }
    }
    assert!(
        files >= 9 && objects >= 20,
        "{files} files, {objects} objects"
    );
}

#[test]
fn optional_properties_are_not_defaulted_on_output() {
    let v = json!({
        "type": "indicator", "spec_version": "2.1",
        "id": "indicator--33fe3b22-0201-47cf-85d0-97c02164528d",
        "created": "2014-05-08T09:00:00.000Z", "modified": "2014-05-08T09:00:00.000Z",
        "pattern": "[ipv4-addr:value = '10.0.0.0']", "pattern_type": "stix",
        "valid_from": "2014-05-08T09:00:00.000000Z", "x_acme_score": 7
    });
    let typed: StixObject = serde_json::from_value(v.clone()).unwrap();
    let StixObject::Indicator(ind) = &typed else {
        panic!("not an indicator")
    };
    assert_eq!(ind.valid_from.as_str(), "2014-05-08T09:00:00.000000Z");
    assert_eq!(ind.extra["x_acme_score"], json!(7));
    assert_eq!(serde_json::to_value(&typed).unwrap(), v);
}

#[test]
fn unknown_types_are_custom() {
    let v = json!({"type": "x-acme-widget", "id": "x-acme-widget--33fe3b22-0201-47cf-85d0-97c02164528d", "size": 3});
    let typed: StixObject = serde_json::from_value(v.clone()).unwrap();
    assert!(matches!(typed, StixObject::Custom(_)));
    assert_eq!(typed.type_name(), "x-acme-widget");
    assert_eq!(serde_json::to_value(&typed).unwrap(), v);
}

fn ts() -> impl Strategy<Value = String> {
    (
        1990u32..2100,
        1u32..13,
        1u32..29,
        0u32..24,
        0u32..60,
        0u32..60,
        0usize..7,
    )
        .prop_map(|(y, mo, d, h, mi, s, frac)| {
            let f = if frac == 0 {
                String::new()
            } else {
                format!(".{}", &"123456"[..frac])
            };
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{f}Z")
        })
}

fn custom_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-z ]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

prop_compose! {
    fn generated_object()(
        kind in 0usize..6,
        created in ts(),
        modified in ts(),
        name in "[A-Za-z0-9 .-]{1,20}",
        opt_desc in proptest::option::of("[ -~]{0,30}"),
        confidence in proptest::option::of(0i64..=100),
        revoked in proptest::option::of(any::<bool>()),
        labels in proptest::option::of(prop::collection::vec("[a-z-]{1,10}", 1..3)),
        customs in prop::collection::btree_map("x_[a-z_]{3,10}", custom_value(), 0..3),
        port in 0i64..65536,
    ) -> Value {
        let id = "33fe3b22-0201-47cf-85d0-97c02164528d";
        let mut o = match kind {
            0 => json!({"type": "indicator", "pattern": format!("[domain-name:value = '{name}']"),
                        "pattern_type": "stix", "valid_from": created}),
            1 => json!({"type": "malware", "is_family": true, "name": name}),
            2 => json!({"type": "threat-actor", "name": name, "threat_actor_types": ["crime-syndicate"]}),
            3 => json!({"type": "network-traffic", "protocols": ["tcp"], "dst_port": port}),
            4 => json!({"type": "file", "name": name, "hashes": {"MD5": "d41d8cd98f00b204e9800998ecf8427e"}}),
            _ => json!({"type": "relationship", "relationship_type": "indicates",
                        "source_ref": format!("indicator--{id}"), "target_ref": format!("malware--{id}")}),
        };
        let m = o.as_object_mut().unwrap();
        let ty = m["type"].as_str().unwrap().to_string();
        m.insert("id".into(), json!(format!("{ty}--{id}")));
        if kind != 3 && kind != 4 {
            m.insert("spec_version".into(), json!("2.1"));
            m.insert("created".into(), json!(created));
            m.insert("modified".into(), json!(modified));
            if let Some(c) = confidence { m.insert("confidence".into(), json!(c)); }
            if let Some(r) = revoked { m.insert("revoked".into(), json!(r)); }
            if let Some(l) = labels { m.insert("labels".into(), json!(l)); }
        }
        if let Some(d) = opt_desc { m.insert("description".into(), json!(d)); }
        for (k, v) in customs { m.insert(k, v); }
        o
    }
}

proptest! {
    #[test]
    fn generated_objects_keep_canonical_form(v in generated_object()) {
        let typed: StixObject = serde_json::from_value(v.clone()).unwrap();
        prop_assert!(!matches!(typed, StixObject::Custom(_)));
        prop_assert_eq!(canonical(&v), canonical(&typed));
        // parse → serialise → parse is stable.
        let again: StixObject = serde_json::from_value(serde_json::to_value(&typed).unwrap()).unwrap();
        prop_assert_eq!(&again, &typed);
    }
}
