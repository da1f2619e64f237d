//! Unit tests for the pattern parser: one per construct and per error class,
//! plus property tests (Display round trip, no panics on arbitrary input).

use proptest::prelude::*;

use super::*;

fn ok(s: &str) -> Pattern {
    parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn err(s: &str) -> PatternError {
    match parse(s) {
        Ok(p) => panic!("{s} parsed as {p:?}"),
        Err(e) => e,
    }
}

fn only_comparison(p: &Pattern) -> &Comparison {
    match &p.expression {
        ObservationExpression::Observation(ComparisonExpression::Comparison(c)) => c,
        other => panic!("not a single comparison: {other:?}"),
    }
}

#[test]
fn constants_of_every_kind() {
    let v = |s: &str| only_comparison(&ok(&format!("[x:a = {s}]"))).value.clone();
    assert_eq!(v("'it\\'s \\\\'"), Constant::String("it's \\".into()));
    assert_eq!(v("-42"), Constant::Int(-42));
    assert_eq!(v("+7"), Constant::Int(7));
    assert_eq!(v(".5"), Constant::Float(0.5));
    assert_eq!(v("-1.25"), Constant::Float(-1.25));
    assert_eq!(v("true"), Constant::Bool(true));
    assert_eq!(v("false"), Constant::Bool(false));
    assert_eq!(v("h'4D5a'"), Constant::Hex(vec![0x4d, 0x5a]));
    assert_eq!(v("h''"), Constant::Hex(vec![]));
    assert_eq!(v("b'YWJj'"), Constant::Binary(b"abc".to_vec()));
    assert_eq!(v("b'YQ=='"), Constant::Binary(b"a".to_vec()));
    assert_eq!(
        v("t'2016-01-01T00:00:00.5Z'"),
        Constant::Timestamp("2016-01-01T00:00:00.5Z".into())
    );
    let set = only_comparison(&ok("[x:a IN ('a', 1, true)]"))
        .value
        .clone();
    assert_eq!(
        set,
        Constant::Set(vec![
            Constant::String("a".into()),
            Constant::Int(1),
            Constant::Bool(true)
        ])
    );
}

#[test]
fn operators_and_not() {
    for (text, op) in [
        ("=", ComparisonOperator::Equal),
        ("==", ComparisonOperator::Equal),
        ("!=", ComparisonOperator::NotEqual),
        ("<>", ComparisonOperator::NotEqual),
        ("<", ComparisonOperator::Less),
        ("<=", ComparisonOperator::LessOrEqual),
        (">", ComparisonOperator::Greater),
        (">=", ComparisonOperator::GreaterOrEqual),
        ("LIKE", ComparisonOperator::Like),
        ("MATCHES", ComparisonOperator::Matches),
        ("ISSUBSET", ComparisonOperator::IsSubset),
        ("ISSUPERSET", ComparisonOperator::IsSuperset),
    ] {
        let c = only_comparison(&ok(&format!("[x:a NOT {text} 'v']"))).clone();
        assert_eq!(c.operator, op);
        assert!(c.negated);
    }
    assert_eq!(
        only_comparison(&ok("[x:a IN ()]")).operator,
        ComparisonOperator::In
    );
}

#[test]
fn object_paths() {
    let c = only_comparison(&ok(
        "[file:extensions.'windows-pebinary-ext'.sections[*].hashes.'SHA-256' = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855']",
    ))
    .clone();
    assert_eq!(c.path.object_type, "file");
    assert_eq!(
        c.path.components,
        vec![
            PathComponent::Property("extensions".into()),
            PathComponent::Property("windows-pebinary-ext".into()),
            PathComponent::Property("sections".into()),
            PathComponent::AnyIndex,
            PathComponent::Property("hashes".into()),
            PathComponent::Property("SHA-256".into()),
        ]
    );
    let c = only_comparison(&ok("[x-y:'q'[0][+2] = 1]")).clone();
    assert_eq!(
        c.path.components,
        vec![
            PathComponent::Property("q".into()),
            PathComponent::Index(0),
            PathComponent::Index(2)
        ]
    );
}

#[test]
fn precedence_of_observation_operators() {
    let p = ok("[a:b = 1] FOLLOWEDBY [a:b = 2] OR [a:b = 3] AND [a:b = 4]");
    let ObservationExpression::FollowedBy(_, r) = &p.expression else {
        panic!("{p:?}")
    };
    let ObservationExpression::Or(_, r) = r.as_ref() else {
        panic!("{r:?}")
    };
    assert!(matches!(r.as_ref(), ObservationExpression::And(..)));
    // Left associativity.
    let p = ok("[a:b = 1] AND [a:b = 2] AND [a:b = 3]");
    let ObservationExpression::And(l, _) = &p.expression else {
        panic!()
    };
    assert!(matches!(l.as_ref(), ObservationExpression::And(..)));
}

#[test]
fn precedence_of_comparison_operators() {
    let p = ok("[a:b = 1 OR a:c = 2 AND a:d = 3]");
    let ObservationExpression::Observation(ComparisonExpression::Or(_, r)) = &p.expression else {
        panic!()
    };
    assert!(matches!(r.as_ref(), ComparisonExpression::And(..)));
    let p = ok("[(a:b = 1 OR a:c = 2) AND EXISTS a:d]");
    let ObservationExpression::Observation(ComparisonExpression::And(l, r)) = &p.expression else {
        panic!()
    };
    assert!(matches!(l.as_ref(), ComparisonExpression::Or(..)));
    assert!(matches!(r.as_ref(), ComparisonExpression::Exists(_)));
}

#[test]
fn qualifiers() {
    let p = ok(
        "[a:b = 1] WITHIN 5 SECONDS REPEATS 2 TIMES START t'2016-01-01T00:00:00Z' STOP t'2017-01-01T00:00:00Z'",
    );
    let ObservationExpression::Qualified(inner, q) = &p.expression else {
        panic!()
    };
    assert_eq!(q.kind(), QualifierKind::StartStop);
    let ObservationExpression::Qualified(inner, q) = inner.as_ref() else {
        panic!()
    };
    assert_eq!(q, &Qualifier::Repeats(2));
    let ObservationExpression::Qualified(_, q) = inner.as_ref() else {
        panic!()
    };
    assert_eq!(q, &Qualifier::Within(Number::Int(5)));
    assert!(matches!(
        ok("[a:b = 1] WITHIN 0.5 SECONDS").expression,
        ObservationExpression::Qualified(_, Qualifier::Within(Number::Float(_)))
    ));
    // Grouped expressions may be qualified again.
    ok("([a:b = 1] WITHIN 5 SECONDS) WITHIN 6 SECONDS");
}

#[test]
fn errors_report_character_positions() {
    assert_eq!(err("[a:b = 'é'] ~").position, 12);
    assert_eq!(err("[a:b = 1").position, 8);
    assert_eq!(err("").message, "empty pattern");
    let e = err("[a:b = 1]x");
    assert_eq!(e.position, 9);
    assert!(e.to_string().starts_with("pattern error at character 9: "));
}

#[test]
fn each_error_class_is_rejected() {
    for bad in [
        "a:b = 1]",                                    // missing bracket
        "/* c */ [a:b = 1]",                           // must open with '['
        "[a:b = 1] AND",                               // dangling operator
        "[a:b = 'x\\q']",                              // bad escape
        "[a:b = 'open]",                               // unterminated string
        "[a:b = 01]",                                  // leading zero
        "[a:b = h'abc']",                              // odd hex
        "[a:b = h'zz']",                               // non-hex
        "[a:b = b'YWJ']",                              // bad base64 shape
        "[a:b = b'']",                                 // empty base64
        "[a:b = t'2016-13-01T00:00:00Z']",             // timestamp shape
        "[a:b = t'2016-02-30T00:00:00Z']",             // impossible date
        "[a:b = 9007199254740992]",                    // outside STIX integer range
        "[a:b > true]",                                // ordered bool
        "[a:b LIKE 1]",                                // LIKE needs a string
        "[a:b IN 'x']",                                // IN needs a set
        "[a:b IN ('x',)]",                             // trailing comma
        "[a:x-y = 1]",                                 // hyphen in property
        "[a:b[-1] = 1]",                               // negative index
        "[a:true = 1]",                                // keyword as property
        "[AND:b = 1]",                                 // keyword as type
        "[a:b = 1] WITHIN 0 SECONDS",                  // non-positive
        "[a:b = 1] REPEATS 0 TIMES",                   // non-positive
        "[a:b = 1] REPEATS 1.5 TIMES",                 // not an integer
        "[a:b = 1] WITHIN 1 SECONDS WITHIN 2 SECONDS", // duplicate qualifier
        "[a:b = 1] START '2016' STOP '2017'",          // not timestamps
        "[file:hashes.MD5 = 'abc']",                   // invalid hash
        "[file:hashes.'SHA-256' IN ('abc')]",          // invalid hash in set
        "[file:hashes[0] = 'x']",                      // indexing hashes
        "[a:b = 1] ^",                                 // stray character
        "[a:b = 1] /* open",                           // unterminated comment
    ] {
        let e = err(bad);
        assert!(e.position <= bad.chars().count(), "{bad}: {e}");
    }
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    let deep = format!("{}[a:b = 1]{}", "(".repeat(5000), ")".repeat(5000));
    assert!(err(&deep).message.contains("nested too deeply"));
    let deep = format!("[{}a:b = 1{}]", "(".repeat(5000), ")".repeat(5000));
    assert!(err(&deep).message.contains("nested too deeply"));
}

#[test]
fn display_is_canonical() {
    let p = ok("[a:b == 1 AND (a:c <> 'x' OR a:d = h'AB')] AND ([a:e = b'YR==']) WITHIN 5 SECONDS");
    assert_eq!(
        p.to_string(),
        "[a:b = 1 AND (a:c != 'x' OR a:d = h'ab')] AND [a:e = b'YQ=='] WITHIN 5 SECONDS"
    );
    let p = ok("([a:b = 1] WITHIN 5 SECONDS) WITHIN 6 SECONDS");
    assert_eq!(
        p.to_string(),
        "([a:b = 1] WITHIN 5 SECONDS) WITHIN 6 SECONDS"
    );
    let p = ok("[a:'x-y'.'AND'.ok = 1.0]");
    assert_eq!(p.to_string(), "[a:'x-y'.'AND'.ok = 1.0]");
}

// ---------------------------------------------------------------- properties

fn arb_constant_scalar() -> impl Strategy<Value = Constant> {
    prop_oneof![
        "[^\\x00]{0,8}".prop_map(Constant::String),
        (-MAX_STIX_INT..=MAX_STIX_INT).prop_map(Constant::Int),
        (-1.0e12f64..1.0e12).prop_map(Constant::Float),
        any::<bool>().prop_map(Constant::Bool),
        proptest::collection::vec(any::<u8>(), 1..6).prop_map(Constant::Binary),
        proptest::collection::vec(any::<u8>(), 0..6).prop_map(Constant::Hex),
        (1970u32..2100, 1u32..13, 1u32..29, 0u32..24).prop_map(|(y, m, d, h)| Constant::Timestamp(
            format!("{y:04}-{m:02}-{d:02}T{h:02}:00:00Z")
        )),
    ]
}

fn arb_path() -> impl Strategy<Value = ObjectPath> {
    let comp = prop_oneof![
        "[a-zA-Z_][a-zA-Z0-9_-]{0,5}".prop_map(PathComponent::Property),
        (0u64..100).prop_map(PathComponent::Index),
        Just(PathComponent::AnyIndex),
    ];
    (
        "x-[a-z]{1,5}",
        "[a-z_][a-z0-9_-]{0,5}",
        proptest::collection::vec(comp, 0..4),
    )
        .prop_map(|(t, first, rest)| {
            let mut components = vec![PathComponent::Property(first)];
            components.extend(rest);
            ObjectPath {
                object_type: t,
                components,
            }
        })
}

fn arb_comparison() -> impl Strategy<Value = ComparisonExpression> {
    let leaf = prop_oneof![
        (arb_path(), any::<bool>(), arb_constant_scalar()).prop_map(|(path, negated, value)| {
            ComparisonExpression::Comparison(Comparison {
                path,
                negated,
                operator: ComparisonOperator::Equal,
                value,
            })
        }),
        (
            arb_path(),
            proptest::collection::vec(arb_constant_scalar(), 0..3)
        )
            .prop_map(
                |(path, items)| ComparisonExpression::Comparison(Comparison {
                    path,
                    negated: false,
                    operator: ComparisonOperator::In,
                    value: Constant::Set(items),
                })
            ),
        (arb_path(), "[a-z%]{0,5}").prop_map(|(path, s)| {
            ComparisonExpression::Comparison(Comparison {
                path,
                negated: true,
                operator: ComparisonOperator::Like,
                value: Constant::String(s),
            })
        }),
        arb_path().prop_map(ComparisonExpression::Exists),
    ];
    leaf.prop_recursive(3, 12, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone())
                .prop_map(|(l, r)| ComparisonExpression::And(Box::new(l), Box::new(r))),
            (inner.clone(), inner)
                .prop_map(|(l, r)| ComparisonExpression::Or(Box::new(l), Box::new(r))),
        ]
    })
}

fn arb_qualifier() -> impl Strategy<Value = Qualifier> {
    prop_oneof![
        (1u64..1000).prop_map(|n| Qualifier::Within(Number::Int(n))),
        (0.001f64..1000.0).prop_map(|x| Qualifier::Within(Number::Float(x))),
        (1u64..100).prop_map(Qualifier::Repeats),
        Just(Qualifier::StartStop {
            start: "2016-01-01T00:00:00Z".into(),
            stop: "2017-01-01T00:00:00.123Z".into()
        }),
    ]
}

fn arb_observation() -> impl Strategy<Value = ObservationExpression> {
    arb_comparison()
        .prop_map(ObservationExpression::Observation)
        .prop_recursive(4, 16, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone())
                    .prop_map(|(l, r)| ObservationExpression::And(Box::new(l), Box::new(r))),
                (inner.clone(), inner.clone())
                    .prop_map(|(l, r)| ObservationExpression::Or(Box::new(l), Box::new(r))),
                (inner.clone(), inner.clone()).prop_map(|(l, r)| {
                    ObservationExpression::FollowedBy(Box::new(l), Box::new(r))
                }),
                (inner, arb_qualifier())
                    .prop_map(|(e, q)| ObservationExpression::Qualified(Box::new(e), q)),
            ]
        })
}

proptest! {
    #[test]
    fn display_round_trips(expression in arb_observation()) {
        let p = Pattern { expression };
        let text = p.to_string();
        let back = parse(&text);
        prop_assert!(back.is_ok(), "{} -> {:?}", text, back);
        prop_assert_eq!(back.ok(), Some(p));
    }

    #[test]
    fn arbitrary_strings_never_panic(s in "\\PC{0,64}") {
        let _ = parse(&s);
    }

    #[test]
    fn arbitrary_pattern_like_strings_never_panic(s in "[\\[\\]()a-z:.'=!<>*0-9 bthAND OR\\\\-]{0,48}") {
        let _ = parse(&s);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let s = String::from_utf8_lossy(&bytes);
        let _ = parse(&s);
    }
}

/// Address values are addresses or CIDR blocks of their family (spec 6.4 / 6.5),
/// through the fast path and the general parser alike; `LIKE` and `MATCHES` take
/// patterns, and other properties are not addresses.
#[test]
fn address_values_are_addresses_or_blocks() {
    for good in [
        "[ipv4-addr:value = '198.51.100.7']",
        "[ipv4-addr:value = '10.0.0.0/8']",
        "[ipv4-addr:value = '0.0.0.0/0']",
        "[ipv4-addr:value != '203.0.113.1'] AND [ipv4-addr:value = '203.0.113.2']",
        "[ipv4-addr:value IN ('10.0.0.1', '10.0.0.0/24')]",
        "[ipv4-addr:value ISSUBSET '198.51.100.0/24']",
        "[ipv4-addr:value LIKE '10.0.%']",
        "[ipv4-addr:value MATCHES '^10\\\\.']",
        "[ipv6-addr:value = '2001:db8::1']",
        "[ipv6-addr:value ISSUBSET '2001:db8::/32']",
        "[ipv4-addr:resolves_to_refs[*].value = 'not an address']",
        "[network-traffic:dst_ref.value = '198.51.100.7']",
    ] {
        ok(good);
    }
    for bad in [
        "[ipv4-addr:value = '999.1.1.1']",
        "[ipv4-addr:value = '10.0.0.1/33']",
        "[ipv4-addr:value = '10.0.0.1/']",
        "[ipv4-addr:value = '10.0.0.1/+8']",
        "[ipv4-addr:value = '2001:db8::1']",
        "[ipv4-addr:value = '185.220.101.%d']",
        "[ipv4-addr:value IN ('10.0.0.1', 'ten')]",
        "[ipv6-addr:value = '198.51.100.7']",
        "[ipv6-addr:value = '2001:db8::/129']",
    ] {
        let e = err(bad);
        assert!(e.message.contains("CIDR block"), "{bad}: {e}");
    }
}
