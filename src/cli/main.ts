#!/usr/bin/env node
/**
 * `feed-fanout`: the package's command. `feed-fanout worker` runs a worker; the other commands are
 * an operator's view of a deployment (`feed-fanout --help`). Connection settings come from the
 * environment: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, MONGODB_URI, FANOUT_DB, FANOUT_FEEDS_FILE,
 * FANOUT_NETWORKS_FILE, FANOUT_EGRESS_IP.
 * @module
 */
import { Client } from '@temporalio/client';
import { DefaultLogger, type LogLevel } from '@temporalio/worker';
import { Command, InvalidArgumentError, Option } from 'commander';
import { MongoClient } from 'mongodb';
import { type BacklogQueue, batchedPostStatus, fanoutQueuesOf, type FanoutStatus, fanoutStatus, FeedClient, listFanouts, parseBacklogQueue, type QueueBacklog, queueBacklog, retryFanout } from '../client';
import { FeedStore } from '../storage/feed-store';
import { settingsFromEnv } from '../config/settings';
import { connectClient } from '../config/connect';
import { FanoutError, NotFoundError, ValidationError } from '../contract/errors';
import { FanoutOperation } from '../contract/constants';
import { describeRetry, type FanoutProgress } from '../contract/fanout';
import { checkTaskQueue } from '../contract/validation';
import { PREBUILT_BUNDLE_PATH, writeWorkflowBundle } from '../worker/bundle';
import type { LogFormat } from '../worker/logging';
import { parseQueuePlan, type QueuePlan } from '../worker/workers';
import { LOG_LEVELS, runWorkerCommand } from './worker-command';

/** A commander argument parser from one of ours: a `ValidationError` becomes a usage error. */
function parsed<T>(parse: (value: string) => T): (value: string) => T {
  return (value) => {
    try {
      return parse(value);
    } catch (err) {
      if (err instanceof ValidationError) throw new InvalidArgumentError(err.message);
      throw err;
    }
  };
}

const port = parsed((value) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new ValidationError('port', `must be an integer 0..65535, got "${value}"`);
  return n;
});

/** Connects a Temporal client from the environment; runs `fn`; closes. */
async function withTemporal<T>(fn: (client: Client, namespace: string) => Promise<T>): Promise<T> {
  const settings = settingsFromEnv();
  const connection = await connectClient(settings);
  try {
    return await fn(new Client({ connection, namespace: settings.namespace }), settings.namespace);
  } finally {
    await connection.close();
  }
}

/** Prints `value` as JSON, or as `text` lines. */
function print(json: boolean, value: unknown, text: () => string): void {
  console.log(json ? JSON.stringify(value, null, 2) : text());
}

/** A number for a person, or `?` when a progress of another version lacks it. */
const count = (n: unknown): string => (typeof n === 'number' && Number.isFinite(n) ? String(n) : '?');

/** A fanout's progress in lines; robust to a progress object of another version (missing fields show `?`). */
function describeProgress(p: Partial<FanoutProgress>): string {
  const pr = (name: string, c: Partial<FanoutProgress['high']> | undefined) =>
    c && typeof c === 'object'
      ? `  ${name}: ${count(c.followers)} followers, ${count(c.chunksDone)} chunks done, ${count(c.chunksInFlight)} in flight, ${count(c.chunksFailed)} failed, ${count(c.entriesChanged)} entries changed`
      : `  ${name}: no counts`;
  const failures = Array.isArray(p.failures) ? p.failures : [];
  return [
    `  followers seen: ${count(p.followersSeen)} (${count(p.pagesRead)} page${p.pagesRead === 1 ? '' : 's'}, ${count(p.continuedAsNew)} continue-as-new)${p.done ? ', done' : ''}`,
    pr('HIGH', p.high),
    pr('LOW ', p.low),
    ...(p.stalled ? [`  STALLED: ${p.stalled}`] : []),
    ...(p.retrying && typeof p.retrying === 'object' ? [`  RETRYING: ${describeRetry(p.retrying)}`] : []),
    ...failures.slice(0, 5).map((f) => `  failed ${f?.priority ?? '?'} chunk${f?.firstFollowerId ? ` from ${f.firstFollowerId}` : ''}: ${f?.message ?? '(no message)'}`),
  ].join('\n');
}

/** The worker command's flags as commander parses them. */
interface WorkerFlags {
  queue: QueuePlan[];
  passQueue: QueuePlan[];
  workflowQueue?: string;
  schedules: boolean;
  metricsPort?: number;
  healthPort?: number;
  logFormat: LogFormat;
  logLevel: LogLevel;
}

const program = new Command('feed-fanout')
  .description('Feed fanout on Temporal and MongoDB: run workers, and look after the fanouts they run.')
  .showHelpAfterError('(run with --help for usage)')
  .addHelpText(
    'after',
    '\nEnvironment: TEMPORAL_ADDRESS (default localhost:7233), TEMPORAL_NAMESPACE (default), MONGODB_URI,\n' +
      'FANOUT_DB (feed_fanout), FANOUT_FEEDS_FILE, FANOUT_NETWORKS_FILE, FANOUT_EGRESS_IP.',
  );

program
  .command('worker')
  .description('serve task queues: workflows, follower paging, feed writes, imports')
  .option(
    '-q, --queue <NAME[=CONCURRENCY[@PER_SECOND]]>',
    'a task queue to serve, with its activity concurrency (default 20) and optionally a queue-wide activity rate limit; repeatable (default: fanout, high-fanout, low-fanout, + import queues when networks are configured)',
    (value: string, all: QueuePlan[]) => [...all, parsed(parseQueuePlan)(value)],
    [] as QueuePlan[],
  )
  .option(
    '--pass-queue <NAME[=CONCURRENCY]>',
    "a chunk queue under another name than high-fanout / low-fanout: served like them, running the fanout's priority passes and their chunk writes; repeatable",
    (value: string, all: QueuePlan[]) => [...all, { ...parsed(parseQueuePlan)(value), workflows: true }],
    [] as QueuePlan[],
  )
  .option('--workflow-queue <NAME>', 'the queue whose worker also runs workflows (default: fanout)', parsed((v) => checkTaskQueue('--workflow-queue', v)))
  .option('--no-schedules', 'do not reconcile the Temporal Schedules declared in code at start')
  .option('--metrics-port <PORT>', 'serve Prometheus metrics (SDK and fanout metrics) at http://0.0.0.0:PORT/metrics', port)
  .option('--health-port <PORT>', 'serve /healthz (liveness) and /readyz (readiness) at http://0.0.0.0:PORT', port)
  .addOption(new Option('--log-format <FORMAT>', 'text lines, or one JSON object per line').choices(['text', 'json']).default('text'))
  .addOption(new Option('--log-level <LEVEL>', 'least severe level logged').choices(LOG_LEVELS).default('INFO'))
  .action(async (opts: WorkerFlags) => {
    await runWorkerCommand({
      queues: [...opts.queue, ...opts.passQueue],
      workflowQueue: opts.workflowQueue,
      schedules: opts.schedules,
      metricsPort: opts.metricsPort,
      healthPort: opts.healthPort,
      logFormat: opts.logFormat,
      logLevel: opts.logLevel,
    });
  });

/**
 * A command about one activity's fanout (`<activityId>`, `--remove` for its removal, `--json`):
 * runs `call` against Temporal and prints its result with `text`.
 */
function fanoutCommand<T>(name: string, description: string, call: (client: Client, activityId: string, operation: FanoutOperation) => Promise<T>, text: (result: T) => string): void {
  program
    .command(name)
    .description(description)
    .argument('<activityId>', `the activity whose fanout to ${name === 'progress' ? 'show' : name}`)
    .option('--remove', 'the removal fanout instead of the add')
    .option('--json', 'print JSON')
    .action(async (activityId: string, opts: { remove?: boolean; json?: boolean }) => {
      const result = await withTemporal((client) => call(client, activityId, opts.remove ? FanoutOperation.REMOVE : FanoutOperation.ADD));
      print(!!opts.json, result, () => text(result));
    });
}

/**
 * A fanout's status; for an add with no fanout workflow of its own, a batched post's (see
 * `FeedClientOptions.batchSmallPosts`), read from its activity document in MONGODB_URI / FANOUT_DB.
 */
async function statusOf(client: Client, activityId: string, operation: FanoutOperation): Promise<FanoutStatus> {
  try {
    return await fanoutStatus(client, activityId, operation);
  } catch (err) {
    if (!(err instanceof NotFoundError) || operation !== FanoutOperation.ADD) throw err;
    const settings = settingsFromEnv();
    const doc = await (async () => {
      const mongo = await MongoClient.connect(settings.mongodbUri, { serverSelectionTimeoutMS: 5000 });
      try {
        return await new FeedStore(mongo.db(settings.database), { feeds: settings.feeds }).getActivity(activityId);
      } finally {
        await mongo.close();
      }
    })().catch(() => null); // the store unreachable: the workflow's answer stands
    if (doc?.fanout) return batchedPostStatus(doc);
    throw err;
  }
}

fanoutCommand('progress', "a fanout's (or batched post's) state: live progress while it runs, its result or failure after", statusOf, (status) =>
  [
    `${status.workflowId}: ${status.status}${status.summary ? ` — ${status.summary}` : ''}`,
    `  started ${status.startTime}${status.closeTime ? `, closed ${status.closeTime}` : ''}`,
    ...(status.closeReason ? [`  ${status.closeReason}`] : []),
    ...(status.failure ? [`  failure${status.failureType ? ` (${status.failureType})` : ''}: ${status.failure}`] : []),
    ...(status.progress ? [describeProgress(status.progress)] : status.progressUnavailable ? [`  no counts: ${status.progressUnavailable}`] : []),
  ].join('\n'),
);

program
  .command('list')
  .description('fanouts by state, newest first (from Temporal visibility)')
  .addOption(new Option('--state <STATE>', 'which fanouts').choices(['running', 'failed', 'stalled', 'completed', 'all']).default('running'))
  .option('--actor <USER>', "only this actor's fanouts")
  .option('--limit <N>', 'at most this many', parsed((v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1 || n > 10_000) throw new ValidationError('--limit', `must be an integer 1..10000, got "${v}"`);
    return n;
  }), 50)
  .option('--json', 'print JSON')
  .action(async (opts: { state: 'running'; actor?: string; limit: number; json?: boolean }) => {
    const rows = await withTemporal((client) => listFanouts(client, { state: opts.state, actor: opts.actor, limit: opts.limit }));
    print(!!opts.json, rows, () =>
      rows.length === 0
        ? `no ${opts.state === 'running' ? 'running' : opts.state} fanouts${opts.actor ? ` of ${opts.actor}` : ''}`
        : rows.map((r) => `${r.status.padEnd(10)} ${r.stalled ? 'STALLED ' : ''}${r.workflowId}  actor=${r.actor ?? '-'}  started ${r.startTime}`).join('\n'),
    );
  });

program
  .command('backlog')
  .description('tasks waiting on each task queue, their age, rates and pollers')
  .option(
    '-q, --queue <NAME[:KIND]>',
    "a task queue to show, KIND workflow or activity (default both); repeatable (default: the project's queues)",
    (v: string, all: BacklogQueue[]) => [...all, ...parsed((x) => parseBacklogQueue(x))(v)],
    [] as BacklogQueue[],
  )
  .option('--json', 'print JSON')
  .action(async (opts: { queue: BacklogQueue[]; json?: boolean }) => {
    const rows = await withTemporal((client, namespace) => queueBacklog(client, namespace, opts.queue.length ? opts.queue : undefined));
    print(!!opts.json, rows, () => backlogTable(rows));
  });

/** The backlog rows as an aligned table, one column per field. */
function backlogTable(rows: QueueBacklog[]): string {
  const header = ['queue', 'tasks', 'backlog', 'oldest(s)', 'added/s', 'dispatched/s', 'pollers'];
  const cells = rows.map((r) => [r.taskQueue, r.kind, String(r.backlog), r.oldestSeconds.toFixed(1), r.addRate.toFixed(1), r.dispatchRate.toFixed(1), String(r.pollers)]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  // Names and kinds left-aligned, numbers right-aligned.
  const line = (c: string[]) => c.map((v, i) => (i < 2 ? v.padEnd(widths[i]) : v.padStart(widths[i]))).join('  ').trimEnd();
  return [line(header), ...cells.map(line)].join('\n');
}

fanoutCommand(
  'retry',
  'start a failed, cancelled, terminated or timed-out fanout again (only missing entries are written)',
  retryFanout,
  (started) => `retrying: ${started.workflowId} (run ${started.runId})`,
);

program
  .command('remove')
  .description('remove an activity: hidden at once, then swept out of every feed')
  .argument('<activityId>', 'the activity to remove')
  .option('--workflow-queue <NAME>', "the removal's workflow queue (default: the add fanout's, else fanout)", parsed((v) => checkTaskQueue('--workflow-queue', v)))
  .option('--low-queue <NAME>', "the queue of the removal's batches (default: the add fanout's LOW queue, else low-fanout)", parsed((v) => checkTaskQueue('--low-queue', v)))
  .option('--wait', 'wait until every entry is gone')
  .option('--json', 'print JSON')
  .action(async (activityId: string, opts: { workflowQueue?: string; lowQueue?: string; wait?: boolean; json?: boolean }) => {
    const settings = settingsFromEnv();
    const mongo = await MongoClient.connect(settings.mongodbUri);
    try {
      const out = await withTemporal(async (client) => {
        // Where the activity's add fanout ran is where its workers are.
        const ran = await fanoutQueuesOf(client, activityId);
        const taskQueue = opts.workflowQueue ?? ran?.taskQueue;
        const lowTaskQueue = opts.lowQueue ?? ran?.lowTaskQueue;
        const feeds = new FeedClient({
          temporal: client,
          db: mongo.db(settings.database),
          feeds: settings.feeds,
          ...(taskQueue ? { taskQueue } : {}),
          ...(lowTaskQueue ? { fanout: { lowTaskQueue } } : {}),
        });
        const started = await feeds.removeActivity(activityId);
        const summary = opts.wait ? await feeds.waitForFanout(activityId, FanoutOperation.REMOVE) : undefined;
        return { ...started, ...(summary ? { removedEntries: summary.low.entriesChanged } : {}) };
      });
      print(!!opts.json, out, () =>
        `${out.started ? 'removing' : 'already being removed'}: ${out.workflowId}${out.removedEntries !== undefined ? `; ${out.removedEntries} entries removed` : ''}`,
      );
    } finally {
      await mongo.close();
    }
  });

program
  .command('bundle')
  .description('bundle the workflow code ahead of time (npm run build does it), so workers start without bundling')
  .option('--out <FILE>', 'where to write it', PREBUILT_BUNDLE_PATH)
  .action(async (opts: { out: string }) => {
    await writeWorkflowBundle(opts.out, new DefaultLogger('WARN'));
    console.log(`workflow bundle written to ${opts.out}`);
  });

program.parseAsync(process.argv).catch((err: unknown) => {
  // Our errors say what happened and what to do; anything else gets its stack for a bug report.
  const message = err instanceof FanoutError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err);
  console.error(`feed-fanout: ${message}`);
  process.exit(1);
});
