"""Independent check of the published envelope and retraction test vectors.

Recomputes, with Python's json module (sorted keys, no whitespace: RFC 8785 for this
ASCII, integer-only content) and the `cryptography` package's Ed25519, everything the
Rust implementation published in docs/test-vectors/envelope-v1/ (or retraction-v1/,
whose files are named retraction.json, retraction-id.txt, retraction-canonical.json).
Prints "ok" or fails.
"""
import base64
import hashlib
import json
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

d = Path(sys.argv[1])
read = lambda n: (d / n).read_bytes()

kind = "retraction" if (d / "retraction.json").exists() else "envelope"
env = json.loads(read(kind + ".json"))
expected_type = {"envelope": "synergia-envelope", "retraction": "synergia-retraction"}[kind]
assert env["type"] == expected_type, "type differs"
assert set(env) == {"type", "version", "origin", "origin_identity", "key_id", "seq", "signed_at",
                    "tlp", "recipients", "signature", "bundle" if kind == "envelope" else "retraction"}, \
    "members differ"
whole = json.dumps(env, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
assert whole == read(kind + "-canonical.json"), "canonical form differs"
sig_b64 = env.pop("signature")
canonical = json.dumps(env, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
assert canonical == read("signed-canonical.json"), "signed canonical form differs"
assert "sha256:" + hashlib.sha256(canonical).hexdigest() == read(kind + "-id.txt").decode(), "envelope id differs"

seed = bytes.fromhex(read("seed.hex").decode())
priv = Ed25519PrivateKey.from_private_bytes(seed)
pub_raw = priv.public_key().public_bytes_raw()
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
assert b64(pub_raw) == read("public-key.txt").decode(), "public key differs"
assert b64(priv.sign(canonical)) == sig_b64 == read("signature.txt").decode(), "signature differs"
pad = "=" * (-len(sig_b64) % 4)
Ed25519PublicKey.from_public_bytes(pub_raw).verify(base64.urlsafe_b64decode(sig_b64 + pad), canonical)
print("ok")
