/**
 * What the fanout and its priority passes share: how their chunk writes retry, how a chunk is
 * described and its failure read, and when a run hands over to a new one. Workflow code
 * (deterministic: Temporal APIs only).
 * @module
 */
import {
  ActivityCancellationType,
  ApplicationFailure,
  type LocalActivityOptions,
  log,
  proxyLocalActivities,
  type RetryPolicy,
  workflowInfo,
} from '@temporalio/workflow';
import type { FanoutActivities } from '../../activities/fanout';
import { backoffRetry } from '../retry';
import { type ChunkFailure, MAX_LISTED_FAILURES } from '../../src/contract/fanout';
import type { Priority } from '../../src/contract/constants';
import { ACTIVITY_REMOVED_FAILURE_TYPE, VALIDATION_FAILURE_TYPE } from '../../src/contract/errors';

/** Continue as new past this history size in bytes even if not suggested (hard limit 50 MB). */
const MAX_HISTORY_BYTES = 10 * 1024 * 1024;

/** Retries of feed reads and writes (see `backoffRetry`): only bad input fails a chunk for good. */
export const CHUNK_RETRY: RetryPolicy = backoffRetry();

/**
 * Attempts a pass gives a chunk write or page read (in the worker for a local activity, on the
 * server for an activity task) before it takes the retries over itself: a second after the first
 * failure, then the pass's own probe (see `fanoutPassWorkflow`), which it shows and whose history
 * it keeps small. Runs started before the probe retried in the worker without end.
 */
export const PASS_ATTEMPTS = 2;

/** The pass's retries of chunk writes and page reads: {@link PASS_ATTEMPTS}, then the pass's probe. */
export const PASS_CHUNK_RETRY: RetryPolicy = backoffRetry({ maximumAttempts: PASS_ATTEMPTS });

/**
 * Whether a chunk write or page read that failed may succeed when tried again (the store
 * unreachable, a timeout, a crash), as opposed to failing for good (bad input, a non-retryable
 * failure, the activity removed).
 */
export function isRetryableFailure(err: Error): boolean {
  const cause = applicationFailureOf(err);
  if (!cause) return true;
  return !cause.nonRetryable && cause.type !== VALIDATION_FAILURE_TYPE && cause.type !== ACTIVITY_REMOVED_FAILURE_TYPE;
}

/**
 * Whether the run should continue as new: the server suggests it, or the history passed
 * `maxHistoryEvents` events or 10 MB. Checked once per page: a page adds at most about 4 events
 * per chunk and validation caps a page at 1,000 chunks, so history stays well below the
 * 51,200-event limit between checks.
 */
export function shouldContinueAsNew(maxHistoryEvents: number): boolean {
  const info = workflowInfo();
  return info.continueAsNewSuggested || info.historyLength > maxHistoryEvents || info.historySize > MAX_HISTORY_BYTES;
}

/** What the Web UI and `temporal workflow describe` show for a chunk: priority, size, follower range, page. */
export function chunkSummary(priority: Priority, followerIds: string[], page: number): string {
  return `${priority.toUpperCase()} ${followerIds.length} followers ${followerIds[0]} … ${followerIds[followerIds.length - 1]} (page ${page})`;
}

/**
 * Reads a chunk's failure for good: its message, and whether every other chunk would fail the
 * same way (bad input in a field other than the follower ids), so the fanout should stop.
 */
export function chunkFailure(err: Error): { message: string; sameForAll: boolean } {
  const cause = applicationFailureOf(err);
  const message = cause?.message ?? (err.cause instanceof Error ? err.cause.message : err.message);
  const field = cause?.type === VALIDATION_FAILURE_TYPE ? cause.details?.[0] : undefined;
  return { message, sameForAll: typeof field === 'string' && !field.startsWith('input.followerIds') };
}

/**
 * Options of a chunk written as a local activity. On cancellation the run waits for the write to
 * stop (the activity checks between feed types): with the default, the local activity resolves as
 * cancelled at once while its function goes on, and can write after the run has closed, so a
 * removal that follows the cancel would miss its entries (seen with SDK 1.24 in the cancel test).
 */
export function localChunkOptions(timeoutMs: number, summary: string, retry: RetryPolicy = CHUNK_RETRY): LocalActivityOptions {
  return {
    startToCloseTimeout: timeoutMs,
    retry,
    summary,
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  };
}

/** Whether a chunk was refused because its activity was removed while the fanout ran (not a failure). */
export function isActivityRemoved(err: Error): boolean {
  return applicationFailureOf(err)?.type === ACTIVITY_REMOVED_FAILURE_TYPE;
}

/**
 * The `ApplicationFailure` an activity threw: the error's cause for an activity task (an
 * `ActivityFailure` wraps it), the error itself for a local activity that failed for good.
 */
function applicationFailureOf(err: Error): ApplicationFailure | undefined {
  if (err instanceof ApplicationFailure) return err;
  return err.cause instanceof ApplicationFailure ? err.cause : undefined;
}

/**
 * Keeps a chunk (or removal batch, with no follower ids) that failed for good among the first
 * `MAX_LISTED_FAILURES` of `failures` and logs it. Returns why dispatching should stop when every
 * other chunk would fail the same way (a removal batch, or a bad field other than the follower
 * ids), else null.
 */
export function noteChunkFailure(failures: ChunkFailure[], activityId: string, priority: Priority, err: Error, size: number, followerIds?: readonly string[]): string | null {
  const { message, sameForAll } = chunkFailure(err);
  const firstFollowerId = followerIds?.[0];
  const lastFollowerId = followerIds?.[followerIds.length - 1];
  if (failures.length < MAX_LISTED_FAILURES) {
    failures.push({ priority, ...(firstFollowerId === undefined ? {} : { firstFollowerId, lastFollowerId: lastFollowerId! }), size, message });
  }
  log.error('fanout chunk failed for good', { activityId, priority, firstFollowerId, lastFollowerId, message });
  return firstFollowerId === undefined || sameForAll ? `every chunk would fail the same way (${message})` : null;
}

/** A listed failure in words: priority, size and follower range, then the error. */
export function describeFailure(f: ChunkFailure): string {
  if (f.firstFollowerId === undefined) return `[removal batch] ${f.message}`;
  const range = f.lastFollowerId && f.lastFollowerId !== f.firstFollowerId ? `${f.firstFollowerId} … ${f.lastFollowerId}` : `from ${f.firstFollowerId}`;
  return `[${f.priority.toUpperCase()} chunk of ${f.size} followers, ${range}] ${f.message}`;
}

/**
 * A promise started now and awaited later (a page read ahead): its rejection is marked handled,
 * since one that goes unhandled while the run does other work (or is cancelled) fails the
 * workflow task, again at every retry. The returned promise still rejects where it is awaited.
 */
export function startedAhead<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => undefined);
  return promise;
}

/**
 * Records a chunk that failed for good as a marker of its own whose summary says so (`FAILED: HIGH
 * 100 followers a … b (page 3): <error>`): the failed chunk's own marker carries the summary it was
 * scheduled with, which reads like a successful one in the Web UI. A local activity that only logs.
 * Resolves once recorded (or the run is cancelled); never rejects.
 */
export function recordChunkFailureMarker(priority: Priority, followerIds: string[], page: number, err: Error): Promise<void> {
  const { message } = chunkFailure(err);
  const summary = `FAILED: ${chunkSummary(priority, followerIds, page)}: ${message.length > 300 ? `${message.slice(0, 300)}…` : message}`;
  const { chunkFailed } = proxyLocalActivities<FanoutActivities>({ startToCloseTimeout: '10 seconds', retry: CHUNK_RETRY, summary });
  return chunkFailed({ priority, firstFollowerId: followerIds[0] ?? '', lastFollowerId: followerIds[followerIds.length - 1] ?? '', size: followerIds.length, message }).then(
    () => undefined,
    () => undefined,
  );
}
