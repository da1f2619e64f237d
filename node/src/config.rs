//! The node's configuration file (TOML, `schema/config.schema.json`).
//!
//! One documented struct with `#[serde(default)]` everywhere a safe default exists, so
//! a minimal config names only who the node is and where its keys are. Relative paths
//! are resolved against the directory of the config file, so a federation directory
//! can be moved as a whole.

use crate::stix::tlp::TlpLevel;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Why a config cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The TOML does not match the format (the message names the key).
    #[error("config {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong, with the key and position.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("config {path}: {key}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// The offending key.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// A node's configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This node's member name (must be in the roster).
    pub member: String,
    /// Where the evidence log and indexes live.
    pub data_dir: PathBuf,
    /// The federation roster (JSON).
    pub roster: PathBuf,
    /// The federation's membership log (protocol §12). When set, the roster is the
    /// one at the log's head and `roster` is not read; the log is read again when it
    /// changes, and a log that does not extend the one in force (a fork, an entry
    /// removed) is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub membership_log: Option<PathBuf>,
    /// TLP level for objects that carry no TLP marking.
    #[serde(default = "default_tlp")]
    pub default_tlp: TlpLevel,
    /// Listening socket.
    pub listen: Listen,
    /// TLS material.
    pub tls: Tls,
    /// The key this node signs its own publishes with.
    pub signing: Signing,
    /// Peer members this node exchanges envelopes with.
    #[serde(default)]
    pub peers: Vec<Peer>,
    /// Also exchange envelopes with every roster member that `[[peers]]` does not
    /// list, at the roster's `node_url` and without this node's amber. The peer set
    /// then follows the roster as it is reloaded: a member added is synced with at
    /// once, a removed one is not (nor is its certificate let in).
    #[serde(default)]
    pub peers_from_roster: bool,
    /// Local clients (pipelines, analysts, operators).
    #[serde(default)]
    pub clients: Vec<Client>,
    /// Storage knobs.
    #[serde(default)]
    pub store: StoreSettings,
    /// Request and connection limits.
    #[serde(default)]
    pub limits: Limits,
    /// The file it was read from (reloaded from there, see `node::live`).
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// Request and connection limits (safe defaults; every one can be raised).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body, bytes (413 past it).
    pub max_body_bytes: usize,
    /// Time allowed to receive request headers, seconds (slow-loris defence).
    pub header_timeout_secs: u64,
    /// Time allowed for a whole request, seconds.
    pub request_timeout_secs: u64,
    /// Time allowed for a TLS handshake, seconds.
    pub handshake_timeout_secs: u64,
    /// Simultaneous connections; further ones are closed at once.
    pub max_connections: usize,
    /// Largest TAXII page (`limit` is capped to it).
    pub taxii_max_page: usize,
    /// TAXII page size when the client gives no `limit`.
    pub taxii_default_page: usize,
    /// Publishes (node API and TAXII) processed at once; further ones wait before
    /// their body is read. A publish holds its body and its parsed objects (several
    /// times the body) in memory, so this and `max_body_bytes` bound the memory that
    /// publishing can take, however many clients publish at once. Publishing already
    /// uses every core, so more at once would not be faster.
    pub max_concurrent_publishes: usize,
    /// Publishes with more objects than this are checked and stored this many objects
    /// at a time, so that only one window's parsed objects are in memory (the parsed
    /// form takes several times the text). Smaller publishes are parsed once, whole.
    pub publish_window_objects: usize,
    /// Time allowed for a whole request to a peer (a feed page, a push, a digest),
    /// seconds: a peer that sends its answer slowly, or never finishes it, is cut off
    /// after it and backed off like any other failing peer.
    pub peer_timeout_secs: u64,
    /// Exports (`GET /api/v1/export`) running at once; a further one is answered 503
    /// `too-many-exports`. An export reads the whole view, so a few readers asking for
    /// it again and again must not take every core.
    pub max_concurrent_exports: usize,
    /// Time a streamed response body may wait for the client to read it, seconds; a
    /// client that stops reading for longer is cut off, and with it whatever the
    /// response held.
    pub response_stall_secs: u64,
    /// Bytes of request bodies (publishes, pushes, lookups) held in memory at once,
    /// over every request; a body that would pass it waits (up to the request
    /// timeout) for others to finish, then is refused 503 `busy`. With
    /// `max_body_bytes` this bounds what concurrent large bodies can take.
    pub max_body_memory_bytes: usize,
    /// Connections from one IP address that have not (yet) presented a client
    /// certificate (TLS handshakes under way, bearer-token clients); further ones are
    /// closed at once. Connections with a certificate are not counted.
    pub max_connections_per_address: usize,
    /// Connections without a client certificate (bearer-token clients), over every
    /// address, after the handshake; the rest of `max_connections` is kept for callers
    /// with a certificate (peers, certificate clients).
    pub max_connections_without_certificate: usize,
    /// A connection with no request under way for this long is closed, seconds
    /// (HTTP/1 keep-alive and HTTP/2 alike).
    pub idle_timeout_secs: u64,
    /// Longest life of a connection, seconds: it is then closed gracefully (requests
    /// under way finish). Also closed: at its client certificate's expiry, and when
    /// the node's TLS material (CA, certificate) is reloaded, so that a connection
    /// never keeps an identity the node would no longer accept.
    pub max_connection_age_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 64 << 20,
            header_timeout_secs: 10,
            request_timeout_secs: 120,
            handshake_timeout_secs: 10,
            max_connections: 1024,
            taxii_max_page: 10_000,
            taxii_default_page: 1000,
            peer_timeout_secs: 60,
            max_concurrent_publishes: 2,
            publish_window_objects: 20_000,
            max_concurrent_exports: 4,
            response_stall_secs: 30,
            max_body_memory_bytes: 256 << 20,
            max_connections_per_address: 64,
            max_connections_without_certificate: 256,
            idle_timeout_secs: 120,
            max_connection_age_secs: 3600,
        }
    }
}

/// Storage knobs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// When the index cannot be opened (after a crash or disk fault), rebuild it from
    /// the evidence log at start instead of refusing to start.
    pub auto_rebuild: bool,
    /// Page cache of the index engine, in MiB.
    pub cache_mb: u64,
    /// After the index was rebuilt over the evidence log (a restore from backup), how
    /// long the node waits for peers that do not answer, seconds, while it takes its
    /// own envelopes back from them before signing again (publishes answer 503
    /// `recovering` meanwhile).
    pub recovery_wait_secs: u64,
    /// Where the node keeps what it stores.
    pub backend: StoreBackend,
    /// With `backend = "postgres"`: the database, `postgresql://USER@HOST:PORT/DB`
    /// (`SYNERGIA_STORE_URL` overrides it). It never holds the password (see
    /// `password_file`). TLS is required unless the URL says `sslmode=disable` or
    /// names a Unix socket directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// File holding the database password, mode 0600 (`SYNERGIA_STORE_PASSWORD`
    /// overrides it): kept out of the config text, which operators copy and paste.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// CA certificates (PEM) the database server's certificate must chain to; the
    /// default is `tls.ca`, the federation's CA.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// Database connections this process keeps open at most.
    pub pool_size: usize,
}

/// Where a node keeps what it stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// The evidence log files and sled in `data_dir` (zero set-up).
    #[default]
    Embedded,
    /// A PostgreSQL database (`store.url`), which several `synergia serve` processes of
    /// one member can share.
    Postgres,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            auto_rebuild: false,
            cache_mb: 32,
            recovery_wait_secs: 120,
            backend: StoreBackend::Embedded,
            url: None,
            password_file: None,
            ca: None,
            pool_size: 16,
        }
    }
}

fn default_tlp() -> TlpLevel {
    TlpLevel::Amber
}

/// Listening socket.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    /// `host:port`, e.g. `127.0.0.1:7443`.
    pub address: String,
}

/// TLS material (PEM files).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// The federation CA certificate: the only root for peers and clients.
    pub ca: PathBuf,
    /// This node's certificate chain.
    pub cert: PathBuf,
    /// This node's TLS private key (mode 0600).
    pub key: PathBuf,
    /// The federation CA's certificate revocation list (PEM, `synergia keys
    /// revoke-cert` writes it): a client or peer certificate it names is refused at
    /// the handshake, inbound and outbound. Reloaded with the rest of the TLS files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl: Option<PathBuf>,
}

/// The signing key this node uses for its own envelopes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signing {
    /// Roster key id of `key_file`.
    pub key_id: String,
    /// PKCS#8 PEM ed25519 private key (mode 0600).
    pub key_file: PathBuf,
}

/// A peer member.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    /// Member name in the roster.
    pub name: String,
    /// Base URL of its node; defaults to the roster's `node_url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Whether this node's own amber and amber+strict envelopes go to this peer.
    #[serde(default)]
    pub amber: bool,
}

/// A role a local client can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Publish bundles as this member.
    Publish,
    /// Read the consolidated view, lookups and feeds.
    Read,
    /// See peer status, stats and metrics.
    Operate,
    /// Scrape `/metrics` and nothing else (a Prometheus server).
    Metrics,
}

/// A local client, identified by certificate or bearer token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Client {
    /// Client name: matches the certificate SAN `synergia://client/<name>`.
    pub name: String,
    /// What it may do.
    pub roles: Vec<Role>,
    /// SHA-256 (hex) of its bearer token, if it uses one. Tokens are never stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_sha256: Option<String>,
    /// Most restrictive TLP level this client may read. The default is `green`
    /// (least privilege): a client reads amber or red only when its entry says so.
    #[serde(default = "max_tlp_default")]
    pub max_tlp: TlpLevel,
}

fn max_tlp_default() -> TlpLevel {
    TlpLevel::Green
}

impl Config {
    /// Reads a config file and resolves relative paths against its directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: p.clone(),
            source,
        })?;
        let mut cfg: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: p.clone(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        cfg.resolve_paths(base);
        cfg.source = Some(path.to_path_buf());
        cfg.check().map_err(|(key, message)| ConfigError::Invalid {
            path: p,
            key,
            message,
        })?;
        Ok(cfg)
    }

    fn resolve_paths(&mut self, base: &Path) {
        for p in [
            &mut self.data_dir,
            &mut self.roster,
            &mut self.tls.ca,
            &mut self.tls.cert,
            &mut self.tls.key,
            &mut self.signing.key_file,
        ] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        for p in [
            self.tls.crl.as_mut(),
            self.membership_log.as_mut(),
            self.store.password_file.as_mut(),
            self.store.ca.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }

    fn check(&self) -> Result<(), (String, String)> {
        if !crate::roster::is_member_name(&self.member) {
            return Err((
                "member".into(),
                "must be lower-case letters, digits or '-'".into(),
            ));
        }
        if self.listen.address.parse::<std::net::SocketAddr>().is_err() {
            return Err((
                "listen.address".into(),
                format!(
                    "{:?} is not host:port (e.g. 127.0.0.1:7443)",
                    self.listen.address
                ),
            ));
        }
        let l = &self.limits;
        for (key, v) in [
            ("limits.max_body_bytes", l.max_body_bytes),
            ("limits.max_connections", l.max_connections),
            ("limits.taxii_max_page", l.taxii_max_page),
            ("limits.taxii_default_page", l.taxii_default_page),
            (
                "limits.max_concurrent_publishes",
                l.max_concurrent_publishes,
            ),
            ("limits.publish_window_objects", l.publish_window_objects),
            ("limits.max_concurrent_exports", l.max_concurrent_exports),
            ("limits.max_body_memory_bytes", l.max_body_memory_bytes),
            (
                "limits.max_connections_per_address",
                l.max_connections_per_address,
            ),
        ] {
            if v == 0 {
                return Err((key.into(), "must be greater than 0".into()));
            }
        }
        for (key, v) in [
            ("limits.header_timeout_secs", l.header_timeout_secs),
            ("limits.request_timeout_secs", l.request_timeout_secs),
            ("limits.handshake_timeout_secs", l.handshake_timeout_secs),
            ("limits.peer_timeout_secs", l.peer_timeout_secs),
            ("limits.response_stall_secs", l.response_stall_secs),
            ("limits.idle_timeout_secs", l.idle_timeout_secs),
            ("limits.max_connection_age_secs", l.max_connection_age_secs),
        ] {
            if v == 0 {
                return Err((key.into(), "must be greater than 0".into()));
            }
        }
        if self.store.pool_size == 0 {
            return Err(("store.pool_size".into(), "must be greater than 0".into()));
        }
        if l.max_body_memory_bytes < l.max_body_bytes {
            return Err((
                "limits.max_body_memory_bytes".into(),
                format!(
                    "must be at least limits.max_body_bytes ({}), or no largest body could ever be read",
                    l.max_body_bytes
                ),
            ));
        }
        for (i, c) in self.clients.iter().enumerate() {
            if let Some(h) = &c.token_sha256
                && (h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                return Err((
                    format!("clients[{i}].token_sha256"),
                    "must be 64 hex digits (sha256 of the token)".into(),
                ));
            }
        }
        Ok(())
    }
}
