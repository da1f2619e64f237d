#!/usr/bin/env python3
"""Validates STIX 2.1 files with the OASIS reference validator and prints verdicts.

Usage: validate_bundles.py FILE...
Prints one JSON object: {"<file>": {"valid": bool, "errors": [str], "warnings": int}}.

Options are the reference defaults for version 2.1 (no strict mode, every SHOULD check
enabled as a warning). The verdict is the reference's own `is_valid`, which only
errors affect: warnings (SHOULD rules, open-vocabulary values, custom-prefix advice)
never make a document invalid, the same rule Synergia's validator follows.
"""
import json
import sys

from stix2validator import ValidationOptions, validate_file


def main(paths):
    options = ValidationOptions(version="2.1")
    out = {}
    for path in paths:
        try:
            results = validate_file(path, options)
            errors = [e.message for r in results.object_results for e in r.errors]
            warnings = sum(len(r.warnings) for r in results.object_results)
            if results.fatal is not None:
                errors.append(str(results.fatal.message))
            out[path] = {"valid": bool(results.is_valid), "errors": errors, "warnings": warnings}
        except Exception as exc:  # a crash of the reference is a verdict of "invalid"
            out[path] = {"valid": False, "errors": ["reference validator raised: %r" % exc], "warnings": 0}
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1:])
