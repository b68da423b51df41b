#!/usr/bin/env bash
# CPython's own thread-pool tests against our pool (tests/cpython/run_cpython_tests.py),
# under Python 3.13 (its test suite ships with the interpreter) and under the project's
# 3.11 (the suite from Debian's libpython3.11-testsuite, installed if missing).
#
#   scripts/cpython_tests.sh            # both interpreters, both configurations
#
# PYTHON313 names the 3.13 interpreter (default: python3.13 on PATH, else pyenv's);
# its venv is .venv313. The 3.11 run uses .venv (the Makefile's, created if missing).
# ADAPTIVE_LAB_SKIP_CPYTHON311=1 skips the 3.11 run.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNNER=tests/cpython/run_cpython_tests.py

as_root() { if [ "$(id -u)" = "0" ]; then "$@"; else sudo "$@"; fi; }

# -- 3.13 -------------------------------------------------------------------------------
is313() { "$1" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null; }
PY313=""
for candidate in ${PYTHON313:-} python3.13 /root/.pyenv/versions/3.13.0/bin/python; do
    if is313 "$candidate"; then PY313="$candidate"; break; fi
done
if [ -z "$PY313" ]; then
    echo "cpython tests: no Python 3.13 found (set PYTHON313)" >&2
    exit 1
fi
if [ ! -x .venv313/bin/python ] || [ pyproject.toml -nt .venv313/.installed ]; then
    "$PY313" -m venv .venv313
    .venv313/bin/python -m pip install --quiet -e .
    touch .venv313/.installed
fi
echo "== CPython 3.13 thread-pool tests"
.venv313/bin/python "$RUNNER" --jobs 2

# -- 3.11 -------------------------------------------------------------------------------
if [ "${ADAPTIVE_LAB_SKIP_CPYTHON311:-}" = "1" ]; then
    exit 0
fi
SUITE311=/usr/lib/python3.11/test/test_concurrent_futures.py
if [ ! -f "$SUITE311" ] && command -v apt-get >/dev/null 2>&1; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libpython3.11-testsuite \
        || { as_root apt-get update -qq || true
             as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
                 libpython3.11-testsuite; }
fi
make --no-print-directory .venv/.installed
if [ -f "$SUITE311" ] && .venv/bin/python -c 'import sys; assert sys.version_info[:2] == (3, 11)'
then
    echo "== CPython 3.11 thread-pool tests (suite from $SUITE311)"
    .venv/bin/python "$RUNNER" --jobs 2 --suite-dir "$(dirname "$SUITE311")"
else
    echo "cpython tests: no 3.11 suite or .venv is not 3.11; the 3.11 run is skipped" >&2
fi
