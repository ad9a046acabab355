/**
 * Third-party imports end to end: the real Temporal dev server, the MongoDB-wire store, and the
 * fake social network over real HTTP misbehaving on purpose (rate limits, expired tokens, 5xx,
 * outages, hung sockets, buggy pagination).
 */
import { WorkflowFailedError } from '@temporalio/client';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { Db } from 'mongodb';
import { afterAll, beforeAll, beforeEach, afterEach, describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/contract/errors';
import { type ImportProgress, importWorkflowId, TRICKLE_WORKFLOW_TYPE, type TrickleSyncResult } from '../../src/contract/imports';
import { NetworkStore } from '../../src/integrations/network-store';
import { friendIds } from '../fake-network/server';
import { devServer, freshDb, uniqueName, workflowBundle } from '../utils/env';
import { fakebook, type ImportRig, importRig, type ImportRigOptions } from '../utils/imports';

let temporal: Awaited<ReturnType<typeof devServer>>;
let mongo: Awaited<ReturnType<typeof freshDb>>;
let db: Db;
let bundle: WorkflowBundleWithSourceMap;
let rig: ImportRig | undefined;
/** Account ids are unique per run: import workflow ids derive from them, and the dev server outlives a run. */
const runSuffix = uniqueName('r');
const id = (name: string): string => `${name}-${runSuffix}`;

beforeAll(async () => {
  temporal = await devServer();
  bundle = await workflowBundle();
});
afterAll(async () => {
  await temporal?.close();
});
beforeEach(async () => {
  mongo = await freshDb('imports');
  db = mongo.db;
});
afterEach(async () => {
  await rig?.close();
  rig = undefined;
  await mongo?.drop();
});

async function start(options: ImportRigOptions): Promise<ImportRig> {
  rig = await importRig(temporal, db, bundle, options);
  return rig;
}

/** Connects `accountId` with `token` and imports; returns the final progress. */
async function importAll(r: ImportRig, network: string, accountId: string, token: string, options = {}): Promise<ImportProgress> {
  await r.imports.connectAccount(network, accountId, token);
  await r.imports.importFriends(network, accountId, options);
  return r.imports.waitForImport(network, accountId);
}

/** Asserts the account's imported friends are exactly `userId`'s first `count` friends. */
async function expectExactlyFriends(r: ImportRig, network: string, accountId: string, userId: string, count: number): Promise<void> {
  const ids = await r.imports.friendIds(network, accountId);
  expect(ids.length).toBe(count);
  expect(new Set(ids)).toEqual(new Set(friendIds(userId, count)));
}

describe('pagination', () => {
  it('offset list: imports 2,500 friends exactly once, fetching each page once, across continue-as-new', async () => {
    const r = await start({ fake: { accounts: [{ token: 't-ann', userId: 'ann', friends: 2500 }] }, networks: (url) => ({ fakebook: fakebook(url) }) });
    const done = await importAll(r, 'fakebook', id('ann'), 't-ann', { maxPagesPerRun: 10 });
    expect(done).toMatchObject({ status: 'completed', strategy: 'offset', pagesFetched: 25, pagesImported: 25, whale: false });
    expect(done.items).toEqual({ imported: 2500, skipped: 0, failed: 0, skippedReasons: {}, failedReasons: {} });
    expect(done.runs).toBeGreaterThanOrEqual(3); // 25 pages, 10 per run
    await expectExactlyFriends(r, 'fakebook', id('ann'), 'ann', 2500);
    // Every page exactly once: nothing lost, nothing fetched twice.
    const offsets = r.fake.requests({ path: '/v1/friends/offset' });
    expect(offsets.length).toBe(25);
    expect((await r.imports.account('fakebook', id('ann')))?.lastImport?.status).toBe('completed');
    expect(await db.collection('network_import_pages').countDocuments({})).toBe(0);

    // Importing again brings nothing new: every friend is skipped as already imported.
    const again = await importAll(r, 'fakebook', id('ann'), 't-ann');
    expect(again.items).toMatchObject({ imported: 0, skipped: 2500, skippedReasons: { 'already imported': 2500 } });
    await expectExactlyFriends(r, 'fakebook', id('ann'), 'ann', 2500);
  });

  it('cursor list with 20% random 5xx: every friend exactly once, the failures retried', async () => {
    const r = await start({
      fake: { accounts: [{ token: 't-bo', userId: 'bo', friends: 1234 }], errorRate: 0.2, seed: 7 },
      networks: (url) => ({ fakebook: fakebook(url, { friends: { path: '/v1/friends/cursor', style: 'cursor' } }) }),
    });
    const done = await importAll(r, 'fakebook', id('bo'), 't-bo');
    expect(done).toMatchObject({ status: 'completed', strategy: 'cursor', pagesFetched: 13 });
    expect(done.items.imported).toBe(1234);
    await expectExactlyFriends(r, 'fakebook', id('bo'), 'bo', 1234);
    const failures = Object.entries(r.fake.stats().byStatus).filter(([s]) => s.startsWith('5')).reduce((n, [, c]) => n + c, 0);
    expect(failures).toBeGreaterThan(0);
  });

  it("LinkedIn's endless 1-item pages end with stopped_tiny_pages, no ghost imported", async () => {
    const r = await start({
      fake: { accounts: [{ token: 't-cy', userId: 'cy', friends: 450 }] },
      networks: (url) => ({
        linkedish: fakebook(url, { name: 'linkedish', friends: { path: '/v1/friends/buggy', style: 'unknown-size', params: { offset: 'start', limit: 'count' } } }),
      }),
    });
    const done = await importAll(r, 'linkedish', id('cy'), 't-cy', { maxPagesInFlight: 2 });
    expect(done.status).toBe('stopped_tiny_pages');
    expect(done.message).toMatch(/short pages in a row past the announced total of 450/);
    expect(done.items.imported).toBe(450);
    expect(done.items.skippedReasons['beyond announced total']).toBeGreaterThanOrEqual(3);
    await expectExactlyFriends(r, 'linkedish', id('cy'), 'cy', 450);
    // Bounded: the walk stopped within a few pages of the end, not at maxPages.
    expect(r.fake.requests({ path: '/v1/friends/buggy' }).length).toBeLessThan(12);
  });

  it('a cursor that repeats ends with stopped_repeated_cursor', async () => {
    const r = await start({
      fake: { accounts: [{ token: 't-di', userId: 'di', friends: 250 }] },
      networks: (url) => ({ loopy: fakebook(url, { name: 'loopy', friends: { path: '/v1/friends/cursor-loop', style: 'cursor' } }) }),
    });
    const done = await importAll(r, 'loopy', id('di'), 't-di');
    expect(done.status).toBe('stopped_repeated_cursor');
    expect(done.message).toMatch(/returned cursor .* a second time/);
    expect(done.items.imported).toBe(250);
    await expectExactlyFriends(r, 'loopy', id('di'), 'di', 250);
    expect(r.fake.requests({ path: '/v1/friends/cursor-loop' }).length).toBeLessThanOrEqual(5);
  });

  it('an unknown-size list that ends before maxPages completes (the pages in flight found the end)', async () => {
    const r = await start({
      fake: { accounts: [{ token: 't-uma', userId: 'uma', friends: 800 }] },
      networks: (url) => ({ plain: fakebook(url, { name: 'plain', friends: { path: '/v1/friends/offset', style: 'unknown-size' } }) }),
    });
    const done = await importAll(r, 'plain', id('uma'), 't-uma', { maxPages: 10, maxPagesInFlight: 4 });
    expect(done).toMatchObject({ status: 'completed', strategy: 'unknown-size' });
    expect(done.items.imported).toBe(800);
    expect((await r.imports.account('plain', id('uma')))?.lastSyncedAt).toBeInstanceOf(Date);
  });

  it('maxPages ends a long walk with stopped_max_pages', async () => {
    const r = await start({ fake: { accounts: [{ token: 't-ed', userId: 'ed', friends: 1000 }] }, networks: (url) => ({ fakebook: fakebook(url) }) });
    const done = await importAll(r, 'fakebook', id('ed'), 't-ed', { maxPages: 3, pageSize: 50 });
    expect(done.status).toBe('stopped_max_pages');
    expect(done.message).toMatch(/options.maxPages = 3/);
    expect(done.items.imported).toBe(150);
  });
});

describe('rate limits', () => {
  it('a known limit holds across two worker processes sharing it through MongoDB', async () => {
    // 4 requests per second per token, known to the network definition.
    const limit = { key: 'token' as const, limit: 4, windowMs: 1000 };
    const users = ['fa', 'gu', 'hal'];
    const r = await start({
      fake: { accounts: users.map((u) => ({ token: `t-${u}`, userId: u, friends: 600 })), rateLimits: [{ ...limit, published: false }] },
      networks: (url) => ({ fakebook: fakebook(url, { rateLimits: [limit] }) }),
      egressIp: '10.0.0.1',
    });
    await r.addWorkerProcess({ egressIp: '10.0.0.2' });
    const results = await Promise.all(users.map((u) => importAll(r, 'fakebook', id(u), `t-${u}`)));
    for (const [i, u] of users.entries()) {
      expect(results[i].items.imported).toBe(600);
      await expectExactlyFriends(r, 'fakebook', id(u), u, 600);
      // 1 profile + 6 pages per token, at most 4 in any second, though two processes sent them.
      expect(r.fake.maxInWindow({ key: 'token', value: `t-${u}`, windowMs: 1000 })).toBeLessThanOrEqual(4);
    }
    expect(r.fake.requests({ ip: '10.0.0.1' }).length).toBeGreaterThan(0);
    expect(r.fake.requests({ ip: '10.0.0.2' }).length).toBeGreaterThan(0);
    expect(r.fake.stats().byStatus['429'] ?? 0).toBe(0);
    // The limiter made the imports wait (short waits in the activity, longer ones on timers).
    expect(results.reduce((n, p) => n + p.rateLimitWaits, 0)).toBeGreaterThan(0);
  });

  it('an unknown limit is learnt adaptively: backs off on 429s and completes', async () => {
    const r = await start({
      fake: { accounts: [{ token: 't-ivy', userId: 'ivy', friends: 1500 }], rateLimits: [{ key: 'token', limit: 4, windowMs: 1000, published: false, retryAfter: false }] },
      networks: (url) => ({ fakebook: fakebook(url, { adaptiveLimits: [{ key: 'token', initialPerSecond: 20, increasePerSecond: 0.5 }] }) }),
    });
    const done = await importAll(r, 'fakebook', id('ivy'), 't-ivy');
    expect(done.status).toBe('completed');
    expect(done.items.imported).toBe(1500);
    await expectExactlyFriends(r, 'fakebook', id('ivy'), 'ivy', 1500);
    const rejected = r.fake.stats().byStatus['429'] ?? 0;
    expect(rejected).toBeGreaterThan(0); // it had to find the limit by hitting it
    // Backing off multiplicatively keeps the rejections to a fraction of the calls (16 needed).
    expect(rejected).toBeLessThan(16);
  });

  it('Retry-After is obeyed: after a 429 the next call waits for the next window', async () => {
    const r = await start({
      // Windows of 3 s: longer than Temporal's ~1 s timer resolution, so only waiting as told passes.
      fake: { accounts: [{ token: 't-jo', userId: 'jo', friends: 200 }], rateLimits: [{ key: 'token', limit: 2, windowMs: 3000, retryAfter: true }] },
      networks: (url) => ({ fakebook: fakebook(url) }),
    });
    // One call at a time, so every call after a 429 was sent after the client read it.
    const done = await importAll(r, 'fakebook', id('jo'), 't-jo', { maxPagesInFlight: 1, pageSize: 50 });
    expect(done.items.imported).toBe(200);
    const calls = r.fake.requests({ token: 't-jo' });
    const rejected = calls.filter((c) => c.status === 429).length;
    expect(rejected).toBeGreaterThan(0); // 5 calls at 2 per 3 s: it ran into the limit
    // Waiting as told lands in a fresh window, so a 429 is never followed by another one.
    const repeated = calls.filter((c, i) => i > 0 && c.status === 429 && calls[i - 1].status === 429).length;
    expect(repeated).toBe(0);
    expect(done.rateLimitWaits).toBeGreaterThanOrEqual(rejected);
    // The waits were durable timers in the workflow's history, not retries of the activity.
    const history = await temporal.client.workflow.getHandle(importWorkflowId('fakebook', id('jo'))).fetchHistory();
    expect(history.events?.filter((e) => e.timerStartedEventAttributes).length).toBeGreaterThanOrEqual(rejected);
    expect(history.events?.filter((e) => e.activityTaskStartedEventAttributes && (e.activityTaskStartedEventAttributes.attempt ?? 1) > 1).length).toBe(0);
  });
});

describe("Temporal's queue-wide rate limit", () => {
  it("caps a network that has a queue of its own", async () => {
    const r = await start({
      fake: { accounts: [{ token: 't-oz', userId: 'oz', friends: 600 }] },
      networks: (url, queues) => ({ fakebook: fakebook(url, { taskQueue: queues.network }) }),
      networkQueuePerSecond: 2,
    });
    const done = await importAll(r, 'fakebook', id('oz'), 't-oz', { maxPagesInFlight: 6 });
    expect(done).toMatchObject({ status: 'completed', taskQueue: r.queues.network });
    expect(done.items.imported).toBe(600);
    // 6 page fetches and 6 page imports on a queue served at 2 activities per second: the fetches,
    // all launched at once, reach the network spread over seconds instead of together.
    // Pages 1-5 are launched together once page 0 has announced the total.
    const pages = r.fake.requests({ path: '/v1/friends/offset' }).map((c) => c.at).slice(1);
    expect(pages).toHaveLength(5);
    expect(pages.at(-1)! - pages[0]).toBeGreaterThanOrEqual(1500);
  });
});

describe('failures', () => {
  it('expired credentials stop the import at once and mark the account, for every shape of "expired"', async () => {
    const tokens = ['x1', 'x2', 'x3', 'x4', 'x5', 'x6'];
    const r = await start({
      fake: { accounts: [{ token: 'fine', userId: 'kim', friends: 10 }], expiredTokens: tokens },
      networks: (url) => ({ fakebook: fakebook(url) }),
    });
    for (const token of tokens) {
      const account = id(`u-${token}`);
      const done = await importAll(r, 'fakebook', account, token);
      expect(done.status).toBe('needs_reauth');
      expect(done.message).toMatch(/credentials expired or revoked .* ask the user to reconnect/);
      const stored = await r.imports.account('fakebook', account);
      expect(stored).toMatchObject({ needsReauth: true });
      expect(stored?.reauthReason).toBeTruthy();
      // At once: the one profile call, never retried.
      expect(r.fake.requests({ token }).length).toBe(1);
    }
    // A marked account (not reconnected) fails fast without calling the network again.
    await r.imports.importFriends('fakebook', id('u-x1'));
    expect((await r.imports.waitForImport('fakebook', id('u-x1'))).status).toBe('needs_reauth');
    expect(r.fake.requests({ token: 'x1' }).length).toBe(1);
    // Reconnecting clears the mark.
    await r.imports.connectAccount('fakebook', id('u-x1'), 'fine');
    expect(await r.imports.account('fakebook', id('u-x1'))).toMatchObject({ needsReauth: false });
  });

  it('a worker process killed mid-import: another finishes it, every friend exactly once, counts exact', async () => {
    const r = await start({
      fake: { accounts: [{ token: 't-pat', userId: 'pat', friends: 3000 }], latencyMs: 100 },
      networks: (url) => ({ fakebook: fakebook(url) }),
      importQueueInProcess: false,
    });
    const first = await r.addWorkerProcess({ egressIp: '10.0.1.1' });
    await r.imports.connectAccount('fakebook', id('pat'), 't-pat');
    await r.imports.importFriends('fakebook', id('pat'), { maxPagesInFlight: 4 });
    while ((await r.imports.getImportProgress('fakebook', id('pat'))).pagesImported < 5) await new Promise((ok) => setTimeout(ok, 50));
    expect(await first.stop('SIGKILL')).toBeNull();
    const killedAt = await r.imports.getImportProgress('fakebook', id('pat'));
    expect(killedAt.pagesImported).toBeLessThan(30);
    await r.addWorkerProcess({ egressIp: '10.0.1.2' });
    const done = await r.imports.waitForImport('fakebook', id('pat'));
    expect(done.status).toBe('completed');
    // Pages cut off by the kill were fetched or imported again, yet nothing counts twice.
    expect(done.items).toEqual({ imported: 3000, skipped: 0, failed: 0, skippedReasons: {}, failedReasons: {} });
    await expectExactlyFriends(r, 'fakebook', id('pat'), 'pat', 3000);
    expect(r.fake.requests({ ip: '10.0.1.2' }).length).toBeGreaterThan(0);
  });

  it('a token revoked mid-import stops the import at once, marks the account, and the counts match what was stored', async () => {
    const r = await start({
      fake: { accounts: [{ token: 't-rex', userId: 'rex', friends: 3000 }], latencyMs: 100 },
      networks: (url) => ({ fakebook: fakebook(url) }),
    });
    await r.imports.connectAccount('fakebook', id('rex'), 't-rex');
    await r.imports.importFriends('fakebook', id('rex'), { maxPagesInFlight: 4 });
    while ((await r.imports.getImportProgress('fakebook', id('rex'))).pagesImported < 3) await new Promise((ok) => setTimeout(ok, 50));
    r.fake.expireToken('t-rex');
    const done = await r.imports.waitForImport('fakebook', id('rex'));
    expect(done.status).toBe('needs_reauth');
    expect(await r.imports.account('fakebook', id('rex'))).toMatchObject({ needsReauth: true, lastImport: { status: 'needs_reauth' } });
    // At once: only calls already in flight were answered "expired", none was retried or started after.
    const calls = r.fake.requests({ token: 't-rex' });
    const firstExpired = calls.findIndex((c) => c.status !== 200);
    expect(calls.length - firstExpired).toBeLessThanOrEqual(4);
    // Exact: what the import reports is what is stored (page imports under way were let finish).
    expect((await r.imports.friendIds('fakebook', id('rex'))).length).toBe(done.items.imported);
    expect(done.items.imported).toBeLessThan(3000);
  });

  it.each([
    ['in the middle of a run', {}],
    ['just before a continue-as-new', { maxPagesPerRun: 10 }],
  ])('cancelling an import mid-walk (%s) stops its calls, records it, and the counts match what was stored', async (_, runOptions) => {
    const r = await start({
      fake: { accounts: [{ token: 't-sal', userId: 'sal', friends: 3000 }], latencyMs: 100 },
      networks: (url) => ({ fakebook: fakebook(url) }),
    });
    await r.imports.connectAccount('fakebook', id('sal'), 't-sal');
    await r.imports.importFriends('fakebook', id('sal'), { maxPagesInFlight: 4, ...runOptions });
    while ((await r.imports.getImportProgress('fakebook', id('sal'))).pagesImported < 3) await new Promise((ok) => setTimeout(ok, 50));
    await r.imports.cancelImport('fakebook', id('sal'));
    expect(await r.imports.waitForImport('fakebook', id('sal')).catch((e) => e)).toBeInstanceOf(WorkflowFailedError);
    const account = await r.imports.account('fakebook', id('sal'));
    expect(account?.lastImport?.status).toBe('cancelled');
    expect(account?.lastSyncedAt).toBeUndefined();
    const stored = (await r.imports.friendIds('fakebook', id('sal'))).length;
    expect(stored).toBeLessThan(3000);
    expect(account?.lastImport?.message).toContain(`(${stored} friends imported)`);
    // Nothing more is sent once the cancellation is through.
    const sent = r.fake.requests({ token: 't-sal' }).length;
    await new Promise((ok) => setTimeout(ok, 1500));
    expect(r.fake.requests({ token: 't-sal' }).length).toBe(sent);
  });

  it('an outage delays the import but it completes, nothing lost or duplicated', async () => {
    const r = await start({
      fake: { accounts: [{ token: 't-lu', userId: 'lu', friends: 1500 }], outage: { afterMs: 200, durationMs: 2500 }, latencyMs: 40 },
      networks: (url) => ({ fakebook: fakebook(url) }),
    });
    const done = await importAll(r, 'fakebook', id('lu'), 't-lu', { maxPagesInFlight: 2 });
    expect(done.status).toBe('completed');
    expect(done.items.imported).toBe(1500);
    await expectExactlyFriends(r, 'fakebook', id('lu'), 'lu', 1500);
    expect(r.fake.stats().byStatus['503'] ?? 0).toBeGreaterThan(0);
  });

  it('a hung connection is cut by the request timeout and retried', async () => {
    const r = await start({
      fake: { accounts: [{ token: 't-mo', userId: 'mo', friends: 300 }] },
      networks: (url) => ({ fakebook: fakebook(url, { requestTimeoutMs: 1000 }) }),
    });
    r.fake.hangNext(2);
    const done = await importAll(r, 'fakebook', id('mo'), 't-mo');
    expect(done.status).toBe('completed');
    expect(done.items.imported).toBe(300);
    expect(r.fake.requests({ status: 'hung' }).length).toBe(2);
  });

  it('cancelling an import aborts its call in flight', async () => {
    const r = await start({
      fake: { accounts: [{ token: 't-ned', userId: 'ned', friends: 300 }] },
      // A request timeout far longer than the test: only cancellation can end the hung call.
      networks: (url) => ({ fakebook: fakebook(url, { requestTimeoutMs: 120_000 }) }),
    });
    r.fake.hangNext(100);
    await r.imports.connectAccount('fakebook', id('ned'), 't-ned');
    await r.imports.importFriends('fakebook', id('ned'));
    while (r.fake.requests({ status: 'hung' }).length === 0) await new Promise((ok) => setTimeout(ok, 50));
    const cancelledAt = Date.now();
    await r.imports.cancelImport('fakebook', id('ned'));
    const err = await r.imports.waitForImport('fakebook', id('ned')).catch((e) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    // The workflow waits for its activity to confirm the cancellation, so this bounds the abort.
    expect(Date.now() - cancelledAt).toBeLessThan(20_000);
    expect((await r.imports.account('fakebook', id('ned')))?.lastImport?.status).toBe('cancelled');
  });

  it('bad input gets a clear error naming the field and starts nothing', async () => {
    const r = await start({ fake: { accounts: [] }, networks: (url) => ({ fakebook: fakebook(url) }) });
    await expect(r.imports.importFriends('Fake Book', 'a')).rejects.toThrow(ValidationError);
    await expect(r.imports.importFriends('fakebook', 'a b')).rejects.toMatchObject({ field: 'input.accountId' });
    await expect(r.imports.importFriends('fakebook', id('nobody'))).rejects.toMatchObject({ field: 'accountId', message: /no connected fakebook account/ });
    await r.imports.connectAccount('fakebook', id('ok'), 'tok');
    await expect(r.imports.importFriends('fakebook', id('ok'), { pageSize: 0 })).rejects.toMatchObject({ field: 'input.options.pageSize' });
    await expect(r.imports.importFriends('fakebook', id('ok'), { bogus: 1 } as object)).rejects.toMatchObject({ field: 'input.options.bogus' });
    await expect(r.imports.connectAccount('fakebook', id('ok'), '')).rejects.toMatchObject({ field: 'token' });
    // An unknown network reaches the worker (a client cannot know the worker's config): non-retryable, named.
    await r.imports.connectAccount('nosuch', id('ok'), 'tok');
    await r.imports.importFriends('nosuch', id('ok'));
    const err = await r.imports.waitForImport('nosuch', id('ok')).catch((e) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect(String(err.cause?.message)).toMatch(/network "nosuch" is not configured on this worker/);
    expect(r.fake.stats().total).toBe(0);
  });
});

describe('whales and trickles', () => {
  it('a whale import on its own queue does not delay a small import (bound: done before the whale is half way, and within 10 s)', async () => {
    const r = await start({
      fake: { accounts: [{ token: 't-whale', userId: 'whale', friends: 6000 }, { token: 't-minnow', userId: 'minnow', friends: 300 }], latencyMs: 100 },
      networks: (url) => ({ fakebook: fakebook(url) }),
      concurrency: 2,
      whaleConcurrency: 2,
      defaults: { whaleThreshold: 1000 },
    });
    await r.imports.connectAccount('fakebook', id('whale'), 't-whale');
    await r.imports.connectAccount('fakebook', id('minnow'), 't-minnow');
    // The whale keeps 10 pages in flight: on a shared queue they would sit ahead of the minnow's.
    await r.imports.importFriends('fakebook', id('whale'), { maxPagesInFlight: 10 });
    while ((await r.imports.getImportProgress('fakebook', id('whale'))).pagesFetched < 2) await new Promise((ok) => setTimeout(ok, 50));
    const started = Date.now();
    await r.imports.importFriends('fakebook', id('minnow'));
    const minnow = await r.imports.waitForImport('fakebook', id('minnow'));
    const tookMs = Date.now() - started;
    const whale = await r.imports.getImportProgress('fakebook', id('whale'));

    expect(minnow).toMatchObject({ status: 'completed', whale: false, taskQueue: r.queues.import });
    expect(minnow.items.imported).toBe(300);
    expect(whale).toMatchObject({ status: 'running', whale: true, taskQueue: r.queues.whale, networkSize: 6000 });
    expect(whale.pagesFetched).toBeLessThan(30);
    expect(tookMs).toBeLessThan(10_000);
    const done = await r.imports.waitForImport('fakebook', id('whale'));
    expect(done.items.imported).toBe(6000);
    await expectExactlyFriends(r, 'fakebook', id('whale'), 'whale', 6000);
  });

  it('a trickle round imports the stalest accounts of networks that cannot push, then leaves fresh ones alone', async () => {
    const r = await start({
      fake: { accounts: ['p1', 'p2', 'p3'].map((u) => ({ token: `t-${u}`, userId: u, friends: 120 })) },
      networks: (url) => ({
        pollnet: fakebook(url, { name: 'pollnet', canPush: false }),
        pushnet: fakebook(url, { name: 'pushnet', canPush: true }),
      }),
    });
    await r.imports.connectAccount('pollnet', id('p1'), 't-p1');
    await r.imports.connectAccount('pollnet', id('p2'), 't-p2');
    await r.imports.connectAccount('pushnet', id('p3'), 't-p3');
    const round = (staleAfterMs: number): Promise<TrickleSyncResult> =>
      temporal.client.workflow.execute(TRICKLE_WORKFLOW_TYPE, {
        taskQueue: r.queues.workflow,
        workflowId: uniqueName('trickle'),
        args: [{ mode: 'trickle', batchSize: 5, staleAfterMs, taskQueue: r.queues.trickle, importOptions: { whaleTaskQueue: r.queues.whale } }],
      });
    const first = await round(60_000);
    expect(first).toMatchObject({ accounts: 2, byStatus: { completed: 2 } });
    expect(first.items.imported).toBe(240);
    await expectExactlyFriends(r, 'pollnet', id('p1'), 'p1', 120);
    expect(await r.imports.friendIds('pushnet', id('p3'))).toEqual([]);
    // The calls ran on the trickle queue.
    const history = await temporal.client.workflow.getHandle(importWorkflowId('pollnet', id('p1'))).fetchHistory();
    const queues = new Set(history.events?.flatMap((e) => e.activityTaskScheduledEventAttributes?.taskQueue?.name ?? []));
    expect(queues).toEqual(new Set([r.queues.trickle]));
    // Synced a moment ago: not stale yet.
    expect(await round(60_000)).toMatchObject({ accounts: 0 });
  });
});

describe('sharing activities out', () => {
  it('posts each activity exactly once though the network fails after writing, and a repeat posts nothing', async () => {
    const r = await start({
      // Half the posts fail *after* the post was stored: only the idempotency key prevents duplicates.
      fake: { accounts: [{ token: 't-vi', userId: 'vi', friends: 0 }], errorRate: 0.5, errorsAfterWrite: true, seed: 3 },
      networks: (url) => ({ fakebook: fakebook(url, { share: {} }) }),
    });
    await r.imports.connectAccount('fakebook', id('vi'), 't-vi');
    const activityIds = Array.from({ length: 12 }, (_, i) => `act-${i}-${runSuffix}`);
    await db.collection('activities').insertMany(activityIds.map((_id, i) => ({ _id, actor: 'vi', verb: 'pin', object: `photo-${i}`, time: new Date() })) as never[]);
    await Promise.all(activityIds.map((a) => r.imports.shareActivity('fakebook', id('vi'), a)));
    const outcomes = await Promise.all(activityIds.map((a) => r.imports.waitForShare('fakebook', id('vi'), a)));
    expect(outcomes.every((o) => o.status === 'shared')).toBe(true);
    const posts = r.fake.posts();
    expect(posts.length).toBe(12);
    expect(new Set(posts.map((p) => p.idempotencyKey))).toEqual(new Set(activityIds));
    expect(new Set(outcomes.map((o) => o.postId))).toEqual(new Set(posts.map((p) => p.id)));
    // Some answers were lost after the write, and the retries were answered as replays.
    expect(outcomes.some((o) => o.replayed)).toBe(true);
    expect(r.fake.requests({ method: 'POST' }).length).toBeGreaterThan(12);
    // Sharing again: one more run of the workflow, no request at all, no post.
    const before = r.fake.stats().total;
    await r.imports.shareActivity('fakebook', id('vi'), activityIds[0]);
    expect(await r.imports.waitForShare('fakebook', id('vi'), activityIds[0])).toMatchObject({ status: 'shared', message: expect.stringMatching(/already shared/) });
    expect(r.fake.stats().total).toBe(before);
    expect(r.fake.posts().length).toBe(12);
  });

  it('an expired token ends the share as needs_reauth; bad input names the field', async () => {
    const r = await start({ fake: { expiredTokens: ['t-old'] }, networks: (url) => ({ fakebook: fakebook(url, { share: {} }), mute: fakebook(url, { name: 'mute' }) }) });
    await r.imports.connectAccount('fakebook', id('wes'), 't-old');
    await db.collection('activities').insertOne({ _id: `a-${runSuffix}`, actor: 'wes', verb: 'post', object: 'note-1', time: new Date() } as never);
    await r.imports.shareActivity('fakebook', id('wes'), `a-${runSuffix}`);
    expect(await r.imports.waitForShare('fakebook', id('wes'), `a-${runSuffix}`)).toMatchObject({ status: 'needs_reauth' });
    expect(await r.imports.account('fakebook', id('wes'))).toMatchObject({ needsReauth: true });
    expect(r.fake.posts()).toHaveLength(0);
    await expect(r.imports.shareActivity('fakebook', id('wes'), 'bad id')).rejects.toMatchObject({ field: 'input.activityId' });
    // A network without a share endpoint: non-retryable, named.
    await r.imports.connectAccount('mute', id('wes'), 't-x');
    await r.imports.shareActivity('mute', id('wes'), `a-${runSuffix}`);
    const err = await r.imports.waitForShare('mute', id('wes'), `a-${runSuffix}`).catch((e) => e);
    expect(String(err.cause?.cause?.message ?? err.cause?.message)).toMatch(/takes no posts/);
  });
});

describe('NetworkStore.importPage', () => {
  it('a retried page counts its own inserts as imported; a repeat from another page or import as skipped', async () => {
    const store = new NetworkStore(db);
    await store.ensureIndexes();
    const items = [...friendIds('q', 5).map((fid) => ({ id: fid, name: fid })), { name: 'no id' }, { id: 'q-f0' }];
    await store.stagePage('imp-1', 0, items);
    const first = await store.importPage('net', 'acct', 'imp-1', 0);
    // A network that names its fields differently.
    await store.stagePage('imp-9', 0, [{ uid: 'z1', profile: { display: 'Zed' } }]);
    expect(await store.importPage('net', 'other', 'imp-9', 0, { fields: { id: 'uid', name: 'profile.display' } })).toMatchObject({ imported: 1, failed: 0 });
    expect(await store.friends.findOne({ _id: 'net:other:z1' })).toMatchObject({ name: 'Zed' });
    expect(first).toEqual({ imported: 5, skipped: 1, failed: 1, skippedReasons: { 'duplicate within the page': 1 }, failedReasons: { 'item has no id': 1 } });
    // The same page again (an activity retried after its writes landed): the same counts.
    expect(await store.importPage('net', 'acct', 'imp-1', 0)).toEqual(first);
    // The same friends on another page of the same import (a network repeating itself), or in a later import: skipped.
    await store.stagePage('imp-1', 1, friendIds('q', 2).map((fid) => ({ id: fid })));
    expect(await store.importPage('net', 'acct', 'imp-1', 1)).toMatchObject({ imported: 0, skipped: 2, skippedReasons: { 'already imported': 2 } });
    await store.stagePage('imp-2', 0, friendIds('q', 6).map((fid) => ({ id: fid })));
    expect(await store.importPage('net', 'acct', 'imp-2', 0)).toMatchObject({ imported: 1, skipped: 5 });
    expect((await store.friendIds('net', 'acct')).sort()).toEqual(friendIds('q', 6).sort());
    expect(await store.importPage('net', 'acct', 'imp-3', 0)).toBeUndefined(); // never staged
  });
});

