/**
 * The fanout workflow's contract: its JSON input, its progress/summary shape and its query.
 * Pure: shared by the workflow, the activities and the client.
 *
 * An app in another language starts a fanout with workflow type `fanoutWorkflow` on task queue
 * `fanout` and one JSON argument shaped like {@link FanoutWorkflowInput}, e.g.
 * `{"operation":"add","activityId":"a1","actorId":"u1","activityTime":1763900000000}`.
 * @module
 */
import { defineQuery, defineSignal } from '@temporalio/workflow';
import { FanoutOperation, Limits, TaskQueue } from './constants';
import { checkBoolean, checkCount, checkEpochMs, checkFeedTypes, checkId, checkInt, checkKeys, checkTaskQueue, checkText } from './validation';
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
   * How long one chunk write may take before it is abandoned and retried (ms, 1,000..600,000).
   * Chunks run as local activities (see `chunksAsActivities`). @default 60000
   */
  chunkTimeoutMs?: number;
  /**
   * `add` only. `false` (the default): a fanout of one page writes its chunks itself, HIGH first,
   * and a larger one runs a HIGH pass then a LOW pass (`fanoutPassWorkflow`, on `highTaskQueue`
   * and `lowTaskQueue`), chunks as local activities; every active follower comes before any other.
   * `true`: the shape before the passes: the fanout walks the pages itself and runs each chunk as
   * an activity task on the priority's queue, HIGH before LOW within each page only. It costs
   * about twice the CPU per entry (see the README's benchmark); use it where the chunk queues'
   * workers cannot run workflows. @default false
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
] as const satisfies ReadonlyArray<keyof FanoutOptions>;

/**
 * Counters for one priority class. A removal's batches count as LOW chunks (they run on the LOW
 * queue): `chunksDone` batches, `entriesChanged` entries deleted.
 */
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
  /**
   * Followers of this priority whose chunk finished: their feeds hold the entry (an add). Unlike
   * `entriesChanged`, counts each follower once whatever the feed types, and counts entries an
   * earlier attempt had written. Absent in progress recorded before it existed.
   */
  followersWritten?: number;
}

/** A chunk (or removal batch) that failed for good. Only the first few are kept, to keep history small. */
export interface ChunkFailure {
  priority: 'high' | 'low';
  /** First follower id of the chunk, to find it again (absent for a removal batch). */
  firstFollowerId?: string;
  /** Last follower id of the chunk (absent for a removal batch, and in failures recorded before it existed). */
  lastFollowerId?: string;
  /** Followers in the chunk, or entries asked for by the removal batch. */
  size: number;
  message: string;
}

/** What the `progress` query answers, and what the workflow returns when done. */
export interface FanoutProgress {
  operation: FanoutOperation;
  activityId: string;
  actorId: string;
  /**
   * Feed types written: as given, or the worker's configured fanout feed types, settled when the
   * fanout starts (absent until then).
   */
  feedTypes?: string[];
  /** Followers seen so far, all priorities (a removal reads none: it sweeps by activity id). */
  followersSeen: number;
  /** Follower pages read. */
  pagesRead: number;
  high: PriorityProgress;
  low: PriorityProgress;
  /** How many times this fanout continued as new. */
  continuedAsNew: number;
  /** True once every chunk has finished (done or failed; with failures the run ends *Failed*). */
  done: boolean;
  /** The first failures (at most {@link MAX_LISTED_FAILURES}). */
  failures: ChunkFailure[];
  /** Why the fanout is flagged as stalled (see `stalledAfterMs`); `null` while it makes progress. */
  stalled: string | null;
  /**
   * Milliseconds from the fanout's start until its latest HIGH chunk was written: once done, the
   * time until every active follower had the entry. `null` before the first HIGH chunk.
   */
  highServedMs: number | null;
  /**
   * True when the activity was removed while this add fanout ran: its chunks stopped writing
   * (they check before each write), and the removal cancels the run.
   */
  activityRemoved?: boolean;
}

/** Chunk failures listed in the progress; the counters still count all of them. */
export const MAX_LISTED_FAILURES = 20;

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
  };
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
  const priority = (name: 'high' | 'low'): PriorityProgress => checkPriorityProgress(`${f}.${name}`, p[name], 0);
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
function checkPriorityProgress(f: string, raw: unknown, maxInFlight = Number.MAX_SAFE_INTEGER): PriorityProgress {
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
function checkFailure(ff: string, raw: unknown): ChunkFailure {
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

// --- The priority passes -----------------------------------------------------------------------

/** Priority of a follower, and of a pass. */
export type PassPriority = 'high' | 'low';

/** What a pass has done so far: sent to its fanout as a signal after each page, and returned. */
export interface PassProgress {
  priority: PassPriority;
  /** Follower pages read by this pass. */
  pagesRead: number;
  /** Followers of both priorities on the pages read (the HIGH pass's count is the fanout's `followersSeen`). */
  followersSeen: number;
  /** This priority's counters. */
  counters: PriorityProgress;
  /** Times this pass continued as new. */
  continuedAsNew: number;
  /** The first chunks that failed for good (at most {@link MAX_LISTED_FAILURES}). */
  failures: ChunkFailure[];
  /** Set when a failure stopped the dispatch (every chunk would fail the same way). */
  abortReason: string | null;
  /** Milliseconds from the fanout's start until this pass's latest chunk was written; `null` before. */
  servedMs: number | null;
  /** True once every chunk of this pass has finished. */
  done: boolean;
  /**
   * LOW pass: followers left out because their entry was already written (active only since the
   * fanout began: the HIGH pass wrote them). They count in `followersSeen`, not in `counters.followers`.
   */
  alreadyWritten?: number;
  /** True when the activity was removed while this pass ran: it stopped dispatching (see `FanoutProgress.activityRemoved`). */
  activityRemoved?: boolean;
}

/**
 * Input of `fanoutPassWorkflow`: one priority's pass of an `add` fanout, started by the fanout on
 * the priority's task queue. Small and primitive like the fanout's: ids, options, a cursor.
 */
export interface FanoutPassInput {
  priority: PassPriority;
  activityId: string;
  actorId: string;
  activityTime: number;
  /** The settled feed types. */
  feedTypes: string[];
  pageSize: number;
  chunkSize: number;
  maxInFlight: number;
  maxHistoryEvents: number;
  chunkTimeoutMs: number;
  /** The fanout (parent) to send progress to. */
  fanoutWorkflowId: string;
  /** Epoch ms when the fanout started (its chain's start): what `servedMs` counts from. */
  fanoutStartedAt: number;
  /** Set by the pass itself when it continues as new. */
  continued?: { cursor: string | null; progress: PassProgress };
}

/** Signal to the fanout: a pass's progress (after each page, and at the end). */
export const passProgressSignal = defineSignal<[PassProgress]>('passProgress');

/** Workflow type name of the priority pass. */
export const FANOUT_PASS_WORKFLOW_TYPE = 'fanoutPassWorkflow';

/** Workflow id of a fanout's pass: `<fanout id>/<priority>`. */
export function fanoutPassWorkflowId(fanoutWorkflowId: string, priority: PassPriority): string {
  return `${fanoutWorkflowId}/${priority}`;
}

/** A pass's progress before it has read anything. */
export function initialPassProgress(priority: PassPriority): PassProgress {
  return {
    priority,
    pagesRead: 0,
    followersSeen: 0,
    counters: { followers: 0, chunksDone: 0, chunksFailed: 0, chunksInFlight: 0, entriesChanged: 0, followersWritten: 0 },
    continuedAsNew: 0,
    failures: [],
    abortReason: null,
    servedMs: null,
    done: false,
  };
}

/** Checks a pass's input (from its fanout, or from a hand-made start). @throws ValidationError naming the field. */
export function validatePassInput(raw: unknown): FanoutPassInput {
  const input = checkKeys('input', raw, [
    'priority', 'activityId', 'actorId', 'activityTime', 'feedTypes', 'pageSize', 'chunkSize', 'maxInFlight',
    'maxHistoryEvents', 'chunkTimeoutMs', 'fanoutWorkflowId', 'fanoutStartedAt', 'continued',
  ]);
  if (input.priority !== 'high' && input.priority !== 'low') throw new ValidationError('input.priority', 'must be "high" or "low"');
  const priority = input.priority;
  const resolved: FanoutPassInput = {
    priority,
    activityId: checkId('input.activityId', input.activityId),
    actorId: checkId('input.actorId', input.actorId),
    activityTime: checkEpochMs('input.activityTime', input.activityTime),
    feedTypes: checkFeedTypes('input.feedTypes', input.feedTypes),
    pageSize: checkInt('input.pageSize', input.pageSize, 1, Limits.MAX_PAGE_SIZE),
    chunkSize: checkInt('input.chunkSize', input.chunkSize, 1, Limits.MAX_CHUNK_SIZE),
    maxInFlight: checkInt('input.maxInFlight', input.maxInFlight, 1, Limits.MAX_IN_FLIGHT),
    maxHistoryEvents: checkInt('input.maxHistoryEvents', input.maxHistoryEvents, 100, 40_000),
    chunkTimeoutMs: checkInt('input.chunkTimeoutMs', input.chunkTimeoutMs, 1000, 600_000),
    fanoutWorkflowId: checkText('input.fanoutWorkflowId', input.fanoutWorkflowId, 400),
    fanoutStartedAt: checkEpochMs('input.fanoutStartedAt', input.fanoutStartedAt),
  };
  if (input.continued !== undefined) {
    const c = checkKeys('input.continued', input.continued, ['cursor', 'progress']);
    resolved.continued = {
      cursor: c.cursor === null ? null : checkId('input.continued.cursor', c.cursor),
      progress: validatePassProgress('input.continued.progress', c.progress, priority),
    };
  }
  return resolved;
}

/** Checks a pass's progress (carried over continue-as-new, or received by the fanout). */
export function validatePassProgress(f: string, raw: unknown, priority?: PassPriority): PassProgress {
  const p = checkKeys(f, raw, [
    'priority', 'pagesRead', 'followersSeen', 'counters', 'continuedAsNew', 'failures', 'abortReason', 'servedMs', 'done', 'alreadyWritten', 'activityRemoved',
  ]);
  if (p.priority !== 'high' && p.priority !== 'low') throw new ValidationError(`${f}.priority`, 'must be "high" or "low"');
  if (priority !== undefined && p.priority !== priority) throw new ValidationError(`${f}.priority`, `must be the pass's priority "${priority}"`);
  if (!Array.isArray(p.failures) || p.failures.length > MAX_LISTED_FAILURES) {
    throw new ValidationError(`${f}.failures`, `must be a list of at most ${MAX_LISTED_FAILURES} chunk failures`);
  }
  if (typeof p.done !== 'boolean') throw new ValidationError(`${f}.done`, 'must be true or false');
  return {
    priority: p.priority,
    pagesRead: checkCount(`${f}.pagesRead`, p.pagesRead),
    followersSeen: checkCount(`${f}.followersSeen`, p.followersSeen),
    counters: checkPriorityProgress(`${f}.counters`, p.counters),
    continuedAsNew: checkCount(`${f}.continuedAsNew`, p.continuedAsNew),
    failures: p.failures.map((e: unknown, i) => checkFailure(`${f}.failures[${i}]`, e)),
    abortReason: p.abortReason === null ? null : checkText(`${f}.abortReason`, p.abortReason, 2000),
    servedMs: p.servedMs === null ? null : checkCount(`${f}.servedMs`, p.servedMs),
    done: p.done,
    ...(p.alreadyWritten === undefined ? {} : { alreadyWritten: checkCount(`${f}.alreadyWritten`, p.alreadyWritten) }),
    ...(p.activityRemoved === undefined ? {} : { activityRemoved: checkBoolean(`${f}.activityRemoved`, p.activityRemoved) }),
  };
}
