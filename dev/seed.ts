/** Follow-graph fixtures. */
import type { Db } from 'mongodb';
import { FollowStore } from '../src/storage/follow-store';

/** Ids of generated followers, split the way the default priority rule will split them. */
export interface SeededFollowers {
  all: string[];
  high: string[];
  low: string[];
}

/**
 * Gives `actor` `count` followers (`<prefix>00001`…), every `activeEvery`-th of them active an
 * hour ago (HIGH), the others last active 90 days ago (LOW).
 */
export async function seedFollowers(db: Db, actor: string, count: number, options: { activeEvery?: number; prefix?: string } = {}): Promise<SeededFollowers> {
  const { activeEvery = 2, prefix = 'f' } = options;
  const graph = new FollowStore(db);
  const now = Date.now();
  const all: string[] = [];
  const high: string[] = [];
  const low: string[] = [];
  const users: { userId: string; lastActiveAt: Date }[] = [];
  for (let i = 1; i <= count; i++) {
    const id = `${prefix}${String(i).padStart(6, '0')}`;
    all.push(id);
    const active = i % activeEvery === 0;
    (active ? high : low).push(id);
    users.push({ userId: id, lastActiveAt: new Date(now - (active ? 3_600_000 : 90 * 86_400_000)) });
  }
  await graph.followMany(all.map((follower) => ({ follower, followee: actor })));
  await graph.setLastActive(users);
  return { all, high, low };
}
