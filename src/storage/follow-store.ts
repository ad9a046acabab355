/**
 * Writing the follow graph and users' activity times. Idempotent: following twice is one edge.
 * @module
 */
import type { Collection, Db, WriteConcernSettings } from 'mongodb';
import { ValidationError } from '../contract/errors';
import { checkId } from '../contract/validation';
import { Collections, type FollowDoc, followId, type UserCountsDoc, type UserDoc } from './collections';
import { withWriteConcern } from './durability';
import { insertManyIgnoringDuplicates, isDuplicateKey } from './insert';
import { isFerretDb } from './server-kind';

/**
 * Operation tokens remembered per user's counts. A retried follow or unfollow finds its token and
 * changes nothing; one retried after more than this many other follow changes of the same user
 * would count twice (retries come within seconds to a minute, see the workflows' retry policy).
 */
export const COUNT_OPS_WINDOW = 1000;

/** A user's follower and following counts. */
export interface FollowCounts {
  followers: number;
  following: number;
}

/** Checks a (follower, followee) pair: two ids, not the same user. */
export function checkFollowPair(follower: unknown, followee: unknown, prefix = ''): { follower: string; followee: string } {
  const a = checkId(`${prefix}follower`, follower);
  const b = checkId(`${prefix}followee`, followee);
  if (a === b) throw new ValidationError(`${prefix}followee`, `must differ from the follower (a user cannot follow themselves: "${a}")`);
  return { follower: a, followee: b };
}

/** A follow edge to write. */
export interface FollowEdge {
  follower: string;
  followee: string;
}

/**
 * How follower / following counts are kept.
 * - `counters`: a `user_counts` document per user, changed by one atomic, token-guarded `$inc`
 *   per follow or unfollow; reading a count is one lookup by `_id`. Needs a store that updates one
 *   document atomically (MongoDB).
 * - `edges`: no counters; a count is the number of edges, counted when read. Exact on any store,
 *   but a read costs a count over the user's edges.
 * - `auto`: `edges` on FerretDB, whose SQLite backend reads and rewrites a document in two steps,
 *   so concurrent `$inc`s of one user's counts lose increments (100 concurrent follows counted
 *   89-93); `counters` elsewhere.
 */
export type CountingMode = 'counters' | 'edges' | 'auto';

/** Options of {@link FollowStore}. */
export interface FollowStoreOptions {
  /** How counts are kept. @default 'auto' */
  counting?: CountingMode | undefined;
  /** Write concern of every write. @default DURABLE_WRITE_CONCERN (journaled, majority) */
  writeConcern?: WriteConcernSettings | undefined;
}

/** Follow-graph storage. */
export class FollowStore {
  /** The database, with the store's write concern on every collection. */
  readonly db: Db;
  private readonly counting: CountingMode;
  private resolvedCounting?: Promise<'counters' | 'edges'>;

  constructor(db: Db, options: FollowStoreOptions = {}) {
    this.db = withWriteConcern(db, options.writeConcern);
    this.counting = options.counting ?? 'auto';
    if (!['counters', 'edges', 'auto'].includes(this.counting)) {
      throw new ValidationError('counting', `must be "counters", "edges" or "auto", got ${JSON.stringify(this.counting)}`);
    }
  }

  /** The counting mode in effect (`auto` resolved by asking the server what it is). */
  countingMode(): Promise<'counters' | 'edges'> {
    if (this.counting !== 'auto') return Promise.resolve(this.counting);
    this.resolvedCounting ??= isFerretDb(this.db).then((ferret) => (ferret ? 'edges' : 'counters'));
    return this.resolvedCounting;
  }

  /**
   * Records many follow edges with unordered batched inserts (for imports and fixtures).
   * Edges that already exist are skipped. Returns how many were new.
   */
  async followMany(edges: readonly FollowEdge[], batchSize = 1000): Promise<number> {
    // Checked as input of unknown shape (an app in JavaScript can pass anything); asking
    // Array.isArray of `edges` itself would narrow the readonly array to any[].
    const given: unknown = edges;
    if (!Array.isArray(given)) throw new ValidationError('edges', 'must be an array of { follower, followee }');
    edges.forEach((e, i) => checkFollowPair(e?.follower, e?.followee, `edges[${i}].`));
    const now = new Date();
    let inserted = 0;
    for (let i = 0; i < edges.length; i += batchSize) {
      const docs = edges
        .slice(i, i + batchSize)
        .map((e): FollowDoc => ({ _id: followId(e.followee, e.follower), follower: e.follower, followee: e.followee, createdAt: now, counted: true }));
      const n = await insertManyIgnoringDuplicates(this.follows, docs);
      inserted += n;
    }
    return inserted;
  }

  private get follows(): Collection<FollowDoc> {
    return this.db.collection<FollowDoc>(Collections.FOLLOWS);
  }

  private get counts(): Collection<UserCountsDoc> {
    return this.db.collection<UserCountsDoc>(Collections.USER_COUNTS);
  }

  /**
   * Records that `follower` follows `followee` and counts it, as operation `op`. Returns whether
   * this operation created the edge (false: they already followed). Idempotent: a retry of the
   * same operation finishes what an earlier try began and counts nothing twice.
   */
  async follow(follower: string, followee: string, op: string, at: Date): Promise<{ created: boolean }> {
    checkFollowPair(follower, followee);
    const _id = followId(followee, follower);
    let edge: FollowDoc | null = null;
    try {
      edge = { _id, follower, followee, createdAt: at, op, counted: false };
      await this.follows.insertOne(edge);
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
      edge = await this.follows.findOne({ _id });
      if (!edge) return this.follow(follower, followee, op, at); // deleted in between: try again
    }
    // Counted from the edges: the edge is the count.
    if ((await this.countingMode()) === 'edges') return { created: edge.op === op };
    // Already following, counted: nothing to do. An edge not counted yet (this operation's earlier
    // try, or one that crashed) is counted now under its own token, so no try counts it twice.
    if (edge.counted !== false && edge.op !== op) return { created: false };
    await this.countEdge(edge);
    return { created: true };
  }

  /** Counts an edge for both users under its own token, then marks it counted. Idempotent. */
  private async countEdge(edge: FollowDoc): Promise<void> {
    const token = `${edge.op ?? edge._id}+`;
    await this.applyCount(edge.followee, 'followers', 1, token);
    await this.applyCount(edge.follower, 'following', 1, token);
    await this.follows.updateOne({ _id: edge._id }, { $set: { counted: true } });
  }

  /**
   * Removes the edge and uncounts it, as operation `op`. Returns whether there was an edge to
   * remove. Idempotent like {@link follow}: the edge is marked first, uncounted under the mark's
   * token, then deleted, so a retry at any point finishes the job once.
   */
  async unfollow(follower: string, followee: string, op: string): Promise<{ removed: boolean }> {
    checkFollowPair(follower, followee);
    const _id = followId(followee, follower);
    const edge = await this.follows.findOne({ _id });
    if (!edge) return { removed: false };
    if ((await this.countingMode()) === 'edges') return { removed: (await this.follows.deleteOne({ _id })).deletedCount === 1 };
    let token = edge.removeOp;
    if (!token) {
      token = op;
      await this.follows.updateOne({ _id }, { $set: { removeOp: op } });
    }
    // An edge whose counting never finished is counted first (idempotently), so the uncount
    // below always takes away exactly what was added.
    if (edge.counted === false) await this.countEdge(edge);
    await this.applyCount(followee, 'followers', -1, `${token}-`);
    await this.applyCount(follower, 'following', -1, `${token}-`);
    await this.follows.deleteOne({ _id });
    return { removed: true };
  }

  /** Adds `delta` to one count of `userId` unless operation `token` was applied already. */
  private async applyCount(userId: string, field: 'followers' | 'following', delta: number, token: string): Promise<void> {
    await insertManyIgnoringDuplicates(this.counts, [{ _id: userId, followers: 0, following: 0, ops: [] }]);
    const opToken = `${token}:${field}`;
    await this.counts.updateOne(
      { _id: userId, ops: { $ne: opToken } },
      { $inc: { [field]: delta }, $push: { ops: { $each: [opToken], $slice: -COUNT_OPS_WINDOW } } },
    );
  }

  /** A user's follower and following counts (zero for an unknown user). */
  async getCounts(userId: string): Promise<FollowCounts> {
    checkId('userId', userId);
    if ((await this.countingMode()) === 'edges') {
      const [followers, following] = await Promise.all([
        this.follows.countDocuments({ followee: userId }),
        this.follows.countDocuments({ follower: userId }),
      ]);
      return { followers, following };
    }
    const doc = await this.counts.findOne({ _id: userId }, { projection: { followers: 1, following: 1 } });
    return { followers: doc?.followers ?? 0, following: doc?.following ?? 0 };
  }

  /**
   * Sets the counts of `userIds` from the edges (after a bulk import). Idempotent; also repairs
   * counts that drifted. Concurrent follows of the same users may need another recount.
   */
  async recount(userIds: readonly string[]): Promise<void> {
    if ((await this.countingMode()) === 'edges') return; // nothing stored to repair
    for (const userId of new Set(userIds)) {
      const [followers, following] = await Promise.all([
        this.follows.countDocuments({ followee: userId }),
        this.follows.countDocuments({ follower: userId }),
      ]);
      await insertManyIgnoringDuplicates(this.counts, [{ _id: userId, followers: 0, following: 0, ops: [] }]);
      await this.counts.updateOne({ _id: userId }, { $set: { followers, following } });
    }
  }

  /** Whether `follower` follows `followee`. */
  async isFollowing(follower: string, followee: string): Promise<boolean> {
    return (await this.follows.findOne({ _id: followId(followee, follower) }, { projection: { _id: 1 } })) !== null;
  }

  /**
   * Sets users' last-active time (what the default priority rule reads). New users are inserted
   * in batches; existing ones are updated by `_id`, a few at a time. (Not upserts, and not one
   * bulk of updates: FerretDB 1.24 runs both a document at a time with a scan each and stalls.)
   */
  async setLastActive(users: ReadonlyArray<{ userId: string; lastActiveAt: Date }>, batchSize = 1000): Promise<void> {
    const collection = this.db.collection<UserDoc>(Collections.USERS);
    users.forEach((u, i) => checkId(`users[${i}].userId`, u.userId));
    for (let i = 0; i < users.length; i += batchSize) {
      const batch = users.slice(i, i + batchSize);
      const inserted = await insertManyIgnoringDuplicates(collection, batch.map((u) => ({ _id: u.userId, lastActiveAt: u.lastActiveAt })));
      if (inserted === batch.length) continue;
      let next = 0;
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (next < batch.length) {
            const u = batch[next++];
            await collection.updateOne({ _id: u.userId }, { $set: { lastActiveAt: u.lastActiveAt } });
          }
        }),
      );
    }
  }

  /** Number of followers of a user. */
  async countFollowers(userId: string): Promise<number> {
    return this.follows.countDocuments({ followee: userId });
  }
}
