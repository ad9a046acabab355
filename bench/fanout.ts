/**
 * `npm run bench [-- --followers N] [--page-size P] [--chunk-size C] [--in-flight F] [--partition-size S] [--max-partitions M]
 *  [--store mongodb|ferretdb] [--stream-rate R] [--no-stream]`
 *
 * Fans one activity out to N followers (default 100,000; 1 in 4 active) on a local stack, then
 * removes it again, and prints for each phase the CPU time per 1,000 feed entries (the headline:
 * every process this script started, plus itself; stable from run to run), entries per second,
 * history events and the workers' peak RSS, beside baselines measured in the same run on the same
 * store:
 * - the fanout as it runs by default (a HIGH pass then a LOW pass, partitioned above
 *   `partitionSize` followers, chunks as local activities) and with `chunkExecution: 'activity'`
 *   (the design card's shape: one activity task per chunk, taken by any worker polling the queue),
 *   both durable; with each, when every active follower had the entry and when all had it, seen
 *   from the acknowledged writes (HIGH-first), and what it costs in Temporal Cloud actions
 *   (see `./actions`);
 * - the default fanout with the driver's default write concern (`w: 1`): what durability costs;
 * - the same job without Temporal: the same follower pages, the same writes: what Temporal costs;
 * - raw writes: the same entries with plain batched driver writes (same chunk size, same
 *   parallelism, ids in memory), durable and `w: 1`;
 * - the removal: the sweep of the activity's entries by activity id;
 * - HIGH under load: another fanout of N while a stream of 1,000-follower fanouts arrives
 *   (`--stream-rate` per second, default 2): the time from `addActivity` returning until all of
 *   a small fanout's active followers have it, p50 / p95 / max.
 * Trimming is off on all sides (trimChance 0): it is separate work.
 * @module
 */
import type { WriteConcernSettings } from 'mongodb';
import { FeedClient } from '../src/client/feed-client';
import { FanoutOperation } from '../src/contract/constants';
import { ChunkExecution, FANOUT_DEFAULTS, type FanoutOptions, type FanoutProgress } from '../src/contract/fanout';
import { DURABLE_WRITE_CONCERN } from '../src/storage/durability';
import { MongoFollowerSource } from '../src/storage/mongo-follower-source';
import { FeedStore } from '../src/storage/feed-store';
import { insertManyIgnoringDuplicates } from '../src/storage/insert';
import { createWorkers } from '../src/worker/workers';
import { seedFollowers } from '../dev/seed';
import { coresBusy, measure, type Measured, perThousand, perThousandAll, printTable } from './cpu';
import { type ActionCount, actionsBetween, actionsFromHistories, actionsPerThousand, describeActions, settledServerActions } from './actions';
import { arg, type BenchStack, describeTimeline, fanoutHistory, fanoutTimeline } from './stack';
import { percentile, WriteTracker } from './tracker';

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

/** A fanout phase: what was measured, and when its followers had the entry (s after `addActivity` returned). */
interface FanoutRun extends Measured {
  workflowId: string;
  summary: FanoutProgress;
  allHighSeconds: number;
  allSeconds: number;
  /** The dev server's `action` counter over the phase (undefined on a server the bench did not start). */
  serverActions: ActionCount | undefined;
}

/** Fans one activity out to N followers and prints the figures; see the module comment. */
export async function fanoutBench(stack: BenchStack): Promise<void> {
  const { db, pids, temporal, nativeConnection } = stack;
  const followers = arg('followers', 100_000);
  const pageSize = arg('page-size', FANOUT_DEFAULTS.pageSize);
  const chunkSize = arg('chunk-size', FANOUT_DEFAULTS.chunkSize);
  const maxInFlight = arg('in-flight', FANOUT_DEFAULTS.maxInFlight);
  const partitionSize = arg('partition-size', FANOUT_DEFAULTS.partitionSize);
  const maxPartitions = arg('max-partitions', FANOUT_DEFAULTS.maxPartitions);
  const streamRate = arg('stream-rate', 2);
  const stream = !process.argv.includes('--no-stream');
  const feeds = { timeline: { trimChance: 0, fanout: true }, user: { trimChance: 0 }, raw: { trimChance: 0 }, plain: { trimChance: 0 } };
  // "w:1" = the driver's default write concern (no journal wait): what the project used until
  // acknowledged writes had to survive a crash of the database process.
  const concerns = { durable: DURABLE_WRITE_CONCERN, w1: { w: 1 } } satisfies Record<string, WriteConcernSettings>;
  const stores = { durable: new FeedStore(db, { feeds }), w1: new FeedStore(db, { feeds, writeConcern: concerns.w1 }) };
  await stores.durable.ensureIndexes();

  console.log(`bench: seeding ${followers} followers ...`);
  const seedStart = Date.now();
  const seeded = await seedFollowers(db, 'bench-actor', followers, { prefix: 'bf', activeEvery: 4 });
  // The small fanouts of the stream: 1,000 followers each, 1 in 4 active.
  const small = await seedFollowers(db, 'small-actor', 1_000, { prefix: 'sf', activeEvery: 4 });
  await seedFollowers(db, 'warm-actor', 6_000, { prefix: 'wf', activeEvery: 4 });
  console.log(`bench: seeded in ${((Date.now() - seedStart) / 1000).toFixed(1)} s`);
  const active = new Set([...seeded.high, ...small.high]);
  const tracker = new WriteTracker((id) => active.has(id));

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
  console.log('bench: raw writes ...');
  const rawW1 = await rawPhase('w1');
  const raw = await rawPhase('durable');

  // The same job as the fanout without Temporal: read the followers page by page from the same
  // follower source, split by priority, write the chunks. What the store alone allows.
  console.log('bench: the same job without Temporal ...');
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

  // The fanout through Temporal, workers in this process (the default queue plan: workflows,
  // high-fanout and low-fanout).
  const withWorkers = async <T>(concern: keyof typeof stores, fn: (client: FeedClient) => Promise<T>): Promise<T> => {
    const workers = await createWorkers({ connection: nativeConnection, db, feedStore: { feeds, writeConcern: concerns[concern] }, wrapActivities: tracker.wrap });
    const running = Promise.all(workers.map((w) => w.run()));
    try {
      return await fn(new FeedClient({ temporal, db, feeds, writeConcern: concerns[concern], fanout: { pageSize, chunkSize, maxInFlight, partitionSize, maxPartitions } }));
    } finally {
      workers.forEach((w) => w.shutdown());
      await running;
    }
  };
  /** One fanout to the N followers, with the HIGH-first times from the acknowledged writes. */
  const fanOut = async (client: FeedClient, activityId: string, options: FanoutOptions, during?: () => Promise<void>): Promise<FanoutRun> => {
    let workflowId = '';
    let summary: FanoutProgress | undefined;
    let addedAt = 0;
    const actionsAt = () => (stack.temporalMetrics ? settledServerActions(stack.temporalMetrics) : Promise.resolve(undefined));
    const actionsBefore = await actionsAt();
    const m = await measure(pids, async () => {
      tracker.expect(activityId, seeded.high.length);
      const added = await client.addActivity({ id: activityId, actor: 'bench-actor', verb: 'post', object: activityId }, options);
      addedAt = Date.now();
      workflowId = added.workflowId;
      const done = client.waitForFanout(added.activityId);
      if (during) await during();
      summary = await done;
      // Followers whose chunk was written: a chunk redone after its workflow task timed out finds
      // its entries there (counted unchanged, not changed), so this, not entriesChanged, is what
      // the fanout delivered. The difference is printed as redone work.
      return (summary.high.followersWritten ?? summary.high.entriesChanged) + (summary.low.followersWritten ?? summary.low.entriesChanged);
    });
    const actionsAfter = await actionsAt();
    const w = tracker.get(activityId);
    const since = (t: number | null | undefined) => (t == null ? Number.NaN : (t - addedAt) / 1000);
    const server = actionsBefore && actionsAfter ? actionsBetween(actionsBefore, actionsAfter) : undefined;
    return { ...m, workflowId, summary: summary!, allHighSeconds: since(w?.allHighAt), allSeconds: since(w?.lastAt), serverActions: server };
  };
  // Warm-up (not measured): each shape once, on the workers the measured phases then use, so no
  // measured phase pays for JIT compilation, the workflow bundle or the first connections: a
  // worker's workflow threads are new V8 isolates, which compile the workflow code afresh and
  // parse the bundle's source map on the first stack trace they take. A deployed worker pays
  // that once when it starts, not per fanout.
  const warmUp = async (client: FeedClient, concern: keyof typeof stores): Promise<void> => {
    for (const [i, options] of [{}, { pageSize: 1000 }, { chunkExecution: ChunkExecution.ACTIVITY }].entries()) {
      await client.addActivity({ id: `warm-${concern}-${i}`, actor: 'warm-actor', verb: 'post', object: 'warm' }, options);
      await client.waitForFanout(`warm-${concern}-${i}`);
    }
  };
  const fanoutPhase = (client: FeedClient, activityId: string, options: FanoutOptions = {}) => {
    console.log(`bench: fanout ${activityId} ...`);
    return fanOut(client, activityId, options);
  };

  const fanoutW1 = await withWorkers('w1', async (client) => {
    await warmUp(client, 'w1');
    return fanoutPhase(client, 'bench-w1');
  });
  // The durable phases share one set of workers, as a deployment's long-running ones would.
  const durable = await withWorkers('durable', async (client) => {
    await warmUp(client, 'durable');
    const fanout = await fanoutPhase(client, 'bench-1');
    const activity = await fanoutPhase(client, 'bench-activity', { chunkExecution: ChunkExecution.ACTIVITY });
    // Checked outside the timing (a count scans the collection on FerretDB): every follower has
    // the entry once. The unique `_id` rules out duplicates; this rules out losses.
    const inTimelines = await stores.durable.feed('timeline').countDocuments({ activityId: 'bench-1' });
    if (inTimelines !== followers || [fanout, activity, fanoutW1, plain, raw, rawW1].some((m) => m.written !== followers)) {
      throw new Error(`expected ${followers} entries everywhere: fanout wrote ${fanout.written} (timelines hold ${inTimelines}), as activities ${activity.written}, w:1 ${fanoutW1.written}, same job ${plain.written}, raw ${raw.written}`);
    }

    // Removing the activity again: the sweep by activity id, durable.
    console.log('bench: removal ...');
    let removalId = '';
    const removal = await measure(pids, async () => {
      const started = await client.removeActivity('bench-1');
      removalId = started.workflowId;
      const summary = await client.waitForFanout('bench-1', FanoutOperation.REMOVE);
      return summary.low.entriesChanged;
    });
    const left = await stores.durable.feed('timeline').countDocuments({ activityId: 'bench-1' });
    if (left !== 0 || removal.written !== followers) throw new Error(`removal left ${left} entries (removed ${removal.written})`);

    // HIGH under load: small fanouts arrive at a fixed rate while a large one runs.
    let underLoad: { big: FanoutRun; latencies: number[]; firstHigh: number[]; posts: number } | null = null;
    if (stream) {
      console.log(`bench: fanout of ${followers} with a stream of 1,000-follower fanouts, ${streamRate}/s ...`);
      const posts: Array<{ id: string; addedAt: number; done: Promise<unknown> }> = [];
      let bigDone = false;
      const big = await fanOut(client, 'bench-big', {}, async () => {
        const next = Date.now();
        for (let i = 0; !bigDone; i++) {
          const id = `small-${i}`;
          tracker.expect(id, small.high.length);
          const added = await client.addActivity({ id, actor: 'small-actor', verb: 'post', object: id });
          posts.push({ id, addedAt: Date.now(), done: client.waitForFanout(added.activityId) });
          await new Promise((r) => setTimeout(r, Math.max(0, next + ((i + 1) * 1000) / streamRate - Date.now())));
          // Stop once the large fanout's last write is in (checked from the writes seen).
          bigDone = tracker.get('bench-big')?.lastAt != null && tracker.get('bench-big')!.written >= followers;
        }
      });
      await Promise.all(posts.map((p) => p.done));
      const since = (p: (typeof posts)[number], t: number | null | undefined) => (t == null ? Number.NaN : (t - p.addedAt) / 1000);
      underLoad = {
        big,
        posts: posts.length,
        latencies: posts.map((p) => since(p, tracker.get(p.id)?.allHighAt)),
        firstHigh: posts.map((p) => since(p, tracker.get(p.id)?.firstHighAt)),
      };
    }
    return { fanout, activity, removal, removalId, underLoad };
  });
  const { fanout, activity, removal, removalId, underLoad } = durable;

  const historyOf = (workflowId: string) => fanoutHistory(temporal, workflowId);
  const fanoutPhases: Array<[string, FanoutRun]> = [
    ["fanout, chunks 'local' (default), durable", fanout],
    ["fanout, chunks 'activity', durable", activity],
    ["fanout, chunks 'local', w:1", fanoutW1],
  ];
  const phases: Array<[string, Measured]> = [...fanoutPhases, ['same job, no Temporal, durable', plain], ['raw writes, durable', raw], ['raw writes, w:1', rawW1], ['removal (sweep), durable', removal]];
  const histories = await Promise.all([...fanoutPhases.map(([, r]) => historyOf(r.workflowId)), historyOf(removalId)]);
  const historyActions = await Promise.all(fanoutPhases.map(([, r]) => actionsFromHistories(temporal, r.workflowId)));
  const historyCells = (pick: (h: { events: number; runs: number }) => number) => [...histories.slice(0, 3).map((h) => String(pick(h))), '-', '-', '-', String(pick(histories[3]))];
  const row = (metric: string, cell: (m: Measured) => string): string[] => [metric, ...phases.map(([, m]) => cell(m))];
  const fanoutRow = (metric: string, cell: (r: FanoutRun) => string): string[] => [metric, ...fanoutPhases.map(([, r]) => cell(r)), '-', '-', '-', '-'];
  const processNames = Object.keys(fanout.cpu);
  const s = (x: number) => (Number.isNaN(x) ? '-' : x.toFixed(1));
  console.log(`\nbench: ${followers} followers (1 in 4 active), pageSize ${pageSize}, chunkSize ${chunkSize}, maxInFlight ${maxInFlight}, partitionSize ${partitionSize}, maxPartitions ${maxPartitions}, store ${stack.storeName}`);
  printTable(['metric', ...phases.map(([name]) => name)], [
    // The headline: CPU per 1,000 entries, all processes together (stable from run to run).
    row('**CPU ms / 1,000 entries, all-in**', (m) => `**${perThousandAll(m.cpu, m.written)}**`),
    ...processNames.map((name) => row(`CPU ms / 1,000 entries: ${name}`, (m) => perThousand(m.cpu, name, m.written))),
    row('entries / s', (m) => m.rate.toFixed(0)),
    row('entries', (m) => String(m.written)),
    row('wall time (s)', (m) => m.seconds.toFixed(1)),
    row('cores busy (these processes)', (m) => coresBusy(m.cpu, m.seconds)),
    row('RSS of this process at start / peak (MB)', (m) => `${m.startRssMb.toFixed(0)} / ${m.peakRssMb.toFixed(0)}`),
    fanoutRow('all active followers written (s after addActivity)', (r) => s(r.allHighSeconds)),
    fanoutRow('all followers written (s after addActivity)', (r) => s(r.allSeconds)),
    fanoutRow('active followers served at (% of the total time)', (r) => `${((100 * r.allHighSeconds) / r.allSeconds).toFixed(0)}%`),
    ['history events (all runs)', ...historyCells((h) => h.events)],
    ['workflow runs', ...historyCells((h) => h.runs)],
    fanoutRow('failed chunks', (r) => String(r.summary.high.chunksFailed + r.summary.low.chunksFailed)),
    // What Temporal Cloud bills: counted from the histories, and by the server itself.
    ['**Temporal Cloud actions / 1,000 entries (histories)**', ...historyActions.map((a, i) => `**${actionsPerThousand(a, fanoutPhases[i][1].written)}**`), '-', '-', '-', '-'],
    fanoutRow('actions / 1,000 entries (server `action` counter)', (r) => (r.serverActions ? actionsPerThousand(r.serverActions, r.written) : '-')),
  ]);
  for (const [i, [name, r]] of fanoutPhases.entries()) {
    console.log(`actions, ${name}: ${historyActions[i].total} from the histories (${describeActions(historyActions[i])})`);
    if (r.serverActions) console.log(`  server counter: ${r.serverActions.total} (${describeActions(r.serverActions)})`);
  }
  const cpuAll = (m: Measured) => Number(perThousandAll(m.cpu, m.written));
  const perMillion = (i: number) => ((1e6 * historyActions[i].total) / fanoutPhases[i][1].written).toFixed(0);
  console.log(`\nheadline: fanout ${cpuAll(fanout)} ms CPU per 1,000 entries (durable, chunks 'local'), ${cpuAll(activity)} with chunks 'activity'; ${fanout.rate.toFixed(0)} vs ${activity.rate.toFixed(0)} entries/s`);
  console.log(`Temporal Cloud actions per million entries: ${perMillion(0)} chunks 'local', ${perMillion(1)} chunks 'activity'`);
  console.log(`HIGH first: every active follower ${s(fanout.allHighSeconds)} s after addActivity, everyone ${s(fanout.allSeconds)} s: ${((100 * fanout.allHighSeconds) / fanout.allSeconds).toFixed(0)}% (chunks 'activity': ${((100 * activity.allHighSeconds) / activity.allSeconds).toFixed(0)}%)`);
  for (const [name, r] of fanoutPhases) {
    const redone = r.written - (r.summary.high.entriesChanged + r.summary.low.entriesChanged);
    if (redone > 0) console.log(`redone, ${name}: ${redone} entries were found already written (chunks written again after a workflow task timed out: work done twice, no entry twice)`);
  }
  // Where the time went: when the passes (and partitions) of each priority started and closed.
  for (const [name, r] of fanoutPhases.slice(0, 2)) console.log(`timeline, ${name}: ${describeTimeline(await fanoutTimeline(temporal, r.workflowId))}`);
  console.log(`durability costs the fanout ${(cpuAll(fanout) - cpuAll(fanoutW1)).toFixed(0)} ms CPU per 1,000 entries and ${(100 * (1 - fanout.rate / fanoutW1.rate)).toFixed(0)}% of its entries/s (raw writes: ${(100 * (1 - raw.rate / rawW1.rate)).toFixed(0)}%)`);
  console.log(`fanout / same job without Temporal: ${(fanout.rate / plain.rate).toFixed(2)} of the entries/s, ${(cpuAll(fanout) / cpuAll(plain)).toFixed(1)}x the CPU per entry; / raw writes: ${(cpuAll(fanout) / cpuAll(raw)).toFixed(1)}x`);
  if (underLoad) {
    const { big, latencies, firstHigh, posts } = underLoad;
    const ms = (x: number) => (Number.isNaN(x) ? '-' : `${(x * 1000).toFixed(0)} ms`);
    const f = (xs: number[]) => `p50 ${ms(percentile(xs, 50))}, p95 ${ms(percentile(xs, 95))}, max ${ms(Math.max(...xs))}`;
    console.log(`\nHIGH under load: ${posts} fanouts of 1,000 followers (250 active) at ${streamRate}/s during a fanout of ${followers} (${big.seconds.toFixed(1)} s, ${perThousandAll(big.cpu, big.written)} ms CPU / 1,000 entries with the stream)`);
    console.log(`  addActivity returned -> all active followers written: ${f(latencies)}`);
    console.log(`  addActivity returned -> first active follower written: ${f(firstHigh)}`);
    console.log(`  the large fanout: all active followers ${s(big.allHighSeconds)} s, everyone ${s(big.allSeconds)} s`);
  }
}
