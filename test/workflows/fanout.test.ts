/**
 * fanoutWorkflow in the real time-skipping test server (Java, from Maven Central), with real
 * activities writing to the test MongoDB (FerretDB unless MONGODB_URI is set).
 */
import { activityInfo } from '@temporalio/activity';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Db } from 'mongodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FanoutActivities, GetFollowerPagePartInput, WriteFeedChunkInput } from '../../activities';
import { FeedClient } from '../../src/client/feed-client';
import { FANOUT_WORKFLOW_TYPE, FanoutOperation, FeedType } from '../../src/contract/constants';
import { ChunkExecution, type FanoutProgress, type FanoutWorkflowInput } from '../../src/contract/fanout';
import { FeedStore } from '../../src/storage/feed-store';
import { freshDb, timeSkippingEnv, uniqueName } from '../utils/env';
import { fanoutWorkers, storeActivity, timelineOwners as timelineOwnersOf } from '../utils/fanout';
import { seedFollowers } from '../../dev/seed';
import { testQueues, withWorkers } from '../utils/workers';

let env: TestWorkflowEnvironment;
let mongo: Awaited<ReturnType<typeof freshDb>>;
let db: Db;

beforeAll(async () => {
  [env, mongo] = await Promise.all([timeSkippingEnv(), freshDb('wf')]);
  db = mongo.db;
  await new FeedStore(db).ensureIndexes();
});

afterAll(async () => {
  await env?.teardown();
  await mongo?.drop();
});

/** Workers on fresh queues named after `prefix`. */
async function workersFor(prefix: string, wrap?: (a: FanoutActivities) => Partial<FanoutActivities>) {
  const queues = testQueues(prefix);
  return { queues, workers: await fanoutWorkers(env.nativeConnection, db, queues, wrap) };
}

function fanoutInput(actorId: string, activityId: string, queues: ReturnType<typeof testQueues>, extra: Partial<FanoutWorkflowInput> = {}): FanoutWorkflowInput {
  return {
    operation: FanoutOperation.ADD,
    activityId,
    actorId,
    activityTime: Date.now(),
    highTaskQueue: queues.high,
    lowTaskQueue: queues.low,
    ...extra,
  };
}

const timelineOwners = (activityId: string) => timelineOwnersOf(db, activityId);

describe('fanoutWorkflow (time-skipping)', () => {
  it('retries chunk writes that fail and still writes every follower exactly once', async () => {
    const actor = uniqueName('retry');
    const followers = await seedFollowers(db, actor, 450, { prefix: `${actor}-f` });
    const attempts: number[] = [];
    const { queues, workers } = await workersFor(actor, (a) => ({
      async writeFeedChunk(input: WriteFeedChunkInput) {
        const { attempt } = activityInfo();
        attempts.push(attempt);
        // The first two attempts of every chunk write half the chunk, then fail: a partial
        // write followed by a crash, the case idempotency has to cover.
        if (attempt <= 2) {
          await a.writeFeedChunk({ ...input, followerIds: input.followerIds.slice(0, input.followerIds.length / 2) });
          throw new Error(`simulated database failure (attempt ${attempt})`);
        }
        return a.writeFeedChunk(input);
      },
    }));
    await storeActivity(db, `${actor}-a1`, actor);
    const result = await withWorkers(workers, () =>
      env.client.workflow.execute(FANOUT_WORKFLOW_TYPE, {
        taskQueue: queues.workflow,
        workflowId: `fanout-add-${actor}-a1`,
        args: [fanoutInput(actor, `${actor}-a1`, queues)],
      }),
    ) as FanoutProgress;

    expect(result.done).toBe(true);
    expect(result.followersSeen).toBe(450);
    expect(result.high.chunksFailed + result.low.chunksFailed).toBe(0);
    // 450 followers in chunks of 100 per priority: 225 + 225 -> 3 + 3 chunks, 3 attempts each.
    expect(attempts.filter((a) => a === 3)).toHaveLength(6);
    // Entries written by failed attempts count on the attempt that wrote them: reported totals
    // cover what the last attempts inserted, and the store has each follower exactly once.
    expect(await timelineOwners(`${actor}-a1`)).toEqual(followers.all);
  });

  it('retries a chunk whose attempt hangs (a stuck socket) once the chunk timeout passes', async () => {
    const actor = uniqueName('timeout');
    const followers = await seedFollowers(db, actor, 120, { prefix: `${actor}-f` });
    let release: () => void = () => undefined;
    const hung = new Promise<void>((resolve) => (release = resolve));
    const attemptsByFirstId = new Map<string, number[]>();
    const { queues, workers } = await workersFor(actor, (a) => ({
      async writeFeedChunk(input: WriteFeedChunkInput) {
        const { attempt } = activityInfo();
        const first = input.followerIds[0];
        attemptsByFirstId.set(first, [...(attemptsByFirstId.get(first) ?? []), attempt]);
        // The first chunk's first attempt hangs (a stuck socket) until the test ends.
        if (first === followers.high[0] && attempt === 1) await hung;
        return a.writeFeedChunk(input);
      },
    }));
    await storeActivity(db, `${actor}-a1`, actor);
    try {
      const result = await withWorkers(workers, async () => {
        const out = (await env.client.workflow.execute(FANOUT_WORKFLOW_TYPE, {
          taskQueue: queues.workflow,
          workflowId: `fanout-add-${actor}-a1`,
          // Chunks are local activities of the pass: no heartbeat, a start-to-close timeout.
          args: [fanoutInput(actor, `${actor}-a1`, queues, { chunkTimeoutMs: 3_000 })],
        })) as FanoutProgress;
        release();
        return out;
      });
      expect(result.done).toBe(true);
      expect(attemptsByFirstId.get(followers.high[0])).toEqual([1, 2]);
      expect(await timelineOwners(`${actor}-a1`)).toEqual(followers.all);
    } finally {
      release();
    }
  });

  // One page is written by the fanout itself; more, by passes that read a page ahead: the read in
  // flight at the cancel must not fail the pass's workflow task (it once did, and the pass hung).
  it.each([
    { shape: 'one page, written inline', pageSize: 2000, slowReads: false, chunkExecution: ChunkExecution.LOCAL },
    { shape: 'by passes, with a page read ahead in flight', pageSize: 200, slowReads: true, chunkExecution: ChunkExecution.LOCAL },
    { shape: 'one page, chunks as activity tasks', pageSize: 2000, slowReads: false, chunkExecution: ChunkExecution.ACTIVITY },
    { shape: 'by passes, chunks as activity tasks, a page read ahead in flight', pageSize: 200, slowReads: true, chunkExecution: ChunkExecution.ACTIVITY },
  ])('when cancelled ($shape), waits for the chunks in flight to finish before it closes', async ({ pageSize, slowReads, chunkExecution }) => {
    const actor = uniqueName('cancel');
    await seedFollowers(db, actor, 2000, { prefix: `${actor}-f` });
    let started = 0;
    let finished = 0;
    let ended = 0;
    let firstStarted: () => void = () => undefined;
    const someStarted = new Promise<void>((resolve) => (firstStarted = resolve));
    const { queues, workers } = await workersFor(actor, (a) => ({
      async writeFeedChunk(input: WriteFeedChunkInput) {
        started++;
        if (started >= 3) firstStarted();
        try {
          // Slow writes, so cancellation arrives while the page is still being written.
          await new Promise((r) => setTimeout(r, 700));
          // A cancelled chunk stops here, before its first write.
          const res = await a.writeFeedChunk(input);
          finished++;
          return res;
        } finally {
          ended++;
        }
      },
      // Slow page reads: the next page is still being read while a chunk is written.
      ...(slowReads ? { getFollowerPagePart: async (input: GetFollowerPagePartInput) => (await new Promise((r) => setTimeout(r, 1500)), a.getFollowerPagePart(input)) } : {}),
    }));
    await storeActivity(db, `${actor}-a1`, actor);
    const outcome = await withWorkers(workers, async () => {
      const handle = await env.client.workflow.start(FANOUT_WORKFLOW_TYPE, {
        taskQueue: queues.workflow,
        workflowId: `fanout-add-${actor}-a1`,
        // Chunks are local activities (of the fanout or of its pass), one at a time. The worker
        // reports them to the server, and hears of the cancel, when its workflow task nears its
        // timeout (80% of 10 s) if not before.
        args: [fanoutInput(actor, `${actor}-a1`, queues, { maxInFlight: 1, pageSize, chunkExecution })],
      });
      await someStarted;
      await handle.cancel();
      const err = await handle.result().then(() => null, (e: unknown) => e);
      // Read the counters the moment the run has closed, before the workers stop.
      return { err, startedAtClose: started, endedAtClose: ended, finishedAtClose: finished, status: (await handle.describe()).status.name };
    });
    // Anything still running would write now.
    await new Promise((r) => setTimeout(r, 1500));
    expect(outcome.err).toBeInstanceOf(WorkflowFailedError);
    expect(outcome.status).toBe('CANCELLED');
    expect(outcome.startedAtClose).toBeGreaterThanOrEqual(3);
    expect(outcome.startedAtClose).toBeLessThan(20); // stopped early: 2000 followers is 20 chunks
    // No chunk was still running when the run closed (each had written, or stopped unwritten at
    // the cancel), none started afterwards, and nothing was written after the close.
    expect(outcome.endedAtClose).toBe(outcome.startedAtClose);
    expect(started).toBe(outcome.startedAtClose);
    expect(finished).toBe(outcome.finishedAtClose);
    const written = await timelineOwners(`${actor}-a1`);
    expect(written.length).toBe(outcome.finishedAtClose * 100);
  });

  it('continues as new at least twice on a long walk and keeps its totals right', async () => {
    const actor = uniqueName('can');
    const followers = await seedFollowers(db, actor, 3000, { prefix: `${actor}-f`, activeEvery: 3 });
    const { queues, workers } = await workersFor(actor);
    await storeActivity(db, `${actor}-a1`, actor);
    const handleId = `fanout-add-${actor}-a1`;
    const result = (await withWorkers(workers, () =>
      env.client.workflow.execute(FANOUT_WORKFLOW_TYPE, {
        taskQueue: queues.workflow,
        workflowId: handleId,
        // Pages of 100, chunks of 10; continue as new past 100 events.
        args: [fanoutInput(actor, `${actor}-a1`, queues, { pageSize: 100, chunkSize: 10, maxInFlight: 10, maxHistoryEvents: 100 })],
      }),
    )) as FanoutProgress;

    expect(result.continuedAsNew).toBeGreaterThanOrEqual(2);
    // Each pass reads a first page of 100, then pages that should hold about 100 of its priority:
    // about 300 followers for HIGH (every 3rd is active), 150 for LOW. So about 1 + 10 and 1 + 20.
    expect(result.pagesRead).toBeGreaterThanOrEqual(25);
    expect(result.pagesRead).toBeLessThanOrEqual(35);
    expect(result.followersSeen).toBe(3000);
    expect(result.high.followers).toBe(followers.high.length);
    expect(result.low.followers).toBe(followers.low.length);
    // Chunks of at most 10, split per page: at least 100 HIGH and 200 LOW.
    expect(result.high.chunksDone).toBeGreaterThanOrEqual(100);
    expect(result.low.chunksDone).toBeGreaterThanOrEqual(200);
    expect(result.high.chunksFailed + result.low.chunksFailed).toBe(0);
    expect(result.high.entriesChanged + result.low.entriesChanged).toBe(3000);
    expect(await timelineOwners(`${actor}-a1`)).toEqual(followers.all);
  });

  it('publishes a post scheduled three days ahead after a durable sleep, in seconds of wall time', async () => {
    const actor = uniqueName('sched');
    const followers = await seedFollowers(db, actor, 50, { prefix: `${actor}-f` });
    const { queues, workers } = await workersFor(actor);
    const feeds = new FeedClient({
      temporal: env.client,
      db,
      taskQueue: queues.workflow,
      fanout: { highTaskQueue: queues.high, lowTaskQueue: queues.low },
      searchAttributes: false,
    });
    const startedAt = await env.currentTimeMs();
    const wallStart = Date.now();
    const publishAt = new Date(startedAt + 3 * 86_400_000);
    const { activityId } = await feeds.addActivity({ actor, verb: 'post', object: 'note-1' }, { publishAt });
    // Not published yet: neither the actor's feed nor any follower's.
    expect((await feeds.readFeed(FeedType.USER, actor)).items).toHaveLength(0);
    const result = await withWorkers(workers, () => feeds.waitForFanout(activityId));
    // Workflow time between start and close, as the server recorded it.
    const { startTime, closeTime } = await feeds.handle(activityId).describe();
    const workflowDays = (closeTime!.getTime() - startTime.getTime()) / 86_400_000;
    console.log(`scheduled post: ${workflowDays.toFixed(2)} days of workflow time in ${((Date.now() - wallStart) / 1000).toFixed(1)} s of wall time`);

    // It closed once publishAt had come, and not long after (it started a moment after startedAt).
    expect(closeTime!.getTime()).toBeGreaterThanOrEqual(publishAt.getTime());
    expect(workflowDays).toBeGreaterThan(2.99);
    expect(workflowDays).toBeLessThan(3.01);
    expect(result.followersSeen).toBe(50);
    expect((await feeds.readFeed(FeedType.USER, actor)).items.map((i) => i.activityId)).toEqual([activityId]);
    expect(await timelineOwners(activityId)).toEqual(followers.all);
  });

  it('fails fast, without retrying or writing, on bad workflow input', async () => {
    const actor = uniqueName('bad');
    await seedFollowers(db, actor, 10, { prefix: `${actor}-f` });
    const { queues, workers } = await workersFor(actor);
    const err = await withWorkers(workers, () =>
      env.client.workflow
        .execute(FANOUT_WORKFLOW_TYPE, {
          taskQueue: queues.workflow,
          workflowId: `fanout-add-${actor}-bad`,
          args: [fanoutInput(actor, `${actor}-bad`, queues, { chunkSize: 0 })],
        })
        .then(() => undefined, (e: unknown) => e),
    );
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const cause = (err as WorkflowFailedError).cause;
    expect(cause).toBeInstanceOf(ApplicationFailure);
    expect((cause as ApplicationFailure).type).toBe('ValidationError');
    expect((cause as ApplicationFailure).nonRetryable).toBe(true);
    expect((cause as ApplicationFailure).message).toMatch(/input\.chunkSize must be between 1 and 1000, got 0/);
    expect(await timelineOwners(`${actor}-bad`)).toEqual([]);
  });

});
