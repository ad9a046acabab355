/**
 * Batched small posts (`FeedClient` with `batchSmallPosts`) end to end against the real Temporal
 * dev server and the MongoDB-wire store: posts signalled to shard workflows, written in batches,
 * each follower once, each post's state readable through the client.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Db } from 'mongodb';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { FeedClient } from '../../src/client/feed-client';
import { FanoutFailedError } from '../../src/contract/errors';
import { FeedKind, DEFAULT_FEEDS } from '../../src/contract/feeds';
import { FeedType, fanoutWorkflowId, FanoutOperation } from '../../src/contract/constants';
import { POST_BATCH_WORKFLOW_TYPE, postBatchWorkflowId, postSignal } from '../../src/contract/post-batch';
import { Collections } from '../../src/storage/collections';
import { FeedStore } from '../../src/storage/feed-store';
import { seedFollowers, type SeededFollowers } from '../../dev/seed';
import { devServer, freshDb, uniqueName } from '../utils/env';
import { fanoutWorkers, timelineOwners as timelineOwnersOf } from '../utils/fanout';
import { testQueues, withWorkers } from '../utils/workers';

let temporal: Awaited<ReturnType<typeof devServer>>;
let mongo: Awaited<ReturnType<typeof freshDb>>;
let db: Db;
/** Shard workflows a test started (they run until stopped). */
const shards = new Set<string>();

beforeAll(async () => {
  temporal = await devServer();
});

afterAll(async () => {
  await temporal?.close();
});

beforeEach(async () => {
  mongo = await freshDb('pb');
  db = mongo.db;
  await new FeedStore(db).ensureIndexes();
});

afterEach(async () => {
  await Promise.all([...shards].map((id) => temporal.client.workflow.getHandle(id).terminate('test over').catch(() => undefined)));
  shards.clear();
  await mongo?.drop();
});

const SHARDS = 4;

function batchingClient(queues: ReturnType<typeof testQueues>, feeds = DEFAULT_FEEDS, maxHistoryEvents?: number): FeedClient {
  for (let s = 0; s < SHARDS; s++) shards.add(postBatchWorkflowId(queues.workflow, s));
  return new FeedClient({
    temporal: temporal.client,
    db,
    feeds,
    taskQueue: queues.workflow,
    fanout: { highTaskQueue: queues.high, lowTaskQueue: queues.low },
    batchSmallPosts: { shards: SHARDS, ...(maxHistoryEvents ? { maxHistoryEvents } : {}) },
  });
}

const timelineOwners = (activityId: string) => timelineOwnersOf(db, activityId);

/** The operator CLI (from the sources), against the test servers and this test's database. */
const cli = (args: string[]) =>
  promisify(execFile)(process.execPath, ['--import', 'tsx', path.resolve(__dirname, '../../src/cli/main.ts'), ...args], {
    env: { ...process.env, TEMPORAL_ADDRESS: inject('temporalAddress'), MONGODB_URI: inject('mongodbUri'), FANOUT_DB: db.databaseName },
  });

/** Whether a fanout workflow was started for the post. */
async function hasOwnFanout(activityId: string): Promise<boolean> {
  try {
    await temporal.client.workflow.getHandle(fanoutWorkflowId(FanoutOperation.ADD, activityId)).describe();
    return true;
  } catch {
    return false;
  }
}

describe('batched small posts on the dev server', () => {
  it('writes 40 posts of 20 actors through shard workflows: each follower once, each post done, no workflow per post', async () => {
    const name = uniqueName('pb');
    const queues = testQueues(name);
    const actors: Array<{ id: string; followers: SeededFollowers }> = [];
    for (let i = 0; i < 20; i++) {
      const id = `${name}-a${i}`;
      actors.push({ id, followers: await seedFollowers(db, id, 5 + 3 * i, { prefix: `${id}-f`, activeEvery: 3 }) });
    }
    const feeds = batchingClient(queues);
    const workers = await fanoutWorkers(temporal.nativeConnection, db, queues);
    const posts = actors.flatMap((a) => [0, 1].map((n) => ({ id: `${a.id}-p${n}`, actor: a.id, verb: 'post', object: `o${n}` })));
    const results = await withWorkers(workers, async () => {
      const started = await Promise.all(posts.map((p) => feeds.addActivity(p)));
      const summaries = await Promise.all(posts.map((p) => feeds.waitForFanout(p.id)));
      // Submitted again once done: nothing is sent, nothing written twice.
      const again = await feeds.addActivity(posts[0]);
      const status = await feeds.getStatus(posts[0].id);
      return { started, summaries, again, status };
    });

    expect(results.started.every((s) => s.started && s.workflowId.startsWith(`${queues.workflow}-posts-`))).toBe(true);
    expect(results.again.started).toBe(false);
    for (const [i, p] of posts.entries()) {
      const { followers } = actors.find((a) => a.id === p.actor)!;
      expect(await timelineOwners(p.id)).toEqual(followers.all);
      expect(results.summaries[i]).toMatchObject({ done: true, followersSeen: followers.all.length, failures: [] });
      expect(results.summaries[i].high.followers).toBe(followers.high.length);
      expect(results.summaries[i].high.entriesChanged).toBe(followers.all.length);
    }
    expect(results.status).toMatchObject({ status: 'COMPLETED', failure: null });
    expect(results.status.workflowId).toBe(results.started[0].workflowId);
    expect(await hasOwnFanout(posts[0].id)).toBe(false);
    // Every timeline entry of these posts exactly once (the _id is unique per owner and post).
    const entries = await db.collection(Collections.feed(FeedType.TIMELINE)).countDocuments({ activityId: { $in: posts.map((p) => p.id) } });
    expect(entries).toBe(actors.reduce((n, a) => n + 2 * a.followers.all.length, 0));
    // The actor's own feed holds each post once too.
    expect((await feeds.readFeed(FeedType.USER, actors[3].id)).items.map((i) => i.activityId).sort()).toEqual([`${actors[3].id}-p0`, `${actors[3].id}-p1`]);
  });

  it('hands a post with more than a page of followers to a fanout workflow of its own, which writes each follower once', async () => {
    const name = uniqueName('pbbig');
    const queues = testQueues(name);
    const actor = `${name}-a`;
    const followers = await seedFollowers(db, actor, 130, { prefix: `${actor}-f`, activeEvery: 4 });
    const feeds = batchingClient(queues);
    const workers = await fanoutWorkers(temporal.nativeConnection, db, queues);
    const summary = await withWorkers(workers, async () => {
      await feeds.addActivity({ id: `${actor}-p`, actor, verb: 'post', object: 'big' }, { pageSize: 50 });
      return feeds.waitForFanout(`${actor}-p`);
    });
    expect(await timelineOwners(`${actor}-p`)).toEqual(followers.all);
    expect(summary).toMatchObject({ done: true, followersSeen: 130 });
    expect(summary.high.followers + summary.low.followers).toBe(130);
    expect(await hasOwnFanout(`${actor}-p`)).toBe(true);
    const doc = await new FeedStore(db).getActivity(`${actor}-p`);
    expect(doc?.fanout?.state).toBe('handedOver');
  });

  it('fails a post whose feed type the workers do not know, with the reason, and writes the other posts of its batch', async () => {
    const name = uniqueName('pbbad');
    const queues = testQueues(name);
    const actor = `${name}-a`;
    const followers = await seedFollowers(db, actor, 12, { prefix: `${actor}-f`, activeEvery: 2 });
    // The app knows a feed type the workers were not configured with.
    const feeds = batchingClient(queues, { ...DEFAULT_FEEDS, stories: { kind: FeedKind.FLAT, fanout: true } });
    const workers = await fanoutWorkers(temporal.nativeConnection, db, queues);
    const outcome = await withWorkers(workers, async () => {
      await feeds.addActivity({ id: `${actor}-bad`, actor, verb: 'post', object: 'x' }, { feedTypes: ['stories'] });
      await feeds.addActivity({ id: `${actor}-good`, actor, verb: 'post', object: 'y' }, { feedTypes: [FeedType.TIMELINE] });
      const failed = await feeds.waitForFanout(`${actor}-bad`).then(
        () => null,
        (err: unknown) => err,
      );
      await feeds.waitForFanout(`${actor}-good`);
      return { failed, progress: await feeds.getProgress(`${actor}-bad`), status: await feeds.getStatus(`${actor}-bad`) };
    });
    expect(outcome.failed).toBeInstanceOf(FanoutFailedError);
    expect((outcome.failed as Error).message).toMatch(/stories/);
    expect(outcome.progress).toMatchObject({ done: true });
    expect(outcome.progress.failures[0].message).toMatch(/stories/);
    expect(outcome.status).toMatchObject({ status: 'FAILED', failureType: 'PostFailed' });
    expect(await db.collection(Collections.feed('stories')).countDocuments({})).toBe(0);
    expect(await timelineOwners(`${actor}-good`)).toEqual(followers.all);
  });

  it('writes nothing of a post removed before its shard took it, and queues it durably while no worker runs', async () => {
    const name = uniqueName('pbrm');
    const queues = testQueues(name);
    const actor = `${name}-a`;
    const followers = await seedFollowers(db, actor, 20, { prefix: `${actor}-f`, activeEvery: 2 });
    const feeds = batchingClient(queues);
    // No worker yet: the posts wait in their shard (signals are durable once addActivity returns).
    await feeds.addActivity({ id: `${actor}-gone`, actor, verb: 'post', object: 'x' });
    await feeds.addActivity({ id: `${actor}-kept`, actor, verb: 'post', object: 'y' });
    expect(await feeds.getStatus(`${actor}-kept`)).toMatchObject({ status: 'QUEUED', closeTime: null });
    // The operator's view: `feed-fanout progress <id>` finds a batched post by its id.
    const queued = await cli(['progress', `${actor}-kept`]);
    expect(queued.stdout).toContain(`${queues.workflow}-posts-`);
    expect(queued.stdout).toContain('QUEUED');
    await feeds.removeActivity(`${actor}-gone`);
    const workers = await fanoutWorkers(temporal.nativeConnection, db, queues);
    await withWorkers(workers, async () => {
      await feeds.waitForFanout(`${actor}-kept`);
      await feeds.waitForFanout(`${actor}-gone`, FanoutOperation.REMOVE);
    });
    expect(await timelineOwners(`${actor}-gone`)).toEqual([]);
    expect(await timelineOwners(`${actor}-kept`)).toEqual(followers.all);
    const done = JSON.parse((await cli(['progress', `${actor}-kept`, '--json'])).stdout) as { status: string; progress: { done: boolean; followersSeen: number } };
    expect(done).toMatchObject({ status: 'COMPLETED', progress: { done: true, followersSeen: 20 } });
  });

  it('refuses a bad post signal (naming the field) and a bad shard input, and the shard goes on with the good posts', async () => {
    const name = uniqueName('pbval');
    const queues = testQueues(name);
    const actor = `${name}-a`;
    const followers = await seedFollowers(db, actor, 6, { prefix: `${actor}-f`, activeEvery: 2 });
    const feeds = batchingClient(queues);
    const workers = await fanoutWorkers(temporal.nativeConnection, db, queues);
    const shardId = postBatchWorkflowId(queues.workflow, 0);
    const outcome = await withWorkers(workers, async () => {
      // An app in another language sends a malformed post to a shard.
      await temporal.client.workflow.signalWithStart(POST_BATCH_WORKFLOW_TYPE, {
        taskQueue: queues.workflow,
        workflowId: shardId,
        args: [{ shard: 0 }],
        signal: postSignal,
        signalArgs: [{ operation: 'add', activityId: 'bad/id', actorId: actor, activityTime: Date.now() } as never],
      });
      await feeds.addActivity({ id: `${actor}-ok`, actor, verb: 'post', object: 'x' });
      await feeds.waitForFanout(`${actor}-ok`);
      const details = await temporal.client.workflow.getHandle((await feeds.getStatus(`${actor}-ok`)).workflowId).query<{ currentDetails?: string }>('__temporal_workflow_metadata');
      const shard0 = await temporal.client.workflow.getHandle(shardId).query<{ currentDetails?: string }>('__temporal_workflow_metadata');
      // A shard started with a bad input fails at once, naming the field, instead of retrying its task.
      const badId = `${queues.workflow}-posts-bad`;
      shards.add(badId);
      const bad = await temporal.client.workflow.start(POST_BATCH_WORKFLOW_TYPE, { taskQueue: queues.workflow, workflowId: badId, args: [{ shard: -1 }] });
      const failure = await bad.result().then(() => null, (err: Error & { cause?: Error }) => err.cause?.message ?? err.message);
      return { details: details.currentDetails ?? '', shard0: shard0.currentDetails ?? '', failure };
    });
    expect(outcome.shard0).toContain('refused (bad input): 1');
    expect(outcome.shard0).toContain('Latest refused post: input.activityId');
    expect(outcome.details).toContain('Written: 1');
    expect(outcome.failure).toMatch(/input\.shard/);
    expect(await timelineOwners(`${actor}-ok`)).toEqual(followers.all);
  });

  it('continues a shard as new past maxHistoryEvents while posts keep arriving: none lost, none written twice', async () => {
    const name = uniqueName('pbcan');
    const queues = testQueues(name);
    const actors: Array<{ id: string; followers: string[] }> = [];
    for (let i = 0; i < 8; i++) {
      const id = `${name}-a${i}`;
      actors.push({ id, followers: (await seedFollowers(db, id, 4 + i, { prefix: `${id}-f`, activeEvery: 2 })).all });
    }
    // One shard, a short history: 300 posts (about 1.2 events each) make it continue as new at least once.
    const feeds = new FeedClient({
      temporal: temporal.client,
      db,
      taskQueue: queues.workflow,
      fanout: { highTaskQueue: queues.high, lowTaskQueue: queues.low },
      batchSmallPosts: { shards: 1, maxHistoryEvents: 100 },
    });
    const shardId = postBatchWorkflowId(queues.workflow, 0);
    shards.add(shardId);
    const workers = await fanoutWorkers(temporal.nativeConnection, db, queues);
    const posts = Array.from({ length: 300 }, (_, i) => ({ id: `${name}-p${i}`, actor: actors[i % actors.length] }));
    await withWorkers(workers, async () => {
      // In waves, so some arrive while a run hands over.
      for (let w = 0; w < posts.length; w += 20) {
        await Promise.all(posts.slice(w, w + 20).map((p) => feeds.addActivity({ id: p.id, actor: p.actor.id, verb: 'post', object: p.id })));
      }
      await Promise.all(posts.map((p) => feeds.waitForFanout(p.id)));
    });
    // At least one hand-over with posts arriving (how many depends on how posts batch up: fewer
    // and bigger batches on a slower store).
    const statuses: string[] = [];
    for await (const run of temporal.client.workflow.list({ query: `WorkflowId = '${shardId}'` })) statuses.push(run.status.name);
    expect(statuses.filter((st) => st === 'CONTINUED_AS_NEW').length).toBeGreaterThanOrEqual(1);
    for (const p of posts) expect(await timelineOwners(p.id)).toEqual(p.actor.followers);
  });
});
