/**
 * A fake third-party social-network API on loopback, for tests of clients that must survive one:
 * rate limits keyed by token or by IP (published in headers or not), many ways of saying "expired
 * token", pagination with LinkedIn-style and cursor-loop bugs, random 5xx, outages, slow and hung
 * responses. It logs every request it receives, so a test can assert what the client did, e.g.
 * that a fleet of workers never sent more than the limit in any window.
 *
 * @example
 * const network = await startFakeNetwork({ accounts: [{ token: 't1', userId: 'u1', friends: 250 }] });
 * const page = await (await fetch(`${network.url}/v1/friends/offset?access_token=t1&limit=100`)).json();
 * await network.close();
 * @module
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/** One user of the fake network. */
export interface FakeAccount {
  /** Access token that authenticates as this user (`access_token` query parameter). */
  token: string;
  /** The user's id, answered by `/v1/me` and the stem of the friend ids. */
  userId: string;
  /** Number of friends; friend `i` is `${userId}-f${i}`. Generated per page, so whales are cheap. */
  friends: number;
}

/** A fixed-window limit. Windows are aligned to multiples of `windowMs` since start (or `reset()`). */
export interface RateLimitRule {
  /** What the limit counts by: the access token, or the client IP (Twitter limits some calls by IP). */
  key: 'token' | 'ip';
  /** Requests allowed per window; the next one gets 429. */
  limit: number;
  /** Window length in milliseconds. */
  windowMs: number;
  /** Send `X-RateLimit-*` headers; false makes the client find the limit only by hitting it. @default true */
  published?: boolean | undefined;
  /** Send `Retry-After` (and `Retry-After-Ms`) on 429 for this limit. @default true */
  retryAfter?: boolean | undefined;
}

/** Options of {@link startFakeNetwork}. Every field is optional. */
export interface FakeNetworkOptions {
  /** Port on 127.0.0.1; 0 picks a free one. @default 0 */
  port?: number;
  /** Known users. Any other token gets 401 code 190. @default [] */
  accounts?: FakeAccount[];
  /** Tokens answered with one of {@link EXPIRED_TOKEN_BODIES}, in rotation. @default [] */
  expiredTokens?: string[];
  /** Largest page any friends endpoint returns, and the page size when none is asked. @default 100 */
  maxPageSize?: number;
  /** Limits applied to every answered request (see {@link RateLimitRule}). Changeable at run time. @default [] */
  rateLimits?: RateLimitRule[];
  /** Fraction (0..1) of requests answered with a random 500/502/503. Changeable at run time. @default 0 */
  errorRate?: number;
  /** Seed of the PRNG behind `errorRate`, so a run repeats. @default 1 */
  seed?: number;
  /**
   * When true, a random failure drawn for `POST /v1/posts` is sent after the post is stored: the
   * client sees a 5xx for a write that happened, which is what idempotency keys are for. @default false
   */
  errorsAfterWrite?: boolean;
  /** An outage `afterMs` after start lasting `durationMs`: every request gets 503. @default undefined (none) */
  outage?: { afterMs: number; durationMs: number } | undefined;
  /** Delay added to every response. Changeable at run time. @default 0 */
  latencyMs?: number | undefined;
  /** Extra delay by path prefix; the longest matching prefix wins. @default {} */
  slowPaths?: Record<string, number>;
}

/** A friend object as the endpoints return it. */
export interface Friend {
  id: string;
  name: string;
}

/** Answer status in the log: an HTTP status, `'hung'` (never answered) or `'pending'` (body still being read). */
export type RequestStatus = number | 'hung' | 'pending';

/** One request as the fake network received it. */
export interface ReceivedRequest {
  /** Receipt time, epoch ms. Rate-limit windows use the same clock reading. */
  at: number;
  method: string;
  path: string;
  /** `access_token` query parameter, '' when absent. */
  token: string;
  /** `X-Client-Ip` header if present, else the socket address. */
  ip: string;
  status: RequestStatus;
}

/** Filter of {@link FakeNetwork.requests}: every given field must match (`path` as a prefix). */
export type RequestFilter = Partial<Omit<ReceivedRequest, 'at'>> | ((request: ReceivedRequest) => boolean);

/** Query of {@link FakeNetwork.maxInWindow}. */
export interface MaxInWindowQuery {
  key: 'token' | 'ip';
  value: string;
  windowMs: number;
  /** Count requests answered 429 too; false counts only the ones that got through. @default true */
  countRejected?: boolean;
}

/** Counters of {@link FakeNetwork.stats}. */
export interface FakeNetworkStats {
  total: number;
  /** By status as a string: `'200'`, `'429'`, `'hung'`… */
  byStatus: Record<string, number>;
  byPath: Record<string, number>;
}

/** A post created by `POST /v1/posts`. */
export interface CreatedPost {
  id: string;
  userId: string;
  idempotencyKey?: string | undefined;
  body: unknown;
  at: number;
}

/** A response as the fake network sends it. */
export interface CannedResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** An expired-token answer, with what it imitates. */
export interface ExpiredTokenResponse extends CannedResponse {
  description: string;
}

/**
 * A running fake network. Changeable at run time: error rate, latency, rate limits, outages and
 * hangs, expired tokens (the methods below). Fixed at start: accounts, page size, seed, slow paths.
 */
export interface FakeNetwork {
  /** `http://127.0.0.1:PORT`, no trailing slash. */
  readonly url: string;
  /** The port actually bound (useful with `port: 0`). */
  readonly port: number;
  /** Every request received since start or `reset()`, in receipt order (copies). */
  requests(filter?: RequestFilter): ReceivedRequest[];
  stats(): FakeNetworkStats;
  /** Most requests from one token or IP received in any sliding window of `windowMs`. */
  maxInWindow(query: MaxInWindowQuery): number;
  /** Posts created so far (kept across `reset()`, like accounts). */
  posts(): CreatedPost[];
  /** The next `n` requests are never answered: their sockets stay open until `close()`. Replaces any earlier count. */
  hangNext(n: number): void;
  /** From the next request on, `token` is answered as expired (the user revoked the app mid-import). */
  expireToken(token: string): void;
  /** Every request gets 503 until `endOutage()`. */
  startOutage(): void;
  /** Ends a manual outage and cancels the `outage` option's window. */
  endOutage(): void;
  /** Changes `errorRate` from the next request on. */
  setErrorRate(rate: number): void;
  /** Changes `latencyMs` for responses not yet scheduled. */
  setLatency(ms: number): void;
  /** Replaces the limits and clears their counters. */
  setRateLimits(rules: RateLimitRule[]): void;
  /** Clears the log, rate-limit counters and windows, the expired-token rotation and the PRNG; not accounts or posts. */
  reset(): void;
  /** Stops listening and destroys every socket, hung ones included. Idempotent. */
  close(): Promise<void>;
}

function json(status: number, value: unknown, headers: Record<string, string> = {}): CannedResponse {
  return { status, headers: { 'content-type': 'application/json; charset=utf-8', ...headers }, body: JSON.stringify(value) };
}

function plain(status: number, body: string, contentType = 'text/plain; charset=utf-8', headers: Record<string, string> = {}): CannedResponse {
  return { status, headers: { 'content-type': contentType, ...headers }, body };
}

const fbError = (status: number, code: number, message: string, extra: Record<string, unknown> = {}): CannedResponse =>
  json(status, { error: { message, type: 'OAuthException', code, ...extra, fbtrace_id: 'AbCdEf123' } });

/**
 * The ways the network says "this token no longer works", rotated per request. Real networks
 * have many more (Facebook alone has 10+), and they don't share a status or even a content type:
 * a client has to classify all of them as "re-authenticate", not "retry".
 */
export const EXPIRED_TOKEN_BODIES: readonly ExpiredTokenResponse[] = [
  { description: 'Facebook: session expired (190/463)', ...fbError(400, 190, 'Error validating access token: Session has expired on Tuesday, 01-Jan-19 00:00:00 PST. The current time is Wednesday, 02-Jan-19 10:00:00 PST.', { error_subcode: 463 }) },
  { description: 'Facebook: password changed (190/460)', ...json(400, { error: { message: 'Error validating access token: The session has been invalidated because the user changed their password or Facebook has changed the session for security reasons.', code: 190, error_subcode: 460 } }) },
  { description: 'Facebook: app deauthorized (190/458)', ...fbError(400, 190, 'Error validating access token: The user has not authorized application 123456789.', { error_subcode: 458 }) },
  { description: 'Facebook legacy: session key invalid (102)', ...fbError(400, 102, 'Session key invalid or no longer valid') },
  { description: 'OAuth 2 bearer: plain-text invalid_token', ...plain(401, 'invalid_token', 'text/plain; charset=utf-8', { 'www-authenticate': 'Bearer error="invalid_token", error_description="The access token expired"' }) },
  { description: 'Twitter: invalid or expired token (89)', ...json(401, { errors: [{ code: 89, message: 'Invalid or expired token.' }] }) },
];

const INVALID_TOKEN = fbError(401, 190, 'Invalid OAuth access token.');
const RATE_LIMITED = fbError(429, 4, 'Application request limit reached');
// Outages come from the load balancer, not the API: HTML, and no Retry-After to go by.
const OUTAGE = plain(503, '<html><body><h1>503 Service Unavailable</h1>No server is available to handle this request.</body></html>', 'text/html; charset=utf-8');
// Random failures come in different shapes too, so a client can't key retries on a JSON body.
const RANDOM_FAILURES: readonly CannedResponse[] = [
  json(500, { error: { message: 'An unexpected error has occurred. Please retry your request later.', type: 'OAuthException', code: 2 } }),
  plain(502, '<html><body>502 Bad Gateway</body></html>', 'text/html; charset=utf-8'),
  plain(503, 'Service Unavailable'),
];

/** Ids of the first `count` friends of `userId`, as the fake network generates them. */
export function friendIds(userId: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${userId}-f${i}`);
}

const friend = (userId: string, i: number): Friend => ({ id: `${userId}-f${i}`, name: `Friend ${i} of ${userId}` });
const friendRange = (account: FakeAccount, from: number, to: number): Friend[] => {
  const items: Friend[] = [];
  for (let i = from; i < Math.min(to, account.friends); i++) items.push(friend(account.userId, i));
  return items;
};
const encodeCursor = (offset: number): string => Buffer.from(`o:${offset}`).toString('base64url');
const decodeCursor = (cursor: string): number | undefined => {
  const m = /^o:(\d+)$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  return m ? Number(m[1]) : undefined;
};

/** Small fast PRNG (mulberry32): enough for "which request fails", and repeatable from a seed. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function check(ok: boolean, field: string, rule: string): void {
  if (!ok) throw new TypeError(`${field} ${rule}`);
}
const isCount = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 0;
const isDuration = (n: unknown): n is number => typeof n === 'number' && Number.isFinite(n) && n >= 0;

function checkRules(rules: RateLimitRule[], field: string): Required<RateLimitRule>[] {
  return rules.map((rule, i) => {
    check(rule.key === 'token' || rule.key === 'ip', `${field}[${i}].key`, "must be 'token' or 'ip'");
    check(isCount(rule.limit) && rule.limit > 0, `${field}[${i}].limit`, 'must be a positive integer');
    check(isDuration(rule.windowMs) && rule.windowMs > 0, `${field}[${i}].windowMs`, 'must be a positive number');
    return { ...rule, published: rule.published ?? true, retryAfter: rule.retryAfter ?? true };
  });
}

/** Defaults of {@link FakeNetworkOptions}, spread under the caller's options. */
const defaults = (): Required<Omit<FakeNetworkOptions, 'outage'>> & Pick<FakeNetworkOptions, 'outage'> => ({
  port: 0, accounts: [], expiredTokens: [], maxPageSize: 100, rateLimits: [], errorRate: 0, seed: 1,
  errorsAfterWrite: false, outage: undefined, latencyMs: 0, slowPaths: {},
});

/** Starts a fake social network on 127.0.0.1; see {@link FakeNetworkOptions} for its behaviour. */
export async function startFakeNetwork(options: FakeNetworkOptions = {}): Promise<FakeNetwork> {
  // Drop explicit undefineds first, so `{ latencyMs: undefined }` means the default, not "unset".
  const given = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as FakeNetworkOptions;
  const opts = { ...defaults(), ...given };
  check(isCount(opts.port) && opts.port < 65536, 'port', 'must be an integer in 0..65535');
  check(isCount(opts.maxPageSize) && opts.maxPageSize > 0, 'maxPageSize', 'must be a positive integer');
  check(opts.errorRate >= 0 && opts.errorRate <= 1, 'errorRate', 'must be in 0..1');
  check(isDuration(opts.latencyMs), 'latencyMs', 'must be a non-negative number');
  for (const [prefix, ms] of Object.entries(opts.slowPaths)) check(isDuration(ms), `slowPaths['${prefix}']`, 'must be a non-negative number');
  if (opts.outage) {
    check(isDuration(opts.outage.afterMs), 'outage.afterMs', 'must be a non-negative number');
    check(isDuration(opts.outage.durationMs) && opts.outage.durationMs > 0, 'outage.durationMs', 'must be a positive number');
  }
  const byToken = new Map<string, FakeAccount>();
  opts.accounts.forEach((a, i) => {
    check(typeof a.token === 'string' && a.token !== '' && !byToken.has(a.token), `accounts[${i}].token`, 'must be a unique non-empty string');
    check(typeof a.userId === 'string' && a.userId !== '', `accounts[${i}].userId`, 'must be a non-empty string');
    check(isCount(a.friends), `accounts[${i}].friends`, 'must be a non-negative integer');
    byToken.set(a.token, { ...a });
  });
  const expired = new Set(opts.expiredTokens);

  let rules = checkRules(opts.rateLimits, 'rateLimits');
  let { errorRate, latencyMs } = opts;
  let origin = Date.now();
  let random = mulberry32(opts.seed);
  let log: ReceivedRequest[] = [];
  let counters = new Map<string, { window: number; count: number }>();
  let expiredTurn = 0;
  let hangsLeft = 0;
  let manualOutage = false;
  let scheduled = opts.outage ? { from: origin + opts.outage.afterMs, to: origin + opts.outage.afterMs + opts.outage.durationMs } : undefined;
  const posts: CreatedPost[] = [];
  const postsByKey = new Map<string, CreatedPost>();
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();

  /** Counts the request against every limit; says whether one is exceeded and what headers to send. */
  function countAgainstLimits(entry: ReceivedRequest): { exceeded: boolean; headers: Record<string, string>; retryHeaders: Record<string, string> } {
    let exceeded = false;
    let retryAfterMs: number | undefined;
    let tightest: { limit: number; remaining: number; end: number } | undefined;
    rules.forEach((rule, i) => {
      const window = Math.floor((entry.at - origin) / rule.windowMs);
      const slot = `${i}\u0000${rule.key === 'token' ? entry.token : entry.ip}`;
      let counter = counters.get(slot);
      if (!counter || counter.window !== window) counters.set(slot, (counter = { window, count: 0 }));
      // Rejected requests count too, as with a shared counter at the API's edge: hammering on a
      // 429 keeps the client locked out rather than slipping through.
      counter.count++;
      const end = origin + (window + 1) * rule.windowMs;
      if (counter.count > rule.limit) {
        exceeded = true;
        if (rule.retryAfter) retryAfterMs = Math.max(retryAfterMs ?? 0, end - entry.at);
      }
      const remaining = Math.max(0, rule.limit - counter.count);
      // Several published limits share one set of header names: show the one closest to biting.
      if (rule.published && (!tightest || remaining < tightest.remaining)) tightest = { limit: rule.limit, remaining, end };
    });
    const headers: Record<string, string> = {};
    if (tightest) {
      headers['x-ratelimit-limit'] = String(tightest.limit);
      headers['x-ratelimit-remaining'] = String(tightest.remaining);
      headers['x-ratelimit-reset'] = String(Math.ceil(tightest.end / 1000));
    }
    // Whole seconds are too coarse for tests with 200 ms windows, hence also `Retry-After-Ms` (as Azure sends).
    const retryHeaders: Record<string, string> =
      exceeded && retryAfterMs !== undefined ? { 'retry-after': String(Math.ceil(retryAfterMs / 1000)), 'retry-after-ms': String(retryAfterMs) } : {};
    return { exceeded, headers, retryHeaders };
  }

  const inOutage = (at: number): boolean => manualOutage || (scheduled !== undefined && at >= scheduled.from && at < scheduled.to);

  function pageParam(url: URL, name: string, fallback: number, min: number): number | undefined {
    const raw = url.searchParams.get(name);
    if (raw === null) return fallback;
    const n = /^\d+$/.test(raw) ? Number(raw) : NaN;
    return n >= min ? n : undefined;
  }
  const badParam = (message: string): CannedResponse => json(400, { error: { message: `(#100) ${message}`, type: 'GraphMethodException', code: 100 } });

  async function readJson(req: IncomingMessage): Promise<unknown> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    try {
      return JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      return undefined;
    }
  }

  /** What the API proper answers for an authenticated request. */
  async function route(req: IncomingMessage, url: URL, account: FakeAccount, at: number): Promise<CannedResponse> {
    const total = account.friends;
    // Asking for more than the cap is not an error, just quietly capped, as most networks do.
    const requested = pageParam(url, url.pathname.endsWith('/buggy') ? 'count' : 'limit', opts.maxPageSize, 1);
    const size = Math.min(requested ?? opts.maxPageSize, opts.maxPageSize);
    if (requested === undefined && url.pathname.startsWith('/v1/friends/')) return badParam('Param limit/count must be a positive integer');
    const cursorOffset = (): number | undefined => {
      const cursor = url.searchParams.get('cursor');
      return cursor === null ? 0 : decodeCursor(cursor);
    };
    switch (`${req.method} ${url.pathname}`) {
      case 'GET /v1/me':
        // Like Twitter's `friends_count` or Facebook's `summary.total_count`: the size, before paging.
        return json(200, { id: account.userId, friends_count: total });
      case 'GET /v1/friends/offset': {
        const offset = pageParam(url, 'offset', 0, 0);
        if (offset === undefined) return badParam('Param offset must be a non-negative integer');
        return json(200, { total, offset, limit: size, items: friendRange(account, offset, offset + size) });
      }
      case 'GET /v1/friends/cursor': {
        const offset = cursorOffset();
        if (offset === undefined) return badParam('Invalid cursor');
        return json(200, { items: friendRange(account, offset, offset + size), next_cursor: offset + size < total ? encodeCursor(offset + size) : null });
      }
      case 'GET /v1/friends/buggy': {
        const start = pageParam(url, 'start', 0, 0);
        if (start === undefined) return badParam('Param start must be a non-negative integer');
        // The bug: past the end, a 1-item page of a friend who doesn't exist, never an empty
        // page. Only a client that trusts `total` (or caps pages) stops; a naive one imports ghosts.
        const items = start < total ? friendRange(account, start, start + size) : [friend(account.userId, start)];
        return json(200, { total, start, count: size, items });
      }
      case 'GET /v1/friends/cursor-loop': {
        const offset = cursorOffset();
        if (offset === undefined) return badParam('Invalid cursor');
        if (offset < total) return json(200, { items: friendRange(account, offset, offset + size), next_cursor: encodeCursor(Math.min(offset + size, total)) });
        // Past the end: the last friend again and the cursor just given, so neither "stop at an
        // empty page" nor "stop at a null cursor" ends the loop; only noticing the repeat does.
        return json(200, { items: total > 0 ? [friend(account.userId, total - 1)] : [], next_cursor: encodeCursor(offset) });
      }
      case 'POST /v1/posts': {
        const body = await readJson(req);
        if (typeof body !== 'object' || body === null || Array.isArray(body)) return badParam('Body must be a JSON object');
        const key = req.headers['idempotency-key'];
        const idempotencyKey = typeof key === 'string' && key !== '' ? key : undefined;
        // Keys are scoped per user, as Stripe does: two users may pick the same key.
        const slot = `${account.userId}\u0000${idempotencyKey}`;
        const existing = idempotencyKey === undefined ? undefined : postsByKey.get(slot);
        if (existing) return json(201, { id: existing.id }, { 'idempotent-replayed': 'true' });
        const post: CreatedPost = { id: `post-${posts.length + 1}`, userId: account.userId, idempotencyKey, body, at };
        posts.push(post);
        if (idempotencyKey !== undefined) postsByKey.set(slot, post);
        return json(201, { id: post.id });
      }
      default:
        return json(404, { error: { message: `Unknown path components: ${url.pathname}`, type: 'OAuthException', code: 2500 } });
    }
  }

  /** The whole pipeline after rate limiting: outage, 429, random failure, token checks, the API. */
  async function answer(req: IncomingMessage, url: URL, entry: ReceivedRequest, exceeded: boolean): Promise<CannedResponse> {
    if (inOutage(entry.at)) return OUTAGE;
    if (exceeded) return RATE_LIMITED;
    // Two draws per request whatever happens, so whether request n fails, and how, depends only
    // on n, the seed and the rate: a run repeats even after setErrorRate().
    const [roll, pick] = [random(), random()];
    const failure = roll < errorRate ? RANDOM_FAILURES[Math.floor(pick * RANDOM_FAILURES.length)] : undefined;
    const isWrite = req.method === 'POST' && url.pathname === '/v1/posts';
    if (failure && !(opts.errorsAfterWrite && isWrite)) return failure;
    if (expired.has(entry.token)) return EXPIRED_TOKEN_BODIES[expiredTurn++ % EXPIRED_TOKEN_BODIES.length];
    const account = byToken.get(entry.token);
    if (!account) return INVALID_TOKEN;
    const reply = await route(req, url, account, entry.at);
    return failure ?? reply;
  }

  function delayFor(path: string): number {
    let longest = -1;
    let extra = 0;
    for (const [prefix, ms] of Object.entries(opts.slowPaths)) {
      if (path.startsWith(prefix) && prefix.length > longest) [longest, extra] = [prefix.length, ms];
    }
    return (latencyMs ?? 0) + extra;
  }

  function send(res: ServerResponse, reply: CannedResponse, extra: Record<string, string>, delayMs: number): void {
    const write = (): void => {
      if (res.destroyed || res.writableEnded) return;
      const body = Buffer.from(reply.body);
      res.writeHead(reply.status, { ...reply.headers, ...extra, 'content-length': String(body.length) });
      res.end(body);
    };
    if (delayMs <= 0) return write();
    const timer = setTimeout(() => {
      timers.delete(timer);
      write();
    }, delayMs);
    timers.add(timer);
  }

  const server = createServer((req, res) => {
    const at = Date.now();
    const url = new URL(req.url ?? '/', 'http://fake.invalid');
    const forwarded = req.headers['x-client-ip'];
    const ip = (Array.isArray(forwarded) ? forwarded[0] : forwarded) ?? (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    const entry: ReceivedRequest = { at, method: req.method ?? 'GET', path: url.pathname, token: url.searchParams.get('access_token') ?? '', ip, status: 'pending' };
    log.push(entry);
    if (hangsLeft > 0) {
      // Like a request lost behind a dead proxy: the API never sees it, so it costs no quota.
      hangsLeft--;
      entry.status = 'hung';
      return;
    }
    // Every answered request counts, outages and errors included, so a client that hammers a
    // failing API also burns its quota.
    const gate = countAgainstLimits(entry);
    answer(req, url, entry, gate.exceeded).then(
      (reply) => {
        entry.status = reply.status;
        // Only a 429 says when to come back; a 503 during an outage gives no hint.
        const headers = reply === RATE_LIMITED ? { ...gate.headers, ...gate.retryHeaders } : gate.headers;
        req.resume(); // drain any unread body so the connection can be reused
        send(res, reply, headers, delayFor(entry.path));
      },
      (err: unknown) => {
        entry.status = 500;
        send(res, plain(500, `fake network bug: ${String(err)}`), {}, 0);
      },
    );
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : opts.port;
  let closing: Promise<void> | undefined;

  const matches = (r: ReceivedRequest, f: Partial<Omit<ReceivedRequest, 'at'>>): boolean =>
    (f.path === undefined || r.path.startsWith(f.path)) &&
    (['method', 'token', 'ip', 'status'] as const).every((k) => f[k] === undefined || f[k] === r[k]);

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests(filter) {
      const keep = typeof filter === 'function' ? filter : (r: ReceivedRequest) => filter === undefined || matches(r, filter);
      return log.filter((r) => keep({ ...r })).map((r) => ({ ...r }));
    },
    stats() {
      const byStatus: Record<string, number> = {};
      const byPath: Record<string, number> = {};
      for (const r of log) {
        byStatus[String(r.status)] = (byStatus[String(r.status)] ?? 0) + 1;
        byPath[r.path] = (byPath[r.path] ?? 0) + 1;
      }
      return { total: log.length, byStatus, byPath };
    },
    maxInWindow({ key, value, windowMs, countRejected = true }) {
      check(isDuration(windowMs) && windowMs > 0, 'windowMs', 'must be a positive number');
      const times = log
        .filter((r) => r[key] === value && (countRejected || r.status !== 429))
        .map((r) => r.at)
        .sort((a, b) => a - b);
      // Two pointers over sorted times: the largest set with last - first < windowMs.
      let best = 0;
      for (let lo = 0, hi = 0; hi < times.length; hi++) {
        while (times[hi] - times[lo] >= windowMs) lo++;
        best = Math.max(best, hi - lo + 1);
      }
      return best;
    },
    posts: () => posts.map((p) => ({ ...p })),
    expireToken(token) {
      expired.add(token);
    },
    hangNext(n) {
      check(isCount(n), 'n', 'must be a non-negative integer');
      hangsLeft = n;
    },
    startOutage() {
      manualOutage = true;
    },
    endOutage() {
      manualOutage = false;
      scheduled = undefined;
    },
    setErrorRate(rate) {
      check(rate >= 0 && rate <= 1, 'errorRate', 'must be in 0..1');
      errorRate = rate;
    },
    setLatency(ms) {
      check(isDuration(ms), 'latencyMs', 'must be a non-negative number');
      latencyMs = ms;
    },
    setRateLimits(next) {
      rules = checkRules(next, 'rateLimits');
      counters = new Map();
    },
    reset() {
      log = [];
      counters = new Map();
      origin = Date.now();
      expiredTurn = 0;
      random = mulberry32(opts.seed);
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        for (const timer of timers) clearTimeout(timer);
        timers.clear();
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
      return closing;
    },
  };
}
