"""Independent check of a Synergia membership log (docs/protocol.md section 12).

Verifies, with Python's json module (sorted keys, no whitespace: RFC 8785 for this
ASCII, integer-only content) and the `cryptography` package's Ed25519, every rule of
the log: the chain of hashes, the indexes, the threshold of distinct approvals by
members of the state before each entry with keys valid at its time, and each change.
Prints "ok <entries> <head hash>" or "INVALID <index> <code>" and exits 1.

With REFUSED_DIR, also applies each proposal REFUSED_DIR/<code>.json to the log's
final state and checks it is refused with exactly that code.

usage: check_membership.py LOG [NOW [REFUSED_DIR]]
"""
import os
import base64
import copy
import hashlib
import json
import sys
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def canonical(v):
    return json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class Invalid(Exception):
    def __init__(self, code):
        self.code = code


def apply(state, entry, now):
    if entry["type"] != "synergia-membership-entry" or entry["version"] != 1:
        raise Invalid("malformed")
    head = state["head"]
    want_index = 0 if head is None else head["index"] + 1
    if head is not None and entry["index"] <= head["index"]:
        raise Invalid("stale-index")
    if entry["index"] != want_index:
        raise Invalid("index-gap")
    if entry.get("prev") != (None if head is None else head["hash"]):
        raise Invalid("wrong-previous-hash")
    at = ts(entry["at"])
    if head is not None:
        if entry["federation"] != state["federation"]:
            raise Invalid("wrong-federation")
        if at < ts(head["at"]):
            raise Invalid("time-goes-back")
    if int(at.timestamp()) > int(now.timestamp()) + 300:
        raise Invalid("signed-in-future")
    unsigned = {k: v for k, v in entry.items() if k != "signatures"}
    signed = canonical(unsigned)
    if head is not None:
        seen = set()
        for a in entry["signatures"]:
            if a["member"] in seen:
                raise Invalid("duplicate-signer")
            seen.add(a["member"])
            member = next((m for m in state["members"] if m["name"] == a["member"]), None)
            key = member and next((k for k in member["keys"] if k["key_id"] == a["key_id"]), None)
            if key is None:
                raise Invalid("unknown-signer")
            valid = ts(key["not_before"]) <= at <= ts(key["not_after"]) and (
                "revoked_at" not in key or at < ts(key["revoked_at"]))
            if not valid:
                raise Invalid("signer-key-not-valid")
            try:
                Ed25519PublicKey.from_public_bytes(b64d(key["public_key"])).verify(b64d(a["signature"]), signed)
            except (InvalidSignature, ValueError):
                raise Invalid("bad-signature")
        if len(seen) < state["threshold"]:
            raise Invalid("too-few-signatures")
    nxt = copy.deepcopy(state)
    c = entry["change"]
    names = [m["name"] for m in nxt["members"]]
    kind = c["kind"]
    if kind == "genesis":
        if head is not None or not c["members"] or not 1 <= c["threshold"] <= len(c["members"]):
            raise Invalid("invalid-change")
        nxt.update(federation=entry["federation"], members=c["members"], threshold=c["threshold"])
    elif kind == "add-member":
        former = [f["member"]["name"] for f in nxt["former"]]
        if c["member"]["name"] in names + former or not c["member"]["keys"]:
            raise Invalid("invalid-change")
        nxt["members"].append(c["member"])
    elif kind == "remove-member":
        if c["name"] not in names or len(names) - 1 < nxt["threshold"]:
            raise Invalid("invalid-change")
        # A former member: its earlier envelopes stay valid, it approves nothing.
        gone = next(m for m in nxt["members"] if m["name"] == c["name"])
        nxt["former"].append({"member": gone, "removed_at": entry["at"]})
        nxt["members"] = [m for m in nxt["members"] if m["name"] != c["name"]]
    elif kind == "add-key":
        if c["member"] not in names:
            raise Invalid("invalid-change")
        next(m for m in nxt["members"] if m["name"] == c["member"])["keys"].append(c["key"])
    elif kind == "revoke-key":
        m = next((m for m in nxt["members"] if m["name"] == c["member"]), None)
        k = m and next((k for k in m["keys"] if k["key_id"] == c["key_id"]), None)
        if k is None or ("revoked_at" in k and ts(k["revoked_at"]) <= ts(c["revoked_at"])):
            raise Invalid("invalid-change")
        k["revoked_at"] = c["revoked_at"]
    elif kind == "revoke-certificate":
        if "serial" not in c and "fingerprint" not in c:
            raise Invalid("invalid-change")
    elif kind == "set-url":
        if c["member"] not in names or not c["node_url"].startswith("https://"):
            raise Invalid("invalid-change")
        next(m for m in nxt["members"] if m["name"] == c["member"])["node_url"] = c["node_url"]
    elif kind == "set-threshold":
        if not 1 <= c["threshold"] <= len(names):
            raise Invalid("invalid-change")
        nxt["threshold"] = c["threshold"]
    else:
        raise Invalid("malformed")
    # The roster's own rules that a change could break: unique key ids.
    everyone = nxt["members"] + [f["member"] for f in nxt["former"]]
    key_ids = [k["key_id"] for m in everyone for k in m["keys"]]
    if len(key_ids) != len(set(key_ids)):
        raise Invalid("invalid-change")
    nxt["head"] = {"index": entry["index"], "hash": "sha256:" + hashlib.sha256(signed).hexdigest(), "at": entry["at"]}
    return nxt


def main():
    path = sys.argv[1]
    now = ts(sys.argv[2]) if len(sys.argv) > 2 else datetime.now().astimezone()
    state = {"federation": None, "members": [], "former": [], "threshold": 0, "head": None}
    n = 0
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            entry = json.loads(line)
            try:
                state = apply(state, entry, now)
            except Invalid as e:
                print(f"INVALID {entry.get('index')} {e.code}")
                sys.exit(1)
            n += 1
    line = f"ok {n} {state['head']['hash']}"
    if len(sys.argv) > 3:
        d = sys.argv[3]
        names = sorted(f for f in os.listdir(d) if f.endswith(".json"))
        for name in names:
            want = name[:-5]
            with open(os.path.join(d, name)) as f:
                proposal = json.load(f)
            try:
                apply(state, proposal, now)
                got = "accepted"
            except Invalid as e:
                got = e.code
            if got != want:
                print(f"INVALID refused/{name}: {got}")
                sys.exit(1)
        line += f"; refused {len(names)} as expected"
    print(line)


main()
