/**
 * Validation shared by the client (before anything is written), the workflows (their input) and
 * the activities (their input). Pure: no Node built-ins, so workflows can import it.
 *
 * Every failure is a {@link ValidationError} whose message starts with the offending field.
 * @module
 */
import { ValidationError } from './errors';
import { Limits } from './constants';

const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.:@-]*$/;
const VERB_PATTERN = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;
const FEED_TYPE_PATTERN = /^[a-z][a-z0-9_]{0,31}$/;

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return typeof value === 'string' ? `"${value.length > 40 ? value.slice(0, 40) + '…' : value}"` : `${typeof value}`;
}

/**
 * Checks an id (user, object, activity, follower): a non-empty string of letters, digits and
 * `_ . : @ -`, starting with a letter or digit, at most {@link Limits.MAX_ID_LENGTH} characters.
 * Ids become parts of MongoDB `_id`s and Temporal workflow ids, hence the narrow alphabet.
 */
export function checkId(field: string, value: unknown): string {
  if (typeof value !== 'string') throw new ValidationError(field, `must be a string id, got ${describe(value)}`);
  if (value.length === 0) throw new ValidationError(field, 'must not be empty');
  if (value.length > Limits.MAX_ID_LENGTH) {
    throw new ValidationError(field, `must be at most ${Limits.MAX_ID_LENGTH} characters, got ${value.length}`);
  }
  if (!ID_PATTERN.test(value)) {
    throw new ValidationError(field, `must contain only letters, digits and _ . : @ - (and start with a letter or digit), got ${describe(value)}`);
  }
  return value;
}

/** Checks a feed type name: lower-case letters, digits and `_`, starting with a letter. */
export function checkFeedType(field: string, value: unknown): string {
  if (typeof value !== 'string' || !FEED_TYPE_PATTERN.test(value)) {
    throw new ValidationError(field, `must be a feed type name (lower-case letters, digits, _), got ${describe(value)}`);
  }
  return value;
}

/** Checks a non-empty list of distinct feed type names (at most 16). */
export function checkFeedTypes(field: string, value: unknown): string[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > 16) {
    throw new ValidationError(field, `must be a list of 1 to 16 feed type names, got ${describe(value)}`);
  }
  value.forEach((v, i) => checkFeedType(`${field}[${i}]`, v));
  if (new Set(value).size !== value.length) throw new ValidationError(field, 'must not name a feed type twice');
  return [...(value as string[])];
}

/** Checks a third-party network's name: 1-32 of a-z, 0-9, `_` and `-`, starting with a letter (it becomes part of ids). */
export function checkNetworkName(field: string, value: unknown): string {
  if (typeof value !== 'string' || !/^[a-z][a-z0-9_-]{0,31}$/.test(value)) {
    throw new ValidationError(field, `must be a network name (1-32 of a-z, 0-9, _ and -, starting with a letter), got ${describe(value)}`);
  }
  return value;
}

/** Checks a Temporal task queue name. */
export function checkTaskQueue(field: string, value: unknown): string {
  if (typeof value !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$/.test(value)) {
    throw new ValidationError(field, `must be a task queue name (letters, digits, _ . : -), got ${describe(value)}`);
  }
  return value;
}

/** Checks an integer option within `[min, max]`; `undefined` gives `fallback`. */
export function checkInt(field: string, value: unknown, min: number, max: number, fallback?: number): number {
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new ValidationError(field, `must be an integer, got ${describe(value)}`);
  }
  if (value < min || value > max) throw new ValidationError(field, `must be between ${min} and ${max}, got ${value}`);
  return value;
}

/** Checks a non-empty list of ids, returning it. */
export function checkIdList(field: string, value: unknown, maxLength: number): string[] {
  if (!Array.isArray(value)) throw new ValidationError(field, `must be an array of ids, got ${describe(value)}`);
  if (value.length > maxLength) throw new ValidationError(field, `must hold at most ${maxLength} ids, got ${value.length}`);
  value.forEach((id, i) => checkId(`${field}[${i}]`, id));
  return value as string[];
}

/** Checks an object is a plain object (not null, not an array). */
export function checkObject(field: string, value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ValidationError(field, `must be an object, got ${describe(value)}`);
  }
  return value as Record<string, unknown>;
}

/** Keys that must never be read from input: they reach the prototype chain once copied or spread. */
const PROTOTYPE_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * Checks `value` is a plain object holding only `allowed` keys: a misspelled option (`chunksize`)
 * or a prototype key (`__proto__`, `constructor`) fails, naming `<field>.<key>`, instead of being
 * silently ignored or written. Returns the object.
 */
export function checkKeys(field: string, value: unknown, allowed: readonly string[]): Record<string, unknown> {
  const obj = checkObject(field, value);
  for (const key of Object.keys(obj)) {
    if (PROTOTYPE_KEYS.has(key)) throw new ValidationError(`${field}.${key}`, 'is not allowed (a prototype key)');
    if (!allowed.includes(key)) throw new ValidationError(`${field}.${key}`, `is not a known field (expected one of ${allowed.join(', ')})`);
  }
  return obj;
}

/** Largest magnitude of a valid JavaScript `Date`, in epoch milliseconds. */
const MAX_DATE_MS = 8.64e15;

/** Checks epoch milliseconds: an integer a `Date` can hold (so not `NaN`, `Infinity` or `1e999`). */
export function checkEpochMs(field: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || Math.abs(value) > MAX_DATE_MS) {
    throw new ValidationError(field, `must be epoch milliseconds (an integer within a Date's range), got ${describe(value)}`);
  }
  return value;
}

/** Checks a count: an integer from 0 to `max` (default `Number.MAX_SAFE_INTEGER`). */
export function checkCount(field: string, value: unknown, max = Number.MAX_SAFE_INTEGER): number {
  return checkInt(field, value, 0, max);
}

/**
 * Checks a record of counts keyed by free text (e.g. reason → items): at most `maxKeys` keys of
 * at most `maxKeyLength` characters, no prototype key (`<field>.__proto__` fails), every value a
 * count. Returns a copy.
 */
export function checkCountRecord(field: string, value: unknown, maxKeys: number, maxKeyLength: number): Record<string, number> {
  const obj = checkObject(field, value);
  const keys = Object.keys(obj);
  if (keys.length > maxKeys) throw new ValidationError(field, `must hold at most ${maxKeys} entries, got ${keys.length}`);
  const out: Record<string, number> = {};
  for (const key of keys) {
    if (PROTOTYPE_KEYS.has(key)) throw new ValidationError(`${field}.${key}`, 'is not allowed (a prototype key)');
    if (key.length > maxKeyLength) throw new ValidationError(field, `must have keys of at most ${maxKeyLength} characters, got one of ${key.length}`);
    out[key] = checkCount(`${field}.${key}`, obj[key]);
  }
  return out;
}

/** Checks a boolean. */
export function checkBoolean(field: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw new ValidationError(field, `must be true or false, got ${describe(value)}`);
  return value;
}

/** Checks a string of at most `maxLength` characters (any content: messages, not ids). */
export function checkText(field: string, value: unknown, maxLength: number, options: { nonEmpty?: boolean } = {}): string {
  if (typeof value !== 'string') throw new ValidationError(field, `must be a string, got ${describe(value)}`);
  if (options.nonEmpty && value.trim().length === 0) throw new ValidationError(field, 'must be a non-empty string');
  if (value.length > maxLength) throw new ValidationError(field, `must be at most ${maxLength} characters, got ${value.length}`);
  return value;
}

/** An activity as an app submits it. */
export interface ActivityInput {
  /** Stable id. Optional: when absent it is derived from the other fields (same fields, same id). */
  id?: string;
  /** Who did it (a user id). */
  actor: string;
  /** What they did, e.g. `pin`, `follow`, `like`. */
  verb: string;
  /** What they did it to (an id). */
  object: string;
  /** Optional target, e.g. the board a pin was added to. */
  target?: string;
  /** When it happened. Date, ISO-8601 string or epoch milliseconds. Default: now. */
  time?: Date | string | number;
  /** Small extra data (JSON), at most {@link Limits.MAX_EXTRA_BYTES} bytes serialized. */
  extra?: Record<string, unknown>;
}

/** An activity after validation: every field checked and `time` a `Date`. */
export interface NormalizedActivity {
  id?: string;
  actor: string;
  verb: string;
  object: string;
  target?: string;
  time: Date;
  extra?: Record<string, unknown>;
}

function utf8Length(s: string): number {
  let bytes = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c < 0xdc00) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}

/**
 * Validates an activity as submitted by an app. `now` fills a missing `time`.
 * @throws ValidationError naming the first offending field (`activity.<field>`).
 */
export function validateActivity(input: unknown, now: Date): NormalizedActivity {
  const a = checkKeys('activity', input, ['id', 'actor', 'verb', 'object', 'target', 'time', 'extra']);
  const out: NormalizedActivity = {
    actor: checkId('activity.actor', a.actor),
    verb: (() => {
      if (typeof a.verb !== 'string' || !VERB_PATTERN.test(a.verb)) {
        throw new ValidationError('activity.verb', `must be a word of letters, digits, _ . - (at most 64), got ${describe(a.verb)}`);
      }
      return a.verb;
    })(),
    object: checkId('activity.object', a.object),
    time: now,
  };
  if (a.id !== undefined) out.id = checkId('activity.id', a.id);
  if (a.target !== undefined) out.target = checkId('activity.target', a.target);
  if (a.time !== undefined) {
    const t = a.time;
    const date = t instanceof Date ? t : typeof t === 'string' || typeof t === 'number' ? new Date(t) : undefined;
    if (!date || Number.isNaN(date.getTime())) {
      throw new ValidationError('activity.time', `must be a Date, an ISO-8601 string or epoch milliseconds, got ${describe(t)}`);
    }
    out.time = date;
  }
  if (a.extra !== undefined) {
    const extra = checkObject('activity.extra', a.extra);
    let json: string;
    try {
      json = JSON.stringify(extra);
    } catch (err) {
      throw new ValidationError('activity.extra', `must be JSON-serializable (${(err as Error).message})`);
    }
    const size = utf8Length(json);
    if (size > Limits.MAX_EXTRA_BYTES) {
      throw new ValidationError('activity.extra', `must be at most ${Limits.MAX_EXTRA_BYTES} bytes as JSON, got ${size}; store large data elsewhere and reference it by id`);
    }
    out.extra = JSON.parse(json) as Record<string, unknown>;
  }
  return out;
}
