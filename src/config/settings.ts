/**
 * Where the servers are and which feeds exist, from the environment. One place, so the worker,
 * the client helpers, the demo and the tests agree.
 * @module
 */
import { readFileSync } from 'node:fs';
import { type ClientConnectConfig, loadClientConnectConfig } from '@temporalio/envconfig';
import { ConfigurationError, ValidationError } from '../contract/errors';
import { type NetworksConfig, resolveNetworks } from '../integrations/network';
import { DEFAULT_FEEDS, type FeedsConfig, resolveFeeds } from '../contract/feeds';

/** Connection settings. */
export interface ConnectionSettings {
  /**
   * How to reach Temporal: address, TLS (client certificate, server CA, server name), API key and
   * gRPC metadata, from Temporal's standard client configuration (`@temporalio/envconfig`): the
   * profile named by env `TEMPORAL_PROFILE` (default `default`) of the TOML file named by
   * `TEMPORAL_CONFIG_FILE` (default `~/.config/temporalio/temporal.toml`), overridden by the
   * `TEMPORAL_*` variables: `TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`, `TEMPORAL_API_KEY`,
   * `TEMPORAL_TLS`, `TEMPORAL_TLS_CLIENT_CERT_PATH`, `TEMPORAL_TLS_CLIENT_KEY_PATH`,
   * `TEMPORAL_TLS_SERVER_CA_CERT_PATH`, `TEMPORAL_TLS_SERVER_NAME`, ... So Temporal Cloud works
   * with an API key or a client certificate, as every Temporal tool reads them.
   */
  temporal: TemporalConnection;
  /** Temporal frontend `host:port`, for messages. @default 'localhost:7233' */
  temporalAddress: string;
  /** Temporal namespace. @default 'default' */
  namespace: string;
  /**
   * MongoDB connection string. Env `MONGODB_URI`: anything the driver takes, e.g. a replica set
   * (`mongodb://h1,h2,h3/?replicaSet=rs0`), Atlas (`mongodb+srv://user:pass@cluster.example.net/`),
   * TLS with a client certificate (`?tls=true&tlsCAFile=ca.pem&tlsCertificateKeyFile=client.pem`).
   * @default 'mongodb://127.0.0.1:27017/' (the store of temporal-dev.sh)
   */
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

/** Options of a Temporal connection, as `NativeConnection.connect` and `Connection.connect` take them. */
export type TemporalConnection = ClientConnectConfig['connectionOptions'] & { address: string };

/**
 * The Temporal connection of `env` (see {@link ConnectionSettings.temporal}).
 * @throws ConfigurationError naming the profile, file or variable that is wrong.
 */
export function temporalFromEnv(env: NodeJS.ProcessEnv = process.env): { connection: TemporalConnection; namespace: string } {
  let loaded: ClientConnectConfig;
  try {
    loaded = loadClientConnectConfig({ overrideEnvVars: env as Record<string, string>, ...(env.TEMPORAL_PROFILE ? { profile: env.TEMPORAL_PROFILE } : {}) });
  } catch (err) {
    throw new ConfigurationError(`Temporal client configuration (TEMPORAL_PROFILE, TEMPORAL_CONFIG_FILE, TEMPORAL_* variables): ${(err as Error).message}`);
  }
  return {
    connection: { ...loaded.connectionOptions, address: loaded.connectionOptions.address || 'localhost:7233' },
    namespace: loaded.namespace || 'default',
  };
}

/** Reads {@link ConnectionSettings} from `env`, applying defaults. */
export function settingsFromEnv(env: NodeJS.ProcessEnv = process.env): ConnectionSettings {
  const temporal = temporalFromEnv(env);
  return {
    temporal: temporal.connection,
    temporalAddress: temporal.connection.address,
    namespace: temporal.namespace,
    mongodbUri: env.MONGODB_URI || 'mongodb://127.0.0.1:27017/',
    database: env.FANOUT_DB || 'feed_fanout',
    feeds: env.FANOUT_FEEDS_FILE ? loadFeedsFile(env.FANOUT_FEEDS_FILE) : DEFAULT_FEEDS,
    networks: env.FANOUT_NETWORKS_FILE ? loadNetworksFile(env.FANOUT_NETWORKS_FILE) : {},
    egressIp: env.FANOUT_EGRESS_IP || 'default',
  };
}
