/**
 * Writing the follow graph and users' activity times. Idempotent: following twice is one edge.
 * @module
 */
import type { Db } from 'mongodb';
import { ValidationError } from '../errors';
import { checkId } from '../model/validation';
import { Collections, type FollowDoc, followId, type UserDoc } from './collections';
import { insertManyIgnoringDuplicates } from './insert';

/** A follow edge to write. */
export interface FollowEdge {
  follower: string;
  followee: string;
}

/** Follow-graph storage. */
export class FollowStore {
  constructor(readonly db: Db) {}

  /**
   * Records many follow edges with unordered batched inserts (for imports and fixtures).
   * Edges that already exist are skipped. Returns how many were new.
   */
  async followMany(edges: readonly FollowEdge[], batchSize = 1000): Promise<number> {
    edges.forEach((e, i) => {
      checkId(`edges[${i}].follower`, e.follower);
      checkId(`edges[${i}].followee`, e.followee);
      if (e.follower === e.followee) throw new ValidationError(`edges[${i}]`, `is a self-follow of "${e.follower}"`);
    });
    const collection = this.db.collection<FollowDoc>(Collections.FOLLOWS);
    const now = new Date();
    let inserted = 0;
    for (let i = 0; i < edges.length; i += batchSize) {
      const docs = edges.slice(i, i + batchSize).map((e) => ({ _id: followId(e.followee, e.follower), ...e, createdAt: now }));
      const n = await insertManyIgnoringDuplicates(collection, docs);
      inserted += n;
    }
    return inserted;
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
            const u = batch[next++]!;
            await collection.updateOne({ _id: u.userId }, { $set: { lastActiveAt: u.lastActiveAt } });
          }
        }),
      );
    }
  }

  /** Number of followers of a user. */
  async countFollowers(userId: string): Promise<number> {
    return this.db.collection<FollowDoc>(Collections.FOLLOWS).countDocuments({ followee: userId });
  }
}
