//! Counters behind `/metrics` (Prometheus text format) and `/api/v1/stats`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The connection limits a refusal is counted under (the `limit` label of
/// `synergia_connections_refused_total`), each present from start.
pub const CONNECTION_LIMITS: [&str; 3] = ["total", "per-address", "without-certificate"];

/// Node counters. Names follow Prometheus conventions (`_total` for counters, base
/// units).
#[derive(Debug, Default)]
pub struct Metrics {
    /// Envelopes this node published.
    pub published_envelopes: AtomicU64,
    /// Objects this node published.
    pub published_objects: AtomicU64,
    /// Objects refused at publish (invalid).
    pub publish_rejected_objects: AtomicU64,
    /// Envelopes accepted from peers.
    pub received_envelopes: AtomicU64,
    /// Objects in envelopes accepted from peers.
    pub received_objects: AtomicU64,
    /// Envelopes peers offered that this node already held.
    pub duplicate_envelopes: AtomicU64,
    /// Envelopes refused, by reason code.
    pub rejected: Mutex<BTreeMap<String, u64>>,
    /// HTTP requests by status class.
    pub http_requests: Mutex<BTreeMap<(String, u16), u64>>,
    /// Seconds spent publishing (sum) and publishes (count).
    pub publish_seconds_sum: Mutex<f64>,
    /// Number of publishes.
    pub publishes: AtomicU64,
    /// Connections closed by the server's limits, by which limit (present from start).
    pub connections_refused: Mutex<BTreeMap<&'static str, u64>>,
    /// Publishes waiting for their turn (`limits.max_concurrent_publishes`) now.
    pub publishes_waiting: AtomicU64,
    /// Retractions this node signed.
    pub signed_retractions: AtomicU64,
}

impl Metrics {
    /// Adds to a counter.
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts a refused envelope.
    pub fn reject(&self, code: &str) {
        let mut m = self.rejected.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry(code.to_string()).or_default() += 1;
    }

    /// Counts an HTTP response.
    pub fn http(&self, route: &str, status: u16) {
        let mut m = self.http_requests.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry((route.to_string(), status)).or_default() += 1;
    }

    /// Counts a connection closed by a limit (one of [`CONNECTION_LIMITS`]).
    pub fn connection_refused(&self, why: &'static str) {
        let mut m = self
            .connections_refused
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *m.entry(why).or_default() += 1;
    }

    /// Counts retractions signed.
    pub fn retractions_signed(&self, n: u64) {
        Self::add(&self.signed_retractions, n);
    }

    /// Records a publish duration.
    pub fn publish_took(&self, secs: f64) {
        *self
            .publish_seconds_sum
            .lock()
            .unwrap_or_else(|p| p.into_inner()) += secs;
        self.publishes.fetch_add(1, Ordering::Relaxed);
    }
}

/// Renders every metric in the Prometheus text exposition format.
pub fn render(node: &super::Node) -> String {
    use crate::stix::tlp::ALL_LEVELS;
    use std::fmt::Write as _;
    let m = &node.metrics;
    let mut out = String::new();
    let mut counter = |name: &str, help: &str, v: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
        );
    };
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    counter(
        "synergia_published_envelopes_total",
        "Envelopes this node signed and stored.",
        get(&m.published_envelopes),
    );
    counter(
        "synergia_signed_retractions_total",
        "Retractions this node signed.",
        get(&m.signed_retractions),
    );
    counter(
        "synergia_published_objects_total",
        "Objects this node published.",
        get(&m.published_objects),
    );
    counter(
        "synergia_publish_rejected_objects_total",
        "Objects refused at publish as invalid STIX.",
        get(&m.publish_rejected_objects),
    );
    counter(
        "synergia_received_envelopes_total",
        "Envelopes accepted from peers.",
        get(&m.received_envelopes),
    );
    counter(
        "synergia_received_objects_total",
        "Objects in envelopes accepted from peers.",
        get(&m.received_objects),
    );
    counter(
        "synergia_duplicate_envelopes_total",
        "Envelopes peers offered that this node already held.",
        get(&m.duplicate_envelopes),
    );
    let _ = writeln!(
        out,
        "# HELP synergia_rejected_envelopes_total Envelopes refused, by reason.\n# TYPE synergia_rejected_envelopes_total counter"
    );
    for (code, n) in m.rejected.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        let _ = writeln!(
            out,
            "synergia_rejected_envelopes_total{{reason=\"{code}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP synergia_http_requests_total HTTP responses, by interface and status.\n# TYPE synergia_http_requests_total counter"
    );
    for ((route, status), n) in m
        .http_requests
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
    {
        let _ = writeln!(
            out,
            "synergia_http_requests_total{{interface=\"{route}\",status=\"{status}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP synergia_connections_refused_total Connections closed by a connection limit, by limit.\n# TYPE synergia_connections_refused_total counter"
    );
    {
        let refused = m
            .connections_refused
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for why in CONNECTION_LIMITS {
            let n = refused.get(why).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "synergia_connections_refused_total{{limit=\"{why}\"}} {n}"
            );
        }
    }
    let sum = *m
        .publish_seconds_sum
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let _ = writeln!(
        out,
        "# HELP synergia_publish_duration_seconds Time to validate, sign and store a publish.\n# TYPE synergia_publish_duration_seconds summary\nsynergia_publish_duration_seconds_sum {sum}\nsynergia_publish_duration_seconds_count {}",
        get(&m.publishes)
    );
    let _ = writeln!(
        out,
        "# HELP synergia_publishes_waiting Publishes waiting for their turn (limits.max_concurrent_publishes).\n# TYPE synergia_publishes_waiting gauge\nsynergia_publishes_waiting {}",
        get(&m.publishes_waiting)
    );
    let f = store_figures(node);
    let _ = writeln!(
        out,
        "# HELP synergia_store_envelopes Envelopes held.\n# TYPE synergia_store_envelopes gauge\nsynergia_store_envelopes {}",
        or_nan(f.as_ref().map(|f| f.envelopes))
    );
    let _ = writeln!(
        out,
        "# HELP synergia_store_retractions Retractions held (every member's).\n# TYPE synergia_store_retractions gauge\nsynergia_store_retractions {}",
        or_nan(f.as_ref().map(|f| f.retractions))
    );
    membership_metrics(node, &mut out);
    let _ = writeln!(
        out,
        "# HELP synergia_store_object_versions Object versions held.\n# TYPE synergia_store_object_versions gauge\nsynergia_store_object_versions {}",
        or_nan(f.as_ref().map(|f| f.versions))
    );
    let _ = writeln!(
        out,
        "# HELP synergia_store_latest_objects Latest object versions held, by TLP level.\n# TYPE synergia_store_latest_objects gauge"
    );
    for (i, l) in ALL_LEVELS.into_iter().enumerate() {
        let _ = writeln!(
            out,
            "synergia_store_latest_objects{{tlp=\"{l}\"}} {}",
            or_nan(f.as_ref().map(|f| f.latest[i]))
        );
    }
    let (log, index) = f
        .as_ref()
        .map_or((None, None), |f| (Some(f.log_bytes), Some(f.index_bytes)));
    let (log, index) = (or_nan(log), or_nan(index));
    let _ = writeln!(
        out,
        "# HELP synergia_store_disk_bytes Bytes on disk, by part.\n# TYPE synergia_store_disk_bytes gauge\nsynergia_store_disk_bytes{{part=\"log\"}} {log}\nsynergia_store_disk_bytes{{part=\"index\"}} {index}"
    );
    let free = or_nan(f.as_ref().and_then(|f| f.free_bytes));
    let _ = writeln!(
        out,
        "# HELP synergia_disk_free_bytes Bytes free for the node on the data directory's file system.\n# TYPE synergia_disk_free_bytes gauge\nsynergia_disk_free_bytes {free}"
    );
    own_expiry(node, &mut out);
    peers(node, &mut out);
    out
}

/// A gauge value: NaN when unknown (Prometheus keeps the series, alerts compare false).
fn or_nan<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or("NaN".to_string(), |v| v.to_string())
}

/// When this node's own TLS certificate and signing key stop being valid.
fn own_expiry(node: &super::Node, out: &mut String) {
    use std::fmt::Write as _;
    let cert = crate::tls::load_certs(&node.config.tls.cert)
        .ok()
        .and_then(|c| c.first().and_then(|c| crate::tls::not_after(c)));
    let live = node.live();
    let key = live
        .roster
        .key(&live.signer.origin, &live.signer.key_id)
        .map(|k| {
            k.revoked_at
                .map_or(k.not_after, |r| r.min(k.not_after))
                .as_secs()
        });
    let _ = writeln!(
        out,
        "# HELP synergia_certificate_not_after_timestamp_seconds When this node's TLS certificate expires.\n# TYPE synergia_certificate_not_after_timestamp_seconds gauge\nsynergia_certificate_not_after_timestamp_seconds {}\n# HELP synergia_signing_key_not_after_timestamp_seconds When the key this node signs with expires (or is revoked).\n# TYPE synergia_signing_key_not_after_timestamp_seconds gauge\nsynergia_signing_key_not_after_timestamp_seconds {}",
        or_nan(cert),
        or_nan(key)
    );
}

/// Everything `synergia status` shows per peer, one series per peer (and reason,
/// kind or level), each present from the start.
fn peers(node: &super::Node, out: &mut String) {
    use crate::envelope::VerifyError;
    use crate::node::peers::FAILURE_KINDS;
    use crate::node::peers::policy::PolicyViolation;
    use crate::stix::tlp::ALL_LEVELS;
    use std::fmt::Write as _;
    let statuses = crate::node::peers::status::peer_statuses(node);
    let live = node.live();
    let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, String)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in rows {
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
    };
    let per_peer = |f: &dyn Fn(&crate::node::peers::status::PeerStatus) -> String| {
        statuses
            .iter()
            .map(|p| (format!("peer=\"{}\"", p.peer), f(p)))
            .collect::<Vec<_>>()
    };
    let secs = |t: &Option<String>| {
        t.as_deref()
            .and_then(|t| crate::stix::timestamp::Timestamp::parse(t).ok())
            .map_or(0, |t| t.as_secs())
            .to_string()
    };
    family(
        "synergia_peer_up",
        "gauge",
        "Whether the last request to the peer reached it (1) or not (0).",
        per_peer(&|p| u8::from(p.reachable).to_string()),
    );
    family(
        "synergia_peer_lag_envelopes",
        "gauge",
        "The peer's log head minus this node's cursor in it (NaN before the first answer).",
        per_peer(&|p| or_nan(p.lag_envelopes)),
    );
    family(
        "synergia_peer_lag_seconds",
        "gauge",
        "How long this node has been behind the peer, seconds (0 when caught up).",
        per_peer(&|p| or_nan(p.lag_seconds)),
    );
    family(
        "synergia_peer_last_success_timestamp_seconds",
        "gauge",
        "Last successful pull or push with the peer, Unix seconds (0: never).",
        per_peer(&|p| secs(&p.last_success)),
    );
    family(
        "synergia_peer_last_attempt_timestamp_seconds",
        "gauge",
        "Last pull attempt from the peer, Unix seconds (0: never).",
        per_peer(&|p| secs(&p.last_attempt)),
    );
    for (name, help, get) in [
        (
            "synergia_peer_received_envelopes_total",
            "Envelopes accepted from the peer.",
            (|p: &crate::node::peers::status::PeerStatus| p.envelopes_received)
                as fn(&crate::node::peers::status::PeerStatus) -> u64,
        ),
        (
            "synergia_peer_received_objects_total",
            "Objects in envelopes accepted from the peer.",
            |p| p.objects_received,
        ),
        (
            "synergia_peer_sent_envelopes_total",
            "Envelopes sent to the peer.",
            |p| p.envelopes_sent,
        ),
        (
            "synergia_peer_sent_objects_total",
            "Objects in envelopes sent to the peer.",
            |p| p.objects_sent,
        ),
    ] {
        family(name, "counter", help, per_peer(&|p| get(p).to_string()));
    }
    let labelled =
        |key: &str,
         values: &[&str],
         get: &dyn Fn(&crate::node::peers::status::PeerStatus, &str) -> u64| {
            let mut rows = Vec::new();
            for p in &statuses {
                for v in values {
                    rows.push((
                        format!("peer=\"{}\",{key}=\"{v}\"", p.peer),
                        get(p, v).to_string(),
                    ));
                }
            }
            rows
        };
    let reasons: Vec<&str> = VerifyError::CODES
        .iter()
        .chain(PolicyViolation::CODES.iter())
        .copied()
        .collect();
    family(
        "synergia_peer_rejected_envelopes_total",
        "counter",
        "The peer's envelopes this node refused, by reason.",
        labelled("reason", &reasons, &|p, r| {
            p.rejected.get(r).copied().unwrap_or(0)
        }),
    );
    family(
        "synergia_peer_failures_total",
        "counter",
        "Failed requests to the peer, by kind.",
        labelled("kind", &FAILURE_KINDS, &|p, k| {
            p.failures.get(k).copied().unwrap_or(0)
        }),
    );
    let levels: Vec<&str> = ALL_LEVELS.iter().map(|l| l.as_str()).collect();
    family(
        "synergia_peer_withheld_envelopes_total",
        "counter",
        "Envelopes withheld from the peer by the sharing policy, by TLP level.",
        labelled("tlp", &levels, &|p, l| {
            p.withheld.get(l).copied().unwrap_or(0)
        }),
    );
    family(
        "synergia_peer_waiting_envelopes",
        "gauge",
        "The peer's envelopes refused for a passing reason and kept for a retry.",
        per_peer(&|p| p.waiting.to_string()),
    );
    let shared: Vec<&str> = crate::store::view::SHARED_LEVELS
        .iter()
        .map(|l| l.as_str())
        .collect();
    let mut rows = Vec::new();
    for p in &statuses {
        for l in &shared {
            let v = p.digests_match.get(*l).map(|m| u8::from(*m));
            rows.push((format!("peer=\"{}\",tlp=\"{l}\"", p.peer), or_nan(v)));
        }
    }
    family(
        "synergia_peer_digest_match",
        "gauge",
        "Whether the peer's view digest at a shared level equals ours (1), not (0), or is not known yet (NaN).",
        rows,
    );
    let cert =
        |p: &crate::node::peers::status::PeerStatus| or_nan(node.sync.peer(&p.peer).cert_not_after);
    family(
        "synergia_peer_certificate_not_after_timestamp_seconds",
        "gauge",
        "When the peer's TLS certificate (as last seen) expires, Unix seconds.",
        per_peer(&cert),
    );
    let key = |p: &crate::node::peers::status::PeerStatus| {
        or_nan(live.roster.member(&p.peer).and_then(|m| {
            m.keys
                .iter()
                .filter_map(|k| live.roster.key(&p.peer, &k.key_id))
                .filter(|k| k.revoked_at.is_none())
                .map(|k| k.not_after.as_secs())
                .max()
        }))
    };
    family(
        "synergia_peer_signing_key_not_after_timestamp_seconds",
        "gauge",
        "When the peer's newest unrevoked signing key expires, Unix seconds.",
        per_peer(&key),
    );
}

/// The membership log: head, forks (alert on a non-zero value), entries taken and
/// refused, and whether each peer's head is on our history. Nothing when the node
/// follows no log.
fn membership_metrics(node: &super::Node, out: &mut String) {
    use std::fmt::Write as _;
    let live = node.live();
    let Some(log) = &live.membership else {
        return;
    };
    let m = node.membership();
    let _ = writeln!(
        out,
        "# HELP synergia_membership_index Index of the membership log's last entry.\n# TYPE synergia_membership_index gauge\nsynergia_membership_index {}",
        log.head().map_or(0, |h| h.index)
    );
    let _ = writeln!(
        out,
        "# HELP synergia_membership_forks Forks of the membership log seen (two valid entries at one index); no entry is taken while this is not 0.\n# TYPE synergia_membership_forks gauge\nsynergia_membership_forks {}",
        m.forks().len()
    );
    let _ = writeln!(
        out,
        "# HELP synergia_membership_entries_appended_total Membership entries taken since start (submitted or from peers).\n# TYPE synergia_membership_entries_appended_total counter\nsynergia_membership_entries_appended_total {}",
        m.appended()
    );
    let refused = m.refused();
    let _ = writeln!(
        out,
        "# HELP synergia_membership_entries_refused_total Membership entries refused, by code.\n# TYPE synergia_membership_entries_refused_total counter"
    );
    let node_codes = ["rejected-entry", "unusable-roster"];
    for code in crate::membership::LogError::CODES.iter().chain(&node_codes) {
        let _ = writeln!(
            out,
            "synergia_membership_entries_refused_total{{code=\"{code}\"}} {}",
            refused.get(code).copied().unwrap_or(0)
        );
    }
    let _ = writeln!(
        out,
        "# HELP synergia_membership_peer_head_matches Whether a peer's membership log head is an entry of ours (1) or not (0: behind on another history, or ahead).\n# TYPE synergia_membership_peer_head_matches gauge"
    );
    for (peer, h) in node.peer_membership_heads() {
        let _ = writeln!(
            out,
            "synergia_membership_peer_head_matches{{peer=\"{peer}\"}} {}",
            u8::from(h.matches)
        );
    }
}

use crate::stix::tlp::ALL_LEVELS;

/// What the store holds, for the gauges.
struct StoreFigures {
    envelopes: u64,
    retractions: u64,
    versions: u64,
    /// Latest versions by level (clear .. red).
    latest: [u64; 5],
    /// The evidence log's bytes (on PostgreSQL: the whole database's).
    log_bytes: u64,
    /// The index's bytes (on PostgreSQL: 0, counted in the database's).
    index_bytes: u64,
    /// Free bytes on the data directory's file system (unknown on PostgreSQL).
    free_bytes: Option<u64>,
}

/// The store's figures; `None` (the gauges say NaN) when the database cannot be read.
fn store_figures(node: &crate::node::Node) -> Option<StoreFigures> {
    match node.backend() {
        crate::node::backend::Backend::Embedded(store) => {
            let view = store.read();
            let latest = ALL_LEVELS.map(|l| view.digest(l).count);
            let (envelopes, retractions, versions) = (
                view.envelope_count() as u64,
                view.retraction_count() as u64,
                view.version_count() as u64,
            );
            drop(view);
            let (log_bytes, index_bytes) = store.disk_bytes();
            Some(StoreFigures {
                envelopes,
                retractions,
                versions,
                latest,
                log_bytes,
                index_bytes,
                free_bytes: store.free_disk_bytes(),
            })
        }
        crate::node::backend::Backend::Postgres(pg) => {
            let read = async {
                let counts = pg.store.counts().await?;
                let mut latest = [0u64; 5];
                for (i, l) in ALL_LEVELS.into_iter().enumerate() {
                    latest[i] = pg.store.digest(l).await?.count;
                }
                let bytes = pg.store.disk_bytes().await?;
                Ok::<_, crate::store::StoreError>(StoreFigures {
                    envelopes: counts.envelopes,
                    retractions: counts.retractions,
                    versions: counts.versions,
                    latest,
                    log_bytes: bytes,
                    index_bytes: 0,
                    free_bytes: None,
                })
            };
            match pg.block(read) {
                Ok(f) => Some(f),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the store's figures for /metrics");
                    None
                }
            }
        }
    }
}
