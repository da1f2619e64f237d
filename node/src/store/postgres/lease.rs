//! Pull leases: which of a member's processes pulls each peer (docs/scaling.md,
//! "Several processes of one member").
//!
//! Several `serve` processes share one database, but each peer's feed must be pulled
//! by one of them at a time. A lease is a row in `pull_leases` (peer, holder, expiry)
//! taken or renewed by one atomic statement against the database's clock, so the
//! processes' own clocks do not matter and no advisory lock is needed (Citus has
//! none across nodes). A holder renews well before the expiry; a holder that dies
//! stops renewing, and another process takes the lease once it expires and resumes
//! from the persisted cursor. A process that stalls past its expiry and wakes learns
//! at its next renewal that it lost the lease; what it stored meanwhile is harmless
//! (ingest is idempotent).

use super::PgError;
use super::store::PgStore;
use crate::store::StoreError;
use std::time::Duration;

fn q(what: &str) -> impl FnOnce(tokio_postgres::Error) -> StoreError + '_ {
    move |e| StoreError::Database(PgError::query(what, e))
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
    /// Takes or renews the lease on pulling `peer` for `ttl`: true when `holder` holds
    /// it now (it was free, expired, or already `holder`'s), false when another
    /// process holds it.
    pub async fn take_lease(
        &self,
        peer: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let c = self.pool().get().await?;
        let ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let row = c
            .query_opt(
                "INSERT INTO pull_leases (peer, holder, expires_at)
                 VALUES ($1, $2, now() + $3 * interval '1 millisecond')
                 ON CONFLICT (peer) DO UPDATE
                     SET holder = excluded.holder, expires_at = excluded.expires_at
                     WHERE pull_leases.holder = excluded.holder
                        OR pull_leases.expires_at < now()
                 RETURNING holder",
                &[&peer, &holder, &(ms as f64)],
            )
            .await
            .map_err(q("taking a pull lease"))?;
        Ok(row.is_some())
    }

    /// Gives the lease up (at shutdown), so another process need not wait for it to
    /// expire.
    pub async fn release_lease(&self, peer: &str, holder: &str) -> Result<(), StoreError> {
        let c = self.pool().get().await?;
        c.execute(
            "DELETE FROM pull_leases WHERE peer = $1 AND holder = $2",
            &[&peer, &holder],
        )
        .await
        .map_err(q("releasing a pull lease"))?;
        Ok(())
    }

    /// Who holds the lease on `peer`, if anyone does (expired leases included, with
    /// nothing remaining).
    pub async fn lease(&self, peer: &str) -> Result<Option<Lease>, StoreError> {
        let c = self.pool().get().await?;
        let row = c
            .query_opt(
                "SELECT holder,
                        greatest(0, extract(epoch FROM expires_at - now()) * 1000)::bigint
                 FROM pull_leases WHERE peer = $1",
                &[&peer],
            )
            .await
            .map_err(q("reading a pull lease"))?;
        Ok(row.map(|r| Lease {
            holder: r.get(0),
            remaining: Duration::from_millis(r.get::<_, i64>(1).max(0) as u64),
        }))
    }
}
