/** Running workers around a test body. */
import type { Worker } from '@temporalio/worker';

/** Runs `workers` while `fn` runs, then shuts them down and waits for them to stop. */
export async function withWorkers<T>(workers: Worker[], fn: () => Promise<T>): Promise<T> {
  const running = Promise.all(workers.map((w) => w.run()));
  try {
    return await Promise.race([fn(), running.then(() => { throw new Error('a worker stopped before the test finished'); })]);
  } finally {
    for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
    await running;
  }
}

/** Per-test task queue names, so parallel tests on one server never take each other's tasks. */
export function testQueues(prefix: string): { workflow: string; high: string; low: string } {
  return { workflow: `${prefix}-fanout`, high: `${prefix}-high-fanout`, low: `${prefix}-low-fanout` };
}
