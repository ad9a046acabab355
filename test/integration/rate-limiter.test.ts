/**
 * The shared rate limiter against the MongoDB-wire store: several limiter instances on separate
 * connections (as separate processes would have) racing for one bucket.
 */
import { MongoClient } from 'mongodb';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { type BucketRequest, SharedRateLimiter } from '../../src/integrations/rate-limiter';
import { freshDb } from '../utils/env';

let mongo: Awaited<ReturnType<typeof freshDb>>;
const clients: MongoClient[] = [];

beforeEach(async () => {
  mongo = await freshDb('ratelimit');
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await mongo.drop();
});

/**
 * `n` limiters, each on its own connection, with the default margin. The margin covers the time
 * between a grant's insert and its caller acting on it; the window check below measures at the
 * caller, so on a loaded 2-core CI machine a 50 ms margin was exceeded once (6 in 500 ms).
 */
async function limiters(n: number): Promise<SharedRateLimiter[]> {
  const out: SharedRateLimiter[] = [];
  for (let i = 0; i < n; i++) {
    const client = await MongoClient.connect(inject('mongodbUri'));
    clients.push(client);
    out.push(new SharedRateLimiter(client.db(mongo.db.databaseName)));
  }
  return out;
}

/** Largest number of `times` within any window of `windowMs` (half-open). */
function maxInWindow(times: number[], windowMs: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let best = 0;
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while (sorted[i] - sorted[j] >= windowMs) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}

/** Callers that keep acquiring (sleeping as told) until `total` grants were taken; returns grant times. */
async function race(instances: SharedRateLimiter[], bucket: BucketRequest, callersPerInstance: number, total: number): Promise<{ grants: number[]; denials: number }> {
  const grants: number[] = [];
  let denials = 0;
  await Promise.all(
    instances.flatMap((limiter) =>
      Array.from({ length: callersPerInstance }, async () => {
        while (grants.length < total) {
          const result = await limiter.acquire([bucket]);
          if (result.granted) grants.push(Date.now());
          else {
            denials++;
            expect(result.waitMs).toBeGreaterThan(0);
            await new Promise((ok) => setTimeout(ok, result.waitMs));
          }
        }
      }),
    ),
  );
  return { grants, denials };
}

describe('SharedRateLimiter', () => {
  it('a known limit holds across instances: never more than the limit in any window', async () => {
    const bucket: BucketRequest = { id: 'net:token:alice', limit: { key: 'token', limit: 5, windowMs: 500 } };
    const { grants, denials } = await race(await limiters(3), bucket, 4, 25);
    expect(grants.length).toBeGreaterThanOrEqual(25);
    expect(denials).toBeGreaterThan(0);
    expect(maxInWindow(grants, 500)).toBeLessThanOrEqual(5);
    // Not starved either: 25 grants at 5 per 500 ms need about 2 s, not much more.
    expect(grants.at(-1)! - grants[0]).toBeGreaterThanOrEqual(2000 - 50);
  });

  it('an adaptive limit spaces requests, halves its rate when rate limited and ramps up on success', async () => {
    const [limiter] = await limiters(1);
    const bucket: BucketRequest = { id: 'net:token~adaptive:bob', limit: { key: 'token', adaptive: true, initialPerSecond: 10, increasePerSecond: 1, maxPerSecond: 12 } };
    expect(await limiter.currentRate(bucket)).toBe(10);
    expect(await limiter.acquire([bucket])).toEqual({ granted: true });
    const denied = await limiter.acquire([bucket]);
    expect(denied).toMatchObject({ granted: false, reason: 'limit reached' });
    const wait = await limiter.rateLimited([bucket], undefined, 50);
    expect(await limiter.currentRate(bucket)).toBe(5);
    expect(wait).toBeGreaterThanOrEqual(200); // one interval at the lowered rate
    expect(await limiter.acquire([bucket])).toMatchObject({ granted: false, reason: 'the network asked us to wait' });
    await limiter.succeeded([bucket]);
    await limiter.succeeded([bucket]);
    expect(await limiter.currentRate(bucket)).toBe(7);
    for (let i = 0; i < 10; i++) await limiter.succeeded([bucket]);
    expect(await limiter.currentRate(bucket)).toBe(12); // capped
  });

  it('a Retry-After blocks every instance until it passes', async () => {
    const [a, b] = await limiters(2);
    const bucket: BucketRequest = { id: 'net:app:fanout', limit: { key: 'app', limit: 100, windowMs: 1000 } };
    expect(await a.rateLimited([bucket], 400)).toBe(400);
    const denied = await b.acquire([bucket]);
    expect(denied).toMatchObject({ granted: false });
    expect((denied as { waitMs: number }).waitMs).toBeGreaterThan(300);
    await new Promise((ok) => setTimeout(ok, 450));
    expect(await b.acquire([bucket])).toEqual({ granted: true });
  });
});
