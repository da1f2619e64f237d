//! `synergia demo`: a five-member federation on loopback, end to end.
//!
//! Creates the example members' keys in a temporary directory, starts their nodes
//! (real TLS, real sync, in this process), has each vendor publish overlapping `gen`
//! indicators through its node's HTTPS API, waits until every node holds what it is
//! allowed to and the digests agree, then prints the coordinator's consolidated
//! summary and peer status.

use crate::config::Config;
use crate::keys::federation::{InitOptions, init_federation};
use crate::node::Node;
use crate::stix::tlp::{ALL_LEVELS, TlpLevel, TlpResolver};
use crate::store::view::LATEST;
use crate::workload::{GenOptions, bundle, observable_value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Members of the example federation; the last one is the coordinator.
pub const MEMBERS: [&str; 5] = [
    "groupib",
    "trendmicro",
    "kaspersky",
    "teamcymru",
    "interpol",
];
const COORDINATOR: &str = "interpol";

/// Demo settings.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Indicators each vendor publishes.
    pub count: u64,
    /// Fraction of observables every vendor shares.
    pub overlap: f64,
    /// Where to put the federation (a temporary directory when `None`).
    pub dir: Option<PathBuf>,
    /// How long to wait for convergence.
    pub timeout: Duration,
    /// Whether the coordinator publishes too (the five-member benchmark).
    pub coordinator_publishes: bool,
}

/// Why the demo failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// Setting the federation up failed.
    #[error("setting up the federation: {0}")]
    Setup(String),
    /// A publish failed.
    #[error("publishing as {member}: {message}")]
    Publish {
        /// Member.
        member: String,
        /// Why.
        message: String,
    },
    /// The federation did not converge in time.
    #[error("the federation did not converge within {0:?}: {1}")]
    NoConvergence(Duration, String),
}

/// A running demo federation.
pub struct Demo {
    /// Where its files are.
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    /// The nodes, by member.
    pub nodes: BTreeMap<String, (Arc<Node>, String)>,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Demo {
    /// Creates the federation and starts the five nodes.
    pub async fn start(
        opts: &DemoOptions,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Demo, DemoError> {
        let (tmp, dir) = match &opts.dir {
            Some(d) => (None, d.clone()),
            None => {
                let t = tempfile::Builder::new()
                    .prefix("synergia-demo-")
                    .tempdir()
                    .map_err(|e| DemoError::Setup(e.to_string()))?;
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        let mut ports = Vec::new();
        let mut listeners = Vec::new();
        for _ in MEMBERS {
            let l = std::net::TcpListener::bind("127.0.0.1:0")
                .map_err(|e| DemoError::Setup(e.to_string()))?;
            ports.push(
                l.local_addr()
                    .map_err(|e| DemoError::Setup(e.to_string()))?
                    .port(),
            );
            listeners.push(l);
        }
        progress(&format!(
            "creating keys for {} members in {}",
            MEMBERS.len(),
            dir.display()
        ));
        init_federation(&InitOptions {
            members: MEMBERS.iter().map(|s| s.to_string()).collect(),
            federation: "synergia-demo".into(),
            out: dir.join("keys"),
            config_out: dir.join("config"),
            data_root: dir.join("data"),
            base_port: 0,
            ports: ports.clone(),
            urls: vec![],
            hosts: vec![],
            amber_hubs: vec![COORDINATOR.into()],
            years: 1,
            example: true,
            force: false,
            threshold: None,
        })
        .map_err(|e| DemoError::Setup(e.to_string()))?;
        let mut nodes = BTreeMap::new();
        let mut stops = Vec::new();
        let mut tasks = Vec::new();
        for (m, l) in MEMBERS.iter().zip(listeners) {
            let cfg = Config::load(&dir.join("config").join(format!("{m}.toml")))
                .map_err(|e| DemoError::Setup(e.to_string()))?;
            let node = Arc::new(Node::open(cfg).map_err(|e| DemoError::Setup(e.to_string()))?);
            let url = format!(
                "https://{}",
                l.local_addr()
                    .map_err(|e| DemoError::Setup(e.to_string()))?
            );
            l.set_nonblocking(true)
                .map_err(|e| DemoError::Setup(e.to_string()))?;
            let listener = tokio::net::TcpListener::from_std(l)
                .map_err(|e| DemoError::Setup(e.to_string()))?;
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let n = node.clone();
            tasks.push(tokio::spawn(async move {
                let sync = crate::sync::spawn(n.clone());
                if let Err(e) = crate::server::serve(listener, n, sync, async {
                    let _ = rx.await;
                })
                .await
                {
                    tracing::error!(error = %e, "node stopped");
                }
            }));
            stops.push(tx);
            progress(&format!("started {m:<11} at {url}"));
            nodes.insert(m.to_string(), (node, url));
        }
        Ok(Demo {
            dir,
            _tmp: tmp,
            nodes,
            stops,
            tasks,
        })
    }

    /// An HTTPS client with a member's admin certificate.
    pub fn admin_client(&self, member: &str) -> Result<reqwest::Client, DemoError> {
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let keys = self.dir.join("keys");
        let err = |e: String| DemoError::Setup(e);
        let mut roots = rustls::RootCertStore::empty();
        for c in
            CertificateDer::pem_file_iter(keys.join("ca.pem")).map_err(|e| err(e.to_string()))?
        {
            roots
                .add(c.map_err(|e| err(e.to_string()))?)
                .map_err(|e| err(e.to_string()))?;
        }
        let certs: Vec<_> = CertificateDer::pem_file_iter(keys.join(member).join("admin.pem"))
            .map_err(|e| err(e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| err(e.to_string()))?;
        let key = PrivateKeyDer::from_pem_file(keys.join(member).join("admin-key.pem"))
            .map_err(|e| err(e.to_string()))?;
        let cc = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| err(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .map_err(|e| err(e.to_string()))?;
        reqwest::Client::builder()
            .tls_backend_preconfigured(cc)
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| err(e.to_string()))
    }

    /// Stops every node and waits for them.
    pub async fn stop(self) {
        for s in self.stops {
            let _ = s.send(());
        }
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// The generator settings of a vendor.
pub fn vendor_workload(member: &str, opts: &DemoOptions) -> GenOptions {
    GenOptions {
        count: opts.count,
        seed: 2026,
        origin: member.into(),
        identity: None,
        overlap: opts.overlap,
        tlp: None,
    }
}

/// What each node must hold once converged: every object of its own, plus the others'
/// clear/green ones; amber also between the coordinator and the vendors (every vendor
/// lists the coordinator for amber, and the coordinator lists every vendor).
fn expected_counts(bundles: &BTreeMap<String, serde_json::Value>) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for m in MEMBERS {
        let mut n = 0;
        for (origin, b) in bundles {
            let objs = b["objects"].as_array().map(Vec::as_slice).unwrap_or(&[]);
            if origin == m || m == COORDINATOR || origin == COORDINATOR {
                n += objs.len();
            } else {
                let r = TlpResolver::for_objects(objs);
                n += objs
                    .iter()
                    .filter(|o| r.effective_level(o, TlpLevel::Amber).is_transitive())
                    .count();
            }
        }
        out.insert(m.to_string(), n);
    }
    out
}

/// Runs the demo: publish, converge, summarise. Returns the report text.
pub async fn run(
    demo: &Demo,
    opts: &DemoOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<String, DemoError> {
    let publishers = if opts.coordinator_publishes {
        &MEMBERS[..]
    } else {
        &MEMBERS[..4]
    };
    // Generate and serialise every bundle, and count what each node must end up
    // holding, first: the clock measures the federation, not the demo's own work.
    let mut prepared = Vec::new();
    let mut bundles = BTreeMap::new();
    for m in publishers {
        let b = bundle(&vendor_workload(m, opts));
        let body = serde_json::to_vec(&b).map_err(|e| DemoError::Publish {
            member: m.to_string(),
            message: e.to_string(),
        })?;
        prepared.push((m.to_string(), body, demo.admin_client(m)?));
        bundles.insert(m.to_string(), b);
    }
    let expected = expected_counts(&bundles);
    drop(bundles);
    let started = Instant::now();
    let cpu_at_start = process_cpu_secs();
    // The vendors publish at the same time, each through its own node's API.
    let mut publishes = Vec::new();
    for (member, body, client) in prepared {
        let (_, url) = &demo.nodes[member.as_str()];
        let url = format!("{url}/api/v1/bundles");
        let max_body = demo.nodes[member.as_str()].0.config().limits.max_body_bytes;
        publishes.push((
            member.clone(),
            tokio::spawn(async move {
                let t = Instant::now();
                let fail = |message: String| DemoError::Publish {
                    member: member.clone(),
                    message,
                };
                // In parts the node accepts (as `synergia push` sends them), one
                // after the other.
                let parts = crate::stix::split::split(&body, max_body - max_body / 10)
                    .map_err(|e| fail(e.to_string()))?
                    .parts;
                drop(body);
                let (mut published, mut envelopes) = (0, 0);
                for part in parts {
                    let resp = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(part)
                        .send()
                        .await
                        .map_err(|e| fail(e.to_string()))?;
                    let status = resp.status();
                    let report: serde_json::Value =
                        resp.json().await.map_err(|e| fail(e.to_string()))?;
                    if !status.is_success() {
                        return Err(fail(report.to_string()));
                    }
                    published += report["published"].as_u64().unwrap_or(0);
                    envelopes += report["envelopes"].as_array().map_or(0, Vec::len);
                }
                Ok((
                    serde_json::json!({"published": published, "envelopes": envelopes}),
                    t.elapsed(),
                ))
            }),
        ));
    }
    for (m, task) in publishes {
        let (report, took) = task.await.map_err(|e| DemoError::Publish {
            member: m.clone(),
            message: e.to_string(),
        })??;
        progress(&format!(
            "{m:<11} published {} objects in {} signed envelopes ({:.2} s)",
            report["published"],
            report["envelopes"],
            took.as_secs_f64()
        ));
    }
    progress("waiting for the federation to converge ...");
    let mut last_report = Instant::now();
    loop {
        let mut done = true;
        let mut line = String::new();
        for m in MEMBERS {
            let held = demo_store(&demo.nodes[m].0)?.read().version_count();
            done &= held == expected[m];
            let _ = write!(line, " {m} {held}/{}", expected[m]);
        }
        // The shared green digest: what every member may hold alike.
        let d0 = demo_store(&demo.nodes[COORDINATOR].0)?
            .read()
            .shared_digest(TlpLevel::Green);
        let mut agree = true;
        for m in MEMBERS {
            agree &= demo_store(&demo.nodes[m].0)?
                .read()
                .shared_digest(TlpLevel::Green)
                == d0;
        }
        if done && agree {
            progress(&format!(
                "converged in {:.2} s after the first publish:{line}",
                started.elapsed().as_secs_f64()
            ));
            if let (Some(a), Some(b)) = (cpu_at_start, process_cpu_secs()) {
                progress(&format!(
                    "the five nodes used {:.2} CPU-s from the first publish to convergence",
                    b - a
                ));
            }
            break;
        }
        if started.elapsed() > opts.timeout {
            return Err(DemoError::NoConvergence(opts.timeout, line));
        }
        if last_report.elapsed() > Duration::from_secs(2) {
            progress(&format!("  holding:{line}"));
            last_report = Instant::now();
        }
        // Every 10 ms: the figure is read to the hundredth of a second, and each check
        // is five counters and five digests read under the views' read locks.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The peer status printed next compares each peer's digests from its last check
    // (every 2 s) with ours: wait until every peer's check has run since convergence
    // and agrees, rather than a fixed 2.5 s; at most 3 s (it then shows what differs).
    let coordinator = &demo.nodes[COORDINATOR].0;
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        let peers = crate::node::peers::status::peer_statuses(coordinator);
        if peers
            .iter()
            .all(|p| !p.digests_match.is_empty() && p.digests_match.values().all(|&b| b))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(summary(demo, opts))
}

/// CPU time this process has used (user + system, every thread), from
/// `/proc/self/stat`; `None` where there is no such file.
///
/// Its ratio to the wall-clock time to convergence says whether the run was CPU-bound
/// (two busy cores give about 2). It is not a steadier figure than the wall-clock one
/// on a shared machine: on the development machine both moved by a third or more
/// between runs of the same code (docs/benchmarks.md).
fn process_cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) closed by the last ')':
    // state is field 3, utime and stime fields 14 and 15, in clock ticks (USER_HZ,
    // 100 on Linux).
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let mut f = rest.split_ascii_whitespace().skip(11);
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// A demo node's store (the demo runs every node on the embedded store).
fn demo_store(node: &Node) -> Result<&crate::store::Store, DemoError> {
    node.embedded("the demo")
        .map_err(|e| DemoError::Setup(e.to_string()))
}

/// The coordinator's consolidated summary and peer status.
pub fn summary(demo: &Demo, opts: &DemoOptions) -> String {
    let node = &demo.nodes[COORDINATOR].0;
    let mut out = String::new();
    let store = match demo_store(node) {
        Ok(s) => s,
        Err(e) => return e.to_string(),
    };
    let view = store.read();
    let _ = writeln!(out, "\n== Consolidated view at {COORDINATOR} ==");
    let _ = writeln!(
        out,
        "{} envelopes, {} objects (latest versions)",
        view.envelope_count(),
        view.object_count()
    );
    let mut by_type: BTreeMap<&str, BTreeMap<TlpLevel, usize>> = BTreeMap::new();
    for v in view.versions().iter().filter(|v| v.has(LATEST)) {
        *by_type
            .entry(view.type_name(v.type_ix))
            .or_default()
            .entry(v.tlp)
            .or_default() += 1;
    }
    let _ = write!(out, "\n{:<16}", "type");
    for l in ALL_LEVELS {
        let _ = write!(out, "{:>14}", l.as_str());
    }
    let _ = writeln!(out, "{:>10}", "total");
    for (t, levels) in &by_type {
        let _ = write!(out, "{t:<16}");
        for l in ALL_LEVELS {
            let _ = write!(out, "{:>14}", levels.get(&l).copied().unwrap_or(0));
        }
        let _ = writeln!(out, "{:>10}", levels.values().sum::<usize>());
    }
    drop(view);
    // Corroboration over every observable the vendors published.
    let mut values = BTreeSet::new();
    let publishers = if opts.coordinator_publishes {
        &MEMBERS[..]
    } else {
        &MEMBERS[..4]
    };
    for m in publishers {
        let w = vendor_workload(m, opts);
        for i in 0..w.count {
            values.insert(observable_value(&w, i).1);
        }
    }
    let values: Vec<String> = values.into_iter().collect();
    let results = store.lookup(&values, TlpLevel::Red).unwrap_or_default();
    let mut histogram: BTreeMap<usize, usize> = BTreeMap::new();
    let mut top: Vec<(usize, String, Vec<String>)> = Vec::new();
    for r in &results {
        *histogram.entry(r.corroboration).or_default() += 1;
        let mut origins: Vec<String> = r.hits.iter().flat_map(|h| h.origins.clone()).collect();
        origins.sort();
        origins.dedup();
        top.push((r.corroboration, r.key.clone().unwrap_or_default(), origins));
    }
    let _ = writeln!(
        out,
        "\nCorroboration (distinct members reporting an observable):"
    );
    for (c, n) in &histogram {
        let _ = writeln!(
            out,
            "  {c} member(s): {n:>7} observables {}",
            "#".repeat((n * 40 / values.len().max(1)).max(1))
        );
    }
    top.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let _ = writeln!(out, "\nTop corroborated observables:");
    for (c, k, o) in top.iter().take(10) {
        let _ = writeln!(out, "  {c}  {k:<60} {}", o.join(", "));
    }
    let _ = writeln!(out, "\n== Peer status at {COORDINATOR} ==");
    out.push_str(&crate::node::peers::status::render_table(
        &crate::node::peers::status::peer_statuses(node),
    ));
    out
}

/// How to explore a running demo (`--keep`).
pub fn explore_hint(demo: &Demo) -> String {
    let keys = demo.dir.join("keys");
    let k = |f: &str| keys.join(COORDINATOR).join(f).display().to_string();
    let url = &demo.nodes[COORDINATOR].1;
    format!(
        "\nThe federation keeps running (Ctrl-C to stop). Query the coordinator, e.g.:\n  \
         export SYNERGIA_NODE={url} SYNERGIA_CA={ca} SYNERGIA_CERT={cert} SYNERGIA_KEY={key}\n  \
         synergia status\n  synergia lookup <value>\n  synergia export --min-corroboration 2 | head\n  \
         curl --cacert {ca} --cert {cert} --key {key} {url}/taxii2/synergia/collections/\n\
         Files are in {dir}\n",
        ca = keys.join("ca.pem").display(),
        cert = k("admin.pem"),
        key = k("admin-key.pem"),
        dir = demo.dir.display(),
    )
}

#[cfg(test)]
mod tests {
    use super::process_cpu_secs;
    use std::time::Instant;

    /// The figure is this process's CPU time: a fixed amount of work on this thread
    /// (a chain of 100 million dependent multiply-adds: 0.1 – 1 CPU-s here, optimised or
    /// not) moves it by about that much, however long the thread waited for a core.
    #[test]
    fn process_cpu_counts_the_work_done() {
        let Some(before) = process_cpu_secs() else {
            // No /proc: the demo prints no CPU figure.
            return;
        };
        let wall = Instant::now();
        let mut x = 0u64;
        for _ in 0..100_000_000u32 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let used = process_cpu_secs().unwrap() - before;
        let elapsed = wall.elapsed().as_secs_f64();
        // A machine five times faster still takes 0.02 CPU-s; the other threads of the
        // test binary cannot add more than a few cores' worth of the elapsed time.
        assert!(used >= 0.02, "{used} CPU-s for the work");
        assert!(used <= elapsed * 64.0 + 0.02, "{used} CPU-s in {elapsed} s");
    }
}
