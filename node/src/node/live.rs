//! What a running node takes again from its files without a restart: the roster, its
//! signing key, its peers and its local clients.
//!
//! A federation changes while its nodes run: a member joins, a key is rotated or
//! revoked, a client gets a token. Restarting every node for each change is what
//! operators forget to do, and until they do a removed member is still let in. So the
//! node watches the roster file, its config file and its signing key file (every few
//! seconds, and at once on SIGHUP), and swaps in a new [`Live`] when they change and
//! check out; when they do not, the node keeps what it has and says why in its log.
//! Everything else in the config (listen address, data directory, TLS files, limits)
//! is read once at start: changing it takes a restart (TLS files reload on their own,
//! see `tls`).

use super::NodeError;
use crate::config::{Client, Config, Peer};
use crate::envelope::Signer;
use crate::membership::Log;
use crate::roster::Roster;
use crate::stix::timestamp::Timestamp;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

/// The node's current roster, signing identity, peers and clients: one consistent
/// snapshot, replaced whole at a reload.
#[derive(Debug)]
pub struct Live {
    /// The federation roster.
    pub roster: Arc<Roster>,
    /// This member's signing identity.
    pub signer: Arc<Signer>,
    /// The peers to sync with and let in: the config's `[[peers]]` that the roster
    /// knows, and (with `peers_from_roster`) every other roster member.
    pub peers: Vec<Peer>,
    /// Local clients.
    pub clients: Vec<Client>,
    /// The membership log the roster comes from, when the config names one.
    pub membership: Option<Arc<Log>>,
    /// Hashes of membership entries an operator rejected (the log's `.rejected`
    /// file): never taken, and a fork with one of them is no fork (operations.md,
    /// "Resolving a fork").
    pub rejected: std::collections::BTreeSet<String>,
    /// The files it was read from (the config's own, and the roster and signing key
    /// that config names: a reload may point at others).
    sources: Vec<PathBuf>,
    /// Their modification times then.
    stamps: Vec<Option<SystemTime>>,
}

/// The files a [`Live`] is read from, in a fixed order.
fn sources(config: &Config) -> Vec<PathBuf> {
    let roster = config
        .membership_log
        .clone()
        .unwrap_or_else(|| config.roster.clone());
    let mut v = vec![roster, config.signing.key_file.clone()];
    v.extend(config.source.clone());
    v.extend(config.membership_log.as_deref().map(rejected_path));
    v
}

/// The file of rejected entry hashes beside a membership log: `<log>.rejected`.
pub fn rejected_path(log: &std::path::Path) -> PathBuf {
    let mut p = log.as_os_str().to_owned();
    p.push(".rejected");
    PathBuf::from(p)
}

/// Reads `<log>.rejected`: one entry hash (`sha256:` and 64 hex digits) per line,
/// blank lines and `#` comments (to the end of the line) ignored; no file, no
/// rejected entry.
fn load_rejected(log: &std::path::Path) -> Result<std::collections::BTreeSet<String>, NodeError> {
    let path = rejected_path(log);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
        Err(e) => {
            return Err(NodeError::Inconsistent(format!("{}: {e}", path.display())));
        }
    };
    let mut out = std::collections::BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        if crate::envelope::EnvelopeId::parse(line).is_none() {
            return Err(NodeError::Inconsistent(format!(
                "{}, line {}: not an entry hash (sha256: and 64 lower-case hex digits)",
                path.display(),
                n + 1
            )));
        }
        out.insert(line.to_string());
    }
    Ok(out)
}

fn stamps(paths: &[PathBuf]) -> Vec<Option<SystemTime>> {
    paths
        .iter()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

impl Live {
    /// Reads the roster and signing key a config names and checks them against each
    /// other. `strict_peers`: a `[[peers]]` entry the roster does not know is an error
    /// (at start); otherwise it is left out with a warning (a member removed from the
    /// roster while its entry is still in the config).
    pub fn load(config: &Config, strict_peers: bool) -> Result<Live, NodeError> {
        let sources = sources(config);
        let stamps = stamps(&sources);
        let (roster, membership, rejected) = match &config.membership_log {
            Some(path) => {
                let log = Log::load(path, Timestamp::now())?;
                let roster = log
                    .state()
                    .checked_roster()
                    .map_err(|e| NodeError::Inconsistent(format!("{}: {e}", path.display())))?;
                let rejected = load_rejected(path)?;
                if let Some(e) = log.entries().iter().find(|e| rejected.contains(&e.hash())) {
                    return Err(NodeError::Inconsistent(format!(
                        "{}: entry {} ({}) is listed in {}: put the log of the chosen history in place first",
                        path.display(),
                        e.index,
                        e.hash(),
                        rejected_path(path).display()
                    )));
                }
                (roster, Some(Arc::new(log)), rejected)
            }
            None => (Roster::load(&config.roster)?, None, Default::default()),
        };
        let member = roster.member(&config.member).ok_or_else(|| {
            NodeError::Inconsistent(format!(
                "config member {:?} is not in the roster {}",
                config.member,
                config
                    .membership_log
                    .as_ref()
                    .unwrap_or(&config.roster)
                    .display()
            ))
        })?;
        let key = crate::keys::signing::load(&config.signing.key_file)?;
        let trusted = roster
            .key(&config.member, &config.signing.key_id)
            .ok_or_else(|| {
                NodeError::Inconsistent(format!(
                    "signing.key_id {:?} is not a roster key of {}",
                    config.signing.key_id, config.member
                ))
            })?;
        if trusted.verifying_key != key.verifying_key() {
            return Err(NodeError::Inconsistent(format!(
                "signing.key_file {} does not hold the private key of roster key {}",
                config.signing.key_file.display(),
                config.signing.key_id
            )));
        }
        let mut peers = Vec::new();
        for p in &config.peers {
            if roster.member(&p.name).is_some() {
                peers.push(p.clone());
            } else if strict_peers && roster.former_member(&p.name).is_none() {
                return Err(NodeError::Inconsistent(format!(
                    "peer {:?} is not in the roster",
                    p.name
                )));
            } else {
                tracing::warn!(peer = %p.name, "a [[peers]] entry names a member the roster does not hold: not syncing with it");
            }
        }
        if config.peers_from_roster {
            for m in roster.members() {
                if m.name != config.member && !peers.iter().any(|p| p.name == m.name) {
                    peers.push(Peer {
                        name: m.name.clone(),
                        url: None,
                        amber: false,
                    });
                }
            }
        }
        let signer = Signer {
            origin: config.member.clone(),
            origin_identity: member.identity.clone(),
            key_id: config.signing.key_id.clone(),
            key,
        };
        Ok(Live {
            roster: Arc::new(roster),
            signer: Arc::new(signer),
            peers,
            clients: config.clients.clone(),
            membership,
            rejected,
            sources,
            stamps,
        })
    }

    /// The certificates TLS refuses under this roster: former members' (by their
    /// member SAN) and those the membership log revoked.
    pub fn refused(&self) -> crate::tls::Refused {
        let mut r = crate::tls::Refused {
            members: self
                .roster
                .former()
                .iter()
                .map(|f| f.member.name.clone())
                .collect(),
            ..Default::default()
        };
        if let Some(log) = &self.membership {
            let revoked = log.state().revoked;
            r.serials = revoked
                .serials
                .iter()
                .map(|s| crate::tls::normalise_serial(s))
                .collect();
            r.fingerprints = revoked.fingerprints.into_iter().collect();
        }
        r
    }

    /// Whether the files it was read from changed since.
    pub fn stale(&self) -> bool {
        stamps(&self.sources) != self.stamps
    }

    /// A peer's URL: its `[[peers]]` entry's, else the roster's.
    pub fn peer_url(&self, peer: &Peer) -> Option<String> {
        peer.url
            .clone()
            .or_else(|| self.roster.member(&peer.name).map(|m| m.node_url.clone()))
    }

    /// Whether `peer` is a peer.
    pub fn is_peer(&self, peer: &str) -> bool {
        self.peers.iter().any(|p| p.name == peer)
    }

    /// Whether this node's own amber goes to `peer`.
    pub fn amber_to(&self, peer: &str) -> bool {
        self.peers.iter().any(|p| p.name == peer && p.amber)
    }
}

/// What a reload changed, for the log line and the caller.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Members the roster gained.
    pub members_added: Vec<String>,
    /// Members the roster lost.
    pub members_removed: Vec<String>,
    /// Peers gained.
    pub peers_added: Vec<String>,
    /// Peers lost.
    pub peers_removed: Vec<String>,
    /// The signing key now used, when it changed.
    pub signing_key: Option<String>,
    /// Local clients removed, or whose roles, level or token changed.
    pub clients_changed: Vec<String>,
}

impl Changes {
    /// Whether a peer or client may have lost an access it had.
    pub fn access_lost(&self) -> bool {
        !self.peers_removed.is_empty()
            || !self.members_removed.is_empty()
            || !self.clients_changed.is_empty()
    }
}

impl Changes {
    /// Compares two snapshots.
    pub fn between(old: &Live, new: &Live) -> Changes {
        let names =
            |r: &Roster| -> Vec<String> { r.members().iter().map(|m| m.name.clone()).collect() };
        let (o, n) = (names(&old.roster), names(&new.roster));
        let peers = |l: &Live| -> Vec<String> { l.peers.iter().map(|p| p.name.clone()).collect() };
        let (op, np) = (peers(old), peers(new));
        Changes {
            members_added: n.iter().filter(|m| !o.contains(m)).cloned().collect(),
            members_removed: o.iter().filter(|m| !n.contains(m)).cloned().collect(),
            peers_added: np.iter().filter(|m| !op.contains(m)).cloned().collect(),
            peers_removed: op.iter().filter(|m| !np.contains(m)).cloned().collect(),
            signing_key: (old.signer.key_id != new.signer.key_id)
                .then(|| new.signer.key_id.clone()),
            clients_changed: old
                .clients
                .iter()
                .filter(|c| {
                    !new.clients.iter().any(|n| {
                        n.name == c.name
                            && n.roles == c.roles
                            && n.max_tlp == c.max_tlp
                            && n.token_sha256 == c.token_sha256
                    })
                })
                .map(|c| c.name.clone())
                .collect(),
        }
    }
}

/// Refuses a reloaded membership log that does not extend the one in force: the node
/// never goes back to an earlier roster or over to another history (a fork) because a
/// file changed; an operator who means it restarts the node.
pub fn check_extends(old: &Live, new: &Live, config: &Config) -> Result<(), NodeError> {
    let (Some(o), Some(n)) = (&old.membership, &new.membership) else {
        return Ok(());
    };
    let path = config
        .membership_log
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let (oe, ne) = (o.entries(), n.entries());
    if ne.len() < oe.len() {
        return Err(NodeError::MembershipDiverged {
            path,
            reason: format!(
                "it holds {} entries, the log in force {}",
                ne.len(),
                oe.len()
            ),
        });
    }
    if let Some(i) = oe.iter().zip(ne).position(|(a, b)| a.hash() != b.hash()) {
        return Err(NodeError::MembershipDiverged {
            path,
            reason: format!(
                "entry {i} is {} there but {} in force (a fork)",
                ne[i].hash(),
                oe[i].hash()
            ),
        });
    }
    Ok(())
}

/// Refuses a reloaded config whose signing key cannot sign now: switching to a key
/// before its `not_before` (or after its revocation) would have every peer refuse
/// this node's publishes until then. The node keeps signing with the key it has.
pub fn check_signing_key_usable(live: &Live, now: Timestamp) -> Result<(), NodeError> {
    let s = &live.signer;
    let Some(k) = live.roster.key(&s.origin, &s.key_id) else {
        return Err(NodeError::Inconsistent(format!(
            "signing key {} is not in the roster",
            s.key_id
        )));
    };
    if now < k.not_before {
        return Err(NodeError::Inconsistent(format!(
            "signing key {} is valid only from {}: the node keeps signing with its current key and takes this one once it is valid",
            s.key_id, k.not_before
        )));
    }
    if now > k.not_after || k.revoked_at.is_some_and(|r| r <= now) {
        return Err(NodeError::Inconsistent(format!(
            "signing key {} has expired or is revoked",
            s.key_id
        )));
    }
    Ok(())
}
