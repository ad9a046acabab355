/**
 * `npm run bench [-- --workload fanout|social|rss] [...]`: the benchmarks, each on a stack it starts
 * (see `stack.ts`). `fanout` (the default): one fanout to N followers, by lever, beside its
 * baselines (see `fanout.ts`). `social`: an app's traffic on a power-law follower graph (see
 * `social.ts`). `rss`: the worker command's memory at 100,000 and 1,000,000 followers (see `rss.ts`).
 * @module
 */
import { fanoutBench } from './fanout';
import { rssBench } from './rss';
import { socialBench } from './social';
import { startBenchStack, textArg } from './stack';

async function main(): Promise<void> {
  const workload = textArg('workload') ?? 'fanout';
  const benches: Record<string, typeof fanoutBench> = { fanout: fanoutBench, social: socialBench, rss: rssBench };
  const bench = benches[workload];
  if (!bench) throw new Error(`--workload must be one of ${Object.keys(benches).join(', ')}, got "${workload}"`);
  const stack = await startBenchStack();
  try {
    await bench(stack);
  } finally {
    await stack.close();
  }
}

main().catch((err) => {
  console.error(`bench failed: ${err instanceof Error ? err.stack : String(err)}`);
  process.exit(1);
});
