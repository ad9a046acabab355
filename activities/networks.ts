/**
 * Activities that call third-party networks: friend imports and sharing activities out. Each
 * makes at most one API call, takes primitive arguments (ids, page numbers, cursors), loads what
 * it needs itself (the token, a staged page, the activity) and has idempotent effects, so Temporal
 * may retry any of them.
 *
 * How an API answer becomes a Temporal outcome:
 * - rate limited (by our shared limiter before the call, or by the network) → a `wait` result:
 *   the workflow sleeps on a durable timer and calls again. No worker slot is held while waiting
 *   and no retry attempt is spent;
 * - expired or revoked credentials → the account is marked for re-authorisation and the activity
 *   fails with a non-retryable `CredentialsExpired` failure: no retry can fix a dead token;
 * - transient (5xx, outage, timeout, reset) → a retryable failure whose `nextRetryDelay` is an
 *   exponential backoff with jitter, so a fleet of workers does not retry in lockstep;
 * - rejected (other 4xx) → non-retryable `ApiRequestRejected`.
 * @module
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import {
  API_REJECTED_FAILURE_TYPE,
  API_TRANSIENT_FAILURE_TYPE,
  CREDENTIALS_EXPIRED_FAILURE_TYPE,
  ValidationError,
} from '../src/contract/errors';
import { classifyAnswer } from '../src/integrations/error-rules';
import { RequestCancelledError, sendRequest, type NetworkRequest } from '../src/integrations/http';
import type { NetworkStore, NetworkAccountDoc } from '../src/integrations/network-store';
import { type NetworksConfig, readPath, type ResolvedNetwork, resolveNetworks } from '../src/integrations/network';
import { bucketId, type BucketRequest, SharedRateLimiter } from '../src/integrations/rate-limiter';
import type { ItemOutcomes } from '../src/contract/imports';
import { Metric } from '../src/contract/metrics';
import { failFastOnBadInput } from './failures';

/** Dependencies and tuning of {@link createNetworkActivities}. */
export interface NetworkActivitiesDeps {
  store: NetworkStore;
  /** The networks this worker can call. */
  networks: NetworksConfig;
  /** The shared limiter; one per process is enough. */
  limiter: SharedRateLimiter;
  /** This worker's egress address: the key value of `ip` rate limits (and sent as `X-Client-Ip`). @default 'default' */
  egressIp?: string;
  /** First retry delay after a transient error; doubles per attempt, with jitter. @default 1000 */
  retryBaseMs?: number;
  /** Largest retry delay. @default 60000 */
  retryMaxMs?: number;
  /** Wait after a rate-limit answer without Retry-After (adaptive limits may wait longer). @default 1000 */
  rateLimitFallbackMs?: number;
  /**
   * Waits for our own limiter up to this long happen inside the activity (heartbeating,
   * cancellable), up to `shortWaitBudgetMs` in all; longer ones become durable timers in the
   * workflow. Why: Temporal timers have about one second of resolution (a 1 ms `sleep` fired
   * after ~985 ms on the dev server), so sub-second spacing by timer would cap a 20-per-second
   * limit at a few calls per second. @default 1000
   */
  shortWaitMs?: number;
  /** See `shortWaitMs`. @default 5000 */
  shortWaitBudgetMs?: number;
}

/** The network made us (or our limiter made us) wait; call again after `waitMs` on a durable timer. */
export interface WaitResult {
  kind: 'wait';
  waitMs: number;
  reason: string;
}

/** Result of `prepareImport`. */
export type PrepareResult =
  | WaitResult
  | {
      kind: 'ready';
      strategy: 'offset' | 'cursor' | 'unknown-size';
      /** The network's largest page. */
      maxPageSize: number;
      /** Friend count from the profile, if the network tells. */
      networkSize?: number;
      /** Time spent waiting for the rate limiter inside the activity. */
      waitedMs: number;
      /** The network's own queue, if it has one. */
      networkTaskQueue?: string;
    };

/** Result of `fetchFriendsPage`: counts and the next cursor only; the items are staged in MongoDB. */
export type FetchResult =
  | WaitResult
  | {
      kind: 'page';
      count: number;
      /** Total the network announced in this answer, if any. */
      total?: number;
      /** Cursor lists: the next page's cursor, null at the end. */
      nextCursor?: string | null;
      /** Time spent waiting for the rate limiter inside the activity. */
      waitedMs: number;
    };

/** Result of `shareActivity`. */
export type ShareResult =
  | WaitResult
  | {
      kind: 'shared';
      /** The post's id on the network. */
      postId: string;
      /** The network answered as a replay: an earlier attempt's post had been made. */
      replayed: boolean;
      /** The share was recorded before this call: nothing was sent. */
      alreadyShared: boolean;
      waitedMs: number;
    };

/** Arguments shared by the import activities. */
export interface ImportRef {
  network: string;
  accountId: string;
  importId: string;
}

/** Builds the import activities around their dependencies. */
export function createNetworkActivities(deps: NetworkActivitiesDeps) {
  const networks = resolveNetworks(deps.networks);
  const { store, limiter } = deps;
  const egressIp = deps.egressIp ?? 'default';
  const retryBaseMs = deps.retryBaseMs ?? 1000;
  const retryMaxMs = deps.retryMaxMs ?? 60_000;
  const shortWaitMs = deps.shortWaitMs ?? 1000;
  const shortWaitBudgetMs = deps.shortWaitBudgetMs ?? 5000;

  function networkOf(name: string): ResolvedNetwork {
    const network = networks.get(name);
    if (!network) throw new ValidationError('network', `"${name}" is not configured on this worker (known: ${[...networks.keys()].join(', ') || 'none'})`);
    return network;
  }

  async function accountOf(network: ResolvedNetwork, accountId: string): Promise<NetworkAccountDoc> {
    const account = await store.account(network.name, accountId);
    if (!account) throw new ValidationError('accountId', `"${accountId}" has no connected ${network.name} account`);
    if (account.needsReauth) throw credentialsFailure(network, accountId, account.reauthReason ?? 'marked earlier');
    return account;
  }

  function credentialsFailure(network: ResolvedNetwork, accountId: string, reason: string): ApplicationFailure {
    return ApplicationFailure.create({
      type: CREDENTIALS_EXPIRED_FAILURE_TYPE,
      nonRetryable: true,
      message: `${network.name} account of ${accountId}: credentials expired or revoked (${reason}); the account is marked for re-authorisation, ask the user to reconnect`,
      details: [reason],
    });
  }

  function buckets(network: ResolvedNetwork, accountId: string): BucketRequest[] {
    const value = (key: string): string => (key === 'token' ? accountId : key === 'app' ? network.appId : egressIp);
    return [
      ...network.rateLimits.map((limit) => ({ id: bucketId(network.name, limit.key, value(limit.key)), limit })),
      ...network.adaptiveLimits.map((limit) => ({ id: bucketId(network.name, `${limit.key}~adaptive`, value(limit.key)), limit: { ...limit, adaptive: true as const } })),
    ];
  }

  /** Exponential backoff with "equal jitter": half the delay fixed, half random. */
  function backoffMs(attempt: number): number {
    const delay = Math.min(retryMaxMs, retryBaseMs * 2 ** Math.max(0, attempt - 1));
    return Math.round(delay / 2 + Math.random() * (delay / 2));
  }

  /**
   * The one API call of an activity: limiter, request, classification. Returns the parsed body,
   * or a wait; throws the Temporal failure that fits any other outcome.
   */
  async function call(
    network: ResolvedNetwork,
    account: NetworkAccountDoc,
    request: Omit<NetworkRequest, 'token' | 'egressIp'>,
  ): Promise<{ body: unknown; headers: Record<string, string>; waitedMs: number } | WaitResult> {
    const ctx = Context.current();
    const requestBuckets = buckets(network, account.accountId);
    let waitedMs = 0;
    for (;;) {
      const gate = await limiter.acquire(requestBuckets);
      if (gate.granted) break;
      if (gate.waitMs > shortWaitMs || waitedMs + gate.waitMs > shortWaitBudgetMs) {
        ctx.metricMeter.createCounter(Metric.RATE_LIMIT_WAITS).add(1, { network: network.name });
        return { kind: 'wait', waitMs: gate.waitMs, reason: `${gate.bucket}: ${gate.reason}` };
      }
      ctx.heartbeat();
      await ctx.sleep(gate.waitMs); // rejects at once if the activity is cancelled
      waitedMs += gate.waitMs;
    }

    // Heartbeats carry cancellation to the activity; the signal below then aborts the socket.
    ctx.heartbeat();
    const beat = setInterval(() => ctx.heartbeat(), 1000);
    let answer;
    try {
      answer = await sendRequest(network, { ...request, token: account.token, egressIp }, ctx.cancellationSignal);
    } catch (err) {
      if (err instanceof RequestCancelledError) throw ctx.cancellationSignal.reason ?? err;
      throw err;
    } finally {
      clearInterval(beat);
    }
    const verdict = classifyAnswer(network.errorRules, answer, Date.now());
    const what = `${network.name} ${request.path} for ${account.accountId}`;
    switch (verdict.kind) {
      case 'ok': {
        await limiter.succeeded(requestBuckets);
        try {
          return { body: JSON.parse(answer.body), headers: answer.headers, waitedMs };
        } catch {
          // A 200 with a broken body is the network's hiccup, not ours: retry it.
          throw ApplicationFailure.create({ type: API_TRANSIENT_FAILURE_TYPE, message: `${what}: answer is not JSON`, nextRetryDelay: backoffMs(ctx.info.attempt) });
        }
      }
      case 'rate_limited': {
        const waitMs = await limiter.rateLimited(requestBuckets, verdict.retryAfterMs, deps.rateLimitFallbackMs);
        ctx.log.info('rate limited by the network', { network: network.name, rule: verdict.rule, waitMs });
        ctx.metricMeter.createCounter(Metric.RATE_LIMIT_WAITS).add(1, { network: network.name });
        return { kind: 'wait', waitMs, reason: `${network.name} said: ${verdict.rule}` };
      }
      case 'expired_credentials':
        await store.markNeedsReauth(network.name, account.accountId, verdict.rule);
        throw credentialsFailure(network, account.accountId, verdict.rule);
      case 'transient': {
        const delay = backoffMs(ctx.info.attempt);
        const cause = answer.status === 0 ? answer.error : `HTTP ${answer.status}`;
        // The delay goes to the log only: the message may end up in a "failed" status once the
        // attempts run out, where "retrying" would mislead.
        ctx.log.warn('transient API failure', { network: network.name, path: request.path, cause, attempt: ctx.info.attempt, nextRetryInMs: delay });
        throw ApplicationFailure.create({ type: API_TRANSIENT_FAILURE_TYPE, message: `${what}: ${cause} (${verdict.rule}) on attempt ${ctx.info.attempt}`, nextRetryDelay: delay });
      }
      case 'rejected':
        throw ApplicationFailure.create({
          type: API_REJECTED_FAILURE_TYPE,
          nonRetryable: true,
          message: `${what}: HTTP ${answer.status} (${verdict.rule}): ${answer.body.slice(0, 300)}`,
        });
    }
  }

  return {
    /** Checks the account and asks the network for its size (one profile call). */
    async prepareImport(ref: ImportRef): Promise<PrepareResult> {
      return failFastOnBadInput(async () => {
        const network = networkOf(ref.network);
        const account = await accountOf(network, ref.accountId);
        const result = await call(network, account, { path: network.profile.path });
        if ('kind' in result) return result;
        const size = readPath(result.body, network.profile.sizeField);
        const userId = readPath(result.body, network.profile.idField);
        // Only a count the workflow can carry: a network announcing 1e999 or -3 is ignored, not trusted.
        const networkSize = isCount(size) ? size : undefined;
        await store.recordProfile(network.name, account.accountId, typeof userId === 'string' || typeof userId === 'number' ? String(userId) : undefined, networkSize);
        return {
          kind: 'ready',
          waitedMs: result.waitedMs,
          strategy: network.friends.style,
          maxPageSize: network.friends.maxPageSize,
          ...(networkSize !== undefined ? { networkSize } : {}),
          ...(network.taskQueue ? { networkTaskQueue: network.taskQueue } : {}),
        };
      });
    },

    /** Fetches one page (by offset or cursor) and stages its items; returns counts and the next cursor. */
    async fetchFriendsPage(ref: ImportRef & { pageNo: number; pageSize: number; offset?: number; cursor?: string }): Promise<FetchResult> {
      return failFastOnBadInput(async () => {
        const network = networkOf(ref.network);
        const account = await accountOf(network, ref.accountId);
        const { params, fields } = network.friends;
        const query: Record<string, string | number | undefined> = { [params.limit]: Math.min(ref.pageSize, network.friends.maxPageSize) };
        if (network.friends.style === 'cursor') query[params.cursor] = ref.cursor;
        else query[params.offset] = ref.offset ?? 0;
        const result = await call(network, account, { path: network.friends.path, query });
        if ('kind' in result) return result;
        const items = readPath(result.body, fields.items);
        if (!Array.isArray(items)) {
          throw ApplicationFailure.create({ type: API_REJECTED_FAILURE_TYPE, nonRetryable: true, message: `${network.name} ${network.friends.path}: answer has no "${fields.items}" list` });
        }
        await store.stagePage(ref.importId, ref.pageNo, items);
        Context.current().metricMeter.createCounter(Metric.IMPORT_PAGES).add(1, { network: network.name });
        const total = readPath(result.body, fields.total);
        const next = readPath(result.body, fields.nextCursor);
        return {
          kind: 'page',
          waitedMs: result.waitedMs,
          count: items.length,
          ...(isCount(total) ? { total } : {}),
          ...(network.friends.style === 'cursor' ? { nextCursor: typeof next === 'string' && next !== '' ? next : typeof next === 'number' ? String(next) : null } : {}),
        };
      });
    },

    /** Imports a staged page; `skipReason` skips every item of it instead. */
    async importFriendsPage(ref: ImportRef & { pageNo: number; skipReason?: string }): Promise<ItemOutcomes> {
      const network = networks.get(ref.network);
      const fields = network ? { id: network.friends.fields.id, name: network.friends.fields.name } : undefined;
      const outcomes = await store.importPage(ref.network, ref.accountId, ref.importId, ref.pageNo, { ...(ref.skipReason ? { skipReason: ref.skipReason } : {}), ...(fields ? { fields } : {}) });
      if (!outcomes) {
        throw ApplicationFailure.create({ type: 'PageNotStaged', nonRetryable: true, message: `import ${ref.importId}: page ${ref.pageNo} was never fetched or already dropped` });
      }
      const items = Context.current().metricMeter.createCounter(Metric.IMPORT_ITEMS);
      for (const outcome of ['imported', 'skipped', 'failed'] as const) items.add(outcomes[outcome], { network: ref.network, outcome });
      return outcomes;
    },

    /** Records the import's end on the account and drops its staged pages. */
    async finishImport(ref: ImportRef & { status: string; message: string }): Promise<void> {
      await store.finishImport(ref.network, ref.accountId, ref.importId, ref.status, ref.message);
    },

    /**
     * Shares an activity to the account's network, once. The idempotency key is the activity id,
     * so a retry after a lost answer (a 5xx for a post that was made) gets the same post back
     * instead of a second one; a share already recorded is not sent again at all.
     */
    async shareActivity(ref: { network: string; accountId: string; activityId: string }): Promise<ShareResult> {
      return failFastOnBadInput(async () => {
        const network = networkOf(ref.network);
        const share = network.share;
        if (!share) throw new ValidationError('network', `"${network.name}" takes no posts (its definition has no share endpoint)`);
        const done = await store.share(network.name, ref.accountId, ref.activityId);
        if (done) return { kind: 'shared', postId: done.postId, replayed: done.replayed, alreadyShared: true, waitedMs: 0 };
        const account = await accountOf(network, ref.accountId);
        const activity = await store.activity(ref.activityId);
        if (!activity) throw new ValidationError('activityId', `"${ref.activityId}" is not a stored activity`);
        const result = await call(network, account, {
          method: 'POST',
          path: share.path,
          headers: { [share.idempotencyHeader]: ref.activityId },
          body: { message: `${activity.actor} ${activity.verb} ${activity.object}${activity.target ? ` on ${activity.target}` : ''}`, activity: { id: ref.activityId, ...activity } },
        });
        if ('kind' in result) return result;
        const postId = readPath(result.body, share.idField);
        if (typeof postId !== 'string' && typeof postId !== 'number') {
          throw ApplicationFailure.create({ type: API_REJECTED_FAILURE_TYPE, nonRetryable: true, message: `${network.name} ${share.path}: answer has no "${share.idField}"` });
        }
        const replayed = result.headers['idempotent-replayed'] === 'true';
        await store.recordShare({ network: network.name, accountId: ref.accountId, activityId: ref.activityId, postId: String(postId), replayed, sharedAt: new Date() });
        return { kind: 'shared', postId: String(postId), replayed, alreadyShared: false, waitedMs: result.waitedMs };
      });
    },

    /** The stalest accounts a trickle (networks that cannot push) or re-sync round should import. */
    async pickAccounts(input: { mode: 'trickle' | 'resync'; batchSize: number; staleAfterMs: number }): Promise<Array<{ network: string; accountId: string }>> {
      const names = [...networks.values()].filter((n) => input.mode === 'resync' || !n.canPush).map((n) => n.name);
      if (names.length === 0) return [];
      return store.staleAccounts(names, new Date(Date.now() - input.staleAfterMs), input.batchSize);
    },
  };
}

/** The import activities, as workflows see them. */
export type NetworkActivities = ReturnType<typeof createNetworkActivities>;

/** A non-negative safe integer: what a network's announced sizes must be to be used. */
function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}
