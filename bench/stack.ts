/**
 * The stack a benchmark runs on: a Temporal dev server and a store started in a temp directory
 * (`--store mongodb|ferretdb`, or `FANOUT_STORE`: mongod where it runs, else FerretDB), unless
 * TEMPORAL_ADDRESS / MONGODB_URI point at running ones. Records the pids of what it started, so
 * their CPU time can be reported beside this process's.
 * @module
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { type Db, MongoClient } from 'mongodb';
import { type ManagedServer, startStore, startTemporalDevServer, storeBinary, toolsAndStore } from '../dev/local-stack';

/** A running benchmark stack. */
export interface BenchStack {
  /** Processes this script started, by name, for CPU accounting (`node` is this process). */
  pids: Record<string, number | undefined>;
  /** What the store is, for the report. */
  storeName: string;
  temporalAddress: string;
  /** The started dev server's Prometheus endpoint (its `action` counter); unset for a server given by TEMPORAL_ADDRESS. */
  temporalMetrics: string | undefined;
  mongodbUri: string;
  db: Db;
  temporal: Client;
  nativeConnection: NativeConnection;
  /** Stops what was started and deletes the benchmark database and temp directory. */
  close(): Promise<void>;
}

/** The value after `--name` on the command line as a positive integer, or `fallback`. */
export function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const n = Number(process.argv[i + 1]);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got "${process.argv[i + 1]}"`);
  return n;
}

/** The value after `--name` on the command line, or undefined; "(nothing)" when the flag ends the line. */
export function textArg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? undefined : (process.argv[i + 1] ?? '(nothing)');
}

/** Starts (or connects to) Temporal and the store. */
export async function startBenchStack(): Promise<BenchStack> {
  const { tools, store: storeKind } = toolsAndStore(textArg('store'), '--store');
  // Errors only: activity-only workers warn that they poll no workflows, which is the point here.
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const dir = mkdtempSync(path.join(os.tmpdir(), 'feed-fanout-bench-'));
  const servers: ManagedServer[] = [];
  const pids: Record<string, number | undefined> = {};
  const stopAll = async () => {
    await Promise.all(servers.map((s) => s.stop()));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    let temporalAddress = process.env.TEMPORAL_ADDRESS;
    let temporalMetrics: string | undefined;
    if (!temporalAddress) {
      const server = await startTemporalDevServer({ logFile: path.join(dir, 'temporal.log'), cli: tools.temporalCli, dbFile: path.join(dir, 'temporal.db'), sqlitePragmas: ['journal_mode=wal', 'synchronous=normal'] });
      servers.push(server);
      temporalAddress = server.address;
      temporalMetrics = server.metricsAddress;
      pids.temporal = server.process.pid;
    }
    let mongodbUri = process.env.MONGODB_URI;
    let storeName = 'MONGODB_URI';
    if (!mongodbUri && storeKind) {
      const server = await startStore(storeKind, { dataDir: path.join(dir, 'store'), logFile: path.join(dir, 'store.log'), binary: storeBinary(tools, storeKind) });
      servers.push(server);
      mongodbUri = server.address;
      pids[storeKind] = server.process.pid;
      storeName = storeKind === 'mongodb' ? 'mongod 6.0' : 'FerretDB 1.24 (SQLite)';
    }
    const mongo = await MongoClient.connect(mongodbUri!);
    const db = mongo.db(`bench_${Date.now()}`);
    const connection = await Connection.connect({ address: temporalAddress });
    const nativeConnection = await NativeConnection.connect({ address: temporalAddress });
    return {
      pids,
      storeName,
      temporalAddress,
      temporalMetrics,
      mongodbUri: mongodbUri!,
      db,
      temporal: new Client({ connection }),
      nativeConnection,
      async close() {
        await db.dropDatabase().catch(() => undefined);
        await mongo.close();
        await connection.close();
        await nativeConnection.close();
        await stopAll();
      },
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** History events and runs of a fanout, its passes and partitions (named after it) included. */
export async function fanoutHistory(temporal: Client, workflowId: string): Promise<{ events: number; runs: number }> {
  const h = { events: 0, runs: 0 };
  const query = `WorkflowId = '${workflowId}' OR WorkflowId STARTS_WITH '${workflowId}/'`;
  for await (const run of temporal.workflow.list({ query })) {
    h.runs++;
    h.events += run.historyLength;
  }
  return h;
}

/** When a fanout's runs started and closed, seconds after the fanout started (see `fanoutTimeline`). */
export interface FanoutTimeline {
  /** The first run of a priority started, and the last one of it closed. */
  high: { firstStart: number; firstClose: number; lastClose: number; runs: number } | null;
  low: { firstStart: number; firstClose: number; lastClose: number; runs: number } | null;
  /** The fanout closed. */
  close: number;
}

/**
 * Where a fanout's time went, from the start and close times of its runs (the fanout, its passes
 * and partitions): how long before the first HIGH pass started (the fanout's first page, the
 * partition plan), how far apart the HIGH partitions closed (the last one holds back every LOW
 * one), and the same for LOW. Continue-as-new runs count in their priority.
 */
export async function fanoutTimeline(temporal: Client, workflowId: string): Promise<FanoutTimeline> {
  const runs: Array<{ id: string; start: number; close: number }> = [];
  for await (const run of temporal.workflow.list({ query: `WorkflowId = '${workflowId}' OR WorkflowId STARTS_WITH '${workflowId}/'` })) {
    runs.push({ id: run.workflowId, start: run.startTime.getTime(), close: run.closeTime?.getTime() ?? Number.NaN });
  }
  // The fanout's runs (continue-as-new included): the first start is time 0.
  const own = runs.filter((r) => r.id === workflowId);
  const t0 = Math.min(...own.map((r) => r.start));
  const s = (t: number) => (t - t0) / 1000;
  const of = (priority: string): FanoutTimeline['high'] => {
    const mine = runs.filter((r) => r.id.startsWith(`${workflowId}/${priority}`));
    if (!mine.length) return null;
    return { firstStart: s(Math.min(...mine.map((r) => r.start))), firstClose: s(Math.min(...mine.map((r) => r.close))), lastClose: s(Math.max(...mine.map((r) => r.close))), runs: mine.length };
  };
  return { high: of('high'), low: of('low'), close: own.length ? s(Math.max(...own.map((r) => r.close))) : Number.NaN };
}

/** One line of `fanoutTimeline`. */
export function describeTimeline(t: FanoutTimeline): string {
  const part = (name: string, p: FanoutTimeline['high']) => (p ? `${name} ${p.runs} runs: first started ${p.firstStart.toFixed(1)} s, closed ${p.firstClose.toFixed(1)}–${p.lastClose.toFixed(1)} s` : `${name}: no run of its own`);
  return `${part('HIGH', t.high)}; ${part('LOW', t.low)}; fanout closed ${t.close.toFixed(1)} s`;
}
