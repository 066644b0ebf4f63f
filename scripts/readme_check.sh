#!/usr/bin/env bash
# Run the README's "Two commands" exactly as written, in a fresh copy of the repository (its
# tracked and untracked-but-not-ignored files) and a fresh virtual environment, as a newcomer
# does; then check that the demo wrote its duet.
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
git ls-files -z --cached --others --exclude-standard | xargs -0 tar -cf - | tar -xf - -C "$work"
python3 scripts/readme_commands.py README.md > "$work/two_commands.sh"
cd "$work"
echo "running, as in README.md:" && cat two_commands.sh
bash -euo pipefail two_commands.sh
test -s liveduet-demo.mid && echo "readme check: ok (liveduet-demo.mid written)"
