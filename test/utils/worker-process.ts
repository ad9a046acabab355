/** The real worker command (`feed-fanout worker`, from the sources) as a child process, for tests that need another process. */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { inject } from 'vitest';
import { WORKFLOWS_PATH } from '../../src/worker/workers';

/** A running worker process. */
export interface WorkerProcess {
  child: ChildProcess;
  /** Resolves once the worker logs that it is serving; rejects if it exits first. */
  ready: Promise<void>;
  /** Everything it printed so far. */
  output(): string;
  /** Sends `signal` (default SIGTERM) and resolves with the exit code (null when killed by the signal). */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Starts the worker command with `args`, connected to the test servers and database `database`;
 * `env` adds variables (FANOUT_NETWORKS_FILE…).
 */
export function startWorkerCommand(database: string, args: string[], env: Record<string, string> = {}): WorkerProcess {
  const root = path.resolve(path.dirname(WORKFLOWS_PATH), '..');
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src/cli/main.ts'), 'worker', ...args], {
    cwd: root,
    env: { ...process.env, TEMPORAL_ADDRESS: inject('temporalAddress'), MONGODB_URI: inject('mongodbUri'), FANOUT_DB: database, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const ready = new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      if (/\bserving \S/.test(output)) resolve();
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => reject(new Error(`worker process exited with ${code} before serving:\n${output}`)));
  });
  ready.catch(() => undefined); // callers that never await `ready` must not see an unhandled rejection
  return {
    child,
    ready,
    output: () => output,
    stop: (signal = 'SIGTERM') =>
      new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve(child.exitCode);
        child.once('exit', (code) => resolve(code));
        child.kill(signal);
      }),
  };
}
