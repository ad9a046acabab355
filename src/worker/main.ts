/**
 * The worker command: `npm run worker -- [--queue NAME[=CONCURRENCY]]...`
 *
 * Serves the given task queues (default: `fanout`, `high-fanout`, `low-fanout`), connecting to
 * TEMPORAL_ADDRESS and MONGODB_URI. Run it several times to scale a queue out, e.g. two processes
 * with `--queue high-fanout=50` and one with `--queue fanout --queue low-fanout=10`.
 * SIGINT/SIGTERM shut down gracefully: no new tasks are taken, running activities finish.
 */
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Runtime } from '@temporalio/worker';
import { MongoClient } from 'mongodb';
import { settingsFromEnv } from '../config';
import { FanoutError } from '../errors';
import { NetworkStore } from '../integrations/network-store';
import { SharedRateLimiter } from '../integrations/rate-limiter';
import { checkTaskQueue } from '../model/validation';
import { defaultSchedules, reconcileSchedules } from '../schedules/schedules';
import { FeedStore } from '../storage/feed-store';
import { createWorkers, parseQueuePlan, type QueuePlan } from './workers';

async function main(argv: string[]): Promise<void> {
  const queues: QueuePlan[] = [];
  let workflowTaskQueue: string | undefined;
  let schedules = true;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--queue' || arg === '-q') queues.push(parseQueuePlan(argv[++i] ?? ''));
    else if (arg === '--workflow-queue') workflowTaskQueue = checkTaskQueue('--workflow-queue', argv[++i]);
    else if (arg.startsWith('--queue=')) queues.push(parseQueuePlan(arg.slice('--queue='.length)));
    else if (arg === '--no-schedules') schedules = false;
    else if (arg === '--help' || arg === '-h') {
      console.log(
        [
          'usage: worker [--queue NAME[=CONCURRENCY[@PER_SECOND]]]... [--workflow-queue NAME] [--no-schedules]',
          '  --queue           a task queue to serve, with its activity concurrency (default 20) and',
          '                    optionally a queue-wide activity rate limit (e.g. import-fakebook=10@5);',
          '                    repeatable; default: fanout, high-fanout, low-fanout (+ import,',
          '                    import-whale, trickle when networks are configured)',
          '  --workflow-queue  the queue whose worker also runs workflows (default: fanout)',
          '  --no-schedules    do not reconcile the Temporal Schedules declared in code at start',
          'env: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, MONGODB_URI, FANOUT_DB, FANOUT_FEEDS_FILE (feed types, JSON),',
          '     FANOUT_NETWORKS_FILE (third-party networks, JSON), FANOUT_EGRESS_IP (key of per-IP rate limits)',
        ].join('\n'),
      );
      return;
    } else throw new FanoutError(`unknown argument "${arg}" (try --help)`);
  }
  const settings = settingsFromEnv();
  Runtime.install({ shutdownSignals: ['SIGINT', 'SIGTERM'] });
  const mongo = await MongoClient.connect(settings.mongodbUri);
  const db = mongo.db(settings.database);
  await new FeedStore(db, { feeds: settings.feeds }).ensureIndexes();
  await new NetworkStore(db).ensureIndexes();
  await new SharedRateLimiter(db).ensureIndexes();
  const connection = await NativeConnection.connect({ address: settings.temporalAddress });
  try {
    if (schedules) {
      // Schedules in code: what runs is what this version declares, reconciled at every start.
      const clientConnection = await Connection.connect({ address: settings.temporalAddress });
      try {
        const client = new Client({ connection: clientConnection, namespace: settings.namespace });
        await reconcileSchedules(client, defaultSchedules({ workflowTaskQueue }), { logger: (line) => console.log(`worker ${process.pid}: ${line}`) });
      } finally {
        await clientConnection.close();
      }
    }
    const workers = await createWorkers({
      connection,
      namespace: settings.namespace,
      db,
      feedStore: { feeds: settings.feeds },
      networks: settings.networks,
      imports: { egressIp: settings.egressIp },
      workflowTaskQueue,
      queues: queues.length ? queues : undefined,
    });
    const names = workers.map((w) => w.options.taskQueue).join(', ');
    const feedTypes = Object.keys(settings.feeds).join(', ');
    const networks = Object.keys(settings.networks).join(', ') || 'none';
    console.log(`worker ${process.pid}: serving ${names} on ${settings.temporalAddress}, database ${settings.database}, feeds ${feedTypes}, networks ${networks}`);
    await Promise.all(workers.map((w) => w.run()));
    console.log(`worker ${process.pid}: shut down cleanly`);
  } finally {
    await connection.close();
    await mongo.close();
  }
}

main(process.argv.slice(2)).catch((err) => {
  console.error(`worker: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
