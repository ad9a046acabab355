/**
 * Running the fanout: `import { createWorkers } from 'feed-fanout/worker'`.
 *
 * ```ts
 * const workers = await createWorkers({ connection: await NativeConnection.connect(), db });
 * await Promise.all(workers.map((w) => w.run()));
 * ```
 *
 * Or run the `feed-fanout worker` command, which adds metrics, a health endpoint and JSON logs.
 * The activity factories are here too, for a worker of your own.
 * @module
 */
export * from './workers';
export { PREBUILT_BUNDLE_PATH, prebuiltWorkflowBundle, writeWorkflowBundle } from './bundle';
export { startHealthServer, type HealthServerOptions } from './health';
export { createLogger, formatJsonLine, type LogFormat } from './logging';
export * from '../../activities';
