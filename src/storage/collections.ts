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
import { isAggregated, type ResolvedFeedConfig } from '../contract/feeds';
import type { PostFanoutState } from '../contract/post-batch';
import type { NormalizedActivity } from '../contract/validation';

/** An activity, stored once; feeds only reference it. Its fields are the validated activity's. */
export interface ActivityDoc extends Omit<NormalizedActivity, 'id'> {
  /** The activity id. */
  _id: string;
  /** When the activity was first stored. */
  createdAt: Date;
  /**
   * The feed types its fanout writes (besides the actor's own `user` feed): what a removal sweeps.
   * Absent on activities stored before it was recorded (the removal then asks the add fanout).
   */
  feedTypes?: string[];
  /** Set when a removal began: readers no longer see it, and its fanout's chunks stop writing. */
  removedAt?: Date;
  /** A batched post's fanout: where it stands (absent for a post with a fanout workflow of its own). */
  fanout?: PostFanoutState;
}

/** One entry in one feed: a reference to an activity plus what sorting and paging need. */
export interface FeedEntryDoc {
  /** `<owner>/<activityId>`: unique per (feed, activity). */
  _id: string;
  /** Whose feed this is. */
  owner: string;
  activityId: string;
  /** The activity's actor: lets an unfollow remove exactly the followee's entries. */
  actor: string;
  /** Activity time: the sort key (ties broken by `activityId`). */
  time: Date;
}

/**
 * One group of an aggregated (or notification) feed: the activities of one owner's feed that share
 * a group key, e.g. everyone who liked photo 9.
 */
export interface GroupDoc {
  /** `<owner>/<group>`: one document per group and feed. */
  _id: string;
  owner: string;
  /** The group key (see `groupKey`). */
  group: string;
  verb: string;
  /** Time of the newest activity in the group: the sort key (ties broken by `group`). */
  time: Date;
  /** The newest activities, oldest first (at most `MAX_GROUP_ACTIVITIES`); guards retries. */
  activityIds: string[];
  /** Activities ever added and not removed. */
  activityCount: number;
  /** Distinct actors in order of first appearance (at most `MAX_GROUP_ACTORS`). */
  actors: string[];
  /** Distinct actors counted. */
  actorCount: number;
  /** Notification feeds: false once a new activity joins, until marked seen. */
  seen: boolean;
  /** Notification feeds: false once a new activity joins, until marked read. */
  read: boolean;
}

/** A follow edge: `follower` follows `followee`. */
export interface FollowDoc {
  /** `<followee>/<follower>`: one edge per pair. */
  _id: string;
  follower: string;
  followee: string;
  createdAt: Date;
  /** The operation that created the edge: the counters' idempotency token for it. */
  op?: string;
  /** False until both users' counts include this edge (absent: counted, e.g. imported edges). */
  counted?: boolean;
  /** Set while an unfollow takes the edge out of the counts (the token of that operation). */
  removeOp?: string;
}

/** Follower / following counts of one user, kept with the operations that changed them. */
export interface UserCountsDoc {
  /** The user id. */
  _id: string;
  followers: number;
  following: number;
  /** Tokens of the latest operations applied (bounded): a retried operation finds its token here. */
  ops: string[];
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
  USER_COUNTS: 'user_counts',
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

/** `_id` of a group of an aggregated feed. */
export function groupDocId(owner: string, group: string): string {
  return `${owner}/${group}`;
}

/**
 * Indexes of a flat feed: newest first per owner, cursor-stable (time, activityId); by activity in
 * `_id` order (the removal sweeps ranges of it); by actor.
 */
export const FEED_INDEXES: IndexDescription[] = [
  { key: { owner: 1, time: -1, activityId: -1 }, name: 'owner_time_activity' },
  { key: { activityId: 1, _id: 1 }, name: 'activity_id' },
  { key: { owner: 1, actor: 1 }, name: 'owner_actor' },
];

/** Indexes of an aggregated feed: newest group first per owner; by activity in `_id` order (removal); unseen / unread counts. */
export const GROUP_INDEXES: IndexDescription[] = [
  { key: { owner: 1, time: -1, group: -1 }, name: 'owner_time_group' },
  { key: { activityIds: 1, _id: 1 }, name: 'activities_id' },
  { key: { owner: 1, seen: 1 }, name: 'owner_seen' },
  { key: { owner: 1, read: 1 }, name: 'owner_read' },
];

/** Indexes of the follows collection: page a user's followers (or followees) in a stable order. */
export const FOLLOW_INDEXES: IndexDescription[] = [
  { key: { followee: 1, follower: 1 }, name: 'followee_follower' },
  { key: { follower: 1, followee: 1 }, name: 'follower_followee' },
];

/** Creates the indexes of the fixed collections and of the given feed types. Idempotent. */
export async function ensureIndexes(db: Db, feeds: ReadonlyMap<string, ResolvedFeedConfig>): Promise<void> {
  const specs: Array<[string, IndexDescription]> = FOLLOW_INDEXES.map((ix) => [Collections.FOLLOWS, ix]);
  for (const [type, cfg] of feeds) {
    const indexes = isAggregated(cfg.kind) ? GROUP_INDEXES : FEED_INDEXES;
    specs.push(...indexes.map((ix): [string, IndexDescription] => [Collections.feed(type), ix]));
  }
  // One index per command: FerretDB 1.24 drops the connection (an internal panic) when a
  // createIndexes command lists several indexes that already exist.
  for (const [collection, { key, ...options }] of specs) {
    await db.collection(collection).createIndex(key, options);
  }
}
