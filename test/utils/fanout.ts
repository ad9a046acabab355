/** Fanout helpers shared by the workflow and integration tests. */
import type { NativeConnection, Worker } from '@temporalio/worker';
import type { Db } from 'mongodb';
import { FeedType } from '../../src/model/constants';
import { Collections } from '../../src/storage/collections';
import { type AllActivities, createWorkers } from '../../src/worker/workers';
import { workflowBundle } from './env';
import type { testQueues } from './workers';

/** Owners of the timeline entries of one activity, sorted. */
export async function timelineOwners(db: Db, activityId: string): Promise<string[]> {
  const docs = await db.collection(Collections.feed(FeedType.TIMELINE)).find({ activityId }).project({ owner: 1 }).toArray();
  return docs.map((d) => d.owner as string).sort();
}

/** Workers for the three queues of a test; `wrap` may replace activities, e.g. to inject faults. */
export async function fanoutWorkers(
  connection: NativeConnection,
  db: Db,
  queues: ReturnType<typeof testQueues>,
  wrap?: (a: AllActivities) => Partial<AllActivities>,
): Promise<Worker[]> {
  return createWorkers({
    connection,
    db,
    workflowTaskQueue: queues.workflow,
    queues: [{ taskQueue: queues.workflow }, { taskQueue: queues.high, workflows: true }, { taskQueue: queues.low, workflows: true }],
    workflowBundle: await workflowBundle(),
    wrapActivities: wrap ? (a) => ({ ...a, ...wrap(a) }) : undefined,
  });
}
