/**
 * Where the servers are and which feeds exist, from the environment. One place, so the worker,
 * the client helpers, the demo and the tests agree.
 * @module
 */
import { readFileSync } from 'node:fs';
import { ConfigurationError, ValidationError } from './errors';
import { type NetworksConfig, resolveNetworks } from './integrations/network';
import { DEFAULT_FEEDS, type FeedsConfig, resolveFeeds } from './model/feeds';

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
  /**
   * Feed types: the JSON file named by env `FANOUT_FEEDS_FILE` (a {@link FeedsConfig} object).
   * Give the workers and the app the same file. @default DEFAULT_FEEDS
   */
  feeds: FeedsConfig;
  /**
   * Third-party networks the import workers call: the JSON file named by env
   * `FANOUT_NETWORKS_FILE` (a {@link NetworksConfig} object; error rules' `text` patterns are
   * substrings there). @default {} (no imports)
   */
  networks: NetworksConfig;
  /** This worker's egress address, the key of `ip` rate limits. Env `FANOUT_EGRESS_IP`. @default 'default' */
  egressIp: string;
}

/** Reads a JSON configuration file named by env `variable` and checks it with `check`. @throws ConfigurationError naming the file and the problem. */
function loadConfigFile<T>(variable: string, file: string, check: (value: T) => unknown): T {
  let value: T;
  try {
    value = JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch (err) {
    throw new ConfigurationError(`${variable} ${file}: cannot read it as JSON (${(err as Error).message})`);
  }
  try {
    check(value);
  } catch (err) {
    if (err instanceof ValidationError) throw new ConfigurationError(`${variable} ${file}: ${err.message}`);
    throw err;
  }
  return value;
}

/** Reads and validates a feeds configuration file. @throws ConfigurationError naming the file and the problem. */
export function loadFeedsFile(file: string): FeedsConfig {
  return loadConfigFile('FANOUT_FEEDS_FILE', file, resolveFeeds);
}

/** Reads and validates a networks configuration file. @throws ConfigurationError naming the file and the problem. */
export function loadNetworksFile(file: string): NetworksConfig {
  return loadConfigFile('FANOUT_NETWORKS_FILE', file, resolveNetworks);
}

/** Reads {@link ConnectionSettings} from `env`, applying defaults. */
export function settingsFromEnv(env: NodeJS.ProcessEnv = process.env): ConnectionSettings {
  return {
    temporalAddress: env.TEMPORAL_ADDRESS || 'localhost:7233',
    namespace: env.TEMPORAL_NAMESPACE || 'default',
    mongodbUri: env.MONGODB_URI || 'mongodb://127.0.0.1:27017/',
    database: env.FANOUT_DB || 'feed_fanout',
    feeds: env.FANOUT_FEEDS_FILE ? loadFeedsFile(env.FANOUT_FEEDS_FILE) : DEFAULT_FEEDS,
    networks: env.FANOUT_NETWORKS_FILE ? loadNetworksFile(env.FANOUT_NETWORKS_FILE) : {},
    egressIp: env.FANOUT_EGRESS_IP || 'default',
  };
}
