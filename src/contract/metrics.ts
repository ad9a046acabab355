/**
 * The project's own metrics, beside the SDK's (`temporal_*`). Workers export both on
 * `feed-fanout worker --metrics-port`. The SDK tags the project's metrics in camelCase:
 * activities' with `namespace`, `taskQueue`, `activityType`, workflows' with `namespace`,
 * `taskQueue`, `workflowType`; its own `temporal_*` metrics are labelled in snake_case
 * (`task_queue`, `activity_type`, `workflow_type`). Pure: workflows import the names from here.
 *
 * The questions an operator asks, in PromQL, are in the README (section "Running it in
 * production"); `test/integration/promql.test.ts` runs each of them against a real Prometheus
 * scraping a real worker, in both chunk shapes (local activities of the passes, and
 * `chunksAsActivities`). E.g. entries written per second, by queue:
 * `sum by (taskQueue) (rate(feed_fanout_entries_written[1m]))`; chunk failure rate, in both shapes:
 * `sum(rate(feed_fanout_chunks{outcome=~"failed|rejected"}[5m])) / sum(rate(feed_fanout_chunks[5m]))`.
 * @module
 */
import { ApplicationFailure, CancelledFailure, type MetricMeter } from '@temporalio/common';
import { ACTIVITY_REMOVED_FAILURE_TYPE, VALIDATION_FAILURE_TYPE } from './errors';

/** Metric names and what they count. */
export const Metric = {
  /** Counter: feed entries inserted by fanouts (not counting ones already there), tag `feed_type`. */
  ENTRIES_WRITTEN: 'feed_fanout_entries_written',
  /** Counter: feed entries (or group memberships) removed, tag `feed_type`. */
  ENTRIES_REMOVED: 'feed_fanout_entries_removed',
  /** Histogram, ms: one chunk write (all its feed types), tag `operation`. */
  CHUNK_DURATION: 'feed_fanout_chunk_duration_ms',
  /**
   * Counter: chunk write attempts (`writeFeedChunk`, as a local activity or an activity task),
   * tags `operation` (`add` / `remove`), `outcome` (see {@link ChunkOutcome}). Every outcome's
   * series starts at 0 with a queue's first chunk, so `rate` and `increase` see the first failure.
   */
  CHUNKS: 'feed_fanout_chunks',
  /** Histogram: the attempt number of each chunk write that succeeded (1 = first try). */
  CHUNK_ATTEMPT: 'feed_fanout_chunk_attempt',
  /** Counter: fanouts that ended, tags `operation`, `outcome` (`completed` / `failed`). */
  FANOUTS: 'feed_fanout_fanouts',
  /** Histogram, ms: a fanout from its start (first run) to its end, tag `operation`. */
  FANOUT_DURATION: 'feed_fanout_fanout_duration_ms',
  /** Histogram, ms: a fanout's start until its last HIGH chunk was written (every active follower served). */
  HIGH_SERVED: 'feed_fanout_high_served_ms',
  /** Counter: friend-list pages fetched, tag `network`. */
  IMPORT_PAGES: 'feed_fanout_import_pages',
  /** Counter: friends imported / skipped / failed, tags `network`, `outcome`. */
  IMPORT_ITEMS: 'feed_fanout_import_items',
  /** Counter: calls told to wait by a rate limit (ours or the network's), tag `network`. */
  RATE_LIMIT_WAITS: 'feed_fanout_rate_limit_waits',
} as const;

/**
 * How a chunk write attempt ended, as {@link Metric.CHUNKS} counts it: `written`; `failed` (it
 * threw something retryable: the store was down, a timeout; the attempt is retried); `rejected`
 * (failed for good: a non-retryable failure such as a `ValidationError` on a follower id, the
 * chunk is not retried and its fanout ends Failed); `cancelled` (its fanout was cancelled, or its
 * activity removed, while it wrote: not a failure).
 */
export type ChunkOutcome = 'written' | 'failed' | 'rejected' | 'cancelled';

const CHUNK_OUTCOMES: readonly ChunkOutcome[] = ['written', 'failed', 'rejected', 'cancelled'];

/** The {@link ChunkOutcome} of an attempt that threw `err` (as the activity throws it to Temporal). */
export function chunkOutcomeOf(err: unknown): Exclude<ChunkOutcome, 'written'> {
  if (err instanceof CancelledFailure) return 'cancelled';
  if (err instanceof ApplicationFailure && err.type === ACTIVITY_REMOVED_FAILURE_TYPE) return 'cancelled';
  if (err instanceof ApplicationFailure && (err.nonRetryable || err.type === VALIDATION_FAILURE_TYPE)) return 'rejected';
  return 'failed';
}

/**
 * Runs one chunk write attempt and counts its outcome in {@link Metric.CHUNKS} on `meter` (the
 * activity's, which adds `taskQueue` and `activityType`); rethrows what `write` throws.
 */
export async function countChunkAttempt<T>(meter: MetricMeter, operation: unknown, write: () => Promise<T>): Promise<T> {
  const chunks = meter.createCounter(Metric.CHUNKS, 'chunks', 'chunk write attempts by outcome');
  const op = operation === 'add' || operation === 'remove' ? operation : 'invalid';
  let outcome: ChunkOutcome = 'written';
  try {
    return await write();
  } catch (err) {
    outcome = chunkOutcomeOf(err);
    throw err;
  } finally {
    // Adding 0 to the other outcomes makes their series exist from the first chunk on: a series
    // first seen at 1 has no increase for Prometheus, and the first failure would go unseen.
    for (const o of CHUNK_OUTCOMES) chunks.add(o === outcome ? 1 : 0, { operation: op, outcome: o });
  }
}
