/**
 * Builds the workers for the project's task queues: the workflow queue runs the workflows and
 * the follower paging; `high-fanout` and `low-fanout` run the feed writes.
 * @module
 */
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import type { Db } from 'mongodb';
import { createFanoutActivities, createFollowActivities, createPostBatchActivities, createNetworkActivities, type NetworkActivitiesDeps } from '../../activities';
import { ValidationError } from '../contract/errors';
import type { FollowerSource } from '../contract/follower-source';
import { MongoFollowerSource } from '../storage/mongo-follower-source';
import { NetworkStore } from '../integrations/network-store';
import type { NetworksConfig } from '../integrations/network';
import { SharedRateLimiter } from '../integrations/rate-limiter';
import { prebuiltWorkflowBundle, WORKFLOWS_PATH } from './bundle';
import { FeedType, TaskQueue } from '../contract/constants';
import { FeedNotifier, type Notifier } from '../notify/notifier';
import { FeedStore, type FeedStoreOptions } from '../storage/feed-store';
import { FollowStore } from '../storage/follow-store';

export { WORKFLOWS_PATH } from './bundle';

/** One task queue to serve. */
export interface QueuePlan {
  /** Task queue name (`fanout`, `high-fanout`, `low-fanout`). */
  taskQueue: string;
  /** Activities run at once by this worker. @default 20 */
  concurrency?: number;
  /**
   * Temporal's task-queue-wide activity rate limit (activities per second, across every worker
   * of the queue; enforced by the server). Fits a queue that serves one network. @default none
   */
  activitiesPerSecond?: number;
  /**
   * Whether this worker runs workflows too. The HIGH and LOW queues run the fanout's priority
   * passes (`fanoutPassWorkflow`), whose chunk writes are local activities of this worker (up to
   * `concurrency` at once). @default true for the workflow queue, `high-fanout` and `low-fanout`
   */
  workflows?: boolean;
}

/** Whether a queue runs workflows by default: the workflow queue and the standard chunk queues. */
function runsWorkflows(plan: QueuePlan, workflowQueue: string): boolean {
  return plan.workflows ?? (plan.taskQueue === workflowQueue || plan.taskQueue === TaskQueue.HIGH || plan.taskQueue === TaskQueue.LOW);
}

/**
 * How long a workflow task waits for the worker that ran the workflow last (its sticky queue)
 * before any worker may take it: when that worker died, this is how long its passes wait before
 * another worker takes them over (the SDK's default is 10 s). A live worker picks its sticky tasks
 * in milliseconds, so 3 s costs no replays in normal running.
 */
const STICKY_TIMEOUT = '3 seconds';

/** Options of {@link createWorkers}. */
export interface CreateWorkersOptions {
  connection: NativeConnection;
  /** @default 'default' */
  namespace?: string | undefined;
  /** Database of activities, feeds and follow graph. */
  db: Db;
  /** Queues to serve. @default all three, concurrency 20 each */
  queues?: QueuePlan[] | undefined;
  /** Follower source. @default MongoFollowerSource on `db` */
  followers?: FollowerSource | undefined;
  /**
   * Feed configuration (`feeds`: the same FeedsConfig the client uses) and the write concern of
   * every store the activities write through. @default DEFAULT_FEEDS, DURABLE_WRITE_CONCERN
   */
  feedStore?: FeedStoreOptions | undefined;
  /**
   * Tells followees about new followers. `null` turns notifications off.
   * @default a FeedNotifier writing to the `notification` feed, if that feed type is configured
   */
  notifier?: Notifier | null;
  /** The workflow queue's name. @default 'fanout' */
  workflowTaskQueue?: string | undefined;
  /** A prebuilt workflow bundle (tests bundle once). @default bundles `workflows/` */
  workflowBundle?: WorkerOptions['workflowBundle'] | undefined;
  /** Third-party networks the import activities may call. @default {} */
  networks?: NetworksConfig | undefined;
  /** Import tuning (egress IP, retry delays); the store, networks and limiter are built here. */
  imports?: (Omit<NetworkActivitiesDeps, 'store' | 'networks' | 'limiter'> & { limiter?: SharedRateLimiter | undefined }) | undefined;
  /** Wraps the activities, e.g. to observe them in tests. */
  wrapActivities?: ((activities: AllActivities) => object) | undefined;
}

/** Every activity a worker registers. */
export type AllActivities = ReturnType<typeof createFanoutActivities> & ReturnType<typeof createPostBatchActivities> & ReturnType<typeof createFollowActivities> & ReturnType<typeof createNetworkActivities>;

/** Parses `name`, `name=concurrency` or `name=concurrency@perSecond` (the worker command's `--queue` argument). */
export function parseQueuePlan(spec: string): QueuePlan {
  const [taskQueue, settings] = spec.split('=');
  if (!taskQueue) throw new ValidationError('--queue', `must be NAME, NAME=CONCURRENCY or NAME=CONCURRENCY@PER_SECOND, got "${spec}"`);
  if (settings === undefined) return { taskQueue };
  const [concurrency, perSecond] = settings.split('@');
  const n = Number(concurrency);
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw new ValidationError('--queue', `concurrency of ${taskQueue} must be an integer 1..1000, got "${concurrency}"`);
  if (perSecond === undefined) return { taskQueue, concurrency: n };
  const rate = Number(perSecond);
  if (!Number.isFinite(rate) || rate <= 0) throw new ValidationError('--queue', `activities per second of ${taskQueue} must be a positive number, got "${perSecond}"`);
  return { taskQueue, concurrency: n, activitiesPerSecond: rate };
}

/** Creates one worker per queue, sharing one set of activities. Call `ensureIndexes` first. */
export async function createWorkers(options: CreateWorkersOptions): Promise<Worker[]> {
  const workflowQueue = options.workflowTaskQueue ?? TaskQueue.WORKFLOWS;
  // Import queues only when there are networks to call: a fanout-only deployment needs none.
  const importQueues = Object.keys(options.networks ?? {}).length ? [TaskQueue.IMPORT, TaskQueue.IMPORT_WHALE, TaskQueue.TRICKLE].map((taskQueue) => ({ taskQueue })) : [];
  const queues = options.queues ?? [{ taskQueue: workflowQueue }, { taskQueue: TaskQueue.HIGH }, { taskQueue: TaskQueue.LOW }, ...importQueues];
  const store = new FeedStore(options.db, options.feedStore);
  const notifier = options.notifier === undefined ? (store.feeds.has(FeedType.NOTIFICATION) ? new FeedNotifier(store) : undefined) : (options.notifier ?? undefined);
  const followers = options.followers ?? new MongoFollowerSource(options.db);
  const activities: AllActivities = {
    ...createFanoutActivities({ store, followers }),
    ...createPostBatchActivities({ store, followers }),
    ...createFollowActivities({ store, follows: new FollowStore(options.db, { writeConcern: options.feedStore?.writeConcern }), notifier }),
    ...createNetworkActivities({
      ...options.imports,
      store: new NetworkStore(options.db, { writeConcern: options.feedStore?.writeConcern }),
      networks: options.networks ?? {},
      limiter: options.imports?.limiter ?? new SharedRateLimiter(options.db),
    }),
  };
  const registered = options.wrapActivities ? options.wrapActivities(activities) : activities;
  // The workflow code: as given, else the package's prebuilt bundle, else bundled from the sources now.
  const bundle = options.workflowBundle ?? prebuiltWorkflowBundle().bundle;
  const workflowCode = bundle ? { workflowBundle: bundle } : { workflowsPath: WORKFLOWS_PATH };
  return Promise.all(
    queues.map((plan) =>
      Worker.create({
        connection: options.connection,
        namespace: options.namespace ?? 'default',
        taskQueue: plan.taskQueue,
        activities: registered,
        maxConcurrentActivityTaskExecutions: plan.concurrency ?? 20,
        maxConcurrentLocalActivityExecutions: plan.concurrency ?? 20,
        ...(plan.activitiesPerSecond ? { maxTaskQueueActivitiesPerSecond: plan.activitiesPerSecond } : {}),
        // The workflow queue runs the workflows, the chunk queues the priority passes.
        ...(runsWorkflows(plan, workflowQueue) ? { ...workflowCode, stickyQueueScheduleToStartTimeout: STICKY_TIMEOUT } : {}),
      }),
    ),
  );
}
