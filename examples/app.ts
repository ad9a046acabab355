// The app in TypeScript (strict, exactOptionalPropertyTypes), plus a worker of its own.
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { MongoClient } from 'mongodb';
import { type AddActivityOptions, FeedClient, type FanoutProgress, ValidationError } from 'feed-fanout';
import { createWorkers } from 'feed-fanout/worker';

// `id` is the app's id for the post (e.g. its database key): the idempotency key, so a retried
// call posts it once. Without one, the id is derived from the fields, the call's time included.
export async function post(feeds: FeedClient, id: string, actor: string, object: string, options: AddActivityOptions = {}): Promise<FanoutProgress> {
  try {
    const { activityId } = await feeds.addActivity({ id, actor, verb: 'pin', object }, options);
    return await feeds.waitForFanout(activityId);
  } catch (err) {
    if (err instanceof ValidationError) console.error(`bad ${err.field}: ${err.message}`);
    throw err;
  }
}

export async function runWorkers(address: string, mongodbUri: string): Promise<void> {
  const db = (await MongoClient.connect(mongodbUri)).db('feed_fanout');
  const workers = await createWorkers({ connection: await NativeConnection.connect({ address }), db });
  await Promise.all(workers.map((w) => w.run()));
}

export async function connect(address: string, mongodbUri: string): Promise<FeedClient> {
  const temporal = new Client({ connection: await Connection.connect({ address }) });
  return new FeedClient({ temporal, db: (await MongoClient.connect(mongodbUri)).db('feed_fanout'), fanout: { maxInFlight: 32 } });
}
