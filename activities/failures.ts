/**
 * How activities report failures to Temporal.
 * @module
 */
import { ApplicationFailure } from '@temporalio/activity';
import { ValidationError, VALIDATION_FAILURE_TYPE } from '../src/errors';

/**
 * Runs `fn`, turning a {@link ValidationError} into a non-retryable failure: retrying bad input
 * cannot help. Everything else (driver errors, timeouts) stays retryable, so Temporal retries it
 * with backoff.
 */
export async function failFastOnBadInput<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ValidationError) {
      throw ApplicationFailure.create({ message: err.message, type: VALIDATION_FAILURE_TYPE, nonRetryable: true, details: [err.field] });
    }
    throw err;
  }
}
