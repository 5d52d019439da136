import type { JsonValue } from './json-value.js';

/** A removed key, as recorded in a change set. */
export const REMOVED: unique symbol = Symbol('removed');

/**
 * What one session changed since it was loaded: per key, its new value or REMOVED, and whether
 * it was cleared first. Committing replays it onto the latest stored version, so concurrent
 * requests that touch different keys all keep their changes, and deletions merge too.
 */
export interface ChangeSet {
  cleared: boolean;
  readonly ops: Map<string, JsonValue | typeof REMOVED>;
}

export type SessionData = ReadonlyMap<string, JsonValue>;

export function emptyChanges(): ChangeSet {
  return { cleared: false, ops: new Map() };
}

export function hasChanges(changes: ChangeSet): boolean {
  return changes.cleared || changes.ops.size > 0;
}

/** `later` applied after `earlier`, as one change set. */
export function combine(earlier: ChangeSet, later: ChangeSet): ChangeSet {
  if (later.cleared) return { cleared: true, ops: new Map(later.ops) };
  const ops = new Map(earlier.ops);
  for (const [key, op] of later.ops) {
    ops.delete(key); // keep the order of the latest write
    ops.set(key, op);
  }
  return { cleared: earlier.cleared, ops };
}

/** The data that results from applying `changes` to `base`. */
export function applyChanges(base: SessionData, changes: ChangeSet): Map<string, JsonValue> {
  const result = changes.cleared ? new Map<string, JsonValue>() : new Map(base);
  for (const [key, op] of changes.ops) {
    if (op === REMOVED) result.delete(key);
    else result.set(key, op);
  }
  return result;
}
