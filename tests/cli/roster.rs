//! `synergia roster …` through the real binary: a federation's membership log from
//! `keys init-federation --threshold`, a removal proposed, approved by the threshold,
//! appended and turned into the roster nodes read; every refusal named with its code.

use crate::{describe, synergia};
use std::path::Path;

fn ok(args: &[&str]) -> String {
    let o = synergia(args);
    assert!(o.status.success(), "{args:?}: {}", describe(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn a_removal_needs_the_threshold_and_gives_the_roster_nodes_read() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    let config = tmp.path().join("config");
    let members = "groupib,trendmicro,kaspersky,teamcymru,interpol";
    ok(&[
        "keys",
        "init-federation",
        "--members",
        members,
        "--out",
        p(&keys),
        "--config-out",
        p(&config),
        "--federation",
        "op-log",
        "--threshold",
        "3",
    ]);
    let log = keys.join("membership.jsonl");
    let out = ok(&["roster", "verify", p(&log)]);
    assert!(
        out.contains("valid membership log, 1 entries") && out.contains("5 members, threshold 3"),
        "{out}"
    );
    // The genesis holds exactly the roster init-federation wrote.
    let written = tmp.path().join("from-log.json");
    ok(&[
        "roster",
        "show",
        "--log",
        p(&log),
        "--write-roster",
        p(&written),
    ]);
    let a: serde_json::Value =
        serde_json::from_slice(&std::fs::read(keys.join("roster.json")).unwrap()).unwrap();
    let b: serde_json::Value = serde_json::from_slice(&std::fs::read(&written).unwrap()).unwrap();
    assert_eq!(a, b);
    // A threshold beyond the members is refused before anything is written.
    let o = synergia(&[
        "keys",
        "init-federation",
        "--members",
        "a,b",
        "--out",
        p(&tmp.path().join("k2")),
        "--threshold",
        "3",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    assert!(!tmp.path().join("k2/ca.pem").exists());

    let cfg = |m: &str| config.join(format!("{m}.toml"));
    let proposal = tmp.path().join("remove-groupib.json");
    let out = ok(&[
        "roster",
        "propose",
        "--config",
        p(&cfg("kaspersky")),
        "--log",
        p(&log),
        "--remove-member",
        "groupib",
        "--out",
        p(&proposal),
    ]);
    assert!(out.contains("1 approval(s) of 3 needed"), "{out}");
    ok(&[
        "roster",
        "sign",
        p(&proposal),
        "--config",
        p(&cfg("interpol")),
    ]);
    // Two approvals: refused with its code, and the log is unchanged.
    let o = synergia(&["roster", "verify", p(&proposal), "--log", p(&log)]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(
        describe(&o).contains("[too-few-signatures]"),
        "{}",
        describe(&o)
    );
    let o = synergia(&["roster", "append", p(&proposal), "--log", p(&log)]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 1);
    // The same member twice does not count twice.
    ok(&[
        "roster",
        "sign",
        p(&proposal),
        "--config",
        p(&cfg("interpol")),
    ]);
    let o = synergia(&["roster", "verify", p(&proposal), "--log", p(&log)]);
    assert!(
        describe(&o).contains("[too-few-signatures]"),
        "{}",
        describe(&o)
    );
    // A third member: valid, appended, and the roster of the head lacks groupib.
    let out = ok(&[
        "roster",
        "sign",
        p(&proposal),
        "--config",
        p(&cfg("trendmicro")),
    ]);
    assert!(out.contains("kaspersky, interpol, trendmicro"), "{out}");
    ok(&["roster", "verify", p(&proposal), "--log", p(&log)]);
    let out = ok(&["roster", "append", p(&proposal), "--log", p(&log)]);
    assert!(
        out.contains("entry 1 (remove member groupib) appended"),
        "{out}"
    );
    let out = ok(&["roster", "append", p(&proposal), "--log", p(&log)]);
    assert!(out.contains("held already"), "{out}");
    let out = ok(&["roster", "log", "--log", p(&log)]);
    assert!(
        out.contains("remove member groupib  (approved by kaspersky, interpol, trendmicro)"),
        "{out}"
    );
    let roster = tmp.path().join("roster.json");
    let out = ok(&[
        "roster",
        "show",
        "--log",
        p(&log),
        "--write-roster",
        p(&roster),
    ]);
    assert!(!out.contains("groupib") || out.contains("wrote"), "{out}");
    let r = synergia::roster::Roster::load(&roster).unwrap();
    assert!(r.member("groupib").is_none() && r.member("kaspersky").is_some());
    let out = ok(&["roster", "show", "--log", p(&log), "--at", "0"]);
    assert!(out.contains("groupib"), "{out}");

    // groupib, removed, cannot approve anything any more.
    let again = tmp.path().join("threshold.json");
    ok(&[
        "roster",
        "propose",
        "--config",
        p(&cfg("groupib")),
        "--log",
        p(&log),
        "--set-threshold",
        "2",
        "--out",
        p(&again),
    ]);
    ok(&["roster", "sign", p(&again), "--config", p(&cfg("interpol"))]);
    ok(&[
        "roster",
        "sign",
        p(&again),
        "--config",
        p(&cfg("kaspersky")),
    ]);
    let o = synergia(&["roster", "verify", p(&again), "--log", p(&log)]);
    assert!(
        describe(&o).contains("[unknown-signer]"),
        "{}",
        describe(&o)
    );
    // A change that cannot apply is refused when proposed.
    let o = synergia(&[
        "roster",
        "propose",
        "--config",
        p(&cfg("kaspersky")),
        "--log",
        p(&log),
        "--remove-member",
        "nobody",
        "--out",
        p(&tmp.path().join("x.json")),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    assert!(
        describe(&o).contains("[invalid-change]"),
        "{}",
        describe(&o)
    );
    // A log whose second entry lost an approval: refused, naming the line and code.
    let text = std::fs::read_to_string(&log).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut e: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
    e["signatures"].as_array_mut().unwrap().pop();
    lines[1] = e.to_string();
    let bad = tmp.path().join("bad.jsonl");
    std::fs::write(&bad, lines.join("\n")).unwrap();
    let o = synergia(&["roster", "verify", p(&bad)]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(
        describe(&o).contains("line 2") && describe(&o).contains("[too-few-signatures]"),
        "{}",
        describe(&o)
    );
}
