//! `synergia keys …`.

use anyhow::Context as _;
use std::path::PathBuf;
use synergia::keys::federation::{self, InitOptions};
use synergia::keys::{signing, tls};
use synergia::roster::Roster;
use synergia::stix::timestamp::Timestamp;

#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Create a federation: CA, per-member TLS certificates, signing keys, roster, and
    /// one node config per member.
    InitFederation(InitArgs),
    /// Add a new signing key for a member, valid from later than its current keys
    /// (24 hours from now by default, so that the roster reaches every node first).
    Rotate(RotateArgs),
    /// Make a joining member's keys: TLS key and certificate request (node.csr), and
    /// signing key (public half in signing-public-key.txt). Send node.csr and
    /// signing-public-key.txt to the CA holder, who runs `keys add-member`; the
    /// private keys never leave this directory.
    Request(RequestArgs),
    /// Add a member (for the CA holder): its node certificate (from its request, or
    /// with a new key), its roster entry and signing key, a config for its node, and
    /// the [[peers]] entry existing members may add. Nodes with `peers_from_roster`
    /// sync with it as soon as they read the new roster.
    AddMember(AddMemberArgs),
    /// Revoke a signing key: signatures dated at or after --at are rejected.
    Revoke(RevokeArgs),
    /// Revoke TLS certificates (a node's or a client's): adds them to the federation
    /// CA's revocation list, DIR/crl.pem. Copy it to every node (`tls.crl`); nodes
    /// reload it within 5 s or on SIGHUP and close connections made before.
    RevokeCert(RevokeCertArgs),
    /// Show key ids, fingerprints and validity (roster), or a key or certificate file.
    Show(ShowArgs),
}

#[derive(Debug, clap::Args)]
pub struct RevokeCertArgs {
    /// Federation directory (holds ca.pem and ca-key.pem; crl.pem is written there).
    #[arg(long)]
    dir: PathBuf,
    /// PEM certificate file(s) to revoke.
    #[arg(long = "cert", required = true)]
    certs: Vec<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct RequestArgs {
    /// The joining member's name.
    #[arg(long)]
    member: String,
    /// Host names or IP addresses its node is reached at (for the request; the CA
    /// holder decides what the certificate names).
    #[arg(long = "host", value_delimiter = ',')]
    hosts: Vec<String>,
    /// Directory for the keys and the request.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct AddMemberArgs {
    /// Federation directory (ca.pem, ca-key.pem, roster.json).
    #[arg(long)]
    dir: PathBuf,
    /// The new member's name.
    #[arg(long)]
    member: String,
    /// Its node's URL, https://HOST:PORT (the certificate names HOST).
    #[arg(long)]
    url: String,
    /// Further host names or IP addresses for its certificate.
    #[arg(long = "host", value_delimiter = ',')]
    hosts: Vec<String>,
    /// Its certificate signing request (node.csr from `keys request`). Without it a
    /// TLS key is made for it in DIR/<member>/.
    #[arg(long, requires = "signing_public_key")]
    csr: Option<PathBuf>,
    /// Its signing public key (signing-public-key.txt from `keys request`). Without
    /// it a signing key is made for it in DIR/<member>/.
    #[arg(long, requires = "csr")]
    signing_public_key: Option<PathBuf>,
    /// Directory for its config (default: DIR/config).
    #[arg(long)]
    config_out: Option<PathBuf>,
    /// Its data directory as the config names it (default: DIR/data/<member>).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Members it shares its amber with.
    #[arg(long, value_delimiter = ',')]
    amber_with: Vec<String>,
    /// Validity of its certificates and signing key, in years.
    #[arg(long, default_value_t = 2)]
    years: i32,
}

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Comma-separated member names, e.g. groupib,trendmicro,kaspersky.
    #[arg(long, value_delimiter = ',', required = true)]
    members: Vec<String>,
    /// Directory for keys, certificates and the roster.
    #[arg(long)]
    out: PathBuf,
    /// Directory for member configs (default: OUT/config).
    #[arg(long)]
    config_out: Option<PathBuf>,
    /// Directory under which member data directories go (default: OUT/data).
    #[arg(long)]
    data_root: Option<PathBuf>,
    /// Federation (operation) name.
    #[arg(long, default_value = "synergia")]
    federation: String,
    /// Member i listens on 127.0.0.1:(BASE_PORT + i), unless --url names it.
    #[arg(long, default_value_t = 7101)]
    base_port: u16,
    /// A member's node URL, NAME=https://HOST:PORT (repeat, or separate with commas).
    /// Its node listens on HOST:PORT when HOST is an IP address, on every address at
    /// PORT otherwise; its certificate names HOST.
    #[arg(long = "url", value_delimiter = ',', value_parser = member_value)]
    urls: Vec<(String, String)>,
    /// A further host name or address for a member's certificate, NAME=HOST.
    #[arg(long = "host", value_delimiter = ',', value_parser = member_value)]
    hosts: Vec<(String, String)>,
    /// Members that exchange amber with every other member (a coordinator); others
    /// exchange amber only with them. Empty: everyone shares amber with everyone.
    #[arg(long, value_delimiter = ',')]
    amber_hubs: Vec<String>,
    /// Validity of certificates and signing keys, in years.
    #[arg(long, default_value_t = 2)]
    years: i32,
    /// Head every generated config with an "example only" warning.
    #[arg(long)]
    example: bool,
    /// Write into a non-empty --out (or --config-out), overwriting the CA, its key,
    /// the roster and the configs there. Without it such a directory is refused: a new
    /// CA over a live federation's locks every member out.
    #[arg(long)]
    force: bool,
    /// Approvals (distinct members) a membership change needs, written into the
    /// genesis of OUT/membership.jsonl. Default: a majority of the members.
    #[arg(long)]
    threshold: Option<u32>,
}

#[derive(Debug, clap::Args)]
pub struct RotateArgs {
    /// Federation directory (holds roster.json and one folder per member).
    #[arg(long)]
    dir: PathBuf,
    /// Member whose key to rotate.
    #[arg(long)]
    member: String,
    /// First instant the new key may sign. Give the roster time to reach every
    /// member before this instant.
    #[arg(long, conflicts_with = "lead")]
    not_before: Option<Timestamp>,
    /// Time from now until the new key may sign: 30s, 15m, 24h, 7d.
    #[arg(long, default_value = "24h", value_parser = duration_secs)]
    lead: i64,
    /// Validity in years.
    #[arg(long, default_value_t = 2)]
    years: i32,
}

#[derive(Debug, clap::Args)]
pub struct RevokeArgs {
    /// Federation directory (holds roster.json).
    #[arg(long)]
    dir: PathBuf,
    /// Member owning the key.
    #[arg(long)]
    member: String,
    /// Key id to revoke.
    #[arg(long)]
    key_id: String,
    /// Revocation instant (default: now).
    #[arg(long)]
    at: Option<Timestamp>,
    /// Move an existing revocation later. Without it a revocation only ever moves
    /// earlier: a later one would let the key's signatures in between pass again.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// A roster file.
    #[arg(long, conflicts_with_all = ["key", "cert"])]
    roster: Option<PathBuf>,
    /// A PKCS#8 PEM signing key: print its public key and fingerprint.
    #[arg(long, conflicts_with = "cert")]
    key: Option<PathBuf>,
    /// A PEM certificate: print its subject, member SAN and expiry.
    #[arg(long)]
    cert: Option<PathBuf>,
}

pub fn run(c: KeysCommand) -> anyhow::Result<u8> {
    match c {
        KeysCommand::InitFederation(a) => {
            let opts = InitOptions {
                config_out: a.config_out.unwrap_or_else(|| a.out.join("config")),
                data_root: a.data_root.unwrap_or_else(|| a.out.join("data")),
                members: a.members,
                federation: a.federation,
                out: a.out,
                base_port: a.base_port,
                ports: vec![],
                urls: a.urls,
                hosts: a.hosts,
                amber_hubs: a.amber_hubs,
                years: a.years,
                example: a.example,
                force: a.force,
                threshold: a.threshold,
            };
            let report = federation::init_federation(&opts)?;
            println!(
                "federation {:?} created in {}",
                opts.federation,
                opts.out.display()
            );
            for (name, path) in &report.configs {
                println!("  {name:<14} config {}", path.display());
            }
            println!(
                "bearer tokens are in {}/<member>/admin-token (every role) and metrics-token (/metrics only)",
                opts.out.display()
            );
            Ok(0)
        }
        KeysCommand::Rotate(a) => {
            let not_before = a.not_before.unwrap_or_else(|| {
                Timestamp::from_micros(Timestamp::now().as_micros() + a.lead * 1_000_000)
            });
            let key = federation::rotate(&a.dir, &a.member, Some(not_before), a.years)?;
            println!(
                "added key {} for {} (valid {} to {})",
                key.key_id, a.member, key.not_before, key.not_after
            );
            // Absolute: a relative path in a config is read from the config's own
            // directory, not from where this command ran.
            let key_file = a
                .dir
                .join(&a.member)
                .join(format!("signing-{}.pem", key.key_id));
            let key_file = std::fs::canonicalize(&key_file).unwrap_or(key_file);
            println!(
                "next: distribute {}/roster.json to every member before {} (nodes read it again within seconds, or at once on SIGHUP); from then on set [signing] key_id = \"{}\" and key_file = \"{}\" in {}'s config (its node takes the new key within seconds, no restart)",
                a.dir.display(),
                key.not_before,
                key.key_id,
                key_file.display(),
                a.member
            );
            Ok(0)
        }
        KeysCommand::Request(a) => {
            let f = federation::request(&a.member, &a.hosts, &a.out)?;
            println!("made the keys of {} in {}", a.member, a.out.display());
            println!(
                "send {} and {} to the CA holder (`synergia keys add-member --csr … --signing-public-key …`);",
                f.csr.display(),
                f.signing_public_key.display()
            );
            println!(
                "keep {} and {} here: they never leave this machine",
                f.tls_key.display(),
                f.signing_key.display()
            );
            Ok(0)
        }
        KeysCommand::AddMember(a) => {
            let opts = federation::AddOptions {
                endpoint: federation::endpoint(&a.url, &a.hosts)?,
                config_out: a.config_out.unwrap_or_else(|| a.dir.join("config")),
                data_dir: a
                    .data_dir
                    .unwrap_or_else(|| a.dir.join("data").join(&a.member)),
                dir: a.dir,
                member: a.member,
                csr: a.csr,
                signing_public_key: a.signing_public_key,
                amber_with: a.amber_with,
                years: a.years,
            };
            let r = federation::add_member(&opts)?;
            println!(
                "added {} (signing key {}) to {}",
                opts.member,
                r.key_id,
                opts.dir.join("roster.json").display()
            );
            println!("  config          {}", r.config.display());
            println!(
                "  certificates    {}",
                opts.dir.join(&opts.member).display()
            );
            println!("  [[peers]] entry {}", r.peer_lines.display());
            println!(
                "  roster entry    {} (for a membership log: synergia roster propose --add-member)",
                r.member_entry.display()
            );
            if opts.csr.is_some() {
                println!(
                    "the member copies node-key.pem and signing-key.pem from its `keys request` directory into {}",
                    opts.dir.join(&opts.member).display()
                );
            }
            println!(
                "next: distribute the roster to every member (nodes read it again within seconds; those with peers_from_roster sync with {} at once), then start its node; a federation on a membership log proposes the roster entry instead, and gives the new member the log once the entry is in it",
                opts.member
            );
            Ok(0)
        }
        KeysCommand::RevokeCert(a) => {
            let (path, serials) = federation::revoke_certificates(&a.dir, &a.certs)?;
            println!(
                "{} names {} revoked certificate(s): {}",
                path.display(),
                serials.len(),
                serials.join(", ")
            );
            println!(
                "copy it to every node and set tls.crl in their configs (reloaded within 5 s or on SIGHUP)"
            );
            Ok(0)
        }
        KeysCommand::Revoke(a) => {
            let at = a.at.unwrap_or_else(Timestamp::now);
            federation::revoke(&a.dir, &a.member, &a.key_id, at, a.force)?;
            println!(
                "revoked {} of {} from {at}; distribute the roster to every member",
                a.key_id, a.member
            );
            Ok(0)
        }
        KeysCommand::Show(a) => {
            if let Some(path) = a.key {
                let k = signing::load(&path)?;
                println!(
                    "public key  {}",
                    synergia::roster::encode_public_key(&k.verifying_key())
                );
                println!("fingerprint {}", signing::fingerprint(&k.verifying_key()));
            } else if let Some(path) = a.cert {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                let s = tls::summarise(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                let days = (s.not_after - Timestamp::now().as_secs()) / 86_400;
                println!("subject   {}", s.subject);
                println!("identity  {}", s.uris.join(", "));
                println!(
                    "expires   {} ({days} days)",
                    Timestamp::from_micros(s.not_after * 1_000_000)
                );
            } else {
                let path = a.roster.unwrap_or_else(|| PathBuf::from("roster.json"));
                let r = Roster::load(&path)?;
                print!("{}", federation::show(&r, Timestamp::now()));
            }
            Ok(0)
        }
    }
}

/// `NAME=VALUE` of a flag naming a member.
fn member_value(s: &str) -> Result<(String, String), String> {
    let (m, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected NAME=VALUE"))?;
    if m.is_empty() || v.is_empty() {
        return Err(format!("{s:?}: expected NAME=VALUE"));
    }
    Ok((m.to_string(), v.to_string()))
}

/// Seconds of a duration written `30s`, `15m`, `24h` or `7d` (or plain seconds).
fn duration_secs(s: &str) -> Result<i64, String> {
    let (n, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: i64 = n
        .parse()
        .map_err(|_| format!("{s:?}: expected a duration such as 30s, 15m, 24h or 7d"))?;
    let per = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{s:?}: the unit must be s, m, h or d")),
    };
    n.checked_mul(per)
        .filter(|v| *v <= 10 * 365 * 86_400)
        .ok_or_else(|| format!("{s:?}: too long"))
}
