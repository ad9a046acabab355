/**
 * The project's own metrics, beside the SDK's (`temporal_*`). Workers export both on
 * `feed-fanout worker --metrics-port`; activities add the worker's tags (`task_queue`,
 * `activity_type`, `namespace`), workflows theirs (`workflow_type`, `task_queue`). Pure: workflows
 * import the names from here.
 *
 * Questions an operator asks, in PromQL (see the README):
 * - entries written per second, by queue: `sum by (task_queue) (rate(feed_fanout_entries_written[1m]))`
 * - p95 time until every HIGH follower has the entry: `histogram_quantile(0.95, sum by (le) (rate(feed_fanout_high_served_ms_bucket[5m])))`
 * - chunk failure rate: `sum(rate(temporal_activity_execution_failed{activity_type="writeFeedChunk"}[5m])) / sum(rate(temporal_activity_execution_latency_count{activity_type="writeFeedChunk"}[5m]))`
 * @module
 */

/** Metric names and what they count. */
export const Metric = {
  /** Counter: feed entries inserted by fanouts (not counting ones already there), tag `feed_type`. */
  ENTRIES_WRITTEN: 'feed_fanout_entries_written',
  /** Counter: feed entries (or group memberships) removed, tag `feed_type`. */
  ENTRIES_REMOVED: 'feed_fanout_entries_removed',
  /** Histogram, ms: one chunk write (all its feed types), tag `operation`. */
  CHUNK_DURATION: 'feed_fanout_chunk_duration_ms',
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
