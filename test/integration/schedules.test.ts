/**
 * Schedules in code against the real Temporal dev server: reconcile creates, leaves alone,
 * replaces and deletes exactly what the declarations say, never touches unmarked schedules, and
 * changes nothing when a declaration is invalid. Every test uses its own id prefix; every schedule
 * is created paused so nothing fires.
 */
import { ScheduleNotFoundError, ScheduleOverlapPolicy } from '@temporalio/client';
import { MongoClient } from 'mongodb';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ConfigurationError, ValidationError } from '../../src/contract/errors';
import {
  defaultSchedules,
  type DefaultSchedulesOptions,
  MANAGED_BY,
  reconcileSchedules,
  type ScheduleDeclaration,
  scheduleDeclarationHash,
} from '../../src/schedules/schedules';
import { devServer, uniqueName } from '../utils/env';
import { startWorkerCommand } from '../utils/worker-process';

let temporal: Awaited<ReturnType<typeof devServer>>;
/** Every prefix a test used, so afterAll can remove whatever is left under it. */
const prefixes: string[] = [];

beforeAll(async () => {
  temporal = await devServer();
});

afterAll(async () => {
  if (!temporal) return;
  // Describe-by-id misses nothing the tests created, whatever the listing's lag; the listing
  // catches schedules made directly.
  const ids = new Set<string>(prefixes.flatMap((p) => declarations(p).map((d) => d.id)));
  for await (const s of temporal.client.schedule.list()) {
    if (prefixes.some((p) => s.scheduleId.startsWith(p))) ids.add(s.scheduleId);
  }
  for (const id of ids) await temporal.client.schedule.getHandle(id).delete().catch(() => undefined);
  await temporal.close();
});

/** A fresh prefix for one test. */
function freshPrefix(): string {
  const prefix = `${uniqueName('sched')}/`;
  prefixes.push(prefix);
  return prefix;
}

/** The default declarations under `prefix` on a test task queue, paused so they never fire. */
function declarations(prefix: string, options: DefaultSchedulesOptions = {}): ScheduleDeclaration[] {
  return defaultSchedules({ prefix, workflowTaskQueue: 'sched-test', ...options }).map((d) => ({ ...d, paused: true }));
}

function describeSchedule(id: string) {
  return temporal.client.schedule.getHandle(id).describe();
}

async function exists(id: string): Promise<boolean> {
  try {
    await describeSchedule(id);
    return true;
  } catch (err) {
    if (err instanceof ScheduleNotFoundError) return false;
    throw err;
  }
}

/** Waits (bounded) until the eventually consistent schedule listing shows every one of `ids`. */
async function waitUntilListed(ids: string[], timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const listed = new Set<string>();
    for await (const s of temporal.client.schedule.list()) listed.add(s.scheduleId);
    const missing = ids.filter((id) => !listed.has(id));
    if (missing.length === 0) return;
    if (Date.now() > deadline) throw new Error(`schedules not listed after ${timeoutMs} ms: ${missing.join(', ')}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Runs `fn`, expecting a ValidationError; returns it. */
async function validationError(fn: () => Promise<unknown>): Promise<ValidationError> {
  const err = await fn().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ValidationError);
  return err as ValidationError;
}

describe('reconcileSchedules on the dev server', () => {
  it('creates every declared schedule with the declared spec, action, policies, state and memo', async () => {
    const prefix = freshPrefix();
    const decls = declarations(prefix);
    const [trickle, nightly] = decls;

    const result = await reconcileSchedules(temporal.client, decls, { prefix });
    expect(result).toEqual({ created: [trickle.id, nightly.id], updated: [], unchanged: [], deleted: [] });

    const t = await describeSchedule(trickle.id);
    // (The SDK reports a zero offset as undefined, although its type says number.)
    expect(t.spec.intervals?.map((i) => i.every)).toEqual([5 * 60_000]);
    expect(t.spec.calendars ?? []).toEqual([]);
    expect(t.action).toMatchObject({
      type: 'startWorkflow',
      workflowType: 'trickleSyncWorkflow',
      taskQueue: 'sched-test',
      args: [{ batchSize: 20, staleAfterMs: 15 * 60_000, mode: 'trickle' }],
    });
    expect(t.policies.overlap).toBe(ScheduleOverlapPolicy.SKIP);
    expect(t.state.paused).toBe(true);
    expect(t.memo).toEqual({ managedBy: MANAGED_BY, declarationHash: scheduleDeclarationHash(trickle), description: trickle.description });

    const n = await describeSchedule(nightly.id);
    // The server stores a cron as calendars: 03:00:00 UTC, every day.
    expect(n.spec.intervals ?? []).toEqual([]);
    expect(n.spec.calendars).toHaveLength(1);
    expect(n.spec.calendars![0]).toMatchObject({
      second: [{ start: 0, end: 0, step: 1 }],
      minute: [{ start: 0, end: 0, step: 1 }],
      hour: [{ start: 3, end: 3, step: 1 }],
      dayOfMonth: [{ start: 1, end: 31, step: 1 }],
    });
    expect(n.action).toMatchObject({
      workflowType: 'trickleSyncWorkflow',
      taskQueue: 'sched-test',
      args: [{ batchSize: 200, staleAfterMs: 20 * 3600_000, mode: 'resync' }],
    });
    expect(n.memo?.managedBy).toBe(MANAGED_BY);
  });

  it('a second reconcile with the same declarations reports everything unchanged and creates nothing', async () => {
    const prefix = freshPrefix();
    const first = await reconcileSchedules(temporal.client, declarations(prefix), { prefix });
    const createdAt = (await describeSchedule(first.created[0])).info.createdAt;

    // Equivalent spellings hash alike: 300000 ms is '5m'.
    const again = await reconcileSchedules(temporal.client, declarations(prefix, { trickleEvery: 300_000 }), { prefix });
    expect(again).toEqual({ created: [], updated: [], unchanged: first.created, deleted: [] });
    expect((await describeSchedule(first.created[0])).info.createdAt).toEqual(createdAt);
  });

  it('a changed declaration replaces its schedule (and only that one) with the new spec', async () => {
    const prefix = freshPrefix();
    const [trickle, nightly] = declarations(prefix);
    await reconcileSchedules(temporal.client, declarations(prefix), { prefix });

    const logs: string[] = [];
    const changed = await reconcileSchedules(temporal.client, declarations(prefix, { trickleEvery: '10m' }), { prefix, logger: (m) => logs.push(m) });
    expect(changed).toEqual({ created: [], updated: [trickle.id], unchanged: [nightly.id], deleted: [] });
    expect(logs.some((l) => l.includes(trickle.id) && l.includes('replace'))).toBe(true);

    const t = await describeSchedule(trickle.id);
    expect(t.spec.intervals?.map((i) => i.every)).toEqual([10 * 60_000]);
    expect(t.memo?.declarationHash).toBe(scheduleDeclarationHash(declarations(prefix, { trickleEvery: '10m' })[0]));

    // Args, pause state and overlap count as changes too.
    const batch = await reconcileSchedules(
      temporal.client,
      declarations(prefix, { trickleEvery: '10m', trickleBatchSize: 7 }).map((d) => (d.id === nightly.id ? { ...d, overlap: ScheduleOverlapPolicy.BUFFER_ONE } : d)),
      { prefix },
    );
    expect(batch.updated).toEqual([trickle.id, nightly.id]);
    expect((await describeSchedule(trickle.id)).action.args).toEqual([{ batchSize: 7, staleAfterMs: 15 * 60_000, mode: 'trickle' }]);
    expect((await describeSchedule(nightly.id)).policies.overlap).toBe(ScheduleOverlapPolicy.BUFFER_ONE);

    const settled = await reconcileSchedules(
      temporal.client,
      declarations(prefix, { trickleEvery: '10m', trickleBatchSize: 7 }).map((d) => (d.id === nightly.id ? { ...d, overlap: ScheduleOverlapPolicy.BUFFER_ONE } : d)),
      { prefix },
    );
    expect(settled.unchanged).toEqual([trickle.id, nightly.id]);
  });

  it('deletes a marked schedule that is no longer declared and leaves an unmarked one under the same prefix alone', async () => {
    const prefix = freshPrefix();
    const [trickle, nightly] = declarations(prefix);
    await reconcileSchedules(temporal.client, [trickle, nightly], { prefix });
    const handMade = `${prefix}hand-made`;
    await temporal.client.schedule.create({
      scheduleId: handMade,
      spec: { intervals: [{ every: '1h' }] },
      action: { type: 'startWorkflow', workflowType: 'trickleSyncWorkflow', taskQueue: 'sched-test', args: [] },
      state: { paused: true },
    });
    // Reconcile finds stale schedules through the eventually consistent listing.
    await waitUntilListed([trickle.id, nightly.id, handMade]);

    const dry = await reconcileSchedules(temporal.client, [nightly], { prefix, dryRun: true });
    expect(dry).toEqual({ created: [], updated: [], unchanged: [nightly.id], deleted: [trickle.id] });
    expect(await exists(trickle.id)).toBe(true);

    const result = await reconcileSchedules(temporal.client, [nightly], { prefix });
    expect(result).toEqual({ created: [], updated: [], unchanged: [nightly.id], deleted: [trickle.id] });
    expect(await exists(trickle.id)).toBe(false);
    expect(await exists(nightly.id)).toBe(true);
    expect(await exists(handMade)).toBe(true);

    // The deleted one may linger in the listing for a moment; a repeat is still a no-op.
    const again = await reconcileSchedules(temporal.client, [nightly], { prefix });
    expect(again).toEqual({ created: [], updated: [], unchanged: [nightly.id], deleted: [] });
    expect(await exists(handMade)).toBe(true);
  });

  it('refuses a declared id taken by an unmarked schedule, before changing anything', async () => {
    const prefix = freshPrefix();
    const [trickle, nightly] = declarations(prefix);
    await temporal.client.schedule.create({
      scheduleId: nightly.id,
      spec: { intervals: [{ every: '1h' }] },
      action: { type: 'startWorkflow', workflowType: 'somethingElse', taskQueue: 'sched-test', args: [] },
      state: { paused: true },
    });
    await expect(reconcileSchedules(temporal.client, [trickle, nightly], { prefix })).rejects.toThrow(ConfigurationError);
    expect(await exists(trickle.id)).toBe(false);
    expect((await describeSchedule(nightly.id)).action.workflowType).toBe('somethingElse');
  });

  it('two workers reconciling at once both succeed and leave exactly the declared schedules', async () => {
    const prefix = freshPrefix();
    const decls = declarations(prefix);
    const ids = decls.map((d) => d.id);
    const [a, b] = await Promise.all([
      reconcileSchedules(temporal.client, decls, { prefix }),
      reconcileSchedules(temporal.client, decls, { prefix }),
    ]);
    for (const id of ids) {
      // Each id was created by one of them; the other saw it exist (or lost the create race).
      expect([...a.created, ...b.created].filter((x) => x === id)).toHaveLength(1);
      expect([...a.created, ...a.unchanged]).toContain(id);
      expect([...b.created, ...b.unchanged]).toContain(id);
    }

    const changed = declarations(prefix, { trickleEvery: '15m' });
    await Promise.all([reconcileSchedules(temporal.client, changed, { prefix }), reconcileSchedules(temporal.client, changed, { prefix })]);
    expect((await describeSchedule(ids[0])).spec.intervals?.map((i) => i.every)).toEqual([15 * 60_000]);
    expect(await reconcileSchedules(temporal.client, changed, { prefix })).toMatchObject({ unchanged: ids, created: [], updated: [] });
  });

  it('throws a ValidationError naming the field for an invalid declaration and creates nothing', async () => {
    const prefix = freshPrefix();
    const [trickle, nightly] = declarations(prefix);
    const cases: { decls: ScheduleDeclaration[]; field: string; options?: { prefix: string } }[] = [
      { decls: [trickle, nightly, { ...nightly }], field: 'schedules[2].id' },
      { decls: [trickle, { ...nightly, every: '1h' }], field: 'schedules[1].cron' },
      { decls: [trickle, { ...nightly, cron: undefined } as unknown as ScheduleDeclaration], field: 'schedules[1].every' },
      { decls: [{ ...trickle, every: 'soon' as '5m' }, nightly], field: 'schedules[0].every' },
      { decls: [{ ...trickle, every: '1.5s' }, nightly], field: 'schedules[0].every' },
      { decls: [trickle, { ...nightly, cron: '0 25 * * *' }], field: 'schedules[1].cron' },
      { decls: [trickle, { ...nightly, cron: 'at three' }], field: 'schedules[1].cron' },
      { decls: [trickle, { ...nightly, id: 'elsewhere/nightly' }], field: 'schedules[1].id' },
      { decls: [trickle, { ...nightly, jitter: '-1m' }], field: 'schedules[1].jitter' },
      { decls: [trickle, { ...nightly, taskQueue: '' }], field: 'schedules[1].taskQueue' },
      { decls: [trickle, { ...nightly, overlap: 'SOMETIMES' as ScheduleOverlapPolicy }], field: 'schedules[1].overlap' },
    ];
    for (const c of cases) {
      const err = await validationError(() => reconcileSchedules(temporal.client, c.decls, { prefix }));
      expect(err.field, err.message).toBe(c.field);
      expect(err.message.startsWith(c.field)).toBe(true);
    }
    expect(() => defaultSchedules({ prefix, trickleBatchSize: 0 })).toThrow(ValidationError);
    expect(await exists(trickle.id)).toBe(false);
    expect(await exists(nightly.id)).toBe(false);
  });
});

describe('the worker command', () => {
  it('reconciles the default schedules when it starts, before serving', async () => {
    const queue = uniqueName('sched-wq');
    const database = uniqueName('sched_db').replace(/-/g, '_');
    const worker = startWorkerCommand(database, ['--workflow-queue', queue, '--queue', queue]);
    try {
      await worker.ready;
      expect(worker.output()).toMatch(/schedules reconciled: \d+ created, \d+ updated, \d+ unchanged, \d+ deleted/);
      for (const declared of defaultSchedules({ workflowTaskQueue: queue })) {
        const described = await temporal.client.schedule.getHandle(declared.id).describe();
        expect(described.action).toMatchObject({ type: 'startWorkflow', workflowType: 'trickleSyncWorkflow', taskQueue: queue, args: declared.args });
        expect(described.memo?.managedBy).toBe(MANAGED_BY);
      }
    } finally {
      await worker.stop();
      for (const declared of defaultSchedules()) await temporal.client.schedule.getHandle(declared.id).delete().catch(() => undefined);
      const mongo = await MongoClient.connect(inject('mongodbUri'));
      await mongo.db(database).dropDatabase().catch(() => undefined);
      await mongo.close();
    }
  });
});
