/**
 * StoreLock: mutual exclusion kept in the store itself (what FerretDB's aggregated feeds rely on),
 * on whichever store the suite runs.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StoreLock } from '../../src/storage/store-lock';
import { freshDb } from '../utils/env';

let mongo: Awaited<ReturnType<typeof freshDb>>;

beforeEach(async () => {
  mongo = await freshDb('lock');
});

afterEach(async () => {
  await mongo?.drop();
});

describe('StoreLock', () => {
  it('lets one holder at a time change a document by read-then-write: 40 concurrent increments all count', async () => {
    const counter = mongo.db.collection<{ _id: string; n: number }>('counter');
    await counter.insertOne({ _id: 'c', n: 0 });
    // Read, yield, write back: without the lock, concurrent writers overwrite each other.
    const increment = async () => {
      const doc = await counter.findOne({ _id: 'c' });
      await new Promise((r) => setTimeout(r, 1));
      await counter.updateOne({ _id: 'c' }, { $set: { n: doc!.n + 1 } });
    };
    // Three lock instances, as three worker processes would have.
    const locks = [0, 1, 2].map(() => new StoreLock(mongo.db));
    await Promise.all(Array.from({ length: 40 }, (_, i) => locks[i % 3].withLock('counter', increment)));
    expect((await counter.findOne({ _id: 'c' }))?.n).toBe(40);
    // And the control: the same increments without the lock lose some.
    await counter.updateOne({ _id: 'c' }, { $set: { n: 0 } });
    await Promise.all(Array.from({ length: 40 }, increment));
    expect((await counter.findOne({ _id: 'c' }))?.n).toBeLessThan(40);
  });

  it('takes over a lock whose holder died once its lease runs out, and releases after a throw', async () => {
    const dead = new StoreLock(mongo.db, { leaseMs: 300 });
    // A holder that never releases: the process "dies" inside fn.
    let entered: () => void = () => undefined;
    const inside = new Promise<void>((r) => (entered = r));
    void dead.withLock('k', () => {
      entered();
      return new Promise<never>(() => undefined);
    });
    await inside;
    const started = Date.now();
    const live = new StoreLock(mongo.db, { leaseMs: 300 });
    expect(await live.withLock('k', () => Promise.resolve('got it'))).toBe('got it');
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    await expect(live.withLock('k', () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await live.withLock('k', () => Promise.resolve('free again'))).toBe('free again');
  });
});
