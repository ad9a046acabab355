/**
 * The backlog of task queues (`feed-fanout backlog`): tasks waiting, their age, rates and pollers,
 * for workflow tasks (the fanouts and their passes) and activity tasks (chunks as activities,
 * imports) alike.
 * @module
 */
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { TaskQueue } from '../contract/constants';
import { checkTaskQueue } from '../contract/validation';

/** The backlog of one task queue. */
export interface QueueBacklog {
  taskQueue: string;
  /** `workflow` or `activity` tasks. */
  kind: 'workflow' | 'activity';
  /** Tasks waiting for a worker (approximate, as the server counts them). */
  backlog: number;
  /** Age of the oldest waiting task, in seconds. */
  oldestSeconds: number;
  /** Tasks added and dispatched per second, recently. */
  addRate: number;
  dispatchRate: number;
  /** Workers that polled recently. */
  pollers: number;
}

/** A task queue and the kind of its tasks whose backlog to show. */
export interface BacklogQueue {
  taskQueue: string;
  kind: 'workflow' | 'activity';
}

/**
 * The project's queues: `fanout`'s workflow and activity tasks; `high-fanout` and `low-fanout`'s
 * workflow tasks (the HIGH / LOW passes, whose chunks are local activities) and activity tasks
 * (the chunks of `chunksAsActivities` fanouts); the import and trickle queues' activity tasks.
 */
export const DEFAULT_BACKLOG_QUEUES: ReadonlyArray<BacklogQueue> = [
  { taskQueue: TaskQueue.WORKFLOWS, kind: 'workflow' },
  { taskQueue: TaskQueue.WORKFLOWS, kind: 'activity' },
  { taskQueue: TaskQueue.HIGH, kind: 'workflow' },
  { taskQueue: TaskQueue.HIGH, kind: 'activity' },
  { taskQueue: TaskQueue.LOW, kind: 'workflow' },
  { taskQueue: TaskQueue.LOW, kind: 'activity' },
  { taskQueue: TaskQueue.IMPORT, kind: 'activity' },
  { taskQueue: TaskQueue.IMPORT_WHALE, kind: 'activity' },
  { taskQueue: TaskQueue.TRICKLE, kind: 'activity' },
];

/**
 * `--queue`'s value: `NAME` (both kinds of tasks), `NAME:workflow` or `NAME:activity`.
 * @throws ValidationError naming `field`.
 */
export function parseBacklogQueue(value: string, field = '--queue'): BacklogQueue[] {
  const m = /^(.*):(workflow|activity)$/.exec(value);
  const taskQueue = checkTaskQueue(field, m ? m[1] : value);
  if (m) return [{ taskQueue, kind: m[2] as BacklogQueue['kind'] }];
  return [
    { taskQueue, kind: 'workflow' },
    { taskQueue, kind: 'activity' },
  ];
}

/** Backlog, rates and pollers of task queues (DescribeTaskQueue with stats). */
export async function queueBacklog(
  client: Client,
  namespace: string,
  queues: ReadonlyArray<BacklogQueue> = DEFAULT_BACKLOG_QUEUES,
): Promise<QueueBacklog[]> {
  const { TaskQueueType } = temporal.api.enums.v1;
  return Promise.all(
    queues.map(async ({ taskQueue, kind }) => {
      const res = await client.workflowService.describeTaskQueue({
        namespace,
        taskQueue: { name: taskQueue },
        taskQueueType: kind === 'workflow' ? TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW : TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
        reportStats: true,
      });
      const stats = res.stats;
      const age = stats?.approximateBacklogAge;
      return {
        taskQueue,
        kind,
        backlog: Number(stats?.approximateBacklogCount ?? 0),
        oldestSeconds: age ? Number(age.seconds ?? 0) + (age.nanos ?? 0) / 1e9 : 0,
        addRate: stats?.tasksAddRate ?? 0,
        dispatchRate: stats?.tasksDispatchRate ?? 0,
        pollers: res.pollers?.length ?? 0,
      };
    }),
  );
}

