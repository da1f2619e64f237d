//! `synergia rebuild` on PostgreSQL: the view built again from the evidence log (the
//! `envelopes` table), every envelope verified again against the current roster.
//!
//! All of it is one transaction: ingests wait on the feed head, which it locks first,
//! and readers of the view's tables wait on their `TRUNCATE` until it commits; then
//! they see the new view, never a part of it. Envelopes that still verify keep their
//! feed positions and `date_added`, so peers' cursors and TAXII clients'
//! `added_after` stay true. Those that do not are moved to `envelopes_set_aside` with
//! why, out of the view and the feed but kept verbatim; the next rebuild checks them
//! again and gives back those that verify once more, at new feed positions and with
//! new `date_added` values, past every one handed out before. Peer state, TAXII
//! statuses, envelopes waiting for a retry and this member's sequence numbers are left
//! as they are.
//!
//! The log is copied to a temporary table first: the rebuild needs about the log's
//! size again in free disk until it commits.

use super::PgError;
use super::ingest::{self, Incoming, Recorded};
use super::store::PgStore;
use crate::roster::Roster;
use crate::stix::timestamp::Timestamp;
use crate::stix::tlp::ALL_LEVELS;
use crate::store::log::{LogPos, LogRecord, RecordHeader};
use crate::store::rebuild::{RebuildReport, verified};
use crate::store::{StoreError, prepare};
use std::collections::{HashMap, HashSet};
use tokio_postgres::Transaction;

/// Envelopes read, verified and stored per step.
const CHUNK: i64 = 512;

/// Why a rebuild did not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgRebuildError {
    /// A `serve` process of this member is running.
    #[error(
        "a serve process of this member is running ({0}): stop every `synergia serve` of this member first (nothing was changed)"
    )]
    InUse(String),
    /// The store failed; the transaction was rolled back.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn q(what: &str) -> impl FnOnce(tokio_postgres::Error) -> StoreError + '_ {
    move |e| StoreError::Database(PgError::query(what, e))
}

impl PgStore {
    /// Rebuilds the view from the evidence log against `roster` (see the module
    /// documentation).
    pub async fn rebuild(&self, roster: &Roster) -> Result<RebuildReport, PgRebuildError> {
        let mut c = self.pool().get().await.map_err(StoreError::Database)?;
        let tx = super::store::storing_transaction(&mut c, "starting the rebuild").await?;
        let last_date_added = refuse_while_served(&tx).await?;
        let report = rebuild_in(&tx, roster, last_date_added).await?;
        tx.commit().await.map_err(q("committing the rebuild"))?;
        Ok(report)
    }
}

/// Refuses while a `serve` process of the member runs (it says so every two seconds,
/// `lease::PROCESS_BEAT`) or anything signs a publish (it holds the publish turn).
/// Then holds the publish turn and the feed head for the rest of the transaction.
///
/// Returns the feed head's last `date_added`, which the rebuild must not move back.
async fn refuse_while_served(tx: &Transaction<'_>) -> Result<i64, PgRebuildError> {
    match tx
        .query_one(
            "SELECT 1 FROM node_meta WHERE key = 'publish-turn' FOR UPDATE NOWAIT",
            &[],
        )
        .await
    {
        Ok(_) => {}
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) => {
            return Err(PgRebuildError::InUse(
                "one is signing a publish".to_string(),
            ));
        }
        Err(e) => return Err(q("taking the publish turn")(e).into()),
    }
    if let Some((holder, listen)) = super::lease::running_processes(tx).await?.first() {
        return Err(PgRebuildError::InUse(format!(
            "process {holder}, listening on {listen}, was seen in the last {} s",
            super::lease::PROCESS_GONE.as_secs()
        )));
    }
    let last: i64 = tx
        .query_one("SELECT last_date_added FROM feed_head FOR UPDATE", &[])
        .await
        .map_err(q("locking the feed head"))?
        .get(0);
    Ok(last)
}

async fn rebuild_in(
    tx: &Transaction<'_>,
    roster: &Roster,
    last_date_added: i64,
) -> Result<RebuildReport, StoreError> {
    // The log, and what an earlier rebuild set aside, copied aside: the view's tables
    // are emptied and filled again from it.
    tx.batch_execute(
        "CREATE TEMPORARY TABLE rebuild_log ON COMMIT DROP AS
             SELECT id, ordinal, received_from, received_at, date_added_base, body,
                    false AS set_aside
             FROM envelopes
             UNION ALL
             -- One copy of an envelope a peer brought back meanwhile: the held one.
             SELECT id, ordinal, received_from, received_at, date_added_base, body, true
             FROM envelopes_set_aside s
             WHERE NOT EXISTS (SELECT 1 FROM envelopes e WHERE e.id = s.id);
         TRUNCATE envelopes, envelopes_set_aside, versions, deliveries, tombstones,
                  observables, retractions, retracted_envelopes, retracted_objects;
         UPDATE digests SET l0 = 0, l1 = 0, l2 = 0, l3 = 0, count = 0;
         -- Each envelope's versions take their `date_added` from its recorded base
         -- again, as on the first ingest; the head's value comes back at the end.
         UPDATE feed_head SET last_date_added = 0, envelopes = 0, versions = 0, objects = 0,
                              retractions = 0;
         DECLARE rebuild_cursor NO SCROLL CURSOR FOR
             SELECT id, ordinal, received_from, received_at, date_added_base, body,
                    set_aside
             FROM rebuild_log ORDER BY set_aside, ordinal;",
    )
    .await
    .map_err(q("emptying the view"))?;
    let mut report = RebuildReport {
        envelopes: 0,
        rejected: Vec::new(),
        versions: 0,
        digests: Vec::new(),
    };
    let now = Timestamp::now().as_micros();
    // Whether set-aside envelopes are being given back (they come last).
    let mut giving_back = false;
    loop {
        let rows = tx
            .query(&format!("FETCH {CHUNK} FROM rebuild_cursor"), &[])
            .await
            .map_err(q("reading the evidence log"))?;
        if rows.is_empty() {
            break;
        }
        report.envelopes += rows.len() as u64;
        // Log positions are unique in `rebuild_log` (each was taken once from the feed
        // head, and an envelope is in one of the two tables): they key the rows here.
        let set_aside: HashSet<u64> = rows
            .iter()
            .filter(|r| r.get::<_, bool>(6))
            .map(|r| r.get::<_, i64>(1) as u64)
            .collect();
        let mut chunk: Vec<LogRecord> = rows
            .iter()
            .map(|r| LogRecord {
                header: RecordHeader {
                    ordinal: r.get::<_, i64>(1) as u64,
                    received_from: r.get(2),
                    received_at: r.get(3),
                    date_added_base: r.get(4),
                },
                envelope: r.get(5),
                pos: LogPos {
                    segment: 0,
                    offset: 0,
                    len: 0,
                },
            })
            .collect();
        let rejected_before = report.rejected.len();
        let good = verified(&mut chunk, roster, &mut report.rejected);
        let (kept, back): (Vec<_>, Vec<_>) = good
            .into_iter()
            .partition(|(r, _)| !set_aside.contains(&r.header.ordinal));
        // What stays keeps its feed position and `date_added`.
        let kept = incoming(&kept, true)?;
        if !kept.is_empty() {
            ingest::ingest(tx, &kept, ingest::LOCAL, now).await?;
        }
        // What comes back takes a new position past the head, and `date_added` values
        // past every one handed out before this rebuild, so that peers' cursors and
        // TAXII clients' `added_after` that passed its old ones still reach it.
        let back = incoming(&back, false)?;
        if !back.is_empty() {
            if !giving_back {
                giving_back = true;
                tx.execute(
                    "UPDATE feed_head SET last_date_added = GREATEST(last_date_added, $1)",
                    &[&last_date_added],
                )
                .await
                .map_err(q("moving the feed head"))?;
            }
            ingest::ingest(tx, &back, ingest::LOCAL, now).await?;
        }
        let rejected: HashMap<u64, &str> = report.rejected[rejected_before..]
            .iter()
            .map(|(o, why)| (*o, why.as_str()))
            .collect();
        for r in &rows {
            let Some(why) = rejected.get(&(r.get::<_, i64>(1) as u64)) else {
                continue;
            };
            tx.execute(
                "INSERT INTO envelopes_set_aside (id, ordinal, received_from, received_at,
                     date_added_base, reason, set_aside_at, body)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (id) DO NOTHING",
                &[
                    &r.get::<_, &[u8]>(0),
                    &r.get::<_, i64>(1),
                    &r.get::<_, &str>(2),
                    &r.get::<_, i64>(3),
                    &r.get::<_, i64>(4),
                    why,
                    &now,
                    &r.get::<_, &[u8]>(5),
                ],
            )
            .await
            .map_err(q("setting an envelope aside"))?;
        }
    }
    tx.batch_execute("CLOSE rebuild_cursor")
        .await
        .map_err(q("closing the evidence log"))?;
    // No `date_added` handed out before is handed out again later.
    tx.execute(
        "UPDATE feed_head SET last_date_added = GREATEST(last_date_added, $1)",
        &[&last_date_added],
    )
    .await
    .map_err(q("moving the feed head"))?;
    report.versions = tx
        .query_one("SELECT count(*) FROM versions", &[])
        .await
        .map_err(q("counting versions"))?
        .get::<_, i64>(0) as u64;
    for level in ALL_LEVELS {
        let r = tx
            .query_one(
                "SELECT l0, l1, l2, l3, count FROM digests WHERE level = $1",
                &[&ingest::level_code(level)],
            )
            .await
            .map_err(q("reading a digest"))?;
        let l = |i: usize| r.get::<_, i64>(i) as u64;
        report.digests.push((
            level,
            crate::store::digest::ViewDigest::from_parts([l(0), l(1), l(2), l(3)], l(4)),
        ));
    }
    Ok(report)
}

/// What to store of verified log records: kept ones with their feed position and
/// `date_added` base (`keep`), given-back ones with new ones.
fn incoming(
    records: &[(LogRecord, crate::envelope::Envelope)],
    keep: bool,
) -> Result<Vec<Incoming>, StoreError> {
    records
        .iter()
        .map(|(r, env)| {
            let mut incoming = Incoming::new(env, prepare::prepare(env)?);
            incoming.recorded = Some(Recorded {
                received_from: r.header.received_from.clone(),
                received_at: r.header.received_at,
                date_added_base: keep.then_some(r.header.date_added_base),
                ordinal: keep.then_some(r.header.ordinal),
            });
            Ok(incoming)
        })
        .collect()
}
