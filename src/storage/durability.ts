/**
 * The write concern of every write this project relies on.
 *
 * Why: a fanout chunk reports success once its batched insert is acknowledged, and Temporal never
 * runs it again. With the driver's default (`w: 1`, no journal), a standalone `mongod`
 * acknowledges a batch while it is still only in memory; its journal reaches disk up to 100 ms
 * later, so a crash of the database process loses acknowledged entries, and nothing notices (a
 * 50,000-follower fanout with one SIGKILL of `mongod` ended *Completed* with 300-400 followers
 * missing their entry). So every write waits until it would survive that crash:
 *
 * - `journal: true`: acknowledged once in the on-disk journal of the server that took it.
 *   `mongod` flushes the journal for all writes waiting at that moment together (group commit),
 *   so 16 chunks in flight share their flushes.
 * - `w: 'majority'`: on a replica set, acknowledged once a majority of members has it (journaled,
 *   by the replica set's default), so it survives the primary's crash and the election that
 *   follows. On a standalone server `majority` is the server itself.
 * - `wtimeoutMS`: a write that cannot reach a majority (members down) fails after 30 s instead of
 *   hanging; the activity is retried with backoff, and the write is idempotent, so a write that
 *   did land before the timeout is counted once.
 *
 * FerretDB accepts the write concern and ignores it; the local stack runs its SQLite in WAL mode,
 * where a commit has reached the operating system's file before FerretDB answers, so a crash of
 * the FerretDB process loses nothing acknowledged either (only a crash of the machine could).
 *
 * Reads need nothing special: the project reads what it wrote with the same client, from the primary.
 * @module
 */
import { Db, type WriteConcernSettings } from 'mongodb';

/** Journaled, on a majority of a replica set's members; see the module comment. */
export const DURABLE_WRITE_CONCERN: Readonly<WriteConcernSettings> = Object.freeze({ w: 'majority', journal: true, wtimeoutMS: 30_000 });

/**
 * `db` with `writeConcern` (by default {@link DURABLE_WRITE_CONCERN}) on every collection taken
 * from it: same client, database and read settings. The stores wrap the `Db` they are given with
 * it, so an app's own default write concern cannot weaken the project's writes by accident.
 */
export function withWriteConcern(db: Db, writeConcern: WriteConcernSettings = DURABLE_WRITE_CONCERN): Db {
  return new Db(db.client, db.databaseName, { ...db.options, writeConcern });
}
