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
    // The race to create the schema table is lost in more than one way (the catalogue's
    // unique index, the table's row type): several rounds make each likely to show.
    for round in 0..5 {
        let url = pg.new_database();
        let s = plain(&url);
        common::rt().block_on(async {
            // Six processes' worth of pools starting at the same moment.
            let starts: Vec<_> = (0..6)
                .map(|_| {
                    let s = s.clone();
                    tokio::spawn(async move { PgPool::open(&s).await.map(|(_, m)| m) })
                })
                .collect();
            let mut froms = Vec::new();
            for h in starts {
                let m = h
                    .await
                    .unwrap()
                    .unwrap_or_else(|e| panic!("round {round}: migrate: {e:?}"));
                assert_eq!(m.to, schema::latest());
                froms.push(m.from);
            }
            froms.sort();
            let mut expected = vec![schema::latest(); 6];
            expected[0] = 0;
            assert_eq!(
                froms, expected,
                "round {round}: exactly one start applied the migrations"
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

// ----- the store on PostgreSQL behaves as the embedded view -----

use proptest::prelude::*;
use synergia::envelope::Reason;
use synergia::stix::tlp::{ALL_LEVELS, TlpLevel};
use synergia::store::IngestOutcome;
use synergia::store::digest::ViewDigest;
use synergia::store::engine::Space;
use synergia::store::log::LogPos;
use synergia::store::postgres::{Counts, Incoming, PgStore};
use synergia::store::prepare::Prepared;
use synergia::store::record::{EnvelopeRecord, ObjectEntry, RetractedObject, RetractionEntry};
use synergia::store::view::{SHARED_LEVELS, View};

/// A compact object version: (id, modified, content, tlp).
type Obj = (u8, u8, u8, u8);

fn type_of(id: u8) -> &'static str {
    if id.is_multiple_of(2) {
        "indicator"
    } else {
        "malware"
    }
}

fn entry(&(id, modified, content, tlp): &Obj) -> ObjectEntry {
    let mut hash = [0u8; 16];
    hash[0] = id;
    hash[1] = modified;
    hash[2] = content;
    ObjectEntry {
        type_name: type_of(id).into(),
        uuid: u128::from(id),
        modified: i64::from(modified) * 1000,
        hash,
        body_off: 0,
        body_len: 0,
        tlp: ALL_LEVELS[(tlp % 5) as usize],
        revoked: false,
        spec_21: true,
        obs_keys: vec![
            format!("domain-name:d{}.example", id % 7),
            format!("ipv4-addr:198.51.100.{id}"),
        ],
    }
}

fn record(env: u8, objs: &[Obj]) -> EnvelopeRecord {
    let mut id = [0u8; 32];
    id[0] = env;
    EnvelopeRecord {
        ordinal: 0,
        id,
        origin: format!("origin{}", env % 3),
        key_id: "k".into(),
        seq: u64::from(env),
        signed_at: i64::from(env.wrapping_mul(37) % 11),
        tlp: objs
            .iter()
            .map(|o| ALL_LEVELS[(o.3 % 5) as usize])
            .max()
            .unwrap_or(TlpLevel::Clear),
        recipients: vec![],
        received_from: "peer".into(),
        received_at: 0,
        date_added_base: 0,
        pos: LogPos {
            segment: 0,
            offset: 0,
            len: 0,
        },
        objects: objs.iter().map(entry).collect(),
        retraction: None,
    }
}

fn retraction(n: u8, origin: u8, envelopes: &[u8], objects: &[(u8, Option<u8>)]) -> EnvelopeRecord {
    let mut r = record(0, &[]);
    r.id = [0u8; 32];
    r.id[0] = n;
    r.id[1] = 0xee;
    r.origin = format!("origin{origin}");
    r.seq = 1000 + u64::from(n);
    r.signed_at = 50 + i64::from(n);
    r.retraction = Some(RetractionEntry {
        reason: Reason::FalsePositive,
        note: String::new(),
        envelopes: envelopes
            .iter()
            .map(|&e| {
                let mut t = [0u8; 32];
                t[0] = e;
                t
            })
            .collect(),
        objects: objects
            .iter()
            .map(|&(o, m)| RetractedObject {
                type_name: type_of(o).into(),
                uuid: u128::from(o),
                modified: m.map(|m| i64::from(m) * 1000),
            })
            .collect(),
    });
    r
}

fn incoming(r: &EnvelopeRecord) -> Incoming {
    Incoming {
        id: r.id,
        origin: r.origin.clone(),
        key_id: r.key_id.clone(),
        seq: r.seq,
        signed_at: r.signed_at,
        tlp: r.tlp,
        recipients: r.recipients.clone(),
        prepared: Prepared {
            bytes: bytes::Bytes::from(format!("envelope {:?}", r.id)),
            objects: r.objects.clone(),
            retraction: r.retraction.clone(),
        },
        recorded: None,
    }
}

/// What both backends must agree on: the five level digests, the two shared ones, and
/// per object the latest (modified, hash) a reader at each level sees.
type Summary = (
    Vec<ViewDigest>,
    Vec<(String, u128, Vec<Option<(i64, [u8; 16])>>)>,
);

fn view_summary(v: &View, objects: &[(String, u128)]) -> Summary {
    let mut digests: Vec<ViewDigest> = ALL_LEVELS.iter().map(|l| v.digest(*l)).collect();
    digests.extend(SHARED_LEVELS.iter().filter_map(|l| v.shared_digest(*l)));
    let latest = objects
        .iter()
        .map(|(t, u)| {
            let hs = v.versions_of(t, *u);
            let per_level = ALL_LEVELS
                .iter()
                .map(|l| {
                    hs.first()
                        .and_then(|&h| v.latest_visible(h, *l))
                        .and_then(|x| v.version(x))
                        .map(|x| (x.modified, x.hash))
                })
                .collect();
            (t.clone(), *u, per_level)
        })
        .collect();
    (digests, latest)
}

async fn pg_summary(s: &PgStore, objects: &[(String, u128)]) -> Summary {
    let mut digests = Vec::new();
    for l in ALL_LEVELS {
        digests.push(s.digest(l).await.unwrap());
    }
    for l in SHARED_LEVELS {
        digests.push(s.shared_digest(l).await.unwrap().unwrap());
    }
    let mut latest = Vec::new();
    for (t, u) in objects {
        let mut per_level = Vec::new();
        for l in ALL_LEVELS {
            per_level.push(s.latest(t, *u, l).await.unwrap().map(|(m, h, _)| (m, h)));
        }
        latest.push((t.clone(), *u, per_level));
    }
    (digests, latest)
}

/// What the store holds, counted in the tables themselves.
async fn counted(s: &PgStore) -> Counts {
    let c = s.pool().get().await.unwrap();
    let r = c
        .query_one(
            "SELECT (SELECT count(*) FROM envelopes), (SELECT count(*) FROM versions),
                    (SELECT count(*) FROM (SELECT DISTINCT uuid, type FROM versions) o),
                    (SELECT count(*) FROM retractions)",
            &[],
        )
        .await
        .unwrap();
    Counts {
        envelopes: r.get::<_, i64>(0) as u64,
        versions: r.get::<_, i64>(1) as u64,
        objects: r.get::<_, i64>(2) as u64,
        retractions: r.get::<_, i64>(3) as u64,
    }
}

/// Empties a database's store tables (as a fresh migration leaves them).
async fn wipe(s: &PgStore) {
    let c = s.pool().get().await.unwrap();
    c.batch_execute(
        "TRUNCATE envelopes, origin_seqs, versions, deliveries, tombstones, observables,
                  retractions, retracted_envelopes, retracted_objects, kv;
         UPDATE feed_head SET next_ordinal = 0, last_date_added = 0, envelopes = 0,
                              versions = 0, objects = 0, retractions = 0;
         UPDATE digests SET l0 = 0, l1 = 0, l2 = 0, l3 = 0, count = 0;",
    )
    .await
    .unwrap();
}

fn pg_store() -> (tokio::runtime::Runtime, PgStore) {
    let pg = PgCluster::shared();
    let url = pg.new_database();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let s = rt.block_on(PgStore::open(&plain(&url))).unwrap();
    (rt, s)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// For any set of envelopes and retractions, in any order and any batching, the
    /// store on PostgreSQL ends with the digests and latest versions the embedded
    /// view has.
    #[test]
    fn postgres_chooses_what_the_embedded_view_chooses(
        envs in proptest::collection::vec(
            proptest::collection::vec((0u8..6, 0u8..4, 0u8..2, 0u8..5), 1..5), 1..7),
        retractions in proptest::collection::vec(
            (0u8..3, proptest::collection::vec(0u8..8, 0..3),
             proptest::collection::vec((0u8..6, proptest::option::of(0u8..4)), 0..3)),
            0..3),
        rotate in any::<proptest::sample::Index>(),
        batch in 1usize..4,
    ) {
        thread_local! {
            static PG: (tokio::runtime::Runtime, PgStore) = pg_store();
        }
        let mut recs: Vec<EnvelopeRecord> =
            envs.iter().enumerate().map(|(i, o)| record(i as u8, o)).collect();
        for (n, (origin, es, os)) in retractions.iter().enumerate() {
            recs.push(retraction(n as u8, *origin, es, os));
        }
        let mut objects: Vec<(String, u128)> = (0u8..6)
            .map(|id| (type_of(id).to_string(), u128::from(id)))
            .collect();
        objects.sort();
        let mut view = View::new();
        for (ord, r) in recs.iter().enumerate() {
            let mut r = r.clone();
            r.ordinal = ord as u64;
            r.date_added_base = 1_000 + ord as i64 * 100;
            view.apply(&r);
        }
        let expected = view_summary(&view, &objects);
        let mut order: Vec<usize> = (0..recs.len()).collect();
        order.rotate_left(rotate.index(recs.len()));
        order.reverse();
        PG.with(|(rt, s)| {
            rt.block_on(async {
                wipe(s).await;
                let all: Vec<Incoming> = order.iter().map(|&i| incoming(&recs[i])).collect();
                for chunk in all.chunks(batch) {
                    s.ingest(chunk, "peer").await.unwrap();
                }
                // Again: nothing changes.
                let again = s.ingest(&all, "peer").await.unwrap();
                assert!(again.iter().all(|o| *o == IngestOutcome::Duplicate));
                let got = pg_summary(s, &objects).await;
                assert_eq!(got, expected, "order {order:?}, batches of {batch}");
                let da = s.dates_added().await.unwrap();
                assert!(da.windows(2).all(|w| w[0] < w[1]), "date_added unique: {da:?}");
                // The counts kept as ingests go are what counting the tables finds.
                assert_eq!(s.counts().await.unwrap(), counted(s).await, "order {order:?}");
            })
        });
    }
}

#[test]
fn the_counts_migration_counts_what_a_database_already_holds() {
    let pg = PgCluster::shared();
    let url = pg.new_database();
    let db = url.rsplit('/').next().unwrap().to_string();
    let rt = common::rt();
    rt.block_on(async {
        let s = PgStore::open(&plain(&url)).await.unwrap();
        let recs = [
            record(1, &[(1, 1, 0, 1), (2, 1, 0, 1)]),
            record(2, &[(1, 2, 0, 1), (3, 1, 0, 4)]),
            retraction(0, 2, &[2], &[]),
        ];
        let all: Vec<Incoming> = recs.iter().map(incoming).collect();
        s.ingest(&all, "peer").await.unwrap();
        let expected = counted(&s).await;
        assert_eq!(s.counts().await.unwrap(), expected);
        // Four versions, and tombstones for what the retraction took back.
        assert_eq!(
            (expected.objects, expected.retractions),
            (3, 1),
            "{expected:?}"
        );
        assert!(expected.versions > 4, "{expected:?}");
    });
    // The database as schema 3 left it, holding data.
    pg.psql(
        &db,
        "ALTER TABLE feed_head DROP COLUMN envelopes, DROP COLUMN versions,
                               DROP COLUMN objects, DROP COLUMN retractions;
         DELETE FROM synergia_schema WHERE version = 4",
    );
    rt.block_on(async {
        let (_, m) = PgPool::open(&plain(&url)).await.unwrap();
        assert_eq!((m.from, m.to), (3, schema::latest()));
        let s = PgStore::open(&plain(&url)).await.unwrap();
        assert_eq!(s.counts().await.unwrap(), counted(&s).await);
        // And kept from there on.
        s.ingest(&[incoming(&record(3, &[(4, 1, 0, 1)]))], "peer")
            .await
            .unwrap();
        let c = s.counts().await.unwrap();
        assert_eq!(c, counted(&s).await);
        assert_eq!(
            pg.psql(&db, "SELECT objects FROM feed_head"),
            c.objects.to_string()
        );
    });
}

#[test]
fn ingest_is_idempotent_and_positions_commit_in_order() {
    let (rt, s) = pg_store();
    rt.block_on(async {
        let a = incoming(&record(1, &[(2, 1, 0, 1)]));
        let b = incoming(&record(2, &[(3, 1, 0, 1)]));
        let dup = incoming(&record(1, &[(2, 1, 0, 1)]));
        let out = s.ingest(&[a, b, dup], "local").await.unwrap();
        assert!(
            matches!(out[0], IngestOutcome::Accepted { ordinal: 0, .. }),
            "{out:?}"
        );
        assert!(
            matches!(out[1], IngestOutcome::Accepted { ordinal: 1, .. }),
            "{out:?}"
        );
        assert_eq!(
            out[2],
            IngestOutcome::Duplicate,
            "twice in one batch is stored once"
        );
        assert_eq!(s.head().await.unwrap(), 2);
        let out = s
            .ingest(&[incoming(&record(1, &[(2, 1, 0, 1)]))], "local")
            .await
            .unwrap();
        assert_eq!(out, vec![IngestOutcome::Duplicate]);
        assert_eq!(s.head().await.unwrap(), 2, "a duplicate takes no position");
        assert_eq!(
            s.held(&[record(1, &[]).id, record(9, &[]).id])
                .await
                .unwrap(),
            vec![true, false]
        );
        // The observable index: found at green and above, not by a clear reader.
        let hits = s
            .latest_naming("ipv4-addr:198.51.100.2", TlpLevel::Green)
            .await
            .unwrap();
        assert_eq!(
            hits.iter().map(|h| (h.0.as_str(), h.1)).collect::<Vec<_>>(),
            vec![("indicator", 2)]
        );
        assert!(
            s.latest_naming("ipv4-addr:198.51.100.2", TlpLevel::Clear)
                .await
                .unwrap()
                .is_empty()
        );

        // Eight writers at once: every position is taken once, with no gap, and
        // date_added grows with the position.
        let mut tasks = Vec::new();
        for w in 0..8u8 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                for k in 0..5u8 {
                    let n = 10 + w * 5 + k;
                    let mut r = record(n, &[(n, 1, 0, 1)]);
                    r.origin = format!("writer{w}");
                    r.seq = u64::from(k);
                    s.ingest(&[incoming(&r)], "local").await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(s.head().await.unwrap(), 42);
        let c = s.pool().get().await.unwrap();
        let rows = c
            .query(
                "SELECT e.ordinal, v.date_added FROM envelopes e
                 JOIN deliveries d ON d.envelope = e.id
                 JOIN versions v USING (uuid, type, modified, hash) ORDER BY e.ordinal",
                &[],
            )
            .await
            .unwrap();
        let pairs: Vec<(i64, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        assert_eq!(
            pairs.iter().map(|p| p.0).collect::<Vec<_>>(),
            (0..42).collect::<Vec<i64>>()
        );
        assert!(pairs.windows(2).all(|w| w[0].1 < w[1].1), "{pairs:?}");
        let seqs = s.origin_seqs().await.unwrap();
        assert_eq!(seqs.len(), 10, "origin1, origin2 and eight writers");
        assert!(
            seqs.iter()
                .filter(|(o, _)| o.starts_with("writer"))
                .all(|(_, q)| *q == 4)
        );
        assert_eq!(s.counts().await.unwrap().envelopes, 42);
    });
}

#[test]
fn keyed_values_hold_any_key_and_scan_by_prefix() {
    let (rt, s) = pg_store();
    rt.block_on(async {
        s.put_value(Space::Deferred, "m\0peer-a\0x", b"1")
            .await
            .unwrap();
        s.put_value(Space::Deferred, "m\0peer-b\0y", b"2")
            .await
            .unwrap();
        s.put_value(Space::Deferred, "b\0peer-a\0x", b"body")
            .await
            .unwrap();
        s.put_value(Space::Peers, "m\0peer-a\0x", b"other space")
            .await
            .unwrap();
        s.put_value(Space::Deferred, "m\0peer-b\0y", b"3")
            .await
            .unwrap();
        let m = s.values_with_prefix(Space::Deferred, "m\0").await.unwrap();
        assert_eq!(
            m,
            vec![
                ("m\0peer-a\0x".to_string(), b"1".to_vec()),
                ("m\0peer-b\0y".to_string(), b"3".to_vec())
            ]
        );
        assert_eq!(
            s.get_value(Space::Deferred, "b\0peer-a\0x").await.unwrap(),
            Some(b"body".to_vec())
        );
        s.delete_value(Space::Deferred, "b\0peer-a\0x")
            .await
            .unwrap();
        assert_eq!(
            s.get_value(Space::Deferred, "b\0peer-a\0x").await.unwrap(),
            None
        );
        // LIKE wildcards in a prefix are only characters.
        s.put_value(Space::Status, "a%b", b"1").await.unwrap();
        s.put_value(Space::Status, "axb", b"2").await.unwrap();
        assert_eq!(
            s.values_with_prefix(Space::Status, "a%")
                .await
                .unwrap()
                .len(),
            1
        );
        // The epoch is kept across opens.
        let e1 = s.epoch().to_string();
        assert_eq!(e1.len(), 32);
    });
}

/// Two processes (two pools) changing one value at once: every change lands, none
/// on a stale copy (peer state that several `serve` processes count into).
#[test]
fn concurrent_updates_of_one_value_each_see_the_others() {
    let url = PgCluster::shared().new_database();
    common::rt().block_on(async {
        let a = PgStore::open(&plain(&url)).await.unwrap();
        let b = PgStore::open(&plain(&url)).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..8 {
            let s = if i % 2 == 0 { a.clone() } else { b.clone() };
            tasks.push(tokio::spawn(async move {
                for _ in 0..25 {
                    s.update_value(Space::Peers, "groupib", i % 2 == 0, |old| {
                        let n: u64 =
                            old.map_or(0, |v| std::str::from_utf8(v).unwrap().parse().unwrap());
                        ((n + 1).to_string().into_bytes(), ())
                    })
                    .await
                    .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(
            a.get_value(Space::Peers, "groupib").await.unwrap(),
            Some(b"200".to_vec())
        );
    });
}

#[test]
fn a_tombstone_never_carries_a_body_above_the_level_it_is_shown_at() {
    // acme shares v1 at clear, then v2 at red, then takes the whole object back. A
    // clear reader's tombstone stands for v1 and holds v1's body; a red reader's
    // stands for v2.
    let (rt, s) = pg_store();
    let with_body = |env: u8, modified: u8, tlp: u8, body: &str| {
        let mut r = record(env, &[(2, modified, 0, tlp)]);
        r.origin = "origin0".into();
        let mut i = incoming(&r);
        i.prepared.bytes = bytes::Bytes::from(body.to_string());
        i.prepared.objects[0].body_off = 0;
        i.prepared.objects[0].body_len = body.len() as u32;
        i
    };
    let v1 = with_body(3, 1, 0, "{\"v\":1,\"tlp\":\"clear\"}");
    let v2 = with_body(6, 2, 4, "{\"v\":2,\"tlp\":\"red\"}");
    let r = incoming(&retraction(1, 0, &[], &[(2, None)]));
    rt.block_on(async {
        s.ingest(&[v1, v2], "peer").await.unwrap();
        s.ingest(&[r], "peer").await.unwrap();
        let c = s.pool().get().await.unwrap();
        let body_at = |bit: i16| {
            let c = &c;
            async move {
                let row = c
                    .query_one(
                        "SELECT modified, body, flags FROM versions WHERE type = 'indicator' AND latest & $1 <> 0",
                        &[&bit],
                    )
                    .await
                    .unwrap();
                (
                    row.get::<_, i64>(0),
                    String::from_utf8(row.get::<_, Vec<u8>>(1)).unwrap(),
                    row.get::<_, i16>(2),
                )
            }
        };
        let (m, body, flags) = body_at(1).await;
        assert_eq!((m, body.as_str()), (2000, "{\"v\":1,\"tlp\":\"clear\"}"));
        assert_ne!(flags & 16, 0, "a tombstone");
        let (m, body, _) = body_at(1 << 4).await;
        assert_eq!((m, body.as_str()), (3000, "{\"v\":2,\"tlp\":\"red\"}"));
        let tlps: Vec<(i64, i16)> = c
            .query(
                "SELECT modified, tlp FROM versions WHERE flags & 16 <> 0 ORDER BY modified",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        assert_eq!(tlps, vec![(2000, 0), (3000, 4)], "each shared at its own level");
    });
}

// ----- moving a node: synergia store migrate -----

fn synergia_bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_synergia"))
}

#[test]
fn store_migrate_moves_an_embedded_node_with_the_same_digests() {
    use synergia::node::{Node, publish::Mode};
    use synergia::workload::{GenOptions, bundle};
    let f = common::Federation::new(&["groupib", "interpol"], &[]);
    let cfg = f.config("groupib");
    let published_ids: Vec<String>;
    let held: usize;
    {
        let node = Node::open(cfg.clone()).unwrap();
        for (seed, tlp) in [
            (1, TlpLevel::Clear),
            (2, TlpLevel::Green),
            (3, TlpLevel::Red),
        ] {
            let b = bundle(&GenOptions {
                count: 40,
                seed,
                origin: "groupib".into(),
                identity: None,
                overlap: 0.0,
                tlp: Some(tlp),
            });
            node.publish(b, &["interpol".to_string()], Mode::AllOrNothing)
                .unwrap();
        }
        let view = node.embedded("test").unwrap().read();
        published_ids = (0..view.version_count() as u32)
            .filter_map(|h| view.version(h))
            .take(3)
            .map(|v| {
                format!(
                    "{}--{}",
                    view.type_name(v.type_ix),
                    uuid::Uuid::from_u128(v.uuid())
                )
            })
            .collect();
        drop(view);
        let targets: Vec<synergia::envelope::retraction::ObjectTarget> = published_ids
            .iter()
            .map(|id| synergia::envelope::retraction::ObjectTarget {
                id: id.clone(),
                modified: None,
            })
            .collect();
        node.retract(&[], &targets, Reason::FalsePositive, "test")
            .unwrap();
        node.embedded("test")
            .unwrap()
            .put_value(Space::Peers, "interpol", b"{\"cursor\":7}".to_vec(), true)
            .unwrap();
        held = node.embedded("test").unwrap().read().envelope_count();
    }
    let pg = PgCluster::shared();
    let url = format!("{}?sslmode=disable", pg.new_database());
    let db = url
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_string();
    let run = |to: &str, password: &str| {
        synergia_bin()
            .args(["store", "migrate", "--config"])
            .arg(f.config_path("groupib"))
            .args(["--to-url", to])
            .env("SYNERGIA_STORE_PASSWORD", password)
            .env_remove("SYNERGIA_STORE_URL")
            .output()
            .unwrap()
    };
    // A password in the URL is refused before anything is read.
    let out = run(
        &url.replace("synergia@", "synergia:secret@"),
        common::pg::PASSWORD,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--to-url: holds a password"), "{err}");
    assert!(!err.contains("secret"), "{err}");

    let out = run(&url, common::pg::PASSWORD);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("{held} envelopes read, {held} stored, 0 rejected")),
        "{text}"
    );
    assert_eq!(text.matches("(same)").count(), 7, "{text}");
    assert!(!text.contains("DIFFERENT"), "{text}");
    assert_eq!(
        pg.psql(&db, "SELECT count(*) FROM envelopes"),
        held.to_string()
    );
    assert!(pg.psql(&db, "SELECT count(*) FROM retractions") != "0");
    assert_eq!(
        pg.psql(&db, "SELECT count(*) FROM tombstones"),
        "3",
        "the three retracted objects have tombstones"
    );
    assert_eq!(
        pg.psql(
            &db,
            "SELECT convert_from(value, 'UTF8') FROM kv WHERE space = 'peers'"
        ),
        "{\"cursor\":7}"
    );
    assert_eq!(
        pg.psql(
            &db,
            "SELECT count(*) FROM kv WHERE space = 'meta' AND key = 'taxii-token-key'::bytea"
        ),
        "1"
    );
    // date_added values are the embedded store's.
    let node = Node::open(cfg).unwrap();
    let first = node.embedded("test").unwrap().read().versions()[0].date_added;
    drop(node);
    assert_eq!(
        pg.psql(&db, "SELECT min(date_added) FROM versions"),
        first.to_string()
    );

    // Into a database that holds envelopes: refused, nothing changed.
    let out = run(&url, common::pg::PASSWORD);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("already holds {held} envelopes")),
        "{err}"
    );
    assert_eq!(
        pg.psql(&db, "SELECT count(*) FROM envelopes"),
        held.to_string()
    );

    // While the node runs, its data directory is not read.
    let running = common::RunningNode::start(f.config("groupib"));
    let other = format!("{}?sslmode=disable", pg.new_database());
    let out = run(&other, common::pg::PASSWORD);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("in use"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(running);
}

// ----- pull leases: one process per peer -----

#[test]
fn one_process_holds_a_peers_pull_lease_until_it_stops_renewing() {
    use std::time::{Duration, Instant};
    use synergia::store::postgres::lease::{LeaseKind, holder_name};
    let pg = PgCluster::shared();
    let url = pg.new_database();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // Two processes of one member, each with its own pool.
        let a = PgStore::open(&plain(&url)).await.unwrap();
        let b = PgStore::open(&plain(&url)).await.unwrap();
        assert_eq!(a.epoch(), b.epoch(), "one log, one epoch");
        let (ha, hb) = (holder_name(), holder_name());
        assert_ne!(ha, hb);
        let ttl = Duration::from_millis(3000);
        assert!(
            a.take_lease(LeaseKind::Pull, "kaspersky", &ha, ttl)
                .await
                .unwrap()
        );
        assert!(
            !b.take_lease(LeaseKind::Pull, "kaspersky", &hb, ttl)
                .await
                .unwrap(),
            "held by a"
        );
        // The renewal runs after this instant, so the lease expires no earlier
        // than `ttl` from it (one clock: the database's, on this machine).
        let renewed = Instant::now();
        assert!(
            a.take_lease(LeaseKind::Pull, "kaspersky", &ha, ttl)
                .await
                .unwrap(),
            "renewed"
        );
        assert!(
            b.take_lease(LeaseKind::Pull, "interpol", &hb, ttl)
                .await
                .unwrap(),
            "another peer"
        );
        assert!(
            b.take_lease(LeaseKind::Push, "kaspersky", &hb, ttl)
                .await
                .unwrap(),
            "pushing to a peer is leased apart from pulling it"
        );
        assert!(
            !a.take_lease(LeaseKind::Push, "kaspersky", &ha, ttl)
                .await
                .unwrap(),
            "held by b"
        );
        let l = a
            .lease(LeaseKind::Pull, "kaspersky")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(l.holder, ha);
        assert!(
            l.remaining <= ttl
                && l.remaining + Duration::from_millis(50) >= ttl.saturating_sub(renewed.elapsed()),
            "{l:?}"
        );

        // a stops renewing (killed): b takes the lease once it expires, not before.
        while !b
            .take_lease(LeaseKind::Pull, "kaspersky", &hb, ttl)
            .await
            .unwrap()
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert!(
                renewed.elapsed() < ttl + Duration::from_secs(5),
                "never taken over"
            );
        }
        assert!(
            renewed.elapsed() >= ttl - Duration::from_millis(50),
            "taken over {:?} after the renewal, before the lease expired",
            renewed.elapsed()
        );
        assert!(
            !a.take_lease(LeaseKind::Pull, "kaspersky", &ha, ttl)
                .await
                .unwrap(),
            "a learns at its next renewal that it lost the lease"
        );
        // b stops: its row and its three leases (kaspersky's pull and push,
        // interpol's pull) go at once.
        b.process_seen(&hb, "127.0.0.1:7443").await.unwrap();
        let running = |s: PgStore| async move {
            let c = s.pool().get().await.unwrap();
            synergia::store::postgres::lease::running_processes(&**c)
                .await
                .unwrap()
        };
        assert_eq!(
            running(b.clone()).await,
            [(hb.clone(), "127.0.0.1:7443".to_string())]
        );
        b.process_stopped(&hb).await.unwrap();
        assert_eq!(b.release_leases(&hb).await.unwrap(), 3);
        assert!(running(b.clone()).await.is_empty());
        assert!(
            a.take_lease(LeaseKind::Pull, "kaspersky", &ha, ttl)
                .await
                .unwrap(),
            "released: free at once"
        );

        // Eight processes race for a fresh peer: exactly one wins.
        let mut racers = Vec::new();
        for i in 0..8 {
            let s = if i % 2 == 0 { a.clone() } else { b.clone() };
            racers.push(tokio::spawn(async move {
                s.take_lease(
                    LeaseKind::Pull,
                    "teamcymru",
                    &format!("racer{i}"),
                    Duration::from_secs(30),
                )
                .await
                .unwrap()
            }));
        }
        let mut winners = 0;
        for r in racers {
            winners += usize::from(r.await.unwrap());
        }
        assert_eq!(winners, 1);
    });
}

#[test]
fn an_own_sequence_number_is_never_stored_twice() {
    // A publish that lost its turn (its connection cut while another process numbered
    // on) must not store a number already used: the ingest refuses it, whole.
    let (rt, s) = pg_store();
    rt.block_on(async {
        let mut first = record(1, &[(1, 1, 0, 0)]);
        first.origin = "groupib".into();
        first.seq = 5;
        s.ingest(&[incoming(&first)], "local").await.unwrap();
        for seq in [5, 3] {
            let mut other = record(2, &[(2, 1, 0, 0)]);
            other.origin = "groupib".into();
            other.seq = seq;
            let mut later = record(3, &[(3, 1, 0, 0)]);
            later.origin = "groupib".into();
            later.seq = 9;
            let err = s
                .ingest(&[incoming(&later), incoming(&other)], "local")
                .await
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("sequence number {seq} of groupib is already used")),
                "{err}"
            );
            assert_eq!(
                s.counts().await.unwrap().envelopes,
                1,
                "nothing of the batch"
            );
        }
        // From a peer (this member's own envelopes taken back), the same numbers are
        // what they are: held or stored, never refused.
        let mut back = record(4, &[(4, 1, 0, 0)]);
        back.origin = "groupib".into();
        back.seq = 4;
        s.ingest(&[incoming(&back)], "kaspersky").await.unwrap();
        // Past the greatest: stored.
        let mut next = record(6, &[(5, 1, 0, 0)]);
        next.origin = "groupib".into();
        next.seq = 6;
        s.ingest(&[incoming(&next)], "local").await.unwrap();
        assert_eq!(s.counts().await.unwrap().envelopes, 3);
    });
}
