/**
 * The project's one error hierarchy.
 *
 * - {@link FanoutError}: base of everything this package throws on purpose.
 *   - {@link ValidationError}: the caller used the API wrong (bad activity, bad option). Never
 *     retried: inside activities and workflows it becomes a non-retryable `ApplicationFailure`
 *     whose `type` is `ValidationError`.
 *   - {@link ConfigurationError}: the process was started wrong (missing tool, bad env variable).
 *   - {@link StoreError}: the feed store failed at run time (wraps the driver error as `cause`).
 *   - {@link LocalStackError}: a local server (Temporal dev server, FerretDB) could not be started.
 *   - {@link NotFoundError}: something asked for by id does not exist.
 *   - {@link FanoutFailedError}: a fanout ended *Failed* because some of its chunks failed for good.
 *
 * This module is pure (no Node built-ins) so workflows may import it.
 *
 * @module
 */
import type { FanoutProgress } from './fanout-progress';

/** Base class of all errors thrown by this package. */
export class FanoutError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Input failed validation. `field` names the offending field (dotted path). */
export class ValidationError extends FanoutError {
  /** Dotted path of the offending field, e.g. `activity.actor` or `options.chunkSize`. */
  readonly field: string;
  constructor(field: string, problem: string) {
    super(`${field} ${problem}`);
    this.field = field;
  }
}

/** The process environment or options are unusable (e.g. a required tool is missing). */
export class ConfigurationError extends FanoutError {}

/** A feed-store operation failed at run time. The driver's error is the `cause`. */
export class StoreError extends FanoutError {}

/**
 * The store could not be reached (no server to select, connection refused or closed), and this
 * worker did not try again yet: it failed moments ago. Retryable: the fanout waits and probes
 * until the store answers again.
 */
export class StoreUnavailableError extends StoreError {}

/** A local server could not be started or did not become ready. */
export class LocalStackError extends FanoutError {}

/** Something asked for by id does not exist (a fanout, an activity). */
export class NotFoundError extends FanoutError {}

/** The `ApplicationFailure.type` used for validation failures, so callers can match on it. */
export const VALIDATION_FAILURE_TYPE = 'ValidationError';

/**
 * The `ApplicationFailure.type` of a fanout that ended with chunks that failed for good (its
 * details hold the final progress). Non-retryable: the chunks were retried already.
 */
export const FANOUT_FAILED_FAILURE_TYPE = 'FanoutFailed';

/**
 * The `ApplicationFailure.type` of a chunk write refused because its activity was removed (or
 * never stored) while the fanout ran: not a failure of the chunk; the fanout stops dispatching and
 * the removal cancels it.
 */
export const ACTIVITY_REMOVED_FAILURE_TYPE = 'ActivityRemoved';

/**
 * A fanout ended *Failed*: some chunks failed for good (bad data, a misconfigured worker). The
 * message says how many chunks and followers and quotes the first errors; `progress` has the
 * counters. The chunks that succeeded stay written; fix the cause and add the activity again
 * (the fanout reruns, writing only what is missing).
 */
export class FanoutFailedError extends FanoutError {
  constructor(
    message: string,
    /** The workflow id of the failed fanout. */
    readonly workflowId: string,
    /** The fanout's final progress, when the failure carried it. */
    readonly progress: FanoutProgress | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * A third-party network answered with an error, after its error rules classified it. `kind`
 * says what the caller should do: re-authorise (`expired_credentials`), wait
 * (`rate_limited`), retry with backoff (`transient`) or give up (`rejected`).
 */
export class NetworkApiError extends FanoutError {
  constructor(
    message: string,
    /** Network name, as in its definition. */
    readonly network: string,
    /** What the error rules made of the answer. */
    readonly kind: 'expired_credentials' | 'rate_limited' | 'transient' | 'rejected',
    /** HTTP status, or undefined when there was no answer (timeout, connection refused). */
    readonly status?: number,
  ) {
    super(message);
  }
}

/** `ApplicationFailure.type` of failures from expired or revoked credentials: never retried. */
export const CREDENTIALS_EXPIRED_FAILURE_TYPE = 'CredentialsExpired';
/** `ApplicationFailure.type` of answers the network will never accept as sent (other 4xx): never retried. */
export const API_REJECTED_FAILURE_TYPE = 'ApiRequestRejected';
/** `ApplicationFailure.type` of transient API failures (5xx, timeouts, resets): retried with backoff and jitter. */
export const API_TRANSIENT_FAILURE_TYPE = 'ApiTransientError';
