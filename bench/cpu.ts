/**
 * CPU time by process, to tell where a benchmark phase spent the machine: the Temporal server,
 * the database and this Node process (workers, client, raw writer). Linux only (`/proc`); where
 * `/proc` is missing the servers' figures are left out.
 * @module
 */
import { readFileSync } from 'node:fs';

/** Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`, 100 on Linux). */
const CLK_TCK = 100;

/** CPU seconds (user + system) each named process has used so far. */
export type CpuSample = Record<string, number>;

/** CPU seconds used so far by `pid`, or NaN if it cannot be read. */
function processCpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start at state; utime and stime are
    // fields 14 and 15 of the whole line, so 12 and 13 after the closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return Number.NaN;
  }
}

/** Samples the CPU time of `pids` (by name) and of this process (as `node`). */
export function sampleCpu(pids: Record<string, number | undefined>): CpuSample {
  const sample: CpuSample = {};
  for (const [name, pid] of Object.entries(pids)) sample[name] = processCpuSeconds(pid);
  const self = process.cpuUsage();
  sample.node = (self.user + self.system) / 1e6;
  return sample;
}

/** CPU seconds used between two samples, per process. */
export function cpuBetween(before: CpuSample, after: CpuSample): CpuSample {
  const used: CpuSample = {};
  for (const name of Object.keys(after)) used[name] = (after[name] ?? Number.NaN) - (before[name] ?? Number.NaN);
  return used;
}

/** One measured phase of a benchmark. */
export interface Measured {
  /** Feed entries the phase wrote (or removed). */
  written: number;
  seconds: number;
  rate: number;
  cpu: CpuSample;
  /** Highest resident set size of this process (the workers run in it) during the phase, MB. */
  peakRssMb: number;
  /** Its resident set size when the phase began, MB (the bench's own data included). */
  startRssMb: number;
}

/** Runs `phase` (which returns the entries it wrote) and measures wall time, CPU and peak RSS. */
export async function measure(pids: Record<string, number | undefined>, phase: () => Promise<number>): Promise<Measured> {
  const start = Date.now();
  const cpuStart = sampleCpu(pids);
  const startRss = process.memoryUsage.rss();
  let peakRss = startRss;
  const rssTimer = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage.rss())), 250);
  try {
    const written = await phase();
    const seconds = (Date.now() - start) / 1000;
    return { written, seconds, rate: written / seconds, cpu: cpuBetween(cpuStart, sampleCpu(pids)), peakRssMb: Math.max(peakRss, process.memoryUsage.rss()) / 2 ** 20, startRssMb: startRss / 2 ** 20 };
  } finally {
    clearInterval(rssTimer);
  }
}

/** CPU milliseconds `name` used per 1,000 entries. */
export function perThousand(cpu: CpuSample, name: string, entries: number): string {
  const seconds = cpu[name];
  return seconds === undefined || Number.isNaN(seconds) || entries === 0 ? '-' : ((seconds * 1e6) / entries).toFixed(0);
}

/** CPU seconds of all sampled processes together. */
export function cpuTotal(cpu: CpuSample): number {
  return Object.values(cpu).filter((v) => !Number.isNaN(v)).reduce((a, b) => a + b, 0);
}

/** CPU milliseconds all sampled processes together used per 1,000 entries. */
export function perThousandAll(cpu: CpuSample, entries: number): string {
  return entries === 0 ? '-' : ((cpuTotal(cpu) * 1e6) / entries).toFixed(0);
}

/** Average number of cores the sampled processes kept busy over `seconds`. */
export function coresBusy(cpu: CpuSample, seconds: number): string {
  return (cpuTotal(cpu) / seconds).toFixed(2);
}

/** Prints a markdown table. */
export function printTable(header: string[], rows: string[][]): void {
  console.log(`| ${header.join(' | ')} |`);
  console.log(`|---|${header.slice(1).map(() => '---:').join('|')}|`);
  for (const r of rows) console.log(`| ${r.join(' | ')} |`);
}
