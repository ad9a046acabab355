/**
 * Liveness and readiness of a worker process over HTTP, for Kubernetes probes or a load balancer:
 *
 * - `GET /healthz` (liveness): 200 while no worker of the process has failed; 503 once one has
 *   (restart the process).
 * - `GET /readyz` (readiness): 200 when every worker is running (polling its queue) and both the
 *   Temporal frontend and MongoDB answer within 2 s; 503 with the reasons otherwise.
 *
 * Both answer JSON: `{ status, workers: [{ taskQueue, state }], checks, problems }`.
 * @module
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Connection } from '@temporalio/client';
import type { Worker } from '@temporalio/worker';
import type { Db } from 'mongodb';
import { ConfigurationError } from '../contract/errors';

/** Options of {@link startHealthServer}. */
export interface HealthServerOptions {
  /** Port to listen on (all interfaces); 0 picks a free one. */
  port: number;
  workers: Worker[];
  /** A client connection to the same Temporal frontend, for the readiness check. */
  temporal: Connection;
  namespace: string;
  db: Db;
}

const CHECK_TIMEOUT_MS = 2000;

async function check(name: string, probe: () => Promise<unknown>): Promise<string | null> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      probe(),
      new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS))),
    ]);
    return null;
  } catch (err) {
    return `${name}: ${(err as Error).message}`;
  } finally {
    clearTimeout(timer);
  }
}

/** Starts the health endpoint; `close()` stops it. @throws ConfigurationError when the port is taken. */
export async function startHealthServer(options: HealthServerOptions): Promise<{ port: number; close(): Promise<void> }> {
  const workerStates = () => options.workers.map((w) => ({ taskQueue: w.options.taskQueue, state: w.getState() }));
  const server = http.createServer((req, res) => {
    const reply = (code: number, body: object) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify(body)}\n`);
    };
    const url = req.url?.split('?')[0];
    const workers = workerStates();
    if (url === '/healthz') {
      const failed = workers.filter((w) => w.state === 'FAILED');
      const problems = failed.map((w) => `worker of ${w.taskQueue} failed`);
      return reply(failed.length ? 503 : 200, { status: failed.length ? 'failing' : 'ok', workers, problems });
    }
    if (url === '/readyz') {
      void Promise.all([
        check('temporal', () => options.temporal.workflowService.describeNamespace({ namespace: options.namespace })),
        check('mongodb', () => options.db.command({ ping: 1 })),
      ]).then((results) => {
        const problems = [
          ...workers.filter((w) => w.state !== 'RUNNING').map((w) => `worker of ${w.taskQueue} is ${w.state}`),
          ...results.filter((r): r is string => r !== null),
        ];
        reply(problems.length ? 503 : 200, { status: problems.length ? 'not ready' : 'ready', workers, checks: { temporal: results[0] ?? 'ok', mongodb: results[1] ?? 'ok' }, problems });
      });
      return;
    }
    reply(404, { status: 'not found', problems: [`${url} is not served here: try /healthz or /readyz`] });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'EADDRINUSE'
          ? new ConfigurationError(`health port ${options.port} is in use: stop what holds it (ss -ltnp | grep :${options.port}) or pick another port`, { cause: err })
          : new ConfigurationError(`health port ${options.port} cannot be listened on: ${err.message}`, { cause: err }),
      ),
    );
    server.listen(options.port, '0.0.0.0', () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
