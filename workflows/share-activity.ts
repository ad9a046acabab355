/**
 * `shareActivityWorkflow`: posts one activity to a user's connected network ("share to
 * Facebook"), exactly once, without the app's request waiting for the network.
 *
 * Once is kept three ways: the workflow id is derived from (network, account, activity), so
 * sharing twice runs once; the post carries the activity id as its idempotency key, so a retry
 * after a lost answer (the network made the post, then failed to say so) gets the same post back;
 * and a share already recorded is not sent again at all. Rate-limit waits are durable timers;
 * expired credentials end the share as `needs_reauth` and mark the account.
 *
 * Deterministic: no I/O, clock or randomness here, only Temporal APIs.
 * @module
 */
import { ActivityFailure, ApplicationFailure } from '@temporalio/workflow';
import type { ShareResult } from '../activities/networks';
import { CREDENTIALS_EXPIRED_FAILURE_TYPE } from '../src/contract/errors';
import { validateOrFail } from '../src/contract/failures';
import { type ShareInput, type ShareOutcome, validateShareInput } from '../src/contract/shares';
import { apiActivities, withWaits } from './network-calls';

/** Shares one activity to one account's network; see the module comment. */
export async function shareActivityWorkflow(rawInput: ShareInput): Promise<ShareOutcome> {
  const { taskQueue, maxAttempts, ...ref } = validateOrFail(validateShareInput, rawInput);
  const api = apiActivities(taskQueue, maxAttempts);
  let rateLimitWaits = 0;
  try {
    const shared = await withWaits<ShareResult>(() => api.shareActivity(ref), () => rateLimitWaits++);
    return {
      ...ref,
      status: 'shared',
      message: shared.alreadyShared ? `already shared as post ${shared.postId}` : `shared as post ${shared.postId}${shared.replayed ? ' (an earlier attempt had made it)' : ''}`,
      postId: shared.postId,
      replayed: shared.replayed,
      rateLimitWaits,
    };
  } catch (err) {
    const cause = err instanceof ActivityFailure ? err.cause : undefined;
    if (cause instanceof ApplicationFailure && cause.type === CREDENTIALS_EXPIRED_FAILURE_TYPE) {
      return { ...ref, status: 'needs_reauth', message: cause.message, replayed: false, rateLimitWaits };
    }
    throw err;
  }
}
