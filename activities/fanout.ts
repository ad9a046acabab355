/**
 * Activities of the fanout workflow: read a page of followers, write (or delete) one chunk of
 * feed entries. Built by {@link createFanoutActivities} from their dependencies, so workers pass
 * the real database and tests can pass their own follower source.
 * @module
 */
import { activityInfo, log } from '@temporalio/activity';
import { ValidationError } from '../src/errors';
import type { FollowerPage, FollowerSource } from '../src/followers/follower-source';
import { FanoutOperation, Limits } from '../src/model/constants';
import { checkFeedTypes, checkId, checkIdList, checkInt, checkObject } from '../src/model/validation';
import type { FeedStore, FeedWriteResult } from '../src/storage/feed-store';
import { failFastOnBadInput } from './failures';

/** What the fanout activities need. */
export interface FanoutActivityDeps {
  /** Feed storage (MongoDB). */
  store: FeedStore;
  /** Where followers come from, grouped by priority. */
  followers: FollowerSource;
}

/** Input of `getFollowerPage`. */
export interface GetFollowerPageInput {
  userId: string;
  cursor: string | null;
  limit: number;
}

/** Input of `writeFeedChunk`: one chunk of follower ids for one activity. */
export interface WriteFeedChunkInput {
  operation: FanoutOperation;
  /** Feed types to write. @default the store's feed types with `fanout: true` */
  feedTypes?: string[];
  activityId: string;
  /** The activity's actor (kept in flat feed entries; needed to regroup aggregated feeds on removal). */
  actorId: string;
  /** Epoch milliseconds; required for `add`. */
  activityTime?: number;
  followerIds: string[];
}

/** Creates the fanout activities bound to their dependencies. */
export function createFanoutActivities({ store, followers }: FanoutActivityDeps) {
  return {
    /** Reads one page of `userId`'s followers, split into HIGH and LOW. */
    async getFollowerPage(input: GetFollowerPageInput): Promise<FollowerPage> {
      return failFastOnBadInput(async () => {
        checkObject('input', input);
        const userId = checkId('input.userId', input.userId);
        const cursor = input.cursor === null ? null : checkId('input.cursor', input.cursor);
        const limit = checkInt('input.limit', input.limit, 1, Limits.MAX_PAGE_SIZE);
        // The workflow id names the walk (it survives continue-as-new), so a source may cache per walk.
        const walkId = activityInfo().workflowExecution?.workflowId;
        return followers.getFollowerPage({ userId, cursor, limit, walkId });
      });
    },

    /**
     * Adds the activity to (or removes it from) the feeds of one chunk of followers, in one
     * unordered batched write. Safe to retry: entries already written are counted, not duplicated.
     */
    async writeFeedChunk(input: WriteFeedChunkInput): Promise<FeedWriteResult> {
      return failFastOnBadInput(async () => {
        checkObject('input', input);
        const feedTypes = input.feedTypes === undefined ? store.fanoutFeedTypes : checkFeedTypes('input.feedTypes', input.feedTypes);
        feedTypes.forEach((t, i) => store.config(t, `input.feedTypes[${i}]`));
        const activityId = checkId('input.activityId', input.activityId);
        const actor = checkId('input.actorId', input.actorId);
        const ids = checkIdList('input.followerIds', input.followerIds, Limits.MAX_CHUNK_SIZE);
        const total: FeedWriteResult = { changed: 0, unchanged: 0, trimmed: 0 };
        const add = (res: FeedWriteResult) => {
          total.changed += res.changed;
          total.unchanged += res.unchanged;
          total.trimmed += res.trimmed;
        };
        if (input.operation === FanoutOperation.ADD) {
          if (typeof input.activityTime !== 'number' || !Number.isFinite(input.activityTime)) {
            throw new ValidationError('input.activityTime', 'must be epoch milliseconds for operation "add"');
          }
          const time = new Date(input.activityTime);
          // One batched write per feed type; each is idempotent, so a retry redoes none twice.
          for (const feedType of feedTypes) add(await store.addToFeeds(feedType, ids, { id: activityId, actor, time }));
          if (total.unchanged > 0) log.info('feed entries already present (earlier attempt)', { activityId, feedTypes, unchanged: total.unchanged });
          return total;
        }
        if (input.operation === FanoutOperation.REMOVE) {
          for (const feedType of feedTypes) add(await store.removeFromFeeds(feedType, ids, { id: activityId, actor }));
          return total;
        }
        throw new ValidationError('input.operation', `must be "add" or "remove", got ${JSON.stringify(input.operation)}`);
      });
    },
  };
}

/** The fanout activities' type, for `proxyActivities`. */
export type FanoutActivities = ReturnType<typeof createFanoutActivities>;
