/**
 * `fanoutPassWorkflow`: one priority's pass of an `add` fanout. Its fanout starts it on the
 * priority's task queue (`high-fanout` for active followers, `low-fanout` for the rest), the HIGH
 * pass first and the LOW pass once every active follower has the entry: active followers first
 * across the whole fanout, not page by page.
 *
 * It pages through the actor's followers (`getFollowerPagePart`, keeping its priority's), cuts
 * them into chunks of `chunkSize` and writes each chunk with `writeFeedChunk`, at most
 * `maxInFlight` at a time. Both are *local* activities: they run in the worker that runs this pass,
 * on its queue, and their results are recorded in the pass's history with its workflow tasks, so a
 * chunk costs the Temporal server a marker instead of an activity task's scheduling, dispatch, start
 * and completion. That is most of the server's work per chunk (see the README's benchmark). A
 * worker that dies mid-pass loses only the chunks not yet recorded, which the next worker writes
 * again (idempotent writes: nothing is written twice).
 *
 * It signals its progress to the fanout, which shows it and watches for stalls, whenever it lets its
 * workflow task complete: after about 512 kB of chunk markers, before a hand-over, and at the end.
 * It continues as new before its history grows large.
 *
 * Deterministic: no I/O, clock or randomness here, only Temporal APIs.
 * @module
 */
import {
  CancellationScope,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  isCancellation,
  log,
  patched,
  proxyLocalActivities,
  workflowInfo,
} from '@temporalio/workflow';
import type { FanoutActivities, WriteFeedChunkResult } from '../activities/fanout';
import { validateOrFail } from '../src/model/failures';
import { FanoutOperation, Limits } from '../src/model/constants';
import { type FanoutPassInput, initialPassProgress, type PassProgress, passProgressSignal, validatePassInput } from '../src/model/fanout';
import {
  CHUNK_RETRY,
  chunkSummary,
  isActivityRemoved,
  localChunkOptions,
  noteChunkFailure,
  recordChunkFailureMarker,
  shouldContinueAsNew,
  startedAhead,
} from './policies';

/**
 * How far the app's clock (which stamps `lastActiveAt`) may lag the Temporal server's. Followers
 * active within this long before a fanout began are written by both passes (the second write
 * changes nothing).
 */
const ACTIVE_CLOCK_SKEW_MS = 5 * 60_000;

const retry = CHUNK_RETRY;

/** The patch that made a pass report (and flush its workflow task) by size, not after every page. */
export const FLUSH_BY_SIZE_PATCH = 'pass-flush-by-size';

/**
 * The patch that made a pass also flush once a second of chunk writes has passed since its last
 * flush, and skip in the LOW pass the followers the HIGH pass wrote.
 */
export const FLUSH_BY_TIME_PATCH = 'pass-flush-by-time';

/**
 * How long a pass's workflow task may stay open while its chunks are written, measured by the
 * chunks' own completion times (recorded in their results, so replay measures the same). While a
 * task is open, nothing else reaches the run: a cancel (an activity removed while it is added), a
 * signal, a query of its current details. Flushing this often costs a drain of the chunk pipeline
 * per second, a few milliseconds.
 */
const FLUSH_EVERY_MS = 1000;

/**
 * Roughly how many bytes of local activity markers one workflow task of a pass may collect before
 * the pass waits for the task to complete (see the loop). Well under gRPC's 4 MB message limit, and
 * a few hundred chunks: a drain per that many rather than per page.
 */
const FLUSH_AFTER_BYTES = 512 * 1024;

/** History events a page adds besides its chunks' markers: the read's marker, a report's signal. */
const PAGE_EVENTS = 4;

/** An estimate of the marker bytes a page's chunks add: their follower ids, as JSON, and an allowance per chunk. */
function markerBytes(ids: readonly string[], chunkSize: number): number {
  let bytes = Math.ceil(ids.length / chunkSize) * 512;
  for (const id of ids) bytes += id.length + 3;
  return bytes;
}

/** Writes one priority's followers' feeds; returns the pass's progress. */
export async function fanoutPassWorkflow(rawInput: FanoutPassInput): Promise<PassProgress> {
  const input = validateOrFail(validatePassInput, rawInput);
  const progress: PassProgress = input.continued?.progress ?? initialPassProgress(input.priority);
  const counters = progress.counters;
  let cursor: string | null = input.continued?.cursor ?? null;
  const fanout = getExternalWorkflowHandle(input.fanoutWorkflowId);
  const { getFollowerPagePart } = proxyLocalActivities<FanoutActivities>({ startToCloseTimeout: input.chunkTimeoutMs, retry });
  // The LOW pass counts as HIGH only followers active before the fanout began (less a margin for
  // clock skew between the app and Temporal): they were HIGH when the HIGH pass read them too.
  // Anyone active since is written here, so nobody who became active between the passes is
  // skipped by both (see `FollowerPageRequest.activeUntil`).
  const lowOnly = input.priority === 'low' ? { activeUntil: input.fanoutStartedAt - ACTIVE_CLOCK_SKEW_MS } : {};
  // Runs started before it flushed only by size and wrote the HIGH pass's recent followers again.
  const flushByTime = patched(FLUSH_BY_TIME_PATCH);
  // The LOW pass leaves out followers active only since then whose entry the HIGH pass wrote: an
  // entry in the last feed type means an attempt wrote all of them.
  const skipWritten = flushByTime && input.priority === 'low' ? { skipWritten: { activityId: input.activityId, feedType: input.feedTypes[input.feedTypes.length - 1]! } } : {};
  /** Completion time (worker clock, from the chunk results) of the first and latest chunk since the last flush. */
  let windowStart: number | null = null;
  let windowEnd = 0;
  /** Dispatching stops: a chunk failed the way every chunk would, or the activity was removed. */
  const stopped = (): boolean => progress.abortReason !== null || progress.activityRemoved === true;

  /** Tells the fanout how far this pass is (best effort: a fanout that is gone needs no news). */
  const report = async (): Promise<void> => {
    await fanout.signal(passProgressSignal, progress).catch((err: Error) => log.warn('could not report pass progress', { error: err.message }));
  };

  const startChunk = (followerIds: string[]): void => {
    counters.chunksInFlight++;
    const summary = chunkSummary(input.priority, followerIds, progress.pagesRead);
    proxyLocalActivities<FanoutActivities>(localChunkOptions(input.chunkTimeoutMs, summary))
      .writeFeedChunk({
        operation: FanoutOperation.ADD,
        feedTypes: input.feedTypes,
        activityId: input.activityId,
        actorId: input.actorId,
        activityTime: input.activityTime,
        followerIds,
      })
      // One `then` with both handlers: every promise a workflow makes costs a captured stack trace.
      .then(
        (res: WriteFeedChunkResult) => {
          counters.chunksInFlight--;
          counters.chunksDone++;
          counters.entriesChanged += res.changed;
          counters.followersWritten = (counters.followersWritten ?? 0) + followerIds.length;
          progress.servedMs = Date.now() - input.fanoutStartedAt;
          if (res.at !== undefined) {
            windowStart ??= res.at;
            windowEnd = res.at;
          }
        },
        (err: Error) => {
          if (isCancellation(err) || isActivityRemoved(err)) {
            counters.chunksInFlight--;
            if (!isCancellation(err)) progress.activityRemoved = true;
            return;
          }
          counters.chunksFailed++;
          // A bad field other than the follower ids is the same in every chunk: stop now.
          const stop = noteChunkFailure(progress.failures, input.activityId, input.priority, err, followerIds.length, followerIds);
          progress.abortReason ??= stop;
          // The chunk counts as in flight until its FAILED marker is recorded, so the run waits for it.
          if (flushByTime) void recordChunkFailureMarker(input.priority, followerIds, progress.pagesRead, err).then(() => counters.chunksInFlight--);
          else counters.chunksInFlight--;
        },
      );
  };

  try {
    // Followers read per page: the first read takes `pageSize`; later ones as many as should hold
    // about `pageSize` of this pass's priority, at most MAX_PASS_READ. The HIGH pass reads every
    // follower to keep a quarter or so: bigger reads are fewer round trips and keep its chunk
    // pipeline full. Computed from the recorded page results, so replay reads the same.
    let readLimit = input.pageSize;
    // Read ahead, and abandoned when the pass is cancelled or fails: see `startedAhead`.
    const read = (from: string | null) =>
      startedAhead(getFollowerPagePart({ userId: input.actorId, cursor: from, limit: readLimit, priority: input.priority, ...lowOnly, ...skipWritten }));
    let nextPage = read(cursor);
    // Runs started before the flush by size reported (and flushed) after every page.
    const flushBySize = patched(FLUSH_BY_SIZE_PATCH);
    let sinceFlush = 0;
    let eventsSinceFlush = 0;
    const flush = async (): Promise<void> => {
      await report();
      sinceFlush = 0;
      eventsSinceFlush = 0;
      windowStart = null;
    };
    for (;;) {
      const page = await nextPage;
      progress.pagesRead++;
      const alreadyWritten = page.alreadyWritten ?? 0;
      progress.followersSeen += page.ids.length + page.others + alreadyWritten;
      if (alreadyWritten) progress.alreadyWritten = (progress.alreadyWritten ?? 0) + alreadyWritten;
      counters.followers += page.ids.length;
      cursor = page.nextCursor;
      const seen = page.ids.length + page.others + alreadyWritten;
      readLimit = Math.min(Limits.MAX_PASS_READ, Math.max(input.pageSize, Math.ceil((input.pageSize * seen) / Math.max(1, page.ids.length))));
      // Read the next page while this one's chunks are written: the HIGH pass keeps a quarter of
      // what it reads, so back-to-back reads are what bring its last follower forward (measured:
      // 80 ms between reads at 100,000 followers when the read waited for the dispatch and report).
      const handOver = cursor !== null && shouldContinueAsNew(input.maxHistoryEvents);
      if (cursor !== null && !handOver) nextPage = read(cursor);
      for (let i = 0; i < page.ids.length && !stopped(); i += input.chunkSize) {
        // Wait only when full: `condition` makes promises even when already true.
        if (counters.chunksInFlight >= input.maxInFlight) await condition(() => counters.chunksInFlight < input.maxInFlight);
        // A second of writes since the last flush: let the task complete, so a cancel, signal or
        // query waiting for this run gets in (see FLUSH_EVERY_MS).
        if (flushByTime && windowStart !== null && windowEnd - windowStart >= FLUSH_EVERY_MS) await flush();
        if (!stopped()) startChunk(page.ids.slice(i, i + input.chunkSize));
      }
      // The report is the pass's flush. Its signal goes out when the workflow task completes,
      // which waits for every local activity in flight: awaiting it drains the chunk pipeline and
      // records the chunks' markers. After every page, that drain cost 53 -> 49 ms CPU per 1,000
      // entries and 25,000 -> 33,000 entries/s at 100,000 followers; never awaiting it kept the
      // task open until its 8 s heartbeat, and the completion outgrew gRPC's 4 MB limit at
      // 1,000,000 followers. So the pass flushes once the markers since the last flush may reach
      // FLUSH_AFTER_BYTES; before its history could pass maxHistoryEvents (a workflow sees the
      // history length its task began with, so the hand-over check needs the flush to count the
      // chunks); before a hand-over; and at the end.
      sinceFlush += markerBytes(page.ids, input.chunkSize);
      eventsSinceFlush += Math.ceil(page.ids.length / input.chunkSize) + PAGE_EVENTS;
      const last = cursor === null || stopped() || handOver;
      const nearLimit = workflowInfo().historyLength + eventsSinceFlush >= input.maxHistoryEvents;
      if (!flushBySize || last || nearLimit || sinceFlush >= FLUSH_AFTER_BYTES) await flush();
      if (cursor === null || stopped()) break;
      if (handOver) {
        // Local activities in flight cannot be carried over: let them finish, then hand over.
        await condition(() => counters.chunksInFlight === 0);
        progress.continuedAsNew++;
        const { continued: _previous, ...original } = input;
        return continueAsNew<typeof fanoutPassWorkflow>({ ...original, continued: { cursor, progress } });
      }
    }
    await condition(() => counters.chunksInFlight === 0);
    progress.done = true;
    await report();
    return progress;
  } catch (err) {
    if (isCancellation(err)) {
      // The fanout is being cancelled (its activity removed): let the chunks in flight stop before
      // the pass closes, so no write of it lands after the removal that follows.
      await CancellationScope.nonCancellable(() => condition(() => counters.chunksInFlight === 0));
    }
    throw err;
  }
}
