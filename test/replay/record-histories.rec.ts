/**
 * Records one history per workflow shape the project runs, into test/replay/histories/, for
 * test/workflows/replay.test.ts. Run it (`npm run record-histories`) only to add a shape or after
 * a change that is meant to break replay of old runs (which a deploy must then handle, see the
 * README's "Changing a workflow safely"): the point of the files is to be the past.
 */
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FeedClient } from '../../src/client/feed-client';
import { FanoutOperation, FeedType } from '../../src/contract/constants';
import { importWorkflowId, TRICKLE_WORKFLOW_TYPE } from '../../src/contract/imports';
import { FeedStore } from '../../src/storage/feed-store';
import { devServer, freshDb, uniqueName, workflowBundle } from '../utils/env';
import { fanoutWorkers } from '../utils/fanout';
import { seedFollowers } from '../../dev/seed';
import { fakebook, importRig } from '../utils/imports';
import { testQueues, withWorkers } from '../utils/workers';

const DIR = path.resolve(__dirname, 'histories');
let temporal: Awaited<ReturnType<typeof devServer>>;
let mongo: Awaited<ReturnType<typeof freshDb>>;

beforeAll(async () => {
  temporal = await devServer();
  mongo = await freshDb('record');
  await new FeedStore(mongo.db).ensureIndexes();
});
afterAll(async () => {
  await mongo?.drop();
  await temporal?.close();
});

/**
 * Writes every run of the handle's workflow (a continue-as-new chain: all of them), oldest first.
 * An existing file is never overwritten (RECORD_OVERWRITE=1 does): it is a run of the code of its
 * day, which the code of today must still replay while such runs may be in flight.
 */
async function save(name: string, handle: WorkflowHandle): Promise<number> {
  const runs: string[] = [];
  for await (const run of temporal.client.workflow.list({ query: `WorkflowId = '${handle.workflowId}'` })) runs.push(run.runId);
  runs.reverse();
  for (const [i, runId] of runs.entries()) {
    const history = await temporal.client.workflow.getHandle(handle.workflowId, runId).fetchHistory();
    const file = path.join(DIR, runs.length > 1 ? `${name}.run${i + 1}.json` : `${name}.json`);
    if (existsSync(file) && !process.env.RECORD_OVERWRITE) {
      console.log(`kept ${path.basename(file)} (recorded earlier; RECORD_OVERWRITE=1 replaces it)`);
      continue;
    }
    // protobufjs's JSON mapping: camelCase fields, enum names, 64-bit integers as strings, bytes
    // as base64: what the SDK's replayer reads (historyFromJSON), like `temporal workflow show -o json`.
    writeFileSync(file, `${JSON.stringify((history as unknown as { toJSON(): unknown }).toJSON())}\n`);
  }
  console.log(`recorded ${name}: ${runs.length} run(s)`);
  return runs.length;
}

describe('record histories', () => {
  // The fanout-add-continue-as-new*, fanout-scheduled and fanout-failed files are fanouts from
  // before the priority passes (page by page, no patch marker): they must replay the old way.
  it('fanout by priority passes: the fanout, its HIGH and LOW passes across continue-as-new, a removal; a scheduled post and a failed one, each of one page (written inline)', async () => {
    const db = mongo.db;
    const actor = uniqueName('recp');
    const queues = testQueues(actor);
    await seedFollowers(db, actor, 2000, { prefix: `${actor}-f`, activeEvery: 3 });
    const feeds = new FeedClient({ temporal: temporal.client, db, taskQueue: queues.workflow, fanout: { highTaskQueue: queues.high, lowTaskQueue: queues.low } });
    const workers = await fanoutWorkers(temporal.nativeConnection, db, queues);
    await withWorkers(workers, async () => {
      const add = await feeds.addActivity({ id: `${actor}-a1`, actor, verb: 'pin', object: 'p1' }, { pageSize: 100, chunkSize: 5, maxHistoryEvents: 100 });
      await feeds.waitForFanout(add.activityId);
      const fanout = feeds.handle(add.activityId);
      await save('fanout-passes', fanout);
      expect(await save('fanout-pass-high', temporal.client.workflow.getHandle(`${fanout.workflowId}/high`))).toBeGreaterThanOrEqual(2);
      expect(await save('fanout-pass-low', temporal.client.workflow.getHandle(`${fanout.workflowId}/low`))).toBeGreaterThanOrEqual(2);
      await feeds.removeActivity(add.activityId);
      await feeds.waitForFanout(add.activityId, FanoutOperation.REMOVE);
      await save('fanout-passes-remove', feeds.handle(add.activityId, FanoutOperation.REMOVE));
      const scheduled = await feeds.addActivity({ id: `${actor}-a2`, actor, verb: 'pin', object: 'p2' }, { publishAt: new Date(Date.now() + 2000) });
      await feeds.waitForFanout(scheduled.activityId);
      await save('fanout-inline-scheduled', feeds.handle(scheduled.activityId));
      await db.collection('follows').insertOne({ _id: `${actor}/bad/id` as never, follower: 'bad/id', followee: actor, createdAt: new Date() });
      const failed = await feeds.addActivity({ id: `${actor}-a3`, actor, verb: 'pin', object: 'p3' });
      await feeds.waitForFanout(failed.activityId).catch(() => undefined);
      expect((await feeds.handle(failed.activityId).describe()).status.name).toBe('FAILED');
      await save('fanout-inline-failed', feeds.handle(failed.activityId));
    });
  });

  // Recorded after passes learnt to flush every 128 chunks, read chunk outcomes only at a flush,
  // and mark failed chunks FAILED (patch pass-flush-by-count; chunk-failure-marker inline).
  it('fanout by passes flushing by count, with a chunk failing for good in each shape; an inline fanout with its FAILED marker', async () => {
    const db = mongo.db;
    const actor = uniqueName('recq');
    const queues = testQueues(actor);
    await seedFollowers(db, actor, 3000, { prefix: `${actor}-f`, activeEvery: 3 });
    await db.collection('follows').insertOne({ _id: `${actor}/${actor}-f002000x/bad` as never, follower: `${actor}-f002000x/bad`, followee: actor, createdAt: new Date() });
    const feeds = new FeedClient({ temporal: temporal.client, db, taskQueue: queues.workflow, fanout: { highTaskQueue: queues.high, lowTaskQueue: queues.low } });
    const workers = await fanoutWorkers(temporal.nativeConnection, db, queues);
    await withWorkers(workers, async () => {
      const add = await feeds.addActivity({ id: `${actor}-a1`, actor, verb: 'pin', object: 'p1' }, { pageSize: 500, chunkSize: 5 });
      await feeds.waitForFanout(add.activityId).catch(() => undefined);
      const fanout = feeds.handle(add.activityId);
      await save('fanout-passes-by-count', fanout);
      await save('fanout-pass-high-by-count', temporal.client.workflow.getHandle(`${fanout.workflowId}/high`));
      await save('fanout-pass-low-by-count', temporal.client.workflow.getHandle(`${fanout.workflowId}/low`));
      const actor2 = uniqueName('recqi');
      await seedFollowers(db, actor2, 300, { prefix: `${actor2}-f`, activeEvery: 3 });
      await db.collection('follows').insertOne({ _id: `${actor2}/bad/id` as never, follower: 'bad/id', followee: actor2, createdAt: new Date() });
      const failed = await feeds.addActivity({ id: `${actor2}-a`, actor: actor2, verb: 'pin', object: 'p' });
      await feeds.waitForFanout(failed.activityId).catch(() => undefined);
      await save('fanout-inline-failed-marker', feeds.handle(failed.activityId));
    });
  });

  // Recorded after chunkExecution and partitions: a partitioned fanout whose chunks are activity
  // tasks, a partitioned one with local chunks, and a one-page fanout written as activity tasks.
  it('partitioned fanouts in both chunk shapes; a one-page fanout with chunks as activity tasks', async () => {
    const db = mongo.db;
    const actor = uniqueName('recr');
    const queues = testQueues(actor);
    await seedFollowers(db, actor, 3000, { prefix: `${actor}-f`, activeEvery: 3 });
    const feeds = new FeedClient({ temporal: temporal.client, db, taskQueue: queues.workflow, fanout: { highTaskQueue: queues.high, lowTaskQueue: queues.low } });
    const workers = await fanoutWorkers(temporal.nativeConnection, db, queues);
    await withWorkers(workers, async () => {
      for (const chunkExecution of ['activity', 'local'] as const) {
        const add = await feeds.addActivity({ id: `${actor}-${chunkExecution}`, actor, verb: 'pin', object: chunkExecution }, { pageSize: 500, chunkSize: 50, partitionSize: 1000, chunkExecution });
        await feeds.waitForFanout(add.activityId);
        const fanout = feeds.handle(add.activityId);
        await save(`fanout-partitioned-${chunkExecution}`, fanout);
        await save(`fanout-partition-low-1-${chunkExecution}`, temporal.client.workflow.getHandle(`${fanout.workflowId}/low/1`));
      }
      const small = uniqueName('recrs');
      await seedFollowers(db, small, 300, { prefix: `${small}-f`, activeEvery: 3 });
      const one = await feeds.addActivity({ id: `${small}-a`, actor: small, verb: 'pin', object: 'p' }, { chunkExecution: 'activity' });
      await feeds.waitForFanout(one.activityId);
      await save('fanout-one-page-activity-tasks', feeds.handle(one.activityId));
    });
  });

  // Recorded after passes took their retries over (patch pass-probe-retries): chunk writes and a
  // page read failing with retryable errors, probed by activity tasks, in both chunk shapes.
  it('passes that probe: chunk writes and a page read failing a few times, in both chunk shapes', async () => {
    const db = mongo.db;
    const actor = uniqueName('recp');
    const queues = testQueues(actor);
    await seedFollowers(db, actor, 2000, { prefix: `${actor}-f`, activeEvery: 3 });
    const failures = new Map<string, number>();
    const failFirst = (key: string, times: number): void => {
      const n = failures.get(key) ?? 0;
      failures.set(key, n + 1);
      if (n < times) throw new Error(`injected: store hiccup (${key}, attempt ${n + 1})`);
    };
    const feeds = new FeedClient({ temporal: temporal.client, db, taskQueue: queues.workflow, fanout: { highTaskQueue: queues.high, lowTaskQueue: queues.low } });
    const workers = await fanoutWorkers(temporal.nativeConnection, db, queues, (a) => ({
      async writeFeedChunk(input) {
        // The 5th follower's chunk of each activity fails 3 times (the pass gives 2, a probe the rest).
        if (input.followerIds.some((id) => id.endsWith('f000005'))) failFirst(`${input.activityId}/chunk`, 3);
        return a.writeFeedChunk(input);
      },
      async getFollowerPagePart(input) {
        if (input.priority === 'low' && input.cursor !== null && (failures.get(`${input.userId}/read`) ?? 0) < 4) failFirst(`${input.userId}/read`, 3);
        return a.getFollowerPagePart(input);
      },
    }));
    await withWorkers(workers, async () => {
      for (const chunkExecution of ['local', 'activity'] as const) {
        failures.delete(`${actor}/read`);
        const add = await feeds.addActivity({ id: `${actor}-${chunkExecution}`, actor, verb: 'pin', object: chunkExecution }, { pageSize: 500, chunkSize: 50, chunkExecution });
        await feeds.waitForFanout(add.activityId);
        const fanout = feeds.handle(add.activityId);
        await save(`fanout-probing-${chunkExecution}`, fanout);
        await save(`fanout-pass-high-probing-${chunkExecution}`, temporal.client.workflow.getHandle(`${fanout.workflowId}/high`));
        await save(`fanout-pass-low-probing-${chunkExecution}`, temporal.client.workflow.getHandle(`${fanout.workflowId}/low`));
      }
    });
  });

  it('follow: follow, unfollow and follow again of one pair, with backfill and a notification', async () => {
    const db = mongo.db;
    const queues = testQueues(uniqueName('recf'));
    const store = new FeedStore(db);
    const star = uniqueName('star');
    for (let i = 0; i < 3; i++) {
      const time = new Date(Date.UTC(2026, 10, 1, 12, i));
      await store.storeActivity({ _id: `${star}-post-${i}`, actor: star, verb: 'post', object: `o${i}`, time });
      await store.addToFeeds(FeedType.USER, [star], { id: `${star}-post-${i}`, actor: star, time });
    }
    const feeds = new FeedClient({ temporal: temporal.client, db, taskQueue: queues.workflow });
    const workers = await fanoutWorkers(temporal.nativeConnection, db, queues);
    await withWorkers(workers, async () => {
      await feeds.follow('fan', star, { backfillLimit: 2, backfillBatchSize: 1 });
      await feeds.unfollow('fan', star);
      await feeds.follow('fan', star);
      await feeds.waitForFollow('fan', star);
      await save('follow', temporal.client.workflow.getHandle(`follow/fan/${star}`));
    });
  });

  // test/replay/histories/follow-long.json is such a pair's one long run (1,049 events) recorded by
  // the code before the follow workflow learnt to continue as new: it must replay the old way.
  it('follow: a pair followed and unfollowed every 15 ms for 6 s: continue-as-new past 500 events', async () => {
    const db = mongo.db;
    const queues = testQueues(uniqueName('recl'));
    const star = uniqueName('busy');
    const feeds = new FeedClient({ temporal: temporal.client, db, taskQueue: queues.workflow });
    const workers = await fanoutWorkers(temporal.nativeConnection, db, queues);
    await withWorkers(workers, async () => {
      // Requests keep arriving while earlier ones are applied, so the run never runs out of work.
      const until = Date.now() + 6_000;
      for (let i = 0; Date.now() < until; i++) {
        await (i % 2 === 0 ? feeds.follow('toggler', star, { backfillLimit: 0, notify: false }) : feeds.unfollow('toggler', star));
        await new Promise((r) => setTimeout(r, 15));
      }
      await feeds.waitForFollow('toggler', star);
    });
    expect(await save('follow-continue-as-new', temporal.client.workflow.getHandle(`follow/toggler/${star}`))).toBeGreaterThanOrEqual(2);
  });

  it('imports across continue-as-new, a share, a trickle round', async () => {
    const db = mongo.db;
    const rig = await importRig(temporal, db, await workflowBundle(), {
      fake: { accounts: [{ token: 't-ann', userId: 'ann', friends: 250 }, { token: 't-bo', userId: 'bo', friends: 30 }] },
      networks: (url) => ({ fakebook: fakebook(url, { share: {} }), pollnet: fakebook(url, { name: 'pollnet', canPush: false }) }),
    });
    try {
      const ann = uniqueName('ann');
      await rig.imports.connectAccount('fakebook', ann, 't-ann');
      await rig.imports.importFriends('fakebook', ann, { pageSize: 10, maxPagesPerRun: 10 });
      await rig.imports.waitForImport('fakebook', ann);
      expect(await save('import-continue-as-new', temporal.client.workflow.getHandle(importWorkflowId('fakebook', ann)))).toBeGreaterThanOrEqual(2);

      await db.collection('activities').insertOne({ _id: `${ann}-pin` as never, actor: 'ann', verb: 'pin', object: 'photo', time: new Date() });
      await rig.imports.shareActivity('fakebook', ann, `${ann}-pin`);
      await rig.imports.waitForShare('fakebook', ann, `${ann}-pin`);
      await save('share', temporal.client.workflow.getHandle(`share/fakebook/${ann}/${ann}-pin`));

      await rig.imports.connectAccount('pollnet', uniqueName('bo'), 't-bo');
      const trickle = await temporal.client.workflow.start(TRICKLE_WORKFLOW_TYPE, {
        taskQueue: rig.queues.workflow,
        workflowId: uniqueName('trickle'),
        args: [{ mode: 'trickle', batchSize: 5, staleAfterMs: 60_000, taskQueue: rig.queues.trickle, importOptions: { whaleTaskQueue: rig.queues.whale } }],
      });
      await trickle.result();
      await save('trickle', trickle);
    } finally {
      await rig.close();
    }
  });
});
