/**
 * Aggregated and notification feeds: grouping, counts under retried writes, seen / read state,
 * paging, bad input — in the store, and through a real fanout on the dev server.
 */
import { activityInfo } from '@temporalio/activity';
import type { Db } from 'mongodb';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { WriteFeedChunkInput } from '../../activities';
import { FeedClient } from '../../src/client/feed-client';
import { ValidationError } from '../../src/contract/errors';
import { FeedType } from '../../src/contract/constants';
import { DEFAULT_FEEDS, FeedKind, type FeedsConfig } from '../../src/contract/feeds';
import { FeedStore } from '../../src/storage/feed-store';
import { devServer, freshDb, uniqueName } from '../utils/env';
import { fanoutWorkers } from '../utils/fanout';
import { seedFollowers } from '../../dev/seed';
import { testQueues, withWorkers } from '../utils/workers';

let temporal: Awaited<ReturnType<typeof devServer>>;
let mongo: Awaited<ReturnType<typeof freshDb>>;
let db: Db;

const FEEDS: FeedsConfig = {
  ...DEFAULT_FEEDS,
  by_object: { kind: FeedKind.AGGREGATED, groupBy: ['verb', 'object'], maxActors: 3, trimChance: 0 },
};

beforeAll(async () => {
  temporal = await devServer();
});

afterAll(async () => {
  await temporal?.close();
});

beforeEach(async () => {
  mongo = await freshDb('agg');
  db = mongo.db;
  await new FeedStore(db, { feeds: FEEDS }).ensureIndexes();
});

afterEach(async () => {
  await mongo?.drop();
});

const DAY1 = Date.UTC(2026, 10, 20, 9);
const DAY2 = Date.UTC(2026, 10, 21, 9);

/** Stores an activity and returns its reference for feed writes. */
async function activity(store: FeedStore, id: string, actor: string, verb: string, object: string, time: number) {
  await store.storeActivity({ _id: id, actor, verb, object, time: new Date(time) });
  return { id, actor, time: new Date(time) };
}

describe('aggregated feeds', () => {
  it('groups as configured, keeps the most recent actors and the totals', async () => {
    const store = new FeedStore(db, { feeds: FEEDS });
    // Six people like photo-1 (one of them twice, on another photo too), one comments.
    const likers = ['ann', 'ben', 'cat', 'dan', 'eve', 'fay'];
    for (const [i, who] of likers.entries()) {
      await store.addToFeeds('by_object', ['reader'], await activity(store, `like-${who}`, who, 'like', 'photo-1', DAY1 + i * 1000));
    }
    await store.addToFeeds('by_object', ['reader'], await activity(store, 'like-ann-2', 'ann', 'like', 'photo-1', DAY1 + 10_000));
    await store.addToFeeds('by_object', ['reader'], await activity(store, 'like-ben-p2', 'ben', 'like', 'photo-2', DAY1 + 20_000));
    await store.addToFeeds('by_object', ['reader'], await activity(store, 'comment-cat', 'cat', 'comment', 'photo-1', DAY1 + 5_000));

    const page = await store.readAggregatedFeed('by_object', 'reader');
    expect(page.groups.map((g) => g.group)).toEqual(['like|photo-2', 'like|photo-1', 'comment|photo-1']);
    const photo1 = page.groups[1];
    expect(photo1).toMatchObject({ verb: 'like', activityCount: 7, actorCount: 6, time: new Date(DAY1 + 10_000) });
    // maxActors 3, most recent first (order of first appearance: ann is not moved by her second like).
    expect(photo1.actors).toEqual(['fay', 'eve', 'dan']);
    expect(photo1.activities.map((a) => a.id)).toEqual(['like-ann-2', 'like-fay', 'like-eve']);

    // Grouping by verb and day (the default aggregated timeline) splits by day instead.
    for (const [id, actor, t] of [['p1', 'ann', DAY1], ['p2', 'ben', DAY1 + 1], ['p3', 'ann', DAY2]] as const) {
      await store.addToFeeds(FeedType.TIMELINE_AGGREGATED, ['reader'], await activity(store, id, actor, 'post', `o-${id}`, t));
    }
    const byDay = await store.readAggregatedFeed(FeedType.TIMELINE_AGGREGATED, 'reader');
    expect(byDay.groups.map((g) => [g.group, g.activityCount, g.actorCount])).toEqual([
      ['post|2026-11-21', 1, 1],
      ['post|2026-11-20', 2, 2],
    ]);
  });

  it('never counts twice when a write is retried, and uncounts on removal', async () => {
    const store = new FeedStore(db, { feeds: FEEDS });
    const owners = ['r1', 'r2', 'r3'];
    const a1 = await activity(store, 'a1', 'ann', 'like', 'photo-9', DAY1);
    const a2 = await activity(store, 'a2', 'ben', 'like', 'photo-9', DAY1 + 1);
    const a3 = await activity(store, 'a3', 'ann', 'like', 'photo-9', DAY1 + 2);
    // A first try reached only r1 before "crashing"; the retry covers all three, then repeats.
    await store.addToFeeds('by_object', ['r1'], a1);
    expect(await store.addToFeeds('by_object', owners, a1)).toEqual({ changed: 2, unchanged: 1, trimmed: 0 });
    expect(await store.addToFeeds('by_object', owners, a1)).toEqual({ changed: 0, unchanged: 3, trimmed: 0 });
    await store.addToFeeds('by_object', owners, a2);
    await store.addToFeeds('by_object', owners, a2);
    await store.addToFeeds('by_object', owners, a3);
    for (const owner of owners) {
      const [g] = (await store.readAggregatedFeed('by_object', owner)).groups;
      expect([g.activityCount, g.actorCount, g.actors]).toEqual([3, 2, ['ben', 'ann']]);
    }
    // Removing ann's first like keeps her (she liked again); removing ben's uncounts him; repeats change nothing.
    await store.removeFromFeeds('by_object', owners, a1);
    await store.removeFromFeeds('by_object', owners, a1);
    await store.removeFromFeeds('by_object', owners, a2);
    expect(await store.removeFromFeeds('by_object', owners, a2)).toEqual({ changed: 0, unchanged: 3, trimmed: 0 });
    const [g] = (await store.readAggregatedFeed('by_object', 'r2')).groups;
    expect([g.activityCount, g.actorCount, g.actors]).toEqual([1, 1, ['ann']]);
    await store.removeFromFeeds('by_object', owners, a3);
    expect((await store.readAggregatedFeed('by_object', 'r2')).groups).toEqual([]);
  });

  it('pages groups newest first with a stable cursor', async () => {
    const store = new FeedStore(db, { feeds: FEEDS });
    for (let i = 0; i < 23; i++) {
      await store.addToFeeds('by_object', ['pager'], await activity(store, `x${i}`, 'ann', 'like', `obj-${i}`, DAY1 + i * 1000));
    }
    const seen: string[] = [];
    let before: string | undefined;
    do {
      const page = await store.readAggregatedFeed('by_object', 'pager', { limit: 5, before });
      seen.push(...page.groups.map((g) => g.group));
      before = page.nextCursor ?? undefined;
    } while (before);
    expect(seen).toEqual(Array.from({ length: 23 }, (_, i) => `like|obj-${22 - i}`));
  });

  it('fans out into an aggregated feed through the workflow, exactly once per follower despite retried chunks', async () => {
    const actor = uniqueName('poster');
    const queues = testQueues(actor);
    const followers = await seedFollowers(db, actor, 250, { prefix: `${actor}-f` });
    let failedOnce = 0;
    const workers = await fanoutWorkers(temporal.nativeConnection, db, queues, (a) => ({
      async writeFeedChunk(input: WriteFeedChunkInput) {
        const res = await a.writeFeedChunk(input);
        if (activityInfo().attempt === 1) {
          failedOnce++;
          throw new Error('simulated crash after the chunk was written');
        }
        return res;
      },
    }));
    const feeds = new FeedClient({ temporal: temporal.client, db, taskQueue: queues.workflow, fanout: { highTaskQueue: queues.high, lowTaskQueue: queues.low } });
    const feedTypes = [FeedType.TIMELINE, FeedType.TIMELINE_AGGREGATED];
    await withWorkers(workers, async () => {
      for (const [id, t] of [['first', DAY1], ['second', DAY1 + 60_000]] as const) {
        const { activityId } = await feeds.addActivity({ id: `${actor}-${id}`, actor, verb: 'post', object: id, time: t }, { feedTypes });
        const summary = await feeds.waitForFanout(activityId);
        expect(summary.high.chunksFailed + summary.low.chunksFailed).toBe(0);
      }
    });
    expect(failedOnce).toBeGreaterThanOrEqual(4); // every chunk's first attempt failed after writing
    for (const owner of [followers.all[0], followers.all[249]]) {
      const { groups } = await feeds.readAggregatedFeed(FeedType.TIMELINE_AGGREGATED, owner);
      expect(groups.map((g) => [g.group, g.activityCount, g.actorCount])).toEqual([['post|2026-11-20', 2, 1]]);
      expect(groups[0].activities.map((a) => a.id)).toEqual([`${actor}-second`, `${actor}-first`]);
    }
    const total = await db.collection('feed_timeline_aggregated').countDocuments({ activityCount: 2, actorCount: 1 });
    expect(total).toBe(250);
  });
});

describe('notification feeds', () => {
  it('counts unseen and unread groups, and marks them seen or read, all or some', async () => {
    const feeds = new FeedClient({ temporal: temporal.client, db, feeds: FEEDS });
    const me = uniqueName('me');
    for (const who of ['ann', 'ben', 'cat']) await feeds.notify([me], { actor: who, verb: 'like', object: 'photo-1', time: DAY1 });
    await feeds.notify([me], { actor: 'dan', verb: 'comment', object: 'photo-1', time: DAY1 + 1 });
    await feeds.notify([me], { actor: 'dan', verb: 'comment', object: 'photo-1', time: DAY1 + 1 }); // repeated: no change
    let page = await feeds.readNotifications(me);
    expect(page.counts).toEqual({ unseen: 2, unread: 2 });
    expect(page.groups.map((g) => [g.group, g.actorCount, g.activityCount])).toEqual([
      ['comment|photo-1', 1, 1],
      ['like|photo-1', 3, 3],
    ]);

    expect(await feeds.markSeen(me, { groups: ['like|photo-1'] })).toBe(1);
    expect(await feeds.notificationCounts(me)).toEqual({ unseen: 1, unread: 2 });
    expect(await feeds.markRead(me, { groups: ['comment|photo-1'] })).toBe(1);
    expect(await feeds.notificationCounts(me)).toEqual({ unseen: 0, unread: 1 });
    expect(await feeds.markRead(me)).toBe(1);
    expect(await feeds.markRead(me)).toBe(0);
    expect(await feeds.notificationCounts(me)).toEqual({ unseen: 0, unread: 0 });

    // Someone new likes the photo: that group is unseen and unread again, with four actors.
    await feeds.notify([me], { actor: 'eve', verb: 'like', object: 'photo-1', time: DAY1 + 5 });
    page = await feeds.readNotifications(me);
    expect(page.counts).toEqual({ unseen: 1, unread: 1 });
    expect(page.groups[0]).toMatchObject({ group: 'like|photo-1', actorCount: 4, seen: false, read: false });
    expect(page.groups[0].actors.slice(0, 2)).toEqual(['eve', 'cat']);
  });

  it('rejects bad input with an error naming the field, and changes nothing', async () => {
    const feeds = new FeedClient({ temporal: temporal.client, db, feeds: FEEDS });
    await feeds.notify(['owner1'], { actor: 'ann', verb: 'like', object: 'p1', time: DAY1 });
    const cases: Array<[string, () => Promise<unknown>, string]> = [
      ['unknown feed type', () => feeds.readAggregatedFeed('nope', 'owner1'), 'feedType'],
      ['flat feed read as aggregated', () => feeds.readAggregatedFeed(FeedType.TIMELINE, 'owner1'), 'feedType'],
      ['aggregated feed read as flat', () => feeds.readFeed(FeedType.NOTIFICATION, 'owner1'), 'feedType'],
      ['malformed cursor', () => feeds.readNotifications('owner1', { before: 'not-a-cursor' }), 'before'],
      ['limit 0', () => feeds.readNotifications('owner1', { limit: 0 }), 'limit'],
      ['limit too big', () => feeds.readFeed(FeedType.TIMELINE, 'owner1', { limit: 501 }), 'limit'],
      ['mark on a flat feed', () => feeds.markSeen('owner1', { feedType: FeedType.TIMELINE }), 'options.feedType'],
      ['mark with bad groups', () => feeds.markRead('owner1', { groups: 'like|p1' as unknown as string[] }), 'options.groups'],
      ['notify a bad recipient', () => feeds.notify(['ok', 'not ok'], { actor: 'ann', verb: 'like', object: 'p2' }), 'recipients[1]'],
      ['notify with a bad activity', () => feeds.notify(['owner1'], { actor: 'ann', verb: '', object: 'p2' }), 'activity.verb'],
    ];
    for (const [name, call, field] of cases) {
      const err = await call().then(() => null, (e: unknown) => e);
      expect(err, name).toBeInstanceOf(ValidationError);
      expect((err as ValidationError).field, name).toBe(field);
    }
    const page = await feeds.readNotifications('owner1');
    expect(page.counts).toEqual({ unseen: 1, unread: 1 });
    expect(page.groups.map((g) => g.group)).toEqual(['like|p1']);
    expect(await db.collection('activities').countDocuments({ object: 'p2' })).toBe(0);
  });
});
