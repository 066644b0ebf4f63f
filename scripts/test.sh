#!/usr/bin/env bash
# Install everything the tests need (JACK for real MIDI ports, the test, train, plot, link and
# jack extras), run ruff and the whole pytest suite, then the README's play command in a fresh
# virtual environment (scripts/readme_check.sh). With arguments, runs just pytest with them.
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v jackd >/dev/null 2>&1 || ! command -v jack_connect >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends jackd2 >/dev/null
fi

# A system Python that refuses 'pip install' (PEP 668, e.g. Debian's) gets a virtual environment.
if [ -z "${VIRTUAL_ENV:-}" ] && python3 -c 'import os, sys, sysconfig
sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_paths()["stdlib"], "EXTERNALLY-MANAGED")) else 1)'; then
    [ -x .venv-test/bin/python ] || python3 -m venv .venv-test
    . .venv-test/bin/activate
fi

python -m pip install -q -e '.[test,train,plot,link,jack]'
python -m ruff check liveduet tests export benchmarks scripts
if [ "$#" -gt 0 ]; then
    exec python -m pytest -q "$@"
fi
python -m pytest -q
bash scripts/readme_check.sh
