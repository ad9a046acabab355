#!/usr/bin/env bash
# Checks the package the way an app meets it: packs it (npm pack, which builds it), installs the
# tarball into a scratch app outside the repo, starts a Temporal dev server and the store, runs the
# package's own `feed-fanout worker` command from the app, then the README's app snippets
# (examples/app.mjs in ESM, examples/app.cjs in CommonJS) against them, and type-checks
# examples/app.ts with strict settings. Also checks the README shows those files as they are.
#
# Usage: scripts/check-package.sh [--keep]   (--keep leaves the scratch app and logs behind)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
KEEP=0
[ "${1:-}" = "--keep" ] && KEEP=1
say() { echo "check-package: $*"; }
die() { echo "check-package: FAILED: $*" >&2; exit 1; }

WORK="$(mktemp -d /tmp/feed-fanout-package-XXXXXX)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$KEEP" = 1 ]; then say "left in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

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
if tar -tzf "$TARBALL" | grep -qE '^package/(test|bench|src|dist/src/dev)/'; then die "the tarball holds sources, tests, the bench or the dev stack"; fi

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
"$TEMPORAL_CLI_PATH" server start-dev --headless --ip 127.0.0.1 --port "$TPORT" --namespace default --log-level warn \
  --metrics-port "$(free_port)" --search-attribute FanoutActor=Keyword --search-attribute FanoutOperation=Keyword \
  --search-attribute FanoutStalled=Bool >"$WORK/temporal.log" 2>&1 &
PIDS+=($!)
mkdir -p "$WORK/store"
if [ "${FANOUT_DEFAULT_STORE:-}" = ferretdb ]; then
  "$FERRETDB_PATH" --handler=sqlite --sqlite-url="file:$WORK/store/" --state-dir="$WORK/store" --listen-addr="127.0.0.1:$MPORT" \
    --debug-addr=- --telemetry=disable --log-level=warn >"$WORK/store.log" 2>&1 &
else
  "$MONGOD_PATH" --dbpath="$WORK/store" --port="$MPORT" --bind_ip=127.0.0.1 --quiet >"$WORK/store.log" 2>&1 &
fi
PIDS+=($!)
wait_port "$TPORT" temporal
wait_port "$MPORT" store
export TEMPORAL_ADDRESS="127.0.0.1:$TPORT" MONGODB_URI="mongodb://127.0.0.1:$MPORT/" FANOUT_DB=scratch_app
sleep 1 # the dev server opens its port before its namespace is ready

# --- The package's worker command, from the app ---------------------------------------------------
say "starting the worker command from the app: npx feed-fanout worker"
START_MS="$(date +%s%3N)"
(cd "$APP" && exec npx --no-install feed-fanout worker --no-schedules --health-port "$(free_port)") >"$WORK/worker.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 600); do grep -q ': serving\|serving ' "$WORK/worker.log" && break; sleep 0.05; done
grep -q 'serving ' "$WORK/worker.log" || { cat "$WORK/worker.log" >&2; die "the worker command did not start"; }
say "worker serving $(( $(date +%s%3N) - START_MS )) ms after launch ($(grep -o 'workflow code: [^{]*' "$WORK/worker.log" | head -1 | sed 's/ *$//'))"

# --- The README's snippets ----------------------------------------------------------------------
say "ESM:  node app.mjs"
(cd "$APP" && node app.mjs) || die "examples/app.mjs (ESM)"
say "CJS:  node app.cjs"
(cd "$APP" && node app.cjs) || die "examples/app.cjs (CommonJS)"
say "TS:   tsc --noEmit (strict, exactOptionalPropertyTypes, nodenext, skipLibCheck)"
(cd "$APP" && npx --no-install tsc --noEmit -p tsconfig.json --skipLibCheck) || die "examples/app.ts does not type-check against the package"
# Once more checking every declaration file too: the package's own must have no error. (The
# Temporal SDK's declarations have a few of their own under exactOptionalPropertyTypes; counted.)
(cd "$APP" && npx --no-install tsc --noEmit -p tsconfig.json >"$WORK/tsc-libs.log" 2>&1) || true
if grep -E '^(app\.ts|node_modules/feed-fanout/)' "$WORK/tsc-libs.log"; then die "the package's declarations do not type-check under strict settings"; fi
say "TS:   the package's .d.ts files type-check with skipLibCheck off too ($(grep -cE '^node_modules/' "$WORK/tsc-libs.log" || true) errors in other packages' declarations: $(grep -oE '^node_modules/[^/]+(/[^/]+)?' "$WORK/tsc-libs.log" | sort -u | tr '\n' ' '))"
say "the CLI from the app: npx feed-fanout list --state completed"
(cd "$APP" && npx --no-install feed-fanout list --state completed) || die "feed-fanout list"
say "ok"
