/**
 * The fanout end to end against the real Temporal dev server and the MongoDB-wire store
 * (FerretDB unless MONGODB_URI is set), through the app-facing FeedClient.
 */
import { activityInfo } from '@temporalio/activity';
import { temporal as protoTemporal } from '@temporalio/proto';
import type { ChildProcess } from 'node:child_process';
import type { Db } from 'mongodb';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { FanoutActivities, WriteFeedChunkInput } from '../../activities';
import { FeedClient } from '../../src/client/feed-client';
import { NotFoundError, ValidationError } from '../../src/contract/errors';
import { FanoutOperation, FeedType } from '../../src/contract/constants';
import { ChunkExecution } from '../../src/contract/fanout';
import { Collections } from '../../src/storage/collections';
import { FeedStore } from '../../src/storage/feed-store';
import { FollowStore } from '../../src/storage/follow-store';
import { createWorkers } from '../../src/worker/workers';
import { devServer, freshDb, uniqueName, workflowBundle } from '../utils/env';
import { CHUNK_SHAPES, fanoutWorkers, timelineOwners as timelineOwnersOf } from '../utils/fanout';
import { seedFollowers } from '../../dev/seed';
import { startWorkerCommand } from '../utils/worker-process';
import { testQueues, withWorkers } from '../utils/workers';

let temporal: Awaited<ReturnType<typeof devServer>>;
let mongo: Awaited<ReturnType<typeof freshDb>>;
let db: Db;

beforeAll(async () => {
  temporal = await devServer();
});

afterAll(async () => {
  await temporal?.close();
});

// A database per test: tests stay independent, and collections stay small (FerretDB scans
// collections for queries on fields other than _id).
beforeEach(async () => {
  mongo = await freshDb('it');
  db = mongo.db;
  await new FeedStore(db).ensureIndexes();
});

afterEach(async () => {
  // Worker processes a failed or timed-out test left behind must not outlive it.
  await Promise.all([...children].map((child) => stopProcess(child, 'SIGKILL')));
  await mongo?.drop();
});

function feedClientFor(queues: ReturnType<typeof testQueues>, chunkExecution: ChunkExecution = ChunkExecution.LOCAL): FeedClient {
  return new FeedClient({
    temporal: temporal.client,
    db,
    taskQueue: queues.workflow,
    fanout: { highTaskQueue: queues.high, lowTaskQueue: queues.low, chunkExecution },
  });
}

const workersFor = (queues: ReturnType<typeof testQueues>, wrap?: (a: FanoutActivities) => Partial<FanoutActivities>) =>
  fanoutWorkers(temporal.nativeConnection, db, queues, wrap);
const timelineOwners = (activityId: string) => timelineOwnersOf(db, activityId);

describe.each(CHUNK_SHAPES)('fanout on the dev server, chunks as $chunkExecution', ({ chunkExecution }) => {
  const feedClient = (queues: ReturnType<typeof testQueues>) => feedClientFor(queues, chunkExecution);
  // Activity tasks take a server round trip each: the slow-on-purpose tests give them more chunks
  // in flight (or bigger chunks) so they last about as long as with local activities.
  const local = chunkExecution === ChunkExecution.LOCAL;
  const chunkSize = local ? 20 : 50;

  it('writes one entry into each of 10,000 timelines, HIGH chunks on high-fanout and LOW on low-fanout', async () => {
    const actor = uniqueName('big');
    const queues = testQueues(actor);
    const followers = await seedFollowers(db, actor, 10_000, { prefix: `${actor}-f`, activeEvery: 4 });
    const queueOf = new Map<string, string[]>();
    const workers = await workersFor(queues, (a) => ({
      async writeFeedChunk(input: WriteFeedChunkInput) {
        const res = await a.writeFeedChunk(input);
        const { taskQueue } = activityInfo();
        for (const id of input.followerIds) queueOf.set(id, [...(queueOf.get(id) ?? []), taskQueue]);
        return res;
      },
    }));
    const feeds = feedClient(queues);
    let details = '';
    const summary = await withWorkers(workers, async () => {
      const { activityId } = await feeds.addActivity({ id: `${actor}-a1`, actor, verb: 'pin', object: 'photo-1' });
      const done = await feeds.waitForFanout(activityId);
      // What the Web UI shows as the run's current details (the metadata query needs a worker).
      details = (await feeds.handle(activityId).query<{ currentDetails?: string }>('__temporal_workflow_metadata')).currentDetails ?? '';
      return done;
    });

    const owners = await timelineOwners(`${actor}-a1`);
    expect(owners).toHaveLength(10_000);
    expect(owners).toEqual(followers.all);
    expect(summary).toMatchObject({ done: true, followersSeen: 10_000, failures: [] });
    // Two pages of 5,000 (the default), read by each priority's pass, hold 1,250 HIGH + 3,750 LOW
    // followers each: chunks of 12 x 100 + 50 and 37 x 100 + 50.
    expect(summary.pagesRead).toBe(4);
    expect(summary.high).toMatchObject({ followers: 2_500, chunksDone: 26, chunksFailed: 0, entriesChanged: 2_500 });
    expect(summary.low).toMatchObject({ followers: 7_500, chunksDone: 76, chunksFailed: 0, entriesChanged: 7_500 });
    for (const id of followers.high) expect(queueOf.get(id)).toEqual([queues.high]);
    for (const id of followers.low) expect(queueOf.get(id)).toEqual([queues.low]);
    // Readable in the Web UI: each chunk's activity says its priority, size and follower range,
    // read back from the history the UI reads; the current details give the live counts.
    const converter = temporal.client.options.loadedDataConverter.payloadConverter;
    const summaries: string[] = [];
    for (const priority of ['high', 'low'] as const) {
      const history = await temporal.client.workflow.getHandle(`fanout-add-${actor}-a1/${priority}`).fetchHistory();
      summaries.push(
        ...(history.events ?? [])
          // A local activity's marker, or an activity task's scheduled event.
          .filter((e) => (e.markerRecordedEventAttributes || e.activityTaskScheduledEventAttributes) && e.userMetadata?.summary)
          .map((e) => converter.fromPayload<string>(e.userMetadata!.summary!))
          .filter((t) => /^(HIGH|LOW) /.test(t)),
      );
    }
    expect(summaries).toHaveLength(102);
    expect(summaries.filter((t) => t.startsWith('HIGH 100 followers '))).toHaveLength(24);
    expect(summaries.filter((t) => t.startsWith('LOW 100 followers '))).toHaveLength(74);
    // (Markers are recorded as chunks finish, so in no fixed order.)
    expect(summaries).toContain(`HIGH 100 followers ${followers.high[0]} … ${followers.high[99]} (page 1)`);
    expect(details).toContain('HIGH: 2,500 of 2,500 followers written; 0 chunks in flight, 26 done, 0 failed');
    expect(details).toContain('LOW: 7,500 of 7,500 followers written; 0 chunks in flight, 76 done, 0 failed');
    // The actor's own feed got it too, read back through the client.
    const own = await feeds.readFeed(FeedType.USER, actor);
    expect(own.items.map((i) => i.activity?.verb)).toEqual(['pin']);
  });

  it('splits a fanout of 60,000 followers into partitions of 10,000: six ranges per priority, each follower once, every active one before any other', async () => {
    const actor = uniqueName('parts');
    const queues = testQueues(actor);
    const followers = await seedFollowers(db, actor, 60_000, { prefix: `${actor}-f`, activeEvery: 4 });
    const high = new Set(followers.high);
    // When each follower's chunk was written, by priority.
    const lastHigh = { at: 0 };
    const firstLow = { at: Infinity };
    const workers = await workersFor(queues, (a) => ({
      async writeFeedChunk(input: WriteFeedChunkInput) {
        const started = Date.now();
        const res = await a.writeFeedChunk(input);
        if (high.has(input.followerIds[0])) lastHigh.at = Math.max(lastHigh.at, Date.now());
        else firstLow.at = Math.min(firstLow.at, started);
        return res;
      },
    }));
    const feeds = feedClient(queues);
    const summary = await withWorkers(workers, async () => {
      const { activityId } = await feeds.addActivity({ id: `${actor}-a`, actor, verb: 'pin', object: 'p' }, { partitionSize: 10_000 });
      return feeds.waitForFanout(activityId);
    });
    expect(await timelineOwners(`${actor}-a`)).toEqual(followers.all);
    expect(summary).toMatchObject({ done: true, followersSeen: 60_000, failures: [] });
    expect(summary.high).toMatchObject({ followers: 15_000, entriesChanged: 15_000, chunksFailed: 0 });
    expect(summary.low).toMatchObject({ followers: 45_000, entriesChanged: 45_000, chunksFailed: 0 });
    // Every HIGH write acknowledged before the first LOW write began.
    expect(lastHigh.at).toBeLessThanOrEqual(firstLow.at);
    // Six passes per priority, on the priority's queue, over ranges that cover the list once.
    const ranges: Array<{ from: string | null; until: string | null }> = [];
    for (const priority of ['high', 'low'] as const) {
      for (let i = 0; i < 6; i++) {
        const pass = await temporal.client.workflow.getHandle(`fanout-add-${actor}-a/${priority}/${i}`).describe();
        expect(pass.status.name).toBe('COMPLETED');
        expect(pass.taskQueue).toBe(priority === 'high' ? queues.high : queues.low);
        const input = (await temporal.client.workflow.getHandle(pass.workflowId).fetchHistory()).events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
        const range = temporal.client.options.loadedDataConverter.payloadConverter.fromPayload<{ partition: { index: number; count: number; from: string | null; until: string | null } }>(input!).partition;
        expect(range).toMatchObject({ index: i, count: 6 });
        if (priority === 'high') ranges.push(range);
      }
    }
    expect(ranges[0].from).toBeNull();
    expect(ranges[5].until).toBeNull();
    for (let i = 1; i < 6; i++) expect(ranges[i].from).toBe(ranges[i - 1].until);
  });

  it('writes a follower who became active between the HIGH and the LOW pass (nobody skipped by both)', async () => {
    const actor = uniqueName('between');
    const queues = testQueues(actor);
    const followers = await seedFollowers(db, actor, 400, { prefix: `${actor}-f`, activeEvery: 2 });
    const feeds = feedClient(queues);
    // No worker on the LOW queue yet: the LOW pass waits while the HIGH pass finishes.
    const first = await createWorkers({
      connection: temporal.nativeConnection,
      db,
      workflowTaskQueue: queues.workflow,
      queues: [{ taskQueue: queues.workflow }, { taskQueue: queues.high, workflows: true }],
      workflowBundle: await workflowBundle(),
    });
    const late = await createWorkers({ connection: temporal.nativeConnection, db, queues: [{ taskQueue: queues.low, workflows: true }], workflowBundle: await workflowBundle() });
    // Pages of 100: a fanout of one page is written inline, without passes.
    const { activityId } = await feeds.addActivity({ id: `${actor}-a`, actor, verb: 'post', object: 'p' }, { pageSize: 100 });
    const summary = await withWorkers(first, async () => {
      // The HIGH pass is over (it has written all 200 active followers).
      await waitFor(async () => (await feeds.getProgress(activityId)).high.followers === 200);
      // Ten LOW followers and one HIGH follower open the app now: the HIGH pass read them as
      // LOW (and HIGH); the LOW pass reads them after it.
      const touched = [...followers.low.slice(0, 10), followers.high[0]];
      await new FollowStore(db).setLastActive(touched.map((userId) => ({ userId, lastActiveAt: new Date() })));
      return withWorkers(late, () => feeds.waitForFanout(activityId));
    });
    expect(await timelineOwners(activityId)).toEqual(followers.all);
    // The HIGH follower active since the fanout began was written by the HIGH pass: the LOW pass
    // finds its entry and leaves it out, so the counts add up.
    expect(summary.high).toMatchObject({ followers: 200, entriesChanged: 200 });
    expect(summary.low).toMatchObject({ followers: 200, entriesChanged: 200, chunksFailed: 0 });
    expect(summary.high.followers + summary.low.followers).toBe(summary.followersSeen);
  });

  it('the LOW pass leaves out followers the HIGH pass wrote (active within the clock-skew window before the post): each written once', async () => {
    const actor = uniqueName('skew');
    const queues = testQueues(actor);
    const followers = await seedFollowers(db, actor, 2_000, { prefix: `${actor}-f`, activeEvery: 4 });
    // The active quarter opened the app a minute ago: inside the 5 minutes before the fanout
    // that the LOW pass cannot tell from "after it began" (clock skew), so it reads them as LOW.
    await new FollowStore(db).setLastActive(followers.high.map((userId) => ({ userId, lastActiveAt: new Date(Date.now() - 60_000) })));
    const writes = new Map<string, number>();
    const workers = await workersFor(queues, (a) => ({
      async writeFeedChunk(input: WriteFeedChunkInput) {
        const res = await a.writeFeedChunk(input);
        for (const id of input.followerIds) writes.set(id, (writes.get(id) ?? 0) + 1);
        return res;
      },
    }));
    const feeds = feedClient(queues);
    // Pages of 500: four pages, so by passes.
    const summary = await withWorkers(workers, async () => {
      const { activityId } = await feeds.addActivity({ id: `${actor}-a`, actor, verb: 'post', object: 'p' }, { pageSize: 500 });
      return feeds.waitForFanout(activityId);
    });
    expect(await timelineOwners(`${actor}-a`)).toEqual(followers.all);
    // Nobody written twice: the HIGH pass wrote the 500, the LOW pass the other 1,500 only.
    expect([...writes.values()].filter((n) => n !== 1)).toEqual([]);
    expect(writes.size).toBe(2_000);
    expect(summary.high).toMatchObject({ followers: 500, entriesChanged: 500, followersWritten: 500 });
    expect(summary.low).toMatchObject({ followers: 1_500, entriesChanged: 1_500, followersWritten: 1_500, chunksFailed: 0 });
    expect(summary.followersSeen).toBe(2_000);
  });

  it("a running LOW pass's current details count what it has written of what it found, and of all there are", async () => {
    const actor = uniqueName('lowdet');
    const queues = testQueues(actor);
    await seedFollowers(db, actor, 3_000, { prefix: `${actor}-f`, activeEvery: 4 });
    // LOW chunks of 10 take 15 ms, one at a time: the LOW pass runs about 225 chunks for 3.5 s,
    // so it reports mid-way (every 128 chunks).
    const workers = await workersFor(queues, (a) => ({
      async writeFeedChunk(input: WriteFeedChunkInput) {
        if (activityInfo().taskQueue === queues.low) await new Promise((r) => setTimeout(r, 15));
        return a.writeFeedChunk(input);
      },
    }));
    const feeds = feedClient(queues);
    const seen: string[] = [];
    await withWorkers(workers, async () => {
      const { activityId } = await feeds.addActivity({ id: `${actor}-a`, actor, verb: 'post', object: 'p' }, { pageSize: 500, chunkSize: 10, maxInFlight: local ? 1 : 4 });
      const done = feeds.waitForFanout(activityId);
      let finished = false;
      void done.finally(() => (finished = true));
      while (!finished) {
        const details = (await feeds.handle(activityId).query<{ currentDetails?: string }>('__temporal_workflow_metadata')).currentDetails ?? '';
        const low = /^LOW: .*$/m.exec(details)?.[0];
        if (low) seen.push(low);
        await new Promise((r) => setTimeout(r, 100));
      }
      await done;
    });
    // Before the LOW pass reports, it says so; after, it counts.
    for (const line of seen.filter((l) => !l.includes('found so far') && !l.startsWith('LOW: 2,250 of 2,250 followers written'))) {
      expect(['LOW: none found yet (2,250 followers to write)', 'LOW: pass started, nothing reported yet (2,250 followers to write)', 'LOW: none found yet']).toContain(line);
    }
    const running = seen.filter((l) => l.includes('found so far'));
    console.log(`LOW lines seen while running: ${[...new Set(running)].slice(0, 6).join(' | ')}`);
    // At least one report came in while the LOW pass ran (it reports every 128 chunks, and by size).
    expect(running.length).toBeGreaterThan(0);
    for (const line of running) {
      const m = /^LOW: ([\d,]+) of the ([\d,]+) followers found so far written \(2,250 in all\); \d+ chunks in flight, \d+ done, 0 failed$/.exec(line);
      expect(m, line).not.toBeNull();
      const [written, found] = [Number(m![1].replace(/,/g, '')), Number(m![2].replace(/,/g, ''))];
      expect(written, line).toBeLessThanOrEqual(found);
      expect(found, line).toBeGreaterThan(0);
      expect(found, line).toBeLessThanOrEqual(2_250);
    }
  });

  it('runs one fanout when the same activity is submitted twice', async () => {
    const actor = uniqueName('twice');
    const queues = testQueues(actor);
    const followers = await seedFollowers(db, actor, 300, { prefix: `${actor}-f` });
    const feeds = feedClient(queues);
    const activity = { actor, verb: 'like', object: 'post-7', time: '2026-11-20T10:00:00Z' };
    // Both submissions before any worker runs: the second finds the first still running.
    const first = await feeds.addActivity(activity);
    const second = await feeds.addActivity(activity);
    expect(second.activityId).toBe(first.activityId);
    expect([first.started, second.started]).toEqual([true, false]);
    const workers = await workersFor(queues);
    await withWorkers(workers, () => feeds.waitForFanout(first.activityId));
    // And once more after it completed.
    const third = await feeds.addActivity(activity);
    expect(third.started).toBe(false);

    const runs = [];
    for await (const run of temporal.client.workflow.list({ query: `WorkflowId = '${first.workflowId}'` })) runs.push(run);
    expect(runs).toHaveLength(1);
    expect(await timelineOwners(first.activityId)).toEqual(followers.all);
    expect(await db.collection(Collections.ACTIVITIES).countDocuments({ _id: first.activityId as never })).toBe(1);
  });

  it('finishes a fanout whose worker is stopped and then killed mid-way, nothing lost or duplicated', async () => {
    const actor = uniqueName('crash');
    const queues = testQueues(actor);
    const followers = await seedFollowers(db, actor, 20_000, { prefix: `${actor}-f` });
    const feeds = feedClient(queues);
    // Small sequential chunks over several pages (so by priority passes), so the fanout is still
    // running when the worker goes away: local activity chunks of 20 take a few ms each.
    const { activityId } = await feeds.addActivity({ id: `${actor}-a1`, actor, verb: 'pin', object: 'x' }, { chunkSize, maxInFlight: local ? 1 : 4, pageSize: 2_000 });

    // Counted in the store, not by query: a query needs a live workflow worker.
    const written = () => db.collection(Collections.feed(FeedType.TIMELINE)).countDocuments({ activityId });
    const waitForEntries = async (atLeast: number) => {
      for (;;) {
        const n = await written();
        if (n >= atLeast) return n;
        await new Promise((r) => setTimeout(r, 50));
      }
    };

    // 1. Graceful stop (SIGTERM): the worker finishes what it runs and exits 0.
    let worker = startWorkerProcess(db.databaseName, queues);
    const before = await waitForEntries(300);
    expect(await stopProcess(worker, 'SIGTERM')).toBe(0);
    // 2. Crash (SIGKILL) of a second worker, mid-chunk as likely as not.
    worker = startWorkerProcess(db.databaseName, queues);
    await waitForEntries(before + 300);
    await stopProcess(worker, 'SIGKILL');
    const atCrash = await written();
    console.log(`crash test: ${before} entries at SIGTERM, ${atCrash} at SIGKILL, of 20000`);
    expect(atCrash).toBeLessThan(20_000);
    // 3. A fresh worker picks the same fanout up: the killed chunk is re-dispatched once its
    //    heartbeat timeout (10 s) passes, not after a start-to-close timeout of minutes.
    const killedAt = Date.now();
    worker = startWorkerProcess(db.databaseName, queues);
    try {
      await waitForEntries(atCrash + 1);
      const recovery = (Date.now() - killedAt) / 1000;
      console.log(`crash test: writing again ${recovery.toFixed(1)} s after the SIGKILL (new worker started at once)`);
      // Before heartbeats the page read and chunks waited out 30 s - 2 min timeouts.
      expect(recovery).toBeLessThan(25);
      const summary = await feeds.waitForFanout(activityId);
      expect(summary.done).toBe(true);
      expect(summary.followersSeen).toBe(20_000);
      // Each page splits into HIGH and LOW chunks of at most chunkSize.
      expect(summary.high.chunksDone + summary.low.chunksDone).toBeGreaterThanOrEqual(20_000 / chunkSize);
      expect(summary.high.chunksFailed + summary.low.chunksFailed).toBe(0);
    } finally {
      await stopProcess(worker, 'SIGTERM');
    }
    const owners = await timelineOwners(activityId);
    expect(owners).toHaveLength(20_000);
    expect(owners).toEqual(followers.all);
  });

  it('removes an activity from every feed and leaves other activities alone', async () => {
    const actor = uniqueName('remove');
    const queues = testQueues(actor);
    const followers = await seedFollowers(db, actor, 1_000, { prefix: `${actor}-f` });
    const feeds = feedClient(queues);
    const workers = await workersFor(queues);
    await withWorkers(workers, async () => {
      const kept = await feeds.addActivity({ id: `${actor}-keep`, actor, verb: 'pin', object: 'a', time: 1_000 });
      const gone = await feeds.addActivity({ id: `${actor}-gone`, actor, verb: 'pin', object: 'b', time: 2_000 });
      await feeds.waitForFanout(kept.activityId);
      await feeds.waitForFanout(gone.activityId);
      expect(await timelineOwners(gone.activityId)).toEqual(followers.all);

      const removal = await feeds.removeActivity(gone.activityId);
      // Hidden at once for readers, before the removal fanout is done.
      expect((await feeds.readFeed(FeedType.TIMELINE, followers.all[0])).items.map((i) => i.activityId)).toEqual([kept.activityId]);
      const summary = await feeds.waitForFanout(gone.activityId, FanoutOperation.REMOVE);
      expect(summary.high.entriesChanged + summary.low.entriesChanged).toBe(1_000);
      expect(removal.workflowId).toBe(`fanout-remove-${gone.activityId}`);
      // Removing again is a no-op that points at the same removal.
      expect(await feeds.removeActivity(gone.activityId)).toMatchObject({ started: false, workflowId: removal.workflowId });
    });
    expect(await timelineOwners(`${actor}-gone`)).toEqual([]);
    expect(await timelineOwners(`${actor}-keep`)).toEqual(followers.all);
    expect((await feeds.readFeed(FeedType.USER, actor)).items.map((i) => i.activityId)).toEqual([`${actor}-keep`]);
    expect(await db.collection(Collections.ACTIVITIES).countDocuments({ _id: `${actor}-gone` as never })).toBe(0);
  });

  it('removes an activity midway through its 50,000-follower fanout (in the LOW pass): writes stop within the chunks in flight, no entry left anywhere', async () => {
    const actor = uniqueName('midrm');
    const queues = testQueues(actor);
    await seedFollowers(db, actor, 50_000, { prefix: `${actor}-f`, activeEvery: 4 });
    const feeds = feedClient(queues);
    // Entries each chunk wrote, and when it finished.
    const chunks: Array<{ at: number; changed: number }> = [];
    const workers = await workersFor(queues, (a) => ({
      async writeFeedChunk(input: WriteFeedChunkInput) {
        const res = await a.writeFeedChunk(input);
        chunks.push({ at: Date.now(), changed: res.changed });
        return res;
      },
    }));
    const written = () => db.collection(Collections.feed(FeedType.TIMELINE)).countDocuments({ activityId: `${actor}-a1` });
    await withWorkers(workers, async () => {
      const { activityId } = await feeds.addActivity({ id: `${actor}-a1`, actor, verb: 'pin', object: 'p1' });
      // Half-way by the writes acknowledged in this process (a count in the store lags behind, and
      // scans the collection on FerretDB: the fanout could finish before it answers).
      while (chunks.reduce((n, c) => n + c.changed, 0) < 25_000) await new Promise((r) => setTimeout(r, 25));
      const started = Date.now();
      // Marks it removed (chunks stop writing it), cancels the add (its chunks in flight stop
      // first), then sweeps the entries out.
      await feeds.removeActivity(activityId);
      const removal = await feeds.waitForFanout(activityId, FanoutOperation.REMOVE);
      const seconds = (Date.now() - started) / 1000;
      const add = await feeds.handle(activityId).describe();
      const after = chunks.filter((c) => c.at >= started).reduce((n, c) => n + c.changed, 0);
      console.log(
        `midway removal: ${after} entries written after removeActivity was called; ${removal.low.entriesChanged} removed in ${seconds.toFixed(1)} s ` +
          `(${removal.low.chunksDone} batches); the add ended ${add.status.name}`,
      );
      expect(add.status.name).toBe('CANCELLED');
      expect(removal.low.entriesChanged).toBeGreaterThanOrEqual(25_000);
      expect(removal.low.entriesChanged).toBeLessThan(50_000);
      // The chunks stop writing within those in flight (16 x 100), not at the pass's next flush.
      expect(after).toBeLessThan(5_000);
    });
    expect(await written()).toBe(0);
    expect(await db.collection(Collections.feed(FeedType.USER)).countDocuments({ activityId: `${actor}-a1` })).toBe(0);
    expect(await db.collection(Collections.ACTIVITIES).countDocuments({ _id: `${actor}-a1` as never })).toBe(0);
  });

  it('removes an activity from every feed type its add wrote (two named ones), also for one stored before they were recorded', async () => {
    const actor = uniqueName('rmtypes');
    const queues = testQueues(actor);
    const followers = await seedFollowers(db, actor, 300, { prefix: `${actor}-f` });
    const feeds = feedClient(queues);
    const both = { feedTypes: [FeedType.TIMELINE, FeedType.TIMELINE_AGGREGATED] };
    const groupsWith = (activityId: string) => db.collection(Collections.feed(FeedType.TIMELINE_AGGREGATED)).countDocuments({ activityIds: activityId });
    const entriesOf = (activityId: string) => db.collection(Collections.feed(FeedType.TIMELINE)).countDocuments({ activityId });
    await withWorkers(await workersFor(queues), async () => {
      const ids = [`${actor}-now`, `${actor}-old`];
      for (const [i, id] of ids.entries()) {
        await feeds.addActivity({ id, actor, verb: i ? 'like' : 'pin', object: `o${i}` }, both);
        await feeds.waitForFanout(id);
        expect(await entriesOf(id)).toBe(300);
        expect(await groupsWith(id)).toBe(300);
      }
      // The second as an activity stored before the feed types were recorded with it: its
      // removal asks the add fanout what it was started with.
      await db.collection(Collections.ACTIVITIES).updateOne({ _id: ids[1] as never }, { $unset: { feedTypes: '' } });

      // Hidden at once, before any sweep: the aggregated reader no longer counts it.
      const reader = followers.all[0];
      await feeds.store.markActivityRemoved(ids[0]);
      const groups = (await feeds.readAggregatedFeed(FeedType.TIMELINE_AGGREGATED, reader)).groups;
      expect(groups.map((g) => g.activities.map((a) => a.id))).toEqual([[ids[1]]]);
      expect(groups.every((g) => g.activityCount === g.activities.length)).toBe(true);

      for (const id of ids) {
        await feeds.removeActivity(id);
        const removal = await feeds.waitForFanout(id, FanoutOperation.REMOVE);
        expect(removal.feedTypes).toEqual(both.feedTypes);
        expect(await entriesOf(id)).toBe(0);
        expect(await groupsWith(id)).toBe(0);
      }
      expect((await feeds.readAggregatedFeed(FeedType.TIMELINE_AGGREGATED, reader)).groups).toEqual([]);
    });
  });

});

// Shape-independent: how a local-activity pass bounds its workflow tasks, and errors before anything runs.
describe('fanout on the dev server', () => {
  it('a pass records its chunks in workflow tasks of bounded size, reporting every 128 chunks or 512 kB rather than after every page', async () => {
    const actor = uniqueName('flush');
    const queues = testQueues(actor);
    await seedFollowers(db, actor, 20_000, { prefix: `${actor}-f`, activeEvery: 4 });
    const feeds = feedClientFor(queues);
    // Chunks of 10 in pages of 1,000: the LOW pass's 1,500 or so chunk markers come to more than
    // one flush's worth (512 kB), in about 15 pages.
    const summary = await withWorkers(await workersFor(queues), async () => {
      const { activityId } = await feeds.addActivity({ id: `${actor}-a`, actor, verb: 'pin', object: 'p' }, { pageSize: 1000, chunkSize: 10 });
      return feeds.waitForFanout(activityId);
    });
    expect(summary).toMatchObject({ done: true, followersSeen: 20_000, failures: [] });
    expect(summary.low).toMatchObject({ followers: 15_000, chunksFailed: 0, entriesChanged: 15_000 });
    expect(await timelineOwners(`${actor}-a`)).toHaveLength(20_000);

    const events = (await temporal.client.workflow.getHandle(`fanout-add-${actor}-a/low`).fetchHistory()).events ?? [];
    // Markers recorded by one workflow task follow its WorkflowTaskCompleted event.
    const perTask: number[] = [];
    for (const e of events) {
      if (e.workflowTaskCompletedEventAttributes) perTask.push(0);
      else if (e.markerRecordedEventAttributes) perTask[perTask.length - 1] += protoTemporal.api.history.v1.HistoryEvent.encode(e).finish().length;
    }
    const total = perTask.reduce((a, b) => a + b, 0);
    const largest = Math.max(...perTask);
    const reports = events.filter((e) => e.signalExternalWorkflowExecutionInitiatedEventAttributes).length;
    console.log(`LOW pass: ${reports} reports; both passes read ${summary.pagesRead} pages; marker bytes ${total} in all, ${largest} in the largest workflow task`);
    // Bounded: never everything in one task (which at 1,000,000 followers outgrew gRPC's 4 MB).
    expect(largest).toBeLessThan(0.75 * total);
    expect(largest).toBeLessThan(700_000);
    // Not a report (and a drained pipeline) per chunk or page: one per 128 chunks dispatched or
    // per 512 kB of markers, whichever comes first, and the last.
    const lowChunks = summary.low.chunksDone + summary.low.chunksFailed;
    expect(reports).toBeGreaterThanOrEqual(2);
    expect(reports).toBeLessThanOrEqual(Math.ceil(lowChunks / 128) + Math.ceil(total / (512 * 1024)) + 1);
  });

  it('asking for the progress or result of a fanout that does not exist says so, naming the activity', async () => {
    const feeds = feedClientFor(testQueues(uniqueName('nofanout')));
    for (const call of [() => feeds.getProgress('no-such-activity'), () => feeds.waitForFanout('no-such-activity')]) {
      const err = await call().then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(NotFoundError);
      expect((err as Error).message).toBe('no add fanout for activity "no-such-activity" (no workflow fanout-add-no-such-activity); check the id, or the namespace');
    }
  });

  it('rejects bad input with an error naming the field, and writes and starts nothing', async () => {
    const actor = uniqueName('badin');
    const queues = testQueues(actor);
    const feeds = feedClientFor(queues);
    const good = { id: `${actor}-a`, actor, verb: 'pin', object: 'o1' };
    const cases: Array<[string, () => Promise<unknown>, string]> = [
      ['missing actor', () => feeds.addActivity({ ...good, actor: undefined } as never), 'activity.actor'],
      ['missing verb', () => feeds.addActivity({ ...good, verb: undefined } as never), 'activity.verb'],
      ['wrong type', () => feeds.addActivity({ ...good, object: 42 } as never), 'activity.object'],
      ['bad time', () => feeds.addActivity({ ...good, time: 'yesterday' }), 'activity.time'],
      ['oversized extra', () => feeds.addActivity({ ...good, extra: { blob: 'x'.repeat(5000) } }), 'activity.extra'],
      ['unknown field', () => feeds.addActivity({ ...good, colour: 'red' } as never), 'activity.colour'],
      ['chunk size 0', () => feeds.addActivity(good, { chunkSize: 0 }), 'options.chunkSize'],
      ['unknown feed type', () => feeds.addActivity(good, { feedTypes: ['nope'] }), 'options.feedTypes[0]'],
    ];
    for (const [name, call, field] of cases) {
      const err = await call().then(() => undefined, (e: unknown) => e);
      expect(err, name).toBeInstanceOf(ValidationError);
      expect((err as ValidationError).field, name).toBe(field);
      expect((err as Error).message.startsWith(field), name).toBe(true);
    }
    expect(await db.collection(Collections.ACTIVITIES).countDocuments({ actor })).toBe(0);
    expect(await db.collection(Collections.feed(FeedType.USER)).countDocuments({ owner: actor })).toBe(0);
    const runs = [];
    for await (const run of temporal.client.workflow.list({ query: `WorkflowId = 'fanout-add-${actor}-a'` })) runs.push(run);
    expect(runs).toHaveLength(0);
  });
});

const children = new Set<ChildProcess>();

/** Starts the worker command (`feed-fanout worker`) as its own process on the test's queues. */
function startWorkerProcess(database: string, queues: ReturnType<typeof testQueues>): ChildProcess {
  const worker = startWorkerCommand(database, ['--workflow-queue', queues.workflow, '--queue', queues.workflow, '--pass-queue', queues.high, '--pass-queue', queues.low, '--no-schedules']);
  const child = worker.child;
  children.add(child);
  child.on('exit', (code: number | null, signal: NodeJS.Signals | null) => {
    children.delete(child);
    if (code !== 0 && signal === null) console.error(`worker process exited with ${code}:\n${worker.output()}`);
  });
  return child;
}

/** Sends `signal` and resolves with the exit code (null when killed by the signal). */
function stopProcess(child: ChildProcess, signal: NodeJS.Signals): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve(child.exitCode);
    child.once('exit', (code) => resolve(code));
    child.kill(signal);
  });
}

/** Polls `check` every 100 ms until it is true; fails after `timeoutMs`. */
async function waitFor(check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > timeoutMs) throw new Error(`not true within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
