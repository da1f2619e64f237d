//! Connecting to a node as a local client: URL, CA, client certificate or bearer token,
//! from flags, environment variables or a client config file.

use anyhow::{Context as _, bail};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How to reach and authenticate to a node.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// Node URL, e.g. https://127.0.0.1:7105.
    #[arg(long = "node", env = "SYNERGIA_NODE", global = true)]
    node: Option<String>,
    /// Federation CA certificate (PEM) the node's certificate chains to.
    #[arg(long, env = "SYNERGIA_CA", global = true)]
    ca: Option<PathBuf>,
    /// Client certificate (PEM).
    #[arg(long, env = "SYNERGIA_CERT", global = true)]
    cert: Option<PathBuf>,
    /// Client private key (PEM, mode 0600).
    #[arg(long, env = "SYNERGIA_KEY", global = true)]
    key: Option<PathBuf>,
    /// File holding a bearer token (instead of a certificate).
    #[arg(long, env = "SYNERGIA_TOKEN_FILE", global = true)]
    token_file: Option<PathBuf>,
    /// A TOML file with `node`, `ca`, `cert`, `key` and/or `token_file`.
    #[arg(long, env = "SYNERGIA_CLIENT_CONFIG", global = true)]
    client_config: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    node: Option<String>,
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    token_file: Option<PathBuf>,
}

/// A connected client.
pub struct NodeClient {
    /// Base URL.
    pub url: String,
    /// HTTP client.
    pub http: reqwest::Client,
    token: Option<String>,
}

impl ClientArgs {
    /// Builds the client, merging flags/env over the client config file.
    pub fn connect(&self) -> anyhow::Result<NodeClient> {
        let file: FileConfig = match &self.client_config {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read client config {}", p.display()))?;
                let mut f: FileConfig = toml::from_str(&text)
                    .with_context(|| format!("client config {}", p.display()))?;
                let base = p.parent().unwrap_or(Path::new("."));
                for path in [&mut f.ca, &mut f.cert, &mut f.key, &mut f.token_file]
                    .into_iter()
                    .flatten()
                {
                    if path.is_relative() {
                        *path = base.join(&*path);
                    }
                }
                f
            }
            None => FileConfig::default(),
        };
        let url = self
            .node
            .clone()
            .or(file.node)
            .context("no node URL: give --node, SYNERGIA_NODE or a client config")?;
        let ca = self
            .ca
            .clone()
            .or(file.ca)
            .context("no CA certificate: give --ca or SYNERGIA_CA")?;
        let cert = self.cert.clone().or(file.cert);
        let key = self.key.clone().or(file.key);
        let token_file = self.token_file.clone().or(file.token_file);
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(&ca)
            .with_context(|| format!("cannot read CA {}", ca.display()))?
        {
            roots
                .add(c.with_context(|| format!("bad certificate in {}", ca.display()))?)
                .with_context(|| format!("unusable CA certificate in {}", ca.display()))?;
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
        let tls = match (cert, key) {
            (Some(c), Some(k)) => {
                let certs: Vec<_> = CertificateDer::pem_file_iter(&c)
                    .with_context(|| format!("cannot read certificate {}", c.display()))?
                    .collect::<Result<_, _>>()
                    .with_context(|| format!("bad certificate in {}", c.display()))?;
                let pem = synergia::keys::read_private(&k)?;
                let key = PrivateKeyDer::from_pem_slice(pem.as_bytes())
                    .map_err(|_| anyhow::anyhow!("{}: not a PEM private key", k.display()))?;
                builder.with_client_auth_cert(certs, key)?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => bail!("give both --cert and --key, or neither"),
        };
        let token = match token_file {
            Some(p) => Some(synergia::keys::read_private(&p)?.trim().to_string()),
            None => None,
        };
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()?;
        Ok(NodeClient {
            url: url.trim_end_matches('/').to_string(),
            http,
            token,
        })
    }
}

impl NodeClient {
    /// POSTs `body` as JSON to `path` and returns the node's JSON answer; an answer
    /// other than 200 is an error saying what the node said. For one-shot commands
    /// (its own single-threaded runtime).
    pub fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let req = self.request(reqwest::Method::POST, path).json(body);
        let (status, v) = rt.block_on(self.json(req))?;
        if status != 200 {
            bail!(node_error(status, &v));
        }
        Ok(v)
    }

    /// A request to `path` with authentication.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.url));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// Sends and returns the JSON answer, turning error answers into errors that say
    /// what the node said.
    pub async fn json(
        &self,
        req: reqwest::RequestBuilder,
    ) -> anyhow::Result<(u16, serde_json::Value)> {
        self.try_json(req).await.map_err(|u| match u {
            Unanswered::Lost(m) | Unanswered::Unreachable(m) => {
                anyhow::anyhow!("cannot reach the node at {}: {m}", self.url)
            }
        })
    }

    /// [`NodeClient::json`], telling a node that could not be reached from a
    /// connection lost once the request was under way.
    pub async fn try_json(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<(u16, serde_json::Value), Unanswered> {
        let resp = req.send().await.map_err(|e| {
            let mut msg = e.to_string();
            let mut s = std::error::Error::source(&e);
            while let Some(x) = s {
                msg.push_str(": ");
                msg.push_str(&x.to_string());
                s = x.source();
            }
            if e.is_connect() || e.is_timeout() {
                Unanswered::Unreachable(msg)
            } else {
                Unanswered::Lost(msg)
            }
        })?;
        let status = resp.status().as_u16();
        let body = resp
            .bytes()
            .await
            .map_err(|e| Unanswered::Lost(e.to_string()))?;
        let v: serde_json::Value = serde_json::from_slice(&body)
            .unwrap_or_else(|_| serde_json::json!({"raw": String::from_utf8_lossy(&body)}));
        Ok((status, v))
    }
}

/// A request that got no answer.
#[derive(Debug)]
pub enum Unanswered {
    /// No connection (refused, no route, timed out).
    Unreachable(String),
    /// The connection closed while the request was sent or the answer read. A node
    /// closes the connection of a body far over its `max_body_bytes` (after
    /// answering 413, which the client may not get to read).
    Lost(String),
}

/// Error text from a node's JSON error answer.
pub fn node_error(status: u16, v: &serde_json::Value) -> String {
    let code = v
        .get("error")
        .or_else(|| v.get("error_code"))
        .and_then(|c| c.as_str())
        .unwrap_or("error");
    let msg = v
        .get("message")
        .or_else(|| v.get("description"))
        .and_then(|c| c.as_str())
        .unwrap_or("");
    format!("the node answered {status} [{code}] {msg}")
}
