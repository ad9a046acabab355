/**
 * The worker command: `npm run worker -- [--queue NAME[=CONCURRENCY]]...`
 *
 * Serves the given task queues (default: `fanout`, `high-fanout`, `low-fanout`), connecting to
 * TEMPORAL_ADDRESS and MONGODB_URI. Run it several times to scale a queue out, e.g. two processes
 * with `--queue high-fanout=50` and one with `--queue fanout --queue low-fanout=10`.
 * SIGINT/SIGTERM shut down gracefully: no new tasks are taken, running activities finish.
 */
import { NativeConnection, Runtime } from '@temporalio/worker';
import { MongoClient } from 'mongodb';
import { settingsFromEnv } from '../config';
import { FanoutError } from '../errors';
import { checkTaskQueue } from '../model/validation';
import { FeedStore } from '../storage/feed-store';
import { createWorkers, parseQueuePlan, type QueuePlan } from './workers';

async function main(argv: string[]): Promise<void> {
  const queues: QueuePlan[] = [];
  let workflowTaskQueue: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--queue' || arg === '-q') queues.push(parseQueuePlan(argv[++i] ?? ''));
    else if (arg === '--workflow-queue') workflowTaskQueue = checkTaskQueue('--workflow-queue', argv[++i]);
    else if (arg.startsWith('--queue=')) queues.push(parseQueuePlan(arg.slice('--queue='.length)));
    else if (arg === '--help' || arg === '-h') {
      console.log(
        [
          'usage: worker [--queue NAME[=CONCURRENCY]]... [--workflow-queue NAME]',
          '  --queue           a task queue to serve, with its activity concurrency (default 20);',
          '                    repeatable; default: fanout, high-fanout, low-fanout',
          '  --workflow-queue  the queue whose worker also runs workflows (default: fanout)',
          'env: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, MONGODB_URI, FANOUT_DB, FANOUT_FEEDS_FILE (feed types, JSON)',
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
  const connection = await NativeConnection.connect({ address: settings.temporalAddress });
  try {
    const workers = await createWorkers({
      connection,
      namespace: settings.namespace,
      db,
      feedStore: { feeds: settings.feeds },
      workflowTaskQueue,
      queues: queues.length ? queues : undefined,
    });
    const names = workers.map((w) => w.options.taskQueue).join(', ');
    const feedTypes = Object.keys(settings.feeds).join(', ');
    console.log(`worker ${process.pid}: serving ${names} on ${settings.temporalAddress}, database ${settings.database}, feeds ${feedTypes}`);
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
