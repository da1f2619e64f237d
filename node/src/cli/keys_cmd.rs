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
    /// Add a new signing key for a member, valid from later than its current keys.
    Rotate(RotateArgs),
    /// Revoke a signing key: signatures dated at or after --at are rejected.
    Revoke(RevokeArgs),
    /// Revoke TLS certificates (a node's or a client's): adds them to the federation
    /// CA's revocation list, DIR/crl.pem. Copy it to every node (`tls.crl`); nodes
    /// reload it within 30 s or on SIGHUP and close connections made before.
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
    /// Member i listens on 127.0.0.1:(BASE_PORT + i).
    #[arg(long, default_value_t = 7101)]
    base_port: u16,
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
}

#[derive(Debug, clap::Args)]
pub struct RotateArgs {
    /// Federation directory (holds roster.json and one folder per member).
    #[arg(long)]
    dir: PathBuf,
    /// Member whose key to rotate.
    #[arg(long)]
    member: String,
    /// First instant the new key may sign (default: now). Give the roster time to
    /// reach every member before this instant.
    #[arg(long)]
    not_before: Option<Timestamp>,
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
                amber_hubs: a.amber_hubs,
                years: a.years,
                example: a.example,
                force: a.force,
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
                "admin bearer tokens are in {}/<member>/admin-token",
                opts.out.display()
            );
            Ok(0)
        }
        KeysCommand::Rotate(a) => {
            let key = federation::rotate(&a.dir, &a.member, a.not_before, a.years)?;
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
                "next: distribute {}/roster.json to every member (each node reads it when it starts: restart them), then set [signing] key_id = \"{}\" and key_file = \"{}\" in {}'s config and restart its node",
                a.dir.display(),
                key.key_id,
                key_file.display(),
                a.member
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
                "copy it to every node and set tls.crl in their configs (reloaded within 30 s or on SIGHUP)"
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
