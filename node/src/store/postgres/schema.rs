//! Versioned schema migrations.
//!
//! Each migration is one SQL file under `sql/`, applied once, in order, inside the
//! transaction that records it in `synergia_schema`: a migration is applied whole or
//! not at all. Every process of a member runs [`migrate`] at start; the table lock
//! taken first makes the others wait and then find nothing left to do. A database
//! whose schema is newer than this build knows is refused, changing nothing: an older
//! build must not write to tables whose meaning changed under it.

use super::PgError;

/// The migrations this build knows, oldest first: (version, description, SQL).
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "evidence log, merged view, digests, feed head, peer state, leases",
        include_str!("sql/0001_initial.sql"),
    ),
    (
        2,
        "envelopes set aside by a rebuild, serve processes",
        include_str!("sql/0002_maintenance.sql"),
    ),
    (3, "push leases", include_str!("sql/0003_push_leases.sql")),
    (
        4,
        "counts of what the store holds",
        include_str!("sql/0004_counts.sql"),
    ),
];

/// The newest schema version this build knows.
pub fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

/// What [`migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    /// The version the database had.
    pub from: i32,
    /// The version it has now.
    pub to: i32,
}

/// Brings the database's schema to [`latest`], in one transaction.
pub async fn migrate(client: &mut tokio_postgres::Client) -> Result<Migrated, PgError> {
    // Two processes starting at once may both create the table: `IF NOT EXISTS` checks
    // before it inserts into the catalogue, so the loser fails on the catalogue's
    // unique index (`unique_violation`) or on the table's row type (`duplicate_object`,
    // "type already exists"), and a second attempt finds the table.
    let mut attempt = 0;
    loop {
        attempt += 1;
        match client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS synergia_schema (
                    version     integer PRIMARY KEY,
                    description text NOT NULL,
                    applied_at  timestamptz NOT NULL DEFAULT now()
                )",
            )
            .await
        {
            Ok(()) => break,
            Err(e) if attempt < 3 && lost_a_concurrent_create(&e) => continue,
            Err(e) => return Err(PgError::query("creating synergia_schema", e)),
        }
    }
    let tx = client
        .transaction()
        .await
        .map_err(|e| PgError::query("starting the migration", e))?;
    // Writers wait; readers of the version (none but this) are not blocked.
    tx.batch_execute("LOCK TABLE synergia_schema IN SHARE ROW EXCLUSIVE MODE")
        .await
        .map_err(|e| PgError::query("locking synergia_schema", e))?;
    let from: i32 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM synergia_schema", &[])
        .await
        .map_err(|e| PgError::query("reading the schema version", e))?
        .get(0);
    if from > latest() {
        return Err(PgError::SchemaTooNew {
            found: from,
            known: latest(),
        });
    }
    for (version, description, sql) in MIGRATIONS.iter().filter(|m| m.0 > from) {
        tx.batch_execute(sql)
            .await
            .map_err(|e| PgError::query(&format!("applying schema migration {version}"), e))?;
        tx.execute(
            "INSERT INTO synergia_schema (version, description) VALUES ($1, $2)",
            &[version, description],
        )
        .await
        .map_err(|e| PgError::query("recording the schema version", e))?;
    }
    tx.commit()
        .await
        .map_err(|e| PgError::query("committing the migration", e))?;
    let to = from.max(latest());
    if to != from {
        tracing::info!(from, to, "database schema migrated");
    }
    Ok(Migrated { from, to })
}

/// Whether `e` is how PostgreSQL reports losing a race to create the same table.
fn lost_a_concurrent_create(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    [
        SqlState::UNIQUE_VIOLATION,
        SqlState::DUPLICATE_OBJECT,
        SqlState::DUPLICATE_TABLE,
    ]
    .iter()
    .any(|code| e.code() == Some(code))
}
