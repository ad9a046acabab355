/**
 * Rate limits shared by every worker process, kept in MongoDB.
 *
 * A limit is not a per-worker setting: two processes with "10 per second" each send 20. Here
 * every request first takes a numbered *grant* of its bucket (e.g. `fakebook:token:alice`) in
 * MongoDB, and grants are what the limit counts.
 *
 * **Why a ledger of inserts.** Grant `n` of a bucket is a document with `_id` `bucket#n`,
 * created by `insertOne`. A unique `_id` is the one atomic primitive every MongoDB-wire store
 * has: of several workers racing for grant `n`, exactly one insert succeeds. (Conditional
 * updates such as "`$inc` if `count < limit`" are not atomic on FerretDB 1.24: 60 concurrent
 * ones granted 18 of 10 in a probe.) Before inserting grant `n`:
 * - a known limit of `L` per `W` ms checks that grant `n - L` is at least `W` (+ a margin) old,
 *   so any `L + 1` consecutive grants span more than `W`: no window of `W` ever holds more than `L`;
 * - an adaptive limit at rate `r` checks that grant `n - 1` is at least `1000 / r` ms old.
 * When the check fails the caller gets the time to wait, and waits on a durable timer in the
 * workflow rather than in the activity.
 *
 * The next grant number is the newest in the ledger plus one (an indexed `seq` query); a
 * duplicate key means another worker took it first, and the next number is read again.
 * A bucket's *state* document keeps an adaptive rate and a `blockedUntil` set when the network
 * answered "rate limited": plain updates, where a lost update only costs speed or one decrease.
 *
 * Clocks: grant times are the worker's `Date.now()`. Workers on different machines should run
 * NTP; `marginMs` absorbs the gap between taking a grant and the request reaching the network.
 * @module
 */
import type { Collection, Db } from 'mongodb';
import { StoreError } from '../contract/errors';
import { withWriteConcern } from '../storage/durability';
import type { AdaptiveRateLimit, KnownRateLimit } from './network';

/** A grant: one request's right to go. */
interface GrantDoc {
  _id: string;
  bucket: string;
  seq: number;
  at: number;
}

/** Per-bucket state; every field is a heuristic (see the module comment). */
interface BucketStateDoc {
  _id: string;
  blockedUntil?: number;
  ratePerSecond?: number;
  lastDecreaseAt?: number;
}

/** One bucket a request must take a grant of. */
export interface BucketRequest {
  /** Bucket id, e.g. `fakebook:token:alice`. */
  id: string;
  /** A known limit, or an adaptive one. */
  limit: KnownRateLimit | (AdaptiveRateLimit & { adaptive: true });
}

/** Answer of {@link SharedRateLimiter.acquire}. */
export type AcquireResult = { granted: true } | { granted: false; waitMs: number; bucket: string; reason: string };

/** Options of {@link SharedRateLimiter}. */
export interface SharedRateLimiterOptions {
  /**
   * Extra spacing added to every known window. A grant is timed when it is inserted, the request
   * reaches the network later, and a window is only safe if that delay varies by less than the
   * margin (plus clock skew between workers). 100 ms was exceeded on a loaded 2-core CI machine
   * (FerretDB inserts, event-loop lag): 5 requests reached the network within 1 s under a limit
   * of 4. @default 250
   */
  marginMs?: number;
  /** Collection name prefix. @default 'rate_limit' (collections `rate_limit_grants`, `rate_limit_state`) */
  collectionPrefix?: string;
  /** Clock, for tests. @default Date.now */
  now?: () => number;
}

const ADAPTIVE_DEFAULTS = { initialPerSecond: 2, minPerSecond: 0.2, maxPerSecond: 50, increasePerSecond: 0.25, decreaseFactor: 0.5 };

const isDuplicateKey = (err: unknown): boolean => (err as { code?: number })?.code === 11000;

/** See the module comment. Holds no state of its own: any number of instances, in any process, share the limits. */
export class SharedRateLimiter {
  private readonly grants: Collection<GrantDoc>;
  private readonly state: Collection<BucketStateDoc>;
  private readonly marginMs: number;
  private readonly now: () => number;

  constructor(rawDb: Db, options: SharedRateLimiterOptions = {}) {
    // Durable grants (see src/storage/durability.ts): a grant lost in a database crash after it
    // was handed out would let its number be granted twice, breaking the limit.
    const db = withWriteConcern(rawDb);
    const prefix = options.collectionPrefix ?? 'rate_limit';
    this.grants = db.collection<GrantDoc>(`${prefix}_grants`);
    this.state = db.collection<BucketStateDoc>(`${prefix}_state`);
    this.marginMs = options.marginMs ?? 250;
    this.now = options.now ?? Date.now;
  }

  /**
   * Takes one grant of every bucket, or says how long to wait. Buckets are checked first and
   * granted after, so a denial rarely costs another bucket a grant; when it does (a race lost
   * between check and insert), the spent grant only makes the limiter stricter.
   */
  async acquire(buckets: readonly BucketRequest[]): Promise<AcquireResult> {
    try {
      const plans: Array<{ bucket: BucketRequest; state: BucketStateDoc | null; seq: number }> = [];
      for (const bucket of buckets) {
        const state = await this.state.findOne({ _id: bucket.id });
        const seq = (await this.newestSeq(bucket.id)) + 1;
        const wait = await this.check(bucket, state, seq);
        if (wait) return wait;
        plans.push({ bucket, state, seq });
      }
      for (const { bucket, state, seq } of plans) {
        const wait = await this.take(bucket, state, seq);
        if (wait) return wait;
      }
      return { granted: true };
    } catch (err) {
      throw new StoreError(`rate limiter: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  }

  /**
   * The network said "rate limited": every worker waits `retryAfterMs` (or, without one, one
   * interval at the lowered rate, at least `fallbackMs`), and adaptive buckets lower their rate.
   * Returns how long the caller should wait.
   */
  async rateLimited(buckets: readonly BucketRequest[], retryAfterMs: number | undefined, fallbackMs = 1000): Promise<number> {
    const now = this.now();
    let waitMs = retryAfterMs ?? fallbackMs;
    for (const bucket of buckets) {
      const state = await this.state.findOne({ _id: bucket.id });
      const set: Partial<BucketStateDoc> = {};
      if ('adaptive' in bucket.limit) {
        const o = { ...ADAPTIVE_DEFAULTS, ...bucket.limit };
        const rate = this.rate(bucket, state);
        // One decrease per burst: answers to requests sent before the last decrease say nothing new.
        if (state?.lastDecreaseAt === undefined || now - state.lastDecreaseAt >= 1000 / rate) {
          const lowered = Math.max(o.minPerSecond, rate * o.decreaseFactor);
          set.ratePerSecond = lowered;
          set.lastDecreaseAt = now;
          if (retryAfterMs === undefined) waitMs = Math.max(waitMs, Math.ceil(1000 / lowered));
        }
      }
      await this.state.updateOne({ _id: bucket.id }, { $set: set, $max: { blockedUntil: now + waitMs } }, { upsert: true });
    }
    return waitMs;
  }

  /** A request went through: adaptive buckets raise their rate a little. */
  async succeeded(buckets: readonly BucketRequest[]): Promise<void> {
    for (const bucket of buckets) {
      if (!('adaptive' in bucket.limit)) continue;
      const o = { ...ADAPTIVE_DEFAULTS, ...bucket.limit };
      const state = await this.state.findOne({ _id: bucket.id });
      const raised = Math.min(o.maxPerSecond, this.rate(bucket, state) + o.increasePerSecond);
      await this.state.updateOne({ _id: bucket.id }, { $set: { ratePerSecond: raised } }, { upsert: true });
    }
  }

  /** The current adaptive rate of a bucket (requests per second), for progress and tests. */
  async currentRate(bucket: BucketRequest): Promise<number | undefined> {
    if (!('adaptive' in bucket.limit)) return undefined;
    return this.rate(bucket, await this.state.findOne({ _id: bucket.id }));
  }

  private rate(bucket: BucketRequest, state: BucketStateDoc | null): number {
    const o = { ...ADAPTIVE_DEFAULTS, ...(bucket.limit as AdaptiveRateLimit) };
    return Math.min(o.maxPerSecond, Math.max(o.minPerSecond, state?.ratePerSecond ?? o.initialPerSecond));
  }

  /** Number of the bucket's newest grant, 0 if none. */
  private async newestSeq(bucket: string): Promise<number> {
    const newest = await this.grants.find({ bucket }, { projection: { seq: 1 }, sort: { seq: -1 }, limit: 1 }).next();
    return newest?.seq ?? 0;
  }

  /** Whether grant `seq` may be taken now; a wait if not. */
  private async check(bucket: BucketRequest, state: BucketStateDoc | null, seq: number): Promise<AcquireResult | undefined> {
    const now = this.now();
    if (state?.blockedUntil !== undefined && state.blockedUntil > now) {
      return { granted: false, waitMs: state.blockedUntil - now, bucket: bucket.id, reason: 'the network asked us to wait' };
    }
    const { back, spacingMs } = this.rule(bucket, state);
    if (seq - back < 1) return undefined;
    const earlier = await this.grants.findOne({ _id: `${bucket.id}#${seq - back}` });
    // A missing earlier grant was cleaned up, which only happens to grants far older than the window.
    if (earlier && now - earlier.at < spacingMs) {
      return { granted: false, waitMs: earlier.at + spacingMs - now, bucket: bucket.id, reason: 'limit reached' };
    }
    return undefined;
  }

  /** `back`: which earlier grant bounds the next; `spacingMs`: how old it must be. */
  private rule(bucket: BucketRequest, state: BucketStateDoc | null): { back: number; spacingMs: number } {
    if ('adaptive' in bucket.limit) return { back: 1, spacingMs: Math.ceil(1000 / this.rate(bucket, state)) };
    return { back: bucket.limit.limit, spacingMs: bucket.limit.windowMs + this.marginMs };
  }

  /** Inserts grant `seq` (checked already), or a later one if other workers took it meanwhile. */
  private async take(bucket: BucketRequest, state: BucketStateDoc | null, seq: number): Promise<AcquireResult | undefined> {
    for (;;) {
      try {
        await this.grants.insertOne({ _id: `${bucket.id}#${seq}`, bucket: bucket.id, seq, at: this.now() });
        break;
      } catch (err) {
        if (!isDuplicateKey(err)) throw err;
      }
      // Another worker took `seq`: the next free number must pass the check again.
      seq = (await this.newestSeq(bucket.id)) + 1;
      const wait = await this.check(bucket, state, seq);
      if (wait) return wait;
    }
    // Keep two limits' worth of grants (a check reads one limit back); older ones are never read
    // again. Off the request's path, so the request leaves right after its grant's time; a
    // grant left behind is only garbage.
    const { back } = this.rule(bucket, state);
    if (seq - 2 * back - 1 >= 1) void this.grants.deleteOne({ _id: `${bucket.id}#${seq - 2 * back - 1}` }).catch(() => undefined);
    return undefined;
  }

  /** Creates the index that finds a bucket's newest grant. One index per command (FerretDB 1.24). */
  async ensureIndexes(): Promise<void> {
    await this.grants.createIndex({ bucket: 1, seq: -1 });
  }
}

/** The bucket id of a limit for a request: `network:key:value`. */
export function bucketId(network: string, key: string, value: string): string {
  return `${network}:${key}:${value}`;
}
