/** Per-network error rules against the fake network's canned answers, and network definitions' validation. */
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/contract/errors';
import {
  type ApiAnswer,
  classifyAnswer,
  FACEBOOK_ERROR_RULES,
  OAUTH2_ERROR_RULES,
  retryAfterMs,
  TWITTER_ERROR_RULES,
} from '../../src/integrations/error-rules';
import { resolveNetwork, resolveNetworks } from '../../src/integrations/network';
import { EXPIRED_TOKEN_BODIES } from '../fake-network/server';

const RULES = [...FACEBOOK_ERROR_RULES, ...TWITTER_ERROR_RULES, ...OAUTH2_ERROR_RULES];
const NOW = Date.UTC(2026, 10, 23, 12);
const answer = (status: number, body: unknown = '', headers: Record<string, string> = {}): ApiAnswer => ({
  status,
  headers,
  body: typeof body === 'string' ? body : JSON.stringify(body),
});

describe('classifyAnswer', () => {
  it.each(EXPIRED_TOKEN_BODIES.map((b) => [b.description, b] as const))('%s means expired credentials', (_, canned) => {
    const verdict = classifyAnswer(RULES, { status: canned.status, headers: canned.headers, body: canned.body }, NOW);
    expect(verdict.kind).toBe('expired_credentials');
  });

  it('without the network rules, a Facebook 400/190 is only a rejected request', () => {
    const canned = EXPIRED_TOKEN_BODIES[0];
    expect(classifyAnswer([], { status: canned.status, headers: canned.headers, body: canned.body }, NOW).kind).toBe('rejected');
  });

  it('rate limits, with and without Retry-After', () => {
    expect(classifyAnswer(RULES, answer(429, { error: { code: 4 } }, { 'retry-after': '3' }), NOW)).toMatchObject({ kind: 'rate_limited', retryAfterMs: 3000 });
    expect(classifyAnswer(RULES, answer(429, { error: { code: 4 } }, { 'retry-after-ms': '250', 'retry-after': '1' }), NOW)).toMatchObject({ retryAfterMs: 250 });
    // Facebook's user-level limit comes as a 400 with code 17, no header.
    const fb17 = classifyAnswer(RULES, answer(400, { error: { code: 17, message: 'User request limit reached' } }), NOW);
    expect(fb17).toEqual({ kind: 'rate_limited', rule: 'Facebook 17 (user request limit)' });
    expect(classifyAnswer(RULES, answer(429, { errors: [{ code: 88 }] }), NOW)).toEqual({ kind: 'rate_limited', rule: 'Twitter 88 (rate limit exceeded)' });
  });

  it('outages, random 5xx and no answer are transient; other 4xx are rejected; 2xx is ok', () => {
    expect(classifyAnswer(RULES, answer(503, '<html>503 Service Unavailable</html>'), NOW).kind).toBe('transient');
    expect(classifyAnswer(RULES, answer(500, { error: { code: 2 } }), NOW).kind).toBe('transient');
    expect(classifyAnswer(RULES, answer(0), NOW).kind).toBe('transient');
    expect(classifyAnswer(RULES, answer(404, { error: { code: 2500 } }), NOW).kind).toBe('rejected');
    expect(classifyAnswer(RULES, answer(200, { error: { code: 190 } }), NOW).kind).toBe('ok');
  });

  it('a network rule can match on text and headers, and wins over the defaults', () => {
    const rules = [{ kind: 'transient' as const, description: 'maintenance page', status: 403, text: 'down for maintenance' }];
    expect(classifyAnswer(rules, answer(403, '<h1>Down for Maintenance</h1>'), NOW)).toEqual({ kind: 'transient', rule: 'maintenance page' });
    expect(classifyAnswer(rules, answer(403, 'forbidden'), NOW).kind).toBe('rejected');
  });
});

describe('retryAfterMs', () => {
  it('reads Retry-After-Ms, Retry-After seconds and dates, and an exhausted X-RateLimit-Reset', () => {
    expect(retryAfterMs({ 'retry-after-ms': '1500' }, NOW)).toBe(1500);
    expect(retryAfterMs({ 'retry-after': '2' }, NOW)).toBe(2000);
    expect(retryAfterMs({ 'retry-after': new Date(NOW + 5000).toUTCString() }, NOW)).toBe(5000);
    expect(retryAfterMs({ 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': String(NOW / 1000 + 7) }, NOW)).toBe(7000);
    expect(retryAfterMs({ 'x-ratelimit-remaining': '3', 'x-ratelimit-reset': String(NOW / 1000 + 7) }, NOW)).toBeUndefined();
    expect(retryAfterMs({ 'retry-after': 'soon' }, NOW)).toBeUndefined();
  });
});

describe('network definitions', () => {
  const base = { name: 'fb', baseUrl: 'https://graph.example.com/', friends: { path: '/me/friends', style: 'cursor' as const } };

  it('fills in defaults', () => {
    const net = resolveNetwork(base);
    expect(net).toMatchObject({ baseUrl: 'https://graph.example.com', auth: { queryParam: 'access_token' }, requestTimeoutMs: 10_000, canPush: false });
    expect(net.friends.fields).toMatchObject({ items: 'items', nextCursor: 'next_cursor' });
  });

  it.each([
    [{ ...base, name: 'Face Book' }, 'networks.x.name'],
    [{ ...base, baseUrl: 'graph' }, 'networks.x.baseUrl'],
    [{ ...base, friends: { path: 'me', style: 'cursor' } }, 'networks.x.friends.path'],
    [{ ...base, friends: { path: '/me', style: 'pages' } }, 'networks.x.friends.style'],
    [{ ...base, rateLimits: [{ key: 'user', limit: 1, windowMs: 1 }] }, 'networks.x.rateLimits[0].key'],
    [{ ...base, rateLimits: [{ key: 'token', limit: 0, windowMs: 1000 }] }, 'networks.x.rateLimits[0].limit'],
    [{ ...base, adaptiveLimits: [{ key: 'token', decreaseFactor: 2 }] }, 'networks.x.adaptiveLimits[0].decreaseFactor'],
    [{ ...base, requestTimeoutMs: -1 }, 'networks.x.requestTimeoutMs'],
  ])('rejects a bad definition, naming the field (%#)', (def, field) => {
    expect(() => resolveNetwork(def as never, 'networks.x')).toThrow(expect.objectContaining({ field }));
    expect(() => resolveNetwork(def as never, 'networks.x')).toThrow(ValidationError);
  });

  it('a config key must match its network name', () => {
    expect(() => resolveNetworks({ other: base })).toThrow(expect.objectContaining({ field: 'networks.other.name' }));
  });
});
