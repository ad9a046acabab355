/**
 * Activities of the fanout workflow: read a page of followers, write (or delete) one chunk of
 * feed entries. Built by {@link createFanoutActivities} from their dependencies, so workers pass
 * the real database and tests can pass their own follower source.
 * @module
 */
import { activityInfo, ApplicationFailure, log } from '@temporalio/activity';
import { ValidationError, VALIDATION_FAILURE_TYPE } from '../src/errors';
import type { FollowerPage, FollowerSource } from '../src/followers/follower-source';
import { FanoutOperation, Limits } from '../src/model/constants';
import { checkFeedType, checkId, checkIdList, checkInt, checkObject } from '../src/model/validation';
import type { FeedStore, FeedWriteResult } from '../src/storage/feed-store';

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
  feedType: string;
  activityId: string;
  /** Epoch milliseconds; required for `add`. */
  activityTime?: number;
  followerIds: string[];
}

/**
 * Turns a {@link ValidationError} into a non-retryable failure: retrying bad input cannot help.
 * Everything else (driver errors, timeouts) stays retryable, so Temporal retries it with backoff.
 */
async function failFastOnBadInput<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ValidationError) {
      throw ApplicationFailure.create({ message: err.message, type: VALIDATION_FAILURE_TYPE, nonRetryable: true, details: [err.field] });
    }
    throw err;
  }
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
        const feedType = checkFeedType('input.feedType', input.feedType);
        const activityId = checkId('input.activityId', input.activityId);
        const ids = checkIdList('input.followerIds', input.followerIds, Limits.MAX_CHUNK_SIZE);
        if (input.operation === FanoutOperation.ADD) {
          if (typeof input.activityTime !== 'number' || !Number.isFinite(input.activityTime)) {
            throw new ValidationError('input.activityTime', 'must be epoch milliseconds for operation "add"');
          }
          const res = await store.addToFeeds(feedType, ids, activityId, new Date(input.activityTime));
          if (res.unchanged > 0) log.info('feed entries already present (earlier attempt)', { activityId, feedType, unchanged: res.unchanged });
          return res;
        }
        if (input.operation === FanoutOperation.REMOVE) return store.removeFromFeeds(feedType, ids, activityId);
        throw new ValidationError('input.operation', `must be "add" or "remove", got ${JSON.stringify(input.operation)}`);
      });
    },
  };
}

/** The fanout activities' type, for `proxyActivities`. */
export type FanoutActivities = ReturnType<typeof createFanoutActivities>;
