#!/bin/bash
# MD5 digests of a dozen renders and the pieces they answer, for comparing two revisions:
# the same seed must give the same bytes. Usage: bash scripts/render_digests.sh [OUTDIR]
# (run it in each checkout and diff the outputs; OUTDIR defaults to a temporary folder)
set -euo pipefail
out=${1:-$(mktemp -d)}
mkdir -p "$out"
i=0
for spec in "4/4 1" "3/4 2" "6/8 3" "4/4 4"; do
  set -- $spec
  i=$((i + 1))
  python -m liveduet generate --bars 8 --seed "$2" --meter "$1" -o "$out/in$i.mid" >/dev/null
  python -m liveduet render "$out/in$i.mid" --mode call --seed "$i" -o "$out/call$i.mid" >/dev/null
  python -m liveduet render "$out/in$i.mid" --mode continue --seed $((i + 10)) \
    -o "$out/cont$i.mid" >/dev/null
  python -m liveduet render "$out/in$i.mid" --mode harmonize --seed $((i + 20)) \
    -o "$out/harm$i.mid" >/dev/null
done
python -m liveduet render "$out/in1.mid" --mode call --seed 5 --answer-at gap --candidates 4 \
  -o "$out/gap1.mid" >/dev/null
cd "$out" && md5sum ./*.mid
