/**
 * What a fanout reports: its counters per priority, its listed failures, its progress. Pure types
 * (no imports but names), so the error classes can name them without importing the validators.
 * @module
 */
import type { FanoutOperation, Priority } from './constants';

/**
 * Counters for one priority class. A removal's batches count as LOW chunks (they run on the LOW
 * queue): `chunksDone` batches, `entriesChanged` entries deleted.
 */
export interface PriorityProgress {
  /** Followers of this priority seen so far. */
  followers: number;
  /** Chunks whose write completed (including chunks that were all duplicates). */
  chunksDone: number;
  /** Chunks that failed for good (non-retryable error or retries exhausted). */
  chunksFailed: number;
  /** Chunks being written right now. */
  chunksInFlight: number;
  /** Feed entries actually inserted (add) or deleted (remove); duplicates on retry don't count. */
  entriesChanged: number;
  /**
   * Followers of this priority whose chunk finished: their feeds hold the entry (an add). Unlike
   * `entriesChanged`, counts each follower once whatever the feed types, and counts entries an
   * earlier attempt had written. Absent in progress recorded before it existed.
   */
  followersWritten?: number;
}

/** A chunk (or removal batch) that failed for good. Only the first few are kept, to keep history small. */
export interface ChunkFailure {
  priority: Priority;
  /** First follower id of the chunk, to find it again (absent for a removal batch). */
  firstFollowerId?: string;
  /** Last follower id of the chunk (absent for a removal batch, and in failures recorded before it existed). */
  lastFollowerId?: string;
  /** Followers in the chunk, or entries asked for by the removal batch. */
  size: number;
  message: string;
}

/**
 * Work that keeps failing with an error a retry may cure (the store unreachable, a timeout) and is
 * being retried: what the fanout shows while it waits, so an operator sees the attempts and the
 * error as they happen, not when the work ends. While it lasts, one chunk probes the store (an
 * activity task, retried with a backoff of 2 s doubling to 1 min) and the others wait for it;
 * nothing is dropped.
 */
export interface RetryStatus {
  /** What keeps failing: a chunk (priority, size, follower range, page) or a page read. */
  what: string;
  /** Chunks waiting to be written again (the probe's included). */
  waiting: number;
  /** Attempts of `what` so far. */
  attempts: number;
  /** The latest attempt's error. */
  lastError: string;
  /** Epoch ms (workflow time) when this began to fail. */
  since: number;
  /** Epoch ms (workflow time) when the current probe began: its attempts back off from 2 s to 1 min. */
  probeStartedAt: number;
}

/** What the `progress` query answers, and what the workflow returns when done. */
export interface FanoutProgress {
  operation: FanoutOperation;
  activityId: string;
  actorId: string;
  /**
   * Feed types written: as given, or the worker's configured fanout feed types, settled when the
   * fanout starts (absent until then).
   */
  feedTypes?: string[];
  /** Followers seen so far, all priorities (a removal reads none: it sweeps by activity id). */
  followersSeen: number;
  /** Follower pages read. */
  pagesRead: number;
  high: PriorityProgress;
  low: PriorityProgress;
  /** How many times this fanout continued as new. */
  continuedAsNew: number;
  /** True once every chunk has finished (done or failed; with failures the run ends *Failed*). */
  done: boolean;
  /** The first failures (at most {@link MAX_LISTED_FAILURES}). */
  failures: ChunkFailure[];
  /** Why the fanout is flagged as stalled (see `stalledAfterMs`); `null` while it makes progress. */
  stalled: string | null;
  /**
   * Milliseconds from the fanout's start until its latest HIGH chunk was written: once done, the
   * time until every active follower had the entry. `null` before the first HIGH chunk.
   */
  highServedMs: number | null;
  /**
   * True when the activity was removed while this add fanout ran: its chunks stopped writing
   * (they check before each write), and the removal cancels the run.
   */
  activityRemoved?: boolean;
  /** Set while work keeps failing and is being retried (the pass retried longest; `waiting` summed over passes). */
  retrying?: RetryStatus | null;
}

/** Chunk failures listed in the progress; the counters still count all of them. */
export const MAX_LISTED_FAILURES = 20;
