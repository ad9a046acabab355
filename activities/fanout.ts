/**
 * Activities of the fanout workflow: read a page of followers, write (or delete) one chunk of
 * feed entries. Built by {@link createFanoutActivities} from their dependencies, so workers pass
 * the real database and tests can pass their own follower source.
 * @module
 */
import { activityInfo, Context, log } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { ACTIVITY_REMOVED_FAILURE_TYPE, ValidationError } from '../src/contract/errors';
import type { FollowerPage, FollowerPageRequest, FollowerSource } from '../src/contract/follower-source';
import { FanoutOperation, Limits, type Priority } from '../src/contract/constants';
import { countChunkAttempt, Metric } from '../src/contract/metrics';
import { checkEpochMs, checkFeedTypes, checkId, checkIdList, checkInt, checkKeys, checkObject } from '../src/contract/validation';
import type { FeedStore, FeedWriteResult } from '../src/storage/feed-store';
import { failFastOnBadInput } from './failures';
import { withHeartbeats } from './heartbeat';
import { StoreBreaker } from './store-breaker';

/** What the fanout activities need. */
export interface FanoutActivityDeps {
  /** Feed storage (MongoDB). */
  store: FeedStore;
  /** Where followers come from, grouped by priority. */
  followers: FollowerSource;
  /** Fails store calls at once while the store is known to be down. @default a new one per call of `createFanoutActivities` */
  breaker?: StoreBreaker;
}

/** Input of `getFollowerPage`. */
export interface GetFollowerPageInput {
  userId: string;
  cursor: string | null;
  limit: number;
  /** A partition's range: see `FollowerPageRequest.from` / `until`. */
  from?: string;
  until?: string;
}

/** Input of `planPartitions`. */
export interface PlanPartitionsInput {
  userId: string;
  /** Followers per partition: ranges of about this many. */
  partitionSize: number;
  /** At most this many ranges. */
  maxPartitions: number;
}

/** What `planPartitions` returns: the follower count, and where the ranges start (none: one range). */
export interface PartitionPlan {
  followers: number;
  /** Ascending follower ids, each the first of a range after the first. */
  bounds: string[];
}

/** Input of `getFollowerPagePart`: a page of followers, keeping one priority's. */
export interface GetFollowerPagePartInput extends GetFollowerPageInput {
  priority: Priority;
  /** Epoch ms: see `FollowerPageRequest.activeUntil` (the LOW pass sets it). */
  activeUntil?: number;
  /**
   * With `activeUntil`: leave out the followers active only since then whose `feedType` feed
   * already holds `activityId` (the HIGH pass wrote them), so the LOW pass does not write them
   * twice. `feedType` is the last feed type the chunks write: an entry there means an attempt
   * wrote every feed type before it too.
   */
  skipWritten?: { activityId: string; feedType: string };
}

/** One priority's followers of a page. */
export interface FollowerPagePart {
  /** The page's followers of the asked priority, in follower order. */
  ids: string[];
  /** Followers of the page of the other priority (not returned). */
  others: number;
  /** Followers of this priority left out because their entry is already written (see `skipWritten`). */
  alreadyWritten?: number;
  /** Cursor of the next page, or `null` if this was the last page. */
  nextCursor: string | null;
}

/** Input of `resolveFanoutFeedTypes`. */
export interface ResolveFeedTypesInput {
  /** Feed types the fanout was asked to write. @default the store's feed types with `fanout: true` */
  feedTypes?: string[];
}

/** Input of `removeActivityEntries`: one batch of a removal's sweep. */
export interface RemoveActivityEntriesInput {
  activityId: string;
  /** The activity's actor (aggregated feeds uncount it where none of a group's activities is theirs). */
  actorId: string;
  /** Feed types to sweep. @default the store's feed types with `fanout: true` */
  feedTypes?: string[];
  /** Entries (or groups) removed per feed type in this batch (1..30,000). */
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

/** What `writeFeedChunk` returns: entries changed, already there, and feeds trimmed. */
export type WriteFeedChunkResult = FeedWriteResult;

/** Input of `chunkFailed`: a chunk that failed for good, as the workflow recorded it. */
export interface ChunkFailedInput {
  priority: Priority;
  firstFollowerId: string;
  lastFollowerId: string;
  size: number;
  message: string;
}

/** Creates the fanout activities bound to their dependencies. */
export function createFanoutActivities({ store, followers, breaker = new StoreBreaker() }: FanoutActivityDeps) {
  const liveness = new ActivityLiveness(store);
  const feedTypesOf = (raw: unknown): string[] => {
    const feedTypes = raw === undefined ? store.fanoutFeedTypes : checkFeedTypes('input.feedTypes', raw);
    feedTypes.forEach((t, i) => store.config(t, `input.feedTypes[${i}]`));
    return feedTypes;
  };

  return {
    /**
     * The feed types a fanout writes, checked against this worker's configuration: the given ones,
     * or the configured fanout feed types. Run once per fanout (as a local activity) before any
     * chunk is dispatched, so a misspelled feed type fails the fanout at once and writes nothing.
     */
    async resolveFanoutFeedTypes(input: ResolveFeedTypesInput): Promise<string[]> {
      return failFastOnBadInput(() => Promise.resolve(feedTypesOf(checkObject('input', input).feedTypes)));
    },

    /**
     * How a big fanout splits: the actor's follower count and, when it is more than one partition's
     * worth, where each range of follower ids starts (see `FollowerSource.splitFollowers`; a source
     * without it is one range). Run once per fanout of more than a page, as a local activity.
     */
    async planPartitions(input: PlanPartitionsInput): Promise<PartitionPlan> {
      return failFastOnBadInput(async () => {
        checkObject('input', input);
        const userId = checkId('input.userId', input.userId);
        const size = checkInt('input.partitionSize', input.partitionSize, 100, 10_000_000);
        const max = checkInt('input.maxPartitions', input.maxPartitions, 1, 64);
        if (!followers.splitFollowers) return { followers: 0, bounds: [] };
        return withHeartbeats(() => followers.splitFollowers!(userId, (n) => Math.min(max, Math.ceil(n / size))));
      });
    },

    /** Reads one page of `userId`'s followers, split into HIGH and LOW. */
    async getFollowerPage(input: GetFollowerPageInput): Promise<FollowerPage> {
      return failFastOnBadInput(async () => withHeartbeats(() => followers.getFollowerPage(pageRequest(input))));
    },

    /**
     * Reads one page of `userId`'s followers and keeps the ones of `priority`: what a priority's
     * pass writes (the other pass reads the same pages for its own). Returning one priority keeps
     * the history of each pass at a quarter to three quarters of the page.
     */
    async getFollowerPagePart(input: GetFollowerPagePartInput): Promise<FollowerPagePart> {
      return failFastOnBadInput(async () => {
        const request = pageRequest(input, Limits.MAX_PASS_READ);
        if (input.priority !== 'high' && input.priority !== 'low') throw new ValidationError('input.priority', 'must be "high" or "low"');
        const activeUntil = input.activeUntil === undefined ? undefined : checkEpochMs('input.activeUntil', input.activeUntil);
        const skip = input.skipWritten === undefined ? undefined : checkKeys('input.skipWritten', input.skipWritten, ['activityId', 'feedType']);
        const skipActivity = skip && checkId('input.skipWritten.activityId', skip.activityId);
        const skipFeedType = skip && checkFeedTypes('input.skipWritten.feedType', [skip.feedType])[0];
        if (skipFeedType !== undefined) store.config(skipFeedType, 'input.skipWritten.feedType');
        return breaker.run(() => withHeartbeats(async () => {
          const page = await followers.getFollowerPage({ ...request, activeUntil });
          const [ids, others] = input.priority === 'high' ? [page.high, page.low] : [page.low, page.high];
          if (input.priority === 'high' || !skipActivity || !skipFeedType || !page.recent?.length) return { ids, others: others.length, nextCursor: page.nextCursor };
          // Followers active only since the fanout began: the HIGH pass wrote those it read as active.
          const written = await store.ownersHolding(skipFeedType, page.recent, skipActivity);
          const kept = written.size ? ids.filter((id) => !written.has(id)) : ids;
          return { ids: kept, others: others.length, nextCursor: page.nextCursor, alreadyWritten: ids.length - kept.length };
        }));
      });
    },

    /**
     * One batch of a removal: deletes up to `limit` of the activity's entries (or group
     * memberships) from each feed type, whoever's feeds they are in (see `FeedStore.sweepActivity`).
     * `more` tells whether another batch is needed. Idempotent; heartbeats; stops between feed
     * types once cancelled.
     */
    async removeActivityEntries(input: RemoveActivityEntriesInput): Promise<{ changed: number; more: boolean }> {
      return failFastOnBadInput(async () => {
        checkObject('input', input);
        const feedTypes = feedTypesOf(input.feedTypes);
        const activityId = checkId('input.activityId', input.activityId);
        const actor = checkId('input.actorId', input.actorId);
        const limit = checkInt('input.limit', input.limit, 1, Limits.MAX_REMOVE_BATCH);
        const removed = Context.current().metricMeter.createCounter(Metric.ENTRIES_REMOVED, 'entries');
        return withHeartbeats(async (signal) => {
          let changed = 0;
          let more = false;
          for (const feedType of feedTypes) {
            if (signal.aborted) throw new CancelledFailure(`removal batch stopped before feed type ${feedType}: ${String(signal.reason)}`);
            const res = await store.sweepActivity(feedType, activityId, actor, limit);
            removed.add(res.changed, { feed_type: feedType });
            changed += res.changed;
            more ||= res.more;
          }
          return { changed, more };
        });
      });
    },

    /**
     * Adds the activity to (or removes it from) the feeds of one chunk of followers: one batched
     * write per feed type. Safe to retry: entries already written are counted, not duplicated.
     * Heartbeats while it runs and stops between feed types once cancelled or timed out, so an
     * abandoned attempt does not keep writing beside its retry.
     */
    async writeFeedChunk(input: WriteFeedChunkInput): Promise<WriteFeedChunkResult> {
      // Counts the attempt by outcome (feed_fanout_chunks), whichever shape runs the chunk.
      return countChunkAttempt(Context.current().metricMeter, (input as Partial<WriteFeedChunkInput> | null)?.operation, () => failFastOnBadInput(async () => {
        checkObject('input', input);
        const feedTypes = feedTypesOf(input.feedTypes);
        const activityId = checkId('input.activityId', input.activityId);
        const actor = checkId('input.actorId', input.actorId);
        const ids = checkIdList('input.followerIds', input.followerIds, Limits.MAX_CHUNK_SIZE);
        const operation = input.operation;
        if (operation !== FanoutOperation.ADD && operation !== FanoutOperation.REMOVE) {
          throw new ValidationError('input.operation', `must be "add" or "remove", got ${JSON.stringify(operation)}`);
        }
        const time = operation === FanoutOperation.ADD ? new Date(checkEpochMs('input.activityTime', input.activityTime)) : undefined;
        const { metricMeter, info } = Context.current();
        // Removed while this fanout ran (the client marks it first, then cancels the fanout): write
        // nothing more. Checked per chunk, so a removal stops the writes within the chunks in flight.
        if (time && !(await breaker.run(() => liveness.isLive(activityId)))) {
          throw ApplicationFailure.create({
            type: ACTIVITY_REMOVED_FAILURE_TYPE,
            nonRetryable: true,
            message: `activity ${activityId} was removed (or never stored) while its fanout ran: chunk of ${ids.length} followers not written`,
          });
        }
        const started = Date.now();
        const entries = metricMeter.createCounter(time ? Metric.ENTRIES_WRITTEN : Metric.ENTRIES_REMOVED, 'entries');
        const total = await breaker.run(() => withHeartbeats(async (signal) => {
          const sum: FeedWriteResult = { changed: 0, unchanged: 0, trimmed: 0 };
          for (const feedType of feedTypes) {
            if (signal.aborted) throw new CancelledFailure(`chunk write stopped before feed type ${feedType}: ${String(signal.reason)}`);
            // One batched write per feed type; each is idempotent, so a retry redoes none twice.
            const res = time
              ? await store.addToFeeds(feedType, ids, { id: activityId, actor, time })
              : await store.removeFromFeeds(feedType, ids, { id: activityId, actor });
            entries.add(res.changed, { feed_type: feedType });
            sum.changed += res.changed;
            sum.unchanged += res.unchanged;
            sum.trimmed += res.trimmed;
          }
          return sum;
        }));
        metricMeter.createHistogram(Metric.CHUNK_DURATION, 'int', 'ms').record(Date.now() - started, { operation });
        metricMeter.createHistogram(Metric.CHUNK_ATTEMPT).record(info.attempt);
        if (time && total.unchanged > 0) log.debug('feed entries already present (earlier attempt)', { activityId, feedTypes, unchanged: total.unchanged });
        return total;
      }));
    },

    /**
     * Records nothing and changes nothing: a fanout runs it (as a local activity whose summary
     * starts `FAILED:`) for each chunk that failed for good, so the failure stands out in the Web
     * UI's event history. Logs the failure.
     */
    chunkFailed(input: ChunkFailedInput): Promise<void> {
      log.warn('fanout chunk failed for good', { ...input });
      return Promise.resolve();
    },
  };
}

/** The fanout activities' type, for `proxyActivities`. */
export type FanoutActivities = ReturnType<typeof createFanoutActivities>;

/** The follower source's request for a page, from an activity's input (checked field by field). */
function pageRequest(input: GetFollowerPageInput, maxLimit: number = Limits.MAX_PAGE_SIZE): FollowerPageRequest {
  checkObject('input', input);
  return {
    userId: checkId('input.userId', input.userId),
    cursor: input.cursor === null ? null : checkId('input.cursor', input.cursor),
    limit: checkInt('input.limit', input.limit, 1, maxLimit),
    ...(input.from === undefined ? {} : { from: checkId('input.from', input.from) }),
    ...(input.until === undefined ? {} : { until: checkId('input.until', input.until) }),
    // The workflow id names the walk (it survives continue-as-new), so a source may cache per walk.
    walkId: activityInfo().workflowExecution?.workflowId,
  };
}

/**
 * Whether an activity is still stored and not being removed, asked once per chunk. Questions asked
 * in the same turn of the event loop share one point read by `_id`, issued after all of them: a
 * read already under way began before the question and may miss a removal marked since, so it is
 * never shared with a later question (the removal's promise: writes stop within the chunks in
 * flight). In one CI run on FerretDB, 5,001 entries were written after `removeActivity`, more than
 * the chunks in flight hold (20 slots of 100); a shared read under way was one way through.
 */
class ActivityLiveness {
  private readonly queued = new Map<string, Promise<boolean>>();

  constructor(private readonly store: FeedStore) {}

  isLive(activityId: string): Promise<boolean> {
    let answer = this.queued.get(activityId);
    if (!answer) {
      answer = new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
        // From here on, a question gets the next read: this one is going out.
        this.queued.delete(activityId);
        return this.store.isActivityLive(activityId);
      });
      this.queued.set(activityId, answer);
    }
    return answer;
  }
}
