/**
 * TLS for real: the cluster's frontend serves mutual TLS (certificates made here with openssl), and
 * the worker command and an app connect through Temporal's standard client settings
 * (TEMPORAL_TLS_* variables, read by @temporalio/envconfig) with a client certificate. A
 * certificate from another CA, or none, is refused with an error that says what to check.
 *
 * `npm run test:cluster` (a cluster of its own).
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from '@temporalio/client';
import { MongoClient } from 'mongodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FeedClient } from '../../src/client/feed-client';
import { settingsFromEnv } from '../../src/config/settings';
import { connectClient } from '../../src/config/connect';
import { makeTestCertificates, type TestCertificates } from '../../dev/certs';
import { type Cluster, ensureClusterTools, startCluster } from '../../dev/cluster';
import { ConfigurationError } from '../../src/contract/errors';
import { FeedType } from '../../src/contract/constants';
import { Collections } from '../../src/storage/collections';
import { FeedStore } from '../../src/storage/feed-store';
import { quietRuntime, uniqueName } from '../utils/env';
import { seedFollowers } from '../../dev/seed';

let dir: string;
let certs: TestCertificates;
let cluster: Cluster;

beforeAll(async () => {
  quietRuntime();
  const tools = ensureClusterTools();
  dir = mkdtempSync(path.join(os.tmpdir(), 'feed-fanout-tls-'));
  chmodSync(dir, 0o755); // PostgreSQL runs as its own user (when we are root) and must reach the data dir
  certs = makeTestCertificates(path.join(dir, 'certs'));
  cluster = await startCluster({ dataDir: path.join(dir, 'cluster'), tools, tls: { caFile: certs.caFile, ...certs.node, serverName: certs.serverName } });
});

afterAll(async () => {
  await cluster?.stop();
  if (dir && !process.env.KEEP_TEST_LOGS) rmSync(dir, { recursive: true, force: true });
});

/** Temporal's standard client variables for a certificate pair. */
function tlsEnv(pair: { certFile: string; keyFile: string } | undefined): Record<string, string> {
  return {
    TEMPORAL_ADDRESS: cluster.frontendAddress,
    TEMPORAL_TLS_SERVER_CA_CERT_PATH: certs.caFile,
    TEMPORAL_TLS_SERVER_NAME: certs.serverName,
    ...(pair ? { TEMPORAL_TLS_CLIENT_CERT_PATH: pair.certFile, TEMPORAL_TLS_CLIENT_KEY_PATH: pair.keyFile } : { TEMPORAL_TLS: 'true' }),
    TEMPORAL_CONFIG_FILE: path.join(dir, 'no-such-temporal.toml'),
  };
}

describe('TLS with client certificates', () => {
  it('the worker command and an app connect with a client certificate, and a fanout runs through them', async () => {
    const mongo = await MongoClient.connect(cluster.mongodbUri);
    const database = uniqueName('tls').replace(/-/g, '_');
    const db = mongo.db(database);
    const connection = await connectClient(settingsFromEnv(tlsEnv(certs.client)));
    // The worker command, as an operator runs it, with the same variables.
    const worker = spawn(process.execPath, ['--import', 'tsx', path.resolve(__dirname, '../../src/cli/main.ts'), 'worker', '--no-schedules'], {
      env: { ...process.env, ...tlsEnv(certs.client), MONGODB_URI: cluster.mongodbUri, FANOUT_DB: database },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    worker.stdout.on('data', (c: Buffer) => (output += c.toString()));
    worker.stderr.on('data', (c: Buffer) => (output += c.toString()));
    try {
      await new FeedStore(db).ensureIndexes();
      const actor = uniqueName('tls-actor');
      const followers = await seedFollowers(db, actor, 500, { prefix: `${actor}-f` });
      for (let i = 0; i < 600 && !/serving /.test(output); i++) {
        if (worker.exitCode !== null) throw new Error(`the worker command exited:\n${output}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(output).toMatch(/serving fanout, high-fanout, low-fanout on 127\.0\.0\.1:\d+/);
      const feeds = new FeedClient({ temporal: new Client({ connection, namespace: cluster.namespace }), db });
      const { activityId } = await feeds.addActivity({ id: `${actor}-a1`, actor, verb: 'pin', object: 'p1' });
      expect(await feeds.waitForFanout(activityId)).toMatchObject({ done: true, followersSeen: 500 });
      expect(await db.collection(Collections.feed(FeedType.TIMELINE)).countDocuments({ activityId })).toBe(followers.all.length);
    } finally {
      worker.kill('SIGTERM');
      await connection.close();
      await db.dropDatabase().catch(() => undefined);
      await mongo.close();
    }
  });

  it('a client certificate from another CA, or none, is refused with an error saying what to check', async () => {
    for (const pair of [certs.rogue, undefined]) {
      const err = await connectClient(settingsFromEnv(tlsEnv(pair))).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(ConfigurationError);
      expect((err as Error).message).toMatch(new RegExp(`^cannot connect to Temporal at ${cluster.frontendAddress.replace(/\./g, '\\.')} \\(TLS, no API key\\): .+ Check TEMPORAL_ADDRESS, the TLS settings`));
      expect((err as Error).message).toContain(pair ? 'the TLS handshake says: alert "unknown ca": the server does not trust the CA that signed the client certificate' : 'the TLS handshake says: alert "certificate required"');
      console.log(`tls: ${pair ? 'wrong certificate' : 'no certificate'}: ${(err as Error).message}`);
    }
    // The worker command says the same and exits 1.
    const worker = spawn(process.execPath, ['--import', 'tsx', path.resolve(__dirname, '../../src/cli/main.ts'), 'worker', '--no-schedules'], {
      env: { ...process.env, ...tlsEnv(certs.rogue), MONGODB_URI: cluster.mongodbUri, FANOUT_DB: 'tls_rogue' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    worker.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const code = await new Promise<number | null>((resolve) => worker.once('exit', resolve));
    expect(code).toBe(1);
    expect(stderr).toMatch(/^feed-fanout: cannot connect to Temporal at .+ \(TLS, no API key\)/m);
  });
});
