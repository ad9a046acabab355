/**
 * `npm run bench [-- --followers N] [--page-size P] [--chunk-size C] [--in-flight F] [--store ferretdb|mongodb]`
 *
 * Fans one activity out to N followers (default 100,000) on a local stack and prints wall time,
 * feed entries per second, history events and continue-as-new count, beside two baselines
 * measured in the same run on the same store:
 * - raw: writing the same entries with plain batched driver writes (same chunk size, same
 *   parallelism, follower ids already in memory, no Temporal). fanout / raw is the figure we steer by;
 * - the same job without Temporal: reading the followers page by page from the same follower
 *   source, then the same writes. raw / this is what the store alone costs for reading followers;
 *   fanout / this is what Temporal costs.
 * It also prints the CPU time each process spent per 1,000 entries in each phase.
 *
 * Starts its own Temporal dev server and store (`--store`, or `FANOUT_STORE`: FerretDB by
 * default, or MongoDB's own mongod) in a temp directory, unless TEMPORAL_ADDRESS / MONGODB_URI
 * are set. Trimming is off on all sides (trimChance 0): it is separate work.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { MongoClient } from 'mongodb';
import { FeedClient } from '../src/client';
import { type ManagedServer, startStore, startTemporalDevServer, storeBinary, toolsAndStore } from '../src/dev/local-stack';
import { FANOUT_DEFAULTS, type FanoutProgress } from '../src/model/fanout';
import { MongoFollowerSource } from '../src/followers/mongo-follower-source';
import { FeedStore } from '../src/storage/feed-store';
import { insertManyIgnoringDuplicates } from '../src/storage/insert';
import { createWorkers } from '../src/worker/workers';
import { seedFollowers } from '../test/utils/graph';
import { cpuBetween, type CpuSample, sampleCpu } from './cpu';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const n = Number(process.argv[i + 1]);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got "${process.argv[i + 1]}"`);
  return n;
}

/** One measured phase. */
interface Measured {
  written: number;
  seconds: number;
  rate: number;
  cpu: CpuSample;
}

/** Runs `phase` (which returns the entries it wrote) and measures its wall time and CPU. */
async function measure(pids: Record<string, number | undefined>, phase: () => Promise<number>): Promise<Measured> {
  const start = Date.now();
  const cpuStart = sampleCpu(pids);
  const written = await phase();
  const seconds = (Date.now() - start) / 1000;
  return { written, seconds, rate: written / seconds, cpu: cpuBetween(cpuStart, sampleCpu(pids)) };
}

/** At most `limit` writes at once, as the fanout's `maxInFlight`; counts what they wrote. */
class BoundedWrites {
  private readonly running = new Set<Promise<void>>();
  private written = 0;

  constructor(private readonly limit: number) {}

  /** Starts `write` once fewer than `limit` are running. */
  async add(write: () => Promise<number>): Promise<void> {
    while (this.running.size >= this.limit) await Promise.race(this.running);
    const p: Promise<void> = write().then((n) => {
      this.written += n;
      this.running.delete(p);
    });
    this.running.add(p);
  }

  /** Waits for the writes still running; returns the entries written in all. */
  async finish(): Promise<number> {
    await Promise.all(this.running);
    return this.written;
  }
}

/** CPU milliseconds `name` used per 1,000 entries. */
function perThousand(cpu: CpuSample, name: string, entries: number): string {
  const seconds = cpu[name];
  return seconds === undefined || Number.isNaN(seconds) || entries === 0 ? '-' : ((seconds * 1e6) / entries).toFixed(0);
}

/** Average number of cores the sampled processes kept busy over `seconds`. */
function coresBusy(cpu: CpuSample, seconds: number): string {
  const total = Object.values(cpu).filter((v) => !Number.isNaN(v)).reduce((a, b) => a + b, 0);
  return (total / seconds).toFixed(2);
}

async function main(): Promise<void> {
  const followers = arg('followers', 100_000);
  const pageSize = arg('page-size', FANOUT_DEFAULTS.pageSize);
  const chunkSize = arg('chunk-size', FANOUT_DEFAULTS.chunkSize);
  const maxInFlight = arg('in-flight', FANOUT_DEFAULTS.maxInFlight);
  const storeAt = process.argv.indexOf('--store');
  const { tools, store: storeKindArg } = toolsAndStore(storeAt < 0 ? undefined : (process.argv[storeAt + 1] ?? '(nothing)'), '--store');
  Runtime.install({ logger: new DefaultLogger('WARN') });

  const dir = mkdtempSync(path.join(os.tmpdir(), 'feed-fanout-bench-'));
  const servers: ManagedServer[] = [];
  // Processes whose CPU time is reported (only those this script started).
  const pids: Record<string, number | undefined> = {};
  try {
    let temporalAddress = process.env.TEMPORAL_ADDRESS;
    if (!temporalAddress) {
      servers.push(await startTemporalDevServer({ logFile: path.join(dir, 'temporal.log'), cli: tools.temporalCli, dbFile: path.join(dir, 'temporal.db'), sqlitePragmas: ['journal_mode=wal', 'synchronous=normal'] }));
      temporalAddress = servers[servers.length - 1]!.address;
      pids.temporal = servers[servers.length - 1]!.process.pid;
    }
    let mongodbUri = process.env.MONGODB_URI;
    let storeName = 'MONGODB_URI';
    if (!mongodbUri && storeKindArg) {
      const server = await startStore(storeKindArg, { dataDir: path.join(dir, 'store'), logFile: path.join(dir, 'store.log'), binary: storeBinary(tools, storeKindArg) });
      servers.push(server);
      mongodbUri = server.address;
      pids[storeKindArg] = server.process.pid;
      storeName = storeKindArg === 'mongodb' ? 'mongod 6.0' : 'FerretDB 1.24 (SQLite)';
    }
    const mongo = await MongoClient.connect(mongodbUri!);
    const db = mongo.db(`bench_${Date.now()}`);
    const feeds = { timeline: { trimChance: 0, fanout: true }, user: { trimChance: 0 }, raw: { trimChance: 0 }, plain: { trimChance: 0 } };
    const store = new FeedStore(db, { feeds });
    await store.ensureIndexes();

    console.log(`bench: seeding ${followers} followers ...`);
    const seedStart = Date.now();
    const seeded = await seedFollowers(db, 'bench-actor', followers, { prefix: 'bf', activeEvery: 4 });
    console.log(`bench: seeded in ${((Date.now() - seedStart) / 1000).toFixed(1)} s`);

    const time = new Date();
    const writeChunk = (feedType: string, activityId: string, owners: string[]) =>
      insertManyIgnoringDuplicates(
        store.feed(feedType),
        owners.map((owner) => ({ _id: `${owner}/${activityId}`, owner, activityId, actor: 'bench-actor', time })),
      );

    // Baseline (the figure the ratio divides by): the same entries, same chunking and
    // parallelism, plain driver writes, follower ids already in memory.
    const raw = await measure(pids, async () => {
      const chunks: string[][] = [];
      for (let i = 0; i < seeded.all.length; i += chunkSize) chunks.push(seeded.all.slice(i, i + chunkSize));
      const writes = new BoundedWrites(maxInFlight);
      for (const chunk of chunks) await writes.add(() => writeChunk('raw', 'raw-1', chunk));
      return writes.finish();
    });

    // The same job as the fanout without Temporal: read the followers page by page from the same
    // follower source, split by priority, write the chunks. What the store alone allows.
    const plain = await measure(pids, async () => {
      const source = new MongoFollowerSource(db);
      const writes = new BoundedWrites(maxInFlight);
      const read = (cursor: string | null) => source.getFollowerPage({ userId: 'bench-actor', cursor, limit: pageSize, walkId: 'bench-plain' });
      let nextPage = read(null);
      for (;;) {
        const page = await nextPage;
        if (page.nextCursor !== null) nextPage = read(page.nextCursor);
        for (const ids of [page.high, page.low]) {
          for (let i = 0; i < ids.length; i += chunkSize) await writes.add(() => writeChunk('plain', 'plain-1', ids.slice(i, i + chunkSize)));
        }
        if (page.nextCursor === null) break;
      }
      return writes.finish();
    });

    // The fanout through Temporal, workers in this process.
    const connection = await Connection.connect({ address: temporalAddress });
    const nativeConnection = await NativeConnection.connect({ address: temporalAddress });
    const temporal = new Client({ connection });
    const workers = await createWorkers({ connection: nativeConnection, db, feedStore: { feeds } });
    const running = Promise.all(workers.map((w) => w.run()));
    const client = new FeedClient({ temporal, db, feeds, fanout: { pageSize, chunkSize, maxInFlight } });
    let workflowId = '';
    let summary: FanoutProgress | undefined;
    const fanout = await measure(pids, async () => {
      const added = await client.addActivity({ id: 'bench-1', actor: 'bench-actor', verb: 'post', object: 'o1' });
      workflowId = added.workflowId;
      summary = await client.waitForFanout(added.activityId);
      return summary.high.entriesChanged + summary.low.entriesChanged;
    });
    // Checked outside the timing (a count scans the collection on FerretDB): every follower has
    // the entry once. The unique `_id` rules out duplicates; this rules out losses.
    const inTimelines = await store.feed('timeline').countDocuments({ activityId: 'bench-1' });
    if (inTimelines !== followers || [fanout, plain, raw].some((m) => m.written !== followers)) {
      throw new Error(`expected ${followers} entries everywhere: fanout wrote ${fanout.written} (timelines hold ${inTimelines}), same job ${plain.written}, raw ${raw.written}`);
    }
    workers.forEach((w) => w.shutdown());
    await running;

    let events = 0;
    let runs = 0;
    for await (const run of temporal.workflow.list({ query: `WorkflowId = '${workflowId}'` })) {
      runs++;
      events += run.historyLength;
    }
    const done = summary!;
    const phases = [fanout, plain, raw];
    const row = (metric: string, cell: (m: Measured) => string): string[] => [metric, ...phases.map(cell)];
    const rows: string[][] = [
      row('entries written', (m) => String(m.written)),
      row('wall time (s)', (m) => m.seconds.toFixed(1)),
      row('entries / s', (m) => m.rate.toFixed(0)),
      ['history events (all runs)', String(events), '-', '-'],
      ['workflow runs / continue-as-new', `${runs} / ${done.continuedAsNew}`, '-', '-'],
      ['failed chunks', String(done.high.chunksFailed + done.low.chunksFailed), '-', '-'],
      // Where the machine went: CPU milliseconds per 1,000 entries, by process.
      ...Object.keys(fanout.cpu).map((name) => row(`CPU ms / 1,000 entries: ${name}`, (m) => perThousand(m.cpu, name, m.written))),
      row('cores busy (these processes)', (m) => coresBusy(m.cpu, m.seconds)),
    ];
    console.log(`\nbench: ${followers} followers, pageSize ${pageSize}, chunkSize ${chunkSize}, maxInFlight ${maxInFlight}, store ${storeName}`);
    console.log('| metric | fanout (Temporal) | same job, no Temporal | raw driver writes |');
    console.log('|---|---:|---:|---:|');
    for (const r of rows) console.log(`| ${r.join(' | ')} |`);
    console.log(`\nratio (fanout rate / raw rate): ${(fanout.rate / raw.rate).toFixed(2)}`);
    console.log(`same job without Temporal / raw rate: ${(plain.rate / raw.rate).toFixed(2)} (what reading the followers from this store costs)`);
    console.log(`fanout rate / same job without Temporal: ${(fanout.rate / plain.rate).toFixed(2)} (what Temporal costs)`);

    await db.dropDatabase();
    await mongo.close();
    await connection.close();
    await nativeConnection.close();
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(`bench failed: ${err instanceof Error ? err.stack : String(err)}`);
  process.exit(1);
});
