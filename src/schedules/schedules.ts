/**
 * Schedules in code: the periodic jobs are declared here as Temporal Schedules and reconciled when
 * a worker starts, so what runs is what the code says — no separate beat process, nothing edited
 * by hand that the next deploy silently disagrees with.
 *
 * ```ts
 * const result = await reconcileSchedules(client, defaultSchedules(), { logger: console.log });
 * // { created: [...], updated: [...], unchanged: [...], deleted: [...] }
 * ```
 *
 * Each schedule this module creates carries, in its memo, the {@link MANAGED_BY} marker, a hash of
 * its declaration and the declaration's description. Reconcile compares hashes instead of specs
 * because the server hands specs back normalised (a cron becomes calendars, `'5m'` becomes
 * milliseconds, defaults appear), so comparing them field by field would either miss changes or
 * see changes that are not there.
 *
 *
 * Long because the declarations, their validation and the reconcile against the server (create,
 * replace when changed, delete when no longer declared, only what this module manages) belong together.
 * @module
 */
import { createHash } from 'node:crypto';
import {
  type Client,
  ScheduleAlreadyRunning,
  type ScheduleDescription,
  type ScheduleHandle,
  ScheduleNotFoundError,
  type ScheduleOptions,
  ScheduleOverlapPolicy,
} from '@temporalio/client';
import type { Duration } from '@temporalio/common';
// The SDK's own ms-string parser, so a duration validates here exactly when the SDK accepts it.
import { msToNumber } from '@temporalio/common/lib/time';
import { ConfigurationError, ValidationError } from '../contract/errors';
import { checkInt, checkObject, checkTaskQueue, checkText } from '../contract/validation';

/**
 * Value of the `managedBy` memo field on every schedule this module creates. Reconcile only ever
 * updates or deletes schedules that carry it, so schedules made by hand (or by another system)
 * under the same prefix are left alone.
 */
export const MANAGED_BY = 'feed-fanout';

/** Default {@link ReconcileSchedulesOptions.prefix}: the id prefix of this project's schedules. */
export const DEFAULT_SCHEDULE_PREFIX = 'feed-fanout/';

/** Memo fields written on every managed schedule. */
const MEMO = {
  /** Always {@link MANAGED_BY}. */
  managedBy: 'managedBy',
  /** {@link scheduleDeclarationHash} of the declaration the schedule was created from. */
  hash: 'declarationHash',
  /** The declaration's description, for people reading the schedule in the Web UI. */
  description: 'description',
} as const;

/**
 * Bump when the mapping from a declaration to schedule options changes (a new policy, a different
 * workflow id), so every existing schedule hashes differently and is recreated with the new mapping
 * on the next start.
 */
const MAPPING_VERSION = 1;

/** How often one declaration is retried when another worker changes the same schedule under us. */
const MAX_ATTEMPTS = 3;

/** A periodic job: a workflow started by a Temporal Schedule. Set exactly one of `every` and `cron`. */
export interface ScheduleDeclaration {
  /** Schedule id. Must start with the reconcile prefix (e.g. `feed-fanout/trickle-poll`). */
  id: string;
  /** What the job is for; stored in the schedule's memo for people reading the Web UI. */
  description: string;
  /** Workflow type name to start, e.g. `trickleSyncWorkflow`. Need not be registered yet. */
  workflowType: string;
  /** Workflow arguments, JSON-serialisable. */
  args: unknown[];
  /** Task queue the workflow runs on. */
  taskQueue: string;
  /**
   * Start one every this long, aligned to the epoch (`'1h'` fires on the hour): milliseconds or an
   * ms-format string like `'5m'`. At least one second, in whole seconds.
   */
  every?: Duration;
  /** Start one at these times: a cron expression in UTC, e.g. `'0 3 * * *'` (5–7 fields, or `@daily` etc.). */
  cron?: string;
  /** Delay each start by a random amount up to this, to spread load. @default 0 */
  jitter?: Duration;
  /** What to do when the previous run is still going at the next start. @default ScheduleOverlapPolicy.SKIP */
  overlap?: ScheduleOverlapPolicy;
  /** Create the schedule paused (and pause it again on the next change). @default false */
  paused?: boolean;
}

/** Options of {@link reconcileSchedules}. */
export interface ReconcileSchedulesOptions {
  /**
   * Every declared id must start with this, and only schedules whose id starts with it (and that
   * carry the {@link MANAGED_BY} marker) are deleted when no longer declared.
   * @default DEFAULT_SCHEDULE_PREFIX ('feed-fanout/')
   */
  prefix?: string;
  /** Receives one line per schedule created, updated or deleted. @default no logging */
  logger?: (msg: string) => void;
  /** Work out and report what would change, change nothing. @default false */
  dryRun?: boolean;
}

/** What {@link reconcileSchedules} did (or, with `dryRun`, would do), as schedule ids. */
export interface ReconcileSchedulesResult {
  /** Declared and missing, so created. */
  created: string[];
  /** Declared and present with a different declaration hash, so replaced (see {@link reconcileSchedules}). */
  updated: string[];
  /** Declared and present with the same hash (including ones another worker created or updated meanwhile). */
  unchanged: string[];
  /** Marked, under the prefix and no longer declared, so deleted. */
  deleted: string[];
}

/**
 * Makes the schedules on the server match `declarations`.
 *
 * 1. Validates every declaration first; any problem throws a {@link ValidationError} naming the
 *    field (`schedules[1].cron`) and nothing is changed.
 * 2. Describes every declared id. An existing schedule with a declared id but without the
 *    {@link MANAGED_BY} marker throws a {@link ConfigurationError}, again before anything changes.
 * 3. Creates missing schedules and replaces those whose stored hash differs.
 * 4. Deletes marked schedules under the prefix that are no longer declared.
 *
 * A second run with the same declarations reports everything unchanged.
 *
 * Changed schedules are deleted and created again rather than updated in place: `handle.update()`
 * of SDK 1.24 cannot change the memo (its options omit `memo`), and the server (1.29) ignores the
 * `memo` field of a raw `UpdateSchedule` request, so an in-place update would leave the old hash
 * behind and the schedule would look changed forever. The cost is that the recreated schedule
 * starts with an empty action history and counters; runs it already started are not affected.
 *
 * Safe to run from several workers at once: "already exists" on create and "not found" on delete
 * are expected outcomes, after which the schedule is described again and compared by hash.
 *
 * Deletion finds stale schedules with `list()`, which reads the eventually consistent visibility
 * store: a schedule created moments ago may not be listed yet and then survives until the next
 * reconcile; one deleted moments ago may still be listed and is skipped when the server says it is
 * gone. Creation and updates use describe by id and do not lag.
 *
 * Changes made on the server by hand (pausing in the UI, editing the spec) are not noticed while
 * the declaration is unchanged; delete such a schedule to have the next start recreate it.
 *
 * @param declarations The schedules that should exist, e.g. {@link defaultSchedules}.
 * @throws ValidationError for a bad declaration or option, naming it.
 * @throws ConfigurationError when a declared id is taken by a schedule this module did not create.
 */
export async function reconcileSchedules(
  client: Client,
  declarations: ScheduleDeclaration[],
  options: ReconcileSchedulesOptions = {},
): Promise<ReconcileSchedulesResult> {
  const prefix = options.prefix ?? DEFAULT_SCHEDULE_PREFIX;
  if (typeof prefix !== 'string') throw new ValidationError('options.prefix', 'must be a string');
  const log = options.logger ?? (() => undefined);
  const dryRun = options.dryRun ?? false;
  const would = dryRun ? '[dry run] would ' : '';

  const plans = validateDeclarations(declarations, prefix).map((decl) => ({
    decl,
    hash: scheduleDeclarationHash(decl),
    handle: client.schedule.getHandle(decl.id),
  }));

  const existing = await Promise.all(plans.map((p) => describeOrUndefined(p.handle)));
  existing.forEach((found, i) => {
    if (found && !isManaged(found.memo)) {
      throw new ConfigurationError(
        `schedule ${plans[i].decl.id} already exists but was not created by ${MANAGED_BY} (no managedBy memo); ` +
          'delete it or rename the declaration',
      );
    }
  });

  const result: ReconcileSchedulesResult = { created: [], updated: [], unchanged: [], deleted: [] };
  for (const [i, { decl, hash, handle }] of plans.entries()) {
    let current = existing[i];
    let outcome: 'created' | 'updated' | 'unchanged' | undefined;
    for (let attempt = 1; !outcome; attempt++) {
      if (attempt > MAX_ATTEMPTS) {
        throw new ConfigurationError(
          `schedule ${decl.id} kept changing while being reconciled (${MAX_ATTEMPTS} attempts); ` +
            'are workers with different schedule declarations starting at the same time?',
        );
      }
      if (current && current.memo?.[MEMO.hash] === hash) {
        outcome = 'unchanged';
      } else if (dryRun) {
        outcome = current ? 'updated' : 'created';
      } else {
        if (current) await deleteIgnoringNotFound(handle);
        try {
          await client.schedule.create(toScheduleOptions(decl, hash));
          outcome = current ? 'updated' : 'created';
        } catch (err) {
          // Another worker created it between our describe (or delete) and our create: look again.
          if (!(err instanceof ScheduleAlreadyRunning)) throw err;
          current = await describeOrUndefined(handle);
          if (current && !isManaged(current.memo)) {
            throw new ConfigurationError(`schedule ${decl.id} was just created by something other than ${MANAGED_BY}`);
          }
        }
      }
    }
    result[outcome].push(decl.id);
    if (outcome !== 'unchanged') log(`schedule ${decl.id}: ${would}${outcome === 'created' ? 'create' : 'replace (declaration changed)'}`);
  }

  const declared = new Set(plans.map((p) => p.decl.id));
  for await (const summary of client.schedule.list()) {
    const id = summary.scheduleId;
    if (!id.startsWith(prefix) || declared.has(id) || !isManaged(summary.memo)) continue;
    // Describe before deleting: the listing may be stale, and the marker is what makes it ours.
    const handle = client.schedule.getHandle(id);
    const current = await describeOrUndefined(handle);
    if (!current || !isManaged(current.memo)) continue;
    if (!dryRun && !(await deleteIgnoringNotFound(handle))) continue;
    result.deleted.push(id);
    log(`schedule ${id}: ${would}delete (no longer declared)`);
  }
  log(
    `schedules ${dryRun ? '(dry run) ' : ''}reconciled: ${result.created.length} created, ${result.updated.length} updated, ` +
      `${result.unchanged.length} unchanged, ${result.deleted.length} deleted`,
  );
  return result;
}

/** Options of {@link defaultSchedules}. */
export interface DefaultSchedulesOptions {
  /** Task queue of the scheduled workflows. @default 'fanout' */
  workflowTaskQueue?: string | undefined;
  /** Interval of the trickle poll: milliseconds or an ms-format string. @default '5m' */
  trickleEvery?: Duration;
  /** Accounts polled per trickle run. @default 20 */
  trickleBatchSize?: number;
  /** Cron expression (UTC) of the nightly re-sync. @default '0 3 * * *' */
  nightlyCron?: string;
  /** Id prefix; pass the same one to {@link reconcileSchedules}. @default DEFAULT_SCHEDULE_PREFIX */
  prefix?: string;
}

/**
 * The project's periodic jobs, both running `trickleSyncWorkflow`:
 *
 * - `<prefix>trickle-poll` (every `trickleEvery`): polls the networks that cannot push updates, a
 *   small batch of the stalest accounts (not synced for 15 minutes) each time;
 * - `<prefix>nightly-resync` (cron `nightlyCron`): re-syncs every connected account once a day
 *   (any not synced for 20 hours), 200 at a time.
 *
 * Durations and the cron are checked by {@link reconcileSchedules}; the batch size here.
 */
export function defaultSchedules(options: DefaultSchedulesOptions = {}): ScheduleDeclaration[] {
  const prefix = options.prefix ?? DEFAULT_SCHEDULE_PREFIX;
  const taskQueue = options.workflowTaskQueue ?? 'fanout';
  const batchSize = checkInt('options.trickleBatchSize', options.trickleBatchSize, 1, 10_000, 20);
  return [
    {
      id: `${prefix}trickle-poll`,
      description: 'Polls networks that cannot push updates, a small batch of the stalest accounts each time.',
      workflowType: 'trickleSyncWorkflow',
      args: [{ batchSize, staleAfterMs: 15 * 60_000, mode: 'trickle' }],
      taskQueue,
      every: options.trickleEvery ?? '5m',
    },
    {
      id: `${prefix}nightly-resync`,
      description: 'Re-syncs every connected account once a day.',
      workflowType: 'trickleSyncWorkflow',
      args: [{ batchSize: 200, staleAfterMs: 20 * 3600_000, mode: 'resync' }],
      taskQueue,
      cron: options.nightlyCron ?? '0 3 * * *',
    },
  ];
}

/**
 * The content hash stored in a managed schedule's memo: sha256 (hex) of the canonical JSON (keys
 * sorted, defaults filled in, durations in milliseconds) of the declaration, so `'5m'` and
 * `300000` hash alike and key order does not matter. Expects a valid declaration.
 */
export function scheduleDeclarationHash(decl: ScheduleDeclaration): string {
  const normalised = {
    v: MAPPING_VERSION,
    id: decl.id,
    description: decl.description,
    workflowType: decl.workflowType,
    taskQueue: decl.taskQueue,
    args: decl.args,
    every: decl.every === undefined ? undefined : msToNumber(decl.every),
    cron: decl.cron?.trim(),
    jitter: decl.jitter === undefined ? 0 : msToNumber(decl.jitter),
    overlap: decl.overlap ?? ScheduleOverlapPolicy.SKIP,
    paused: decl.paused ?? false,
  };
  return createHash('sha256').update(canonicalJson(normalised)).digest('hex');
}

function toScheduleOptions(decl: ScheduleDeclaration, hash: string): ScheduleOptions {
  return {
    scheduleId: decl.id,
    spec: {
      ...(decl.every !== undefined ? { intervals: [{ every: msToNumber(decl.every) }] } : { cronExpressions: [decl.cron!.trim()] }),
      ...(decl.jitter !== undefined ? { jitter: msToNumber(decl.jitter) } : {}),
    },
    action: { type: 'startWorkflow', workflowType: decl.workflowType, taskQueue: decl.taskQueue, args: decl.args },
    policies: { overlap: decl.overlap ?? ScheduleOverlapPolicy.SKIP },
    state: { paused: decl.paused ?? false },
    memo: { [MEMO.managedBy]: MANAGED_BY, [MEMO.hash]: hash, [MEMO.description]: decl.description },
  };
}

function isManaged(memo: Record<string, unknown> | undefined): boolean {
  return memo?.[MEMO.managedBy] === MANAGED_BY;
}

async function describeOrUndefined(handle: ScheduleHandle): Promise<ScheduleDescription | undefined> {
  try {
    return await handle.describe();
  } catch (err) {
    if (err instanceof ScheduleNotFoundError) return undefined;
    throw err;
  }
}

/** Deletes; `false` when it was already gone (another worker got there first). */
async function deleteIgnoringNotFound(handle: ScheduleHandle): Promise<boolean> {
  try {
    await handle.delete();
    return true;
  } catch (err) {
    if (err instanceof ScheduleNotFoundError) return false;
    throw err;
  }
}

/** JSON with object keys sorted at every level and `undefined` fields left out. */
function canonicalJson(value: unknown): string {
  const v = value !== null && typeof value === 'object' && typeof (value as { toJSON?: unknown }).toJSON === 'function'
    ? (value as { toJSON(): unknown }).toJSON()
    : value;
  if (Array.isArray(v)) return `[${v.map((x) => (x === undefined ? 'null' : canonicalJson(x))).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const entries = Object.keys(v)
      .sort()
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`);
    return `{${entries.join(',')}}`;
  }
  const json = JSON.stringify(v);
  // JSON.stringify gives undefined for functions and symbols; BigInt throws on its own.
  if (json === undefined) throw new TypeError(`cannot be represented in JSON: ${typeof v}`);
  return json;
}

// ---------------------------------------------------------------------------------------------
// Validation

const OVERLAP_POLICIES = new Set<unknown>(Object.values(ScheduleOverlapPolicy).filter((p) => p !== undefined));

/** Checks every declaration and the ids across them; returns them unchanged. */
function validateDeclarations(declarations: unknown, prefix: string): ScheduleDeclaration[] {
  if (!Array.isArray(declarations)) throw new ValidationError('schedules', 'must be an array of schedule declarations');
  const firstIndexOfId = new Map<string, number>();
  declarations.forEach((raw, i) => {
    const field = `schedules[${i}]`;
    const decl = checkObject(field, raw);
    const id = checkName(`${field}.id`, decl.id);
    if (!id.startsWith(prefix) || id.length === prefix.length) {
      throw new ValidationError(`${field}.id`, `must start with the prefix "${prefix}" and name something after it, got "${id}"`);
    }
    const earlier = firstIndexOfId.get(id);
    if (earlier !== undefined) throw new ValidationError(`${field}.id`, `duplicates schedules[${earlier}].id ("${id}")`);
    firstIndexOfId.set(id, i);
    checkName(`${field}.description`, decl.description, 1000);
    checkName(`${field}.workflowType`, decl.workflowType);
    checkTaskQueue(`${field}.taskQueue`, decl.taskQueue);
    if (!Array.isArray(decl.args)) throw new ValidationError(`${field}.args`, 'must be an array of workflow arguments');
    try {
      canonicalJson(decl.args);
    } catch (err) {
      throw new ValidationError(`${field}.args`, `must be JSON-serialisable (${(err as Error).message})`);
    }
    if (decl.every !== undefined && decl.cron !== undefined) {
      throw new ValidationError(`${field}.cron`, 'must not be set together with every (set exactly one of every and cron)');
    }
    if (decl.every === undefined && decl.cron === undefined) {
      throw new ValidationError(`${field}.every`, 'or cron is required (set exactly one of them)');
    }
    if (decl.every !== undefined) {
      const ms = checkDuration(`${field}.every`, decl.every);
      // The server rounds intervals to whole seconds; refusing other values beats silently changing them.
      if (ms < 1000 || ms % 1000 !== 0) throw new ValidationError(`${field}.every`, `must be a whole number of seconds, at least 1s, got ${JSON.stringify(decl.every)}`);
    }
    if (decl.cron !== undefined) checkCron(`${field}.cron`, decl.cron);
    if (decl.jitter !== undefined) checkDuration(`${field}.jitter`, decl.jitter);
    if (decl.overlap !== undefined && !OVERLAP_POLICIES.has(decl.overlap)) {
      throw new ValidationError(`${field}.overlap`, `must be one of ${[...OVERLAP_POLICIES].join(', ')}, got ${JSON.stringify(decl.overlap)}`);
    }
    if (decl.paused !== undefined && typeof decl.paused !== 'boolean') throw new ValidationError(`${field}.paused`, 'must be a boolean');
  });
  return declarations as ScheduleDeclaration[];
}

/** A non-empty string of at most `maxLength` characters (ids, names, descriptions). */
function checkName(field: string, value: unknown, maxLength = 255): string {
  return checkText(field, value, maxLength, { nonEmpty: true });
}

/** A non-negative duration (ms number or ms-format string), in milliseconds. */
function checkDuration(field: string, value: unknown): number {
  let ms: number;
  try {
    ms = typeof value === 'number' || typeof value === 'string' ? msToNumber(value as Duration) : NaN;
  } catch {
    ms = NaN;
  }
  if (!Number.isFinite(ms) || ms < 0) {
    throw new ValidationError(field, `must be a duration (milliseconds or a string like '5m'), got ${JSON.stringify(value)}`);
  }
  return ms;
}

const CRON_SHORTHANDS = new Set(['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@midnight', '@hourly']);
const CRON_EVERY = /^@every \d+[smhd](\/\d+[smhd])?$/;
/** Field ranges for the 7-field form; the 5- and 6-field forms use a suffix of it without `second`. */
const CRON_FIELDS: { name: string; min: number; max: number; names?: boolean }[] = [
  { name: 'second', min: 0, max: 59 },
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12, names: true },
  { name: 'day of week', min: 0, max: 7, names: true },
  { name: 'year', min: 1970, max: 9999 },
];
const CRON_PART = /^(\*|([0-9]+|[A-Za-z]+)(-([0-9]+|[A-Za-z]+))?)(\/[0-9]+)?$/;

/**
 * Checks the shape and number ranges of a cron expression, so a typo fails validation (before any
 * schedule changes) instead of failing at create halfway through reconcile. The server has the
 * last word on anything subtler (e.g. which names it accepts).
 */
function checkCron(field: string, value: unknown): void {
  if (typeof value !== 'string') throw new ValidationError(field, 'must be a cron expression string');
  const expr = value.replace(/#.*$/, '').trim().replace(/^(CRON_)?TZ=\S+\s+/, '');
  if (CRON_SHORTHANDS.has(expr) || CRON_EVERY.test(expr)) return;
  const parts = expr.split(/\s+/);
  if (parts.length < 5 || parts.length > 7) {
    throw new ValidationError(field, `must have 5 to 7 fields (or be @daily etc.), got ${JSON.stringify(value)}`);
  }
  // 5 fields: minute..day of week; 6: plus year; 7: second first.
  const fields = parts.length === 7 ? CRON_FIELDS : CRON_FIELDS.slice(1, 1 + parts.length);
  parts.forEach((part, i) => {
    const spec = fields[i];
    for (const item of part.split(',')) {
      const m = CRON_PART.exec(item);
      if (!m) throw new ValidationError(field, `has a malformed ${spec.name} field "${part}" in ${JSON.stringify(value)}`);
      for (const bound of [m[2], m[4]]) {
        if (bound === undefined) continue;
        if (/^[0-9]+$/.test(bound)) {
          const n = Number(bound);
          if (n < spec.min || n > spec.max) {
            throw new ValidationError(field, `has ${spec.name} ${n} outside ${spec.min}-${spec.max} in ${JSON.stringify(value)}`);
          }
        } else if (!spec.names) {
          throw new ValidationError(field, `has a malformed ${spec.name} field "${part}" in ${JSON.stringify(value)}`);
        }
      }
    }
  });
}
