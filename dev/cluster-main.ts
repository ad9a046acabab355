/**
 * Runs the local production-shaped cluster (dev/cluster/) until SIGTERM / SIGINT, for
 * `./temporal-dev.sh cluster up`:
 *
 *   node --import tsx dev/cluster-main.ts --data-dir DIR [--log-dir DIR] [--ready-file FILE]
 *     [--frontend-port N] [--ui-port N] [--postgres-port N] [--mongod-ports N,N,N]
 *
 * Once ready it prints the addresses and writes `--ready-file` (`export NAME=value` lines:
 * TEMPORAL_ADDRESS, MONGODB_URI, CLUSTER_UI_URL, CLUSTER_POSTGRES_PORT, CLUSTER_LOG_DIR, and CLUSTER_PIDS, the pid
 * of each process), which it removes again when it stops.
 * @module
 */
import { rmSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { type ClusterPorts, startCluster } from './cluster';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'data-dir': { type: 'string' },
      'log-dir': { type: 'string' },
      'ready-file': { type: 'string' },
      'frontend-port': { type: 'string' },
      'ui-port': { type: 'string' },
      'postgres-port': { type: 'string' },
      'mongod-ports': { type: 'string' },
      'log-level': { type: 'string' },
    },
  });
  const dataDir = values['data-dir'];
  if (!dataDir) throw new Error('--data-dir is required');
  const port = (flag: string, value: string | undefined): number | undefined => {
    if (value === undefined) return undefined;
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`${flag} must be a port number, got ${JSON.stringify(value)}`);
    return n;
  };
  const ports: Partial<ClusterPorts> = {};
  const set = <K extends keyof ClusterPorts>(key: K, value: ClusterPorts[K] | undefined) => {
    if (value !== undefined) ports[key] = value;
  };
  set('frontend', port('--frontend-port', values['frontend-port']));
  set('ui', port('--ui-port', values['ui-port']));
  set('postgres', port('--postgres-port', values['postgres-port']));
  if (values['mongod-ports']) {
    const list = values['mongod-ports'].split(',').map((p) => port('--mongod-ports', p.trim())!);
    if (list.length !== 3) throw new Error(`--mongod-ports needs three ports, got ${values['mongod-ports']}`);
    set('mongod', list as [number, number, number]);
  }
  const logLevel = values['log-level'];
  if (logLevel !== undefined && !['debug', 'info', 'warn', 'error'].includes(logLevel)) throw new Error(`--log-level must be debug, info, warn or error`);

  const started = Date.now();
  const cluster = await startCluster({
    dataDir,
    ...(values['log-dir'] ? { logDir: values['log-dir'] } : {}),
    ports,
    ...(logLevel ? { logLevel: logLevel as 'debug' | 'info' | 'warn' | 'error' } : {}),
    onProgress: (m) => console.log(`cluster: ${m}`),
  });
  const readyFile = values['ready-file'];
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`cluster: ${signal}: stopping (services, UI, then PostgreSQL and the mongods)`);
    if (readyFile) rmSync(readyFile, { force: true });
    const t = Date.now();
    await cluster.stop();
    console.log(`cluster: stopped in ${((Date.now() - t) / 1000).toFixed(1)} s`);
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));

  const pids = cluster.processes.map((p) => `${p.name}=${p.pid}`).join(' ');
  console.log(`cluster: up in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  console.log(`cluster: Temporal frontend ${cluster.frontendAddress} (namespace ${cluster.namespace}, ${cluster.historyShards} history shards)`);
  console.log(`cluster: Web UI ${cluster.uiUrl}`);
  console.log(`cluster: MongoDB ${cluster.mongodbUri}`);
  console.log(`cluster: PostgreSQL 127.0.0.1:${cluster.postgresPort} (databases temporal, temporal_visibility)`);
  console.log(`cluster: processes ${pids}; logs in ${cluster.logDir}`);
  if (readyFile) {
    writeFileSync(
      readyFile,
      [
        `export TEMPORAL_ADDRESS=${cluster.frontendAddress}`,
        `export CLUSTER_UI_URL=${cluster.uiUrl}`,
        `export MONGODB_URI='${cluster.mongodbUri}'`,
        `export CLUSTER_POSTGRES_PORT=${cluster.postgresPort}`,
        `export CLUSTER_LOG_DIR='${cluster.logDir}'`,
        `export CLUSTER_PIDS='${pids}'`,
        '',
      ].join('\n'),
    );
  }
  // A process of the cluster that dies is reported (the failover tests kill some on purpose).
  for (const p of cluster.processes) {
    p.process.once('exit', (code, signal) => {
      if (!stopping) console.error(`cluster: ${p.name} (pid ${p.process.pid}) ${signal ? `was killed by ${signal}` : `exited with code ${code}`}; see ${p.logFile}`);
    });
  }
}

main().catch((err: unknown) => {
  console.error(`cluster: ERROR: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
