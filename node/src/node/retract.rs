//! Taking back what this member published: signing retractions (protocol §11).
//!
//! A retraction must reach every node that holds what it names, and no node that was
//! not allowed to hold it: each target goes into a retraction at the level (and, for
//! red, to the recipients) it was delivered at, so one request may sign several
//! retractions, as one publish may sign several envelopes.

use super::Node;
use super::backend::Backend;
use crate::envelope::retraction::{MAX_TARGETS, ObjectTarget};
use crate::envelope::{Envelope, EnvelopeId, EnvelopeMeta, Kind, Reason, Retraction};
use crate::stix::timestamp::Timestamp;
use crate::stix::tlp::TlpLevel;
use crate::store::StoreError;
use crate::store::prepare::{prepare, split_id};
use serde::Serialize;
use std::collections::BTreeMap;

/// Why a retraction was not signed. Nothing was stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RetractError {
    /// A target this member cannot take back (unknown, another member's, a
    /// retraction, an object it never delivered).
    #[error("{0}")]
    NotRetractable(String),
    /// The request itself is wrong (no target, too many, a note too long).
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Signing failed.
    #[error("signing failed: {0}")]
    Sign(String),
    /// The node takes back its own envelopes from its peers after a rebuild and
    /// signs nothing until then.
    #[error(
        "this node's index was rebuilt: it is taking back its own envelopes from its peers before signing again; try again shortly"
    )]
    Recovering,
}

/// One retraction signed.
#[derive(Debug, Clone, Serialize)]
pub struct SignedRetraction {
    /// Its envelope id.
    pub id: String,
    /// Its sequence number.
    pub seq: u64,
    /// The level it is shared at (that of what it names).
    pub tlp: TlpLevel,
    /// Red recipients.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
    /// Envelopes it names.
    pub envelopes: Vec<String>,
    /// Objects it names (`id` or `id@version`).
    pub objects: Vec<String>,
}

/// The answer to a retraction request.
#[derive(Debug, Clone, Serialize)]
pub struct RetractReport {
    /// The retractions signed and made durable, one per level.
    pub retractions: Vec<SignedRetraction>,
    /// The reason given.
    pub reason: Reason,
}

/// Where a target goes: the level and recipients of what it names.
type Group = (TlpLevel, Vec<String>);

/// An envelope held, as a retraction of it must know it.
struct HeldEnvelope {
    origin: String,
    retraction: bool,
    tlp: TlpLevel,
    recipients: Vec<String>,
}

/// One of this member's deliveries of an object version.
struct OwnDelivery {
    modified: i64,
    tlp: TlpLevel,
    recipients: Vec<String>,
}

#[derive(Default)]
struct Targets {
    envelopes: Vec<EnvelopeId>,
    objects: Vec<ObjectTarget>,
}

impl Node {
    /// Signs and stores retractions of `envelopes` and `objects` this member
    /// published. Every target is checked first; one that cannot be taken back
    /// refuses the whole request.
    pub fn retract(
        &self,
        envelopes: &[EnvelopeId],
        objects: &[ObjectTarget],
        reason: Reason,
        note: &str,
    ) -> Result<RetractReport, RetractError> {
        if envelopes.is_empty() && objects.is_empty() {
            return Err(RetractError::Invalid(
                "name at least one envelope or object to retract".into(),
            ));
        }
        if note.len() > crate::envelope::retraction::MAX_NOTE_BYTES {
            return Err(RetractError::Invalid(format!(
                "the note has {} bytes, at most {} are allowed",
                note.len(),
                crate::envelope::retraction::MAX_NOTE_BYTES
            )));
        }
        if self.recovering() {
            return Err(RetractError::Recovering);
        }
        let groups = self.group_targets(envelopes, objects)?;
        let mut seq = self.seq_turn()?;
        let signer = self.live().signer.clone();
        let signed_at = Timestamp::now();
        let mut out = Vec::new();
        for ((tlp, recipients), targets) in groups {
            // At most MAX_TARGETS per retraction.
            let mut envs = targets.envelopes.as_slice();
            let mut objs = targets.objects.as_slice();
            while !envs.is_empty() || !objs.is_empty() {
                let ne = envs.len().min(MAX_TARGETS);
                let no = objs.len().min(MAX_TARGETS - ne);
                let r = Retraction {
                    envelopes: envs[..ne].to_vec(),
                    objects: objs[..no].to_vec(),
                    reason,
                    note: note.to_string(),
                };
                envs = &envs[ne..];
                objs = &objs[no..];
                let env = Envelope::sign_retraction(
                    r.clone(),
                    &signer,
                    EnvelopeMeta {
                        seq: seq.next,
                        signed_at,
                        tlp,
                        recipients: recipients.clone(),
                    },
                )
                .map_err(|e| RetractError::Sign(e.to_string()))?;
                let prepared = prepare(&env)?;
                let (_, head) = super::publish::store_signed(
                    self.backend(),
                    seq.shared(),
                    std::slice::from_ref(&env),
                    vec![prepared],
                )?;
                seq.next += 1;
                self.sync.head.send_replace(head);
                tracing::info!(retraction = %env.id(), seq = env.header().seq, tlp = %tlp, reason = %reason, envelopes = r.envelopes.len(), objects = r.objects.len(), "retraction signed");
                out.push(SignedRetraction {
                    id: env.id().to_string(),
                    seq: env.header().seq,
                    tlp,
                    recipients: recipients.clone(),
                    envelopes: r.envelopes.iter().map(|e| e.to_string()).collect(),
                    objects: r.objects.iter().map(|o| o.to_string()).collect(),
                });
            }
        }
        seq.end();
        self.metrics.retractions_signed(out.len() as u64);
        Ok(RetractReport {
            retractions: out,
            reason,
        })
    }

    /// Checks every target and groups them by the level (and red recipients) of what
    /// they name.
    fn group_targets(
        &self,
        envelopes: &[EnvelopeId],
        objects: &[ObjectTarget],
    ) -> Result<BTreeMap<Group, Targets>, RetractError> {
        let me = self.member();
        let ids: Vec<[u8; 32]> = envelopes.iter().map(EnvelopeId::digest_bytes).collect();
        let metas = self.held_envelopes(&ids)?;
        let mut groups: BTreeMap<Group, Targets> = BTreeMap::new();
        for (id, meta) in envelopes.iter().zip(metas) {
            let meta = meta.ok_or_else(|| {
                RetractError::NotRetractable(format!("this node holds no envelope {id}"))
            })?;
            if meta.retraction {
                return Err(RetractError::NotRetractable(format!(
                    "{id} is a retraction; a retraction cannot be taken back"
                )));
            }
            if meta.origin != me {
                return Err(RetractError::NotRetractable(format!(
                    "envelope {id} was published by {}; only its origin may retract it",
                    meta.origin
                )));
            }
            let mut recipients = meta.recipients;
            recipients.sort();
            groups
                .entry((meta.tlp, recipients))
                .or_default()
                .envelopes
                .push(id.clone());
        }
        for o in objects {
            let (t, uuid) = split_id(&o.id).ok_or_else(|| {
                RetractError::Invalid(format!("{:?} is not a STIX id (type--uuid)", o.id))
            })?;
            // This member's deliveries of the versions named (retracted ones too: a
            // retraction may be repeated, say with a better note).
            let mut level: Option<TlpLevel> = None;
            let mut recipients: Vec<String> = Vec::new();
            for d in self.own_deliveries(t, uuid)? {
                if o.modified.is_some_and(|m| m.as_micros() != d.modified) {
                    continue;
                }
                level = Some(level.map_or(d.tlp, |l| l.min(d.tlp)));
                recipients.extend(d.recipients);
            }
            let Some(level) = level else {
                return Err(RetractError::NotRetractable(format!(
                    "{me} never published {o}; only an object's origin may retract it"
                )));
            };
            recipients.sort();
            recipients.dedup();
            if level != TlpLevel::Red {
                recipients.clear();
            }
            groups
                .entry((level, recipients))
                .or_default()
                .objects
                .push(o.clone());
        }
        Ok(groups)
    }

    /// What the store holds of each of these envelopes (`None`: not held).
    fn held_envelopes(&self, ids: &[[u8; 32]]) -> Result<Vec<Option<HeldEnvelope>>, StoreError> {
        match self.backend() {
            Backend::Embedded(store) => {
                let view = store.read();
                Ok(ids
                    .iter()
                    .map(|id| {
                        let meta = view.envelope_by_id(id).and_then(|ix| view.envelope(ix))?;
                        Some(HeldEnvelope {
                            origin: view.origin_name(meta.origin).to_string(),
                            retraction: meta.kind == Kind::Retraction,
                            tlp: meta.tlp,
                            recipients: meta.recipients.clone(),
                        })
                    })
                    .collect())
            }
            Backend::Postgres(pg) => {
                let mut found: std::collections::HashMap<[u8; 32], HeldEnvelope> = pg
                    .block(pg.store.envelope_metas(ids))?
                    .into_iter()
                    .map(|(id, origin, retraction, tlp, recipients)| {
                        (
                            id,
                            HeldEnvelope {
                                origin,
                                retraction,
                                tlp,
                                recipients,
                            },
                        )
                    })
                    .collect();
                Ok(ids.iter().map(|id| found.remove(id)).collect())
            }
        }
    }

    /// This member's deliveries (standing or retracted) of the versions of an object,
    /// tombstones aside.
    fn own_deliveries(&self, t: &str, uuid: u128) -> Result<Vec<OwnDelivery>, StoreError> {
        let me = self.member();
        match self.backend() {
            Backend::Embedded(store) => {
                let view = store.read();
                let Some(me_ix) = view.origin_index(me) else {
                    return Ok(Vec::new());
                };
                let mut out = Vec::new();
                for h in view.versions_of(t, uuid) {
                    let Some(v) = view.version(h) else { continue };
                    if v.has(crate::store::view::RETRACTED) {
                        continue;
                    }
                    let deliveries = view
                        .deliveries(h)
                        .into_iter()
                        .chain(view.retracted_deliveries(h).into_iter().map(|(d, _)| d));
                    for d in deliveries.filter(|d| d.origin == me_ix) {
                        out.push(OwnDelivery {
                            modified: v.modified,
                            tlp: d.tlp,
                            recipients: d.recipients.clone(),
                        });
                    }
                }
                Ok(out)
            }
            Backend::Postgres(pg) => Ok(pg
                .block(pg.store.deliveries_by(t, uuid, me))?
                .into_iter()
                .map(|(modified, tlp, recipients)| OwnDelivery {
                    modified,
                    tlp,
                    recipients,
                })
                .collect()),
        }
    }
}
