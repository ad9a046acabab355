/**
 * Vitest global setup: the real servers every integration test talks to.
 * Starts a headless Temporal dev server and the store (mongod where it runs, else FerretDB;
 * `FANOUT_STORE` picks one) on free ports, unless TEMPORAL_ADDRESS / MONGODB_URI point at existing
 * ones, and provides their addresses to the tests.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { ensureClusterTools, startCluster } from '../../dev/cluster';
import { ensureTools, type ManagedServer, startStore, startTemporalDevServer, storeBinary, toolsAndStore } from '../../dev/local-stack';

declare module 'vitest' {
  export interface ProvidedContext {
    temporalAddress: string;
    mongodbUri: string;
    testServerPath: string;
    /** The store the suite runs on: `mongodb` (mongod), `ferretdb`, `cluster` (the replica set of FANOUT_CLUSTER=1), or `external` (MONGODB_URI). */
    store: string;
    logDir: string;
  }
}

export default async function setup(project: TestProject) {
  // FANOUT_CLUSTER=1: the whole suite against the production-shaped cluster (Temporal services on
  // PostgreSQL, 8 shards on 2 history processes, a 3-member replica set) instead of the dev server.
  if (process.env.FANOUT_CLUSTER === '1' && !process.env.TEMPORAL_ADDRESS && !process.env.MONGODB_URI) return clusterSetup(project);
  const { tools, store } = toolsAndStore();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'feed-fanout-test-'));
  const started: ManagedServer[] = [];
  const stopAll = async () => {
    await Promise.all(started.map((s) => s.stop()));
    if (!process.env.KEEP_TEST_LOGS) rmSync(dir, { recursive: true, force: true });
  };
  try {
    let temporalAddress = process.env.TEMPORAL_ADDRESS;
    if (!temporalAddress) {
      const server = await startTemporalDevServer({ logFile: path.join(dir, 'temporal.log'), cli: tools.temporalCli });
      started.push(server);
      temporalAddress = server.address;
    }
    let mongodbUri = process.env.MONGODB_URI;
    if (!mongodbUri && store) {
      const server = await startStore(store, {
        dataDir: path.join(dir, store),
        logFile: path.join(dir, `${store}.log`),
        binary: storeBinary(tools, store),
      });
      started.push(server);
      mongodbUri = server.address;
    }
    project.provide('temporalAddress', temporalAddress);
    project.provide('mongodbUri', mongodbUri!);
    project.provide('store', store ?? 'external');
    project.provide('testServerPath', tools.testServer);
    project.provide('logDir', dir);
  } catch (err) {
    await stopAll();
    throw err;
  }
  return stopAll;
}

async function clusterSetup(project: TestProject) {
  const tools = ensureTools();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'feed-fanout-test-cluster-'));
  const started = Date.now();
  const cluster = await startCluster({ dataDir: dir, logDir: path.join(dir, 'logs'), tools: ensureClusterTools() });
  console.log(`global setup: cluster up in ${((Date.now() - started) / 1000).toFixed(1)} s (frontend ${cluster.frontendAddress}, ${cluster.mongodbUri})`);
  project.provide('temporalAddress', cluster.frontendAddress);
  project.provide('mongodbUri', cluster.mongodbUri);
  project.provide('testServerPath', tools.testServer);
  project.provide('logDir', dir);
  project.provide('store', 'cluster');
  return async () => {
    await cluster.stop();
    if (!process.env.KEEP_TEST_LOGS) rmSync(dir, { recursive: true, force: true });
  };
}
