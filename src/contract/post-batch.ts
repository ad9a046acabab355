/**
 * Batched small posts: the contract between `FeedClient.addActivity` (with `batchSmallPosts`),
 * the `postBatchWorkflow` of each shard and its activity.
 *
 * Why: most posts reach a few dozen followers, and there a workflow per post is most of the cost
 * (a start, a workflow task, a completion, visibility writes). With batching, a post is a signal
 * to its actor's shard workflow (one durable server write, returned to the app at once); the shard
 * writes the posts that arrived together in one local activity, each post keeping its own durable
 * state in its activity document (`PostFanoutState`), which `getProgress` and `feed-fanout
 * progress` read. A post with more than one page of followers is handed to its own
 * `fanoutWorkflow` (HIGH pass, then LOW pass) as without batching.
 *
 * Pure: shared by the workflow, the activities and the client.
 * @module
 */
import { defineSignal } from '@temporalio/workflow';
import { FanoutOperation } from './constants';
import { type FanoutWorkflowInput, validateFanoutInput } from './fanout';
import { ValidationError } from './errors';
import { checkInt, checkKeys } from './validation';

/** Workflow type of the shard workflows. */
export const POST_BATCH_WORKFLOW_TYPE = 'postBatchWorkflow';

/** Defaults of the batching; see {@link PostBatchOptions}. */
export const POST_BATCH_DEFAULTS = {
  // 8 shards: 8 workflows whose tasks any worker polling the workflow queue takes, so posts
  // spread over up to 8 workers; few enough that each batch still gathers several posts at load.
  shards: 8,
  // Posts written by one activity: bounded so a batch's marker stays small (a result per post).
  maxBatch: 100,
  // A shard continues as new past this many events (a signal per post, a few per batch).
  maxHistoryEvents: 5000,
} as const;

/** Tuning of the batching (`FeedClientOptions.batchSmallPosts`). Every field is optional. */
export interface PostBatchOptions {
  /** Shard workflows posts are spread over, by actor (1..256). @default 8 */
  shards?: number;
  /** A shard continues as new past this many history events (100..40,000); applies to shards this client starts. @default 5000 */
  maxHistoryEvents?: number;
}

/**
 * One post, as the client signals it to its shard: the input its own fanout would get (an add, not
 * scheduled), so a post too big for a batch is handed over unchanged.
 */
export type PostRequest = Omit<FanoutWorkflowInput, 'publishAt' | 'continued'> & { operation: typeof FanoutOperation.ADD; activityTime: number };

/** Input of `postBatchWorkflow`. */
export interface PostBatchInput {
  shard: number;
  /** Continue as new past this many events. @default POST_BATCH_DEFAULTS.maxHistoryEvents */
  maxHistoryEvents?: number;
  /** Posts received but not yet written when the previous run continued as new. */
  pending?: PostRequest[];
  /** Posts written by earlier runs of this shard (for its current details). */
  postsBefore?: number;
}

/** Where a batched post stands, kept in its activity document (`ActivityDoc.fanout`). */
export interface PostFanoutState {
  /** `queued`: signalled to its shard; `done`: written; `failed`: failed for good; `handedOver`: too big, its own fanout runs it. */
  state: 'queued' | 'done' | 'failed' | 'handedOver';
  /** The shard workflow that takes (or took) it. */
  workflowId: string;
  /** Followers read, and of them HIGH (active). */
  followers?: number;
  high?: number;
  /** Entries inserted (an earlier attempt's entries count as already there). */
  entriesChanged?: number;
  /** Epoch ms: queued, and when it ended. */
  queuedAt: number;
  endedAt?: number;
  /** ms from `queuedAt` until every active follower had it. */
  highServedMs?: number;
  /** Why it failed (state `failed`). */
  error?: string;
}

/** What the batch activity says of each post. */
export interface PostOutcome {
  activityId: string;
  outcome: 'done' | 'failed' | 'big' | 'removed';
  error?: string;
}

/** The signal a post arrives by. */
export const postSignal = defineSignal<[PostRequest]>('post');

/**
 * Workflow id of shard `shard` of the deployment whose workflows run on `taskQueue`: `fanout-posts-3`
 * on the default queue. The queue is in the id so two deployments on one namespace (or tests on
 * one server) never share a shard.
 */
export function postBatchWorkflowId(taskQueue: string, shard: number): string {
  return `${taskQueue}-posts-${shard}`;
}

/** The shard of an actor: FNV-1a of its id, so one actor's posts are written in order by one shard. */
export function shardOf(actorId: string, shards: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < actorId.length; i++) {
    h ^= actorId.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % shards;
}

/** Checks the batching options; returns them with defaults. */
export function resolvePostBatchOptions(raw: PostBatchOptions | true): Required<PostBatchOptions> {
  const opts = checkKeys('batchSmallPosts', raw === true ? {} : raw, ['shards', 'maxHistoryEvents']);
  return {
    shards: checkInt('batchSmallPosts.shards', opts.shards, 1, 256, POST_BATCH_DEFAULTS.shards),
    maxHistoryEvents: checkInt('batchSmallPosts.maxHistoryEvents', opts.maxHistoryEvents, 100, 40_000, POST_BATCH_DEFAULTS.maxHistoryEvents),
  };
}

/**
 * Checks a signalled post (an app in another language may send anything) as a fanout's input,
 * naming the field on error: an add, with an activity time, not scheduled.
 */
export function validatePostRequest(raw: unknown): PostRequest {
  const input = validateFanoutInput(raw);
  if (input.operation !== FanoutOperation.ADD) throw new ValidationError('input.operation', 'must be "add" for a batched post');
  if (input.publishAt !== undefined || input.continued !== undefined) throw new ValidationError('input', 'a batched post is neither scheduled (publishAt) nor continued');
  return raw as PostRequest;
}

/** Checks the shard workflow's input. */
export function validatePostBatchInput(raw: unknown): PostBatchInput {
  const input = checkKeys('input', raw, ['shard', 'maxHistoryEvents', 'pending', 'postsBefore']) as unknown as PostBatchInput;
  checkInt('input.shard', input.shard, 0, 255);
  if (input.maxHistoryEvents !== undefined) checkInt('input.maxHistoryEvents', input.maxHistoryEvents, 100, 40_000);
  if (input.pending !== undefined) {
    if (!Array.isArray(input.pending)) throw new ValidationError('input.pending', 'must be an array of posts');
    input.pending.forEach((p) => validatePostRequest(p));
  }
  if (input.postsBefore !== undefined) checkInt('input.postsBefore', input.postsBefore, 0, Number.MAX_SAFE_INTEGER);
  return input;
}
