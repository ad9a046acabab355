/**
 * A circuit breaker in front of the store, one per worker process. When the store is down, every
 * call waits for the driver's server selection (`serverSelectionTimeoutMS`, 30 s by default) before
 * it fails; with 16 chunks in flight per pass and each retried, a fanout would take minutes to
 * notice an outage and its passes would keep their workflow tasks open all that time. Once one call
 * found the store unreachable, the calls that follow within `openMs` fail at once with that error;
 * after that one call at a time tries the store for real (the others still fail at once) until one
 * gets through. Only unreachability trips it: a write the store refuses is the caller's to handle.
 * @module
 */
import { StoreUnavailableError } from '../src/contract/errors';

/** Driver errors that mean the store could not be reached, by class name (the same for every driver version). */
const UNREACHABLE = new Set([
  'MongoServerSelectionError',
  'MongoNetworkError',
  'MongoNetworkTimeoutError',
  'MongoNotConnectedError',
  'MongoTopologyClosedError',
  'MongoPoolClearedError',
]);

/** Whether `err` (or its cause) says the store could not be reached. */
export function isStoreUnreachable(err: unknown): boolean {
  for (let e = err; e instanceof Error; e = e.cause) {
    if (UNREACHABLE.has(e.name) || e instanceof StoreUnavailableError) return true;
  }
  return false;
}

/** Options of {@link StoreBreaker}. */
export interface StoreBreakerOptions {
  /** How long calls fail at once after one found the store unreachable (ms). @default 2000 */
  openMs?: number;
  /** The clock, for tests. @default Date.now */
  now?: () => number;
}

/** See the module comment. */
export class StoreBreaker {
  private readonly openMs: number;
  private readonly now: () => number;
  /** The latest unreachable error while the store is considered down; `null` while it answers. */
  private down: { error: Error; since: number; until: number } | null = null;
  private trying = false;

  constructor(options: StoreBreakerOptions = {}) {
    this.openMs = options.openMs ?? 2_000;
    this.now = options.now ?? Date.now;
  }

  /** Runs `call` against the store, or fails at once while the store is known to be down. */
  async run<T>(call: () => Promise<T>): Promise<T> {
    const down = this.down;
    if (down && (this.now() < down.until || this.trying)) {
      const seconds = ((this.now() - down.since) / 1000).toFixed(0);
      throw new StoreUnavailableError(`store unreachable for ${seconds} s (this worker tries again every ${this.openMs / 1000} s): ${down.error.message}`, { cause: down.error });
    }
    const trial = down !== null;
    if (trial) this.trying = true;
    try {
      const result = await call();
      this.down = null;
      return result;
    } catch (err) {
      if (isStoreUnreachable(err) && !(err instanceof StoreUnavailableError)) {
        const now = this.now();
        this.down = { error: err as Error, since: this.down?.since ?? now, until: now + this.openMs };
      } else if (trial) {
        // It answered, if only with an error: it is reachable again.
        this.down = null;
      }
      throw err;
    } finally {
      if (trial) this.trying = false;
    }
  }
}
