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
    let view = node.store.read();
    let _ = writeln!(
        out,
        "# HELP synergia_publishes_waiting Publishes waiting for their turn (limits.max_concurrent_publishes).\n# TYPE synergia_publishes_waiting gauge\nsynergia_publishes_waiting {}",
        get(&m.publishes_waiting)
    );
    let _ = writeln!(
        out,
        "# HELP synergia_store_envelopes Envelopes held.\n# TYPE synergia_store_envelopes gauge\nsynergia_store_envelopes {}",
        view.envelope_count()
    );
    let _ = writeln!(
        out,
        "# HELP synergia_store_object_versions Object versions held.\n# TYPE synergia_store_object_versions gauge\nsynergia_store_object_versions {}",
        view.version_count()
    );
    let _ = writeln!(
        out,
        "# HELP synergia_store_latest_objects Latest object versions held, by TLP level.\n# TYPE synergia_store_latest_objects gauge"
    );
    for l in ALL_LEVELS {
        let _ = writeln!(
            out,
            "synergia_store_latest_objects{{tlp=\"{l}\"}} {}",
            view.digest(l).count
        );
    }
    drop(view);
    let (log, index) = node.store.disk_bytes();
    let _ = writeln!(
        out,
        "# HELP synergia_store_disk_bytes Bytes on disk, by part.\n# TYPE synergia_store_disk_bytes gauge\nsynergia_store_disk_bytes{{part=\"log\"}} {log}\nsynergia_store_disk_bytes{{part=\"index\"}} {index}"
    );
    out
}
