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
import { FanoutOperation, Limits, type Priority, TaskQueue } from './constants';
import type { ChunkFailure, FanoutProgress, PriorityProgress, RetryStatus } from './fanout-progress';
import { MAX_LISTED_FAILURES } from './fanout-progress';

export * from './fanout-progress';
import { checkBoolean, checkCount, checkEpochMs, checkFeedTypes, checkId, checkInt, checkKeys, checkTaskQueue, checkText } from './validation';
import { ValidationError } from './errors';

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
  // Half a minute without a finished chunk while chunks wait is far beyond a healthy chunk's
  // latency (milliseconds to a few seconds), yet short enough to be flagged within a minute.
  stalledAfterMs: 30_000,
  // A removal sweeps in batches: few statements matter on FerretDB (each delete scans the
  // collection), and 10,000 entries are one short indexed range delete on MongoDB.
  removeBatchSize: 10_000,
  // A chunk is one batched write per feed type: milliseconds, seconds on a loaded store. A minute
  // lets a slow store finish; an attempt stuck longer is abandoned and retried (idempotent).
  chunkTimeoutMs: 60_000,
  chunksAsActivities: false,
  chunkExecution: 'local',
  // A partition of about 25,000 followers takes a second or two on one worker: big enough that
  // its overhead (a child workflow, its first page) is noise, small enough that a fanout of a few
  // hundred thousand followers spreads over every worker polling its queue.
  partitionSize: 25_000,
  // 16 ranges per priority keep the fanout's own history small (a start and some reports each)
  // while spreading a celebrity's fanout over up to 16 workers at once.
  maxPartitions: 16,
} as const;

/** How a fanout's chunks run; see {@link FanoutOptions.chunkExecution}. */
export const ChunkExecution = {
  /** Local activities of the pass that reads their page: a marker each, in the pass's worker. */
  LOCAL: 'local',
  /** Activity tasks on the priority's queue: any worker polling it takes them, the server retries them. */
  ACTIVITY: 'activity',
} as const;
export type ChunkExecution = (typeof ChunkExecution)[keyof typeof ChunkExecution];

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
  /**
   * A fanout whose chunks of one priority wait this long (ms, 1,000..3,600,000) without any of them
   * finishing is flagged as stalled: `FanoutStalled = true` in the list view (when the namespace
   * has the project's search attributes), a line in the run's current details, and `stalled` in
   * its progress. Typical causes: no worker polls the chunk queue (a misspelled queue name, workers
   * down) or the store is unreachable. The flag clears once chunks finish again. @default 30000
   */
  stalledAfterMs?: number;
  /**
   * `remove` only: entries deleted per removal batch and feed type (1..30,000). A removal does not
   * page through followers: it sweeps the activity's entries out of the feeds by activity id, in
   * batches on the LOW queue (readers stop seeing the activity at once anyway). @default 10000
   */
  removeBatchSize?: number;
  /**
   * How long one chunk write as a local activity may take before it is abandoned and retried (ms,
   * 1,000..600,000). @default 60000
   */
  chunkTimeoutMs?: number;
  /**
   * `add` only: how the chunks of a fanout larger than one page run. Either way a HIGH pass
   * writes every active follower before a LOW pass writes the others (`fanoutPassWorkflow`, child
   * workflows on `highTaskQueue` and `lowTaskQueue`), and a fanout of one page writes its chunks
   * itself as local activities.
   * - `local`: each chunk is a local activity of its pass, run by the worker that runs the pass: a
   *   marker in history instead of an activity task, about half the CPU per entry (see the README's
   *   benchmark). A pass uses one worker at a time; partitions (`partitionSize`) spread a big fanout.
   * - `activity`: each chunk is an activity task on the priority's queue: every worker polling it
   *   takes chunks, the server retries each with backoff and the Web UI shows each attempt. Pick it
   *   where chunks must spread over many workers one by one, or retries must be visible per chunk.
   * @default 'local'
   */
  chunkExecution?: ChunkExecution;
  /**
   * `add` only: followers per partition. A fanout with more followers than this splits each
   * priority's pass into ranges of follower ids, run as parallel passes on the priority's queue
   * (every HIGH partition completes before any LOW one starts), so every worker polling the queue
   * takes a share (100..10,000,000). @default 25000
   */
  partitionSize?: number;
  /** `add` only: most partitions per priority (1..64). @default 16 */
  maxPartitions?: number;
  /**
   * `add` only, kept for runs and callers from before `chunkExecution`: `true` is
   * `chunkExecution: 'activity'`. (Runs started before the priority passes existed and asked for
   * it walk the pages themselves when they replay.) @deprecated use `chunkExecution`
   */
  chunksAsActivities?: boolean;
}

/** Every option of {@link FanoutOptions}, for checking that no unknown one is passed. */
export const FANOUT_OPTION_KEYS = [
  'feedTypes',
  'pageSize',
  'chunkSize',
  'maxInFlight',
  'highTaskQueue',
  'lowTaskQueue',
  'maxHistoryEvents',
  'stalledAfterMs',
  'removeBatchSize',
  'chunkTimeoutMs',
  'chunksAsActivities',
  'chunkExecution',
  'partitionSize',
  'maxPartitions',
] as const satisfies ReadonlyArray<keyof FanoutOptions>;


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

/** Every field of {@link FanoutWorkflowInput}. */
const FANOUT_INPUT_KEYS = [...FANOUT_OPTION_KEYS, 'operation', 'activityId', 'actorId', 'activityTime', 'publishAt', 'continued'] as const;

/** A validated input with defaults applied. */
export type ResolvedFanoutInput = Required<Omit<FanoutWorkflowInput, 'continued' | 'activityTime' | 'publishAt' | 'feedTypes'>> &
  Pick<FanoutWorkflowInput, 'continued' | 'activityTime' | 'publishAt' | 'feedTypes'>;

/** Fanout options after validation: defaults applied, except `feedTypes` (absent = the worker's). */
export type ResolvedFanoutOptions = Required<Omit<FanoutOptions, 'feedTypes'>> & Pick<FanoutOptions, 'feedTypes'>;

/** Query: the fanout's current progress. */
export const progressQuery = defineQuery<FanoutProgress>('progress');

/**
 * Validates fanout options, applying defaults. Field names are prefixed with `prefix`; unknown
 * options fail unless `strict` is false (the workflow input checks its own keys).
 */
export function resolveFanoutOptions(opts: FanoutOptions, prefix = '', strict = true): ResolvedFanoutOptions {
  if (strict) checkKeys(prefix ? prefix.slice(0, -1) : 'options', opts, FANOUT_OPTION_KEYS);
  return {
    ...(opts.feedTypes === undefined ? {} : { feedTypes: checkFeedTypes(`${prefix}feedTypes`, opts.feedTypes) }),
    pageSize: checkInt(`${prefix}pageSize`, opts.pageSize, 1, Limits.MAX_PAGE_SIZE, FANOUT_DEFAULTS.pageSize),
    chunkSize: checkInt(`${prefix}chunkSize`, opts.chunkSize, 1, Limits.MAX_CHUNK_SIZE, FANOUT_DEFAULTS.chunkSize),
    maxInFlight: checkInt(`${prefix}maxInFlight`, opts.maxInFlight, 1, Limits.MAX_IN_FLIGHT, FANOUT_DEFAULTS.maxInFlight),
    highTaskQueue: checkTaskQueue(`${prefix}highTaskQueue`, opts.highTaskQueue ?? FANOUT_DEFAULTS.highTaskQueue),
    lowTaskQueue: checkTaskQueue(`${prefix}lowTaskQueue`, opts.lowTaskQueue ?? FANOUT_DEFAULTS.lowTaskQueue),
    maxHistoryEvents: checkInt(`${prefix}maxHistoryEvents`, opts.maxHistoryEvents, 100, 40_000, FANOUT_DEFAULTS.maxHistoryEvents),
    stalledAfterMs: checkInt(`${prefix}stalledAfterMs`, opts.stalledAfterMs, 1000, 3_600_000, FANOUT_DEFAULTS.stalledAfterMs),
    removeBatchSize: checkInt(`${prefix}removeBatchSize`, opts.removeBatchSize, 1, Limits.MAX_REMOVE_BATCH, FANOUT_DEFAULTS.removeBatchSize),
    chunkTimeoutMs: checkInt(`${prefix}chunkTimeoutMs`, opts.chunkTimeoutMs, 1000, 600_000, FANOUT_DEFAULTS.chunkTimeoutMs),
    chunksAsActivities: opts.chunksAsActivities === undefined ? FANOUT_DEFAULTS.chunksAsActivities : checkBoolean(`${prefix}chunksAsActivities`, opts.chunksAsActivities),
    chunkExecution: checkChunkExecution(`${prefix}chunkExecution`, opts.chunkExecution, opts.chunksAsActivities === true),
    partitionSize: checkInt(`${prefix}partitionSize`, opts.partitionSize, 100, 10_000_000, FANOUT_DEFAULTS.partitionSize),
    maxPartitions: checkInt(`${prefix}maxPartitions`, opts.maxPartitions, 1, 64, FANOUT_DEFAULTS.maxPartitions),
  };
}

/** Checks `chunkExecution` (the deprecated `chunksAsActivities: true` stands for `activity`). */
export function checkChunkExecution(field: string, value: unknown, legacyActivities = false): ChunkExecution {
  if (value === undefined) return legacyActivities ? ChunkExecution.ACTIVITY : FANOUT_DEFAULTS.chunkExecution;
  if (value !== ChunkExecution.LOCAL && value !== ChunkExecution.ACTIVITY) {
    throw new ValidationError(field, `must be "local" or "activity", got ${JSON.stringify(value)}`);
  }
  if (legacyActivities && value === ChunkExecution.LOCAL) throw new ValidationError(field, 'must be "activity" when chunksAsActivities is true (or leave chunksAsActivities out)');
  return value;
}

/**
 * Validates the workflow input (it may come from another language or the CLI): unknown fields,
 * prototype keys, wrong types, non-finite numbers and a malformed `continued` all fail here.
 * @throws ValidationError naming the field.
 */
export function validateFanoutInput(raw: unknown): ResolvedFanoutInput {
  const input = checkKeys('input', raw, FANOUT_INPUT_KEYS) as Partial<FanoutWorkflowInput>;
  const operation = input.operation;
  if (operation !== FanoutOperation.ADD && operation !== FanoutOperation.REMOVE) {
    throw new ValidationError('input.operation', `must be "add" or "remove", got ${JSON.stringify(operation)}`);
  }
  const resolved: ResolvedFanoutInput = {
    operation,
    activityId: checkId('input.activityId', input.activityId),
    actorId: checkId('input.actorId', input.actorId),
    ...resolveFanoutOptions(input, 'input.', false),
  };
  if (operation === FanoutOperation.ADD || input.activityTime !== undefined) {
    resolved.activityTime = checkEpochMs('input.activityTime', input.activityTime);
  }
  if (input.publishAt !== undefined) {
    if (operation !== FanoutOperation.ADD) throw new ValidationError('input.publishAt', 'is only allowed for operation "add"');
    resolved.publishAt = checkEpochMs('input.publishAt', input.publishAt);
  }
  if (input.continued !== undefined) resolved.continued = validateContinuation('input.continued', input.continued, resolved);
  return resolved;
}

/**
 * What is being retried, in a sentence for the Web UI, the CLI and the stall flag: what fails,
 * how often so far, the latest error, how many chunks wait, and since when a probe retries it.
 */
export function describeRetry(r: RetryStatus): string {
  const at = (ms: number) => new Date(ms).toISOString().slice(11, 19);
  const waiting = r.waiting > 0 ? ` ${r.waiting} chunk${r.waiting === 1 ? '' : 's'} wait to be written again;` : '';
  return `${r.what} failed ${r.attempts} attempts since ${at(r.since)} UTC, the latest with: ${r.lastError}.${waiting} A probe retries it since ${at(r.probeStartedAt)} UTC (backing off to 1 min); the rest follow once it gets through, nothing is dropped`;
}

/**
 * Checks the state a fanout carries over continue-as-new. Written by the workflow itself, but it
 * is input all the same (a hand-made start can pass anything), and a bad one must fail the run
 * with a clear error rather than crash every workflow task.
 */
function validateContinuation(field: string, raw: unknown, input: ResolvedFanoutInput): FanoutContinuation {
  const c = checkKeys(field, raw, ['cursor', 'progress']);
  const cursor = c.cursor === null ? null : checkId(`${field}.cursor`, c.cursor);
  const f = `${field}.progress`;
  const p = checkKeys(f, c.progress, [
    'operation', 'activityId', 'actorId', 'feedTypes', 'followersSeen', 'pagesRead', 'high', 'low',
    'continuedAsNew', 'done', 'failures', 'stalled', 'highServedMs', 'activityRemoved',
  ]);
  const same = <K extends 'operation' | 'activityId' | 'actorId'>(key: K): ResolvedFanoutInput[K] => {
    if (p[key] !== input[key]) throw new ValidationError(`${f}.${key}`, `must equal input.${key} (${JSON.stringify(input[key])}), got ${JSON.stringify(p[key])}`);
    return input[key];
  };
  // A run hands over only once its chunks have finished, so nothing is in flight at the start.
  const priority = (name: Priority): PriorityProgress => checkPriorityProgress(`${f}.${name}`, p[name], 0);
  if (!Array.isArray(p.failures) || p.failures.length > MAX_LISTED_FAILURES) {
    throw new ValidationError(`${f}.failures`, `must be a list of at most ${MAX_LISTED_FAILURES} chunk failures`);
  }
  const failures = p.failures.map((raw: unknown, i) => checkFailure(`${f}.failures[${i}]`, raw));
  if (p.done !== false) throw new ValidationError(`${f}.done`, 'must be false (a finished fanout does not continue)');
  if (p.feedTypes !== undefined) checkFeedTypes(`${f}.feedTypes`, p.feedTypes);
  return {
    cursor,
    progress: {
      operation: same('operation'),
      activityId: same('activityId'),
      actorId: same('actorId'),
      ...(input.feedTypes ? { feedTypes: input.feedTypes } : {}),
      followersSeen: checkCount(`${f}.followersSeen`, p.followersSeen),
      pagesRead: checkCount(`${f}.pagesRead`, p.pagesRead),
      high: priority('high'),
      low: priority('low'),
      continuedAsNew: checkCount(`${f}.continuedAsNew`, p.continuedAsNew),
      done: false,
      failures,
      stalled: p.stalled === undefined || p.stalled === null ? null : checkText(`${f}.stalled`, p.stalled, 2000),
      highServedMs: p.highServedMs === undefined || p.highServedMs === null ? null : checkCount(`${f}.highServedMs`, p.highServedMs),
      ...(p.activityRemoved === undefined ? {} : { activityRemoved: checkBoolean(`${f}.activityRemoved`, p.activityRemoved) }),
    },
  };
}

/** Checks one priority's counters; `maxInFlight` 0 for a run's start, where nothing can be in flight. */
export function checkPriorityProgress(f: string, raw: unknown, maxInFlight = Number.MAX_SAFE_INTEGER): PriorityProgress {
  const q = checkKeys(f, raw, ['followers', 'chunksDone', 'chunksFailed', 'chunksInFlight', 'entriesChanged', 'followersWritten']);
  return {
    followers: checkCount(`${f}.followers`, q.followers),
    chunksDone: checkCount(`${f}.chunksDone`, q.chunksDone),
    chunksFailed: checkCount(`${f}.chunksFailed`, q.chunksFailed),
    chunksInFlight: checkInt(`${f}.chunksInFlight`, q.chunksInFlight, 0, maxInFlight),
    entriesChanged: checkCount(`${f}.entriesChanged`, q.entriesChanged),
    ...(q.followersWritten === undefined ? {} : { followersWritten: checkCount(`${f}.followersWritten`, q.followersWritten) }),
  };
}

/** Checks one listed chunk failure. */
export function checkFailure(ff: string, raw: unknown): ChunkFailure {
  const e = checkKeys(ff, raw, ['priority', 'firstFollowerId', 'lastFollowerId', 'size', 'message']);
  if (e.priority !== 'high' && e.priority !== 'low') throw new ValidationError(`${ff}.priority`, 'must be "high" or "low"');
  return {
    priority: e.priority,
    ...(e.firstFollowerId === undefined ? {} : { firstFollowerId: checkId(`${ff}.firstFollowerId`, e.firstFollowerId) }),
    ...(e.lastFollowerId === undefined ? {} : { lastFollowerId: checkId(`${ff}.lastFollowerId`, e.lastFollowerId) }),
    size: checkInt(`${ff}.size`, e.size, 1, Limits.MAX_REMOVE_BATCH),
    message: checkText(`${ff}.message`, e.message, 2000),
  };
}

/** A fresh progress record for a fanout. */
export function initialProgress(input: ResolvedFanoutInput): FanoutProgress {
  const zero = (): PriorityProgress => ({ followers: 0, chunksDone: 0, chunksFailed: 0, chunksInFlight: 0, entriesChanged: 0, followersWritten: 0 });
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
    stalled: null,
    highServedMs: null,
  };
}
