#!/usr/bin/env bash
# Checks the package the way an app meets it: packs it (npm pack, which builds it), installs the
# tarball into a scratch app outside the repo, starts a Temporal dev server and the store, runs the
# package's own `feed-fanout worker` command from the app, then the README's app snippets
# (examples/app.mjs in ESM, twice: a rerun must not post again; examples/app.cjs in CommonJS)
# against them, and type-checks examples/app.ts with examples/tsconfig.json as shipped (strict) and
# once more with skipLibCheck off for the package's own .d.ts files. Also checks the README shows
# those files as they are, and that nothing it started is left running when it ends.
#
# Usage: scripts/check-package.sh [--keep]   (--keep leaves the scratch app and logs behind)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
KEEP=0
[ "${1:-}" = "--keep" ] && KEEP=1
say() { echo "check-package: $*"; }
die() { echo "check-package: FAILED: $*" >&2; exit 1; }

WORK="$(mktemp -d /tmp/feed-fanout-package-XXXXXX)"
# Each background process is started by `bg NAME COMMAND...` as the leader of a process group of its
# own (setsid), so cleanup can stop all of it: `npx feed-fanout worker` is npx plus the node
# process it starts, which outlives npx when only npx is signalled.
GROUPS_STARTED=()
if command -v setsid >/dev/null; then NEW_SESSION=(setsid); else NEW_SESSION=(python3 -c 'import os, sys; os.setsid(); os.execvp(sys.argv[1], sys.argv[1:])'); fi
# (BG_DIR: the directory to start it in.) A background child of a non-interactive shell leads no
# group, so setsid execs in place: $! is the group's leader.
bg() {
  local name="$1"; shift
  (cd "${BG_DIR:-.}" && exec "${NEW_SESSION[@]}" "$@") >"$WORK/$name.log" 2>&1 </dev/null &
  GROUPS_STARTED+=($!)
}
group_alive() { kill -0 -- "-$1" 2>/dev/null; }
# What is left of this check: its process groups, processes naming the scratch directory or
# working in it (Linux: /proc/PID/cwd).
leftovers() {
  local g pid cwd
  for g in "${GROUPS_STARTED[@]:-}"; do
    [ -n "$g" ] && group_alive "$g" && echo "process group $g: $(ps -o pid=,args= -g "$g" 2>/dev/null | head -3 | tr -s ' ' | tr '\n' ';')"
  done
  pgrep -af -- "$WORK" 2>/dev/null | grep -v -e pgrep -e check-package | sed 's/^/process naming the scratch dir: /' || true
  if [ -d /proc/self ]; then
    for cwd in /proc/[0-9]*/cwd; do
      case "$(readlink "$cwd" 2>/dev/null)" in "$WORK"|"$WORK"/*)
        pid="${cwd#/proc/}"; pid="${pid%/cwd}"
        [ "$pid" = "$$" ] || [ "$pid" = "$BASHPID" ] || echo "process working in the scratch dir: $(ps -o pid=,args= -p "$pid" 2>/dev/null)" ;;
      esac
    done
  fi
  return 0
}
# Stops every group (TERM, up to 10 s, then KILL), then fails the check if anything is left.
cleanup() {
  local rc=$? g alive left
  set +e
  cd /
  for g in "${GROUPS_STARTED[@]:-}"; do [ -n "$g" ] && kill -TERM -- "-$g" 2>/dev/null; done
  for _ in $(seq 40); do
    alive=0
    for g in "${GROUPS_STARTED[@]:-}"; do [ -n "$g" ] && group_alive "$g" && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.25
  done
  for g in "${GROUPS_STARTED[@]:-}"; do
    if [ -n "$g" ] && group_alive "$g"; then say "process group $g did not stop within 10 s of SIGTERM: killed"; kill -KILL -- "-$g" 2>/dev/null; fi
  done
  sleep 0.5
  left="$(leftovers)"
  if [ -n "$left" ]; then
    echo "check-package: FAILED: left running after the check: $(echo "$left" | tr '\n' ' ')" >&2
    rc=1
  elif [ "${#GROUPS_STARTED[@]}" -gt 0 ]; then
    say "stopped its ${#GROUPS_STARTED[@]} process groups; nothing of it is left running (no process of them, none naming or working in $WORK)"
  fi
  if [ "$KEEP" = 1 ]; then say "left in $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- The README shows the examples as they are ------------------------------------------------
for f in app.mjs app.cjs app.ts; do
  node -e '
    const fs = require("fs");
    const [readme, file, name] = [fs.readFileSync(process.argv[1], "utf8"), fs.readFileSync(process.argv[2], "utf8"), process.argv[3]];
    if (!readme.includes(file.trimEnd())) { console.error(`README.md does not show examples/${name} as it is; paste it again`); process.exit(1); }
  ' "$ROOT/README.md" "$ROOT/examples/$f" "$f" || die "README and examples/$f differ"
done

# --- Pack ---------------------------------------------------------------------------------------
say "packing (npm pack runs the build)"
(cd "$ROOT" && npm pack --pack-destination "$WORK" --loglevel=error >"$WORK/pack.log" 2>&1) || { cat "$WORK/pack.log" >&2; die "npm pack"; }
TARBALL="$(ls "$WORK"/feed-fanout-*.tgz)"
say "tarball: $(basename "$TARBALL"), $(du -k "$TARBALL" | cut -f1) kB packed, $(tar -tzf "$TARBALL" | wc -l) files"
if tar -tzf "$TARBALL" | grep -qE '^package/(test|bench|src|dev|dist/dev)/'; then die "the tarball holds sources, tests, the bench or the dev stack"; fi

# --- A scratch app ------------------------------------------------------------------------------
APP="$WORK/app"
mkdir -p "$APP"
cp "$ROOT/examples/app.mjs" "$ROOT/examples/app.cjs" "$ROOT/examples/app.ts" "$ROOT/examples/tsconfig.json" "$APP/"
printf '{ "name": "scratch-app", "version": "1.0.0", "private": true }\n' >"$APP/package.json"
say "installing the tarball into a scratch app ($APP)"
TS_VERSION="$(node -p 'require(process.argv[1]).version' "$ROOT/node_modules/typescript/package.json")"
(cd "$APP" && npm install --no-audit --no-fund --loglevel=error --prefer-offline "$TARBALL" "typescript@$TS_VERSION" "@types/node@20" >"$WORK/install.log" 2>&1) \
  || { tail -n 30 "$WORK/install.log" >&2; die "npm install of the tarball"; }

# --- Servers ------------------------------------------------------------------------------------
eval "$(bash "$ROOT/scripts/install-tools.sh" --print-env 2>/dev/null)"
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
wait_port() { for _ in $(seq 240); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.25; done; die "nothing listens on port $1 ($2); see $WORK/$2.log"; }
TPORT="$(free_port)"; MPORT="$(free_port)"
bg temporal "$TEMPORAL_CLI_PATH" server start-dev --headless --ip 127.0.0.1 --port "$TPORT" --namespace default --log-level warn \
  --metrics-port "$(free_port)" --search-attribute FanoutActor=Keyword --search-attribute FanoutOperation=Keyword \
  --search-attribute FanoutStalled=Bool
mkdir -p "$WORK/store"
if [ "${FANOUT_DEFAULT_STORE:-}" = ferretdb ]; then
  bg store "$FERRETDB_PATH" --handler=sqlite --sqlite-url="file:$WORK/store/" --state-dir="$WORK/store" --listen-addr="127.0.0.1:$MPORT" \
    --debug-addr=- --telemetry=disable --log-level=warn
else
  bg store "$MONGOD_PATH" --dbpath="$WORK/store" --port="$MPORT" --bind_ip=127.0.0.1 --quiet
fi
wait_port "$TPORT" temporal
wait_port "$MPORT" store
export TEMPORAL_ADDRESS="127.0.0.1:$TPORT" MONGODB_URI="mongodb://127.0.0.1:$MPORT/" FANOUT_DB=scratch_app
sleep 1 # the dev server opens its port before its namespace is ready

# --- The package's worker command, from the app ---------------------------------------------------
say "starting the worker command from the app: npx feed-fanout worker"
START_MS="$(date +%s%3N)"
HEALTH_PORT="$(free_port)"
BG_DIR="$APP" bg worker npx --no-install feed-fanout worker --no-schedules --health-port "$HEALTH_PORT"
for _ in $(seq 600); do grep -q ': serving\|serving ' "$WORK/worker.log" && break; sleep 0.05; done
grep -q 'serving ' "$WORK/worker.log" || { cat "$WORK/worker.log" >&2; die "the worker command did not start"; }
say "worker serving $(( $(date +%s%3N) - START_MS )) ms after launch ($(grep -o 'workflow code: [^{]*' "$WORK/worker.log" | head -1 | sed 's/ *$//'))"

# --- The README's snippets ----------------------------------------------------------------------
say "ESM:  node app.mjs"
(cd "$APP" && node app.mjs) || die "examples/app.mjs (ESM)"
# An app that retries (or is run again) posts with its own id: the same post, not a second one.
say "ESM:  node app.mjs again (a rerun: its post has an id, so bob's timeline must still hold it once)"
(cd "$APP" && node app.mjs) || die "examples/app.mjs (ESM), run a second time"
ENTRIES="$(cd "$APP" && node -e '
  const { MongoClient } = require("mongodb");
  (async () => {
    const mongo = await MongoClient.connect(process.env.MONGODB_URI);
    try {
      const db = mongo.db("scratch_app");
      const ids = await db.collection("activities").distinct("_id", { actor: "alice", verb: "pin", object: "photo-1" });
      console.log(await db.collection("feed_timeline").countDocuments({ owner: "bob", activityId: { $in: ids } }));
    } finally {
      await mongo.close();
    }
  })().catch((err) => { console.error(err.message); process.exit(1); });')" || die "counting bob's timeline entries in MongoDB (database scratch_app) failed"
say "ESM:  entries for alice pin photo-1 in bob's timeline after two runs: $ENTRIES (expected 1; feed_timeline {owner: 'bob'} in scratch_app)"
[ "$ENTRIES" = 1 ] || die "bob's timeline holds $ENTRIES entries for alice pin photo-1 after app.mjs ran twice, not 1: a rerun posted again. examples/app.mjs must pass the post's own id to addActivity (the idempotency key)"
say "CJS:  node app.cjs"
(cd "$APP" && node app.cjs) || die "examples/app.cjs (CommonJS)"
say "TS:   tsc --noEmit -p tsconfig.json (examples/tsconfig.json as shipped: strict, exactOptionalPropertyTypes, nodenext)"
(cd "$APP" && npx --no-install tsc --noEmit -p tsconfig.json) || die "examples/app.ts does not type-check against the package with examples/tsconfig.json as shipped"
# Once more checking every declaration file too: the package's own must have no error. (The
# Temporal SDK's have 4 of their own, counted: see the comment in examples/tsconfig.json.)
(cd "$APP" && npx --no-install tsc --noEmit -p tsconfig.json --skipLibCheck false >"$WORK/tsc-libs.log" 2>&1) || true
if grep -E '^(app\.ts|node_modules/feed-fanout/)' "$WORK/tsc-libs.log"; then die "the package's declarations do not type-check under strict settings"; fi
say "TS:   the package's .d.ts files type-check with skipLibCheck off too ($(grep -cE '^node_modules/' "$WORK/tsc-libs.log" || true) errors in other packages' declarations: $(grep -oE '^node_modules/[^/]+(/[^/]+)?' "$WORK/tsc-libs.log" | sort -u | tr '\n' ' '))"
say "the CLI from the app: npx feed-fanout list --state completed"
(cd "$APP" && npx --no-install feed-fanout list --state completed) || die "feed-fanout list"
say "ok; stopping what it started (then checking nothing of it is left)"
