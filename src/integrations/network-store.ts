/**
 * MongoDB side of third-party imports: connected accounts (with their tokens and re-auth
 * state), imported friends, and the pages fetched but not yet imported.
 *
 * Pages are staged because a fetch activity may only return small primitive results to the
 * workflow (counts, the next cursor), never the API payload: the import activity loads the
 * page itself by `(importId, pageNo)`.
 * @module
 */
import { type Collection, type Db, MongoBulkWriteError, type WriteConcernSettings } from 'mongodb';
import { type ItemOutcomes, noOutcomes } from '../contract/imports';
import { Collections } from '../storage/collections';
import { withWriteConcern } from '../storage/durability';
import { insertManyIgnoringDuplicates, isDuplicateKey } from '../storage/insert';
import { readPath } from './json-path';

/** A user's connection to a network. */
export interface NetworkAccountDoc {
  /** `<network>:<accountId>`. */
  _id: string;
  network: string;
  /** The app's user id. */
  accountId: string;
  /** Access token. Only activities read it; it never enters workflow history. */
  token: string;
  /** The user's id on the network, from the profile call. */
  networkUserId?: string;
  /** Friend count the network announced, from the profile call. */
  networkSize?: number;
  /** True once the network said the token is expired or revoked; cleared by reconnecting. */
  needsReauth: boolean;
  /** Which error rule matched, e.g. "Facebook OAuthException 190 (token expired or revoked)". */
  reauthReason?: string;
  reauthAt?: Date;
  connectedAt: Date;
  lastSyncedAt?: Date;
  lastImport?: { importId: string; status: string; message: string; at: Date };
}

/** One friend imported for one account. */
export interface NetworkFriendDoc {
  /** `<network>:<accountId>:<friendId>`: unique, so re-imports never duplicate. */
  _id: string;
  network: string;
  accountId: string;
  friendId: string;
  name?: string;
  /** The import and page that first brought it in: lets a retried page count its own inserts as imported. */
  importId: string;
  pageNo: number;
  importedAt: Date;
}

/** An activity shared out to a network, once. */
export interface NetworkShareDoc {
  /** `<network>:<accountId>:<activityId>`. */
  _id: string;
  network: string;
  accountId: string;
  activityId: string;
  /** The post's id on the network. */
  postId: string;
  /** True if the network answered as a replay of an earlier attempt (its write had happened). */
  replayed: boolean;
  sharedAt: Date;
}

/** A fetched page waiting to be imported. */
export interface StagedPageDoc {
  /** `<importId>#<pageNo>`. */
  _id: string;
  importId: string;
  pageNo: number;
  items: unknown[];
  fetchedAt: Date;
}

const MAX_FRIEND_ID_LENGTH = 256;

/** Reads and writes the import collections. */
export class NetworkStore {
  readonly accounts: Collection<NetworkAccountDoc>;
  readonly friends: Collection<NetworkFriendDoc>;
  readonly pages: Collection<StagedPageDoc>;
  readonly shares: Collection<NetworkShareDoc>;
  private readonly activities: Collection<{ _id: string; actor: string; verb: string; object: string; target?: string }>;

  constructor(rawDb: Db, options: { writeConcern?: WriteConcernSettings | undefined } = {}) {
    // Every write durable (see src/storage/durability.ts): a staged page or an imported friend
    // acknowledged to Temporal must survive a crash of the database.
    const db = withWriteConcern(rawDb, options.writeConcern);
    this.accounts = db.collection<NetworkAccountDoc>('network_accounts');
    this.friends = db.collection<NetworkFriendDoc>('network_friends');
    this.pages = db.collection<StagedPageDoc>('network_import_pages');
    this.shares = db.collection<NetworkShareDoc>('network_shares');
    this.activities = db.collection(Collections.ACTIVITIES);
  }

  /** Indexes for "friends of an account" and the trickle scan. One index per command (FerretDB 1.24). */
  async ensureIndexes(): Promise<void> {
    await this.friends.createIndex({ network: 1, accountId: 1 });
    await this.accounts.createIndex({ network: 1, lastSyncedAt: 1 });
    await this.pages.createIndex({ importId: 1 });
  }

  /** Connects (or reconnects) an account: stores the token and clears any re-auth mark. */
  async connect(network: string, accountId: string, token: string, now = new Date()): Promise<void> {
    await this.accounts.updateOne(
      { _id: `${network}:${accountId}` },
      { $set: { network, accountId, token, needsReauth: false, connectedAt: now }, $unset: { reauthReason: '', reauthAt: '' } },
      { upsert: true },
    );
  }

  async account(network: string, accountId: string): Promise<NetworkAccountDoc | null> {
    return this.accounts.findOne({ _id: `${network}:${accountId}` });
  }

  /** Marks an account for re-authorisation; imports of it stop until it reconnects. */
  async markNeedsReauth(network: string, accountId: string, reason: string, now = new Date()): Promise<void> {
    await this.accounts.updateOne({ _id: `${network}:${accountId}` }, { $set: { needsReauth: true, reauthReason: reason, reauthAt: now } });
  }

  async recordProfile(network: string, accountId: string, networkUserId: string | undefined, networkSize: number | undefined): Promise<void> {
    const set: Partial<NetworkAccountDoc> = {};
    if (networkUserId !== undefined) set.networkUserId = networkUserId;
    if (networkSize !== undefined) set.networkSize = networkSize;
    if (Object.keys(set).length) await this.accounts.updateOne({ _id: `${network}:${accountId}` }, { $set: set });
  }

  /** Records how an import ended and drops its staged pages. */
  async finishImport(network: string, accountId: string, importId: string, status: string, message: string, now = new Date()): Promise<void> {
    const set: Partial<NetworkAccountDoc> = { lastImport: { importId, status, message, at: now } };
    // Only a finished walk counts as synced; a failed one is retried by the next trickle round.
    if (status === 'completed') set.lastSyncedAt = now;
    await this.accounts.updateOne({ _id: `${network}:${accountId}` }, { $set: set });
    await this.pages.deleteMany({ importId });
  }

  /** Stores a fetched page; a retried fetch overwrites it with what the network answered then. */
  async stagePage(importId: string, pageNo: number, items: unknown[], now = new Date()): Promise<void> {
    await this.pages.replaceOne({ _id: `${importId}#${pageNo}` }, { importId, pageNo, items, fetchedAt: now }, { upsert: true });
  }

  /**
   * Imports a staged page: every valid item becomes a friend exactly once. Safe to retry: items
   * this import already inserted (on an earlier attempt) still count as imported, items that an
   * earlier import brought in count as skipped.
   *
   * `options.skipReason`: when given, nothing is imported and every item is skipped for this
   * reason (e.g. ghost items past the total the network announced). `options.fields`: where the
   * network puts a friend's id and name (dotted paths). @default { id: 'id', name: 'name' }
   * @returns undefined if the page is not staged (already imported and dropped, or never fetched).
   */
  async importPage(
    network: string,
    accountId: string,
    importId: string,
    pageNo: number,
    options: { skipReason?: string; fields?: { id: string; name: string }; now?: Date } = {},
  ): Promise<ItemOutcomes | undefined> {
    const { skipReason, fields = { id: 'id', name: 'name' }, now = new Date() } = options;
    const page = await this.pages.findOne({ _id: `${importId}#${pageNo}` });
    if (!page) return undefined;
    const out = noOutcomes();
    const count = (kind: 'skipped' | 'failed', reason: string): void => {
      out[kind]++;
      const reasons = kind === 'skipped' ? out.skippedReasons : out.failedReasons;
      reasons[reason] = (reasons[reason] ?? 0) + 1;
    };
    const docs = new Map<string, NetworkFriendDoc>();
    for (const item of page.items) {
      if (skipReason) {
        count('skipped', skipReason);
        continue;
      }
      const raw = readPath(item, fields.id);
      const friendId = typeof raw === 'number' && Number.isFinite(raw) ? String(raw) : raw;
      if (typeof friendId !== 'string' || friendId === '') count('failed', 'item has no id');
      else if (friendId.length > MAX_FRIEND_ID_LENGTH) count('failed', `id longer than ${MAX_FRIEND_ID_LENGTH} characters`);
      else {
        const _id = `${network}:${accountId}:${friendId}`;
        if (docs.has(_id)) count('skipped', 'duplicate within the page');
        else {
          const name = readPath(item, fields.name);
          docs.set(_id, { _id, network, accountId, friendId, ...(typeof name === 'string' ? { name } : {}), importId, pageNo, importedAt: now });
        }
      }
    }
    const duplicates = await this.insertFriends([...docs.values()]);
    out.imported += docs.size - duplicates.length;
    if (duplicates.length) {
      // Which duplicates are ours (an earlier attempt of this very page) and which were there before
      // (an earlier import, or an earlier page of this one: a network repeating itself)?
      const ours = await this.friends.countDocuments({ _id: { $in: duplicates }, importId, pageNo });
      out.imported += ours;
      for (let i = 0; i < duplicates.length - ours; i++) count('skipped', 'already imported');
    }
    return out;
  }

  /** An activity as stored by the feed store (what a share posts), or null. */
  async activity(activityId: string): Promise<{ actor: string; verb: string; object: string; target?: string } | null> {
    return this.activities.findOne({ _id: activityId }, { projection: { actor: 1, verb: 1, object: 1, target: 1 } });
  }

  /** The share of an activity to an account, if it happened. */
  async share(network: string, accountId: string, activityId: string): Promise<NetworkShareDoc | null> {
    return this.shares.findOne({ _id: `${network}:${accountId}:${activityId}` });
  }

  /** Records a share; a second record of the same share keeps the first. */
  async recordShare(doc: Omit<NetworkShareDoc, '_id'>): Promise<void> {
    await insertManyIgnoringDuplicates(this.shares, [{ _id: `${doc.network}:${doc.accountId}:${doc.activityId}`, ...doc }]);
  }

  /** Friend ids of an account (tests, apps). */
  async friendIds(network: string, accountId: string): Promise<string[]> {
    return (await this.friends.find({ network, accountId }, { projection: { friendId: 1 } }).toArray()).map((d) => d.friendId);
  }

  /**
   * The accounts a trickle round should poll: connected, not waiting for re-auth, on one of
   * `networks`, not synced since `staleBefore`, stalest first.
   */
  async staleAccounts(networks: string[], staleBefore: Date, limit: number): Promise<Array<{ network: string; accountId: string }>> {
    // Missing `lastSyncedAt` sorts first (null before dates), so never-synced accounts go first.
    const docs = await this.accounts
      .find(
        { network: { $in: networks }, needsReauth: false, $or: [{ lastSyncedAt: { $exists: false } }, { lastSyncedAt: { $lt: staleBefore } }] },
        { projection: { network: 1, accountId: 1 }, sort: { lastSyncedAt: 1, _id: 1 }, limit },
      )
      .toArray();
    return docs.map((d) => ({ network: d.network, accountId: d.accountId }));
  }

  /** Inserts friends unordered; returns the `_id`s that already existed. */
  private async insertFriends(docs: NetworkFriendDoc[]): Promise<string[]> {
    if (docs.length === 0) return [];
    try {
      await this.friends.insertMany(docs, { ordered: false });
      return [];
    } catch (err) {
      if (!(err instanceof MongoBulkWriteError)) throw err;
      const errors = [err.writeErrors].flat();
      if (!errors.every(isDuplicateKey)) throw err;
      return errors.map((e) => docs[e.index]._id);
    }
  }
}
