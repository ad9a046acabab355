/**
 * The default {@link FollowerSource}: the `follows` collection for the graph, the `users`
 * collection's `lastActiveAt` for the priority.
 * @module
 */
import type { Db } from 'mongodb';
import { checkInt } from '../model/validation';
import { Collections, type FollowDoc, type UserDoc } from '../storage/collections';
import type { FollowerPage, FollowerPageRequest, FollowerSource } from './follower-source';

const DAY_MS = 24 * 60 * 60 * 1000;

/** Options of {@link MongoFollowerSource}. */
export interface MongoFollowerSourceOptions {
  /** A follower active within this many days is HIGH priority, others LOW. @default 7 */
  activeWithinDays?: number;
  /** Clock, injectable for tests. @default () => new Date() */
  now?: () => Date;
}

/**
 * Pages a user's followers in follower-id order (a stable order, so a walk that is retried or
 * continued as new never skips or repeats anyone) and splits each page by last-active time.
 */
export class MongoFollowerSource implements FollowerSource {
  private readonly activeWithinMs: number;
  private readonly now: () => Date;

  constructor(
    private readonly db: Db,
    options: MongoFollowerSourceOptions = {},
  ) {
    this.activeWithinMs = checkInt('activeWithinDays', options.activeWithinDays, 0, 36_500, 7) * DAY_MS;
    this.now = options.now ?? (() => new Date());
  }

  async getFollowerPage({ userId, cursor, limit }: FollowerPageRequest): Promise<FollowerPage> {
    const filter: Record<string, unknown> = { followee: userId };
    if (cursor !== null) filter.follower = { $gt: cursor };
    const edges = await this.db
      .collection<FollowDoc>(Collections.FOLLOWS)
      .find(filter, { projection: { _id: 0, follower: 1 } })
      .sort({ follower: 1 })
      // One more than asked tells whether another page exists, without an empty last page.
      .limit(limit + 1)
      .toArray();
    const more = edges.length > limit;
    const ids = edges.slice(0, limit).map((e) => e.follower);
    if (ids.length === 0) return { high: [], low: [], nextCursor: null };

    const activeSince = new Date(this.now().getTime() - this.activeWithinMs);
    const active = await this.db
      .collection<UserDoc>(Collections.USERS)
      .find({ _id: { $in: ids }, lastActiveAt: { $gte: activeSince } }, { projection: { _id: 1 } })
      .toArray();
    const activeIds = new Set(active.map((u) => u._id));
    const page: FollowerPage = { high: [], low: [], nextCursor: null };
    for (const id of ids) (activeIds.has(id) ? page.high : page.low).push(id);
    page.nextCursor = more ? ids[ids.length - 1]! : null;
    return page;
  }
}
