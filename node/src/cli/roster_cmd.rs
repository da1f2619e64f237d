//! `synergia roster …`: the membership log offline — a genesis from a roster, proposals,
//! approvals, verification, the log and the roster at any entry.

use super::EXIT_INVALID;
use anyhow::{Context as _, bail};
use std::path::{Path, PathBuf};
use synergia::config::Config;
use synergia::membership::{Change, Entry, Log};
use synergia::roster::{Member, RosterDocument, RosterKey};
use synergia::stix::timestamp::Timestamp;

#[derive(Debug, clap::Subcommand)]
pub enum RosterCommand {
    /// Start a membership log from an existing roster: its genesis entry lists the
    /// roster's members and the approval threshold.
    Init(InitArgs),
    /// Propose one change, approved by this member (the config's signing key). The
    /// proposal travels to the other members by any channel; each runs `roster sign`.
    Propose(ProposeArgs),
    /// Add this member's approval to a proposal (the config's signing key).
    Sign(SignArgs),
    /// Check a membership log offline, or a proposal against it: every entry, or why
    /// not (with its stable code).
    Verify(VerifyArgs),
    /// Append an approved proposal to a membership log (checked first: refused with
    /// its code, the log unchanged).
    Append(AppendArgs),
    /// Hand an approved proposal to a running node (role `operate`): the node checks
    /// it against the log it follows and appends it, or refuses it with its code;
    /// its peers then fetch it from it, and theirs from them.
    Submit(SubmitArgs),
    /// List the entries of a membership log.
    Log(LogArgs),
    /// The roster and threshold at the log's head, or after entry --at.
    Show(ShowArgs),
}

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// The roster to convert (roster.json).
    #[arg(long)]
    roster: PathBuf,
    /// Approvals every later change needs (distinct members).
    #[arg(long)]
    threshold: u32,
    /// The membership log to write (must not exist).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("change").required(true).args([
    "add_member", "remove_member", "add_key", "revoke_key", "revoke_cert_serial",
    "revoke_cert_fingerprint", "set_url", "set_threshold"])))]
pub struct ProposeArgs {
    /// The proposing member's node config (its member name and signing key).
    #[arg(long)]
    config: PathBuf,
    /// The membership log the proposal follows (its head).
    #[arg(long)]
    log: PathBuf,
    /// Add a member: a JSON file holding its roster entry (name, identity, node_url,
    /// tls_san, keys).
    #[arg(long, value_name = "MEMBER.json")]
    add_member: Option<PathBuf>,
    /// Remove a member.
    #[arg(long, value_name = "NAME")]
    remove_member: Option<String>,
    /// Add a signing key to a member: MEMBER=KEY.json (a roster key entry).
    #[arg(long, value_name = "MEMBER=KEY.json")]
    add_key: Option<String>,
    /// Revoke a signing key: MEMBER/KEY_ID (with --revoked-at).
    #[arg(long, value_name = "MEMBER/KEY_ID", requires = "revoked_at")]
    revoke_key: Option<String>,
    /// When the revocation starts (a timestamp).
    #[arg(long)]
    revoked_at: Option<Timestamp>,
    /// Revoke a TLS certificate by serial number (hex).
    #[arg(long, value_name = "HEX")]
    revoke_cert_serial: Option<String>,
    /// Revoke a TLS certificate by the SHA-256 of its DER form (hex).
    #[arg(long, value_name = "HEX")]
    revoke_cert_fingerprint: Option<String>,
    /// Move a member's node: MEMBER=https://HOST:PORT.
    #[arg(long, value_name = "MEMBER=URL")]
    set_url: Option<String>,
    /// A new approval threshold.
    #[arg(long, value_name = "K")]
    set_threshold: Option<u32>,
    /// Where to write the proposal.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct SignArgs {
    /// The proposal (rewritten with this member's approval).
    proposal: PathBuf,
    /// The approving member's node config.
    #[arg(long)]
    config: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// A membership log, or (with --log) a proposal.
    file: PathBuf,
    /// The log a proposal follows: checks that the proposal would be taken now.
    #[arg(long)]
    log: Option<PathBuf>,
    /// Verify as of this instant instead of now.
    #[arg(long)]
    now: Option<Timestamp>,
}

#[derive(Debug, clap::Args)]
pub struct AppendArgs {
    /// The approved proposal.
    proposal: PathBuf,
    /// The membership log (rewritten whole with the entry appended).
    #[arg(long)]
    log: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct SubmitArgs {
    /// The approved proposal.
    proposal: PathBuf,
    #[command(flatten)]
    client: super::client::ClientArgs,
}

#[derive(Debug, clap::Args)]
pub struct LogArgs {
    /// The membership log.
    #[arg(long)]
    log: PathBuf,
    /// Print the entries as JSON lines.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// The membership log.
    #[arg(long)]
    log: PathBuf,
    /// The state after this entry (default: the head).
    #[arg(long)]
    at: Option<u64>,
    /// Also write that roster, as nodes read it (roster.json), to this file.
    #[arg(long, value_name = "ROSTER.json")]
    write_roster: Option<PathBuf>,
}

pub fn run(c: RosterCommand) -> anyhow::Result<u8> {
    match c {
        RosterCommand::Init(a) => init(a),
        RosterCommand::Propose(a) => propose(a),
        RosterCommand::Sign(a) => sign(a),
        RosterCommand::Verify(a) => verify(a),
        RosterCommand::Append(a) => append(a),
        RosterCommand::Submit(a) => submit(a),
        RosterCommand::Log(a) => log(a),
        RosterCommand::Show(a) => show(a),
    }
}

fn load_log(path: &Path) -> anyhow::Result<Log> {
    Ok(Log::load(path, Timestamp::now())?)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let v = synergia::json::from_slice_strict(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: not strict JSON: {e}", path.display()))?;
    serde_json::from_value(v).with_context(|| format!("{}", path.display()))
}

fn write_new(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The signing member and key of a node config.
fn signer(config: &Path) -> anyhow::Result<(String, String, ed25519_dalek::SigningKey)> {
    let cfg = Config::load(config)?;
    let key = synergia::keys::signing::load(&cfg.signing.key_file)?;
    Ok((cfg.member, cfg.signing.key_id, key))
}

fn init(a: InitArgs) -> anyhow::Result<u8> {
    let doc: RosterDocument = read_json(&a.roster)?;
    synergia::roster::Roster::from_document(doc.clone())
        .with_context(|| format!("{}", a.roster.display()))?;
    let mut genesis = Entry::propose(
        &synergia::membership::State::empty(),
        Timestamp::now(),
        Change::Genesis {
            threshold: a.threshold,
            members: doc.members,
        },
    );
    genesis.federation = doc.federation;
    let log = Log::from_entries(vec![genesis.clone()], Timestamp::now())
        .map_err(|(_, e)| anyhow::anyhow!("[{}] {e}", e.code()))?;
    write_new(&a.out, &format!("{}\n", genesis.to_line()))?;
    let head = log.head().map(|h| h.hash).unwrap_or_default();
    println!(
        "wrote {}: genesis of {} ({}), head {head}",
        a.out.display(),
        log.state().roster.federation,
        genesis.change.describe()
    );
    Ok(0)
}

fn split_pair<'a>(s: &'a str, sep: char, what: &str) -> anyhow::Result<(&'a str, &'a str)> {
    s.split_once(sep)
        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
        .with_context(|| format!("{what}: expected {s:?} to be two parts joined by {sep:?}"))
}

fn propose(a: ProposeArgs) -> anyhow::Result<u8> {
    let log = load_log(&a.log)?;
    let change = if let Some(p) = &a.add_member {
        Change::AddMember {
            member: read_json::<Member>(p)?,
        }
    } else if let Some(n) = &a.remove_member {
        Change::RemoveMember { name: n.clone() }
    } else if let Some(s) = &a.add_key {
        let (member, file) = split_pair(s, '=', "--add-key")?;
        Change::AddKey {
            member: member.into(),
            key: read_json::<RosterKey>(Path::new(file))?,
        }
    } else if let Some(s) = &a.revoke_key {
        let (member, key_id) = split_pair(s, '/', "--revoke-key")?;
        Change::RevokeKey {
            member: member.into(),
            key_id: key_id.into(),
            revoked_at: a
                .revoked_at
                .map(|t| t.to_millis_string())
                .context("--revoked-at")?,
        }
    } else if a.revoke_cert_serial.is_some() || a.revoke_cert_fingerprint.is_some() {
        Change::RevokeCertificate {
            serial: a.revoke_cert_serial.clone(),
            fingerprint: a.revoke_cert_fingerprint.clone(),
        }
    } else if let Some(s) = &a.set_url {
        let (member, url) = split_pair(s, '=', "--set-url")?;
        Change::SetUrl {
            member: member.into(),
            node_url: url.into(),
        }
    } else if let Some(k) = a.set_threshold {
        Change::SetThreshold { threshold: k }
    } else {
        bail!("name one change");
    };
    let (member, key_id, key) = signer(&a.config)?;
    let mut entry = Entry::propose(&log.state(), Timestamp::now(), change);
    // Refuse now what every node would refuse: the change must apply to the head.
    let mut check = entry.clone();
    check.signatures.clear();
    let mut state = log.state();
    state.threshold = 0;
    state
        .apply(&check, Timestamp::now())
        .map_err(|e| anyhow::anyhow!("the change cannot apply: [{}] {e}", e.code()))?;
    entry.approve(&member, &key_id, &key);
    write_new(&a.out, &serde_json::to_string_pretty(&entry)?)?;
    println!(
        "wrote {}: entry {} ({}), approved by {member}; {} approval(s) of {} needed",
        a.out.display(),
        entry.index,
        entry.change.describe(),
        entry.signatures.len(),
        log.state().threshold
    );
    Ok(0)
}

fn sign(a: SignArgs) -> anyhow::Result<u8> {
    let bytes = std::fs::read(&a.proposal)
        .with_context(|| format!("cannot read {}", a.proposal.display()))?;
    let mut entry = Entry::from_slice(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: [{}] {e}", a.proposal.display(), e.code()))?;
    let (member, key_id, key) = signer(&a.config)?;
    entry.approve(&member, &key_id, &key);
    let tmp = a.proposal.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&entry)?)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &a.proposal)
        .with_context(|| format!("cannot write {}", a.proposal.display()))?;
    let signers: Vec<&str> = entry.signatures.iter().map(|s| s.member.as_str()).collect();
    println!(
        "{}: approved by {member}; approvals: {}",
        a.proposal.display(),
        signers.join(", ")
    );
    Ok(0)
}

fn verify(a: VerifyArgs) -> anyhow::Result<u8> {
    let now = a.now.unwrap_or_else(Timestamp::now);
    match &a.log {
        None => match Log::load(&a.file, now) {
            Ok(log) => {
                let h = log.head().context("empty log")?;
                println!(
                    "{}: valid membership log, {} entries, head {} ({}), {} members, threshold {}",
                    a.file.display(),
                    log.entries().len(),
                    h.index,
                    h.hash,
                    log.state().roster.members.len(),
                    log.state().threshold
                );
                Ok(0)
            }
            Err(e @ synergia::membership::LogFileError::Entry { .. }) => {
                println!("INVALID {e}");
                Ok(EXIT_INVALID)
            }
            Err(e) => Err(e.into()),
        },
        Some(log_path) => {
            let log = Log::load(log_path, now)?;
            let bytes = std::fs::read(&a.file)
                .with_context(|| format!("cannot read {}", a.file.display()))?;
            let verdict = Entry::from_slice(&bytes).and_then(|e| {
                log.state().apply(&e, now)?;
                Ok(e)
            });
            match verdict {
                Ok(e) => {
                    println!(
                        "{}: valid entry {} ({}), {} approvals",
                        a.file.display(),
                        e.index,
                        e.change.describe(),
                        e.signatures.len()
                    );
                    Ok(0)
                }
                Err(e) => {
                    println!("{}: INVALID [{}] {e}", a.file.display(), e.code());
                    Ok(EXIT_INVALID)
                }
            }
        }
    }
}

fn append(a: AppendArgs) -> anyhow::Result<u8> {
    let mut log = load_log(&a.log)?;
    let bytes = std::fs::read(&a.proposal)
        .with_context(|| format!("cannot read {}", a.proposal.display()))?;
    let verdict = Entry::from_slice(&bytes).and_then(|e| {
        let added = log.append(e.clone(), Timestamp::now())?;
        Ok((e, added))
    });
    match verdict {
        Ok((e, added)) => {
            if added {
                log.save(&a.log)?;
            }
            println!(
                "{}: entry {} ({}){}; head {}",
                a.log.display(),
                e.index,
                e.change.describe(),
                if added { " appended" } else { " held already" },
                log.head().map(|h| h.hash).unwrap_or_default()
            );
            Ok(0)
        }
        Err(e) => {
            println!("{}: INVALID [{}] {e}", a.proposal.display(), e.code());
            Ok(EXIT_INVALID)
        }
    }
}

fn submit(a: SubmitArgs) -> anyhow::Result<u8> {
    let bytes = std::fs::read(&a.proposal)
        .with_context(|| format!("cannot read {}", a.proposal.display()))?;
    if let Err(e) = Entry::from_slice(&bytes) {
        println!("{}: INVALID [{}] {e}", a.proposal.display(), e.code());
        return Ok(EXIT_INVALID);
    }
    let c = a.client.connect()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let req = c
        .request(reqwest::Method::POST, "/api/v1/membership")
        .header("content-type", "application/json")
        .body(bytes);
    let (status, v) = rt.block_on(c.json(req))?;
    match status {
        200 => {
            println!(
                "{}: entry {} {} by {}; its log's head is entry {} ({})",
                a.proposal.display(),
                v["index"],
                v["status"].as_str().unwrap_or("?"),
                c.url,
                v["head"]["index"],
                v["head"]["hash"].as_str().unwrap_or("?"),
            );
            Ok(0)
        }
        400 | 409 | 422 => {
            println!(
                "{}: REFUSED by {}: {}",
                a.proposal.display(),
                c.url,
                super::client::node_error(status, &v)
            );
            Ok(EXIT_INVALID)
        }
        _ => bail!(super::client::node_error(status, &v)),
    }
}

fn log(a: LogArgs) -> anyhow::Result<u8> {
    let log = load_log(&a.log)?;
    for e in log.entries() {
        if a.json {
            println!("{}", e.to_line());
            continue;
        }
        let signers: Vec<&str> = e.signatures.iter().map(|s| s.member.as_str()).collect();
        println!(
            "{:>4}  {}  {}  {}{}",
            e.index,
            e.at,
            &e.hash()[..19],
            e.change.describe(),
            if signers.is_empty() {
                String::new()
            } else {
                format!("  (approved by {})", signers.join(", "))
            }
        );
    }
    Ok(0)
}

fn show(a: ShowArgs) -> anyhow::Result<u8> {
    let log = load_log(&a.log)?;
    let state = match a.at {
        Some(i) => log
            .state_at(i)
            .cloned()
            .with_context(|| format!("the log has no entry {i}"))?,
        None => log.state(),
    };
    let head = state.head.clone().context("empty log")?;
    println!(
        "federation {} at entry {} ({}): threshold {}",
        state.roster.federation, head.index, head.hash, state.threshold
    );
    for m in &state.roster.members {
        let keys: Vec<String> = m
            .keys
            .iter()
            .map(|k| match &k.revoked_at {
                Some(r) => format!("{} (revoked {r})", k.key_id),
                None => k.key_id.clone(),
            })
            .collect();
        println!(
            "  {:<16} {:<32} keys {}",
            m.name,
            m.node_url,
            keys.join(", ")
        );
    }
    for s in &state.revoked.serials {
        println!("  revoked certificate serial {s}");
    }
    for f in &state.revoked.fingerprints {
        println!("  revoked certificate sha256 {f}");
    }
    if let Some(path) = &a.write_roster {
        let roster = state.checked_roster()?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, roster.to_json_pretty())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(0)
}
