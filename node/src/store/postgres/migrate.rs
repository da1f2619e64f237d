//! Moving a node: an embedded store's evidence log copied into an empty PostgreSQL
//! database, every envelope verified again against the roster (as `synergia rebuild`
//! does), the view built there, and the digests compared with the embedded view's.
//!
//! What the node keeps beside its envelopes comes along: its peers' cursors and
//! counters, TAXII status resources, envelopes waiting for a retry, and the key of its
//! TAXII `next` tokens. Each envelope keeps the `date_added` it had, so TAXII
//! clients' `added_after` cursors stay true. The log's epoch is new (peers page the
//! node's feed once more from the start, skipping by id what they hold).

use super::ingest::{Incoming, Recorded};
use super::store::PgStore;
use crate::roster::Roster;
use crate::stix::tlp::ALL_LEVELS;
use crate::store::digest::ViewDigest;
use crate::store::engine::Space;
use crate::store::log::LogRecord;
use crate::store::view::SHARED_LEVELS;
use crate::store::{Store, StoreError, prepare};

/// Envelopes verified and stored per transaction.
const CHUNK: usize = 512;

/// What a migration did.
#[derive(Debug, Clone, Default)]
pub struct MigrateReport {
    /// Envelopes read from the log.
    pub envelopes: u64,
    /// Envelopes stored in the database.
    pub stored: u64,
    /// Envelopes that no longer verify (log ordinal, reason); left out.
    pub rejected: Vec<(u64, String)>,
    /// Keyed values copied (peer state, TAXII statuses, retries, token key).
    pub values: u64,
    /// Per digest (the five levels, then shared clear and green): the embedded
    /// view's and the database's.
    pub digests: Vec<(String, ViewDigest, ViewDigest)>,
}

impl MigrateReport {
    /// Whether every digest is the same on both sides.
    pub fn digests_match(&self) -> bool {
        self.digests.iter().all(|(_, a, b)| a == b)
    }
}

/// Why a migration cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// The target database already holds envelopes.
    #[error(
        "the database already holds {0} envelopes: a node is moved into an empty database only (nothing was changed)"
    )]
    NotEmpty(u64),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Copies `source` (an open embedded store, so no node serves it) into `target`.
/// `rt` runs the database statements; call this outside any async task.
pub fn migrate(
    source: &Store,
    roster: &Roster,
    target: &PgStore,
    rt: &tokio::runtime::Handle,
) -> Result<MigrateReport, MigrateError> {
    let held = rt.block_on(target.counts())?.envelopes;
    if held > 0 || rt.block_on(target.head())? > 0 {
        return Err(MigrateError::NotEmpty(held));
    }
    let mut report = MigrateReport::default();
    let mut chunk: Vec<LogRecord> = Vec::with_capacity(CHUNK);
    let flush = |chunk: &mut Vec<LogRecord>, report: &mut MigrateReport| {
        report.envelopes += chunk.len() as u64;
        let good = crate::store::rebuild::verified(chunk, roster, &mut report.rejected);
        let mut batch = Vec::with_capacity(good.len());
        for (r, env) in good {
            let mut incoming = Incoming::new(&env, prepare::prepare(&env)?);
            incoming.recorded = Some(Recorded {
                received_from: r.header.received_from.clone(),
                received_at: r.header.received_at,
                date_added_base: Some(r.header.date_added_base),
                ordinal: None,
            });
            batch.push(incoming);
        }
        if !batch.is_empty() {
            rt.block_on(target.ingest(&batch, "local"))?;
            report.stored += batch.len() as u64;
        }
        Ok::<(), StoreError>(())
    };
    source.read_log(|r| {
        chunk.push(r);
        if chunk.len() == CHUNK {
            flush(&mut chunk, &mut report)?;
        }
        Ok(())
    })?;
    flush(&mut chunk, &mut report)?;
    for space in [Space::Peers, Space::Status, Space::Deferred] {
        for (k, v) in source.values(space)? {
            rt.block_on(target.put_value(space, &k, &v))?;
            report.values += 1;
        }
    }
    for (k, v) in source.values(Space::Meta)? {
        // Only what the node itself keeps there; the embedded store's own marks
        // (format, epoch, indexed-through, recovery) mean nothing to the database.
        if k == crate::store::TAXII_TOKEN_KEY {
            rt.block_on(target.put_value(Space::Meta, &k, &v))?;
            report.values += 1;
        }
    }
    let view = source.read();
    for level in ALL_LEVELS {
        report.digests.push((
            level.to_string(),
            view.digest(level),
            rt.block_on(target.digest(level))?,
        ));
    }
    for level in SHARED_LEVELS {
        if let (Some(a), Some(b)) = (
            view.shared_digest(level),
            rt.block_on(target.shared_digest(level))?,
        ) {
            report.digests.push((format!("shared {level}"), a, b));
        }
    }
    Ok(report)
}
