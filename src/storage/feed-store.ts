/**
 * Reading and writing activities and feeds in MongoDB. Every write is idempotent: running it twice
 * (a retried activity, a re-submitted fanout) leaves the same data as running it once.
 *
 * Long because it is the one place that knows how each kind of feed is stored: flat feeds are
 * here, aggregated groups delegate to `aggregated-feed.ts`, and every method is a few statements
 * shaped for both MongoDB and FerretDB (see the README's FerretDB notes), with the why beside it.
 * @module
 */
import type { Collection, Db, WriteConcernSettings } from 'mongodb';
import { StoreError, ValidationError } from '../contract/errors';
import { FeedType } from '../contract/constants';
import { DEFAULT_FEEDS, FeedKind, type FeedsConfig, isAggregated, type ResolvedFeedConfig, resolveFeeds } from '../contract/feeds';
import type { PostFanoutState } from '../contract/post-batch';
import { checkId, checkInt, checkKeys } from '../contract/validation';
import { AggregatedFeed, type FeedWriteResult, type GroupableActivity } from './aggregated-feed';
import {
  type ActivityDoc,
  Collections,
  ensureIndexes,
  type FeedEntryDoc,
  feedEntryId,
  type GroupDoc,
} from './collections';
import { withWriteConcern } from './durability';
import { insertManyIgnoringDuplicates, isDuplicateKey } from './insert';
import { isFerretDb } from './server-kind';
import { StoreLock } from './store-lock';

export type { FeedWriteResult, NotificationCounts } from './aggregated-feed';

/** Options of {@link FeedStore}. */
export interface FeedStoreOptions {
  /** Feed types and their configuration (see {@link FeedsConfig}). @default DEFAULT_FEEDS */
  feeds?: FeedsConfig | undefined;
  /** Random source for trimming, injectable for tests. @default Math.random */
  random?: (() => number) | undefined;
  /**
   * Write concern of every write (see `src/storage/durability.ts`). Weakening it trades the
   * guarantee that an acknowledged entry survives a database crash for speed; the benchmark does,
   * to measure what the guarantee costs. @default DURABLE_WRITE_CONCERN (journaled, majority)
   */
  writeConcern?: WriteConcernSettings | undefined;
  /**
   * How writes to aggregated (and notification) feeds run: `in-place` (atomic updates, MongoDB),
   * `serialized` (one at a time per feed type, under a lock in the store: for servers that cannot
   * update one document atomically), `auto` (`serialized` on FerretDB). @default 'auto'
   */
  groupWrites?: 'in-place' | 'serialized' | 'auto' | undefined;
}

/** An activity as a feed entry needs it. */
export interface FeedActivityRef {
  /** The activity id. */
  id: string;
  actor: string;
  /** The activity time (the sort key). */
  time: Date;
}

/** An activity as readers get it: its fields and id, without the store's bookkeeping. */
export type StoredActivity = Omit<ActivityDoc, '_id' | 'feedTypes' | 'removedAt'> & { id: string };

/** One entry of a feed page, hydrated with its activity. */
export interface FeedItem {
  activityId: string;
  time: Date;
  /** The stored activity; `null` if it was removed (or is being removed) after the entry was written. */
  activity: StoredActivity | null;
}

/** A page of a feed, newest first. */
export interface FeedPage {
  items: FeedItem[];
  /** Pass as `before` to read the next (older) page; `null` when there is no more. */
  nextCursor: string | null;
}

/** Options of {@link FeedStore.readFeed}. */
export interface ReadFeedOptions {
  /** Entries per page (1..500). @default 25 */
  limit?: number | undefined;
  /** Cursor from a previous page's `nextCursor`: read entries older than it. */
  before?: string | undefined;
}

interface CursorKey {
  t: number;
  id: string;
}

function encodeCursor(key: CursorKey): string {
  return Buffer.from(JSON.stringify(key), 'utf8').toString('base64url');
}

function decodeCursor(field: string, cursor: string): CursorKey {
  let key: unknown;
  try {
    key = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw new ValidationError(field, 'is not a cursor returned by readFeed (malformed)');
  }
  // Every part is checked: a cursor is input like any other (a time of 1e999, an object id, extra
  // keys would otherwise reach the query).
  const k = key as Partial<CursorKey>;
  if (
    typeof k !== 'object' || k === null || Array.isArray(k) ||
    Object.keys(k).some((name) => name !== 't' && name !== 'id') ||
    typeof k.t !== 'number' || !Number.isInteger(k.t) || Math.abs(k.t) > 8.64e15 ||
    typeof k.id !== 'string' || k.id.length === 0 || k.id.length > 512
  ) {
    throw new ValidationError(field, 'is not a cursor returned by readFeed (malformed)');
  }
  return { t: k.t, id: k.id };
}

/** One group of an aggregated feed page, with its newest activities hydrated. */
export interface FeedGroup {
  /** The group key, e.g. `like|photo-9`; pass it to `markSeen` / `markRead`. */
  group: string;
  verb: string;
  /** Time of the newest activity in the group. */
  time: Date;
  /** Activities in the group (all added, minus removed). */
  activityCount: number;
  /** Distinct actors in the group. */
  actorCount: number;
  /** Up to `maxActors` actors, most recent first ("Alice and 3 others"). */
  actors: string[];
  /** Up to `maxActors` of the newest activities, newest first. */
  activities: StoredActivity[];
  /** Notification feeds: seen / read state. Always true for plain aggregated feeds. */
  seen: boolean;
  read: boolean;
}

/** A page of an aggregated feed, newest group first. */
export interface AggregatedFeedPage {
  groups: FeedGroup[];
  /** Pass as `before` to read the next (older) page; `null` when there is no more. */
  nextCursor: string | null;
}

/** How many activity docs {@link FeedStore} caches for grouping (activities never change once stored). */
const ACTIVITY_CACHE_SIZE = 1000;

/**
 * Activities and feeds in one MongoDB database.
 *
 * @example
 * const store = new FeedStore(client.db('feeds'));
 * await store.ensureIndexes();
 * await store.addToFeeds('timeline', ['u2', 'u3'], { id: 'a1', actor: 'u1', time: new Date() });
 */
export class FeedStore {
  /** The configured feed types with defaults applied. */
  readonly feeds: ReadonlyMap<string, ResolvedFeedConfig>;
  private readonly random: () => number;
  private readonly aggregatedFeeds = new Map<string, AggregatedFeed>();
  private readonly activityCache = new Map<string, ActivityDoc>();

  /** The database, with the store's write concern on every collection. */
  readonly db: Db;
  private readonly lock: StoreLock;
  private readonly groupWrites: NonNullable<FeedStoreOptions['groupWrites']>;

  constructor(db: Db, options: FeedStoreOptions = {}) {
    this.db = withWriteConcern(db, options.writeConcern);
    this.lock = new StoreLock(this.db);
    this.groupWrites = options.groupWrites ?? 'auto';
    this.feeds = resolveFeeds(options.feeds ?? DEFAULT_FEEDS);
    this.random = options.random ?? Math.random;
  }

  /**
   * Whether writes to aggregated feeds are serialized with a lock per feed type: where the server
   * cannot update one document atomically (FerretDB), concurrent group updates would lose changes
   * ("and 68 others" where 99 liked). MongoDB updates each group atomically, so nothing waits there.
   */
  private serializesGroupWrites(): Promise<boolean> {
    if (this.groupWrites !== 'auto') return Promise.resolve(this.groupWrites === 'serialized');
    return isFerretDb(this.db);
  }

  /** Creates every index the store needs. Idempotent; call once at start-up. */
  async ensureIndexes(): Promise<void> {
    await ensureIndexes(this.db, this.feeds);
  }

  /** Feed types a fanout writes to by default (`fanout: true` in the configuration). */
  get fanoutFeedTypes(): string[] {
    return [...this.feeds].filter(([, cfg]) => cfg.fanout).map(([name]) => name);
  }

  /** Feed types that can hold the activities of people one follows: all but `user` and notification feeds. */
  get followedFeedTypes(): string[] {
    return [...this.feeds].filter(([name, cfg]) => name !== FeedType.USER && cfg.kind !== FeedKind.NOTIFICATION).map(([name]) => name);
  }

  /** The activities collection. */
  get activities(): Collection<ActivityDoc> {
    return this.db.collection<ActivityDoc>(Collections.ACTIVITIES);
  }

  /**
   * The configuration of a feed type.
   * @throws ValidationError (naming `field`) if the feed type is not configured.
   */
  config(feedType: string, field = 'feedType'): ResolvedFeedConfig {
    const cfg = typeof feedType === 'string' ? this.feeds.get(feedType) : undefined;
    if (!cfg) {
      throw new ValidationError(field, `${JSON.stringify(feedType)} is not a configured feed type (configured: ${[...this.feeds.keys()].join(', ')})`);
    }
    return cfg;
  }

  /**
   * The collection of a configured flat feed type.
   * @throws ValidationError if the feed type is not configured or not flat.
   */
  feed(feedType: string, field = 'feedType'): Collection<FeedEntryDoc> {
    if (this.config(feedType, field).kind !== FeedKind.FLAT) {
      throw new ValidationError(field, `"${feedType}" is an aggregated feed; use the aggregated-feed calls`);
    }
    return this.db.collection<FeedEntryDoc>(Collections.feed(feedType));
  }

  /**
   * A configured aggregated (or notification) feed type.
   * @throws ValidationError if the feed type is not configured or not aggregated.
   */
  aggregated(feedType: string, field = 'feedType'): AggregatedFeed {
    const cfg = this.config(feedType, field);
    if (!isAggregated(cfg.kind)) throw new ValidationError(field, `"${feedType}" is a flat feed, not an aggregated one`);
    let feed = this.aggregatedFeeds.get(feedType);
    if (!feed) {
      const lockKey = Collections.feed(feedType);
      feed = new AggregatedFeed(this.db.collection<GroupDoc>(lockKey), cfg, async (write) =>
        (await this.serializesGroupWrites()) ? this.lock.withLock(lockKey, write) : write(),
      );
      this.aggregatedFeeds.set(feedType, feed);
    }
    return feed;
  }

  /** Stores an activity. Idempotent: storing the same id again keeps the first copy. Returns true if new. */
  async storeActivity(activity: Omit<ActivityDoc, 'createdAt'>): Promise<boolean> {
    try {
      await this.activities.insertOne({ ...activity, createdAt: new Date() });
      return true;
    } catch (err) {
      if (isDuplicateKey(err)) return false;
      throw new StoreError(`storing activity ${activity._id} failed: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * Records where batched posts stand (`ActivityDoc.fanout`), one update by `_id` each, in one
   * round trip; with the store's write concern (durable by default), as `getProgress` relies on it.
   * A post no longer stored (removed) is left alone.
   */
  async setPostStates(states: ReadonlyArray<{ activityId: string; state: Partial<PostFanoutState> }>): Promise<void> {
    if (states.length === 0) return;
    const set = (state: Partial<PostFanoutState>) => Object.fromEntries(Object.entries(state).map(([k, v]) => [`fanout.${k}`, v]));
    // FerretDB 1.24 runs a bulk of updates a document at a time with a scan each; single updates by `_id` are point writes.
    if (await isFerretDb(this.db)) {
      await Promise.all(states.map(({ activityId, state }) => this.activities.updateOne({ _id: activityId }, { $set: set(state) })));
      return;
    }
    await this.activities.bulkWrite(
      states.map(({ activityId, state }) => ({ updateOne: { filter: { _id: activityId }, update: { $set: set(state) } } })),
      { ordered: false },
    );
  }

  /** Reads activities by id, in one query (by `_id`: a point read each, on FerretDB too); missing ones are absent. */
  async getActivities(activityIds: readonly string[]): Promise<Map<string, ActivityDoc>> {
    if (activityIds.length === 0) return new Map();
    const docs = await this.activities.find({ _id: { $in: [...activityIds] } }).toArray();
    return new Map(docs.map((d) => [d._id, d]));
  }

  /** Reads one activity by id, or `null`. */
  async getActivity(activityId: string): Promise<ActivityDoc | null> {
    return this.activities.findOne({ _id: activityId });
  }

  /**
   * Marks an activity as being removed: readers stop seeing it, and its fanout's chunks stop
   * writing it (they check before each write). Idempotent; returns false if it is not stored.
   */
  async markActivityRemoved(activityId: string): Promise<boolean> {
    const res = await this.activities.updateOne({ _id: activityId, removedAt: { $exists: false } }, { $set: { removedAt: new Date() } });
    return res.matchedCount === 1 || (await this.activities.countDocuments({ _id: activityId }, { limit: 1 })) === 1;
  }

  /** Whether an activity is stored and not being removed: one point read by `_id`. */
  async isActivityLive(activityId: string): Promise<boolean> {
    const doc = await this.activities.findOne({ _id: activityId }, { projection: { removedAt: 1 } });
    return doc !== null && doc.removedAt === undefined;
  }

  /** Deletes a stored activity (after its fanout removed it from the feeds). Idempotent. */
  async deleteActivity(activityId: string): Promise<boolean> {
    this.activityCache.delete(activityId);
    const res = await this.activities.deleteOne({ _id: activityId });
    return res.deletedCount === 1;
  }

  /** An activity for grouping, from a small cache (stored activities never change). */
  private async groupable(activityId: string): Promise<GroupableActivity | null> {
    let doc = this.activityCache.get(activityId) ?? null;
    if (!doc) {
      doc = await this.getActivity(activityId);
      if (!doc) return null;
      if (this.activityCache.size >= ACTIVITY_CACHE_SIZE) this.activityCache.delete(this.activityCache.keys().next().value!);
      this.activityCache.set(activityId, doc);
    }
    return { id: doc._id, actor: doc.actor, verb: doc.verb, object: doc.object, ...(doc.target === undefined ? {} : { target: doc.target }), time: doc.time };
  }

  /** The actors of the given activities (those still stored). */
  private async actorsOf(activityIds: string[]): Promise<Map<string, string>> {
    if (activityIds.length === 0) return new Map();
    const docs = await this.activities.find({ _id: { $in: activityIds } }, { projection: { actor: 1 } }).toArray();
    return new Map(docs.map((d) => [d._id, d.actor]));
  }

  /**
   * Writes one activity into the feeds of `owners`: for a flat feed one unordered batched insert,
   * for an aggregated feed two batched group updates (see `AggregatedFeed`). Entries already
   * present (an earlier try got that far) count as `unchanged`, not as errors.
   */
  async addToFeeds(feedType: string, owners: readonly string[], activity: FeedActivityRef): Promise<FeedWriteResult> {
    const cfg = this.config(feedType);
    if (owners.length === 0) return { changed: 0, unchanged: 0, trimmed: 0 };
    let res: Omit<FeedWriteResult, 'trimmed'>;
    if (isAggregated(cfg.kind)) {
      const groupable = await this.groupable(activity.id);
      // Removed while its fanout was still running: nothing to group (the removal cleans up).
      if (!groupable) return { changed: 0, unchanged: owners.length, trimmed: 0 };
      res = await this.aggregated(feedType).add(owners, groupable);
    } else {
      const { id: activityId, actor, time } = activity;
      const docs = owners.map((owner): FeedEntryDoc => ({ _id: feedEntryId(owner, activityId), owner, activityId, actor, time }));
      const inserted = await insertManyIgnoringDuplicates(this.feed(feedType), docs);
      res = { changed: inserted, unchanged: owners.length - inserted };
    }
    const trimmed = await this.maybeTrim(feedType, owners);
    return { ...res, trimmed };
  }

  /** Deletes one activity from the feeds of `owners` in one batch (flat) or two (aggregated). Idempotent. */
  async removeFromFeeds(feedType: string, owners: readonly string[], activity: Omit<FeedActivityRef, 'time'>): Promise<FeedWriteResult> {
    const cfg = this.config(feedType);
    if (owners.length === 0) return { changed: 0, unchanged: 0, trimmed: 0 };
    if (isAggregated(cfg.kind)) {
      const res = await this.aggregated(feedType).remove(owners, activity.id, activity.actor, (ids) => this.actorsOf(ids));
      return { ...res, trimmed: 0 };
    }
    // One statement: FerretDB scans the collection once per delete statement, so a deleteOne per
    // entry would scan once per owner; MongoDB looks the `_id`s up in its index either way.
    const res = await this.feed(feedType).deleteMany({ _id: { $in: owners.map((owner) => feedEntryId(owner, activity.id)) } });
    return { changed: res.deletedCount, unchanged: owners.length - res.deletedCount, trimmed: 0 };
  }

  /**
   * Which of `owners` already hold the activity in their `feedType` feed: one query for the batch
   * (by `_id` on a flat feed, by owner and activity on an aggregated one).
   */
  async ownersHolding(feedType: string, owners: readonly string[], activityId: string): Promise<Set<string>> {
    if (owners.length === 0) return new Set();
    const cfg = this.config(feedType);
    if (isAggregated(cfg.kind)) {
      const groups = await this.aggregated(feedType).collection.find({ owner: { $in: [...owners] }, activityIds: activityId }, { projection: { owner: 1 } }).toArray();
      return new Set(groups.map((g) => g.owner));
    }
    const entries = await this.feed(feedType).find({ _id: { $in: owners.map((owner) => feedEntryId(owner, activityId)) } }, { projection: { owner: 1 } }).toArray();
    return new Set(entries.map((e) => e.owner));
  }

  /**
   * Deletes up to about `limit` of one activity's entries (flat) or group memberships (aggregated)
   * from one feed type, whoever's feeds they are in: the removal's sweep, which needs no follower
   * list and also finds entries of users who stopped following since. Call it until `more` is
   * false. Idempotent.
   *
   * Shaped for both stores: one query for the batch's last `_id` in (activity, `_id`) order (an
   * index range on MongoDB), then one delete of the range. FerretDB 1.24 runs every delete
   * statement as a scan of the collection and `$in` as a linear search, so a delete per follower
   * chunk (or a long `$in`) would cost a scan per 100 entries; a range costs one per batch. Keep
   * `limit` under 32,766, SQLite's limit of values per statement, which FerretDB's delete hits.
   */
  async sweepActivity(feedType: string, activityId: string, actor: string, limit: number): Promise<{ changed: number; more: boolean }> {
    const cfg = this.config(feedType);
    if (isAggregated(cfg.kind)) {
      const feed = this.aggregated(feedType);
      const batch = await feed.collection.find({ activityIds: activityId }, { projection: { _id: 1 } }).sort({ _id: 1 }).limit(limit).toArray();
      if (batch.length === 0) return { changed: 0, more: false };
      const res = await feed.removeFromGroups(batch.map((g) => g._id), activityId, actor, (ids) => this.actorsOf(ids));
      return { changed: res.changed, more: batch.length === limit };
    }
    const feed = this.feed(feedType);
    const batch = await feed.find({ activityId }, { projection: { _id: 1 } }).sort({ _id: 1 }).limit(limit).toArray();
    const last = batch[batch.length - 1];
    if (!last) return { changed: 0, more: false };
    const res = await feed.deleteMany({ activityId, _id: { $lte: last._id } });
    return { changed: res.deletedCount, more: batch.length === limit };
  }

  /**
   * Removes every activity of `actor` from `owner`'s feed (an unfollow). Returns the number of
   * entries (flat) or group memberships (aggregated) removed. Idempotent.
   */
  async removeActorFromFeed(feedType: string, owner: string, actor: string): Promise<number> {
    const cfg = this.config(feedType);
    if (!isAggregated(cfg.kind)) return (await this.feed(feedType).deleteMany({ owner, actor })).deletedCount;
    const feed = this.aggregated(feedType);
    const groups = await feed.groupsWithActor(owner, actor);
    const actors = await this.actorsOf([...new Set(groups.flatMap((g) => g.activityIds))]);
    const theirs = [...actors].filter(([, a]) => a === actor).map(([id]) => id);
    let removed = 0;
    for (const id of theirs) removed += (await feed.remove([owner], id, actor, (ids) => this.actorsOf(ids))).changed;
    return removed;
  }

  /** With the feed type's `trimChance`, trims the feeds of `owners` (one read for the batch). */
  private async maybeTrim(feedType: string, owners: readonly string[]): Promise<number> {
    const { trimChance } = this.config(feedType);
    return trimChance > 0 && this.random() < trimChance ? this.trimFeeds(feedType, owners) : 0;
  }

  /**
   * Trims the feeds of `owners` to the feed type's `maxLength`, keeping the newest entries (or
   * groups). One read for all owners, then one batched delete by `_id`. Returns the number of
   * feeds trimmed.
   */
  async trimFeeds(feedType: string, owners: readonly string[]): Promise<number> {
    const { maxLength, kind } = this.config(feedType);
    const collection = this.db.collection<{ _id: string; owner: string; time: Date; activityId?: string; group?: string; activityCount?: number }>(
      Collections.feed(feedType),
    );
    const entries = await collection
      .find({ owner: { $in: [...owners] } }, { projection: { _id: 1, owner: 1, time: 1, activityId: 1, group: 1, activityCount: 1 } })
      .toArray();
    const byOwner = new Map<string, typeof entries>();
    for (const e of entries) {
      const list = byOwner.get(e.owner) ?? [];
      list.push(e);
      byOwner.set(e.owner, list);
    }
    const tieBreak = isAggregated(kind) ? 'group' : 'activityId';
    const doomed: string[] = [];
    let trimmed = 0;
    for (const list of byOwner.values()) {
      // Empty groups (all their activities removed) go first: they are invisible anyway.
      const live = list.filter((e) => e.activityCount === undefined || e.activityCount > 0);
      doomed.push(...list.filter((e) => !live.includes(e)).map((e) => e._id));
      if (live.length <= maxLength) continue;
      live.sort((a, b) => compareNewestFirst(a.time, a[tieBreak] ?? '', b.time, b[tieBreak] ?? ''));
      doomed.push(...live.slice(maxLength).map((e) => e._id));
      trimmed++;
    }
    // One statement (see removeFromFeeds).
    if (doomed.length > 0) await collection.deleteMany({ _id: { $in: doomed } });
    return trimmed;
  }

  /** Stored activities by id, as returned to readers; those being removed are left out. */
  private async hydrate(activityIds: string[]): Promise<Map<string, StoredActivity>> {
    const docs = activityIds.length ? await this.activities.find({ _id: { $in: activityIds } }).toArray() : [];
    return new Map(docs.filter((d) => d.removedAt === undefined).map(({ _id, feedTypes: _f, removedAt: _r, ...rest }) => [_id, { id: _id, ...rest }]));
  }

  /**
   * Reads a page of `owner`'s flat feed, newest first, with activities hydrated in one query.
   * Pages are stable while new entries arrive: the cursor is the (time, activityId) of the last
   * entry returned, so newer entries never shift older pages.
   * @throws ValidationError for an unknown feed type, a bad owner id, a bad limit or a malformed cursor.
   */
  async readFeed(feedType: string, owner: string, options: ReadFeedOptions = {}): Promise<FeedPage> {
    const { entries, nextCursor } = await this.readEntries(feedType, owner, options);
    const activities = await this.hydrate(entries.map((e) => e.activityId));
    const items = entries.map((e): FeedItem => ({ activityId: e.activityId, time: e.time, activity: activities.get(e.activityId) ?? null }));
    return { items, nextCursor };
  }

  /** A page of `owner`'s flat feed as bare entries (no hydration); paging as in {@link readFeed}. */
  async readEntries(feedType: string, owner: string, options: ReadFeedOptions = {}): Promise<{ entries: FeedEntryDoc[]; nextCursor: string | null }> {
    const collection = this.feed(feedType);
    const { filter, limit } = pageFilter(owner, options, 'activityId');
    const found = await collection.find(filter).sort({ time: -1, activityId: -1 }).limit(limit + 1).toArray();
    const entries = found.slice(0, limit);
    const last = entries[entries.length - 1];
    return { entries, nextCursor: found.length > limit && last ? encodeCursor({ t: last.time.getTime(), id: last.activityId }) : null };
  }

  /**
   * Copies activities into one owner's feed (a follow's backfill): one batched insert for a flat
   * feed, one group update per activity for an aggregated one. Idempotent.
   */
  async copyToFeed(feedType: string, owner: string, activities: readonly FeedActivityRef[]): Promise<FeedWriteResult> {
    const cfg = this.config(feedType);
    const total: FeedWriteResult = { changed: 0, unchanged: 0, trimmed: 0 };
    if (activities.length === 0) return total;
    if (isAggregated(cfg.kind)) {
      // Oldest first, so each group's activity and actor lists grow in time order.
      for (const a of [...activities].sort((x, y) => x.time.getTime() - y.time.getTime())) {
        const groupable = await this.groupable(a.id);
        if (!groupable) continue;
        const res = await this.aggregated(feedType).add([owner], groupable);
        total.changed += res.changed;
        total.unchanged += res.unchanged;
      }
    } else {
      const docs = activities.map((a): FeedEntryDoc => ({ _id: feedEntryId(owner, a.id), owner, activityId: a.id, actor: a.actor, time: a.time }));
      total.changed = await insertManyIgnoringDuplicates(this.feed(feedType), docs);
      total.unchanged = activities.length - total.changed;
    }
    total.trimmed = await this.maybeTrim(feedType, [owner]);
    return total;
  }

  /**
   * Reads a page of `owner`'s aggregated (or notification) feed, newest group first, each group
   * with its newest activities hydrated (one query for the page). Cursor as for {@link readFeed}.
   * @throws ValidationError for an unknown or flat feed type, a bad owner id, a bad limit or a malformed cursor.
   */
  async readAggregatedFeed(feedType: string, owner: string, options: ReadFeedOptions = {}): Promise<AggregatedFeedPage> {
    const feed = this.aggregated(feedType);
    const { filter, limit } = pageFilter(owner, options, 'group');
    const docs = await feed.collection
      .find({ ...filter, activityCount: { $gt: 0 } })
      .sort({ time: -1, group: -1 })
      .limit(limit + 1)
      .toArray();
    const page = docs.slice(0, limit);
    const { maxActors } = feed.config;
    const newest = (g: GroupDoc) => g.activityIds.slice(-maxActors).reverse();
    const activities = await this.hydrate([...new Set(page.flatMap(newest))]);
    const groups = page.flatMap((g): FeedGroup[] => {
      const shown = newest(g);
      // Newest first by time (ids are kept in arrival order, which a backfill may not keep).
      const live = shown.flatMap((id) => activities.get(id) ?? []).sort((x, y) => y.time.getTime() - x.time.getTime() || (x.id < y.id ? 1 : -1));
      // Activities being removed are hidden at once, before the removal's sweep takes them out
      // of the group: uncounted here, and a group left with none is left out.
      const activityCount = g.activityCount - (shown.length - live.length);
      if (activityCount <= 0) return [];
      return [{ group: g.group, verb: g.verb, time: g.time, activityCount, actorCount: g.actorCount, actors: g.actors.slice(-maxActors).reverse(), activities: live, seen: g.seen, read: g.read }];
    });
    const last = page[page.length - 1];
    return { groups, nextCursor: docs.length > limit && last ? encodeCursor({ t: last.time.getTime(), id: last.group }) : null };
  }
}

/** The filter and limit of one page of `owner`'s feed, sorted by (time, `tieField`) descending. */
function pageFilter(owner: string, options: ReadFeedOptions, tieField: 'activityId' | 'group'): { filter: Record<string, unknown>; limit: number } {
  checkId('owner', owner);
  checkKeys('options', options, ['limit', 'before']);
  const limit = checkInt('limit', options.limit, 1, 500, 25);
  const filter: Record<string, unknown> = { owner };
  if (options.before !== undefined) {
    if (typeof options.before !== 'string') throw new ValidationError('before', 'must be a cursor string');
    const key = decodeCursor('before', options.before);
    const t = new Date(key.t);
    filter.$or = [{ time: { $lt: t } }, { time: t, [tieField]: { $lt: key.id } }];
  }
  return { filter, limit };
}

function compareNewestFirst(ta: Date, ia: string, tb: Date, ib: string): number {
  const dt = tb.getTime() - ta.getTime();
  if (dt !== 0) return dt;
  return ia < ib ? 1 : ia > ib ? -1 : 0;
}
