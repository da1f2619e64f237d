//! Origin-signed envelopes: the unit of exchange between nodes (SPEC section 3).
//!
//! An envelope is signed once, by its origin, over the RFC 8785 canonical form of the
//! envelope without its `signature` member. Relays never re-sign: a node forwards the
//! JSON value it received and every node verifies it against the roster unchanged.
//! The envelope id is `sha256:` of the same canonical bytes, so whitespace and key
//! order a relay introduces change neither the id nor the signature.

pub mod canonical;
mod error;
pub mod retraction;
pub mod wire;

pub use canonical::EnvelopeId;
pub use error::{SignError, VerifyError};
pub use retraction::{Reason, Retraction};

use crate::roster::{Roster, TrustedKey};
use crate::stix::PatternKeys;
use crate::stix::timestamp::Timestamp;
use crate::stix::tlp::TlpLevel;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use canonical::{SignedForm, canonical_object, signed_form};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde_json::{Map, Value};
use std::sync::OnceLock;

/// The `type` member of every envelope.
pub const ENVELOPE_TYPE: &str = "synergia-envelope";
/// The envelope format version this code reads and writes.
pub const ENVELOPE_VERSION: u64 = 1;

/// The members every kind of envelope has; the eleventh is the kind's body
/// ([`Kind::body_member`]).
const MEMBERS: [&str; 10] = [
    "type",
    "version",
    "origin",
    "origin_identity",
    "key_id",
    "seq",
    "signed_at",
    "tlp",
    "recipients",
    "signature",
];

/// What an envelope carries: STIX content, or a retraction of earlier content. Both
/// are signed, numbered, stored and sent alike (protocol §3 and §11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `synergia-envelope`: a STIX bundle.
    Bundle,
    /// `synergia-retraction`: envelopes or object versions taken back.
    Retraction,
}

impl Kind {
    /// The `type` member.
    pub fn type_name(self) -> &'static str {
        match self {
            Kind::Bundle => ENVELOPE_TYPE,
            Kind::Retraction => retraction::RETRACTION_TYPE,
        }
    }

    /// The member that holds the kind's body.
    pub fn body_member(self) -> &'static str {
        match self {
            Kind::Bundle => "bundle",
            Kind::Retraction => "retraction",
        }
    }

    fn of_type(t: &str) -> Option<Kind> {
        [Kind::Bundle, Kind::Retraction]
            .into_iter()
            .find(|k| k.type_name() == t)
    }
}

/// The signed metadata of an envelope, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Member that signed it.
    pub origin: String,
    /// That member's STIX identity.
    pub origin_identity: String,
    /// The roster key that signed it.
    pub key_id: String,
    /// Per-origin sequence number, from 1, increasing by one per envelope.
    pub seq: u64,
    /// Signing instant, as written.
    pub signed_at: String,
    /// Signing instant, parsed.
    pub signed_at_ts: Timestamp,
    /// Most restrictive TLP level of the objects inside.
    pub tlp: TlpLevel,
    /// For `red`: the members allowed to receive it.
    pub recipients: Vec<String>,
    /// A bundle or a retraction.
    pub kind: Kind,
}

/// A member's signing key with the identity it signs as.
pub struct Signer {
    /// Member name.
    pub origin: String,
    /// STIX identity of the member.
    pub origin_identity: String,
    /// Roster id of `key`.
    pub key_id: String,
    /// The private key.
    pub key: SigningKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("Signer")
            .field("origin", &self.origin)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// What the signer decides per envelope.
#[derive(Debug, Clone)]
pub struct EnvelopeMeta {
    /// Next sequence number of this origin.
    pub seq: u64,
    /// Signing instant (rendered with millisecond precision).
    pub signed_at: Timestamp,
    /// The envelope's TLP level.
    pub tlp: TlpLevel,
    /// Recipients (red only).
    pub recipients: Vec<String>,
}

/// Knobs of verification that depend on the verifier, not on the envelope.
#[derive(Debug, Clone, Copy)]
pub struct VerifyOptions {
    /// The verifier's clock.
    pub now: Timestamp,
    /// How far in the future `signed_at` may be (clock skew between members).
    pub max_future_skew_secs: i64,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            now: Timestamp::now(),
            max_future_skew_secs: 300,
        }
    }
}

/// A parsed envelope: the JSON value as received plus its header, signed bytes and id.
#[derive(Debug, Clone)]
pub struct Envelope {
    doc: Map<String, Value>,
    header: Header,
    signed: SignedForm,
    id: EnvelopeId,
    signature: Signature,
    /// The observable keys of the objects' STIX patterns, once validation found them.
    pattern_keys: OnceLock<PatternKeys>,
    /// The TLP level each object is shared at, once the content check or the publish
    /// that signed the envelope found them.
    levels: OnceLock<Vec<TlpLevel>>,
    /// The bytes the envelope was received as, when they are its RFC 8785 form (its
    /// signed form was cut from them): storing takes them as they are rather than
    /// splicing the signature back into a copy of the signed form.
    received: Option<Bytes>,
    /// The retraction, for [`Kind::Retraction`].
    retraction: Option<Retraction>,
}

fn malformed(msg: impl Into<String>) -> VerifyError {
    VerifyError::Malformed(msg.into())
}

fn str_member<'a>(doc: &'a Map<String, Value>, name: &str) -> Result<&'a str, VerifyError> {
    match doc.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(malformed(format!("{name} must be a string"))),
        None => Err(malformed(format!("missing member {name}"))),
    }
}

impl Envelope {
    /// Parses an envelope from JSON bytes. Checks shape only; see [`Envelope::verify`].
    ///
    /// Envelopes as nodes send them are already in their RFC 8785 form; their signed
    /// form is then taken from the bytes ([`wire::signed_form_of_canonical`]) rather
    /// than written out again from the parsed value.
    pub fn from_slice(bytes: &[u8]) -> Result<Envelope, VerifyError> {
        Envelope::from_text(bytes).map(|(env, _)| env)
    }

    /// [`Envelope::from_slice`] for bytes the envelope can keep: when they are its
    /// RFC 8785 form they are what is stored ([`Envelope::received_canonical`]).
    pub fn from_bytes(bytes: Bytes) -> Result<Envelope, VerifyError> {
        let (mut env, canonical) = Envelope::from_text(&bytes)?;
        if canonical {
            env.received = Some(bytes);
        }
        Ok(env)
    }

    /// Parses envelope text; also says whether the text is the envelope's RFC 8785
    /// form (its signed form was cut from it).
    fn from_text(bytes: &[u8]) -> Result<(Envelope, bool), VerifyError> {
        let value: Value = crate::json::from_slice_strict(bytes)
            .map_err(|e| malformed(format!("not valid JSON: {e}")))?;
        let signed = wire::signed_form_of_canonical(bytes);
        let canonical = signed.is_some();
        Ok((Envelope::from_parts(value, signed)?, canonical))
    }

    /// The bytes the envelope was received as, when they are its RFC 8785 form.
    pub fn received_canonical(&self) -> Option<&Bytes> {
        self.received.as_ref()
    }

    /// Parses an envelope from a JSON value. Checks shape only.
    pub fn from_value(value: Value) -> Result<Envelope, VerifyError> {
        Envelope::from_parts(value, None)
    }

    /// [`Envelope::from_value`], with the signed form when the caller already has it.
    fn from_parts(value: Value, signed: Option<SignedForm>) -> Result<Envelope, VerifyError> {
        let Value::Object(doc) = value else {
            return Err(malformed("an envelope is a JSON object"));
        };
        let kind = Kind::of_type(str_member(&doc, "type")?).ok_or_else(|| {
            malformed(format!(
                "type must be {ENVELOPE_TYPE:?} or {:?}",
                retraction::RETRACTION_TYPE
            ))
        })?;
        if let Some(extra) = doc
            .keys()
            .find(|k| !MEMBERS.contains(&k.as_str()) && k.as_str() != kind.body_member())
        {
            return Err(malformed(format!("unknown member {extra:?}")));
        }
        if doc.get("version").and_then(Value::as_u64) != Some(ENVELOPE_VERSION) {
            return Err(malformed(format!("version must be {ENVELOPE_VERSION}")));
        }
        let origin = str_member(&doc, "origin")?.to_string();
        let origin_identity = str_member(&doc, "origin_identity")?.to_string();
        let key_id = str_member(&doc, "key_id")?.to_string();
        let seq = match doc.get("seq") {
            Some(Value::Number(n)) => match n.as_u64() {
                Some(s) if (1..=(1u64 << 53)).contains(&s) => s,
                _ => return Err(VerifyError::BadSeq(n.to_string())),
            },
            Some(other) => return Err(VerifyError::BadSeq(other.to_string())),
            None => return Err(malformed("missing member seq")),
        };
        let signed_at = str_member(&doc, "signed_at")?.to_string();
        let signed_at_ts =
            Timestamp::parse(&signed_at).map_err(|e| malformed(format!("signed_at: {e}")))?;
        let tlp = TlpLevel::parse(str_member(&doc, "tlp")?)
            .map_err(|e| malformed(format!("tlp: {e}")))?;
        if tlp.as_str() != str_member(&doc, "tlp")? {
            return Err(malformed(
                "tlp must be one of clear, green, amber, amber+strict, red",
            ));
        }
        let recipients = match doc.get("recipients") {
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| malformed("recipients must be an array of member names"))?,
            Some(_) => return Err(malformed("recipients must be an array")),
            None => return Err(malformed("missing member recipients")),
        };
        let mut retraction = None;
        match (kind, doc.get(kind.body_member())) {
            (Kind::Bundle, Some(Value::Object(b))) => {
                if b.get("type").and_then(Value::as_str) != Some("bundle") {
                    return Err(malformed("bundle.type must be \"bundle\""));
                }
                if !matches!(b.get("objects"), Some(Value::Array(_))) {
                    return Err(malformed("bundle.objects must be an array"));
                }
            }
            (Kind::Bundle, Some(_)) => {
                return Err(malformed("bundle must be a STIX bundle object"));
            }
            (Kind::Retraction, Some(r)) => {
                retraction = Some(Retraction::from_value(r).map_err(malformed)?);
            }
            (_, None) => {
                return Err(malformed(format!("missing member {}", kind.body_member())));
            }
        }
        let sig_text = str_member(&doc, "signature")?;
        let sig_bytes = URL_SAFE_NO_PAD
            .decode(sig_text)
            .map_err(|e| VerifyError::BadBase64(e.to_string()))?;
        let sig_arr: [u8; 64] = sig_bytes.as_slice().try_into().map_err(|_| {
            VerifyError::BadBase64(format!(
                "signature must be 64 bytes, got {}",
                sig_bytes.len()
            ))
        })?;
        let signature = Signature::from_bytes(&sig_arr);
        let signed = match signed {
            Some(s) => s,
            None => signed_form(&doc).map_err(|e| malformed(e.to_string()))?,
        };
        let id = EnvelopeId::of_signed_bytes(&signed.bytes);
        Ok(Envelope {
            doc,
            header: Header {
                origin,
                origin_identity,
                key_id,
                seq,
                signed_at,
                signed_at_ts,
                tlp,
                recipients,
                kind,
            },
            signed,
            id,
            signature,
            pattern_keys: OnceLock::new(),
            levels: OnceLock::new(),
            received: None,
            retraction,
        })
    }

    /// Signs `bundle` as `signer`. The bundle value is signed as given: it is not
    /// re-serialised through typed models.
    pub fn sign(bundle: Value, signer: &Signer, meta: EnvelopeMeta) -> Result<Envelope, SignError> {
        if !bundle.is_object() {
            return Err(SignError::NotAnObject);
        }
        Envelope::sign_kind(Kind::Bundle, bundle, None, signer, meta)
    }

    /// Signs a retraction as `signer` (protocol §11).
    pub fn sign_retraction(
        retraction: Retraction,
        signer: &Signer,
        meta: EnvelopeMeta,
    ) -> Result<Envelope, SignError> {
        let body = retraction.to_value();
        Envelope::sign_kind(Kind::Retraction, body, Some(retraction), signer, meta)
    }

    fn sign_kind(
        kind: Kind,
        body: Value,
        retraction: Option<Retraction>,
        signer: &Signer,
        meta: EnvelopeMeta,
    ) -> Result<Envelope, SignError> {
        let mut doc = Map::new();
        doc.insert("type".into(), kind.type_name().into());
        doc.insert("version".into(), ENVELOPE_VERSION.into());
        doc.insert("origin".into(), signer.origin.clone().into());
        doc.insert(
            "origin_identity".into(),
            signer.origin_identity.clone().into(),
        );
        doc.insert("key_id".into(), signer.key_id.clone().into());
        doc.insert("seq".into(), meta.seq.into());
        let signed_at = meta.signed_at.to_millis_string();
        doc.insert("signed_at".into(), signed_at.clone().into());
        doc.insert("tlp".into(), meta.tlp.as_str().into());
        doc.insert(
            "recipients".into(),
            Value::Array(meta.recipients.iter().cloned().map(Value::from).collect()),
        );
        doc.insert(kind.body_member().into(), body);
        let signed = signed_form(&doc)?;
        let signature = signer.key.sign(&signed.bytes);
        doc.insert(
            "signature".into(),
            URL_SAFE_NO_PAD.encode(signature.to_bytes()).into(),
        );
        let id = EnvelopeId::of_signed_bytes(&signed.bytes);
        let signed_at_ts = Timestamp::parse(&signed_at).unwrap_or(meta.signed_at);
        Ok(Envelope {
            doc,
            header: Header {
                origin: signer.origin.clone(),
                origin_identity: signer.origin_identity.clone(),
                key_id: signer.key_id.clone(),
                seq: meta.seq,
                signed_at,
                signed_at_ts,
                tlp: meta.tlp,
                recipients: meta.recipients,
                kind,
            },
            signed,
            id,
            signature,
            pattern_keys: OnceLock::new(),
            levels: OnceLock::new(),
            received: None,
            retraction,
        })
    }

    /// The envelope id (`sha256:` of the signed canonical form).
    pub fn id(&self) -> &EnvelopeId {
        &self.id
    }

    /// The parsed signed metadata.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The retraction inside, for a retraction envelope.
    pub fn retraction(&self) -> Option<&Retraction> {
        self.retraction.as_ref()
    }

    /// The STIX bundle inside (`null` for a retraction).
    pub fn bundle(&self) -> &Value {
        // Presence and shape were checked when the envelope was built.
        static EMPTY: Value = Value::Null;
        self.doc.get("bundle").unwrap_or(&EMPTY)
    }

    /// The objects of the bundle (none for a retraction).
    pub fn objects(&self) -> &[Value] {
        self.bundle()
            .get("objects")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The whole envelope as a JSON object (as received).
    pub fn as_json(&self) -> &Map<String, Value> {
        &self.doc
    }

    /// The canonical bytes the signature covers.
    pub fn signed_bytes(&self) -> &[u8] {
        &self.signed.bytes
    }

    /// The signed form with where its signature and its objects are.
    pub fn signed_form(&self) -> &SignedForm {
        &self.signed
    }

    /// The observable keys of each object's STIX pattern, when validation noted them
    /// (content checks on receipt, or the publish that signed the envelope).
    pub fn pattern_keys(&self) -> Option<&PatternKeys> {
        self.pattern_keys.get()
    }

    /// Notes what validation found in the objects' patterns, one entry per object;
    /// the first note stays.
    pub fn note_pattern_keys(&self, keys: PatternKeys) {
        if keys.len() == self.objects().len() {
            let _ = self.pattern_keys.set(keys);
        }
    }

    /// The TLP level each object is shared at (its own most restrictive TLP marking,
    /// or the envelope's level when it has none), when the content check on receipt or
    /// the publish that signed the envelope noted them; the store then need not
    /// resolve every object's markings again.
    pub fn object_levels(&self) -> Option<&[TlpLevel]> {
        self.levels.get().map(Vec::as_slice)
    }

    /// Notes the TLP level each object is shared at, one entry per object, when the
    /// caller already knows them (a publish splits objects by level before signing);
    /// the first note stays.
    pub fn note_object_levels(&self, levels: Vec<TlpLevel>) {
        if levels.len() == self.objects().len() {
            let _ = self.levels.set(levels);
        }
    }

    /// RFC 8785 form of the whole envelope, signature included: what we store and
    /// forward (a lossless, whitespace-free encoding of the value received).
    pub fn to_canonical_bytes(&self) -> Vec<u8> {
        canonical_object(&self.doc).unwrap_or_default()
    }

    /// What is left once the checks that read the objects are done: see [`Sealed`].
    pub fn into_sealed(self) -> Sealed {
        let objects = self.objects().len();
        Sealed {
            header: self.header,
            id: self.id,
            signed_bytes: self.signed.bytes,
            signature: self.signature,
            objects,
        }
    }

    /// Full verification against the roster: authority, signature, content.
    pub fn verify(&self, roster: &Roster, opts: &VerifyOptions) -> Result<(), VerifyError> {
        let key = self.check_authority(roster, opts)?;
        key.verifying_key
            .verify_strict(&self.signed.bytes, &self.signature)
            .map_err(|_| VerifyError::BadSignature)?;
        self.check_content(roster)
    }

    /// Origin, identity and key checks ([`Envelope::verify`]'s first step): the key
    /// the signature must verify with, if it may sign this envelope.
    pub fn authority_key(
        &self,
        roster: &Roster,
        opts: &VerifyOptions,
    ) -> Result<VerifyingKey, VerifyError> {
        self.check_authority(roster, opts).map(|k| k.verifying_key)
    }

    /// Origin, identity and key checks: is this key allowed to sign this envelope?
    fn check_authority<'r>(
        &self,
        roster: &'r Roster,
        opts: &VerifyOptions,
    ) -> Result<&'r TrustedKey, VerifyError> {
        let h = &self.header;
        let member = match (roster.member(&h.origin), roster.former_member(&h.origin)) {
            (Some(m), _) => m,
            (None, Some((m, removed_at))) => {
                if h.signed_at_ts >= removed_at {
                    return Err(VerifyError::MemberRemoved {
                        origin: h.origin.clone(),
                        removed_at: removed_at.to_string(),
                        signed_at: h.signed_at.clone(),
                    });
                }
                m
            }
            (None, None) => return Err(VerifyError::UnknownOrigin(h.origin.clone())),
        };
        if member.identity != h.origin_identity {
            return Err(VerifyError::IdentityMismatch {
                origin: h.origin.clone(),
                expected: member.identity.clone(),
                got: h.origin_identity.clone(),
            });
        }
        let key = roster
            .key(&h.origin, &h.key_id)
            .ok_or_else(|| VerifyError::UnknownKey {
                origin: h.origin.clone(),
                key_id: h.key_id.clone(),
            })?;
        if key.verifying_key.is_weak() {
            return Err(VerifyError::WeakKey(h.key_id.clone()));
        }
        let at = h.signed_at_ts;
        if at < key.not_before {
            return Err(VerifyError::KeyNotYetValid {
                key_id: h.key_id.clone(),
                not_before: key.not_before.to_string(),
                signed_at: h.signed_at.clone(),
            });
        }
        if at > key.not_after {
            return Err(VerifyError::KeyExpired {
                key_id: h.key_id.clone(),
                not_after: key.not_after.to_string(),
                signed_at: h.signed_at.clone(),
            });
        }
        if let Some(revoked) = key.revoked_at
            && at >= revoked
        {
            return Err(VerifyError::KeyRevoked {
                key_id: h.key_id.clone(),
                revoked_at: revoked.to_string(),
                signed_at: h.signed_at.clone(),
            });
        }
        if at.as_secs() > opts.now.as_secs() + opts.max_future_skew_secs {
            return Err(VerifyError::SignedInFuture {
                signed_at: h.signed_at.clone(),
            });
        }
        Ok(key)
    }

    /// What the signature cannot vouch for ([`Envelope::verify`]'s last step): STIX
    /// validity, TLP consistency, recipients. Notes the objects' pattern keys and
    /// levels for the store.
    pub fn check_content(&self, roster: &Roster) -> Result<(), VerifyError> {
        let h = &self.header;
        if !h.recipients.is_empty() && h.tlp != TlpLevel::Red {
            return Err(VerifyError::BadRecipients(format!(
                "only red envelopes name recipients (this one is {})",
                h.tlp
            )));
        }
        // A member then: a former member named by an envelope signed before its
        // removal was a recipient like any other.
        let was_member = |r: &str| {
            roster.member(r).is_some()
                || roster
                    .former_member(r)
                    .is_some_and(|(_, removed_at)| h.signed_at_ts < removed_at)
        };
        if let Some(r) = h.recipients.iter().find(|r| !was_member(r)) {
            return Err(VerifyError::BadRecipients(format!(
                "{r:?} is not a member of the roster"
            )));
        }
        if h.kind == Kind::Retraction {
            // What a retraction names is checked against what the node holds
            // (`foreign-retraction`, `retracts-retraction`) when it is received.
            self.note_object_levels(Vec::new());
            return Ok(());
        }
        let (keys, own) =
            crate::stix::check_bundle_noting(self.bundle()).map_err(VerifyError::InvalidBundle)?;
        for obj in self.objects() {
            check_authorship(obj, &h.origin, h.signed_at_ts, roster)?;
        }
        self.note_pattern_keys(keys);
        let objects = self.objects();
        let mut levels = Vec::with_capacity(objects.len());
        for (obj, level) in objects
            .iter()
            .zip(crate::stix::tlp::object_levels_given(objects, own))
        {
            levels.push(level.unwrap_or(h.tlp));
            if let Some(level) = level
                && level > h.tlp
            {
                return Err(VerifyError::TlpMismatch {
                    object_id: obj
                        .get("id")
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_string(),
                    object_tlp: level,
                    envelope_tlp: h.tlp,
                });
            }
        }
        self.note_object_levels(levels);
        Ok(())
    }
}

/// Longest envelope text, bytes (protocol §3). Receivers refuse longer envelopes
/// (`envelope-too-large`), and a publish cuts its envelopes well below it
/// ([`PUBLISH_ENVELOPE_BYTES`]): a feed page holds at least one envelope, so this
/// bound plus the page's own (4 MiB) stays far below what a puller accepts in one
/// answer (64 MiB), and no envelope can stop a peer's pull.
pub const MAX_ENVELOPE_BYTES: usize = 16 << 20;

/// What a publish aims each envelope at, bytes of its objects' JSON (estimated):
/// half of [`MAX_ENVELOPE_BYTES`], so that the estimate's error never matters.
pub const PUBLISH_ENVELOPE_BYTES: usize = 8 << 20;

/// How far an object's `created` or `modified` may lie after its envelope's
/// `signed_at`: the same allowance as for `signed_at` itself against the verifier's
/// clock (protocol §5).
pub const MAX_OBJECT_SKEW_SECS: i64 = 300;

/// What a member may sign of an object (protocol §5, "Authorship"): not an object
/// whose `created_by_ref` names another member's identity, and not a version whose
/// `created` or `modified` is later than `signed_at` plus [`MAX_OBJECT_SKEW_SECS`].
/// The same rule refuses such objects at publish, so a node never signs what its
/// peers would refuse.
pub fn check_authorship(
    obj: &Value,
    origin: &str,
    signed_at: Timestamp,
    roster: &Roster,
) -> Result<(), VerifyError> {
    let id = || {
        obj.get("id")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string()
    };
    if let Some(creator) = obj.get("created_by_ref").and_then(Value::as_str)
        && let Some(m) = roster.member_by_identity(creator)
        && m.name != origin
    {
        return Err(VerifyError::ForeignCreator {
            object_id: id(),
            creator: m.name.clone(),
            origin: origin.to_string(),
        });
    }
    for property in ["created", "modified"] {
        if let Some(value) = obj.get(property).and_then(Value::as_str)
            && let Ok(t) = Timestamp::parse(value)
            && t.as_secs() > signed_at.as_secs() + MAX_OBJECT_SKEW_SECS
        {
            return Err(VerifyError::ObjectAfterSigning {
                object_id: id(),
                property,
                value: value.to_string(),
                signed_at: signed_at.to_string(),
            });
        }
    }
    Ok(())
}

/// Verifies many envelopes at once (bulk catch-up): authority and content checks per
/// envelope, signatures in batches ([`signatures_hold`]).
pub fn verify_batch<E: std::borrow::Borrow<Envelope> + Sync>(
    envelopes: &[E],
    roster: &Roster,
    opts: &VerifyOptions,
) -> Vec<Result<(), VerifyError>> {
    let mut results: Vec<Result<(), VerifyError>> = Vec::with_capacity(envelopes.len());
    let mut idx = Vec::new();
    let mut msgs: Vec<&[u8]> = Vec::new();
    let mut sigs = Vec::new();
    let mut keys = Vec::new();
    for (i, e) in envelopes.iter().enumerate() {
        let e: &Envelope = e.borrow();
        match e.check_authority(roster, opts) {
            Ok(k) => {
                idx.push(i);
                msgs.push(&e.signed.bytes);
                sigs.push(e.signature);
                keys.push(k.verifying_key);
                results.push(Ok(()));
            }
            Err(err) => results.push(Err(err)),
        }
    }
    let sig_ok = signatures_hold(&msgs, &sigs, &keys);
    // Content checks (full STIX validation) are independent per envelope.
    let content = crate::parallel::map(&idx, 2, |n, &i| {
        if sig_ok[n] {
            envelopes[i].borrow().check_content(roster)
        } else {
            Err(VerifyError::BadSignature)
        }
    });
    for (i, verdict) in idx.into_iter().zip(content) {
        results[i] = verdict;
    }
    results
}

/// Whether each signature `sigs[n]` over `msgs[n]` verifies with `keys[n]`, as
/// `verify_strict` decides, with one ed25519 batch equation per core (hashing the
/// signed bytes is most of the cost); when a batch fails, each of its signatures is
/// checked alone so the answer names exactly the ones at fault.
///
/// Batch verification is not strict verification: the dalek documentation asks
/// callers to reject weak keys themselves ([`Envelope::authority_key`] does; roster
/// keys with a torsion component are refused when the roster is read), and the batch
/// equation is cofactored, so it accepts an R that is small-order, non-canonical or
/// has a torsion component, which strict verification refuses. Such an R keeps its
/// signature out of the batch ([`r_is_acceptable`]), so both paths accept exactly the
/// same signatures.
pub fn signatures_hold(msgs: &[&[u8]], sigs: &[Signature], keys: &[VerifyingKey]) -> Vec<bool> {
    let n = msgs.len().min(sigs.len()).min(keys.len());
    let part = n.div_ceil(crate::parallel::threads()).max(1);
    let parts: Vec<std::ops::Range<usize>> =
        (0..n).step_by(part).map(|a| a..(a + part).min(n)).collect();
    crate::parallel::map(&parts, 2, |_, r| {
        let batch_ok = sigs[r.clone()].iter().all(r_is_acceptable)
            && ed25519_dalek::verify_batch(&msgs[r.clone()], &sigs[r.clone()], &keys[r.clone()])
                .is_ok();
        r.clone()
            .map(|n| batch_ok || keys[n].verify_strict(msgs[n], &sigs[n]).is_ok())
            .collect::<Vec<bool>>()
    })
    .concat()
}

/// What receiving keeps of an envelope once the checks that read its objects are done
/// and it is prepared for the store ([`Envelope::into_sealed`]): the header and id
/// (receive policy, store), the signed bytes and signature (the signature batch that
/// follows), the object count.
///
/// The parsed objects are several times the size of the envelope's text and are
/// freed as soon as one envelope is checked and prepared, on the core that parsed it
/// while they are still in its cache, rather than held until a whole page has been
/// checked and stored.
#[derive(Debug)]
pub struct Sealed {
    header: Header,
    id: EnvelopeId,
    signed_bytes: Vec<u8>,
    signature: Signature,
    objects: usize,
}

impl Sealed {
    /// The envelope id.
    pub fn id(&self) -> &EnvelopeId {
        &self.id
    }

    /// The signed metadata.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The canonical bytes the signature covers.
    pub fn signed_bytes(&self) -> &[u8] {
        &self.signed_bytes
    }

    /// The origin's signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// How many objects the bundle held.
    pub fn object_count(&self) -> usize {
        self.objects
    }
}

/// Whether a signature's R may enter a batch: it decompresses, its encoding is
/// canonical, and it has no small-order (torsion) component. The batch equation is
/// cofactored, so it cannot see a torsion component that makes single (cofactorless,
/// strict) verification fail; without this check the two paths — and so two nodes —
/// could disagree about the same envelope (security finding 8). A signature refused
/// here is then verified alone, strictly, which decides.
fn r_is_acceptable(sig: &Signature) -> bool {
    let compressed = curve25519_dalek::edwards::CompressedEdwardsY(*sig.r_bytes());
    compressed
        .decompress()
        .is_some_and(|r| !r.is_small_order() && r.compress() == compressed && r.is_torsion_free())
}

#[cfg(test)]
mod tests;
