#!/usr/bin/env bash
# Install everything the tests need (JACK for real MIDI ports, the test, train, link and jack extras) and run them.
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v jackd >/dev/null 2>&1 || ! command -v jack_connect >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends jackd2 >/dev/null
fi

python -m pip install -q -e '.[test,train,plot,link,jack]'
python -m ruff check liveduet tests export benchmarks
python -m pytest -q "$@"
