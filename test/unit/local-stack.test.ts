/** Choosing the local store: `FANOUT_STORE` and the bench's `--store` are checked at the edge. */
import { describe, expect, it } from 'vitest';
import { LocalStackError } from '../../src/errors';
import { storeKind } from '../../src/dev/local-stack';

describe('storeKind', () => {
  it('is FerretDB when nothing is set, and takes either store by name', () => {
    expect(storeKind(undefined)).toBe('ferretdb');
    expect(storeKind('')).toBe('ferretdb');
    expect(storeKind('ferretdb')).toBe('ferretdb');
    expect(storeKind('mongodb')).toBe('mongodb');
  });

  it('rejects anything else with an error naming where the value came from', () => {
    expect(() => storeKind('postgres')).toThrow(LocalStackError);
    expect(() => storeKind('postgres')).toThrow('FANOUT_STORE must be "ferretdb" or "mongodb", got "postgres"');
    expect(() => storeKind('MongoDB', '--store')).toThrow('--store must be "ferretdb" or "mongodb", got "MongoDB"');
  });
});
