/**
 * The state and the steps of one run of `fanoutPassWorkflow` (see `pass.ts` for what a pass does
 * and why its decisions replay): the page walk, the chunk dispatch, the flushes, and the take-over
 * of retries (`recover`, `awaitPage`). Each run of the workflow (and each continue-as-new) makes
 * one; the workflow function only validates its input and hands over.
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
import { FanoutOperation, HEARTBEAT_TIMEOUT_MS, Limits } from '../../src/contract/constants';
import { ChunkExecution, type PriorityProgress } from '../../src/contract/fanout';
import type { RetryStatus } from '../../src/contract/fanout-progress';
import { type FanoutPassInput, initialPassProgress, type PassProgress, passProgressSignal } from '../../src/contract/fanout-pass';
import { type ChunkBase, type ChunkPlace, startChunk } from './chunks';
import { PassFlush } from './pass-flush';
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

/**
 * How far the app's clock (which stamps `lastActiveAt`) may lag the Temporal server's. Followers
 * active within this long before a fanout began are written by both passes (the second write
 * changes nothing).
 */
const ACTIVE_CLOCK_SKEW_MS = 5 * 60_000;

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

/** One run of a pass: built once its input is valid; `walk` does the work. */
export class PassRun {
  readonly progress: PassProgress;
  /** Chunks as activity tasks (`chunkExecution: 'activity'`): their outcomes are history events, which a replay meets where the run met them, so the pass may act on them at once. */
  private readonly asTasks: boolean;
  private readonly counters: PriorityProgress;
  private cursor: string | null;
  private readonly fanout: ReturnType<typeof getExternalWorkflowHandle>;
  /**
   * The LOW pass counts as HIGH only followers active before the fanout began (less a margin for
   * clock skew between the app and Temporal): they were HIGH when the HIGH pass read them too.
   * Anyone active since is written here, so nobody who became active between the passes is
   * skipped by both (see `FollowerPageRequest.activeUntil`).
   */
  private readonly lowOnly: { activeUntil?: number };
  /** A partition walks its range of follower ids only. */
  private readonly range: { from?: string; until?: string };
  /** Runs started before it flushed only by size, stopped as soon as a chunk said so, and wrote the HIGH pass's recent followers again. */
  private readonly byCount: boolean;
  /** Runs started before it retried chunk writes and page reads in the worker without end. */
  private readonly probing: boolean;
  private readonly getFollowerPagePart: FanoutActivities['getFollowerPagePart'];
  /**
   * The LOW pass leaves out followers active only since then whose entry the HIGH pass wrote: an
   * entry in the last feed type means an attempt wrote all of them.
   */
  private readonly skipWritten: Pick<GetFollowerPagePartInput, 'skipWritten'>;
  /** Dispatching stops: read at a flush (see the module comment of `pass.ts`), or at once in runs from before. */
  private halted = false;
  /** Chunks that failed for good since the last flush, in the order they were dispatched: their FAILED markers go out at the next. */
  private failedSinceFlush: Array<{ seq: number; followerIds: string[]; page: number; err: Error }> = [];
  private dispatched = 0;
  /** Chunks whose write failed with a retryable error since the last flush: `recover` writes them again. */
  private waiting: WaitingChunk[] = [];
  /** Every chunk of a pass runs the same way (a probe aside), and writes the same but for its followers. */
  private readonly place: ChunkPlace;
  private readonly base: ChunkBase;

  constructor(private readonly input: FanoutPassInput) {
    this.progress = input.continued?.progress ?? { ...initialPassProgress(input.priority), ...(input.partition ? { partition: input.partition.index } : {}) };
    this.asTasks = input.chunkExecution === ChunkExecution.ACTIVITY;
    this.counters = this.progress.counters;
    this.cursor = input.continued?.cursor ?? null;
    this.fanout = getExternalWorkflowHandle(input.fanoutWorkflowId);
    this.lowOnly = input.priority === 'low' ? { activeUntil: input.fanoutStartedAt - ACTIVE_CLOCK_SKEW_MS } : {};
    this.range = { ...(input.partition?.from ? { from: input.partition.from } : {}), ...(input.partition?.until ? { until: input.partition.until } : {}) };
    this.byCount = patched(FLUSH_BY_COUNT_PATCH);
    this.probing = this.byCount && patched(PROBE_PATCH);
    this.getFollowerPagePart = proxyLocalActivities<FanoutActivities>({ startToCloseTimeout: input.chunkTimeoutMs, retry: this.probing ? PASS_CHUNK_RETRY : CHUNK_RETRY }).getFollowerPagePart;
    this.skipWritten = this.byCount && input.priority === 'low' ? { skipWritten: { activityId: input.activityId, feedType: input.feedTypes[input.feedTypes.length - 1] } } : {};
    this.place = {
      ...(this.asTasks ? { taskQueue: workflowInfo().taskQueue } : { local: true as const, timeoutMs: input.chunkTimeoutMs }),
      ...(this.probing ? { retry: PASS_CHUNK_RETRY } : {}),
    };
    this.base = { operation: FanoutOperation.ADD, feedTypes: input.feedTypes, activityId: input.activityId, actorId: input.actorId, activityTime: input.activityTime };
  }

  /** A chunk failed the way every chunk would, or the activity was removed (as the chunks have said so far). */
  private stopReported(): boolean {
    return this.progress.abortReason !== null || this.progress.activityRemoved === true;
  }

  private stopped(): boolean {
    return this.byCount && !this.asTasks ? this.halted : this.stopReported();
  }

  /** Tells the fanout how far this pass is (best effort: a fanout that is gone needs no news). */
  private async report(): Promise<void> {
    await this.fanout.signal(passProgressSignal, this.progress).catch((err: Error) => log.warn('could not report pass progress', { error: err.message }));
  }

  /**
   * Where a probe runs: an activity task on this pass's queue, which the server retries
   * `PROBE_ATTEMPTS` times with backoff from `backoffMs`. The pass's workflow task completes while
   * it runs, however long the store makes it wait, and its retries add no history: a probe costs a
   * few events for its attempts together, not a workflow task heartbeat every few seconds.
   */
  private probeRetry(backoffMs: number) {
    return { ...PASS_CHUNK_RETRY, initialInterval: backoffMs, maximumInterval: this.maxBackoff(), maximumAttempts: PROBE_ATTEMPTS };
  }

  /** The longest backoff of a probe: longer once the history is long (see `PROBE_MAX_BACKOFF_LONG_MS`). */
  private maxBackoff(): number {
    return workflowInfo().historyLength > this.input.maxHistoryEvents ? PROBE_MAX_BACKOFF_LONG_MS : PROBE_MAX_BACKOFF_MS;
  }

  /** The first backoff of the probe after one that started at `backoffMs` failed. */
  private nextBackoff(backoffMs: number): number {
    return Math.min(backoffMs * 2 ** (PROBE_ATTEMPTS - 1), this.maxBackoff());
  }

  private startPassChunk(followerIds: string[], page = this.progress.pagesRead, attemptsBefore = 0, where = this.place, attempts = PASS_ATTEMPTS): void {
    const { input, progress } = this;
    const seq = this.dispatched++;
    startChunk(where, this.base, { priority: input.priority, followerIds, page }, this.counters, {
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
        if (this.byCount && !this.asTasks) this.failedSinceFlush.push({ seq, followerIds, page, err });
      },
      // Failed all its attempts with an error a retry may cure: `recover` takes it over (at the next flush).
      ...(this.probing
        ? {
            retryLater: (err: Error): boolean => {
              if (!isRetryableFailure(err)) return false;
              this.waiting.push({ followerIds, page, attempts: attemptsBefore + attempts, error: shortError(err) });
              return true;
            },
          }
        : {}),
    });
  }

  /** Tells the fanout what keeps failing (a signal, so at each probe: every few seconds at first, every few minutes later). */
  private async reportRetry(status: RetryStatus): Promise<void> {
    this.progress.retrying = status;
    await this.report();
  }

  /**
   * Writes the waiting chunks again, where every chunk dispatched before has ended (so what it
   * decides depends on outcomes a replay sees the same). While the store keeps failing, one chunk
   * probes it (an activity task retried with backoff, see `probeRetry`: 2 s doubling to 1 min) and
   * the others wait, so a long outage costs the history a few events per probe, and the progress
   * shows the attempts and the latest error. Once a probe gets through, the others go back into the
   * pipeline. Nothing is dropped unless the fanout stops (activity removed, or every chunk would
   * fail alike), as the chunks never dispatched are.
   */
  private async recover(): Promise<void> {
    const { input, counters } = this;
    let backoffMs = PROBE_FIRST_BACKOFF_MS;
    const since = Date.now();
    while (this.waiting.length > 0 && !this.stopReported()) {
      const probe = this.waiting.shift()!;
      await this.reportRetry({ what: chunkSummary(input.priority, probe.followerIds, probe.page), waiting: this.waiting.length + 1, attempts: probe.attempts, lastError: probe.error, since, probeStartedAt: Date.now() });
      const before = this.waiting.length;
      this.startPassChunk(probe.followerIds, probe.page, probe.attempts, { taskQueue: workflowInfo().taskQueue, retry: this.probeRetry(backoffMs) }, PROBE_ATTEMPTS);
      await condition(() => counters.chunksInFlight === 0);
      if (this.waiting.length > before) {
        // Failed again: it stays first, and the next probe backs off from where this one stopped.
        this.waiting.unshift(this.waiting.pop()!);
        backoffMs = this.nextBackoff(backoffMs);
        continue;
      }
      // The store answers: the others go back into the pipeline (any failing again wait once more).
      backoffMs = PROBE_FIRST_BACKOFF_MS;
      for (const chunk of this.waiting.splice(0)) {
        if (counters.chunksInFlight >= input.maxInFlight) await condition(() => counters.chunksInFlight < input.maxInFlight);
        this.startPassChunk(chunk.followerIds, chunk.page, chunk.attempts);
      }
      await condition(() => counters.chunksInFlight === 0);
    }
    this.waiting = [];
    if (this.progress.retrying) {
      this.progress.retrying = null;
      await this.report();
    }
  }

  /**
   * Where the chunks dispatched so far have all ended (after a flush, at the end): records the
   * FAILED markers of those that failed for good, in dispatch order, and reads whether to stop.
   */
  private async settled(): Promise<void> {
    if (!this.byCount) return;
    if (this.probing) {
      // A flush whose task the SDK heartbeated may return with chunks still in flight: let them end.
      if (this.counters.chunksInFlight > 0) await condition(() => this.counters.chunksInFlight === 0);
      if (this.waiting.length > 0) await this.recover();
    }
    const failed = this.failedSinceFlush.sort((a, b) => a.seq - b.seq);
    this.failedSinceFlush = [];
    await Promise.all(failed.map((f) => recordChunkFailureMarker(this.input.priority, f.followerIds, f.page, f.err)));
    this.halted = this.stopReported();
  }

  /**
   * The page read ahead; if its read failed all its attempts with an error a retry may cure, reads
   * it again as `recover` writes chunks: once the chunks in flight have ended, one attempt at a
   * time (an activity task), after a wait of 2 s doubling to 1 min, shown in the progress.
   */
  private async awaitPage(ahead: Promise<FollowerPagePart>, pageInput: GetFollowerPagePartInput): Promise<FollowerPagePart> {
    const { input, progress, counters } = this;
    let error: Error;
    try {
      return await ahead;
    } catch (err) {
      if (!this.probing || isCancellation(err) || !isRetryableFailure(err as Error)) throw err;
      error = err as Error;
    }
    if (counters.chunksInFlight > 0) await condition(() => counters.chunksInFlight === 0);
    // Chunks failed too (outcomes all in, as every chunk has ended)? A chunk write tells whether
    // the store is back; a page read may not (see RECOVER_BEFORE_READ_PATCH).
    if (this.waiting.length > 0 && patched(RECOVER_BEFORE_READ_PATCH)) await this.recover();
    const since = Date.now();
    for (let attempts = PASS_ATTEMPTS, backoffMs = PROBE_FIRST_BACKOFF_MS; ; attempts += PROBE_ATTEMPTS, backoffMs = this.nextBackoff(backoffMs)) {
      const what = `${input.priority.toUpperCase()} page ${progress.pagesRead + 1} of followers (read)`;
      await this.reportRetry({ what, waiting: this.waiting.length, attempts, lastError: shortError(error), since, probeStartedAt: Date.now() });
      const { getFollowerPagePart: readAgain } = proxyActivities<FanoutActivities>({
        taskQueue: workflowInfo().taskQueue,
        startToCloseTimeout: input.chunkTimeoutMs,
        heartbeatTimeout: HEARTBEAT_TIMEOUT_MS,
        retry: this.probeRetry(backoffMs),
        summary: `read followers again (page ${progress.pagesRead + 1})`,
      });
      try {
        const page = await readAgain(pageInput);
        progress.retrying = null;
        return page;
      } catch (err) {
        if (isCancellation(err) || !isRetryableFailure(err as Error)) throw err;
        error = err as Error;
      }
    }
  }

  /** Walks the pages and writes their chunks; returns the progress, or continues as new. */
  async walk(): Promise<PassProgress> {
    const { input, progress, counters } = this;
    try {
      // Followers read per page: the first read takes `pageSize`; later ones as many as should hold
      // about `pageSize` of this pass's priority, at most MAX_PASS_READ. The HIGH pass reads every
      // follower to keep a quarter or so: bigger reads are fewer round trips and keep its chunk
      // pipeline full. Computed from the recorded page results, so replay reads the same.
      let readLimit = input.pageSize;
      const pageInput = (from: string | null): GetFollowerPagePartInput => ({ userId: input.actorId, cursor: from, limit: readLimit, priority: input.priority, ...this.range, ...this.lowOnly, ...this.skipWritten });
      // Read ahead, and abandoned when the pass is cancelled or fails: see `startedAhead`.
      const read = (from: string | null) => startedAhead(this.getFollowerPagePart(pageInput(from)));
      let nextFrom = this.cursor;
      let nextPage = read(this.cursor);
      // Runs started before the flush by size reported (and flushed) after every page.
      const flush = new PassFlush(patched(FLUSH_BY_SIZE_PATCH), this.byCount, input.chunkSize, input.maxHistoryEvents, this.asTasks ? 3 : 1);
      const flushNow = async (): Promise<void> => {
        await this.report();
        flush.flushed();
        await this.settled();
      };
      for (;;) {
        const page = await this.awaitPage(nextPage, pageInput(nextFrom));
        progress.pagesRead++;
        const alreadyWritten = page.alreadyWritten ?? 0;
        progress.followersSeen += page.ids.length + page.others + alreadyWritten;
        if (alreadyWritten) progress.alreadyWritten = (progress.alreadyWritten ?? 0) + alreadyWritten;
        counters.followers += page.ids.length;
        this.cursor = page.nextCursor;
        const seen = page.ids.length + page.others + alreadyWritten;
        readLimit = Math.min(Limits.MAX_PASS_READ, Math.max(input.pageSize, Math.ceil((input.pageSize * seen) / Math.max(1, page.ids.length))));
        // Read the next page while this one's chunks are written: the HIGH pass keeps a quarter of
        // what it reads, so back-to-back reads are what bring its last follower forward.
        const handOver = this.cursor !== null && shouldContinueAsNew(input.maxHistoryEvents);
        if (this.cursor !== null && !handOver) {
          nextFrom = this.cursor;
          nextPage = read(this.cursor);
        }
        for (let i = 0; i < page.ids.length && !this.stopped(); i += input.chunkSize) {
          // Wait only when full: `condition` makes promises even when already true.
          if (counters.chunksInFlight >= input.maxInFlight) await condition(() => counters.chunksInFlight < input.maxInFlight);
          if (this.stopped()) break;
          // Chunks as activity tasks: their outcomes are history events, which a replay meets where
          // the run did, so a chunk that failed all its attempts pauses the dispatch at once.
          if (this.probing && this.asTasks && this.waiting.length > 0) await flushNow();
          this.startPassChunk(page.ids.slice(i, i + input.chunkSize));
          // Let a cancel, signal or query waiting for this run get in.
          if (flush.dispatched()) await flushNow();
        }
        if (flush.dueAfterPage(page.ids, this.cursor === null || this.stopped() || handOver)) await flushNow();
        if (this.cursor === null || this.stopped()) break;
        if (handOver) {
          // Local activities in flight cannot be carried over: let them finish, then hand over.
          await condition(() => counters.chunksInFlight === 0);
          progress.continuedAsNew++;
          const { continued: _previous, ...original } = input;
          return continueAsNew<(input: FanoutPassInput) => Promise<PassProgress>>({ ...original, continued: { cursor: this.cursor, progress } });
        }
      }
      await condition(() => counters.chunksInFlight === 0);
      await this.settled();
      progress.done = true;
      await this.report();
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
}
