/**
 * The Temporal services (frontend, matching, worker, history) and the Web UI server: their configuration, processes and readiness.
 * @module
 */
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Connection } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time';
import { temporal } from '@temporalio/proto';
import { LocalStackError } from '../../src/contract/errors';
import { SEARCH_ATTRIBUTE_TYPES } from '../../src/contract/constants';
import { portInUse } from '../local-stack';
import { describeClusterRings, historyShardOwners } from './admin-service';
import { CONFIG_TEMPLATES, HISTORY_SHARDS } from './ports';
import { Proc, goEnv, httpStatus, waitFor } from './process';
import { ClusterTools } from './tools';
import { ClusterPorts, ClusterProcessName, ClusterTls, Frontend, sdkConnectOptions } from './types';

// --- Temporal ----------------------------------------------------------------------------------

export function fillTemplate(file: string, values: Record<string, string | number>): string {
  return readFileSync(file, 'utf8').replace(/@([A-Z_]+)@/g, (whole, key: string) => {
    if (!(key in values)) throw new LocalStackError(`${file}: unknown placeholder ${whole}`);
    return String(values[key]);
  });
}

/** The `global.tls` block of the server config: the node certificate everywhere, client certificates required. */
export function globalTls(tls: ClusterTls | undefined): string {
  if (!tls) return '';
  const server = `{ certFile: "${tls.certFile}", keyFile: "${tls.keyFile}", requireClientAuth: true, clientCaFiles: ["${tls.caFile}"] }`;
  const client = `{ serverName: "${tls.serverName}", rootCaFiles: ["${tls.caFile}"] }`;
  return [
    '  tls:',
    `    internode: { server: ${server}, client: ${client} }`,
    `    frontend: { server: ${server}, client: ${client} }`,
    `    systemWorker: { certFile: "${tls.certFile}", keyFile: "${tls.keyFile}", client: ${client} }`,
  ].join('\n');
}

export function writeTemporalConfig(dataDir: string, ports: ClusterPorts, logLevel: string, tls?: ClusterTls): void {
  const dir = path.join(dataDir, 'temporal', 'config');
  mkdirSync(dir, { recursive: true });
  const dynamicConfig = path.join(dir, 'dynamicconfig.yaml');
  copyFileSync(path.join(CONFIG_TEMPLATES, 'dynamicconfig.yaml'), dynamicConfig);
  const yaml = fillTemplate(path.join(CONFIG_TEMPLATES, 'temporal.yaml'), {
    LOG_LEVEL: logLevel,
    HISTORY_SHARDS,
    PG_PORT: ports.postgres,
    FRONTEND_GRPC_PORT: ports.frontend,
    FRONTEND_MEMBERSHIP_PORT: ports.frontendMembership,
    FRONTEND_HTTP_PORT: ports.frontendHttp,
    MATCHING_GRPC_PORT: ports.matching,
    MATCHING_MEMBERSHIP_PORT: ports.matchingMembership,
    HISTORY_GRPC_PORT: ports.history[0],
    HISTORY_MEMBERSHIP_PORT: ports.historyMembership[0],
    WORKER_GRPC_PORT: ports.worker,
    WORKER_MEMBERSHIP_PORT: ports.workerMembership,
    DYNAMIC_CONFIG_FILE: dynamicConfig,
    GLOBAL_TLS: globalTls(tls),
  });
  writeFileSync(path.join(dir, 'cluster.yaml'), yaml);
}

export function historyEnv(ports: ClusterPorts, i: 0 | 1): NodeJS.ProcessEnv {
  return { TEMPORAL_HISTORY_GRPC_PORT: String(ports.history[i]), TEMPORAL_HISTORY_MEMBERSHIP_PORT: String(ports.historyMembership[i]) };
}

export function temporalProcess(
  tools: ClusterTools,
  dataDir: string,
  logDir: string,
  name: ClusterProcessName,
  service: 'frontend' | 'matching' | 'history' | 'worker',
  readyPort: number,
  env: NodeJS.ProcessEnv = {},
): Proc {
  const root = path.join(dataDir, 'temporal');
  return new Proc({
    name,
    cmd: tools.server,
    args: ['--root', root, '--config', 'config', '--env', 'cluster', '--allow-no-auth', 'start', '--service', service],
    cwd: root,
    env: goEnv(env),
    logFile: path.join(logDir, `${name}.log`),
    ready: () => portInUse(readyPort),
    readyTimeoutMs: 90_000,
    stopSignal: 'SIGTERM',
    stopTimeoutMs: 20_000,
  });
}

export function writeUiConfig(dataDir: string, ports: ClusterPorts, tls?: ClusterTls): void {
  const dir = path.join(dataDir, 'ui', 'config');
  mkdirSync(dir, { recursive: true });
  const uiTls = tls
    ? ['tls:', `  caFile: "${tls.caFile}"`, `  certFile: "${tls.certFile}"`, `  keyFile: "${tls.keyFile}"`, `  serverName: "${tls.serverName}"`, '  enableHostVerification: true'].join('\n')
    : '';
  writeFileSync(path.join(dir, 'cluster.yaml'), fillTemplate(path.join(CONFIG_TEMPLATES, 'ui.yaml'), { FRONTEND_GRPC_PORT: ports.frontend, UI_PORT: ports.ui, UI_TLS: uiTls }));
}

export function uiProcess(tools: ClusterTools, dataDir: string, logDir: string, port: number): Proc {
  const root = path.join(dataDir, 'ui');
  return new Proc({
    name: 'ui',
    cmd: tools.uiServer,
    args: ['--root', root, '--config', 'config', '--env', 'cluster', 'start'],
    cwd: root,
    env: goEnv(),
    logFile: path.join(logDir, 'ui.log'),
    ready: () => httpStatus(`http://127.0.0.1:${port}/`).then((s) => s > 0 && s < 500),
    readyTimeoutMs: 30_000,
    stopSignal: 'SIGTERM',
    stopTimeoutMs: 10_000,
  });
}

export async function frontendAnswers(frontend: Frontend, namespace: string): Promise<boolean> {
  const conn = await Connection.connect({ ...sdkConnectOptions(frontend), connectTimeout: 2000 });
  try {
    await conn.workflowService.describeNamespace({ namespace });
    return true;
  } finally {
    await conn.close();
  }
}

/** Registers `namespace` (if missing) and the project's search attributes on it. */
export async function prepareNamespace(frontend: Frontend, namespace: string, retentionDays: number, deadline: number, exited: () => string | undefined): Promise<void> {
  await waitFor('the Temporal frontend', () => frontendAnswers(frontend, 'temporal-system'), deadline, exited);
  const conn = await Connection.connect(sdkConnectOptions(frontend));
  try {
    const svc = conn.workflowService;
    const exists = await svc.describeNamespace({ namespace }).then(() => true, (err: { code?: number }) => {
      if (err.code === grpc.status.NOT_FOUND) return false;
      throw err;
    });
    if (!exists) {
      await svc.registerNamespace({ namespace, workflowExecutionRetentionPeriod: msToTs(`${retentionDays} days`) }).catch((err: { code?: number }) => {
        if (err.code !== grpc.status.ALREADY_EXISTS) throw err;
      });
    }
    await waitFor(`namespace ${namespace}`, () => svc.describeNamespace({ namespace }).then(() => true), deadline, exited);
    const types = { Keyword: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD, Bool: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_BOOL };
    const wanted = Object.fromEntries(Object.entries(SEARCH_ATTRIBUTE_TYPES).map(([name, type]) => [name, types[type]]));
    const missing = async () => {
      const { customAttributes } = await conn.operatorService.listSearchAttributes({ namespace });
      return Object.fromEntries(Object.entries(wanted).filter(([name]) => !customAttributes || !(name in customAttributes)));
    };
    // Adding them goes through the frontend's namespace cache, which learns of a new namespace
    // within a few seconds (NOT_FOUND until then): retried until every attribute is listed.
    await waitFor(
      `the search attributes ${Object.keys(wanted).join(', ')} on ${namespace}`,
      async () => {
        const toAdd = await missing();
        if (Object.keys(toAdd).length === 0) return true;
        await conn.operatorService.addSearchAttributes({ namespace, searchAttributes: toAdd });
        return Object.keys(await missing()).length === 0;
      },
      deadline,
      exited,
    );
  } finally {
    await conn.close();
  }
}

/** Waits until every service is in the membership rings and both history processes own shards. */
export async function waitForMembership(frontend: Frontend, deadline: number, exited: () => string | undefined): Promise<void> {
  let last = '';
  await waitFor(
    'every Temporal service in the membership and both history processes owning shards',
    async () => {
      const rings = await describeClusterRings(frontend);
      const count = (role: string) => rings.find((r) => r.role === role)?.memberCount ?? 0;
      const owners = await historyShardOwners(frontend, HISTORY_SHARDS);
      last = `rings ${rings.map((r) => `${r.role}=${r.memberCount}`).join(' ')}; shard owners ${[...owners].map(([a, s]) => `${a}:[${s.join(',')}]`).join(' ')}`;
      return count('frontend') >= 1 && count('matching') >= 1 && count('worker') >= 1 && count('history') === 2 && owners.size === 2;
    },
    deadline,
    exited,
    () => last,
  );
}
