/**
 * Follow and unfollow end to end against the real Temporal dev server and the MongoDB-wire store,
 * through the app-facing FeedClient: backfill, removal, counts under repeats, races and retries,
 * notifications, bulk import, bad input.
 */
import { activityInfo } from '@temporalio/activity';
import { WorkflowNotFoundError } from '@temporalio/client';
import type { Db } from 'mongodb';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { FollowChangeInput } from '../../activities';
import { FeedClient } from '../../src/client/feed-client';
import { ValidationError } from '../../src/contract/errors';
import { FeedType } from '../../src/contract/constants';
import { followWorkflowId } from '../../src/contract/follow';
import { FeedStore } from '../../src/storage/feed-store';
import type { AllActivities } from '../../src/worker/workers';
import { devServer, freshDb, uniqueName } from '../utils/env';
import { fanoutWorkers } from '../utils/fanout';
import { testQueues, withWorkers } from '../utils/workers';

let temporal: Awaited<ReturnType<typeof devServer>>;
let mongo: Awaited<ReturnType<typeof freshDb>>;
let db: Db;
let store: FeedStore;

beforeAll(async () => {
  temporal = await devServer();
});

afterAll(async () => {
  await temporal?.close();
});

beforeEach(async () => {
  mongo = await freshDb('follow');
  db = mongo.db;
  store = new FeedStore(db);
  await store.ensureIndexes();
});

afterEach(async () => {
  await mongo?.drop();
});

/** A client on fresh task queues. */
function client(queues = testQueues(uniqueName('fq'))): FeedClient {
  return new FeedClient({ temporal: temporal.client, db, taskQueue: queues.workflow });
}

/** A client and workers on fresh task queues; `wrap` may replace activities to inject faults. */
async function setup(wrap?: (a: AllActivities) => Partial<AllActivities>) {
  const queues = testQueues(uniqueName('fq'));
  const workers = await fanoutWorkers(temporal.nativeConnection, db, queues, wrap);
  return { feeds: client(queues), workers };
}

/** Gives `actor` `count` activities in their own feed, one minute apart; returns ids newest first. */
async function postHistory(actor: string, count: number, verb = 'post'): Promise<string[]> {
  const base = Date.UTC(2026, 10, 1, 12);
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const id = `${actor}-act-${String(i).padStart(3, '0')}`;
    const time = new Date(base + i * 60_000);
    await store.storeActivity({ _id: id, actor, verb, object: `obj-${i}`, time });
    await store.addToFeeds(FeedType.USER, [actor], { id, actor, time });
    ids.push(id);
  }
  return ids.reverse();
}

async function timeline(owner: string, feedType: string = FeedType.TIMELINE): Promise<string[]> {
  const ids: string[] = [];
  let before: string | undefined;
  do {
    const page = await store.readFeed(feedType, owner, { limit: 100, before });
    ids.push(...page.items.map((i) => i.activityId));
    before = page.nextCursor ?? undefined;
  } while (before);
  return ids;
}

describe('follow and unfollow on the dev server', () => {
  it('follow backfills exactly the configured number of the followee\'s newest activities, in order, and notifies the followee', async () => {
    const steve = uniqueName('steve');
    const susan = uniqueName('susan');
    const history = await postHistory(steve, 30);
    const { feeds, workers } = await setup();
    const state = await withWorkers(workers, async () => {
      await feeds.follow(susan, steve, { backfillLimit: 20, backfillBatchSize: 7 });
      return feeds.waitForFollow(susan, steve);
    });
    expect(state).toMatchObject({ following: true, followed: 1, backfilled: 20, requestsApplied: 1 });
    expect(await timeline(susan)).toEqual(history.slice(0, 20));
    expect(await feeds.getCounts(steve)).toEqual({ followers: 1, following: 0 });
    expect(await feeds.getCounts(susan)).toEqual({ followers: 0, following: 1 });
    const notes = await feeds.readNotifications(steve);
    expect(notes.counts).toEqual({ unseen: 1, unread: 1 });
    expect(notes.groups).toHaveLength(1);
    expect(notes.groups[0]).toMatchObject({ group: `follow|${steve}`, verb: 'follow', actors: [susan], actorCount: 1, seen: false });
  });

  it('unfollow removes all of the followee\'s activities from the follower\'s feeds and nothing else', async () => {
    const steve = uniqueName('steve');
    const mark = uniqueName('mark');
    const susan = uniqueName('susan');
    await postHistory(steve, 12);
    const marks = await postHistory(mark, 5);
    // Mark's activities reached Susan's timeline by fanout; one old activity of Steve's did too
    // (older than any backfill would copy).
    for (const id of marks) {
      const a = (await store.getActivity(id))!;
      await store.addToFeeds(FeedType.TIMELINE, [susan], { id, actor: mark, time: a.time });
    }
    await store.storeActivity({ _id: `${steve}-ancient`, actor: steve, verb: 'post', object: 'old', time: new Date(Date.UTC(2020, 0, 1)) });
    await store.addToFeeds(FeedType.TIMELINE, [susan], { id: `${steve}-ancient`, actor: steve, time: new Date(Date.UTC(2020, 0, 1)) });
    const { feeds, workers } = await setup();
    const state = await withWorkers(workers, async () => {
      await feeds.follow(susan, steve, { backfillLimit: 10 });
      const followed = await feeds.waitForFollow(susan, steve);
      expect(followed.backfilled).toBe(10);
      expect(await timeline(susan)).toHaveLength(10 + 5 + 1);
      await feeds.unfollow(susan, steve);
      return feeds.waitForFollow(susan, steve);
    });
    expect(state).toMatchObject({ following: false, unfollowed: 1, removedEntries: 11 });
    expect(await timeline(susan)).toEqual(marks);
    expect(await feeds.getCounts(steve)).toEqual({ followers: 0, following: 0 });
    expect(await feeds.getCounts(susan)).toEqual({ followers: 0, following: 0 });
    expect(await feeds.follows.isFollowing(susan, steve)).toBe(false);
  });

  it('keeps counts right under a follow repeated 5 times, a follow/unfollow race and retried activities', async () => {
    const star = uniqueName('star');
    const [fan1, fan2, fan3] = [uniqueName('fan1'), uniqueName('fan2'), uniqueName('fan3')];
    await postHistory(star, 4);
    const attempts = new Map<string, number>();
    // Every first attempt of applyFollow / applyUnfollow does its writes and then "crashes", so
    // Temporal retries an activity whose effects already landed.
    const { feeds, workers } = await setup((a) => ({
      async applyFollow(input: FollowChangeInput) {
        const res = await a.applyFollow(input);
        attempts.set(`f:${input.follower}`, activityInfo().attempt);
        if (activityInfo().attempt === 1) throw new Error('simulated crash after the follow was written');
        return res;
      },
      async applyUnfollow(input: FollowChangeInput) {
        const res = await a.applyUnfollow(input);
        attempts.set(`u:${input.follower}`, activityInfo().attempt);
        if (activityInfo().attempt === 1) throw new Error('simulated crash after the unfollow was written');
        return res;
      },
    }));
    await withWorkers(workers, async () => {
      // fan1 follows five times at once.
      await Promise.all(Array.from({ length: 5 }, () => feeds.follow(fan1, star)));
      // fan2 follows and unfollows right away; fan3 follows, unfollows and follows again.
      await feeds.follow(fan2, star);
      await feeds.unfollow(fan2, star);
      await feeds.follow(fan3, star);
      await feeds.unfollow(fan3, star);
      await feeds.follow(fan3, star);
      const states = await Promise.all([fan1, fan2, fan3].map((f) => feeds.waitForFollow(f, star)));
      expect(states.map((s) => s.following)).toEqual([true, false, true]);
    });
    expect(attempts.get(`f:${fan1}`)).toBe(2); // the retry really happened
    expect(await feeds.getCounts(star)).toEqual({ followers: 2, following: 0 });
    expect(await feeds.getCounts(fan1)).toEqual({ followers: 0, following: 1 });
    expect(await feeds.getCounts(fan2)).toEqual({ followers: 0, following: 0 });
    expect(await feeds.getCounts(fan3)).toEqual({ followers: 0, following: 1 });
    expect(await timeline(fan1)).toHaveLength(4);
    expect(await timeline(fan2)).toHaveLength(0);
    expect(await timeline(fan3)).toHaveLength(4);
    expect(await feeds.follows.countFollowers(star)).toBe(2);
  });

  it('counts exactly under 100 concurrent follows of one user and 50 concurrent unfollows', async () => {
    // On FerretDB concurrent updates of one document lose increments (100 follows once counted
    // 89-93); counts there come from the edges. On MongoDB the counters are updated atomically.
    const star = uniqueName('star');
    const fans = Array.from({ length: 100 }, (_, i) => `${star}-fan${String(i).padStart(3, '0')}`);
    const { feeds, workers } = await setup();
    await withWorkers(workers, async () => {
      await Promise.all(fans.map((fan) => feeds.follow(fan, star, { backfillLimit: 0 })));
      await Promise.all(fans.map((fan) => feeds.waitForFollow(fan, star)));
      expect(await feeds.getCounts(star)).toEqual({ followers: 100, following: 0 });
      // Every follow told the star: one notification group, 100 distinct actors.
      const [group] = (await feeds.readNotifications(star)).groups;
      expect([group?.activityCount, group?.actorCount]).toEqual([100, 100]);

      const leaving = fans.slice(0, 50);
      await Promise.all(leaving.map((fan) => feeds.unfollow(fan, star)));
      await Promise.all(leaving.map((fan) => feeds.waitForFollow(fan, star)));
    });
    expect(await feeds.getCounts(star)).toEqual({ followers: 50, following: 0 });
    expect(await feeds.follows.countFollowers(star)).toBe(50);
    for (const fan of fans) expect((await feeds.getCounts(fan)).following, fan).toBe(fan < fans[50] ? 0 : 1);
  });

  it('a pair toggled without pause continues as new, and ends in the last requested state with exact counts', async () => {
    const star = uniqueName('toggle');
    const { feeds, workers } = await setup();
    const handle = temporal.client.workflow.getHandle(followWorkflowId('bot', star));
    await withWorkers(workers, async () => {
      const until = Date.now() + 4_000;
      let i = 0;
      for (; Date.now() < until; i++) {
        await (i % 2 === 0 ? feeds.follow('bot', star, { backfillLimit: 0, notify: false, maxHistoryEvents: 100 }) : feeds.unfollow('bot', star, { maxHistoryEvents: 100 }));
        await new Promise((r) => setTimeout(r, 10));
      }
      // An odd number of requests ends on a follow.
      if (i % 2 === 0) await feeds.follow('bot', star, { maxHistoryEvents: 100 });
      const final = await feeds.waitForFollow('bot', star);
      expect(final.following).toBe(true);
    });
    let handedOver = 0;
    const converter = temporal.client.options.loadedDataConverter.payloadConverter;
    for await (const run of temporal.client.workflow.list({ query: `WorkflowId = '${handle.workflowId}'` })) {
      if (run.status.name === 'CONTINUED_AS_NEW') handedOver++;
      // A run hands over once past its maxHistoryEvents (100 here, whichever request started it;
      // checked against the run's own input below): the check comes before each request, so past
      // that point a run applies at most the request it had begun (an unfollow: 2 activities; the
      // last follow: applyFollow, a backfill batch, the notification). Signals that arrive
      // meanwhile add events however loaded the machine is, so the length itself is no measure.
      const events = (await temporal.client.workflow.getHandle(handle.workflowId, run.runId).fetchHistory()).events ?? [];
      const input = converter.fromPayload<{ maxHistoryEvents: number }>(events[0].workflowExecutionStartedEventAttributes!.input!.payloads![0]);
      const late = events.filter((e) => Number(e.eventId) > input.maxHistoryEvents && e.activityTaskScheduledEventAttributes).length;
      expect(late, `run ${run.runId}: ${run.historyLength} events, limit ${input.maxHistoryEvents}`).toBeLessThanOrEqual(3);
    }
    expect(handedOver).toBeGreaterThan(0);
    expect(await feeds.getCounts(star)).toEqual({ followers: 1, following: 0 });
    // Every run had the limit asked for, including runs an unfollow started.
    for await (const run of temporal.client.workflow.list({ query: `WorkflowId = '${handle.workflowId}'` })) {
      const first = (await temporal.client.workflow.getHandle(handle.workflowId, run.runId).fetchHistory()).events![0];
      expect(converter.fromPayload<{ maxHistoryEvents: number }>(first.workflowExecutionStartedEventAttributes!.input!.payloads![0]).maxHistoryEvents).toBe(100);
    }
    expect(await feeds.getCounts('bot')).toEqual({ followers: 0, following: 1 });
  });

  it('backfills and cleans an aggregated feed named per follow', async () => {
    const steve = uniqueName('steve');
    const susan = uniqueName('susan');
    await postHistory(steve, 6, 'post'); // all on one day: one group
    const { feeds, workers } = await setup();
    await withWorkers(workers, async () => {
      await feeds.follow(susan, steve, { feedTypes: [FeedType.TIMELINE, FeedType.TIMELINE_AGGREGATED] });
      await feeds.waitForFollow(susan, steve);
      const page = await feeds.readAggregatedFeed(FeedType.TIMELINE_AGGREGATED, susan);
      expect(page.groups.map((g) => [g.group, g.activityCount, g.actorCount, g.actors])).toEqual([['post|2026-11-01', 6, 1, [steve]]]);
      // A new run with default options: unfollow cleans every feed that can hold Steve's activities.
      await feeds.unfollow(susan, steve);
      expect((await feeds.waitForFollow(susan, steve)).removedEntries).toBe(12);
    });
    expect(await timeline(susan)).toHaveLength(0);
    expect((await feeds.readAggregatedFeed(FeedType.TIMELINE_AGGREGATED, susan)).groups).toHaveLength(0);
  });

  it('imports a graph with followMany, counting each edge once however often it is imported', async () => {
    const feeds = client();
    const hub = uniqueName('hub');
    const edges = Array.from({ length: 250 }, (_, i) => ({ follower: `${hub}-f${i}`, followee: hub }));
    edges.push({ follower: hub, followee: `${hub}-f0` });
    expect(await feeds.followMany(edges)).toEqual({ inserted: 251 });
    expect(await feeds.followMany(edges.slice(0, 100))).toEqual({ inserted: 0 });
    expect(await feeds.getCounts(hub)).toEqual({ followers: 250, following: 1 });
    expect(await feeds.getCounts(`${hub}-f0`)).toEqual({ followers: 1, following: 1 });
  });

  it('rejects bad input with an error naming the field, and starts and writes nothing', async () => {
    const feeds = client();
    const a = uniqueName('a');
    const b = uniqueName('b');
    const cases: Array<[string, () => Promise<unknown>, string]> = [
      ['self-follow', () => feeds.follow(a, a), 'followee'],
      ['bad follower id', () => feeds.follow('has space', b), 'follower'],
      ['backfill limit out of range', () => feeds.follow(a, b, { backfillLimit: 5000 }), 'options.backfillLimit'],
      ['backfill batch 0', () => feeds.follow(a, b, { backfillBatchSize: 0 }), 'options.backfillBatchSize'],
      ['unknown feed type', () => feeds.follow(a, b, { feedTypes: ['nope'] }), 'options.feedTypes[0]'],
      ['self-unfollow', () => feeds.unfollow(b, b), 'followee'],
      ['a follow-only option on an unfollow', () => feeds.unfollow(a, b, { backfillLimit: 5 } as never), 'options.backfillLimit'],
      ['unfollow history limit out of range', () => feeds.unfollow(a, b, { maxHistoryEvents: 10 }), 'options.maxHistoryEvents'],
      ['self-edge in an import', () => feeds.followMany([{ follower: a, followee: b }, { follower: b, followee: b }]), 'edges[1].followee'],
    ];
    for (const [name, call, field] of cases) {
      const err = await call().then(() => null, (e: unknown) => e);
      expect(err, name).toBeInstanceOf(ValidationError);
      expect((err as ValidationError).field, name).toBe(field);
    }
    await expect(temporal.client.workflow.getHandle(followWorkflowId(a, b)).describe()).rejects.toBeInstanceOf(WorkflowNotFoundError);
    expect(await feeds.follows.isFollowing(a, b)).toBe(false);
    expect(await feeds.getCounts(b)).toEqual({ followers: 0, following: 0 });
  });
});
