// The same app in CommonJS: no top-level await, so an async main.
const { Client, Connection } = require('@temporalio/client');
const { MongoClient } = require('mongodb');
const { FeedClient, FanoutFailedError } = require('feed-fanout');

async function main() {
  const connection = await Connection.connect({ address: process.env.TEMPORAL_ADDRESS ?? 'localhost:7233' });
  const mongo = await MongoClient.connect(process.env.MONGODB_URI ?? 'mongodb://127.0.0.1:27017/');
  try {
    const feeds = new FeedClient({ temporal: new Client({ connection }), db: mongo.db(process.env.FANOUT_DB ?? 'feed_fanout') });
    await feeds.followMany([{ follower: 'carol', followee: 'alice' }]);
    // The app's own id for the post makes a retry safe: posted once, whatever the retries.
    const { activityId } = await feeds.addActivity({ id: 'photo-2-like', actor: 'alice', verb: 'like', object: 'photo-2' });
    try {
      const summary = await feeds.waitForFanout(activityId);
      console.log(`cjs: fanned out to ${summary.followersSeen} followers`);
    } catch (err) {
      if (err instanceof FanoutFailedError) console.error(`some followers were not reached: ${err.message}`);
      throw err;
    }
  } finally {
    await connection.close();
    await mongo.close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
