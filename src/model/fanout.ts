/**
 * The fanout workflow's contract: its JSON input, its progress/summary shape and its query.
 * Pure: shared by the workflow, the activities and the client.
 *
 * An app in another language starts a fanout with workflow type `fanoutWorkflow` on task queue
 * `fanout` and one JSON argument shaped like {@link FanoutWorkflowInput}, e.g.
 * `{"operation":"add","activityId":"a1","actorId":"u1","activityTime":1763900000000}`.
 * @module
 */
import { defineQuery } from '@temporalio/workflow';
import { FanoutOperation, Limits, TaskQueue } from './constants';
import { checkFeedTypes, checkId, checkInt, checkObject, checkTaskQueue } from './validation';
import { ValidationError } from '../errors';

/** Defaults of the fanout options; see {@link FanoutOptions}. */
export const FANOUT_DEFAULTS = {
  // 5,000 rather than 1,000: fewer paging activities and fewer partial chunks at page ends, so
  // about 15% fewer history events and 15-20% more entries/s on mongod (npm run bench); a page's
  // ids (~60 KB as JSON) stay far below Temporal's 512 KB payload warning.
  pageSize: 5000,
  chunkSize: 100,
  maxInFlight: 16,
  highTaskQueue: TaskQueue.HIGH,
  lowTaskQueue: TaskQueue.LOW,
  maxHistoryEvents: 10_000,
} as const;

/** Tuning of one fanout. Every field is optional. */
export interface FanoutOptions {
  /**
   * Feed types written in each follower's feeds. @default the worker's feed types with
   * `fanout: true` (see `DEFAULT_FEEDS`): the configuration decides, not the workflow.
   */
  feedTypes?: string[];
  /** Followers read per paging activity (1..10,000). @default 5000 */
  pageSize?: number;
  /** Follower ids per feed-write activity (1..1,000), Stream Framework's `fanout_chunk_size`. @default 100 */
  chunkSize?: number;
  /** Feed-write activities in flight at once (1..1,000). @default 16 */
  maxInFlight?: number;
  /** Task queue of HIGH-priority chunk writes. @default 'high-fanout' */
  highTaskQueue?: string;
  /** Task queue of LOW-priority chunk writes. @default 'low-fanout' */
  lowTaskQueue?: string;
  /**
   * Continue as new once history passes this many events (100..40,000), even if the server has not
   * suggested it yet. Far below Temporal's hard limit of 51,200. @default 10000
   */
  maxHistoryEvents?: number;
}

/** Counters for one priority class. */
export interface PriorityProgress {
  /** Followers of this priority seen so far. */
  followers: number;
  /** Chunks whose write completed (including chunks that were all duplicates). */
  chunksDone: number;
  /** Chunks that failed for good (non-retryable error or retries exhausted). */
  chunksFailed: number;
  /** Chunks being written right now. */
  chunksInFlight: number;
  /** Feed entries actually inserted (add) or deleted (remove); duplicates on retry don't count. */
  entriesChanged: number;
}

/** A chunk that failed for good. Only the first few are kept, to keep history small. */
export interface ChunkFailure {
  priority: 'high' | 'low';
  /** First follower id of the chunk, to find it again. */
  firstFollowerId: string;
  size: number;
  message: string;
}

/** What the `progress` query answers, and what the workflow returns when done. */
export interface FanoutProgress {
  operation: FanoutOperation;
  activityId: string;
  actorId: string;
  /** Feed types written; absent when the worker's configured fanout feeds were used. */
  feedTypes?: string[];
  /** Followers seen so far, all priorities. */
  followersSeen: number;
  /** Follower pages read. */
  pagesRead: number;
  high: PriorityProgress;
  low: PriorityProgress;
  /** How many times this fanout continued as new. */
  continuedAsNew: number;
  /** True once every chunk has finished (done or failed). */
  done: boolean;
  /** The first failures (at most 20). */
  failures: ChunkFailure[];
}

/** State carried across continue-as-new. Not for callers: omit it when starting a fanout. */
export interface FanoutContinuation {
  /** Follower cursor to resume paging from; `null` means paging is finished. */
  cursor: string | null;
  progress: FanoutProgress;
}

/**
 * Input of `fanoutWorkflow`. Small and primitive on purpose: the follower ids are read by
 * activities, never passed in.
 */
export interface FanoutWorkflowInput extends FanoutOptions {
  /** `add` writes the activity into every follower's feed; `remove` deletes it. */
  operation: FanoutOperation;
  /** Id of the activity (already stored in the activities collection for `add`). */
  activityId: string;
  /** The actor whose followers receive the activity. */
  actorId: string;
  /** Activity time in epoch milliseconds, the feeds' sort key. Required for `add`. */
  activityTime?: number;
  /**
   * Scheduled publishing (epoch ms): the workflow sleeps until then (a durable timer), then writes
   * the actor's own feed and fans out. Only for `add`. @default publish now
   */
  publishAt?: number;
  /** Set by the workflow itself when it continues as new. */
  continued?: FanoutContinuation;
}

/** A validated input with defaults applied. */
export type ResolvedFanoutInput = Required<Omit<FanoutWorkflowInput, 'continued' | 'activityTime' | 'publishAt' | 'feedTypes'>> &
  Pick<FanoutWorkflowInput, 'continued' | 'activityTime' | 'publishAt' | 'feedTypes'>;

/** Fanout options after validation: defaults applied, except `feedTypes` (absent = the worker's). */
export type ResolvedFanoutOptions = Required<Omit<FanoutOptions, 'feedTypes'>> & Pick<FanoutOptions, 'feedTypes'>;

/** Query: the fanout's current progress. */
export const progressQuery = defineQuery<FanoutProgress>('progress');

/** Validates fanout options, applying defaults. Field names are prefixed with `prefix`. */
export function resolveFanoutOptions(opts: FanoutOptions, prefix = ''): ResolvedFanoutOptions {
  return {
    ...(opts.feedTypes === undefined ? {} : { feedTypes: checkFeedTypes(`${prefix}feedTypes`, opts.feedTypes) }),
    pageSize: checkInt(`${prefix}pageSize`, opts.pageSize, 1, Limits.MAX_PAGE_SIZE, FANOUT_DEFAULTS.pageSize),
    chunkSize: checkInt(`${prefix}chunkSize`, opts.chunkSize, 1, Limits.MAX_CHUNK_SIZE, FANOUT_DEFAULTS.chunkSize),
    maxInFlight: checkInt(`${prefix}maxInFlight`, opts.maxInFlight, 1, Limits.MAX_IN_FLIGHT, FANOUT_DEFAULTS.maxInFlight),
    highTaskQueue: checkTaskQueue(`${prefix}highTaskQueue`, opts.highTaskQueue ?? FANOUT_DEFAULTS.highTaskQueue),
    lowTaskQueue: checkTaskQueue(`${prefix}lowTaskQueue`, opts.lowTaskQueue ?? FANOUT_DEFAULTS.lowTaskQueue),
    maxHistoryEvents: checkInt(`${prefix}maxHistoryEvents`, opts.maxHistoryEvents, 100, 40_000, FANOUT_DEFAULTS.maxHistoryEvents),
  };
}

/**
 * Validates the workflow input (it may come from another language or the CLI).
 * @throws ValidationError naming the field.
 */
export function validateFanoutInput(raw: unknown): ResolvedFanoutInput {
  const input = checkObject('input', raw) as Partial<FanoutWorkflowInput>;
  const operation = input.operation;
  if (operation !== FanoutOperation.ADD && operation !== FanoutOperation.REMOVE) {
    throw new ValidationError('input.operation', `must be "add" or "remove", got ${JSON.stringify(operation)}`);
  }
  const resolved: ResolvedFanoutInput = {
    operation,
    activityId: checkId('input.activityId', input.activityId),
    actorId: checkId('input.actorId', input.actorId),
    ...resolveFanoutOptions(input, 'input.'),
  };
  if (operation === FanoutOperation.ADD || input.activityTime !== undefined) {
    if (typeof input.activityTime !== 'number' || !Number.isFinite(input.activityTime)) {
      throw new ValidationError('input.activityTime', `must be epoch milliseconds (a number), got ${JSON.stringify(input.activityTime)}`);
    }
    resolved.activityTime = input.activityTime;
  }
  if (input.publishAt !== undefined) {
    if (operation !== FanoutOperation.ADD) throw new ValidationError('input.publishAt', 'is only allowed for operation "add"');
    if (typeof input.publishAt !== 'number' || !Number.isFinite(input.publishAt)) {
      throw new ValidationError('input.publishAt', `must be epoch milliseconds (a number), got ${JSON.stringify(input.publishAt)}`);
    }
    resolved.publishAt = input.publishAt;
  }
  if (input.continued !== undefined) resolved.continued = input.continued;
  return resolved;
}

/** A fresh progress record for a fanout. */
export function initialProgress(input: ResolvedFanoutInput): FanoutProgress {
  const zero = (): PriorityProgress => ({ followers: 0, chunksDone: 0, chunksFailed: 0, chunksInFlight: 0, entriesChanged: 0 });
  return {
    operation: input.operation,
    activityId: input.activityId,
    actorId: input.actorId,
    ...(input.feedTypes ? { feedTypes: input.feedTypes } : {}),
    followersSeen: 0,
    pagesRead: 0,
    high: zero(),
    low: zero(),
    continuedAsNew: 0,
    done: false,
    failures: [],
  };
}
