/** FeedStore against the real MongoDB-wire store: writes through the driver, reads them back. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/contract/errors';
import { FeedStore } from '../../src/storage/feed-store';
import { freshDb } from '../utils/env';

let mongo: Awaited<ReturnType<typeof freshDb>>;
let store: FeedStore;

beforeAll(async () => {
  mongo = await freshDb('store');
  store = new FeedStore(mongo.db, { feeds: { user: {}, timeline: { maxLength: 5, trimChance: 0 } } });
  await store.ensureIndexes();
  // Twice: index creation must be idempotent (workers call it at every start).
  await store.ensureIndexes();
});

afterAll(async () => {
  await mongo?.drop();
});

async function addActivities(owner: string, n: number, prefix: string) {
  for (let i = 1; i <= n; i++) {
    const id = `${prefix}${String(i).padStart(3, '0')}`;
    await store.storeActivity({ _id: id, actor: 'someone', verb: 'post', object: `o${i}`, time: new Date(i * 1000) });
    await store.addToFeeds('timeline', [owner], { id: id, actor: 'actor-1', time: new Date(i * 1000) });
  }
}

describe('FeedStore', () => {
  it('writes entries in one batch, reads them back newest first, and counts a rewrite as unchanged', async () => {
    await store.storeActivity({ _id: 'w1', actor: 'ann', verb: 'pin', object: 'p1', time: new Date(5000) });
    const first = await store.addToFeeds('user', ['bob', 'cat', 'dan'], { id: 'w1', actor: 'actor-1', time: new Date(5000) });
    expect(first).toEqual({ changed: 3, unchanged: 0, trimmed: 0 });
    // A retried chunk where one entry is new and three were written before.
    const again = await store.addToFeeds('user', ['bob', 'cat', 'dan', 'eve'], { id: 'w1', actor: 'actor-1', time: new Date(5000) });
    expect(again).toEqual({ changed: 1, unchanged: 3, trimmed: 0 });
    expect(await store.feed('user').countDocuments({ activityId: 'w1' })).toBe(4);
    const page = await store.readFeed('user', 'cat');
    expect(page.items).toHaveLength(1);
    expect(page.items[0]).toMatchObject({ activityId: 'w1', activity: { id: 'w1', actor: 'ann', verb: 'pin', object: 'p1' } });
    expect(page.nextCursor).toBeNull();
  });

  it('pages with a cursor, skipping nothing and repeating nothing while new entries arrive', async () => {
    const big = new FeedStore(mongo.db, { feeds: { paged: { maxLength: 1000, trimChance: 0 } } });
    await big.ensureIndexes();
    for (let i = 1; i <= 12; i++) {
      await big.storeActivity({ _id: `pg${i}`, actor: 'x', verb: 'post', object: 'o', time: new Date(i * 1000) });
      await big.addToFeeds('paged', ['reader'], { id: `pg${i}`, actor: 'actor-1', time: new Date(i * 1000) });
    }
    const seen: string[] = [];
    let cursor: string | undefined;
    for (let round = 0; ; round++) {
      const page = await big.readFeed('paged', 'reader', { limit: 5, before: cursor });
      seen.push(...page.items.map((i) => i.activityId));
      // A newer activity arrives between page reads: it must not shift the pages being read.
      await big.storeActivity({ _id: `new${round}`, actor: 'x', verb: 'post', object: 'o', time: new Date(100_000 + round) });
      await big.addToFeeds('paged', ['reader'], { id: `new${round}`, actor: 'actor-1', time: new Date(100_000 + round) });
      if (!page.nextCursor) break;
      cursor = page.nextCursor;
    }
    expect(seen).toEqual(Array.from({ length: 12 }, (_, i) => `pg${12 - i}`));
  });

  it('trims a feed to maxLength, keeping the newest entries', async () => {
    await addActivities('trimmed', 8, 'tr');
    expect(await store.trimFeeds('timeline', ['trimmed'])).toBe(1);
    const page = await store.readFeed('timeline', 'trimmed', { limit: 50 });
    expect(page.items.map((i) => i.activityId)).toEqual(['tr008', 'tr007', 'tr006', 'tr005', 'tr004']);
    expect(await store.trimFeeds('timeline', ['trimmed'])).toBe(0);
  });

  it('trims on write with the configured chance', async () => {
    const always = new FeedStore(mongo.db, { feeds: { timeline: { maxLength: 5, trimChance: 1 } } });
    await addActivities('auto', 5, 'au');
    const res = await always.addToFeeds('timeline', ['auto'], { id: 'au999', actor: 'actor-1', time: new Date(999_000) });
    expect(res).toEqual({ changed: 1, unchanged: 0, trimmed: 1 });
    expect(await always.feed('timeline').countDocuments({ owner: 'auto' })).toBe(5);
  });

  it('removes entries idempotently', async () => {
    await store.addToFeeds('user', ['r1', 'r2'], { id: 'rm1', actor: 'actor-1', time: new Date(1) });
    expect(await store.removeFromFeeds('user', ['r1', 'r2', 'r3'], { id: 'rm1', actor: 'actor-1' })).toEqual({ changed: 2, unchanged: 1, trimmed: 0 });
    expect(await store.removeFromFeeds('user', ['r1', 'r2'], { id: 'rm1', actor: 'actor-1' })).toEqual({ changed: 0, unchanged: 2, trimmed: 0 });
  });

  it('rejects a malformed cursor, an unknown feed type and a bad limit, naming the field', async () => {
    const fields = await Promise.all(
      [
        () => store.readFeed('timeline', 'x', { before: 'not-a-cursor' }),
        () => store.readFeed('timeline', 'x', { before: Buffer.from('{"t":"x"}').toString('base64url') }),
        () => store.readFeed('nope', 'x'),
        () => store.readFeed('timeline', 'x', { limit: 0 }),
        () => store.readFeed('timeline', 'x', { limit: 501 }),
      ].map((f) => f().then(() => undefined, (e: unknown) => (e instanceof ValidationError ? e.field : String(e)))),
    );
    expect(fields).toEqual(['before', 'before', 'feedType', 'limit', 'limit']);
  });

  // A cursor is input like any other: every part is checked before it reaches a query.
  it.each([
    ['a time of 1e999 (Infinity once parsed)', '{"t":1e999,"id":"a1"}'],
    ['a time beyond a Date', '{"t":9000000000000000,"id":"a1"}'],
    ['a fractional time', '{"t":1.5,"id":"a1"}'],
    ['an id that is an object', '{"t":1,"id":{"$gt":""}}'],
    ['an empty id', '{"t":1,"id":""}'],
    ['an extra key', '{"t":1,"id":"a1","owner":"someone-else"}'],
    ['a __proto__ key', '{"t":1,"id":"a1","__proto__":{"t":2}}'],
    ['an array', '[1,"a1"]'],
  ])('rejects a cursor with %s, naming before', async (_name, json) => {
    const err = await store.readFeed('timeline', 'x', { before: Buffer.from(json).toString('base64url') }).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).field).toBe('before');
  });

  it('rejects unknown read options, naming them', async () => {
    const err = await store.readFeed('timeline', 'x', { limt: 5 } as never).then(() => undefined, (e: unknown) => e);
    expect((err as ValidationError).field).toBe('options.limt');
  });
});
