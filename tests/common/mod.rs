//! Test harness shared by the integration tests: a temporary federation made by
//! `synergia keys init-federation`, nodes started in-process (real TLS on loopback) or
//! as real `synergia serve` processes, and HTTPS clients with chosen identities.
#![allow(dead_code)]

pub mod pg;
pub mod pg_bin;

use serde_json::Value;
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use synergia::config::{Client, Config, Role};
use synergia::envelope::{Envelope, EnvelopeMeta, Signer};
use synergia::keys::federation::{InitOptions, init_federation};
use synergia::keys::tls::{self as ktls, CertRole, CertifiedKey, Validity};
use synergia::node::Node;
use synergia::stix::timestamp::Timestamp;
use synergia::stix::tlp::TlpLevel;

/// A temporary federation on disk.
pub struct Federation {
    /// Holds every file; removed on drop.
    pub dir: tempfile::TempDir,
    /// Member names.
    pub members: Vec<String>,
    /// Admin bearer tokens by member.
    pub tokens: Vec<(String, String)>,
}

/// Free loopback ports, reserved by binding then released.
pub fn free_ports(n: usize) -> Vec<u16> {
    let ls: Vec<StdListener> = (0..n)
        .map(|_| StdListener::bind("127.0.0.1:0").unwrap())
        .collect();
    ls.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

impl Federation {
    /// Creates a federation whose member `i` listens on 127.0.0.1:`ports[i]`.
    pub fn new(members: &[&str], amber_hubs: &[&str]) -> Federation {
        let dir = tempfile::tempdir().unwrap();
        let ports = free_ports(members.len());
        let opts = InitOptions {
            members: members.iter().map(|s| s.to_string()).collect(),
            federation: "test".into(),
            out: dir.path().join("keys"),
            config_out: dir.path().join("config"),
            data_root: dir.path().join("data"),
            base_port: 20000,
            ports: ports.clone(),
            urls: vec![],
            hosts: vec![],
            amber_hubs: amber_hubs.iter().map(|s| s.to_string()).collect(),
            years: 1,
            example: false,
            force: false,
            threshold: None,
        };
        let report = init_federation(&opts).unwrap();
        // These tests choose each node's peers by editing `[[peers]]`; a node that
        // also took every roster member as a peer would not do what they describe.
        // (tests/operations.rs runs the generated configs as they are.)
        for (_, path) in &report.configs {
            let text = std::fs::read_to_string(path).unwrap();
            let text = text.replace("peers_from_roster = true", "peers_from_roster = false");
            std::fs::write(path, text).unwrap();
        }
        Federation {
            dir,
            members: members.iter().map(|s| s.to_string()).collect(),
            tokens: report
                .tokens
                .into_iter()
                .map(|(m, t)| (m, t.admin))
                .collect(),
        }
    }

    /// The config file of a member.
    pub fn config_path(&self, member: &str) -> PathBuf {
        self.dir
            .path()
            .join("config")
            .join(format!("{member}.toml"))
    }

    /// The loaded config of a member.
    pub fn config(&self, member: &str) -> Config {
        Config::load(&self.config_path(member)).unwrap()
    }

    /// The federation CA certificate file.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("keys/ca.pem")
    }

    /// The federation CA.
    pub fn ca(&self) -> CertifiedKey {
        ktls::load_ca(&self.ca_path(), &self.dir.path().join("keys/ca-key.pem")).unwrap()
    }

    /// A member's admin token.
    pub fn token(&self, member: &str) -> String {
        self.tokens
            .iter()
            .find(|(m, _)| m == member)
            .unwrap()
            .1
            .clone()
    }

    /// A member's admin client certificate.
    pub fn admin_identity(&self, member: &str) -> CertifiedKey {
        let d = self.dir.path().join("keys").join(member);
        CertifiedKey {
            cert_pem: std::fs::read_to_string(d.join("admin.pem")).unwrap(),
            key_pem: std::fs::read_to_string(d.join("admin-key.pem")).unwrap(),
        }
    }

    /// A member's node certificate (its peer identity).
    pub fn node_identity(&self, member: &str) -> CertifiedKey {
        let d = self.dir.path().join("keys").join(member);
        CertifiedKey {
            cert_pem: std::fs::read_to_string(d.join("node.pem")).unwrap(),
            key_pem: std::fs::read_to_string(d.join("node-key.pem")).unwrap(),
        }
    }

    /// A client certificate from the federation CA.
    pub fn client_cert(&self, name: &str, validity: Validity) -> CertifiedKey {
        ktls::issue(&self.ca(), CertRole::Client, name, &[], validity).unwrap()
    }

    /// A member's envelope signer, from its config and the roster.
    pub fn signer(&self, member: &str) -> Signer {
        let cfg = self.config(member);
        let roster = synergia::roster::Roster::load(&cfg.roster).unwrap();
        Signer {
            origin: member.into(),
            origin_identity: roster.member(member).unwrap().identity.clone(),
            key_id: cfg.signing.key_id.clone(),
            key: synergia::keys::signing::load(&cfg.signing.key_file).unwrap(),
        }
    }
}

/// Signs `bundle` as `s` at `tlp` (no recipients); the envelope as JSON.
pub fn signed_envelope(
    s: &Signer,
    bundle: Value,
    seq: u64,
    tlp: TlpLevel,
    signed_at: Timestamp,
) -> Value {
    let e = Envelope::sign(
        bundle,
        s,
        EnvelopeMeta {
            seq,
            signed_at,
            tlp,
            recipients: vec![],
        },
    )
    .unwrap();
    Value::Object(e.as_json().clone())
}

/// Adds a local client with roles to a config.
pub fn add_client(cfg: &mut Config, name: &str, roles: &[Role], max_tlp: TlpLevel) {
    cfg.clients.push(Client {
        name: name.into(),
        roles: roles.to_vec(),
        token_sha256: None,
        max_tlp,
    });
}

/// A node running in this process on an ephemeral port.
pub struct RunningNode {
    /// `https://127.0.0.1:<port>`.
    pub url: String,
    /// The node.
    pub node: Arc<Node>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningNode {
    /// Opens the node from `cfg` and serves it on 127.0.0.1:0.
    pub fn start(cfg: Config) -> RunningNode {
        RunningNode::start_on(cfg, "127.0.0.1:0")
    }

    /// Opens the node from `cfg` and serves it on its configured `listen.address`, the
    /// one its peers have in the roster, so sync between in-process nodes works.
    pub fn start_at_roster_address(cfg: Config) -> RunningNode {
        let address = cfg.listen.address.clone();
        RunningNode::start_on(cfg, &address)
    }

    fn start_on(cfg: Config, address: &str) -> RunningNode {
        // The node opens within the runtime that serves it: a node on PostgreSQL
        // keeps its connections there.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let node = {
            let _in = rt.enter();
            Arc::new(Node::open(cfg).unwrap())
        };
        let listener = StdListener::bind(address).unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let n = node.clone();
        let thread = std::thread::spawn(move || {
            rt.block_on(async move {
                let l = tokio::net::TcpListener::from_std(listener).unwrap();
                let sync = synergia::sync::spawn(n.clone());
                synergia::server::serve(l, n, sync, async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
            });
        });
        RunningNode {
            url,
            node,
            stop: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An HTTPS client trusting `ca_pem`, presenting `identity` if given.
pub fn https_client(ca: &Path, identity: Option<&CertifiedKey>) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(rustls_client_config(ca, identity))
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .unwrap()
}

/// A TLS client configuration trusting `ca`, presenting `identity` if given.
pub fn rustls_client_config(ca: &Path, identity: Option<&CertifiedKey>) -> rustls::ClientConfig {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    match identity {
        Some(id) => {
            let certs: Vec<_> = CertificateDer::pem_slice_iter(id.cert_pem.as_bytes())
                .map(|c| c.unwrap())
                .collect();
            let key = PrivateKeyDer::from_pem_slice(id.key_pem.as_bytes()).unwrap();
            builder.with_client_auth_cert(certs, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    }
}

/// The TAXII media type.
pub const TAXII: &str = "application/taxii+json;version=2.1";

/// A blocking runtime for tests.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The committed example federation (`keys-example/`, `config/`), copied into a
/// temporary directory with private keys made 0600 (git does not keep modes), fresh
/// loopback ports and its own data directories.
pub struct ExampleFederation {
    /// Holds everything.
    pub dir: tempfile::TempDir,
    /// Member names, in config order.
    pub members: Vec<String>,
    /// Port of each member.
    pub ports: Vec<u16>,
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        let t = to.join(e.file_name());
        if p.is_dir() {
            copy_dir(&p, &t);
        } else {
            std::fs::copy(&p, &t).unwrap();
        }
    }
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

impl ExampleFederation {
    /// Copies the example federation.
    pub fn new() -> ExampleFederation {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        copy_dir(
            &workspace().join("keys-example"),
            &dir.path().join("keys-example"),
        );
        copy_dir(&workspace().join("config"), &dir.path().join("config"));
        let members: Vec<String> = [
            "groupib",
            "trendmicro",
            "kaspersky",
            "teamcymru",
            "interpol",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for m in &members {
            for f in ["node-key.pem", "admin-key.pem", "admin-token"] {
                let p = dir.path().join("keys-example").join(m).join(f);
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
            }
            for e in std::fs::read_dir(dir.path().join("keys-example").join(m))
                .unwrap()
                .flatten()
            {
                if e.file_name().to_string_lossy().starts_with("signing-") {
                    std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(0o600))
                        .unwrap();
                }
            }
        }
        let ports = free_ports(members.len());
        let mut files: Vec<PathBuf> = members
            .iter()
            .map(|m| dir.path().join("config").join(format!("{m}.toml")))
            .collect();
        files.push(dir.path().join("keys-example/roster.json"));
        for f in files {
            let mut text = std::fs::read_to_string(&f).unwrap();
            for (i, p) in ports.iter().enumerate() {
                text = text.replace(
                    &format!("127.0.0.1:{}", 7101 + i),
                    &format!("127.0.0.1:{p}"),
                );
            }
            std::fs::write(&f, text).unwrap();
        }
        ExampleFederation {
            dir,
            members,
            ports,
        }
    }

    /// A member's config file.
    pub fn config_path(&self, m: &str) -> PathBuf {
        self.dir.path().join("config").join(format!("{m}.toml"))
    }

    /// The CA file.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("keys-example/ca.pem")
    }

    /// A member's base URL.
    pub fn url(&self, m: &str) -> String {
        let i = self.members.iter().position(|x| x == m).unwrap();
        format!("https://127.0.0.1:{}", self.ports[i])
    }

    /// A member's admin client identity.
    pub fn admin(&self, m: &str) -> CertifiedKey {
        let d = self.dir.path().join("keys-example").join(m);
        CertifiedKey {
            cert_pem: std::fs::read_to_string(d.join("admin.pem")).unwrap(),
            key_pem: std::fs::read_to_string(d.join("admin-key.pem")).unwrap(),
        }
    }

    /// A member's node identity (what it presents to peers).
    pub fn node_identity(&self, m: &str) -> CertifiedKey {
        let d = self.dir.path().join("keys-example").join(m);
        CertifiedKey {
            cert_pem: std::fs::read_to_string(d.join("node.pem")).unwrap(),
            key_pem: std::fs::read_to_string(d.join("node-key.pem")).unwrap(),
        }
    }
}

/// A `synergia serve` process; killed on drop.
pub struct NodeProcess {
    /// Member.
    pub member: String,
    child: Option<std::process::Child>,
}

impl NodeProcess {
    /// Starts `synergia serve --config` for a member of the example federation.
    pub fn start(bin: &Path, fed: &ExampleFederation, m: &str) -> NodeProcess {
        NodeProcess::spawn(
            bin,
            m,
            &fed.config_path(m),
            &fed.url(m),
            &fed.ca_path(),
            &fed.dir.path().join(format!("{m}.log")),
        )
    }

    /// Starts `synergia serve --config CONFIG` and waits until `URL/healthz` answers.
    pub fn spawn(
        bin: &Path,
        m: &str,
        config: &Path,
        url: &str,
        ca: &Path,
        log: &Path,
    ) -> NodeProcess {
        NodeProcess::spawn_with_env(bin, m, config, url, ca, log, &[])
    }

    /// [`NodeProcess::spawn`] with more environment variables (the test switches).
    pub fn spawn_with_env(
        bin: &Path,
        m: &str,
        config: &Path,
        url: &str,
        ca: &Path,
        log: &Path,
        env: &[(String, String)],
    ) -> NodeProcess {
        let log_path = log;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = std::process::Command::new(bin)
            .arg("serve")
            .arg("--config")
            .arg(config)
            .env("SYNERGIA_LOG", "info")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        NodeProcess::wait_ready(child, m, url, ca, Some(log_path.to_path_buf()))
    }

    /// Starts `synergia serve --config CONFIG` logging at `level`, with its stdout and
    /// stderr collected through pipes into the returned buffer (pipes are not files:
    /// no file-size limit or full disk applies to them).
    pub fn spawn_captured(
        bin: &Path,
        m: &str,
        config: &Path,
        url: &str,
        ca: &Path,
        level: &str,
    ) -> (NodeProcess, Arc<std::sync::Mutex<Vec<u8>>>) {
        let mut child = std::process::Command::new(bin)
            .arg("serve")
            .arg("--config")
            .arg(config)
            .env("SYNERGIA_LOG", level)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = Arc::new(std::sync::Mutex::new(Vec::new()));
        let readers: Vec<Box<dyn std::io::Read + Send>> = vec![
            Box::new(child.stdout.take().unwrap()),
            Box::new(child.stderr.take().unwrap()),
        ];
        for mut r in readers {
            let out = out.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n) = r.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    out.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
        }
        (NodeProcess::wait_ready(child, m, url, ca, None), out)
    }

    /// Runs `cmd` (a `synergia serve …` made by the caller), its output appended to
    /// `log`, and waits until `URL/healthz` answers.
    pub fn spawn_command(
        mut cmd: std::process::Command,
        m: &str,
        url: &str,
        ca: &Path,
        log: &Path,
    ) -> NodeProcess {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = cmd
            .env("SYNERGIA_LOG", "info")
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        NodeProcess::wait_ready(child, m, url, ca, Some(log.to_path_buf()))
    }

    fn wait_ready(
        child: std::process::Child,
        m: &str,
        url: &str,
        ca: &Path,
        log: Option<PathBuf>,
    ) -> NodeProcess {
        let p = NodeProcess {
            member: m.to_string(),
            child: Some(child),
        };
        let ca = ca.to_path_buf();
        let url = format!("{url}/healthz");
        let name = m.to_string();
        // On a thread of its own: callers may be inside a runtime already.
        std::thread::spawn(move || {
            let client = https_client(&ca, None);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            rt().block_on(async {
                loop {
                    if let Ok(r) = client.get(&url).send().await
                        && r.status().is_success()
                    {
                        break;
                    }
                    if std::time::Instant::now() >= deadline {
                        let tail = log
                            .and_then(|l| std::fs::read(l).ok())
                            .map(|b| {
                                String::from_utf8_lossy(&b[b.len().saturating_sub(3000)..])
                                    .into_owned()
                            })
                            .unwrap_or_default();
                        panic!("{name} did not start within 30 s; its log ends:\n{tail}");
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            })
        })
        .join()
        .unwrap();
        p
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// SIGTERM, then waits up to `grace` for the process to exit. Returns whether it
    /// exited in time; if not, it is killed with SIGKILL.
    pub fn terminate(&mut self, grace: std::time::Duration) -> bool {
        let Some(mut c) = self.child.take() else {
            return true;
        };
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + grace;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
        false
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Pushes `envelopes` to the node at `node` as member `from` (its node certificate);
/// the per-envelope results.
pub async fn push_envelopes(
    fed: &Federation,
    node: &str,
    from: &str,
    envelopes: Vec<Value>,
) -> Vec<Value> {
    let c = https_client(&fed.ca_path(), Some(&fed.node_identity(from)));
    let r = c
        .post(format!("{node}/federation/v1/envelopes"))
        .json(&serde_json::json!({"envelopes": envelopes}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "push from {from}");
    r.json::<Value>().await.unwrap()["results"]
        .as_array()
        .unwrap()
        .clone()
}

/// GETs `url` (asking for TAXII, which the node API ignores): the status and the
/// body as JSON (a string when it is not JSON).
pub async fn get_json(c: &reqwest::Client, url: &str) -> (u16, Value) {
    let r = c.get(url).header("Accept", TAXII).send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Waits until `f` holds, checking every 100 ms, or fails naming `what` after `secs`.
pub async fn eventually(what: &str, secs: u64, mut f: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !f().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out ({secs} s) waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The reference Python as a TAXII client runs it: without the machine-wide CA bundle
/// variables, which make `requests` ignore the CA the client is given (a user
/// pointing the client at the federation CA has none of them).
pub fn taxii_client_python() -> Command {
    let mut c = Command::new(reference_python());
    for v in [
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
    ] {
        c.env_remove(v);
    }
    c
}

/// Path of a Python interpreter that has the OASIS reference tools installed,
/// creating the virtual environment on first use (`tests/py/setup.sh`).
///
/// The comparison tests must run in CI, so a missing Python is a failure, not a skip.
pub fn reference_python() -> PathBuf {
    let script = workspace().join("tests/py/setup.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .expect("run tests/py/setup.sh");
    assert!(
        out.status.success(),
        "tests/py/setup.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}
