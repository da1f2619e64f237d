//! The OASIS reference TAXII client (Python `taxii2-client`) works unmodified against
//! a node: discovery with a client certificate, collections, paging through more than
//! 10,000 objects with `as_pages`, `add_objects` with a status it waits for; every
//! object served passes the OASIS `stix2-validator`.

#[path = "common/mod.rs"]
mod common;

use common::*;
use serde_json::Value;
use synergia::node::publish::Mode;
use synergia::workload::{GenOptions, bundle};

#[test]
fn reference_taxii_client_pages_publishes_and_validates() {
    // The reference tools first: a missing Python fails before any node starts.
    reference_python();
    let fed = Federation::new(&["alpha", "beta"], &[]);
    let node = RunningNode::start(fed.config("alpha"));
    // More than 10,000 objects, from two origins.
    let mut total = 0;
    for origin in ["alpha", "beta"] {
        let b = bundle(&GenOptions {
            count: 5000,
            seed: 11,
            origin: origin.into(),
            identity: None,
            overlap: 0.3,
            tlp: None,
        });
        total += b["objects"].as_array().unwrap().len();
        let r = node
            .node
            .publish(b.clone(), &[], Mode::AllOrNothing)
            .unwrap();
        assert_eq!(r.rejected, 0);
    }
    assert!(total > 10_000);
    let dir = tempfile::tempdir().unwrap();
    let keys = fed.dir.path().join("keys/alpha");
    let add = dir.path().join("add.json");
    let extra = bundle(&GenOptions {
        count: 40,
        seed: 99,
        origin: "alpha".into(),
        identity: None,
        overlap: 0.0,
        tlp: None,
    });
    std::fs::write(&add, extra.to_string()).unwrap();
    let out = taxii_client_python()
        .arg(workspace().join("tests/py/taxii_client_check.py"))
        .arg(&node.url)
        .arg(fed.ca_path())
        .arg(keys.join("admin.pem"))
        .arg(keys.join("admin-key.pem"))
        .arg(&add)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout);
    let r: Value = serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("{e}: {line}"));
    // Every object alpha holds (its latest versions) was paged through exactly once.
    assert_eq!(r["count"], total, "{r}");
    assert_eq!(r["distinct"], total, "{r}");
    assert!(r["pages"].as_u64().unwrap() >= 11, "{r}");
    assert_eq!(
        r["invalid"].as_array().unwrap().len(),
        0,
        "objects the OASIS validator rejects: {r}"
    );
    assert!(
        r["collections"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "consolidated")
    );
    assert_eq!(r["status"], "complete");
    assert_eq!(
        r["success_count"],
        extra["objects"].as_array().unwrap().len()
    );
    assert_eq!(r["failure_count"], 0);
}
