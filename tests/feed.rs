//! The federation feed as a peer reads it, over real mutual TLS from a node serving on
//! loopback: bounded pages (by count and by bytes), `next`/`more` followed to the end,
//! every envelope exactly once and in the node's log order.

#[path = "common/mod.rs"]
mod common;

use bytes::Bytes;
use common::*;
use serde_json::{Value, json};
use synergia::node::receive::{Offer, OfferStatus};
use synergia::server::federation::{MAX_FEED_BYTES, MAX_FEED_PAGE};
use synergia::stix::timestamp::Timestamp;
use synergia::stix::tlp::TlpLevel;

/// A green bundle of `n` ipv4-addr objects, distinct for each `i`.
fn addresses(i: u64, n: u64) -> Value {
    let ns = uuid::Uuid::from_u128(0xfeed_0000_0000_4000_8000_0000_0000_0001);
    let objects: Vec<Value> = (0..n)
        .map(|j| {
            let value = format!("10.{}.{}.{}", i % 250, (j / 250) % 250, j % 250);
            json!({
                "type": "ipv4-addr",
                "spec_version": "2.1",
                "id": format!("ipv4-addr--{}", uuid::Uuid::new_v5(&ns, format!("{i}-{value}").as_bytes())),
                "value": value,
                "object_marking_refs": [TlpLevel::Green.marking_id()],
            })
        })
        .collect();
    json!({
        "type": "bundle",
        "id": format!("bundle--{}", uuid::Uuid::new_v5(&ns, format!("b{i}").as_bytes())),
        "objects": objects,
    })
}

/// A peer far behind reads the whole feed in pages: none holds more than
/// `MAX_FEED_PAGE` envelopes however many it asks for, none grows past
/// `MAX_FEED_BYTES` by more than its last envelope, `more` is true until the last page,
/// and following `next` yields every envelope once, in the order the node logged them.
#[test]
fn a_peer_far_behind_reads_the_feed_in_bounded_pages_in_log_order() {
    let fed = Federation::new(&["alpha", "beta", "gamma"], &[]);
    let node = RunningNode::start(fed.config("alpha"));
    let beta = fed.signer("beta");
    // Many small envelopes (the count bound), then six of about 1.4 MB each (the
    // byte bound), all relayed from beta: alpha holds them and may send them on.
    let small = MAX_FEED_PAGE as u64 + 120;
    let mut offers = Vec::new();
    for seq in 1..=small + 6 {
        let n = if seq <= small { 1 } else { 7_000 };
        let e = signed_envelope(
            &beta,
            addresses(seq, n),
            seq,
            TlpLevel::Green,
            Timestamp::now(),
        );
        offers.push(Offer {
            text: Bytes::from(serde_json::to_vec(&e).unwrap()),
            claimed: None,
        });
    }
    let mut logged = Vec::new();
    for r in node.node.accept_from_peer("beta", offers).unwrap() {
        assert_eq!(r.status, OfferStatus::Accepted, "{r:?}");
        logged.push(r.id);
    }
    let gamma = https_client(&fed.ca_path(), Some(&fed.node_identity("gamma")));
    let rt = rt();
    let mut seen = Vec::new();
    let mut after = "0".to_string();
    let mut pages = Vec::new();
    loop {
        let url = format!(
            "{}/federation/v1/feed?after={after}&limit=100000&relayed=full",
            node.url
        );
        let (status, page): (u16, Value) = rt.block_on(async {
            let r = gamma.get(url).send().await.unwrap();
            (r.status().as_u16(), r.json().await.unwrap())
        });
        assert_eq!(status, 200, "{page}");
        let envelopes = page["envelopes"].as_array().unwrap();
        let ids = page["ids"].as_array().unwrap();
        assert_eq!(envelopes.len(), ids.len());
        assert!(
            envelopes.len() <= MAX_FEED_PAGE,
            "{} envelopes",
            envelopes.len()
        );
        let sizes: Vec<usize> = envelopes
            .iter()
            .map(|e| serde_json::to_vec(e).unwrap().len())
            .collect();
        let before_last: usize = sizes.iter().rev().skip(1).sum();
        assert!(
            before_last < MAX_FEED_BYTES,
            "a page of {} envelopes held {before_last} bytes before its last",
            sizes.len()
        );
        seen.extend(ids.iter().map(|i| i.as_str().unwrap().to_string()));
        pages.push((envelopes.len(), sizes.iter().sum::<usize>()));
        let more = page["more"].as_bool().unwrap();
        let next = page["next"].as_str().unwrap().to_string();
        if !more {
            // Past the end: an empty page, still not more.
            let url = format!("{}/federation/v1/feed?after={next}&relayed=full", node.url);
            let last: Value =
                rt.block_on(async { gamma.get(url).send().await.unwrap().json().await.unwrap() });
            assert_eq!(last["envelopes"], json!([]), "{last}");
            assert_eq!(last["more"], false);
            break;
        }
        assert_ne!(next, after, "more, but next does not move");
        after = next;
        assert!(pages.len() < 50, "the feed never ends: {pages:?}");
    }
    assert_eq!(seen, logged, "every envelope once, in log order");
    // The count bound cut the first page, the byte bound a later one.
    assert_eq!(pages[0].0, MAX_FEED_PAGE, "{pages:?}");
    assert!(
        pages
            .iter()
            .any(|&(n, bytes)| n < MAX_FEED_PAGE && n > 1 && bytes >= MAX_FEED_BYTES),
        "no page was cut by its size: {pages:?}"
    );
}
