#!/usr/bin/env bash
# Whole builds of one Dockerfile with imgbuild, `docker build` (BuildKit) and
# `buildah bud --layers`: how long a cold build, a no-op rebuild and a rebuild
# after one source file changed take with each tool on this machine.
#
# The workload (generated deterministically, the same bytes on every run):
#   src/          3,000 text files of 10 KB in 30 directories
#   assets/       one 64 MiB incompressible asset
#   deps.lock     500 lines; the `deps` stage RUNs with a cache mount and
#                 creates one 16 KB file per line in it, then installs them
#   Dockerfile    deps (COPY deps.lock, RUN --mount=type=cache),
#                 build (FROM deps, COPY src, RUN hashing and tarring it),
#                 final (FROM the base, COPY the asset and the two artifacts)
# WORKLOAD=branches measures scheduling instead: two branches of unequal
# length, `slow` (a 4 s step) and `quick` -> `late` (a 4 s step that reads
# src/mod-17/file-042.txt, the changed file), copied into one final image
# whose own first steps (a 2 s step on the same file) read neither. A
# scheduler that starts `late` as soon as `quick` is done, and the final
# stage's own steps before the stages they do not read are done, builds
# it in about 4 s; one that waits for whole stages, in 6 s; one that waits
# for every stage of the first wave, in 10 s.
# Every tool builds the same Dockerfile from the same busybox base, which
# imgbuild builds from Debian's busybox-static, so nothing is pulled from
# the internet.
#
# Each measurement:
#   cold     an empty cache: a fresh imgbuild store, a fresh buildah storage
#            root, `docker builder prune -af` and the image removed; the
#            base image is in place for all three (its import is not timed)
#   no-op    the same build again, nothing changed
#   changed  one file under src/ changed, then built again
# Each is repeated RUNS times (default 3); the table holds the median
# wall-clock time, with the ratios imgbuild/docker and imgbuild/buildah
# (below 1: imgbuild is faster); a second table holds each tool's min,
# median and max and its spread (max/min). Then whether imgbuild meets its
# targets against BuildKit: cold, one-file-changed and (branches) changed
# at most 0.6 of its time, no-op at most 0.15, and a spread of at most 1.3.
# The machines are shared: compare ratios from one run, not times across
# runs.
#
# Usage: bench/cache-compare.sh [--json] [DIR]
#   --json         also print one JSON line (the last line of stdout) with
#                  every tool's min/median/max and the median ratios
#   DIR            where the workload, stores and logs go (kept); default: a
#                  temporary directory, removed at the end unless a build failed
#   RUNS=N         repetitions of each measurement (default 3)
#   TOOLS="..."    which tools to run (default "imgbuild docker buildah")
#   IMGBUILD=PATH  the imgbuild binary; default: `cargo build --release`
#   IMGBUILD_FLAGS extra `imgbuild apply` flags, e.g. "--compression none"
#   WORKLOAD=cache|branches  which workload (default cache, described above)
#   SETTLE=SECONDS how long to wait after each reset (see settle_after_reset;
#                  default: the kernel's dirty_expire interval and a second)
#
# Needs root, bash, openssl, runc and busybox-static (scripts/test installs
# them). docker (Debian `docker.io`) and buildah (Debian `buildah`) are used
# when installed and skipped otherwise. If no docker daemon answers, the
# script starts `dockerd --iptables=false --bridge=none` and stops it at the
# end. It prunes that daemon's whole build cache (`docker builder prune -af`).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

runs=${RUNS:-3}
tools=${TOOLS:-imgbuild docker buildah}
docker=/usr/bin/docker # Debian's client; its builder is BuildKit with DOCKER_BUILDKIT=1
image=bench-cache-compare:latest
base_ref=docker.io/library/bench-busybox:latest

json=0
if [ "${1:-}" = --json ]; then
  json=1
  shift
fi
if [ $# -gt 0 ]; then
  work=$(realpath -m "$1")
  mkdir -p "$work"
  keep_work=1
else
  work=$(mktemp -d /var/tmp/cache-compare.XXXXXX)
  keep_work=0
fi
ctx=$work/context
logs=$work/logs
mkdir -p "$logs"

started_dockerd=""
docker_used=""
cleanup() {
  local status=$?
  if [ -n "$docker_used" ]; then
    # Leave the daemon without this script's images and build cache.
    docker_reset || true
    "$docker" image rm -f "$base_ref" > /dev/null 2>&1 || true
  fi
  if [ -n "$started_dockerd" ]; then
    kill "$started_dockerd" 2>/dev/null || true
    wait "$started_dockerd" 2>/dev/null || true
  fi
  if [ -d "$work/buildah" ]; then unmount_under "$work/buildah"; fi
  if [ "$keep_work" = 0 ] && [ "$status" = 0 ]; then
    rm -rf "$work"
  elif [ "$keep_work" = 0 ]; then
    say "kept $work for its logs; remove it when done"
  fi
}
trap cleanup EXIT

say() { printf '%s\n' "$*" >&2; }
# Says which command failed before set -e ends the script.
set -o errtrace
trap 'say "cache-compare.sh: line $LINENO: \`$BASH_COMMAND\` failed"' ERR

# Unmounts whatever is mounted at or below $1 (buildah's overlay storage
# leaves mounts behind), deepest first.
unmount_under() {
  awk -v dir="$1" '$5 == dir || index($5, dir "/") == 1 { print $5 }' /proc/self/mountinfo |
    sort -r | while read -r mountpoint; do umount -l "$mountpoint" || true; done
}

## The workload ################################################################

# $1 bytes of a keyed pseudo-random stream: the same bytes for the same key.
stream() { # $1: bytes, $2: key
  head -c "$1" /dev/zero | openssl enc -aes-128-ctr -nosalt -pbkdf2 -pass "pass:$2"
}

# Two branches of unequal length (see WORKLOAD at the top).
generate_branches() {
  rm -rf "$ctx"
  mkdir -p "$ctx/src/mod-17"
  stream 10000 branches | base64 -w 79 > "$ctx/src/mod-17/file-042.txt"
  cat > "$ctx/Dockerfile" <<'DOCKERFILE'
ARG BASE

FROM ${BASE} AS slow
RUN sleep 4 && echo slow > /slow

FROM ${BASE} AS quick
RUN echo quick > /quick

FROM quick AS late
COPY src/mod-17/file-042.txt /in.txt
RUN sleep 4 && sha256sum /in.txt > /late

FROM ${BASE}
COPY src/mod-17/file-042.txt /app/own.txt
RUN sleep 2 && sha256sum /app/own.txt > /app/own.sum
COPY --from=slow /slow /app/
COPY --from=late /late /app/
CMD ["/bin/sh"]
DOCKERFILE
  changed_file=$ctx/src/mod-17/file-042.txt
  cp "$changed_file" "$work/changed-file.orig"
}

generate_workload() {
  if [ "${WORKLOAD:-cache}" = branches ]; then
    generate_branches
    return
  fi
  rm -rf "$ctx"
  mkdir -p "$ctx/src" "$ctx/assets"
  # 30 directories of 100 files; each file is 128 base64 lines of 79
  # characters and a newline; 4 characters of base64 hold 3 bytes.
  for d in $(seq -w 0 29); do
    mkdir "$ctx/src/mod-$d"
    stream $((100 * 128 * 79 * 3 / 4)) "src-$d" | base64 -w 79 |
      split -l 128 -d -a 3 --additional-suffix=.txt - "$ctx/src/mod-$d/file-"
  done
  stream $((64 * 1024 * 1024)) asset > "$ctx/assets/big.bin"
  for i in $(seq -w 1 500); do printf 'pkg-%s 1.%d.0\n' "$i" "$((10#$i % 7))"; done > "$ctx/deps.lock"
  cat > "$ctx/Dockerfile" <<'DOCKERFILE'
# The same busybox image, named as each tool finds it.
ARG BASE

FROM ${BASE} AS deps
WORKDIR /deps
COPY deps.lock ./
# Like a package manager: download into a cache that outlives the build,
# then install from it.
RUN --mount=type=cache,target=/var/cache/deps \
    set -e; \
    while read -r name version; do \
      file=/var/cache/deps/$name-$version.pkg; \
      [ -f "$file" ] || yes "$name $version" | head -c 16384 > "$file"; \
    done < deps.lock; \
    mkdir -p lib; \
    cp /var/cache/deps/*.pkg lib/

FROM deps AS build
WORKDIR /build
COPY src/ ./src/
RUN set -e; \
    mkdir -p /out; \
    find src -type f | sort | xargs sha256sum > /out/SHA256SUMS; \
    tar -cf /out/src.tar src

FROM ${BASE}
COPY assets/big.bin /app/assets/big.bin
COPY --from=build /out/src.tar /out/SHA256SUMS /app/
CMD ["/bin/sh"]
DOCKERFILE
  changed_file=$ctx/src/mod-17/file-042.txt
  cp "$changed_file" "$work/changed-file.orig"
}

## The base image ##############################################################

# imgbuild builds a busybox image from Debian's busybox-static and writes it
# as an OCI layout (for imgbuild) and a docker archive (for docker and buildah).
build_base() {
  local dir=$work/base
  rm -rf "$dir"
  mkdir -p "$dir/context/bin"
  cp /bin/busybox "$dir/context/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -s busybox "$dir/context/bin/$applet"
  done
  cat > "$dir/context/imgbuild.toml" <<TOML
[stages.busybox]
from = "scratch"
env = { PATH = "/bin" }
steps = [
  { copy = "bin/", to = "/bin/" },
  { file = "root:x:0:0:root:/root:/bin/sh\n", to = "/etc/passwd" },
  { file = "root:x:0:\n", to = "/etc/group" },
]
[images.busybox]
stage = "busybox"
tags = ["$base_ref"]
TOML
  "$imgbuild" --store "$dir/store" -q apply -f "$dir/context/imgbuild.toml" \
    --output "type=oci-layout,dest=$dir/layout" --output "type=docker,dest=$dir/busybox.tar" > "$logs/base.log" 2>&1 ||
    { cat "$logs/base.log" >&2; exit 1; }
  rm -rf "$dir/store"
}

## The tools ###################################################################
# Each tool has three functions: TOOL_setup (once), TOOL_reset (empty cache,
# base image in place) and TOOL_build (one build of the Dockerfile).

imgbuild_setup() {
  imgbuild_flags=()
  read -r -a imgbuild_flags <<< "${IMGBUILD_FLAGS:-}"
  imgbuild_base="oci-layout:$work/base/layout:latest"
  mkdir -p "$work/base/import"
  # shellcheck disable=SC2016 # a Dockerfile variable, for imgbuild to expand
  printf 'ARG BASE\nFROM ${BASE}\n' > "$work/base/import/Dockerfile"
}
imgbuild_reset() {
  rm -rf "$work/imgbuild-store"
  # Import the base, as docker and buildah have it loaded before they build.
  "$imgbuild" --store "$work/imgbuild-store" -q apply -f "$work/base/import/Dockerfile" \
    --build-arg "BASE=$imgbuild_base" > "$logs/imgbuild-import.log" 2>&1 ||
    { cat "$logs/imgbuild-import.log" >&2; exit 1; }
}
imgbuild_build() {
  "$imgbuild" --store "$work/imgbuild-store" apply "${imgbuild_flags[@]}" -f "$ctx/Dockerfile" \
    --build-arg "BASE=$imgbuild_base" "$ctx"
}

docker_setup() {
  if ! "$docker" info > /dev/null 2>&1; then
    say "starting dockerd (log: $logs/dockerd.log)"
    dockerd --iptables=false --bridge=none > "$logs/dockerd.log" 2>&1 &
    started_dockerd=$!
    for _ in $(seq 1 60); do
      "$docker" info > /dev/null 2>&1 && break
      sleep 1
    done
    "$docker" info > /dev/null 2>&1 || { say "dockerd did not start: see $logs/dockerd.log"; exit 1; }
  fi
  say "docker: $("$docker" version --format 'server {{.Server.Version}}'), storage driver $("$docker" info --format '{{.Driver}}')"
  "$docker" load -q -i "$work/base/busybox.tar" > /dev/null
  docker_used=1
}
# Removes every image the builds made (each changed build untags the one
# before it) and the build cache.
docker_reset() {
  local built
  built=$(awk 1 "$work/docker-iids/"* 2> /dev/null | sort -u || true) # one id a file, no newline
  # shellcheck disable=SC2086 # image ids are words
  "$docker" image rm -f "$image" $built > /dev/null 2>&1 || true
  rm -rf "$work/docker-iids"
  mkdir -p "$work/docker-iids"
  "$docker" builder prune -af > /dev/null
}
docker_build() {
  DOCKER_BUILDKIT=1 "$docker" build --progress=plain --network=host \
    --iidfile "$(mktemp "$work/docker-iids/XXXXXX")" \
    --build-arg "BASE=$base_ref" -t "$image" -f "$ctx/Dockerfile" "$ctx"
}

# Native overlay storage and OCI isolation (runc), as docker and imgbuild
# run their steps; --jobs lets independent stages run at once, as the
# others do. BUILDAH_ISOLATION=chroot and BUILDAH_STORAGE_DRIVER=vfs try the
# other settings (see bench/README.md).
buildah_setup() {
  buildah_isolation=${BUILDAH_ISOLATION:-oci}
  local driver=${BUILDAH_STORAGE_DRIVER:-overlay}
  buildah_storage=(--root "$work/buildah/root" --runroot "$work/buildah/runroot" --storage-driver "$driver")
  say "buildah: $(buildah --version), storage driver $driver, isolation $buildah_isolation"
}
buildah_reset() {
  if [ -d "$work/buildah" ]; then
    buildah "${buildah_storage[@]}" rm --all > /dev/null 2>&1 || true
    unmount_under "$work/buildah"
    rm -rf "$work/buildah"
  fi
  # buildah keeps cache mounts in $TMPDIR/buildah-cache, outside its storage.
  mkdir -p "$work/buildah/tmp"
  buildah "${buildah_storage[@]}" pull -q "docker-archive:$work/base/busybox.tar" > /dev/null
}
buildah_build() {
  TMPDIR=$work/buildah/tmp buildah "${buildah_storage[@]}" bud --layers --isolation "$buildah_isolation" --network host --pull=never \
    --jobs "$(nproc)" --build-arg "BASE=$base_ref" -t "$image" -f "$ctx/Dockerfile" "$ctx"
}

## Measuring ###################################################################

# Runs `TOOL_build` with its output in logs/TOOL-NAME.log, and prints its
# wall-clock seconds.
timed_build() { # $1: tool, $2: name
  local log=$logs/$1-$2.log start end
  start=$EPOCHREALTIME
  if ! "$1_build" > "$log" 2>&1; then
    say "$1: the $2 build failed; the end of $log:"
    tail -n 30 "$log" >&2
    exit 1 # the subshell of $(timed_build …); the caller's set -e stops the script
  fi
  end=$EPOCHREALTIME
  awk -v s="$start" -v e="$end" 'BEGIN { printf "%.3f\n", e - s }'
}

# Waits until the files the reset deleted no longer slow down creating new
# ones. Without a journal (as on the machine this was measured on), ext4
# skips every inode deleted in the last dirty_expire interval (30 s) when it
# allocates one, reading its inode table block to find out: the first few
# thousand files a build creates after the previous run's store was deleted
# cost several times more, the more so the more runs came before (it was
# the spread of cold and changed builds, and it grew run after run). That is
# the reset's doing, not the tool's: every tool gets the same wait, after its
# reset, outside the timer. SETTLE=0 skips it.
settle_after_reset() {
  local seconds=${SETTLE:-}
  if [ -z "$seconds" ]; then
    seconds=$((($(cat /proc/sys/vm/dirty_expire_centisecs 2> /dev/null || echo 3000) + 99) / 100 + 1))
  fi
  sync
  sleep "$seconds"
}

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
minimum() { sort -g | head -n 1; }
maximum() { sort -g | tail -n 1; }

# One run of one tool: a cold build, a no-op rebuild, and a rebuild after one
# source file changed. Appends the times to times[TOOL,KIND].
declare -A times
measure() { # $1: tool, $2: run number
  local tool=$1 run=$2 cold noop changed
  cp "$work/changed-file.orig" "$changed_file"
  "${tool}_reset"
  settle_after_reset
  cold=$(timed_build "$tool" "cold-$run")
  noop=$(timed_build "$tool" "noop-$run")
  printf 'changed by run %s of %s\n' "$run" "$tool" >> "$changed_file"
  changed=$(timed_build "$tool" "changed-$run")
  cp "$work/changed-file.orig" "$changed_file"
  say "$tool run $run: cold ${cold}s, no-op ${noop}s, changed ${changed}s"
  times[$tool,cold]+="$cold " times[$tool,noop]+="$noop " times[$tool,changed]+="$changed "
}

## Main ########################################################################

if [ -n "${IMGBUILD:-}" ]; then
  imgbuild=$(realpath "$IMGBUILD")
  [ -x "$imgbuild" ] || { say "IMGBUILD=$IMGBUILD is not an executable file"; exit 2; }
else
  cargo build --release --quiet
  imgbuild=$repo/target/release/imgbuild
fi

measured=()
for tool in $tools; do
  case $tool in
    imgbuild) ;;
    docker)
      if [ ! -x "$docker" ]; then say "docker: skipped, $docker is not installed (Debian package docker.io)"; continue; fi ;;
    buildah)
      if ! command -v buildah > /dev/null; then say "buildah: skipped, not installed (Debian package buildah)"; continue; fi ;;
    *) say "unknown tool \`$tool\` in TOOLS; the tools are imgbuild, docker and buildah"; exit 2 ;;
  esac
  measured+=("$tool")
done

say "generating the workload in $ctx"
generate_workload
build_base
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for tool in "${measured[@]}"; do "${tool}_setup"; done
# The tools take turns, so that a change in the machine's load falls on all
# of them rather than on whichever ran at the time.
for run in $(seq 1 "$runs"); do
  for tool in "${measured[@]}"; do measure "$tool" "$run"; done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

declare -A seconds lowest highest # [TOOL,KIND]: the median, min and max
for tool in "${measured[@]}"; do
  for kind in cold noop changed; do
    # shellcheck disable=SC2086 # the times are words
    seconds[$tool,$kind]=$(printf '%s\n' ${times[$tool,$kind]} | median)
    # shellcheck disable=SC2086
    lowest[$tool,$kind]=$(printf '%s\n' ${times[$tool,$kind]} | minimum)
    # shellcheck disable=SC2086
    highest[$tool,$kind]=$(printf '%s\n' ${times[$tool,$kind]} | maximum)
  done
done
have() { [ -n "${seconds[$1,cold]:-}" ]; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

printf '\n%d cores, load average %s before, %s after; median of %d run(s)\n\n' \
  "$(nproc)" "$load_before" "$load_after" "$runs"
header=$(printf '%-9s' build)
for tool in "${measured[@]}"; do header+=$(printf ' %10s' "$tool"); done
for other in docker buildah; do
  if have imgbuild && have "$other"; then header+=$(printf ' %17s' "imgbuild/$other"); fi
done
printf '%s\n' "$header"
for kind in cold noop changed; do
  label=$kind
  [ "$kind" = noop ] && label=no-op
  line=$(printf '%-9s' "$label")
  for tool in "${measured[@]}"; do line+=$(printf ' %9.2fs' "${seconds[$tool,$kind]}"); done
  for other in docker buildah; do
    if have imgbuild && have "$other"; then
      line+=$(printf ' %17s' "$(ratio "${seconds[imgbuild,$kind]}" "${seconds[$other,$kind]}")")
    fi
  done
  printf '%s\n' "$line"
done

printf '\nspread (min / median / max, and max/min)\n'
for tool in "${measured[@]}"; do
  for kind in cold noop changed; do
    printf '  %-9s %-8s %6.2fs / %6.2fs / %6.2fs   %s\n' "$tool" "$kind" \
      "${lowest[$tool,$kind]}" "${seconds[$tool,$kind]}" "${highest[$tool,$kind]}" \
      "$(ratio "${highest[$tool,$kind]}" "${lowest[$tool,$kind]}")"
  done
done

if have imgbuild && have docker; then
  printf '\ntargets:\n'
  target() { # $1: kind, $2: label, $3: the most imgbuild/docker may be
    local r
    r=$(ratio "${seconds[imgbuild,$1]}" "${seconds[docker,$1]}")
    if awk -v r="$r" -v max="$3" 'BEGIN { exit !(r <= max) }'; then verdict=met; else verdict="NOT met"; fi
    printf '  %-34s imgbuild/docker %s, at most %s: %s\n' "$2" "$r" "$3" "$verdict"
  }
  if [ "${WORKLOAD:-cache}" = cache ]; then
    target cold "cold build" 0.60
    target noop "no-op rebuild" 0.15
  fi
  target changed "one-file-changed rebuild" 0.60
  for kind in cold noop changed; do
    r=$(ratio "${highest[imgbuild,$kind]}" "${lowest[imgbuild,$kind]}")
    if awk -v r="$r" 'BEGIN { exit !(r <= 1.3) }'; then verdict=met; else verdict="NOT met"; fi
    printf '  %-34s max/min %s, at most 1.3: %s\n' "imgbuild's $kind spread" "$r" "$verdict"
  done
fi

if [ "$json" = 1 ]; then
  line="{\"workload\":\"${WORKLOAD:-cache}\",\"runs\":$runs,\"cores\":$(nproc),\"tools\":{"
  sep=""
  for tool in "${measured[@]}"; do
    line+="$sep\"$tool\":{"
    ksep=""
    for kind in cold noop changed; do
      line+="$ksep\"$kind\":{\"min\":${lowest[$tool,$kind]},\"median\":${seconds[$tool,$kind]},\"max\":${highest[$tool,$kind]}}"
      ksep=","
    done
    line+="}"
    sep=","
  done
  line+="},\"ratios\":{"
  sep=""
  for other in docker buildah; do
    if have imgbuild && have "$other"; then
      line+="$sep\"imgbuild/$other\":{"
      ksep=""
      for kind in cold noop changed; do
        line+="$ksep\"$kind\":$(ratio "${seconds[imgbuild,$kind]}" "${seconds[$other,$kind]}")"
        ksep=","
      done
      line+="}"
      sep=","
    fi
  done
  line+="}}"
  printf '%s\n' "$line"
fi
