/**
 * Where a batched post stands (see `src/contract/post-batch.ts`), from its activity document:
 * the progress, status and wait of `FeedClient` for posts without a fanout workflow of their own.
 * @module
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { type WorkflowHandle, WorkflowNotFoundError } from '@temporalio/client';
import { FanoutFailedError } from '../contract/errors';
import { FanoutOperation } from '../contract/constants';
import type { FanoutProgress, PriorityProgress } from '../contract/fanout';
import type { ActivityDoc } from '../storage/collections';
import type { FeedStore } from '../storage/feed-store';
import type { FanoutStatus } from './fanout-status';

/** How often {@link BatchedPostWaiter} reads the posts' state: small posts take milliseconds. */
const WAIT_POLL_MS = 20;
/** ...and at most this often while the store does not answer. */
const WAIT_POLL_MAX_MS = 1000;

/** The progress of a batched post, in the shape a fanout workflow reports. */
export function batchedPostProgress(doc: ActivityDoc): FanoutProgress {
  const f = doc.fanout!;
  const ended = f.state === 'done' || f.state === 'failed';
  const followers = f.followers ?? 0;
  const high = f.high ?? 0;
  const counters = (n: number, written: boolean): PriorityProgress => ({
    followers: n,
    chunksDone: written && n > 0 ? 1 : 0,
    chunksFailed: f.state === 'failed' ? 1 : 0,
    chunksInFlight: 0,
    entriesChanged: 0,
    followersWritten: written ? n : 0,
  });
  const done = f.state === 'done';
  const progress: FanoutProgress = {
    operation: FanoutOperation.ADD,
    activityId: doc._id,
    actorId: doc.actor,
    ...(doc.feedTypes ? { feedTypes: doc.feedTypes } : {}),
    followersSeen: followers,
    pagesRead: ended && f.followers !== undefined ? 1 : 0,
    high: counters(high, done),
    low: counters(followers - high, done),
    continuedAsNew: 0,
    done: ended,
    failures: f.state === 'failed' ? [{ priority: 'high', size: 0, message: f.error ?? 'failed' }] : [],
    stalled: null,
    highServedMs: f.highServedMs ?? null,
  };
  // Entries inserted, all feed types: not split by priority in a post's state.
  progress.high.entriesChanged = f.entriesChanged ?? 0;
  return progress;
}

/** A batched post as `feed-fanout progress` shows a fanout. */
export function batchedPostStatus(doc: ActivityDoc): FanoutStatus {
  const f = doc.fanout!;
  const status = { queued: 'QUEUED', done: 'COMPLETED', failed: 'FAILED', handedOver: 'HANDED_OVER' }[f.state];
  return {
    workflowId: f.workflowId,
    status,
    startTime: new Date(f.queuedAt).toISOString(),
    closeTime: f.endedAt ? new Date(f.endedAt).toISOString() : null,
    summary: `batched post ${doc._id} of ${doc.actor} (${doc.verb} ${doc.object}), written by the shard workflow ${f.workflowId}`,
    progress: batchedPostProgress(doc),
    progressUnavailable: null,
    failure: f.state === 'failed' ? (f.error ?? 'failed') : null,
    failureType: f.state === 'failed' ? 'PostFailed' : null,
    closeReason: null,
  };
}

/**
 * Waits for batched posts to end, for every caller of one client at once: each tick reads the
 * state of every post waited for in one query, so a hundred posts in flight cost one read per
 * tick, not a read per post per tick.
 */
export class BatchedPostWaiter {
  private readonly waiting = new Map<string, Array<(result: ActivityDoc | 'handedOver' | 'missing') => void>>();
  private running = false;

  constructor(private readonly store: FeedStore) {}

  /**
   * The post's document once it is written or failed for good; `handedOver` if a fanout of its own
   * runs it; `missing` if it is no longer stored (removed).
   */
  wait(activityId: string): Promise<ActivityDoc | 'handedOver' | 'missing'> {
    return new Promise((resolve) => {
      const list = this.waiting.get(activityId);
      if (list) list.push(resolve);
      else this.waiting.set(activityId, [resolve]);
      if (!this.running) void this.run();
    });
  }

  private async run(): Promise<void> {
    this.running = true;
    let wait = WAIT_POLL_MS;
    try {
      while (this.waiting.size > 0) {
        await sleep(wait);
        let docs: Map<string, ActivityDoc>;
        // Only these: posts waited for from now on were not asked about.
        const asked = [...this.waiting.keys()];
        try {
          docs = await this.store.getActivities(asked);
          wait = WAIT_POLL_MS;
        } catch {
          // The store does not answer: the posts are still where they were; ask again, less often.
          wait = Math.min(wait * 2, WAIT_POLL_MAX_MS);
          continue;
        }
        for (const id of asked) {
          const resolvers = this.waiting.get(id)!;
          const doc = docs.get(id);
          const state = doc?.fanout?.state;
          const result = !doc || !state ? 'missing' : state === 'handedOver' ? 'handedOver' : state === 'queued' ? null : doc;
          if (result === null) continue;
          this.waiting.delete(id);
          for (const resolve of resolvers) resolve(result);
        }
      }
    } finally {
      this.running = false;
    }
  }
}

/** A batched post's end as `waitForFanout` returns it. @throws FanoutFailedError if it failed for good, with the reason. */
export function batchedPostResult(doc: ActivityDoc): FanoutProgress {
  if (doc.fanout!.state === 'failed') {
    throw new FanoutFailedError(`batched post ${doc._id} failed for good: ${doc.fanout!.error ?? 'no reason recorded'}`, doc.fanout!.workflowId, batchedPostProgress(doc));
  }
  return batchedPostProgress(doc);
}

/** How long {@link waitForRun} waits for a handed-over post's fanout to be started by its shard. */
const HANDOVER_WAIT_MS = 60_000;

/**
 * Waits until the fanout workflow of a post handed over by its shard exists (the shard starts it
 * after the batch that found the post too big); after {@link HANDOVER_WAIT_MS} it returns anyway,
 * and the caller's next call says the run is not found.
 */
export async function waitForRun(handle: WorkflowHandle): Promise<void> {
  const until = Date.now() + HANDOVER_WAIT_MS;
  for (let wait = WAIT_POLL_MS; Date.now() < until; wait = Math.min(wait * 2, WAIT_POLL_MAX_MS)) {
    try {
      await handle.describe();
      return;
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) throw err;
    }
    await sleep(wait);
  }
}
