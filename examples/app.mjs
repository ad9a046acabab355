// An app (ESM) that records an activity and reads a follower's timeline back.
import { Client, Connection } from '@temporalio/client';
import { MongoClient } from 'mongodb';
import { FeedClient } from 'feed-fanout';

const connection = await Connection.connect({ address: process.env.TEMPORAL_ADDRESS ?? 'localhost:7233' });
const mongo = await MongoClient.connect(process.env.MONGODB_URI ?? 'mongodb://127.0.0.1:27017/');
const feeds = new FeedClient({ temporal: new Client({ connection }), db: mongo.db(process.env.FANOUT_DB ?? 'feed_fanout') });

await feeds.followMany([{ follower: 'bob', followee: 'alice' }]); // a graph import; feeds.follow() for one edge
// The id is the post's idempotency key: a retry (or this script run again) posts it once.
const { activityId } = await feeds.addActivity({ id: 'photo-1-pin', actor: 'alice', verb: 'pin', object: 'photo-1' });
const summary = await feeds.waitForFanout(activityId); // or feeds.getProgress(activityId) meanwhile
const page = await feeds.readFeed('timeline', 'bob', { limit: 25 });
console.log(`esm: fanned out to ${summary.followersSeen} followers; bob reads: ${page.items.map((i) => `${i.activity?.actor} ${i.activity?.verb} ${i.activity?.object}`).join(', ')}`);

await connection.close();
await mongo.close();
