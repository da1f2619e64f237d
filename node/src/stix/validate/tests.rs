use super::*;
use proptest::prelude::*;
use serde_json::json;

fn indicator() -> Value {
    json!({
        "type": "indicator", "spec_version": "2.1",
        "id": "indicator--33fe3b22-0201-47cf-85d0-97c02164528d",
        "created": "2014-05-08T09:00:00.000Z", "modified": "2014-05-08T09:00:00.000Z",
        "pattern": "[ipv4-addr:value = '10.0.0.0']", "pattern_type": "stix",
        "valid_from": "2014-05-08T09:00:00.000000Z"
    })
}

fn codes(r: &Report) -> Vec<(&'static str, String)> {
    r.findings
        .iter()
        .map(|f| (f.code, f.pointer.clone()))
        .collect()
}

#[test]
fn valid_indicator_has_no_findings() {
    let mut r = Report::default();
    validate_object(&indicator(), "", &mut r);
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    assert!(r.is_valid());
}

#[test]
fn reports_every_violation_with_pointer() {
    let mut o = indicator();
    o["created"] = json!("2014-05-08T09:00:00Z");
    o["confidence"] = json!(101);
    o["valid_until"] = json!("2014-05-08T09:00:00Z");
    o.as_object_mut().unwrap().remove("pattern_type");
    o["created_by_ref"] = json!("malware--33fe3b22-0201-47cf-85d0-97c02164528d");
    let doc = json!({"type": "bundle", "id": "bundle--44af6c39-c09b-49c5-9de2-394224b04982", "objects": [o]});
    let r = validate_bundle(&doc);
    let c = codes(&r);
    for want in [
        ("invalid-timestamp", "/objects/0/created"),
        ("out-of-range", "/objects/0/confidence"),
        ("timestamp-order", "/objects/0/valid_until"),
        ("missing-property", "/objects/0/pattern_type"),
        ("invalid-reference-type", "/objects/0/created_by_ref"),
    ] {
        assert!(
            c.contains(&(want.0, want.1.to_string())),
            "{want:?} not in {c:?}"
        );
    }
    assert_eq!(r.errors().count(), 5);
    assert!(
        r.findings
            .iter()
            .all(|f| f.object_id.as_deref()
                == Some("indicator--33fe3b22-0201-47cf-85d0-97c02164528d"))
    );
}

#[test]
fn sco_id_determinism_is_a_warning() {
    let ok = json!({"type": "ipv4-addr", "spec_version": "2.1", "id": "ipv4-addr--28bb3599-77cd-5a82-a950-b5bc3caf07c4", "value": "198.51.100.3"});
    let mut r = Report::default();
    validate_object(&ok, "", &mut r);
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    let bad = json!({"type": "ipv4-addr", "spec_version": "2.1", "id": "ipv4-addr--33fe3b22-0201-47cf-85d0-97c02164528d", "value": "198.51.100.3"});
    let mut r = Report::default();
    validate_object(&bad, "", &mut r);
    assert!(r.is_valid());
    assert_eq!(
        codes(&r),
        vec![("sco-id-not-deterministic", "/id".to_string())]
    );
}

#[test]
fn finding_serialises_with_stable_names() {
    let f = Finding {
        severity: Severity::Warning,
        code: "x",
        object_id: None,
        pointer: "/a".into(),
        message: "m".into(),
    };
    assert_eq!(
        serde_json::to_value(&f).unwrap(),
        json!({"severity": "warning", "code": "x", "object_id": null, "pointer": "/a", "message": "m"})
    );
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        prop_oneof![
            Just("indicator".to_string()),
            Just("bundle".to_string()),
            Just("file".to_string()),
            Just("marking-definition".to_string()),
            Just("indicator--33fe3b22-0201-47cf-85d0-97c02164528d".to_string()),
            Just("2020-01-01T00:00:00.000Z".to_string()),
            ".{0,12}",
        ]
        .prop_map(Value::from),
    ];
    let key = prop_oneof![
        Just("type".to_string()),
        Just("id".to_string()),
        Just("objects".to_string()),
        Just("hashes".to_string()),
        Just("extensions".to_string()),
        Just("granular_markings".to_string()),
        Just("selectors".to_string()),
        Just("external_references".to_string()),
        Just("definition_type".to_string()),
        Just("values".to_string()),
        Just("body_multipart".to_string()),
        "[a-z_]{1,8}",
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::from),
            prop::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_json(v in arb_json()) {
        let _ = validate_bundle(&v);
        let mut r = Report::default();
        validate_object(&v, "/x", &mut r);
    }

    #[test]
    fn never_panics_on_mutated_objects(k in "[a-z_]{2,20}", v in arb_json(), ty in prop::sample::select(super::rules::SCO_TYPES.iter().chain(super::rules::SDO_TYPES).copied().collect::<Vec<_>>())) {
        let mut o = indicator();
        o["type"] = json!(ty);
        o[k.as_str()] = v;
        let mut r = Report::default();
        validate_object(&o, "", &mut r);
    }
}

/// Parse + validate throughput on indicator bundles; run with
/// `cargo test --release --lib validation_throughput -- --ignored --nocapture`.
#[test]
#[ignore]
fn validation_throughput() {
    let objects: Vec<Value> = (0..1000)
        .map(|i| {
            let mut o = indicator();
            o["pattern"] = json!(format!(
                "[ipv4-addr:value = '10.0.{}.{}']",
                i / 256,
                i % 256
            ));
            o["indicator_types"] = json!(["malicious-activity"]);
            o["object_marking_refs"] =
                json!(["marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"]);
            o
        })
        .collect();
    let doc = serde_json::to_vec(&json!({"type": "bundle", "id": "bundle--44af6c39-c09b-49c5-9de2-394224b04982", "objects": objects})).unwrap();
    let rounds = 50;
    let start = std::time::Instant::now();
    for _ in 0..rounds {
        let v: Value = serde_json::from_slice(&doc).unwrap();
        assert!(validate_bundle(&v).is_valid());
    }
    let per_sec = (rounds * 1000) as f64 / start.elapsed().as_secs_f64();
    println!("parse + validate: {per_sec:.0} indicators/s");
}

#[test]
fn duplicate_versions_are_warned_at_the_later_copy_in_document_order() {
    let a = indicator();
    let mut b = indicator();
    b["id"] = json!("indicator--44af6c39-c09b-49c5-9de2-394224b04982");
    let mut a2 = a.clone();
    a2["modified"] = json!("2015-05-08T09:00:00.000Z");
    let doc = json!({"type": "bundle", "id": "bundle--44af6c39-c09b-49c5-9de2-394224b04982",
        "objects": [a.clone(), b.clone(), a2, b, a]});
    let r = validate_bundle(&doc);
    assert!(r.is_valid(), "duplicates are a warning only");
    assert_eq!(
        codes(&r),
        vec![
            ("duplicate-object", "/objects/3".to_string()),
            ("duplicate-object", "/objects/4".to_string())
        ]
    );
    assert_eq!(
        r.findings[0].object_id.as_deref(),
        Some("indicator--44af6c39-c09b-49c5-9de2-394224b04982")
    );
}

#[test]
fn custom_properties_are_checked_after_the_table_properties() {
    let mut o = indicator();
    o["foo_bar"] = json!([]);
    o["confidence"] = json!(101);
    let mut r = Report::default();
    validate_object(&o, "", &mut r);
    assert_eq!(
        codes(&r),
        vec![
            ("out-of-range", "/confidence".to_string()),
            ("custom-property-prefix", "/foo_bar".to_string()),
            ("empty-list", "/foo_bar".to_string()),
        ]
    );
}

#[test]
fn modified_before_created_is_an_error_compared_as_instants() {
    let mut r = Report::default();
    let mut o = indicator();
    o["modified"] = json!("2014-05-08T08:59:59.999Z");
    validate_object(&o, "", &mut r);
    assert_eq!(
        codes(&r),
        vec![("timestamp-order", "/modified".to_string())]
    );

    // The same instant written differently is in order.
    let mut r = Report::default();
    o["modified"] = json!("2014-05-08T09:00:00.000000Z");
    validate_object(&o, "", &mut r);
    assert!(r.findings.is_empty(), "{:?}", r.findings);
}

#[test]
fn bundle_levels_are_each_objects_own_level() {
    // The bundle walk finds markings in one pass over each object; it must say what
    // `own_level` says of the object on its own, whatever the object looks like.
    let green2 = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb";
    let green1 = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da";
    let unknown = "marking-definition--8f3c7c5e-2d5a-4b7e-9a51-6a1c1f0e2b9d";
    let with = |k: &str, v: Value| {
        let mut o = indicator();
        o[k] = v;
        o
    };
    let objects = vec![
        indicator(),
        with("object_marking_refs", json!([green2])),
        with("object_marking_refs", json!([green1, green2])),
        with("object_marking_refs", json!([unknown])),
        with("object_marking_refs", json!("not a list")),
        with(
            "granular_markings",
            json!([{"marking_ref": green2, "selectors": ["pattern"]}]),
        ),
        with(
            "granular_markings",
            json!([{"marking_ref": unknown, "selectors": ["pattern"]}]),
        ),
        with("type", json!(7)),
        json!({
            "type": "marking-definition", "spec_version": "2.1", "id": green2,
            "created": "2022-10-01T00:00:00.000Z", "definition_type": "tlp",
            "name": "TLP:GREEN", "definition": {"tlp": "green"}
        }),
        json!({
            "type": "marking-definition", "spec_version": "2.1", "id": unknown,
            "created": "2022-10-01T00:00:00.000Z", "definition_type": "statement",
            "definition": {"statement": "c"}, "object_marking_refs": [green1]
        }),
        json!(42),
        json!([]),
    ];
    let doc = json!({
        "type": "bundle", "id": "bundle--44af6c39-c09b-49c5-9de2-394224b04982",
        "objects": objects.clone()
    });
    let (_, _, levels) = validate_bundle_noting(&doc);
    let own: Vec<_> = objects.iter().map(crate::stix::tlp::own_level).collect();
    assert_eq!(levels, own);
    // The cases differ: every kind of answer is among them.
    use crate::stix::tlp::OwnLevel;
    assert!(own.contains(&OwnLevel::NeedsDefinitions));
    assert!(own.iter().any(|l| matches!(l, OwnLevel::Definition(_))));
    assert!(own.iter().any(|l| matches!(l, OwnLevel::Known(Some(_)))));
    assert!(own.contains(&OwnLevel::Known(None)));
}

/// `object_modified` is optional (STIX 2.1, section 7.1: without it the content
/// applies to every version); `object_ref` and `contents` are not.
#[test]
fn language_content_without_object_modified_is_valid() {
    let lc = json!({
        "type": "language-content", "spec_version": "2.1",
        "id": "language-content--b86bd89f-98bb-4fa9-8cb2-9ad421da981d",
        "created": "2017-02-08T21:31:22.007Z", "modified": "2017-02-08T21:31:22.007Z",
        "object_ref": "campaign--12a111f0-b824-4baf-a224-83b80237a094",
        "contents": {"de": {"name": "Bank Angriff 1"}}
    });
    let mut r = Report::default();
    validate_object(&lc, "", &mut r);
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    let mut without_ref = lc.clone();
    without_ref.as_object_mut().unwrap().remove("object_ref");
    let mut r = Report::default();
    validate_object(&without_ref, "", &mut r);
    assert!(!r.is_valid(), "object_ref is required");
}
