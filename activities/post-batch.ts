/**
 * The activity of a shard of batched small posts (see `src/contract/post-batch.ts`): writes each
 * post of a batch into its followers' feeds, HIGH (active followers) before LOW, and records in
 * each post's activity document where it stands.
 * @module
 */
import { log } from '@temporalio/activity';
import { ValidationError } from '../src/contract/errors';
import { checkId, checkObject } from '../src/contract/validation';
import { FANOUT_DEFAULTS } from '../src/contract/fanout';
import { Limits } from '../src/contract/constants';
import type { FollowerSource } from '../src/contract/follower-source';
import type { PostFanoutState, PostOutcome, PostRequest } from '../src/contract/post-batch';
import { validatePostRequest } from '../src/contract/post-batch';
import type { ActivityDoc } from '../src/storage/collections';
import type { FeedStore } from '../src/storage/feed-store';
import { failFastOnBadInput } from './failures';
import { withHeartbeats } from './heartbeat';
import { StoreBreaker } from './store-breaker';

/** Dependencies of {@link createPostBatchActivities}. */
export interface PostBatchActivityDeps {
  store: FeedStore;
  followers: FollowerSource;
  /** Shared with the fanout activities, so both see the store as down at once. @default a new one */
  breaker?: StoreBreaker;
}

/** Input of `writePostBatch`. */
export interface WritePostBatchInput {
  /** The shard workflow writing them (recorded in each post's state). */
  workflowId: string;
  posts: PostRequest[];
}

/** One post's outcome, the state to record (none: nothing to record), and what to take back should it turn out removed. */
interface PostResult {
  outcome: PostOutcome;
  state?: Partial<PostFanoutState>;
  undo?: { owners: string[]; feedTypes: string[]; actor: string };
}

/** Posts of one batch written at once: each is a few point writes, so a handful keep the store busy. */
const POSTS_IN_FLIGHT = 8;

/** Creates the batched-post activities bound to their dependencies. */
export function createPostBatchActivities({ store, followers, breaker = new StoreBreaker() }: PostBatchActivityDeps) {
  /** Writes one post; returns its outcome and the state to record (none when there is nothing to record). */
  async function writePost(post: PostRequest, doc: ActivityDoc | undefined, workflowId: string): Promise<PostResult> {
    const { activityId, actorId: actor } = post;
    if (!doc || doc.removedAt) return { outcome: { activityId, outcome: 'removed' } };
    const queuedAt = doc.fanout?.queuedAt ?? Date.now();
    // An earlier attempt of this batch (or an earlier batch, for a post signalled twice) finished it.
    const ended = doc.fanout?.state;
    if (ended === 'done' || ended === 'failed') return { outcome: { activityId, outcome: ended, ...(doc.fanout?.error ? { error: doc.fanout.error } : {}) } };
    if (ended === 'handedOver') return { outcome: { activityId, outcome: 'big' } };
    let feedTypes: string[];
    try {
      feedTypes = post.feedTypes ?? store.fanoutFeedTypes;
      feedTypes.forEach((t, i) => store.config(t, `post.feedTypes[${i}]`));
    } catch (err) {
      // Bad for good (a feed type this worker does not know): the post fails, the batch goes on.
      const error = (err as Error).message;
      return { outcome: { activityId, outcome: 'failed', error }, state: { state: 'failed', workflowId, error, endedAt: Date.now() } };
    }
    const pageSize = post.pageSize ?? FANOUT_DEFAULTS.pageSize;
    const chunkSize = post.chunkSize ?? FANOUT_DEFAULTS.chunkSize;
    const page = await breaker.run(() => followers.getFollowerPage({ userId: actor, cursor: null, limit: pageSize }));
    // More than a page: its own fanout workflow pages through, HIGH pass then LOW pass.
    if (page.nextCursor !== null) return { outcome: { activityId, outcome: 'big' }, state: { state: 'handedOver', workflowId } };
    const ref = { id: activityId, actor, time: new Date(post.activityTime) };
    let changed = 0;
    let highServedMs: number | undefined;
    for (const ids of [page.high, page.low]) {
      for (let i = 0; i < ids.length; i += chunkSize) {
        const chunk = ids.slice(i, i + chunkSize);
        // One batched, idempotent write per feed type: a retried batch rewrites nothing twice.
        for (const feedType of feedTypes) changed += (await breaker.run(() => store.addToFeeds(feedType, chunk, ref))).changed;
      }
      if (ids === page.high) highServedMs = Date.now() - queuedAt;
    }
    const followersRead = page.high.length + page.low.length;
    return {
      outcome: { activityId, outcome: 'done' },
      state: { state: 'done', workflowId, followers: followersRead, high: page.high.length, entriesChanged: changed, endedAt: Date.now(), ...(highServedMs === undefined ? {} : { highServedMs }) },
      undo: { owners: [...page.high, ...page.low], feedTypes, actor },
    };
  }

  /**
   * Posts removed while they were being written (the client marks, then sweeps): takes back what
   * was written, so nothing written after the mark outlives the sweep (which may have begun before
   * these writes). One read for the batch.
   */
  async function takeBackRemoved(results: PostResult[]): Promise<void> {
    const written = results.filter((r) => r.undo);
    const live = await breaker.run(() => store.getActivities(written.map((r) => r.outcome.activityId)));
    for (const r of written) {
      const doc = live.get(r.outcome.activityId);
      if (doc && !doc.removedAt) continue;
      const { owners, feedTypes, actor } = r.undo!;
      for (const feedType of feedTypes) await breaker.run(() => store.removeFromFeeds(feedType, owners, { id: r.outcome.activityId, actor }));
      r.outcome = { activityId: r.outcome.activityId, outcome: 'removed' };
      delete r.state;
    }
  }

  return {
    /**
     * Writes a batch of small posts: for each, reads its actor's followers (one page), writes the
     * active ones' feeds, then the others', and records its state in its activity document
     * (durably, one round trip for the batch). A post with more than a page of followers comes
     * back `big` (the workflow hands it to a fanout of its own), a removed one `removed`. An error a
     * retry may cure (the store down) fails the batch, which is retried whole: every write is
     * idempotent and finished posts are skipped.
     */
    async writePostBatch(input: WritePostBatchInput): Promise<PostOutcome[]> {
      return failFastOnBadInput(async () => {
        checkObject('input', input);
        checkId('input.workflowId', input.workflowId);
        if (!Array.isArray(input.posts) || input.posts.length > Limits.MAX_CHUNK_SIZE) throw new ValidationError('input.posts', `must be an array of at most ${Limits.MAX_CHUNK_SIZE} posts`);
        const posts = input.posts.map((p) => validatePostRequest(p));
        return withHeartbeats(async () => {
          // Where each post stands (stored? removed? finished by an earlier attempt?): one read for the batch.
          const docs = await breaker.run(() => store.getActivities(posts.map((p) => p.activityId)));
          const results = new Array<PostResult>(posts.length);
          let next = 0;
          await Promise.all(
            Array.from({ length: Math.min(POSTS_IN_FLIGHT, posts.length) }, async () => {
              while (next < posts.length) {
                const i = next++;
                results[i] = await writePost(posts[i], docs.get(posts[i].activityId), input.workflowId);
              }
            }),
          );
          await takeBackRemoved(results);
          await breaker.run(() => store.setPostStates(results.filter((r) => r.state).map((r) => ({ activityId: r.outcome.activityId, state: r.state! }))));
          const failed = results.filter((r) => r.outcome.outcome === 'failed');
          if (failed.length) log.warn('batched posts failed for good', { failed: failed.map((r) => r.outcome) });
          return results.map((r) => r.outcome);
        });
      });
    },
  };
}

/** The batched-post activities' type, for `proxyLocalActivities`. */
export type PostBatchActivities = ReturnType<typeof createPostBatchActivities>;
