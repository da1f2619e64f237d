//! The PostgreSQL backend's connection and schema, against a real, throwaway
//! PostgreSQL server (`common::pg`): migrations applied once and in one transaction, a
//! newer schema refused, passwords kept out of URLs, TLS verified against the CA.

mod common;

use common::pg::{PASSWORD, PgCluster, ServerTls};
use synergia::keys::tls::{self as ktls, CertRole, Validity};
use synergia::store::postgres::settings::{DbConfig, DbSettings, DbTls};
use synergia::store::postgres::{PgError, PgPool, schema};

fn settings(url: &str, password: Option<&str>, ca: &std::path::Path) -> DbSettings {
    let cfg = DbConfig {
        url: Some(url.to_string()),
        password_file: None,
        ca: ca.to_path_buf(),
        pool_size: 4,
    };
    let pw = password.map(str::to_string);
    DbSettings::resolve_with(&cfg, |k| match k {
        synergia::store::postgres::settings::PASSWORD_ENV => pw.clone(),
        _ => None,
    })
    .unwrap()
}

fn plain(url: &str) -> DbSettings {
    settings(
        &format!("{url}?sslmode=disable"),
        Some(PASSWORD),
        std::path::Path::new("/nonexistent"),
    )
}

#[test]
fn migrations_apply_once_even_when_processes_start_together() {
    let pg = PgCluster::shared();
    let url = pg.new_database();
    let s = plain(&url);
    common::rt().block_on(async {
        // Four processes' worth of pools starting at the same moment.
        let starts: Vec<_> = (0..4)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move { PgPool::open(&s).await.map(|(_, m)| m) })
            })
            .collect();
        let mut froms = Vec::new();
        for h in starts {
            let m = h.await.unwrap().expect("migrate");
            assert_eq!(m.to, schema::latest());
            froms.push(m.from);
        }
        froms.sort();
        assert_eq!(
            froms,
            vec![0, schema::latest(), schema::latest(), schema::latest()],
            "exactly one start applied the migrations"
        );
        let (_, again) = PgPool::open(&s).await.unwrap();
        assert_eq!((again.from, again.to), (schema::latest(), schema::latest()));
    });
    let db = url.rsplit('/').next().unwrap();
    assert_eq!(
        pg.psql(db, "SELECT count(*) FROM synergia_schema"),
        schema::MIGRATIONS.len().to_string()
    );
    assert_eq!(pg.psql(db, "SELECT next_ordinal FROM feed_head"), "0");
    assert_eq!(pg.psql(db, "SELECT count(*) FROM digests"), "7");
}

#[test]
fn a_schema_newer_than_this_build_is_refused_and_left_alone() {
    let pg = PgCluster::shared();
    let url = pg.new_database();
    let db = url.rsplit('/').next().unwrap().to_string();
    let s = plain(&url);
    common::rt().block_on(async { PgPool::open(&s).await.unwrap() });
    let newer = schema::latest() + 1;
    pg.psql(
        &db,
        &format!(
            "INSERT INTO synergia_schema (version, description) VALUES ({newer}, 'from a newer build')"
        ),
    );
    let e = common::rt()
        .block_on(async { PgPool::open(&s).await })
        .unwrap_err();
    assert!(
        matches!(e, PgError::SchemaTooNew { found, known } if found == newer && known == schema::latest()),
        "{e}"
    );
    assert!(e.to_string().contains("newer than this build knows"), "{e}");
    assert_eq!(
        pg.psql(&db, "SELECT max(version) FROM synergia_schema"),
        newer.to_string(),
        "nothing was changed"
    );
}

#[test]
fn a_failed_migration_leaves_no_trace() {
    // A database where a table of schema 1 already exists (made by hand, say): the
    // migration fails, and neither its other tables nor its version row are left.
    let pg = PgCluster::shared();
    let url = pg.new_database();
    let db = url.rsplit('/').next().unwrap().to_string();
    pg.psql(&db, "CREATE TABLE pull_leases (x int)");
    let e = common::rt()
        .block_on(async { PgPool::open(&plain(&url)).await })
        .unwrap_err();
    assert!(e.to_string().contains("applying schema migration 1"), "{e}");
    assert_eq!(pg.psql(&db, "SELECT count(*) FROM synergia_schema"), "0");
    assert_eq!(
        pg.psql(
            &db,
            "SELECT count(*) FROM pg_tables WHERE tablename IN ('envelopes', 'versions', 'feed_head')"
        ),
        "0"
    );
}

#[test]
fn a_wrong_password_or_no_server_is_reported_as_unavailable() {
    let pg = PgCluster::shared();
    let url = pg.new_database();
    let wrong = settings(
        &format!("{url}?sslmode=disable"),
        Some("not-the-password"),
        std::path::Path::new("/nonexistent"),
    );
    let e = common::rt()
        .block_on(async { PgPool::open(&wrong).await })
        .unwrap_err();
    assert!(e.is_unavailable(), "{e}");
    assert!(
        e.to_string().contains("password authentication failed"),
        "{e}"
    );
    assert!(!e.to_string().contains("not-the-password"), "{e}");

    let closed = common::free_ports(1)[0];
    let nobody = plain(&format!("postgresql://synergia@127.0.0.1:{closed}/x"));
    let t = std::time::Instant::now();
    let e = common::rt()
        .block_on(async { PgPool::open(&nobody).await })
        .unwrap_err();
    assert!(e.is_unavailable(), "{e}");
    assert!(
        t.elapsed() < std::time::Duration::from_secs(15),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn tls_to_the_database_is_verified_against_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let v = Validity::years_from_now(1);
    let ca = ktls::new_ca("database CA", v).unwrap();
    let server = ktls::issue(&ca, CertRole::Node, "db", &[], v).unwrap();
    let pg = PgCluster::start(Some(&ServerTls {
        cert_pem: server.cert_pem,
        key_pem: server.key_pem,
    }));
    let url = pg.new_database();
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, &ca.cert_pem).unwrap();
    let other = ktls::new_ca("someone else's CA", v).unwrap();
    let other_path = dir.path().join("other.pem");
    std::fs::write(&other_path, &other.cert_pem).unwrap();

    // TLS is the default: verified against the right CA, the node connects.
    let good = settings(&url, Some(PASSWORD), &ca_path);
    assert_eq!(good.tls, DbTls::Verified);
    let (pool, m) = common::rt()
        .block_on(async { PgPool::open(&good).await })
        .unwrap();
    assert_eq!(m.to, schema::latest());
    let ssl: bool = common::rt().block_on(async {
        let c = pool.get().await.unwrap();
        c.query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0)
    });
    assert!(ssl, "the connection is encrypted");

    // A server whose certificate another CA signed (a network attacker's) is refused.
    let bad = settings(&url, Some(PASSWORD), &other_path);
    let e = common::rt()
        .block_on(async { PgPool::open(&bad).await })
        .unwrap_err();
    assert!(e.is_unavailable(), "{e}");
    assert!(
        e.to_string().to_lowercase().contains("certificate"),
        "the error names the certificate: {e}"
    );

    // The server takes TLS only: plain text is refused by it.
    let e = common::rt()
        .block_on(async { PgPool::open(&plain(&url)).await })
        .unwrap_err();
    assert!(e.is_unavailable(), "{e}");
}
