/**
 * Helpers shared by the tests: connections to the servers of the global setup, a fresh database
 * per test, workers on per-test task queues.
 */
import { randomBytes } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, makeTelemetryFilterString, NativeConnection, Runtime, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { type Db, MongoClient } from 'mongodb';
import { inject } from 'vitest';
import { WORKFLOWS_PATH } from '../../src/worker/workers';

let runtimeInstalled = false;
/**
 * Keeps the SDK quiet in test output: errors only. (Tests provoke failures on purpose, and the
 * Java test server makes the core warn about a capability it does not advertise.)
 */
export function quietRuntime(): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  Runtime.install({
    logger: new DefaultLogger('ERROR'),
    telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'ERROR' }), forward: {} } },
  });
}

/** A unique, readable name for a test's database or task queue. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

/** A fresh database on the test MongoDB; `drop()` removes it. */
export async function freshDb(prefix: string): Promise<{ client: MongoClient; db: Db; drop(): Promise<void> }> {
  const client = await MongoClient.connect(inject('mongodbUri'));
  const db = client.db(uniqueName(prefix).replace(/-/g, '_'));
  return {
    client,
    db,
    async drop() {
      await db.dropDatabase().catch(() => undefined);
      await client.close();
    },
  };
}

/** Connections to the dev server of the global setup. */
export async function devServer(): Promise<{ connection: Connection; nativeConnection: NativeConnection; client: Client; close(): Promise<void> }> {
  quietRuntime();
  const address = inject('temporalAddress');
  const connection = await Connection.connect({ address });
  const nativeConnection = await NativeConnection.connect({ address });
  return {
    connection,
    nativeConnection,
    client: new Client({ connection }),
    async close() {
      await connection.close();
      await nativeConnection.close();
    },
  };
}

/** Starts the real Java time-skipping test server built by scripts/install-tools.sh. */
export async function timeSkippingEnv(): Promise<TestWorkflowEnvironment> {
  quietRuntime();
  return TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: { type: 'existing-path', path: inject('testServerPath') } },
  });
}

let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;
/** The workflow bundle, built once per test file. */
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundle ??= bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: new DefaultLogger('WARN') });
  return bundle;
}
