//! `synergia keys init-federation | rotate | revoke | show`: the file layout of a
//! federation's key material.
//!
//! ```text
//! OUT/ca.pem, OUT/ca-key.pem              federation CA
//! OUT/roster.json                         members and their public signing keys
//! OUT/<member>/node.pem, node-key.pem     the member node's TLS certificate
//! OUT/<member>/signing-<key_id>.pem       the member's ed25519 signing key(s)
//! OUT/<member>/admin.pem, admin-key.pem   a local client certificate (all roles)
//! OUT/<member>/admin-token                a local bearer token (all roles)
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
    /// … unless ports are given here, one per member.
    pub ports: Vec<u16>,
    /// Members that exchange amber with everyone (the coordinator).
    pub amber_hubs: Vec<String>,
    /// Validity of certificates and signing keys.
    pub years: i32,
    /// Mark every generated config as example material.
    pub example: bool,
    /// Write into a non-empty `out` or `config_out` (overwriting a federation's CA,
    /// roster and configs there).
    pub force: bool,
}

/// What `init-federation` created.
#[derive(Debug, Clone)]
pub struct InitReport {
    /// Config file per member.
    pub configs: Vec<(String, PathBuf)>,
    /// Bearer token per member's admin client (also written to `admin-token`).
    pub tokens: Vec<(String, String)>,
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

fn port_of(opts: &InitOptions, i: usize) -> u16 {
    opts.ports
        .get(i)
        .copied()
        .unwrap_or(opts.base_port + i as u16)
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
    if !opts.ports.is_empty() && opts.ports.len() != opts.members.len() {
        return Err(KeyError::Usage("give one port per member".into()));
    }
    if opts.ports.is_empty() && usize::from(u16::MAX - opts.base_port) < opts.members.len() {
        return Err(KeyError::Usage(
            "--base-port leaves no room for every member".into(),
        ));
    }
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
        let node = tls::issue(&ca, CertRole::Node, name, &[], validity)?;
        write_public(&dir.join("node.pem"), node.cert_pem.as_bytes())?;
        write_private(&dir.join("node-key.pem"), node.key_pem.as_bytes())?;
        let admin = tls::issue(
            &ca,
            CertRole::Client,
            &format!("{name}-admin"),
            &[],
            validity,
        )?;
        write_public(&dir.join("admin.pem"), admin.cert_pem.as_bytes())?;
        write_private(&dir.join("admin-key.pem"), admin.key_pem.as_bytes())?;
        let token = random_token()?;
        write_private(&dir.join("admin-token"), token.as_bytes())?;
        tokens.push((name.clone(), token));
        let key = new_signing_key(&dir, name, &[], now, opts.years)?;
        members.push(Member {
            name: name.clone(),
            identity: format!("identity--{}", uuid::Uuid::new_v4()),
            node_url: format!("https://127.0.0.1:{}", port_of(opts, i)),
            tls_san: format!("synergia://member/{name}"),
            keys: vec![key],
        });
    }
    let roster = Roster::from_document(RosterDocument {
        kind: "synergia-roster".into(),
        federation: opts.federation.clone(),
        members,
    })
    .map_err(|e| KeyError::Usage(e.to_string()))?;
    write_public(&out.join("roster.json"), roster.to_json_pretty().as_bytes())?;

    let mut configs = Vec::new();
    for (i, m) in roster.members().iter().enumerate() {
        let path = config_out.join(format!("{}.toml", m.name));
        let text = render_config(
            opts,
            &roster,
            m,
            i,
            &out,
            &config_out,
            &data_root,
            &tokens[i].1,
        );
        write_public(&path, text.as_bytes())?;
        configs.push((m.name.clone(), path));
    }
    Ok(InitReport { configs, tokens })
}

#[allow(clippy::too_many_arguments)]
fn render_config(
    opts: &InitOptions,
    roster: &Roster,
    m: &Member,
    index: usize,
    out: &Path,
    config_out: &Path,
    data_root: &Path,
    token: &str,
) -> String {
    let rel = |p: PathBuf| relative(&p, config_out).display().to_string();
    let dir = out.join(&m.name);
    let key = &m.keys[0];
    let mut s = String::new();
    if opts.example {
        s.push_str(
            "# EXAMPLE ONLY. This config and the keys it points to are published test material:\n\
             # never use them in a real deployment. Create your own with\n\
             # `synergia keys init-federation`.\n",
        );
    }
    s.push_str(&format!(
        "# Synergia node of member `{name}` in federation `{fed}`.\n\
         # Relative paths are resolved against this file's directory.\n\n\
         # This node's member name: must be in the roster.\n\
         member = \"{name}\"\n\
         # Evidence log and indexes.\n\
         data_dir = \"{data}\"\n\
         # Every member and its public signing keys.\n\
         roster = \"{roster}\"\n\
         # TLP level for objects published without a TLP marking.\n\
         default_tlp = \"amber\"\n\n\
         [listen]\n\
         address = \"127.0.0.1:{port}\"\n\n\
         [tls]\n\
         # The federation CA: the only root trusted for peers and clients.\n\
         ca = \"{ca}\"\n\
         cert = \"{cert}\"\n\
         key = \"{tlskey}\"\n\n\
         [signing]\n\
         # The roster key this node signs its own publishes with.\n\
         key_id = \"{key_id}\"\n\
         key_file = \"{key_file}\"\n",
        name = m.name,
        fed = opts.federation,
        data = rel(data_root.join(&m.name)),
        roster = rel(out.join("roster.json")),
        port = port_of(opts, index),
        ca = rel(out.join("ca.pem")),
        cert = rel(dir.join("node.pem")),
        tlskey = rel(dir.join("node-key.pem")),
        key_id = key.key_id,
        key_file = rel(dir.join(format!("signing-{}.pem", key.key_id))),
    ));
    for p in roster.members().iter().filter(|p| p.name != m.name) {
        let amber = opts.amber_hubs.is_empty()
            || opts.amber_hubs.contains(&p.name)
            || opts.amber_hubs.contains(&m.name);
        s.push_str(&format!(
            "\n[[peers]]\nname = \"{}\"\nurl = \"{}\"\n# Whether our own amber envelopes go to this peer.\namber = {amber}\n",
            p.name, p.node_url
        ));
    }
    s.push_str(&format!(
        "\n# Local client with every role: certificate {cert} (SAN synergia://client/{name}-admin)\n\
         # or the bearer token in {tok}; only its SHA-256 is stored here.\n\
         # Clients read up to green unless max_tlp says more: the administrator reads everything.\n\
         [[clients]]\nname = \"{name}-admin\"\nroles = [\"publish\", \"read\", \"operate\"]\ntoken_sha256 = \"{hash}\"\nmax_tlp = \"red\"\n",
        cert = rel(dir.join("admin.pem")),
        tok = rel(dir.join("admin-token")),
        name = m.name,
        hash = token_hash(token),
    ));
    s
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
            amber_hubs: vec!["hub".into()],
            years: 2,
            example: true,
            force: false,
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
                    token_hash(&report.tokens.iter().find(|(n, _)| n == name).unwrap().1).as_str()
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
