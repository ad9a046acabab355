/**
 * Where the servers are, from the environment. One place, so the worker, the client helpers,
 * the demo and the tests agree.
 * @module
 */

/** Connection settings. */
export interface ConnectionSettings {
  /** Temporal frontend `host:port`. Env `TEMPORAL_ADDRESS`. @default 'localhost:7233' */
  temporalAddress: string;
  /** Temporal namespace. Env `TEMPORAL_NAMESPACE`. @default 'default' */
  namespace: string;
  /** MongoDB connection string. Env `MONGODB_URI`. @default 'mongodb://127.0.0.1:27017/' (FerretDB of temporal-dev.sh) */
  mongodbUri: string;
  /** Database holding activities, feeds and the follow graph. Env `FANOUT_DB`. @default 'feed_fanout' */
  database: string;
}

/** Reads {@link ConnectionSettings} from `env`, applying defaults. */
export function settingsFromEnv(env: NodeJS.ProcessEnv = process.env): ConnectionSettings {
  return {
    temporalAddress: env.TEMPORAL_ADDRESS || 'localhost:7233',
    namespace: env.TEMPORAL_NAMESPACE || 'default',
    mongodbUri: env.MONGODB_URI || 'mongodb://127.0.0.1:27017/',
    database: env.FANOUT_DB || 'feed_fanout',
  };
}
