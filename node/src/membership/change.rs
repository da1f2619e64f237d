//! The changes a membership entry can make, and how each applies to a state.

use super::{LogError, State};
use crate::roster::{Member, RosterKey};
use serde::{Deserialize, Serialize};

/// One change to the federation. Serialised with `"kind"` naming it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Change {
    /// The founding members and the approval threshold (index 0 only).
    Genesis {
        /// Approvals every later entry needs.
        threshold: u32,
        /// The founding members, with their keys.
        members: Vec<Member>,
    },
    /// A new member: name, STIX identity, node URL, TLS identity, signing keys.
    AddMember {
        /// The member.
        member: Member,
    },
    /// A member leaves: it stays in the roster as a former member (`former`), its
    /// envelopes signed at or after the entry's time are refused (`member-removed`),
    /// its earlier ones stay valid.
    RemoveMember {
        /// Its name.
        name: String,
    },
    /// A new signing key of a member (a rotation adds the next key).
    AddKey {
        /// The member.
        member: String,
        /// The key.
        key: RosterKey,
    },
    /// Revokes a signing key from an instant on.
    RevokeKey {
        /// The member.
        member: String,
        /// The key.
        key_id: String,
        /// Signatures dated at or after this are refused.
        revoked_at: String,
    },
    /// Revokes a TLS certificate, by serial (hex) or SHA-256 fingerprint (hex).
    RevokeCertificate {
        /// Serial number, hex.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        serial: Option<String>,
        /// SHA-256 of the DER certificate, hex.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fingerprint: Option<String>,
    },
    /// A member's node moved.
    SetUrl {
        /// The member.
        member: String,
        /// Its new base URL.
        node_url: String,
    },
    /// A new approval threshold.
    SetThreshold {
        /// Approvals every later entry needs.
        threshold: u32,
    },
}

impl Change {
    /// A one-line description for people.
    pub fn describe(&self) -> String {
        match self {
            Change::Genesis { threshold, members } => format!(
                "genesis: {} members ({}), threshold {threshold}",
                members.len(),
                members
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Change::AddMember { member } => {
                format!("add member {} ({})", member.name, member.node_url)
            }
            Change::RemoveMember { name } => format!("remove member {name}"),
            Change::AddKey { member, key } => format!(
                "add key {} to {member} (valid {} to {})",
                key.key_id, key.not_before, key.not_after
            ),
            Change::RevokeKey {
                member,
                key_id,
                revoked_at,
            } => format!("revoke key {key_id} of {member} from {revoked_at}"),
            Change::RevokeCertificate {
                serial,
                fingerprint,
            } => match (serial, fingerprint) {
                (Some(s), _) => format!("revoke TLS certificate serial {s}"),
                (None, Some(f)) => format!("revoke TLS certificate sha256 {f}"),
                (None, None) => "revoke TLS certificate (none named)".into(),
            },
            Change::SetUrl { member, node_url } => format!("{member} moves to {node_url}"),
            Change::SetThreshold { threshold } => format!("threshold becomes {threshold}"),
        }
    }
}

fn invalid(m: impl Into<String>) -> LogError {
    LogError::InvalidChange(m.into())
}

fn is_hex(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The state after `change` (before the roster's own checks, which the caller runs).
pub(super) fn apply(
    state: &State,
    change: &Change,
    federation: &str,
    at: &str,
) -> Result<State, LogError> {
    let mut next = state.clone();
    let member_ix = |name: &str| {
        next.roster
            .members
            .iter()
            .position(|m| m.name == name)
            .ok_or_else(|| invalid(format!("{name} is not a member")))
    };
    match change {
        Change::Genesis { threshold, members } => {
            if state.head.is_some() {
                return Err(invalid("a genesis only starts a log"));
            }
            if members.is_empty() {
                return Err(invalid("a genesis lists at least one member"));
            }
            if *threshold == 0 || *threshold as usize > members.len() {
                return Err(invalid(format!(
                    "threshold {threshold} must be from 1 to the {} members",
                    members.len()
                )));
            }
            next.roster.federation = federation.to_string();
            next.roster.members = members.clone();
            next.threshold = *threshold;
        }
        Change::AddMember { member } => {
            if member_ix(&member.name).is_ok() {
                return Err(invalid(format!("{} is a member already", member.name)));
            }
            if next
                .roster
                .former
                .iter()
                .any(|f| f.member.name == member.name)
            {
                return Err(invalid(format!(
                    "{} was a member and was removed; a name is never used again (its envelopes keep naming the former member)",
                    member.name
                )));
            }
            if member.keys.is_empty() {
                return Err(invalid(format!(
                    "{} comes without a signing key",
                    member.name
                )));
            }
            next.roster.members.push(member.clone());
        }
        Change::RemoveMember { name } => {
            let i = member_ix(name)?;
            if next.roster.members.len() - 1 < next.threshold as usize {
                return Err(invalid(format!(
                    "removing {name} would leave fewer members than the threshold {}; lower it first",
                    next.threshold
                )));
            }
            // Kept as a former member: its envelopes signed before `at` stay valid.
            let member = next.roster.members.remove(i);
            next.roster.former.push(crate::roster::FormerMember {
                member,
                removed_at: at.to_string(),
            });
        }
        Change::AddKey { member, key } => {
            let i = member_ix(member)?;
            next.roster.members[i].keys.push(key.clone());
        }
        Change::RevokeKey {
            member,
            key_id,
            revoked_at,
        } => {
            let i = member_ix(member)?;
            let k = next.roster.members[i]
                .keys
                .iter_mut()
                .find(|k| &k.key_id == key_id)
                .ok_or_else(|| invalid(format!("{member} has no key {key_id}")))?;
            // A revocation only moves earlier: a later one would revalidate signatures.
            let at = crate::stix::timestamp::Timestamp::parse(revoked_at)
                .map_err(|e| invalid(format!("revoked_at: {e}")))?;
            if let Some(held) = &k.revoked_at
                && crate::stix::timestamp::Timestamp::parse(held).is_ok_and(|h| h <= at)
            {
                return Err(invalid(format!(
                    "{key_id} is revoked from {held} already; a revocation only moves earlier"
                )));
            }
            k.revoked_at = Some(revoked_at.clone());
        }
        Change::RevokeCertificate {
            serial,
            fingerprint,
        } => {
            match (serial, fingerprint) {
                (None, None) => return Err(invalid("name a serial or a fingerprint")),
                (Some(s), _) if !is_hex(s) => {
                    return Err(invalid("serial must be lower-case hex"));
                }
                (_, Some(f)) if !(f.len() == 64 && is_hex(f)) => {
                    return Err(invalid("fingerprint must be 64 lower-case hex digits"));
                }
                _ => {}
            }
            if let Some(s) = serial {
                next.revoked.serials.push(s.clone());
            }
            if let Some(f) = fingerprint {
                next.revoked.fingerprints.push(f.clone());
            }
        }
        Change::SetUrl { member, node_url } => {
            let i = member_ix(member)?;
            if !node_url.starts_with("https://") {
                return Err(invalid(format!("{node_url:?} is not an https URL")));
            }
            next.roster.members[i].node_url = node_url.clone();
        }
        Change::SetThreshold { threshold } => {
            if *threshold == 0 || *threshold as usize > next.roster.members.len() {
                return Err(invalid(format!(
                    "threshold {threshold} must be from 1 to the {} members",
                    next.roster.members.len()
                )));
            }
            next.threshold = *threshold;
        }
    }
    Ok(next)
}
