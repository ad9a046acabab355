/**
 * Names shared by the client, the workers and the workflows. Pure: workflows import this.
 * @module
 */

/** Task queues. Enum-like `as const` object with a type of the same name. */
export const TaskQueue = {
  /** Workflows and the follower-paging activity. */
  WORKFLOWS: 'fanout',
  /** Feed writes for active (HIGH priority) followers. */
  HIGH: 'high-fanout',
  /** Feed writes for inactive (LOW priority) followers. */
  LOW: 'low-fanout',
  /** Third-party API calls of imports (page fetches and the per-page import). */
  IMPORT: 'import',
  /** The same for accounts whose network is above the whale threshold: their own workers. */
  IMPORT_WHALE: 'import-whale',
  /** Scheduled polling of networks that cannot push updates: few workers, small batches. */
  TRICKLE: 'trickle',
} as const;
export type TaskQueue = (typeof TaskQueue)[keyof typeof TaskQueue];

/** Fanout priority of a follower, as in Stream Framework's `FanoutPriority`. */
export const Priority = {
  HIGH: 'high',
  LOW: 'low',
} as const;
export type Priority = (typeof Priority)[keyof typeof Priority];

/** What a fanout does to each follower's feed. */
export const FanoutOperation = {
  ADD: 'add',
  REMOVE: 'remove',
} as const;
export type FanoutOperation = (typeof FanoutOperation)[keyof typeof FanoutOperation];

/** The feed types of `DEFAULT_FEEDS`. Each is one MongoDB collection (`feed_<type>`). */
export const FeedType = {
  /** The actor's own feed: what the user did. */
  USER: 'user',
  /** What a user reads: activities of the people they follow. */
  TIMELINE: 'timeline',
  /** The timeline grouped by verb and day. */
  TIMELINE_AGGREGATED: 'timeline_aggregated',
  /** What happened to a user ("Susan followed you"), with seen / read state. */
  NOTIFICATION: 'notification',
} as const;
export type FeedType = (typeof FeedType)[keyof typeof FeedType];

/** Workflow type name of the fanout workflow, for apps that start it from another SDK or the CLI. */
export const FANOUT_WORKFLOW_TYPE = 'fanoutWorkflow';

/**
 * Custom search attributes of fanout runs, for the Web UI's and `temporal workflow list`'s
 * filters (e.g. `FanoutActor = "alice"`, `FanoutStalled = true`). They must be registered on the
 * namespace with the types of {@link SEARCH_ATTRIBUTE_TYPES}; the dev stack and the tests do it.
 */
export const SearchAttribute = {
  /** Keyword: the actor whose followers receive the activity. Set at start. */
  ACTOR: 'FanoutActor',
  /** Keyword: `add` or `remove`. Set at start. */
  OPERATION: 'FanoutOperation',
  /** Bool: true while the fanout is stalled (see `stalledAfterMs`), false once it moves again. */
  STALLED: 'FanoutStalled',
} as const;
export type SearchAttribute = (typeof SearchAttribute)[keyof typeof SearchAttribute];

/** The registration type of each of the project's search attributes. */
export const SEARCH_ATTRIBUTE_TYPES: Record<SearchAttribute, 'Keyword' | 'Bool'> = {
  FanoutActor: 'Keyword',
  FanoutOperation: 'Keyword',
  FanoutStalled: 'Bool',
};

/**
 * Workflow id of the fanout of one activity. Derived from the operation and the activity id so
 * that submitting the same activity twice finds the same workflow (see the client's id policies).
 */
export function fanoutWorkflowId(operation: FanoutOperation, activityId: string): string {
  return `fanout-${operation}-${activityId}`;
}

/** Limits that keep inputs small and feeds bounded. */
export const Limits = {
  /** Maximum length of an id (actor, object, target, activity id, follower id). */
  MAX_ID_LENGTH: 128,
  /** Maximum serialized size of an activity's `extra` field, in bytes (UTF-8 JSON). */
  MAX_EXTRA_BYTES: 4096,
  /** Upper bound for `chunkSize`: bigger chunks mix heavy and light tasks and risk timeouts. */
  MAX_CHUNK_SIZE: 1000,
  /** Upper bound for `pageSize` of follower paging (one activity result must stay small). */
  MAX_PAGE_SIZE: 10_000,
  /**
   * Upper bound for the followers a priority pass reads at once: it keeps only its priority's
   * (about `pageSize` of them), so its result stays as small as a page.
   */
  MAX_PASS_READ: 20_000,
  /** Upper bound for activities in flight per fanout (Temporal allows 2,000 pending per workflow). */
  MAX_IN_FLIGHT: 1000,
  /**
   * Upper bound for `removeBatchSize`: below 32,766, SQLite's limit of values per statement,
   * which a FerretDB delete of that many documents reaches.
   */
  MAX_REMOVE_BATCH: 30_000,
} as const;

/**
 * Heartbeat timeout of the activities whose one call can take long (follower pages, feed writes,
 * follow steps); they heartbeat while they run (`withHeartbeats`). A worker killed mid-call
 * delays its work by about this much, not by the start-to-close timeout. Short enough for
 * recovery in seconds (a chunk on a worker that died is retried elsewhere 5 s later), long enough
 * for a loaded event loop (it heartbeats every 1.7 s).
 */
export const HEARTBEAT_TIMEOUT_MS = 5_000;
