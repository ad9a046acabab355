import { describe, expect, it } from 'vitest';
import { isStoreUnreachable, StoreBreaker } from '../../activities/store-breaker';
import { StoreUnavailableError } from '../../src/contract/errors';

/** An error as the driver names it when no server answers. */
function unreachable(message = 'Server selection timed out after 10000 ms'): Error {
  const err = new Error(message);
  err.name = 'MongoServerSelectionError';
  return err;
}

describe('StoreBreaker', () => {
  it('fails at once, with the cause, while the store was just found unreachable; then lets one call try', async () => {
    let now = 1_000;
    const breaker = new StoreBreaker({ openMs: 2_000, now: () => now });
    let calls = 0;
    const failing = () => {
      calls++;
      return Promise.reject(unreachable());
    };
    await expect(breaker.run(failing)).rejects.toThrow('Server selection timed out');
    expect(calls).toBe(1);

    now += 1_500;
    const fast = breaker.run(failing);
    await expect(fast).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(fast).rejects.toThrow(/store unreachable for 2 s .*Server selection timed out/);
    expect(calls).toBe(1); // the store was not asked

    now += 1_000; // the window is over: one call tries for real, the others still fail at once
    let release!: () => void;
    const trial = breaker.run(() => new Promise<string>((resolve) => (release = () => resolve('ok'))));
    await expect(breaker.run(() => Promise.resolve('other'))).rejects.toBeInstanceOf(StoreUnavailableError);
    release();
    await expect(trial).resolves.toBe('ok');
    await expect(breaker.run(() => Promise.resolve('again'))).resolves.toBe('again');
  });

  it('is not tripped by errors the store answered with', async () => {
    const breaker = new StoreBreaker();
    const refused = Object.assign(new Error('Document failed validation'), { name: 'MongoServerError' });
    await expect(breaker.run(() => Promise.reject(refused))).rejects.toBe(refused);
    await expect(breaker.run(() => Promise.resolve(1))).resolves.toBe(1);
  });

  it('a trial that fails keeps it open for another window', async () => {
    let now = 0;
    const breaker = new StoreBreaker({ openMs: 1_000, now: () => now });
    await expect(breaker.run(() => Promise.reject(unreachable()))).rejects.toThrow();
    now = 1_000;
    await expect(breaker.run(() => Promise.reject(unreachable('connection refused')))).rejects.toThrow('connection refused');
    now = 1_500;
    await expect(breaker.run(() => Promise.resolve(1))).rejects.toThrow(/store unreachable for 2 s.*connection refused/);
  });

  it('reads unreachability from the error or its causes', () => {
    expect(isStoreUnreachable(unreachable())).toBe(true);
    expect(isStoreUnreachable(new Error('wrapped', { cause: Object.assign(new Error('x'), { name: 'MongoNetworkError' }) }))).toBe(true);
    expect(isStoreUnreachable(new Error('E11000 duplicate key'))).toBe(false);
    expect(isStoreUnreachable('not an error')).toBe(false);
  });
});
