//! `synergia rebuild` on PostgreSQL: the view built again from the evidence log (the
//! `envelopes` table), every envelope verified again against the current roster.
//!
//! All of it is one transaction. Readers see the old view until it commits and the
//! new one after; ingests wait on the feed head, which it locks first. Envelopes
//! that still verify keep their feed positions and `date_added`, so peers' cursors
//! and TAXII clients' `added_after` stay true. Those that do not are moved to
//! `envelopes_set_aside` with why, out of the view and the feed but kept verbatim;
//! the next rebuild checks them again and puts back, at new feed positions, those that
//! verify once more. Peer state, TAXII statuses, envelopes waiting for a retry and
//! this member's sequence numbers are left as they are.

use super::PgError;
use super::ingest::{self, Incoming, Recorded};
use super::store::PgStore;
use crate::roster::Roster;
use crate::stix::timestamp::Timestamp;
use crate::stix::tlp::ALL_LEVELS;
use crate::store::log::{LogPos, LogRecord, RecordHeader};
use crate::store::rebuild::{RebuildReport, verified};
use crate::store::{StoreError, prepare};
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
        let tx = c
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::ReadCommitted)
            .start()
            .await
            .map_err(q("starting the rebuild"))?;
        tx.batch_execute("SET LOCAL synchronous_commit = on")
            .await
            .map_err(q("starting the rebuild"))?;
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
             SELECT id, ordinal, received_from, received_at, date_added_base, body, true
             FROM envelopes_set_aside;
         TRUNCATE envelopes, envelopes_set_aside, versions, deliveries, tombstones,
                  observables, retractions, retracted_envelopes, retracted_objects;
         UPDATE digests SET l0 = 0, l1 = 0, l2 = 0, l3 = 0, count = 0;
         -- Each envelope's versions take their `date_added` from its recorded base
         -- again, as on the first ingest; the head's value comes back at the end.
         UPDATE feed_head SET last_date_added = 0;
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
    loop {
        let rows = tx
            .query(&format!("FETCH {CHUNK} FROM rebuild_cursor"), &[])
            .await
            .map_err(q("reading the evidence log"))?;
        if rows.is_empty() {
            break;
        }
        report.envelopes += rows.len() as u64;
        // What was set aside and verifies again takes a new feed position.
        let mut set_aside = std::collections::HashSet::new();
        let mut chunk: Vec<LogRecord> = rows
            .iter()
            .map(|r| {
                let ordinal = r.get::<_, i64>(1) as u64;
                if r.get::<_, bool>(6) {
                    set_aside.insert(ordinal);
                }
                LogRecord {
                    header: RecordHeader {
                        ordinal,
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
                }
            })
            .collect();
        let rejected_before = report.rejected.len();
        let good = verified(&mut chunk, roster, &mut report.rejected);
        let mut batch = Vec::with_capacity(good.len());
        for (r, env) in &good {
            let mut incoming = Incoming::new(env, prepare::prepare(env)?);
            incoming.recorded = Some(Recorded {
                received_from: r.header.received_from.clone(),
                received_at: r.header.received_at,
                date_added_base: r.header.date_added_base,
                ordinal: (!set_aside.contains(&r.header.ordinal)).then_some(r.header.ordinal),
            });
            batch.push(incoming);
        }
        if !batch.is_empty() {
            ingest::ingest(tx, &batch, ingest::LOCAL, now).await?;
        }
        let rejected: std::collections::HashMap<u64, &str> = report.rejected[rejected_before..]
            .iter()
            .map(|(o, why)| (*o, why.as_str()))
            .collect();
        let aside: Vec<_> = rows
            .iter()
            .filter_map(|r| {
                let ordinal = r.get::<_, i64>(1) as u64;
                rejected.get(&ordinal).map(|why| (r, *why))
            })
            .collect();
        for (r, why) in aside {
            tx.execute(
                "INSERT INTO envelopes_set_aside (id, ordinal, received_from, received_at,
                     date_added_base, reason, set_aside_at, body)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &r.get::<_, &[u8]>(0),
                    &r.get::<_, i64>(1),
                    &r.get::<_, &str>(2),
                    &r.get::<_, i64>(3),
                    &r.get::<_, i64>(4),
                    &why,
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
    // No `date_added` handed out before is ever handed out again.
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
