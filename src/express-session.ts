import session, { type SessionData } from 'express-session';
import type { JsonValue } from './core/json-value.js';
import type { CommitOptions, Store } from './core/store.js';
import { openStore, type StoreOptions } from './open-store.js';

type Callback<T> = (error: unknown, value?: T) => void;

/**
 * A Store for express-session on sealed files: `new SealedStore({ dir, keys, ... })`, with the
 * options of `openStore()`. It behaves as express-session's own MemoryStore does — missing,
 * destroyed or expired sessions are `(null, undefined)` at once; expiry follows
 * `session.cookie.expires`; sessions round-trip through JSON exactly; the objects passed in are
 * never mutated — and keeps the guarantees of the sealed files: encryption, locks, atomic
 * writes (concurrent `set()`s of one session are serialized, each stored whole: as in
 * MemoryStore the last one wins), tamper evidence, key rotation.
 *
 * One deliberate difference: a `touch()` that would only move `cookie.expires` by less than
 * `min(60 s, maxAge / 10)` is not written, so that an unchanged session is not rewritten on
 * every request; such a session may expire that much earlier on the server than under
 * MemoryStore.
 */
export class SealedStore extends session.Store {
  /** Resolves once the store is open (keys checked, data dir created); rejects with the reason it cannot open. */
  readonly ready: Promise<Store>;

  constructor(options: StoreOptions = {}) {
    super();
    this.ready = openStore(options);
    // Failures reach every callback; this only stops an unused store from crashing the process.
    this.ready.catch(() => undefined);
  }

  override get(sid: string, callback: (err: unknown, session?: SessionData | null) => void): void {
    this.#run<SessionData | undefined>(callback, async (store) => {
      const found = await store.load(sid);
      return found === null ? undefined : (copy(found.toJSON()) as unknown as SessionData);
    });
  }

  override set(sid: string, sess: SessionData, callback?: (err?: unknown) => void): void {
    this.#run(callback, async (store) => {
      const data = copy(sess) as Record<string, JsonValue>;
      // A replacement, as in MemoryStore: committed as "clear, then set every key" onto whatever
      // is stored, so no load is needed first, and calls queue in the order they were made.
      const target = store.createWithId(sid);
      target.clear();
      for (const [key, value] of Object.entries(data)) target.set(key, value);
      await store.commit(target, deadlineOf(data));
      return undefined;
    });
  }

  override destroy(sid: string, callback?: (err?: unknown) => void): void {
    this.#run(callback, async (store) => {
      await store.destroy(sid);
      return undefined;
    });
  }

  override touch(sid: string, sess: SessionData, callback?: () => void): void {
    this.#run(callback as Callback<undefined> | undefined, async (store) => {
      const current = await store.load(sid);
      if (current === null) return undefined;
      if (sess.cookie === undefined) {
        // MemoryStore assigns `undefined`, which JSON then drops: the stored session loses its cookie.
        if (!current.has('cookie')) return undefined;
        current.delete('cookie');
      } else {
        const cookie = copy(sess.cookie);
        if (closeEnough(current.get('cookie'), cookie)) return undefined;
        current.set('cookie', cookie);
      }
      await store.commit(current, deadlineOf(Object.fromEntries(current)));
      return undefined;
    });
  }

  override all(callback: (err: unknown, obj?: { [sid: string]: SessionData } | null) => void): void {
    this.#run(callback, async (store) => {
      const all: Record<string, SessionData> = Object.create(null) as Record<string, SessionData>;
      for await (const found of store.sessions()) all[found.id] = copy(found.toJSON()) as unknown as SessionData;
      return all;
    });
  }

  /** The ids of every live session. */
  ids(callback: (err: unknown, ids?: string[]) => void): void {
    this.#run(callback, async (store) => {
      const ids: string[] = [];
      for await (const found of store.sessions()) ids.push(found.id);
      return ids;
    });
  }

  override length(callback: (err: unknown, length?: number) => void): void {
    this.#run(callback, async (store) => {
      let count = 0;
      for await (const _ of store.sessions()) count++;
      return count;
    });
  }

  override clear(callback?: (err?: unknown) => void): void {
    this.#run(callback, async (store) => {
      await store.destroyWhere(() => true);
      return undefined;
    });
  }

  #run<T>(callback: Callback<T> | undefined, work: (store: Store) => Promise<T>): void {
    this.ready.then(work).then(
      (value) => callback?.(null, value),
      (error: unknown) => {
        // No callback to hand it to (express-session always passes one; a direct caller may
        // not): reported like the engine's own troubles, never dropped.
        if (callback === undefined) this.emit('warning', { message: 'a session store call without a callback failed', error });
        else callback(error);
      },
    );
  }
}

/** A JSON round trip: what MemoryStore stores, and a copy the caller may mutate. */
function copy(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value)) as unknown;
}

/** The file's deadline: the cookie's `expires`, or none (a session without one never expires, as in MemoryStore). */
function deadlineOf(data: Record<string, unknown>): CommitOptions {
  const cookie = data['cookie'];
  const expires = typeof cookie === 'object' && cookie !== null ? (cookie as Record<string, unknown>)['expires'] : undefined;
  // A string as express-session writes it; a number (ms) as MemoryStore also honours.
  const time = typeof expires === 'string' ? Date.parse(expires) : typeof expires === 'number' ? expires : Number.NaN;
  return { expires: Number.isNaN(time) ? null : time };
}

/** True when `next` differs from `stored` only by an `expires` moved less than min(60 s, maxAge / 10). */
function closeEnough(stored: unknown, next: unknown): boolean {
  if (typeof stored !== 'object' || stored === null || typeof next !== 'object' || next === null) return false;
  const { expires: storedExpires, ...storedRest } = stored as Record<string, unknown>;
  const { expires: nextExpires, ...nextRest } = next as Record<string, unknown>;
  if (JSON.stringify(storedRest) !== JSON.stringify(nextRest)) return false;
  if (storedExpires === nextExpires) return true;
  if (typeof storedExpires !== 'string' || typeof nextExpires !== 'string') return false;
  const maxAge = (next as Record<string, unknown>)['originalMaxAge'];
  const slack = Math.min(60_000, typeof maxAge === 'number' ? maxAge / 10 : 0);
  const moved = Date.parse(nextExpires) - Date.parse(storedExpires);
  return moved >= 0 && moved < slack;
}
