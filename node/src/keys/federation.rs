//! `synergia keys init-federation | rotate | revoke | show`: the file layout of a
//! federation's key material.
//!
//! ```text
//! OUT/ca.pem, OUT/ca-key.pem              federation CA
//! OUT/roster.json                         members and their public signing keys
//! OUT/membership.jsonl                    the membership log: its genesis entry
//! OUT/<member>/node.pem, node-key.pem     the member node's TLS certificate
//! OUT/<member>/signing-<key_id>.pem       the member's ed25519 signing key(s)
//! OUT/<member>/admin.pem, admin-key.pem   a local client certificate (all roles)
//! OUT/<member>/admin-token                a local bearer token (all roles)
//! OUT/<member>/metrics.pem, metrics-key.pem, metrics-token
//!                                         a client that may only scrape /metrics
//! CONFIG_OUT/<member>.toml                the member node's config
//! ```

use super::signing;
use super::tls::{self, CertRole, Validity};
use super::{KeyError, io_err, write_private, write_public};
use crate::roster::{Member, Roster, RosterDocument, RosterKey, encode_public_key};
use crate::stix::timestamp::Timestamp;
use sha2::{Digest, Sha256};
use std::path::{Component, Path, PathBuf};

/// Options of `init-federation`.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Member names.
    pub members: Vec<String>,
    /// Federation (operation) name.
    pub federation: String,
    /// Where keys, certificates and the roster go.
    pub out: PathBuf,
    /// Where the member configs go.
    pub config_out: PathBuf,
    /// Where member data directories go.
    pub data_root: PathBuf,
    /// Member `i` listens on `base_port + i` on 127.0.0.1 …
    pub base_port: u16,
    /// … unless ports are given here, one per member …
    pub ports: Vec<u16>,
    /// … or a URL is given here for it: `(member, https://HOST:PORT)`. Its node then
    /// listens on HOST:PORT when HOST is an IP address, on every address at PORT
    /// otherwise, and its certificate names HOST.
    pub urls: Vec<(String, String)>,
    /// Further host names (or IP addresses) a member's node certificate names:
    /// `(member, host)`.
    pub hosts: Vec<(String, String)>,
    /// Members that exchange amber with everyone (the coordinator).
    pub amber_hubs: Vec<String>,
    /// Validity of certificates and signing keys.
    pub years: i32,
    /// Mark every generated config as example material.
    pub example: bool,
    /// Write into a non-empty `out` or `config_out` (overwriting a federation's CA,
    /// roster and configs there).
    pub force: bool,
    /// Approvals a membership change needs (default: a majority of the members).
    pub threshold: Option<u32>,
}

/// What `init-federation` created.
#[derive(Debug, Clone)]
pub struct InitReport {
    /// Config file per member.
    pub configs: Vec<(String, PathBuf)>,
    /// Bearer tokens per member: its admin client's and its metrics client's (also
    /// written to `admin-token` and `metrics-token`).
    pub tokens: Vec<(String, LocalTokens)>,
}

fn abs(p: &Path) -> Result<PathBuf, KeyError> {
    std::fs::create_dir_all(p).map_err(io_err(p))?;
    p.canonicalize().map_err(io_err(p))
}

/// `target` relative to directory `base` (both absolute), so generated configs keep
/// working when the federation directory moves.
fn relative(target: &Path, base: &Path) -> PathBuf {
    let t: Vec<Component> = target.components().collect();
    let b: Vec<Component> = base.components().collect();
    let common = t.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..b.len() {
        out.push("..");
    }
    for c in &t[common..] {
        out.push(c.as_os_str());
    }
    out
}

fn random_token() -> Result<String, KeyError> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| KeyError::Usage(format!("no system randomness: {e}")))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// SHA-256 hex of a bearer token, as configs store it.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn next_key_id(member: &str, year: &str, existing: &[RosterKey]) -> String {
    for letter in 'a'..='z' {
        let id = format!("{member}-{year}{letter}");
        if !existing.iter().any(|k| k.key_id == id) {
            return id;
        }
    }
    format!("{member}-{year}-{}", existing.len() + 1)
}

fn new_signing_key(
    dir: &Path,
    member: &str,
    existing: &[RosterKey],
    not_before: Timestamp,
    years: i32,
) -> Result<RosterKey, KeyError> {
    let key = signing::generate()?;
    let nb = not_before.to_millis_string();
    let key_id = next_key_id(member, &nb[..4], existing);
    let not_after = Timestamp::from_micros(
        not_before.as_micros() + i64::from(years) * 365 * 86_400 * 1_000_000,
    );
    signing::save(&key, &dir.join(format!("signing-{key_id}.pem")))?;
    Ok(RosterKey {
        key_id,
        public_key: encode_public_key(&key.verifying_key()),
        not_before: nb,
        not_after: not_after.to_millis_string(),
        revoked_at: None,
    })
}

/// Where a member's node is reached, where it listens and the names its
/// certificate carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Its URL in the roster (`https://HOST:PORT`).
    pub url: String,
    /// `[listen] address`.
    pub listen: String,
    /// Host names and addresses for its certificate (besides localhost, 127.0.0.1).
    pub names: Vec<String>,
}

/// The endpoint of a node reached at `url` (`https://HOST[:PORT]`, port 443 by
/// default), with `extra` names for its certificate.
pub fn endpoint(url: &str, extra: &[String]) -> Result<Endpoint, KeyError> {
    let bad = |why: &str| KeyError::Usage(format!("node URL {url:?}: {why}"));
    let u = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    if u.scheme() != "https" {
        return Err(bad("must be https://HOST:PORT"));
    }
    if u.path() != "/" || u.query().is_some() || !u.username().is_empty() {
        return Err(bad("must name only a host and a port"));
    }
    let port = u.port_or_known_default().unwrap_or(443);
    let (host, listen) = match u.host() {
        Some(url::Host::Ipv4(ip)) => (ip.to_string(), format!("{ip}:{port}")),
        Some(url::Host::Ipv6(ip)) => (ip.to_string(), format!("[{ip}]:{port}")),
        Some(url::Host::Domain(d)) => (d.to_string(), format!("0.0.0.0:{port}")),
        None => return Err(bad("names no host")),
    };
    let mut names = vec![host];
    for e in extra {
        if !names.contains(e) {
            names.push(e.clone());
        }
    }
    Ok(Endpoint {
        url: u.as_str().trim_end_matches('/').to_string(),
        listen,
        names,
    })
}

fn endpoint_of(opts: &InitOptions, i: usize) -> Result<Endpoint, KeyError> {
    let name = &opts.members[i];
    let extra: Vec<String> = opts
        .hosts
        .iter()
        .filter(|(m, _)| m == name)
        .map(|(_, h)| h.clone())
        .collect();
    if let Some((_, url)) = opts.urls.iter().find(|(m, _)| m == name) {
        return endpoint(url, &extra);
    }
    let port = opts
        .ports
        .get(i)
        .copied()
        .unwrap_or(opts.base_port + i as u16);
    let mut e = endpoint(&format!("https://127.0.0.1:{port}"), &extra)?;
    e.names.retain(|n| n != "127.0.0.1");
    Ok(e)
}

/// Creates a federation: CA, per-member certificates, signing keys, roster, configs.
/// Refuses a directory that already holds something: `init-federation` writes a new
/// CA, CA key and roster, and over a live federation's that would lock every member
/// out (their certificates no longer chain) with no way back.
fn refuse_non_empty(dir: &Path) -> Result<(), KeyError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    names.sort();
    let shown = names.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    Err(KeyError::Usage(format!(
        "{} is not empty (it holds {shown}{}): a new federation there would overwrite a CA, its key and a roster; choose an empty directory, or pass --force to overwrite",
        dir.display(),
        if names.len() > 5 { ", …" } else { "" }
    )))
}

pub fn init_federation(opts: &InitOptions) -> Result<InitReport, KeyError> {
    if opts.members.is_empty() {
        return Err(KeyError::Usage("--members names no member".into()));
    }
    for m in &opts.members {
        if !crate::roster::is_member_name(m) {
            return Err(KeyError::Usage(format!(
                "member name {m:?} must be lower-case letters, digits or '-'"
            )));
        }
    }
    for (m, _) in opts.urls.iter().chain(&opts.hosts) {
        if !opts.members.contains(m) {
            return Err(KeyError::Usage(format!(
                "--url/--host name {m:?}, which --members does not list"
            )));
        }
    }
    if !opts.ports.is_empty() && opts.ports.len() != opts.members.len() {
        return Err(KeyError::Usage("give one port per member".into()));
    }
    let threshold = opts.threshold.unwrap_or(opts.members.len() as u32 / 2 + 1);
    if threshold == 0 || threshold as usize > opts.members.len() {
        return Err(KeyError::Usage(format!(
            "--threshold {threshold} must be from 1 to the {} members",
            opts.members.len()
        )));
    }
    if opts.ports.is_empty() && usize::from(u16::MAX - opts.base_port) < opts.members.len() {
        return Err(KeyError::Usage(
            "--base-port leaves no room for every member".into(),
        ));
    }
    let endpoints: Vec<Endpoint> = (0..opts.members.len())
        .map(|i| endpoint_of(opts, i))
        .collect::<Result<_, _>>()?;
    // Before anything is made (making the data root inside `out` fills it).
    if !opts.force {
        for dir in [&opts.out, &opts.config_out] {
            refuse_non_empty(dir)?;
        }
    }
    let out = abs(&opts.out)?;
    let config_out = abs(&opts.config_out)?;
    let data_root = abs(&opts.data_root)?;
    let validity = Validity::years_from_now(opts.years);
    let ca = tls::new_ca(&opts.federation, validity)?;
    write_public(&out.join("ca.pem"), ca.cert_pem.as_bytes())?;
    write_private(&out.join("ca-key.pem"), ca.key_pem.as_bytes())?;

    let now = Timestamp::now();
    let mut members = Vec::new();
    let mut tokens = Vec::new();
    for (i, name) in opts.members.iter().enumerate() {
        let dir = out.join(name);
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let node = tls::issue(&ca, CertRole::Node, name, &endpoints[i].names, validity)?;
        write_public(&dir.join("node.pem"), node.cert_pem.as_bytes())?;
        write_private(&dir.join("node-key.pem"), node.key_pem.as_bytes())?;
        tokens.push((name.clone(), local_clients(&ca, &dir, name, validity)?));
        let key = new_signing_key(&dir, name, &[], now, opts.years)?;
        members.push(Member {
            name: name.clone(),
            identity: format!("identity--{}", uuid::Uuid::new_v4()),
            node_url: endpoints[i].url.clone(),
            tls_san: format!("synergia://member/{name}"),
            keys: vec![key],
        });
    }
    let roster = Roster::from_document(RosterDocument {
        former: Vec::new(),
        kind: "synergia-roster".into(),
        federation: opts.federation.clone(),
        members,
    })
    .map_err(|e| KeyError::Usage(e.to_string()))?;
    write_public(&out.join("roster.json"), roster.to_json_pretty().as_bytes())?;
    let log = crate::membership::Log::genesis(roster.document(), threshold, Timestamp::now())
        .map_err(|e| KeyError::Usage(e.to_string()))?;
    write_public(&out.join("membership.jsonl"), log.to_text().as_bytes())?;

    let mut configs = Vec::new();
    for (i, m) in roster.members().iter().enumerate() {
        let path = config_out.join(format!("{}.toml", m.name));
        let peers: Vec<(String, String, bool)> = roster
            .members()
            .iter()
            .filter(|p| p.name != m.name)
            .map(|p| {
                let amber = opts.amber_hubs.is_empty()
                    || opts.amber_hubs.contains(&p.name)
                    || opts.amber_hubs.contains(&m.name);
                (p.name.clone(), p.node_url.clone(), amber)
            })
            .collect();
        let text = render_config(&ConfigText {
            example: opts.example,
            federation: &opts.federation,
            member: &m.name,
            key_id: &m.keys[0].key_id,
            signing_key_file: out
                .join(&m.name)
                .join(format!("signing-{}.pem", m.keys[0].key_id)),
            tls_key: out.join(&m.name).join("node-key.pem"),
            listen: &endpoints[i].listen,
            out: &out,
            config_out: &config_out,
            data_dir: data_root.join(&m.name),
            peers: &peers,
            tokens: &tokens[i].1,
        });
        write_public(&path, text.as_bytes())?;
        configs.push((m.name.clone(), path));
    }
    Ok(InitReport { configs, tokens })
}

/// The bearer tokens of a member's local clients.
#[derive(Debug, Clone)]
pub struct LocalTokens {
    /// The administrator's (every role, reads red).
    pub admin: String,
    /// The metrics scraper's (`/metrics` only).
    pub metrics: String,
}

/// Issues a member's local clients into `dir`: `admin` (certificate and token, every
/// role) and `metrics` (certificate and token, role `metrics` only, for a Prometheus
/// that should read nothing else).
fn local_clients(
    ca: &tls::CertifiedKey,
    dir: &Path,
    name: &str,
    validity: Validity,
) -> Result<LocalTokens, KeyError> {
    let mut tokens = Vec::new();
    for who in ["admin", "metrics"] {
        let c = tls::issue(
            ca,
            CertRole::Client,
            &format!("{name}-{who}"),
            &[],
            validity,
        )?;
        write_public(&dir.join(format!("{who}.pem")), c.cert_pem.as_bytes())?;
        write_private(&dir.join(format!("{who}-key.pem")), c.key_pem.as_bytes())?;
        let token = random_token()?;
        write_private(&dir.join(format!("{who}-token")), token.as_bytes())?;
        tokens.push(token);
    }
    let metrics = tokens.pop().unwrap_or_default();
    let admin = tokens.pop().unwrap_or_default();
    Ok(LocalTokens { admin, metrics })
}

/// What a member's config says.
struct ConfigText<'a> {
    example: bool,
    federation: &'a str,
    member: &'a str,
    key_id: &'a str,
    signing_key_file: PathBuf,
    tls_key: PathBuf,
    listen: &'a str,
    /// The federation directory (CA, roster, the member's folder).
    out: &'a Path,
    /// Where the config goes: paths in it are relative to it.
    config_out: &'a Path,
    data_dir: PathBuf,
    /// (name, url, amber) of each `[[peers]]` entry.
    peers: &'a [(String, String, bool)],
    tokens: &'a LocalTokens,
}

fn render_config(c: &ConfigText<'_>) -> String {
    let rel = |p: &Path| relative(p, c.config_out).display().to_string();
    let dir = c.out.join(c.member);
    let mut s = String::new();
    if c.example {
        s.push_str(
            "# EXAMPLE ONLY. This config and the keys it points to are published test material:\n\
             # never use them in a real deployment. Create your own with\n\
             # `synergia keys init-federation`.\n",
        );
    }
    s.push_str(&format!(
        "# Synergia node of member `{name}` in federation `{fed}`.\n\
         # Relative paths are resolved against this file's directory. The node reads this\n\
         # file, the roster and the signing key again when they change (or on SIGHUP):\n\
         # [signing], [[peers]], [[clients]] and the roster apply without a restart.\n\n\
         # This node's member name: must be in the roster.\n\
         member = \"{name}\"\n\
         # Evidence log and indexes.\n\
         data_dir = \"{data}\"\n\
         # Every member and its public signing keys.\n\
         roster = \"{roster}\"\n\
         # TLP level for objects published without a TLP marking.\n\
         default_tlp = \"amber\"\n\
         # Sync with every roster member, also those [[peers]] does not list (a member\n\
         # added later): at its roster URL, without our amber.\n\
         peers_from_roster = true\n\n\
         [listen]\n\
         address = \"{listen}\"\n\n\
         [tls]\n\
         # The federation CA: the only root trusted for peers and clients.\n\
         ca = \"{ca}\"\n\
         cert = \"{cert}\"\n\
         key = \"{tlskey}\"\n\n\
         [signing]\n\
         # The roster key this node signs its own publishes with.\n\
         key_id = \"{key_id}\"\n\
         key_file = \"{key_file}\"\n",
        name = c.member,
        fed = c.federation,
        data = rel(&c.data_dir),
        roster = rel(&c.out.join("roster.json")),
        listen = c.listen,
        ca = rel(&c.out.join("ca.pem")),
        cert = rel(&dir.join("node.pem")),
        tlskey = rel(&c.tls_key),
        key_id = c.key_id,
        key_file = rel(&c.signing_key_file),
    ));
    for (name, url, amber) in c.peers {
        s.push_str(&peer_entry(name, url, *amber));
    }
    s.push_str(&format!(
        "\n# Local client with every role: certificate {cert} (SAN synergia://client/{name}-admin)\n\
         # or the bearer token in {tok}; only its SHA-256 is stored here.\n\
         # Clients read up to green unless max_tlp says more: the administrator reads everything.\n\
         [[clients]]\nname = \"{name}-admin\"\nroles = [\"publish\", \"read\", \"operate\"]\ntoken_sha256 = \"{hash}\"\nmax_tlp = \"red\"\n\n\
         # Prometheus: may read /metrics and nothing else (certificate {mcert} or the token\n\
         # in {mtok}).\n\
         [[clients]]\nname = \"{name}-metrics\"\nroles = [\"metrics\"]\ntoken_sha256 = \"{mhash}\"\n",
        cert = rel(&dir.join("admin.pem")),
        tok = rel(&dir.join("admin-token")),
        name = c.member,
        hash = token_hash(&c.tokens.admin),
        mcert = rel(&dir.join("metrics.pem")),
        mtok = rel(&dir.join("metrics-token")),
        mhash = token_hash(&c.tokens.metrics),
    ));
    s
}

/// A `[[peers]]` entry.
pub fn peer_entry(name: &str, url: &str, amber: bool) -> String {
    format!(
        "\n[[peers]]\nname = \"{name}\"\nurl = \"{url}\"\n# Whether our own amber envelopes go to this peer.\namber = {amber}\n"
    )
}

fn load_roster_doc(path: &Path) -> Result<RosterDocument, KeyError> {
    Roster::load(path)
        .map(|r| r.document().clone())
        .map_err(|e| KeyError::Format {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
}

fn save_roster_doc(path: &Path, doc: RosterDocument) -> Result<Roster, KeyError> {
    let r = Roster::from_document(doc).map_err(|e| KeyError::Usage(e.to_string()))?;
    write_public(path, r.to_json_pretty().as_bytes())?;
    Ok(r)
}

/// Adds a new signing key for `member` with a `not_before` later than every existing
/// key's, writes it next to the old ones and updates the roster. Returns the new key.
pub fn rotate(
    federation_dir: &Path,
    member: &str,
    not_before: Option<Timestamp>,
    years: i32,
) -> Result<RosterKey, KeyError> {
    let roster_path = federation_dir.join("roster.json");
    let mut doc = load_roster_doc(&roster_path)?;
    let m = doc
        .members
        .iter_mut()
        .find(|m| m.name == member)
        .ok_or_else(|| {
            KeyError::Usage(format!(
                "member {member:?} is not in {}",
                roster_path.display()
            ))
        })?;
    let latest = m
        .keys
        .iter()
        .filter_map(|k| Timestamp::parse(&k.not_before).ok())
        .max();
    let mut nb = not_before.unwrap_or_else(Timestamp::now);
    if let Some(l) = latest
        && nb <= l
    {
        nb = Timestamp::from_micros(l.as_micros() + 1000);
    }
    let dir = federation_dir.join(member);
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let key = new_signing_key(&dir, member, &m.keys, nb, years)?;
    m.keys.push(key.clone());
    save_roster_doc(&roster_path, doc)?;
    Ok(key)
}

/// What `keys request` writes: a member's own keys, which never leave it, and what it
/// sends to the CA holder.
#[derive(Debug, Clone)]
pub struct RequestFiles {
    /// The TLS private key (`node-key.pem`).
    pub tls_key: PathBuf,
    /// The certificate signing request (`node.csr`), for the CA holder.
    pub csr: PathBuf,
    /// The signing private key (`signing-key.pem`).
    pub signing_key: PathBuf,
    /// The signing public key (`signing-public-key.txt`), for the CA holder.
    pub signing_public_key: PathBuf,
}

/// `keys request`: a joining member makes its TLS key and certificate request and its
/// signing key in `out` (refused when they exist: they may be in use).
pub fn request(member: &str, names: &[String], out: &Path) -> Result<RequestFiles, KeyError> {
    if !crate::roster::is_member_name(member) {
        return Err(KeyError::Usage(format!(
            "member name {member:?} must be lower-case letters, digits or '-'"
        )));
    }
    std::fs::create_dir_all(out).map_err(io_err(out))?;
    let files = RequestFiles {
        tls_key: out.join("node-key.pem"),
        csr: out.join("node.csr"),
        signing_key: out.join("signing-key.pem"),
        signing_public_key: out.join("signing-public-key.txt"),
    };
    for f in [&files.tls_key, &files.signing_key] {
        if f.exists() {
            return Err(KeyError::Usage(format!(
                "{} exists already: a key there may be in use; choose another --out",
                f.display()
            )));
        }
    }
    let (csr, key) = tls::new_request(member, names)?;
    write_private(&files.tls_key, key.as_bytes())?;
    write_public(&files.csr, csr.as_bytes())?;
    let signing = signing::generate()?;
    signing::save(&signing, &files.signing_key)?;
    write_public(
        &files.signing_public_key,
        format!("{}\n", encode_public_key(&signing.verifying_key())).as_bytes(),
    )?;
    Ok(files)
}

/// Options of `keys add-member`.
#[derive(Debug, Clone)]
pub struct AddOptions {
    /// The federation directory (CA, CA key, roster).
    pub dir: PathBuf,
    /// The new member's name.
    pub member: String,
    /// Its node's URL and certificate names.
    pub endpoint: Endpoint,
    /// Its certificate signing request (from `keys request`); none: a key pair is
    /// made for it here.
    pub csr: Option<PathBuf>,
    /// Its signing public key (from `keys request`); none: a signing key is made for
    /// it here.
    pub signing_public_key: Option<PathBuf>,
    /// Where its config goes.
    pub config_out: PathBuf,
    /// Its data directory, as its config names it.
    pub data_dir: PathBuf,
    /// Members it shares its amber with (and which should share theirs with it).
    pub amber_with: Vec<String>,
    /// Validity of its certificates and signing key.
    pub years: i32,
}

/// What `keys add-member` made.
#[derive(Debug, Clone)]
pub struct AddReport {
    /// The new member's config.
    pub config: PathBuf,
    /// The `[[peers]]` entry for it that existing members may add (a file in its
    /// folder; needed only where a config has no `peers_from_roster`, or to share
    /// amber with it).
    pub peer_lines: PathBuf,
    /// Its key id.
    pub key_id: String,
    /// Its local clients' tokens.
    pub tokens: LocalTokens,
    /// Its roster entry alone (`member.json` in its folder): what a membership-log
    /// proposal adds (`synergia roster propose --add-member`).
    pub member_entry: PathBuf,
}

/// `keys add-member`, for the CA holder: issues the new member's node certificate
/// (for its request, or with a new key pair), adds it to the roster with its signing
/// key, and writes its config (every current member as a peer) and the `[[peers]]`
/// entry existing members add. Nodes whose config has `peers_from_roster` sync with
/// it as soon as they read the new roster.
pub fn add_member(o: &AddOptions) -> Result<AddReport, KeyError> {
    if !crate::roster::is_member_name(&o.member) {
        return Err(KeyError::Usage(format!(
            "member name {:?} must be lower-case letters, digits or '-'",
            o.member
        )));
    }
    let out = o.dir.canonicalize().map_err(io_err(&o.dir))?;
    let roster_path = out.join("roster.json");
    let mut doc = load_roster_doc(&roster_path)?;
    if doc.members.iter().any(|m| m.name == o.member) {
        return Err(KeyError::Usage(format!(
            "{} is a member already ({})",
            o.member,
            roster_path.display()
        )));
    }
    if let Some(m) = o
        .amber_with
        .iter()
        .find(|a| !doc.members.iter().any(|m| &&m.name == a))
    {
        return Err(KeyError::Usage(format!("--amber-with {m}: not a member")));
    }
    let ca = tls::load_ca(&out.join("ca.pem"), &out.join("ca-key.pem"))?;
    let validity = Validity::years_from_now(o.years);
    let dir = out.join(&o.member);
    refuse_non_empty(&dir)?;
    // Every refusal before the first file is written: a refused add-member changes
    // nothing (and can be run again once the cause is fixed).
    let config_out = abs(&o.config_out)?;
    let config = config_out.join(format!("{}.toml", o.member));
    if config.exists() {
        return Err(KeyError::Usage(format!(
            "{} exists already; choose another --config-out",
            config.display()
        )));
    }
    let request = match &o.csr {
        Some(csr) => Some(std::fs::read_to_string(csr).map_err(io_err(csr))?),
        None => None,
    };
    let public_key = match &o.signing_public_key {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(io_err(path))?;
            let public_key = text.trim().to_string();
            crate::roster::decode_public_key(&public_key).map_err(|e| KeyError::Format {
                path: path.clone(),
                message: e.to_string(),
            })?;
            Some(public_key)
        }
        None => None,
    };
    let tls_key = dir.join("node-key.pem");
    match (&o.csr, &request) {
        (Some(csr), Some(text)) => {
            // Checked (signature, key) before anything is written.
            let cert = tls::issue_for_request(
                &ca,
                CertRole::Node,
                &o.member,
                &o.endpoint.names,
                validity,
                text,
            )
            .map_err(|e| KeyError::Format {
                path: csr.clone(),
                message: e.to_string(),
            })?;
            std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
            write_public(&dir.join("node.pem"), cert.as_bytes())?;
        }
        _ => {
            let node = tls::issue(&ca, CertRole::Node, &o.member, &o.endpoint.names, validity)?;
            std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
            write_public(&dir.join("node.pem"), node.cert_pem.as_bytes())?;
            write_private(&tls_key, node.key_pem.as_bytes())?;
        }
    }
    let tokens = local_clients(&ca, &dir, &o.member, validity)?;
    let now = Timestamp::now();
    let (key, signing_key_file) = match public_key {
        Some(public_key) => {
            let nb = now.to_millis_string();
            let not_after = Timestamp::from_micros(
                now.as_micros() + i64::from(o.years) * 365 * 86_400 * 1_000_000,
            );
            let key = RosterKey {
                key_id: next_key_id(&o.member, &nb[..4], &[]),
                public_key,
                not_before: nb,
                not_after: not_after.to_millis_string(),
                revoked_at: None,
            };
            (key, dir.join("signing-key.pem"))
        }
        None => {
            let key = new_signing_key(&dir, &o.member, &[], now, o.years)?;
            let file = dir.join(format!("signing-{}.pem", key.key_id));
            (key, file)
        }
    };
    let existing: Vec<(String, String, bool)> = doc
        .members
        .iter()
        .map(|m| {
            (
                m.name.clone(),
                m.node_url.clone(),
                o.amber_with.contains(&m.name),
            )
        })
        .collect();
    let member = Member {
        name: o.member.clone(),
        identity: format!("identity--{}", uuid::Uuid::new_v4()),
        node_url: o.endpoint.url.clone(),
        tls_san: format!("synergia://member/{}", o.member),
        keys: vec![key.clone()],
    };
    let member_entry = dir.join("member.json");
    write_public(
        &member_entry,
        serde_json::to_string_pretty(&member)
            .unwrap_or_default()
            .as_bytes(),
    )?;
    doc.members.push(member);
    let text = render_config(&ConfigText {
        example: false,
        federation: &doc.federation.clone(),
        member: &o.member,
        key_id: &key.key_id,
        signing_key_file,
        tls_key,
        listen: &o.endpoint.listen,
        out: &out,
        config_out: &config_out,
        data_dir: if o.data_dir.is_absolute() {
            o.data_dir.clone()
        } else {
            std::env::current_dir()
                .map_err(io_err(&o.data_dir))?
                .join(&o.data_dir)
        },
        peers: &existing,
        tokens: &tokens,
    });
    // The roster last: until it names the member, nothing else made here is trusted.
    write_public(&config, text.as_bytes())?;
    let peer_lines = dir.join("peer-entry.toml");
    write_public(
        &peer_lines,
        format!(
            "# Add to each existing member's config (amber = true where it shares amber\n# with {m}); nodes read it again within seconds.{}",
            peer_entry(&o.member, &o.endpoint.url, false),
            m = o.member
        )
        .as_bytes(),
    )?;
    save_roster_doc(&roster_path, doc)?;
    Ok(AddReport {
        config,
        peer_lines,
        key_id: key.key_id,
        tokens,
        member_entry,
    })
}

/// Marks a key revoked from `at`: signatures dated at or after it are rejected.
///
/// A key revoked already keeps the earlier of the two instants unless `force`: moving
/// a revocation later would quietly make the signatures in between valid again.
pub fn revoke(
    federation_dir: &Path,
    member: &str,
    key_id: &str,
    at: Timestamp,
    force: bool,
) -> Result<(), KeyError> {
    let roster_path = federation_dir.join("roster.json");
    let mut doc = load_roster_doc(&roster_path)?;
    let key = doc
        .members
        .iter_mut()
        .filter(|m| m.name == member)
        .flat_map(|m| m.keys.iter_mut())
        .find(|k| k.key_id == key_id)
        .ok_or_else(|| KeyError::Usage(format!("{member} has no key {key_id:?}")))?;
    if let Some(earlier) = key
        .revoked_at
        .as_deref()
        .and_then(|r| Timestamp::parse(r).ok())
        && earlier < at
        && !force
    {
        return Err(KeyError::Usage(format!(
            "{key_id} of {member} is revoked from {earlier} already; revoking it from the later {at} would make its signatures in between valid again (pass --force to do that)"
        )));
    }
    key.revoked_at = Some(at.to_millis_string());
    save_roster_doc(&roster_path, doc)?;
    Ok(())
}

/// Adds the certificates in `certs` (PEM files) to the federation's revocation list
/// (`<federation_dir>/crl.pem`, made if absent, signed by the CA in the same
/// directory); returns the list's path and every serial it names. Nodes refuse those
/// certificates once their `tls.crl` points at a copy of the list.
pub fn revoke_certificates(
    federation_dir: &Path,
    certs: &[std::path::PathBuf],
) -> Result<(std::path::PathBuf, Vec<String>), KeyError> {
    let ca = tls::load_ca(
        &federation_dir.join("ca.pem"),
        &federation_dir.join("ca-key.pem"),
    )?;
    let crl_path = federation_dir.join("crl.pem");
    let (mut serials, number) = match std::fs::read_to_string(&crl_path) {
        Ok(text) => {
            let serials = tls::revoked_serials(&text)
                .map_err(|e| KeyError::Usage(format!("{}: {e}", crl_path.display())))?;
            (serials, crl_number(&text).unwrap_or(0) + 1)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Vec::new(), 1),
        Err(e) => return Err(KeyError::Usage(format!("{}: {e}", crl_path.display()))),
    };
    for c in certs {
        let text = std::fs::read_to_string(c)
            .map_err(|e| KeyError::Usage(format!("{}: {e}", c.display())))?;
        let serial =
            tls::serial_of(&text).map_err(|e| KeyError::Usage(format!("{}: {e}", c.display())))?;
        if !serials.contains(&serial) {
            serials.push(serial);
        }
    }
    let pem = tls::revocation_list(&ca, &serials, number, 1)?;
    let tmp = federation_dir.join("crl.pem.new");
    std::fs::write(&tmp, pem).map_err(|e| KeyError::Usage(format!("{}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, &crl_path)
        .map_err(|e| KeyError::Usage(format!("{}: {e}", crl_path.display())))?;
    let hex = serials
        .iter()
        .map(|s| s.iter().map(|b| format!("{b:02x}")).collect())
        .collect();
    Ok((crl_path, hex))
}

/// The CRL number of a PEM revocation list.
fn crl_number(pem_text: &str) -> Option<u64> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem_text.as_bytes()).ok()?;
    let (_, crl) = x509_parser::parse_x509_crl(&pem.contents).ok()?;
    let n = crl.crl_number()?;
    u64::try_from(n).ok()
}

/// A table of members, key ids, fingerprints, windows and status.
pub fn show(roster: &Roster, now: Timestamp) -> String {
    let mut s = format!(
        "{:<14} {:<22} {:<40} {:<25} {:<25} {}\n",
        "MEMBER", "KEY ID", "FINGERPRINT", "NOT BEFORE", "NOT AFTER", "STATUS"
    );
    for m in roster.members() {
        for k in &m.keys {
            let status = match roster.key(&m.name, &k.key_id) {
                Some(t) if let Some(r) = t.revoked_at.filter(|r| *r <= now) => {
                    format!("revoked from {}", r.to_millis_string())
                }
                Some(t) if let Some(r) = t.revoked_at => {
                    format!("valid, revoked from {} on", r.to_millis_string())
                }
                Some(t) if now < t.not_before => "not yet valid".to_string(),
                Some(t) if now > t.not_after => "expired".to_string(),
                Some(t) => format!(
                    "valid, {} days left",
                    (t.not_after.as_secs() - now.as_secs()) / 86_400
                ),
                None => "invalid".to_string(),
            };
            let fp = roster
                .key(&m.name, &k.key_id)
                .map(|t| signing::fingerprint(&t.verifying_key))
                .unwrap_or_default();
            s.push_str(&format!(
                "{:<14} {:<22} {:<40} {:<25} {:<25} {}\n",
                m.name, k.key_id, fp, k.not_before, k.not_after, status
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(dir: &Path) -> InitOptions {
        InitOptions {
            members: vec!["alpha".into(), "beta".into(), "hub".into()],
            federation: "test".into(),
            out: dir.join("keys"),
            config_out: dir.join("config"),
            data_root: dir.join("data"),
            base_port: 7100,
            ports: vec![],
            urls: vec![],
            hosts: vec![],
            amber_hubs: vec!["hub".into()],
            years: 2,
            example: true,
            force: false,
            threshold: None,
        }
    }

    #[test]
    fn init_creates_everything_a_node_needs() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let o = opts(dir.path());
        let report = init_federation(&o).unwrap();
        assert_eq!(report.configs.len(), 3);
        let roster = Roster::load(&o.out.join("roster.json")).unwrap();
        assert_eq!(roster.members().len(), 3);
        for (name, path) in &report.configs {
            let cfg = crate::config::Config::load(path).unwrap();
            assert_eq!(&cfg.member, name);
            let key = signing::load(&cfg.signing.key_file).unwrap();
            let t = roster.key(name, &cfg.signing.key_id).unwrap();
            assert_eq!(t.verifying_key, key.verifying_key());
            for f in [&cfg.signing.key_file, &cfg.tls.key] {
                let mode = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{}", f.display());
            }
            let cert = std::fs::read_to_string(&cfg.tls.cert).unwrap();
            assert_eq!(
                tls::summarise(&cert).unwrap().uris,
                vec![format!("synergia://member/{name}")]
            );
            assert_eq!(cfg.peers.len(), 2);
            // Vendors share amber with the hub only; the hub with everyone.
            for p in &cfg.peers {
                assert_eq!(
                    p.amber,
                    name == "hub" || p.name == "hub",
                    "{name} -> {}",
                    p.name
                );
            }
            assert_eq!(
                cfg.clients[0].token_sha256.as_deref(),
                Some(
                    token_hash(
                        &report
                            .tokens
                            .iter()
                            .find(|(n, _)| n == name)
                            .unwrap()
                            .1
                            .admin
                    )
                    .as_str()
                )
            );
        }
        let text = std::fs::read_to_string(&report.configs[0].1).unwrap();
        assert!(text.starts_with("# EXAMPLE ONLY"));
        assert!(text.contains("roster = \"../keys/roster.json\""), "{text}");
    }

    #[test]
    fn rotate_adds_a_later_key_and_revoke_marks_it() {
        let dir = tempfile::tempdir().unwrap();
        let o = opts(dir.path());
        init_federation(&o).unwrap();
        let before = Roster::load(&o.out.join("roster.json")).unwrap();
        let old = before.member("alpha").unwrap().keys[0].clone();
        let new = rotate(&o.out, "alpha", None, 2).unwrap();
        assert_ne!(new.key_id, old.key_id);
        assert!(
            Timestamp::parse(&new.not_before).unwrap() > Timestamp::parse(&old.not_before).unwrap()
        );
        assert!(
            o.out
                .join("alpha")
                .join(format!("signing-{}.pem", new.key_id))
                .exists()
        );
        revoke(&o.out, "alpha", &old.key_id, Timestamp::now(), false).unwrap();
        let after = Roster::load(&o.out.join("roster.json")).unwrap();
        let m = after.member("alpha").unwrap();
        assert_eq!(m.keys.len(), 2);
        assert!(m.keys[0].revoked_at.is_some());
        let table = show(&after, Timestamp::now());
        assert!(
            table.contains("revoked") && table.contains(&new.key_id),
            "{table}"
        );
        assert!(rotate(&o.out, "nobody", None, 2).is_err());
    }

    #[test]
    fn init_issues_metrics_only_clients_and_peers_from_the_roster() {
        let dir = tempfile::tempdir().unwrap();
        let o = opts(dir.path());
        let report = init_federation(&o).unwrap();
        let cfg = crate::config::Config::load(&report.configs[0].1).unwrap();
        assert!(cfg.peers_from_roster);
        let metrics = cfg
            .clients
            .iter()
            .find(|c| c.name == "alpha-metrics")
            .unwrap();
        assert_eq!(metrics.roles, vec![crate::config::Role::Metrics]);
        assert_eq!(
            metrics.token_sha256.as_deref(),
            Some(token_hash(&report.tokens[0].1.metrics).as_str())
        );
        let cert = std::fs::read_to_string(o.out.join("alpha/metrics.pem")).unwrap();
        assert_eq!(
            tls::summarise(&cert).unwrap().uris,
            vec!["synergia://client/alpha-metrics".to_string()]
        );
    }

    #[test]
    fn endpoints_from_urls() {
        let e = endpoint("https://127.0.0.2:7443", &[]).unwrap();
        assert_eq!(e.listen, "127.0.0.2:7443");
        assert_eq!(e.names, vec!["127.0.0.2"]);
        let e = endpoint("https://node.cert.example/", &["10.0.0.5".into()]).unwrap();
        assert_eq!(e.url, "https://node.cert.example");
        assert_eq!(e.listen, "0.0.0.0:443");
        assert_eq!(e.names, vec!["node.cert.example", "10.0.0.5"]);
        let e = endpoint("https://[::1]:9000", &[]).unwrap();
        assert_eq!(e.listen, "[::1]:9000");
        for bad in [
            "http://h:1",
            "https://h:1/feed",
            "https://u@h:1",
            "https://h:1?x=1",
            "h:1",
            "",
        ] {
            assert!(endpoint(bad, &[]).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_bad_url_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = opts(dir.path());
        o.urls = vec![("alpha".into(), "http://127.0.0.2:1".into())];
        assert!(init_federation(&o).is_err());
        o.urls = vec![("nobody".into(), "https://127.0.0.2:1".into())];
        assert!(init_federation(&o).is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    fn add(
        o: &InitOptions,
        member: &str,
        csr: Option<(PathBuf, PathBuf)>,
    ) -> Result<AddReport, KeyError> {
        add_member(&AddOptions {
            dir: o.out.clone(),
            member: member.into(),
            endpoint: endpoint("https://127.0.0.9:7999", &[]).unwrap(),
            csr: csr.as_ref().map(|c| c.0.clone()),
            signing_public_key: csr.map(|c| c.1),
            config_out: o.config_out.clone(),
            data_dir: o.data_root.join(member),
            amber_with: vec!["hub".into()],
            years: 1,
        })
    }

    #[test]
    fn add_member_generates_everything_a_node_needs() {
        let dir = tempfile::tempdir().unwrap();
        let o = opts(dir.path());
        init_federation(&o).unwrap();
        let r = add(&o, "delta", None).unwrap();
        let roster = Roster::load(&o.out.join("roster.json")).unwrap();
        let m = roster.member("delta").unwrap();
        assert_eq!(m.node_url, "https://127.0.0.9:7999");
        let cfg = crate::config::Config::load(&r.config).unwrap();
        assert_eq!(cfg.listen.address, "127.0.0.9:7999");
        assert_eq!(cfg.peers.len(), 3);
        assert!(cfg.peers.iter().all(|p| p.amber == (p.name == "hub")));
        let key = signing::load(&cfg.signing.key_file).unwrap();
        assert_eq!(
            roster
                .key("delta", &cfg.signing.key_id)
                .unwrap()
                .verifying_key,
            key.verifying_key()
        );
        let cert = std::fs::read_to_string(&cfg.tls.cert).unwrap();
        let s = tls::summarise(&cert).unwrap();
        assert_eq!(s.uris, vec!["synergia://member/delta".to_string()]);
        let entry = std::fs::read_to_string(&r.peer_lines).unwrap();
        assert!(entry.contains("name = \"delta\""), "{entry}");
        // Twice: refused, roster unchanged.
        let before = std::fs::read(o.out.join("roster.json")).unwrap();
        assert!(add(&o, "delta", None).is_err());
        assert!(add(&o, "Bad Name", None).is_err());
        assert_eq!(std::fs::read(o.out.join("roster.json")).unwrap(), before);
    }

    #[test]
    fn add_member_from_a_request_keeps_the_keys_with_the_member_and_ignores_asked_names() {
        let dir = tempfile::tempdir().unwrap();
        let o = opts(dir.path());
        init_federation(&o).unwrap();
        // The request asks to be another member and a host it is not.
        let req = dir.path().join("req");
        let f = request("alpha", &["evil.example".into()], &req).unwrap();
        assert!(request("alpha", &[], &req).is_err(), "keys made twice");
        add(
            &o,
            "delta",
            Some((f.csr.clone(), f.signing_public_key.clone())),
        )
        .unwrap();
        assert!(!o.out.join("delta/node-key.pem").exists());
        let cert = std::fs::read_to_string(o.out.join("delta/node.pem")).unwrap();
        let s = tls::summarise(&cert).unwrap();
        assert_eq!(s.uris, vec!["synergia://member/delta".to_string()]);
        assert!(!cert.is_empty());
        let key_pem = std::fs::read_to_string(&f.tls_key).unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(cert.as_bytes()).unwrap();
        let x = pem.parse_x509().unwrap();
        let names = format!("{:?}", x.subject_alternative_name().unwrap().unwrap().value);
        assert!(!names.contains("evil.example"), "{names}");
        // The certificate is for the requester's key.
        let kp = rcgen::KeyPair::from_pem(&key_pem).unwrap();
        assert_eq!(
            x.public_key().raw,
            rcgen::PublicKeyData::subject_public_key_info(&kp).as_slice()
        );
        let roster = Roster::load(&o.out.join("roster.json")).unwrap();
        let signing_key = signing::load(&f.signing_key).unwrap();
        let k = &roster.member("delta").unwrap().keys[0];
        assert_eq!(
            roster.key("delta", &k.key_id).unwrap().verifying_key,
            signing_key.verifying_key()
        );
        // A request whose signature does not check is refused.
        let bad = dir.path().join("bad.csr");
        let text = std::fs::read_to_string(&f.csr).unwrap();
        let mut der = x509_parser::pem::parse_x509_pem(text.as_bytes())
            .unwrap()
            .1
            .contents;
        let n = der.len();
        der[n - 5] ^= 0xff;
        let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &der);
        std::fs::write(
            &bad,
            format!(
                "-----BEGIN CERTIFICATE REQUEST-----\n{b64}\n-----END CERTIFICATE REQUEST-----\n"
            ),
        )
        .unwrap();
        assert!(add(&o, "epsilon", Some((bad, f.signing_public_key.clone()))).is_err());
        assert!(
            Roster::load(&o.out.join("roster.json"))
                .unwrap()
                .member("epsilon")
                .is_none()
        );
        // Refused before anything is written: nothing of it is left to get in the
        // way of a corrected run.
        assert!(!o.out.join("epsilon").exists());
        std::fs::write(o.config_out.join("zeta.toml"), "taken").unwrap();
        assert!(add(&o, "zeta", None).is_err());
        assert!(!o.out.join("zeta").exists());
    }

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative(Path::new("/a/b/c"), Path::new("/a/d")),
            PathBuf::from("../b/c")
        );
        assert_eq!(
            relative(Path::new("/a/b"), Path::new("/a/b")),
            PathBuf::new()
        );
    }
}
