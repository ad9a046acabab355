/**
 * The share workflow's contract: posting one activity to a user's connected network, once.
 * Pure: shared by the workflow, the activities and the client.
 * @module
 */
import { IMPORT_DEFAULTS } from './imports';
import { checkId, checkInt, checkKeys, checkNetworkName, checkTaskQueue } from './validation';

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

/** Every field of {@link ShareInput}. */
const SHARE_INPUT_KEYS = ['network', 'accountId', 'activityId', 'taskQueue', 'maxAttempts'] as const satisfies ReadonlyArray<keyof ShareInput>;

/**
 * Checks a share's input: unknown fields, prototype keys and wrong types fail; defaults applied.
 * @throws ValidationError naming the field (`input.<field>`).
 */
export function validateShareInput(raw: unknown): Required<ShareInput> {
  const input = checkKeys('input', raw, SHARE_INPUT_KEYS);
  return {
    network: checkNetworkName('input.network', input.network),
    accountId: checkId('input.accountId', input.accountId),
    activityId: checkId('input.activityId', input.activityId),
    taskQueue: checkTaskQueue('input.taskQueue', input.taskQueue ?? IMPORT_DEFAULTS.taskQueue),
    maxAttempts: checkInt('input.maxAttempts', input.maxAttempts, 1, 100, IMPORT_DEFAULTS.maxAttempts),
  };
}
