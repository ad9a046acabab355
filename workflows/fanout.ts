/**
 * `fanoutWorkflow`: writes one activity into (or removes it from) the feeds of every follower of
 * its actor.
 *
 * It settles the feed types first (a local activity that checks them against the worker's
 * configuration, so a misspelled one fails the run before anything is written). To add, it runs
 * two priority passes one after the other (`fanoutPassWorkflow`, a child on each priority's queue):
 * the HIGH pass writes every active follower's feed on `high-fanout`, then the LOW pass the others'
 * on `low-fanout`, so active followers come first across the whole fanout, not page by page. Each
 * pass pages through the followers, cuts its priority's ids into chunks of `chunkSize` and writes
 * them as local activities, at most `maxInFlight` at a time, and reports to this run after every
 * page. To remove, it sweeps the activity's entries out by activity id, in batches on the LOW
 * queue. Runs started before the passes existed go on page by page (`PRIORITY_PASSES_PATCH`).
 * Before a history grows large the run waits for the work in flight and continues as new, carrying
 * only the cursor and the counters, so it scales to millions of followers.
 *
 * Failures are visible: chunks that fail for good make the run end *Failed* (`FanoutFailed`, with
 * counts and the first errors) once the others are done; a fanout whose chunks stop finishing for
 * `stalledAfterMs` (no worker on a queue, store down) is flagged `FanoutStalled` in the list view
 * and in its current details until they move again. Its `progress` query answers at any time.
 *
 * Deterministic: no I/O, clock or randomness here, only Temporal APIs.
 * @module
 */
import {
  ActivityCancellationType,
  type ActivityOptions,
  ApplicationFailure,
  CancellationScope,
  ChildWorkflowCancellationType,
  condition,
  continueAsNew,
  executeChild,
  isCancellation,
  log,
  metricMeter,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setCurrentDetails,
  setHandler,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import type { FanoutActivities } from '../activities/fanout';
import { ACTIVITY_REMOVED_FAILURE_TYPE, FANOUT_FAILED_FAILURE_TYPE, ValidationError } from '../src/errors';
import { validateOrFail } from '../src/model/failures';
import { FanoutOperation, FeedType, HEARTBEAT_TIMEOUT_MS, SearchAttribute } from '../src/model/constants';
import { Metric } from '../src/model/metrics';
import {
  type FanoutProgress,
  fanoutPassWorkflowId,
  type FanoutWorkflowInput,
  initialProgress,
  MAX_LISTED_FAILURES,
  type PassProgress,
  type PriorityProgress,
  passProgressSignal,
  progressQuery,
  type ResolvedFanoutInput,
  validateFanoutInput,
  validatePassProgress,
} from '../src/model/fanout';
import { fanoutPassWorkflow } from './fanout-pass';
import {
  CHUNK_RETRY,
  chunkSummary,
  describeFailure,
  isActivityRemoved,
  localChunkOptions,
  noteChunkFailure,
  recordChunkFailureMarker,
  shouldContinueAsNew,
  startedAhead,
} from './policies';

/**
 * The patch that made fanouts write by priority passes (`fanoutPassWorkflow`): runs started
 * before it go on page by page when they replay. Kept while such runs may exist.
 */
export const PRIORITY_PASSES_PATCH = 'fanout-priority-passes';

/**
 * The patch that records a `FAILED:` marker for each chunk of this run that failed for good (see
 * `recordChunkFailureMarker`). Asked only when a chunk fails, so runs without failures carry no marker.
 */
export const CHUNK_FAILURE_MARKER_PATCH = 'chunk-failure-marker';

/**
 * How long a fanout whose activity was removed while it ran waits for the removal to cancel it
 * (the client marks the activity, then cancels at once) before it fails, saying so.
 */
const REMOVAL_CANCEL_WAIT_MS = 60_000;

const retry = CHUNK_RETRY;

// Both activities heartbeat while they run (activities/heartbeat.ts): a worker killed mid-call is
// noticed after the heartbeat timeout (seconds), and a live one on a slow store is never timed
// out while it still works. The start-to-close timeouts only bound a call that hangs outright.
const { getFollowerPage } = proxyActivities<FanoutActivities>({
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: HEARTBEAT_TIMEOUT_MS,
  retry,
});

// Checked against the workflow worker's configuration, in-process: no task queue round trip.
const { resolveFanoutFeedTypes } = proxyLocalActivities<FanoutActivities>({ startToCloseTimeout: '10 seconds', retry });

// The first page of an add, read in this worker: one marker in history, no activity task.
const { getFollowerPage: readPageHere } = proxyLocalActivities<FanoutActivities>({ startToCloseTimeout: '5 minutes', retry });

// One batched write per feed type per chunk. When the fanout is cancelled (an activity removed
// while it was still being added), wait for the chunks in flight to stop (they check between
// feed types), so no write can land after the removal that follows.
const chunkOptions: ActivityOptions = {
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: HEARTBEAT_TIMEOUT_MS,
  retry,
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
};

const stalledKey = defineSearchAttributeKey(SearchAttribute.STALLED, SearchAttributeType.BOOL);
const actorKey = defineSearchAttributeKey(SearchAttribute.ACTOR, SearchAttributeType.KEYWORD);

/** A count with thousands separators, as the Web UI shows it. */
function num(x: number): string {
  return String(x).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/**
 * One priority's line of the current details. Every count says what it counts at that moment:
 * followers whose chunk finished, of those found so far (and of all there are, once known).
 */
function priorityLine(name: 'HIGH' | 'LOW', c: PriorityProgress, done: boolean, passRunning: boolean, expected?: number): string {
  const chunks = `${c.chunksInFlight} chunks in flight, ${c.chunksDone} done, ${c.chunksFailed} failed`;
  if (!done && c.followers === 0) {
    const toWrite = expected === undefined ? '' : ` (${num(expected)} followers to write)`;
    return `${name}: ${passRunning ? 'pass started, nothing reported yet' : 'none found yet'}${toWrite}`;
  }
  const written = c.followersWritten ?? c.entriesChanged;
  if (done) return `${name}: ${num(written)} of ${num(c.followers)} followers written; ${chunks}`;
  const all = expected === undefined ? '' : ` (${num(expected)} in all)`;
  return `${name}: ${num(written)} of the ${num(c.followers)} followers found so far written${all}; ${chunks}`;
}

/** Validates the input (a bad one, even a bizarre one, fails the run, never the workflow task). */
function validate(raw: FanoutWorkflowInput): ResolvedFanoutInput {
  return validateOrFail((value) => {
    const input = validateFanoutInput(value);
    const chunksPerPage = Math.ceil(input.pageSize / input.chunkSize);
    if (chunksPerPage > 1000) {
      throw new ValidationError('input.pageSize', `divided by chunkSize must give at most 1000 chunks per page, got ${chunksPerPage}`);
    }
    return input;
  }, raw);
}

/** The failure a fanout ends with when chunks failed for good: counts, then the first errors. */
function fanoutFailure(progress: FanoutProgress, abortReason: string | null): ApplicationFailure {
  const failedChunks = progress.high.chunksFailed + progress.low.chunksFailed;
  const chunks = failedChunks + progress.high.chunksDone + progress.low.chunksDone;
  const failedFollowers = progress.failures.reduce((n, f) => n + (f.firstFollowerId === undefined ? 0 : f.size), 0);
  const first = progress.failures.slice(0, 3).map(describeFailure);
  const listed = progress.failures.length < failedChunks ? `the first ${progress.failures.length} of them hold ${failedFollowers}` : `${failedFollowers}`;
  const message =
    `${progress.operation} fanout of activity ${progress.activityId} failed: ${failedChunks} of ${chunks} chunks failed for good ` +
    `(${listed} of ${progress.followersSeen} followers seen)` +
    (abortReason ? `; stopped early: ${abortReason}` : '') +
    `. First errors: ${first.join(' | ')}`;
  return ApplicationFailure.create({ message, type: FANOUT_FAILED_FAILURE_TYPE, nonRetryable: true, details: [progress] });
}

/** Fans one activity out to (or removes it from) the feeds of its actor's followers. */
export async function fanoutWorkflow(rawInput: FanoutWorkflowInput): Promise<FanoutProgress> {
  const input = validate(rawInput);
  const progress: FanoutProgress = input.continued?.progress ?? initialProgress(input);
  let cursor: string | null = input.continued?.cursor ?? null;
  setHandler(progressQuery, () => progress);

  // --- Stall watch -------------------------------------------------------------------------------
  // Workflow time (deterministic) when each priority's chunks last moved: a chunk finished, or
  // chunks started waiting. A watchdog timer compares it with `stalledAfterMs`.
  const lastMoved = { high: 0, low: 0 };
  let pageWaitSince: number | null = null;
  // Only runs started with the project's search attributes (FeedClient does it unless told not
  // to) may upsert one: on a namespace without them, an upsert would fail the workflow task.
  const searchAttributes = workflowInfo().typedSearchAttributes.get(actorKey) !== undefined;
  /** The run's current details (Web UI, `temporal workflow metadata`): live counts, and a stall. */
  const showProgress = (): void => {
    const failed = progress.high.chunksFailed + progress.low.chunksFailed;
    setCurrentDetails(
      [
        // First: the Web UI shows the top of the details.
        ...(progress.stalled ? [`**Stalled:** ${progress.stalled}`] : []),
        ...(progress.activityRemoved ? ['**Removed:** the activity was removed while this fanout ran; its chunks stopped writing, and the removal sweeps what was written.'] : []),
        `**${input.operation} fanout of ${input.activityId}** by ${input.actorId}: ${progress.done ? 'done' : 'running'}, ` +
          `${num(progress.followersSeen)} followers seen in ${progress.pagesRead} pages (run ${progress.continuedAsNew + 1})`,
        ...(input.operation === FanoutOperation.REMOVE
          ? [`Removed ${num(progress.low.entriesChanged)} entries in ${progress.low.chunksDone} batches, ${progress.low.chunksInFlight} in flight, ${progress.low.chunksFailed} failed`]
          : [priorityLine('HIGH', progress.high, progress.done || highPassDone, passRunning.high), priorityLine('LOW', progress.low, progress.done, passRunning.low, lowExpected())]),
        ...(failed ? [`**Failed chunks:** ${failed}${failed > progress.failures.length ? ` (the first ${progress.failures.length} listed)` : ''}`, ...progress.failures.map((f) => `- ${describeFailure(f)}`)] : []),
      ].join('\n\n'),
    );
  };
  /** LOW followers to expect, once the HIGH pass has seen every follower; else undefined. */
  const lowExpected = (): number | undefined => (highPassDone ? progress.followersSeen - progress.high.followers - alreadyWritten : undefined);
  let highPassDone = false;
  let alreadyWritten = 0;
  const setStalled = (reason: string | null): void => {
    if (reason === progress.stalled) return;
    const was = progress.stalled;
    progress.stalled = reason;
    showProgress();
    if (searchAttributes && (reason === null) !== (was === null)) upsertSearchAttributes([{ key: stalledKey, value: reason !== null }]);
    if (reason) log.warn('fanout stalled', { activityId: input.activityId, reason });
    else log.info('fanout moving again', { activityId: input.activityId });
  };
  let finished = false;
  // Started by `run`; its pending timer is abandoned when the run ends, and a cancellation ends it.
  const watch = async (): Promise<void> => {
    const seconds = (ms: number) => `${Math.round(ms / 1000)} s`;
    // Every stalledAfterMs / 2 while the run moves; once stalled, twice as long each time up to
    // 30 minutes, so a run stuck for days does not fill its history with timers (about 5 events
    // per check) on the way to Temporal's 51,200-event limit.
    const base = Math.max(1000, Math.floor(input.stalledAfterMs / 2));
    let interval = base;
    while (!finished) {
      // Woken early when a stalled run moves again (`kick`), to clear the flag at once.
      await condition(() => kick || finished, interval);
      kick = false;
      if (finished) return;
      const now = Date.now();
      const reasons: string[] = [];
      for (const priority of ['high', 'low'] as const) {
        const idle = now - lastMoved[priority];
        if (idle < input.stalledAfterMs) continue;
        const queue = priority === 'high' ? input.highTaskQueue : input.lowTaskQueue;
        const hint = `is a worker polling it? (${priority}TaskQueue, workers, store)`;
        if (passRunning[priority]) {
          reasons.push(`the ${priority.toUpperCase()} pass has reported no progress for ${seconds(idle)} on task queue "${queue}": ${hint}`);
        } else if (progress[priority].chunksInFlight > 0 && local) {
          reasons.push(`no ${priority.toUpperCase()} chunk finished for ${seconds(idle)}; ${progress[priority].chunksInFlight} being written by this fanout's worker: is the store reachable?`);
        } else if (progress[priority].chunksInFlight > 0) {
          reasons.push(`no ${priority.toUpperCase()} chunk finished for ${seconds(idle)}; ${progress[priority].chunksInFlight} wait on task queue "${queue}": ${hint}`);
        }
      }
      if (pageWaitSince !== null && now - pageWaitSince >= input.stalledAfterMs) {
        reasons.push(`reading a page of followers has taken ${seconds(now - pageWaitSince)} (is the store reachable?)`);
      }
      setStalled(reasons.length ? reasons.join('; ') : null);
      interval = progress.stalled === null ? base : Math.min(interval * 2, 30 * 60_000);
    }
  };
  let kick = false;
  /** Which priority's pass runs now (passes: the chunks are counted by the pass, not here). */
  const passRunning = { high: false, low: false };
  /** A chunk finished: a stalled run is moving again. */
  const moved = (priority: 'high' | 'low'): void => {
    lastMoved[priority] = Date.now();
    if (progress.stalled !== null) kick = true;
  };
  // --- Chunks --------------------------------------------------------------------------------------
  /** The chunk activities on a priority's queue, with a summary for the Web UI. */
  const writes = (priority: 'high' | 'low', summary: string) =>
    proxyActivities<FanoutActivities>({ ...chunkOptions, taskQueue: priority === 'high' ? input.highTaskQueue : input.lowTaskQueue, summary });
  const inFlight = () => progress.high.chunksInFlight + progress.low.chunksInFlight;
  /** A one-page fanout: its chunks are local activities of this run (no task queue round trip). */
  let local = false;
  // Set when a chunk fails in a way every later chunk would too (its input, not its followers, is
  // bad): dispatching stops, the chunks in flight finish, and the run fails with this reason.
  let abortReason: string | null = null;
  let feedTypes: string[] = input.feedTypes ?? [];
  const startedAt = workflowInfo().startTime.getTime();
  const startChunk = (priority: 'high' | 'low', followerIds: string[]): void => {
    const counters = progress[priority];
    if (counters.chunksInFlight === 0) lastMoved[priority] = Date.now();
    counters.chunksInFlight++;
    const summary = chunkSummary(priority, followerIds, progress.pagesRead);
    (local ? proxyLocalActivities<FanoutActivities>(localChunkOptions(input.chunkTimeoutMs, summary)) : writes(priority, summary))
      .writeFeedChunk({
        operation: input.operation,
        feedTypes,
        activityId: input.activityId,
        actorId: input.actorId,
        ...(input.activityTime === undefined ? {} : { activityTime: input.activityTime }),
        followerIds,
      })
      // One `then` with both handlers, no `finally`: every promise made in a workflow costs a
      // captured stack trace (the SDK's stack-trace query), and a `finally` makes three.
      .then(
        (res) => {
          counters.chunksInFlight--;
          counters.chunksDone++;
          counters.entriesChanged += res.changed;
          counters.followersWritten = (counters.followersWritten ?? 0) + followerIds.length;
          moved(priority);
          if (priority === 'high') progress.highServedMs = lastMoved.high - startedAt;
        },
        (err: Error) => {
          moved(priority);
          // Cancelled before it started (the fanout is being cancelled), or refused because the
          // activity is being removed: not a failure.
          if (isCancellation(err) || isActivityRemoved(err)) {
            counters.chunksInFlight--;
            if (!isCancellation(err)) progress.activityRemoved = true;
            return;
          }
          recordFailure(priority, err, followerIds.length, followerIds);
          // The chunk counts as in flight until its FAILED marker is recorded, so the run waits for it.
          if (patched(CHUNK_FAILURE_MARKER_PATCH)) void recordChunkFailureMarker(priority, followerIds, progress.pagesRead, err).then(() => counters.chunksInFlight--);
          else counters.chunksInFlight--;
        },
      );
  };

  /** Counts a chunk (or removal batch) that failed for good and keeps its error, if among the first. */
  const recordFailure = (priority: 'high' | 'low', err: Error, size: number, followerIds?: string[]): void => {
    progress[priority].chunksFailed++;
    // A removal batch, or a bad field other than the follower ids, fails the same way every time: stop now.
    abortReason ??= noteChunkFailure(progress.failures, input.activityId, priority, err, size, followerIds);
  };
  /** Dispatching stops: a chunk failed the way every chunk would, or the activity was removed. */
  const stopped = (): boolean => abortReason !== null || progress.activityRemoved === true;

  // Awaited later, while chunks are dispatched: see `startedAhead`.
  const readPage = (from: string | null) => startedAhead(getFollowerPage({ userId: input.actorId, cursor: from, limit: input.pageSize }));

  try {
    return await run();
  } catch (err) {
    if (isCancellation(err)) {
      // Cancelled (the activity is being removed): the chunks in flight were asked to cancel and
      // stop between feed types. Wait for them before closing, so the caller
      // (FeedClient.removeActivity) knows no write of this run can land after the removal.
      await CancellationScope.nonCancellable(() => condition(() => inFlight() === 0));
      log.info('fanout cancelled; chunks in flight finished', { activityId: input.activityId, followers: progress.followersSeen });
    }
    throw err;
  } finally {
    finished = true;
  }

  async function run(): Promise<FanoutProgress> {
    if (!input.continued && input.publishAt !== undefined) {
      // Scheduled post: a durable timer, so the wait survives worker restarts and deploys.
      const wait = input.publishAt - Date.now();
      if (wait > 0) await sleep(wait);
    }
    // Watched from here on (not during a scheduled post's wait: its timers would fill history).
    watch().catch(() => undefined);
    const removal = input.operation === FanoutOperation.REMOVE;
    // Passes read their own pages; the page-by-page walk of older runs reads its first page while
    // the feed types are settled (no chunk goes out before both).
    const byPasses = !removal && !input.continued && !input.chunksAsActivities && patched(PRIORITY_PASSES_PATCH);
    let nextPage = removal || byPasses ? null : readPage(cursor);
    // Fanouts started by this code read the first page here, alongside the feed types (both are
    // local activities: they run at once): most fanouts fit in it.
    // Awaited below, once the feed types are settled: see `startedAhead`.
    const firstPage = byPasses ? startedAhead(readPageHere({ userId: input.actorId, cursor: null, limit: input.pageSize })) : null;
    if (!(input.continued && input.feedTypes)) {
      feedTypes = await resolveFanoutFeedTypes(input.feedTypes ? { feedTypes: input.feedTypes } : {});
      progress.feedTypes = feedTypes;
    }
    if (removal) return sweep();
    if (!input.continued && input.publishAt !== undefined) {
      // The client leaves the actor's own feed to us for scheduled posts: publish it now.
      await writes('high', `the actor's own ${FeedType.USER} feed (scheduled post)`).writeFeedChunk({
        operation: input.operation,
        feedTypes: [FeedType.USER],
        activityId: input.activityId,
        actorId: input.actorId,
        ...(input.activityTime === undefined ? {} : { activityTime: input.activityTime }),
        followerIds: [input.actorId],
      });
    }
    // A fanout of one page is written from here, HIGH chunks first; a larger one runs a pass per
    // priority, HIGH then LOW. A run that began before (no marker in its history) goes on page by
    // page (see the README, "Changing a workflow safely"), as does one asked to (`chunksAsActivities`).
    if (firstPage) {
      pageWaitSince = Date.now();
      const first = await firstPage;
      pageWaitSince = null;
      if (first.nextCursor !== null) return passes();
      local = true;
      nextPage = Promise.resolve(first);
    }

    for (;;) {
      pageWaitSince = Date.now();
      const page = await nextPage!;
      pageWaitSince = null;
      if (progress.stalled !== null) kick = true;
      progress.pagesRead++;
      progress.followersSeen += page.high.length + page.low.length;
      progress.high.followers += page.high.length;
      progress.low.followers += page.low.length;
      cursor = page.nextCursor;
      const handOver = cursor !== null && shouldContinueAsNew(input.maxHistoryEvents);
      // Read the next page while this page's chunks are written (not when handing over to a new run).
      if (cursor !== null && !handOver) nextPage = readPage(cursor);
      showProgress();
      // HIGH chunks go first so active users see the activity first.
      dispatch: for (const [priority, ids] of [['high', page.high], ['low', page.low]] as const) {
        for (let i = 0; i < ids.length; i += input.chunkSize) {
          // Wait only when full: `condition` makes promises even when already true.
          if (inFlight() >= input.maxInFlight) await condition(() => inFlight() < input.maxInFlight);
          if (stopped()) break dispatch;
          startChunk(priority, ids.slice(i, i + input.chunkSize));
        }
      }
      if (cursor === null || stopped()) break;
      if (handOver) {
        // Pending activities cannot be carried over: let them finish, then hand over the cursor.
        await condition(() => inFlight() === 0);
        if (stopped()) break;
        progress.continuedAsNew++;
        const { continued: _previous, ...original } = rawInput;
        // The settled feed types travel explicitly, so every run writes the same ones.
        return continueAsNew<typeof fanoutWorkflow>({ ...original, feedTypes, continued: { cursor, progress } });
      }
    }

    return finish();
  }

  /**
   * An add, by priority: the HIGH pass (a child workflow on the HIGH queue) writes every active
   * follower's feed, then the LOW pass the others'. Each reports after every page, which this run
   * shows and watches; their chunks are local activities of the pass (see `fanoutPassWorkflow`).
   */
  async function passes(): Promise<FanoutProgress> {
    const workflowId = workflowInfo().workflowId;
    const reported: Partial<Record<'high' | 'low', PassProgress>> = {};
    const apply = (pass: PassProgress): void => {
      reported[pass.priority] = pass;
      progress[pass.priority] = { ...pass.counters };
      const high = reported.high;
      const low = reported.low;
      progress.pagesRead = (high?.pagesRead ?? 0) + (low?.pagesRead ?? 0);
      progress.followersSeen = high?.followersSeen ?? 0;
      progress.continuedAsNew = (high?.continuedAsNew ?? 0) + (low?.continuedAsNew ?? 0);
      progress.failures = [...(high?.failures ?? []), ...(low?.failures ?? [])].slice(0, MAX_LISTED_FAILURES);
      progress.highServedMs = high?.servedMs ?? null;
      alreadyWritten = low?.alreadyWritten ?? 0;
      highPassDone = high?.done ?? false;
      if (pass.activityRemoved) progress.activityRemoved = true;
      if (pass.abortReason !== null && abortReason === null) abortReason = pass.abortReason;
      moved(pass.priority);
    };
    setHandler(passProgressSignal, (raw) => {
      try {
        apply(validatePassProgress('signal', raw));
        showProgress();
      } catch (err) {
        log.warn('ignored a malformed pass report', { activityId: input.activityId, error: (err as Error).message });
      }
    });
    for (const priority of ['high', 'low'] as const) {
      // Nobody of this priority: the HIGH pass saw every follower.
      if (priority === 'low' && reported.high?.done && progress.followersSeen === progress.high.followers) break;
      passRunning[priority] = true;
      lastMoved[priority] = Date.now();
      showProgress();
      const queue = priority === 'high' ? input.highTaskQueue : input.lowTaskQueue;
      const result = await executeChild(fanoutPassWorkflow, {
        workflowId: fanoutPassWorkflowId(workflowId, priority),
        taskQueue: queue,
        args: [
          {
            priority,
            activityId: input.activityId,
            actorId: input.actorId,
            activityTime: input.activityTime!,
            feedTypes,
            pageSize: input.pageSize,
            chunkSize: input.chunkSize,
            maxInFlight: input.maxInFlight,
            maxHistoryEvents: input.maxHistoryEvents,
            chunkTimeoutMs: input.chunkTimeoutMs,
            fanoutWorkflowId: workflowId,
            fanoutStartedAt: startedAt,
          },
        ],
        cancellationType: ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED,
        staticSummary: `${priority.toUpperCase()} pass of ${input.activityId} (${input.actorId}'s ${priority === 'high' ? 'active' : 'other'} followers)`,
      }).catch((err: unknown) => {
        // Cancelled or failed: the pass has closed, so none of its chunks is in flight any more.
        passRunning[priority] = false;
        progress[priority].chunksInFlight = 0;
        throw err;
      });
      passRunning[priority] = false;
      apply(result);
      showProgress();
      if (stopped()) break;
    }
    return finish();
  }

  /**
   * A removal: sweeps the activity's entries out of the feeds by activity id, one batch at a time
   * on the LOW queue (counted as LOW chunks), until none is left. Readers stopped seeing the
   * activity when the client deleted it, so there is no follower order to keep.
   */
  async function sweep(): Promise<FanoutProgress> {
    const counters = progress.low;
    for (;;) {
      counters.chunksInFlight++;
      lastMoved.low = Date.now();
      let more: boolean;
      try {
        const summary = `removal batch ${counters.chunksDone + counters.chunksFailed + 1}: up to ${input.removeBatchSize} entries per feed type`;
        const res = await writes('low', summary).removeActivityEntries({
          activityId: input.activityId,
          actorId: input.actorId,
          feedTypes,
          limit: input.removeBatchSize,
        });
        counters.chunksDone++;
        counters.entriesChanged += res.changed;
        more = res.more;
      } catch (err) {
        if (isCancellation(err)) throw err;
        recordFailure('low', err as Error, input.removeBatchSize);
        more = false;
      } finally {
        counters.chunksInFlight--;
        moved('low');
      }
      if (!more) break;
      if (shouldContinueAsNew(input.maxHistoryEvents)) {
        progress.continuedAsNew++;
        const { continued: _previous, ...original } = rawInput;
        return continueAsNew<typeof fanoutWorkflow>({ ...original, feedTypes, continued: { cursor: null, progress } });
      }
    }
    return finish();
  }

  /** Waits for the chunks in flight, then completes, or fails if any chunk failed for good. */
  async function finish(): Promise<FanoutProgress> {
    await condition(() => inFlight() === 0);
    if (progress.activityRemoved) return removedWhileAdding();
    const failedChunks = progress.high.chunksFailed + progress.low.chunksFailed;
    log.info('fanout finished', {
      activityId: input.activityId,
      operation: input.operation,
      followers: progress.followersSeen,
      changed: progress.high.entriesChanged + progress.low.entriesChanged,
      failedChunks,
    });
    setStalled(null);
    progress.done = true;
    showProgress();
    const tags = { operation: input.operation };
    const outcome = failedChunks > 0 ? 'failed' : 'completed';
    const fanouts = metricMeter.createCounter(Metric.FANOUTS);
    // The other outcome's series too (adding 0): a series Prometheus first sees at 1 shows no
    // increase, so a worker's first failed fanout would go unseen by `increase(...)`.
    for (const o of ['completed', 'failed'] as const) fanouts.add(o === outcome ? 1 : 0, { ...tags, outcome: o });
    metricMeter.createHistogram(Metric.FANOUT_DURATION, 'int', 'ms').record(Date.now() - startedAt, tags);
    if (progress.highServedMs !== null) metricMeter.createHistogram(Metric.HIGH_SERVED, 'int', 'ms').record(progress.highServedMs);
    // Never report success over failed work: the run ends Failed, with counts and the first errors.
    if (failedChunks > 0) throw fanoutFailure(progress, abortReason);
    return progress;
  }

  /**
   * The activity was removed while it was being added: its chunks stopped writing. The removal
   * cancels this run right after marking the activity, so wait for that (the run ends Cancelled);
   * should it not come (the remover died in between), fail saying what to do.
   */
  async function removedWhileAdding(): Promise<never> {
    showProgress();
    log.info('activity removed while its fanout ran: waiting for the removal to cancel this run', { activityId: input.activityId });
    await sleep(REMOVAL_CANCEL_WAIT_MS);
    throw ApplicationFailure.create({
      type: ACTIVITY_REMOVED_FAILURE_TYPE,
      nonRetryable: true,
      message:
        `activity ${input.activityId} was removed while this fanout added it, or was never stored (its chunks stopped writing), and no removal ` +
        `cancelled the run within ${REMOVAL_CANCEL_WAIT_MS / 1000} s: run \`feed-fanout remove ${input.activityId}\` to sweep what was written ` +
        `(an app that starts fanouts itself stores the activity in the activities collection first)`,
      details: [progress],
    });
  }
}
