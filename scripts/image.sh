#!/usr/bin/env bash
# Builds Skald's container image (Dockerfile) with Debian's buildah (vfs storage, no daemon):
# a static `skald` for x86_64-unknown-linux-musl in a FROM-scratch image, user 65532.
#   bash scripts/image.sh                 # builds target/image/skald-oci (an OCI layout)
#   SKALD_IMAGE=skald:0.1.0 bash scripts/image.sh
#   bash scripts/image.sh --check         # also unpacks it with umoci, starts the binary in the
#                                         # unpacked root, pushes one line and queries it back
#   bash scripts/image.sh --check --binary-fallback
#       # the test command's form (scripts/test-image.sh): where buildah or umoci cannot work
#       # (missing, or refused by a sandbox) it says so and checks the static binary itself
# Needs: rustup target add x86_64-unknown-linux-musl, and apt-get install musl-tools make buildah
# umoci. SKALD_IMAGE_PROFILE picks the cargo profile: `release` (the default, for images you
# ship) or `image-check` (Cargo.toml: unoptimised, no debug info; what the test command builds).
# The musl release build compiles skald and its ~290 crates for a second target: measured at
# 8.6 CPU-minutes and 1.1 GB under target/x86_64-unknown-linux-musl/ (23 minutes of wall time on
# 2 cores shared with three other builds); `image-check` takes about a third of that CPU
# (docs/operations.md, "The container image"); the image build itself takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
image="${SKALD_IMAGE:-skald:0.1.0}"
target=x86_64-unknown-linux-musl
profile="${SKALD_IMAGE_PROFILE:-release}"
check=0 fallback=0
for arg in "$@"; do
  case "$arg" in
    --check) check=1 ;;
    --binary-fallback) fallback=1 ;;
    *) echo "usage: scripts/image.sh [--check [--binary-fallback]]" >&2; exit 2 ;;
  esac
done

rustup target list --installed | grep -qx "$target" || rustup target add "$target"
command -v musl-gcc >/dev/null || { echo "musl-gcc missing: apt-get install musl-tools" >&2; exit 1; }

flag=--release; [ "$profile" = release ] || flag="--profile=$profile"
CC_x86_64_unknown_linux_musl=musl-gcc \
  cargo build "$flag" --locked --target "$target" -p skald-server --bin skald
# cargo's directory for a profile is its name, but `dev`'s is `debug`
dir="target/$target/$profile"; [ "$profile" = dev ] && dir="target/$target/debug"
bin="$dir/skald"
file "$bin" | grep -q "statically linked\|static-pie linked" || { echo "$bin is not static: $(file "$bin")" >&2; exit 1; }

ctx=target/image/context
rm -rf "$ctx" && mkdir -p "$ctx/rootfs/etc/skald" "$ctx/rootfs/var/skald"
cp Dockerfile "$ctx/"
# without its debug info (the release profile keeps line tables: 181 MB against about 40)
if command -v strip >/dev/null; then strip -o "$ctx/rootfs/skald" "$bin"; else cp "$bin" "$ctx/rootfs/skald"; fi
cp deploy/docker/skald.yaml "$ctx/rootfs/etc/skald/skald.yaml"
echo "== static binary ($profile): $bin, $(du -h "$ctx/rootfs/skald" | cut -f1) stripped"
# the data volume belongs to the image's user (scratch has no shell to chown it)
tar -C "$ctx/rootfs" --owner=0 --group=0 -cf "$ctx/rootfs.tar" skald etc
tar -C "$ctx/rootfs" --owner=65532 --group=65532 -rf "$ctx/rootfs.tar" var

# vfs storage and chroot isolation: no daemon, no overlay mounts (the Dockerfile has no RUN step)
store=target/image/storage
export STORAGE_DRIVER=vfs BUILDAH_ISOLATION=chroot
b() { buildah --root "$PWD/$store/root" --runroot "$PWD/$store/run" --storage-driver vfs "$@"; }
oci=target/image/skald-oci
why=""
rm -rf "$oci"
if ! command -v buildah >/dev/null; then
  why="buildah missing (apt-get install buildah)"
elif ! b build -f "$ctx/Dockerfile" -t "$image" "$ctx"; then
  why="buildah build failed (its error is above)"
elif ! b push "$image" "oci:$oci:${image##*:}"; then
  why="buildah push to an OCI layout failed (its error is above)"
else
  echo "== image $image: $oci ($(du -sh "$oci" | cut -f1))"
fi
if [ -n "$why" ] && [ "$fallback" = 0 ]; then echo "$why" >&2; exit 1; fi
[ "$check" = 1 ] || exit 0

# The check: start the binary, wait for /ready, push one line (JSON) and query it back.
root="" runs=""
if [ -z "$why" ]; then
  rm -rf target/image/bundle
  rootless=(); [ "$(id -u)" = 0 ] || rootless=(--rootless)
  if ! command -v umoci >/dev/null; then
    why="umoci missing (apt-get install umoci)"
  elif ! umoci unpack "${rootless[@]}" --image "$oci:${image##*:}" target/image/bundle; then
    why="umoci unpack failed (its error is above)"
  else
    root=target/image/bundle/rootfs
    ls -ln "$root" "$root/var"
    runs="the image's binary (unpacked with umoci)"
  fi
  if [ -n "$why" ] && [ "$fallback" = 0 ]; then echo "$why" >&2; exit 1; fi
fi
if [ -n "$why" ]; then
  echo "== IMAGE NOT BUILT OR NOT UNPACKED: $why; checking the static binary itself instead"
  root="$ctx/rootfs"
  runs="the static binary (not in an image)"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
http=$(free_port); grpc=$(free_port)
log=$(mktemp) data=$(mktemp -d)
ports=(-server.http-listen-port="$http" -server.grpc-listen-port="$grpc")
if [ "$(id -u)" = 0 ] && [ -z "$why" ]; then
  # as in a container: the image's root, user and config (chroot needs root; the container's
  # own network namespace is not needed for this check)
  chroot --userspec=65532:65532 "$root" /skald -config.file=/etc/skald/skald.yaml "${ports[@]}" >"$log" 2>&1 &
  runs="$runs, as 65532 in the unpacked root on the image's config"
else
  # the embedded default config (data under ./skald-data) in a scratch directory
  exe="$PWD/$root/skald"
  (cd "$data" && exec "$exe" "${ports[@]}") >"$log" 2>&1 &
  runs="$runs, as $(id -un) on the embedded default config"
fi
pid=$!
stop() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
fail() { stop; cat "$log"; echo "$runs: $1" >&2; rm -rf "$log" "$data"; exit 1; }
api="http://127.0.0.1:$http"
ready=0
for _ in $(seq 1 300); do
  curl -fsS "$api/ready" >/dev/null 2>&1 && { ready=1; break; }
  kill -0 "$pid" 2>/dev/null || fail "exited before it was ready"
  sleep 0.2
done
[ "$ready" = 1 ] || fail "did not answer /ready within 60 s"
ts=$(($(date +%s) * 1000000000))
line="image check $ts"
curl -fsS -H 'Content-Type: application/json' -X POST "$api/loki/api/v1/push" \
  --data '{"streams":[{"stream":{"job":"image-check"},"values":[["'"$ts"'","'"$line"'"]]}]}' \
  || fail "refused the push"
found=0
for _ in $(seq 1 50); do
  out=$(curl -fsS -G "$api/loki/api/v1/query_range" --data-urlencode 'query={job="image-check"}' \
    --data-urlencode "start=$((ts - 60000000000))" --data-urlencode "end=$((ts + 60000000000))") \
    || fail "failed the query"
  case "$out" in *"\"$line\""*) found=1; break ;; esac
  sleep 0.2
done
[ "$found" = 1 ] || fail "did not return the pushed line; its last answer: $out"
stop
[ -n "$why" ] || ls -ln "$root/var/skald"
echo "== $runs: /ready on :$http, pushed one line, query_range returned it"
rm -rf "$log" "$data" target/image/bundle
