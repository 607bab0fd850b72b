#!/usr/bin/env bash
# Runs the Python client's tests against a running stewrd, then builds the wheel.
#
#   STEWRD_TEST_URL          the server (default http://127.0.0.1:18080)
#   STEWRD_TEST_ADMIN_TOKEN  its admin token (default dev-admin-token)
#   PYTHON                   the interpreter for the venv (default python3)
#
# Extra arguments go to pytest (e.g. ./test.sh -k events -x).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

if [[ ! -x .venv/bin/python ]]; then
  "${PYTHON:-python3}" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'

export STEWRD_TEST_URL="${STEWRD_TEST_URL:-http://127.0.0.1:18080}"
export STEWRD_TEST_ADMIN_TOKEN="${STEWRD_TEST_ADMIN_TOKEN:-dev-admin-token}"
.venv/bin/python -m mypy --strict src/stewrd
.venv/bin/python -m pytest "$@"

# The package must build: sdist, and a wheel from it, holding the generated types.
dist="$(mktemp -d)"
trap 'rm -rf "$dist"' EXIT
.venv/bin/python -m build --outdir "$dist" . >"$dist/build.log" 2>&1 || { cat "$dist/build.log"; exit 1; }
wheel="$(ls "$dist"/stewrd-0.1.0-py3-none-any.whl)"
.venv/bin/python - "$wheel" <<'PY'
import sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
needed = {"stewrd/__init__.py", "stewrd/_types.py", "stewrd/types.py", "stewrd/py.typed"}
missing = needed - names
sys.exit(f"wheel lacks {sorted(missing)}" if missing else 0)
PY
echo "built $(basename "$wheel")"
