//! `synergia keys …` and `synergia verify` through the real binary: what an operator
//! types, the files it leaves behind, and the exit codes scripts rely on (0 valid,
//! 1 invalid input, 2 could not run).

use crate::{describe, stdout, synergia};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Output;
use synergia::config::Config;
use synergia::envelope::{Envelope, EnvelopeMeta, Signer};
use synergia::roster::Roster;
use synergia::stix::timestamp::Timestamp;
use synergia::stix::tlp::TlpLevel;
use synergia::workload::{self, GenOptions};

const MEMBERS: [&str; 3] = ["groupib", "kaspersky", "interpol"];

/// A three-member federation created by the binary in a temporary directory.
struct Federation {
    _tmp: tempfile::TempDir,
    keys: PathBuf,
    config: PathBuf,
}

impl Federation {
    fn init() -> Federation {
        let tmp = tempfile::tempdir().unwrap();
        let keys = tmp.path().join("keys");
        let config = tmp.path().join("config");
        let o = synergia(&[
            "keys",
            "init-federation",
            "--members",
            &MEMBERS.join(","),
            "--out",
            keys.to_str().unwrap(),
            "--config-out",
            config.to_str().unwrap(),
            "--federation",
            "op-test",
            "--amber-hubs",
            "interpol",
        ]);
        assert!(o.status.success(), "{}", describe(&o));
        assert!(stdout(&o).contains("op-test"), "{}", describe(&o));
        Federation {
            _tmp: tmp,
            keys,
            config,
        }
    }

    fn roster_path(&self) -> PathBuf {
        self.keys.join("roster.json")
    }

    fn config_of(&self, member: &str) -> Config {
        Config::load(&self.config.join(format!("{member}.toml"))).unwrap()
    }

    /// Signs a small bundle as `member` with the key its config names, as a node would.
    fn sign(&self, member: &str, seq: u64) -> Value {
        let cfg = self.config_of(member);
        let roster = Roster::load(&self.roster_path()).unwrap();
        let identity = roster.member(member).unwrap().identity.clone();
        let bundle = workload::bundle(&GenOptions {
            count: 3,
            seed: 1,
            origin: member.into(),
            identity: Some(identity.clone()),
            overlap: 0.3,
            tlp: Some(TlpLevel::Green),
        });
        let signer = Signer {
            origin: member.into(),
            origin_identity: identity,
            key_id: cfg.signing.key_id.clone(),
            key: synergia::keys::signing::load(&cfg.signing.key_file).unwrap(),
        };
        let meta = EnvelopeMeta {
            seq,
            signed_at: Timestamp::now(),
            tlp: TlpLevel::Green,
            recipients: vec![],
        };
        let env = Envelope::sign(bundle, &signer, meta).unwrap();
        Value::Object(env.as_json().clone())
    }

    fn verify(&self, file: &Path) -> Output {
        synergia(&[
            "verify",
            file.to_str().unwrap(),
            "--roster",
            self.roster_path().to_str().unwrap(),
        ])
    }
}

fn write_json(path: &Path, v: &Value) {
    std::fs::write(path, serde_json::to_vec_pretty(v).unwrap()).unwrap();
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_federation_writes_loadable_configs_and_private_keys_0600() {
    let f = Federation::init();
    assert_eq!(mode(&f.keys.join("ca-key.pem")), 0o600);
    let roster = Roster::load(&f.roster_path()).unwrap();
    assert_eq!(roster.members().len(), MEMBERS.len());
    for m in MEMBERS {
        let cfg = f.config_of(m);
        assert_eq!(cfg.member, m);
        assert_eq!(cfg.peers.len(), MEMBERS.len() - 1);
        assert!(roster.key(m, &cfg.signing.key_id).is_some());
        let dir = f.keys.join(m);
        for private in [
            cfg.signing.key_file.clone(),
            cfg.tls.key.clone(),
            dir.join("admin-key.pem"),
            dir.join("admin-token"),
        ] {
            assert_eq!(mode(&private), 0o600, "{}", private.display());
        }
        assert_eq!(
            mode(&cfg.tls.cert) & 0o077,
            0o044,
            "certificates are public"
        );
    }
}

#[test]
fn rotate_show_and_revoke() {
    let f = Federation::init();
    let old_key = f.config_of("kaspersky").signing.key_id;
    let dir = f.keys.to_str().unwrap();

    let o = synergia(&["keys", "rotate", "--dir", dir, "--member", "kaspersky"]);
    assert!(o.status.success(), "{}", describe(&o));
    let roster = Roster::load(&f.roster_path()).unwrap();
    let keys = &roster.member("kaspersky").unwrap().keys;
    assert_eq!(keys.len(), 2);
    let new_key = keys[1].key_id.clone();
    assert!(stdout(&o).contains(&new_key), "{}", describe(&o));
    assert!(
        f.keys
            .join("kaspersky")
            .join(format!("signing-{new_key}.pem"))
            .exists()
    );
    // The key_file it tells the operator to set is absolute and is the new key.
    let out = stdout(&o);
    let key_file = out
        .split("key_file = \"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("no key_file in {out}"));
    let key_file = std::path::Path::new(key_file);
    assert!(key_file.is_absolute(), "{out}");
    assert_eq!(
        std::fs::canonicalize(key_file).unwrap(),
        std::fs::canonicalize(
            f.keys
                .join("kaspersky")
                .join(format!("signing-{new_key}.pem"))
        )
        .unwrap()
    );

    let o = synergia(&[
        "keys",
        "show",
        "--roster",
        f.roster_path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", describe(&o));
    let table = stdout(&o);
    for id in [&old_key, &new_key] {
        let row = table.lines().find(|l| l.contains(id.as_str()));
        assert!(
            row.is_some_and(|r| r.starts_with("kaspersky") && r.contains("SHA256:")),
            "{table}"
        );
    }

    let cert = f.keys.join("kaspersky/node.pem");
    let o = synergia(&["keys", "show", "--cert", cert.to_str().unwrap()]);
    assert!(o.status.success(), "{}", describe(&o));
    assert!(
        stdout(&o).contains("synergia://member/kaspersky"),
        "{}",
        describe(&o)
    );

    let o = synergia(&[
        "keys",
        "revoke",
        "--dir",
        dir,
        "--member",
        "kaspersky",
        "--key-id",
        &old_key,
    ]);
    assert!(o.status.success(), "{}", describe(&o));
    let roster = Roster::load(&f.roster_path()).unwrap();
    let revoked = roster.key("kaspersky", &old_key).unwrap();
    assert!(revoked.revoked_at.is_some());
    assert!(
        roster
            .key("kaspersky", &new_key)
            .unwrap()
            .revoked_at
            .is_none()
    );
    let o = synergia(&[
        "keys",
        "show",
        "--roster",
        f.roster_path().to_str().unwrap(),
    ]);
    let row = stdout(&o)
        .lines()
        .find(|l| l.contains(old_key.as_str()))
        .map(str::to_string);
    let revoked_at = revoked.revoked_at.unwrap().to_millis_string();
    assert!(
        row.is_some_and(|r| r.ends_with(&format!("revoked from {revoked_at}"))),
        "{}",
        describe(&o)
    );
    // A revocation moves only earlier: a later --at is refused and changes nothing;
    // an earlier one is taken; --force moves it later on purpose.
    let revoke_at = |at: &str, force: bool| {
        let mut args = vec![
            "keys",
            "revoke",
            "--dir",
            dir,
            "--member",
            "kaspersky",
            "--key-id",
            &old_key,
            "--at",
            at,
        ];
        if force {
            args.push("--force");
        }
        synergia(&args)
    };
    let o = revoke_at("2099-01-01T00:00:00Z", false);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--force"),
        "{}",
        describe(&o)
    );
    let now_revoked = |f: &Federation| {
        Roster::load(&f.roster_path())
            .unwrap()
            .key("kaspersky", &old_key)
            .unwrap()
            .revoked_at
            .unwrap()
            .to_millis_string()
    };
    assert_eq!(now_revoked(&f), revoked_at);
    let o = revoke_at("2026-01-01T00:00:00Z", false);
    assert!(o.status.success(), "{}", describe(&o));
    assert_eq!(now_revoked(&f), "2026-01-01T00:00:00.000Z");
    let o = revoke_at("2099-01-01T00:00:00Z", true);
    assert!(o.status.success(), "{}", describe(&o));
    assert_eq!(now_revoked(&f), "2099-01-01T00:00:00.000Z");
    let o = synergia(&[
        "keys",
        "show",
        "--roster",
        f.roster_path().to_str().unwrap(),
    ]);
    assert!(
        stdout(&o).contains("valid, revoked from 2099-01-01T00:00:00.000Z on"),
        "{}",
        describe(&o)
    );
    // Back to a revocation in the past for what follows.
    let o = revoke_at(&revoked_at, true);
    assert!(o.status.success(), "{}", describe(&o));

    // An envelope signed with the revoked key after its revocation is refused.
    std::thread::sleep(std::time::Duration::from_millis(5));
    let env = f.sign("kaspersky", 1);
    let path = f.keys.join("after-revocation.json");
    write_json(&path, &env);
    let o = f.verify(&path);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(stdout(&o).contains("[key-revoked]"), "{}", describe(&o));

    // Revoking a key the member does not have cannot run.
    let o = synergia(&[
        "keys",
        "revoke",
        "--dir",
        dir,
        "--member",
        "kaspersky",
        "--key-id",
        "nope",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
}

#[test]
fn verify_exit_codes_and_reasons() {
    let f = Federation::init();
    let env = f.sign("groupib", 1);
    let good = f.keys.join("good.json");
    write_json(&good, &env);
    let o = f.verify(&good);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let id = Envelope::from_value(env.clone()).unwrap().id().to_string();
    assert!(stdout(&o).contains(&id), "{}", describe(&o));

    // Content changed after signing.
    let mut tampered = env.clone();
    tampered["bundle"]["objects"][1]["name"] = "a different name".into();
    let bad = f.keys.join("tampered.json");
    write_json(&bad, &tampered);
    let o = f.verify(&bad);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(stdout(&o).contains("[bad-signature]"), "{}", describe(&o));

    // A file that does not exist: the command cannot run, and says which file.
    let missing = f.keys.join("no-such-envelope.json");
    let o = f.verify(&missing);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no-such-envelope.json"),
        "{}",
        describe(&o)
    );

    // Not JSON at all: invalid input, named as malformed.
    let junk = f.keys.join("junk.json");
    std::fs::write(&junk, b"{\"type\": \"synergia-envelope\", ").unwrap();
    let o = f.verify(&junk);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(stdout(&o).contains("[malformed]"), "{}", describe(&o));
}

/// `synergia verify` checks a retraction as it checks an envelope (the published
/// vector, docs/test-vectors/retraction-v1/), and names a tampered one.
#[test]
fn verify_checks_a_retraction_offline() {
    let dir = crate::common::workspace().join("docs/test-vectors/retraction-v1");
    let file = dir.join("retraction.json");
    let roster = dir.join("roster.json");
    let args = |f: &Path| {
        vec![
            "verify".to_string(),
            f.to_string_lossy().into_owned(),
            "--roster".into(),
            roster.to_string_lossy().into_owned(),
            "--now".into(),
            "2026-11-28T09:30:00Z".into(),
        ]
    };
    let run = |f: &Path| {
        let a = args(f);
        synergia(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let o = run(&file);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let id = std::fs::read_to_string(dir.join("retraction-id.txt")).unwrap();
    assert!(
        stdout(&o).contains(&format!("valid retraction {id} from kaspersky"))
            && stdout(&o).contains("1 envelope(s), 1 object(s), reason false-positive"),
        "{}",
        describe(&o)
    );
    let tmp = tempfile::tempdir().unwrap();
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    doc["retraction"]["envelopes"][0] = format!("sha256:{}", "1".repeat(64)).into();
    let bad = tmp.path().join("tampered.json");
    write_json(&bad, &doc);
    let o = run(&bad);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(stdout(&o).contains("[bad-signature]"), "{}", describe(&o));
    doc["retraction"]["reason"] = "oops".into();
    write_json(&bad, &doc);
    let o = run(&bad);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(stdout(&o).contains("[malformed]"), "{}", describe(&o));
}

#[test]
fn revoke_cert_writes_a_growing_revocation_list_and_a_config_can_use_it() {
    let f = Federation::init();
    let dir = f.keys.to_str().unwrap();
    let node_pem = f.keys.join("kaspersky/node.pem");
    let admin_pem = f.keys.join("interpol/admin.pem");
    let revoke = |cert: &Path| {
        synergia(&[
            "keys",
            "revoke-cert",
            "--dir",
            dir,
            "--cert",
            cert.to_str().unwrap(),
        ])
    };
    let o = revoke(&node_pem);
    assert!(o.status.success(), "{}", describe(&o));
    assert!(
        stdout(&o).contains("1 revoked certificate"),
        "{}",
        describe(&o)
    );
    let crl = f.keys.join("crl.pem");
    let first = std::fs::read_to_string(&crl).unwrap();
    assert!(first.starts_with("-----BEGIN X509 CRL-----"), "{first}");
    // Revoking more keeps what was revoked; revoking the same again changes no count.
    for (cert, expect) in [(&admin_pem, "2 revoked"), (&node_pem, "2 revoked")] {
        let o = revoke(cert);
        assert!(o.status.success(), "{}", describe(&o));
        assert!(stdout(&o).contains(expect), "{}", describe(&o));
    }
    let serials =
        synergia::keys::tls::revoked_serials(&std::fs::read_to_string(&crl).unwrap()).unwrap();
    assert_eq!(serials.len(), 2);
    // A node config naming the list loads and builds its TLS with it.
    let mut cfg = f.config_of("interpol");
    cfg.tls.crl = Some(crl);
    synergia::tls::server_config(&cfg).unwrap();
    // A file that is no certificate: a clear error naming it, exit 2, nothing written.
    let bogus = f.keys.join("roster.json");
    let before = std::fs::read_to_string(f.keys.join("crl.pem")).unwrap();
    let o = revoke(&bogus);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    assert!(describe(&o).contains("roster.json"), "{}", describe(&o));
    assert_eq!(
        std::fs::read_to_string(f.keys.join("crl.pem")).unwrap(),
        before
    );
}

/// `init-federation` into a directory that holds a federation refuses, names the
/// directory and `--force`, and changes nothing; with `--force` it overwrites.
#[test]
fn init_federation_refuses_a_live_federations_directory() {
    let f = Federation::init();
    let ca = std::fs::read(f.keys.join("ca.pem")).unwrap();
    let ca_key = std::fs::read(f.keys.join("ca-key.pem")).unwrap();
    let roster = std::fs::read(f.keys.join("roster.json")).unwrap();
    let again = |extra: &[&str]| {
        let mut args = vec![
            "keys",
            "init-federation",
            "--members",
            "mallory,trudy",
            "--out",
            f.keys.to_str().unwrap(),
            "--config-out",
            f.config.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        synergia(&args)
    };
    let o = again(&[]);
    assert!(!o.status.success(), "{}", describe(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(f.keys.to_str().unwrap())
            && err.contains("not empty")
            && err.contains("--force"),
        "{}",
        describe(&o)
    );
    assert_eq!(std::fs::read(f.keys.join("ca.pem")).unwrap(), ca);
    assert_eq!(std::fs::read(f.keys.join("ca-key.pem")).unwrap(), ca_key);
    assert_eq!(std::fs::read(f.keys.join("roster.json")).unwrap(), roster);
    assert!(!f.keys.join("mallory").exists());
    // A separate, non-empty config directory is refused too.
    let empty = tempfile::tempdir().unwrap();
    let o = synergia(&[
        "keys",
        "init-federation",
        "--members",
        "mallory",
        "--out",
        empty.path().join("keys").to_str().unwrap(),
        "--config-out",
        f.config.to_str().unwrap(),
    ]);
    assert!(!o.status.success(), "{}", describe(&o));
    assert!(!empty.path().join("keys").join("ca.pem").exists());
    // --force overwrites, as asked.
    let o = again(&["--force"]);
    assert!(o.status.success(), "{}", describe(&o));
    assert_ne!(std::fs::read(f.keys.join("ca.pem")).unwrap(), ca);
}
