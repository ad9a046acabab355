/**
 * The one retry policy of the project's activities, and its variants: exponential backoff from a
 * second, doubling up to a minute, with no attempt limit, so an outage (database down, worker
 * crash, timeout) delays work but loses none; only failures no retry can help fail at once.
 * Workflow code (deterministic: Temporal APIs only).
 * @module
 */
import type { RetryPolicy } from '@temporalio/workflow';
import { VALIDATION_FAILURE_TYPE } from '../src/contract/errors';

/**
 * The backoff policy. Bad input (`ValidationError`) is never retried; `nonRetryable` adds other
 * failure types, `maximumAttempts` bounds the attempts (default: none).
 *
 * Local activities retry inside the worker that runs them: the SDK moves a retry to a workflow
 * timer only when its backoff passes the local retry threshold (1 minute by default), which this
 * maximum interval never does.
 */
export function backoffRetry(options: { nonRetryable?: readonly string[]; maximumAttempts?: number } = {}): RetryPolicy {
  return {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '1 minute',
    ...(options.maximumAttempts === undefined ? {} : { maximumAttempts: options.maximumAttempts }),
    nonRetryableErrorTypes: [VALIDATION_FAILURE_TYPE, ...(options.nonRetryable ?? [])],
  };
}
