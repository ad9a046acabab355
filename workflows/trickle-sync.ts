/**
 * `trickleSyncWorkflow`: one polling round for networks that cannot push updates (mode
 * `trickle`), or a re-sync of every network (mode `resync`). Started by the Temporal Schedules
 * declared in `src/schedules/schedules.ts`, never by a beat process.
 *
 * It picks a small batch of the stalest accounts and imports each as a child workflow (the same
 * `importFriendsWorkflow` an app starts, under the same id, so a round never runs an import twice
 * beside one already under way), with their calls on the trickle queue so polling never competes
 * with imports users are waiting for. It returns when the whole batch is done.
 *
 * Deterministic: no I/O, clock or randomness here, only Temporal APIs.
 * @module
 */
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { ApplicationFailure, executeChild, proxyActivities } from '@temporalio/workflow';
import type { NetworkActivities } from '../activities/networks';
import { validateOrFail } from '../src/contract/failures';
import { addOutcomes, importWorkflowId, noOutcomes, type TrickleSyncInput, type TrickleSyncResult, validateTrickleInput } from '../src/contract/imports';
import { importFriendsWorkflow } from './imports';
import { backoffRetry } from './retry';

const { pickAccounts } = proxyActivities<NetworkActivities>({
  startToCloseTimeout: '1 minute',
  retry: backoffRetry(),
});

/** Imports a batch of stale accounts; see the module comment. */
export async function trickleSyncWorkflow(rawInput: TrickleSyncInput): Promise<TrickleSyncResult> {
  const input = validateOrFail(validateTrickleInput, rawInput);
  const accounts = await pickAccounts({ mode: input.mode, batchSize: input.batchSize, staleAfterMs: input.staleAfterMs });
  const result: TrickleSyncResult = { accounts: accounts.length, byStatus: {}, items: noOutcomes() };
  const count = (status: string): void => {
    result.byStatus[status] = (result.byStatus[status] ?? 0) + 1;
  };
  await Promise.all(
    accounts.map(async ({ network, accountId }) => {
      try {
        const done = await executeChild(importFriendsWorkflow, {
          workflowId: importWorkflowId(network, accountId),
          args: [{ network, accountId, options: { ...input.importOptions, taskQueue: input.taskQueue } }],
        });
        count(done.status);
        addOutcomes(result.items, done.items);
      } catch (err) {
        if (err instanceof WorkflowExecutionAlreadyStartedError) return count('already_running');
        const cause = (err as { cause?: unknown }).cause;
        count(cause instanceof ApplicationFailure && cause.type === 'ImportFailed' ? 'failed' : 'error');
      }
    }),
  );
  return result;
}
