#!/usr/bin/env bash
# Creates the Python virtual environment holding the OASIS reference tools
# (stix2-validator, stix2-patterns, taxii2-client) that the comparison tests run.
# Idempotent and safe to call from several test processes at once.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
venv="${SYNERGIA_PYENV:-$root/target/pyenv}"
req="$root/tests/py/requirements.txt"
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if [ -x "$venv/bin/python" ] && cmp -s "$req" "$venv/requirements.installed"; then
  echo "$venv/bin/python"
  exit 0
fi
rm -rf "$venv"
python3 -m venv "$venv" >&2
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" >&2
cp "$req" "$venv/requirements.installed"
echo "$venv/bin/python"
