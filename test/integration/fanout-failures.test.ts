/**
 * Failures are visible: bad input from outside the client, a misspelled feed type or queue, and
 * chunks that fail for good each end as an operator can see them (Failed with a reason, or flagged
 * `FanoutStalled` in the list view), on the real dev server and store.
 */
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { Db } from 'mongodb';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FeedClient } from '../../src/client/feed-client';
import { FanoutFailedError, VALIDATION_FAILURE_TYPE } from '../../src/contract/errors';
import { FANOUT_WORKFLOW_TYPE, FeedType, SearchAttribute } from '../../src/contract/constants';
import { ChunkExecution } from '../../src/contract/fanout';
import { Collections } from '../../src/storage/collections';
import { FeedStore } from '../../src/storage/feed-store';
import { createWorkers } from '../../src/worker/workers';
import { devServer, freshDb, uniqueName } from '../utils/env';
import { CHUNK_SHAPES, fanoutWorkers } from '../utils/fanout';
import { seedFollowers } from '../../dev/seed';
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
  mongo = await freshDb('fail');
  db = mongo.db;
  await new FeedStore(db).ensureIndexes();
});

afterEach(async () => {
  await mongo?.drop();
});

const entries = (activityId: string) => db.collection(Collections.feed(FeedType.TIMELINE)).countDocuments({ activityId });

/** The failure a run ended with (its cause), or undefined if it did not fail. */
async function failureOf(run: Promise<unknown>): Promise<ApplicationFailure | undefined> {
  const err = await run.then(() => undefined, (e: unknown) => e);
  expect(err, 'the run should have failed').toBeInstanceOf(WorkflowFailedError);
  const cause = (err as WorkflowFailedError).cause;
  expect(cause).toBeInstanceOf(ApplicationFailure);
  return cause as ApplicationFailure;
}

describe('failures are visible', () => {
  it('input from outside the client that is wrong fails the run at once, non-retryable, naming the field', async () => {
    const actor = uniqueName('rawin');
    const queues = testQueues(actor);
    await seedFollowers(db, actor, 50, { prefix: `${actor}-f` });
    const workers = await fanoutWorkers(temporal.nativeConnection, db, queues);
    const base = { operation: 'add', activityId: `${actor}-a`, actorId: actor, activityTime: 1_763_900_000_000, highTaskQueue: queues.high, lowTaskQueue: queues.low };
    // What `temporal workflow start --input '…'` would send (JSON), one broken field each.
    const cases: Array<[string, unknown, string]> = [
      ['a typo', { ...base, chunksize: 10 }, 'input.chunksize'],
      ['a __proto__ key', JSON.parse(JSON.stringify(base).replace('{', '{"__proto__":{"chunkSize":1},')), 'input.__proto__'],
      ['a constructor key', { ...base, constructor: 'x' }, 'input.constructor'],
      ['an internal field of the wrong shape', { ...base, continued: { progress: 5 } }, 'input.continued.cursor'],
      ['a time of 1e999', JSON.parse(JSON.stringify(base).replace('1763900000000', '1e999')), 'input.activityTime'],
    ];
    await withWorkers(workers, async () => {
      for (const [name, input, field] of cases) {
        const started = Date.now();
        const handle = await temporal.client.workflow.start(FANOUT_WORKFLOW_TYPE, {
          taskQueue: queues.workflow,
          workflowId: uniqueName(`${actor}-case`),
          args: [input],
        });
        const failure = await failureOf(handle.result());
        expect(failure?.type, name).toBe(VALIDATION_FAILURE_TYPE);
        expect(failure?.nonRetryable, name).toBe(true);
        expect(failure?.message.startsWith(field), `${name}: ${failure?.message}`).toBe(true);
        expect((await handle.describe()).status.name, name).toBe('FAILED');
        expect(Date.now() - started, name).toBeLessThan(15_000);
      }
    });
    expect(await entries(`${actor}-a`)).toBe(0);
  });

  it('a misspelled feed type fails the fanout before any chunk is written, with the reason', async () => {
    const actor = uniqueName('badtype');
    const queues = testQueues(actor);
    await seedFollowers(db, actor, 500, { prefix: `${actor}-f` });
    const workers = await fanoutWorkers(temporal.nativeConnection, db, queues);
    await withWorkers(workers, async () => {
      // Started as another language would (FeedClient itself checks feed types before starting).
      const handle = await temporal.client.workflow.start(FANOUT_WORKFLOW_TYPE, {
        taskQueue: queues.workflow,
        workflowId: `fanout-add-${actor}-a`,
        args: [{ operation: 'add', activityId: `${actor}-a`, actorId: actor, activityTime: Date.now(), feedTypes: ['timelin'], highTaskQueue: queues.high, lowTaskQueue: queues.low }],
      });
      const failure = await failureOf(handle.result());
      expect(failure?.message).toMatch(/^input\.feedTypes\[0\] "timelin" is not a configured feed type/);
      expect((await handle.describe()).status.name).toBe('FAILED');
    });
    expect(await entries(`${actor}-a`)).toBe(0);
  });
});

describe.each(CHUNK_SHAPES)('failures are visible, chunks as $chunkExecution', ({ chunkExecution }) => {
  it('chunks that fail for good make the run end Failed with counts and the first error; the rest is written', async () => {
    const actor = uniqueName('badchunk');
    const queues = testQueues(actor);
    const followers = await seedFollowers(db, actor, 250, { prefix: `${actor}-f`, activeEvery: 1000 });
    // Bad data in the graph: a follower id that can never be a feed owner. Its chunk (ids 101-200
    // in follower order) fails validation for good; the other two chunks are fine.
    const bad = `${actor}-f000150x/bad`;
    await db.collection(Collections.FOLLOWS).insertOne({ _id: `${actor}/${bad}` as never, follower: bad, followee: actor, createdAt: new Date() });
    const workers = await fanoutWorkers(temporal.nativeConnection, db, queues);
    const feeds = new FeedClient({ temporal: temporal.client, db, taskQueue: queues.workflow, fanout: { highTaskQueue: queues.high, lowTaskQueue: queues.low, chunkExecution } });
    const err = await withWorkers(workers, async () => {
      const { activityId } = await feeds.addActivity({ id: `${actor}-a`, actor, verb: 'pin', object: 'p' });
      return feeds.waitForFanout(activityId).then(() => undefined, (e: unknown) => e);
    });
    expect(err).toBeInstanceOf(FanoutFailedError);
    const failed = err as FanoutFailedError;
    // The chunk of followers 101-200 in follower order holds the bad id (the 150th).
    const range = `${actor}-f000101 … ${actor}-f000199`;
    expect(failed.message).toMatch(/^add fanout of activity \S+ failed: 1 of 3 chunks failed for good \(100 of 251 followers seen\)\. First errors: \[LOW chunk of 100 followers, \S+ … \S+\] input\.followerIds\[\d+\] must contain only/);
    expect(failed.message).toContain(range);
    expect(failed.progress).toMatchObject({ done: true, followersSeen: 251, low: { chunksDone: 2, chunksFailed: 1, entriesChanged: 151 } });
    expect(failed.progress?.failures[0]).toMatchObject({ priority: 'low', firstFollowerId: `${actor}-f000101`, lastFollowerId: `${actor}-f000199`, size: 100 });
    const handle = feeds.handle(`${actor}-a`);
    expect((await handle.describe()).status.name).toBe('FAILED');
    // In the Web UI: the failed chunk stands out. A local activity's marker carries the summary it
    // was scheduled with, so it gets a marker of its own whose summary says FAILED, with its range
    // and the error; an activity task's failure is its own event, shown failed, with the error.
    const converter = temporal.client.options.loadedDataConverter.payloadConverter;
    const events = (await handle.fetchHistory()).events ?? [];
    const summaryOf = (e: (typeof events)[number]) => converter.fromPayload<string>(e.userMetadata!.summary!);
    if (chunkExecution === ChunkExecution.LOCAL) {
      const markers = events.filter((e) => e.markerRecordedEventAttributes && e.userMetadata?.summary).map(summaryOf);
      const failedMarkers = markers.filter((m) => m.startsWith('FAILED: '));
      expect(failedMarkers).toHaveLength(1);
      expect(failedMarkers[0]).toMatch(new RegExp(`^FAILED: LOW 100 followers ${actor}-f000101 … ${actor}-f000199 \\(page 1\\): input\\.followerIds\\[\\d+\\] must contain only`));
      expect(markers.filter((m) => m.startsWith('LOW 100 followers') || m.startsWith('LOW 51 followers'))).toHaveLength(3);
    } else {
      const scheduled = new Map(events.filter((e) => e.activityTaskScheduledEventAttributes && e.userMetadata?.summary).map((e) => [String(e.eventId), summaryOf(e)]));
      const failedEvents = events.filter((e) => e.activityTaskFailedEventAttributes);
      expect(failedEvents).toHaveLength(1);
      const failedAttrs = failedEvents[0].activityTaskFailedEventAttributes!;
      expect(scheduled.get(String(failedAttrs.scheduledEventId))).toBe(`LOW 100 followers ${range} (page 1)`);
      expect(failedAttrs.failure?.message).toMatch(/^input\.followerIds\[\d+\] must contain only/);
    }
    // Its current details list the failed chunk with its range and error.
    const details = (await withWorkers(await fanoutWorkers(temporal.nativeConnection, db, queues), () =>
      handle.query<{ currentDetails?: string }>('__temporal_workflow_metadata'),
    )).currentDetails ?? '';
    expect(details).toContain(`**Failed chunks:** 1`);
    expect(details).toContain(`- [LOW chunk of 100 followers, ${range}] input.followerIds[`);
    // Not all or nothing: the followers of the good chunks have the entry.
    expect(await entries(`${actor}-a`)).toBe(151);
    expect(followers.all).toHaveLength(250);
  });

  it('a misspelled chunk queue is flagged FanoutStalled in the list view with the reason, and clears once a worker serves it', async () => {
    const actor = uniqueName('badq');
    const queues = testQueues(actor);
    await seedFollowers(db, actor, 300, { prefix: `${actor}-f`, activeEvery: 2 });
    const misspelled = `${queues.high}-typo`;
    const workers = await fanoutWorkers(temporal.nativeConnection, db, queues);
    const feeds = new FeedClient({ temporal: temporal.client, db, taskQueue: queues.workflow, fanout: { lowTaskQueue: queues.low, chunkExecution } });
    await withWorkers(workers, async () => {
      const { activityId, workflowId } = await feeds.addActivity(
        { id: `${actor}-a`, actor, verb: 'pin', object: 'p' },
        // Pages of 100, so by passes: a fanout of one page is written inline, on no chunk queue.
        { highTaskQueue: misspelled, stalledAfterMs: 2_000, pageSize: 100 },
      );
      // Found from the list view, without opening the run.
      const listed = async (stalled: boolean) => {
        const ids: string[] = [];
        for await (const run of temporal.client.workflow.list({ query: `${SearchAttribute.STALLED} = ${stalled} AND WorkflowId = '${workflowId}'` })) ids.push(run.workflowId);
        return ids.length === 1;
      };
      const flaggedWithin = await within(20_000, () => listed(true));
      console.log(`misspelled queue: flagged FanoutStalled ${flaggedWithin} ms after the start (stalledAfterMs 2000)`);
      const progress = await feeds.getProgress(activityId);
      expect(progress.stalled).toContain(`task queue "${misspelled}"`);
      expect(progress.stalled).toContain('highTaskQueue');
      const metadata = await feeds.handle(activityId).query<{ currentDetails?: string }>('__temporal_workflow_metadata');
      expect(metadata.currentDetails).toContain(misspelled);
      expect(progress.stalled).toContain('HIGH pass');
      // Active followers first: the LOW pass waits for the HIGH one.
      expect(progress.low.chunksDone).toBe(0);
      // Once stalled, the watchdog checks less and less often (a run stuck for days must not fill
      // its history with timers): in the next 12 s, checks 2, 4 and 8 s apart, not one a second.
      const timers = async () => ((await feeds.handle(activityId).fetchHistory()).events ?? []).filter((e) => e.timerStartedEventAttributes).length;
      const before = await timers();
      await new Promise((r) => setTimeout(r, 12_000));
      const checks = (await timers()) - before;
      console.log(`misspelled queue: ${checks} watchdog checks in the 12 s after the flag (every second before it)`);
      expect(checks).toBeLessThanOrEqual(4);
      expect(await listed(true)).toBe(true);

      // A worker for that queue appears: the fanout finishes and the flag clears.
      const late = await createWorkers({ connection: temporal.nativeConnection, db, queues: [{ taskQueue: misspelled, workflows: true }] });
      await withWorkers(late, async () => {
        const summary = await feeds.waitForFanout(activityId);
        expect(summary).toMatchObject({ done: true, stalled: null, high: { chunksDone: 2, chunksFailed: 0 }, low: { chunksDone: 2, chunksFailed: 0 } });
      });
      expect(await within(10_000, () => listed(false))).toBeGreaterThanOrEqual(0);
    });
    expect(await entries(`${actor}-a`)).toBe(300);
  });
});

/** Polls `check` until it is true; returns the milliseconds it took, or fails after `timeoutMs`. */
async function within(timeoutMs: number, check: () => Promise<boolean>): Promise<number> {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > timeoutMs) throw new Error(`not true within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return Date.now() - start;
}
