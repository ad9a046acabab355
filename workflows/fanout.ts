/**
 * `fanoutWorkflow`: writes one activity into (or removes it from) the feeds of every follower of
 * its actor.
 *
 * It pages through the followers with `getFollowerPage` (on the workflow's own task queue), cuts
 * each page into chunks of `chunkSize` ids, and runs one `writeFeedChunk` per chunk: HIGH
 * (active) followers' chunks first and on `high-fanout`, LOW ones on `low-fanout`, at most
 * `maxInFlight` at a time. Before its history grows large it waits for the chunks in flight and
 * continues as new, carrying only the cursor and the counters, so it scales to millions of
 * followers. Its `progress` query answers at any time; it returns the final progress.
 *
 * Deterministic: no I/O, clock or randomness here, only Temporal APIs.
 * @module
 */
import {
  ActivityCancellationType,
  type ActivityOptions,
  CancellationScope,
  condition,
  continueAsNew,
  isCancellation,
  log,
  proxyActivities,
  type RetryPolicy,
  setHandler,
  sleep,
  workflowInfo,
} from '@temporalio/workflow';
import type { FanoutActivities } from '../activities/fanout';
import { ValidationError, VALIDATION_FAILURE_TYPE } from '../src/errors';
import { toTemporalFailure } from '../src/model/failures';
import { FeedType } from '../src/model/constants';
import {
  type FanoutProgress,
  type FanoutWorkflowInput,
  initialProgress,
  progressQuery,
  type ResolvedFanoutInput,
  validateFanoutInput,
} from '../src/model/fanout';

/** Continue as new past this history size in bytes even if not suggested (hard limit 50 MB). */
const MAX_HISTORY_BYTES = 10 * 1024 * 1024;
/** Failures listed in the progress; the counters still count all of them. */
const MAX_LISTED_FAILURES = 20;

// Retries: transient errors (database down, worker crash, timeout) are retried with exponential
// backoff and no attempt limit, so an outage delays a fanout but loses nothing; only bad input
// (ValidationError, non-retryable) fails a chunk for good.
const retry: RetryPolicy = {
  initialInterval: '1 second',
  backoffCoefficient: 2,
  maximumInterval: '1 minute',
  nonRetryableErrorTypes: [VALIDATION_FAILURE_TYPE],
};

const { getFollowerPage } = proxyActivities<FanoutActivities>({
  // One indexed range query plus one lookup; generous because a large page on a slow store is
  // still one query. No heartbeat: the call cannot report partial progress.
  startToCloseTimeout: '2 minutes',
  retry,
});

// One unordered batched write per chunk: seconds at most. A short timeout re-dispatches a chunk
// whose worker died quickly; the write is idempotent, so a timed-out attempt that did land is harmless.
// When the fanout is cancelled (an activity removed while it was still being added), wait for the
// chunks in flight to finish, so no write can land after the removal that follows.
const chunkOptions: ActivityOptions = {
  startToCloseTimeout: '30 seconds',
  retry,
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
};

function validate(raw: FanoutWorkflowInput): ResolvedFanoutInput {
  try {
    const input = validateFanoutInput(raw);
    const chunksPerPage = Math.ceil(input.pageSize / input.chunkSize);
    if (chunksPerPage > 1000) {
      throw new ValidationError('input.pageSize', `divided by chunkSize must give at most 1000 chunks per page, got ${chunksPerPage}`);
    }
    return input;
  } catch (err) {
    throw toTemporalFailure(err);
  }
}

/**
 * Checked once per page. A page adds at most about 4 events per chunk and `validate` caps a page
 * at 1,000 chunks, so history stays well below the 51,200-event limit between checks.
 */
function shouldContinueAsNew(maxHistoryEvents: number): boolean {
  const info = workflowInfo();
  return info.continueAsNewSuggested || info.historyLength > maxHistoryEvents || info.historySize > MAX_HISTORY_BYTES;
}

/** Fans one activity out to (or removes it from) the feeds of its actor's followers. */
export async function fanoutWorkflow(rawInput: FanoutWorkflowInput): Promise<FanoutProgress> {
  const input = validate(rawInput);
  const progress: FanoutProgress = input.continued?.progress ?? initialProgress(input);
  let cursor: string | null = input.continued?.cursor ?? null;
  setHandler(progressQuery, () => progress);

  const writesByPriority = {
    high: proxyActivities<FanoutActivities>({ ...chunkOptions, taskQueue: input.highTaskQueue }),
    low: proxyActivities<FanoutActivities>({ ...chunkOptions, taskQueue: input.lowTaskQueue }),
  };
  const inFlight = () => progress.high.chunksInFlight + progress.low.chunksInFlight;
  const startChunk = (priority: 'high' | 'low', followerIds: string[]): void => {
    const counters = progress[priority];
    const writes = writesByPriority[priority];
    counters.chunksInFlight++;
    writes
      .writeFeedChunk({
        operation: input.operation,
        ...(input.feedTypes ? { feedTypes: input.feedTypes } : {}),
        activityId: input.activityId,
        actorId: input.actorId,
        activityTime: input.activityTime,
        followerIds,
      })
      // One `then` with both handlers, no `finally`: every promise made in a workflow costs a
      // captured stack trace (the SDK's stack-trace query), and a `finally` makes three.
      .then(
        (res) => {
          counters.chunksInFlight--;
          counters.chunksDone++;
          counters.entriesChanged += res.changed;
        },
        (err: Error) => {
          counters.chunksInFlight--;
          // Cancelled before it started (the fanout is being cancelled): not a failure.
          if (isCancellation(err)) return;
          counters.chunksFailed++;
          const message = err.cause instanceof Error ? err.cause.message : err.message;
          if (progress.failures.length < MAX_LISTED_FAILURES) {
            progress.failures.push({ priority, firstFollowerId: followerIds[0]!, size: followerIds.length, message });
          }
          log.error('fanout chunk failed for good', { activityId: input.activityId, priority, firstFollowerId: followerIds[0], message });
        },
      );
  };

  if (input.publishAt !== undefined && !input.continued) {
    // Scheduled post: a durable timer, so the wait survives worker restarts and deploys.
    const wait = input.publishAt - Date.now();
    if (wait > 0) await sleep(wait);
    // The client leaves the actor's own feed to us for scheduled posts: publish it now.
    await writesByPriority.high.writeFeedChunk({
      operation: input.operation,
      feedTypes: [FeedType.USER],
      activityId: input.activityId,
      actorId: input.actorId,
      activityTime: input.activityTime,
      followerIds: [input.actorId],
    });
  }

  const readPage = (from: string | null) => {
    const promise = getFollowerPage({ userId: input.actorId, cursor: from, limit: input.pageSize });
    // Awaited later; mark it handled so a failure while chunks are dispatched is not "unhandled".
    promise.catch(() => undefined);
    return promise;
  };
  try {
    return await walk();
  } catch (err) {
    if (isCancellation(err)) {
      // Cancelled (the activity is being removed): the chunks in flight were asked to cancel but
      // do not heartbeat, so they run to the end. Wait for them before closing, so the caller
      // (FeedClient.removeActivity) knows no write of this run can land after the removal.
      await CancellationScope.nonCancellable(() => condition(() => inFlight() === 0));
      log.info('fanout cancelled; chunks in flight finished', { activityId: input.activityId, followers: progress.followersSeen });
    }
    throw err;
  }

  async function walk(): Promise<FanoutProgress> {
    let nextPage = readPage(cursor);
    for (;;) {
      const page = await nextPage;
      progress.pagesRead++;
      progress.followersSeen += page.high.length + page.low.length;
      progress.high.followers += page.high.length;
      progress.low.followers += page.low.length;
      cursor = page.nextCursor;
      const handOver = cursor !== null && shouldContinueAsNew(input.maxHistoryEvents);
      // Read the next page while this page's chunks are written (not when handing over to a new run).
      if (cursor !== null && !handOver) nextPage = readPage(cursor);
      // HIGH chunks go first so active users see the activity first.
      for (const [priority, ids] of [['high', page.high], ['low', page.low]] as const) {
        for (let i = 0; i < ids.length; i += input.chunkSize) {
          // Wait only when full: `condition` makes promises even when already true.
          if (inFlight() >= input.maxInFlight) await condition(() => inFlight() < input.maxInFlight);
          startChunk(priority, ids.slice(i, i + input.chunkSize));
        }
      }
      if (cursor === null) break;
      if (handOver) {
        // Pending activities cannot be carried over: let them finish, then hand over the cursor.
        await condition(() => inFlight() === 0);
        progress.continuedAsNew++;
        const { continued: _previous, ...original } = rawInput;
        return continueAsNew<typeof fanoutWorkflow>({ ...original, continued: { cursor, progress } });
      }
    }

    await condition(() => inFlight() === 0);
    progress.done = true;
    log.info('fanout finished', {
      activityId: input.activityId,
      operation: input.operation,
      followers: progress.followersSeen,
      changed: progress.high.entriesChanged + progress.low.entriesChanged,
      failedChunks: progress.high.chunksFailed + progress.low.chunksFailed,
    });
    return progress;
  }
}
