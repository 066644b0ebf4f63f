#!/usr/bin/env bash
# Run the README's play command exactly as written, in a fresh copy of the repository (its
# tracked and untracked-but-not-ignored files) and a fresh virtual environment, as a newcomer
# does; then `liveduet demo` in that environment, and check that it wrote its duet.
#
# `liveduet run` plays until stopped where a MIDI system exists (stopped here after 20 s of
# playing) and exits 2 naming what is missing, and `liveduet demo`, where none does.
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
git ls-files -z --cached --others --exclude-standard | xargs -0 tar -cf - | tar -xf - -C "$work"
play="$(python3 scripts/readme_commands.py README.md | sed -n 1p)"
cd "$work"
echo "running, as in README.md: $play"
code=0
timeout --signal=INT 600 bash -c "$play" > play.log 2>&1 || code=$?
cat play.log
if [ "$code" -eq 2 ] && grep -q "liveduet demo" play.log; then
    echo "readme check: no MIDI system here; liveduet run said so and pointed to the demo"
elif [ "$code" -ne 0 ] && [ "$code" -ne 124 ]; then
    echo "readme check: the play command failed with exit status $code" >&2
    exit 1
fi
. .venv/bin/activate
liveduet demo
test -s liveduet-demo.mid && echo "readme check: ok (liveduet-demo.mid written)"
