/**
 * One fanout's workflow as code meets it: its handle, the errors its absence and its failure
 * become, the input its latest run was started with. Shared by `FeedClient`, the status and the
 * operator's calls, so all say the same.
 * @module
 */
import { type Client, type WorkflowExecutionDescription, WorkflowFailedError, type WorkflowHandle, WorkflowNotFoundError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { FANOUT_FAILED_FAILURE_TYPE, FanoutFailedError, NotFoundError } from '../contract/errors';
import { FanoutOperation, fanoutWorkflowId } from '../contract/constants';
import type { FanoutProgress, FanoutWorkflowInput } from '../contract/fanout';
import { checkId } from '../contract/validation';

/** The workflow handle of an activity's fanout (the id checked first). */
export function fanoutHandle(client: Client, activityId: string, operation: FanoutOperation = FanoutOperation.ADD): WorkflowHandle {
  checkId('activityId', activityId);
  return client.workflow.getHandle(fanoutWorkflowId(operation, activityId));
}

/** `err` as a {@link NotFoundError} naming the activity when the fanout does not exist; else `err`. */
export function fanoutNotFound(err: unknown, activityId: string, operation: FanoutOperation, workflowId: string): unknown {
  if (!(err instanceof WorkflowNotFoundError)) return err;
  return new NotFoundError(`no ${operation} fanout for activity "${activityId}" (no workflow ${workflowId}); check the id, or the namespace`, { cause: err });
}

/** `err` (from a fanout's result) as a {@link FanoutFailedError} when chunks failed for good; else `err`. */
export function fanoutFailed(err: unknown, workflowId: string): unknown {
  const cause = err instanceof WorkflowFailedError ? err.cause : undefined;
  if (cause instanceof ApplicationFailure && cause.type === FANOUT_FAILED_FAILURE_TYPE) {
    return new FanoutFailedError(cause.message, workflowId, cause.details?.[0] as FanoutProgress | undefined, { cause: err });
  }
  return err;
}

/**
 * The description of a fanout's latest run and the input it was started with (`undefined` when
 * its first event holds none an object).
 * @throws WorkflowNotFoundError from `@temporalio/client` when there is no such workflow.
 */
export async function latestRunInput(client: Client, workflowId: string): Promise<{ description: WorkflowExecutionDescription; input: FanoutWorkflowInput | undefined }> {
  const handle = client.workflow.getHandle(workflowId);
  const description = await handle.describe();
  const history = await handle.fetchHistory();
  const payload = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
  const input: unknown = payload ? client.options.loadedDataConverter.payloadConverter.fromPayload(payload) : undefined;
  return { description, input: input && typeof input === 'object' ? (input as FanoutWorkflowInput) : undefined };
}

