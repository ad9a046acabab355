/**
 * `feed-fanout worker`: serves task queues with the project's workflows and activities, connected
 * to TEMPORAL_ADDRESS and MONGODB_URI, with optional Prometheus metrics, a health endpoint and
 * JSON logs. SIGINT/SIGTERM shut down gracefully: no new tasks are taken, running activities finish.
 * @module
 */
import net from 'node:net';
import { Client } from '@temporalio/client';
import { type LogLevel, NativeConnection, Runtime } from '@temporalio/worker';
import { MongoClient } from 'mongodb';
import { settingsFromEnv } from '../config/settings';
import { connectClient, connectionProblem, tlsHandshakeProblem } from '../config/connect';
import { ConfigurationError } from '../contract/errors';
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

/** How long start-up waits for MongoDB to answer before it gives up, saying why. */
const MONGODB_STARTUP_TIMEOUT_MS = 5000;

/**
 * How long a store call waits for a server to answer once the store is down, unless the URI says
 * otherwise: a fanout notices an outage after the first such wait (see `StoreBreaker`), so the
 * driver's default of 30 s would keep its retries out of sight that long. A replica set's election
 * (about 11 s on the local cluster) may fail a few calls on the way; they are retried.
 */
const MONGODB_SERVER_SELECTION_TIMEOUT_MS = 10_000;

/** Runs the worker command until a shutdown signal; resolves once every worker has stopped. */
export async function runWorkerCommand(options: WorkerCommandOptions): Promise<void> {
  const started = Date.now();
  const settings = settingsFromEnv();
  // What can be found out before anything starts, in a second or less, so that a taken port or an
  // unreachable database is one line naming it (not a masked error or 30 s of silence).
  if (options.healthPort !== undefined) await ensurePortFree(options.healthPort, 'health port', '--health-port');
  if (options.metricsPort !== undefined) await ensurePortFree(options.metricsPort, 'metrics port', '--metrics-port');
  await ensureMongoReachable(settings.mongodbUri);

  const logger = createLogger(options.logFormat, options.logLevel);
  Runtime.install({
    logger,
    shutdownSignals: ['SIGINT', 'SIGTERM'],
    telemetryOptions: {
      ...(options.metricsPort !== undefined ? { metrics: { prometheus: { bindAddress: `0.0.0.0:${options.metricsPort}` } } } : {}),
    },
  });
  try {
    Runtime.instance(); // binds the metrics port now, so losing a race for it is reported as such
  } catch (err) {
    if (options.metricsPort !== undefined && /address already in use|os error 98/i.test(String((err as Error)?.message))) {
      throw portInUse(options.metricsPort, 'metrics port', '--metrics-port', err);
    }
    throw err;
  }
  const say = (message: string, meta: Record<string, unknown> = {}): void => {
    logger.info(message, { pid: process.pid, ...meta });
  };

  // Everything opened, closed in reverse order at the end; a failure to close is logged, never
  // thrown over the error that ended the run (the one the operator needs to see).
  const cleanup: Array<{ what: string; close: () => Promise<void> }> = [];
  let failure: { error: unknown } | undefined;
  try {
    const mongo = await MongoClient.connect(
      settings.mongodbUri,
      /serverSelectionTimeoutMS=/i.test(settings.mongodbUri) ? {} : { serverSelectionTimeoutMS: MONGODB_SERVER_SELECTION_TIMEOUT_MS },
    );
    cleanup.push({ what: 'the MongoDB client', close: () => mongo.close() });
    const db = mongo.db(settings.database);
    await new FeedStore(db, { feeds: settings.feeds }).ensureIndexes();
    await new NetworkStore(db).ensureIndexes();
    await new SharedRateLimiter(db).ensureIndexes();
    const connection = await NativeConnection.connect(settings.temporal).catch(async (err: unknown) => {
      throw connectionProblem(settings, err, await tlsHandshakeProblem(settings));
    });
    // Workers created but never run hold the connection (the SDK refuses to close it then): it
    // is only closed once they ran; otherwise the process exit releases it.
    let workersRan = true;
    cleanup.push({ what: 'the Temporal worker connection', close: async () => (workersRan ? connection.close() : undefined) });
    const clientConnection = await connectClient(settings);
    cleanup.push({ what: 'the Temporal client connection', close: () => clientConnection.close() });
    if (options.schedules) {
      // Schedules in code: what runs is what this version declares, reconciled at every start.
      const client = new Client({ connection: clientConnection, namespace: settings.namespace });
      await reconcileSchedules(client, defaultSchedules({ workflowTaskQueue: options.workflowQueue }), { logger: (line) => say(line) });
    }
    say(`workflow code: ${prebuiltWorkflowBundle().why}`);
    workersRan = false;
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
      const health = await startHealthServer({ port: options.healthPort, workers, temporal: clientConnection, namespace: settings.namespace, db });
      cleanup.push({ what: 'the health server', close: () => health.close() });
      say(`health: http://0.0.0.0:${options.healthPort}/healthz (liveness), /readyz (readiness)`);
    }
    if (options.metricsPort !== undefined) say(`metrics: http://0.0.0.0:${options.metricsPort}/metrics (Prometheus)`);
    const names = workers.map((w) => w.options.taskQueue).join(', ');
    const feedTypes = Object.keys(settings.feeds).join(', ');
    const networks = Object.keys(settings.networks).join(', ') || 'none';
    const running = Promise.all(workers.map((w) => w.run()));
    workersRan = true;
    say(`serving ${names} on ${settings.temporalAddress}, database ${settings.database}, feeds ${feedTypes}, networks ${networks} (started in ${Date.now() - started} ms)`, {
      taskQueues: workers.map((w) => w.options.taskQueue),
      startMs: Date.now() - started,
    });
    await running;
    say('shut down cleanly');
  } catch (err) {
    failure = { error: err };
    throw err;
  } finally {
    let closeError: { error: unknown } | undefined;
    for (const { what, close } of cleanup.reverse()) {
      try {
        await close();
      } catch (err) {
        if (failure) logger.debug(`closing ${what} after a failed start failed too: ${(err as Error)?.message ?? String(err)}`);
        else closeError ??= { error: new Error(`closing ${what} failed: ${(err as Error)?.message ?? String(err)}`, { cause: err }) };
      }
    }
    // Only when the run itself went well: a failure to close is then the news.
    if (!failure && closeError) throw closeError.error;
  }
}

/** The operator's message for a port held by something else. */
function portInUse(port: number, what: string, flag: string, cause?: unknown): ConfigurationError {
  return new ConfigurationError(`${what} ${port} is in use (${flag}): stop what holds it (ss -ltnp | grep :${port}) or pick another port`, { cause });
}

/** Throws {@link portInUse} when nothing can listen on `port` (all interfaces, as the servers do). */
async function ensurePortFree(port: number, what: string, flag: string): Promise<void> {
  if (port === 0) return; // any free port
  await new Promise<void>((resolve, reject) => {
    const server = net.createServer();
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') reject(portInUse(port, what, flag, err));
      else if (err.code === 'EACCES') reject(new ConfigurationError(`${what} ${port} may not be used by this process (${flag}): ports below 1024 need privileges; pick a port above 1023`, { cause: err }));
      else reject(new ConfigurationError(`${what} ${port} cannot be listened on (${flag}): ${err.message}`, { cause: err }));
    });
    server.listen({ port, host: '0.0.0.0', exclusive: true }, () => server.close(() => resolve()));
  });
}

/** The hosts of a MongoDB URI, without credentials or options (`host1:27017,host2:27017`). */
function mongoHosts(uri: string): string {
  const m = /^mongodb(?:\+srv)?:\/\/(?:[^@/?]*@)?([^/?]*)/.exec(uri);
  return m?.[1] || '(no host in MONGODB_URI)';
}

/**
 * Pings MongoDB with a short server-selection timeout ({@link MONGODB_STARTUP_TIMEOUT_MS}), so
 * that a database that is down or misaddressed is reported within seconds, naming where it was
 * looked for, instead of after the driver's 30 s with a stack trace.
 */
async function ensureMongoReachable(uri: string): Promise<void> {
  const where = mongoHosts(uri);
  let probe: MongoClient;
  try {
    probe = new MongoClient(uri, { serverSelectionTimeoutMS: MONGODB_STARTUP_TIMEOUT_MS, connectTimeoutMS: MONGODB_STARTUP_TIMEOUT_MS });
  } catch (err) {
    throw new ConfigurationError(`MONGODB_URI is not a usable MongoDB connection string (hosts ${where}): ${firstLine(err)}. Fix MONGODB_URI`, { cause: err });
  }
  try {
    await probe.connect();
    await probe.db('admin').command({ ping: 1 });
  } catch (err) {
    const reason = firstLine(err);
    if (/auth/i.test(reason) || (err as { code?: number })?.code === 18) {
      throw new ConfigurationError(`MongoDB at ${where} refused the credentials: ${reason}. Check the user and password in MONGODB_URI`, { cause: err });
    }
    throw new ConfigurationError(
      `cannot reach MongoDB at ${where} within ${MONGODB_STARTUP_TIMEOUT_MS / 1000} s: ${reason}. Check MONGODB_URI and that mongod is up`,
      { cause: err },
    );
  } finally {
    await probe.close().catch(() => undefined);
  }
}

/** The first line of an error's message (driver errors can be long). */
function firstLine(err: unknown): string {
  const message = (err as Error)?.message ?? String(err);
  return message.split('\n')[0].trim() || (err as Error)?.name || 'unknown error';
}

/** The levels `--log-level` accepts. */
export const LOG_LEVELS: readonly LogLevel[] = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR'];
