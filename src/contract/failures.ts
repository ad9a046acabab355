/**
 * How a {@link ValidationError} crosses into Temporal: one non-retryable failure shape for
 * workflows and activities alike. Pure (`@temporalio/common` only), so workflows may import it.
 * @module
 */
import { ApplicationFailure } from '@temporalio/common';
import { ValidationError, VALIDATION_FAILURE_TYPE } from './errors';

/**
 * A {@link ValidationError} as a non-retryable `ApplicationFailure` of type `ValidationError`
 * (retrying bad input cannot help), with the field as its details; anything else unchanged.
 */
export function toTemporalFailure(err: unknown): unknown {
  if (err instanceof ValidationError) {
    return ApplicationFailure.create({ message: err.message, type: VALIDATION_FAILURE_TYPE, nonRetryable: true, details: [err.field] });
  }
  return err;
}

/**
 * Validates a workflow's raw input with `validate`; a `ValidationError` fails the workflow with
 * the non-retryable failure of {@link toTemporalFailure}, naming the field. Any other error (a
 * validator's bug, or an input it did not foresee) fails it too, as a non-retryable
 * `ValidationError` failure whose message starts `input is malformed: `: thrown as is, it would
 * fail the workflow task, and every retry of it, forever.
 */
export function validateOrFail<T>(validate: (raw: unknown) => T, raw: unknown): T {
  try {
    return validate(raw);
  } catch (err) {
    if (err instanceof ValidationError) throw toTemporalFailure(err);
    throw ApplicationFailure.create({
      message: `input is malformed: ${messageOf(err)}`,
      type: VALIDATION_FAILURE_TYPE,
      nonRetryable: true,
      // The original error and its stack, for whoever fixes the validator.
      ...(err instanceof Error ? { cause: err } : {}),
    });
  }
}

/** An error's message; never throws (`String` of an odd thrown value can). */
function messageOf(err: unknown): string {
  try {
    return err instanceof Error ? err.message : String(err);
  } catch {
    return 'an unprintable error was thrown';
  }
}
