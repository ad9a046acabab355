/**
 * The 3-member MongoDB replica set: its mongod processes and initiation.
 * @module
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { MongoClient } from 'mongodb';
import { Proc } from './process';
import { ClusterTools } from './tools';
import { ClusterProcessName } from './types';

// --- MongoDB -----------------------------------------------------------------------------------

export function mongodProcess(tools: ClusterTools, dataDir: string, logDir: string, port: number, n: number, replicaSetName: string): Proc {
  const dir = path.join(dataDir, `mongod-${n}`);
  mkdirSync(dir, { recursive: true });
  return new Proc({
    name: `mongod-${n}` as ClusterProcessName,
    cmd: tools.mongod,
    args: [
      `--dbpath=${dir}`,
      `--port=${port}`,
      '--bind_ip=127.0.0.1',
      `--replSet=${replicaSetName}`,
      // Three members share the machine with Temporal and the workers.
      '--wiredTigerCacheSizeGB=0.25',
      '--oplogSize=512',
      // A signalled shutdown waits this long for operations in flight (default 15 s).
      '--setParameter=shutdownTimeoutMillisForSignaledShutdown=2000',
      '--quiet',
    ],
    cwd: dir,
    logFile: path.join(logDir, `mongod-${n}.log`),
    ready: () => pingDirect(port),
    readyTimeoutMs: 60_000,
    stopSignal: 'SIGTERM',
    stopTimeoutMs: 30_000,
  });
}

export async function pingDirect(port: number): Promise<boolean> {
  const client = await MongoClient.connect(`mongodb://127.0.0.1:${port}/?directConnection=true`, { serverSelectionTimeoutMS: 1000 });
  try {
    await client.db('admin').command({ ping: 1 });
    return true;
  } finally {
    await client.close();
  }
}

export async function isPrimary(port: number): Promise<boolean> {
  const client = await MongoClient.connect(`mongodb://127.0.0.1:${port}/?directConnection=true`, { serverSelectionTimeoutMS: 1000 });
  try {
    const hello = await client.db('admin').command({ hello: 1 });
    return hello.isWritablePrimary === true;
  } finally {
    await client.close();
  }
}

export async function hasPrimary(uri: string): Promise<boolean> {
  const client = await MongoClient.connect(uri, { serverSelectionTimeoutMS: 2000 });
  try {
    // Commands go to the primary: this answers only once one is elected.
    await client.db('admin').command({ ping: 1 });
    return true;
  } finally {
    await client.close();
  }
}

/** `replSetStepUp` on one member (an election now); errors (not yet secondary, an election running) ignored. */
export async function stepUp(port: number): Promise<void> {
  const client = await MongoClient.connect(`mongodb://127.0.0.1:${port}/?directConnection=true`, { serverSelectionTimeoutMS: 1000 });
  try {
    await client.db('admin').command({ replSetStepUp: 1 });
  } catch {
    // the next poll tries again
  } finally {
    await client.close();
  }
}

export async function initiateReplicaSet(ports: number[], name: string, electionTimeoutMillis: number): Promise<void> {
  const client = await MongoClient.connect(`mongodb://127.0.0.1:${ports[0]}/?directConnection=true`, { serverSelectionTimeoutMS: 5000 });
  try {
    const admin = client.db('admin');
    try {
      await admin.command({ replSetGetStatus: 1 });
      return; // initiated by an earlier start that did not record it
    } catch (err) {
      if ((err as { code?: number }).code !== 94 /* NotYetInitialized */) throw err;
    }
    await admin.command({
      replSetInitiate: {
        _id: name,
        members: ports.map((port, i) => ({ _id: i, host: `127.0.0.1:${port}` })),
        settings: { electionTimeoutMillis },
      },
    });
  } finally {
    await client.close();
  }
}
