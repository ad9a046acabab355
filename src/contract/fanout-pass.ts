/**
 * The contract of a fanout's priority passes (`fanoutPassWorkflow`): the pass's input, the
 * progress it reports to its fanout (a signal as it goes, its result at the end), their
 * validation. Pure.
 * @module
 */
import { defineSignal } from '@temporalio/workflow';
import { Limits, type Priority } from './constants';
import { ValidationError } from './errors';
import { type ChunkFailure, MAX_LISTED_FAILURES, type PriorityProgress, type RetryStatus } from './fanout-progress';
import { type ChunkExecution, checkChunkExecution, checkFailure, checkPriorityProgress } from './fanout';
import { checkBoolean, checkCount, checkEpochMs, checkFeedTypes, checkId, checkInt, checkKeys, checkText } from './validation';

/** Priority of a follower, and of a pass (an alias of `Priority`). */
export type PassPriority = Priority;

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
  /** The partition this pass writes (0-based; absent: the pass of an unpartitioned fanout). */
  partition?: number;
  /** Set while this pass retries work that keeps failing (see {@link RetryStatus}). */
  retrying?: RetryStatus | null;
}

/** A range of follower ids one partition of a pass walks: from `from` (inclusive) up to `until` (exclusive). */
export interface PartitionRange {
  /** 0-based index among the priority's partitions. */
  index: number;
  /** How many partitions the priority has. */
  count: number;
  /** First follower id of the range (inclusive); `null`: from the first follower. */
  from: string | null;
  /** Follower id the range stops before (exclusive); `null`: to the last follower. */
  until: string | null;
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
  /** How the chunks run. @default 'local' (passes started before it existed) */
  chunkExecution?: ChunkExecution;
  /** The range of follower ids this pass walks, when the fanout is partitioned. */
  partition?: PartitionRange;
  /** Set by the pass itself when it continues as new. */
  continued?: { cursor: string | null; progress: PassProgress };
}

/** Signal to the fanout: a pass's progress (after each page, and at the end). */
export const passProgressSignal = defineSignal<[PassProgress]>('passProgress');

/** Workflow type name of the priority pass. */
export const FANOUT_PASS_WORKFLOW_TYPE = 'fanoutPassWorkflow';

/** Workflow id of a fanout's pass: `<fanout id>/<priority>`, and `/<partition>` when partitioned. */
export function fanoutPassWorkflowId(fanoutWorkflowId: string, priority: PassPriority, partition?: number): string {
  return partition === undefined ? `${fanoutWorkflowId}/${priority}` : `${fanoutWorkflowId}/${priority}/${partition}`;
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
    'maxHistoryEvents', 'chunkTimeoutMs', 'fanoutWorkflowId', 'fanoutStartedAt', 'chunkExecution', 'partition', 'continued',
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
  if (input.chunkExecution !== undefined) resolved.chunkExecution = checkChunkExecution('input.chunkExecution', input.chunkExecution);
  if (input.partition !== undefined) resolved.partition = checkPartition('input.partition', input.partition);
  if (input.continued !== undefined) {
    const c = checkKeys('input.continued', input.continued, ['cursor', 'progress']);
    resolved.continued = {
      cursor: c.cursor === null ? null : checkId('input.continued.cursor', c.cursor),
      progress: validatePassProgress('input.continued.progress', c.progress, priority),
    };
  }
  return resolved;
}

/** Checks a partition's range: its index below its count, and `from` before `until`. */
function checkPartition(f: string, raw: unknown): PartitionRange {
  const r = checkKeys(f, raw, ['index', 'count', 'from', 'until']);
  const count = checkInt(`${f}.count`, r.count, 1, 64);
  const range: PartitionRange = {
    index: checkInt(`${f}.index`, r.index, 0, count - 1),
    count,
    from: r.from === null ? null : checkId(`${f}.from`, r.from),
    until: r.until === null ? null : checkId(`${f}.until`, r.until),
  };
  if (range.from !== null && range.until !== null && range.from >= range.until) throw new ValidationError(`${f}.until`, `must come after from ("${range.from}"), got "${range.until}"`);
  return range;
}

/** Checks a pass's progress (carried over continue-as-new, or received by the fanout). */
export function validatePassProgress(f: string, raw: unknown, priority?: PassPriority): PassProgress {
  const p = checkKeys(f, raw, [
    'priority', 'pagesRead', 'followersSeen', 'counters', 'continuedAsNew', 'failures', 'abortReason', 'servedMs', 'done', 'alreadyWritten', 'activityRemoved', 'partition',
    'retrying',
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
    ...(p.partition === undefined ? {} : { partition: checkInt(`${f}.partition`, p.partition, 0, 63) }),
    ...(p.retrying === undefined ? {} : { retrying: p.retrying === null ? null : checkRetryStatus(`${f}.retrying`, p.retrying) }),
  };
}

/** Checks a {@link RetryStatus}. */
export function checkRetryStatus(f: string, raw: unknown): RetryStatus {
  const r = checkKeys(f, raw, ['what', 'waiting', 'attempts', 'lastError', 'since', 'probeStartedAt']);
  return {
    what: checkText(`${f}.what`, r.what, 500),
    waiting: checkCount(`${f}.waiting`, r.waiting),
    attempts: checkCount(`${f}.attempts`, r.attempts),
    lastError: checkText(`${f}.lastError`, r.lastError, 2000),
    since: checkEpochMs(`${f}.since`, r.since),
    probeStartedAt: checkEpochMs(`${f}.probeStartedAt`, r.probeStartedAt),
  };
}
