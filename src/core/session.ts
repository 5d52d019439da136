import { applyChanges, combine, emptyChanges, hasChanges, REMOVED, type ChangeSet, type SessionData } from './changes.js';
import { sessionTypeError } from '../errors.js';
import { toSessionValue, type JsonValue } from './json-value.js';

/** What saves a session: the store it came from. */
export interface SessionCommitter {
  commit(session: Session): Promise<unknown>;
}

/** Store-side access to a session's pending changes; not part of the public API. */
export interface SessionInternals {
  /** Hands the pending changes to a commit and starts a new, empty change set. */
  takeChanges(session: Session): ChangeSet;
  /** Puts changes of a failed commit back, beneath any made since. */
  restoreChanges(session: Session, changes: ChangeSet): void;
  /** After a commit: the stored data, with changes made meanwhile replayed on top. */
  committed(session: Session, data: SessionData): void;
  /** After a commit found the session destroyed or expired. */
  markGone(session: Session): void;
  hasPendingChanges(session: Session): boolean;
}

let internals: SessionInternals;

/**
 * A session's data, used like a `Map<string, JsonValue>`. Changes are remembered and committed
 * for you at the end of the request (or by `save()` outside one); values are copied and frozen
 * on `set()`, so to change an object, set a new one.
 */
export class Session implements Iterable<[string, JsonValue]> {
  readonly #id: string;
  readonly #committer: SessionCommitter;
  #data: Map<string, JsonValue>;
  #changes: ChangeSet = emptyChanges();
  #isNew: boolean;
  #gone = false;

  /** @internal Sessions come from a store: `store.create()`, `store.load(id)`, or `req.trans.getSession()`. */
  constructor(id: string, data: SessionData, isNew: boolean, committer: SessionCommitter) {
    this.#id = id;
    this.#data = new Map(data);
    this.#isNew = isNew;
    this.#committer = committer;
  }

  // One object for the store's side, made once (not per call: it runs on every request).
  static {
    internals = {
      takeChanges: (session) => {
        const taken = session.#changes;
        session.#changes = emptyChanges();
        return taken;
      },
      restoreChanges: (session, changes) => {
        session.#changes = combine(changes, session.#changes);
      },
      committed: (session, data) => {
        session.#data = applyChanges(data, session.#changes);
        session.#isNew = false;
      },
      markGone: (session) => {
        session.#gone = true;
      },
      hasPendingChanges: (session) => hasChanges(session.#changes),
    };
  }

  /** The session id: 256 random bits, base64url. Secret: it is what the cookie carries. */
  get id(): string {
    return this.#id;
  }

  /** True until the session has been stored for the first time. */
  get isNew(): boolean {
    return this.#isNew;
  }

  /** True once a commit found the session destroyed or expired: it will not be stored again. */
  get isGone(): boolean {
    return this.#gone;
  }

  get size(): number {
    return this.#data.size;
  }

  get(key: string): JsonValue | undefined {
    return this.#data.get(key);
  }

  has(key: string): boolean {
    return this.#data.has(key);
  }

  /** @throws TypeError `ERR_SESSION_VALUE` when JSON cannot hold `value` exactly; nothing changes then. */
  set(key: string, value: unknown): this {
    if (typeof key !== 'string') throw sessionTypeError('ERR_SESSION_VALUE', `session keys are strings, not ${typeof key}`);
    const stored = toSessionValue(value, key);
    this.#data.set(key, stored);
    this.#changes.ops.delete(key);
    this.#changes.ops.set(key, stored);
    return this;
  }

  delete(key: string): boolean {
    const existed = this.#data.delete(key);
    // Recorded even when absent here: another request may have set it meanwhile, and a delete
    // is a statement about the end state.
    this.#changes.ops.delete(key);
    this.#changes.ops.set(key, REMOVED);
    return existed;
  }

  clear(): void {
    this.#data.clear();
    this.#changes = { cleared: true, ops: new Map() };
  }

  keys(): MapIterator<string> {
    return this.#data.keys();
  }

  values(): MapIterator<JsonValue> {
    return this.#data.values();
  }

  entries(): MapIterator<[string, JsonValue]> {
    return this.#data.entries();
  }

  forEach(callback: (value: JsonValue, key: string, session: this) => void, thisArg?: unknown): void {
    for (const [key, value] of this.#data) callback.call(thisArg, value, key, this);
  }

  [Symbol.iterator](): MapIterator<[string, JsonValue]> {
    return this.#data.entries();
  }

  get [Symbol.toStringTag](): string {
    return 'Session';
  }

  /** The data as a plain object (a copy). */
  toJSON(): Record<string, JsonValue> {
    return Object.fromEntries(this.#data);
  }

  /** Commits now. Inside a request there is no need: the transaction commits before the response ends. */
  async save(): Promise<void> {
    await this.#committer.commit(this);
  }
}

/** The store's side of every session. */
export function sessionInternals(): SessionInternals {
  return internals;
}
