/**
 * The app-facing API: add and remove activities, follow and unfollow, read flat, aggregated and
 * notification feeds, follow fanouts.
 *
 * Long because it is the one class an app uses: each method checks its input, then calls a store
 * or starts (or asks) a workflow; the logic lives in the stores, the workflows and `fanout-*.ts`.
 * @module
 */
import { randomUUID } from 'node:crypto';
import { type Client, WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, type WorkflowHandle, type WorkflowStartOptions } from '@temporalio/client';
import { TypedSearchAttributes, WorkflowIdConflictPolicy, WorkflowIdReusePolicy } from '@temporalio/common';
import type { Db, WriteConcernSettings } from 'mongodb';
import { NotFoundError, ValidationError } from '../contract/errors';
import { FANOUT_WORKFLOW_TYPE, FanoutOperation, FeedType, fanoutWorkflowId, TaskQueue } from '../contract/constants';
import { FANOUT_OPTION_KEYS, type FanoutOptions, type FanoutProgress, type FanoutWorkflowInput, progressQuery, resolveFanoutOptions } from '../contract/fanout';
import { actorKey, operationKey } from '../contract/search-attributes';
import { POST_BATCH_WORKFLOW_TYPE, type PostBatchOptions, type PostRequest, postBatchWorkflowId, postSignal, resolvePostBatchOptions, shardOf } from '../contract/post-batch';
import { BatchedPostWaiter, batchedPostProgress, batchedPostResult, batchedPostStatus, waitForRun } from './batched-posts';
import { deriveActivityId } from './activity-id';
import { fanoutFailed, fanoutHandle, fanoutNotFound, latestRunInput } from './fanout-runs';
import { type FanoutStatus, fanoutStatus } from './fanout-status';
import type { FeedsConfig } from '../contract/feeds';
import {
  checkUnfollowOptions,
  FOLLOW_WORKFLOW_TYPE,
  type FollowOptions,
  type FollowRequest,
  followRequestSignal,
  type FollowState,
  followStateQuery,
  type FollowWorkflowInput,
  followWorkflowId,
  resolveFollowOptions,
  type UnfollowOptions,
} from '../contract/follow';
import { type ActivityInput, checkId, checkIdList, checkKeys, validateActivity } from '../contract/validation';
import type { NotificationCounts } from '../storage/aggregated-feed';
import { type AggregatedFeedPage, type FeedPage, FeedStore, type ReadFeedOptions } from '../storage/feed-store';
import type { ActivityDoc } from '../storage/collections';
import { checkFollowPair, type FollowCounts, type FollowEdge, FollowStore } from '../storage/follow-store';

/** The distinct feed types of `a` then `b`. */
function union(a: readonly string[], b: readonly string[]): string[] {
  return [...new Set([...a, ...b])];
}

/** Options of {@link FeedClient}. */
export interface FeedClientOptions {
  /** A connected Temporal client. */
  temporal: Client;
  /** The database of activities, feeds and follow graph. */
  db: Db;
  /** Feed types (see {@link FeedsConfig}); must be the workers' configuration. @default DEFAULT_FEEDS */
  feeds?: FeedsConfig | undefined;
  /**
   * Write concern of every write the client makes (activities, the actor's own feed, direct
   * notifications). Weakening it gives up the guarantee that an acknowledged write survives a
   * crash of the database. @default DURABLE_WRITE_CONCERN (journaled; majority on a replica set)
   */
  writeConcern?: WriteConcernSettings | undefined;
  /** Task queue of the workflows. @default 'fanout' */
  taskQueue?: string;
  /** Default tuning of every fanout started by this client. @default see {@link FanoutOptions} */
  fanout?: FanoutOptions;
  /**
   * Set the `FanoutActor` / `FanoutOperation` search attributes on runs, for filtering in the Web
   * UI. They must be registered on the namespace (the dev setup does it). @default true
   */
  searchAttributes?: boolean;
  /**
   * Batch small posts: `addActivity` signals the post to a shard workflow (`postBatchWorkflow`,
   * by actor) instead of starting a fanout workflow per post; the shard writes the posts that
   * arrive together in one local activity and records each post's state in its activity document
   * (`getProgress` and `waitForFanout` read it). A post with more than a page of followers is
   * handed to a fanout workflow of its own. Scheduled posts (`publishAt`) always get their own.
   * `true` takes the defaults of {@link PostBatchOptions}. @default false
   */
  batchSmallPosts?: boolean | PostBatchOptions;
}

/** Options of {@link FeedClient.addActivity}: fanout tuning plus scheduling. */
export interface AddActivityOptions extends FanoutOptions {
  /** Publish later: the fanout waits on a durable timer until then. @default now */
  publishAt?: Date;
}

/** What {@link FeedClient.addActivity} and {@link FeedClient.removeActivity} return. */
export interface FanoutStarted {
  /** The activity's id (given, or derived from its fields). */
  activityId: string;
  /** Workflow id of the fanout: find it in the Web UI or with `temporal workflow describe -w`. */
  workflowId: string;
  /** False when this activity's fanout already existed (a repeated submission). */
  started: boolean;
}

/** What {@link FeedClient.follow} and {@link FeedClient.unfollow} return. */
export interface FollowRequested {
  /** Workflow id of the pair's follow workflow (`follow/<follower>/<followee>`). */
  workflowId: string;
  /** Id of this request; the pair's state names the last one applied. */
  requestId: string;
}

/** Options of {@link FeedClient.readNotifications} and the mark calls. */
export interface NotificationOptions extends ReadFeedOptions {
  /** The notification feed type. @default 'notification' */
  feedType?: string;
}

/** A page of a notification feed with the owner's counts. */
export interface NotificationPage extends AggregatedFeedPage {
  counts: NotificationCounts;
}

/** Most recipients {@link FeedClient.notify} writes to directly (more: fan out instead). */
const MAX_DIRECT_RECIPIENTS = 1000;


/**
 * Feeds for app code.
 *
 * @example
 * const feeds = new FeedClient({ temporal: new Client({ connection }), db: mongo.db('feeds') });
 * const { activityId } = await feeds.addActivity({ actor: 'u1', verb: 'pin', object: 'p9' });
 * const page = await feeds.readFeed('timeline', 'u2');
 */
export class FeedClient {
  readonly store: FeedStore;
  readonly follows: FollowStore;
  private readonly temporal: Client;
  private readonly taskQueue: string;
  private readonly fanoutDefaults: FanoutOptions;
  private readonly searchAttributes: boolean;
  private readonly batching: Required<PostBatchOptions> | null;
  private readonly postWaiter: BatchedPostWaiter;

  constructor(options: FeedClientOptions) {
    if (!options?.temporal) throw new ValidationError('options.temporal', 'is required (a connected @temporalio/client Client)');
    if (!options.db) throw new ValidationError('options.db', 'is required (a mongodb Db)');
    this.temporal = options.temporal;
    this.store = new FeedStore(options.db, { feeds: options.feeds, writeConcern: options.writeConcern });
    this.follows = new FollowStore(options.db, { writeConcern: options.writeConcern });
    this.taskQueue = options.taskQueue ?? TaskQueue.WORKFLOWS;
    // Kept as given (checked here), so that a call's options override them before defaults apply.
    this.fanoutDefaults = { ...(options.fanout ?? {}) };
    resolveFanoutOptions(this.fanoutDefaults, 'options.fanout.');
    this.searchAttributes = options.searchAttributes ?? true;
    const batch = options.batchSmallPosts ?? false;
    this.batching = batch === false ? null : resolvePostBatchOptions(batch);
    this.postWaiter = new BatchedPostWaiter(this.store);
  }

  /**
   * Records an activity: stores it, writes it into the actor's own feed, and starts the fanout
   * to the followers' feeds. Returns as soon as the fanout is started.
   * Everything is validated first: a bad activity throws a {@link ValidationError} naming the
   * field, and nothing is written. Submitting the same activity again starts no second fanout.
   */
  async addActivity(activity: ActivityInput, options: AddActivityOptions = {}): Promise<FanoutStarted> {
    const a = validateActivity(activity, new Date());
    const { publishAt, ...tuning } = checkKeys('options', options, [...FANOUT_OPTION_KEYS, 'publishAt']) as AddActivityOptions;
    const fanout = resolveFanoutOptions({ ...this.fanoutDefaults, ...tuning }, 'options.');
    if (publishAt !== undefined && (!(publishAt instanceof Date) || Number.isNaN(publishAt.getTime()))) {
      throw new ValidationError('options.publishAt', 'must be a valid Date');
    }
    const scheduled = publishAt !== undefined && publishAt.getTime() > Date.now();
    this.checkFeedTypes(fanout.feedTypes);
    const activityId = a.id ?? deriveActivityId(a);
    const { id: _id, ...fields } = a;
    const input: FanoutWorkflowInput = {
      operation: FanoutOperation.ADD,
      activityId,
      actorId: a.actor,
      activityTime: a.time.getTime(),
      ...(scheduled ? { publishAt: publishAt.getTime() } : {}),
      ...fanout,
    };
    const shard = this.batching && !scheduled ? shardOf(a.actor, this.batching.shards) : null;
    const batchTo = shard === null ? null : postBatchWorkflowId(this.taskQueue, shard);
    // The feed types its fanout writes, kept with it so a removal sweeps exactly those.
    const stored = await this.store.storeActivity({
      _id: activityId,
      ...fields,
      feedTypes: fanout.feedTypes ?? this.store.fanoutFeedTypes,
      ...(batchTo ? { fanout: { state: 'queued' as const, workflowId: batchTo, queuedAt: Date.now() } } : {}),
    });
    // A scheduled post reaches the actor's own feed when the workflow publishes it.
    if (!scheduled) await this.store.addToFeeds(FeedType.USER, [a.actor], { id: activityId, actor: a.actor, time: a.time });
    if (batchTo) {
      const existing = stored ? null : await this.store.getActivity(activityId);
      // Submitted again: finished (or handed over) already, nothing to send; still queued, send it
      // again (the first call may have died before it did; the shard skips a finished post).
      if (existing?.fanout && existing.fanout.state !== 'queued') return { activityId, workflowId: existing.fanout.workflowId, started: false };
      if (stored || existing?.fanout) return this.sendToShard(shard!, batchTo, input as PostRequest, stored);
    }
    return this.startFanout(input, `${a.actor} ${a.verb} ${a.object}${a.target ? ` → ${a.target}` : ''}`);
  }

  /** Signals a post to its shard workflow, starting the shard if it is not running. */
  private async sendToShard(shard: number, workflowId: string, post: PostRequest, isNew: boolean): Promise<FanoutStarted> {
    await this.temporal.workflow.signalWithStart(POST_BATCH_WORKFLOW_TYPE, {
      taskQueue: this.taskQueue,
      workflowId,
      args: [{ shard, maxHistoryEvents: this.batching!.maxHistoryEvents }],
      signal: postSignal,
      signalArgs: [post],
      staticSummary: `shard ${shard} of batched small posts`,
      ...(this.searchAttributes ? { typedSearchAttributes: new TypedSearchAttributes([{ key: operationKey, value: 'batch' }]) } : {}),
    });
    return { activityId: post.activityId, workflowId, started: isNew };
  }

  /**
   * Removes an activity: hides it at once (marked as being removed, so readers stop seeing it and
   * a fanout still adding it stops writing it), cancels that fanout and waits for its chunks in
   * flight, takes it out of the actor's own feed, then starts a fanout that sweeps it out of every
   * feed its add wrote: the feed types recorded with it (for activities stored before they were
   * recorded: those its add fanout was started with, and the configured fanout feed types), or
   * `options.feedTypes` when given.
   */
  async removeActivity(activityId: string, options: Pick<FanoutOptions, 'feedTypes'> = {}): Promise<FanoutStarted> {
    checkId('activityId', activityId);
    checkKeys('options', options, ['feedTypes']);
    const asked = options.feedTypes === undefined ? undefined : resolveFanoutOptions(options, 'options.').feedTypes;
    this.checkFeedTypes(asked);
    const removeId = fanoutWorkflowId(FanoutOperation.REMOVE, activityId);
    const stored = await this.store.getActivity(activityId);
    if (!stored) {
      // Already removed (a repeated call)? Then its removal fanout exists.
      try {
        await this.temporal.workflow.getHandle(removeId).describe();
        return { activityId, workflowId: removeId, started: false };
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) throw new ValidationError('activityId', `"${activityId}" is not a stored activity`);
        throw err;
      }
    }
    await this.store.markActivityRemoved(activityId);
    const addId = fanoutWorkflowId(FanoutOperation.ADD, activityId);
    await this.cancelAndWait(addId);
    await this.store.removeFromFeeds(FeedType.USER, [stored.actor], { id: activityId, actor: stored.actor });
    const feedTypes = asked ?? stored.feedTypes ?? union((await this.addRunFeedTypes(addId)) ?? [], this.store.fanoutFeedTypes);
    const started = await this.startFanout(
      { operation: FanoutOperation.REMOVE, activityId, actorId: stored.actor, ...resolveFanoutOptions(this.fanoutDefaults), feedTypes },
      `remove ${stored.actor} ${stored.verb} ${stored.object}`,
    );
    await this.store.deleteActivity(activityId);
    return started;
  }

  /**
   * Reads a page of a feed, newest first, straight from MongoDB. Entries whose activity was
   * removed are left out (their feed entries may still be on their way out).
   */
  async readFeed(feedType: string, owner: string, options?: ReadFeedOptions): Promise<FeedPage> {
    const page = await this.store.readFeed(feedType, owner, options);
    return { ...page, items: page.items.filter((i) => i.activity !== null) };
  }

  /**
   * Reads a page of an aggregated feed (e.g. `timeline_aggregated`), newest group first, each
   * group with its counts, its most recent actors and its newest activities.
   */
  async readAggregatedFeed(feedType: string, owner: string, options?: ReadFeedOptions): Promise<AggregatedFeedPage> {
    return this.store.readAggregatedFeed(feedType, owner, options);
  }

  /** Reads a page of `owner`'s notification feed, with the unseen / unread counts. */
  async readNotifications(owner: string, options: NotificationOptions = {}): Promise<NotificationPage> {
    const { feedType = FeedType.NOTIFICATION, ...paging } = checkKeys('options', options, ['feedType', 'limit', 'before']) as NotificationOptions;
    const page = await this.store.readAggregatedFeed(feedType, owner, paging);
    return { ...page, counts: await this.store.aggregated(feedType).counts(owner) };
  }

  /** `owner`'s unseen and unread notification counts (two indexed counts). */
  async notificationCounts(owner: string, feedType: string = FeedType.NOTIFICATION): Promise<NotificationCounts> {
    checkId('owner', owner);
    return this.store.aggregated(feedType).counts(owner);
  }

  /** Marks `owner`'s notification groups seen: all, or the given group keys. Returns how many changed. */
  async markSeen(owner: string, options: { groups?: string[]; feedType?: string } = {}): Promise<number> {
    return this.mark(owner, 'seen', options);
  }

  /** Marks `owner`'s notification groups read (and seen): all, or the given group keys. Returns how many changed. */
  async markRead(owner: string, options: { groups?: string[]; feedType?: string } = {}): Promise<number> {
    return this.mark(owner, 'read', options);
  }

  private async mark(owner: string, what: 'seen' | 'read', options: { groups?: string[]; feedType?: string }): Promise<number> {
    checkId('owner', owner);
    checkKeys('options', options, ['groups', 'feedType']);
    const feed = this.store.aggregated(options.feedType ?? FeedType.NOTIFICATION, 'options.feedType');
    if (options.groups !== undefined) {
      if (!Array.isArray(options.groups) || options.groups.some((g) => typeof g !== 'string' || g.length === 0 || g.length > 300)) {
        throw new ValidationError('options.groups', 'must be a list of group keys (as returned in `group`)');
      }
    }
    return feed.mark(owner, what, options.groups);
  }

  /**
   * Tells a few users directly that something happened to them ("Alice liked your photo"): stores
   * the activity and adds it to each recipient's notification feed, without a workflow. Idempotent
   * (the same activity again changes nothing). For many recipients, fan out instead.
   */
  async notify(recipients: string[], activity: ActivityInput, options: { feedType?: string } = {}): Promise<{ activityId: string }> {
    const owners = checkIdList('recipients', recipients, MAX_DIRECT_RECIPIENTS);
    const a = validateActivity(activity, new Date());
    const feedType = options.feedType ?? FeedType.NOTIFICATION;
    this.store.aggregated(feedType, 'options.feedType');
    const activityId = a.id ?? deriveActivityId(a);
    const { id: _id, ...fields } = a;
    await this.store.storeActivity({ _id: activityId, ...fields, feedTypes: [feedType] });
    await this.store.addToFeeds(feedType, owners, { id: activityId, actor: a.actor, time: a.time });
    return { activityId };
  }

  /**
   * `follower` follows `followee`: records the edge and both counts, copies the followee's recent
   * activities into the follower's feeds and notifies the followee, in the pair's follow workflow.
   * Returns once the request is durably queued. Following twice is one follow. `options` apply
   * when this request starts the pair's workflow (not to a run already going).
   */
  async follow(follower: string, followee: string, options: FollowOptions = {}): Promise<FollowRequested> {
    return this.requestFollow(follower, followee, true, options);
  }

  /**
   * `follower` unfollows `followee`: removes the edge, fixes both counts, removes the followee's
   * activities from the follower's feeds. `options` apply when this starts the pair's run.
   */
  async unfollow(follower: string, followee: string, options: UnfollowOptions = {}): Promise<FollowRequested> {
    return this.requestFollow(follower, followee, false, checkUnfollowOptions(options));
  }

  private async requestFollow(follower: string, followee: string, follow: boolean, options: FollowOptions): Promise<FollowRequested> {
    checkFollowPair(follower, followee);
    const resolved = resolveFollowOptions(options, 'options.');
    this.checkFeedTypes(resolved.feedTypes);
    const workflowId = followWorkflowId(follower, followee);
    const request: FollowRequest = { follow, requestId: randomUUID(), at: Date.now() };
    const input: FollowWorkflowInput = { follower, followee, ...resolved };
    // Signal-with-start: joins the pair's running workflow, or starts one. Either way requests for
    // one pair are applied one at a time in arrival order.
    await this.temporal.workflow.signalWithStart(FOLLOW_WORKFLOW_TYPE, {
      taskQueue: this.taskQueue,
      workflowId,
      args: [input],
      signal: followRequestSignal,
      signalArgs: [request],
      staticSummary: `${follow ? 'follow' : 'unfollow'}: ${follower} → ${followee}`,
    });
    return { workflowId, requestId: request.requestId };
  }

  /** Waits until the pair's follow workflow has applied every request and returns the state. */
  async waitForFollow(follower: string, followee: string): Promise<FollowState> {
    checkFollowPair(follower, followee);
    return this.temporal.workflow.getHandle(followWorkflowId(follower, followee)).result() as Promise<FollowState>;
  }

  /** The pair's state as its running follow workflow sees it. */
  async getFollowState(follower: string, followee: string): Promise<FollowState> {
    checkFollowPair(follower, followee);
    return this.temporal.workflow.getHandle(followWorkflowId(follower, followee)).query(followStateQuery);
  }

  /**
   * Imports many follow edges at once (a graph import), without a workflow per edge: batched
   * inserts, then the affected users' counts recomputed from the edges. No backfill and no
   * notifications. Idempotent: an edge that exists is skipped. Returns how many edges were new.
   */
  async followMany(edges: FollowEdge[]): Promise<{ inserted: number }> {
    const inserted = await this.follows.followMany(edges);
    await this.follows.recount(edges.flatMap((e) => [e.follower, e.followee]));
    return { inserted };
  }

  /** A user's follower and following counts. */
  async getCounts(userId: string): Promise<FollowCounts> {
    return this.follows.getCounts(userId);
  }

  /**
   * The current progress of an activity's fanout (while it runs, or after: a worker answers for a
   * closed run from its history).
   * @throws NotFoundError when the activity has no such fanout (naming the id and the workflow id).
   */
  async getProgress(activityId: string, operation: FanoutOperation = FanoutOperation.ADD): Promise<FanoutProgress> {
    const handle = this.handle(activityId, operation);
    // The workflow first: it answers while the store is down (when an operator asks most).
    try {
      return await handle.query(progressQuery);
    } catch (err) {
      // No fanout workflow of its own: a batched post answers from its activity document.
      const batched = operation === FanoutOperation.ADD && err instanceof WorkflowNotFoundError ? await this.batchedPost(activityId) : null;
      if (batched) return batchedPostProgress(batched);
      throw fanoutNotFound(err, activityId, operation, handle.workflowId);
    }
  }

  /**
   * An activity's fanout as an operator sees it (what `feed-fanout progress` prints): its status,
   * live or final progress, and for a run that failed or was stopped, why.
   * @throws NotFoundError when the activity has no such fanout.
   */
  async getStatus(activityId: string, operation: FanoutOperation = FanoutOperation.ADD): Promise<FanoutStatus> {
    try {
      return await fanoutStatus(this.temporal, activityId, operation);
    } catch (err) {
      const batched = operation === FanoutOperation.ADD && err instanceof NotFoundError ? await this.batchedPost(activityId) : null;
      if (batched) return batchedPostStatus(batched);
      throw err;
    }
  }

  /**
   * Waits for an activity's fanout to finish and returns its summary.
   * @throws FanoutFailedError if chunks failed for good (the run ended *Failed*); its message gives
   *   the counts and the first errors, its `progress` the counters.
   * @throws WorkflowFailedError from `@temporalio/client` if the run failed otherwise (bad input,
   *   cancelled, terminated).
   * @throws NotFoundError when the activity has no such fanout.
   */
  async waitForFanout(activityId: string, operation: FanoutOperation = FanoutOperation.ADD): Promise<FanoutProgress> {
    const handle = this.handle(activityId, operation);
    if (operation === FanoutOperation.ADD && (await this.isBatchedPost(activityId, handle))) {
      const ended = await this.postWaiter.wait(activityId);
      if (ended === 'missing') throw new NotFoundError(`activity "${activityId}" is no longer stored (removed): its batched post will not be written`);
      if (ended !== 'handedOver') return batchedPostResult(ended);
      // Too big for a batch: its own fanout workflow runs it, started by the shard right after the batch.
      await waitForRun(handle);
    }
    try {
      return (await handle.result()) as FanoutProgress;
    } catch (err) {
      throw fanoutNotFound(fanoutFailed(err, handle.workflowId), activityId, operation, handle.workflowId);
    }
  }

  /**
   * Whether an add is a batched post: its activity document says so (one point read); while the
   * store does not answer, whether it has no fanout workflow (the waiter then reads again until
   * the store is back).
   */
  private async isBatchedPost(activityId: string, handle: WorkflowHandle): Promise<boolean> {
    let doc: ActivityDoc | null;
    try {
      doc = await this.store.getActivity(checkId('activityId', activityId));
    } catch {
      try {
        await handle.describe();
        return false;
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return true;
        throw err;
      }
    }
    return doc?.fanout !== undefined;
  }

  /** A batched post's activity (with its `fanout` state), unless it was handed to a fanout of its own; else `null`. */
  private async batchedPost(activityId: string): Promise<ActivityDoc | null> {
    const doc = await this.store.getActivity(checkId('activityId', activityId));
    return doc?.fanout && doc.fanout.state !== 'handedOver' ? doc : null;
  }

  /** The workflow handle of an activity's fanout. */
  handle(activityId: string, operation: FanoutOperation = FanoutOperation.ADD): WorkflowHandle {
    return fanoutHandle(this.temporal, activityId, operation);
  }

  private async startFanout(input: FanoutWorkflowInput, summary: string): Promise<FanoutStarted> {
    const workflowId = fanoutWorkflowId(input.operation, input.activityId);
    const options: WorkflowStartOptions = {
      taskQueue: this.taskQueue,
      workflowId,
      args: [input],
      // Same activity submitted again: refused while its fanout runs (FAIL) and after it completed
      // (ALLOW_DUPLICATE_FAILED_ONLY); both answer "already started", which we report as
      // started: false. Only a fanout that failed, timed out, was cancelled or terminated may rerun
      // (its writes are idempotent, so a rerun completes it). The id is kept for the namespace's
      // retention period; after that a resubmission reruns, writing nothing new.
      workflowIdConflictPolicy: WorkflowIdConflictPolicy.FAIL,
      workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
      staticSummary: `${input.operation} fanout: ${summary}`,
      // Fixed facts an operator looks for on the run's page (its live counts are in the current details).
      staticDetails: [
        `**${input.operation === FanoutOperation.ADD ? 'Adds' : 'Removes'} activity** \`${input.activityId}\` (${summary}) ${input.operation === FanoutOperation.ADD ? 'to' : 'from'} the feeds of **${input.actorId}**'s followers.`,
        `Feed types: ${input.feedTypes?.join(', ') ?? "the workers' fanout feed types"}. Chunks of ${input.chunkSize ?? '-'}, ${input.maxInFlight ?? '-'} in flight, HIGH on \`${input.highTaskQueue}\`, LOW on \`${input.lowTaskQueue}\`.`,
        ...(input.publishAt ? [`Scheduled for ${new Date(input.publishAt).toISOString()}.`] : []),
      ].join('\n\n'),
      ...(this.searchAttributes
        ? {
            typedSearchAttributes: new TypedSearchAttributes([
              { key: actorKey, value: input.actorId },
              { key: operationKey, value: input.operation },
            ]),
          }
        : {}),
    };
    try {
      await this.temporal.workflow.start(FANOUT_WORKFLOW_TYPE, options);
      return { activityId: input.activityId, workflowId, started: true };
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) return { activityId: input.activityId, workflowId, started: false };
      throw err;
    }
  }

  /** The feed types the latest run of the add fanout `workflowId` was started with (undefined: none given, or no such run). */
  private async addRunFeedTypes(workflowId: string): Promise<string[] | undefined> {
    try {
      return (await latestRunInput(this.temporal, workflowId)).input?.feedTypes;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return undefined;
      throw err;
    }
  }

  private checkFeedTypes(feedTypes: string[] | undefined): void {
    feedTypes?.forEach((t, i) => this.store.config(t, `options.feedTypes[${i}]`));
  }

  private async cancelAndWait(workflowId: string): Promise<void> {
    const handle = this.temporal.workflow.getHandle(workflowId);
    try {
      const { status } = await handle.describe();
      if (status.name !== 'RUNNING') return;
      await handle.cancel();
      await handle.result().catch(() => undefined);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return;
      throw err;
    }
  }
}
