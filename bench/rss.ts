/**
 * `npm run bench -- --workload rss`: the worker's memory against the size of a fanout. Runs the
 * worker command (`feed-fanout worker`, its own process) for one fanout of 100,000 followers,
 * then a fresh one for 1,000,000 (1 in 4 active), and reads the process's resident set size from
 * `/proc` (`VmRSS` once serving, `VmHWM`: its peak). A fanout holds one page per pass and the
 * chunks in flight, never the whole follower list, so the peak should not grow with the followers.
 * @module
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { FeedClient } from '../src/client/feed-client';
import { FeedStore } from '../src/storage/feed-store';
import { WORKFLOWS_PATH } from '../src/worker/workers';
import { seedFollowers } from '../dev/seed';
import { printTable } from './cpu';
import type { BenchStack } from './stack';

/** A `/proc/<pid>/status` field in MB. */
function statusMb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith(`${field}:`));
  return Number(/(\d+)/.exec(line ?? '')?.[1] ?? Number.NaN) / 1024;
}

/** Runs the comparison and prints it; see the module comment. */
export async function rssBench(stack: BenchStack): Promise<void> {
  const { db, temporal } = stack;
  const sizes = [100_000, 1_000_000];
  await new FeedStore(db).ensureIndexes();
  console.log(`rss: seeding ${sizes.join(' and ')} followers ...`);
  for (const n of sizes) await seedFollowers(db, `rss-${n}`, n, { prefix: `r${n}-`, activeEvery: 4 });
  const root = path.resolve(path.dirname(WORKFLOWS_PATH), '..');
  const rows: string[][] = [];
  for (const n of sizes) {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src/cli/main.ts'), 'worker', '--no-schedules'], {
      cwd: root,
      env: { ...process.env, TEMPORAL_ADDRESS: stack.temporalAddress, MONGODB_URI: stack.mongodbUri, FANOUT_DB: db.databaseName },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    await new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        if (/\bserving \S/.test(output)) resolve();
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      child.once('exit', (code) => reject(new Error(`worker exited with ${code}:\n${output}`)));
    });
    const pid = child.pid!;
    const serving = statusMb(pid, 'VmRSS');
    const client = new FeedClient({ temporal, db });
    const start = Date.now();
    console.log(`rss: fanout to ${n} followers through the worker command (pid ${pid}) ...`);
    const summary = await client.waitForFanout((await client.addActivity({ id: `rss-${n}`, actor: `rss-${n}`, verb: 'post', object: 'p' })).activityId);
    const seconds = (Date.now() - start) / 1000;
    const peak = statusMb(pid, 'VmHWM');
    rows.push([String(n), String(summary.high.entriesChanged + summary.low.entriesChanged), seconds.toFixed(1), serving.toFixed(0), peak.toFixed(0)]);
    await new Promise<void>((resolve) => {
      child.removeAllListeners('exit');
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    });
  }
  console.log(`\nrss: the worker command's memory, one process per fanout, store ${stack.storeName}`);
  printTable(['followers', 'entries written', 'fanout (s)', 'worker RSS once serving (MB)', 'worker peak RSS (MB)'], rows);
  const [small, big] = rows.map((r) => Number(r[4]));
  console.log(`peak RSS at ${sizes[1]} is ${((100 * big) / small).toFixed(0)}% of the peak at ${sizes[0]}`);
}
