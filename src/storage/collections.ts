/**
 * MongoDB collection names, document shapes and indexes.
 *
 * Why feed entries have a composite string `_id` (`<owner>/<activityId>`): the `_id` index is the
 * unique (feed, activity) index, so a retried insert is a duplicate-key error that we count as
 * success, and a delete by `_id` needs no other index. It is also the only lookup FerretDB's SQLite
 * backend pushes down to SQL, which keeps the local stack fast (see the README's FerretDB notes).
 * @module
 */
import type { Db, IndexDescription } from 'mongodb';
import type { NormalizedActivity } from '../model/validation';

/** An activity, stored once; feeds only reference it. Its fields are the validated activity's. */
export interface ActivityDoc extends Omit<NormalizedActivity, 'id'> {
  /** The activity id. */
  _id: string;
  /** When the activity was first stored. */
  createdAt: Date;
}

/** One entry in one feed: a reference to an activity plus what sorting and paging need. */
export interface FeedEntryDoc {
  /** `<owner>/<activityId>`: unique per (feed, activity). */
  _id: string;
  /** Whose feed this is. */
  owner: string;
  activityId: string;
  /** Activity time: the sort key (ties broken by `activityId`). */
  time: Date;
}

/** A follow edge: `follower` follows `followee`. */
export interface FollowDoc {
  /** `<followee>/<follower>`: one edge per pair. */
  _id: string;
  follower: string;
  followee: string;
  createdAt: Date;
}

/** What the default priority rule needs to know about a user. */
export interface UserDoc {
  _id: string;
  /** Last time the user was active; recent activity makes them a HIGH-priority follower. */
  lastActiveAt?: Date;
}

/** Collection names. Feed collections are `feed_<type>`. */
export const Collections = {
  ACTIVITIES: 'activities',
  FOLLOWS: 'follows',
  USERS: 'users',
  feed: (feedType: string) => `feed_${feedType}`,
} as const;

/** `_id` of a feed entry. */
export function feedEntryId(owner: string, activityId: string): string {
  return `${owner}/${activityId}`;
}

/** `_id` of a follow edge. */
export function followId(followee: string, follower: string): string {
  return `${followee}/${follower}`;
}

/** Indexes of a feed collection: newest first per owner, cursor-stable (time, activityId). */
export const FEED_INDEXES: IndexDescription[] = [
  { key: { owner: 1, time: -1, activityId: -1 }, name: 'owner_time_activity' },
  { key: { activityId: 1 }, name: 'activity' },
];

/** Indexes of the follows collection: page a user's followers (or followees) in a stable order. */
export const FOLLOW_INDEXES: IndexDescription[] = [
  { key: { followee: 1, follower: 1 }, name: 'followee_follower' },
  { key: { follower: 1, followee: 1 }, name: 'follower_followee' },
];

/** Creates the indexes of the fixed collections and of the given feed types. Idempotent. */
export async function ensureIndexes(db: Db, feedTypes: Iterable<string>): Promise<void> {
  const specs: Array<[string, IndexDescription]> = FOLLOW_INDEXES.map((ix) => [Collections.FOLLOWS, ix]);
  for (const type of feedTypes) specs.push(...FEED_INDEXES.map((ix): [string, IndexDescription] => [Collections.feed(type), ix]));
  // One index per command: FerretDB 1.24 drops the connection (an internal panic) when a
  // createIndexes command lists several indexes that already exist.
  for (const [collection, { key, ...options }] of specs) {
    await db.collection(collection).createIndex(key as Record<string, 1 | -1>, options);
  }
}
