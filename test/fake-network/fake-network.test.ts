import { afterEach, describe, expect, it } from 'vitest';
import { EXPIRED_TOKEN_BODIES, type FakeNetwork, type FakeNetworkOptions, friendIds, startFakeNetwork } from './server';

const ACCOUNT = { token: 'tok-alice', userId: 'alice', friends: 7 };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let open: FakeNetwork[] = [];
async function start(options: FakeNetworkOptions = {}): Promise<FakeNetwork> {
  const network = await startFakeNetwork({ accounts: [ACCOUNT], ...options });
  open.push(network);
  return network;
}
afterEach(async () => {
  await Promise.all(open.map((n) => n.close()));
  open = [];
});

/** GET `path` with `query` (token defaults to Alice's); answers status, headers and parsed body. */
async function get(network: FakeNetwork, path: string, query: Record<string, string> = {}, headers: Record<string, string> = {}) {
  const qs = new URLSearchParams({ access_token: ACCOUNT.token, ...query });
  const res = await fetch(`${network.url}${path}?${qs.toString()}`, { headers });
  const text = await res.text();
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- a JSON body of any shape, asserted on by each test
  let body: any = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, headers: res.headers, body };
}

describe('fake network: accounts and tokens', () => {
  it('listens on loopback and answers /v1/me for a known token', async () => {
    const network = await start();
    expect(network.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(network.port).toBeGreaterThan(0);
    expect(await get(network, '/v1/me')).toMatchObject({ status: 200, body: { id: 'alice' } });
  });

  it('answers 401 OAuthException 190 for unknown and missing tokens', async () => {
    const network = await start();
    const expected = { error: { type: 'OAuthException', code: 190, message: 'Invalid OAuth access token.' } };
    expect(await get(network, '/v1/me', { access_token: 'nope' })).toMatchObject({ status: 401, body: expected });
    const res = await fetch(`${network.url}/v1/me`);
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject(expected);
  });

  it('rotates expired tokens through every documented shape, exactly as exported', async () => {
    const network = await start({ expiredTokens: ['old'] });
    const n = EXPIRED_TOKEN_BODIES.length;
    expect(n).toBeGreaterThanOrEqual(4);
    expect(new Set(EXPIRED_TOKEN_BODIES.map((b) => b.body)).size).toBe(n);
    const seen: string[] = [];
    for (let i = 0; i < n + 1; i++) {
      const res = await fetch(`${network.url}/v1/me?access_token=old`);
      const body = await res.text();
      const shape = EXPIRED_TOKEN_BODIES[i % n];
      expect(res.status).toBe(shape.status);
      expect([400, 401]).toContain(res.status);
      expect(body).toBe(shape.body);
      for (const [name, value] of Object.entries(shape.headers)) expect(res.headers.get(name)).toBe(value);
      seen.push(body);
    }
    expect(new Set(seen).size).toBe(n);
    expect(seen[n]).toBe(seen[0]);
    const plain = EXPIRED_TOKEN_BODIES.find((b) => !b.headers['content-type'].includes('json'));
    expect(plain?.headers['www-authenticate']).toContain('error="invalid_token"');
  });
});

describe('fake network: pagination', () => {
  it('pages by offset, capping limit at maxPageSize', async () => {
    const network = await start({ maxPageSize: 3 });
    const first = await get(network, '/v1/friends/offset', { limit: '50' });
    expect(first.body).toEqual({
      total: 7,
      offset: 0,
      limit: 3,
      items: [0, 1, 2].map((i) => ({ id: `alice-f${i}`, name: expect.any(String) })),
    });
    const last = await get(network, '/v1/friends/offset', { offset: '6', limit: '3' });
    expect(last.body.items.map((f: { id: string }) => f.id)).toEqual(['alice-f6']);
    expect((await get(network, '/v1/friends/offset', { offset: '9' })).body.items).toEqual([]);
    expect((await get(network, '/v1/friends/offset', { offset: '-1' })).status).toBe(400);
  });

  it('pages by opaque cursor and ends with next_cursor null', async () => {
    const network = await start();
    const ids: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: { body: { items: { id: string }[]; next_cursor: string | null } } = await get(network, '/v1/friends/cursor', { limit: '3', ...(cursor ? { cursor } : {}) });
      ids.push(...page.body.items.map((f) => f.id));
      cursor = page.body.next_cursor;
      if (cursor !== null) expect(cursor).not.toMatch(/^\d+$/);
    } while (cursor !== null && ++pages < 10);
    expect(ids).toEqual(friendIds('alice', 7));
    expect(pages).toBe(2);
    expect((await get(network, '/v1/friends/cursor', { cursor: 'garbage!' })).status).toBe(400);
  });

  it('buggy pagination never returns an empty page past the end', async () => {
    const network = await start({ maxPageSize: 5 });
    const ids: string[] = [];
    // A naive client that stops at the first empty page, with a safety cap so the test ends.
    let offset = 0;
    let pages = 0;
    for (; pages < 20; pages++) {
      const { body } = await get(network, '/v1/friends/buggy', { start: String(offset), count: '5' });
      expect(body.total).toBe(7);
      if (body.items.length === 0) break;
      ids.push(...body.items.map((f: { id: string }) => f.id));
      offset += body.items.length;
    }
    expect(pages).toBe(20); // the cap, not an empty page, ended it
    expect(ids.slice(0, 7)).toEqual(friendIds('alice', 7));
    expect(ids.length).toBe(7 + 18); // then one ghost friend per page
    expect(ids.slice(7).every((id) => !friendIds('alice', 7).includes(id))).toBe(true);
  });

  it('cursor-loop hands back the same cursor after the end, with one item, forever', async () => {
    const network = await start();
    const first = await get(network, '/v1/friends/cursor-loop', { limit: '4' });
    const second = await get(network, '/v1/friends/cursor-loop', { limit: '4', cursor: first.body.next_cursor });
    expect([...first.body.items, ...second.body.items].map((f: { id: string }) => f.id)).toEqual(friendIds('alice', 7));
    let cursor: string = second.body.next_cursor;
    expect(cursor).not.toBeNull();
    for (let i = 0; i < 3; i++) {
      const page = await get(network, '/v1/friends/cursor-loop', { limit: '4', cursor });
      expect(page.body.next_cursor).toBe(cursor);
      expect(page.body.items).toEqual([{ id: 'alice-f6', name: expect.any(String) }]);
      cursor = page.body.next_cursor;
    }
  });
});

describe('fake network: idempotent posts', () => {
  async function post(network: FakeNetwork, body: unknown, key?: string) {
    const res = await fetch(`${network.url}/v1/posts?access_token=${ACCOUNT.token}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(key ? { 'idempotency-key': key } : {}) },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: (res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : { text }) as { id?: string } };
  }

  it('creates a post once per idempotency key', async () => {
    const network = await start();
    const a = await post(network, { text: 'hi' }, 'k1');
    const again = await post(network, { text: 'hi' }, 'k1');
    const b = await post(network, { text: 'hi' }, 'k2');
    expect(a).toEqual({ status: 201, body: { id: expect.any(String) } });
    expect(again).toEqual(a);
    expect(b.body.id).not.toBe(a.body.id);
    expect(network.posts().map((p) => [p.idempotencyKey, p.body])).toEqual([['k1', { text: 'hi' }], ['k2', { text: 'hi' }]]);
    await post(network, { text: 'no key' });
    await post(network, { text: 'no key' });
    expect(network.posts()).toHaveLength(4);
    expect((await post(network, 'not json', 'k3')).status).toBe(400);
    expect(network.posts()).toHaveLength(4);
  });

  it('with errorsAfterWrite, a failed POST may still have written (the retry must reuse the key)', async () => {
    const network = await start({ errorRate: 1, errorsAfterWrite: true });
    const failed = await post(network, { text: 'x' }, 'k');
    expect([500, 502, 503]).toContain(failed.status);
    expect(failed.body.id).toBeUndefined();
    expect(network.posts()).toHaveLength(1);
    network.setErrorRate(0);
    const retry = await post(network, { text: 'x' }, 'k');
    expect(retry.body.id).toBe(network.posts()[0].id);
    expect(network.posts()).toHaveLength(1);
  });
});

describe('fake network: rate limits', () => {
  it('publishes a token limit on every response, answers 429 with Retry-After, and reopens next window', async () => {
    const network = await start({ rateLimits: [{ key: 'token', limit: 3, windowMs: 600 }] });
    // Start at a fresh window so all requests of this burst fall in one.
    network.reset();
    const answers = [];
    for (let i = 0; i < 5; i++) answers.push(await get(network, '/v1/me'));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 429, 429]);
    expect(answers.map((a) => a.headers.get('x-ratelimit-remaining'))).toEqual(['2', '1', '0', '0', '0']);
    for (const a of answers) {
      expect(a.headers.get('x-ratelimit-limit')).toBe('3');
      expect(Number(a.headers.get('x-ratelimit-reset'))).toBeGreaterThanOrEqual(Math.floor(Date.now() / 1000));
    }
    expect(answers[0].headers.get('retry-after')).toBeNull();
    expect(answers[3].body).toMatchObject({ error: { code: 4 } });
    expect(answers[3].headers.get('retry-after')).toBe('1');
    const waitMs = Number(answers[4].headers.get('retry-after-ms'));
    expect(waitMs).toBeGreaterThan(0);
    expect(waitMs).toBeLessThanOrEqual(600);
    // Other tokens have their own counters; unknown ones still get counted (and 401).
    const other = await get(network, '/v1/me', { access_token: 'other' });
    expect(other.status).toBe(401);
    expect(other.headers.get('x-ratelimit-remaining')).toBe('2');
    await sleep(waitMs + 5);
    expect((await get(network, '/v1/me')).status).toBe(200);
  });

  it('limits by X-Client-Ip; unpublished limits send no headers and no Retry-After', async () => {
    const network = await start({
      accounts: [ACCOUNT, { token: 'tok-bob', userId: 'bob', friends: 0 }],
      rateLimits: [{ key: 'ip', limit: 2, windowMs: 400, published: false, retryAfter: false }],
    });
    network.reset();
    const ip = (addr: string, token = ACCOUNT.token) => get(network, '/v1/me', { access_token: token }, { 'x-client-ip': addr });
    // Different tokens behind one IP share its budget: the limit is not per token.
    const fromA = [await ip('10.0.0.1'), await ip('10.0.0.1', 'tok-bob'), await ip('10.0.0.1')];
    expect(fromA.map((a) => a.status)).toEqual([200, 200, 429]);
    expect((await ip('10.0.0.2')).status).toBe(200);
    for (const a of fromA) {
      expect(a.headers.get('x-ratelimit-limit')).toBeNull();
      expect(a.headers.get('x-ratelimit-remaining')).toBeNull();
      expect(a.headers.get('retry-after')).toBeNull();
    }
    expect(network.requests({ ip: '10.0.0.1' })).toHaveLength(3);
  });

  it('shows the tightest of several published limits', async () => {
    const network = await start({ rateLimits: [{ key: 'ip', limit: 10, windowMs: 1000 }, { key: 'token', limit: 2, windowMs: 1000 }] });
    network.reset();
    const a = await get(network, '/v1/me');
    expect(a.headers.get('x-ratelimit-limit')).toBe('2');
    expect(a.headers.get('x-ratelimit-remaining')).toBe('1');
  });

  it('treats explicitly undefined options as their defaults', async () => {
    const network = await start({ latencyMs: undefined, rateLimits: [{ key: 'token', limit: 1, windowMs: 60_000, published: undefined, retryAfter: undefined }] });
    expect((await get(network, '/v1/me')).headers.get('x-ratelimit-limit')).toBe('1');
    expect((await get(network, '/v1/me')).headers.get('retry-after')).not.toBeNull();
  });
});

describe('fake network: failures, outages, latency, hangs', () => {
  async function statuses(network: FakeNetwork, n: number): Promise<number[]> {
    const out: number[] = [];
    for (let i = 0; i < n; i++) out.push((await get(network, '/v1/me')).status);
    return out;
  }

  it('fails a seeded, repeatable fraction of requests with 500/502/503', async () => {
    const a = await statuses(await start({ errorRate: 0.4, seed: 7 }), 60);
    const b = await statuses(await start({ errorRate: 0.4, seed: 7 }), 60);
    const c = await statuses(await start({ errorRate: 0.4, seed: 8 }), 60);
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    const failures = a.filter((s) => s !== 200);
    expect(failures.length).toBeGreaterThan(10);
    expect(failures.length).toBeLessThan(40);
    expect(new Set(failures)).toEqual(new Set([500, 502, 503]));
  });

  it('setErrorRate changes the rate at run time', async () => {
    const network = await start({ errorRate: 1 });
    expect((await statuses(network, 5)).every((s) => s >= 500)).toBe(true);
    network.setErrorRate(0);
    expect(await statuses(network, 5)).toEqual([200, 200, 200, 200, 200]);
    expect(() => network.setErrorRate(2)).toThrow(/errorRate/);
  });

  it('manual outage: 503 without Retry-After, even past a rate limit', async () => {
    const network = await start({ rateLimits: [{ key: 'token', limit: 1, windowMs: 60_000 }] });
    network.startOutage();
    const down = [await get(network, '/v1/me'), await get(network, '/v1/me')];
    for (const d of down) {
      expect(d.status).toBe(503);
      expect(d.headers.get('retry-after')).toBeNull();
      expect(d.headers.get('x-ratelimit-limit')).toBe('1');
    }
    network.endOutage();
    // The outage requests counted: the client burned its quota hammering a dead API.
    expect((await get(network, '/v1/me')).status).toBe(429);
  });

  it('scheduled outage starts afterMs after start and lasts durationMs', async () => {
    const network = await start({ outage: { afterMs: 200, durationMs: 300 } });
    expect((await get(network, '/v1/me')).status).toBe(200);
    await sleep(300);
    expect((await get(network, '/v1/me')).status).toBe(503);
    await sleep(300);
    expect((await get(network, '/v1/me')).status).toBe(200);
  });

  it('adds latency to every response, and more on slow paths', async () => {
    const network = await start({ latencyMs: 60, slowPaths: { '/v1/friends': 150 } });
    const time = async (path: string) => {
      const t0 = performance.now();
      await get(network, path);
      return performance.now() - t0;
    };
    const me = await time('/v1/me');
    const friends = await time('/v1/friends/offset');
    expect(me).toBeGreaterThanOrEqual(55);
    expect(me).toBeLessThan(190);
    expect(friends).toBeGreaterThanOrEqual(205);
    network.setLatency(0);
    expect(await time('/v1/me')).toBeLessThan(55);
  });

  it('hangNext leaves requests unanswered until close, which destroys them', async () => {
    const network = await start();
    network.hangNext(1);
    const hung = fetch(`${network.url}/v1/me?access_token=${ACCOUNT.token}`).then(
      (r) => `answered ${r.status}`,
      () => 'failed',
    );
    // Let the hung request arrive first, or the next one would be the one to hang.
    while (network.requests().length === 0) await sleep(5);
    expect((await get(network, '/v1/me')).status).toBe(200);
    expect(await Promise.race([hung, sleep(300).then(() => 'still hanging')])).toBe('still hanging');
    expect(network.requests().map((r) => r.status)).toEqual(['hung', 200]);
    await network.close();
    expect(await hung).toBe('failed');
    await network.close(); // idempotent
    await expect(fetch(`${network.url}/v1/me`)).rejects.toThrow();
  });
});

describe('fake network: counting', () => {
  it('logs requests and summarizes them by status and path', async () => {
    const network = await start({ expiredTokens: ['old'] });
    await get(network, '/v1/me');
    await get(network, '/v1/friends/offset');
    await get(network, '/v1/me', { access_token: 'old' });
    await get(network, '/v1/nope');
    const stats = network.stats();
    expect(stats.total).toBe(4);
    expect(stats.byPath).toEqual({ '/v1/me': 2, '/v1/friends/offset': 1, '/v1/nope': 1 });
    expect(stats.byStatus).toEqual({ '200': 2, [String(EXPIRED_TOKEN_BODIES[0].status)]: 1, '404': 1 });
    expect(network.requests({ token: 'old' })).toEqual([{ at: expect.any(Number), method: 'GET', path: '/v1/me', token: 'old', ip: '127.0.0.1', status: EXPIRED_TOKEN_BODIES[0].status }]);
    expect(network.requests({ path: '/v1/friends' })).toHaveLength(1);
    expect(network.requests((r) => r.status === 404)).toHaveLength(1);
    network.reset();
    expect(network.stats()).toEqual({ total: 0, byStatus: {}, byPath: {} });
  });

  it('maxInWindow finds the densest sliding window, with or without rejected requests', async () => {
    const network = await start({ rateLimits: [{ key: 'token', limit: 2, windowMs: 10_000 }] });
    network.reset();
    const burst = (n: number) => Promise.all(Array.from({ length: n }, () => get(network, '/v1/me')));
    await burst(3); // 2 answered, 1 rejected
    await sleep(250);
    await burst(2); // both rejected: same 10 s window
    const q = { key: 'token', value: ACCOUNT.token } as const;
    expect(network.maxInWindow({ ...q, windowMs: 100 })).toBe(3);
    expect(network.maxInWindow({ ...q, windowMs: 5_000 })).toBe(5);
    expect(network.maxInWindow({ ...q, windowMs: 5_000, countRejected: false })).toBe(2);
    expect(network.maxInWindow({ key: 'ip', value: '127.0.0.1', windowMs: 5_000 })).toBe(5);
    expect(network.maxInWindow({ key: 'ip', value: '10.9.9.9', windowMs: 5_000 })).toBe(0);
    // reset clears the limiter's windows too: the token gets through again at once.
    network.reset();
    expect((await get(network, '/v1/me')).status).toBe(200);
    expect(network.maxInWindow({ ...q, windowMs: 5_000 })).toBe(1);
  });

  it('rejects bad options with a TypeError naming the field', async () => {
    await expect(startFakeNetwork({ errorRate: 1.5 })).rejects.toThrow(/^errorRate/);
    await expect(startFakeNetwork({ rateLimits: [{ key: 'token', limit: 0, windowMs: 100 }] })).rejects.toThrow(/rateLimits\[0\]\.limit/);
    await expect(startFakeNetwork({ accounts: [ACCOUNT, ACCOUNT] })).rejects.toThrow(/accounts\[1\]\.token/);
    await expect(startFakeNetwork({ outage: { afterMs: 0, durationMs: 0 } })).rejects.toThrow(TypeError);
  });
});
