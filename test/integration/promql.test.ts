/**
 * The README's PromQL is what an operator pastes into Prometheus: every query of its table
 * ("Running it in production", "The questions an operator asks, in PromQL") is read from README.md
 * itself and run against a real Prometheus (Debian's, `scripts/install-tools.sh --prometheus`)
 * scraping a real `feed-fanout worker --metrics-port`, once per chunk shape: chunks as local
 * activities of the HIGH / LOW passes (the default), and as activity tasks (`chunkExecution: 'activity'`).
 * Each must return series with plausible values after good fanouts and fanouts with a chunk that
 * failed for good.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Db } from 'mongodb';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ChunkExecution } from '../../src/contract/fanout';
import { FeedClient } from '../../src/client/feed-client';
import { freePort } from '../../dev/local-stack';
import { FanoutFailedError } from '../../src/contract/errors';
import { Collections } from '../../src/storage/collections';
import { FeedStore } from '../../src/storage/feed-store';
import { devServer, freshDb, uniqueName } from '../utils/env';
import { seedFollowers } from '../../dev/seed';
import { startWorkerCommand, type WorkerProcess } from '../utils/worker-process';
import { testQueues } from '../utils/workers';

const README = path.resolve(__dirname, '../../README.md');

/** One row of the README's PromQL table. */
interface ReadmeQuery {
  question: string;
  promql: string;
}

/** Splits a markdown table row into its cells, honouring `\|` (a pipe inside a cell, as GFM reads it). */
function cells(row: string): string[] {
  return row
    .trim()
    .replace(/^\||\|$/g, '')
    .split(/(?<!\\)\|/)
    .map((c) => c.trim().replace(/\\\|/g, '|'));
}

/**
 * The PromQL table of the README's "Running it in production" section: every row's second cell
 * must be exactly one code span, the query.
 */
function readmeQueries(): ReadmeQuery[] {
  const text = readFileSync(README, 'utf8');
  const section = text.slice(text.indexOf('\n## Running it in production'));
  expect(section.length, 'README.md has no "## Running it in production" section').toBeGreaterThan(1);
  // The paragraph is wrapped: match its words across line breaks.
  const lead = section.search(/The\s+questions\s+an\s+operator\s+asks,\s+in\s+PromQL/);
  expect(lead, 'the section has no "The questions an operator asks, in PromQL" paragraph').toBeGreaterThan(0);
  const lines = section.slice(lead).split('\n');
  const start = lines.findIndex((l) => l.startsWith('|'));
  const table: string[] = [];
  for (const line of lines.slice(start)) {
    if (!line.startsWith('|')) break;
    table.push(line);
  }
  expect(cells(table[0])).toEqual(['question', 'PromQL']);
  return table.slice(2).map((row) => {
    const [question, query, ...rest] = cells(row);
    const code = /^`([^`]+)`$/.exec(query ?? '');
    expect(code && rest.length === 0, `README PromQL row must hold exactly one \`query\` in its second cell: ${row}`).toBeTruthy();
    return { question: question, promql: code![1] };
  });
}

/** The prometheus binary: PROMETHEUS_PATH, else the PATH's, else Debian's; fails saying how to get one. */
function prometheusBinary(): string {
  const executable = (file: string) => {
    try {
      accessSync(file, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  const given = process.env.PROMETHEUS_PATH;
  if (given) {
    if (executable(given)) return given;
    throw new Error(`PROMETHEUS_PATH=${given} is not an executable file: point it at a prometheus binary, or unset it to use the installed one (bash scripts/install-tools.sh --prometheus)`);
  }
  const found = [...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean).map((dir) => path.join(dir, 'prometheus')), '/usr/bin/prometheus'].find(executable);
  if (found) return found;
  throw new Error(
    'Prometheus is not installed (no prometheus on PATH, no /usr/bin/prometheus, PROMETHEUS_PATH unset): this test runs the README\'s PromQL on a real one. ' +
      'Install it with `bash scripts/install-tools.sh --prometheus` (Debian: apt-get install -y prometheus), or set PROMETHEUS_PATH.',
  );
}

type Sample = { metric: Record<string, string>; value: number };

/** A Prometheus process of this test: its own data directory and port, scraping `target` every second. */
async function startPrometheus(target: string): Promise<{ query(promql: string): Promise<Sample[]>; stop(): Promise<void> }> {
  const binary = prometheusBinary();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'feed-fanout-prometheus-'));
  const port = await freePort();
  writeFileSync(
    path.join(dir, 'prometheus.yml'),
    ['global:', '  scrape_interval: 1s', '  evaluation_interval: 1s', 'scrape_configs:', '  - job_name: feed-fanout-worker', '    static_configs:', `      - targets: ['${target}']`, ''].join('\n'),
  );
  let log = '';
  const child: ChildProcess = spawn(
    binary,
    [`--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout!.on('data', (c: Buffer) => (log += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (log += c.toString()));
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`prometheus exited with ${code}:\n${log.slice(-3000)}`))));
  exited.catch(() => undefined);
  const base = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      await new Promise((resolve) => {
        child.once('exit', resolve);
        child.kill('SIGTERM');
      });
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (;;) {
      const ready = await Promise.race([fetch(`${base}/-/ready`).then((r) => r.ok, () => false), exited]);
      if (ready) break;
      await new Promise((r) => setTimeout(r, 200));
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    async query(promql) {
      const res = await fetch(`${base}/api/v1/query?${new URLSearchParams({ query: promql }).toString()}`);
      const body = (await res.json()) as { status: string; error?: string; data?: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
      if (body.status !== 'success') throw new Error(`Prometheus rejected ${promql}: ${body.error}`);
      expect(body.data!.resultType, promql).toBe('vector');
      return body.data!.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
    },
    stop,
  };
}

let temporal: Awaited<ReturnType<typeof devServer>>;
let mongo: Awaited<ReturnType<typeof freshDb>>;
let db: Db;
let worker: WorkerProcess | undefined;
let prometheus: Awaited<ReturnType<typeof startPrometheus>> | undefined;

beforeAll(async () => {
  temporal = await devServer();
});

afterAll(async () => {
  await temporal?.close();
});

beforeEach(async () => {
  mongo = await freshDb('promql');
  db = mongo.db;
  await new FeedStore(db).ensureIndexes();
});

afterEach(async () => {
  await prometheus?.stop();
  prometheus = undefined;
  await worker?.stop('SIGKILL');
  worker = undefined;
  await mongo?.drop();
});

describe("the README's PromQL, against a real Prometheus scraping a real worker", () => {
  it('the README table is read as queries (so the README and this test cannot drift)', () => {
    const queries = readmeQueries();
    expect(queries.length).toBeGreaterThanOrEqual(7);
    // Every query is about the project's or the SDK's metrics.
    for (const q of queries) expect(q.promql, q.question).toMatch(/feed_fanout_|temporal_/);
    // No query leans on a metric that exists in one shape only (activity-task metrics of writeFeedChunk).
    expect(queries.map((q) => q.promql).join('\n')).not.toMatch(/activity_type="writeFeedChunk"/);
  });

  it.each([
    { shape: 'chunks as local activities of the passes', chunkExecution: ChunkExecution.LOCAL },
    { shape: "chunks as activity tasks (chunkExecution: 'activity')", chunkExecution: ChunkExecution.ACTIVITY },
  ])('every query returns plausible series: $shape', async ({ chunkExecution }) => {
    prometheusBinary(); // before anything starts: fails saying how to install it
    const queries = readmeQueries();
    const good = uniqueName('pq');
    const bad = uniqueName('pqbad');
    const queues = testQueues(good);
    const followers = await seedFollowers(db, good, 1_200, { prefix: `${good}-f`, activeEvery: 4 });
    await seedFollowers(db, bad, 250, { prefix: `${bad}-f`, activeEvery: 1000 });
    // Bad data in the graph: a follower id with a space, which can never own a feed. The follower
    // source returns it; its chunk fails validation for good (input.followerIds[i]); the others are written.
    const badId = `${bad}-f000150 x`;
    await db.collection(Collections.FOLLOWS).insertOne({ _id: `${bad}/${badId}` as never, follower: badId, followee: bad, createdAt: new Date() });

    const metricsPort = await freePort();
    worker = startWorkerCommand(db.databaseName, [
      '--workflow-queue', queues.workflow, '--queue', queues.workflow, '--pass-queue', queues.high, '--pass-queue', queues.low,
      '--no-schedules', '--metrics-port', String(metricsPort),
    ]);
    await worker.ready;
    prometheus = await startPrometheus(`127.0.0.1:${metricsPort}`);
    const prom = prometheus;

    const feeds = new FeedClient({ temporal: temporal.client, db, taskQueue: queues.workflow, fanout: { highTaskQueue: queues.high, lowTaskQueue: queues.low } });
    // Pages of 500 (100 for the bad actor's 251), so more than one page: passes on the chunk
    // queues, their chunks local activities or activity tasks (one page would be written inline).
    let ended = 0;
    /** Waits until Prometheus has scraped the counters after `ended` fanouts. */
    const scraped = async () => {
      for (;;) {
        const [total] = await prom.query('sum(feed_fanout_fanouts)');
        if (total && total.value >= ended) return;
        await new Promise((r) => setTimeout(r, 250));
      }
    };
    // Two of each, with a scrape between them: Prometheus sees a counter's increase only once it
    // has a sample before it (a series first scraped at 1 has no rate yet).
    for (const n of [1, 2]) {
      const { activityId } = await feeds.addActivity({ id: `${good}-a${n}`, actor: good, verb: 'pin', object: `p${n}` }, { pageSize: 500, chunkExecution });
      expect(await feeds.waitForFanout(activityId)).toMatchObject({ done: true, followersSeen: followers.all.length });
      ended++;
      await scraped();
    }
    for (const n of [1, 2]) {
      const { activityId } = await feeds.addActivity({ id: `${bad}-a${n}`, actor: bad, verb: 'pin', object: `p${n}` }, { pageSize: 100, chunkExecution });
      const err = await feeds.waitForFanout(activityId).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(FanoutFailedError);
      expect((err as FanoutFailedError).message).toMatch(/1 of 3 chunks failed for good .* input\.followerIds\[\d+\] must contain only/);
      ended++;
      await scraped();
    }

    const results = new Map<string, Sample[]>();
    for (const { question, promql } of queries) {
      const samples = await prom.query(promql);
      expect(samples.length, `no series for "${question}": ${promql}`).toBeGreaterThan(0);
      for (const s of samples) expect(Number.isFinite(s.value), `"${question}" gave ${s.value} for ${JSON.stringify(s.metric)}: ${promql}`).toBe(true);
      results.set(question, samples);
    }
    /** The samples of the README question that starts with `start`. */
    const answer = (start: string): Sample[] => {
      const key = [...results.keys()].find((q) => q.startsWith(start));
      expect(key, `no README question starts "${start}"`).toBeDefined();
      return results.get(key!)!;
    };
    const byQueue = (samples: Sample[], label: string) => Object.fromEntries(samples.map((s) => [s.metric[label], s.value]));

    // Entries are written on both chunk queues, at a positive rate.
    const written = byQueue(answer('entries written per second'), 'taskQueue');
    expect(written[queues.high]).toBeGreaterThan(0);
    expect(written[queues.low]).toBeGreaterThan(0);
    // 2 chunks of 12 failed for good (one per bad fanout) among about 2 × (12 + 3) attempts.
    const [failureRate] = answer('chunk failure rate');
    expect(failureRate.value).toBeGreaterThan(0);
    expect(failureRate.value).toBeLessThan(0.5);
    expect(answer('chunks failed for good')[0].value).toBeGreaterThan(0);
    expect(answer('fanouts failed')[0].value).toBeGreaterThan(0);
    // Latencies: positive milliseconds, per chunk queue where grouped by it.
    expect(answer('p95 time until HIGH followers are served')[0].value).toBeGreaterThan(0);
    const chunkP95 = byQueue(answer('p95 chunk write time'), 'taskQueue');
    expect(chunkP95[queues.high]).toBeGreaterThan(0);
    expect(chunkP95[queues.low]).toBeGreaterThan(0);
    // The backlog question sees where chunks wait in this shape: the passes' workflow tasks, or
    // the chunks' activity tasks, on both chunk queues.
    const waits = answer('tasks waiting for a worker');
    const kind = chunkExecution === ChunkExecution.ACTIVITY ? 'activity' : 'workflow';
    for (const queue of [queues.high, queues.low]) {
      const wait = waits.find((s) => s.metric.task_queue === queue && s.metric.kind === kind);
      expect(wait, `no ${kind} wait for ${queue} in ${JSON.stringify(waits.map((s) => s.metric))}`).toBeDefined();
      expect(wait!.value).toBeGreaterThanOrEqual(0);
    }
  });
});
