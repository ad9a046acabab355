#!/usr/bin/env bash
# Checks ./temporal-dev.sh the way a user meets it, end to end, on ports of its own (so it never
# touches a dev stack running on the defaults) and a temporary .dev (FANOUT_DEV_DIR) it removes:
#
#   1. `cluster --help` prints the usage and exits 0.
#   2. `up` starts the stack: the workers are reported ready by their /readyz (HTTP 200, "ready"),
#      and the demo's fanout shows a HIGH and a LOW pass, also in the "recent runs" listing.
#   3. A second start while it runs says it runs in the background; `down` stops everything.
#   4. `up` again (a restart, the logs of the first run still there): each log is fresh (the old
#      one kept as NAME.log.1), and the readiness the script reports is this start's: the worker pid
#      it names is the one in the new log, its ready line comes after the new log's `serving` line,
#      and the demo begins after both workers are ready.
#   5. The foreground `./temporal-dev.sh` gets Ctrl-C (SIGINT to its process group, as a terminal
#      sends it) once it serves. Before: each process of the stack leads a session of its own (the
#      Ctrl-C reaches only the script, which stops them in order), and a second start names the
#      foreground pid. After: it exited 0, its last line is "temporal-dev: stopped everything" (no
#      ERROR), and nothing it started is left.
#
# After every stop: no process of the stack is left (its process groups, anything naming the
# temporary directory, its ports). Exits non-zero when any check fails.
#
# Usage: scripts/check-dev-stack.sh [--keep]   (--keep leaves the temporary directory and its logs)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
KEEP=0
[ "${1:-}" = "--keep" ] && KEEP=1
say() { echo "check-dev-stack: $*"; }
FAILED=0
ok() { echo "check-dev-stack: ok: $*"; }
fail() { echo "check-dev-stack: FAILED: $*" >&2; FAILED=1; }
die() { echo "check-dev-stack: FAILED: $*" >&2; exit 1; }
# EPOCHREALTIME (bash 5): the time in microseconds, without a fork.
now_us() { if [ -n "${EPOCHREALTIME:-}" ]; then echo "${EPOCHREALTIME/[.,]/}"; else echo "$(($(date +%s%N) / 1000))"; fi; }

DEV="$(mktemp -d /tmp/feed-fanout-devstack-XXXXXX)"
export FANOUT_DEV_DIR="$DEV"
unset TEMPORAL_ADDRESS MONGODB_URI FANOUT_NETWORKS_FILE TEMPORAL_UI_URL

# Eight free ports in a row below the ephemeral range: Temporal, its UI, the store, the fake
# network, and the workers' four metrics and health ports.
BASE="$(node -e '
  const net = require("net");
  const free = (port) => new Promise((resolve) => { const s = net.createServer().once("error", () => resolve(false)).listen(port, "127.0.0.1", () => s.close(() => resolve(true))); });
  (async () => {
    for (let attempt = 0; attempt < 200; attempt++) {
      const base = 20000 + 8 * Math.floor(Math.random() * 1500);
      let all = true;
      for (let p = base; p < base + 8 && all; p++) all = await free(p);
      if (all) { console.log(base); return; }
    }
    process.exit(1);
  })();')" || die "found no 8 free ports in a row between 20000 and 32000"
export TEMPORAL_PORT="$BASE" TEMPORAL_UI_PORT=$((BASE + 1)) MONGO_PORT=$((BASE + 2)) FAKE_NETWORK_PORT=$((BASE + 3)) WORKER_PORT=$((BASE + 4))
PORTS="$(seq "$BASE" $((BASE + 7)) | tr '\n' ' ')"
say "ports $BASE-$((BASE + 7)) (Temporal, Web UI, store, fake network, workers' metrics/health), FANOUT_DEV_DIR=$DEV"

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Every process group the stack has started (read from its pid files while it runs).
GROUPS_SEEN=""
note_groups() {
  local f
  for f in "$DEV"/pids/*.pid; do
    [ -f "$f" ] || continue
    [ "$(basename "$f")" = run.pid ] && continue
    GROUPS_SEEN="$GROUPS_SEEN $(cat "$f")"
  done
}

# What is left of the stack: its process groups, processes naming the temporary directory, open ports.
leftovers() {
  local g p
  for g in $GROUPS_SEEN; do
    if kill -0 -- "-$g" 2>/dev/null; then echo "process group $g: $(ps -o pid=,args= -g "$g" 2>/dev/null | head -3 | tr '\n' ';')"; fi
  done
  pgrep -af -- "$DEV" 2>/dev/null | grep -v -e "pgrep" -e "check-dev-stack" | sed 's/^/process naming the dev dir: /' || true
  for p in $PORTS; do port_in_use "$p" && echo "port $p still open"; done
  return 0
}
check_nothing_left() {
  local what="$1" left
  left="$(leftovers)"
  if [ -z "$left" ]; then ok "$what: nothing of the stack is left (checked the $(echo $GROUPS_SEEN | wc -w) process groups it started so far, processes naming $DEV, ports $BASE-$((BASE + 7)))"
  else fail "$what: left behind: $(echo "$left" | tr '\n' ' ')"; fi
}

RUN_PID=""
cleanup() {
  local rc=$?
  set +e
  if [ -n "$RUN_PID" ] && kill -0 "$RUN_PID" 2>/dev/null; then kill -TERM "$RUN_PID" 2>/dev/null; sleep 5; fi
  (cd "$ROOT" && ./temporal-dev.sh down >/dev/null 2>&1)
  # Whatever is still there: ended here, and the check fails.
  local left
  left="$(leftovers)"
  if [ -n "$left" ]; then
    echo "check-dev-stack: FAILED: still running at the end (now killed): $(echo "$left" | tr '\n' ' ')" >&2
    for g in $GROUPS_SEEN; do kill -KILL -- "-$g" 2>/dev/null; done
    rc=1
  fi
  if [ "$KEEP" = 1 ]; then say "left in $DEV"; else rm -rf "$DEV"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# run_stamped OUT ARGS...: runs ./temporal-dev.sh ARGS with each output line prefixed by the time
# (microseconds) it was read; returns its exit status.
run_stamped() {
  local out="$1"; shift
  local line rc
  set +e
  (cd "$ROOT" && ./temporal-dev.sh "$@" 2>&1) | while IFS= read -r line; do printf '%s %s\n' "$(now_us)" "$line"; done >"$out"
  rc="${PIPESTATUS[0]}"
  set -e
  return "$rc"
}
# The microseconds of a log's `serving` line (its ISO time) and the pid it names.
# (The last one: a log that is appended to across runs holds older ones before it.)
serving_us() { node -e 'const t = Date.parse(process.argv[1]); if (Number.isNaN(t)) process.exit(1); console.log(t * 1000);' "$(grep '\[INFO\] serving ' "$1" | tail -n 1 | cut -d' ' -f1)"; }
serving_pid() { sed -n '/\[INFO\] serving /,/}/p' "$1" | grep -oE 'pid: [0-9]+' | tail -n 1 | grep -oE '[0-9]+'; }

# run_up OUT: ./temporal-dev.sh up with its output stamped into OUT; on failure, its tail, and its exit status.
run_up() {
  local rc=0
  run_stamped "$1" up || rc=$?
  note_groups
  [ "$rc" = 0 ] || tail -n 30 "$1" >&2
  return "$rc"
}

# --- 1. cluster --help --------------------------------------------------------------------------------
rc=0; out="$(cd "$ROOT" && ./temporal-dev.sh cluster --help 2>&1)" || rc=$?
if [ "$rc" = 0 ] && grep -q '^Usage: ./temporal-dev.sh' <<<"$out" && grep -q 'cluster \[up|down|status|logs\]' <<<"$out"; then
  ok "./temporal-dev.sh cluster --help exits 0 and prints the usage"
else
  fail "./temporal-dev.sh cluster --help: exit $rc, printed: $(head -c 300 <<<"$out")"
fi

# --- 2. up ------------------------------------------------------------------------------------------
say "./temporal-dev.sh up (the first time here: builds the package if needed; ~20-60 s)"
start=$SECONDS
rc=0; run_up "$DEV/up1.out" || rc=$?
[ "$rc" = 0 ] || die "./temporal-dev.sh up exited $rc (output above; logs in $DEV/logs, kept with --keep)"
ok "./temporal-dev.sh up: exit 0 in $((SECONDS - start)) s"
for w in worker-main worker-high; do
  if grep -qE "temporal-dev: $w \(pid [0-9]+\): ready \(http://127\.0\.0\.1:[0-9]+/readyz answered 200 ready" "$DEV/up1.out"; then ok "up: $w reported ready by its /readyz (200, status ready)"
  else fail "up: no line saying $w's /readyz answered 200 ready"; fi
done
if grep -q 'demo: the run has a HIGH and a LOW pass' "$DEV/up1.out" && grep -qE 'demo: +HIGH pass .*/high .*COMPLETED' "$DEV/up1.out" && grep -qE 'demo: +LOW pass .*/low .*COMPLETED' "$DEV/up1.out"; then
  ok "up: the demo's fanout ran a HIGH and a LOW pass (child workflows, both completed)"
else
  fail "up: the demo does not show a HIGH and a LOW pass; its lines: $(grep -o 'demo: .*pass.*' "$DEV/up1.out" | tr '\n' ' ')"
fi
if grep -qE 'fanout-add-[^ ]+ +fanoutWorkflow' "$DEV/up1.out" && grep -qE 'fanout-add-[^ ]+/high +fanoutPassWorkflow' "$DEV/up1.out"; then
  ok "up: the recent-runs listing shows fanoutWorkflow runs and their fanoutPassWorkflow passes"
else
  fail "up: the recent-runs listing shows no fanoutWorkflow run or no pass"
fi

# --- 3. a second start; down ------------------------------------------------------------------------
rc=0; out="$(cd "$ROOT" && ./temporal-dev.sh up 2>&1)" || rc=$?
if [ "$rc" != 0 ] && grep -q 'already running in the background' <<<"$out" && grep -q 'temporal-dev.sh down' <<<"$out"; then
  ok "a second start while 'up' runs: exit $rc, says: ${out#temporal-dev: ERROR: }"
else
  fail "a second start while 'up' runs: exit $rc, printed: $out"
fi
rc=0; out="$(cd "$ROOT" && ./temporal-dev.sh down 2>&1)" || rc=$?
if [ "$rc" = 0 ] && grep -q 'stopped everything' <<<"$out"; then ok "./temporal-dev.sh down: exit 0, \"$(tail -n 1 <<<"$out")\""; else fail "./temporal-dev.sh down: exit $rc, printed: $out"; fi
check_nothing_left "after down"

# --- 4. up again: this start's readiness ------------------------------------------------------------
say "./temporal-dev.sh up again (a restart: the first run's logs are there)"
start=$SECONDS
rc=0; run_up "$DEV/up2.out" || rc=$?
if [ "$rc" != 0 ]; then
  fail "./temporal-dev.sh up (the second time) exited $rc (output above)"
else
  ok "./temporal-dev.sh up again: exit 0 in $((SECONDS - start)) s"
  demo_us="$(grep -m1 ' demo: ' "$DEV/up2.out" | cut -d' ' -f1)"
  for w in worker-main worker-high; do
    log="$DEV/logs/$w.log"
    if [ -f "$log.1" ] && [ "$(grep -c '\[INFO\] serving ' "$log")" = 1 ]; then ok "restart: $w.log is fresh (one serving line; the first run's log kept as $w.log.1)"
    else fail "restart: $w.log holds $(grep -c '\[INFO\] serving ' "$log" 2>/dev/null || true) serving lines and $w.log.1 $([ -f "$log.1" ] && echo exists || echo is missing): the log is not fresh per start"; fi
    ready_line="$(grep -m1 -E "temporal-dev: ${w}[ :].*(ready|serving)" "$DEV/up2.out" || true)"
    ready_us="${ready_line%% *}"
    said_pid="$(grep -oE "$w \(pid [0-9]+\)" <<<"$ready_line" | grep -oE '[0-9]+' || true)"
    log_pid="$(serving_pid "$log" || true)"
    old_pid="$(serving_pid "$log.1" 2>/dev/null || true)"
    log_us="$(serving_us "$log" 2>/dev/null || true)"
    if [ -z "$ready_line" ]; then fail "restart: the script said nothing about $w being ready"; continue; fi
    if [ -n "$said_pid" ] && [ "$said_pid" = "$log_pid" ] && [ "$said_pid" != "$old_pid" ]; then ok "restart: the ready line names this start's $w (pid $said_pid, the new log's; the first run's was $old_pid)"
    else fail "restart: the ready line ($ready_line) names pid '${said_pid}', the new log's serving line pid '${log_pid}', the first run's '${old_pid}'"; fi
    if [ -n "$log_us" ] && [ "$ready_us" -ge "$log_us" ]; then ok "restart: $w reported ready $(((ready_us - log_us) / 1000)) ms after this start's serving line"
    else fail "restart: $w was reported ready $(((log_us - ready_us) / 1000)) ms BEFORE this start's serving line (at ${log_us:-?} us): a stale line was trusted"; fi
    if [ -n "$demo_us" ] && [ -n "$log_us" ] && [ "$demo_us" -ge "$log_us" ] && [ "$demo_us" -ge "$ready_us" ]; then ok "restart: the demo began $(((demo_us - log_us) / 1000)) ms after $w was serving"
    else fail "restart: the demo began before $w was serving/ready (demo ${demo_us:-?}, serving ${log_us:-?}, ready line ${ready_us:-?} us)"; fi
  done
fi
rc=0; out="$(cd "$ROOT" && ./temporal-dev.sh down 2>&1)" || rc=$?
[ "$rc" = 0 ] || fail "./temporal-dev.sh down (after the restart): exit $rc, printed: $out"
check_nothing_left "after the second down"

# --- 5. the foreground run and Ctrl-C ---------------------------------------------------------------
say "./temporal-dev.sh (foreground) in a process group of its own, as a terminal runs it; Ctrl-C once it serves"
# With job control on, the background job gets its own process group and SIGINT is not ignored
# (a non-interactive shell's background jobs ignore it otherwise): what a terminal's Ctrl-C meets.
set -m
(cd "$ROOT" && exec ./temporal-dev.sh) >"$DEV/run.out" 2>&1 &
RUN_PID=$!
set +m
serving=0
for _ in $(seq 720); do
  if grep -q 'serving until Ctrl-C' "$DEV/run.out"; then serving=1; break; fi
  kill -0 "$RUN_PID" 2>/dev/null || break
  sleep 0.25
done
note_groups
if [ "$serving" != 1 ]; then
  tail -n 30 "$DEV/run.out" >&2
  die "the foreground ./temporal-dev.sh did not reach 'serving until Ctrl-C' within 180 s (output above)"
fi
# Each process of the stack leads a session of its own: the terminal's Ctrl-C (SIGINT to the
# script's process group) reaches only the script, which stops them in order.
run_sid="$(ps -o sid= -p "$RUN_PID" | tr -d ' ')"
shared=""
for f in "$DEV"/pids/*.pid; do
  name="$(basename "$f" .pid)"
  [ "$name" = run ] && continue
  pid="$(cat "$f")"
  sid="$(ps -o sid= -p "$pid" | tr -d ' ')"
  [ "$sid" = "$pid" ] && [ "$sid" != "$run_sid" ] || shared="$shared $name (pid $pid, session ${sid:-?})"
done
if [ -z "$shared" ]; then ok "every process of the stack leads a session of its own, none in the script's (session $run_sid): Ctrl-C reaches only the script"
else fail "processes of the stack in the script's session $run_sid (a Ctrl-C reaches them directly):$shared"; fi
rc=0; out="$(cd "$ROOT" && ./temporal-dev.sh 2>&1)" || rc=$?
if [ "$rc" != 0 ] && grep -q "running in the foreground of another terminal (./temporal-dev.sh, pid $RUN_PID)" <<<"$out" && grep -q 'Ctrl-C there' <<<"$out"; then
  ok "a second start while the foreground one runs: exit $rc, says: ${out#temporal-dev: ERROR: }"
else
  fail "a second start while the foreground one (pid $RUN_PID) runs: exit $rc, printed: $out"
fi
sent_us="$(now_us)"
kill -INT -- "-$RUN_PID"
for _ in $(seq 240); do kill -0 "$RUN_PID" 2>/dev/null || break; sleep 0.25; done
if kill -0 "$RUN_PID" 2>/dev/null; then
  fail "the foreground ./temporal-dev.sh still runs 60 s after Ctrl-C"
else
  rc=0; wait "$RUN_PID" || rc=$?
  took_ms=$((($(now_us) - sent_us) / 1000))
  RUN_PID=""
  last="$(tail -n 1 "$DEV/run.out")"
  if [ "$rc" = 0 ]; then ok "Ctrl-C: the foreground ./temporal-dev.sh exited 0 within $took_ms ms"; else fail "Ctrl-C: the foreground ./temporal-dev.sh exited $rc: a requested stop reported as a failure"; fi
  if [ "$last" = "temporal-dev: stopped everything" ] && ! grep -q 'ERROR' <(sed -n '/serving until Ctrl-C/,$p' "$DEV/run.out"); then ok "Ctrl-C: the last line is \"$last\", no ERROR after Ctrl-C"
  else fail "Ctrl-C: the output after Ctrl-C ends with \"$last\": $(sed -n '/serving until Ctrl-C/,$p' "$DEV/run.out" | tail -n 8 | tr '\n' '|')"; fi
fi
check_nothing_left "after Ctrl-C"

if [ "$FAILED" = 0 ]; then say "all checks passed"; else say "some checks FAILED (see above; --keep keeps $DEV and its logs)"; exit 1; fi
