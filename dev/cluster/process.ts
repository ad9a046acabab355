/**
 * A supervised child process of the cluster (start, kill, restart, its log), and small helpers.
 * @module
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, createWriteStream, mkdirSync, openSync, readSync, statSync, type WriteStream } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { LocalStackError } from '../../src/contract/errors';
import { ClusterProcess, ClusterProcessName } from './types';

// --- processes ---------------------------------------------------------------------------------

export interface ProcSpec {
  name: ClusterProcessName;
  cmd: string;
  args: string[];
  cwd: string;
  logFile: string;
  env?: NodeJS.ProcessEnv;
  /** Run as this user (PostgreSQL when we are root). */
  user?: { uid: number; gid: number };
  /** True once the process serves. */
  ready: () => Promise<boolean>;
  readyTimeoutMs: number;
  stopSignal: NodeJS.Signals;
  stopTimeoutMs: number;
}

/** Every cluster not stopped yet, killed if this Node process exits without stopping it. */
export const liveProcs = new Map<() => Promise<void>, Proc[]>();
process.once('exit', () => {
  for (const procs of liveProcs.values()) for (const p of procs) if (p.running) p.process.kill('SIGKILL');
});

export class Proc implements ClusterProcess {
  readonly name: ClusterProcessName;
  readonly logFile: string;
  private child: ChildProcess | undefined;
  private log: WriteStream | undefined;
  private exited: Promise<void> = Promise.resolve();
  private spawnError: Error | undefined;

  constructor(private readonly spec: ProcSpec) {
    this.name = spec.name;
    this.logFile = spec.logFile;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get process(): ChildProcess {
    if (!this.child) throw new LocalStackError(`${this.name} has not been started`);
    return this.child;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null && !this.spawnError;
  }

  /** Why the current run ended, for messages; undefined while it runs. */
  exitReason(): string | undefined {
    if (this.spawnError) return `could not be started (${this.spawnError.message})`;
    if (!this.child || this.running) return undefined;
    return this.child.signalCode ? `was killed by ${this.child.signalCode}` : `exited with code ${this.child.exitCode}`;
  }

  async start(): Promise<void> {
    if (this.running) throw new LocalStackError(`${this.name} is already running (pid ${this.pid})`);
    mkdirSync(path.dirname(this.logFile), { recursive: true });
    this.log?.end();
    const log = createWriteStream(this.logFile, { flags: 'a' });
    this.log = log;
    log.write(`\n--- [cluster] ${new Date().toISOString()} starting ${this.name}: ${this.spec.cmd} ${this.spec.args.join(' ')}\n`);
    this.spawnError = undefined;
    const child = spawn(this.spec.cmd, this.spec.args, {
      cwd: this.spec.cwd,
      env: this.spec.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(this.spec.user ?? {}),
    });
    this.child = child;
    child.stdout.pipe(log, { end: false });
    child.stderr.pipe(log, { end: false });
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        log.write(`--- [cluster] ${new Date().toISOString()} ${this.name} ${signal ? `killed by ${signal}` : `exited with code ${code}`}\n`);
        resolve();
      });
      child.once('error', (err) => {
        this.spawnError = err;
        log.write(`--- [cluster] failed to start ${this.name}: ${err.message}\n`);
        resolve();
      });
    });
    const deadline = Date.now() + this.spec.readyTimeoutMs;
    for (;;) {
      const reason = this.exitReason();
      if (reason) throw new LocalStackError(`${this.name} ${reason} while starting; see ${this.logFile}${logTail(this.logFile)}`);
      if (await this.spec.ready().catch(() => false)) return;
      if (Date.now() > deadline) {
        await this.kill('SIGKILL');
        throw new LocalStackError(`${this.name} was not ready after ${this.spec.readyTimeoutMs / 1000} s; see ${this.logFile}${logTail(this.logFile)}`);
      }
      await sleep(250);
    }
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    const timer = setTimeout(() => this.child?.kill('SIGKILL'), this.spec.stopTimeoutMs);
    this.child!.kill(this.spec.stopSignal);
    await this.exited;
    clearTimeout(timer);
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!this.running) return;
    this.child!.kill(signal);
    await this.exited;
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }
}

export function logTail(file: string, lines = 8): string {
  try {
    const size = statSync(file).size;
    const length = Math.min(size, 4096);
    const buf = Buffer.alloc(length);
    const fd = openSync(file, 'r');
    try {
      readSync(fd, buf, 0, length, size - length);
    } finally {
      closeSync(fd);
    }
    const tail = buf.toString('utf8').split('\n').filter((l) => l.trim()).slice(-lines);
    return tail.length ? `; its last lines:\n  ${tail.join('\n  ')}` : '';
  } catch {
    return '';
  }
}

/** The Go servers allocate per request; a higher GC target trades memory for CPU (as local-stack does). */
export function goEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...process.env, GOGC: process.env.GOGC ?? '400', ...extra };
}


// --- small helpers -----------------------------------------------------------------------------

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Runs a command to completion; rejects with its output when it fails. */
export function run(cmd: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { encoding: 'utf8', timeout: 120_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${err.message}\n${stdout}${stderr}`));
      else resolve({ stdout, stderr });
    });
  });
}

export function httpStatus(url: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get(url, { timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
  });
}

export function firstExited(procs: Proc[]): string | undefined {
  for (const p of procs) {
    const reason = p.exitReason();
    if (reason) return `${p.name} ${reason}; see ${p.logFile}${logTail(p.logFile)}`;
  }
  return undefined;
}

/** Polls `probe` until it is true; fails at `deadline` or as soon as `exited` names a dead process. */
export async function waitFor(what: string, probe: () => Promise<boolean>, deadline: number, exited: () => string | undefined, detail?: () => string): Promise<void> {
  let lastError = '';
  for (;;) {
    const dead = exited();
    if (dead) throw new LocalStackError(`while waiting for ${what}: ${dead}`);
    try {
      if (await probe()) return;
      lastError = '';
    } catch (err) {
      lastError = (err as Error).message.split('\n')[0] ?? '';
    }
    if (Date.now() > deadline) {
      const info = [detail?.(), lastError].filter(Boolean).join('; ');
      throw new LocalStackError(`timed out waiting for ${what}${info ? ` (${info})` : ''}`);
    }
    await sleep(500);
  }
}

/** Like Promise.all, but waits for every promise before rejecting with the first failure. */
export async function settleAll(promises: Promise<unknown>[]): Promise<void> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}
