/**
 * The local cluster's options, ports, processes and handle: what tests and `cluster-main.ts` use.
 * @module
 */
import { type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { ClusterTools } from './tools';

export interface ClusterPorts {
  /** Temporal frontend gRPC: what clients and workers connect to. */
  frontend: number;
  frontendMembership: number;
  /** The frontend's HTTP API (and Nexus callbacks). */
  frontendHttp: number;
  matching: number;
  matchingMembership: number;
  /** gRPC of history-1 and history-2. */
  history: [number, number];
  historyMembership: [number, number];
  worker: number;
  workerMembership: number;
  /** The Web UI (HTTP). */
  ui: number;
  postgres: number;
  /** The three replica-set members. */
  mongod: [number, number, number];
}

/** Names of the cluster's processes. */
export type ClusterProcessName =
  | 'postgres'
  | 'frontend'
  | 'matching'
  | 'history-1'
  | 'history-2'
  | 'worker'
  | 'ui'
  | 'mongod-1'
  | 'mongod-2'
  | 'mongod-3';

/** One process of the cluster. */
export interface ClusterProcess {
  name: ClusterProcessName;
  /** pid of the current run (a restart changes it); undefined before the first start. */
  readonly pid: number | undefined;
  /** The current run's child process. */
  readonly process: ChildProcess;
  /** Its output (appended to across restarts). */
  logFile: string;
  /** True while the current run has not exited. */
  readonly running: boolean;
  /** Stops it cleanly (SIGTERM, SIGINT for PostgreSQL's fast shutdown; SIGKILL after a timeout) and waits for it to exit. */
  stop(): Promise<void>;
  /** Sends `signal` (default SIGKILL) and waits for the process to exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again with the same config, ports and data (stopping it first if it runs); resolves once it answers on its port. */
  restart(): Promise<void>;
}

/** Options of `startCluster`. */
/**
 * TLS for the cluster: the frontend serves TLS and requires a client certificate signed by `caFile`
 * (mutual TLS); the services talk to each other over TLS with the same node certificate. Made by
 * the caller (e.g. with `makeTestCertificates`, openssl).
 */
export interface ClusterTls {
  /** The CA that signs the node certificate and the clients' certificates (PEM). */
  caFile: string;
  /** The node certificate (PEM): server and client auth, names `serverName`, localhost and 127.0.0.1. */
  certFile: string;
  keyFile: string;
  /** The name clients verify the frontend's certificate against. */
  serverName: string;
}

/** How to reach the frontend: its address, and its TLS when on. */
export interface Frontend {
  address: string;
  tls?: ClusterTls | undefined;
}

/** The SDK's connection options for the frontend (the node certificate as the client's). */
export function sdkConnectOptions(frontend: Frontend) {
  const { address, tls } = frontend;
  if (!tls) return { address };
  return {
    address,
    tls: {
      serverNameOverride: tls.serverName,
      serverRootCACertificate: readFileSync(tls.caFile),
      clientCertPair: { crt: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) },
    },
  };
}

export interface ClusterOptions {
  /** Everything the cluster stores (PostgreSQL, mongod data, generated configs); reused by the next start. */
  dataDir: string;
  /** One log per process. @default `<dataDir>/logs` */
  logDir?: string;
  /**
   * Ports to use. A port not given is the one the data dir's previous start used (kept in
   * `<dataDir>/cluster.json`), else a free one. The mongod ports are fixed once the replica set
   * exists (its config names them).
   */
  ports?: Partial<ClusterPorts>;
  /** Namespace to create (and to check readiness with). @default default */
  namespace?: string;
  /** Its workflow retention. @default 3 days */
  retentionDays?: number;
  /** Name of the replica set (fixed once created). @default fanout-rs */
  replicaSetName?: string;
  /** The replica set's election timeout, set when it is created. @default 10000 (MongoDB's default) */
  mongoElectionTimeoutMs?: number;
  /** Log level of the Temporal services. @default warn */
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
  /** Binaries. @default from `ensureClusterTools()` */
  tools?: ClusterTools;
  /** Progress lines ("starting PostgreSQL on ..."). @default silent */
  onProgress?: (message: string) => void;
  /** Mutual TLS on the frontend and between the services. @default off */
  tls?: ClusterTls;
  /** Whole start, readiness included. @default 240000 */
  timeoutMs?: number;
}

/** A running cluster, from `startCluster`. */
export interface Cluster {
  /** The TLS the cluster runs with, if any. */
  tls: ClusterTls | undefined;
  /** `127.0.0.1:<port>` of the Temporal frontend. */
  frontendAddress: string;
  /** `http://127.0.0.1:<port>` of the Web UI. */
  uiUrl: string;
  /** `mongodb://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3/?replicaSet=<name>` */
  mongodbUri: string;
  postgresPort: number;
  namespace: string;
  replicaSetName: string;
  historyShards: number;
  ports: ClusterPorts;
  dataDir: string;
  logDir: string;
  /** Every process, in start order. */
  processes: ClusterProcess[];
  /** The process called `name`. */
  process(name: ClusterProcessName): ClusterProcess;
  /** The replica-set member that is primary now (throws if none is). */
  mongoPrimary(): Promise<ClusterProcess>;
  /** Which history host (gRPC address) owns which shards, asked of the frontend's admin service. */
  historyShardOwners(): Promise<Map<string, number[]>>;
  /**
   * Waits until the frontend answers for the namespace, every service is in the membership, both
   * history processes own shards and the replica set has a primary (e.g. after a restart).
   */
  waitUntilReady(timeoutMs?: number): Promise<void>;
  /** Clean shutdown: the Temporal services, the UI, then PostgreSQL and the mongods. */
  stop(): Promise<void>;
}
