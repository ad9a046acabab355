/**
 * An add by priority: the HIGH pass (`fanoutPassWorkflow`, a child workflow on the HIGH queue)
 * writes every active follower's feed, then the LOW pass the others', so active followers come
 * first across the whole fanout, not page by page. Each pass reports its progress as it goes,
 * which this run shows and watches; their chunks are local activities of the pass (`pass.ts`).
 * Workflow code (deterministic: Temporal APIs only).
 * @module
 */
import { ChildWorkflowCancellationType, executeChild, log, setHandler, workflowInfo } from '@temporalio/workflow';
import type { Priority } from '../../src/contract/constants';
import { type FanoutProgress, MAX_LISTED_FAILURES } from '../../src/contract/fanout';
import { fanoutPassWorkflowId, type PassProgress, passProgressSignal, validatePassProgress } from '../../src/contract/fanout-pass';
import { fanoutPassWorkflow } from './pass';
import type { FanoutRun } from './run';

/** Runs the HIGH pass, then the LOW pass (unless the HIGH pass saw nobody else), then finishes. */
export async function runPasses(run: FanoutRun): Promise<FanoutProgress> {
  const { input, progress } = run;
  const workflowId = workflowInfo().workflowId;
  const reported: Partial<Record<Priority, PassProgress>> = {};
  /** Takes a pass's report (a signal while it runs, its result at the end) into this run's progress. */
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
    run.alreadyWritten = low?.alreadyWritten ?? 0;
    run.highPassDone = high?.done ?? false;
    if (pass.activityRemoved) progress.activityRemoved = true;
    if (pass.abortReason !== null && run.abortReason === null) run.abortReason = pass.abortReason;
    run.moved(pass.priority);
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
    if (priority === 'low' && reported.high?.done && progress.followersSeen === progress.high.followers) break;
    run.passRunning[priority] = true;
    run.lastMoved[priority] = Date.now();
    run.showProgress();
    const result = await executeChild(fanoutPassWorkflow, {
      workflowId: fanoutPassWorkflowId(workflowId, priority),
      taskQueue: priority === 'high' ? input.highTaskQueue : input.lowTaskQueue,
      args: [
        {
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
        },
      ],
      cancellationType: ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED,
      staticSummary: `${priority.toUpperCase()} pass of ${input.activityId} (${input.actorId}'s ${priority === 'high' ? 'active' : 'other'} followers)`,
    }).catch((err: unknown) => {
      // Cancelled or failed: the pass has closed, so none of its chunks is in flight any more.
      run.passRunning[priority] = false;
      progress[priority].chunksInFlight = 0;
      throw err;
    });
    run.passRunning[priority] = false;
    apply(result);
    run.showProgress();
    if (run.stopped()) break;
  }
  return run.finish();
}
