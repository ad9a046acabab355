/** Fanout helpers shared by the workflow and integration tests. */
import type { NativeConnection, Worker } from '@temporalio/worker';
import type { Db } from 'mongodb';
import { FeedType } from '../../src/contract/constants';
import { ChunkExecution } from '../../src/contract/fanout';
import { Collections } from '../../src/storage/collections';
import { FeedStore } from '../../src/storage/feed-store';
import { type AllActivities, createWorkers } from '../../src/worker/workers';
import { workflowBundle } from './env';
import type { testQueues } from './workers';

/**
 * Stores an activity as an app would before starting its fanout by hand (chunks write only
 * activities that are stored and not being removed).
 */
export async function storeActivity(db: Db, activityId: string, actor: string): Promise<void> {
  await new FeedStore(db).storeActivity({ _id: activityId, actor, verb: 'post', object: `${activityId}-object`, time: new Date() });
}

/**
 * The two shapes a fanout's chunks run in (`chunkExecution`): every end-to-end test of a fanout
 * runs in both (`describe.each(CHUNK_SHAPES)`), as both are documented and supported.
 */
export const CHUNK_SHAPES = [{ chunkExecution: ChunkExecution.LOCAL }, { chunkExecution: ChunkExecution.ACTIVITY }] as const;

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
