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
    /// Objects in them.
    #[serde(default)]
    pub objects_sent: u64,
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
    /// Envelopes from this peer refused for a passing reason, kept and tried again
    /// (`node::peers::deferred`): how many.
    #[serde(default)]
    pub waiting: usize,
    /// The first of them (up to 20), soonest retry first: id, reason, tries, next try.
    #[serde(default)]
    pub waiting_next: Vec<WaitingEnvelope>,
    /// Its membership log head as last seen, and whether our log holds that entry
    /// (`node::membership`); absent when either node follows no log.
    #[serde(default)]
    pub membership: Option<crate::node::membership::PeerHead>,
}

/// An envelope waiting for a retry, as operators see it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WaitingEnvelope {
    /// Envelope id.
    pub id: String,
    /// The code of its last refusal.
    pub code: String,
    /// Its message.
    pub message: String,
    /// Tries so far.
    pub attempts: u32,
    /// When it is tried next.
    pub next_retry: String,
}

fn ts(us: Option<i64>) -> Option<String> {
    us.map(|u| Timestamp::from_micros(u).to_millis_string())
}

/// The status of every configured peer.
pub fn peer_statuses(node: &Node) -> Vec<PeerStatus> {
    // Unknown digests (the database unavailable) compare unequal: no peer shows as
    // in sync meanwhile.
    let ours = node.shared_digests().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot read this node's digests for the peer status");
        serde_json::Map::new()
    });
    // On PostgreSQL, what every process of the member did (see `SyncState::update`).
    if node.backend().postgres().is_some() {
        node.sync.reload_all(node.backend());
    }
    let now_us = now();
    let now_s = now_us / 1_000_000;
    let live = node.live();
    let roster = &live.roster;
    let heads = node.peer_membership_heads();
    live.peers
        .iter()
        .map(|p| {
            let s = node.sync.peer(&p.name);
            let waiting = node.sync.deferred.of(&p.name);
            let url = live.peer_url(p).unwrap_or_default();
            let key_days = roster.member(&p.name).and_then(|m| {
                m.keys
                    .iter()
                    .filter_map(|k| roster.key(&p.name, &k.key_id))
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
                objects_sent: s.objects_sent,
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
                waiting: waiting.len(),
                waiting_next: waiting
                    .iter()
                    .take(20)
                    .map(|w| WaitingEnvelope {
                        id: w.id.clone(),
                        code: w.code.clone(),
                        message: w.message.clone(),
                        attempts: w.attempts,
                        next_retry: Timestamp::from_micros(w.next_retry).to_millis_string(),
                    })
                    .collect(),
                membership: heads.get(&p.name).cloned(),
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
        "{:<12} {:<6} {:<24} {:<24} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9} {:<22} {:<18} {:>5} {:>5} DIGESTS / LAST ERROR",
        "PEER",
        "UP",
        "LAST ATTEMPT",
        "LAST SUCCESS",
        "LAG ENV",
        "LAG S",
        "ENV IN",
        "OBJ IN",
        "ENV OUT",
        "OBJ OUT",
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
        // The last error shows while the peer is reachable again too: an operator
        // looking for intermittent failures needs it, and its time says how old it is.
        let err = match (&p.last_error, &p.last_error_at) {
            (Some(e), Some(t)) => format!("; last error {t}: {e}"),
            (Some(e), None) => format!("; last error: {e}"),
            _ => String::new(),
        };
        // Envelopes refused for a passing reason wait for a retry: "lag 0" alone
        // would hide them.
        let waiting = match p.waiting_next.first() {
            Some(w) => format!(
                "; {} waiting for a retry (next {} at {}: {})",
                p.waiting, w.id, w.next_retry, w.code
            ),
            None => String::new(),
        };
        let log = match &p.membership {
            Some(h) if h.matches => format!("; membership log at entry {} (ours)", h.index),
            Some(h) => format!(
                "; membership log at entry {} ({}): NOT OURS",
                h.index, h.hash
            ),
            None => String::new(),
        };
        let err = format!("{log}{waiting}{err}");
        let opt = |v: Option<i64>| v.map_or("-".to_string(), |x| x.to_string());
        let _ = writeln!(
            out,
            "{:<12} {:<6} {:<24} {:<24} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9} {:<22} {:<18} {:>5} {:>5} {}{}",
            p.peer,
            if p.reachable { "yes" } else { "NO" },
            p.last_attempt.clone().unwrap_or_else(|| "never".into()),
            p.last_success.clone().unwrap_or_else(|| "never".into()),
            p.lag_envelopes.map_or("-".to_string(), |x| x.to_string()),
            opt(p.lag_seconds),
            p.envelopes_received,
            p.objects_received,
            p.envelopes_sent,
            p.objects_sent,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> PeerStatus {
        PeerStatus {
            peer: "kaspersky".into(),
            url: "https://127.0.0.1:1".into(),
            reachable: true,
            last_attempt: Some("2026-11-29T09:40:01.000Z".into()),
            last_success: Some("2026-11-29T09:40:00.500Z".into()),
            lag_envelopes: Some(7),
            lag_seconds: Some(3),
            envelopes_received: 57,
            objects_received: 1_234,
            envelopes_sent: 68,
            objects_sent: 4_321,
            rejected: BTreeMap::from([("bad-signature".into(), 2)]),
            failures: BTreeMap::new(),
            withheld: BTreeMap::from([("amber".into(), 5), ("red".into(), 1)]),
            last_error: Some("peer unreachable: connection refused".into()),
            last_error_at: Some("2026-11-29T09:30:00.000Z".into()),
            cert_expires_in_days: Some(364),
            signing_key_expires_in_days: Some(200),
            digests_match: BTreeMap::from([("clear".into(), true), ("green".into(), false)]),
            waiting: 0,
            waiting_next: Vec::new(),
            membership: None,
        }
    }

    /// Every figure the issue names for an operator is in the peer's row, under its
    /// column; the last error shows (with its time) while the peer is reachable again.
    #[test]
    fn a_row_carries_every_figure_under_its_column() {
        let table = render_table(&[peer()]);
        let mut lines = table.lines();
        let head = lines.next().unwrap();
        let row = lines.next().unwrap();
        assert!(lines.next().is_none());
        let columns = [
            ("LAST ATTEMPT", "2026-11-29T09:40:01.000Z"),
            ("LAST SUCCESS", "2026-11-29T09:40:00.500Z"),
            ("ENV IN", "57"),
            ("OBJ IN", "1234"),
            ("ENV OUT", "68"),
            ("OBJ OUT", "4321"),
            ("REJECTED", "bad-signature:2"),
            ("WITHHELD", "amber:5,red:1"),
        ];
        for (column, value) in columns {
            let at = head
                .find(column)
                .unwrap_or_else(|| panic!("no {column}: {head}"));
            let found = row
                .find(value)
                .unwrap_or_else(|| panic!("no {value}: {row}"));
            // Left-aligned columns start where their heading does; right-aligned ones
            // end where it ends.
            assert!(
                found == at || found + value.len() == at + column.len(),
                "{value} not under {column}:\n{head}\n{row}"
            );
        }
        assert!(row.starts_with("kaspersky    yes"), "{row}");
        assert!(row.contains(" 7 ") && row.contains(" 3 "), "lags: {row}");
        assert!(
            row.contains(" 364 ") && row.contains(" 200 "),
            "expiry: {row}"
        );
        assert!(row.contains("green differs"), "{row}");
        assert!(
            row.ends_with(
                "; last error 2026-11-29T09:30:00.000Z: peer unreachable: connection refused"
            ),
            "{row}"
        );
        let mut waiting = peer();
        waiting.waiting = 2;
        waiting.waiting_next = vec![WaitingEnvelope {
            id: "sha256:ab".into(),
            code: "unknown-key".into(),
            message: "m".into(),
            attempts: 1,
            next_retry: "2026-11-29T09:41:00.000Z".into(),
        }];
        let row = render_table(&[waiting]).lines().nth(1).unwrap().to_string();
        assert!(
            row.contains("; 2 waiting for a retry (next sha256:ab at 2026-11-29T09:41:00.000Z: unknown-key); last error"),
            "{row}"
        );
        // A peer on another membership history is called out.
        let mut other = peer();
        other.membership = Some(crate::node::membership::PeerHead {
            index: 3,
            hash: "sha256:0b".into(),
            matches: false,
        });
        let row = render_table(&[other]).lines().nth(1).unwrap().to_string();
        assert!(
            row.contains("; membership log at entry 3 (sha256:0b): NOT OURS; last error"),
            "{row}"
        );
        let mut down = peer();
        down.reachable = false;
        down.last_error = None;
        down.digests_match.clear();
        let row = render_table(&[down]).lines().nth(1).unwrap().to_string();
        assert!(row.starts_with("kaspersky    NO"), "{row}");
        assert!(row.ends_with(" unknown"), "{row}");
    }
}
