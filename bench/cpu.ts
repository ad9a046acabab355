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
