#!/usr/bin/env bash
# The test command's image step (scripts/test.sh runs it last; it also runs alone): builds the
# container image (Dockerfile) from a static musl `skald` compiled with the fast `image-check`
# profile, unpacks it with umoci, starts the binary in the unpacked root, pushes one line and
# queries it back (scripts/image.sh --check). Installs musl-tools, buildah, umoci and make with apt
# when missing (as root, or with sudo -n) and the x86_64-unknown-linux-musl target with rustup.
# Where buildah or umoci cannot work (missing, or refused by a sandbox) it says so and checks
# the static binary itself instead, which does not fail the suite; a static binary that does
# not build, start, take the push or answer the query does. Cost: docs/operations.md,
# "The container image".
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

missing=()
command -v musl-gcc >/dev/null || missing+=(musl-tools)
command -v buildah >/dev/null || missing+=(buildah)
command -v umoci >/dev/null || missing+=(umoci)
command -v make >/dev/null || missing+=(make)   # jemalloc's build (the musl binary's allocator)
if [ "${#missing[@]}" -gt 0 ] && command -v apt-get >/dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo -n"
  if [ -z "$sudo" ] || command -v sudo >/dev/null; then
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
      --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
      || echo "== could not install ${missing[*]} with apt"
  fi
fi

# The step writes about 1.2 GB (the musl build and the image). On a disk with less than 2 GB
# left once the tests are done, the test build (target/debug, about 3 GB, which nothing after
# the tests needs) goes first, so that a small CI disk still gets the image built.
free_kb=$(df -Pk . | awk 'NR==2 {print $4}')
if [ "${free_kb:-0}" -lt $((2 * 1024 * 1024)) ] && [ -d target/debug ]; then
  echo "== only $((free_kb / 1024)) MB free: removing target/debug (the tests' build) before the image's build"
  rm -rf target/debug
fi

# The build's ~300 "Compiling" lines go to a log, so the test summary above stays readable;
# the script's own lines (== ...) are shown, and the whole log when the step fails.
mkdir -p target/image
log=target/image/test-image.log
rc=0
SKALD_IMAGE_PROFILE="${SKALD_IMAGE_PROFILE:-image-check}" \
  bash scripts/image.sh --check --binary-fallback >"$log" 2>&1 || rc=$?
if [ "$rc" = 0 ] && grep -q '^== IMAGE NOT BUILT' "$log"; then
  grep -v '^ *Compiling ' "$log"   # why buildah or umoci failed, then the binary's check
  echo "== image step: the image could not be built here; the static binary passed, in $((SECONDS - started)) s (log: $log)"
elif [ "$rc" = 0 ]; then
  grep '^== ' "$log"
  echo "== image step: passed in $((SECONDS - started)) s (log: $log)"
else
  cat "$log"
  echo "== image step: FAILED after $((SECONDS - started)) s (log: $log)"
fi
exit "$rc"
