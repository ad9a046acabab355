/**
 * The `feed-fanout worker` command as an operator runs it: Prometheus metrics that add up to what
 * was written, liveness and readiness endpoints, JSON log lines with the workflow's ids; and the
 * operator commands against what it ran.
 */
import { execFile } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Db } from 'mongodb';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { FeedClient } from '../../src/client/feed-client';
import { freePort } from '../../dev/local-stack';
import { FANOUT_WORKFLOW_TYPE, FeedType } from '../../src/contract/constants';
import { progressQuery } from '../../src/contract/fanout';
import { Collections } from '../../src/storage/collections';
import { FeedStore } from '../../src/storage/feed-store';
import { startHealthServer } from '../../src/worker/health';
import { devServer, freshDb, uniqueName } from '../utils/env';
import { seedFollowers } from '../../dev/seed';
import { startWorkerCommand, type WorkerProcess } from '../utils/worker-process';
import { testQueues } from '../utils/workers';

let temporal: Awaited<ReturnType<typeof devServer>>;
let mongo: Awaited<ReturnType<typeof freshDb>>;
let db: Db;
let worker: WorkerProcess | undefined;

beforeAll(async () => {
  temporal = await devServer();
});

afterAll(async () => {
  await temporal?.close();
});

beforeEach(async () => {
  mongo = await freshDb('cmd');
  db = mongo.db;
  await new FeedStore(db).ensureIndexes();
});

afterEach(async () => {
  await worker?.stop('SIGKILL');
  worker = undefined;
  await mongo?.drop();
});

/** Sums the samples of a Prometheus metric whose labels include `labels`. */
function sumOf(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})? ([\d.e+-]+|NaN)/.exec(line);
    if (!m || m[1] !== name) continue;
    const found = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.entries(labels).every(([k, v]) => found[k] === v)) sum += Number(m[3]);
  }
  return sum;
}

const cli = (args: string[]) =>
  promisify(execFile)(process.execPath, ['--import', 'tsx', path.resolve(__dirname, '../../src/cli/main.ts'), ...args], {
    env: { ...process.env, TEMPORAL_ADDRESS: inject('temporalAddress'), MONGODB_URI: inject('mongodbUri'), FANOUT_DB: db.databaseName },
  });

describe('feed-fanout worker', () => {
  it('exports metrics that add up to what was written, answers health checks, and logs JSON lines with ids', async () => {
    const actor = uniqueName('metrics');
    const queues = testQueues(actor);
    const followers = await seedFollowers(db, actor, 1_200, { prefix: `${actor}-f`, activeEvery: 4 });
    const [metricsPort, healthPort] = [await freePort(), await freePort()];
    worker = startWorkerCommand(db.databaseName, [
      '--workflow-queue', queues.workflow, '--queue', queues.workflow, '--pass-queue', queues.high, '--pass-queue', queues.low,
      '--no-schedules', '--metrics-port', String(metricsPort), '--health-port', String(healthPort), '--log-format', 'json',
    ]);
    await worker.ready;

    const health = await fetch(`http://127.0.0.1:${healthPort}/healthz`);
    expect(health.status).toBe(200);
    const ready = await fetch(`http://127.0.0.1:${healthPort}/readyz`);
    expect(await ready.json()).toMatchObject({ status: 'ready', checks: { temporal: 'ok', mongodb: 'ok' }, problems: [] });
    expect(ready.status).toBe(200);

    const feeds = new FeedClient({ temporal: temporal.client, db, taskQueue: queues.workflow, fanout: { highTaskQueue: queues.high, lowTaskQueue: queues.low } });
    // Pages of 500, so by passes on the two chunk queues (one page would be written inline).
    const { activityId } = await feeds.addActivity({ id: `${actor}-a1`, actor, verb: 'pin', object: 'p1' }, { pageSize: 500 });
    const summary = await feeds.waitForFanout(activityId);
    expect(summary.followersSeen).toBe(followers.all.length);
    const stored = await db.collection(Collections.feed(FeedType.TIMELINE)).countDocuments({ activityId });

    // Workflow metrics are flushed as the workflow task completes; give the exporter a moment.
    let metrics = '';
    for (let i = 0; i < 50; i++) {
      metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      if (sumOf(metrics, 'feed_fanout_fanouts', { outcome: 'completed' }) >= 1) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    // What was counted is what the database holds, split by the chunk queues (the SDK tags the
    // project's metrics with taskQueue / activityType, its own with task_queue / activity_type).
    expect(sumOf(metrics, 'feed_fanout_entries_written', { feed_type: 'timeline' })).toBe(stored);
    expect(sumOf(metrics, 'feed_fanout_entries_written', { feed_type: 'timeline', taskQueue: queues.high })).toBe(followers.high.length);
    expect(sumOf(metrics, 'feed_fanout_entries_written', { feed_type: 'timeline', taskQueue: queues.low })).toBe(followers.low.length);
    expect(sumOf(metrics, 'feed_fanout_fanouts', { operation: 'add', outcome: 'completed' })).toBe(1);
    expect(sumOf(metrics, 'feed_fanout_high_served_ms_count')).toBe(1);
    expect(sumOf(metrics, 'feed_fanout_chunk_duration_ms_count')).toBe(summary.high.chunksDone + summary.low.chunksDone);
    // Chunk attempts by outcome: all written; the failure outcomes exist from the first chunk on, at 0.
    expect(sumOf(metrics, 'feed_fanout_chunks', { operation: 'add', outcome: 'written' })).toBe(summary.high.chunksDone + summary.low.chunksDone);
    for (const outcome of ['failed', 'rejected']) {
      expect(metrics).toMatch(new RegExp(`^feed_fanout_chunks\\{[^}]*outcome="${outcome}"[^}]*\\} 0$`, 'm'));
    }
    // The SDK's own metrics are there too (chunks are local activities of the priority passes).
    expect(sumOf(metrics, 'temporal_local_activity_execution_latency_count', { activity_type: 'writeFeedChunk' })).toBe(summary.high.chunksDone + summary.low.chunksDone);

    // JSON logs: every line parses, and the workflow's lines carry its ids.
    const lines = worker.output().split('\n').filter((l) => l.startsWith('{'));
    const entries = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(entries.length).toBeGreaterThan(0);
    const finished = entries.find((e) => e.message === 'fanout finished');
    expect(finished).toMatchObject({ level: 'INFO', workflowId: `fanout-add-${activityId}`, workflowType: 'fanoutWorkflow', activityId });
    expect(entries.some((e) => typeof e.message === 'string' && (e.message).startsWith('serving '))).toBe(true);
  });

  it('the operator commands: progress, list, backlog, retry, remove, with clear errors for unknown ids and bad flags', async () => {
    const actor = uniqueName('ops');
    const queues = testQueues(actor);
    await seedFollowers(db, actor, 300, { prefix: `${actor}-f` });
    worker = startWorkerCommand(db.databaseName, ['--workflow-queue', queues.workflow, '--queue', queues.workflow, '--pass-queue', queues.high, '--pass-queue', queues.low, '--no-schedules']);
    await worker.ready;
    const feeds = new FeedClient({ temporal: temporal.client, db, taskQueue: queues.workflow, fanout: { highTaskQueue: queues.high, lowTaskQueue: queues.low } });
    // Pages of 500, so by passes on the two chunk queues (one page would be written inline).
    const { activityId } = await feeds.addActivity({ id: `${actor}-a1`, actor, verb: 'pin', object: 'p1' }, { pageSize: 500 });
    await feeds.waitForFanout(activityId);

    const progress = JSON.parse((await cli(['progress', activityId, '--json'])).stdout);
    expect(progress).toMatchObject({ workflowId: `fanout-add-${activityId}`, status: 'COMPLETED', progress: { done: true, followersSeen: 300 } });
    expect((await cli(['progress', activityId])).stdout).toContain('COMPLETED');

    const listed = JSON.parse((await cli(['list', '--state', 'completed', '--actor', actor, '--json'])).stdout);
    expect(listed).toEqual([expect.objectContaining({ workflowId: `fanout-add-${activityId}`, actor, operation: 'add', stalled: false })]);

    // A chunk queue has both kinds of tasks: the passes' workflow tasks and activity-task chunks.
    const backlog = JSON.parse((await cli(['backlog', '--queue', queues.high, '--queue', `${queues.low}:workflow`, '--json'])).stdout);
    expect(backlog).toEqual([
      expect.objectContaining({ taskQueue: queues.high, kind: 'workflow', backlog: 0, pollers: expect.any(Number) }),
      expect.objectContaining({ taskQueue: queues.high, kind: 'activity', backlog: 0, pollers: expect.any(Number) }),
      expect.objectContaining({ taskQueue: queues.low, kind: 'workflow', backlog: 0, pollers: expect.any(Number) }),
    ]);
    expect(backlog[0].pollers).toBeGreaterThan(0); // the pass workers poll workflow tasks there
    expect(backlog[1].pollers).toBeGreaterThan(0);
    expect(backlog[2].pollers).toBeGreaterThan(0);
    // The table: a header and a row per queue and kind, every column aligned (numbers right-aligned).
    const table = (await cli(['backlog', '--queue', queues.high, '--queue', `${queues.low}:workflow`])).stdout.trimEnd().split('\n');
    expect(table).toHaveLength(4);
    expect(table[0]).toMatch(/^queue +tasks +backlog +oldest\(s\) +added\/s +dispatched\/s +pollers$/);
    expect(table.slice(1).map((l) => l.split(/ +/).slice(0, 2))).toEqual([[queues.high, 'workflow'], [queues.high, 'activity'], [queues.low, 'workflow']]);
    expect(new Set(table.map((l) => l.length)).size).toBe(1);
    for (const column of ['tasks', 'backlog', 'pollers']) {
      const at = column === 'tasks' ? table[0].indexOf(column) : table[0].indexOf(column) + column.length - 1;
      for (const row of table.slice(1)) expect(row[at], `${column} column of "${row}"`).not.toBe(' ');
    }
    await expect(cli(['backlog', '--queue', 'no spaces:workflow'])).rejects.toMatchObject({ stderr: expect.stringContaining('--queue must be a task queue name') });

    // A completed fanout is not retried; a terminated one is, and completes writing nothing twice.
    await expect(cli(['retry', activityId])).rejects.toMatchObject({ stderr: expect.stringContaining('is completed: only a failed') });
    const second = await feeds.addActivity({ id: `${actor}-a2`, actor, verb: 'pin', object: 'p2' }, { maxInFlight: 1, chunkSize: 10 });
    await temporal.client.workflow.getHandle(second.workflowId).terminate('operator test');
    const retried = JSON.parse((await cli(['retry', second.activityId, '--json'])).stdout);
    expect(retried.workflowId).toBe(second.workflowId);
    expect(await feeds.waitForFanout(second.activityId)).toMatchObject({ done: true, followersSeen: 300 });
    expect(await db.collection(Collections.feed(FeedType.TIMELINE)).countDocuments({ activityId: second.activityId })).toBe(300);

    const removed = JSON.parse((await cli(['remove', activityId, '--wait', '--json'])).stdout);
    expect(removed).toMatchObject({ started: true, removedEntries: 300 });

    await expect(cli(['progress', 'no-such-activity'])).rejects.toMatchObject({ stderr: expect.stringContaining('no add fanout for activity "no-such-activity"') });
    await expect(cli(['progress', 'bad/id'])).rejects.toMatchObject({ stderr: expect.stringContaining('activityId must contain only') });
    await expect(cli(['list', '--state', 'sideways'])).rejects.toMatchObject({ stderr: expect.stringContaining("option '--state <STATE>' argument 'sideways' is invalid") });
    await expect(cli(['worker', '--metrics-port', 'x'])).rejects.toMatchObject({ stderr: expect.stringContaining('port must be an integer 0..65535, got "x"') });
  });

  it('progress of a fanout that failed on bad input names the field; of a terminated one, the reason and the counts', async () => {
    const actor = uniqueName('prog');
    const queues = testQueues(actor);
    await seedFollowers(db, actor, 300, { prefix: `${actor}-f` });
    worker = startWorkerCommand(db.databaseName, ['--workflow-queue', queues.workflow, '--queue', queues.workflow, '--pass-queue', queues.high, '--pass-queue', queues.low, '--no-schedules']);
    await worker.ready;

    // Bad input from outside the client: the run fails at once with a ValidationError whose
    // details hold the field name (not a progress).
    const badId = `${actor}-bad`;
    const bad = await temporal.client.workflow.start(FANOUT_WORKFLOW_TYPE, {
      taskQueue: queues.workflow,
      workflowId: `fanout-add-${badId}`,
      args: [{ operation: 'add', activityId: badId, actorId: 'bad id', activityTime: 1 }],
    });
    await expect(bad.result()).rejects.toThrow();
    const failed = await cli(['progress', badId]);
    expect(failed.stdout).toContain(`fanout-add-${badId}: FAILED`);
    expect(failed.stdout).toMatch(/failure \(ValidationError\): input\.actorId must contain only/);
    expect(failed.stdout).toContain('no counts: the input was rejected before any follower was read');
    expect(failed.stderr).toBe('');
    expect(JSON.parse((await cli(['progress', badId, '--json'])).stdout)).toMatchObject({
      status: 'FAILED',
      failureType: 'ValidationError',
      failure: expect.stringMatching(/^input\.actorId /),
      progress: null,
    });

    // Terminated midway (one chunk of 10 at a time, as activity tasks, so the progress moves per
    // chunk): how it ended, and the counts it had, from the closed run's progress query.
    const feeds = new FeedClient({ temporal: temporal.client, db, taskQueue: queues.workflow, fanout: { highTaskQueue: queues.high, lowTaskQueue: queues.low } });
    const slow = await feeds.addActivity({ id: `${actor}-slow`, actor, verb: 'pin', object: 'p' }, { maxInFlight: 1, chunkSize: 10, chunkExecution: 'activity' });
    const handle = temporal.client.workflow.getHandle(slow.workflowId);
    for (;;) {
      const p = await handle.query(progressQuery);
      if (p.high.chunksDone + p.low.chunksDone >= 2) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await handle.terminate('operator test: stopped by hand');
    const terminated = await cli(['progress', slow.activityId]);
    expect(terminated.stdout).toContain(`${slow.workflowId}: TERMINATED`);
    expect(terminated.stdout).toMatch(/terminated( by \S+)?: operator test: stopped by hand/);
    expect(terminated.stdout).toMatch(/followers seen: 300 /);
    expect(terminated.stdout).toMatch(/HIGH: \d+ followers, \d+ chunks done/);
    const json = JSON.parse((await cli(['progress', slow.activityId, '--json'])).stdout);
    expect(json).toMatchObject({ status: 'TERMINATED', closeReason: expect.stringContaining('operator test: stopped by hand'), progressUnavailable: null });
    expect(json.progress.high.chunksDone + json.progress.low.chunksDone).toBeGreaterThanOrEqual(2);
    expect(json.progress.done).toBe(false);

    // No worker to answer the query: the reason still shows, and why the counts do not.
    await worker.stop();
    const noWorker = await cli(['progress', slow.activityId]);
    expect(noWorker.stdout).toMatch(/terminated( by \S+)?: operator test: stopped by hand/);
    expect(noWorker.stdout).toContain(`no counts: counts unavailable: no worker answered the progress query within 5 s`);
    expect(noWorker.stdout).toContain(`"${queues.workflow}"`);
  });
});

describe('feed-fanout worker start-up errors: one line naming what failed, where, and what to do; exit code 1', () => {
  /** Runs the worker command, expecting it to fail; its exit code, stderr and how long it took. */
  async function failedStart(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; lines: string[]; stderr: string; seconds: number }> {
    const started = Date.now();
    worker = startWorkerCommand(db.databaseName, ['--no-schedules', ...args], env);
    let stderr = '';
    worker.child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    // 'close': after the process exited and its output was read to the end.
    const code = await new Promise<number | null>((resolve) => worker!.child.once('close', (c: number | null) => resolve(c)));
    const lines = stderr.split('\n').filter((l) => l.trim() !== '');
    return { code, lines, stderr, seconds: (Date.now() - started) / 1000 };
  }

  /** Holds `port` on all interfaces, as another process would. */
  async function holdPort(port: number): Promise<net.Server> {
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '0.0.0.0', () => resolve());
    });
    return server;
  }

  it.each([
    { flag: '--health-port', what: 'health port' },
    { flag: '--metrics-port', what: 'metrics port' },
  ])('$what in use', async ({ flag, what }) => {
    const port = await freePort();
    const holder = await holdPort(port);
    try {
      const run = await failedStart([flag, String(port)]);
      expect(run.code).toBe(1);
      expect(run.lines, run.stderr).toEqual([
        `feed-fanout: ${what} ${port} is in use (${flag}): stop what holds it (ss -ltnp | grep :${port}) or pick another port`,
      ]);
      expect(run.seconds, 'it should fail at once, before connecting anywhere').toBeLessThan(20);
    } finally {
      await new Promise((resolve) => holder.close(resolve));
    }
  });

  it('the health server of the library API (startHealthServer) says which port is taken, too', async () => {
    const port = await freePort();
    const holder = await holdPort(port);
    try {
      await expect(startHealthServer({ port, workers: [], temporal: temporal.connection, namespace: 'default', db })).rejects.toThrow(
        `health port ${port} is in use: stop what holds it (ss -ltnp | grep :${port}) or pick another port`,
      );
    } finally {
      await new Promise((resolve) => holder.close(resolve));
    }
  });

  it('MongoDB unreachable: said within seconds, with the address and no credentials', async () => {
    const port = await freePort(); // nothing listens there
    const run = await failedStart([], { MONGODB_URI: `mongodb://fanout:s3cret@127.0.0.1:${port}/?authSource=admin` });
    expect(run.code).toBe(1);
    expect(run.lines, run.stderr).toHaveLength(1);
    expect(run.lines[0]).toMatch(
      new RegExp(`^feed-fanout: cannot reach MongoDB at 127\\.0\\.0\\.1:${port} within 5 s: .*ECONNREFUSED.*\\. Check MONGODB_URI and that mongod is up$`),
    );
    expect(run.stderr).not.toContain('s3cret');
    expect(run.stderr).not.toMatch(/^\s+at /m);
    // The driver's default server selection waits 30 s before it says anything.
    expect(run.seconds, 'it should give up after the 5 s start-up timeout, not the driver\'s 30 s').toBeLessThan(20);
  });
});
