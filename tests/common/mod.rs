//! Test harness shared by the integration tests: a temporary federation made by
//! `synergia keys init-federation`, nodes started in-process (real TLS on loopback) or
//! as real `synergia serve` processes, and HTTPS clients with chosen identities.
#![allow(dead_code)]

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use synergia::config::{Client, Config, Role};
use synergia::keys::federation::{InitOptions, init_federation};
use synergia::keys::tls::{self as ktls, CertRole, CertifiedKey, Validity};
use synergia::node::Node;
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
            amber_hubs: amber_hubs.iter().map(|s| s.to_string()).collect(),
            years: 1,
            example: false,
        };
        let report = init_federation(&opts).unwrap();
        // Rewrite every port (init-federation numbers them from base_port).
        for (i, port) in ports.iter().enumerate() {
            for (_, path) in &report.configs {
                let text = std::fs::read_to_string(path).unwrap();
                let text = text.replace(
                    &format!("127.0.0.1:{}", 20000 + i),
                    &format!("127.0.0.1:{port}"),
                );
                std::fs::write(path, text).unwrap();
            }
            let roster_path = dir.path().join("keys/roster.json");
            let text = std::fs::read_to_string(&roster_path).unwrap();
            let text = text.replace(
                &format!("127.0.0.1:{}\"", 20000 + i),
                &format!("127.0.0.1:{port}\""),
            );
            std::fs::write(&roster_path, text).unwrap();
        }
        Federation {
            dir,
            members: members.iter().map(|s| s.to_string()).collect(),
            tokens: report.tokens,
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
        let node = Arc::new(Node::open(cfg).unwrap());
        let listener = StdListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let n = node.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::from_std(listener).unwrap();
                synergia::server::serve(l, n, async {
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
    let cc = match identity {
        Some(id) => {
            let certs: Vec<_> = CertificateDer::pem_slice_iter(id.cert_pem.as_bytes())
                .map(|c| c.unwrap())
                .collect();
            let key = PrivateKeyDer::from_pem_slice(id.key_pem.as_bytes()).unwrap();
            builder.with_client_auth_cert(certs, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    reqwest::Client::builder()
        .tls_backend_preconfigured(cc)
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .unwrap()
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
