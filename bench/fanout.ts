/**
 * `npm run bench [-- --followers N] [--page-size P] [--chunk-size C] [--in-flight F] [--store mongodb|ferretdb]`
 *
 * Fans one activity out to N followers (default 100,000) on a local stack, then removes it again,
 * and prints for each phase the CPU time per 1,000 feed entries (the headline: every process this
 * script started, plus itself; stable from run to run), entries per second and history events,
 * beside baselines measured in the same run on the same store:
 * - the fanout with the durable write concern (journaled, majority; the project's default) and
 *   with the driver's default (`w: 1`, "before"), to show what durability costs;
 * - the same job without Temporal: reading the followers page by page from the same follower
 *   source, then the same writes: what Temporal costs;
 * - raw writes: the same entries with plain batched driver writes (same chunk size, same
 *   parallelism, ids in memory), durable and before;
 * - the removal: the sweep of the activity's entries by activity id.
 *
 * Starts its own Temporal dev server and store (`--store`, or `FANOUT_STORE`: mongod where it
 * runs, else FerretDB) in a temp directory, unless TEMPORAL_ADDRESS / MONGODB_URI are set.
 * Trimming is off on all sides (trimChance 0): it is separate work. */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { MongoClient, type WriteConcernSettings } from 'mongodb';
import { FeedClient } from '../src/client';
import { type ManagedServer, startStore, startTemporalDevServer, storeBinary, toolsAndStore } from '../src/dev/local-stack';
import { FanoutOperation } from '../src/model/constants';
import { FANOUT_DEFAULTS, type FanoutProgress } from '../src/model/fanout';
import { DURABLE_WRITE_CONCERN } from '../src/storage/durability';
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

/** CPU milliseconds all sampled processes together used per 1,000 entries. */
function perThousandAll(cpu: CpuSample, entries: number): string {
  const total = Object.values(cpu).filter((v) => !Number.isNaN(v)).reduce((a, b) => a + b, 0);
  return entries === 0 ? '-' : ((total * 1e6) / entries).toFixed(0);
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
  // Errors only: activity-only workers warn that they poll no workflows, which is the point here.
  Runtime.install({ logger: new DefaultLogger('ERROR') });

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
    // "before" = the driver's default write concern ({w: 1}, no journal wait): what the project
    // used until acknowledged writes had to survive a crash of the database process.
    const concerns = { durable: DURABLE_WRITE_CONCERN, before: { w: 1 } } satisfies Record<string, WriteConcernSettings>;
    const stores = { durable: new FeedStore(db, { feeds }), before: new FeedStore(db, { feeds, writeConcern: concerns.before }) };
    await stores.durable.ensureIndexes();

    console.log(`bench: seeding ${followers} followers ...`);
    const seedStart = Date.now();
    const seeded = await seedFollowers(db, 'bench-actor', followers, { prefix: 'bf', activeEvery: 4 });
    console.log(`bench: seeded in ${((Date.now() - seedStart) / 1000).toFixed(1)} s`);

    const time = new Date();
    const writeChunk = (store: FeedStore, feedType: string, activityId: string, owners: string[]) =>
      insertManyIgnoringDuplicates(
        store.feed(feedType),
        owners.map((owner) => ({ _id: `${owner}/${activityId}`, owner, activityId, actor: 'bench-actor', time })),
      );

    // Baseline: the same entries, same chunking and parallelism, plain driver writes, follower
    // ids already in memory.
    const rawPhase = (concern: keyof typeof stores) =>
      measure(pids, async () => {
        const writes = new BoundedWrites(maxInFlight);
        for (let i = 0; i < seeded.all.length; i += chunkSize) {
          const chunk = seeded.all.slice(i, i + chunkSize);
          await writes.add(() => writeChunk(stores[concern], 'raw', `raw-${concern}`, chunk));
        }
        return writes.finish();
      });
    const rawBefore = await rawPhase('before');
    const raw = await rawPhase('durable');

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
          for (let i = 0; i < ids.length; i += chunkSize) await writes.add(() => writeChunk(stores.durable, 'plain', 'plain-1', ids.slice(i, i + chunkSize)));
        }
        if (page.nextCursor === null) break;
      }
      return writes.finish();
    });

    // The fanout through Temporal, workers in this process, once per write concern.
    const connection = await Connection.connect({ address: temporalAddress });
    const nativeConnection = await NativeConnection.connect({ address: temporalAddress });
    const temporal = new Client({ connection });
    const workflowIds: string[] = [];
    const summaries: FanoutProgress[] = [];
    const withWorkers = async (concern: keyof typeof stores, fn: (client: FeedClient) => Promise<Measured>): Promise<Measured> => {
      const workers = await createWorkers({ connection: nativeConnection, db, feedStore: { feeds, writeConcern: concerns[concern] } });
      const running = Promise.all(workers.map((w) => w.run()));
      try {
        return await fn(new FeedClient({ temporal, db, feeds, writeConcern: concerns[concern], fanout: { pageSize, chunkSize, maxInFlight } }));
      } finally {
        workers.forEach((w) => w.shutdown());
        await running;
      }
    };
    const fanoutPhase = (concern: keyof typeof stores, activityId: string) =>
      withWorkers(concern, (client) =>
        measure(pids, async () => {
          const added = await client.addActivity({ id: activityId, actor: 'bench-actor', verb: 'post', object: activityId });
          workflowIds.push(added.workflowId);
          const summary = await client.waitForFanout(added.activityId);
          summaries.push(summary);
          return summary.high.entriesChanged + summary.low.entriesChanged;
        }),
      );
    // Warm-up (not measured): one small fanout per write concern, so neither measured phase pays
    // for JIT compilation, the workflow bundle or the first connections.
    await seedFollowers(db, 'warm-actor', 2_000, { prefix: 'wf', activeEvery: 4 });
    for (const concern of ['before', 'durable'] as const) {
      await withWorkers(concern, async (client) => {
        await client.addActivity({ id: `warm-${concern}`, actor: 'warm-actor', verb: 'post', object: 'warm' });
        await client.waitForFanout(`warm-${concern}`);
        return { written: 0, seconds: 0, rate: 0, cpu: {} };
      });
    }
    const fanoutBefore = await fanoutPhase('before', 'bench-before');
    const fanout = await fanoutPhase('durable', 'bench-1');
    // Checked outside the timing (a count scans the collection on FerretDB): every follower has
    // the entry once. The unique `_id` rules out duplicates; this rules out losses.
    const inTimelines = await stores.durable.feed('timeline').countDocuments({ activityId: 'bench-1' });
    if (inTimelines !== followers || [fanout, fanoutBefore, plain, raw, rawBefore].some((m) => m.written !== followers)) {
      throw new Error(`expected ${followers} entries everywhere: fanout wrote ${fanout.written} (timelines hold ${inTimelines}), same job ${plain.written}, raw ${raw.written}`);
    }
    // Removing the activity again: the sweep by activity id, durable.
    const removal = await withWorkers('durable', (client) =>
      measure(pids, async () => {
        const started = await client.removeActivity('bench-1');
        workflowIds.push(started.workflowId);
        const summary = await client.waitForFanout('bench-1', FanoutOperation.REMOVE);
        return summary.low.entriesChanged;
      }),
    );
    const left = await stores.durable.feed('timeline').countDocuments({ activityId: 'bench-1' });
    if (left !== 0 || removal.written !== followers) throw new Error(`removal left ${left} entries (removed ${removal.written})`);

    const history = new Map<string, { events: number; runs: number }>();
    for (const workflowId of workflowIds) {
      const h = { events: 0, runs: 0 };
      for await (const run of temporal.workflow.list({ query: `WorkflowId = '${workflowId}'` })) {
        h.runs++;
        h.events += run.historyLength;
      }
      history.set(workflowId, h);
    }
    const [before, after] = summaries as [FanoutProgress, FanoutProgress];
    const phases: Array<[string, Measured]> = [
      ['fanout, durable', fanout],
      ['fanout, before (w:1)', fanoutBefore],
      ['same job, no Temporal', plain],
      ['raw writes, durable', raw],
      ['raw writes, before (w:1)', rawBefore],
      ['removal (sweep), durable', removal],
    ];
    const row = (metric: string, cell: (m: Measured) => string): string[] => [metric, ...phases.map(([, m]) => cell(m))];
    const h = (id: string, pick: (x: { events: number; runs: number }) => number) => String(pick(history.get(id) ?? { events: 0, runs: 0 }));
    const processNames = Object.keys(fanout.cpu);
    const rows: string[][] = [
      // The headline: CPU per 1,000 entries, all processes together (stable from run to run).
      row('**CPU ms / 1,000 entries, all-in**', (m) => `**${perThousandAll(m.cpu, m.written)}**`),
      ...processNames.map((name) => row(`CPU ms / 1,000 entries: ${name}`, (m) => perThousand(m.cpu, name, m.written))),
      row('entries / s', (m) => m.rate.toFixed(0)),
      row('entries', (m) => String(m.written)),
      row('wall time (s)', (m) => m.seconds.toFixed(1)),
      row('cores busy (these processes)', (m) => coresBusy(m.cpu, m.seconds)),
      ['history events (all runs)', h(workflowIds[1]!, (x) => x.events), h(workflowIds[0]!, (x) => x.events), '-', '-', '-', h(workflowIds[2]!, (x) => x.events)],
      ['workflow runs', h(workflowIds[1]!, (x) => x.runs), h(workflowIds[0]!, (x) => x.runs), '-', '-', '-', h(workflowIds[2]!, (x) => x.runs)],
      ['failed chunks', String(after.high.chunksFailed + after.low.chunksFailed), String(before.high.chunksFailed + before.low.chunksFailed), '-', '-', '-', '-'],
    ];
    console.log(`\nbench: ${followers} followers, pageSize ${pageSize}, chunkSize ${chunkSize}, maxInFlight ${maxInFlight}, store ${storeName}`);
    console.log(`| metric | ${phases.map(([name]) => name).join(' | ')} |`);
    console.log(`|---|${phases.map(() => '---:').join('|')}|`);
    for (const r of rows) console.log(`| ${r.join(' | ')} |`);
    const cpuAll = (m: Measured) => Number(perThousandAll(m.cpu, m.written));
    console.log(`\nheadline: fanout ${cpuAll(fanout)} ms CPU per 1,000 entries durable, ${cpuAll(fanoutBefore)} before (w:1); ${fanout.rate.toFixed(0)} vs ${fanoutBefore.rate.toFixed(0)} entries/s`);
    console.log(`durability costs the fanout ${(cpuAll(fanout) - cpuAll(fanoutBefore)).toFixed(0)} ms CPU per 1,000 entries and ${(100 * (1 - fanout.rate / fanoutBefore.rate)).toFixed(0)}% of its entries/s (raw writes: ${(100 * (1 - raw.rate / rawBefore.rate)).toFixed(0)}%)`);
    console.log(`fanout / raw (both durable): ${(fanout.rate / raw.rate).toFixed(2)} of the entries/s, ${(cpuAll(fanout) / cpuAll(raw)).toFixed(1)}x the CPU per entry`);

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
