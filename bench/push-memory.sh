#!/usr/bin/env bash
# Peak memory of `imgbuild push` for an image with one 512 MiB layer,
# measured with `/usr/bin/time -v` against a local `docker-registry`. The
# push gzips the layer (the store keeps it uncompressed), then uploads it in
# 4 MiB chunks, both streaming, so the peak must stay far below the layer's
# size; the script fails above 100 MB.
# Needs docker-registry and time (Debian packages). IMGBUILD_BIN picks the
# binary (default: a release build).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${IMGBUILD_BIN:-}" ]; then
  cargo build --release --quiet
  IMGBUILD_BIN="$PWD/target/release/imgbuild"
fi
bin="$IMGBUILD_BIN"
limit_kb=$((100 * 1000))
work=$(mktemp -d)
registry_pid=
cleanup() {
  if [ -n "$registry_pid" ]; then kill "$registry_pid" 2>/dev/null || true; wait "$registry_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# A registry on a free port, storing in $work.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
host="127.0.0.1:$port"
cat > "$work/registry.yml" <<YAML
version: 0.1
log: { level: error, accesslog: { disabled: true } }
storage: { filesystem: { rootdirectory: $work/registry } }
http: { addr: $host }
YAML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done

# An image with one 512 MiB layer of incompressible bytes, stored uncompressed.
mkdir "$work/project"
head -c $((512 << 20)) /dev/urandom > "$work/project/big"
cat > "$work/project/imgbuild.toml" <<TOML
[stages.big]
from = "scratch"
steps = [{ copy = "big", to = "/big" }]
[images.big]
stage = "big"
tags = ["$host/bench/big:1"]
TOML
echo '{}' > "$work/auth.json"
"$bin" --store "$work/store" -q apply -f "$work/project/imgbuild.toml" --compression none >/dev/null

start=$(date +%s.%N)
/usr/bin/time -v "$bin" --store "$work/store" -q push --insecure-registry "$host" \
  --authfile "$work/auth.json" "$host/bench/big:1" >/dev/null 2>"$work/time.log" || {
  cat "$work/time.log"; exit 1; }
end=$(date +%s.%N)
peak_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.log")
seconds=$(echo "$end - $start" | bc -l)
printf 'push of a 512 MiB layer (gzip and upload): %.1f s; peak RSS %d kB (%.1f MB), limit %d MB\n' \
  "$seconds" "$peak_kb" "$(echo "$peak_kb / 1000" | bc -l)" $((limit_kb / 1000))
if [ "$peak_kb" -ge "$limit_kb" ]; then
  echo "FAIL: peak RSS above the limit" >&2
  exit 1
fi
