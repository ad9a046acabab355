/**
 * PostgreSQL 15 for Temporal's persistence and visibility: its process and Temporal's schemas.
 * @module
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, createWriteStream, existsSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { LocalStackError } from '../../src/contract/errors';
import { PG_PASSWORD, PG_USER } from './ports';
import { Proc, logTail, run } from './process';
import { ClusterTools } from './tools';

// --- PostgreSQL --------------------------------------------------------------------------------

/** The OS user PostgreSQL runs as: itself, unless we are root (postgres refuses root), then `postgres`. */
export function postgresUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  try {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    return { uid, gid };
  } catch {
    throw new LocalStackError('running as root, PostgreSQL must run as another user, and there is no "postgres" user; install Debian\'s postgresql package (it creates it) or run as a normal user');
  }
}

export function postgresProcess(tools: ClusterTools, dataDir: string, logDir: string, port: number): { proc: Proc; init(): void } {
  const root = path.join(dataDir, 'postgres');
  const pgData = path.join(root, 'data');
  const user = postgresUser();
  const bin = (name: string) => path.join(tools.pgBinDir, name);
  const proc = new Proc({
    name: 'postgres',
    cmd: bin('postgres'),
    args: [
      '-D', pgData,
      '-p', String(port),
      '-c', 'listen_addresses=127.0.0.1',
      // TCP only: no socket in /var/run/postgresql (not ours to use) or /tmp.
      '-c', 'unix_socket_directories=',
      // 5 Temporal processes with pools of up to 24 connections each, plus the SQL tool.
      '-c', 'max_connections=200',
    ],
    cwd: root,
    logFile: path.join(logDir, 'postgres.log'),
    ...(user ? { user } : {}),
    ready: () => run(bin('pg_isready'), ['-q', '-h', '127.0.0.1', '-p', String(port), '-U', PG_USER, '-d', 'postgres', '-t', '1']).then(() => true),
    readyTimeoutMs: 60_000,
    // SIGINT is PostgreSQL's fast shutdown (SIGTERM waits for every client to disconnect).
    stopSignal: 'SIGINT',
    stopTimeoutMs: 30_000,
  });
  const init = () => {
    mkdirSync(root, { recursive: true });
    if (user) {
      chownSync(root, user.uid, user.gid);
      // The postgres user must reach the data dir: make it searchable (not readable) by others.
      const mode = statSync(dataDir).mode & 0o777;
      if ((mode & 0o001) === 0) chmodSync(dataDir, mode | 0o001);
      if (spawnSync('test', ['-w', root], user).status !== 0) {
        throw new LocalStackError(
          `PostgreSQL runs as the postgres user (it refuses root) and cannot write ${root}: make every parent directory of ${dataDir} searchable by others (chmod o+x) or use a data dir elsewhere`,
        );
      }
    }
    if (existsSync(path.join(pgData, 'PG_VERSION'))) return;
    rmSync(pgData, { recursive: true, force: true }); // a half-done initdb
    const pwfile = path.join(root, 'pwfile');
    writeFileSync(pwfile, `${PG_PASSWORD}\n`, { mode: 0o600 });
    if (user) chownSync(pwfile, user.uid, user.gid);
    const logFile = path.join(logDir, 'postgres-initdb.log');
    const res = spawnSync(
      bin('initdb'),
      ['-D', pgData, '-U', PG_USER, `--pwfile=${pwfile}`, '--auth-local=trust', '--auth-host=scram-sha-256', '-E', 'UTF8', '--no-locale'],
      { cwd: root, encoding: 'utf8', ...(user ?? {}) },
    );
    rmSync(pwfile, { force: true });
    writeFileSync(logFile, `${res.stdout ?? ''}${res.stderr ?? ''}${res.error ? `\n${res.error.message}\n` : ''}`);
    if (res.status !== 0) throw new LocalStackError(`initdb failed (exit ${res.status ?? res.error?.message}); see ${logFile}${logTail(logFile)}`);
  };
  return { proc, init };
}

/** Creates the two databases and applies the server's schemas, as the server's Makefile does. */
export async function setupSchemas(tools: ClusterTools, pgPort: number, logDir: string): Promise<void> {
  const logFile = path.join(logDir, 'schema.log');
  const log = createWriteStream(logFile, { flags: 'a' });
  const base = ['--ep', '127.0.0.1', '-p', String(pgPort), '-u', PG_USER, '--pw', PG_PASSWORD, '--pl', 'postgres12'];
  const step = async (args: string[], allowFailure = false) => {
    log.write(`$ temporal-sql-tool ${args.join(' ')}\n`);
    try {
      const { stdout, stderr } = await run(tools.sqlTool, [...base, ...args]);
      log.write(stdout + stderr);
    } catch (err) {
      log.write(`${(err as Error).message}\n`);
      if (!allowFailure) throw new LocalStackError(`temporal-sql-tool ${args.join(' ')} failed; see ${logFile}`, { cause: err });
    }
  };
  try {
    for (const [db, dir] of [['temporal', 'temporal'], ['temporal_visibility', 'visibility']] as const) {
      // A start that failed halfway may have left the database behind.
      await step(['--db', db, 'drop-database', '--force'], true);
      await step(['--db', db, 'create-database']);
      await step(['--db', db, 'setup-schema', '-v', '0.0']);
      await step(['--db', db, 'update-schema', '-d', path.join(tools.schemaDir, 'v12', dir, 'versioned')]);
    }
  } finally {
    await new Promise((resolve) => log.end(resolve));
  }
}
