/**
 * The default {@link FollowerSource}: the `follows` collection for the graph, the `users`
 * collection's `lastActiveAt` for the priority.
 * @module
 */
import type { Collection, Db, Document } from 'mongodb';
import { ValidationError } from '../contract/errors';
import { checkInt } from '../contract/validation';
import { Collections, type FollowDoc, type UserDoc } from './collections';
import { isFerretDb } from './server-kind';
import type { FollowerPage, FollowerPageRequest, FollowerSource, FollowerSplit } from '../contract/follower-source';

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * How pages are read.
 * - `query`: one indexed range query per page plus one `$in` lookup of the page's users. Best on
 *   MongoDB, where both are index scans.
 * - `snapshot`: the first page of a walk reads all follower ids in one sorted query, and the set
 *   of recently active users in one more, and keeps both in this process for the walk's next
 *   pages. Best on stores that scan for range and `$in` queries (FerretDB pushes only `_id`
 *   equality down to SQL), where `query` costs two full scans per page; `snapshot` costs two per
 *   walk. Not for MongoDB at scale: the active set is every recently active user.
 * - `auto`: `snapshot` on FerretDB, `query` elsewhere.
 */
export type PagingStrategy = 'query' | 'snapshot' | 'auto';

/** Options of {@link MongoFollowerSource}. */
export interface MongoFollowerSourceOptions {
  /** A follower active within this many days is HIGH priority, others LOW. @default 7 */
  activeWithinDays?: number;
  /** Clock, injectable for tests. @default () => new Date() */
  now?: () => Date;
  /** How pages are read. @default 'auto' */
  paging?: PagingStrategy;
  /** `snapshot` only: follower ids kept in memory across all walks, oldest walks evicted first. @default 2_000_000 */
  maxCachedIds?: number;
  /** `snapshot` only: a walk's ids are dropped when unused this long. @default 600_000 (10 min) */
  snapshotTtlMs?: number;
}

interface Snapshot {
  /** Cache key: walk id and user id. */
  key: string;
  ids: string[];
  /** Ids of users who count as active (all users, not only followers). */
  active: Set<string>;
  /** With `activeUntil`: ids of users active only after it. */
  recent: Set<string>;
  lastUsed: number;
}

/**
 * Pages a user's followers in follower-id order (a stable order, so a walk that is retried or
 * continued as new never skips or repeats anyone) and splits each page by last-active time.
 */
export class MongoFollowerSource implements FollowerSource {
  private readonly activeWithinMs: number;
  private readonly now: () => Date;
  private readonly paging: PagingStrategy;
  private readonly maxCachedIds: number;
  private readonly snapshotTtlMs: number;
  private resolvedPaging?: Promise<'query' | 'snapshot'>;
  /** Walk key -> follower ids, in insertion (= least recently created) order for eviction. */
  private readonly snapshots = new Map<string, Snapshot>();
  private cachedIds = 0;

  constructor(
    private readonly db: Db,
    options: MongoFollowerSourceOptions = {},
  ) {
    this.activeWithinMs = checkInt('activeWithinDays', options.activeWithinDays, 0, 36_500, 7) * DAY_MS;
    this.now = options.now ?? (() => new Date());
    this.paging = options.paging ?? 'auto';
    if (!['query', 'snapshot', 'auto'].includes(this.paging)) {
      throw new ValidationError('paging', `must be "query", "snapshot" or "auto", got ${JSON.stringify(this.paging)}`);
    }
    this.maxCachedIds = checkInt('maxCachedIds', options.maxCachedIds, 0, 100_000_000, 2_000_000);
    this.snapshotTtlMs = checkInt('snapshotTtlMs', options.snapshotTtlMs, 1000, 86_400_000, 600_000);
  }

  private get follows(): Collection<FollowDoc> {
    return this.db.collection<FollowDoc>(Collections.FOLLOWS);
  }

  private get users(): Collection<UserDoc> {
    return this.db.collection<UserDoc>(Collections.USERS);
  }

  /** The strategy in effect (`auto` resolved by asking the server what it is). */
  async pagingStrategy(): Promise<'query' | 'snapshot'> {
    if (this.paging !== 'auto') return this.paging;
    this.resolvedPaging ??= isFerretDb(this.db).then((ferret) => (ferret ? 'snapshot' : 'query'));
    return this.resolvedPaging;
  }

  async getFollowerPage(request: FollowerPageRequest): Promise<FollowerPage> {
    const { userId, cursor, limit, walkId } = request;
    const until = request.activeUntil === undefined ? undefined : new Date(request.activeUntil);
    const range = followerRange(cursor, request.from, request.until);
    const snapshot = walkId !== undefined && (await this.pagingStrategy()) === 'snapshot';
    const key = `${walkId}\u0000${userId}\u0000${request.activeUntil ?? ''}\u0000${request.from ?? ''}\u0000${request.until ?? ''}`;
    const { ids, more, active, recent } = snapshot
      ? this.pageFromSnapshot(await this.snapshot(key, userId, cursor, until, followerRange(null, request.from, request.until)), cursor, limit)
      : await this.pageFromQuery(userId, range, limit, until);
    if (ids.length === 0) return { high: [], low: [], nextCursor: null, ...(until ? { recent: [] } : {}) };

    const page: FollowerPage = { high: [], low: [], nextCursor: more ? ids[ids.length - 1] : null };
    for (const id of ids) (active.has(id) ? page.high : page.low).push(id);
    if (until) page.recent = page.low.filter((id) => recent.has(id));
    return page;
  }

  private async pageFromQuery(userId: string, range: Record<string, string> | undefined, limit: number, until: Date | undefined) {
    const filter: Record<string, unknown> = { followee: userId };
    if (range) filter.follower = range;
    // One more than asked tells whether another page exists, without an empty last page.
    const all = await this.idArray(Collections.FOLLOWS, filter, 'follower', limit + 1);
    const ids = all.length > limit ? all.slice(0, limit) : all;
    const { active, recent } = ids.length ? await this.activeByIn(ids, until) : { active: new Set<string>(), recent: new Set<string>() };
    return { ids, more: all.length > limit, active, recent };
  }

  /**
   * The values of `field` in the documents of a collection that `filter` selects, in `field` order, at most `limit`.
   *
   * On MongoDB the server hands them back as one array in one document (`$group` with `$push`,
   * which keeps the order `$sort` set): decoding thousands of tiny documents is what a page read
   * cost in the worker. Measured on a page of 20,000 edges: 138 ms of Node CPU as documents,
   * 9 ms as one array (109 → 21 ms wall). The array stays far below the 16 MB document limit at
   * `Limits.MAX_PASS_READ` ids. FerretDB 1.24 has no `$push`; it gets the documents.
   */
  private async idArray(collectionName: string, filter: Document, field: string, limit?: number): Promise<string[]> {
    const collection = this.db.collection(collectionName);
    if (await isFerretDb(this.db)) {
      const cursor = collection.find(filter, { projection: { _id: 0, [field]: 1 } }).sort({ [field]: 1 });
      if (limit !== undefined) cursor.limit(limit);
      return (await cursor.toArray()).map((doc) => doc[field] as string);
    }
    const stages: Document[] = [{ $match: filter }, { $sort: { [field]: 1 } }];
    if (limit !== undefined) stages.push({ $limit: limit });
    const [group] = await collection.aggregate<{ ids: string[] }>([...stages, { $group: { _id: null, ids: { $push: `$${field}` } } }]).toArray();
    return group?.ids ?? [];
  }

  /** The walk's snapshot, read on its first page (or by a worker that has not seen the walk). */
  private async snapshot(key: string, userId: string, cursor: string | null, until: Date | undefined, range: Record<string, string> | undefined): Promise<Snapshot> {
    this.evictExpired();
    let snap = this.snapshots.get(key);
    if (!snap || cursor === null) {
      if (snap) this.drop(key);
      const [edges, users] = await Promise.all([
        this.follows.find(range ? { followee: userId, follower: range } : { followee: userId }, { projection: { _id: 0, follower: 1 } }).sort({ follower: 1 }).toArray(),
        this.users.find({ lastActiveAt: { $gte: this.activeSince() } }, { projection: { _id: 1, lastActiveAt: 1 } }).toArray(),
      ]);
      const active = new Set<string>();
      const recent = new Set<string>();
      for (const u of users) (until && u.lastActiveAt! > until ? recent : active).add(u._id);
      snap = { key, ids: edges.map((e) => e.follower), active, recent, lastUsed: Date.now() };
      this.snapshots.set(key, snap);
      this.cachedIds += snap.ids.length + snap.active.size + snap.recent.size;
      this.evictOverflow(key);
    }
    snap.lastUsed = Date.now();
    return snap;
  }

  private pageFromSnapshot(snap: Snapshot, cursor: string | null, limit: number) {
    const start = cursor === null ? 0 : upperBound(snap.ids, cursor);
    const ids = snap.ids.slice(start, start + limit);
    const more = start + limit < snap.ids.length;
    if (!more) this.drop(snap.key); // the walk is done
    return { ids, more, active: snap.active, recent: snap.recent };
  }

  private drop(key: string): void {
    const snap = this.snapshots.get(key);
    if (!snap) return;
    this.cachedIds -= snap.ids.length + snap.active.size + snap.recent.size;
    this.snapshots.delete(key);
  }

  private evictExpired(): void {
    const cutoff = Date.now() - this.snapshotTtlMs;
    for (const [key, snap] of this.snapshots) if (snap.lastUsed < cutoff) this.drop(key);
  }

  private evictOverflow(keep: string): void {
    for (const key of this.snapshots.keys()) {
      if (this.cachedIds <= this.maxCachedIds) return;
      if (key !== keep) this.drop(key);
    }
  }

  /**
   * How many followers `userId` has and, for `parts(followers)` > 1, where to split them into that
   * many ranges of about equal size: on MongoDB, each bound is the follower `followers / k` index
   * keys past the last one (a covered skip along the `(followee, follower)` index, so the index is
   * walked once in all); on FerretDB, whose skips read rows, the sorted follower ids read once.
   * The skips took 0.4 s at 1,000,000 followers where a `$bucketAuto` took 1.1 s (it sorts every
   * edge in memory), time the HIGH pass waited.
   */
  async splitFollowers(userId: string, parts: (followers: number) => number): Promise<FollowerSplit> {
    const followers = await this.follows.countDocuments({ followee: userId });
    const k = Math.min(parts(followers), Math.floor(followers / 2));
    if (k <= 1) return { followers, bounds: [] };
    let bounds: string[];
    if (await isFerretDb(this.db)) {
      const ids = await this.idArray(Collections.FOLLOWS, { followee: userId }, 'follower');
      bounds = Array.from({ length: k - 1 }, (_, i) => ids[Math.floor(((i + 1) * ids.length) / k)]);
    } else {
      const step = Math.floor(followers / k);
      bounds = [];
      for (let i = 1; i < k; i++) {
        const last = bounds[bounds.length - 1];
        // From the last bound (itself the first of its range): `step - 1` more keys to skip.
        const filter = last === undefined ? { followee: userId } : { followee: userId, follower: { $gt: last } };
        const next = await this.follows
          .find(filter, { projection: { _id: 0, follower: 1 } })
          .sort({ followee: 1, follower: 1 })
          .skip(last === undefined ? step : step - 1)
          .limit(1)
          .next();
        if (!next) break; // Fewer than counted (unfollows meanwhile): fewer, larger ranges.
        bounds.push(next.follower);
      }
    }
    // Ascending and distinct: each bound starts a range of its own.
    return { followers, bounds: [...new Set(bounds)].sort() };
  }

  /** The earliest last-active time that makes a follower HIGH. */
  private activeSince(): Date {
    return new Date(this.now().getTime() - this.activeWithinMs);
  }

  /**
   * Of `ids`, the users active within the window (`active`: HIGH) and, with `until`, those active
   * only after it (`recent`: LOW for this walk, though maybe written by the HIGH pass). One query.
   */
  private async activeByIn(ids: string[], until: Date | undefined): Promise<{ active: Set<string>; recent: Set<string> }> {
    const filter = { _id: { $in: ids }, lastActiveAt: { $gte: this.activeSince() } };
    if (until === undefined) return { active: new Set(await this.idArray(Collections.USERS, filter, '_id')), recent: new Set() };
    const active = new Set<string>();
    const recent = new Set<string>();
    if (await isFerretDb(this.db)) {
      // No `$push` on FerretDB 1.24: the documents, then the split here.
      for (const u of await this.users.find(filter, { projection: { _id: 1, lastActiveAt: 1 } }).toArray()) (u.lastActiveAt! > until ? recent : active).add(u._id);
      return { active, recent };
    }
    // Two arrays at most, one per side of `until` (see `idArray` on why arrays).
    const groups = await this.users
      .aggregate<{ _id: boolean; ids: string[] }>([{ $match: filter }, { $group: { _id: { $gt: ['$lastActiveAt', until] }, ids: { $push: '$_id' } } }])
      .toArray();
    for (const g of groups) for (const id of g.ids) (g._id ? recent : active).add(id);
    return { active, recent };
  }
}

/**
 * The follower-id filter of a page: after `cursor` (or from `from`, inclusive, on a walk's first
 * page), before `until` (exclusive); undefined when unbounded.
 */
function followerRange(cursor: string | null, from: string | undefined, until: string | undefined): Record<string, string> | undefined {
  const range: Record<string, string> = {};
  if (cursor !== null) range.$gt = cursor;
  else if (from !== undefined) range.$gte = from;
  if (until !== undefined) range.$lt = until;
  return Object.keys(range).length ? range : undefined;
}

/** Index of the first element greater than `value` in sorted `ids`. */
function upperBound(ids: string[], value: string): number {
  let lo = 0;
  let hi = ids.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ids[mid] <= value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
