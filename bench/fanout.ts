/**
 * `npm run bench [-- --followers N] [--page-size P] [--chunk-size C] [--in-flight F]`
 *
 * Fans one activity out to N followers (default 100,000) on a local stack and prints wall time,
 * feed entries per second, history events and continue-as-new count, beside the raw rate of
 * writing the same entries with plain batched driver writes (same store, same chunk size, same
 * parallelism, no Temporal) measured in the same run. The ratio of the two is the figure we steer by.
 *
 * Starts its own Temporal dev server and FerretDB in a temp directory, unless TEMPORAL_ADDRESS /
 * MONGODB_URI are set. Trimming is off on both sides (trimChance 0): it is separate work.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { MongoClient } from 'mongodb';
import { FeedClient } from '../src/client';
import { ensureTools, type ManagedServer, startFerretDb, startTemporalDevServer } from '../src/dev/local-stack';
import { FANOUT_DEFAULTS } from '../src/model/fanout';
import { FeedStore } from '../src/storage/feed-store';
import { insertManyIgnoringDuplicates } from '../src/storage/insert';
import { createWorkers } from '../src/worker/workers';
import { seedFollowers } from '../test/utils/graph';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const n = Number(process.argv[i + 1]);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got "${process.argv[i + 1]}"`);
  return n;
}

async function main(): Promise<void> {
  const followers = arg('followers', 100_000);
  const pageSize = arg('page-size', FANOUT_DEFAULTS.pageSize);
  const chunkSize = arg('chunk-size', FANOUT_DEFAULTS.chunkSize);
  const maxInFlight = arg('in-flight', FANOUT_DEFAULTS.maxInFlight);
  Runtime.install({ logger: new DefaultLogger('WARN') });

  const dir = mkdtempSync(path.join(os.tmpdir(), 'feed-fanout-bench-'));
  const servers: ManagedServer[] = [];
  try {
    const tools = ensureTools();
    let temporalAddress = process.env.TEMPORAL_ADDRESS;
    if (!temporalAddress) {
      servers.push(await startTemporalDevServer({ logFile: path.join(dir, 'temporal.log'), cli: tools.temporalCli, dbFile: path.join(dir, 'temporal.db'), sqlitePragmas: ['journal_mode=wal', 'synchronous=normal'] }));
      temporalAddress = servers[servers.length - 1]!.address;
    }
    let mongodbUri = process.env.MONGODB_URI;
    if (!mongodbUri) {
      servers.push(await startFerretDb({ dataDir: path.join(dir, 'ferretdb'), logFile: path.join(dir, 'ferretdb.log'), binary: tools.ferretdb }));
      mongodbUri = servers[servers.length - 1]!.address;
    }
    const mongo = await MongoClient.connect(mongodbUri);
    const db = mongo.db(`bench_${Date.now()}`);
    const feeds = { timeline: { trimChance: 0, fanout: true }, user: { trimChance: 0 }, raw: { trimChance: 0 } };
    const store = new FeedStore(db, { feeds });
    await store.ensureIndexes();

    console.log(`bench: seeding ${followers} followers ...`);
    const seedStart = Date.now();
    const seeded = await seedFollowers(db, 'bench-actor', followers, { prefix: 'bf', activeEvery: 4 });
    console.log(`bench: seeded in ${((Date.now() - seedStart) / 1000).toFixed(1)} s`);

    // Baseline: the same entries, same chunking and parallelism, plain driver writes.
    const rawStart = Date.now();
    const time = new Date();
    const chunks: string[][] = [];
    for (let i = 0; i < seeded.all.length; i += chunkSize) chunks.push(seeded.all.slice(i, i + chunkSize));
    let next = 0;
    let rawWritten = 0;
    await Promise.all(
      Array.from({ length: maxInFlight }, async () => {
        while (next < chunks.length) {
          const chunk = chunks[next++]!;
          const n = await insertManyIgnoringDuplicates(
            store.feed('raw'),
            chunk.map((owner) => ({ _id: `${owner}/raw-1`, owner, activityId: 'raw-1', actor: 'bench-actor', time })),
          );
          rawWritten += n; // not `+= await`: that reads the total before the await and loses updates

        }
      }),
    );
    const rawSeconds = (Date.now() - rawStart) / 1000;

    // The fanout through Temporal, workers in this process.
    const connection = await Connection.connect({ address: temporalAddress });
    const nativeConnection = await NativeConnection.connect({ address: temporalAddress });
    const temporal = new Client({ connection });
    const workers = await createWorkers({ connection: nativeConnection, db, feedStore: { feeds } });
    const running = Promise.all(workers.map((w) => w.run()));
    const client = new FeedClient({ temporal, db, feeds, fanout: { pageSize, chunkSize, maxInFlight } });
    const fanStart = Date.now();
    const { activityId, workflowId } = await client.addActivity({ id: 'bench-1', actor: 'bench-actor', verb: 'post', object: 'o1' });
    const summary = await client.waitForFanout(activityId);
    const fanSeconds = (Date.now() - fanStart) / 1000;
    workers.forEach((w) => w.shutdown());
    await running;

    let events = 0;
    let runs = 0;
    for await (const run of temporal.workflow.list({ query: `WorkflowId = '${workflowId}'` })) {
      runs++;
      events += run.historyLength;
    }
    const written = await store.feed('timeline').countDocuments({ activityId });
    const fanRate = written / fanSeconds;
    const rawRate = rawWritten / rawSeconds;

    const rows: Array<[string, string, string]> = [
      ['entries written', String(written), String(rawWritten)],
      ['wall time (s)', fanSeconds.toFixed(1), rawSeconds.toFixed(1)],
      ['entries / s', fanRate.toFixed(0), rawRate.toFixed(0)],
      ['history events (all runs)', String(events), '-'],
      ['workflow runs / continue-as-new', `${runs} / ${summary.continuedAsNew}`, '-'],
      ['failed chunks', String(summary.high.chunksFailed + summary.low.chunksFailed), '-'],
    ];
    console.log(`\nbench: ${followers} followers, pageSize ${pageSize}, chunkSize ${chunkSize}, maxInFlight ${maxInFlight}, store ${process.env.MONGODB_URI ? 'MONGODB_URI' : 'FerretDB 1.24 (SQLite)'}`);
    console.log(`| metric | fanout (Temporal) | raw driver writes |`);
    console.log(`|---|---:|---:|`);
    for (const [m, a, b] of rows) console.log(`| ${m} | ${a} | ${b} |`);
    console.log(`\nratio (fanout rate / raw rate): ${(fanRate / rawRate).toFixed(2)}`);

    await db.dropDatabase();
    await mongo.close();
    await connection.close();
    await nativeConnection.close();
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(`bench failed: ${err instanceof Error ? err.stack : String(err)}`);
  process.exit(1);
});
