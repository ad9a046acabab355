/**
 * Nothing lost, nothing duplicated when the processes under a fanout die: the database process and
 * the Temporal server are SIGKILLed mid-fanout and restarted on their data, and afterwards every
 * follower's timeline is counted in the database. Each test starts its own server to kill (the
 * suite's store kind: mongod or FerretDB), so the shared servers of the other tests stay up.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { type Db, MongoClient } from 'mongodb';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { FeedClient } from '../../src/client/feed-client';
import type { FanoutProgress } from '../../src/contract/fanout';
import { ensureTools, freePort, type ManagedServer, startStore, startTemporalDevServer, type StoreKind, storeBinary } from '../../dev/local-stack';
import { FeedType } from '../../src/contract/constants';
import { Collections } from '../../src/storage/collections';
import { FeedStore } from '../../src/storage/feed-store';
import { devServer, freshDb, quietRuntime, uniqueName } from '../utils/env';
import { CHUNK_SHAPES, fanoutWorkers } from '../utils/fanout';
import { seedFollowers } from '../../dev/seed';
import { testQueues, withWorkers } from '../utils/workers';
import { startWorkerCommand } from '../utils/worker-process';

const storeKindOfSuite = inject('store');
const killable = storeKindOfSuite === 'mongodb' || storeKindOfSuite === 'ferretdb';

/** How long the outage test keeps the store down: FANOUT_OUTAGE_SECONDS=600 measures a 10-minute outage (not in CI). */
const OUTAGE_MS = Number(process.env.FANOUT_OUTAGE_SECONDS ?? 60) * 1000;

let dir: string;
const cleanups: Array<() => Promise<void>> = [];

beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'feed-fanout-chaos-'));
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

/** SIGKILLs a server process and waits until it is gone. */
async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

/** Polls `read` until it reaches `atLeast`; returns the value. */
async function until(read: () => Promise<number>, atLeast: number, timeoutMs = 120_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const n = await read();
    if (n >= atLeast) return n;
    if (Date.now() > deadline) throw new Error(`stuck at ${n}, waiting for ${atLeast}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * Fanout workers that count the entries their chunks had acknowledged, in-process: the kills are
 * timed by it (a count in the store lags behind a fast fanout, and scans the collection on FerretDB).
 */
async function countingWorkers(connection: NativeConnection, db: Db, queues: ReturnType<typeof testQueues>) {
  let count = 0;
  let calls = 0;
  const workers = await fanoutWorkers(connection, db, queues, (a) => ({
    async writeFeedChunk(input) {
      calls++;
      const res = await a.writeFeedChunk(input);
      count += res.changed;
      return res;
    },
  }));
  return { workers, acknowledged: () => Promise.resolve(count), calls: () => Promise.resolve(calls) };
}

/** Owners of one activity's timeline entries, sorted, as stored. */
async function owners(db: Db, activityId: string): Promise<string[]> {
  const docs = await db.collection(Collections.feed(FeedType.TIMELINE)).find({ activityId }).project({ owner: 1 }).toArray();
  return docs.map((d) => d.owner as string).sort();
}

describe.runIf(killable).each(CHUNK_SHAPES)('chaos: processes killed mid-fanout, chunks as $chunkExecution', ({ chunkExecution }) => {
  it('the database process is SIGKILLed twice mid-fanout and restarted: every follower has the entry exactly once', async () => {
    const kind = storeKindOfSuite as StoreKind;
    const tools = ensureTools(kind === 'mongodb' ? { mongod: true } : { ferretdb: true });
    const port = await freePort();
    const storeOptions = { port, dataDir: path.join(dir, `${kind}-${chunkExecution}`), logFile: path.join(dir, `${kind}-${chunkExecution}.log`), binary: storeBinary(tools, kind) };
    let store: ManagedServer = await startStore(kind, storeOptions);
    cleanups.push(() => store.stop());
    const mongo = await MongoClient.connect(store.address);
    cleanups.push(() => mongo.close());
    const db = mongo.db('chaos');
    await new FeedStore(db).ensureIndexes();
    const temporal = await devServer();
    cleanups.push(() => temporal.close());

    const actor = uniqueName('dbkill');
    const total = 30_000;
    const followers = await seedFollowers(db, actor, total, { prefix: `${actor}-f`, activeEvery: 4 });
    const queues = testQueues(actor);
    const feeds = new FeedClient({ temporal: temporal.client, db, taskQueue: queues.workflow, fanout: { highTaskQueue: queues.high, lowTaskQueue: queues.low, chunkExecution } });
    const { workers, acknowledged } = await countingWorkers(temporal.nativeConnection, db, queues);
    const written = () => db.collection(Collections.feed(FeedType.TIMELINE)).countDocuments({ activityId: `${actor}-a1` });

    const summary = await withWorkers(workers, async () => {
      const { activityId } = await feeds.addActivity({ id: `${actor}-a1`, actor, verb: 'pin', object: 'p1' });
      for (const fraction of [0.2, 0.6]) {
        await until(acknowledged, total * fraction);
        await kill(store.process);
        const atKill = await acknowledged();
        await new Promise((r) => setTimeout(r, 1000)); // down for a while: chunks fail and are retried
        const restartedAt = Date.now();
        store = await startStore(kind, storeOptions);
        await until(acknowledged, atKill + 1);
        console.log(`db kill at ${atKill} of ${total} entries acknowledged: writing again ${Date.now() - restartedAt} ms after the store's restart`);
        expect(atKill).toBeLessThan(total); // the kill landed mid-fanout
      }
      return feeds.waitForFanout(activityId);
    });

    expect(summary).toMatchObject({ done: true, followersSeen: total, failures: [] });
    // Counted in the database: each follower exactly once (the unique _id rules out a second copy
    // in one feed; the sorted owners rule out a missing one).
    expect(await written()).toBe(total);
    expect(await owners(db, `${actor}-a1`)).toEqual(followers.all);
  });

  it('the database is down for a while mid-fanout: the retries show while it is down, the history grows by a few events a minute, and then every follower has the entry exactly once', { timeout: OUTAGE_MS + 180_000 }, async () => {
    const outageMs = OUTAGE_MS;
    const kind = storeKindOfSuite as StoreKind;
    const tools = ensureTools(kind === 'mongodb' ? { mongod: true } : { ferretdb: true });
    const storeOptions = { port: await freePort(), dataDir: path.join(dir, `out-${chunkExecution}`), logFile: path.join(dir, `out-${chunkExecution}.log`), binary: storeBinary(tools, kind) };
    let store: ManagedServer = await startStore(kind, storeOptions);
    cleanups.push(() => store.stop());
    // As the worker command connects: a store call gives up on a dead store after 10 s.
    const mongo = await MongoClient.connect(store.address, { serverSelectionTimeoutMS: 10_000 });
    cleanups.push(() => mongo.close());
    const db = mongo.db('outage');
    await new FeedStore(db).ensureIndexes();
    const temporal = await devServer();
    cleanups.push(() => temporal.close());

    const actor = uniqueName('outage');
    const total = 30_000; // two partitions per priority
    const followers = await seedFollowers(db, actor, total, { prefix: `${actor}-f`, activeEvery: 4 });
    const queues = testQueues(actor);
    const feeds = new FeedClient({ temporal: temporal.client, db, taskQueue: queues.workflow, fanout: { highTaskQueue: queues.high, lowTaskQueue: queues.low, chunkExecution } });
    const { workers, acknowledged } = await countingWorkers(temporal.nativeConnection, db, queues);
    /** History events of the fanout and of every run named after it (its passes), from their mutable state. */
    const events = async (workflowId: string): Promise<number> => {
      let n = 0;
      for await (const run of temporal.client.workflow.list({ query: `WorkflowId = '${workflowId}' OR WorkflowId STARTS_WITH '${workflowId}/'` })) {
        if (run.status.name === 'RUNNING') n += (await temporal.client.workflow.getHandle(run.workflowId, run.runId).describe()).historyLength;
      }
      return n;
    };

    const summary = await withWorkers(workers, async () => {
      const { activityId, workflowId } = await feeds.addActivity({ id: `${actor}-a1`, actor, verb: 'pin', object: 'p1' });
      await until(acknowledged, total * 0.3);
      await kill(store.process);
      const killedAt = Date.now();
      const atKill = await acknowledged();
      // What an operator sees meanwhile: what fails, how often, the error. And how the history grows
      // once the passes probe (before, the chunks in flight and those dispatched before a pass's
      // next flush fail, a marker or three events each, once per outage).
      let shown: { after: number; progress: FanoutProgress; details: string } | undefined;
      let from = { at: 0, events: 0 };
      while (Date.now() < killedAt + outageMs) {
        const progress = await feeds.getProgress(activityId);
        if (progress.retrying && !shown) {
          const details = (await feeds.handle(activityId).query<{ currentDetails?: string }>('__temporal_workflow_metadata')).currentDetails ?? '';
          shown = { after: Date.now() - killedAt, progress, details };
        }
        // From 15 s after that (by then every pass has failed its chunks in flight and probes), or
        // 30 s after the kill if the retries do not show.
        if (!from.at && Date.now() - killedAt >= (shown ? shown.after + 15_000 : 30_000)) from = { at: Date.now(), events: await events(workflowId) };
        await new Promise((r) => setTimeout(r, 500));
      }
      const to = { at: Date.now(), events: await events(workflowId) };
      const perMinute = ((to.events - from.events) * 60_000) / (to.at - from.at);
      const last = await feeds.getProgress(activityId);
      console.log(
        `outage (${chunkExecution}): killed at ${atKill} of ${total} entries; ` +
          `${to.events - from.events} history events in the ${((to.at - from.at) / 1000).toFixed(0)} s before the restart (${perMinute.toFixed(1)} a minute, all runs); ` +
          (shown
            ? `retries shown ${(shown.after / 1000).toFixed(1)} s after the kill (${shown.progress.retrying!.attempts} attempts: ${shown.progress.retrying!.lastError.slice(0, 120)}); ` +
              `${last.retrying?.attempts ?? '?'} attempts by the restart, ${last.retrying?.waiting ?? '?'} chunks waiting`
            : 'retries never shown'),
      );
      expect(shown, 'retries shown while the store is down').toBeDefined();
      const retrying = shown!.progress.retrying!;
      expect(retrying.attempts).toBeGreaterThanOrEqual(2);
      expect(retrying.lastError).not.toBe('');
      expect(retrying.what).toMatch(/followers/);
      expect(shown!.details).toContain('attempts since');
      // Two passes holding their workflow tasks open would add 150 events a minute (a heartbeat, 3
      // events, every 2.4 s each) to the fanout's 20 or so; probing adds a few per probe (about 100
      // a minute in the first minute, a few later).
      expect(perMinute).toBeLessThan(140);
      const restartedAt = Date.now();
      store = await startStore(kind, storeOptions);
      const result = await feeds.waitForFanout(activityId);
      console.log(`outage (${chunkExecution}): done ${((Date.now() - restartedAt) / 1000).toFixed(1)} s after the store's restart`);
      return result;
    });

    expect(summary).toMatchObject({ done: true, followersSeen: total, failures: [] });
    expect(summary.retrying).toBeUndefined();
    expect(summary.high.chunksFailed + summary.low.chunksFailed).toBe(0);
    expect(await owners(db, `${actor}-a1`)).toEqual(followers.all);
  });

  it('the Temporal server is SIGKILLed mid-fanout and restarted on its data: every follower has the entry exactly once', async () => {
    quietRuntime();
    const tools = ensureTools();
    const port = await freePort();
    // As the dev stack runs it: history in a SQLite file, WAL, so a crash of the process loses nothing committed.
    const serverOptions = {
      port,
      dbFile: path.join(dir, `temporal-${chunkExecution}.db`),
      sqlitePragmas: ['journal_mode=wal', 'synchronous=normal'],
      logFile: path.join(dir, `temporal-${chunkExecution}.log`),
      cli: tools.temporalCli,
    };
    let server = await startTemporalDevServer(serverOptions);
    cleanups.push(() => server.stop());
    const connection = await Connection.connect({ address: server.address });
    cleanups.push(() => connection.close());
    const nativeConnection = await NativeConnection.connect({ address: server.address });
    cleanups.push(() => nativeConnection.close());
    const mongo = await freshDb('chaos');
    cleanups.push(() => mongo.drop());
    const db = mongo.db;
    await new FeedStore(db).ensureIndexes();

    const actor = uniqueName('tkill');
    const total = 20_000;
    const followers = await seedFollowers(db, actor, total, { prefix: `${actor}-f`, activeEvery: 4 });
    const queues = testQueues(actor);
    const feeds = new FeedClient({
      temporal: new Client({ connection }),
      db,
      taskQueue: queues.workflow,
      // Slower chunks, so the kill lands with chunks in flight and more to dispatch.
      fanout: { highTaskQueue: queues.high, lowTaskQueue: queues.low, maxInFlight: 4, chunkExecution },
    });
    const { workers, acknowledged, calls } = await countingWorkers(nativeConnection, db, queues);
    const written = () => db.collection(Collections.feed(FeedType.TIMELINE)).countDocuments({ activityId: `${actor}-a1` });

    const summary = await withWorkers(workers, async () => {
      const { activityId } = await feeds.addActivity({ id: `${actor}-a1`, actor, verb: 'pin', object: 'p1' });
      // Mid-way through the HIGH pass: whatever it finishes while the server is down, the LOW pass
      // can only start once the server is back.
      await until(acknowledged, followers.high.length * 0.4);
      await kill(server.process);
      const atKill = await acknowledged();
      await new Promise((r) => setTimeout(r, 1000));
      const restartedAt = Date.now();
      server = await startTemporalDevServer(serverOptions);
      const upAfter = Date.now() - restartedAt;
      // Chunks are local activities: the worker goes on writing while the server is down until
      // it must record them. Those not recorded are written again (changing nothing) once it is
      // back, and the rest after them: wait for a chunk started after the restart, unless the
      // fanout wrote everything while the server came up (a pass records its chunks in batches,
      // so its worker may be that far ahead).
      const startedBefore = await calls();
      await until(async () => ((await calls()) > startedBefore || (await written()) === total ? 1 : 0), 1);
      const resumed = (await calls()) > startedBefore ? `the fanout writing again ${Date.now() - restartedAt} ms after it` : 'every entry already written by then';
      console.log(`Temporal kill at ${atKill} of ${total} entries acknowledged (${await acknowledged()} by the restart): server up ${upAfter} ms after its restart, ${resumed}`);
      expect(atKill).toBeLessThan(followers.high.length);
      return feeds.waitForFanout(activityId);
    });

    expect(summary).toMatchObject({ done: true, followersSeen: total, failures: [] });
    expect(await written()).toBe(total);
    expect(await owners(db, `${actor}-a1`)).toEqual(followers.all);
  });
});

describe.runIf(killable)('chaos: a stream of batched small posts', () => {
  it('the store, the Temporal server and a worker process are SIGKILLed during a stream of small posts: every follower of every post has it exactly once', { timeout: 300_000 }, async () => {
    quietRuntime();
    const kind = storeKindOfSuite as StoreKind;
    const tools = ensureTools(kind === 'mongodb' ? { mongod: true } : { ferretdb: true });
    const storeOptions = { port: await freePort(), dataDir: path.join(dir, `${kind}-posts`), logFile: path.join(dir, `${kind}-posts.log`), binary: storeBinary(tools, kind) };
    let store: ManagedServer = await startStore(kind, storeOptions);
    cleanups.push(() => store.stop());
    const serverOptions = {
      port: await freePort(),
      dbFile: path.join(dir, 'temporal-posts.db'),
      sqlitePragmas: ['journal_mode=wal', 'synchronous=normal'],
      logFile: path.join(dir, 'temporal-posts.log'),
      cli: tools.temporalCli,
    };
    let server = await startTemporalDevServer(serverOptions);
    cleanups.push(() => server.stop());
    const mongo = await MongoClient.connect(store.address);
    cleanups.push(() => mongo.close());
    const database = 'chaos-posts';
    const db = mongo.db(database);
    await new FeedStore(db).ensureIndexes();
    const connection = await Connection.connect({ address: server.address });
    cleanups.push(() => connection.close());

    const name = uniqueName('posts');
    const actors: Array<{ id: string; followers: string[] }> = [];
    for (let i = 0; i < 30; i++) {
      const id = `${name}-a${i}`;
      actors.push({ id, followers: (await seedFollowers(db, id, 10 + ((i * 7) % 50), { prefix: `${id}-f`, activeEvery: 3 })).all });
    }
    const queues = testQueues(name);
    const feeds = new FeedClient({
      temporal: new Client({ connection }),
      db,
      taskQueue: queues.workflow,
      fanout: { highTaskQueue: queues.high, lowTaskQueue: queues.low },
      batchSmallPosts: { shards: 4 },
    });
    // The real worker command, in a process of its own that can be killed.
    const startWorker = () =>
      startWorkerCommand(database, ['--workflow-queue', queues.workflow, '--queue', queues.workflow, '--pass-queue', queues.high, '--pass-queue', queues.low, '--no-schedules'], {
        TEMPORAL_ADDRESS: server.address,
        MONGODB_URI: store.address,
      });
    let worker = startWorker();
    cleanups.push(async () => void (await worker.stop('SIGKILL')));
    await worker.ready;

    // The app's side: posts one after another; a post that fails (store or server down) is sent
    // again with the same id, as an app retries, until it is accepted.
    const total = 240;
    const posts: Array<{ id: string; actor: (typeof actors)[number] }> = [];
    let accepted = 0;
    let refused = 0;
    const stream = (async () => {
      for (let i = 0; i < total; i++) {
        const actor = actors[(i * 11) % actors.length];
        const post = { id: `${name}-p${i}`, actor };
        posts.push(post);
        for (;;) {
          try {
            await feeds.addActivity({ id: post.id, actor: actor.id, verb: 'post', object: `o${i}` });
            break;
          } catch {
            refused++;
            await new Promise((r) => setTimeout(r, 200));
          }
        }
        accepted++;
        await new Promise((r) => setTimeout(r, 25));
      }
    })();

    const killedAt: number[] = [];
    await until(() => Promise.resolve(accepted), total * 0.2);
    await kill(store.process);
    killedAt.push(accepted);
    await new Promise((r) => setTimeout(r, 1000));
    store = await startStore(kind, storeOptions);
    await until(() => Promise.resolve(accepted), total * 0.45);
    await kill(server.process);
    killedAt.push(accepted);
    await new Promise((r) => setTimeout(r, 1000));
    server = await startTemporalDevServer(serverOptions);
    await until(() => Promise.resolve(accepted), total * 0.7);
    await worker.stop('SIGKILL');
    killedAt.push(accepted);
    worker = startWorker();
    await worker.ready;
    await stream;
    // Every kill landed mid-stream, with posts still to come.
    for (const at of killedAt) expect(at).toBeLessThan(total);
    const summaries = await Promise.all(posts.map((p) => feeds.waitForFanout(p.id)));
    console.log(`batched posts under kills (store, Temporal, worker at ${killedAt.join(', ')} posts accepted): ${total} posts accepted, ${refused} attempts refused while a server was down (the drivers wait and retry)`);

    expect(summaries.every((s) => s.done && s.failures.length === 0)).toBe(true);
    // Counted in the database: every follower of every post exactly once, and nobody else.
    for (const p of posts) expect(await owners(db, p.id)).toEqual(p.actor.followers);
    const entries = await db.collection(Collections.feed(FeedType.TIMELINE)).countDocuments({});
    expect(entries).toBe(posts.reduce((n, p) => n + p.actor.followers.length, 0));
  });
});
