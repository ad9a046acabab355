/**
 * A pass's local activities finish in whatever order the store answers, and reach a replay at
 * other moments than they reached the run: the pass must still issue its commands in the same
 * order (a worker that takes a run over replays it). Records passes whose chunks end in random
 * order, some failing for good, flushing by count mid-page, and replays them with the SDK's
 * replayer.
 */
import { Worker } from '@temporalio/worker';
import type { Db } from 'mongodb';
import { afterAll, beforeAll, beforeEach, afterEach, describe, expect, it } from 'vitest';
import type { GetFollowerPagePartInput, WriteFeedChunkInput } from '../../activities';
import { FeedClient } from '../../src/client';
import { FanoutFailedError } from '../../src/contract/errors';
import { Collections } from '../../src/storage/collections';
import { FeedStore } from '../../src/storage/feed-store';
import { seedFollowers } from '../../dev/seed';
import { devServer, freshDb, uniqueName, workflowBundle } from '../utils/env';
import { CHUNK_SHAPES, fanoutWorkers, timelineOwners } from '../utils/fanout';
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
beforeEach(async () => {
  mongo = await freshDb('prp');
  db = mongo.db;
  await new FeedStore(db).ensureIndexes();
});
afterEach(async () => {
  await mongo?.drop();
});

describe('a pass replays whatever order its chunks finished in', () => {
  it('with chunks ending at random, some failing for good, and flushes mid-page', async () => {
    const actor = uniqueName('prp');
    const queues = testQueues(actor);
    await seedFollowers(db, actor, 6_000, { prefix: `${actor}-f`, activeEvery: 4 });
    // Two follower ids that can never be feed owners: their chunks fail for good (non-retryable).
    for (const bad of [`${actor}-f001000x/bad`, `${actor}-f004000x/bad`]) {
      await db.collection(Collections.FOLLOWS).insertOne({ _id: `${actor}/${bad}` as never, follower: bad, followee: actor, createdAt: new Date() });
    }
    const workers = await fanoutWorkers(temporal.nativeConnection, db, queues, (a) => ({
      async writeFeedChunk(input: WriteFeedChunkInput) {
        // Chunks end out of the order they started in.
        await new Promise((r) => setTimeout(r, Math.random() * 30));
        return a.writeFeedChunk(input);
      },
    }));
    const feeds = new FeedClient({ temporal: temporal.client, db, taskQueue: queues.workflow, fanout: { highTaskQueue: queues.high, lowTaskQueue: queues.low } });
    const err = await withWorkers(workers, async () => {
      // Chunks of 10: each pass dispatches several hundred, so it flushes every 128 mid-page.
      const { activityId } = await feeds.addActivity({ id: `${actor}-a`, actor, verb: 'pin', object: 'p' }, { pageSize: 1000, chunkSize: 10, maxInFlight: 8 });
      return feeds.waitForFanout(activityId).then(() => undefined, (e: unknown) => e);
    });
    expect(err).toBeInstanceOf(FanoutFailedError);
    expect((err as FanoutFailedError).progress?.low.chunksFailed).toBe(2);
    for (const priority of ['high', 'low']) {
      const workflowId = `fanout-add-${actor}-a/${priority}`;
      const history = await temporal.client.workflow.getHandle(workflowId).fetchHistory();
      const events = history.events ?? [];
      const reports = events.filter((e) => e.signalExternalWorkflowExecutionInitiatedEventAttributes).length;
      console.log(`${priority} pass: ${events.length} events, ${reports} reports`);
      expect(reports).toBeGreaterThanOrEqual(2);
      await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, history, workflowId);
    }
    // And the fanout itself.
    const fanoutId = `fanout-add-${actor}-a`;
    await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, await temporal.client.workflow.getHandle(fanoutId).fetchHistory(), fanoutId);
  });

  it('a one-page fanout written inline, with a chunk failing for good among chunks ending at random', async () => {
    const actor = uniqueName('prpi');
    const queues = testQueues(actor);
    await seedFollowers(db, actor, 600, { prefix: `${actor}-f`, activeEvery: 3 });
    const bad = `${actor}-f000300x/bad`;
    await db.collection(Collections.FOLLOWS).insertOne({ _id: `${actor}/${bad}` as never, follower: bad, followee: actor, createdAt: new Date() });
    const workers = await fanoutWorkers(temporal.nativeConnection, db, queues, (a) => ({
      async writeFeedChunk(input: WriteFeedChunkInput) {
        await new Promise((r) => setTimeout(r, Math.random() * 30));
        return a.writeFeedChunk(input);
      },
    }));
    const feeds = new FeedClient({ temporal: temporal.client, db, taskQueue: queues.workflow, fanout: { highTaskQueue: queues.high, lowTaskQueue: queues.low } });
    const err = await withWorkers(workers, async () => {
      const { activityId } = await feeds.addActivity({ id: `${actor}-a`, actor, verb: 'pin', object: 'p' }, { chunkSize: 10, maxInFlight: 8 });
      return feeds.waitForFanout(activityId).then(() => undefined, (e: unknown) => e);
    });
    expect(err).toBeInstanceOf(FanoutFailedError);
    const fanoutId = `fanout-add-${actor}-a`;
    const history = await temporal.client.workflow.getHandle(fanoutId).fetchHistory();
    const converter = temporal.client.options.loadedDataConverter.payloadConverter;
    const failedMarkers = (history.events ?? []).filter((e) => e.markerRecordedEventAttributes && e.userMetadata?.summary && converter.fromPayload<string>(e.userMetadata.summary).startsWith('FAILED: '));
    expect(failedMarkers).toHaveLength(1);
    await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, history, fanoutId);
  });
});

describe.each(CHUNK_SHAPES)('a pass that takes its retries over, chunks as $chunkExecution', ({ chunkExecution }) => {
  it('chunk writes and a page read failing with retryable errors: probed, written once each, shown while retried, and replayed', async () => {
    const actor = uniqueName('prr');
    const queues = testQueues(actor);
    const followers = await seedFollowers(db, actor, 3_000, { prefix: `${actor}-f`, activeEvery: 4 });
    // Every 20th chunk fails its first 3 attempts (the pass gives 2, then a probe takes it over);
    // the LOW pass's second page read fails 3 times. Chunks end in random order.
    const failures = new Map<string, number>();
    const failFirst = (key: string, times: number): void => {
      const n = failures.get(key) ?? 0;
      failures.set(key, n + 1);
      if (n < times) throw new Error(`injected: store hiccup (${key}, attempt ${n + 1})`);
    };
    let chunks = 0;
    const workers = await fanoutWorkers(temporal.nativeConnection, db, queues, (a) => ({
      async writeFeedChunk(input: WriteFeedChunkInput) {
        await new Promise((r) => setTimeout(r, Math.random() * 20));
        if (!failures.has(input.followerIds[0]) && chunks++ % 20 === 7) failures.set(input.followerIds[0], 0);
        if (failures.has(input.followerIds[0])) failFirst(input.followerIds[0], 3);
        return a.writeFeedChunk(input);
      },
      async getFollowerPagePart(input: GetFollowerPagePartInput) {
        if (input.priority === 'low' && input.cursor !== null && (failures.get('read') ?? 0) < 4) failFirst('read', 3);
        return a.getFollowerPagePart(input);
      },
    }));
    const feeds = new FeedClient({ temporal: temporal.client, db, taskQueue: queues.workflow, fanout: { highTaskQueue: queues.high, lowTaskQueue: queues.low, chunkExecution } });
    let seen = 0;
    const summary = await withWorkers(workers, async () => {
      const { activityId } = await feeds.addActivity({ id: `${actor}-a`, actor, verb: 'pin', object: 'p' }, { pageSize: 500, chunkSize: 10, maxInFlight: 8 });
      const done = feeds.waitForFanout(activityId);
      let finished = false;
      void done.finally(() => (finished = true));
      while (!finished) {
        const p = await feeds.getProgress(activityId).catch(() => undefined);
        if (p?.retrying) seen++;
        await new Promise((r) => setTimeout(r, 200));
      }
      return done;
    });
    expect(summary).toMatchObject({ done: true, followersSeen: 3_000, failures: [] });
    expect(summary.high.chunksFailed + summary.low.chunksFailed).toBe(0);
    expect(summary.retrying).toBeUndefined();
    expect(seen, 'progress showed the retries while they ran').toBeGreaterThan(0);
    expect(failures.get('read')).toBe(4);
    expect(await timelineOwners(db, `${actor}-a`)).toEqual(followers.all);
    for (const priority of ['high', 'low']) {
      const workflowId = `fanout-add-${actor}-a/${priority}`;
      const history = await temporal.client.workflow.getHandle(workflowId).fetchHistory();
      // Probes are activity tasks in either shape.
      const probes = (history.events ?? []).filter((e) => e.activityTaskScheduledEventAttributes?.retryPolicy?.maximumAttempts === 4).length;
      console.log(`retries taken over (${chunkExecution}), ${priority} pass: ${history.events?.length} events, ${probes} probes`);
      expect(probes).toBeGreaterThan(0);
      await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, history, workflowId);
    }
  });

  it('a page read that fails while chunks wait: the chunks are written again first, and nothing of the next page goes into the outage', async () => {
    const actor = uniqueName('prd');
    const queues = testQueues(actor);
    const followers = await seedFollowers(db, actor, 2_000, { prefix: `${actor}-f`, activeEvery: 4 });
    // The store goes down for 10 s when the LOW pass asks for its second page. Chunk writes fail
    // while it is down; the page read fails its first 2 attempts (the pass's own), then comes
    // back from memory even though the store is down, as FerretDB's snapshot pages do.
    let downUntil = 0;
    const down = (): boolean => Date.now() < downUntil;
    let reads = 0;
    const readWhileDown = new Set<string>();
    let intoTheOutage = 0;
    const workers = await fanoutWorkers(temporal.nativeConnection, db, queues, (a) => ({
      async writeFeedChunk(input: WriteFeedChunkInput) {
        if (down()) {
          if (readWhileDown.has(input.followerIds[0])) intoTheOutage++;
          throw new Error('injected: store unreachable');
        }
        return a.writeFeedChunk(input);
      },
      async getFollowerPagePart(input: GetFollowerPagePartInput) {
        if (input.priority === 'low' && input.cursor !== null && reads++ < 2) {
          if (reads === 1) downUntil = Date.now() + 10_000;
          throw new Error('injected: store unreachable (page read)');
        }
        const page = await a.getFollowerPagePart(input);
        if (down()) for (const id of page.ids) readWhileDown.add(id);
        return page;
      },
    }));
    const feeds = new FeedClient({ temporal: temporal.client, db, taskQueue: queues.workflow, fanout: { highTaskQueue: queues.high, lowTaskQueue: queues.low, chunkExecution } });
    const summary = await withWorkers(workers, async () => {
      const { activityId } = await feeds.addActivity({ id: `${actor}-a`, actor, verb: 'pin', object: 'p' }, { pageSize: 500, chunkSize: 10, maxInFlight: 8 });
      return feeds.waitForFanout(activityId);
    });
    expect(summary).toMatchObject({ done: true, followersSeen: 2_000, failures: [] });
    expect(reads).toBeGreaterThanOrEqual(2);
    expect(intoTheOutage, 'chunk attempts of a page read while the store was down, made while it was down').toBe(0);
    expect(await timelineOwners(db, `${actor}-a`)).toEqual(followers.all);
    const workflowId = `fanout-add-${actor}-a/low`;
    await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, await temporal.client.workflow.getHandle(workflowId).fetchHistory(), workflowId);
  });
});

/**
 * Every prefix of `history` that ends where a workflow task starts (what a worker that takes the
 * run over, or answers a query without it cached, replays), replayed; returns the failures.
 */
async function replayPrefixes(workflowId: string, history: Awaited<ReturnType<ReturnType<typeof temporal.client.workflow.getHandle>['fetchHistory']>>): Promise<string[]> {
  const events = history.events ?? [];
  const failures: string[] = [];
  const bundle = await workflowBundle();
  const cuts = events.flatMap((e, i) => (e.workflowTaskStartedEventAttributes ? [i + 1] : []));
  for (const cut of cuts) {
    try {
      await Worker.runReplayHistory({ workflowBundle: bundle }, { events: events.slice(0, cut) }, workflowId);
    } catch (err) {
      failures.push(`${workflowId} up to event ${cut} of ${events.length}: ${(err as Error).message.slice(0, 300)}`);
    }
  }
  return failures;
}

describe.each(CHUNK_SHAPES)('a run taken over mid-way replays, chunks as $chunkExecution', ({ chunkExecution }) => {
  it('every prefix of a fanout\'s history and of its passes\' histories replays (a worker taking the run over at any workflow task)', async () => {
    const actor = uniqueName('prx');
    const queues = testQueues(actor);
    await seedFollowers(db, actor, 3_000, { prefix: `${actor}-f`, activeEvery: 4 });
    const workers = await fanoutWorkers(temporal.nativeConnection, db, queues, (a) => ({
      async writeFeedChunk(input: WriteFeedChunkInput) {
        await new Promise((r) => setTimeout(r, Math.random() * 20));
        return a.writeFeedChunk(input);
      },
    }));
    const feeds = new FeedClient({ temporal: temporal.client, db, taskQueue: queues.workflow, fanout: { highTaskQueue: queues.high, lowTaskQueue: queues.low, chunkExecution } });
    await withWorkers(workers, async () => {
      const { activityId } = await feeds.addActivity({ id: `${actor}-a`, actor, verb: 'pin', object: 'p' }, { pageSize: 500, chunkSize: 10, maxInFlight: 4, partitionSize: 1_000 });
      await feeds.waitForFanout(activityId);
    });
    const failures: string[] = [];
    const fanoutId = `fanout-add-${actor}-a`;
    let runs = 0;
    for await (const run of temporal.client.workflow.list({ query: `WorkflowId = '${fanoutId}' OR WorkflowId STARTS_WITH '${fanoutId}/'` })) {
      runs++;
      failures.push(...(await replayPrefixes(run.workflowId, await temporal.client.workflow.getHandle(run.workflowId, run.runId).fetchHistory())));
    }
    expect(runs, 'the fanout and its partitions (3 per priority)').toBe(7);
    expect(failures).toEqual([]);
  });
});
