#!/usr/bin/env bash
# How long `imgbuild inspect --files` takes on an image of 10,000 files.
#
# Builds (once) an image from a generated context: 100 directories of 100
# files of 1 KiB in one layer, and a second layer that rewrites 1,000 of
# them. Then runs `inspect --files` (and the plain summary) RUNS times and
# prints the median wall time of each. The issue's target: under a second.
#
# Usage: bench/inspect-files.sh [WORKDIR]   (env: RUNS=5, IMGBUILD=path)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-5}
work=${1:-$(mktemp -d)}
imgbuild=${IMGBUILD:-target/release/imgbuild}
[ -x "$imgbuild" ] || cargo build --release --quiet
mkdir -p "$work/context"
if [ ! -e "$work/context/d99/f99" ]; then
  for d in $(seq 0 99); do
    mkdir -p "$work/context/d$d"
    for f in $(seq 0 99); do
      head -c 1024 /dev/urandom > "$work/context/d$d/f$f"
    done
  done
fi
cat > "$work/context/imgbuild.toml" <<'TOML'
[stages.files]
from = "scratch"
steps = [
  { copy = ["."], to = "/data/", exclude = ["imgbuild.toml"] },
  { copy = ["d1?"], to = "/data/", parents = true },
]
[images.files]
stage = "files"
tags = ["localhost/files:1"]
TOML
store="$work/store"
"$imgbuild" --store "$store" -q apply -f "$work/context/imgbuild.toml" >/dev/null

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
time_ms() {
  for _ in $(seq "$runs"); do
    start=$(date +%s%N)
    "$imgbuild" --store "$store" inspect localhost/files:1 "$@" >/dev/null
    echo $((($(date +%s%N) - start) / 1000000))
  done | median
}
files=$("$imgbuild" --store "$store" inspect localhost/files:1 --files | wc -l)
files_ms=$(time_ms --files)
summary_ms=$(time_ms)
echo "image: $files paths in the merged tree"
echo "inspect --files: ${files_ms} ms (median of $runs)"
echo "inspect:         ${summary_ms} ms (median of $runs)"
if [ "$files_ms" -lt 1000 ]; then echo "target (< 1 s): met"; else echo "target (< 1 s): NOT met"; fi
