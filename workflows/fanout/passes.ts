/**
 * An add by priority: the HIGH pass (`fanoutPassWorkflow`, a child workflow on the HIGH queue)
 * writes every active follower's feed, then the LOW pass the others', so active followers come
 * first across the whole fanout, not page by page. A fanout of more than `partitionSize` followers
 * splits each pass into ranges of follower ids, run as parallel passes on the priority's queue, so
 * every worker polling it takes a share; every HIGH partition completes before any LOW one starts.
 * Each pass reports its progress as it goes, which this run adds up, shows and watches.
 * Workflow code (deterministic: Temporal APIs only).
 * @module
 */
import { ChildWorkflowCancellationType, executeChild, log, patched, proxyLocalActivities, setHandler, workflowInfo } from '@temporalio/workflow';
import type { FanoutActivities, PartitionPlan } from '../../activities/fanout';
import type { Priority } from '../../src/contract/constants';
import { ChunkExecution, type FanoutProgress, MAX_LISTED_FAILURES, type PriorityProgress } from '../../src/contract/fanout';
import { fanoutPassWorkflowId, type FanoutPassInput, type PartitionRange, type PassProgress, passProgressSignal, validatePassProgress } from '../../src/contract/fanout-pass';
import { fanoutPassWorkflow } from './pass';
import { CHUNK_RETRY } from './policies';
import type { FanoutRun } from './run';

/**
 * The patch that made a fanout plan partitions (a local activity counting and splitting the
 * followers) before its passes; runs started before ran one pass per priority.
 */
export const PARTITIONS_PATCH = 'fanout-partitions';

/**
 * A pass's workflow task timeout. The SDK heartbeats a task that runs local activities at 80% of
 * it, so a pass that has not flushed (every 128 chunks, well under a second on a healthy store)
 * answers a cancel, signal or query within 4 s, and a dead worker's passes move to another worker
 * after at most 5 s. It was 3 s, but a worker busy with 16 partitions' passes (a 1,000,000-follower
 * fanout on 2 cores, beside the servers) then missed the heartbeat's 0.6 s margin: tasks timed out,
 * and another worker redid 85,000 entries already written (no duplicate, but wasted work). At 5 s
 * one run of that bench in three had no timeout, the others redid 12,550 and 29,550 entries; at
 * 10 s, two runs had none, but a worker SIGKILLed among four paused the writes 7.1 s (2.1 s at 5 s).
 */
const PASS_TASK_TIMEOUT = '5 seconds';

// Counts and splits the follower list in this worker: one marker in history.
const { planPartitions } = proxyLocalActivities<FanoutActivities>({ startToCloseTimeout: '5 minutes', retry: CHUNK_RETRY });

/** The ranges a plan's bounds make (one, unbounded, when there are none). */
function rangesOf(plan: PartitionPlan): PartitionRange[] | undefined {
  if (plan.bounds.length === 0) return undefined;
  const starts = [null, ...plan.bounds];
  return starts.map((from, index) => ({ index, count: starts.length, from, until: plan.bounds[index] ?? null }));
}

/** Adds up partitions' counters. */
function sum(parts: PriorityProgress[]): PriorityProgress {
  const total: PriorityProgress = { followers: 0, chunksDone: 0, chunksFailed: 0, chunksInFlight: 0, entriesChanged: 0, followersWritten: 0 };
  for (const p of parts) {
    total.followers += p.followers;
    total.chunksDone += p.chunksDone;
    total.chunksFailed += p.chunksFailed;
    total.chunksInFlight += p.chunksInFlight;
    total.entriesChanged += p.entriesChanged;
    total.followersWritten! += p.followersWritten ?? p.entriesChanged;
  }
  return total;
}

/** Runs the HIGH partitions, then the LOW ones (unless the HIGH pass saw nobody else), then finishes. */
export async function runPasses(run: FanoutRun): Promise<FanoutProgress> {
  const { input, progress } = run;
  const workflowId = workflowInfo().workflowId;
  // Runs started before partitions ran one pass per priority.
  const ranges = patched(PARTITIONS_PATCH)
    ? rangesOf(await planPartitions({ userId: input.actorId, partitionSize: input.partitionSize, maxPartitions: input.maxPartitions }))
    : undefined;
  run.partitions = ranges?.length ?? 1;
  /** The latest report of each pass, by priority and partition. */
  const reported: Record<Priority, Map<number, PassProgress>> = { high: new Map(), low: new Map() };
  /** Takes a pass's report (a signal while it runs, its result at the end) into this run's progress. */
  const apply = (pass: PassProgress): void => {
    const before = reported[pass.priority].get(pass.partition ?? 0);
    // A report that only says what is being retried is not progress: the stall watch keeps counting.
    const moved = !before || before.pagesRead !== pass.pagesRead || before.counters.chunksDone !== pass.counters.chunksDone || before.counters.chunksFailed !== pass.counters.chunksFailed || pass.done;
    reported[pass.priority].set(pass.partition ?? 0, pass);
    const high = [...reported.high.values()];
    const low = [...reported.low.values()];
    const all = [...high, ...low];
    progress[pass.priority] = sum([...reported[pass.priority].values()].map((p) => p.counters));
    progress.pagesRead = all.reduce((n, p) => n + p.pagesRead, 0);
    progress.followersSeen = high.reduce((n, p) => n + p.followersSeen, 0);
    progress.continuedAsNew = all.reduce((n, p) => n + p.continuedAsNew, 0);
    progress.failures = all.flatMap((p) => p.failures).slice(0, MAX_LISTED_FAILURES);
    const served = high.map((p) => p.servedMs).filter((ms): ms is number => ms !== null);
    progress.highServedMs = served.length ? Math.max(...served) : null;
    run.alreadyWritten = low.reduce((n, p) => n + (p.alreadyWritten ?? 0), 0);
    run.highPassDone = high.length === run.partitions && high.every((p) => p.done);
    if (pass.activityRemoved) progress.activityRemoved = true;
    if (pass.abortReason !== null && run.abortReason === null) run.abortReason = pass.abortReason;
    // What is being retried: the pass retrying longest, with the chunks waiting in all of them.
    const retrying = all.flatMap((p) => (p.retrying && !p.done ? [p.retrying] : []));
    if (retrying.length) {
      const longest = retrying.reduce((a, b) => (b.attempts > a.attempts ? b : a));
      progress.retrying = { ...longest, waiting: retrying.reduce((n, r) => n + r.waiting, 0) };
    } else delete progress.retrying;
    if (moved) run.moved(pass.priority);
  };
  setHandler(passProgressSignal, (raw) => {
    try {
      apply(validatePassProgress('signal', raw));
      run.showProgress();
    } catch (err) {
      log.warn('ignored a malformed pass report', { activityId: input.activityId, error: (err as Error).message });
    }
  });
  for (const priority of ['high', 'low'] as const) {
    // Nobody of this priority: the HIGH pass saw every follower.
    if (priority === 'low' && run.highPassDone && progress.followersSeen === progress.high.followers) break;
    run.passRunning[priority] = true;
    run.lastMoved[priority] = Date.now();
    run.showProgress();
    const base: FanoutPassInput = {
      priority,
      activityId: input.activityId,
      actorId: input.actorId,
      activityTime: input.activityTime!,
      feedTypes: run.feedTypes,
      pageSize: input.pageSize,
      chunkSize: input.chunkSize,
      maxInFlight: input.maxInFlight,
      maxHistoryEvents: input.maxHistoryEvents,
      chunkTimeoutMs: input.chunkTimeoutMs,
      fanoutWorkflowId: workflowId,
      fanoutStartedAt: run.startedAt,
      ...(input.chunkExecution === ChunkExecution.ACTIVITY ? { chunkExecution: input.chunkExecution } : {}),
    };
    const who = `${input.actorId}'s ${priority === 'high' ? 'active' : 'other'} followers`;
    // Every partition of the priority at once, each on the priority's queue (any worker polling it).
    const passes = (ranges ?? [undefined]).map((partition) =>
      executeChild(fanoutPassWorkflow, {
        workflowId: fanoutPassWorkflowId(workflowId, priority, partition?.index),
        taskQueue: priority === 'high' ? input.highTaskQueue : input.lowTaskQueue,
        args: [partition ? { ...base, partition } : base],
        cancellationType: ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED,
        // When the worker running a pass dies, its open workflow task (a pass's stays open while
        // its local activities write) times out after this, and another worker takes the pass
        // over: the server's default of 10 s would halt the pass that long.
        workflowTaskTimeout: PASS_TASK_TIMEOUT,
        staticSummary: partition
          ? `${priority.toUpperCase()} pass of ${input.activityId}, partition ${partition.index + 1} of ${partition.count} (${who}${partition.from ? ` from ${partition.from}` : ''}${partition.until ? ` before ${partition.until}` : ''})`
          : `${priority.toUpperCase()} pass of ${input.activityId} (${who})`,
      }),
    );
    // Waits for every partition (a cancelled one included), so none is in flight when this returns.
    const results = await Promise.allSettled(passes);
    run.passRunning[priority] = false;
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      // Cancelled or failed: the passes have closed, so none of their chunks is in flight any more.
      progress[priority].chunksInFlight = 0;
      throw failed.reason;
    }
    for (const r of results) if (r.status === 'fulfilled') apply(r.value);
    run.showProgress();
    if (run.stopped()) break;
  }
  return run.finish();
}
