/**
 * Per-network error rules: what an answer from a third-party API means for the caller.
 *
 * Networks disagree about how to say "your token is dead" (Facebook alone answers 400 with code
 * 190 and half a dozen subcodes, 102 for legacy sessions, and sometimes 401), and about rate
 * limits (429, or 400 with code 4/17/32/613). A network's definition lists {@link ErrorRule}s
 * that are tried in order before {@link DEFAULT_ERROR_RULES}; the first match decides.
 *
 * Pure: no I/O, so the rules can be unit-tested against canned answers.
 * @module
 */
import { readPath } from './json-path';

/** What the caller should do about an answer. */
export type ErrorKind =
  /** The token expired or was revoked: stop at once, never retry, mark the account for re-authorisation. */
  | 'expired_credentials'
  /** Too many requests: wait as long as the network says (or back off), then try again. */
  | 'rate_limited'
  /** Outage, random 5xx, timeout: retry with exponential backoff and jitter. */
  | 'transient'
  /** The request itself is wrong (other 4xx): retrying cannot help. */
  | 'rejected';

/**
 * One rule. Every condition given must hold; a rule with no condition matches everything.
 *
 * @example Facebook's "session expired" (400, `{"error":{"code":190,"error_subcode":463}}`):
 * { kind: 'expired_credentials', description: 'Facebook OAuthException 190', json: { 'error.code': 190 } }
 */
export interface ErrorRule {
  kind: ErrorKind;
  /** Shown in logs and failure messages, e.g. "Facebook OAuthException 190". */
  description: string;
  /** HTTP status (or any of several). */
  status?: number | readonly number[];
  /** Fields of the JSON body that must equal the given values; dotted paths, array indexes allowed (`errors.0.code`). */
  json?: Readonly<Record<string, string | number | boolean>>;
  /** The raw body must match (a string matches as a case-insensitive substring). */
  text?: RegExp | string;
  /** Headers (lower-case names) whose value must match (a string matches as a case-insensitive substring). */
  headers?: Readonly<Record<string, RegExp | string>>;
}

/** An answer as the HTTP layer saw it. `status` 0 means no answer at all (timeout, reset, refused). */
export interface ApiAnswer {
  status: number;
  /** Lower-case header names. */
  headers: Readonly<Record<string, string>>;
  body: string;
}

/** What {@link classifyAnswer} made of an answer. */
export type Classification =
  | { kind: 'ok' }
  | {
      kind: ErrorKind;
      /** The description of the rule that matched. */
      rule: string;
      /** How long the network asked us to wait (`Retry-After`, `Retry-After-Ms`, or an exhausted `X-RateLimit-Reset`). */
      retryAfterMs?: number;
    };

/**
 * Rules every network gets after its own: 429 means rate limited, 401 means the credentials are
 * no good, 408/425/5xx and "no answer" are transient, any other 4xx is a rejected request.
 */
export const DEFAULT_ERROR_RULES: readonly ErrorRule[] = [
  { kind: 'transient', description: 'no answer (timeout, reset or refused)', status: 0 },
  { kind: 'rate_limited', description: 'HTTP 429', status: 429 },
  { kind: 'expired_credentials', description: 'HTTP 401', status: 401 },
  { kind: 'transient', description: 'HTTP 408/425', status: [408, 425] },
  { kind: 'transient', description: 'HTTP 5xx', status: Array.from({ length: 100 }, (_, i) => 500 + i) },
  { kind: 'rejected', description: 'HTTP 4xx', status: Array.from({ length: 100 }, (_, i) => 400 + i) },
];

/** Facebook Graph API rules (OAuthException codes; see Facebook's "Handling errors" page). */
export const FACEBOOK_ERROR_RULES: readonly ErrorRule[] = [
  // 190 covers expired (463), password changed (460), app removed (458), logged out (467)…
  { kind: 'expired_credentials', description: 'Facebook OAuthException 190 (token expired or revoked)', json: { 'error.code': 190 } },
  { kind: 'expired_credentials', description: 'Facebook 102 (session key invalid)', json: { 'error.code': 102 } },
  { kind: 'rate_limited', description: 'Facebook 4 (application request limit)', json: { 'error.code': 4 } },
  { kind: 'rate_limited', description: 'Facebook 17 (user request limit)', json: { 'error.code': 17 } },
  { kind: 'rate_limited', description: 'Facebook 32 (page request limit)', json: { 'error.code': 32 } },
  { kind: 'rate_limited', description: 'Facebook 613 (calls within one hour exceeded)', json: { 'error.code': 613 } },
  { kind: 'transient', description: 'Facebook 1 (unknown error, possibly temporary)', status: [400, 500], json: { 'error.code': 1 } },
  { kind: 'transient', description: 'Facebook 2 (temporary API error)', status: [400, 500], json: { 'error.code': 2 } },
];

/** Twitter v1.1 rules. */
export const TWITTER_ERROR_RULES: readonly ErrorRule[] = [
  { kind: 'expired_credentials', description: 'Twitter 89 (invalid or expired token)', json: { 'errors.0.code': 89 } },
  { kind: 'rate_limited', description: 'Twitter 88 (rate limit exceeded)', json: { 'errors.0.code': 88 } },
];

/** RFC 6750 bearer-token rules: `WWW-Authenticate: Bearer error="invalid_token"`. */
export const OAUTH2_ERROR_RULES: readonly ErrorRule[] = [
  { kind: 'expired_credentials', description: 'OAuth 2 invalid_token', headers: { 'www-authenticate': 'invalid_token' } },
];

function matchesText(pattern: RegExp | string, value: string): boolean {
  return typeof pattern === 'string' ? value.toLowerCase().includes(pattern.toLowerCase()) : pattern.test(value);
}

function parseBody(answer: ApiAnswer): unknown {
  try {
    return JSON.parse(answer.body);
  } catch {
    return undefined; // HTML from a load balancer, plain text: only text/status rules can match
  }
}

function ruleMatches(rule: ErrorRule, answer: ApiAnswer, body: () => unknown): boolean {
  if (rule.status !== undefined) {
    const statuses = typeof rule.status === 'number' ? [rule.status] : rule.status;
    if (!statuses.includes(answer.status)) return false;
  }
  if (rule.headers) {
    for (const [name, pattern] of Object.entries(rule.headers)) {
      const value = answer.headers[name.toLowerCase()];
      if (value === undefined || !matchesText(pattern, value)) return false;
    }
  }
  if (rule.text !== undefined && !matchesText(rule.text, answer.body)) return false;
  if (rule.json) {
    const parsed = body();
    for (const [path, expected] of Object.entries(rule.json)) if (readPath(parsed, path) !== expected) return false;
  }
  return true;
}

/**
 * How long the answer asks us to wait, in ms: `Retry-After-Ms`, then `Retry-After` (seconds or an
 * HTTP date), then `X-RateLimit-Reset` (epoch seconds) when `X-RateLimit-Remaining` is 0.
 * Undefined when the answer says nothing.
 */
export function retryAfterMs(headers: Readonly<Record<string, string>>, now: number): number | undefined {
  const ms = headers['retry-after-ms'];
  if (ms !== undefined && /^\d+(\.\d+)?$/.test(ms.trim())) return Math.ceil(Number(ms));
  const after = headers['retry-after'];
  if (after !== undefined) {
    if (/^\d+$/.test(after.trim())) return Number(after) * 1000;
    const date = Date.parse(after);
    if (!Number.isNaN(date)) return Math.max(0, date - now);
  }
  const reset = headers['x-ratelimit-reset'];
  if (headers['x-ratelimit-remaining']?.trim() === '0' && reset !== undefined && /^\d+$/.test(reset.trim())) {
    return Math.max(0, Number(reset) * 1000 - now);
  }
  return undefined;
}

/**
 * Classifies an answer with a network's rules, then {@link DEFAULT_ERROR_RULES}. 2xx and 3xx
 * are `ok` (a 2xx body is never searched for error codes).
 */
export function classifyAnswer(rules: readonly ErrorRule[], answer: ApiAnswer, now: number): Classification {
  if (answer.status >= 200 && answer.status < 400) return { kind: 'ok' };
  let parsed: { value: unknown } | undefined;
  const body = (): unknown => (parsed ??= { value: parseBody(answer) }).value;
  for (const rule of [...rules, ...DEFAULT_ERROR_RULES]) {
    if (!ruleMatches(rule, answer, body)) continue;
    const wait = rule.kind === 'rate_limited' ? retryAfterMs(answer.headers, now) : undefined;
    return wait === undefined ? { kind: rule.kind, rule: rule.description } : { kind: rule.kind, rule: rule.description, retryAfterMs: wait };
  }
  // Unreachable for real statuses (the defaults cover 0 and 4xx/5xx), but a 1xx or 6xx is odd: treat as transient.
  return { kind: 'transient', rule: `unexpected HTTP ${answer.status}` };
}
