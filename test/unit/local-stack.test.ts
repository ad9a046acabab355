/** Choosing the local store: `FANOUT_STORE` and the bench's `--store` are checked at the edge. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { LocalStackError } from '../../src/contract/errors';
import { storeKind } from '../../dev/local-stack';

describe('storeKind', () => {
  // The suite itself runs with FANOUT_STORE set (CI runs it once per store).
  afterEach(() => vi.unstubAllEnvs());

  it('is the installer\'s choice when nothing is set (mongod where it runs), and takes either store by name', () => {
    vi.stubEnv('FANOUT_STORE', undefined);
    expect(storeKind()).toBe('mongodb');
    expect(storeKind(undefined, 'FANOUT_STORE', 'ferretdb')).toBe('ferretdb');
    vi.stubEnv('FANOUT_STORE', 'ferretdb');
    expect(storeKind()).toBe('ferretdb');
    expect(storeKind('', 'FANOUT_STORE', 'ferretdb')).toBe('ferretdb');
    expect(storeKind('ferretdb')).toBe('ferretdb');
    expect(storeKind('mongodb', 'FANOUT_STORE', 'ferretdb')).toBe('mongodb');
  });

  it('rejects anything else with an error naming where the value came from', () => {
    expect(() => storeKind('postgres')).toThrow(LocalStackError);
    expect(() => storeKind('postgres')).toThrow('FANOUT_STORE must be "ferretdb" or "mongodb", got "postgres"');
    expect(() => storeKind('MongoDB', '--store')).toThrow('--store must be "ferretdb" or "mongodb", got "MongoDB"');
  });
});
