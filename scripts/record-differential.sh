#!/usr/bin/env bash
# Records the differential corpus (tests/data/differential) from a real Grafana Loki.
#
#   scripts/record-differential.sh [LOKI_BINARY]
#
# LOKI_BINARY defaults to .test-servers/grafana-bin/loki. The script writes the push bodies and
# the generated requests, starts Loki with tests/data/differential/loki-config.yaml in a fresh
# directory (HTTP on 127.0.0.1:3112), waits for the next quarter hour plus a few seconds (Loki
# rotates its TSDB index every 15 minutes of wall-clock time and index/stats and index/volume
# double after a rotation; see tests/data/reference/README.md), pushes, flushes, waits 30 s,
# runs every request and stores the answers, then runs them all again and reports answers that
# differ from the recording (Loki against itself). Python 3, standard library only.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
loki="${1:-$root/.test-servers/grafana-bin/loki}"
out="$root/tests/data/differential"
tool="$root/tests/tools/differential.py"
port=3112
[ -x "$loki" ] || { echo "no Loki binary at $loki (bash shared/tools/grafana/install.sh DIR)" >&2; exit 1; }
mkdir -p "$out"
rm -rf "$out/push"
python3 "$tool" bodies --out "$out/push"
python3 "$tool" requests --out "$out/requests.json" --seed "${DIFF_SEED:-20}" --count "${DIFF_COUNT:-5200}"
"$loki" -version | head -1 > "$out/loki-version.txt"
run="$(mktemp -d /tmp/loki-differential.XXXXXX)"
sed "s/http_listen_port: 3110/http_listen_port: $port/; s/grpc_listen_port: 9096/grpc_listen_port: 9196/" \
    "$out/loki-config.yaml" > "$run/config.yaml"
if [ "${DIFF_NO_QUARTER_WAIT:-}" = "" ]; then
  # start 5 s after the next quarter hour so that recording ends before the next rotation
  now=$(date +%s); next=$(( (now / 900 + 1) * 900 + 5 ))
  echo "waiting $((next - now)) s for the quarter hour"; sleep $((next - now))
fi
(cd "$run" && exec "$loki" -config.file=config.yaml > "$run/loki.log" 2>&1) &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break; sleep 1
done
curl -sf "http://127.0.0.1:$port/ready"
started=$(date +%s)
python3 "$tool" record --url "http://127.0.0.1:$port" --dir "$out" --workers "${DIFF_WORKERS:-4}"
python3 "$tool" check --url "http://127.0.0.1:$port" --dir "$out" --workers "${DIFF_WORKERS:-4}" || true
echo "recorded in $(( $(date +%s) - started )) s; started $(date -u -d @$started +%H:%M:%S)," \
     "ended $(date -u +%H:%M:%S) (must be in the same quarter hour)"
kill $pid; wait $pid 2>/dev/null || true
echo "Loki log: $run/loki.log"
