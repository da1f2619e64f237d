"""Drives a Synergia node with the OASIS reference TAXII client (taxii2-client).

Discovers the server with a client certificate, lists collections, pages through the
consolidated collection with as_pages, validates every object served with the OASIS
stix2-validator, publishes a bundle with add_objects and waits for its status.
Prints one JSON line with what it saw.

usage: taxii_client_check.py URL CA CERT KEY ADD_BUNDLE_FILE
"""
import json
import sys

from stix2validator import ValidationOptions, validate_instance
from taxii2client.v21 import Server, as_pages

url, ca, cert, key, add_file = sys.argv[1:6]
server = Server(url + "/taxii2/", verify=ca, cert=(cert, key))
api_root = server.api_roots[0]
collections = {c.title: c for c in api_root.collections}
consolidated = collections["consolidated"]

count = 0
pages = 0
ids = set()
invalid = []
options = ValidationOptions(version="2.1")
for envelope in as_pages(consolidated.get_objects, per_request=1000):
    pages += 1
    objects = envelope.get("objects", [])
    count += len(objects)
    ids.update(o["id"] for o in objects)
    if objects:
        bundle = {"type": "bundle", "id": "bundle--0d3c6a8e-3b44-4a7f-9d55-5a0c7b2d1e10", "objects": objects}
        result = validate_instance(bundle, options)
        if not result.is_valid:
            invalid.extend(str(e) for r in result.object_results for e in r.errors)

with open(add_file) as f:
    to_add = json.load(f)
local = collections["local"]
status = local.add_objects({"objects": to_add["objects"]}, wait_for_completion=True, poll_interval=1, timeout=60)

print(json.dumps({
    "title": server.title,
    "collections": sorted(collections),
    "count": count,
    "distinct": len(ids),
    "pages": pages,
    "invalid": invalid[:20],
    "status": status.status,
    "success_count": status.success_count,
    "failure_count": status.failure_count,
    "total_count": status.total_count,
}))
