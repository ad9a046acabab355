/**
 * What kind of MongoDB-wire server a database lives on, for the few places where FerretDB needs
 * another shape of the same operation (see the README's FerretDB notes).
 * @module
 */
import type { Db, MongoClient } from 'mongodb';

const kinds = new WeakMap<MongoClient, Promise<boolean>>();

/**
 * True if `db` is served by FerretDB (its `buildInfo` names a `ferretdbVersion`). Asked once per
 * client; a failed probe counts as MongoDB.
 */
export function isFerretDb(db: Db): Promise<boolean> {
  let kind = kinds.get(db.client);
  if (!kind) {
    kind = db
      .admin()
      .command({ buildInfo: 1 })
      .then((info) => typeof info.ferretdbVersion === 'string')
      .catch(() => false);
    kinds.set(db.client, kind);
  }
  return kind;
}
