/**
 * What an operator asks of a running deployment, as functions the CLI prints (and tests call):
 * one fanout's state, the fanouts by state, the backlog of each task queue, retrying a failed
 * fanout. Everything comes from Temporal (the workflows' queries, results and visibility).
 * @module
 */
import { type Client, WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import { ApplicationFailure, defineSearchAttributeKey, SearchAttributeType, TypedSearchAttributes, WorkflowIdReusePolicy } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { FanoutError, NotFoundError, ValidationError } from '../errors';
import { FANOUT_WORKFLOW_TYPE, FanoutOperation, fanoutWorkflowId, SearchAttribute, TaskQueue } from '../model/constants';
import { type FanoutProgress, type FanoutWorkflowInput, progressQuery } from '../model/fanout';
import { checkId } from '../model/validation';

/** One fanout as an operator sees it. */
export interface FanoutStatus {
  workflowId: string;
  /** Temporal's status of the latest run: RUNNING, COMPLETED, FAILED, CANCELLED, TERMINATED... */
  status: string;
  startTime: string;
  closeTime: string | null;
  /** The run's summary (`add fanout: alice pin photo-1`), when it has one. */
  summary: string | null;
  /** Live (running) or final progress; `null` when the run has none (e.g. terminated). */
  progress: FanoutProgress | null;
  /** Why it failed, for a failed run. */
  failure: string | null;
}

/** The workflow id of an activity's fanout, checked. */
function workflowIdOf(activityId: string, operation: FanoutOperation): string {
  checkId('activityId', activityId);
  return fanoutWorkflowId(operation, activityId);
}

/**
 * The state of an activity's fanout: live progress while it runs, its result or failure after.
 * @throws NotFoundError when the activity has no such fanout.
 */
export async function fanoutStatus(client: Client, activityId: string, operation: FanoutOperation = FanoutOperation.ADD): Promise<FanoutStatus> {
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
  let failure: string | null = null;
  if (status === 'RUNNING') progress = await handle.query(progressQuery);
  else if (status === 'COMPLETED') progress = (await handle.result()) as FanoutProgress;
  else if (status === 'FAILED') {
    try {
      await handle.result();
    } catch (err) {
      const cause = err instanceof WorkflowFailedError ? err.cause : undefined;
      failure = cause?.message ?? (err as Error).message;
      if (cause instanceof ApplicationFailure && cause.details?.[0]) progress = cause.details[0] as FanoutProgress;
    }
  }
  return {
    workflowId,
    status,
    startTime: description.startTime.toISOString(),
    closeTime: description.closeTime?.toISOString() ?? null,
    summary: (await description.staticSummary()) ?? null,
    progress,
    failure,
  };
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

/** The project's queues: the workflows' and both chunk queues' activity tasks. */
export const DEFAULT_BACKLOG_QUEUES: ReadonlyArray<{ taskQueue: string; kind: 'workflow' | 'activity' }> = [
  { taskQueue: TaskQueue.WORKFLOWS, kind: 'workflow' },
  { taskQueue: TaskQueue.WORKFLOWS, kind: 'activity' },
  { taskQueue: TaskQueue.HIGH, kind: 'activity' },
  { taskQueue: TaskQueue.LOW, kind: 'activity' },
  { taskQueue: TaskQueue.IMPORT, kind: 'activity' },
  { taskQueue: TaskQueue.IMPORT_WHALE, kind: 'activity' },
  { taskQueue: TaskQueue.TRICKLE, kind: 'activity' },
];

/** Backlog, rates and pollers of task queues (DescribeTaskQueue with stats). */
export async function queueBacklog(
  client: Client,
  namespace: string,
  queues: ReadonlyArray<{ taskQueue: string; kind: 'workflow' | 'activity' }> = DEFAULT_BACKLOG_QUEUES,
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
  const status = await fanoutStatus(client, activityId, operation);
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
