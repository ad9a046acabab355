/**
 * Reading a field of a third-party API's JSON answer by a dotted path, as network definitions
 * name them (`data.items`, `errors.0.code`).
 * @module
 */

/** Reads a dotted path (`data.items`, `errors.0.code`) of a parsed JSON value; `undefined` where it leads nowhere. */
export function readPath(value: unknown, path: string): unknown {
  let current = value;
  for (const part of path.split('.')) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<string, unknown>)[part];
  }
  return current;
}
