/**
 * The state of one fanout run, shared by its strategies (`inline.ts`, `page-walk.ts`,
 * `passes.ts`, `sweep.ts`) and its stall watch: the progress the `progress` query answers, what the
 * watch compares, how a chunk of this run is started and counted, and how the run ends.
 * Workflow code (deterministic: Temporal APIs only).
 * @module
 */
import { ApplicationFailure, condition, continueAsNew, log, metricMeter, patched, setCurrentDetails, sleep, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { WriteFeedChunkResult } from '../../activities/fanout';
import { ACTIVITY_REMOVED_FAILURE_TYPE } from '../../src/contract/errors';
import { type Priority } from '../../src/contract/constants';
import { type FanoutProgress, type FanoutWorkflowInput, type ResolvedFanoutInput } from '../../src/contract/fanout';
import { Metric } from '../../src/contract/metrics';
import { actorKey, stalledKey } from '../../src/contract/search-attributes';
import { type ChunkBase, type ChunkPlace, startChunk } from './chunks';
import { currentDetails, fanoutFailure } from './details';
import { noteChunkFailure, recordChunkFailureMarker } from './policies';

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

/** One run of `fanoutWorkflow` (a continued run is a new one, carrying the cursor and progress). */
export class FanoutRun {
  readonly progress: FanoutProgress;
  /** Follower cursor of the next page; `null` before the first page and after the last. */
  cursor: string | null;
  /** The settled feed types (given, or the worker's fanout feed types). */
  feedTypes: string[];
  /** When the fanout began (its first run): what `highServedMs` counts from. */
  readonly startedAt = workflowInfo().startTime.getTime();
  /**
   * Set when a chunk fails in a way every later chunk would too (its input, not its followers, is
   * bad): dispatching stops, the chunks in flight finish, and the run fails with this reason.
   */
  abortReason: string | null = null;
  /** A one-page fanout: its chunks are local activities of this run (no task queue round trip). */
  chunksHere = false;
  /** Chunks written here that failed for good, in dispatch order: their `FAILED:` markers go out once all have ended. */
  private readonly failedHere: Array<{ priority: Priority; followerIds: string[]; page: number; err: Error }> = [];

  // --- What the stall watch compares (stall-watch.ts) ----------------------------------------------
  /** Workflow time (deterministic) when each priority's chunks last moved: one finished, or some started waiting. */
  readonly lastMoved = { high: 0, low: 0 };
  /** Since when a page read has been awaited; `null` while none is. */
  pageWaitSince: number | null = null;
  /** Which priority's pass runs now (passes: the pass counts its chunks, not this run). */
  readonly passRunning = { high: false, low: false };
  /** Set when a stalled run moves again, to wake the watch and clear the flag at once. */
  wakeWatch = false;
  /** True once the run has ended: the watch stops. */
  finished = false;

  // --- What the passes reported (passes.ts) ----------------------------------------------------------
  /** The HIGH pass has seen every follower: the LOW count to expect is known. */
  highPassDone = false;
  /** Followers the LOW pass left out because the HIGH pass wrote them. */
  alreadyWritten = 0;
  /** Partitions per priority (1: one pass each). */
  partitions = 1;

  /**
   * Only runs started with the project's search attributes (FeedClient does it unless told not
   * to) may upsert one: on a namespace without them, an upsert would fail the workflow task.
   */
  private readonly searchAttributes = workflowInfo().typedSearchAttributes.get(actorKey) !== undefined;

  constructor(
    readonly input: ResolvedFanoutInput,
    /** The input as given, for continue-as-new. */
    private readonly rawInput: FanoutWorkflowInput,
    progress: FanoutProgress,
  ) {
    this.progress = progress;
    this.cursor = input.continued?.cursor ?? null;
    this.feedTypes = input.feedTypes ?? [];
  }

  /** Chunks of both priorities being written now. */
  inFlight(): number {
    return this.progress.high.chunksInFlight + this.progress.low.chunksInFlight;
  }

  /** Dispatching stops: a chunk failed the way every chunk would, or the activity was removed. */
  stopped(): boolean {
    return this.abortReason !== null || this.progress.activityRemoved === true;
  }

  /**
   * Whether to stop dispatching in the middle of a page. Never for chunks written here: their
   * outcomes reach a replay at other moments than the first run (see `startChunk`), so a stop there
   * would issue other commands; a page is at most `pageSize` chunks' worth, each refused fast.
   * Activity tasks' outcomes are history events, which replay meets where the run met them.
   */
  stopsMidPage(): boolean {
    return !this.chunksHere && this.stopped();
  }

  /** The run's current details (Web UI, `temporal workflow metadata`): live counts, and a stall. */
  showProgress(): void {
    setCurrentDetails(currentDetails(this));
  }

  /** Sets (or, with `null`, clears) the stall flag: the details, the `FanoutStalled` search attribute, a log line. */
  setStalled(reason: string | null): void {
    const progress = this.progress;
    if (reason === progress.stalled) return;
    const was = progress.stalled;
    progress.stalled = reason;
    this.showProgress();
    if (this.searchAttributes && (reason === null) !== (was === null)) upsertSearchAttributes([{ key: stalledKey, value: reason !== null }]);
    if (reason) log.warn('fanout stalled', { activityId: this.input.activityId, reason });
    else log.info('fanout moving again', { activityId: this.input.activityId });
  }

  /** A chunk of `priority` finished (or a pass reported): a stalled run is moving again. */
  moved(priority: Priority): void {
    this.lastMoved[priority] = Date.now();
    if (this.progress.stalled !== null) this.wakeWatch = true;
  }

  /** Keeps a failure for good among the first listed; stops the dispatch when every chunk would fail so. */
  noteFailure(priority: Priority, err: Error, size: number, followerIds?: string[]): void {
    // A removal batch, or a bad field other than the follower ids, fails the same way every time: stop now.
    this.abortReason ??= noteChunkFailure(this.progress.failures, this.input.activityId, priority, err, size, followerIds);
  }

  /** What every chunk of this run writes, but its follower ids. */
  chunkBase(): ChunkBase {
    const { operation, activityId, actorId, activityTime } = this.input;
    return { operation, feedTypes: this.feedTypes, activityId, actorId, ...(activityTime === undefined ? {} : { activityTime }) };
  }

  /** Where this run's chunks of `priority` are written: here, or on the priority's queue. */
  chunkPlace(priority: Priority): ChunkPlace {
    if (this.chunksHere) return { local: true, timeoutMs: this.input.chunkTimeoutMs };
    return { taskQueue: priority === 'high' ? this.input.highTaskQueue : this.input.lowTaskQueue };
  }

  /** Starts one chunk of `priority` (inline and page by page; a pass starts its own). */
  startChunk(priority: Priority, followerIds: string[]): void {
    const counters = this.progress[priority];
    if (counters.chunksInFlight === 0) this.lastMoved[priority] = Date.now();
    const page = this.progress.pagesRead;
    startChunk(this.chunkPlace(priority), this.chunkBase(), { priority, followerIds, page }, counters, {
      written: (_res: WriteFeedChunkResult) => {
        this.moved(priority);
        if (priority === 'high') this.progress.highServedMs = this.lastMoved.high - this.startedAt;
      },
      stopped: (activityRemoved) => {
        this.moved(priority);
        if (activityRemoved) this.progress.activityRemoved = true;
      },
      failed: (err) => {
        this.moved(priority);
        this.noteFailure(priority, err, followerIds.length, followerIds);
        if (this.chunksHere) this.failedHere.push({ priority, followerIds, page, err });
      },
    });
  }

  /** Continues as new: the cursor and the progress travel, with the settled feed types. */
  continueAsNew(cursor: string | null): Promise<never> {
    this.progress.continuedAsNew++;
    const { continued: _previous, ...original } = this.rawInput;
    return continueAsNew<(input: FanoutWorkflowInput) => Promise<FanoutProgress>>({ ...original, feedTypes: this.feedTypes, continued: { cursor, progress: this.progress } });
  }

  /** Waits for the chunks in flight, then completes, or fails if any chunk failed for good. */
  async finish(): Promise<FanoutProgress> {
    const { progress, input } = this;
    await condition(() => this.inFlight() === 0);
    // Every chunk has ended, here and on replay alike: the failed ones get their markers now.
    if (this.failedHere.length && patched(CHUNK_FAILURE_MARKER_PATCH)) {
      await Promise.all(this.failedHere.map((f) => recordChunkFailureMarker(f.priority, f.followerIds, f.page, f.err)));
    }
    if (progress.activityRemoved) return this.removedWhileAdding();
    const failedChunks = progress.high.chunksFailed + progress.low.chunksFailed;
    log.info('fanout finished', {
      activityId: input.activityId,
      operation: input.operation,
      followers: progress.followersSeen,
      changed: progress.high.entriesChanged + progress.low.entriesChanged,
      failedChunks,
    });
    this.setStalled(null);
    progress.done = true;
    this.showProgress();
    const tags = { operation: input.operation };
    const outcome = failedChunks > 0 ? 'failed' : 'completed';
    const fanouts = metricMeter.createCounter(Metric.FANOUTS);
    // The other outcome's series too (adding 0): a series Prometheus first sees at 1 shows no
    // increase, so a worker's first failed fanout would go unseen by `increase(...)`.
    for (const o of ['completed', 'failed'] as const) fanouts.add(o === outcome ? 1 : 0, { ...tags, outcome: o });
    metricMeter.createHistogram(Metric.FANOUT_DURATION, 'int', 'ms').record(Date.now() - this.startedAt, tags);
    if (progress.highServedMs !== null) metricMeter.createHistogram(Metric.HIGH_SERVED, 'int', 'ms').record(progress.highServedMs);
    // Never report success over failed work: the run ends Failed, with counts and the first errors.
    if (failedChunks > 0) throw fanoutFailure(progress, this.abortReason);
    return progress;
  }

  /**
   * The activity was removed while it was being added: its chunks stopped writing. The removal
   * cancels this run right after marking the activity, so wait for that (the run ends Cancelled);
   * should it not come (the remover died in between), fail saying what to do.
   */
  private async removedWhileAdding(): Promise<never> {
    const { activityId } = this.input;
    this.showProgress();
    log.info('activity removed while its fanout ran: waiting for the removal to cancel this run', { activityId });
    await sleep(REMOVAL_CANCEL_WAIT_MS);
    throw ApplicationFailure.create({
      type: ACTIVITY_REMOVED_FAILURE_TYPE,
      nonRetryable: true,
      message:
        `activity ${activityId} was removed while this fanout added it, or was never stored (its chunks stopped writing), and no removal ` +
        `cancelled the run within ${REMOVAL_CANCEL_WAIT_MS / 1000} s: run \`feed-fanout remove ${activityId}\` to sweep what was written ` +
        `(an app that starts fanouts itself stores the activity in the activities collection first)`,
      details: [this.progress],
    });
  }
}
