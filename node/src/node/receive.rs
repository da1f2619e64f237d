//! Taking envelopes a peer offers, by push or in its feed: parse, verify (a batch at
//! once), apply the receive policy, keep what was refused for a passing reason, store
//! durably, count.

use super::Node;
use super::metrics::Metrics;
use super::peers::{deferred, now, policy};
use crate::envelope::{Envelope, EnvelopeId, Sealed, VerifyError, VerifyOptions, signatures_hold};
use crate::node::backend::Backend;
use crate::store::postgres::Incoming;
use crate::store::prepare::{Prepared, prepare};
use crate::store::{IngestOutcome, StoreError};
use bytes::Bytes;
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// What became of one envelope a peer offered (its `status` in a push answer).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OfferStatus {
    /// Not decided yet (between the checks and the store; never answered).
    Pending,
    /// Stored now.
    Accepted,
    /// Held already.
    Duplicate,
    /// Refused for good (`code` says why).
    Rejected,
    /// Refused for a passing reason (`code` says which): kept by this node and tried
    /// again.
    Deferred,
}

/// What happened to one envelope a peer offered.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Offered {
    /// Envelope id (empty if it did not parse).
    pub id: String,
    /// What became of it.
    pub status: OfferStatus,
    /// Rejection code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Rejection reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// An envelope a peer offered (in its feed or a push), not yet parsed.
///
/// Parsing (strict JSON, then the RFC 8785 signed form for the id) is most of what
/// taking an envelope costs, and in a full mesh most offered envelopes are ones this
/// node already holds (every member forwards every other member's green envelopes).
/// The peer states each envelope's id next to it; an envelope whose stated id we hold
/// is answered `duplicate` without being parsed. A peer that states a wrong id gains
/// nothing: the envelope it sent is simply not taken from it (as if it had withheld
/// it), and an envelope that is parsed must carry the id stated for it.
///
/// The text is kept as sent, not only until it is parsed: an envelope as nodes send
/// it is in its RFC 8785 form, and its signed form is then cut from the text rather
/// than written out again, and the text itself is what is stored
/// ([`Envelope::from_bytes`]). It is a slice of the request or page it came in, not a
/// copy.
#[derive(Debug)]
pub struct Offer {
    /// The envelope's JSON text as sent.
    pub text: Bytes,
    /// The id the peer states for it, if any.
    pub claimed: Option<EnvelopeId>,
}

impl Offer {
    /// An offer whose text is `part` of `body` (shared, not copied; a `part` from
    /// elsewhere is copied).
    pub fn within(body: &Bytes, part: &str, claimed: Option<EnvelopeId>) -> Offer {
        let start = (part.as_ptr() as usize).wrapping_sub(body.as_ptr() as usize);
        let text = match start.checked_add(part.len()) {
            Some(end) if start <= body.len() && end <= body.len() => body.slice(start..end),
            _ => Bytes::copy_from_slice(part.as_bytes()),
        };
        Offer { text, claimed }
    }

    fn parse(self) -> Result<Envelope, VerifyError> {
        if self.text.len() > crate::envelope::MAX_ENVELOPE_BYTES {
            return Err(VerifyError::TooLarge(self.text.len()));
        }
        let env = Envelope::from_bytes(self.text)?;
        match self.claimed {
            Some(c) if &c != env.id() => Err(VerifyError::Malformed(format!(
                "the id stated for this envelope ({c}) is not its id ({})",
                env.id()
            ))),
            _ => Ok(env),
        }
    }
}

/// Envelopes a peer offered, checked and waiting to be stored: see
/// [`Node::check_offers`].
#[derive(Debug)]
pub struct Checked {
    /// One result per offer; `pending` for those to store.
    results: Vec<Offered>,
    /// The envelopes that passed every check, in offer order, without their objects.
    to_store: Vec<Sealed>,
    /// What the store keeps of each of them.
    prepared: Vec<Prepared>,
    /// Where each of them sits in `results`.
    slots: Vec<usize>,
    /// Those refused for a passing reason, to keep for a retry, with their place in
    /// `results`.
    retry: Vec<(usize, deferred::ToKeep)>,
}

/// The checks of one parsed offer: the key its signature must verify with and what
/// the store keeps of it, or why it is refused.
type Verdict = Result<(VerifyingKey, Result<Prepared, VerifyError>), VerifyError>;

/// One offer after the checks that read its objects ([`Node::examine`]).
enum Examined {
    /// Not a well-formed envelope (or not the one its stated id names).
    Unparsed(VerifyError),
    /// Held already.
    Held(EnvelopeId),
    /// Parsed; the verdicts of the checks that needed its objects, with the key its
    /// signature must verify with and what the store keeps of it when they passed,
    /// and the envelopes it retracts (if it is a retraction).
    Parsed {
        sealed: Box<Sealed>,
        verdict: Box<Verdict>,
        names: Vec<EnvelopeId>,
    },
}

impl Node {
    /// Takes envelopes a peer offered (by push or in its feed): parse, verify (batch),
    /// apply the receive policy, store durably, count. Returns one result per input.
    pub fn accept_from_peer(
        &self,
        peer: &str,
        offers: Vec<Offer>,
    ) -> Result<Vec<Offered>, deferred::KeepError> {
        let checked = self.check_offers(peer, offers)?;
        self.store_checked(peer, checked)
    }

    /// Everything about one offer that reads its objects, on one core while they are
    /// in its cache: parse, authority, content check (STIX validity, TLP), and
    /// preparing it for the store; then the parsed objects are freed. The verdicts wait
    /// for the signature's (checked for the whole page at once by the caller), which
    /// comes first when both fail, and a retraction's for what it names
    /// ([`retraction_verdict`], against the envelopes held, read once per page).
    fn examine(
        &self,
        held: &dyn Fn(&EnvelopeId) -> bool,
        offer: Offer,
        opts: &VerifyOptions,
    ) -> Examined {
        let env = match offer.parse() {
            Ok(env) => env,
            Err(e) => return Examined::Unparsed(e),
        };
        if held(env.id()) {
            return Examined::Held(env.id().clone());
        }
        let roster = self.roster();
        let verdict = env.authority_key(&roster, opts).map(|key| {
            let content = env
                .check_content(&roster)
                .and_then(|()| prepare(&env).map_err(|e| VerifyError::Malformed(e.to_string())));
            (key, content)
        });
        let names = env
            .retraction()
            .map(|r| r.envelopes.clone())
            .unwrap_or_default();
        Examined::Parsed {
            sealed: Box::new(env.into_sealed()),
            verdict: Box::new(verdict),
            names,
        }
    }

    /// The first half of [`Node::accept_from_peer`]: parse, verify, apply the receive
    /// policy and prepare for the store, on every core; nothing is stored. The pull loop checks a page
    /// while the page before it is being stored, since storing runs on one core.
    pub fn check_offers(&self, peer: &str, offers: Vec<Offer>) -> Result<Checked, StoreError> {
        let pending = || Offered {
            id: String::new(),
            status: OfferStatus::Pending,
            code: None,
            message: None,
        };
        let duplicate = |id: &EnvelopeId| Offered {
            id: id.to_string(),
            status: OfferStatus::Duplicate,
            code: None,
            message: None,
        };
        let backend = self.backend();
        let mut results: Vec<Offered> = Vec::with_capacity(offers.len());
        let mut to_examine: Vec<(usize, Offer)> = Vec::new();
        // Each examined envelope's text (shared, not copied), kept if it is refused
        // for a passing reason.
        let mut texts: Vec<Option<Bytes>> = Vec::with_capacity(offers.len());
        let claimed: Vec<[u8; 32]> = offers
            .iter()
            .filter_map(|o| o.claimed.as_ref().map(EnvelopeId::digest_bytes))
            .collect();
        let mut held_claims = backend.held(&claimed)?.into_iter();
        for offer in offers {
            if let Some(c) = &offer.claimed
                && held_claims.next() == Some(true)
            {
                results.push(duplicate(c));
                texts.push(None);
                continue;
            }
            texts.push(Some(offer.text.clone()));
            to_examine.push((results.len(), offer));
            results.push(pending());
        }
        // Each envelope is independent up to its signature. On the embedded store an
        // envelope found held is not checked further; on PostgreSQL the store finds it
        // held (storing is idempotent) rather than ask the database once per envelope.
        let held = |id: &EnvelopeId| match backend {
            Backend::Embedded(s) => s.contains(id),
            Backend::Postgres(_) => false,
        };
        let opts = VerifyOptions::default();
        let examined = crate::parallel::map_owned(to_examine, 2, |(slot, offer)| {
            (slot, self.examine(&held, offer, &opts))
        });
        let mut parsed = Vec::with_capacity(examined.len());
        for (slot, e) in examined {
            match e {
                Examined::Unparsed(e) => {
                    results[slot] = rejected(String::new(), e.code(), e.to_string())
                }
                Examined::Held(id) => results[slot] = duplicate(&id),
                Examined::Parsed {
                    sealed,
                    verdict,
                    names,
                } => parsed.push((slot, sealed, verdict, names)),
            }
        }
        // What the retractions name, read once for the page.
        let named: Vec<[u8; 32]> = parsed
            .iter()
            .flat_map(|(_, _, _, names)| names.iter().map(EnvelopeId::digest_bytes))
            .collect();
        let metas = self.envelope_owners(&named)?;
        let parsed: Vec<_> = parsed
            .into_iter()
            .map(|(slot, sealed, mut verdict, names)| {
                if let Ok((_, content @ Ok(_))) = verdict.as_mut()
                    && let Err(e) = retraction_verdict(&sealed.header().origin, &names, &metas)
                {
                    *content = Err(e);
                }
                (slot, sealed, verdict)
            })
            .collect();
        // Signatures, in batches, for the envelopes whose key may sign them.
        let mut msgs = Vec::new();
        let mut sigs = Vec::new();
        let mut keys = Vec::new();
        for (_, sealed, verdict) in &parsed {
            if let Ok((key, _)) = verdict.as_ref() {
                msgs.push(sealed.signed_bytes());
                sigs.push(*sealed.signature());
                keys.push(*key);
            }
        }
        let mut signed = signatures_hold(&msgs, &sigs, &keys).into_iter();
        let mut retry = Vec::new();
        let mut to_store = Vec::new();
        let mut prepared = Vec::new();
        let mut slots = Vec::new();
        for (slot, sealed, verdict) in parsed {
            let h = sealed.header();
            let outcome = (*verdict)
                .and_then(|(_, content)| {
                    if signed.next() == Some(true) {
                        content
                    } else {
                        Err(VerifyError::BadSignature)
                    }
                })
                .map_err(|e| (e.code().to_string(), e.to_string()))
                .and_then(|p| {
                    policy::may_accept(self.member(), peer, &h.origin, h.tlp, &h.recipients)
                        .map(|()| p)
                        .map_err(|e| (e.code().to_string(), e.to_string()))
                });
            match outcome {
                Ok(p) => {
                    slots.push(slot);
                    prepared.push(p);
                    to_store.push(*sealed);
                }
                Err((code, message)) => {
                    tracing::warn!(peer, origin = %h.origin, envelope = %sealed.id(), code = %code, "refusing an envelope: {message}");
                    // Signed more than a day ahead is no clock running ahead.
                    let far_future = code == "signed-in-future"
                        && h.signed_at_ts.as_micros() > now() + deferred::LONGEST_FUTURE_US;
                    if deferred::is_retryable(&code)
                        && !far_future
                        && let Some(text) = texts.get(slot).cloned().flatten()
                    {
                        retry.push((
                            slot,
                            deferred::ToKeep {
                                id: sealed.id().to_string(),
                                text,
                                code: code.clone(),
                                message: message.clone(),
                                // A future `signed_at` passes once it is within the
                                // allowed skew of this node's clock.
                                due: (code == "signed-in-future").then(|| {
                                    h.signed_at_ts.as_micros()
                                        - opts.max_future_skew_secs * 1_000_000
                                }),
                            },
                        ));
                    }
                    results[slot] = rejected(sealed.id().to_string(), &code, message);
                }
            }
        }
        Ok(Checked {
            results,
            to_store,
            prepared,
            slots,
            retry,
        })
    }

    /// For each held envelope among `ids`: its origin and whether it is a
    /// retraction.
    fn envelope_owners(
        &self,
        ids: &[[u8; 32]],
    ) -> Result<HashMap<[u8; 32], (String, bool)>, StoreError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        match self.backend() {
            Backend::Embedded(store) => {
                let view = store.read();
                Ok(ids
                    .iter()
                    .filter_map(|id| {
                        let meta = view.envelope_by_id(id).and_then(|ix| view.envelope(ix))?;
                        Some((
                            *id,
                            (
                                view.origin_name(meta.origin).to_string(),
                                meta.kind == crate::envelope::Kind::Retraction,
                            ),
                        ))
                    })
                    .collect())
            }
            Backend::Postgres(pg) => Ok(pg
                .block(pg.store.envelope_metas(ids))?
                .into_iter()
                .map(|(id, origin, retraction, _, _)| (id, (origin, retraction)))
                .collect()),
        }
    }

    /// The second half of [`Node::accept_from_peer`]: stores the checked envelopes
    /// durably and counts everything. Envelopes found held meanwhile (stored from
    /// another peer since they were checked) are answered `duplicate`.
    ///
    /// An envelope refused for a passing reason that cannot be kept (the peer's retry
    /// set is full, or the write failed) fails the whole call: answering `rejected`
    /// would let the pull cursor move past it and lose it. The envelopes stored before
    /// stay stored (found held when the page comes again).
    pub fn store_checked(
        &self,
        peer: &str,
        checked: Checked,
    ) -> Result<Vec<Offered>, deferred::KeepError> {
        let Checked {
            mut results,
            to_store,
            prepared,
            slots,
            retry,
        } = checked;
        let outcomes = match self.backend() {
            Backend::Embedded(store) => store.ingest_prepared(&to_store, prepared, peer)?,
            Backend::Postgres(pg) => {
                let incoming: Vec<Incoming> = to_store
                    .iter()
                    .zip(prepared)
                    .map(|(e, p)| Incoming::new(e, p))
                    .collect();
                pg.block(pg.store.ingest(&incoming, peer))?
            }
        };
        // Refused for a passing reason: kept durably, then answered `deferred` (the
        // pull cursor moves past it only once it is kept).
        let now = now();
        for (slot, k) in retry {
            if let Err(e) = self.sync.deferred.keep(self.backend(), peer, &k, now) {
                tracing::error!(peer, envelope = %k.id, code = %k.code, error = %e, "cannot keep an envelope refused for a passing reason; nothing more is taken from this peer until it can be");
                return Err(e);
            }
            results[slot].status = OfferStatus::Deferred;
        }
        let mut accepted = 0u64;
        let mut objects = 0u64;
        for ((slot, env), outcome) in slots.into_iter().zip(&to_store).zip(outcomes) {
            results[slot] = Offered {
                id: env.id().to_string(),
                status: if matches!(outcome, IngestOutcome::Accepted { .. }) {
                    OfferStatus::Accepted
                } else {
                    OfferStatus::Duplicate
                },
                code: None,
                message: None,
            };
            if matches!(outcome, IngestOutcome::Accepted { .. }) {
                accepted += 1;
                objects += env.object_count() as u64;
                if env.header().origin == self.member() {
                    // One of ours, taken back: never sign its number again.
                    self.own_seq_seen(env.header().seq);
                }
            }
        }
        let mut rejections: HashMap<String, u64> = HashMap::new();
        for r in &results {
            if r.status == OfferStatus::Rejected
                && let Some(c) = &r.code
            {
                *rejections.entry(c.clone()).or_default() += 1;
                self.metrics.reject(c);
            }
        }
        let duplicates = results
            .iter()
            .filter(|r| r.status == OfferStatus::Duplicate)
            .count();
        let deferred = results
            .iter()
            .filter(|r| r.status == OfferStatus::Deferred)
            .count();
        // One line per batch that changed something; batches of envelopes held
        // already (most of them, in a full mesh) stay at debug.
        if accepted > 0 || !rejections.is_empty() || deferred > 0 {
            tracing::info!(peer, accepted, objects, duplicates, deferred, rejected = ?rejections, "envelopes from a peer");
        } else {
            tracing::debug!(peer, duplicates, "envelopes from a peer, all held already");
        }
        Metrics::add(&self.metrics.duplicate_envelopes, duplicates as u64);
        Metrics::add(&self.metrics.received_envelopes, accepted);
        Metrics::add(&self.metrics.received_objects, objects);
        self.sync.update(self.backend(), peer, true, |s| {
            s.envelopes_received += accepted;
            s.objects_received += objects;
            for (c, n) in rejections {
                *s.rejected.entry(c).or_default() += n;
            }
        });
        if accepted > 0
            && let Ok(head) = self.backend().head()
        {
            self.sync.head.send_replace(head);
        }
        Ok(results)
    }
}

/// What a retraction by `origin` names, against the envelopes held (`owners`: origin
/// and whether it is a retraction): an envelope held that another member published
/// (`foreign-retraction`) or that is a retraction (`retracts-retraction`) refuses it.
/// An envelope not held yet is not refused: the retraction applies to it only if its
/// origin is the retraction's (see `store::view::retract`).
fn retraction_verdict(
    origin: &str,
    names: &[EnvelopeId],
    owners: &HashMap<[u8; 32], (String, bool)>,
) -> Result<(), VerifyError> {
    for id in names {
        let Some((owner, is_retraction)) = owners.get(&id.digest_bytes()) else {
            continue;
        };
        if *is_retraction {
            return Err(VerifyError::RetractsRetraction(id.to_string()));
        }
        if owner != origin {
            return Err(VerifyError::ForeignRetraction {
                envelope: id.to_string(),
                owner: owner.clone(),
                origin: origin.to_string(),
            });
        }
    }
    Ok(())
}

fn rejected(id: String, code: &str, message: String) -> Offered {
    Offered {
        id,
        status: OfferStatus::Rejected,
        code: Some(code.to_string()),
        message: Some(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An offer's text is a slice of the body it came in, never a copy of it; text
    /// from elsewhere (which the callers never pass) is copied rather than misread.
    #[test]
    fn an_offer_shares_the_body_it_came_in() {
        let body = Bytes::from_static(br#"{"envelopes":[{"a":1},{"b":2}]}"#);
        let text = std::str::from_utf8(&body).unwrap();
        let part = &text[14..21];
        assert_eq!(part, r#"{"a":1}"#);
        let o = Offer::within(&body, part, None);
        assert_eq!(o.text.as_ptr(), part.as_ptr());
        assert_eq!(&o.text[..], part.as_bytes());
        let elsewhere = String::from(r#"{"b":2}"#);
        let o = Offer::within(&body, &elsewhere, None);
        assert_eq!(&o.text[..], elsewhere.as_bytes());
        assert_ne!(o.text.as_ptr(), elsewhere.as_ptr());
        let empty = Offer::within(&body, &text[31..], None);
        assert!(empty.text.is_empty());
    }
}
