/**
 * The binaries the local cluster runs, from `scripts/install-tools.sh --cluster`.
 * @module
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { LocalStackError } from '../../src/contract/errors';
import { REPO_ROOT } from '../local-stack';

/** Paths of the cluster's binaries (see `scripts/install-tools.sh --cluster`). */
export interface ClusterTools {
  /** `temporal-server` (go.temporal.io/server/cmd/server). */
  server: string;
  /** `temporal-sql-tool` (go.temporal.io/server/cmd/tools/sql). */
  sqlTool: string;
  /** The module's `schema/postgresql` directory (holds `v12/temporal/versioned`, `v12/visibility/versioned`). */
  schemaDir: string;
  /** The Web UI server (github.com/temporalio/ui-server/v2/cmd/server). */
  uiServer: string;
  /** PostgreSQL's bin directory (postgres, initdb, pg_isready). */
  pgBinDir: string;
  /** MongoDB's `mongod`. */
  mongod: string;
}

/**
 * Builds or installs what the cluster needs (Temporal server, SQL tool and schemas, UI server,
 * PostgreSQL, mongod) if missing, and returns their paths.
 */
export function ensureClusterTools(): ClusterTools {
  let out: string;
  try {
    out = execFileSync('bash', [path.join(REPO_ROOT, 'scripts', 'install-tools.sh'), '--print-env', '--cluster', '--mongod'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    });
  } catch (err) {
    throw new LocalStackError(`scripts/install-tools.sh --cluster failed; run it by hand to see why (${(err as Error).message})`, { cause: err });
  }
  const vars = Object.fromEntries([...out.matchAll(/^export (\w+)=(.*)$/gm)].map((m) => [m[1], m[2]]));
  const need = (name: string): string => {
    const value = vars[name];
    if (!value) throw new LocalStackError(`scripts/install-tools.sh --cluster printed no ${name}; run it by hand to see why`);
    return value;
  };
  return {
    server: need('TEMPORAL_SERVER_PATH'),
    sqlTool: need('TEMPORAL_SQL_TOOL_PATH'),
    schemaDir: need('TEMPORAL_SCHEMA_DIR'),
    uiServer: need('TEMPORAL_UI_SERVER_PATH'),
    pgBinDir: need('PG_BIN_DIR'),
    mongod: need('MONGOD_PATH'),
  };
}

/** Every port of the cluster. */
