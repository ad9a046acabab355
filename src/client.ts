/**
 * The app-facing API: add and remove activities, read feeds, follow fanouts.
 * @module
 */
import { createHash } from 'node:crypto';
import {
  type Client,
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  type WorkflowHandle,
  type WorkflowStartOptions,
} from '@temporalio/client';
import { defineSearchAttributeKey, SearchAttributeType, TypedSearchAttributes, WorkflowIdConflictPolicy, WorkflowIdReusePolicy } from '@temporalio/common';
import type { Db } from 'mongodb';
import { ValidationError } from './errors';
import { FANOUT_WORKFLOW_TYPE, FanoutOperation, FeedType, fanoutWorkflowId, SearchAttribute, TaskQueue } from './model/constants';
import { type FanoutOptions, type FanoutProgress, type FanoutWorkflowInput, progressQuery, resolveFanoutOptions } from './model/fanout';
import { type ActivityInput, checkId, validateActivity } from './model/validation';
import { type FeedPage, FeedStore, type FeedStoreOptions, type ReadFeedOptions } from './storage/feed-store';

/** Options of {@link FeedClient}. */
export interface FeedClientOptions {
  /** A connected Temporal client. */
  temporal: Client;
  /** The database of activities, feeds and follow graph. */
  db: Db;
  /** Feed configuration; must match the workers'. @default user and timeline feeds */
  feeds?: FeedStoreOptions['feeds'];
  /** Task queue of the workflows. @default 'fanout' */
  taskQueue?: string;
  /** Default tuning of every fanout started by this client. @default see {@link FanoutOptions} */
  fanout?: FanoutOptions;
  /**
   * Set the `FanoutActor` / `FanoutOperation` search attributes on runs, for filtering in the Web
   * UI. They must be registered on the namespace (the dev setup does it). @default true
   */
  searchAttributes?: boolean;
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

const actorKey = defineSearchAttributeKey(SearchAttribute.ACTOR, SearchAttributeType.KEYWORD);
const operationKey = defineSearchAttributeKey(SearchAttribute.OPERATION, SearchAttributeType.KEYWORD);

/**
 * Derives a stable activity id from an activity's fields: the same activity submitted twice gets
 * the same id, so its fanout runs once.
 */
export function deriveActivityId(a: { actor: string; verb: string; object: string; target?: string; time: Date }): string {
  const key = JSON.stringify([a.actor, a.verb, a.object, a.target ?? null, a.time.toISOString()]);
  return createHash('sha256').update(key).digest('hex').slice(0, 32);
}

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
  private readonly temporal: Client;
  private readonly taskQueue: string;
  private readonly fanoutDefaults: FanoutOptions;
  private readonly searchAttributes: boolean;

  constructor(options: FeedClientOptions) {
    if (!options?.temporal) throw new ValidationError('options.temporal', 'is required (a connected @temporalio/client Client)');
    if (!options.db) throw new ValidationError('options.db', 'is required (a mongodb Db)');
    this.temporal = options.temporal;
    this.store = new FeedStore(options.db, { feeds: options.feeds });
    this.taskQueue = options.taskQueue ?? TaskQueue.WORKFLOWS;
    this.fanoutDefaults = resolveFanoutOptions(options.fanout ?? {}, 'options.fanout.');
    this.searchAttributes = options.searchAttributes ?? true;
  }

  /**
   * Records an activity: stores it, writes it into the actor's own feed, and starts the fanout
   * to the followers' feeds. Returns as soon as the fanout is started.
   * Everything is validated first: a bad activity throws a {@link ValidationError} naming the
   * field, and nothing is written. Submitting the same activity again starts no second fanout.
   */
  async addActivity(activity: ActivityInput, options: AddActivityOptions = {}): Promise<FanoutStarted> {
    const a = validateActivity(activity, new Date());
    const { publishAt, ...tuning } = options;
    const fanout = resolveFanoutOptions({ ...this.fanoutDefaults, ...tuning }, 'options.');
    if (publishAt !== undefined && (!(publishAt instanceof Date) || Number.isNaN(publishAt.getTime()))) {
      throw new ValidationError('options.publishAt', 'must be a valid Date');
    }
    const scheduled = publishAt !== undefined && publishAt.getTime() > Date.now();
    this.store.feed(fanout.feedType, 'options.feedType'); // throws for an unconfigured feed type
    const activityId = a.id ?? deriveActivityId(a);
    const { id: _id, ...fields } = a;
    await this.store.storeActivity({ _id: activityId, ...fields });
    // A scheduled post reaches the actor's own feed when the workflow publishes it.
    if (!scheduled) await this.store.addToFeeds(FeedType.USER, [a.actor], activityId, a.time);
    return this.startFanout(
      {
        operation: FanoutOperation.ADD,
        activityId,
        actorId: a.actor,
        activityTime: a.time.getTime(),
        ...(scheduled ? { publishAt: publishAt.getTime() } : {}),
        ...fanout,
      },
      `${a.actor} ${a.verb} ${a.object}${a.target ? ` → ${a.target}` : ''}`,
    );
  }

  /**
   * Removes an activity: hides it at once (its stored copy and the actor's own feed entry go
   * first), then starts a fanout that deletes it from every follower's feed. A fanout still
   * adding it is cancelled first, and its chunks in flight finish, so no entry comes back.
   */
  async removeActivity(activityId: string, options: Pick<FanoutOptions, 'feedType'> = {}): Promise<FanoutStarted> {
    checkId('activityId', activityId);
    const feedType = resolveFanoutOptions({ ...this.fanoutDefaults, ...options }, 'options.').feedType;
    this.store.feed(feedType, 'options.feedType');
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
    await this.cancelAndWait(fanoutWorkflowId(FanoutOperation.ADD, activityId));
    await this.store.removeFromFeeds(FeedType.USER, [stored.actor], activityId);
    const started = await this.startFanout(
      { operation: FanoutOperation.REMOVE, activityId, actorId: stored.actor, ...this.fanoutDefaults, feedType },
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

  /** The current progress of an activity's fanout. */
  async getProgress(activityId: string, operation: FanoutOperation = FanoutOperation.ADD): Promise<FanoutProgress> {
    return this.handle(activityId, operation).query(progressQuery);
  }

  /** Waits for an activity's fanout to finish and returns its summary. */
  async waitForFanout(activityId: string, operation: FanoutOperation = FanoutOperation.ADD): Promise<FanoutProgress> {
    return this.handle(activityId, operation).result();
  }

  /** The workflow handle of an activity's fanout. */
  handle(activityId: string, operation: FanoutOperation = FanoutOperation.ADD): WorkflowHandle {
    checkId('activityId', activityId);
    return this.temporal.workflow.getHandle(fanoutWorkflowId(operation, activityId));
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
