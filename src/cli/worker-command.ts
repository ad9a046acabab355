/**
 * `feed-fanout worker`: serves task queues with the project's workflows and activities, connected
 * to TEMPORAL_ADDRESS and MONGODB_URI, with optional Prometheus metrics, a health endpoint and
 * JSON logs. SIGINT/SIGTERM shut down gracefully: no new tasks are taken, running activities finish.
 * @module
 */
import { Client } from '@temporalio/client';
import { type LogLevel, NativeConnection, Runtime } from '@temporalio/worker';
import { MongoClient } from 'mongodb';
import { settingsFromEnv } from '../config';
import { connectClient, connectionProblem, tlsHandshakeProblem } from '../connect';
import { NetworkStore } from '../integrations/network-store';
import { SharedRateLimiter } from '../integrations/rate-limiter';
import { defaultSchedules, reconcileSchedules } from '../schedules/schedules';
import { FeedStore } from '../storage/feed-store';
import { prebuiltWorkflowBundle } from '../worker/bundle';
import { startHealthServer } from '../worker/health';
import { createLogger, type LogFormat } from '../worker/logging';
import { createWorkers, type QueuePlan } from '../worker/workers';

/** Options of {@link runWorkerCommand}, as the command line gives them. */
export interface WorkerCommandOptions {
  /** Queues to serve; empty: the defaults of `createWorkers`. */
  queues: QueuePlan[];
  /** The queue whose worker runs the workflows. @default 'fanout' */
  workflowQueue?: string | undefined;
  /** Reconcile the Temporal Schedules declared in code at start. @default true */
  schedules: boolean;
  /** Serve Prometheus metrics (the SDK's and the project's) on this port. @default off */
  metricsPort?: number | undefined;
  /** Serve `/healthz` and `/readyz` on this port. @default off */
  healthPort?: number | undefined;
  /** `text` (the SDK's lines) or `json` (one JSON object per line). @default 'text' */
  logFormat: LogFormat;
  /** Least severe level logged. @default 'INFO' */
  logLevel: LogLevel;
}

/** Runs the worker command until a shutdown signal; resolves once every worker has stopped. */
export async function runWorkerCommand(options: WorkerCommandOptions): Promise<void> {
  const started = Date.now();
  const settings = settingsFromEnv();
  const logger = createLogger(options.logFormat, options.logLevel);
  Runtime.install({
    logger,
    shutdownSignals: ['SIGINT', 'SIGTERM'],
    telemetryOptions: {
      ...(options.metricsPort !== undefined ? { metrics: { prometheus: { bindAddress: `0.0.0.0:${options.metricsPort}` } } } : {}),
    },
  });
  const say = (message: string, meta: Record<string, unknown> = {}) => logger.info(message, { pid: process.pid, ...meta });

  const mongo = await MongoClient.connect(settings.mongodbUri);
  const db = mongo.db(settings.database);
  await new FeedStore(db, { feeds: settings.feeds }).ensureIndexes();
  await new NetworkStore(db).ensureIndexes();
  await new SharedRateLimiter(db).ensureIndexes();
  const connection = await NativeConnection.connect(settings.temporal).catch(async (err: unknown) => {
    throw connectionProblem(settings, err, await tlsHandshakeProblem(settings));
  });
  const clientConnection = await connectClient(settings);
  let health: Awaited<ReturnType<typeof startHealthServer>> | undefined;
  try {
    if (options.schedules) {
      // Schedules in code: what runs is what this version declares, reconciled at every start.
      const client = new Client({ connection: clientConnection, namespace: settings.namespace });
      await reconcileSchedules(client, defaultSchedules({ workflowTaskQueue: options.workflowQueue }), { logger: (line) => say(line) });
    }
    say(`workflow code: ${prebuiltWorkflowBundle().why}`);
    const workers = await createWorkers({
      connection,
      namespace: settings.namespace,
      db,
      feedStore: { feeds: settings.feeds },
      networks: settings.networks,
      imports: { egressIp: settings.egressIp },
      workflowTaskQueue: options.workflowQueue,
      queues: options.queues.length ? options.queues : undefined,
    });
    if (options.healthPort !== undefined) {
      health = await startHealthServer({ port: options.healthPort, workers, temporal: clientConnection, namespace: settings.namespace, db });
      say(`health: http://0.0.0.0:${options.healthPort}/healthz (liveness), /readyz (readiness)`);
    }
    if (options.metricsPort !== undefined) say(`metrics: http://0.0.0.0:${options.metricsPort}/metrics (Prometheus)`);
    const names = workers.map((w) => w.options.taskQueue).join(', ');
    const feedTypes = Object.keys(settings.feeds).join(', ');
    const networks = Object.keys(settings.networks).join(', ') || 'none';
    const running = Promise.all(workers.map((w) => w.run()));
    say(`serving ${names} on ${settings.temporalAddress}, database ${settings.database}, feeds ${feedTypes}, networks ${networks} (started in ${Date.now() - started} ms)`, {
      taskQueues: workers.map((w) => w.options.taskQueue),
      startMs: Date.now() - started,
    });
    await running;
    say('shut down cleanly');
  } finally {
    await health?.close();
    await clientConnection.close();
    await connection.close();
    await mongo.close();
  }
}

/** The levels `--log-level` accepts. */
export const LOG_LEVELS: readonly LogLevel[] = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR'];
