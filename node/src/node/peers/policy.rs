//! TLP sharing policy between members (SPEC section 5).
//!
//! | envelope tlp         | who may receive it                    | forwarded by non-origins |
//! |----------------------|---------------------------------------|--------------------------|
//! | clear, green         | every peer                            | yes (dedup by id)        |
//! | amber, amber+strict  | peers the origin's config lists       | no                       |
//! | red                  | members named in `recipients`         | no                       |
//!
//! The sender applies [`may_send`]; the receiver applies [`may_accept`] and refuses an
//! envelope that the peer presenting it was not allowed to pass on.

use crate::config::Peer;
use crate::node::live::Live;
use crate::stix::tlp::TlpLevel;

/// Why an envelope is withheld from a peer (never told to the peer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Withheld {
    /// The peer is the origin: it has it. (An envelope the peer sent us is not
    /// withheld for that: a peer restored from a backup may have lost it, and it is
    /// listed to it by id, see the feed.)
    PeerHasIt,
    /// Amber not originated here, or the peer is not on our amber list.
    Amber,
    /// Red and the peer is not a named recipient (or we are not the origin).
    Red,
}

/// Whether this node may send an envelope (`origin`, `tlp`, `recipients`) to `peer`.
pub fn may_send(
    member: &str,
    peers: &[Peer],
    peer: &str,
    origin: &str,
    tlp: TlpLevel,
    recipients: &[String],
) -> Result<(), Withheld> {
    if origin == peer {
        return Err(Withheld::PeerHasIt);
    }
    let own = origin == member;
    match tlp {
        TlpLevel::Clear | TlpLevel::Green => Ok(()),
        TlpLevel::Amber | TlpLevel::AmberStrict => {
            let listed = peers.iter().any(|p| p.name == peer && p.amber);
            if own && listed {
                Ok(())
            } else {
                Err(Withheld::Amber)
            }
        }
        TlpLevel::Red => {
            if own && recipients.iter().any(|r| r == peer) {
                Ok(())
            } else {
                Err(Withheld::Red)
            }
        }
    }
}

/// [`may_send`] for an envelope the view holds.
pub fn may_send_held(
    live: &Live,
    view: &crate::store::view::View,
    peer: &str,
    e: &crate::store::view::EnvMeta,
) -> Result<(), Withheld> {
    may_send(
        &live.signer.origin,
        &live.peers,
        peer,
        view.origin_name(e.origin),
        e.tlp,
        &e.recipients,
    )
}

/// Why an envelope from a peer is refused on policy grounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyViolation {
    /// Amber or red presented by a member that is not its origin.
    #[error("{tlp} envelope of {origin} forwarded by {sender}: only its origin may send it")]
    ForwardNotAllowed {
        /// Level.
        tlp: TlpLevel,
        /// Origin.
        origin: String,
        /// Presenting peer.
        sender: String,
    },
    /// Red envelope that does not name this member.
    #[error("red envelope of {origin} does not name {member} as a recipient")]
    NotARecipient {
        /// Origin.
        origin: String,
        /// This member.
        member: String,
    },
}

impl PolicyViolation {
    /// Stable code for counters.
    pub fn code(&self) -> &'static str {
        match self {
            PolicyViolation::ForwardNotAllowed { .. } => "forward-not-allowed",
            PolicyViolation::NotARecipient { .. } => "not-a-recipient",
        }
    }
}

impl PolicyViolation {
    /// Every code [`PolicyViolation::code`] returns.
    pub const CODES: [&'static str; 2] = ["forward-not-allowed", "not-a-recipient"];
}

/// Whether `sender` was allowed to give this node the envelope.
pub fn may_accept(
    member: &str,
    sender: &str,
    origin: &str,
    tlp: TlpLevel,
    recipients: &[String],
) -> Result<(), PolicyViolation> {
    if origin == member {
        // Our own envelope, signed with our key, back from a peer: one we hold is a
        // duplicate, one we do not (a log restored from an older backup) is ours to
        // take back — the federation is the origin's backup (protocol §9).
        return Ok(());
    }
    if !tlp.is_transitive() && origin != sender {
        return Err(PolicyViolation::ForwardNotAllowed {
            tlp,
            origin: origin.to_string(),
            sender: sender.to_string(),
        });
    }
    if tlp == TlpLevel::Red && !recipients.iter().any(|r| r == member) {
        return Err(PolicyViolation::NotARecipient {
            origin: origin.to_string(),
            member: member.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn cfg() -> Config {
        let text = r#"
            member = "kaspersky"
            data_dir = "d"
            roster = "r.json"
            [listen]
            address = "127.0.0.1:1"
            [tls]
            ca = "ca.pem"
            cert = "c.pem"
            key = "k.pem"
            [signing]
            key_id = "k"
            key_file = "s.pem"
            [[peers]]
            name = "interpol"
            amber = true
            [[peers]]
            name = "groupib"
        "#;
        toml::from_str(text).unwrap()
    }

    #[test]
    fn sending_rules() {
        let c = cfg();
        let none: &[String] = &[];
        assert_eq!(
            may_send(
                &c.member,
                &c.peers,
                "groupib",
                "trendmicro",
                TlpLevel::Green,
                none
            ),
            Ok(())
        );
        assert_eq!(
            may_send(
                &c.member,
                &c.peers,
                "groupib",
                "groupib",
                TlpLevel::Green,
                none
            ),
            Err(Withheld::PeerHasIt)
        );
        assert_eq!(
            may_send(
                &c.member,
                &c.peers,
                "groupib",
                "trendmicro",
                TlpLevel::Clear,
                none
            ),
            Ok(())
        );
        assert_eq!(
            may_send(
                &c.member,
                &c.peers,
                "interpol",
                "kaspersky",
                TlpLevel::Amber,
                none
            ),
            Ok(())
        );
        assert_eq!(
            may_send(
                &c.member,
                &c.peers,
                "groupib",
                "kaspersky",
                TlpLevel::Amber,
                none
            ),
            Err(Withheld::Amber)
        );
        assert_eq!(
            may_send(
                &c.member,
                &c.peers,
                "interpol",
                "trendmicro",
                TlpLevel::AmberStrict,
                none
            ),
            Err(Withheld::Amber)
        );
        let to_interpol = vec!["interpol".to_string()];
        assert_eq!(
            may_send(
                &c.member,
                &c.peers,
                "interpol",
                "kaspersky",
                TlpLevel::Red,
                &to_interpol
            ),
            Ok(())
        );
        assert_eq!(
            may_send(
                &c.member,
                &c.peers,
                "groupib",
                "kaspersky",
                TlpLevel::Red,
                &to_interpol
            ),
            Err(Withheld::Red)
        );
        assert_eq!(
            may_send(
                &c.member,
                &c.peers,
                "groupib",
                "trendmicro",
                TlpLevel::Red,
                &["groupib".into()]
            ),
            Err(Withheld::Red)
        );
    }

    #[test]
    fn receiving_rules() {
        let none: &[String] = &[];
        assert!(may_accept("interpol", "groupib", "kaspersky", TlpLevel::Green, none).is_ok());
        assert!(may_accept("interpol", "kaspersky", "kaspersky", TlpLevel::Amber, none).is_ok());
        assert_eq!(
            may_accept("interpol", "groupib", "kaspersky", TlpLevel::Amber, none)
                .unwrap_err()
                .code(),
            "forward-not-allowed"
        );
        assert_eq!(
            may_accept(
                "interpol",
                "kaspersky",
                "kaspersky",
                TlpLevel::Red,
                &["groupib".into()]
            )
            .unwrap_err()
            .code(),
            "not-a-recipient"
        );
        assert!(
            may_accept(
                "interpol",
                "kaspersky",
                "kaspersky",
                TlpLevel::Red,
                &["interpol".into()]
            )
            .is_ok()
        );
        // Our own envelopes, at any level, come back from a peer (a restored log
        // takes them back).
        for tlp in [TlpLevel::Green, TlpLevel::Amber, TlpLevel::Red] {
            assert!(
                may_accept("interpol", "groupib", "interpol", tlp, &["groupib".into()]).is_ok()
            );
        }
    }
}
