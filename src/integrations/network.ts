/**
 * How to talk to one third-party network: where its API is, how it authenticates, how its
 * friend list pages, what its errors mean and what its rate limits are.
 *
 * Networks are configuration of the workers (like feed types): workflows only carry a network's
 * name, and the import activities look the definition up. Adding a network needs no workflow code.
 * @module
 */
import { ValidationError } from '../contract/errors';
import { checkNetworkName } from '../contract/validation';
import type { ErrorRule } from './error-rules';

/**
 * How a friend list pages.
 * - `offset`: limit/offset with a trustworthy total in the first page; all pages are known after
 *   the first answer and fetched in parallel up to a bound.
 * - `cursor`: each page names the next; pages are chained as soon as each cursor is known.
 * - `unknown-size`: limit/offset whose end is only known by reaching it; a few pages are kept in
 *   flight and the walk stops at the first empty page.
 */
export type PaginationStyle = 'offset' | 'cursor' | 'unknown-size';

/** The friend-list endpoint. */
export interface FriendsEndpoint {
  /** Path below `baseUrl`, e.g. `/v1/friends/offset`. */
  path: string;
  style: PaginationStyle;
  /** Largest page the network serves; asked page sizes are capped to it. @default 100 */
  maxPageSize?: number;
  /** Query parameter names. @default { offset: 'offset', limit: 'limit', cursor: 'cursor' } */
  params?: { offset?: string; limit?: string; cursor?: string };
  /**
   * Response fields (dotted paths). `total` is optional even for `offset`-style lists that are
   * fetched as `unknown-size`; when present it arms the "tiny pages past the total" guard.
   * @default { items: 'items', total: 'total', nextCursor: 'next_cursor', id: 'id', name: 'name' }
   */
  fields?: { items?: string; total?: string; nextCursor?: string; id?: string; name?: string };
}

/** The "who am I" endpoint, called once per import: it checks the token and tells the network's size. */
export interface ProfileEndpoint {
  /** @default '/v1/me' */
  path?: string;
  /** Field with the user's id on the network. @default 'id' */
  idField?: string;
  /** Field with the number of friends, used to route whales to their own queue. @default 'friends_count' */
  sizeField?: string;
}

/**
 * Where a user's activity is shared out (`POST`). The network must honour an idempotency key, as
 * Stripe-style APIs do: a retry after a lost answer (a 5xx for a write that happened) must not
 * post twice.
 */
export interface ShareEndpoint {
  /** @default '/v1/posts' */
  path?: string;
  /** Header carrying the idempotency key. @default 'Idempotency-Key' */
  idempotencyHeader?: string;
  /** Field of the answer with the post's id. @default 'id' */
  idField?: string;
}

/** What a rate limit counts by. `app` is the whole app's quota (`appId`), `ip` the worker's egress address. */
export type RateLimitKey = 'token' | 'app' | 'ip';

/** A published limit: at most `limit` requests in any `windowMs` per key value. */
export interface KnownRateLimit {
  key: RateLimitKey;
  limit: number;
  windowMs: number;
}

/**
 * An unknown limit, learnt by hitting it: additive increase on success, multiplicative decrease
 * on every rate-limit answer (AIMD, as TCP does). Every field is optional.
 */
export interface AdaptiveRateLimit {
  key: RateLimitKey;
  /** Requests per second at first. @default 2 */
  initialPerSecond?: number;
  /** Floor of the rate. @default 0.2 */
  minPerSecond?: number;
  /** Ceiling of the rate. @default 50 */
  maxPerSecond?: number;
  /** Added to the rate after each success. @default 0.25 */
  increasePerSecond?: number;
  /** The rate is multiplied by this on a rate-limit answer. @default 0.5 */
  decreaseFactor?: number;
}

/** A third-party network. */
export interface NetworkDefinition {
  /** Short name used in workflow inputs, ids and counters, e.g. `fakebook`. */
  name: string;
  /** API root without trailing slash, e.g. `https://graph.facebook.com`. */
  baseUrl: string;
  /** How the token is sent. @default { queryParam: 'access_token' } */
  auth?: { queryParam: string } | { bearer: true };
  profile?: ProfileEndpoint;
  friends: FriendsEndpoint;
  /** Sharing activities out; absent when the network takes no posts. */
  share?: ShareEndpoint;
  /** Tried in order before `DEFAULT_ERROR_RULES`; see `FACEBOOK_ERROR_RULES` and friends. @default [] */
  errorRules?: readonly ErrorRule[];
  /** Published limits, enforced across all workers through MongoDB. @default [] */
  rateLimits?: readonly KnownRateLimit[];
  /** Unknown limits, learnt adaptively; state shared through MongoDB. @default [] */
  adaptiveLimits?: readonly AdaptiveRateLimit[];
  /** The app's id on the network: the key value of `app` limits. @default the network name */
  appId?: string;
  /** A single request (connect, headers and body) is aborted after this long. @default 10000 */
  requestTimeoutMs?: number;
  /**
   * A task queue of its own for this network's calls, so Temporal's queue-wide activity rate
   * limit (`QueuePlan.activitiesPerSecond`) can cap it too. @default the import queue
   */
  taskQueue?: string;
  /** False for networks that cannot push updates: their accounts are polled by the trickle schedule. @default false */
  canPush?: boolean;
}

/** The networks a worker knows, by name. */
export type NetworksConfig = Readonly<Record<string, NetworkDefinition>>;

/** A definition with every default filled in. */
export type ResolvedNetwork = Required<Omit<NetworkDefinition, 'profile' | 'friends' | 'auth' | 'share'>> & {
  auth: { queryParam: string } | { bearer: true };
  profile: Required<ProfileEndpoint>;
  /** Null when the network takes no posts. */
  share: Required<ShareEndpoint> | null;
  friends: Required<Omit<FriendsEndpoint, 'params' | 'fields'>> & {
    params: Required<NonNullable<FriendsEndpoint['params']>>;
    fields: Required<NonNullable<FriendsEndpoint['fields']>>;
  };
};

const positive = (field: string, value: unknown, max = Number.MAX_SAFE_INTEGER): number => {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > max) {
    throw new ValidationError(field, `must be a positive number up to ${max}, got ${JSON.stringify(value)}`);
  }
  return value;
};

/** Fills in defaults and checks a definition; throws `ValidationError` naming the field. */
export function resolveNetwork(def: NetworkDefinition, field = `networks.${def?.name}`): ResolvedNetwork {
  if (typeof def !== 'object' || def === null) throw new ValidationError(field, 'must be an object');
  checkNetworkName(`${field}.name`, def.name);
  let base: URL;
  try {
    base = new URL(def.baseUrl);
  } catch {
    throw new ValidationError(`${field}.baseUrl`, `must be an absolute URL, got ${JSON.stringify(def.baseUrl)}`);
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new ValidationError(`${field}.baseUrl`, 'must be http(s)');
  const friends = def.friends;
  if (typeof friends !== 'object' || friends === null || typeof friends.path !== 'string' || !friends.path.startsWith('/')) {
    throw new ValidationError(`${field}.friends.path`, 'must be a path starting with /');
  }
  if (!['offset', 'cursor', 'unknown-size'].includes(friends.style)) {
    throw new ValidationError(`${field}.friends.style`, `must be offset, cursor or unknown-size, got ${JSON.stringify(friends.style)}`);
  }
  (def.rateLimits ?? []).forEach((limit, i) => {
    if (!['token', 'app', 'ip'].includes(limit.key)) throw new ValidationError(`${field}.rateLimits[${i}].key`, 'must be token, app or ip');
    positive(`${field}.rateLimits[${i}].limit`, limit.limit, 1_000_000);
    positive(`${field}.rateLimits[${i}].windowMs`, limit.windowMs, 86_400_000);
    if (!Number.isInteger(limit.limit)) throw new ValidationError(`${field}.rateLimits[${i}].limit`, 'must be an integer');
  });
  (def.adaptiveLimits ?? []).forEach((limit, i) => {
    if (!['token', 'app', 'ip'].includes(limit.key)) throw new ValidationError(`${field}.adaptiveLimits[${i}].key`, 'must be token, app or ip');
    if (limit.decreaseFactor !== undefined && (limit.decreaseFactor <= 0 || limit.decreaseFactor >= 1)) {
      throw new ValidationError(`${field}.adaptiveLimits[${i}].decreaseFactor`, 'must be between 0 and 1 (exclusive)');
    }
  });
  return {
    name: def.name,
    baseUrl: def.baseUrl.replace(/\/+$/, ''),
    auth: def.auth ?? { queryParam: 'access_token' },
    profile: { path: '/v1/me', idField: 'id', sizeField: 'friends_count', ...def.profile },
    share: def.share ? { path: '/v1/posts', idempotencyHeader: 'Idempotency-Key', idField: 'id', ...def.share } : null,
    friends: {
      path: friends.path,
      style: friends.style,
      maxPageSize: positive(`${field}.friends.maxPageSize`, friends.maxPageSize ?? 100, 10_000),
      params: { offset: 'offset', limit: 'limit', cursor: 'cursor', ...friends.params },
      fields: { items: 'items', total: 'total', nextCursor: 'next_cursor', id: 'id', name: 'name', ...friends.fields },
    },
    errorRules: def.errorRules ?? [],
    rateLimits: def.rateLimits ?? [],
    adaptiveLimits: def.adaptiveLimits ?? [],
    appId: def.appId ?? def.name,
    requestTimeoutMs: positive(`${field}.requestTimeoutMs`, def.requestTimeoutMs ?? 10_000, 600_000),
    taskQueue: def.taskQueue ?? '',
    canPush: def.canPush ?? false,
  };
}

/** Resolves every network of a config, checking that each key matches its definition's name. */
export function resolveNetworks(config: NetworksConfig): Map<string, ResolvedNetwork> {
  const out = new Map<string, ResolvedNetwork>();
  for (const [name, def] of Object.entries(config)) {
    const resolved = resolveNetwork(def, `networks.${name}`);
    if (resolved.name !== name) throw new ValidationError(`networks.${name}.name`, `must equal its key "${name}", got "${resolved.name}"`);
    out.set(name, resolved);
  }
  return out;
}

export { readPath } from './json-path';
