#!/usr/bin/env bash
# Runs every check and every test of the project, the way CI does. Needs only the Rust
# toolchain (cargo-nextest is used when present, `cargo test` otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

echo "== build the skald binary (integration tests start it as a real process)"
cargo build -p skald-server --bin skald

echo "== benches compile"
cargo build -p skald-benches

echo "== fuzz targets compile (stable check; scripts/fuzz.sh runs them with cargo-fuzz)"
for d in crates/read/logql crates/write/distributor crates/write/ingester crates/store/chunk; do
  cargo check --quiet --manifest-path "$d/fuzz/Cargo.toml" --target-dir target --bins
done

echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo test --workspace --doc
  cargo nextest run --workspace --profile ci --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
