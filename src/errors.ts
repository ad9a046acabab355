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
 *
 * This module is pure (no Node built-ins) so workflows may import it.
 *
 * @module
 */

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

/** A local server could not be started or did not become ready. */
export class LocalStackError extends FanoutError {}

/** The `ApplicationFailure.type` used for validation failures, so callers can match on it. */
export const VALIDATION_FAILURE_TYPE = 'ValidationError';
