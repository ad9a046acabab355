/**
 * Activities of the follow workflow: record or remove the edge with its counts, copy the
 * followee's recent activities into the follower's feeds (in batches), take them out again, and
 * notify. Built by {@link createFollowActivities} from their dependencies. Each one is idempotent,
 * so Temporal may retry any of them at any point.
 * @module
 */
import { FeedType } from '../src/contract/constants';
import { checkEpochMs, checkFeedTypes, checkId, checkInt, checkObject } from '../src/contract/validation';
import type { Notifier } from '../src/notify/notifier';
import type { FeedStore } from '../src/storage/feed-store';
import { checkFollowPair, type FollowStore } from '../src/storage/follow-store';
import { failFastOnBadInput } from './failures';
import { withHeartbeats } from './heartbeat';

/** What the follow activities need. */
export interface FollowActivityDeps {
  store: FeedStore;
  follows: FollowStore;
  /** Tells followees about new followers. @default none (no notifications) */
  notifier?: Notifier | undefined;
}

/** Input of `applyFollow` / `applyUnfollow`. */
export interface FollowChangeInput {
  follower: string;
  followee: string;
  /** The operation's token (unique per request the workflow applies): what makes counts exact. */
  op: string;
  /** Epoch ms of the request. */
  at: number;
}

/** Input of `backfillFeeds`. */
export interface BackfillInput {
  follower: string;
  followee: string;
  /** Feed types to fill. @default the store's feed types with `fanout: true` */
  feedTypes?: string[];
  /** Cursor into the followee's user feed; `null` starts from the newest. */
  before: string | null;
  /** Activities to copy in this batch. */
  limit: number;
}

/** Result of `backfillFeeds`. */
export interface BackfillResult {
  /** Activities read from the followee's feed (and copied, where not already there). */
  copied: number;
  /** Cursor of the next batch; `null` when the followee has no older activity. */
  nextCursor: string | null;
}

/** Creates the follow activities bound to their dependencies. */
export function createFollowActivities({ store, follows, notifier }: FollowActivityDeps) {
  const feedTypesOf = (raw: unknown): string[] => {
    const types = raw === undefined ? store.fanoutFeedTypes : checkFeedTypes('input.feedTypes', raw);
    types.forEach((t, i) => store.config(t, `input.feedTypes[${i}]`));
    return types;
  };
  const pairOf = (input: { follower: unknown; followee: unknown }) => {
    checkObject('input', input);
    return checkFollowPair(input.follower, input.followee, 'input.');
  };

  return {
    /** Records the edge and counts it. Returns whether this request created it. */
    async applyFollow(input: FollowChangeInput): Promise<{ created: boolean }> {
      return failFastOnBadInput(async () => {
        const { follower, followee } = pairOf(input);
        const op = checkId('input.op', input.op);
        const at = new Date(checkEpochMs('input.at', input.at));
        return withHeartbeats(() => follows.follow(follower, followee, op, at));
      });
    },

    /** Removes the edge and uncounts it. Returns whether there was one. */
    async applyUnfollow(input: FollowChangeInput): Promise<{ removed: boolean }> {
      return failFastOnBadInput(async () => {
        const { follower, followee } = pairOf(input);
        const op = checkId('input.op', input.op);
        return withHeartbeats(() => follows.unfollow(follower, followee, op));
      });
    },

    /** Copies one batch of the followee's newest activities into the follower's feeds. */
    async backfillFeeds(input: BackfillInput): Promise<BackfillResult> {
      return failFastOnBadInput(async () => {
        const { follower, followee } = pairOf(input);
        const feedTypes = feedTypesOf(input.feedTypes);
        const limit = checkInt('input.limit', input.limit, 1, 500);
        const before = input.before === null ? undefined : input.before;
        return withHeartbeats(async () => {
          const { entries, nextCursor } = await store.readEntries(FeedType.USER, followee, before === undefined ? { limit } : { limit, before });
          const activities = entries.map((e) => ({ id: e.activityId, actor: followee, time: e.time }));
          for (const feedType of feedTypes) await store.copyToFeed(feedType, follower, activities);
          return { copied: entries.length, nextCursor };
        });
      });
    },

    /**
     * Removes every activity of the followee from the follower's feeds: the given feed types, or
     * by default every feed that can hold them (all but the user's own and notification feeds),
     * whatever feed types the follow or the fanouts wrote.
     */
    async removeFolloweeActivities(input: Omit<BackfillInput, 'before' | 'limit'>): Promise<{ removed: number }> {
      return failFastOnBadInput(async () => {
        const { follower, followee } = pairOf(input);
        const feedTypes = input.feedTypes === undefined ? store.followedFeedTypes : feedTypesOf(input.feedTypes);
        return withHeartbeats(async () => {
          let removed = 0;
          for (const feedType of feedTypes) removed += await store.removeActorFromFeed(feedType, follower, followee);
          return { removed };
        });
      });
    },

    /** Tells the followee about the new follower (if a notifier is configured). */
    async notifyFollow(input: FollowChangeInput): Promise<void> {
      return failFastOnBadInput(async () => {
        const { follower, followee } = pairOf(input);
        const at = new Date(checkEpochMs('input.at', input.at));
        await notifier?.notify({ recipient: followee, actor: follower, verb: 'follow', object: followee, time: at });
      });
    },
  };
}

/** The follow activities' type, for `proxyActivities`. */
export type FollowActivities = ReturnType<typeof createFollowActivities>;
