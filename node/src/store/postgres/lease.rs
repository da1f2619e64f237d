//! Pull and push leases: which of a member's processes pulls each peer, and which
//! pushes to it (docs/scaling.md, "Several processes of one member").
//!
//! Several `serve` processes share one database, but each peer's feed must be pulled
//! by one of them at a time, and one push per peer carries what the member publishes
//! through any of them. A lease is a row in `pull_leases` or `push_leases` (peer,
//! holder, expiry)
//! taken or renewed by one atomic statement against the database's clock, so the
//! processes' own clocks do not matter and no advisory lock is needed (Citus has
//! none across nodes). A holder renews well before the expiry; a holder that dies
//! stops renewing, and another process takes the lease once it expires and resumes
//! from the persisted cursor. A process that stalls past its expiry and wakes learns
//! at its next renewal that it lost the lease; what it stored meanwhile is harmless
//! (ingest is idempotent).
//!
//! Each process also says it is alive in `serve_processes` every
//! [`PROCESS_BEAT`], gives its leases up when it stops pulling and removes its row
//! once its connections are drained: maintenance that must not run beside a serving
//! process (`synergia rebuild`) asks there. A process that crashed stays listed for
//! [`PROCESS_GONE`].

use super::PgError;
use super::store::PgStore;
use crate::store::StoreError;
use std::time::Duration;

fn q(what: &str) -> impl FnOnce(tokio_postgres::Error) -> StoreError + '_ {
    move |e| StoreError::Database(PgError::query(what, e))
}

/// How often a running process says so.
pub const PROCESS_BEAT: Duration = Duration::from_secs(2);
/// A process not seen for this long is taken as stopped: a beat, then a wait for a
/// pooled connection of up to 5 s on a busy process, with room to spare.
pub const PROCESS_GONE: Duration = Duration::from_secs(15);

/// What a lease lets its holder do with a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseKind {
    /// Pull the peer's feed (`pull_leases`).
    Pull,
    /// Push this member's envelopes to the peer (`push_leases`).
    Push,
}

impl LeaseKind {
    fn table(self) -> &'static str {
        match self {
            LeaseKind::Pull => "pull_leases",
            LeaseKind::Push => "push_leases",
        }
    }

    /// `pull` or `push`, for logs and errors.
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseKind::Pull => "pull",
            LeaseKind::Push => "push",
        }
    }
}

/// Who holds a peer's lease, and for how long still.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The holding process.
    pub holder: String,
    /// Time left before it expires (zero once expired).
    pub remaining: Duration,
}

/// A name for this process among a member's processes: host, process id and a
/// random part (a restarted process with the same pid is another holder).
pub fn holder_name() -> String {
    let mut r = [0u8; 4];
    let _ = getrandom::fill(&mut r);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    format!(
        "{host}:{}:{:02x}{:02x}{:02x}{:02x}",
        std::process::id(),
        r[0],
        r[1],
        r[2],
        r[3]
    )
}

impl PgStore {
    /// Takes or renews the `kind` lease on `peer` for `ttl`: true when `holder` holds
    /// it now (it was free, expired, or already `holder`'s), false when another
    /// process holds it.
    pub async fn take_lease(
        &self,
        kind: LeaseKind,
        peer: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let c = self.pool().get().await?;
        let ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let table = kind.table();
        let row = c
            .query_opt(
                &format!(
                    "INSERT INTO {table} (peer, holder, expires_at)
                     VALUES ($1, $2, now() + $3 * interval '1 millisecond')
                     ON CONFLICT (peer) DO UPDATE
                         SET holder = excluded.holder, expires_at = excluded.expires_at
                         WHERE {table}.holder = excluded.holder
                            OR {table}.expires_at < now()
                     RETURNING holder"
                ),
                &[&peer, &holder, &(ms as f64)],
            )
            .await
            .map_err(q(match kind {
                LeaseKind::Pull => "taking a pull lease",
                LeaseKind::Push => "taking a push lease",
            }))?;
        Ok(row.is_some())
    }

    /// Gives up every lease `holder` holds, pull and push (a process stopping), so
    /// another process need not wait for them to expire; how many there were.
    pub async fn release_leases(&self, holder: &str) -> Result<u64, StoreError> {
        let mut c = self.pool().get().await?;
        let t = c.transaction().await.map_err(q("releasing leases"))?;
        let mut n = 0;
        for kind in [LeaseKind::Pull, LeaseKind::Push] {
            n += t
                .execute(
                    &format!("DELETE FROM {} WHERE holder = $1", kind.table()),
                    &[&holder],
                )
                .await
                .map_err(q("releasing leases"))?;
        }
        t.commit().await.map_err(q("releasing leases"))?;
        Ok(n)
    }

    /// Records that process `holder`, listening on `listen`, is running now.
    pub async fn process_seen(&self, holder: &str, listen: &str) -> Result<(), StoreError> {
        let c = self.pool().get().await?;
        c.execute(
            "INSERT INTO serve_processes (holder, listen, seen_at) VALUES ($1, $2, now())
             ON CONFLICT (holder) DO UPDATE SET listen = excluded.listen, seen_at = now()",
            &[&holder, &listen],
        )
        .await
        .map_err(q("recording a running process"))?;
        Ok(())
    }

    /// Process `holder` has stopped serving: its row goes.
    pub async fn process_stopped(&self, holder: &str) -> Result<(), StoreError> {
        let c = self.pool().get().await?;
        c.execute("DELETE FROM serve_processes WHERE holder = $1", &[&holder])
            .await
            .map_err(q("recording a stopped process"))?;
        Ok(())
    }

    /// Who holds the `kind` lease on `peer`, if anyone does (expired leases
    /// included, with nothing remaining).
    pub async fn lease(&self, kind: LeaseKind, peer: &str) -> Result<Option<Lease>, StoreError> {
        let c = self.pool().get().await?;
        let row = c
            .query_opt(
                &format!(
                    "SELECT holder,
                            greatest(0, extract(epoch FROM expires_at - now()) * 1000)::bigint
                     FROM {} WHERE peer = $1",
                    kind.table()
                ),
                &[&peer],
            )
            .await
            .map_err(q("reading a lease"))?;
        Ok(row.map(|r| Lease {
            holder: r.get(0),
            remaining: Duration::from_millis(r.get::<_, i64>(1).max(0) as u64),
        }))
    }
}

/// The processes seen within [`PROCESS_GONE`]: (holder, listen address), by holder.
/// Through any client: a pooled connection, or a transaction that must see them.
pub async fn running_processes(
    c: &impl tokio_postgres::GenericClient,
) -> Result<Vec<(String, String)>, StoreError> {
    let ms = PROCESS_GONE.as_millis() as f64;
    Ok(c.query(
        "SELECT holder, listen FROM serve_processes
             WHERE seen_at > now() - $1 * interval '1 millisecond' ORDER BY holder",
        &[&ms],
    )
    .await
    .map_err(q("reading the running processes"))?
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect())
}
