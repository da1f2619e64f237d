//! Synthetic workloads (`synergia gen`): deterministic indicator bundles.
//!
//! The workload for demos, tests and benchmarks. Everything is a pure function of
//! `(seed, origin, index)`, so any test can recompute what a vendor published. Overlap
//! is exact and the same for every origin: indicator `i` reports a *shared* observable
//! exactly when `hash(seed, i) < overlap`, and the shared observable of index `i` is
//! the same for every origin with that seed. With overlap F, a fraction F of each
//! origin's observables is therefore reported by every origin using the same seed.

use crate::stix::tlp::TlpLevel;
use serde_json::{Value, json};
use std::io::{self, Read, Write};

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenOptions {
    /// Number of indicators.
    pub count: u64,
    /// Seed shared by origins that should overlap.
    pub seed: u64,
    /// Member name of the producer.
    pub origin: String,
    /// STIX identity of the producer (`created_by_ref`); derived from the origin name
    /// when absent.
    pub identity: Option<String>,
    /// Fraction (0..=1) of observables shared with other origins of the same seed.
    pub overlap: f64,
    /// Put every object at this TLP level instead of the realistic mix.
    pub tlp: Option<TlpLevel>,
}

/// Which kind of observable an indicator names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObservableKind {
    /// An IPv4 address.
    Ipv4,
    /// An IPv6 address.
    Ipv6,
    /// A domain name.
    Domain,
    /// A URL.
    Url,
    /// A SHA-256 file hash.
    Sha256,
}

/// splitmix64: tiny, fast, and identical on every platform.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn hash_str(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A deterministic stream of pseudo-random numbers.
struct Rng(u64);

impl Rng {
    fn new(parts: &[u64]) -> Rng {
        Rng(parts.iter().fold(0x5EED, |a, &p| mix(a ^ p)))
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn uuid4(&mut self) -> uuid::Uuid {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.next().to_le_bytes());
        b[8..].copy_from_slice(&self.next().to_le_bytes());
        uuid::Builder::from_random_bytes(b).into_uuid()
    }
}

const WORDS: &[&str] = &[
    "alpha", "bravo", "cobalt", "delta", "ember", "falcon", "granite", "harbor", "indigo",
    "jasper", "krypton", "lumen", "magnet", "nimbus", "onyx", "pixel", "quartz", "raven", "sierra",
    "tango", "umber", "vector", "willow", "xenon", "yonder", "zephyr",
];
const TLDS: &[&str] = &[
    "com", "net", "org", "info", "biz", "xyz", "top", "ru", "cn", "io",
];
const FAMILIES: &[&str] = &[
    "Emotet",
    "TrickBot",
    "QakBot",
    "IcedID",
    "Cobalt Strike",
    "AsyncRAT",
    "RedLine",
    "AgentTesla",
    "Formbook",
    "Remcos",
    "njRAT",
    "Raccoon",
    "Lumma",
    "DarkGate",
    "Pikabot",
    "SystemBC",
];

/// The kind of observable at index `i` (same for every origin of the seed).
pub fn kind_of(seed: u64, i: u64) -> ObservableKind {
    match Rng::new(&[seed, i, 1]).below(100) {
        0..=39 => ObservableKind::Ipv4,
        40..=64 => ObservableKind::Domain,
        65..=79 => ObservableKind::Url,
        80..=94 => ObservableKind::Sha256,
        _ => ObservableKind::Ipv6,
    }
}

/// Whether indicator `i` reports a shared observable (same for every origin).
pub fn is_shared(seed: u64, i: u64, overlap: f64) -> bool {
    Rng::new(&[seed, i, 2]).unit() < overlap
}

/// The observable value an origin reports at index `i`, as it appears in the pattern.
pub fn observable_value(opts: &GenOptions, i: u64) -> (ObservableKind, String) {
    let kind = kind_of(opts.seed, i);
    let shared = is_shared(opts.seed, i, opts.overlap);
    // Class 0 is the shared space; each origin has its own class, so private values
    // of different origins differ (up to a 1-in-1023 clash of origin hashes, which the
    // example federation's names do not have) and values within an origin are unique
    // by index.
    let class = if shared {
        0
    } else {
        1 + hash_str(&opts.origin) % 1023
    };
    let mut r = if shared {
        Rng::new(&[opts.seed, i, 3])
    } else {
        Rng::new(&[opts.seed, i, 4, hash_str(&opts.origin)])
    };
    let word = |r: &mut Rng| WORDS[r.below(WORDS.len() as u64) as usize];
    let tag = if shared {
        String::new()
    } else {
        format!("{class:03x}")
    };
    let value = match kind {
        ObservableKind::Ipv4 => {
            // 10 bits of class and 21 bits of index above 32.0.0.0: unique up to 2M.
            let n = 0x2000_0000u64 + ((class << 21) | (i & 0x1F_FFFF));
            format!(
                "{}.{}.{}.{}",
                (n >> 24) & 255,
                (n >> 16) & 255,
                (n >> 8) & 255,
                n & 255
            )
        }
        ObservableKind::Ipv6 => format!("2001:db8:{class:x}:{:x}::{:x}", i >> 16, i & 0xffff),
        ObservableKind::Domain => format!(
            "{}{tag}-{}{:x}.{}",
            word(&mut r),
            word(&mut r),
            i,
            TLDS[r.below(TLDS.len() as u64) as usize]
        ),
        ObservableKind::Url => format!(
            "http://{}{tag}-{:x}.{}/{}/{}.php",
            word(&mut r),
            i,
            TLDS[r.below(TLDS.len() as u64) as usize],
            word(&mut r),
            word(&mut r)
        ),
        ObservableKind::Sha256 => {
            let mut s = String::with_capacity(64);
            for _ in 0..4 {
                s.push_str(&format!("{:016x}", r.next()));
            }
            s
        }
    };
    (kind, value)
}

fn pattern_for(kind: ObservableKind, value: &str) -> String {
    match kind {
        ObservableKind::Ipv4 => format!("[ipv4-addr:value = '{value}']"),
        ObservableKind::Ipv6 => format!("[ipv6-addr:value = '{value}']"),
        ObservableKind::Domain => format!("[domain-name:value = '{value}']"),
        ObservableKind::Url => format!("[url:value = '{value}']"),
        ObservableKind::Sha256 => format!("[file:hashes.'SHA-256' = '{value}']"),
    }
}

fn kind_label(kind: ObservableKind) -> &'static str {
    match kind {
        ObservableKind::Ipv4 => "IPv4 address",
        ObservableKind::Ipv6 => "IPv6 address",
        ObservableKind::Domain => "domain",
        ObservableKind::Url => "URL",
        ObservableKind::Sha256 => "file hash",
    }
}

/// The identity id an origin's objects are created by.
pub fn identity_of(opts: &GenOptions) -> String {
    opts.identity.clone().unwrap_or_else(|| {
        let u = uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_OID,
            format!("synergia:{}", opts.origin).as_bytes(),
        );
        format!("identity--{u}")
    })
}

/// A STIX timestamp with millisecond precision, `offset_ms` after 2025-01-01.
///
/// Generated objects are dated in the past, spread by at most about 10 ms per
/// indicator and a minute per group of [`GROUP`] (a hundred million indicators span
/// under three weeks): a node refuses to sign a version dated after its signature
/// (protocol §5, `object-after-signing`), so gen output must never lie in the future.
fn ts(offset_ms: u64) -> String {
    crate::stix::timestamp::Timestamp::from_micros(
        1_735_689_600_000_000 + (offset_ms as i64) * 1000,
    )
    .to_millis_string()
}

fn tlp_for(opts: &GenOptions, r: &mut Rng) -> TlpLevel {
    opts.tlp.unwrap_or_else(|| match r.below(10) {
        0..=6 => TlpLevel::Green,
        7 | 8 => TlpLevel::Clear,
        _ => TlpLevel::Amber,
    })
}

/// Indicators per malware family group: each group shares one malware and one
/// infrastructure object, and one indicator in ten links to its malware.
const GROUP: u64 = 100;

/// Calls `emit` with every object of the bundle, in order.
pub fn for_each_object(opts: &GenOptions, mut emit: impl FnMut(Value)) {
    let identity = identity_of(opts);
    let origin_h = hash_str(&opts.origin);
    emit(json!({
        "type": "identity",
        "spec_version": "2.1",
        "id": identity,
        "created": ts(0),
        "modified": ts(0),
        "name": opts.origin,
        "identity_class": "organization",
        "sectors": ["technology"],
        // Every object is marked: an unmarked one takes the publishing node's
        // `default_tlp` (amber by default), so `gen --tlp green` would publish this
        // one amber. Who publishes is no secret: clear unless a level is forced.
        "object_marking_refs": [opts.tlp.unwrap_or(TlpLevel::Clear).marking_id()],
    }));
    let mut malware_id = String::new();
    let mut family = "";
    for i in 0..opts.count {
        let mut r = Rng::new(&[opts.seed, i, 5, origin_h]);
        let group = i / GROUP;
        if i % GROUP == 0 {
            let mut g = Rng::new(&[opts.seed, group, 6, origin_h]);
            family = FAMILIES[g.below(FAMILIES.len() as u64) as usize];
            let level = tlp_for(opts, &mut g);
            let created = ts(group * 60_000 + g.below(60_000));
            malware_id = format!("malware--{}", g.uuid4());
            let infra_id = format!("infrastructure--{}", g.uuid4());
            emit(json!({
                "type": "malware",
                "spec_version": "2.1",
                "id": malware_id,
                "created": created,
                "modified": created,
                "created_by_ref": identity,
                "name": family,
                "malware_types": ["trojan"],
                "is_family": true,
                "object_marking_refs": [level.marking_id()],
            }));
            emit(json!({
                "type": "infrastructure",
                "spec_version": "2.1",
                "id": infra_id,
                "created": created,
                "modified": created,
                "created_by_ref": identity,
                "name": format!("{family} command and control"),
                "infrastructure_types": ["command-and-control"],
                "object_marking_refs": [level.marking_id()],
            }));
            emit(json!({
                "type": "relationship",
                "spec_version": "2.1",
                "id": format!("relationship--{}", g.uuid4()),
                "created": created,
                "modified": created,
                "created_by_ref": identity,
                "relationship_type": "controls",
                "source_ref": infra_id,
                "target_ref": malware_id,
                "object_marking_refs": [level.marking_id()],
            }));
        }
        let (kind, value) = observable_value(opts, i);
        let level = tlp_for(opts, &mut r);
        let created = ts(i * 10 + r.below(10));
        let indicator_id = format!("indicator--{}", r.uuid4());
        emit(json!({
            "type": "indicator",
            "spec_version": "2.1",
            "id": indicator_id,
            "created": created,
            "modified": created,
            "created_by_ref": identity,
            "name": format!("Malicious {} {}", kind_label(kind), value),
            // STIX 2.1 says indicators SHOULD have both a name and a description
            // (the reference validator warns otherwise).
            "description": format!(
                "{} seen in {family} activity, reported by {}.",
                kind_label(kind),
                opts.origin
            ),
            "indicator_types": ["malicious-activity"],
            "pattern": pattern_for(kind, &value),
            "pattern_type": "stix",
            "pattern_version": "2.1",
            "valid_from": created,
            "confidence": 30 + r.below(66),
            "object_marking_refs": [level.marking_id()],
        }));
        if i % 10 == 0 {
            emit(json!({
                "type": "relationship",
                "spec_version": "2.1",
                "id": format!("relationship--{}", r.uuid4()),
                "created": created,
                "modified": created,
                "created_by_ref": identity,
                "relationship_type": "indicates",
                "source_ref": indicator_id,
                "target_ref": malware_id,
                "object_marking_refs": [level.max(TlpLevel::Green).marking_id()],
            }));
        }
    }
}

/// The bundle id of a generated bundle.
pub fn bundle_id(opts: &GenOptions) -> String {
    let mut r = Rng::new(&[opts.seed, hash_str(&opts.origin), opts.count, 7]);
    format!("bundle--{}", r.uuid4())
}

/// Writes the bundle as compact JSON, streaming (constant memory for any count).
pub fn write_bundle(opts: &GenOptions, out: &mut impl Write) -> io::Result<u64> {
    write!(
        out,
        "{{\"type\":\"bundle\",\"id\":\"{}\",\"objects\":[",
        bundle_id(opts)
    )?;
    let mut n = 0u64;
    let mut err = None;
    for_each_object(opts, |o| {
        if err.is_some() {
            return;
        }
        let r = (if n > 0 { out.write_all(b",") } else { Ok(()) })
            .and_then(|_| serde_json::to_writer(&mut *out, &o).map_err(io::Error::from));
        if let Err(e) = r {
            err = Some(e);
        }
        n += 1;
    });
    if let Some(e) = err {
        return Err(e);
    }
    out.write_all(b"]}")?;
    Ok(n)
}

/// The bundle as a JSON value (small counts: tests and demos).
pub fn bundle(opts: &GenOptions) -> Value {
    let mut objects = Vec::new();
    for_each_object(opts, |o| objects.push(o));
    json!({"type": "bundle", "id": bundle_id(opts), "objects": objects})
}

/// Calls `emit` with each object of a bundle read from `input`, one at a time, and
/// returns how many there were.
///
/// Benchmarks replay the bundle files `synergia gen` wrote (the same objects for every
/// system measured); at a million objects the whole document as one `Value` would take
/// several gigabytes, so the `objects` array is walked without holding it.
pub fn for_each_bundle_object(
    input: impl Read,
    emit: impl FnMut(Value),
) -> Result<u64, serde_json::Error> {
    use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use std::fmt;

    struct Bundle<F>(F);
    struct Objects<'a, F>(&'a mut F);

    impl<'de, F: FnMut(Value)> Visitor<'de> for Bundle<F> {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a STIX bundle")
        }
        fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<u64, A::Error> {
            let mut n = 0;
            while let Some(key) = map.next_key::<String>()? {
                if key == "objects" {
                    n += map.next_value_seed(Objects(&mut self.0))?;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(n)
        }
    }
    impl<'de, F: FnMut(Value)> DeserializeSeed<'de> for Objects<'_, F> {
        type Value = u64;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
            d.deserialize_seq(self)
        }
    }
    impl<'de, F: FnMut(Value)> Visitor<'de> for Objects<'_, F> {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an array of STIX objects")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<u64, A::Error> {
            let mut n = 0;
            while let Some(o) = seq.next_element::<Value>()? {
                (self.0)(o);
                n += 1;
            }
            Ok(n)
        }
    }

    let mut de =
        serde_json::Deserializer::from_reader(io::BufReader::with_capacity(1 << 20, input));
    let n = de.deserialize_map(Bundle(emit))?;
    de.end()?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn o(origin: &str, overlap: f64) -> GenOptions {
        GenOptions {
            count: 2000,
            seed: 42,
            origin: origin.into(),
            identity: None,
            overlap,
            tlp: None,
        }
    }

    fn values(opts: &GenOptions) -> HashSet<String> {
        (0..opts.count)
            .map(|i| observable_value(opts, i).1)
            .collect()
    }

    #[test]
    fn deterministic_and_streaming_equals_value() {
        let a = bundle(&o("kaspersky", 0.3));
        assert_eq!(a, bundle(&o("kaspersky", 0.3)));
        let mut buf = Vec::new();
        let n = write_bundle(&o("kaspersky", 0.3), &mut buf).unwrap();
        let b: Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(a, b);
        assert_eq!(n as usize, a["objects"].as_array().unwrap().len());
    }

    #[test]
    fn overlap_is_the_requested_fraction_and_shared_by_all_origins() {
        let a = values(&o("groupib", 0.3));
        let b = values(&o("trendmicro", 0.3));
        let shared = a.intersection(&b).count() as f64 / a.len() as f64;
        assert!((shared - 0.3).abs() < 0.04, "{shared}");
        assert_eq!(a.len(), 2000, "observables within one origin are distinct");
        let none = values(&o("groupib", 0.0));
        assert_eq!(none.intersection(&values(&o("trendmicro", 0.0))).count(), 0);
        let all = values(&o("groupib", 1.0));
        assert_eq!(all, values(&o("kaspersky", 1.0)));
    }

    #[test]
    fn example_members_have_distinct_private_classes() {
        let names = [
            "groupib",
            "trendmicro",
            "kaspersky",
            "teamcymru",
            "interpol",
        ];
        let classes: HashSet<u64> = names.iter().map(|n| hash_str(n) % 1023).collect();
        assert_eq!(classes.len(), names.len());
    }

    #[test]
    fn bundle_objects_stream_back_as_written() {
        let opts = o("kaspersky", 0.3);
        let mut buf = Vec::new();
        write_bundle(&opts, &mut buf).unwrap();
        let mut read = Vec::new();
        let n = for_each_bundle_object(&buf[..], |v| read.push(v)).unwrap();
        assert_eq!(n as usize, read.len());
        assert_eq!(Value::Array(read), bundle(&opts)["objects"]);
    }

    #[test]
    fn forced_tlp_marks_everything() {
        let mut opts = o("x", 0.5);
        opts.count = 50;
        opts.tlp = Some(TlpLevel::Red);
        let b = bundle(&opts);
        let red = TlpLevel::Red.marking_id();
        for obj in b["objects"].as_array().unwrap() {
            assert_eq!(obj["object_marking_refs"][0], red, "{obj}");
        }
        // Without a forced level, every object is marked too.
        opts.tlp = None;
        for obj in bundle(&opts)["objects"].as_array().unwrap() {
            assert!(obj["object_marking_refs"][0].is_string(), "{obj}");
        }
    }
}
