/**
 * Smoke test of the local production-shaped cluster (dev/cluster/): Temporal as separate
 * frontend / matching / worker / 2 x history processes on PostgreSQL with 8 history shards, and a
 * 3-member MongoDB replica set. Not in the default suite (it builds the server from source on first
 * use and starts ten processes of its own): `npm run test:cluster`.
 *
 * KEEP_TEST_LOGS=1 keeps the data dir and its logs/ (the path is printed).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { MongoClient } from 'mongodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FeedClient } from '../../src/client/feed-client';
import { type Cluster, type ClusterTools, ensureClusterTools, startCluster } from '../../dev/cluster';
import { FeedType, fanoutWorkflowId, FanoutOperation } from '../../src/contract/constants';
import { Collections } from '../../src/storage/collections';
import { FeedStore } from '../../src/storage/feed-store';
import { quietRuntime, uniqueName } from '../utils/env';
import { fanoutWorkers } from '../utils/fanout';
import { seedFollowers } from '../../dev/seed';
import { testQueues, withWorkers } from '../utils/workers';

const FOLLOWERS = 5_000;
const DB_NAME = 'feed_fanout_cluster';

describe('the production-shaped local cluster', () => {
  let dir: string;
  let tools: ClusterTools;
  let cluster: Cluster | undefined;
  const timings: string[] = [];
  /** Set by the fanout test, checked after the restart. */
  let fanout: { actor: string; activityId: string; workflowId: string } | undefined;

  const start = async (label: string) => {
    const t = Date.now();
    cluster = await startCluster({ dataDir: dir, logDir: path.join(dir, 'logs'), tools });
    timings.push(`${label}: ${((Date.now() - t) / 1000).toFixed(1)} s`);
    return cluster;
  };

  /** Connections to the running cluster; `close()` closes them all. */
  const connect = async (c: Cluster) => {
    const connection = await Connection.connect({ address: c.frontendAddress });
    const mongo = await MongoClient.connect(c.mongodbUri);
    return {
      connection,
      client: new Client({ connection, namespace: c.namespace }),
      db: mongo.db(DB_NAME),
      close: async (): Promise<void> => {
        await connection.close();
        await mongo.close();
      },
    };
  };

  beforeAll(async () => {
    quietRuntime();
    tools = ensureClusterTools(); // a first build takes minutes: not part of the start times measured below
    // mkdtemp makes the directory 0700; startCluster lets PostgreSQL's user (when we are root) in.
    dir = mkdtempSync(path.join(os.tmpdir(), 'feed-fanout-cluster-'));
    await start('start on a fresh data dir');
  }, 600_000);

  afterAll(async () => {
    await cluster?.stop();
    console.log(`cluster timings: ${timings.join('; ')}`);
    if (process.env.KEEP_TEST_LOGS) console.log(`cluster data and logs kept in ${dir}`);
    else if (dir) rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  it(`is the shape asked for: 8 history shards over 2 history processes, the namespace and search attributes, the Web UI`, async () => {
    const c = cluster!;
    const { connection, close } = await connect(c);
    try {
      const info = await connection.workflowService.getClusterInfo({});
      expect(info.historyShardCount).toBe(8);
      expect(info.persistenceStore).toBe('postgres12');
      expect(info.visibilityStore).toBe('postgres12');
      expect(info.serverVersion).toBe('1.29.1');
      const ns = await connection.workflowService.describeNamespace({ namespace: 'default' });
      expect(Number(ns.config?.workflowExecutionRetentionTtl?.seconds)).toBe(3 * 86_400);
      const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace: 'default' });
      expect(Object.keys(customAttributes ?? {}).sort()).toEqual(['FanoutActor', 'FanoutOperation', 'FanoutStalled']);
    } finally {
      await close();
    }
    const owners = await c.historyShardOwners();
    expect(owners.size).toBe(2);
    expect([...owners.values()].flat().sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect([...owners.keys()].sort()).toEqual(c.ports.history.map((p) => `127.0.0.1:${p}`).sort());
    const ui = await fetch(c.uiUrl);
    expect(ui.status).toBe(200);
    expect(c.mongodbUri).toBe(`mongodb://${c.ports.mongod.map((p) => `127.0.0.1:${p}`).join(',')}/?replicaSet=${c.replicaSetName}`);
    expect((await c.mongoPrimary()).name).toMatch(/^mongod-[123]$/);
  });

  it(`fans out to ${FOLLOWERS.toLocaleString('en')} followers through FeedClient and createWorkers, each entry exactly once`, async () => {
    const c = cluster!;
    const { client, db, close } = await connect(c);
    const nativeConnection = await NativeConnection.connect({ address: c.frontendAddress });
    try {
      await new FeedStore(db).ensureIndexes();
      const actor = uniqueName('cluster');
      const queues = testQueues(actor);
      const followers = await seedFollowers(db, actor, FOLLOWERS, { prefix: `${actor}-f`, activeEvery: 4 });
      const feeds = new FeedClient({ temporal: client, db, taskQueue: queues.workflow, fanout: { highTaskQueue: queues.high, lowTaskQueue: queues.low } });
      const workers = await fanoutWorkers(nativeConnection, db, queues);
      const t = Date.now();
      const activityId = `${actor}-a1`;
      const summary = await withWorkers(workers, async () => {
        await feeds.addActivity({ id: activityId, actor, verb: 'pin', object: 'photo-1' });
        return feeds.waitForFanout(activityId);
      });
      timings.push(`fanout of ${FOLLOWERS}: ${((Date.now() - t) / 1000).toFixed(1)} s`);
      expect(summary).toMatchObject({ done: true, followersSeen: FOLLOWERS, failures: [] });
      expect(summary.high.entriesChanged + summary.low.entriesChanged).toBe(FOLLOWERS);

      // Every follower has the entry exactly once: one document per owner, no owner missing.
      const perOwner = await db
        .collection(Collections.feed(FeedType.TIMELINE))
        .aggregate<{ _id: string; n: number }>([{ $match: { activityId } }, { $group: { _id: '$owner', n: { $sum: 1 } } }])
        .toArray();
      expect(perOwner).toHaveLength(FOLLOWERS);
      expect(perOwner.filter((o) => o.n !== 1)).toEqual([]);
      expect(perOwner.map((o) => o._id).sort()).toEqual(followers.all);

      // Visibility on PostgreSQL with the project's search attributes.
      const workflowId = fanoutWorkflowId(FanoutOperation.ADD, activityId);
      let listed: string[] = [];
      for (let i = 0; i < 40 && listed.length === 0; i++) {
        listed = [];
        for await (const wf of client.workflow.list({ query: `FanoutActor = "${actor}" AND ExecutionStatus = "Completed"` })) listed.push(wf.workflowId);
        if (listed.length === 0) await new Promise((r) => setTimeout(r, 250));
      }
      expect(listed).toEqual([workflowId]);
      fanout = { actor, activityId, workflowId };
    } finally {
      await nativeConnection.close();
      await close();
    }
  });

  it('keeps the namespace, the earlier workflow and the feeds when stopped and started again on the same data dir', async () => {
    expect(fanout).toBeDefined();
    const before = cluster!;
    await before.stop();
    cluster = undefined;
    const c = await start('restart on the same data dir');
    expect(c.frontendAddress).toBe(before.frontendAddress);
    expect(c.mongodbUri).toBe(before.mongodbUri);
    const { connection, client, db, close } = await connect(c);
    try {
      const ns = await connection.workflowService.describeNamespace({ namespace: 'default' });
      expect(ns.namespaceInfo?.name).toBe('default');
      const description = await client.workflow.getHandle(fanout!.workflowId).describe();
      expect(description.status.name).toBe('COMPLETED');
      expect(description.searchAttributes.FanoutActor).toEqual([fanout!.actor]);
      expect(await db.collection(Collections.feed(FeedType.TIMELINE)).countDocuments({ activityId: fanout!.activityId })).toBe(FOLLOWERS);
      expect((await c.historyShardOwners()).size).toBe(2);
    } finally {
      await close();
    }
  });
});
