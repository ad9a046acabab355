/**
 * The cluster's ports (picked once, kept in its data dir across restarts) and its saved state.
 * @module
 */
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { LocalStackError } from '../../src/contract/errors';
import { freePort, portInUse, REPO_ROOT } from '../local-stack';
import { ClusterPorts } from './types';

export const HISTORY_SHARDS = 8;
export const PG_USER = 'temporal';
export const PG_PASSWORD = 'temporal';
export const CONFIG_TEMPLATES = path.join(REPO_ROOT, 'config', 'cluster');
/** Bumped when the layout of the data dir changes. */
export const STATE_VERSION = 1;

export interface ClusterState {
  version: number;
  ports: ClusterPorts;
  replicaSetName: string;
  historyShards: number;
  /** Set once both databases have their schemas. */
  schemaReady?: boolean;
  /** Set once the replica set was initiated. */
  replicaSetInitiated?: boolean;
}

/** What each port is for, in messages. */
export const PORT_LABELS: Record<keyof ClusterPorts, string> = {
  frontend: 'Temporal frontend gRPC',
  frontendMembership: 'Temporal frontend membership',
  frontendHttp: 'Temporal frontend HTTP',
  matching: 'Temporal matching gRPC',
  matchingMembership: 'Temporal matching membership',
  history: 'Temporal history gRPC',
  historyMembership: 'Temporal history membership',
  worker: 'Temporal worker gRPC',
  workerMembership: 'Temporal worker membership',
  ui: 'Temporal Web UI',
  postgres: 'PostgreSQL',
  mongod: 'mongod',
};
/**
 * Temporal keeps each host's membership port in `cluster_membership.rpc_port`, a SMALLINT: above
 * 32767 PostgreSQL refuses the heartbeat and the service exits. So ports this module picks come from
 * 20000-32767, which also keeps them out of Linux's range for outgoing connections (32768-60999),
 * where a recorded port could be taken by a client socket before the next start.
 */
export const MAX_MEMBERSHIP_PORT = 32767;
export const MEMBERSHIP_PORTS: ReadonlySet<keyof ClusterPorts> = new Set(['frontendMembership', 'matchingMembership', 'historyMembership', 'workerMembership']);

/** A port in 20000-32767 that nothing listens on and that can be bound on 127.0.0.1. */
export async function freeLowPort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 20000 + Math.floor(Math.random() * (MAX_MEMBERSHIP_PORT - 20000 + 1));
    if ((await canBind(port)) && !(await portInUse(port))) return port;
  }
  return freePort(); // a crowded range: any free port (the membership ports would then fail clearly)
}

export function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** Ports that must not change once the replica set exists (its config names them). */
export const STICKY_PORTS: ReadonlySet<keyof ClusterPorts> = new Set(['mongod']);
/** Ports clients use: a recorded one that is taken is an error, not silently moved. */
export const PUBLIC_PORTS: ReadonlySet<keyof ClusterPorts> = new Set(['frontend', 'ui', 'postgres', 'mongod']);


// --- ports and state ---------------------------------------------------------------------------

export function readState(file: string): ClusterState | undefined {
  if (!existsSync(file)) return undefined;
  const state = JSON.parse(readFileSync(file, 'utf8')) as ClusterState;
  if (state.version !== STATE_VERSION) {
    throw new LocalStackError(`${file} is from another version of dev/cluster (layout ${state.version}, expected ${STATE_VERSION}); use a fresh data dir`);
  }
  if (state.historyShards !== HISTORY_SHARDS) {
    throw new LocalStackError(`${file}: this data dir's Temporal database has ${state.historyShards} history shards, the cluster runs ${HISTORY_SHARDS}; use a fresh data dir`);
  }
  return state;
}

/** Requested, else recorded, else free ports; each checked free, with the service that needs it named. */
export async function resolvePorts(
  requested: Partial<ClusterPorts>,
  recorded: ClusterPorts | undefined,
  dataDir: string,
  replicaSetExists: boolean,
): Promise<ClusterPorts> {
  const sticky = (key: keyof ClusterPorts) => replicaSetExists && STICKY_PORTS.has(key);
  const taken = new Set<number>();
  const fresh = async (): Promise<number> => {
    for (;;) {
      const port = await freeLowPort();
      if (!taken.has(port)) return port;
    }
  };
  const one = async (key: keyof ClusterPorts, index: number | undefined, want: number | undefined, before: number | undefined): Promise<number> => {
    const label = `${PORT_LABELS[key]}${index === undefined ? '' : ` ${index + 1}`}`;
    if (sticky(key) && before !== undefined && want !== undefined && want !== before) {
      throw new LocalStackError(`${label} must stay on port ${before}: the replica set in ${dataDir} was created with it (asked for ${want}); use a fresh data dir for other ports`);
    }
    if (want !== undefined && MEMBERSHIP_PORTS.has(key) && want > MAX_MEMBERSHIP_PORT) {
      throw new LocalStackError(`${label} port must be at most ${MAX_MEMBERSHIP_PORT} (the server keeps it in a SMALLINT column), got ${want}`);
    }
    let port = want ?? before;
    if (port !== undefined && (taken.has(port) || (await portInUse(port)))) {
      // A recorded port of an internal service may move; one asked for, or one the data names, may not.
      if (want === undefined && !sticky(key) && !PUBLIC_PORTS.has(key)) port = undefined;
      else {
        throw new LocalStackError(
          `port ${port} (${label}) is already in use${taken.has(port) ? ' by another port of this cluster' : ''}; stop what holds it (ss -ltnp | grep :${port}) or choose another port`,
        );
      }
    }
    port ??= await fresh();
    taken.add(port);
    return port;
  };
  const pair = async (key: 'history' | 'historyMembership'): Promise<[number, number]> => [
    await one(key, 0, requested[key]?.[0], recorded?.[key][0]),
    await one(key, 1, requested[key]?.[1], recorded?.[key][1]),
  ];
  return {
    frontend: await one('frontend', undefined, requested.frontend, recorded?.frontend),
    ui: await one('ui', undefined, requested.ui, recorded?.ui),
    postgres: await one('postgres', undefined, requested.postgres, recorded?.postgres),
    mongod: [
      await one('mongod', 0, requested.mongod?.[0], recorded?.mongod[0]),
      await one('mongod', 1, requested.mongod?.[1], recorded?.mongod[1]),
      await one('mongod', 2, requested.mongod?.[2], recorded?.mongod[2]),
    ],
    frontendMembership: await one('frontendMembership', undefined, requested.frontendMembership, recorded?.frontendMembership),
    frontendHttp: await one('frontendHttp', undefined, requested.frontendHttp, recorded?.frontendHttp),
    matching: await one('matching', undefined, requested.matching, recorded?.matching),
    matchingMembership: await one('matchingMembership', undefined, requested.matchingMembership, recorded?.matchingMembership),
    history: await pair('history'),
    historyMembership: await pair('historyMembership'),
    worker: await one('worker', undefined, requested.worker, recorded?.worker),
    workerMembership: await one('workerMembership', undefined, requested.workerMembership, recorded?.workerMembership),
  };
}
