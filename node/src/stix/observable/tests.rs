//! Tests for observable keys.

use super::*;
use crate::stix::pattern::parse;

fn key(s: &str) -> String {
    ObservableKey::from_user_input(s).unwrap().to_string()
}

#[test]
fn user_input_is_classified_and_normalised() {
    assert_eq!(key("203.0.113.7"), "ipv4-addr:203.0.113.7");
    assert_eq!(key("10.1.2.3/8"), "ipv4-addr:10.0.0.0/8");
    assert_eq!(key("203.0.113.7/32"), "ipv4-addr:203.0.113.7");
    assert_eq!(key("2001:DB8:0:0:0:0:0:1"), "ipv6-addr:2001:db8::1");
    assert_eq!(key("2001:db8::1/32"), "ipv6-addr:2001:db8::/32");
    assert_eq!(key("2001:db8::1/128"), "ipv6-addr:2001:db8::1");
    assert_eq!(key("EVIL.example."), "domain-name:evil.example");
    assert_eq!(key("http://Evil.example:80/x"), "url:http://evil.example/x");
    assert_eq!(key("HTTPS://Evil.example"), "url:https://evil.example/");
    assert_eq!(
        key("https://evil.example:8443?a=B"),
        "url:https://evil.example:8443/?a=B"
    );
    assert_eq!(key("CEO@Phish.example"), "email-addr:ceo@phish.example");
    assert_eq!(key("AS64500"), "autonomous-system:AS64500");
    assert_eq!(key("D2-FB-49-24-37-18"), "mac-addr:d2:fb:49:24:37:18");
    assert_eq!(
        key("D41D8CD98F00B204E9800998ECF8427E"),
        "file:md5:d41d8cd98f00b204e9800998ecf8427e"
    );
    assert_eq!(
        key("da39a3ee5e6b4b0d3255bfef95601890afd80709"),
        "file:sha-1:da39a3ee5e6b4b0d3255bfef95601890afd80709"
    );
    assert!(key(&"a".repeat(64)).starts_with("file:sha-256:"));
    assert!(key(&"a".repeat(128)).starts_with("file:sha-512:"));
    assert_eq!(key("domain-name:Evil.Example"), "domain-name:evil.example");
    assert!(ObservableKey::from_user_input("").is_err());
    assert!(ObservableKey::from_user_input("hello").is_err());
    assert!(ObservableKey::from_user_input("10.0.0.0/33").is_err());
    assert!(ObservableKey::from_user_input("abcd").is_err());
}

#[test]
fn typed_keys_normalise() {
    let k = |s: &str| s.parse::<ObservableKey>().unwrap().to_string();
    assert_eq!(
        k("file:SHA256:AB".replace("AB", &"AB".repeat(32)).as_str()),
        format!("file:sha-256:{}", "ab".repeat(32))
    );
    assert_eq!(k("file:SSDEEP:3:AbC:dEf"), "file:ssdeep:3:AbC:dEf");
    assert_eq!(
        k("windows-registry-key:HKLM\\Software\\Run"),
        "windows-registry-key:hkey_local_machine\\software\\run"
    );
    assert_eq!(k("mutex:Global\\MyMutex"), "mutex:Global\\MyMutex");
    assert_eq!(k("autonomous-system:64500"), "autonomous-system:AS64500");
    assert!("file:md5:zz".parse::<ObservableKey>().is_err());
    assert!("process:1".parse::<ObservableKey>().is_err());
    assert!("nocolon".parse::<ObservableKey>().is_err());
}

#[test]
fn serde_uses_the_string_form() {
    let k = ObservableKey::from_user_input("203.0.113.7").unwrap();
    let json = serde_json::to_string(&k).unwrap();
    assert_eq!(json, "\"ipv4-addr:203.0.113.7\"");
    let back: ObservableKey = serde_json::from_str("\"domain-name:EVIL.example\"").unwrap();
    assert_eq!(back.as_str(), "domain-name:evil.example");
    assert!(serde_json::from_str::<ObservableKey>("\"bogus\"").is_err());
}

#[test]
fn containing_networks_cover_every_prefix() {
    let k = ObservableKey::from_user_input("203.0.113.7").unwrap();
    let nets = k.containing_networks();
    assert_eq!(nets.len(), 32);
    assert_eq!(nets[0].as_str(), "ipv4-addr:0.0.0.0/0");
    assert_eq!(nets[24].as_str(), "ipv4-addr:203.0.113.0/24");
    assert_eq!(nets[31].as_str(), "ipv4-addr:203.0.113.6/31");
    // Every network is itself a normalised key.
    for n in &nets {
        assert_eq!(&n.as_str().parse::<ObservableKey>().unwrap(), n);
    }
    let v6 = ObservableKey::from_user_input("2001:db8::1").unwrap();
    let nets6 = v6.containing_networks();
    assert_eq!(nets6.len(), 128);
    assert_eq!(nets6[32].as_str(), "ipv6-addr:2001:db8::/32");
    let cidr = ObservableKey::from_user_input("10.0.0.0/8").unwrap();
    assert_eq!(cidr.containing_networks().len(), 8);
    assert!(
        ObservableKey::from_user_input("evil.example")
            .unwrap()
            .containing_networks()
            .is_empty()
    );
}

#[test]
fn keys_from_patterns() {
    let p = parse(
        "[ipv4-addr:value = '203.0.113.7' OR ipv4-addr:value ISSUBSET '10.1.0.0/16'] AND \
         [domain-name:value IN ('A.example', 'b.example.')] FOLLOWEDBY \
         [file:hashes.'SHA-256' = 'E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855' \
         AND file:name = 'x.exe'] WITHIN 5 SECONDS OR [autonomous-system:number = 64500] OR \
         [url:value != 'http://skip.example/'] OR [email-addr:value NOT = 'skip@x.example']",
    )
    .unwrap();
    let keys: Vec<String> = keys_from_pattern(&p)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        keys,
        [
            "autonomous-system:AS64500",
            "domain-name:a.example",
            "domain-name:b.example",
            "file:sha-256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "ipv4-addr:10.1.0.0/16",
            "ipv4-addr:203.0.113.7",
        ]
    );
}

#[test]
fn keys_from_objects() {
    let ind = serde_json::json!({"type": "indicator", "pattern_type": "stix",
        "pattern": "[ipv4-addr:value = '203.0.113.7']"});
    assert_eq!(keys_from_object(&ind)[0].as_str(), "ipv4-addr:203.0.113.7");
    let bad = serde_json::json!({"type": "indicator", "pattern_type": "stix", "pattern": "[oops"});
    assert!(keys_from_object(&bad).is_empty());
    let sigma = serde_json::json!({"type": "indicator", "pattern_type": "sigma", "pattern": "[ipv4-addr:value = '1.2.3.4']"});
    assert!(keys_from_object(&sigma).is_empty());
    let file = serde_json::json!({"type": "file", "hashes": {"MD5": "D41D8CD98F00B204E9800998ECF8427E", "SHA-1": "bad"}});
    assert_eq!(
        keys_from_object(&file)
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["file:md5:d41d8cd98f00b204e9800998ecf8427e"]
    );
    let asn = serde_json::json!({"type": "autonomous-system", "number": 64500});
    assert_eq!(
        keys_from_object(&asn)[0].as_str(),
        "autonomous-system:AS64500"
    );
    let dom = serde_json::json!({"type": "domain-name", "value": "Evil.Example"});
    assert_eq!(
        keys_from_object(&dom)[0].as_str(),
        "domain-name:evil.example"
    );
    let mac = serde_json::json!({"type": "mac-addr", "value": "D2:FB:49:24:37:18"});
    assert_eq!(
        keys_from_object(&mac)[0].as_str(),
        "mac-addr:d2:fb:49:24:37:18"
    );
    assert!(keys_from_object(&serde_json::json!({"type": "malware"})).is_empty());
    assert!(keys_from_object(&serde_json::json!(42)).is_empty());
}

/// The dotted form written without `Display` is `Display`'s, for every octet value in
/// every position and for random addresses.
#[test]
fn dotted_quads_are_written_as_display_writes_them() {
    for octet in 0..=255u8 {
        for position in 0..4 {
            let mut o = [1u8, 22, 133, 4];
            o[position] = octet;
            let ip = Ipv4Addr::from(o);
            assert_eq!(dotted(ip), ip.to_string());
        }
    }
    let mut x = 0x9e37_79b9u32;
    for _ in 0..10_000 {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let ip = Ipv4Addr::from(x);
        assert_eq!(dotted(ip), ip.to_string());
    }
}
