/**
 * The `feed-fanout worker` command as an operator runs it: Prometheus metrics that add up to what
 * was written, liveness and readiness endpoints, JSON log lines with the workflow's ids; and the
 * operator commands against what it ran.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Db } from 'mongodb';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { FeedClient } from '../../src/client';
import { freePort } from '../../src/dev/local-stack';
import { FeedType } from '../../src/model/constants';
import { Collections } from '../../src/storage/collections';
import { FeedStore } from '../../src/storage/feed-store';
import { devServer, freshDb, uniqueName } from '../utils/env';
import { seedFollowers } from '../utils/graph';
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
    // The SDK's own metrics are there too (chunks are local activities of the priority passes).
    expect(sumOf(metrics, 'temporal_local_activity_execution_latency_count', { activity_type: 'writeFeedChunk' })).toBe(summary.high.chunksDone + summary.low.chunksDone);

    // JSON logs: every line parses, and the workflow's lines carry its ids.
    const lines = worker.output().split('\n').filter((l) => l.startsWith('{'));
    const entries = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(entries.length).toBeGreaterThan(0);
    const finished = entries.find((e) => e.message === 'fanout finished');
    expect(finished).toMatchObject({ level: 'INFO', workflowId: `fanout-add-${activityId}`, workflowType: 'fanoutWorkflow', activityId });
    expect(entries.some((e) => typeof e.message === 'string' && (e.message as string).startsWith('serving '))).toBe(true);
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

    const backlog = JSON.parse((await cli(['backlog', '--queue', queues.high, '--queue', queues.low, '--json'])).stdout);
    expect(backlog).toEqual([
      expect.objectContaining({ taskQueue: queues.high, kind: 'activity', backlog: 0, pollers: expect.any(Number) }),
      expect.objectContaining({ taskQueue: queues.low, kind: 'activity', backlog: 0 }),
    ]);
    expect(backlog[0].pollers).toBeGreaterThan(0);

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
});
