/**
 * What the operator command does besides showing one fanout: the fanouts by state, retrying a
 * failed one, and where an activity's fanout ran.
 * @module
 */
import { type Client, WorkflowNotFoundError } from '@temporalio/client';
import { TypedSearchAttributes, WorkflowIdReusePolicy } from '@temporalio/common';
import { FanoutError, ValidationError } from '../contract/errors';
import { FANOUT_WORKFLOW_TYPE, FanoutOperation, SearchAttribute } from '../contract/constants';
import { actorKey, operationKey, stalledKey } from '../contract/search-attributes';
import { checkId } from '../contract/validation';
import { fanoutHandle, latestRunInput } from './fanout-runs';
import { fanoutStatus } from './fanout-status';

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
  if (!input) throw new FanoutError(`cannot read the input of ${status.workflowId}'s latest run`);
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

/**
 * The queues an activity's add fanout ran on (its workflow queue and chunk queues), so a removal
 * or anything else started for it goes where its workers are. `undefined` when it has no add fanout.
 */
export async function fanoutQueuesOf(client: Client, activityId: string): Promise<{ taskQueue: string; highTaskQueue?: string; lowTaskQueue?: string } | undefined> {
  try {
    const { description, input } = await latestRunInput(client, fanoutHandle(client, activityId, FanoutOperation.ADD).workflowId);
    return {
      taskQueue: description.taskQueue,
      ...(input?.highTaskQueue ? { highTaskQueue: input.highTaskQueue } : {}),
      ...(input?.lowTaskQueue ? { lowTaskQueue: input.lowTaskQueue } : {}),
    };
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return undefined;
    throw err;
  }
}
