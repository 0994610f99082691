#!/usr/bin/env bash
# Per-step overhead of `run`: 20 trivial steps through `imgbuild apply`,
# against 20 bare `runc run` of the same busybox root. Prints ratios; the
# machines are shared and noisy, so absolute times mean little.
# Needs root, runc and busybox-static (scripts/test installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin="$PWD/target/release/imgbuild"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
steps=20

# A busybox base, built with copy and file steps only.
mkdir -p "$work/base/bin"
cp /bin/busybox "$work/base/bin/busybox"
for applet in sh true; do ln -s busybox "$work/base/bin/$applet"; done
cat > "$work/base/imgbuild.toml" <<'TOML'
[stages.busybox]
from = "scratch"
steps = [{ copy = "bin/", to = "/bin/" }]
[images.busybox]
stage = "busybox"
tags = ["busybox:latest"]
TOML
"$bin" --store "$work/store" -q apply -f "$work/base/imgbuild.toml" --output "type=oci-layout,dest=$work/busybox" >/dev/null

manifest() { # $1: number of run steps
  printf '[stages.a]\nfrom = "oci-layout:%s/busybox:latest"\nsteps = [\n' "$work"
  for _ in $(seq 1 "$1"); do printf '  { run = "true" },\n'; done
  printf ']\n[images.a]\nstage = "a"\n'
}
manifest 0 > "$work/zero.toml"
manifest "$steps" > "$work/runs.toml"

now() { date +%s.%N; }
elapsed() { echo "$2 - $1" | bc -l; }

"$bin" --store "$work/store" -q apply -f "$work/zero.toml" >/dev/null # warm the snapshots
t0=$(now); "$bin" --store "$work/store" -q apply -f "$work/zero.toml" >/dev/null; t1=$(now)
"$bin" --store "$work/store" -q apply -f "$work/runs.toml" >/dev/null; t2=$(now)
base=$(elapsed "$t0" "$t1")
with_runs=$(elapsed "$t1" "$t2")
per_step=$(echo "($with_runs - $base) / $steps" | bc -l)

# The same root and process with runc alone.
bundle="$work/bundle"
mkdir -p "$bundle/rootfs"
cp -a "$work/base/bin" "$bundle/rootfs/"
(cd "$bundle" && runc spec)
sed -i 's/"terminal": true/"terminal": false/; s/"sh"/"true"/' "$bundle/config.json"
t3=$(now)
for i in $(seq 1 "$steps"); do runc run --bundle "$bundle" "bench-$$-$i" >/dev/null; done
t4=$(now)
per_runc=$(echo "$(elapsed "$t3" "$t4") / $steps" | bc -l)

printf 'run step through imgbuild: %.1f ms per step (incl. snapshot, overlay, layer write)\n' "$(echo "$per_step * 1000" | bc -l)"
printf 'bare runc run:             %.1f ms per run\n' "$(echo "$per_runc * 1000" | bc -l)"
printf 'ratio imgbuild/runc:       %.2f\n' "$(echo "$per_step / $per_runc" | bc -l)"
