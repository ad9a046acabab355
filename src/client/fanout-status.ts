/**
 * One fanout's state as an operator asks for it (`feed-fanout progress`, `FeedClient.getStatus`):
 * live progress while it runs; after, its result, its failure, or how it was stopped and the
 * counts its closed run answers.
 * @module
 */
import { type Client, WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { FANOUT_FAILED_FAILURE_TYPE, VALIDATION_FAILURE_TYPE } from '../contract/errors';
import { FanoutOperation } from '../contract/constants';
import { type FanoutProgress, progressQuery } from '../contract/fanout';
import { fanoutHandle, fanoutNotFound } from './fanout-runs';

/** One fanout as an operator sees it. */
export interface FanoutStatus {
  workflowId: string;
  /** Temporal's status of the latest run: RUNNING, COMPLETED, FAILED, CANCELED, TERMINATED, TIMED_OUT... */
  status: string;
  startTime: string;
  closeTime: string | null;
  /** The run's summary (`add fanout: alice pin photo-1`), when it has one. */
  summary: string | null;
  /** Live (running) or final progress; `null` when it cannot be had (see `progressUnavailable`). */
  progress: FanoutProgress | null;
  /** Why `progress` is `null` (e.g. the input was rejected before anything ran, or no worker answered). */
  progressUnavailable: string | null;
  /** Why it failed, for a failed run (a `ValidationError`'s message starts with the field). */
  failure: string | null;
  /** The failure's type: `FanoutFailed` (chunks failed for good), `ValidationError` (bad input)... */
  failureType: string | null;
  /**
   * How a run that was stopped from outside ended, from its closing history event: who
   * terminated it and why, its cancellation, or which timeout it passed. `null` otherwise.
   */
  closeReason: string | null;
}

/** How long a closed run's `progress` query may wait for a worker to answer. */
const CLOSED_QUERY_TIMEOUT_MS = 5000;

/** Whether `value` has the shape of a {@link FanoutProgress} (a failure's details may hold anything). */
function isProgress(value: unknown): value is FanoutProgress {
  const v = value as Partial<FanoutProgress> | null;
  return typeof v === 'object' && v !== null && typeof v.followersSeen === 'number' && typeof v.high === 'object' && v.high !== null && typeof v.low === 'object' && v.low !== null;
}

/**
 * The state of an activity's fanout: live progress while it runs, its result or failure after.
 * For a run stopped from outside (terminated, cancelled, timed out) it says how it ended and asks
 * the closed run's `progress` query for the counts (Temporal answers it through a worker polling
 * the run's task queue), saying why when they cannot be had. `closedRunCounts: false` skips that query.
 * @throws NotFoundError when the activity has no such fanout.
 */
export async function fanoutStatus(
  client: Client,
  activityId: string,
  operation: FanoutOperation = FanoutOperation.ADD,
  options: { closedRunCounts?: boolean } = {},
): Promise<FanoutStatus> {
  const handle = fanoutHandle(client, activityId, operation);
  const workflowId = handle.workflowId;
  const description = await handle.describe().catch((err: unknown) => {
    throw fanoutNotFound(err, activityId, operation, workflowId);
  });
  const status = description.status.name;
  let progress: FanoutProgress | null = null;
  let progressUnavailable: string | null = null;
  let failure: string | null = null;
  let failureType: string | null = null;
  let closeReason: string | null = null;
  let queryClosedRun = false;
  if (status === 'RUNNING') progress = await handle.query(progressQuery);
  else if (status === 'COMPLETED') {
    const result: unknown = await handle.result();
    if (isProgress(result)) progress = result;
    else progressUnavailable = 'the run completed without a progress result';
  } else if (status === 'FAILED') {
    try {
      await handle.result();
    } catch (err) {
      const cause = err instanceof WorkflowFailedError ? err.cause : undefined;
      failure = cause?.message ?? (err as Error).message;
      failureType = cause instanceof ApplicationFailure ? (cause.type ?? null) : (cause?.name ?? null);
      // Only a FanoutFailed failure carries the progress in its details; a ValidationError's hold the field.
      const details = cause instanceof ApplicationFailure ? cause.details?.[0] : undefined;
      if (failureType === FANOUT_FAILED_FAILURE_TYPE && isProgress(details)) progress = details;
      else if (failureType === VALIDATION_FAILURE_TYPE) progressUnavailable = 'the input was rejected before any follower was read';
      else queryClosedRun = true;
    }
  } else {
    // Terminated, cancelled, timed out (or another status a later server may add).
    closeReason = await closingReason(client, workflowId, description.runId, description.raw.executionConfig);
    queryClosedRun = true;
  }
  if (queryClosedRun) {
    if (options.closedRunCounts === false) progressUnavailable = 'not asked';
    else ({ progress, progressUnavailable } = await closedRunProgress(client, handle, description.taskQueue));
  }
  return {
    workflowId,
    status,
    startTime: description.startTime.toISOString(),
    closeTime: description.closeTime?.toISOString() ?? null,
    summary: (await description.staticSummary()) ?? null,
    progress,
    progressUnavailable,
    failure,
    failureType,
    closeReason,
  };
}

/** The `progress` query of a closed run: Temporal replays it on a worker polling `taskQueue`. */
async function closedRunProgress(
  client: Client,
  handle: ReturnType<Client['workflow']['getHandle']>,
  taskQueue: string,
): Promise<{ progress: FanoutProgress | null; progressUnavailable: string | null }> {
  // Our own timer, not a gRPC deadline: the call then ends as CANCELLED or DEADLINE_EXCEEDED
  // depending on timing, while this says for sure that nobody answered in time.
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), CLOSED_QUERY_TIMEOUT_MS);
  try {
    const progress = await client.withAbortSignal(abort.signal, () => handle.query(progressQuery));
    if (isProgress(progress)) return { progress, progressUnavailable: null };
    return { progress: null, progressUnavailable: 'the progress query answered something that is not a fanout\'s progress' };
  } catch (err) {
    if (abort.signal.aborted) {
      return {
        progress: null,
        progressUnavailable: `counts unavailable: no worker answered the progress query within ${CLOSED_QUERY_TIMEOUT_MS / 1000} s (a closed run's counts come from a worker polling task queue "${taskQueue}": start one, then ask again)`,
      };
    }
    // The client wraps the gRPC error ("Failed to query Workflow"): the cause says what happened.
    const chain: Error[] = [];
    for (let e: unknown = err; e instanceof Error && chain.length < 5; e = e.cause) chain.push(e);
    const message = chain.map((e) => e.message.split('\n')[0]).join(': ') || String(err);
    return { progress: null, progressUnavailable: `counts unavailable: the progress query failed: ${message}` };
  } finally {
    clearTimeout(timer);
  }
}

type ExecutionConfig = temporal.api.workflow.v1.IWorkflowExecutionConfig | null | undefined;

/** A protobuf duration in words (`90s`, `1h`). */
function durationText(d: temporal.api.workflow.v1.IWorkflowExecutionConfig['workflowRunTimeout']): string | null {
  const seconds = d ? Number(d.seconds ?? 0) + (d.nanos ?? 0) / 1e9 : 0;
  if (!seconds) return null;
  return seconds % 3600 === 0 ? `${seconds / 3600}h` : seconds % 60 === 0 ? `${seconds / 60}m` : `${seconds}s`;
}

/**
 * How a run stopped from outside ended, from its closing history event (read backwards, so a
 * long history costs one small page): the termination's reason and who sent it, the
 * cancellation request, or the timeout it passed.
 */
async function closingReason(client: Client, workflowId: string, runId: string, config: ExecutionConfig): Promise<string> {
  const { EventType } = temporal.api.enums.v1;
  let events: temporal.api.history.v1.IHistoryEvent[] = [];
  try {
    const res = await client.workflowService.getWorkflowExecutionHistoryReverse({
      namespace: client.options.namespace,
      execution: { workflowId, runId },
      maximumPageSize: 50,
    });
    events = res.history?.events ?? [];
  } catch (err) {
    return `its closing event could not be read: ${(err as Error).message}`;
  }
  const closing = events[0];
  const by = (identity: string | null | undefined) => (identity ? ` by ${identity}` : '');
  switch (closing?.eventType) {
    case EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED: {
      const a = closing.workflowExecutionTerminatedEventAttributes;
      return `terminated${by(a?.identity)}: ${a?.reason || 'no reason given'}`;
    }
    case EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED: {
      const request = events.find((e) => e.eventType === EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED)?.workflowExecutionCancelRequestedEventAttributes;
      return `cancelled${by(request?.identity)}${request?.cause ? `: ${request.cause}` : ''} (a removal of the activity cancels its add fanout)`;
    }
    case EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT: {
      const limits = [
        durationText(config?.workflowRunTimeout) && `run timeout ${durationText(config?.workflowRunTimeout)}`,
        durationText(config?.workflowExecutionTimeout) && `execution timeout ${durationText(config?.workflowExecutionTimeout)}`,
      ].filter(Boolean);
      return `timed out${limits.length ? ` (${limits.join(', ')})` : ''}: it was started with a timeout it passed`;
    }
    default:
      return closing ? `closed with event ${EventType[closing.eventType ?? 0] ?? closing.eventType}` : 'its history has no closing event';
  }
}

