#!/usr/bin/env bash
# stop.sh - stop the test servers that start.sh started for one run dir, and only those: the pids
# it saved, each checked to still run a command line naming the run dir. SIGTERM, then SIGKILL
# after 10 s (`weed mini` sometimes hangs in its shutdown). Removes the servers' data and env.sh;
# keeps the logs unless --clean is given, which removes the whole run dir.
#
# Usage: stop.sh [--run-dir DIR] [--clean]
#   --run-dir DIR  as given to start.sh (default: $SKALD_TEST_SERVERS_RUN_DIR, else
#                  <install dir>/run)
set -uo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SCRIPT_DIR/../.." && pwd)"
HOME_DIR="${SKALD_TEST_SERVERS_HOME:-$REPO_DIR/.test-servers}"
RUN="${SKALD_TEST_SERVERS_RUN_DIR:-$HOME_DIR/run}"
STOP_TIMEOUT=10
CLEAN=0

while [ $# -gt 0 ]; do
  case "$1" in
    --run-dir) RUN="$2"; shift 2 ;;
    --clean) CLEAN=1; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "stop.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done
[ -d "$RUN" ] || { echo "[test-servers] nothing to stop: no run dir $RUN"; exit 0; }
RUN="$(cd "$RUN" && pwd)"

# running PID: the process exists and is not a zombie (a zombie's cmdline is empty; kill -0 would
# still succeed on it until its parent reaps it).
running() { [ -n "$(tr -d '\0' 2>/dev/null < "/proc/$1/cmdline")" ]; }

stop_one() { # $1: name, $2: pid file
  local pid i
  [ -s "$2" ] || return 0
  pid="$(cat "$2")"
  # Ours only if its command line still names this run dir (start.sh puts "$RUN/" in each).
  if ! tr '\0' ' ' 2>/dev/null < "/proc/$pid/cmdline" | grep -qF -- "$RUN/"; then
    echo "[test-servers] $1: pid $pid already gone"
    rm -f "$2"; return 0
  fi
  kill -TERM "$pid" 2>/dev/null
  for (( i = 0; i < STOP_TIMEOUT * 10; i++ )); do
    running "$pid" || break
    sleep 0.1
  done
  if running "$pid"; then
    echo "[test-servers] $1: pid $pid still running after ${STOP_TIMEOUT}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null
    for (( i = 0; i < 50; i++ )); do running "$pid" || break; sleep 0.1; done
  fi
  rm -f "$2"
  echo "[test-servers] $1: stopped pid $pid"
}

# The watchdog first (so it does not run stop.sh too), then the servers in parallel.
stop_one "watchdog" "$RUN/watchdog.pid"
stop_one "DynamoDB Local" "$RUN/dynamodb.pid" &
stop_one "SeaweedFS" "$RUN/seaweedfs.pid" &
stop_one "memcached" "$RUN/memcached.pid" &
stop_one "STS (moto)" "$RUN/sts.pid" &
wait

rm -rf "$RUN/data" "$RUN/env.sh" "$RUN/env.sh.pending" "$RUN"/seaweedfs-*.sock "$RUN/memcached.pidfile"
SOCKETS="$(cat "$RUN/sockets" 2>/dev/null)"   # start.sh's socket dir, when the run dir path was too long
case "$SOCKETS" in /tmp/skald-test-servers.*) rm -rf "$SOCKETS" ;; esac
rm -f "$RUN/sockets"
if [ "$CLEAN" = 1 ]; then rm -rf "$RUN"; fi
