#!/usr/bin/env bash
# Runs Skald's cargo-fuzz targets, each for SECONDS (default 600), one after another.
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]
# Targets: logql:parse logql:pipeline distributor:decode_push distributor:decode_otlp_es
# chunk:parse_chunk ingester:wal_records (default: all).
# Needs a nightly toolchain and cargo-fuzz; installs them when missing. Corpora live in
# target/fuzz-corpus/<target> (seeded from the crate's fuzz/seeds/<target> when present);
# crashes land in the crate's fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
secs=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(logql:parse logql:pipeline distributor:decode_push distributor:decode_otlp_es chunk:parse_chunk ingester:wal_records needle:decode_table)

rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal
cargo fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked

declare -A dirs=([logql]=crates/core/logql [distributor]=crates/write/distributor [chunk]=crates/store/chunk [ingester]=crates/write/ingester [needle]=crates/core/needle)
export CARGO_TARGET_DIR="$root/target/fuzz"
for t in "${targets[@]}"; do
  crate=${t%%:*}
  name=${t#*:}
  dir=${dirs[$crate]:?unknown crate in $t}
  corpus="$root/target/fuzz-corpus/$name"
  mkdir -p "$corpus"
  seeds=()
  [ -d "$dir/fuzz/seeds/$name" ] && seeds=("$root/$dir/fuzz/seeds/$name")
  echo "== fuzz $t for ${secs}s"
  (cd "$dir" && cargo +nightly fuzz run "$name" "$corpus" "${seeds[@]}" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -max_len=4096 -print_final_stats=1)
done
