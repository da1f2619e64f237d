"""What a TAXII client sees of retracted objects (taxii2-client).

Pages through the consolidated collection with as_pages (the latest version of every
object, as a client that keeps its copy up to date does) and asks for each named
object and its versions; prints one JSON line: per id, whether the latest version the
client got is revoked, its `modified`, and the versions the server lists.

usage: taxii_retraction_check.py URL CA CERT KEY ID...
"""
import json
import sys

from stix2validator import ValidationOptions, validate_instance
from taxii2client.v21 import Server, as_pages

url, ca, cert, key = sys.argv[1:5]
ids = sys.argv[5:]
server = Server(url + "/taxii2/", verify=ca, cert=(cert, key))
api_root = server.api_roots[0]
consolidated = {c.title: c for c in api_root.collections}["consolidated"]

# A client keeps, per id, the version with the greatest `modified` it has seen.
latest = {}
for envelope in as_pages(consolidated.get_objects, per_request=500):
    for o in envelope.get("objects", []):
        held = latest.get(o["id"])
        if held is None or o.get("modified", "") > held.get("modified", ""):
            latest[o["id"]] = o

options = ValidationOptions(version="2.1")
out = {}
for i in ids:
    single = consolidated.get_object(i).get("objects", [])
    versions = consolidated.object_versions(i).get("versions", [])
    seen = latest.get(i)
    valid = all(validate_instance({"type": "bundle", "id": "bundle--0d3c6a8e-3b44-4a7f-9d55-5a0c7b2d1e10", "objects": [o]}, options).is_valid for o in single)
    out[i] = {
        "paged_revoked": bool(seen and seen.get("revoked")),
        "paged_modified": seen.get("modified") if seen else None,
        "get_revoked": [bool(o.get("revoked")) for o in single],
        "versions": versions,
        "valid": valid,
    }
print(json.dumps(out))
