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
 * workflow task complete (see `PassFlush`). It continues as new before its history grows large.
 *
 * Every decision that issues a command here depends only on what replay sees the same way: counts
 * of what was dispatched, awaited results, and chunk outcomes read right after a flush (when every
 * chunk dispatched before it has ended). A local activity's result reaches replay at another moment
 * than it reached the first run, so deciding on outcomes as they arrive (to stop, to flush, to
 * record a marker) would issue commands in another order and fail the run's replay.
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
  proxyActivities,
  proxyLocalActivities,
  workflowInfo,
} from '@temporalio/workflow';
import type { FanoutActivities, FollowerPagePart, GetFollowerPagePartInput } from '../../activities/fanout';
import { validateOrFail } from '../../src/contract/failures';
import { FanoutOperation, HEARTBEAT_TIMEOUT_MS, Limits } from '../../src/contract/constants';
import { ChunkExecution } from '../../src/contract/fanout';
import type { RetryStatus } from '../../src/contract/fanout-progress';
import { type FanoutPassInput, initialPassProgress, type PassProgress, passProgressSignal, validatePassInput } from '../../src/contract/fanout-pass';
import { type ChunkBase, type ChunkPlace, startChunk } from './chunks';
import {
  CHUNK_RETRY,
  chunkFailure,
  chunkSummary,
  isRetryableFailure,
  noteChunkFailure,
  PASS_ATTEMPTS,
  PASS_CHUNK_RETRY,
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
 * The patch that made a pass also flush every `FLUSH_EVERY_CHUNKS` chunks, stop only at a flush,
 * record a `FAILED:` marker per chunk that failed for good, and (the LOW pass) skip the followers
 * the HIGH pass wrote.
 */
export const FLUSH_BY_COUNT_PATCH = 'pass-flush-by-count';

/**
 * The patch that made a pass take over the retries of a chunk write or page read after
 * `PASS_ATTEMPTS` (see `recover`), where runs before retried them in the worker without end.
 */
export const PROBE_PATCH = 'pass-probe-retries';

/**
 * The patch that made a pass whose page read failed write its waiting chunks again (`recover`)
 * before it probes the read. A page can come back while the store is down (FerretDB's pages come
 * from a snapshot in the worker's memory), and runs before then dispatched that page's chunks into
 * the outage, each recording a failure, over and over: 280 events a minute on FerretDB.
 */
export const RECOVER_BEFORE_READ_PATCH = 'pass-recover-before-read';

/** Attempts of one probe (an activity task the server retries with backoff; see `recover`). */
const PROBE_ATTEMPTS = 4;
/** The first probe's first backoff; each probe that fails starts where the last left off, doubling... */
const PROBE_FIRST_BACKOFF_MS = 2_000;
/** ...up to this... */
const PROBE_MAX_BACKOFF_MS = 60_000;
/** ...or this once the history has passed `maxHistoryEvents` (a pass cannot hand over while chunks wait). */
const PROBE_MAX_BACKOFF_LONG_MS = 5 * 60_000;

/** A chunk whose write failed with a retryable error, waiting to be written again. */
interface WaitingChunk {
  followerIds: string[];
  page: number;
  /** Attempts so far. */
  attempts: number;
  /** The latest attempt's error. */
  error: string;
}

/** An error message cut to what a status line holds. */
function shortError(err: Error): string {
  const { message } = chunkFailure(err);
  return message.length > 500 ? `${message.slice(0, 500)}…` : message;
}

/**
 * Chunks a pass dispatches between two flushes at most: while its workflow task is open, nothing
 * else reaches the run (a cancel, a signal, a query of its current details). At full speed on the
 * development machine (about 300 chunks a second per pass) that is under half a second; each flush
 * drains the chunk pipeline once, a few milliseconds.
 */
const FLUSH_EVERY_CHUNKS = 128;

/**
 * Roughly how many bytes of local activity markers one workflow task of a pass may collect before
 * the pass waits for the task to complete. Well under gRPC's 4 MB message limit.
 */
const FLUSH_AFTER_BYTES = 512 * 1024;

/** History events a page adds besides its chunks' markers: the read's marker, a report's signal. */
const PAGE_EVENTS = 4;

/**
 * When a pass lets its workflow task complete, which is when it reports: the report's signal goes
 * out with the task's completion, which waits for every local activity in flight, so a flush
 * drains the chunk pipeline and records the chunks' markers. A drain per page cost throughput, and
 * never flushing outgrew gRPC's 4 MB message limit at 1,000,000 followers; so a pass flushes every
 * `FLUSH_EVERY_CHUNKS` chunks, once the markers since the last flush may reach
 * `FLUSH_AFTER_BYTES`, before its history could pass `maxHistoryEvents` (a workflow sees the
 * history length its task began with, so the hand-over check needs the flush to count the chunks),
 * before a hand-over and at the end.
 */
class PassFlush {
  private bytes = 0;
  private events = 0;
  private chunks = 0;

  constructor(
    /** Runs started before the flush by size flushed after every page. */
    private readonly bySize: boolean,
    /** Runs started before the flush by count flushed by size only. */
    private readonly byCount: boolean,
    private readonly chunkSize: number,
    private readonly maxHistoryEvents: number,
    /** History events a chunk adds: a marker (local), or scheduled, started and completed (activity task). */
    private readonly eventsPerChunk: number,
  ) {}

  /** A chunk was dispatched: whether to flush before the next one. */
  dispatched(): boolean {
    return this.byCount && ++this.chunks >= FLUSH_EVERY_CHUNKS;
  }

  /** A page's chunks were dispatched: whether to flush now (`last`: the end, a stop or a hand-over). */
  dueAfterPage(ids: readonly string[], last: boolean): boolean {
    // An estimate of the marker bytes the page's chunks add: their follower ids as JSON, and an allowance per chunk.
    this.bytes += Math.ceil(ids.length / this.chunkSize) * 512;
    for (const id of ids) this.bytes += id.length + 3;
    this.events += Math.ceil(ids.length / this.chunkSize) * this.eventsPerChunk + PAGE_EVENTS;
    const nearLimit = workflowInfo().historyLength + this.events >= this.maxHistoryEvents;
    return !this.bySize || last || nearLimit || this.bytes >= FLUSH_AFTER_BYTES;
  }

  /** The task completed: start counting again. */
  flushed(): void {
    this.bytes = 0;
    this.events = 0;
    this.chunks = 0;
  }
}

/** Writes one priority's followers' feeds; returns the pass's progress. */
export async function fanoutPassWorkflow(rawInput: FanoutPassInput): Promise<PassProgress> {
  const input = validateOrFail(validatePassInput, rawInput);
  const progress: PassProgress = input.continued?.progress ?? { ...initialPassProgress(input.priority), ...(input.partition ? { partition: input.partition.index } : {}) };
  // Chunks as activity tasks (`chunkExecution: 'activity'`): their outcomes are history events,
  // which a replay meets where the run met them, so the pass may act on them at once.
  const asTasks = input.chunkExecution === ChunkExecution.ACTIVITY;
  const counters = progress.counters;
  let cursor: string | null = input.continued?.cursor ?? null;
  const fanout = getExternalWorkflowHandle(input.fanoutWorkflowId);
  // The LOW pass counts as HIGH only followers active before the fanout began (less a margin for
  // clock skew between the app and Temporal): they were HIGH when the HIGH pass read them too.
  // Anyone active since is written here, so nobody who became active between the passes is
  // skipped by both (see `FollowerPageRequest.activeUntil`).
  const lowOnly = input.priority === 'low' ? { activeUntil: input.fanoutStartedAt - ACTIVE_CLOCK_SKEW_MS } : {};
  // A partition walks its range of follower ids only.
  const range = { ...(input.partition?.from ? { from: input.partition.from } : {}), ...(input.partition?.until ? { until: input.partition.until } : {}) };
  // Runs started before it flushed only by size, stopped as soon as a chunk said so, and wrote
  // the HIGH pass's recent followers again.
  const byCount = patched(FLUSH_BY_COUNT_PATCH);
  // Runs started before it retried chunk writes and page reads in the worker without end.
  const probing = byCount && patched(PROBE_PATCH);
  const { getFollowerPagePart } = proxyLocalActivities<FanoutActivities>({ startToCloseTimeout: input.chunkTimeoutMs, retry: probing ? PASS_CHUNK_RETRY : retry });
  // The LOW pass leaves out followers active only since then whose entry the HIGH pass wrote: an
  // entry in the last feed type means an attempt wrote all of them.
  const skipWritten = byCount && input.priority === 'low' ? { skipWritten: { activityId: input.activityId, feedType: input.feedTypes[input.feedTypes.length - 1] } } : {};
  /** A chunk failed the way every chunk would, or the activity was removed (as the chunks have said so far). */
  const stopReported = (): boolean => progress.abortReason !== null || progress.activityRemoved === true;
  /** Dispatching stops: read at a flush (see the module comment), or at once in runs from before. */
  let halted = false;
  const stopped = (): boolean => (byCount && !asTasks ? halted : stopReported());
  /** Chunks that failed for good since the last flush, in the order they were dispatched: their FAILED markers go out at the next. */
  let failedSinceFlush: Array<{ seq: number; followerIds: string[]; page: number; err: Error }> = [];
  let dispatched = 0;
  /** Chunks whose write failed with a retryable error since the last flush: `recover` writes them again. */
  let waiting: WaitingChunk[] = [];

  /** Tells the fanout how far this pass is (best effort: a fanout that is gone needs no news). */
  const report = async (): Promise<void> => {
    await fanout.signal(passProgressSignal, progress).catch((err: Error) => log.warn('could not report pass progress', { error: err.message }));
  };

  // Every chunk of a pass runs the same way (a probe aside), and writes the same but for its followers.
  const place: ChunkPlace = {
    ...(asTasks ? { taskQueue: workflowInfo().taskQueue } : { local: true as const, timeoutMs: input.chunkTimeoutMs }),
    ...(probing ? { retry: PASS_CHUNK_RETRY } : {}),
  };
  /**
   * Where a probe runs: an activity task on this pass's queue, which the server retries
   * `PROBE_ATTEMPTS` times with backoff from `backoffMs`. The pass's workflow task completes while
   * it runs, however long the store makes it wait, and its retries add no history: a probe costs a
   * few events for its attempts together, not a workflow task heartbeat every 2.4 s.
   */
  const probeRetry = (backoffMs: number) => ({ ...PASS_CHUNK_RETRY, initialInterval: backoffMs, maximumInterval: maxBackoff(), maximumAttempts: PROBE_ATTEMPTS });
  /** The longest backoff of a probe: longer once the history is long (see `PROBE_MAX_BACKOFF_LONG_MS`). */
  const maxBackoff = (): number => (workflowInfo().historyLength > input.maxHistoryEvents ? PROBE_MAX_BACKOFF_LONG_MS : PROBE_MAX_BACKOFF_MS);
  /** The first backoff of the probe after one that started at `backoffMs` failed. */
  const nextBackoff = (backoffMs: number): number => Math.min(backoffMs * 2 ** (PROBE_ATTEMPTS - 1), maxBackoff());
  const base: ChunkBase = { operation: FanoutOperation.ADD, feedTypes: input.feedTypes, activityId: input.activityId, actorId: input.actorId, activityTime: input.activityTime };
  const startPassChunk = (followerIds: string[], page = progress.pagesRead, attemptsBefore = 0, where = place, attempts = PASS_ATTEMPTS): void => {
    const seq = dispatched++;
    startChunk(where, base, { priority: input.priority, followerIds, page }, counters, {
      written: () => {
        progress.servedMs = Date.now() - input.fanoutStartedAt;
      },
      stopped: (activityRemoved) => {
        if (activityRemoved) progress.activityRemoved = true;
      },
      failed: (err) => {
        // A bad field other than the follower ids is the same in every chunk: stop (at the next flush).
        progress.abortReason ??= noteChunkFailure(progress.failures, input.activityId, input.priority, err, followerIds.length, followerIds);
        // An activity task's failure shows in the Web UI as it is; a local one's gets a marker.
        if (byCount && !asTasks) failedSinceFlush.push({ seq, followerIds, page, err });
      },
      // Failed all its attempts with an error a retry may cure: `recover` takes it over (at the next flush).
      ...(probing
        ? {
            retryLater: (err: Error): boolean => {
              if (!isRetryableFailure(err)) return false;
              waiting.push({ followerIds, page, attempts: attemptsBefore + attempts, error: shortError(err) });
              return true;
            },
          }
        : {}),
    });
  };
  /** Tells the fanout what keeps failing (a signal, so at each probe: every few seconds at first, every few minutes later). */
  const reportRetry = async (status: RetryStatus): Promise<void> => {
    progress.retrying = status;
    await report();
  };
  /**
   * Writes the waiting chunks again, where every chunk dispatched before has ended (so what it
   * decides depends on outcomes a replay sees the same). While the store keeps failing, one chunk
   * probes it (an activity task retried with backoff, see `probeRetry`: 2 s doubling to 1 min) and
   * the others wait, so a long outage costs the history a few events per probe, and the progress
   * shows the attempts and the latest error. Once a probe gets through, the others go back into the
   * pipeline. Nothing is dropped unless the fanout stops (activity removed, or every chunk would
   * fail alike), as the chunks never dispatched are.
   */
  const recover = async (): Promise<void> => {
    let backoffMs = PROBE_FIRST_BACKOFF_MS;
    const since = Date.now();
    while (waiting.length > 0 && !stopReported()) {
      const probe = waiting.shift()!;
      await reportRetry({ what: chunkSummary(input.priority, probe.followerIds, probe.page), waiting: waiting.length + 1, attempts: probe.attempts, lastError: probe.error, since, probeStartedAt: Date.now() });
      const before = waiting.length;
      startPassChunk(probe.followerIds, probe.page, probe.attempts, { taskQueue: workflowInfo().taskQueue, retry: probeRetry(backoffMs) }, PROBE_ATTEMPTS);
      await condition(() => counters.chunksInFlight === 0);
      if (waiting.length > before) {
        // Failed again: it stays first, and the next probe backs off from where this one stopped.
        waiting.unshift(waiting.pop()!);
        backoffMs = nextBackoff(backoffMs);
        continue;
      }
      // The store answers: the others go back into the pipeline (any failing again wait once more).
      backoffMs = PROBE_FIRST_BACKOFF_MS;
      for (const chunk of waiting.splice(0)) {
        if (counters.chunksInFlight >= input.maxInFlight) await condition(() => counters.chunksInFlight < input.maxInFlight);
        startPassChunk(chunk.followerIds, chunk.page, chunk.attempts);
      }
      await condition(() => counters.chunksInFlight === 0);
    }
    waiting = [];
    if (progress.retrying) {
      progress.retrying = null;
      await report();
    }
  };
  /**
   * Where the chunks dispatched so far have all ended (after a flush, at the end): records the
   * FAILED markers of those that failed for good, in dispatch order, and reads whether to stop.
   */
  const settled = async (): Promise<void> => {
    if (!byCount) return;
    if (probing) {
      // A flush whose task the SDK heartbeated may return with chunks still in flight: let them end.
      if (counters.chunksInFlight > 0) await condition(() => counters.chunksInFlight === 0);
      if (waiting.length > 0) await recover();
    }
    const failed = failedSinceFlush.sort((a, b) => a.seq - b.seq);
    failedSinceFlush = [];
    await Promise.all(failed.map((f) => recordChunkFailureMarker(input.priority, f.followerIds, f.page, f.err)));
    halted = stopReported();
  };

  try {
    // Followers read per page: the first read takes `pageSize`; later ones as many as should hold
    // about `pageSize` of this pass's priority, at most MAX_PASS_READ. The HIGH pass reads every
    // follower to keep a quarter or so: bigger reads are fewer round trips and keep its chunk
    // pipeline full. Computed from the recorded page results, so replay reads the same.
    let readLimit = input.pageSize;
    const pageInput = (from: string | null): GetFollowerPagePartInput => ({ userId: input.actorId, cursor: from, limit: readLimit, priority: input.priority, ...range, ...lowOnly, ...skipWritten });
    // Read ahead, and abandoned when the pass is cancelled or fails: see `startedAhead`.
    const read = (from: string | null) => startedAhead(getFollowerPagePart(pageInput(from)));
    /**
     * The page read ahead; if its read failed all its attempts with an error a retry may cure, reads
     * it again as `recover` writes chunks: once the chunks in flight have ended, one attempt at a
     * time (an activity task), after a wait of 2 s doubling to 1 min, shown in the progress.
     */
    const awaitPage = async (ahead: Promise<FollowerPagePart>, from: string | null): Promise<FollowerPagePart> => {
      let error: Error;
      try {
        return await ahead;
      } catch (err) {
        if (!probing || isCancellation(err) || !isRetryableFailure(err as Error)) throw err;
        error = err as Error;
      }
      if (counters.chunksInFlight > 0) await condition(() => counters.chunksInFlight === 0);
      // Chunks failed too (outcomes all in, as every chunk has ended)? A chunk write tells whether
      // the store is back; a page read may not (see RECOVER_BEFORE_READ_PATCH).
      if (waiting.length > 0 && patched(RECOVER_BEFORE_READ_PATCH)) await recover();
      const since = Date.now();
      for (let attempts = PASS_ATTEMPTS, backoffMs = PROBE_FIRST_BACKOFF_MS; ; attempts += PROBE_ATTEMPTS, backoffMs = nextBackoff(backoffMs)) {
        const what = `${input.priority.toUpperCase()} page ${progress.pagesRead + 1} of followers (read)`;
        await reportRetry({ what, waiting: waiting.length, attempts, lastError: shortError(error), since, probeStartedAt: Date.now() });
        const { getFollowerPagePart: readAgain } = proxyActivities<FanoutActivities>({
          taskQueue: workflowInfo().taskQueue,
          startToCloseTimeout: input.chunkTimeoutMs,
          heartbeatTimeout: HEARTBEAT_TIMEOUT_MS,
          retry: probeRetry(backoffMs),
          summary: `read followers again (page ${progress.pagesRead + 1})`,
        });
        try {
          const page = await readAgain(pageInput(from));
          progress.retrying = null;
          return page;
        } catch (err) {
          if (isCancellation(err) || !isRetryableFailure(err as Error)) throw err;
          error = err as Error;
        }
      }
    };
    let nextFrom = cursor;
    let nextPage = read(cursor);
    // Runs started before the flush by size reported (and flushed) after every page.
    const flush = new PassFlush(patched(FLUSH_BY_SIZE_PATCH), byCount, input.chunkSize, input.maxHistoryEvents, asTasks ? 3 : 1);
    const flushNow = async (): Promise<void> => {
      await report();
      flush.flushed();
      await settled();
    };
    for (;;) {
      const page = await awaitPage(nextPage, nextFrom);
      progress.pagesRead++;
      const alreadyWritten = page.alreadyWritten ?? 0;
      progress.followersSeen += page.ids.length + page.others + alreadyWritten;
      if (alreadyWritten) progress.alreadyWritten = (progress.alreadyWritten ?? 0) + alreadyWritten;
      counters.followers += page.ids.length;
      cursor = page.nextCursor;
      const seen = page.ids.length + page.others + alreadyWritten;
      readLimit = Math.min(Limits.MAX_PASS_READ, Math.max(input.pageSize, Math.ceil((input.pageSize * seen) / Math.max(1, page.ids.length))));
      // Read the next page while this one's chunks are written: the HIGH pass keeps a quarter of
      // what it reads, so back-to-back reads are what bring its last follower forward.
      const handOver = cursor !== null && shouldContinueAsNew(input.maxHistoryEvents);
      if (cursor !== null && !handOver) {
        nextFrom = cursor;
        nextPage = read(cursor);
      }
      for (let i = 0; i < page.ids.length && !stopped(); i += input.chunkSize) {
        // Wait only when full: `condition` makes promises even when already true.
        if (counters.chunksInFlight >= input.maxInFlight) await condition(() => counters.chunksInFlight < input.maxInFlight);
        if (stopped()) break;
        // Chunks as activity tasks: their outcomes are history events, which a replay meets where
        // the run did, so a chunk that failed all its attempts pauses the dispatch at once.
        if (probing && asTasks && waiting.length > 0) await flushNow();
        startPassChunk(page.ids.slice(i, i + input.chunkSize));
        // Let a cancel, signal or query waiting for this run get in.
        if (flush.dispatched()) await flushNow();
      }
      if (flush.dueAfterPage(page.ids, cursor === null || stopped() || handOver)) await flushNow();
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
    await settled();
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
