//! Publishing as this member: validate, split by TLP, sign, make durable.
//!
//! One publish may become several envelopes: one per TLP level present (SPEC section
//! 3), each cut into envelopes of at most `MAX_OBJECTS_PER_ENVELOPE` objects so that
//! envelopes stay a manageable unit for sync (and, for mid-sized publishes, into one
//! envelope per core: see [`objects_per_envelope`]). Objects this node already
//! published with identical content are reported as held and not signed again, so
//! repeating a publish is harmless.

use super::Node;
use super::backend::Backend;
use super::metrics::Metrics;
use crate::envelope::canonical::canonical_bytes;
use crate::envelope::{
    Envelope, EnvelopeMeta, MAX_ENVELOPE_BYTES, PUBLISH_ENVELOPE_BYTES, VerifyError,
    check_authorship,
};
use crate::json::RawObjects;
use crate::stix::PatternKeys;
use crate::stix::observable::ObservableKey;
use crate::stix::timestamp::Timestamp;
use crate::stix::tlp::{OwnLevel, TlpLevel, TlpResolver, own_level};
use crate::stix::validate::{
    Finding, Report, Severity, validate_bundle, validate_object_noting_keys,
};
use crate::store::postgres::ingest::LOCAL;
use crate::store::postgres::{Incoming, store::PublishTurn};
use crate::store::prepare::{Prepared, prepare, split_id};
use crate::store::{IngestOutcome, StoreError};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Objects per envelope at most.
pub const MAX_OBJECTS_PER_ENVELOPE: usize = 1000;

/// Objects per envelope at least, when a TLP level has that many to publish.
pub const MIN_OBJECTS_PER_ENVELOPE: usize = 250;

/// How many objects go in each envelope when `n` objects of one TLP level are
/// published: at most [`MAX_OBJECTS_PER_ENVELOPE`], and few enough that a typical TAXII
/// request (1,000 objects) becomes one envelope per core, since envelopes are signed
/// and prepared in parallel; never below [`MIN_OBJECTS_PER_ENVELOPE`], so that small
/// publishes do not multiply envelopes.
pub fn objects_per_envelope(n: usize) -> usize {
    n.div_ceil(crate::parallel::threads())
        .clamp(MIN_OBJECTS_PER_ENVELOPE, MAX_OBJECTS_PER_ENVELOPE)
}

/// One envelope to sign: its sequence number, TLP level, objects and their pattern
/// keys.
type SignJob = (u64, TlpLevel, Vec<Value>, PatternKeys);

/// A signed envelope, prepared for the store.
type SignResult = Result<(Envelope, Prepared), PublishError>;

/// How to treat invalid objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Any invalid object refuses the whole publish (node API: nothing changes).
    AllOrNothing,
    /// Invalid objects are reported as failures, valid ones are published (TAXII).
    PerObject,
}

/// Why a publish was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The document is not a STIX bundle.
    #[error("not a STIX bundle: {0}")]
    NotABundle(String),
    /// An object of a windowed publish is not valid JSON (where, in the document).
    #[error("body is not valid JSON: {0}")]
    Json(String),
    /// Objects are not valid STIX 2.1 (every finding).
    #[error("the bundle is not valid STIX 2.1 ({} errors)", .0.errors().count())]
    Invalid(Report),
    /// Red objects without recipients, or unknown recipients.
    #[error("{0}")]
    Recipients(String),
    /// The store failed: nothing was acknowledged (batches of envelopes made durable
    /// before the failure stay stored: see `sign_and_store`).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Signing failed.
    #[error("signing failed: {0}")]
    Sign(String),
    /// An object is too large for any envelope (`MAX_ENVELOPE_BYTES`).
    #[error("{0}")]
    TooLarge(String),
    /// The node is taking back its own envelopes from its peers after a rebuild and
    /// signs nothing new until then (`Node::recovering`).
    #[error(
        "this node's index was rebuilt: it is taking back its own envelopes from its peers before signing again; try again shortly"
    )]
    Recovering,
}

/// The length of `v` written as compact JSON, closely estimated without writing it
/// (escapes are not counted): what a publish cuts its envelopes by.
fn approx_json_len(v: &Value) -> usize {
    match v {
        Value::Null => 4,
        Value::Bool(b) => 4 + usize::from(!*b),
        Value::Number(_) => 8,
        Value::String(s) => s.len() + 2,
        Value::Array(a) => 2 + a.iter().map(|x| approx_json_len(x) + 1).sum::<usize>(),
        Value::Object(m) => {
            2 + m
                .iter()
                .map(|(k, x)| k.len() + 4 + approx_json_len(x))
                .sum::<usize>()
        }
    }
}

/// What became of one published object (its `status` in the publish report).
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ObjectStatus {
    /// Signed into an envelope now.
    Published,
    /// Published before with identical content: nothing new signed.
    Held,
    /// Refused (`errors` say why).
    Rejected,
}

/// What happened to one object.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectResult {
    /// STIX id (empty when the object has none).
    pub id: String,
    /// `modified` (or `created`), when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// What became of it.
    pub status: ObjectStatus,
    /// TLP level it was published at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tlp: Option<TlpLevel>,
    /// Envelope that carries it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub envelope: Option<String>,
    /// Why it was rejected.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<Finding>,
}

/// A signed envelope produced by a publish.
#[derive(Debug, Clone, Serialize)]
pub struct PublishedEnvelope {
    /// Envelope id.
    pub id: String,
    /// Its sequence number.
    pub seq: u64,
    /// Its TLP level.
    pub tlp: TlpLevel,
    /// Objects inside.
    pub objects: usize,
}

/// The answer to a publish.
#[derive(Debug, Clone, Serialize)]
pub struct PublishReport {
    /// Envelopes signed and made durable.
    pub envelopes: Vec<PublishedEnvelope>,
    /// Objects published.
    pub published: usize,
    /// Objects already held with identical content.
    pub held: usize,
    /// Objects rejected (PerObject mode).
    pub rejected: usize,
    /// Per object, in input order.
    pub objects: Vec<ObjectResult>,
}

fn text(o: &Value, k: &str) -> Option<String> {
    o.get(k).and_then(Value::as_str).map(str::to_string)
}

impl Node {
    /// Publishes a STIX bundle as this member. Returns once every envelope is durable.
    pub fn publish(
        &self,
        bundle: Value,
        recipients: &[String],
        mode: Mode,
    ) -> Result<PublishReport, PublishError> {
        let started = std::time::Instant::now();
        if self.recovering() {
            return Err(PublishError::Recovering);
        }
        let mut bundle = bundle;
        let is_bundle = bundle.get("type").and_then(Value::as_str) == Some("bundle");
        let mut objects = match (is_bundle, bundle.get_mut("objects")) {
            (true, Some(Value::Array(a))) => std::mem::take(a),
            (true, _) => {
                return Err(PublishError::NotABundle("no objects array".into()));
            }
            _ => {
                return Err(PublishError::NotABundle(
                    "type must be \"bundle\" with an objects array".into(),
                ));
            }
        };
        self.check_recipients(recipients)?;
        // 1. Validate every object, reporting every finding (on both cores for big
        // publishes: validation is most of a publish's work). The bundle's own
        // properties (its id) are checked too: a bundle the offline validator refuses
        // is refused here, not published object by object. (Its objects were moved out
        // above and are checked one by one.)
        let mut checks = Checks::new(&bundle, mode);
        checks.add(validate_all(&objects, 0, &self.authorship()));
        checks.refuse_if_invalid(self, mode)?;
        // 2. Group valid, not-yet-held objects by TLP level.
        let resolver = TlpResolver::with_definitions(std::mem::take(&mut checks.definitions));
        let default = self.config.default_tlp;
        let placed: Vec<Option<(TlpLevel, bool)>> = {
            let results = &checks.results;
            let own = &checks.own_levels;
            let held =
                self.already_held(&objects, |i| results[i].status == ObjectStatus::Published)?;
            crate::parallel::map(&objects, 1000, |i, obj| {
                (results[i].status == ObjectStatus::Published).then(|| {
                    let level = resolver.object_level_given(obj, own[i]).unwrap_or(default);
                    (level, held[i])
                })
            })
        };
        // Red objects need recipients, already held or not (as for a windowed publish,
        // which must decide before it stores anything).
        if placed
            .iter()
            .flatten()
            .any(|&(level, _)| level == TlpLevel::Red)
            && recipients.is_empty()
        {
            return Err(PublishError::Recipients(RED_NEEDS_RECIPIENTS.into()));
        }
        let mut groups: BTreeMap<TlpLevel, Vec<(usize, Value)>> = BTreeMap::new();
        for (i, place) in placed.into_iter().enumerate() {
            let Some((level, held)) = place else {
                continue;
            };
            checks.results[i].tlp = Some(level);
            if held {
                checks.results[i].status = ObjectStatus::Held;
            } else {
                groups
                    .entry(level)
                    .or_default()
                    .push((i, std::mem::take(&mut objects[i])));
            }
        }
        // 3. Sign (serialised: sequence numbers are consecutive) and store.
        let mut seq = self.seq_turn()?;
        let stored = self.sign_and_store(&mut seq, groups, &mut checks.pattern_keys, recipients)?;
        seq.end();
        crate::parallel::drop_elsewhere((objects, bundle));
        Ok(self.finish(checks.results, stored, started))
    }

    /// Publishes a bundle too large to hold parsed at once (more objects than
    /// `limits.publish_window_objects`), a window of objects at a time.
    ///
    /// Two passes over the objects' text: the first parses and validates every object
    /// (keeping only its id, version, findings and TLP level), so that an invalid
    /// object refuses the publish before anything is stored, exactly as
    /// [`Node::publish`] does; the second parses each window again, signs it into
    /// envelopes and stores them before moving on. Only one window's parsed objects and
    /// envelopes are in memory at a time. If the store fails midway, the windows stored
    /// before stay stored (a repeated publish reports their objects as held). An
    /// object repeated, identical, in a later window is reported as held there.
    pub fn publish_windowed(
        &self,
        raw: &RawObjects<'_>,
        recipients: &[String],
        mode: Mode,
    ) -> Result<PublishReport, PublishError> {
        let started = std::time::Instant::now();
        if self.recovering() {
            return Err(PublishError::Recovering);
        }
        if raw.members.get("type").and_then(Value::as_str) != Some("bundle") {
            return Err(PublishError::NotABundle(
                "type must be \"bundle\" with an objects array".into(),
            ));
        }
        self.check_recipients(recipients)?;
        let window = self.config.limits.publish_window_objects.max(1);
        let windows = || {
            (0..raw.objects.len())
                .step_by(window)
                .map(move |first| first..(first + window).min(raw.objects.len()))
        };
        let mut bundle = Value::Object(raw.members.clone());
        bundle["objects"] = Value::Array(Vec::new());
        let mut checks = Checks::new(&bundle, mode);
        // 1. Parse and validate every window; note each valid object's TLP level, or
        // its markings when they name a definition that may come later in the bundle.
        let default = self.config.default_tlp;
        let well_known = TlpResolver::new();
        let mut levels: Vec<Level> = Vec::with_capacity(raw.objects.len());
        // The last window's objects are kept for the second pass, which would
        // otherwise parse them again right away; one window is in memory either way.
        let mut last: Option<Vec<Value>> = None;
        for range in windows() {
            if let Some(done) = last.take() {
                crate::parallel::drop_elsewhere(done);
            }
            let objects = raw.parse(range.clone()).map_err(PublishError::Json)?;
            let checked = validate_all(&objects, range.start, &self.authorship());
            levels.extend(objects.iter().zip(&checked).map(|(obj, c)| {
                if !c.report.is_valid() {
                    Level::Rejected
                } else if c.own_level == OwnLevel::NeedsDefinitions {
                    Level::Deferred(markings_of(obj))
                } else {
                    Level::Known(
                        well_known
                            .object_level_given(obj, c.own_level)
                            .unwrap_or(default),
                    )
                }
            }));
            checks.add(checked);
            last = Some(objects);
        }
        checks.refuse_if_invalid(self, mode)?;
        let resolver = TlpResolver::with_definitions(std::mem::take(&mut checks.definitions));
        let levels: Vec<Option<TlpLevel>> = levels
            .into_iter()
            .map(|l| match l {
                Level::Rejected => None,
                Level::Known(level) => Some(level),
                Level::Deferred(markings) => Some(resolver.effective_level(&markings, default)),
            })
            .collect();
        if levels.contains(&Some(TlpLevel::Red)) && recipients.is_empty() {
            return Err(PublishError::Recipients(RED_NEEDS_RECIPIENTS.into()));
        }
        // 2. Parse each window again (but the last), sign it and store it.
        let mut seq = self.seq_turn()?;
        let mut stored = Vec::new();
        for range in windows() {
            let mut objects = match last.take() {
                Some(kept) if range.end == raw.objects.len() => kept,
                kept => {
                    last = kept;
                    raw.parse(range.clone()).map_err(PublishError::Json)?
                }
            };
            let held = self.already_held(&objects, |i| levels[range.start + i].is_some())?;
            let mut groups: BTreeMap<TlpLevel, Vec<(usize, Value)>> = BTreeMap::new();
            for (k, obj) in objects.iter_mut().enumerate() {
                let i = range.start + k;
                let Some(level) = levels[i] else {
                    continue;
                };
                checks.results[i].tlp = Some(level);
                if held[k] {
                    checks.results[i].status = ObjectStatus::Held;
                } else {
                    groups
                        .entry(level)
                        .or_default()
                        .push((i, std::mem::take(obj)));
                }
            }
            match self.sign_and_store(&mut seq, groups, &mut checks.pattern_keys, recipients) {
                Ok(s) => stored.extend(s),
                Err(e) => {
                    // The windows stored before stay published.
                    self.count_published(
                        stored.len() as u64,
                        stored.iter().map(|(_, idx)| idx.len() as u64).sum(),
                    );
                    return Err(e);
                }
            }
            crate::parallel::drop_elsewhere(objects);
        }
        seq.end();
        Ok(self.finish(checks.results, stored, started))
    }

    fn check_recipients(&self, recipients: &[String]) -> Result<(), PublishError> {
        let roster = self.roster();
        match recipients.iter().find(|r| roster.member(r).is_none()) {
            Some(r) => Err(PublishError::Recipients(format!(
                "recipient {r:?} is not a member of the roster"
            ))),
            None => Ok(()),
        }
    }

    /// Signs the objects of each TLP level into envelopes numbered on from `*seq`,
    /// prepares and stores them; returns every envelope with the positions (in the
    /// publish) of its objects. `*seq` moves on past every envelope made durable.
    ///
    /// Signing runs on every core, storing (log write, `fsync`, indexing) on one: the
    /// envelopes are stored a few at a time, in sequence order, on a thread of their
    /// own while the next few are signed, so that the other core is not idle while the
    /// store works. Each batch is durable before the next is stored; if one fails, the
    /// batches before it stay stored (a repeated publish reports their objects as held)
    /// and the error is returned.
    fn sign_and_store(
        &self,
        seq: &mut SeqTurn<'_>,
        groups: BTreeMap<TlpLevel, Vec<(usize, Value)>>,
        pattern_keys: &mut PatternKeys,
        recipients: &[String],
    ) -> Result<Vec<(PublishedEnvelope, Vec<usize>)>, PublishError> {
        let mut next = seq.next;
        let turn = seq.shared();
        let mut jobs: Vec<SignJob> = Vec::new();
        let mut members_of: Vec<Vec<usize>> = Vec::new();
        for (level, mut members) in groups {
            let size = objects_per_envelope(members.len());
            while !members.is_empty() {
                // At most `size` objects, and no more than `PUBLISH_ENVELOPE_BYTES` of
                // them (at least one): a bundle of large objects becomes several
                // envelopes rather than one no peer could take in a feed page.
                let mut bytes = 0usize;
                let take = members
                    .iter()
                    .take(size)
                    .take_while(|(_, o)| {
                        bytes += approx_json_len(o);
                        bytes <= PUBLISH_ENVELOPE_BYTES
                    })
                    .count()
                    .max(1);
                let rest = members.split_off(take.min(members.len()));
                let (idx, objs): (Vec<usize>, Vec<Value>) =
                    std::mem::replace(&mut members, rest).into_iter().unzip();
                let keys = idx
                    .iter()
                    .map(|&i| pattern_keys.get_mut(i).and_then(Option::take))
                    .collect();
                jobs.push((next, level, objs, keys));
                members_of.push(idx);
                next += 1;
            }
        }
        // Envelopes are independent once their sequence numbers are fixed: they are
        // canonicalised and signed on every core, all with the same signing instant.
        // Each is prepared for the store right after it is signed, on the same core,
        // while its canonical bytes are still in cache.
        let signer = self.live().signer.clone();
        let signed_at = Timestamp::now();
        let sign = |(seq, level, objs, keys): SignJob| -> SignResult {
            // Built by hand: `json!` would serialise (copy) every object again.
            let mut b = serde_json::Map::new();
            b.insert("type".into(), Value::from("bundle"));
            b.insert(
                "id".into(),
                Value::from(format!("bundle--{}", uuid::Uuid::new_v4())),
            );
            b.insert("objects".into(), Value::Array(objs));
            let env = Envelope::sign(
                Value::Object(b),
                &signer,
                EnvelopeMeta {
                    seq,
                    signed_at,
                    tlp: level,
                    recipients: if level == TlpLevel::Red {
                        recipients.to_vec()
                    } else {
                        Vec::new()
                    },
                },
            )
            .map_err(|e| PublishError::Sign(e.to_string()))?;
            // The signed form and the signature member (under 128 bytes).
            let len = env.signed_bytes().len() + 128;
            if len > MAX_ENVELOPE_BYTES {
                return Err(PublishError::TooLarge(format!(
                    "object {} makes an envelope of {len} bytes; an envelope may have at most {MAX_ENVELOPE_BYTES}",
                    env.objects()
                        .first()
                        .and_then(|o| o.get("id"))
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                )));
            }
            env.note_pattern_keys(keys);
            // Every object of the envelope is shared at its level.
            env.note_object_levels(vec![level; env.objects().len()]);
            let prepared = prepare(&env)?;
            Ok((env, prepared))
        };
        // Every core signs, taking the next envelope as soon as it is done with one,
        // so that no core waits for another. This thread stores the signed envelopes
        // in sequence order while the next are signed, every one ready in one ingest:
        // one `fsync` for all of them (an `fsync` costs milliseconds however little
        // it writes). Envelopes after a failed one are never stored: their sequence
        // numbers would leave a gap.
        let mut envelopes: Vec<Envelope> = Vec::new();
        let end = crate::parallel::pipeline(jobs, sign, |batch: Vec<(Envelope, Prepared)>| {
            let (envs, prepared): (Vec<Envelope>, Vec<Prepared>) = batch.into_iter().unzip();
            let (outcomes, head) = store_signed(self.backend(), turn, &envs, prepared)?;
            // Counted as stored even if one was refused: the others of the batch
            // were, and their sequence numbers are used.
            envelopes.extend(envs);
            // Push tasks send what is durable without waiting for the rest.
            self.sync.head.send_replace(head);
            if outcomes
                .iter()
                .any(|o| !matches!(o, IngestOutcome::Accepted { .. }))
            {
                return Err(PublishError::Store(StoreError::Rejected(
                    "a freshly signed envelope was already held".into(),
                )));
            }
            Ok(())
        });
        if let Some(last) = envelopes.last() {
            seq.next = last.header().seq + 1;
        }
        match end {
            crate::parallel::PipelineEnd::Done => {}
            crate::parallel::PipelineEnd::WorkFailed(e)
            | crate::parallel::PipelineEnd::SinkFailed(e) => {
                // The batches stored before the failure are published all the same
                // (the answer to a successful publish counts them in `finish`).
                self.count_published(
                    envelopes.len() as u64,
                    envelopes.iter().map(|e| e.objects().len() as u64).sum(),
                );
                return Err(e);
            }
        }
        let mut stored = Vec::with_capacity(envelopes.len());
        for (idx, env) in members_of.into_iter().zip(envelopes.iter()) {
            stored.push((
                PublishedEnvelope {
                    id: env.id().to_string(),
                    seq: env.header().seq,
                    tlp: env.header().tlp,
                    objects: idx.len(),
                },
                idx,
            ));
        }
        crate::parallel::drop_elsewhere(envelopes);
        Ok(stored)
    }

    /// Counts envelopes and objects published.
    fn count_published(&self, envelopes: u64, objects: u64) {
        Metrics::add(&self.metrics.published_envelopes, envelopes);
        Metrics::add(&self.metrics.published_objects, objects);
    }

    /// The answer to a publish, with its metrics counted.
    fn finish(
        &self,
        mut results: Vec<ObjectResult>,
        stored: Vec<(PublishedEnvelope, Vec<usize>)>,
        started: std::time::Instant,
    ) -> PublishReport {
        let mut envelopes = Vec::with_capacity(stored.len());
        for (env, idx) in stored {
            for i in idx {
                results[i].envelope = Some(env.id.clone());
            }
            envelopes.push(env);
        }
        let count = |s: ObjectStatus| results.iter().filter(|r| r.status == s).count();
        let report = PublishReport {
            published: count(ObjectStatus::Published),
            held: count(ObjectStatus::Held),
            rejected: count(ObjectStatus::Rejected),
            envelopes,
            objects: results,
        };
        self.count_published(report.envelopes.len() as u64, report.published as u64);
        let mut levels: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
        for e in &report.envelopes {
            *levels.entry(e.tlp.as_str()).or_default() += 1;
        }
        tracing::info!(
            published = report.published,
            held = report.held,
            rejected = report.rejected,
            envelopes = report.envelopes.len(),
            tlp = ?levels,
            ms = started.elapsed().as_millis() as u64,
            "publish"
        );
        Metrics::add(
            &self.metrics.publish_rejected_objects,
            report.rejected as u64,
        );
        self.metrics.publish_took(started.elapsed().as_secs_f64());
        report
    }

    /// For each object (those `consider` names; the others answer false), whether
    /// this member already published exactly this version of it.
    fn already_held(
        &self,
        objects: &[Value],
        consider: impl Fn(usize) -> bool + Sync,
    ) -> Result<Vec<bool>, PublishError> {
        match self.backend() {
            Backend::Embedded(store) => {
                let view = store.read();
                let Some(me) = view.origin_index(self.member()) else {
                    return Ok(vec![false; objects.len()]);
                };
                Ok(crate::parallel::map(objects, 1000, |i, obj| {
                    consider(i) && held_in_view(&view, me, obj)
                }))
            }
            Backend::Postgres(pg) => {
                let mut asked = Vec::new();
                let mut at = Vec::new();
                for (i, obj) in objects.iter().enumerate() {
                    if let (true, Some((t, uuid, modified))) = (consider(i), version_of(obj)) {
                        asked.push((t.to_string(), uuid, modified));
                        at.push(i);
                    }
                }
                let found = pg.block(pg.store.delivered_by(self.member(), &asked))?;
                let mut held = vec![false; objects.len()];
                for (i, hashes) in at.into_iter().zip(found) {
                    held[i] = !hashes.is_empty()
                        && content_hash(&objects[i]).is_some_and(|h| hashes.contains(&h));
                }
                Ok(held)
            }
        }
    }

    /// The turn to sign this member's next sequence numbers: this process's lock,
    /// and on PostgreSQL the database's publish turn too, which every process of the
    /// member shares and which gives the next number.
    pub(super) fn seq_turn(&self) -> Result<SeqTurn<'_>, StoreError> {
        let local = self.next_seq.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = *local;
        let shared = match self.backend().postgres() {
            Some(pg) => {
                let t = pg.block(pg.store.publish_turn(self.member()))?;
                next = t.next_seq;
                Some((pg, t))
            }
            None => None,
        };
        Ok(SeqTurn {
            local,
            next,
            shared,
        })
    }
}

/// Stores envelopes this member just signed under `turn` (a publish's or a
/// retraction's); returns the outcomes and the feed head after them.
pub(super) fn store_signed(
    backend: &Backend,
    turn: Option<&PublishTurn>,
    envs: &[Envelope],
    prepared: Vec<Prepared>,
) -> Result<(Vec<IngestOutcome>, u64), StoreError> {
    match backend {
        Backend::Embedded(store) => {
            Ok((store.ingest_prepared(envs, prepared, LOCAL)?, store.head()))
        }
        Backend::Postgres(pg) => {
            let incoming: Vec<Incoming> = envs
                .iter()
                .zip(prepared)
                .map(|(e, p)| Incoming::new(e, p))
                .collect();
            pg.block(async {
                // Still this publish's turn: else another process may have numbered
                // on (the ingest refuses a number used anyway).
                if let Some(t) = turn {
                    t.touch().await?;
                }
                let out = pg.store.ingest(&incoming, LOCAL).await?;
                Ok((out, pg.store.head().await?))
            })
        }
    }
}

/// A publish's turn to sign (`Node::seq_turn`).
pub(super) struct SeqTurn<'a> {
    local: std::sync::MutexGuard<'a, u64>,
    /// The next sequence number to sign with.
    pub(super) next: u64,
    shared: Option<(&'a crate::node::backend::Postgres, PublishTurn)>,
}

impl SeqTurn<'_> {
    /// Gives the turn back (as dropping it does, on every path a publish ends by).
    pub(super) fn end(self) {}

    /// The database's turn, on PostgreSQL.
    pub(super) fn shared(&self) -> Option<&PublishTurn> {
        self.shared.as_ref().map(|(_, t)| t)
    }
}

impl Drop for SeqTurn<'_> {
    /// Notes how far the turn got: `sign_and_store` moves `next` past every envelope
    /// made durable, also when a later one failed.
    fn drop(&mut self) {
        *self.local = self.next;
        if let Some((pg, t)) = self.shared.take()
            && let Err(e) = pg.block(t.end())
        {
            // Its connection is closed instead; the database frees the turn.
            tracing::warn!(error = %e, "cannot give the publish turn back cleanly");
        }
    }
}

/// The object's `(type, uuid, modified)` (`modified` µs, `i64::MIN` without one).
fn version_of(obj: &Value) -> Option<(&str, u128, i64)> {
    let (t, uuid) = obj.get("id").and_then(Value::as_str).and_then(split_id)?;
    let modified = obj
        .get("modified")
        .and_then(Value::as_str)
        .and_then(|m| Timestamp::parse(m).ok())
        .map_or(i64::MIN, |m| m.as_micros());
    Some((t, uuid, modified))
}

/// The content hash the store keeps of an object version (the first 16 bytes of the
/// SHA-256 of its canonical form).
fn content_hash(obj: &Value) -> Option<[u8; 16]> {
    let body = canonical_bytes(obj).ok()?;
    let digest = Sha256::digest(&body);
    <[u8; 16]>::try_from(&digest[..16]).ok()
}

/// Whether member `me` already delivered exactly this object version (embedded view).
fn held_in_view(view: &crate::store::view::View, me: u16, obj: &Value) -> bool {
    let Some((t, uuid, modified)) = version_of(obj) else {
        return false;
    };
    let candidates: Vec<u32> = view
        .versions_of(t, uuid)
        .into_iter()
        .filter(|&h| view.version(h).is_some_and(|v| v.modified == modified))
        .filter(|&h| view.deliveries(h).iter().any(|e| e.origin == me))
        .collect();
    if candidates.is_empty() {
        return false;
    }
    let Some(hash) = content_hash(obj) else {
        return false;
    };
    candidates
        .iter()
        .any(|&h| view.version(h).is_some_and(|v| v.hash[..] == hash[..]))
}

const RED_NEEDS_RECIPIENTS: &str =
    "red objects need recipients (the members allowed to receive them)";

/// What validation found so far: a result per object, every finding, and the TLP
/// marking definitions the bundle carries.
struct Checks {
    results: Vec<ObjectResult>,
    report: Report,
    definitions: Vec<(String, TlpLevel)>,
    /// Per object, the keys of its pattern, handed to the store with its envelope.
    pattern_keys: PatternKeys,
    /// Per object, what its own markings say of its TLP level.
    own_levels: Vec<OwnLevel>,
}

impl Checks {
    /// Starts with the findings on the bundle's own properties (node API only; its
    /// objects are checked one by one, so `bundle` comes without them).
    fn new(bundle: &Value, mode: Mode) -> Self {
        let report = if mode == Mode::AllOrNothing {
            let mut r = validate_bundle(bundle);
            r.findings.retain(|f| !f.pointer.starts_with("/objects"));
            r
        } else {
            Report::default()
        };
        Checks {
            results: Vec::new(),
            report,
            definitions: Vec::new(),
            pattern_keys: Vec::new(),
            own_levels: Vec::new(),
        }
    }

    /// Adds the next objects' checks, in bundle order.
    fn add(&mut self, checked: Vec<Checked>) {
        self.results.reserve(checked.len());
        self.pattern_keys.reserve(checked.len());
        self.own_levels.reserve(checked.len());
        for c in checked {
            self.pattern_keys.push(c.pattern_keys);
            let valid = c.report.is_valid();
            if let OwnLevel::Definition(level) = c.own_level
                && !c.id.is_empty()
            {
                self.definitions.push((c.id.clone(), level));
            }
            self.own_levels.push(c.own_level);
            self.results.push(ObjectResult {
                id: c.id,
                version: c.version,
                status: if valid {
                    ObjectStatus::Published
                } else {
                    ObjectStatus::Rejected
                },
                tlp: None,
                envelope: None,
                errors: c.report.errors().cloned().collect(),
            });
            self.report.findings.extend(c.report.findings);
        }
    }

    /// In all-or-nothing mode, any error refuses the publish (and is counted).
    fn refuse_if_invalid(&mut self, node: &Node, mode: Mode) -> Result<(), PublishError> {
        if mode == Mode::AllOrNothing && !self.report.is_valid() {
            Metrics::add(
                &node.metrics.publish_rejected_objects,
                self.results
                    .iter()
                    .filter(|r| r.status == ObjectStatus::Rejected)
                    .count() as u64,
            );
            return Err(PublishError::Invalid(std::mem::take(&mut self.report)));
        }
        Ok(())
    }
}

/// A windowed publish's first pass: an object's TLP level, or what is needed to find
/// it once every marking definition of the bundle is known.
enum Level {
    /// Invalid: not published.
    Rejected,
    /// Its markings are well-known ids (or it has none).
    Known(TlpLevel),
    /// Its marking references, which name definitions the bundle may carry later.
    Deferred(Value),
}

/// Only the members of `obj` that decide its TLP level.
fn markings_of(obj: &Value) -> Value {
    let mut m = serde_json::Map::new();
    for key in ["object_marking_refs", "granular_markings"] {
        if let Some(v) = obj.get(key) {
            m.insert(key.into(), v.clone());
        }
    }
    Value::Object(m)
}

/// What publishing needs to know of one object, found in one pass.
struct Checked {
    /// Every finding.
    report: Report,
    /// Its id (empty when it has none).
    id: String,
    /// `modified` (or `created`), when present.
    version: Option<String>,
    /// What its own markings say of its TLP level (found while it is at hand).
    own_level: OwnLevel,
    /// The observable keys of its STIX pattern, when it has one that parsed.
    pattern_keys: Option<Vec<ObservableKey>>,
}

/// What this member may sign ([`check_authorship`]), checked at publish as its peers
/// will check it on receipt, so that the node never signs what they would refuse.
struct Authorship<'a> {
    origin: &'a str,
    roster: std::sync::Arc<crate::roster::Roster>,
    /// The `signed_at` the envelopes will have, at the latest (now).
    signed_at: Timestamp,
}

impl Authorship<'_> {
    /// Adds a finding to `report` when `obj` may not be signed by this member.
    fn check(&self, obj: &Value, pointer: &str, report: &mut Report) {
        if let Err(e) = check_authorship(obj, self.origin, self.signed_at, &self.roster) {
            let at = match &e {
                VerifyError::ForeignCreator { .. } => "/created_by_ref",
                VerifyError::ObjectAfterSigning { property, .. } => {
                    if *property == "created" {
                        "/created"
                    } else {
                        "/modified"
                    }
                }
                _ => "",
            };
            report.findings.push(Finding {
                severity: Severity::Error,
                code: e.code(),
                object_id: obj.get("id").and_then(Value::as_str).map(str::to_string),
                pointer: format!("{pointer}{at}"),
                message: e.to_string(),
            });
        }
    }
}

impl Node {
    fn authorship(&self) -> Authorship<'_> {
        Authorship {
            origin: self.member(),
            roster: self.roster(),
            signed_at: Timestamp::now(),
        }
    }
}

/// Validates every object, in order, on every core for large inputs (validation is
/// most of a publish's work), noting what later steps need so that they do not walk
/// the objects again. `first` is the position of `objects[0]` in the bundle.
fn validate_all(objects: &[Value], first: usize, authorship: &Authorship) -> Vec<Checked> {
    crate::parallel::map(objects, 1000, |i, o| {
        let mut report = Report::default();
        let pointer = format!("/objects/{}", first + i);
        let pattern_keys = validate_object_noting_keys(o, &pointer, &mut report);
        authorship.check(o, &pointer, &mut report);
        Checked {
            pattern_keys,
            report,
            id: text(o, "id").unwrap_or_default(),
            version: text(o, "modified").or_else(|| text(o, "created")),
            own_level: own_level(o),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_sizes_use_every_core_within_bounds() {
        let cores = crate::parallel::threads();
        for n in [1, 100, 250, 999, 1000, 1001, 4000, 10_000, 1_000_000] {
            let size = objects_per_envelope(n);
            assert!(
                (MIN_OBJECTS_PER_ENVELOPE..=MAX_OBJECTS_PER_ENVELOPE).contains(&size),
                "{n}: {size}"
            );
        }
        assert_eq!(100usize.div_ceil(objects_per_envelope(100)), 1);
        assert_eq!(1000usize.div_ceil(objects_per_envelope(1000)), cores.min(4));
        assert_eq!(10_000usize.div_ceil(objects_per_envelope(10_000)), 10);
    }
}
