/**
 * A lease lock kept in the store itself, for stores that cannot update one document atomically.
 *
 * Why: FerretDB 1.24 on SQLite runs an update as "read the document, change it in Go, write it
 * back" in two transactions, so two concurrent updates of one document can lose one of them (100
 * concurrent follow notifications into one group counted 87 activities and 69 actors). Its one
 * atomic primitive is inserting a document whose `_id` exists already: exactly one insert wins. A
 * lock is therefore a document whose insert succeeds for one holder at a time.
 *
 * Lease: a holder that dies leaves its lock behind, so a lock expires after `leaseMs`; the next
 * taker removes an expired one, and a marker document (inserted once per expired holder, so only
 * one taker wins) keeps two takers from both removing it. Mutual exclusion therefore assumes a
 * holder finishes within its lease, which is minutes for work that takes seconds.
 * @module
 */
import { randomUUID } from 'node:crypto';
import type { Collection, Db } from 'mongodb';
import { StoreError } from '../contract/errors';
import { isDuplicateKey } from './insert';

interface LockDoc {
  /** The lock's key, or `<key>#taken-from#<token>` for the marker of an expired holder. */
  _id: string;
  /** Who holds it (random per acquisition). */
  token: string;
  /** When the lease runs out. */
  expiresAt: Date;
}

/** Options of {@link StoreLock}. */
export interface StoreLockOptions {
  /** Collection of the locks. @default 'locks' */
  collection?: string;
  /** How long a lock holds without being released. @default 120000 (2 min) */
  leaseMs?: number;
  /** Give up waiting after this long (a `StoreError`, retried by the activity). @default 60000 */
  waitMs?: number;
}

/** Mutual exclusion by key, across every process sharing the database. See the module comment. */
export class StoreLock {
  private readonly locks: Collection<LockDoc>;
  private readonly leaseMs: number;
  private readonly waitMs: number;

  /** `db` should carry the durable write concern: a lock lost in a crash would admit two holders. */
  constructor(db: Db, options: StoreLockOptions = {}) {
    this.locks = db.collection<LockDoc>(options.collection ?? 'locks');
    this.leaseMs = options.leaseMs ?? 120_000;
    this.waitMs = options.waitMs ?? 60_000;
  }

  /** Runs `fn` while holding the lock `key`, and releases it after (also when `fn` throws). */
  async withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const token = await this.acquire(key);
    try {
      return await fn();
    } finally {
      await this.locks.deleteOne({ _id: key, token }).catch(() => undefined); // else it expires
    }
  }

  private async acquire(key: string): Promise<string> {
    const token = randomUUID();
    const deadline = Date.now() + this.waitMs;
    for (let wait = 2; ; wait = Math.min(wait * 2, 50)) {
      try {
        await this.locks.insertOne({ _id: key, token, expiresAt: new Date(Date.now() + this.leaseMs) });
        return token;
      } catch (err) {
        if (!isDuplicateKey(err)) throw err;
      }
      const holder = await this.locks.findOne({ _id: key });
      if (holder && holder.expiresAt.getTime() < Date.now()) await this.takeExpired(key, holder.token);
      else if (Date.now() > deadline) {
        throw new StoreError(`lock "${key}" is still held after ${this.waitMs / 1000} s (by ${holder?.token ?? 'nobody now'}); try again`);
      } else await new Promise((resolve) => setTimeout(resolve, wait + Math.random() * wait));
    }
  }

  /** Removes the expired lock of `token`, once: of several takers, the one whose marker lands does it. */
  private async takeExpired(key: string, token: string): Promise<void> {
    try {
      await this.locks.insertOne({ _id: `${key}#taken-from#${token}`, token, expiresAt: new Date(Date.now() + this.leaseMs) });
    } catch (err) {
      if (isDuplicateKey(err)) return; // another taker won
      throw err;
    }
    await this.locks.deleteOne({ _id: key, token });
  }
}
