/**
 * Reading and writing activities and feeds in MongoDB. Every write is idempotent: running it twice
 * (a retried activity, a re-submitted fanout) leaves the same data as running it once.
 * @module
 */
import type { AnyBulkWriteOperation, Collection, Db } from 'mongodb';
import { StoreError, ValidationError } from '../errors';
import { FeedType } from '../model/constants';
import { checkFeedType, checkId, checkInt } from '../model/validation';
import {
  type ActivityDoc,
  Collections,
  ensureIndexes,
  type FeedEntryDoc,
  feedEntryId,
} from './collections';
import { insertManyIgnoringDuplicates, isDuplicateKey } from './insert';

/** Configuration of one feed type. */
export interface FeedConfig {
  /** Entries kept per feed; older ones are trimmed. @default 1000 */
  maxLength?: number;
  /**
   * Chance (0..1) that a batched write also trims the feeds it wrote to `maxLength`, like Stream
   * Framework's `trim_chance`: trimming on every write would cost a read per write, so a feed may
   * run about `1 / trimChance` entries over `maxLength` between trims. Reads never return more than
   * asked. @default 0.01
   */
  trimChance?: number;
}

/** Options of {@link FeedStore}. */
export interface FeedStoreOptions {
  /** Feed types and their configuration. @default `{ user: {}, timeline: {} }` */
  feeds?: Record<string, FeedConfig>;
  /** Random source for trimming, injectable for tests. @default Math.random */
  random?: () => number;
}

/** Result of writing one activity into many feeds. */
export interface FeedWriteResult {
  /** Entries inserted (add) or deleted (remove) by this call. */
  changed: number;
  /** Entries that were already there (add) or already gone (remove): work done by an earlier try. */
  unchanged: number;
  /** Feeds trimmed by this call. */
  trimmed: number;
}

/** One entry of a feed page, hydrated with its activity. */
export interface FeedItem {
  activityId: string;
  time: Date;
  /** The stored activity; `null` if it was deleted after the entry was written. */
  activity: Omit<ActivityDoc, '_id'> & { id: string } | null;
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
  limit?: number;
  /** Cursor from a previous page's `nextCursor`: read entries older than it. */
  before?: string;
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
  const k = key as Partial<CursorKey>;
  if (typeof k !== 'object' || k === null || typeof k.t !== 'number' || typeof k.id !== 'string') {
    throw new ValidationError(field, 'is not a cursor returned by readFeed (malformed)');
  }
  return { t: k.t, id: k.id };
}

/**
 * Activities and feeds in one MongoDB database.
 *
 * @example
 * const store = new FeedStore(client.db('feeds'));
 * await store.ensureIndexes();
 * await store.addToFeeds('timeline', ['u2', 'u3'], 'a1', new Date());
 */
export class FeedStore {
  readonly feeds: ReadonlyMap<string, Required<FeedConfig>>;
  private readonly random: () => number;

  constructor(
    readonly db: Db,
    options: FeedStoreOptions = {},
  ) {
    const feeds = options.feeds ?? { [FeedType.USER]: {}, [FeedType.TIMELINE]: {} };
    const map = new Map<string, Required<FeedConfig>>();
    for (const [name, cfg] of Object.entries(feeds)) {
      checkFeedType(`feeds.${name}`, name);
      const maxLength = checkInt(`feeds.${name}.maxLength`, cfg.maxLength, 1, 1_000_000, 1000);
      const trimChance = cfg.trimChance ?? 0.01;
      if (typeof trimChance !== 'number' || !(trimChance >= 0 && trimChance <= 1)) {
        throw new ValidationError(`feeds.${name}.trimChance`, `must be a number between 0 and 1, got ${String(trimChance)}`);
      }
      map.set(name, { maxLength, trimChance });
    }
    this.feeds = map;
    this.random = options.random ?? Math.random;
  }

  /** Creates every index the store needs. Idempotent; call once at start-up. */
  async ensureIndexes(): Promise<void> {
    await ensureIndexes(this.db, this.feeds.keys());
  }

  /** The activities collection. */
  get activities(): Collection<ActivityDoc> {
    return this.db.collection<ActivityDoc>(Collections.ACTIVITIES);
  }

  /**
   * The collection of a configured feed type.
   * @throws ValidationError if the feed type is not configured.
   */
  feed(feedType: string, field = 'feedType'): Collection<FeedEntryDoc> {
    if (!this.feeds.has(feedType)) {
      throw new ValidationError(field, `"${feedType}" is not a configured feed type (configured: ${[...this.feeds.keys()].join(', ')})`);
    }
    return this.db.collection<FeedEntryDoc>(Collections.feed(feedType));
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

  /** Reads one activity by id, or `null`. */
  async getActivity(activityId: string): Promise<ActivityDoc | null> {
    return this.activities.findOne({ _id: activityId });
  }

  /** Deletes a stored activity (after its fanout removed it from the feeds). Idempotent. */
  async deleteActivity(activityId: string): Promise<boolean> {
    const res = await this.activities.deleteOne({ _id: activityId });
    return res.deletedCount === 1;
  }

  /**
   * Writes one activity into the feeds of `owners` with one unordered batched insert.
   * Entries already present (an earlier try got that far) count as `unchanged`, not as errors.
   */
  async addToFeeds(feedType: string, owners: readonly string[], activityId: string, time: Date): Promise<FeedWriteResult> {
    const collection = this.feed(feedType);
    if (owners.length === 0) return { changed: 0, unchanged: 0, trimmed: 0 };
    const docs: FeedEntryDoc[] = owners.map((owner) => ({ _id: feedEntryId(owner, activityId), owner, activityId, time }));
    const inserted = await insertManyIgnoringDuplicates(collection, docs);
    const trimmed = await this.maybeTrim(feedType, owners);
    return { changed: inserted, unchanged: owners.length - inserted, trimmed };
  }

  /** Deletes one activity from the feeds of `owners` with one unordered batch. Idempotent. */
  async removeFromFeeds(feedType: string, owners: readonly string[], activityId: string): Promise<FeedWriteResult> {
    const collection = this.feed(feedType);
    if (owners.length === 0) return { changed: 0, unchanged: 0, trimmed: 0 };
    // One deleteOne per entry, by `_id`, in one round trip: uses the _id index on every server.
    const ops: AnyBulkWriteOperation<FeedEntryDoc>[] = owners.map((owner) => ({
      deleteOne: { filter: { _id: feedEntryId(owner, activityId) } },
    }));
    const res = await collection.bulkWrite(ops, { ordered: false });
    return { changed: res.deletedCount, unchanged: owners.length - res.deletedCount, trimmed: 0 };
  }

  /** With the feed type's `trimChance`, trims the feeds of `owners` (one read for the batch). */
  private async maybeTrim(feedType: string, owners: readonly string[]): Promise<number> {
    const { trimChance } = this.feeds.get(feedType)!;
    return trimChance > 0 && this.random() < trimChance ? this.trimFeeds(feedType, owners) : 0;
  }

  /**
   * Trims the feeds of `owners` to the feed type's `maxLength`, keeping the newest entries.
   * One read for all owners, then one batched delete by `_id`. Returns the number of feeds trimmed.
   */
  async trimFeeds(feedType: string, owners: readonly string[]): Promise<number> {
    const collection = this.feed(feedType);
    const { maxLength } = this.feeds.get(feedType)!;
    const entries = await collection
      .find({ owner: { $in: [...owners] } }, { projection: { _id: 1, owner: 1, time: 1, activityId: 1 } })
      .toArray();
    const byOwner = new Map<string, FeedEntryDoc[]>();
    for (const e of entries) {
      const list = byOwner.get(e.owner) ?? [];
      list.push(e);
      byOwner.set(e.owner, list);
    }
    const doomed: string[] = [];
    let trimmed = 0;
    for (const list of byOwner.values()) {
      if (list.length <= maxLength) continue;
      list.sort(compareNewestFirst);
      doomed.push(...list.slice(maxLength).map((e) => e._id));
      trimmed++;
    }
    if (doomed.length > 0) {
      await collection.bulkWrite(doomed.map((_id) => ({ deleteOne: { filter: { _id } } })), { ordered: false });
    }
    return trimmed;
  }

  /**
   * Reads a page of `owner`'s feed, newest first, with activities hydrated in one query.
   * Pages are stable while new entries arrive: the cursor is the (time, activityId) of the last
   * entry returned, so newer entries never shift older pages.
   * @throws ValidationError for an unknown feed type, a bad owner id, a bad limit or a malformed cursor.
   */
  async readFeed(feedType: string, owner: string, options: ReadFeedOptions = {}): Promise<FeedPage> {
    const collection = this.feed(feedType);
    checkId('owner', owner);
    const limit = checkInt('limit', options.limit, 1, 500, 25);
    const filter: Record<string, unknown> = { owner };
    if (options.before !== undefined) {
      if (typeof options.before !== 'string') throw new ValidationError('before', 'must be a cursor string');
      const key = decodeCursor('before', options.before);
      const t = new Date(key.t);
      filter.$or = [{ time: { $lt: t } }, { time: t, activityId: { $lt: key.id } }];
    }
    const entries = await collection
      .find(filter)
      .sort({ time: -1, activityId: -1 })
      .limit(limit + 1)
      .toArray();
    const more = entries.length > limit;
    const page = entries.slice(0, limit);
    const ids = page.map((e) => e.activityId);
    const activities = ids.length ? await this.activities.find({ _id: { $in: ids } }).toArray() : [];
    const byId = new Map(activities.map((a) => [a._id, a]));
    const items = page.map((e): FeedItem => {
      const doc = byId.get(e.activityId);
      let activity: FeedItem['activity'] = null;
      if (doc) {
        const { _id, ...rest } = doc;
        activity = { id: _id, ...rest };
      }
      return { activityId: e.activityId, time: e.time, activity };
    });
    const last = page[page.length - 1];
    return { items, nextCursor: more && last ? encodeCursor({ t: last.time.getTime(), id: last.activityId }) : null };
  }
}

function compareNewestFirst(a: FeedEntryDoc, b: FeedEntryDoc): number {
  const dt = b.time.getTime() - a.time.getTime();
  if (dt !== 0) return dt;
  return a.activityId < b.activityId ? 1 : a.activityId > b.activityId ? -1 : 0;
}
