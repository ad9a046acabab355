/**
 * One chunk's write, as the fanout and its passes both start it: its input, where it runs (a
 * local activity in this worker, or an activity task on a priority's queue), and what its end does
 * to the priority's counters. Workflow code (deterministic: Temporal APIs only).
 * @module
 */
import { ActivityCancellationType, type ActivityOptions, isCancellation, proxyActivities, proxyLocalActivities, type RetryPolicy } from '@temporalio/workflow';
import type { FanoutActivities, WriteFeedChunkInput, WriteFeedChunkResult } from '../../activities/fanout';
import { HEARTBEAT_TIMEOUT_MS, type Priority } from '../../src/contract/constants';
import type { PriorityProgress } from '../../src/contract/fanout';
import { CHUNK_RETRY, chunkSummary, isActivityRemoved, localChunkOptions } from './policies';

/**
 * Where a chunk is written: in this worker as a local activity, or as an activity task on a queue;
 * `retry` replaces the default policy (retries without end, see `CHUNK_RETRY`).
 */
export type ChunkPlace = ({ local: true; timeoutMs: number } | { taskQueue: string }) & { retry?: RetryPolicy };

/** What every chunk of one fanout writes: all of `WriteFeedChunkInput` but the follower ids. */
export type ChunkBase = Omit<WriteFeedChunkInput, 'followerIds'>;

/**
 * Options of a chunk written as an activity task. On cancellation (an activity removed while it
 * was still being added) the run waits for the chunk to stop (it checks between feed types), so
 * no write can land after the removal that follows. The activity heartbeats: a worker killed
 * mid-write is noticed after the heartbeat timeout, and a slow store never times a live one out.
 */
const CHUNK_ACTIVITY_OPTIONS: ActivityOptions = {
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: HEARTBEAT_TIMEOUT_MS,
  retry: CHUNK_RETRY,
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
};

/** The chunk activities at `place`, with `summary` shown for each in the Web UI. */
export function chunkActivities(place: ChunkPlace, summary: string): FanoutActivities {
  return 'local' in place
    ? proxyLocalActivities<FanoutActivities>(localChunkOptions(place.timeoutMs, summary, place.retry))
    : proxyActivities<FanoutActivities>({ ...CHUNK_ACTIVITY_OPTIONS, ...(place.retry ? { retry: place.retry } : {}), taskQueue: place.taskQueue, summary });
}

/** What a chunk's end means to the one who started it (the counters are updated before). */
export interface ChunkEvents {
  /** Written: `chunksDone`, `entriesChanged` and `followersWritten` count it. */
  written(res: WriteFeedChunkResult): void;
  /** Ended without writing: cancelled (the run is being cancelled), or the activity is being removed. */
  stopped(activityRemoved: boolean): void;
  /** Failed for good (`chunksFailed` counts it). */
  failed(err: Error): void;
  /**
   * Failed, but a retry may cure it: returns true when the caller takes the chunk to write it again
   * later (it then counts neither as failed nor in flight); otherwise it fails for good.
   */
  retryLater?(err: Error): boolean;
}

/**
 * Starts writing `followerIds` (one chunk of `priority`, read on page `page`) at `place`, counting
 * it in flight in `counters` until it ends; then updates the counters and tells `on`.
 *
 * A local activity's outcome reaches a replay at another moment than it reached the first run: what
 * `on` does must issue no command (no activity, no signal, no stop of the dispatch). The caller
 * acts on the outcomes where all chunks dispatched before have ended (after a flush or a drain).
 */
export function startChunk(
  place: ChunkPlace,
  base: ChunkBase,
  chunk: { priority: Priority; followerIds: string[]; page: number },
  counters: PriorityProgress,
  on: ChunkEvents,
): void {
  const { priority, followerIds, page } = chunk;
  counters.chunksInFlight++;
  chunkActivities(place, chunkSummary(priority, followerIds, page))
    .writeFeedChunk({ ...base, followerIds })
    // One `then` with both handlers, no `finally`: every promise made in a workflow costs a
    // captured stack trace (the SDK's stack-trace query), and a `finally` makes three.
    .then(
      (res) => {
        counters.chunksInFlight--;
        counters.chunksDone++;
        counters.entriesChanged += res.changed;
        counters.followersWritten = (counters.followersWritten ?? 0) + followerIds.length;
        on.written(res);
      },
      (err: Error) => {
        if (isCancellation(err) || isActivityRemoved(err)) {
          counters.chunksInFlight--;
          on.stopped(!isCancellation(err));
          return;
        }
        counters.chunksInFlight--;
        if (on.retryLater?.(err)) return;
        counters.chunksFailed++;
        on.failed(err);
      },
    );
}
