//! A member's store in PostgreSQL: the same envelopes, view, digests and keyed values
//! as the embedded store, read and written by statements, so that nothing per object
//! lives in a node's memory and several processes can share it.

use super::ingest::{self, Incoming, level_code};
use super::settings::DbSettings;
use super::{PgError, PgPool};
use crate::stix::timestamp::Timestamp;
use crate::stix::tlp::TlpLevel;
use crate::store::digest::ViewDigest;
use crate::store::engine::Space;
use crate::store::view::SHARED_LEVELS;
use crate::store::{IngestOutcome, StoreError};
use uuid::Uuid;

/// The node-wide value that names this log (see `Store::epoch`).
const EPOCH_KEY: &str = "log-epoch";

/// A member's store in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    epoch: String,
}

/// Counts of what the store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Envelopes (bundles and retractions).
    pub envelopes: u64,
    /// Object versions, tombstones included.
    pub versions: u64,
    /// Distinct objects.
    pub objects: u64,
    /// Retractions (every member's).
    pub retractions: u64,
}

fn q(what: &str) -> impl FnOnce(tokio_postgres::Error) -> StoreError + '_ {
    move |e| StoreError::Database(PgError::query(what, e))
}

/// Starts a transaction that stores envelopes (an ingest, a rebuild): read committed
/// whatever the database's default, since every read comes after the feed head's row
/// lock, so it sees what committed before, and a stricter level would only fail the
/// second of two writers; and committed only once on the server's disk, whatever the
/// database's default, since a commit is what the node acknowledges.
pub(super) async fn storing_transaction<'a>(
    c: &'a mut deadpool_postgres::Object,
    what: &str,
) -> Result<deadpool_postgres::Transaction<'a>, StoreError> {
    let tx = c
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::ReadCommitted)
        .start()
        .await
        .map_err(q(what))?;
    tx.batch_execute("SET LOCAL synchronous_commit = on")
        .await
        .map_err(q(what))?;
    Ok(tx)
}

impl PgStore {
    /// Connects, brings the schema up to date and reads (or makes) the log's epoch.
    pub async fn open(settings: &DbSettings) -> Result<PgStore, StoreError> {
        let (pool, _) = PgPool::open(settings).await?;
        let c = pool.get().await?;
        let mut e = [0u8; 16];
        getrandom::fill(&mut e).map_err(StoreError::Randomness)?;
        // Several processes may start at once: the first epoch written stays.
        c.execute(
            "INSERT INTO node_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            &[&EPOCH_KEY, &&e[..]],
        )
        .await
        .map_err(q("making the log epoch"))?;
        let epoch: Vec<u8> = c
            .query_one("SELECT value FROM node_meta WHERE key = $1", &[&EPOCH_KEY])
            .await
            .map_err(q("reading the log epoch"))?
            .get(0);
        drop(c);
        Ok(PgStore {
            pool,
            epoch: epoch.iter().map(|b| format!("{b:02x}")).collect(),
        })
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The log's epoch (hex).
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// Stores verified envelopes in one transaction; returns once it committed.
    /// Duplicates change nothing.
    pub async fn ingest(
        &self,
        batch: &[Incoming],
        received_from: &str,
    ) -> Result<Vec<IngestOutcome>, StoreError> {
        let mut c = self.pool.get().await?;
        let tx = storing_transaction(&mut c, "starting an ingest").await?;
        let out = ingest::ingest(&tx, batch, received_from, Timestamp::now().as_micros()).await?;
        tx.commit().await.map_err(q("committing an ingest"))?;
        Ok(out)
    }

    /// Which of `ids` are held.
    pub async fn held(&self, ids: &[[u8; 32]]) -> Result<Vec<bool>, StoreError> {
        let c = self.pool.get().await?;
        let refs: Vec<&[u8]> = ids.iter().map(|i| &i[..]).collect();
        let found: std::collections::HashSet<Vec<u8>> = c
            .query("SELECT id FROM envelopes WHERE id = ANY($1)", &[&refs])
            .await
            .map_err(q("finding held envelopes"))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        Ok(ids.iter().map(|i| found.contains(&i[..])).collect())
    }

    /// The next feed position (one past the last envelope's ordinal).
    pub async fn head(&self) -> Result<u64, StoreError> {
        let c = self.pool.get().await?;
        let n: i64 = c
            .query_one("SELECT next_ordinal FROM feed_head", &[])
            .await
            .map_err(q("reading the feed head"))?
            .get(0);
        Ok(n as u64)
    }

    async fn digest_row(&self, level: i16) -> Result<ViewDigest, StoreError> {
        let c = self.pool.get().await?;
        let r = c
            .query_one(
                "SELECT l0, l1, l2, l3, count FROM digests WHERE level = $1",
                &[&level],
            )
            .await
            .map_err(q("reading a digest"))?;
        let l = |i: usize| r.get::<_, i64>(i) as u64;
        Ok(ViewDigest::from_parts([l(0), l(1), l(2), l(3)], l(4)))
    }

    /// The digest of the latest versions whose level is `level` (as the embedded
    /// view's `digest`).
    pub async fn digest(&self, level: TlpLevel) -> Result<ViewDigest, StoreError> {
        self.digest_row(level_code(level)).await
    }

    /// The digest peers compare at a shared level (clear or green); `None` otherwise.
    pub async fn shared_digest(&self, level: TlpLevel) -> Result<Option<ViewDigest>, StoreError> {
        match SHARED_LEVELS.iter().position(|l| *l == level) {
            Some(i) => Ok(Some(self.digest_row(10 + i as i16).await?)),
            None => Ok(None),
        }
    }

    /// What the store holds: the counts every ingest keeps on the feed head's row
    /// (one row read, whatever the store holds).
    pub async fn counts(&self) -> Result<Counts, StoreError> {
        let c = self.pool.get().await?;
        let r = c
            .query_one(
                "SELECT envelopes, versions, objects, retractions FROM feed_head",
                &[],
            )
            .await
            .map_err(q("reading the counts"))?;
        Ok(Counts {
            envelopes: r.get::<_, i64>(0) as u64,
            versions: r.get::<_, i64>(1) as u64,
            objects: r.get::<_, i64>(2) as u64,
            retractions: r.get::<_, i64>(3) as u64,
        })
    }

    /// The latest version of an object that a reader at `level` sees: its `modified`,
    /// content hash and `date_added`.
    pub async fn latest(
        &self,
        type_name: &str,
        uuid: u128,
        level: TlpLevel,
    ) -> Result<Option<(i64, [u8; 16], i64)>, StoreError> {
        let c = self.pool.get().await?;
        let bit: i16 = 1 << level_code(level);
        let r = c
            .query_opt(
                "SELECT modified, hash, date_added FROM versions
                 WHERE uuid = $1 AND type = $2 AND latest & $3 <> 0",
                &[&Uuid::from_u128(uuid), &type_name, &bit],
            )
            .await
            .map_err(q("reading a latest version"))?;
        Ok(r.map(|r| {
            let mut h = [0u8; 16];
            h.copy_from_slice(r.get::<_, &[u8]>(1));
            (r.get(0), h, r.get(2))
        }))
    }

    /// The versions naming observable `key` (normalised, `stix::observable`) that a
    /// reader at `level` sees as their object's latest: (type, uuid, canonical body).
    /// The index part of a lookup.
    pub async fn latest_naming(
        &self,
        key: &str,
        level: TlpLevel,
    ) -> Result<Vec<(String, u128, Vec<u8>)>, StoreError> {
        let c = self.pool.get().await?;
        let bit: i16 = 1 << level_code(level);
        let rows = c
            .query(
                "SELECT v.type, v.uuid, v.body FROM observables o
                 JOIN versions v ON v.uuid = o.uuid AND v.type = o.type
                                AND v.modified = o.modified AND v.hash = o.hash
                 WHERE o.key = $1 AND v.latest & $2 <> 0 AND v.tlp <= $3
                 ORDER BY v.date_added",
                &[&key, &bit, &level_code(level)],
            )
            .await
            .map_err(q("looking up an observable"))?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get::<_, Uuid>(1).as_u128(), r.get(2)))
            .collect())
    }

    /// Bytes the database takes on disk.
    pub async fn disk_bytes(&self) -> Result<u64, StoreError> {
        let c = self.pool.get().await?;
        let n: i64 = c
            .query_one("SELECT pg_database_size(current_database())", &[])
            .await
            .map_err(q("measuring the database"))?
            .get(0);
        Ok(n as u64)
    }

    /// Every object version's `date_added`, in that order (for checks).
    pub async fn dates_added(&self) -> Result<Vec<i64>, StoreError> {
        let c = self.pool.get().await?;
        Ok(
            c.query("SELECT date_added FROM versions ORDER BY date_added", &[])
                .await
                .map_err(q("reading date_added"))?
                .iter()
                .map(|r| r.get(0))
                .collect(),
        )
    }

    /// The greatest `seq` held of each origin.
    pub async fn origin_seqs(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let c = self.pool.get().await?;
        Ok(c.query(
            "SELECT origin, max_seq FROM origin_seqs ORDER BY origin",
            &[],
        )
        .await
        .map_err(q("reading sequence numbers"))?
        .iter()
        .map(|r| (r.get(0), r.get::<_, i64>(1) as u64))
        .collect())
    }

    /// The value at `key` in `space`.
    pub async fn get_value(&self, space: Space, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let c = self.pool.get().await?;
        Ok(c.query_opt(
            "SELECT value FROM kv WHERE space = $1 AND key = $2",
            &[&space.name(), &key.as_bytes()],
        )
        .await
        .map_err(q("reading a value"))?
        .map(|r| r.get(0)))
    }

    /// Sets `key` in `space`; durable once this returns (the transaction committed).
    pub async fn put_value(&self, space: Space, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let c = self.pool.get().await?;
        c.execute(
            "INSERT INTO kv (space, key, value) VALUES ($1, $2, $3)
             ON CONFLICT (key, space) DO UPDATE SET value = excluded.value",
            &[&space.name(), &key.as_bytes(), &value],
        )
        .await
        .map_err(q("writing a value"))?;
        Ok(())
    }

    /// Changes the value of `key` in `space` with `f`, in one transaction holding its
    /// row: processes changing one value at once do so one after another, each on
    /// what the other wrote. `f` gets the stored value (`None` when there is none) and
    /// returns the new one, and what this returns. Not `durable`: the commit does not
    /// wait for the server's disk (a counter or a time, which a crash of the database
    /// may take back, not a cursor).
    pub async fn update_value<T>(
        &self,
        space: Space,
        key: &str,
        durable: bool,
        f: impl FnOnce(Option<&[u8]>) -> (Vec<u8>, T),
    ) -> Result<T, StoreError> {
        let mut c = self.pool.get().await?;
        let tx = c
            .transaction()
            .await
            .map_err(q("starting a value update"))?;
        tx.batch_execute(if durable {
            "SET LOCAL synchronous_commit = on"
        } else {
            "SET LOCAL synchronous_commit = off"
        })
        .await
        .map_err(q("starting a value update"))?;
        // A row to lock even when there is none yet; a concurrent first writer waits
        // on the key until this commits, then finds the row.
        let absent = tx
            .query_opt(
                "INSERT INTO kv (space, key, value) VALUES ($1, $2, '\\x')
                 ON CONFLICT (key, space) DO NOTHING RETURNING 1",
                &[&space.name(), &key.as_bytes()],
            )
            .await
            .map_err(q("updating a value"))?
            .is_some();
        let stored: Vec<u8> = tx
            .query_one(
                "SELECT value FROM kv WHERE space = $1 AND key = $2 FOR UPDATE",
                &[&space.name(), &key.as_bytes()],
            )
            .await
            .map_err(q("updating a value"))?
            .get(0);
        let (value, out) = f((!absent).then_some(&stored[..]));
        tx.execute(
            "UPDATE kv SET value = $3 WHERE space = $1 AND key = $2",
            &[&space.name(), &key.as_bytes(), &value],
        )
        .await
        .map_err(q("updating a value"))?;
        tx.commit().await.map_err(q("committing a value update"))?;
        Ok(out)
    }

    /// Sets `key` in `space` unless it is set already (of several processes starting
    /// at once, the first value written stays).
    pub async fn put_value_once(
        &self,
        space: Space,
        key: &str,
        value: &[u8],
    ) -> Result<(), StoreError> {
        let c = self.pool.get().await?;
        c.execute(
            "INSERT INTO kv (space, key, value) VALUES ($1, $2, $3)
             ON CONFLICT (key, space) DO NOTHING",
            &[&space.name(), &key.as_bytes(), &value],
        )
        .await
        .map_err(q("writing a value"))?;
        Ok(())
    }

    /// Removes `key` from `space`.
    pub async fn delete_value(&self, space: Space, key: &str) -> Result<(), StoreError> {
        let c = self.pool.get().await?;
        c.execute(
            "DELETE FROM kv WHERE space = $1 AND key = $2",
            &[&space.name(), &key.as_bytes()],
        )
        .await
        .map_err(q("removing a value"))?;
        Ok(())
    }

    /// Every (key, value) of `space` whose key starts with `prefix`, in key order.
    pub async fn values_with_prefix(
        &self,
        space: Space,
        prefix: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let c = self.pool.get().await?;
        let rows = c
            .query(
                "SELECT key, value FROM kv
                 WHERE space = $1 AND substring(key FROM 1 FOR length($2::bytea)) = $2
                 ORDER BY key",
                &[&space.name(), &prefix.as_bytes()],
            )
            .await
            .map_err(q("reading values"))?;
        rows.iter()
            .map(|r| {
                let k: Vec<u8> = r.get(0);
                let k = String::from_utf8(k).map_err(|_| {
                    StoreError::Corrupt(format!("a {} key is not UTF-8", space.name()))
                })?;
                Ok((k, r.get(1)))
            })
            .collect()
    }
}

/// The right to sign this member's next sequence numbers, held by one publish of one
/// process at a time: the lock on the `publish-turn` row, in a transaction of its own
/// connection, so that the envelopes it stores commit (on other connections) while it
/// is held. Ended by [`PublishTurn::end`]; when dropped without it (a failed publish,
/// a panic) its connection is closed, and the server ends the transaction and frees
/// the row; when the process is killed, the server sees the connection close.
pub struct PublishTurn {
    conn: Option<deadpool_postgres::Object>,
    /// The first sequence number this turn signs with.
    pub next_seq: u64,
}

impl std::fmt::Debug for PublishTurn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishTurn")
            .field("next_seq", &self.next_seq)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Waits for the turn to sign as `member`, and reads its next sequence number:
    /// one past the greatest held, whichever process stored it.
    pub async fn publish_turn(&self, member: &str) -> Result<PublishTurn, StoreError> {
        let conn = self.pool.get().await?;
        let mut turn = PublishTurn {
            conn: Some(conn),
            next_seq: 1,
        };
        let Some(c) = turn.conn.as_ref() else {
            return Err(StoreError::Corrupt(
                "publish turn without a connection".into(),
            ));
        };
        // The row exists from the first migration; made again if someone removed it,
        // since a lock on no row would serialise nothing.
        c.execute(
            "INSERT INTO node_meta (key, value) VALUES ('publish-turn', '') ON CONFLICT (key) DO NOTHING",
            &[],
        )
        .await
        .map_err(q("making the publish turn"))?;
        // A holder that stops answering (frozen, cut off) without its connection
        // closing gives the turn up after a minute: the publish touches its turn at
        // every batch it stores (`PublishTurn::touch`).
        c.batch_execute(
            "BEGIN ISOLATION LEVEL READ COMMITTED;
             SET LOCAL idle_in_transaction_session_timeout = '60s'",
        )
        .await
        .map_err(q("starting the publish turn"))?;
        c.query_one(
            "SELECT value FROM node_meta WHERE key = 'publish-turn' FOR UPDATE",
            &[],
        )
        .await
        .map_err(q("waiting for the publish turn"))?;
        let max: Option<i64> = c
            .query_opt(
                "SELECT max_seq FROM origin_seqs WHERE origin = $1",
                &[&member],
            )
            .await
            .map_err(q("reading this member's last sequence number"))?
            .map(|r| r.get(0));
        turn.next_seq = max.map_or(1, |m| m as u64 + 1);
        Ok(turn)
    }
}

impl PublishTurn {
    /// Shows the turn is still held and its holder alive (before each batch a
    /// publish stores): an error when the database ended it.
    pub async fn touch(&self) -> Result<(), StoreError> {
        match &self.conn {
            Some(c) => c
                .batch_execute("SELECT 1")
                .await
                .map_err(q("keeping the publish turn")),
            None => Err(StoreError::Corrupt(
                "the publish turn was given back".into(),
            )),
        }
    }

    /// Gives the turn back.
    pub async fn end(mut self) -> Result<(), StoreError> {
        let Some(c) = self.conn.take() else {
            return Ok(());
        };
        if let Err(e) = c.batch_execute("COMMIT").await {
            // Not back into the pool in an unknown state.
            drop(deadpool_postgres::Object::take(c));
            return Err(StoreError::Database(PgError::query(
                "giving the publish turn back",
                e,
            )));
        }
        Ok(())
    }
}

impl Drop for PublishTurn {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            // Not back into the pool with its transaction open: closed.
            drop(deadpool_postgres::Object::take(c));
        }
    }
}
