/**
 * The share workflow's contract: posting one activity to a user's connected network, once.
 * Pure: shared by the workflow, the activities and the client.
 * @module
 */
import { IMPORT_DEFAULTS } from './imports';
import { checkId, checkInt, checkNetworkName, checkObject, checkTaskQueue } from './validation';

/** Workflow type of a share. */
export const SHARE_WORKFLOW_TYPE = 'shareActivityWorkflow';

/** Workflow id of the share of one activity to one account: sharing it twice runs once. */
export function shareWorkflowId(network: string, accountId: string, activityId: string): string {
  return `share/${network}/${accountId}/${activityId}`;
}

/** Input of `shareActivityWorkflow`. */
export interface ShareInput {
  network: string;
  accountId: string;
  activityId: string;
  /** Queue of the API call (a network's own `taskQueue` is not looked up here). @default 'import' */
  taskQueue?: string;
  /** Attempts on transient errors (1..100). @default 10 */
  maxAttempts?: number;
}

/** What a share returns. */
export interface ShareOutcome {
  network: string;
  accountId: string;
  activityId: string;
  /** `needs_reauth`: the token is dead; the account is marked and must reconnect. */
  status: 'shared' | 'needs_reauth';
  message: string;
  /** The post's id on the network, when shared. */
  postId?: string;
  /** An attempt's answer was lost but its post had been made: the network replayed it. */
  replayed: boolean;
  rateLimitWaits: number;
}

/** Checks a share's input; throws `ValidationError` naming the field. */
export function validateShareInput(input: unknown): Required<ShareInput> {
  const obj = checkObject('input', input);
  return {
    network: checkNetworkName('network', obj.network),
    accountId: checkId('accountId', obj.accountId),
    activityId: checkId('activityId', obj.activityId),
    taskQueue: checkTaskQueue('taskQueue', obj.taskQueue ?? IMPORT_DEFAULTS.taskQueue),
    maxAttempts: checkInt('maxAttempts', obj.maxAttempts, 1, 100, IMPORT_DEFAULTS.maxAttempts),
  };
}
