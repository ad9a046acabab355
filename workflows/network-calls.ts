/**
 * Calling network activities from workflows: their options, and the "wait" answer. A helper of
 * the workflows that call networks (not a workflow itself). Deterministic: only Temporal APIs.
 * @module
 */
import { ActivityCancellationType, proxyActivities, sleep } from '@temporalio/workflow';
import type { NetworkActivities, WaitResult } from '../activities/networks';
import { API_REJECTED_FAILURE_TYPE, CREDENTIALS_EXPIRED_FAILURE_TYPE } from '../src/contract/errors';
import { backoffRetry } from './retry';

/** The network activities (one API call each) on `taskQueue`, with up to `maxAttempts` tries on transient errors. */
export function apiActivities(taskQueue: string, maxAttempts: number) {
  // Retry delays come from the activity (`nextRetryDelay`: exponential with jitter); the policy
  // bounds the attempts and lists what is never worth retrying.
  const retry = backoffRetry({ maximumAttempts: maxAttempts, nonRetryable: [CREDENTIALS_EXPIRED_FAILURE_TYPE, API_REJECTED_FAILURE_TYPE] });
  return proxyActivities<NetworkActivities>({
    taskQueue,
    // A call is bounded by the network's requestTimeoutMs (10 s by default); the heartbeat
    // timeout notices a dead worker sooner and carries cancellation to the socket.
    startToCloseTimeout: '1 minute',
    heartbeatTimeout: '10 seconds',
    // A cancelled workflow returns only once its calls have really stopped.
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry,
  });
}


/**
 * Calls `call` until it stops asking to wait, sleeping on a durable timer between calls, and
 * reports every wait to `onWait` (waits the activity spent inside itself, as `waitedMs` of its
 * result, too).
 */
export async function withWaits<T extends { kind: string; waitedMs?: number }>(
  call: () => Promise<T | WaitResult>,
  onWait: (waitedMs: number) => void,
): Promise<Exclude<T, WaitResult>> {
  for (;;) {
    const result = await call();
    if (result.kind !== 'wait') {
      // Short waits for our own limiter happened inside the activity (see `shortWaitMs`).
      const waited = (result as { waitedMs?: number }).waitedMs ?? 0;
      if (waited > 0) onWait(waited);
      return result as Exclude<T, WaitResult>;
    }
    const { waitMs } = result as WaitResult;
    onWait(waitMs);
    await sleep(Math.max(1, waitMs));
  }
}
