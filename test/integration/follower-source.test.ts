/** MongoFollowerSource against the real store: both paging strategies give the same walk. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FollowerPage } from '../../src/contract/follower-source';
import { MongoFollowerSource, type PagingStrategy } from '../../src/storage/mongo-follower-source';
import { FeedStore } from '../../src/storage/feed-store';
import { FollowStore } from '../../src/storage/follow-store';
import { freshDb } from '../utils/env';
import { seedFollowers, type SeededFollowers } from '../../dev/seed';

let mongo: Awaited<ReturnType<typeof freshDb>>;
let seeded: SeededFollowers;

beforeAll(async () => {
  mongo = await freshDb('followers');
  await new FeedStore(mongo.db).ensureIndexes();
  seeded = await seedFollowers(mongo.db, 'star', 2_500, { activeEvery: 3 });
  // Followers of someone else must never appear.
  await seedFollowers(mongo.db, 'other', 50, { prefix: 'g' });
});

afterAll(async () => {
  await mongo?.drop();
});

async function walk(paging: PagingStrategy, walkId?: string): Promise<FollowerPage[]> {
  const source = new MongoFollowerSource(mongo.db, { paging });
  const pages: FollowerPage[] = [];
  let cursor: string | null = null;
  do {
    const page = await source.getFollowerPage({ userId: 'star', cursor, limit: 300, walkId });
    pages.push(page);
    cursor = page.nextCursor;
  } while (cursor !== null);
  return pages;
}

describe('MongoFollowerSource', () => {
  it.each(['query', 'snapshot'] as const)('%s paging visits every follower once, in order, split by activity', async (paging) => {
    const pages = await walk(paging, 'walk-1');
    expect(pages).toHaveLength(9); // 8 full pages of 300 and one of 100, no empty last page
    expect(pages.flatMap((p) => [...p.high, ...p.low]).sort()).toEqual(seeded.all);
    expect(pages.flatMap((p) => p.high)).toEqual(seeded.high);
    expect(pages.flatMap((p) => p.low)).toEqual(seeded.low);
  });

  it('gives the same pages with both strategies', async () => {
    expect(await walk('snapshot', 'walk-2')).toEqual(await walk('query'));
  });

  it('serves a page of a walk it has not seen (another worker, after a restart) from the store', async () => {
    const fresh = new MongoFollowerSource(mongo.db, { paging: 'snapshot' });
    const all = await walk('query');
    const page = await fresh.getFollowerPage({ userId: 'star', cursor: all[3].nextCursor, limit: 300, walkId: 'walk-3' });
    expect(page).toEqual(all[4]);
  });

  it('moves a follower between priorities when their last-active time changes', async () => {
    const [demoted] = seeded.high;
    const [promoted] = seeded.low;
    const graph = new FollowStore(mongo.db);
    await graph.setLastActive([
      { userId: demoted, lastActiveAt: new Date(Date.now() - 30 * 86_400_000) },
      { userId: promoted, lastActiveAt: new Date() },
    ]);
    try {
      const pages = await walk('query');
      expect(pages.flatMap((p) => p.high)).toContain(promoted);
      expect(pages.flatMap((p) => p.low)).toContain(demoted);
    } finally {
      await graph.setLastActive([
        { userId: demoted, lastActiveAt: new Date() },
        { userId: promoted, lastActiveAt: new Date(Date.now() - 90 * 86_400_000) },
      ]);
    }
  });

  it('picks snapshot paging on FerretDB and query paging on MongoDB when set to auto', async () => {
    const info = await mongo.db.admin().command({ buildInfo: 1 });
    const expected = typeof info.ferretdbVersion === 'string' ? 'snapshot' : 'query';
    expect(await new MongoFollowerSource(mongo.db).pagingStrategy()).toBe(expected);
  });
});
