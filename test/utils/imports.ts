/** A fake social network, import workers on per-test queues and an NetworkClient, for import tests. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import type { NativeConnection, Worker, WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { Db } from 'mongodb';
import { FACEBOOK_ERROR_RULES, OAUTH2_ERROR_RULES, TWITTER_ERROR_RULES } from '../../src/integrations/error-rules';
import { NetworkClient } from '../../src/integrations/network-client';
import type { NetworkDefinition, NetworksConfig } from '../../src/integrations/network';
import type { ImportOptions } from '../../src/contract/imports';
import { createWorkers } from '../../src/worker/workers';
import { type FakeNetwork, type FakeNetworkOptions, startFakeNetwork } from '../fake-network/server';
import { uniqueName } from './env';
import { startWorkerCommand, type WorkerProcess } from './worker-process';

/** A network definition for the fake network: Facebook-style errors, offset paging unless overridden. */
export function fakebook(url: string, overrides: Partial<NetworkDefinition> = {}): NetworkDefinition {
  return {
    name: 'fakebook',
    baseUrl: url,
    friends: { path: '/v1/friends/offset', style: 'offset' },
    errorRules: [...FACEBOOK_ERROR_RULES, ...TWITTER_ERROR_RULES, ...OAUTH2_ERROR_RULES],
    requestTimeoutMs: 3000,
    ...overrides,
  };
}

/** Per-test queue names. */
export function importQueues(prefix: string) {
  return { workflow: `${prefix}-wf`, import: `${prefix}-import`, whale: `${prefix}-whale`, trickle: `${prefix}-trickle`, network: `${prefix}-net` };
}

export interface ImportRig {
  fake: FakeNetwork;
  imports: NetworkClient;
  queues: ReturnType<typeof importQueues>;
  workers: Worker[];
  /**
   * A second worker process (the real worker command) serving the import queue: its own
   * MongoDB connection and limiter, so only the database can make it share rate limits.
   */
  addWorkerProcess(options: { egressIp: string }): Promise<WorkerProcess>;
  close(): Promise<void>;
}

export interface ImportRigOptions {
  fake: FakeNetworkOptions;
  networks: (url: string, queues: ReturnType<typeof importQueues>) => NetworksConfig;
  /** Temporal's queue-wide activity rate limit on `queues.network`, a queue for one network. @default none */
  networkQueuePerSecond?: number;
  /** Whether this process's workers serve the import queue (false leaves it to worker processes). @default true */
  importQueueInProcess?: boolean;
  /** Activity slots per import worker. @default 4 */
  concurrency?: number;
  whaleConcurrency?: number;
  egressIp?: string;
  defaults?: ImportOptions;
}

/** Starts the fake network and workers; call `close()` in a finally. */
export async function importRig(
  server: { client: Client; nativeConnection: NativeConnection },
  db: Db,
  bundle: WorkflowBundleWithSourceMap,
  options: ImportRigOptions,
): Promise<ImportRig> {
  const fake = await startFakeNetwork(options.fake);
  const queues = importQueues(uniqueName('imp'));
  const networks = options.networks(fake.url, queues);
  const children: WorkerProcess[] = [];
  const workers = await createWorkers({
      connection: server.nativeConnection,
      db,
      networks,
      workflowTaskQueue: queues.workflow,
      workflowBundle: bundle,
      imports: { retryBaseMs: 200, retryMaxMs: 2000, rateLimitFallbackMs: 300, ...(options.egressIp ? { egressIp: options.egressIp } : {}) },
      queues: [
        { taskQueue: queues.workflow },
        ...(options.importQueueInProcess === false ? [] : [{ taskQueue: queues.import, concurrency: options.concurrency ?? 4 }]),
        { taskQueue: queues.whale, concurrency: options.whaleConcurrency ?? options.concurrency ?? 4 },
        { taskQueue: queues.trickle, concurrency: 2 },
        { taskQueue: queues.network, concurrency: 4, ...(options.networkQueuePerSecond ? { activitiesPerSecond: options.networkQueuePerSecond } : {}) },
      ],
    });
  const running: Array<Promise<void>> = workers.map((w) => w.run());
  const imports = new NetworkClient({
    client: server.client,
    db,
    workflowTaskQueue: queues.workflow,
    defaults: { taskQueue: queues.import, whaleTaskQueue: queues.whale, ...options.defaults },
  });
  await imports.store.ensureIndexes();
  return {
    fake,
    imports,
    queues,
    workers,
    async addWorkerProcess({ egressIp }) {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'import-worker-'));
      const networksFile = path.join(dir, 'networks.json');
      writeFileSync(networksFile, JSON.stringify(networks));
      const worker = startWorkerCommand(db.databaseName, ['--queue', `${queues.import}=4`, '--workflow-queue', `${queues.workflow}-none`, '--no-schedules'], {
        FANOUT_NETWORKS_FILE: networksFile,
        FANOUT_EGRESS_IP: egressIp,
      });
      children.push(worker);
      await worker.ready;
      return worker;
    },
    async close() {
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
      await Promise.allSettled(running);
      await Promise.all(children.map((child) => child.stop()));
      await fake.close();
    },
  };
}
