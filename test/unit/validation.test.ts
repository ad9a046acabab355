import { describe, expect, it } from 'vitest';
import { deriveActivityId } from '../../src/client';
import { ValidationError } from '../../src/contract/errors';
import { FANOUT_DEFAULTS, validateFanoutInput } from '../../src/contract/fanout';
import { validateActivity } from '../../src/contract/validation';
import { parseQueuePlan } from '../../src/worker/workers';

const now = new Date('2026-11-23T12:00:00Z');

function fieldOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof ValidationError) return err.field;
    throw err;
  }
  return undefined;
}

describe('validateActivity', () => {
  it('accepts a minimal activity and fills the time', () => {
    expect(validateActivity({ actor: 'u1', verb: 'pin', object: 'p1' }, now)).toEqual({ actor: 'u1', verb: 'pin', object: 'p1', time: now });
  });

  it('accepts ISO strings and epoch milliseconds for time', () => {
    expect(validateActivity({ actor: 'u1', verb: 'pin', object: 'p1', time: '2026-01-02T03:04:05Z' }, now).time.toISOString()).toBe('2026-01-02T03:04:05.000Z');
    expect(validateActivity({ actor: 'u1', verb: 'pin', object: 'p1', time: 0 }, now).time.getTime()).toBe(0);
  });

  it.each([
    ['not an object', 'x', 'activity'],
    ['missing actor', { verb: 'pin', object: 'p' }, 'activity.actor'],
    ['empty actor', { actor: '', verb: 'pin', object: 'p' }, 'activity.actor'],
    ['actor with a slash', { actor: 'a/b', verb: 'pin', object: 'p' }, 'activity.actor'],
    ['actor too long', { actor: 'a'.repeat(129), verb: 'pin', object: 'p' }, 'activity.actor'],
    ['verb a number', { actor: 'u', verb: 3, object: 'p' }, 'activity.verb'],
    ['missing object', { actor: 'u', verb: 'pin' }, 'activity.object'],
    ['target not a string', { actor: 'u', verb: 'pin', object: 'p', target: {} }, 'activity.target'],
    ['bad time', { actor: 'u', verb: 'pin', object: 'p', time: 'soon' }, 'activity.time'],
    ['extra an array', { actor: 'u', verb: 'pin', object: 'p', extra: [] }, 'activity.extra'],
    ['extra too big', { actor: 'u', verb: 'pin', object: 'p', extra: { s: 'é'.repeat(2100) } }, 'activity.extra'],
    ['unknown field', { actor: 'u', verb: 'pin', object: 'p', body: 'x' }, 'activity.body'],
  ])('rejects %s, naming %s', (_name, input, field) => {
    expect(fieldOf(() => validateActivity(input, now))).toBe(field);
  });

  it('measures extra in UTF-8 bytes, not characters', () => {
    // 2,000 two-byte characters: 4,000 bytes plus the JSON around them, under 4,096.
    expect(() => validateActivity({ actor: 'u', verb: 'pin', object: 'p', extra: { s: 'é'.repeat(2000) } }, now)).not.toThrow();
  });
});

describe('validateFanoutInput', () => {
  const base = { operation: 'add', activityId: 'a1', actorId: 'u1', activityTime: 1 };

  it('applies the documented defaults', () => {
    expect(validateFanoutInput(base)).toMatchObject({ ...FANOUT_DEFAULTS, operation: 'add', activityId: 'a1', actorId: 'u1', activityTime: 1 });
    expect(FANOUT_DEFAULTS).toMatchObject({ chunkSize: 100, highTaskQueue: 'high-fanout', lowTaskQueue: 'low-fanout' });
  });

  it.each([
    ['operation', { ...base, operation: 'upsert' }],
    ['activityId', { ...base, activityId: 7 }],
    ['actorId', { ...base, actorId: undefined }],
    ['activityTime', { ...base, activityTime: 'now' }],
    ['chunkSize', { ...base, chunkSize: 0 }],
    ['chunkSize', { ...base, chunkSize: 1001 }],
    ['pageSize', { ...base, pageSize: 2.5 }],
    ['maxInFlight', { ...base, maxInFlight: -1 }],
    ['highTaskQueue', { ...base, highTaskQueue: '' }],
    ['publishAt', { ...base, operation: 'remove', publishAt: 5 }],
  ])('rejects a bad %s', (field, input) => {
    expect(fieldOf(() => validateFanoutInput(input))).toBe(`input.${field}`);
  });

  // A valid continuation, as the workflow itself writes one, to break one field at a time.
  const progress = {
    operation: 'add', activityId: 'a1', actorId: 'u1', feedTypes: ['timeline'], followersSeen: 5000, pagesRead: 1,
    high: { followers: 1250, chunksDone: 13, chunksFailed: 0, chunksInFlight: 0, entriesChanged: 1250 },
    low: { followers: 3750, chunksDone: 38, chunksFailed: 0, chunksInFlight: 0, entriesChanged: 3750 },
    continuedAsNew: 1, done: false, failures: [], stalled: null, highServedMs: 840,
  };
  const continued = { cursor: 'f005000', progress };
  const withProgress = (patch: Record<string, unknown>) => ({ ...base, continued: { ...continued, progress: { ...progress, ...patch } } });

  // Input from another language or the CLI: every case fails at once, naming the field (the
  // first six are the ones found getting through before: they were accepted, or crashed every
  // workflow task of the run).
  it.each([
    ['an unknown field (a typo)', { ...base, chunksize: 10 }, 'input.chunksize'],
    ['a __proto__ key', JSON.parse('{"operation":"add","activityId":"a1","actorId":"u1","activityTime":1,"__proto__":{"x":1}}'), 'input.__proto__'],
    ['a constructor key', { ...base, constructor: { name: 'x' } }, 'input.constructor'],
    ['continued.progress not an object', { ...base, continued: { cursor: 'f1', progress: 5 } }, 'input.continued.progress'],
    ['activityTime 1e999', JSON.parse('{"operation":"add","activityId":"a1","actorId":"u1","activityTime":1e999}'), 'input.activityTime'],
    ['activityTime NaN', { ...base, activityTime: Number.NaN }, 'input.activityTime'],
    ['activityTime beyond a Date', { ...base, activityTime: 9e15 }, 'input.activityTime'],
    ['activityTime not an integer', { ...base, activityTime: 1.5 }, 'input.activityTime'],
    ['publishAt Infinity', { ...base, publishAt: Number.POSITIVE_INFINITY }, 'input.publishAt'],
    ['stalledAfterMs too short', { ...base, stalledAfterMs: 10 }, 'input.stalledAfterMs'],
    ['removeBatchSize over the SQLite limit', { ...base, removeBatchSize: 40_000 }, 'input.removeBatchSize'],
    ['continued not an object', { ...base, continued: 'f1' }, 'input.continued'],
    ['continued with an unknown key', { ...base, continued: { ...continued, page: 3 } }, 'input.continued.page'],
    ['continued.cursor a number', { ...base, continued: { ...continued, cursor: 42 } }, 'input.continued.cursor'],
    ['a progress counter negative', withProgress({ followersSeen: -1 }), 'input.continued.progress.followersSeen'],
    ['a progress counter a string', withProgress({ pagesRead: '1' }), 'input.continued.progress.pagesRead'],
    ['chunks in flight carried over', withProgress({ high: { ...progress.high, chunksInFlight: 3 } }), 'input.continued.progress.high.chunksInFlight'],
    ['a priority not an object', withProgress({ low: [] }), 'input.continued.progress.low'],
    ['progress of another activity', withProgress({ activityId: 'a2' }), 'input.continued.progress.activityId'],
    ['progress already done', withProgress({ done: true }), 'input.continued.progress.done'],
    ['failures not a list', withProgress({ failures: {} }), 'input.continued.progress.failures'],
    ['a failure of the wrong shape', withProgress({ failures: [{ priority: 'urgent', size: 1, message: 'x' }] }), 'input.continued.progress.failures[0].priority'],
    ['highServedMs negative', withProgress({ highServedMs: -5 }), 'input.continued.progress.highServedMs'],
    ['a prototype key inside progress', withProgress(JSON.parse('{"__proto__":{"done":true}}')), 'input.continued.progress.__proto__'],
  ])('rejects %s, naming %s', (_name, input, field) => {
    expect(fieldOf(() => validateFanoutInput(input))).toBe(field);
  });

  it('accepts the continuation the workflow writes', () => {
    expect(validateFanoutInput({ ...base, feedTypes: ['timeline'], continued }).continued).toEqual(continued);
  });

  it('does not need activityTime to remove', () => {
    expect(() => validateFanoutInput({ operation: 'remove', activityId: 'a1', actorId: 'u1' })).not.toThrow();
  });
});

describe('deriveActivityId', () => {
  const a = { actor: 'u1', verb: 'pin', object: 'p1', time: now };
  it('is stable for the same fields and differs when any field differs', () => {
    expect(deriveActivityId(a)).toBe(deriveActivityId({ ...a }));
    expect(deriveActivityId(a)).not.toBe(deriveActivityId({ ...a, target: 'b1' }));
    expect(deriveActivityId(a)).not.toBe(deriveActivityId({ ...a, time: new Date(now.getTime() + 1) }));
    expect(deriveActivityId(a)).toMatch(/^[0-9a-f]{32}$/);
  });
});

describe('parseQueuePlan', () => {
  it('parses NAME and NAME=CONCURRENCY', () => {
    expect(parseQueuePlan('high-fanout')).toEqual({ taskQueue: 'high-fanout' });
    expect(parseQueuePlan('high-fanout=50')).toEqual({ taskQueue: 'high-fanout', concurrency: 50 });
  });
  it('parses NAME=CONCURRENCY@PER_SECOND: a queue-wide activity rate limit', () => {
    expect(parseQueuePlan('import-fakebook=10@2.5')).toEqual({ taskQueue: 'import-fakebook', concurrency: 10, activitiesPerSecond: 2.5 });
  });
  it('rejects a bad concurrency or rate', () => {
    expect(fieldOf(() => parseQueuePlan('high-fanout=0'))).toBe('--queue');
    expect(fieldOf(() => parseQueuePlan('=3'))).toBe('--queue');
    expect(fieldOf(() => parseQueuePlan('import=3@0'))).toBe('--queue');
    expect(fieldOf(() => parseQueuePlan('import=3@fast'))).toBe('--queue');
  });
});
