/**
 * How activities report failures to Temporal.
 * @module
 */
import { toTemporalFailure } from '../src/contract/failures';

/**
 * Runs `fn`, turning a `ValidationError` into a non-retryable failure: retrying bad input
 * cannot help. Everything else (driver errors, timeouts) stays retryable, so Temporal retries it
 * with backoff.
 */
export async function failFastOnBadInput<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw toTemporalFailure(err);
  }
}
