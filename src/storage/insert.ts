/**
 * The one idempotent insert used for every batched write.
 * @module
 */
import { type Collection, type Document, MongoBulkWriteError, type OptionalUnlessRequiredId } from 'mongodb';

const DUPLICATE_KEY = 11000;

/** True if `err` is a duplicate-key error (the document is already there). */
export function isDuplicateKey(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === DUPLICATE_KEY;
}

/**
 * Inserts `docs` in one unordered batch and returns how many were new. Documents whose `_id`
 * already exists are skipped, not errors: that is what makes a retried write idempotent.
 * Any other write error is thrown (and retried by Temporal when it happens in an activity).
 */
export async function insertManyIgnoringDuplicates<T extends Document>(
  collection: Collection<T>,
  docs: OptionalUnlessRequiredId<T>[],
): Promise<number> {
  if (docs.length === 0) return 0;
  try {
    return (await collection.insertMany(docs, { ordered: false })).insertedCount;
  } catch (err) {
    if (err instanceof MongoBulkWriteError) {
      const errors = [err.writeErrors].flat();
      if (errors.length > 0 && errors.every(isDuplicateKey)) return err.insertedCount;
    }
    throw err;
  }
}
