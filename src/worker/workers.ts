/**
 * Builds the workers for the project's task queues: the workflow queue runs the workflows and
 * the follower paging; `high-fanout` and `low-fanout` run the feed writes.
 * @module
 */
import path from 'node:path';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import type { Db } from 'mongodb';
import { createFanoutActivities, createFollowActivities } from '../../activities';
import { ValidationError } from '../errors';
import type { FollowerSource } from '../followers/follower-source';
import { MongoFollowerSource } from '../followers/mongo-follower-source';
import { FeedType, TaskQueue } from '../model/constants';
import { FeedNotifier, type Notifier } from '../notify/notifier';
import { FeedStore, type FeedStoreOptions } from '../storage/feed-store';
import { FollowStore } from '../storage/follow-store';

/** Path of the workflows module, for `workflowsPath`. */
export const WORKFLOWS_PATH = path.resolve(__dirname, '..', '..', 'workflows', 'index.ts');

/** One task queue to serve. */
export interface QueuePlan {
  /** Task queue name (`fanout`, `high-fanout`, `low-fanout`). */
  taskQueue: string;
  /** Activities run at once by this worker. @default 20 */
  concurrency?: number;
}

/** Options of {@link createWorkers}. */
export interface CreateWorkersOptions {
  connection: NativeConnection;
  /** @default 'default' */
  namespace?: string;
  /** Database of activities, feeds and follow graph. */
  db: Db;
  /** Queues to serve. @default all three, concurrency 20 each */
  queues?: QueuePlan[];
  /** Follower source. @default MongoFollowerSource on `db` */
  followers?: FollowerSource;
  /** Feed configuration (`feeds`: the same FeedsConfig the client uses). @default DEFAULT_FEEDS */
  feedStore?: FeedStoreOptions;
  /**
   * Tells followees about new followers. `null` turns notifications off.
   * @default a FeedNotifier writing to the `notification` feed, if that feed type is configured
   */
  notifier?: Notifier | null;
  /** The workflow queue's name. @default 'fanout' */
  workflowTaskQueue?: string;
  /** A prebuilt workflow bundle (tests bundle once). @default bundles `workflows/` */
  workflowBundle?: WorkerOptions['workflowBundle'];
  /** Wraps the activities, e.g. to observe them in tests. */
  wrapActivities?: (activities: AllActivities) => object;
}

/** Every activity a worker registers. */
export type AllActivities = ReturnType<typeof createFanoutActivities> & ReturnType<typeof createFollowActivities>;

/** Parses `name` or `name=concurrency` (the worker command's `--queue` argument). */
export function parseQueuePlan(spec: string): QueuePlan {
  const [taskQueue, concurrency] = spec.split('=');
  if (!taskQueue) throw new ValidationError('--queue', `must be NAME or NAME=CONCURRENCY, got "${spec}"`);
  if (concurrency === undefined) return { taskQueue };
  const n = Number(concurrency);
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw new ValidationError('--queue', `concurrency of ${taskQueue} must be an integer 1..1000, got "${concurrency}"`);
  return { taskQueue, concurrency: n };
}

/** Creates one worker per queue, sharing one set of activities. Call `ensureIndexes` first. */
export async function createWorkers(options: CreateWorkersOptions): Promise<Worker[]> {
  const workflowQueue = options.workflowTaskQueue ?? TaskQueue.WORKFLOWS;
  const queues = options.queues ?? [{ taskQueue: workflowQueue }, { taskQueue: TaskQueue.HIGH }, { taskQueue: TaskQueue.LOW }];
  const store = new FeedStore(options.db, options.feedStore);
  const notifier = options.notifier === undefined ? (store.feeds.has(FeedType.NOTIFICATION) ? new FeedNotifier(store) : undefined) : (options.notifier ?? undefined);
  const activities: AllActivities = {
    ...createFanoutActivities({ store, followers: options.followers ?? new MongoFollowerSource(options.db) }),
    ...createFollowActivities({ store, follows: new FollowStore(options.db), notifier }),
  };
  const registered = options.wrapActivities ? options.wrapActivities(activities) : activities;
  return Promise.all(
    queues.map((plan) =>
      Worker.create({
        connection: options.connection,
        namespace: options.namespace ?? 'default',
        taskQueue: plan.taskQueue,
        activities: registered,
        maxConcurrentActivityTaskExecutions: plan.concurrency ?? 20,
        // Only the workflow queue runs workflows; the fanout queues are activity-only.
        ...(plan.taskQueue === workflowQueue
          ? options.workflowBundle
            ? { workflowBundle: options.workflowBundle }
            : { workflowsPath: WORKFLOWS_PATH }
          : {}),
      }),
    ),
  );
}
