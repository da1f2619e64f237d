//! The roster: every member of the federation and the public keys it signs with.
//!
//! A node trusts signatures by roster keys only. Rotation adds a key with a later
//! `not_before`; revocation sets `revoked_at` (signatures dated at or after it are
//! rejected, earlier ones stay valid so history survives a compromise cleanly).

use crate::stix::timestamp::Timestamp;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// Why a roster cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RosterError {
    /// The file could not be read.
    #[error("cannot read roster {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a roster document.
    #[error("roster {path} is not valid: {source}")]
    Parse {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The document parses but breaks a rule.
    #[error("roster is not valid: {0}")]
    Invalid(String),
}

/// One signing key of a member, as the roster publishes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RosterKey {
    /// Unique within the federation, e.g. `kaspersky-2026a`.
    pub key_id: String,
    /// The ed25519 public key, base64url without padding (32 bytes).
    pub public_key: String,
    /// First instant the key may sign.
    pub not_before: String,
    /// Last instant the key may sign.
    pub not_after: String,
    /// When set, signatures dated at or after this instant are rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

/// A participating organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// Short name, e.g. `kaspersky`: the envelope `origin`.
    pub name: String,
    /// Its STIX identity (`identity--<uuid>`, identity_class organization).
    pub identity: String,
    /// Base URL of its node, e.g. `https://node.kaspersky.example:7443`.
    pub node_url: String,
    /// The URI SAN its TLS certificate carries: `synergia://member/<name>`.
    pub tls_san: String,
    /// Its signing keys, old and new.
    pub keys: Vec<RosterKey>,
}

/// A parsed, checked key: the public key decoded and the window as instants.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    /// Owner.
    pub origin: String,
    /// Key id.
    pub key_id: String,
    /// Decoded public key.
    pub verifying_key: VerifyingKey,
    /// Window start.
    pub not_before: Timestamp,
    /// Window end.
    pub not_after: Timestamp,
    /// Revocation instant.
    pub revoked_at: Option<Timestamp>,
}

/// The federation's roster, with lookup indexes.
#[derive(Debug, Clone)]
pub struct Roster {
    doc: RosterDocument,
    by_name: HashMap<String, usize>,
    /// Former members by name: their removal instant and place in `doc.former`.
    former: HashMap<String, (Timestamp, usize)>,
    keys: HashMap<(String, String), TrustedKey>,
}

/// The roster file format (`schema/roster.schema.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RosterDocument {
    /// Always `synergia-roster`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Name of the federation (an operation), for humans.
    pub federation: String,
    /// Every member.
    pub members: Vec<Member>,
    /// Members removed by the membership log (protocol §12): their envelopes signed
    /// before the removal stay valid, later ones are refused (`member-removed`), and
    /// they are no longer let in nor synced with. Their names and key ids are never
    /// used again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub former: Vec<FormerMember>,
}

/// A member the membership log removed, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormerMember {
    /// The member as it was when removed.
    pub member: Member,
    /// The removing entry's time: signatures dated at or after it are refused.
    pub removed_at: String,
}

/// Decodes a base64url (no padding) ed25519 public key.
pub fn decode_public_key(s: &str) -> Result<VerifyingKey, String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|e| format!("public key is not base64url without padding: {e}"))?;
    let arr: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| format!("public key must be 32 bytes, got {}", bytes.len()))?;
    let key = VerifyingKey::from_bytes(&arr)
        .map_err(|_| "public key is not a valid ed25519 point".to_string())?;
    // A key with a small-order component verifies some signatures in the batch
    // equation (cofactored) that single verification (cofactorless) refuses: nodes
    // would disagree about its envelopes. An honestly made key never has one.
    if !key.is_weak() && !key.to_edwards().is_torsion_free() {
        return Err("public key has a small-order (torsion) component".into());
    }
    Ok(key)
}

/// Encodes a public key as the roster writes it.
pub fn encode_public_key(key: &VerifyingKey) -> String {
    URL_SAFE_NO_PAD.encode(key.to_bytes())
}

impl Roster {
    /// Reads and checks a roster file.
    pub fn load(path: &Path) -> Result<Roster, RosterError> {
        let bytes = std::fs::read(path).map_err(|source| RosterError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let doc: RosterDocument =
            serde_json::from_slice(&bytes).map_err(|source| RosterError::Parse {
                path: path.display().to_string(),
                source,
            })?;
        Roster::from_document(doc)
    }

    /// Checks a roster document and builds the indexes.
    pub fn from_document(doc: RosterDocument) -> Result<Roster, RosterError> {
        let bad = |m: String| RosterError::Invalid(m);
        if doc.kind != "synergia-roster" {
            return Err(bad(format!(
                "type must be \"synergia-roster\", got {:?}",
                doc.kind
            )));
        }
        let mut by_name = HashMap::new();
        let mut former = HashMap::new();
        let mut keys = HashMap::new();
        let mut key_ids = HashMap::new();
        let mut identities = HashMap::new();
        let current = doc.members.iter().map(|m| (m, None));
        let removed = doc.former.iter().map(|f| (&f.member, Some(&f.removed_at)));
        for (i, (m, removed_at)) in current.chain(removed).enumerate() {
            if !is_member_name(&m.name) {
                return Err(bad(format!(
                    "member name {:?} must be 1-64 lower-case letters, digits or '-'",
                    m.name
                )));
            }
            let removed_at = match removed_at {
                Some(r) => Some(
                    Timestamp::parse(r)
                        .map_err(|e| bad(format!("former member {}: removed_at: {e}", m.name)))?,
                ),
                None => None,
            };
            let twice = match removed_at {
                None => by_name.insert(m.name.clone(), i).is_some(),
                Some(r) => {
                    by_name.contains_key(&m.name)
                        || former
                            .insert(m.name.clone(), (r, i - doc.members.len()))
                            .is_some()
                }
            };
            if twice {
                return Err(bad(format!("member {} is listed twice", m.name)));
            }
            if !m.identity.starts_with("identity--")
                || uuid::Uuid::parse_str(&m.identity["identity--".len()..]).is_err()
            {
                return Err(bad(format!(
                    "member {}: identity {:?} is not identity--<uuid>",
                    m.name, m.identity
                )));
            }
            // An identity names one member for ever: objects created under it are
            // that member's (`foreign-creator`), also after it left.
            if let Some(owner) = identities.insert(m.identity.clone(), m.name.clone()) {
                return Err(bad(format!(
                    "member {}: identity {} is already member {owner}'s",
                    m.name, m.identity
                )));
            }
            let want_san = format!("synergia://member/{}", m.name);
            if m.tls_san != want_san {
                return Err(bad(format!(
                    "member {}: tls_san must be {want_san:?}, got {:?}",
                    m.name, m.tls_san
                )));
            }
            for k in &m.keys {
                let ctx = |e: String| bad(format!("member {} key {}: {e}", m.name, k.key_id));
                if let Some(owner) = key_ids.insert(k.key_id.clone(), m.name.clone()) {
                    return Err(ctx(format!("key id already used by member {owner}")));
                }
                let verifying_key = decode_public_key(&k.public_key).map_err(ctx)?;
                let ts = |s: &str, field: &str| {
                    Timestamp::parse(s).map_err(|e| ctx(format!("{field}: {e}")))
                };
                let not_before = ts(&k.not_before, "not_before")?;
                let not_after = ts(&k.not_after, "not_after")?;
                if not_after <= not_before {
                    return Err(ctx("not_after must be later than not_before".into()));
                }
                let revoked_at = match &k.revoked_at {
                    Some(r) => Some(ts(r, "revoked_at")?),
                    None => None,
                };
                // A former member's keys sign nothing from its removal on.
                let revoked_at = match (revoked_at, removed_at) {
                    (Some(r), Some(gone)) => Some(r.min(gone)),
                    (r, gone) => r.or(gone),
                };
                keys.insert(
                    (m.name.clone(), k.key_id.clone()),
                    TrustedKey {
                        origin: m.name.clone(),
                        key_id: k.key_id.clone(),
                        verifying_key,
                        not_before,
                        not_after,
                        revoked_at,
                    },
                );
            }
        }
        Ok(Roster {
            doc,
            by_name,
            former,
            keys,
        })
    }

    /// The document this roster was built from.
    pub fn document(&self) -> &RosterDocument {
        &self.doc
    }

    /// Every member.
    pub fn members(&self) -> &[Member] {
        &self.doc.members
    }

    /// A member by name (a current one: not a former member).
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.by_name.get(name).map(|&i| &self.doc.members[i])
    }

    /// The members removed by the membership log.
    pub fn former(&self) -> &[FormerMember] {
        &self.doc.former
    }

    /// A former member by name, and when it was removed.
    pub fn former_member(&self, name: &str) -> Option<(&Member, Timestamp)> {
        self.former
            .get(name)
            .map(|&(at, i)| (&self.doc.former[i].member, at))
    }

    /// A member's key by id (a former member's too: its window ends at the removal).
    pub fn key(&self, origin: &str, key_id: &str) -> Option<&TrustedKey> {
        self.keys.get(&(origin.to_string(), key_id.to_string()))
    }

    /// The member, current or former, whose STIX identity (`identity--…`) this is: a
    /// former member's identity stays its own (nobody else may sign as its creator).
    pub fn member_by_identity(&self, identity: &str) -> Option<&Member> {
        self.members()
            .iter()
            .chain(self.doc.former.iter().map(|f| &f.member))
            .find(|m| m.identity == identity)
    }

    /// The member whose TLS certificate carries this URI SAN.
    pub fn member_by_san(&self, san: &str) -> Option<&Member> {
        let name = san.strip_prefix("synergia://member/")?;
        self.member(name)
    }

    /// SHA-256 (hex) of its content (the document's compact JSON, fields in their
    /// fixed order): equal on two nodes exactly when they hold the same roster,
    /// however the files are indented.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest as _;
        let text = serde_json::to_vec(&self.doc).unwrap_or_default();
        sha2::Sha256::digest(&text)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Serialises as pretty JSON (the file format).
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(&self.doc).unwrap_or_default()
    }
}

/// Member names are DNS-label-like so they are safe in URIs, file names and metrics.
pub fn is_member_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    pub(crate) fn doc_with(keys: Vec<RosterKey>) -> RosterDocument {
        RosterDocument {
            kind: "synergia-roster".into(),
            federation: "test".into(),
            members: vec![Member {
                name: "kaspersky".into(),
                identity: "identity--6b0a0f36-5b0e-4d8a-9f0a-0d6f8c3a1b2c".into(),
                node_url: "https://127.0.0.1:7443".into(),
                tls_san: "synergia://member/kaspersky".into(),
                keys,
            }],
            former: Vec::new(),
        }
    }

    fn key(id: &str) -> RosterKey {
        let sk = SigningKey::from_bytes(&[7u8; 32]);
        RosterKey {
            key_id: id.into(),
            public_key: encode_public_key(&sk.verifying_key()),
            not_before: "2026-01-01T00:00:00Z".into(),
            not_after: "2027-01-01T00:00:00Z".into(),
            revoked_at: None,
        }
    }

    #[test]
    fn valid_roster_indexes_members_and_keys() {
        let r = Roster::from_document(doc_with(vec![key("k-1")])).unwrap();
        assert!(r.member("kaspersky").is_some());
        assert!(r.member_by_san("synergia://member/kaspersky").is_some());
        assert!(r.key("kaspersky", "k-1").is_some());
        assert!(r.key("kaspersky", "k-2").is_none());
    }

    #[test]
    fn rejects_broken_rosters_with_reasons() {
        let mut d = doc_with(vec![key("k-1"), key("k-1")]);
        let e = Roster::from_document(d.clone()).unwrap_err().to_string();
        assert!(e.contains("already used"), "{e}");
        d.members[0].keys = vec![RosterKey {
            public_key: "AAAA".into(),
            ..key("k-1")
        }];
        let e = Roster::from_document(d.clone()).unwrap_err().to_string();
        assert!(e.contains("32 bytes"), "{e}");
        d.members[0].keys = vec![RosterKey {
            not_after: "2025-01-01T00:00:00Z".into(),
            ..key("k-1")
        }];
        let e = Roster::from_document(d.clone()).unwrap_err().to_string();
        assert!(e.contains("not_after"), "{e}");
        // A former member's identity stays its own.
        let mut twice = doc_with(vec![key("k-1")]);
        let mut gone = twice.members[0].clone();
        gone.name = "gone".into();
        gone.tls_san = "synergia://member/gone".into();
        gone.keys = vec![];
        twice.former.push(FormerMember {
            member: gone,
            removed_at: "2026-06-01T00:00:00Z".into(),
        });
        let e = Roster::from_document(twice).unwrap_err().to_string();
        assert!(e.contains("already member"), "{e}");
        d.members[0].keys = vec![];
        d.members[0].tls_san = "synergia://member/other".into();
        let e = Roster::from_document(d.clone()).unwrap_err().to_string();
        assert!(e.contains("tls_san"), "{e}");
        d.members[0].tls_san = "synergia://member/kaspersky".into();
        d.members[0].name = "Kaspersky".into();
        assert!(Roster::from_document(d).is_err());
    }
}
