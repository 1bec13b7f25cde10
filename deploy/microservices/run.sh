#!/usr/bin/env bash
# Starts the microservices set on loopback: 3 ingesters (replication factor 3), 1 distributor
# (push to http://127.0.0.1:3100), 1 query-frontend (query http://127.0.0.1:3110) and 2
# queriers that pull work from it, each a separate `skald` process. Data and logs go under ./skald-cluster. Ctrl-C (or SIGTERM) stops them all.
#   bash deploy/microservices/run.sh            # from the repository root
#   bash deploy/microservices/run.sh gossip     # the same, ingesters found through memberlist
#   SKALD_BIN=/path/to/skald bash deploy/microservices/run.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
configs="$here"
case "${1:-static}" in
  static) ;;
  gossip) configs="$here/gossip" ;;
  *) echo "usage: run.sh [static|gossip]" >&2; exit 2 ;;
esac
bin="${SKALD_BIN:-$root/target/release/skald}"
if [ ! -x "$bin" ]; then
  (cd "$root" && cargo build --release --bin skald -p skald-server)
fi
mkdir -p skald-cluster/logs
pids=()
stop() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait || true
}
trap stop EXIT INT TERM
start() {
  "$bin" -config.file="$configs/$1.yaml" >"skald-cluster/logs/$1.log" 2>&1 &
  pids+=($!)
}
wait_ready() {
  for _ in $(seq 1 300); do
    if curl -fsS "http://127.0.0.1:$1/ready" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "service on port $1 did not become ready; see skald-cluster/logs" >&2
  exit 1
}
for i in 1 2 3; do start "ingester-$i"; done
for i in 1 2 3; do wait_ready "310$i"; done
start distributor
start query-frontend
start querier-1
start querier-2
wait_ready 3100
wait_ready 3110
wait_ready 3111
wait_ready 3112
if [ "$configs" != "$here" ]; then
  # with gossip, pushes need the ingesters to be seen ACTIVE first
  for _ in $(seq 1 100); do
    n=$( (curl -fsS -H 'Accept: application/json' http://127.0.0.1:3100/ring || true) | grep -o '"ACTIVE"' | wc -l || true)
    [ "$n" -ge 3 ] && break
    sleep 0.1
  done
fi
echo "ready: push to http://127.0.0.1:3100/loki/api/v1/push, query http://127.0.0.1:3110 (logs in skald-cluster/logs)"
wait -n "${pids[@]}"
