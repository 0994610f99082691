#!/usr/bin/env bash
# Cost of measuring the store: `imgbuild du` and a no-op `imgbuild prune`
# against coreutils `du -s` on the same store, which holds a snapshot of
# FILES small files (default 20000). Prints ratios; the machines are shared
# and noisy, so absolute times mean little.
# IMGBUILD_BIN picks the binary (default: a release build).
set -euo pipefail
cd "$(dirname "$0")/.."
files=${FILES:-20000}
if [ -z "${IMGBUILD_BIN:-}" ]; then
  cargo build --release --quiet
  IMGBUILD_BIN="$PWD/target/release/imgbuild"
fi
bin=$IMGBUILD_BIN
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A layer of many small files; the `file` step after it makes the build
# extract that layer into a snapshot.
mkdir -p "$work/project/tree"
for d in $(seq 1 $((files / 100))); do
  mkdir -p "$work/project/tree/d$d"
  for f in $(seq 1 100); do echo "$d $f" > "$work/project/tree/d$d/f$f"; done
done
cat > "$work/project/imgbuild.toml" <<'TOML'
[stages.a]
from = "scratch"
steps = [
  { copy = "tree/", to = "/tree/" },
  { file = "x", to = "/tree/extra" },
]
[images.a]
stage = "a"
tags = ["bench:latest"]
TOML
"$bin" --store "$work/store" -q apply -f "$work/project/imgbuild.toml" >/dev/null

now() { date +%s.%N; }
best() { # $@: command; prints the best of 5 wall times
  local best=""
  for _ in 1 2 3 4 5; do
    local t0 t1 t
    t0=$(now); "$@" >/dev/null; t1=$(now)
    t=$(echo "$t1 - $t0" | bc -l)
    if [ -z "$best" ] || [ "$(echo "$t < $best" | bc -l)" = 1 ]; then best=$t; fi
  done
  echo "$best"
}

coreutils=$(best du -s "$work/store")
du=$(best "$bin" --store "$work/store" -q du)
prune=$(best "$bin" --store "$work/store" -q prune)
printf 'files in the store: %s\n' "$(find "$work/store" | wc -l)"
printf 'du -s:            %.3fs\n' "$coreutils"
printf 'imgbuild du:      %.3fs  (%.1fx du -s)\n' "$du" "$(echo "$du / $coreutils" | bc -l)"
printf 'imgbuild prune:   %.3fs  (%.1fx du -s)\n' "$prune" "$(echo "$prune / $coreutils" | bc -l)"
