"""Print the verdict of the OASIS reference pattern validator for every pattern.

Usage: check_patterns.py FILE...

Each FILE holds one pattern per line; blank lines and lines starting with `#`
are skipped. Output is one JSON object per input pattern, in order:
{"pattern": ..., "valid": bool, "errors": [...]}. A pattern that makes the
reference raise an exception is reported invalid with the exception text, so one
crash does not hide the verdicts of the rest of the corpus.
"""

import json
import sys

from stix2patterns.validator import run_validator


def verdict(pattern):
    try:
        errors = run_validator(pattern, stix_version="2.1")
    except Exception as exc:  # noqa: BLE001 - the reference crashing is a verdict too
        return {"pattern": pattern, "valid": False,
                "errors": ["reference raised %s: %s" % (type(exc).__name__, exc)]}
    return {"pattern": pattern, "valid": not errors, "errors": list(errors)}


def main(paths):
    out = []
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                line = line.rstrip("\n")
                if not line.strip() or line.startswith("#"):
                    continue
                out.append(verdict(line))
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1:])
