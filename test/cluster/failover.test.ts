/**
 * Failover on the production-shaped cluster, during a 50,000-follower fanout and a follow storm:
 * one history process SIGKILLed (its shards move to the other), the MongoDB primary SIGKILLed (an
 * election), PostgreSQL restarted. Afterwards every follower has the entry exactly once and the
 * follow counts are exact, counted in the database. Prints how long each recovery took.
 *
 * `npm run test:cluster` (a cluster of its own; KEEP_TEST_LOGS=1 keeps its logs).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { MongoClient } from 'mongodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FeedClient } from '../../src/client/feed-client';
import { type Cluster, type ClusterProcess, ensureClusterTools, startCluster } from '../../dev/cluster';
import { FeedType } from '../../src/contract/constants';
import { ChunkExecution } from '../../src/contract/fanout';
import { Collections } from '../../src/storage/collections';
import { FeedStore } from '../../src/storage/feed-store';
import { quietRuntime, uniqueName } from '../utils/env';
import { CHUNK_SHAPES, fanoutWorkers } from '../utils/fanout';
import { seedFollowers } from '../../dev/seed';
import { testQueues, withWorkers } from '../utils/workers';

const FOLLOWERS = 50_000;
const FANS = 300;
const LEAVING = 100;

let dir: string;
let cluster: Cluster;

beforeAll(async () => {
  quietRuntime();
  const tools = ensureClusterTools();
  dir = mkdtempSync(path.join(os.tmpdir(), 'feed-fanout-failover-'));
  cluster = await startCluster({ dataDir: dir, logDir: path.join(dir, 'logs'), tools });
});

afterAll(async () => {
  await cluster?.stop();
  if (process.env.KEEP_TEST_LOGS) console.log(`failover: cluster data and logs kept in ${dir}`);
  else if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Polls `read` until it passes `than`; returns the milliseconds it took. */
async function until(read: () => number, than: number, timeoutMs = 180_000): Promise<number> {
  const start = Date.now();
  while (read() <= than) {
    if (Date.now() - start > timeoutMs) throw new Error(`no progress past ${than} within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return Date.now() - start;
}

describe.each(CHUNK_SHAPES)('failover on the production-shaped cluster, chunks as $chunkExecution', ({ chunkExecution }) => {
  it(`a ${FOLLOWERS.toLocaleString('en')}-follower fanout and a follow storm survive a history process, the MongoDB primary and PostgreSQL going down`, async () => {
    const connection = await Connection.connect({ address: cluster.frontendAddress });
    const nativeConnection = await NativeConnection.connect({ address: cluster.frontendAddress });
    // The driver's defaults: retryable writes on; the stores add the majority write concern.
    const mongo = await MongoClient.connect(cluster.mongodbUri);
    const recoveries: string[] = [];
    try {
      const db = mongo.db('failover');
      await new FeedStore(db).ensureIndexes();
      const actor = uniqueName('star');
      const celebrity = uniqueName('celeb');
      const queues = testQueues(actor);
      const followers = await seedFollowers(db, actor, FOLLOWERS, { prefix: `${actor}-f`, activeEvery: 4 });
      const feeds = new FeedClient({
        temporal: new Client({ connection, namespace: cluster.namespace }),
        db,
        taskQueue: queues.workflow,
        // Few chunks in flight (majority writes on the replica set take ~100 ms each here; local
        // activities need no server round trip, so one): the fanout lasts long enough for three
        // failures, each measured and mended before the next.
        fanout: { highTaskQueue: queues.high, lowTaskQueue: queues.low, maxInFlight: chunkExecution === ChunkExecution.LOCAL ? 1 : 2, chunkExecution },
      });
      // Chunks started and entries acknowledged, counted in the workers: a chunk *started* after a
      // failure needs the whole path working again (history shard, matching, the store).
      let started = 0;
      let acknowledged = 0;
      const workers = await fanoutWorkers(nativeConnection, db, queues, (a) => ({
        async writeFeedChunk(input) {
          started++;
          const res = await a.writeFeedChunk(input);
          acknowledged += res.changed;
          return res;
        },
      }));
      const fans = Array.from({ length: FANS }, (_, i) => `${celebrity}-fan${String(i).padStart(3, '0')}`);

      await withWorkers(workers, async () => {
        const { activityId } = await feeds.addActivity({ id: `${actor}-a1`, actor, verb: 'pin', object: 'photo-1' });
        // The follow storm: 300 follows of one user, then 100 of them unfollow, all under way while
        // the cluster loses parts.
        const storm = (async () => {
          await Promise.all(fans.map((fan) => feeds.follow(fan, celebrity, { backfillLimit: 0 })));
          await Promise.all(fans.map((fan) => feeds.waitForFollow(fan, celebrity)));
          await Promise.all(fans.slice(0, LEAVING).map((fan) => feeds.unfollow(fan, celebrity)));
          await Promise.all(fans.slice(0, LEAVING).map((fan) => feeds.waitForFollow(fan, celebrity)));
        })();

        /**
         * Breaks something at `at` of the fanout, measures until it moves again, mends it. Moving
         * again: for Temporal, a chunk *started* after the failure (dispatch works again); for the
         * store, a chunk's entries *written* after it (the chunks in flight at the failure are
         * retried until writes work again).
         */
        const fail = async (
          label: string,
          at: number,
          movedWhen: 'a chunk starts' | 'entries are written',
          breakIt: () => Promise<ClusterProcess | void>,
          mendIt: (p: ClusterProcess | void) => Promise<void>,
        ) => {
          await until(() => acknowledged, FOLLOWERS * at);
          const read = movedWhen === 'a chunk starts' ? () => started : () => acknowledged;
          // Chunks already running when it breaks may still finish: count from when it is broken.
          const t0 = Date.now();
          const broken = await breakIt();
          await until(read, read());
          const line = `${label} at ${acknowledged} of ${FOLLOWERS} entries: moving again (${movedWhen}) ${((Date.now() - t0) / 1000).toFixed(1)} s after it`;
          recoveries.push(line);
          await mendIt(broken);
          console.log(`failover: ${line}; mended ${((Date.now() - t0) / 1000).toFixed(1)} s after it`);
        };

        // 1. SIGKILL one history process: its shards move to the other one.
        const shardsBefore = await cluster.historyShardOwners();
        await fail('history-1 SIGKILLed', 0.1, 'a chunk starts', async () => {
          const history = cluster.process('history-1');
          await history.kill('SIGKILL');
          return history;
        }, async (history) => {
          // Every shard on the survivor, then the killed one back (shards rebalance).
          const deadline = Date.now() + 60_000;
          while (Date.now() < deadline && (await cluster.historyShardOwners().catch(() => new Map())).size !== 1) await new Promise((r) => setTimeout(r, 250));
          recoveries.push(`history shards: ${[...shardsBefore.values()].map((s) => s.length).join(' + ')} before, all 8 on one host after the kill`);
          await history!.restart();
        });

        // 2. SIGKILL the MongoDB primary: the replica set elects another; writes resume then.
        await fail('mongod primary SIGKILLed', 0.25, 'entries are written', async () => {
          const primary = await cluster.mongoPrimary();
          await primary.kill('SIGKILL');
          return primary;
        }, async (member) => {
          let primary: ClusterProcess | undefined;
          while (!primary) primary = await cluster.mongoPrimary().catch(() => new Promise<undefined>((r) => setTimeout(() => r(undefined), 250)));
          recoveries.push(`new primary: ${primary.name} (was ${member!.name})`);
          await member!.restart();
        });

        // 3. Restart PostgreSQL (all of Temporal's state): Temporal's services reconnect.
        await fail('PostgreSQL restarted', 0.5, 'a chunk starts', async () => {
          await cluster.process('postgres').restart();
        }, () => Promise.resolve());

        const summary = await feeds.waitForFanout(activityId);
        expect(summary).toMatchObject({ done: true, followersSeen: FOLLOWERS, failures: [] });
        await storm;
      });

      // Counted in the database: every follower exactly once, nobody else.
      const perOwner = await db
        .collection(Collections.feed(FeedType.TIMELINE))
        .aggregate<{ _id: string; n: number }>([{ $match: { activityId: `${actor}-a1` } }, { $group: { _id: '$owner', n: { $sum: 1 } } }])
        .toArray();
      expect(perOwner.filter((o) => o.n !== 1)).toEqual([]);
      expect(perOwner.map((o) => o._id).sort()).toEqual(followers.all);
      // The storm's counts are exact, and so are the edges.
      expect(await feeds.getCounts(celebrity)).toEqual({ followers: FANS - LEAVING, following: 0 });
      expect(await feeds.follows.countFollowers(celebrity)).toBe(FANS - LEAVING);
      for (const [i, fan] of fans.entries()) expect((await feeds.getCounts(fan)).following, fan).toBe(i < LEAVING ? 0 : 1);
      console.log(`failover recoveries:\n  ${recoveries.join('\n  ')}`);
    } finally {
      await nativeConnection.close();
      await connection.close();
      await mongo.close();
    }
  });
});
