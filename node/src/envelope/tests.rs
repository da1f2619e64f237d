//! Every rejection has its own test asserting the precise error.

use super::*;
use crate::roster::{Member, RosterDocument, RosterKey, encode_public_key};
use serde_json::json;

const IDENTITY: &str = "identity--6b0a0f36-5b0e-4d8a-9f0a-0d6f8c3a1b2c";

pub(crate) fn signer(seed: u8, key_id: &str) -> Signer {
    Signer {
        origin: "kaspersky".into(),
        origin_identity: IDENTITY.into(),
        key_id: key_id.into(),
        key: SigningKey::from_bytes(&[seed; 32]),
    }
}

fn roster_key(s: &Signer) -> RosterKey {
    RosterKey {
        key_id: s.key_id.clone(),
        public_key: encode_public_key(&s.key.verifying_key()),
        not_before: "2026-01-01T00:00:00Z".into(),
        not_after: "2027-01-01T00:00:00Z".into(),
        revoked_at: None,
    }
}

fn roster(keys: Vec<RosterKey>) -> Roster {
    let member = |name: &str, identity: &str, keys| Member {
        name: name.into(),
        identity: identity.into(),
        node_url: "https://127.0.0.1:7443".into(),
        tls_san: format!("synergia://member/{name}"),
        keys,
    };
    Roster::from_document(RosterDocument {
        former: Vec::new(),
        kind: "synergia-roster".into(),
        federation: "test".into(),
        members: vec![
            member("kaspersky", IDENTITY, keys),
            member(
                "interpol",
                "identity--0b0a0f36-5b0e-4d8a-9f0a-0d6f8c3a1b2c",
                vec![],
            ),
        ],
    })
    .unwrap()
}

fn indicator(n: u32, marking: Option<TlpLevel>) -> Value {
    let mut o = json!({
        "type": "indicator",
        "spec_version": "2.1",
        "id": format!("indicator--{n:08x}-0000-4000-8000-000000000000"),
        "created": "2026-03-01T00:00:00.000Z",
        "modified": "2026-03-01T00:00:00.000Z",
        "pattern": format!("[ipv4-addr:value = '203.0.113.{}']", n % 250),
        "pattern_type": "stix",
        "valid_from": "2026-03-01T00:00:00Z"
    });
    if let Some(l) = marking {
        o["object_marking_refs"] = json!([l.marking_id()]);
    }
    o
}

fn bundle(objects: Vec<Value>) -> Value {
    json!({"type": "bundle", "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d", "objects": objects})
}

fn meta(seq: u64) -> EnvelopeMeta {
    EnvelopeMeta {
        seq,
        signed_at: Timestamp::parse("2026-11-27T03:44:23.123Z").unwrap(),
        tlp: TlpLevel::Green,
        recipients: vec![],
    }
}

fn opts() -> VerifyOptions {
    VerifyOptions {
        now: Timestamp::parse("2026-11-27T04:00:00Z").unwrap(),
        max_future_skew_secs: 300,
    }
}

fn good() -> (Envelope, Roster) {
    let s = signer(1, "kaspersky-2026a");
    let r = roster(vec![roster_key(&s)]);
    let e = Envelope::sign(
        bundle(vec![indicator(1, Some(TlpLevel::Green))]),
        &s,
        meta(1),
    )
    .unwrap();
    (e, r)
}

/// Re-parse an envelope after editing its JSON.
fn edited(e: &Envelope, f: impl FnOnce(&mut Map<String, Value>)) -> Result<Envelope, VerifyError> {
    let mut doc = e.as_json().clone();
    f(&mut doc);
    Envelope::from_value(Value::Object(doc))
}

#[test]
fn signed_envelope_verifies_and_survives_reserialisation() {
    let (e, r) = good();
    e.verify(&r, &opts()).unwrap();
    let pretty = serde_json::to_vec_pretty(&Value::Object(e.as_json().clone())).unwrap();
    let back = Envelope::from_slice(&pretty).unwrap();
    assert_eq!(back.id(), e.id());
    back.verify(&r, &opts()).unwrap();
    let canon = Envelope::from_slice(&e.to_canonical_bytes()).unwrap();
    assert_eq!(canon.id(), e.id());
}

#[test]
fn malformed_envelopes() {
    let (e, _) = good();
    assert!(matches!(
        Envelope::from_slice(b"[1]"),
        Err(VerifyError::Malformed(_))
    ));
    assert!(matches!(
        Envelope::from_slice(b"{"),
        Err(VerifyError::Malformed(_))
    ));
    for member in ["origin", "bundle", "signature", "recipients", "tlp"] {
        let r = edited(&e, |d| {
            d.remove(member);
        });
        assert!(
            matches!(r, Err(VerifyError::Malformed(ref m)) if m.contains(member)),
            "{member}: {r:?}"
        );
    }
    let r = edited(&e, |d| {
        d.insert("extra".into(), json!(1));
    });
    assert!(matches!(r, Err(VerifyError::Malformed(ref m)) if m.contains("unknown member")));
    let r = edited(&e, |d| {
        d.insert("version".into(), json!(2));
    });
    assert!(matches!(r, Err(VerifyError::Malformed(ref m)) if m.contains("version")));
    let r = edited(&e, |d| {
        d.insert("tlp".into(), json!("orange"));
    });
    assert!(matches!(r, Err(VerifyError::Malformed(ref m)) if m.contains("tlp")));
    let r = edited(&e, |d| {
        d.insert("signed_at".into(), json!("yesterday"));
    });
    assert!(matches!(r, Err(VerifyError::Malformed(ref m)) if m.contains("signed_at")));
}

#[test]
fn duplicate_keys_are_malformed() {
    let (e, _) = good();
    let text = String::from_utf8(e.to_canonical_bytes()).unwrap();
    let dup = text.replacen("{", "{\"origin\":\"interpol\",", 1);
    assert!(
        matches!(Envelope::from_slice(dup.as_bytes()), Err(VerifyError::Malformed(m)) if m.contains("duplicate"))
    );
}

#[test]
fn wrong_seq_type() {
    let (e, _) = good();
    for bad in [json!("1"), json!(1.5), json!(-1), json!(0), json!(null)] {
        let r = edited(&e, |d| {
            d.insert("seq".into(), bad.clone());
        });
        assert!(matches!(r, Err(VerifyError::BadSeq(_))), "{bad}: {r:?}");
    }
}

#[test]
fn bad_base64() {
    let (e, _) = good();
    let sig = e.as_json()["signature"].as_str().unwrap().to_string();
    for bad in [
        format!("{sig}=="),
        sig.replace(['_', '-'], "+"),
        "!!!".into(),
        sig[..40].to_string(),
    ] {
        if bad == sig {
            continue;
        }
        let r = edited(&e, |d| {
            d.insert("signature".into(), json!(bad));
        });
        assert!(matches!(r, Err(VerifyError::BadBase64(_))), "{bad}: {r:?}");
    }
}

#[test]
fn unknown_origin() {
    let s = Signer {
        origin: "mallory".into(),
        ..signer(1, "k")
    };
    let r = roster(vec![]);
    let e = Envelope::sign(bundle(vec![indicator(1, None)]), &s, meta(1)).unwrap();
    assert_eq!(
        e.verify(&r, &opts()),
        Err(VerifyError::UnknownOrigin("mallory".into()))
    );
}

#[test]
fn origin_identity_mismatch() {
    let s = Signer {
        origin_identity: "identity--0b0a0f36-5b0e-4d8a-9f0a-0d6f8c3a1b2c".into(),
        ..signer(1, "kaspersky-2026a")
    };
    let r = roster(vec![roster_key(&signer(1, "kaspersky-2026a"))]);
    let e = Envelope::sign(bundle(vec![indicator(1, None)]), &s, meta(1)).unwrap();
    assert!(matches!(
        e.verify(&r, &opts()),
        Err(VerifyError::IdentityMismatch { .. })
    ));
}

#[test]
fn unknown_key() {
    let r = roster(vec![roster_key(&signer(1, "kaspersky-2026a"))]);
    let e = Envelope::sign(
        bundle(vec![indicator(1, None)]),
        &signer(1, "kaspersky-2099"),
        meta(1),
    )
    .unwrap();
    assert_eq!(
        e.verify(&r, &opts()),
        Err(VerifyError::UnknownKey {
            origin: "kaspersky".into(),
            key_id: "kaspersky-2099".into()
        })
    );
}

/// The roster with kaspersky removed (a former member) at `removed_at`.
fn roster_without_kaspersky(keys: Vec<RosterKey>, removed_at: &str) -> Roster {
    let mut doc = roster(keys).document().clone();
    let member = doc.members.remove(0);
    doc.former.push(crate::roster::FormerMember {
        member,
        removed_at: removed_at.into(),
    });
    Roster::from_document(doc).unwrap()
}

#[test]
fn a_removed_members_envelopes_stay_valid_before_the_removal_and_are_refused_after() {
    let s = signer(1, "kaspersky-2026a");
    let b = bundle(vec![indicator(1, None)]);
    let e = Envelope::sign(b.clone(), &s, meta(1)).unwrap();
    // Removed after signing: valid (it was a member then).
    let r = roster_without_kaspersky(vec![roster_key(&s)], "2026-11-27T03:44:24Z");
    e.verify(&r, &opts()).unwrap();
    assert!(r.member("kaspersky").is_none());
    // Removed before signing, even by a millisecond: refused, for good.
    let r = roster_without_kaspersky(vec![roster_key(&s)], "2026-11-27T03:44:23.123Z");
    let err = e.verify(&r, &opts()).unwrap_err();
    assert!(matches!(err, VerifyError::MemberRemoved { .. }), "{err:?}");
    assert_eq!(err.code(), "member-removed");
    // A red envelope of another member naming kaspersky as a recipient: valid when
    // signed before the removal, refused after.
    let mut interpol = signer(2, "interpol-2026a");
    interpol.origin = "interpol".into();
    interpol.origin_identity = "identity--0b0a0f36-5b0e-4d8a-9f0a-0d6f8c3a1b2c".into();
    let mut doc = r.document().clone();
    doc.members[0].keys.push(roster_key(&interpol));
    let with_interpol = |removed_at: &str| {
        let mut d = doc.clone();
        d.former[0].removed_at = removed_at.into();
        Roster::from_document(d).unwrap()
    };
    let mut red = meta(1);
    red.tlp = TlpLevel::Red;
    red.recipients = vec!["kaspersky".into()];
    let e = Envelope::sign(
        bundle(vec![indicator(3, Some(TlpLevel::Red))]),
        &interpol,
        red,
    )
    .unwrap();
    e.verify(&with_interpol("2026-11-27T03:44:24Z"), &opts())
        .unwrap();
    assert_eq!(
        e.verify(&with_interpol("2026-11-27T03:44:23Z"), &opts())
            .unwrap_err()
            .code(),
        "bad-recipients"
    );
    // A name nobody ever had stays a passing `unknown-origin` (a roster may be late).
    let mut other = signer(1, "kaspersky-2026a");
    other.origin = "newcomer".into();
    let e = Envelope::sign(b.clone(), &other, meta(1)).unwrap();
    assert_eq!(e.verify(&r, &opts()).unwrap_err().code(), "unknown-origin");
    // Nobody signs as the former member's creator identity either.
    let mut o = indicator(2, None);
    o["created_by_ref"] = json!(IDENTITY);
    let mut interpol = signer(2, "interpol-2026a");
    interpol.origin = "interpol".into();
    interpol.origin_identity = "identity--0b0a0f36-5b0e-4d8a-9f0a-0d6f8c3a1b2c".into();
    let mut doc = r.document().clone();
    doc.members[0].keys.push(roster_key(&interpol));
    let r = Roster::from_document(doc).unwrap();
    let e = Envelope::sign(bundle(vec![o]), &interpol, meta(1)).unwrap();
    assert_eq!(e.verify(&r, &opts()).unwrap_err().code(), "foreign-creator");
}

#[test]
fn key_not_yet_valid_expired_and_revoked() {
    let s = signer(1, "kaspersky-2026a");
    let b = bundle(vec![indicator(1, None)]);
    let mut k = roster_key(&s);
    k.not_before = "2026-12-01T00:00:00Z".into();
    let e = Envelope::sign(b.clone(), &s, meta(1)).unwrap();
    assert!(matches!(
        e.verify(&roster(vec![k]), &opts()),
        Err(VerifyError::KeyNotYetValid { .. })
    ));

    let mut k = roster_key(&s);
    k.not_before = "2025-01-01T00:00:00Z".into();
    k.not_after = "2026-06-01T00:00:00Z".into();
    assert!(matches!(
        e.verify(&roster(vec![k]), &opts()),
        Err(VerifyError::KeyExpired { .. })
    ));

    let mut k = roster_key(&s);
    k.revoked_at = Some("2026-11-01T00:00:00Z".into());
    assert!(matches!(
        e.verify(&roster(vec![k.clone()]), &opts()),
        Err(VerifyError::KeyRevoked { .. })
    ));
    // Signed before the revocation: still valid.
    let mut early = meta(1);
    early.signed_at = Timestamp::parse("2026-10-01T00:00:00Z").unwrap();
    let e = Envelope::sign(b, &s, early).unwrap();
    e.verify(&roster(vec![k]), &opts()).unwrap();
}

#[test]
fn weak_key() {
    // The identity point: small order, every "signature" with R = identity would pass
    // a non-strict check.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let weak = ed25519_dalek::VerifyingKey::from_bytes(&identity).unwrap();
    assert!(weak.is_weak());
    let s = signer(1, "kaspersky-2026a");
    let mut k = roster_key(&s);
    k.public_key = encode_public_key(&weak);
    let e = Envelope::sign(bundle(vec![indicator(1, None)]), &s, meta(1)).unwrap();
    assert_eq!(
        e.verify(&roster(vec![k]), &opts()),
        Err(VerifyError::WeakKey("kaspersky-2026a".into()))
    );
}

#[test]
fn forged_signature() {
    let (e, r) = good();
    let mallory = signer(9, "kaspersky-2026a");
    let forged = Envelope::sign(e.bundle().clone(), &mallory, meta(1)).unwrap();
    assert_eq!(forged.verify(&r, &opts()), Err(VerifyError::BadSignature));
}

#[test]
fn tampered_object() {
    let (e, r) = good();
    let t = edited(&e, |d| {
        d["bundle"]["objects"][0]["pattern"] = json!("[ipv4-addr:value = '198.51.100.1']");
    })
    .unwrap();
    assert_ne!(t.id(), e.id());
    assert_eq!(t.verify(&r, &opts()), Err(VerifyError::BadSignature));
}

#[test]
fn tampered_metadata() {
    let (e, r) = good();
    for (k, v) in [
        ("seq", json!(2)),
        ("tlp", json!("clear")),
        ("signed_at", json!("2026-11-27T03:44:24.123Z")),
    ] {
        let t = edited(&e, |d| {
            d.insert(k.into(), v.clone());
        })
        .unwrap();
        assert_eq!(t.verify(&r, &opts()), Err(VerifyError::BadSignature), "{k}");
    }
}

#[test]
fn bundle_not_valid_stix() {
    let s = signer(1, "kaspersky-2026a");
    let r = roster(vec![roster_key(&s)]);
    let mut bad = indicator(1, None);
    bad["id"] = json!("malware--00000001-0000-4000-8000-000000000000");
    let e = Envelope::sign(bundle(vec![bad]), &s, meta(1)).unwrap();
    assert!(matches!(
        e.verify(&r, &opts()),
        Err(VerifyError::InvalidBundle(_))
    ));
}

#[test]
fn tlp_more_restrictive_than_envelope() {
    let s = signer(1, "kaspersky-2026a");
    let r = roster(vec![roster_key(&s)]);
    let e = Envelope::sign(bundle(vec![indicator(1, Some(TlpLevel::Red))]), &s, meta(1)).unwrap();
    assert!(matches!(
        e.verify(&r, &opts()),
        Err(VerifyError::TlpMismatch {
            object_tlp: TlpLevel::Red,
            envelope_tlp: TlpLevel::Green,
            ..
        })
    ));
}

#[test]
fn signed_in_future() {
    let (e, r) = good();
    let mut o = opts();
    o.now = Timestamp::parse("2026-11-27T03:00:00Z").unwrap();
    assert!(matches!(
        e.verify(&r, &o),
        Err(VerifyError::SignedInFuture { .. })
    ));
}

#[test]
fn recipients_rules() {
    let s = signer(1, "kaspersky-2026a");
    let r = roster(vec![roster_key(&s)]);
    let mut m = meta(1);
    m.recipients = vec!["interpol".into()];
    let e = Envelope::sign(bundle(vec![indicator(1, None)]), &s, m.clone()).unwrap();
    assert!(
        matches!(e.verify(&r, &opts()), Err(VerifyError::BadRecipients(_))),
        "green with recipients"
    );
    m.tlp = TlpLevel::Red;
    let e = Envelope::sign(
        bundle(vec![indicator(1, Some(TlpLevel::Red))]),
        &s,
        m.clone(),
    )
    .unwrap();
    e.verify(&r, &opts()).unwrap();
    m.recipients = vec!["nobody".into()];
    let e = Envelope::sign(bundle(vec![indicator(1, None)]), &s, m).unwrap();
    assert!(matches!(
        e.verify(&r, &opts()),
        Err(VerifyError::BadRecipients(_))
    ));
}

#[test]
fn batch_verification_finds_exactly_the_bad_ones() {
    let s = signer(1, "kaspersky-2026a");
    let r = roster(vec![roster_key(&s)]);
    let mut envs: Vec<Envelope> = (1..=64)
        .map(|i| Envelope::sign(bundle(vec![indicator(i as u32, None)]), &s, meta(i)).unwrap())
        .collect();
    assert!(verify_batch(&envs, &r, &opts()).iter().all(Result::is_ok));
    envs[17] = Envelope::sign(
        envs[17].bundle().clone(),
        &signer(9, "kaspersky-2026a"),
        meta(18),
    )
    .unwrap();
    envs[40] = Envelope::sign(envs[40].bundle().clone(), &signer(1, "nope"), meta(41)).unwrap();
    let res = verify_batch(&envs, &r, &opts());
    for (i, res) in res.iter().enumerate() {
        match i {
            17 => assert_eq!(res, &Err(VerifyError::BadSignature)),
            40 => assert!(matches!(res, Err(VerifyError::UnknownKey { .. }))),
            _ => assert!(res.is_ok(), "{i}: {res:?}"),
        }
    }
}

/// What receiving keeps of an envelope answers like the envelope, and its signed
/// bytes and signature verify through the batch as the envelope's do.
#[test]
fn a_sealed_envelope_keeps_what_storing_and_the_signature_need() {
    let s = signer(1, "kaspersky-2026a");
    let r = roster(vec![roster_key(&s)]);
    let envs: Vec<Envelope> = (1..=8)
        .map(|i| {
            let objects = (0..i).map(|n| indicator(100 * i as u32 + n as u32, None));
            Envelope::sign(bundle(objects.collect()), &s, meta(i)).unwrap()
        })
        .collect();
    let keys: Vec<VerifyingKey> = envs
        .iter()
        .map(|e| e.authority_key(&r, &opts()).unwrap())
        .collect();
    let expected: Vec<(EnvelopeId, Header, Vec<u8>, Signature, usize)> = envs
        .iter()
        .map(|e| {
            let e = e.clone();
            (
                e.id().clone(),
                e.header().clone(),
                e.signed_bytes().to_vec(),
                e.signature,
                e.objects().len(),
            )
        })
        .collect();
    let sealed: Vec<Sealed> = envs.into_iter().map(Envelope::into_sealed).collect();
    for (s, (id, header, signed, sig, objects)) in sealed.iter().zip(&expected) {
        assert_eq!(s.id(), id);
        assert_eq!(s.header(), header);
        assert_eq!(s.signed_bytes(), &signed[..]);
        assert_eq!(s.signature(), sig);
        assert_eq!(s.object_count(), *objects);
    }
    let msgs: Vec<&[u8]> = sealed.iter().map(Sealed::signed_bytes).collect();
    let mut sigs: Vec<Signature> = sealed.iter().map(|s| *s.signature()).collect();
    assert_eq!(signatures_hold(&msgs, &sigs, &keys), vec![true; 8]);
    // One signature swapped for another envelope's: only that one fails.
    sigs[5] = sigs[2];
    let held = signatures_hold(&msgs, &sigs, &keys);
    assert_eq!(
        held,
        (0..8).map(|i| i != 5).collect::<Vec<bool>>(),
        "{held:?}"
    );
}

#[test]
fn batch_refuses_small_order_r_like_strict() {
    let (e, r) = good();
    // A signature whose R is the identity point and whose s is zero.
    let mut sig = [0u8; 64];
    sig[0] = 1;
    let t = edited(&e, |d| {
        d.insert("signature".into(), json!(URL_SAFE_NO_PAD.encode(sig)));
    })
    .unwrap();
    assert_eq!(t.verify(&r, &opts()), Err(VerifyError::BadSignature));
    assert_eq!(
        verify_batch(&[t], &r, &opts())[0],
        Err(VerifyError::BadSignature)
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn arb_bundle() -> impl Strategy<Value = Value> {
        proptest::collection::vec((1u32..5000, "[a-z ]{0,20}", 0u8..=100), 1..8).prop_map(|items| {
            let objs = items
                .into_iter()
                .map(|(n, name, conf)| {
                    let mut o = indicator(n, Some(TlpLevel::Green));
                    o["name"] = json!(name);
                    o["confidence"] = json!(conf);
                    o
                })
                .collect();
            bundle(objs)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn sign_serialise_parse_verify(b in arb_bundle(), flip in any::<prop::sample::Index>(), bit in 0u8..8) {
            let s = signer(1, "kaspersky-2026a");
            let r = roster(vec![roster_key(&s)]);
            let e = Envelope::sign(b, &s, meta(1)).unwrap();
            let bytes = serde_json::to_vec(&Value::Object(e.as_json().clone())).unwrap();
            let back = Envelope::from_slice(&bytes).unwrap();
            prop_assert!(back.verify(&r, &opts()).is_ok());

            // Flip one bit of one byte: it must fail, unless the canonical form is
            // unchanged (the byte was insignificant).
            let mut t = bytes.clone();
            let i = flip.index(t.len());
            t[i] ^= 1 << bit;
            match Envelope::from_slice(&t) {
                Err(_) => {}
                Ok(te) => {
                    if te.to_canonical_bytes() != e.to_canonical_bytes() {
                        prop_assert!(te.verify(&r, &opts()).is_err(), "flip at {} accepted", i);
                    }
                }
            }
        }
    }
}

/// Signs `msg` for the key made from `seed` (as `SigningKey::from_bytes` makes it)
/// with a nonce point that has the order-2 point added: the forgery of security
/// finding 8. Only the key's holder can make it; the cofactored batch equation accepts
/// it for some batch coefficients, strict single verification never.
fn torsioned_signature(seed: u8, msg: &[u8], nonce: u64) -> Signature {
    use curve25519_dalek::constants::ED25519_BASEPOINT_POINT as B;
    use curve25519_dalek::edwards::CompressedEdwardsY;
    use curve25519_dalek::scalar::Scalar;
    use curve25519_dalek::traits::IsIdentity;
    use sha2::{Digest, Sha512};
    let h = Sha512::digest([seed; 32]);
    let mut a_bytes = [0u8; 32];
    a_bytes.copy_from_slice(&h[..32]);
    a_bytes[0] &= 248;
    a_bytes[31] &= 127;
    a_bytes[31] |= 64;
    let a = Scalar::from_bytes_mod_order(a_bytes);
    let public = (a * B).compress();
    // The point of order 2: (0, -1).
    let mut t = [0xffu8; 32];
    t[0] = 0xec;
    t[31] = 0x7f;
    let t = CompressedEdwardsY(t).decompress().unwrap();
    assert!(t.is_small_order() && !t.is_identity());
    let r = Scalar::from(nonce.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let big_r = (r * B + t).compress();
    let k = Scalar::from_hash(
        Sha512::new()
            .chain_update(big_r.as_bytes())
            .chain_update(public.as_bytes())
            .chain_update(msg),
    );
    let s = r + k * a;
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(big_r.as_bytes());
    sig[32..].copy_from_slice(s.as_bytes());
    Signature::from_bytes(&sig)
}

#[test]
fn torsioned_nonce_signatures_are_refused_by_single_and_batch_verification_alike() {
    let (e, r) = good();
    let key = signer(1, "kaspersky-2026a").key.verifying_key();
    let mut forged = Vec::new();
    for nonce in 0..16u64 {
        let sig = torsioned_signature(1, &e.signed.bytes, nonce);
        // The batch equation alone takes some of them: the disagreement the checks
        // before batching remove.
        let t = edited(&e, |d| {
            d.insert(
                "signature".into(),
                json!(URL_SAFE_NO_PAD.encode(sig.to_bytes())),
            );
        })
        .unwrap();
        assert!(key.verify_strict(&t.signed.bytes, &sig).is_err());
        assert_eq!(t.verify(&r, &opts()), Err(VerifyError::BadSignature));
        forged.push(t);
    }
    let raw_batch_accepts = forged
        .iter()
        .filter(|t| {
            ed25519_dalek::verify_batch(&[&t.signed.bytes[..]], &[t.signature], &[key]).is_ok()
        })
        .count();
    assert!(
        raw_batch_accepts > 0,
        "the cofactored batch equation should accept some torsioned signatures"
    );
    // Alone, in batches of their own, and mixed with a good envelope.
    for verdict in verify_batch(&forged, &r, &opts()) {
        assert_eq!(verdict, Err(VerifyError::BadSignature));
    }
    let mut mixed: Vec<Envelope> = forged.clone();
    mixed.insert(3, e.clone());
    let verdicts = verify_batch(&mixed, &r, &opts());
    for (i, v) in verdicts.iter().enumerate() {
        if i == 3 {
            assert_eq!(*v, Ok(()));
        } else {
            assert_eq!(*v, Err(VerifyError::BadSignature));
        }
    }
}

#[test]
fn roster_keys_with_a_torsion_component_are_refused() {
    use curve25519_dalek::edwards::CompressedEdwardsY;
    let good_key = signer(1, "k").key.verifying_key();
    let mut t = [0xffu8; 32];
    t[0] = 0xec;
    t[31] = 0x7f;
    let t = CompressedEdwardsY(t).decompress().unwrap();
    let bad = (good_key.to_edwards() + t).compress();
    let err =
        crate::roster::decode_public_key(&URL_SAFE_NO_PAD.encode(bad.as_bytes())).unwrap_err();
    assert!(err.contains("torsion"), "{err}");
    crate::roster::decode_public_key(&encode_public_key(&good_key)).unwrap();
}
