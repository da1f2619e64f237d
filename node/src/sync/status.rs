//! Peer status for operators: `GET /api/v1/peers` and `synergia status`.

use super::now;
use crate::node::Node;
use crate::stix::timestamp::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One peer, as an operator sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerStatus {
    /// Member name.
    pub peer: String,
    /// Its URL.
    pub url: String,
    /// Whether the last attempt reached it.
    pub reachable: bool,
    /// Last attempt to pull.
    pub last_attempt: Option<String>,
    /// Last successful pull or push.
    pub last_success: Option<String>,
    /// Their log head minus our cursor (includes what policy withholds from us).
    pub lag_envelopes: Option<u64>,
    /// How long we have been behind them, seconds (0 when caught up).
    pub lag_seconds: Option<i64>,
    /// Envelopes accepted from them.
    pub envelopes_received: u64,
    /// Objects in them.
    pub objects_received: u64,
    /// Envelopes we sent them.
    pub envelopes_sent: u64,
    /// Their envelopes we refused, by reason.
    pub rejected: BTreeMap<String, u64>,
    /// Failed requests to them, by kind (`unreachable`, `http-status`, `malformed`,
    /// `disk-full`, `store`).
    #[serde(default)]
    pub failures: BTreeMap<String, u64>,
    /// Envelopes we withheld from them by policy, by TLP level.
    pub withheld: BTreeMap<String, u64>,
    /// Last error, with its time.
    pub last_error: Option<String>,
    /// When the last error happened.
    pub last_error_at: Option<String>,
    /// Days until their TLS certificate expires.
    pub cert_expires_in_days: Option<i64>,
    /// Days until their newest signing key expires.
    pub signing_key_expires_in_days: Option<i64>,
    /// Per shared level: whether their view digest equals ours.
    pub digests_match: BTreeMap<String, bool>,
}

fn ts(us: Option<i64>) -> Option<String> {
    us.map(|u| Timestamp::from_micros(u).to_millis_string())
}

/// The status of every configured peer.
pub fn peer_statuses(node: &Node) -> Vec<PeerStatus> {
    let ours = crate::server::federation::shared_digests(node);
    let now_us = now();
    let now_s = now_us / 1_000_000;
    node.config
        .peers
        .iter()
        .map(|p| {
            let s = node.sync.peer(&p.name);
            let url = p
                .url
                .clone()
                .or_else(|| node.roster.member(&p.name).map(|m| m.node_url.clone()))
                .unwrap_or_default();
            let key_days = node.roster.member(&p.name).and_then(|m| {
                m.keys
                    .iter()
                    .filter_map(|k| node.roster.key(&p.name, &k.key_id))
                    .filter(|k| k.revoked_at.is_none())
                    .map(|k| (k.not_after.as_secs() - now_s) / 86_400)
                    .max()
            });
            let digests_match = ours
                .iter()
                .filter_map(|(level, d)| {
                    s.their_digests
                        .get(level)
                        .map(|t| (level.clone(), Some(t.as_str()) == d.as_str()))
                })
                .collect();
            PeerStatus {
                peer: p.name.clone(),
                url,
                reachable: s.reachable,
                last_attempt: ts(s.last_attempt),
                last_success: ts(s.last_success),
                lag_envelopes: s.their_head.map(|h| h.saturating_sub(s.cursor)),
                lag_seconds: s
                    .their_head
                    .map(|_| s.behind_since.map_or(0, |b| (now_us - b) / 1_000_000)),
                envelopes_received: s.envelopes_received,
                objects_received: s.objects_received,
                envelopes_sent: s.envelopes_sent,
                rejected: s.rejected.clone(),
                failures: s.failures.clone(),
                withheld: s.withheld.clone(),
                last_error: s.last_error.as_ref().map(|(_, m)| m.clone()),
                last_error_at: s
                    .last_error
                    .as_ref()
                    .map(|(t, _)| Timestamp::from_micros(*t).to_millis_string()),
                cert_expires_in_days: s.cert_not_after.map(|n| (n - now_s) / 86_400),
                signing_key_expires_in_days: key_days,
                digests_match,
            }
        })
        .collect()
}

/// A fixed-width table of peer statuses, one row per peer.
pub fn render_table(peers: &[PeerStatus]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<12} {:<6} {:<24} {:>9} {:>7} {:>9} {:>9} {:>6} {:<22} {:<18} {:>5} {:>5} DIGESTS / LAST ERROR",
        "PEER",
        "UP",
        "LAST SUCCESS",
        "LAG ENV",
        "LAG S",
        "ENV IN",
        "OBJ IN",
        "SENT",
        "REJECTED",
        "WITHHELD",
        "CERT",
        "KEY"
    );
    let map = |m: &BTreeMap<String, u64>| {
        if m.is_empty() {
            "-".to_string()
        } else {
            m.iter()
                .map(|(k, v)| format!("{k}:{v}"))
                .collect::<Vec<_>>()
                .join(",")
        }
    };
    for p in peers {
        let digests = if p.digests_match.is_empty() {
            "unknown".to_string()
        } else if p.digests_match.values().all(|&b| b) {
            "agree".to_string()
        } else {
            p.digests_match
                .iter()
                .filter(|(_, b)| !**b)
                .map(|(l, _)| format!("{l} differs"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let err = match (&p.last_error, &p.last_error_at) {
            (Some(e), Some(t)) if !p.reachable => format!("; {t}: {e}"),
            _ => String::new(),
        };
        let opt = |v: Option<i64>| v.map_or("-".to_string(), |x| x.to_string());
        let _ = writeln!(
            out,
            "{:<12} {:<6} {:<24} {:>9} {:>7} {:>9} {:>9} {:>6} {:<22} {:<18} {:>5} {:>5} {}{}",
            p.peer,
            if p.reachable { "yes" } else { "NO" },
            p.last_success.clone().unwrap_or_else(|| "never".into()),
            p.lag_envelopes.map_or("-".to_string(), |x| x.to_string()),
            opt(p.lag_seconds),
            p.envelopes_received,
            p.objects_received,
            p.envelopes_sent,
            map(&p.rejected),
            map(&p.withheld),
            opt(p.cert_expires_in_days),
            opt(p.signing_key_expires_in_days),
            digests,
            err
        );
    }
    out
}
