/**
 * What an operator asks of a running deployment, as functions the CLI prints (and tests call):
 * one fanout's state, the fanouts by state, the backlog of each task queue, retrying a failed
 * fanout. Everything comes from Temporal (the workflows' queries, results and visibility).
 * @module
 */
import { type Client, WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import { ApplicationFailure, defineSearchAttributeKey, SearchAttributeType, TypedSearchAttributes, WorkflowIdReusePolicy } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { FANOUT_FAILED_FAILURE_TYPE, FanoutError, NotFoundError, VALIDATION_FAILURE_TYPE, ValidationError } from '../errors';
import { FANOUT_WORKFLOW_TYPE, FanoutOperation, fanoutWorkflowId, SearchAttribute, TaskQueue } from '../model/constants';
import { type FanoutProgress, type FanoutWorkflowInput, progressQuery } from '../model/fanout';
import { checkId, checkTaskQueue } from '../model/validation';

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

/** The workflow id of an activity's fanout, checked. */
function workflowIdOf(activityId: string, operation: FanoutOperation): string {
  checkId('activityId', activityId);
  return fanoutWorkflowId(operation, activityId);
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
  const workflowId = workflowIdOf(activityId, operation);
  const handle = client.workflow.getHandle(workflowId);
  let description;
  try {
    description = await handle.describe();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) {
      throw new NotFoundError(`no ${operation} fanout for activity "${activityId}" (no workflow ${workflowId}); check the id, or the namespace`);
    }
    throw err;
  }
  const status = description.status.name;
  let progress: FanoutProgress | null = null;
  let progressUnavailable: string | null = null;
  let failure: string | null = null;
  let failureType: string | null = null;
  let closeReason: string | null = null;
  let queryClosedRun = false;
  if (status === 'RUNNING') progress = await handle.query(progressQuery);
  else if (status === 'COMPLETED') {
    const result = await handle.result();
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

/** Which fanouts {@link listFanouts} lists. */
export interface ListFanoutsOptions {
  /** `running`, `failed`, `stalled` (flagged `FanoutStalled`), `completed` or `all`. @default 'running' */
  state?: 'running' | 'failed' | 'stalled' | 'completed' | 'all';
  /** Only this actor's fanouts (`FanoutActor`). */
  actor?: string | undefined;
  /** At most this many, newest first. @default 50 */
  limit?: number;
}

/** One line of {@link listFanouts}. */
export interface FanoutListing {
  workflowId: string;
  status: string;
  actor: string | null;
  operation: string | null;
  stalled: boolean;
  startTime: string;
  closeTime: string | null;
}

const actorKey = defineSearchAttributeKey(SearchAttribute.ACTOR, SearchAttributeType.KEYWORD);
const operationKey = defineSearchAttributeKey(SearchAttribute.OPERATION, SearchAttributeType.KEYWORD);
const stalledKey = defineSearchAttributeKey(SearchAttribute.STALLED, SearchAttributeType.BOOL);

/** The visibility query of {@link listFanouts}. */
export function fanoutListQuery(options: ListFanoutsOptions = {}): string {
  const state = options.state ?? 'running';
  const clauses = [`WorkflowType = '${FANOUT_WORKFLOW_TYPE}'`];
  if (state === 'running') clauses.push(`ExecutionStatus = 'Running'`);
  else if (state === 'failed') clauses.push(`ExecutionStatus = 'Failed'`);
  else if (state === 'completed') clauses.push(`ExecutionStatus = 'Completed'`);
  else if (state === 'stalled') clauses.push(`${SearchAttribute.STALLED} = true`, `ExecutionStatus = 'Running'`);
  else if (state !== 'all') throw new ValidationError('--state', `must be running, failed, stalled, completed or all, got "${String(state)}"`);
  if (options.actor !== undefined) clauses.push(`${SearchAttribute.ACTOR} = '${checkId('--actor', options.actor)}'`);
  return clauses.join(' AND ');
}

/** Fanouts by state (from Temporal's visibility), newest first. */
export async function listFanouts(client: Client, options: ListFanoutsOptions = {}): Promise<FanoutListing[]> {
  const limit = options.limit ?? 50;
  const out: FanoutListing[] = [];
  for await (const run of client.workflow.list({ query: fanoutListQuery(options), pageSize: Math.min(limit, 1000) })) {
    out.push({
      workflowId: run.workflowId,
      status: run.status.name,
      actor: run.typedSearchAttributes.get(actorKey) ?? null,
      operation: run.typedSearchAttributes.get(operationKey) ?? null,
      stalled: run.typedSearchAttributes.get(stalledKey) ?? false,
      startTime: run.startTime.toISOString(),
      closeTime: run.closeTime?.toISOString() ?? null,
    });
    if (out.length >= limit) break;
  }
  return out;
}

/** The backlog of one task queue. */
export interface QueueBacklog {
  taskQueue: string;
  /** `workflow` or `activity` tasks. */
  kind: 'workflow' | 'activity';
  /** Tasks waiting for a worker (approximate, as the server counts them). */
  backlog: number;
  /** Age of the oldest waiting task, in seconds. */
  oldestSeconds: number;
  /** Tasks added and dispatched per second, recently. */
  addRate: number;
  dispatchRate: number;
  /** Workers that polled recently. */
  pollers: number;
}

/** A task queue and the kind of its tasks whose backlog to show. */
export interface BacklogQueue {
  taskQueue: string;
  kind: 'workflow' | 'activity';
}

/**
 * The project's queues: `fanout`'s workflow and activity tasks; `high-fanout` and `low-fanout`'s
 * workflow tasks (the HIGH / LOW passes, whose chunks are local activities) and activity tasks
 * (the chunks of `chunksAsActivities` fanouts); the import and trickle queues' activity tasks.
 */
export const DEFAULT_BACKLOG_QUEUES: ReadonlyArray<BacklogQueue> = [
  { taskQueue: TaskQueue.WORKFLOWS, kind: 'workflow' },
  { taskQueue: TaskQueue.WORKFLOWS, kind: 'activity' },
  { taskQueue: TaskQueue.HIGH, kind: 'workflow' },
  { taskQueue: TaskQueue.HIGH, kind: 'activity' },
  { taskQueue: TaskQueue.LOW, kind: 'workflow' },
  { taskQueue: TaskQueue.LOW, kind: 'activity' },
  { taskQueue: TaskQueue.IMPORT, kind: 'activity' },
  { taskQueue: TaskQueue.IMPORT_WHALE, kind: 'activity' },
  { taskQueue: TaskQueue.TRICKLE, kind: 'activity' },
];

/**
 * `--queue`'s value: `NAME` (both kinds of tasks), `NAME:workflow` or `NAME:activity`.
 * @throws ValidationError naming `field`.
 */
export function parseBacklogQueue(value: string, field = '--queue'): BacklogQueue[] {
  const m = /^(.*):(workflow|activity)$/.exec(value);
  const taskQueue = checkTaskQueue(field, m ? m[1] : value);
  if (m) return [{ taskQueue, kind: m[2] as BacklogQueue['kind'] }];
  return [
    { taskQueue, kind: 'workflow' },
    { taskQueue, kind: 'activity' },
  ];
}

/** Backlog, rates and pollers of task queues (DescribeTaskQueue with stats). */
export async function queueBacklog(
  client: Client,
  namespace: string,
  queues: ReadonlyArray<BacklogQueue> = DEFAULT_BACKLOG_QUEUES,
): Promise<QueueBacklog[]> {
  const { TaskQueueType } = temporal.api.enums.v1;
  return Promise.all(
    queues.map(async ({ taskQueue, kind }) => {
      const res = await client.workflowService.describeTaskQueue({
        namespace,
        taskQueue: { name: taskQueue },
        taskQueueType: kind === 'workflow' ? TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW : TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
        reportStats: true,
      });
      const stats = res.stats;
      const age = stats?.approximateBacklogAge;
      return {
        taskQueue,
        kind,
        backlog: Number(stats?.approximateBacklogCount ?? 0),
        oldestSeconds: age ? Number(age.seconds ?? 0) + (age.nanos ?? 0) / 1e9 : 0,
        addRate: stats?.tasksAddRate ?? 0,
        dispatchRate: stats?.tasksDispatchRate ?? 0,
        pollers: res.pollers?.length ?? 0,
      };
    }),
  );
}

/**
 * Starts a failed (or cancelled, terminated, timed-out) fanout again under the same workflow id,
 * from the start: its writes are idempotent, so followers that have the entry count as unchanged
 * and only what is missing is written. Keeps the input (minus the continuation), the summary and
 * the search attributes.
 * @throws NotFoundError for an unknown fanout; FanoutError when its latest run is running or completed.
 */
export async function retryFanout(
  client: Client,
  activityId: string,
  operation: FanoutOperation = FanoutOperation.ADD,
): Promise<{ workflowId: string; runId: string }> {
  const status = await fanoutStatus(client, activityId, operation, { closedRunCounts: false });
  if (status.status === 'RUNNING' || status.status === 'COMPLETED') {
    throw new FanoutError(`the ${operation} fanout of "${activityId}" is ${status.status.toLowerCase()}: only a failed, cancelled, terminated or timed-out fanout can be retried`);
  }
  const { description, input } = await latestRunInput(client, status.workflowId);
  const { continued: _continued, ...original } = input;
  const searchAttributes = description.typedSearchAttributes.getAll().filter((pair) => pair.key.name !== SearchAttribute.STALLED);
  const next = await client.workflow.start(FANOUT_WORKFLOW_TYPE, {
    taskQueue: description.taskQueue,
    workflowId: status.workflowId,
    args: [original],
    workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
    ...(status.summary ? { staticSummary: `${status.summary} (retry)` } : {}),
    ...(searchAttributes.length ? { typedSearchAttributes: new TypedSearchAttributes(searchAttributes) } : {}),
  });
  return { workflowId: next.workflowId, runId: next.firstExecutionRunId };
}

/** The description of a fanout's latest run and the input it was started with. */
async function latestRunInput(client: Client, workflowId: string) {
  const handle = client.workflow.getHandle(workflowId);
  const description = await handle.describe();
  const history = await handle.fetchHistory();
  const payloads = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads ?? [];
  const converter = client.options.loadedDataConverter.payloadConverter;
  const input = payloads[0] ? converter.fromPayload(payloads[0]) : undefined;
  if (!input || typeof input !== 'object') throw new FanoutError(`cannot read the input of ${workflowId}'s latest run`);
  return { description, input: input as FanoutWorkflowInput };
}

/**
 * The queues an activity's add fanout ran on (its workflow queue and chunk queues), so a removal
 * or anything else started for it goes where its workers are. `undefined` when it has no add fanout.
 */
export async function fanoutQueuesOf(client: Client, activityId: string): Promise<{ taskQueue: string; highTaskQueue?: string; lowTaskQueue?: string } | undefined> {
  try {
    const { description, input } = await latestRunInput(client, workflowIdOf(activityId, FanoutOperation.ADD));
    return {
      taskQueue: description.taskQueue,
      ...(input.highTaskQueue ? { highTaskQueue: input.highTaskQueue } : {}),
      ...(input.lowTaskQueue ? { lowTaskQueue: input.lowTaskQueue } : {}),
    };
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return undefined;
    throw err;
  }
}
