/**
 * Runs the fake social network as a process, for `temporal-dev.sh` and manual poking:
 * `node --import tsx test/fake-network/main.ts [port]` (default 7480).
 *
 * Its accounts match `config/dev-networks.json` and the demo: `demo-alice` (2,500 friends),
 * `demo-oprah` (12,000: a whale), `demo-expired` (an expired token). It rate-limits each token
 * to 20 requests per second (published) and fails 3% of requests at random, so the demo shows
 * retries and limits at work.
 */
import { startFakeNetwork } from './server';

async function main(): Promise<void> {
  const port = Number(process.argv[2] ?? 7480);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`port must be 1..65535, got "${process.argv[2]}"`);
  const network = await startFakeNetwork({
    port,
    accounts: [
      { token: 'demo-alice', userId: 'alice', friends: 2500 },
      { token: 'demo-oprah', userId: 'oprah', friends: 12_000 },
    ],
    expiredTokens: ['demo-expired'],
    rateLimits: [{ key: 'token', limit: 20, windowMs: 1000 }],
    errorRate: 0.03,
    latencyMs: 20,
  });
  console.log(`fake network: listening on ${network.url} (accounts demo-alice, demo-oprah; expired token demo-expired)`);
  const stop = (): void => {
    const stats = network.stats();
    console.log(`fake network: ${stats.total} requests, by status ${JSON.stringify(stats.byStatus)}; stopping`);
    void network.close().then(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main().catch((err) => {
  console.error(`fake network: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
