"""Checks the published JSON Schemas (schema/) against real documents.

Usage: check_schemas.py WORKSPACE_ROOT

Every schema must be a valid draft 2020-12 schema; the example roster, the published
envelope test vector and every example config (TOML, read with tomllib) must validate;
and each deliberately broken document below must be REJECTED by its schema, so a
schema that accepts anything fails this check. Prints "ok" or one line per problem
and exits 1.
"""
import copy
import json
import sys
import tomllib
from pathlib import Path

from jsonschema import Draft202012Validator

root = Path(sys.argv[1])
problems = []


def load_schema(name):
    schema = json.loads((root / "schema" / name).read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


envelope = load_schema("envelope.schema.json")
retraction = load_schema("retraction.schema.json")
membership = load_schema("membership-entry.schema.json")
roster = load_schema("roster.schema.json")
config = load_schema("config.schema.json")


def must_pass(validator, doc, what):
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    for e in errors:
        pointer = "/" + "/".join(str(p) for p in e.absolute_path)
        problems.append(f"{what}: {pointer}: {e.message}")


def must_fail(validator, doc, what):
    if validator.is_valid(doc):
        problems.append(f"broken document accepted: {what}")


def mutated(doc, change):
    d = copy.deepcopy(doc)
    change(d)
    return d


# Documents that must validate.
roster_doc = json.loads((root / "keys-example/roster.json").read_text())
must_pass(roster, roster_doc, "keys-example/roster.json")
must_pass(roster, json.loads((root / "docs/test-vectors/envelope-v1/roster.json").read_text()),
          "docs/test-vectors/envelope-v1/roster.json")
env_doc = json.loads((root / "docs/test-vectors/envelope-v1/envelope.json").read_text())
must_pass(envelope, env_doc, "docs/test-vectors/envelope-v1/envelope.json")
ret_doc = json.loads((root / "docs/test-vectors/retraction-v1/retraction.json").read_text())
must_pass(retraction, ret_doc, "docs/test-vectors/retraction-v1/retraction.json")
must_fail(envelope, ret_doc, "a retraction is not an envelope")
must_fail(retraction, env_doc, "an envelope is not a retraction")
entries = []
for log in [root / "keys-example/membership.jsonl", root / "docs/test-vectors/membership-v1/log.jsonl"]:
    for n, line in enumerate(log.read_text().splitlines(), 1):
        if line.strip():
            entries.append(json.loads(line))
            must_pass(membership, entries[-1], f"{log.relative_to(root)} line {n}")
for refused in sorted((root / "docs/test-vectors/membership-v1/refused").glob("*.json")):
    must_pass(membership, json.loads(refused.read_text()), str(refused.relative_to(root)))
last = entries[-1]
broken_entries = {
    "unknown member": lambda d: d.update(extra=1),
    "unknown change kind": lambda d: d.update(change={"kind": "merge-federations"}),
    "change with an unknown member": lambda d: d["change"].update(reason="x"),
    "prev not a hash": lambda d: d.update(prev="abc"),
    "index negative": lambda d: d.update(index=-1),
    "signature too short": lambda d: d["signatures"][0].update(signature="abc"),
    "revoke-certificate naming nothing": lambda d: d.update(change={"kind": "revoke-certificate"}),
}
for what, change in broken_entries.items():
    must_fail(membership, mutated(last, change), f"membership entry: {what}")
configs = sorted((root / "config").glob("*.toml"))
if not configs:
    problems.append("no config/*.toml found")
for path in configs:
    with path.open("rb") as f:
        must_pass(config, tomllib.load(f), str(path.relative_to(root)))
cfg_doc = tomllib.loads(configs[0].read_text()) if configs else {}

# A red envelope naming recipients is valid.
must_pass(envelope, mutated(env_doc, lambda d: d.update(tlp="red", recipients=["interpol"])),
          "red envelope with recipients")

# Documents that must be rejected.
broken_envelopes = {
    "missing signature": lambda d: d.pop("signature"),
    "unknown member": lambda d: d.update(extra=1),
    "wrong type": lambda d: d.update(type="envelope"),
    "version 2": lambda d: d.update(version=2),
    "seq 0": lambda d: d.update(seq=0),
    "seq as string": lambda d: d.update(seq="17"),
    "upper-case origin": lambda d: d.update(origin="Kaspersky"),
    "origin_identity not an identity": lambda d: d.update(origin_identity="indicator--" + d["origin_identity"][10:]),
    "signature with padding": lambda d: d.update(signature=d["signature"] + "=="),
    "signature too short": lambda d: d.update(signature=d["signature"][:85]),
    "signature in standard base64": lambda d: d.update(signature="+" + d["signature"][1:]),
    "signed_at with an offset": lambda d: d.update(signed_at="2026-11-27T03:44:23.123+00:00"),
    "tlp white": lambda d: d.update(tlp="white"),
    "recipients below red": lambda d: d.update(recipients=["interpol"]),
    "bundle of the wrong type": lambda d: d["bundle"].update(type="report"),
    "bundle without objects": lambda d: d["bundle"].pop("objects"),
}
for what, change in broken_envelopes.items():
    must_fail(envelope, mutated(env_doc, change), f"envelope: {what}")

broken_retractions = {
    "with a bundle": lambda d: d.update(bundle={"type": "bundle", "objects": []}),
    "nothing named": lambda d: d["retraction"].update(envelopes=[], objects=[]),
    "unknown reason": lambda d: d["retraction"].update(reason="mistake"),
    "note too long": lambda d: d["retraction"].update(note="x" * 4097),
    "envelope id in upper case": lambda d: d["retraction"].update(envelopes=[d["retraction"]["envelopes"][0].upper()]),
    "object without id": lambda d: d["retraction"].update(objects=[{"modified": "2026-11-27T03:40:00.000Z"}]),
    "object with another member": lambda d: d["retraction"]["objects"][0].update(version=1),
    "without note": lambda d: d["retraction"].pop("note"),
}
for what, change in broken_retractions.items():
    must_fail(retraction, mutated(ret_doc, change), f"retraction: {what}")

# A roster with a former member (what the membership log leaves after a removal).
with_former = mutated(roster_doc, lambda d: d.update(
    former=[{"member": d["members"].pop(0), "removed_at": "2026-11-05T00:00:00.000Z"}]))
must_pass(roster, with_former, "roster with a former member")
must_fail(roster, mutated(with_former, lambda d: d["former"][0].pop("removed_at")),
          "roster: former member without removed_at")

broken_rosters = {
    "wrong type": lambda d: d.update(type="roster"),
    "unknown member field": lambda d: d["members"][0].update(email="x@example.org"),
    "member without keys": lambda d: d["members"][0].pop("keys"),
    "tls_san of another scheme": lambda d: d["members"][0].update(tls_san="https://groupib.example"),
    "public key of 31 bytes": lambda d: d["members"][0]["keys"][0].update(public_key="A" * 42),
    "key without not_after": lambda d: d["members"][0]["keys"][0].pop("not_after"),
    "revoked_at not a timestamp": lambda d: d["members"][0]["keys"][0].update(revoked_at="yesterday"),
}
for what, change in broken_rosters.items():
    must_fail(roster, mutated(roster_doc, change), f"roster: {what}")

broken_configs = {
    "unknown key": lambda d: d.update(listen_address="127.0.0.1:1"),
    "missing tls": lambda d: d.pop("tls"),
    "default_tlp white": lambda d: d.update(default_tlp="white"),
    "listen address without port": lambda d: d["listen"].update(address="127.0.0.1"),
    "client role admin": lambda d: d.setdefault("clients", [{}])[0].update(name="x", roles=["admin"]),
    "token hash too short": lambda d: d.setdefault("clients", [{}])[0].update(name="x", roles=[], token_sha256="abc"),
    "peer amber as string": lambda d: d.setdefault("peers", [{}])[0].update(name="x", amber="yes"),
}
for what, change in broken_configs.items():
    must_fail(config, mutated(cfg_doc, change), f"config: {what}")

if problems:
    print("\n".join(problems))
    sys.exit(1)
print("ok")
