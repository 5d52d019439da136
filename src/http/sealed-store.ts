import { EventEmitter } from 'node:events';
import { LRUCache } from 'lru-cache';
import type { SessionData } from '../core/changes.js';
import { lastUse } from '../core/expiry.js';
import type { JsonValue } from '../core/json-value.js';
import type { StoredSession } from '../core/sealed-session.js';
import type { Session } from '../core/session.js';
import type { Store } from '../core/store.js';
import { openStore, type StoreOptions } from '../open-store.js';

/** A session as a framework hands it over and gets it back: an object that JSON holds. */
// `any`, not `unknown`: the frameworks' own session types (interfaces) must fit both ways.
export type SessionRecord = Record<string, any>;

/** A store callback, as express-session and @fastify/session pass them. */
export type StoreCallback<T = undefined> = (error: any, value?: T) => void;

/** The options object koa-session passes (`{ ctx, rolling, changed }`); only `ctx` is used. */
export interface StoreCallOptions {
  /** The request's context: what this request loaded is remembered by it. */
  readonly ctx?: unknown;
  readonly [option: string]: unknown;
}

/**
 * A session as the store handed it to a request: the stored data, to diff the request's save
 * against. Read-only (the stored values are frozen), so it is never copied.
 */
interface Base {
  readonly data: SessionData;
  /** Roughly what it holds in memory (its JSON's length), for the bound on remembered bases. */
  readonly size: number;
  /**
   * What `get` handed out was read from: the stored version, and its last use as the request
   * knows it. A `touch` of the object needs nothing more, so it costs no read.
   */
  readonly stored?: StoredSession;
  used?: number;
}

/** A stored session as a framework sees it: its record, with the cookie's expiry moved by later uses. */
interface View {
  readonly stored: StoredSession;
  /** A fresh, mutable copy of the data, `cookie.expires` as of the last use. */
  readonly record: SessionRecord;
  /** The last use, ms. */
  readonly used: number;
  /** Whether the session's own data says when it ends (a cookie expiry, koa-session's `_expire`): a read then never moves its end. */
  readonly ownEnd: boolean;
}

/** Sessions remembered per id between a `get` and the `set` (@fastify/session, which tells the store nothing else). */
const MAX_BASES_PER_ID = 8;
const BASES_BY_ID = { max: 10_000, maxSize: 32 * 1024 * 1024 };

/**
 * The store for the frameworks' session packages — express-session (through
 * `sealed-sessions/express-session`), @fastify/session and koa-session — on sealed sessions:
 * `new SealedStore({ dir, keys, ... })`, with the options of `openStore()`. It needs no framework
 * installed.
 *
 * Every method takes a callback (express-session, @fastify/session) or, given none, returns a
 * Promise (koa-session: `get(key, maxAge, opts)`, `set(key, sess, maxAge, opts)`,
 * `destroy(key, opts)`). Callbacks run on their own tick, never inside a promise chain: one
 * that throws is an uncaught exception, as with MemoryStore.
 *
 * It behaves as express-session's MemoryStore does — a missing, destroyed or expired session is
 * `undefined` at once, sessions round-trip through JSON exactly, the objects passed in are never
 * mutated — with these differences:
 *  - the store's `idleTimeout` and `absoluteTimeout` bound every session: one whose cookie has no
 *    expiry ends after them (MemoryStore keeps it forever); one with an expiry ends then, or at
 *    the absolute timeout if that comes first;
 *  - saving a session the store handed to this request stores only what the request changed,
 *    merged onto the latest version (concurrent requests that change different keys all
 *    persist); a session it did not hand out is replaced whole. It knows what it handed out by
 *    the object (express-session, through `createSession`), by koa-session's `ctx`, or else —
 *    @fastify/session builds its own object — by the id, from its recent `get`s (a bounded number);
 *  - after `destroy(id)`, a save of that id stores nothing (a tombstone stands in its place until
 *    the session's own end), in any process: a logout sticks;
 *  - `touch` does not rewrite the file: it moves its keep-alive mark, from which `get` reports
 *    the moved `cookie.expires` exactly.
 */
export class SealedStore extends EventEmitter {
  /** Resolves once the store is open (keys checked, data dir created); rejects with the reason it cannot open. */
  readonly ready: Promise<Store>;
  /** Objects this store handed out (a `get` result, and what a framework built from it), to the data they came from. */
  readonly #handedOut = new WeakMap<object, Base>();
  /** koa-session: per request context, per key, the data handed out. */
  readonly #byContext = new WeakMap<object, Map<string, Base>>();
  #byId: LRUCache<string, Base[]> | undefined;

  constructor(options: StoreOptions = {}) {
    super();
    this.ready = openStore(options);
    // Failures reach every call; this only stops an unused store from crashing the process.
    this.ready.catch(() => undefined);
  }

  /**
   * Whether a save of an object this store did not hand out is diffed against what a recent
   * `get` of that id handed out (@fastify/session builds its own object from the `get` result
   * and tells the store nothing else). The express-session store knows its objects exactly.
   */
  protected get mergesById(): boolean {
    return true;
  }

  /** For a framework that builds its session object from a `get` result: `made` saves as `from` would. */
  protected linkBase(from: object, made: object): void {
    const base = this.#handedOut.get(from);
    if (base !== undefined) this.#handedOut.set(made, base);
  }

  /** The live session `sid`: `undefined` when there is none (unknown, expired, destroyed, tampered). */
  get(sid: string, callback: StoreCallback<SessionRecord | null>): void;
  get(sid: string, maxAge?: unknown, options?: StoreCallOptions): Promise<SessionRecord | undefined>;
  get(sid: string, ...rest: unknown[]): Promise<SessionRecord | undefined> | void {
    const { callback, options } = parse<SessionRecord | undefined>(rest);
    return this.#run(callback, async (store) => {
      const stored = await store.peek(sid);
      const now = store.options.now();
      const view = stored === null ? null : viewOf(stored, now);
      if (view === null) return undefined;
      let used = view.used;
      // Use, for the idle timeout, of a session that has no end of its own (a browser-session
      // cookie): marked at most once per touchInterval, never rewritten.
      if (!view.ownEnd && now - used >= store.options.touchIntervalMs) {
        const marked = await store.markUse(sid, view.stored, now).catch((error: unknown) => {
          store.emit('warning', { message: 'could not mark a session as used', error });
          return false;
        });
        if (marked) used = now;
      }
      const base: Base = { data: view.stored.data, size: view.stored.plaintext.length, stored: view.stored, used };
      this.#handedOut.set(view.record, base);
      const context = contextOf(options);
      if (context !== undefined) this.#contextBases(context).set(sid, base);
      else if (this.mergesById) this.#rememberById(sid, base);
      return view.record;
    });
  }

  /**
   * Stores `sess` as session `sid`. A session this store handed to the request is saved as what
   * the request changed (keys added, changed or removed; `cookie` always as given), merged onto
   * the latest stored version; any other object replaces the session whole. After a `destroy`,
   * nothing is stored. The session ends when `sess.cookie.expires` says (or `maxAge` ms from
   * now, koa-session's), and within the store's timeouts.
   */
  set(sid: string, sess: object, callback: StoreCallback): void;
  set(sid: string, sess: object, maxAge?: unknown, options?: StoreCallOptions): Promise<void>;
  set(sid: string, sess: object, ...rest: unknown[]): Promise<void> | void {
    const { callback, options, maxAge } = parse<undefined>(rest);
    return this.#run(callback, async (store) => {
      const record = plain(sess, 'session');
      const now = store.options.now();
      const expires = typeof maxAge === 'number' && Number.isFinite(maxAge) ? now + maxAge : maxAge === 'session' ? null : (cookieEndOf(record)?.time ?? null);
      const context = contextOf(options);
      const base = this.#baseFor(sid, sess, context, record);
      let target: Session;
      if (base === undefined) {
        // A replacement, as in MemoryStore: "clear, then set every key" onto whatever is stored
        // (no read first; calls queue in the order they were made).
        target = store.createWithId(sid);
        target.clear();
        for (const [key, value] of Object.entries(record)) target.set(key, value as JsonValue);
      } else {
        target = store.attach(sid);
        applyDiff(target, base.data, record);
      }
      const outcome = await store.commit(target, { expires });
      if (outcome === 'gone') return undefined;
      // What the request holds now is saved: a second save in the same request diffs against it.
      const saved: Base = { data: new Map(Object.entries(record) as [string, JsonValue][]), size: JSON.stringify(record).length };
      if (context !== undefined) this.#contextBases(context).set(sid, saved);
      else if (base !== undefined && this.#handedOut.has(sess)) this.#handedOut.set(sess, saved);
      else if (base !== undefined && this.mergesById) this.#rememberById(sid, saved);
      return undefined;
    });
  }

  /** Ends session `sid`; a save of that id stores nothing afterwards (from any process) until the session's own end. */
  destroy(sid: string, callback: StoreCallback): void;
  destroy(sid: string, options?: StoreCallOptions): Promise<void>;
  destroy(sid: string, ...rest: unknown[]): Promise<void> | void {
    const { callback } = parse<undefined>(rest);
    return this.#run(callback, async (store) => {
      this.#byId?.delete(sid);
      await store.destroy(sid, { tombstone: true });
      return undefined;
    });
  }

  /**
   * Marks session `sid` as used and stores `sess.cookie` (only the cookie; a quiet no-op for an
   * unknown id). When only the cookie's `expires` moved later, as express-session's touch does,
   * nothing is rewritten: the session's keep-alive mark moves, and `get` reports the new
   * `expires` exactly.
   */
  touch(sid: string, sess: object, callback: StoreCallback): void;
  touch(sid: string, sess: object): Promise<void>;
  touch(sid: string, sess: object, ...rest: unknown[]): Promise<void> | void {
    const { callback } = parse<undefined>(rest);
    return this.#run(callback, async (store) => {
      const now = store.options.now();
      // What this store handed out for `sess` says all a touch needs: no read. (Had another
      // request rewritten the session since, the mark lands within milliseconds of exact: every
      // framework write stores an expiry about its cookie's maxAge ahead of its own time.)
      const known = this.#handedOut.get(sess);
      const stored = known?.stored ?? (await store.peek(sid));
      if (stored === null) return undefined;
      const used = known?.stored !== undefined ? (known.used ?? stored.mtimeMs) : lastUse(stored.header, stored.mtimeMs);
      const timing = cookieTiming(stored, used);
      if (timing !== null && timing.moved <= now) return undefined;
      const given = (sess as { cookie?: unknown }).cookie;
      const next = given === undefined ? undefined : plain(given, 'cookie');
      const mark = markFor(stored, next);
      if (mark === 'use') {
        if (now - used >= store.options.touchIntervalMs && (await store.markUse(sid, stored, now)) && known !== undefined) known.used = now;
      } else if (mark !== 'store') {
        if (mark !== used && (await store.markUse(sid, stored, mark)) && known !== undefined) known.used = mark;
      } else {
        // Anything else about the cookie changed: stored, as a change of that key alone.
        const target = store.attach(sid);
        if (next === undefined) target.delete('cookie');
        else target.set('cookie', next as JsonValue);
        await store.commit(target, { expires: cookieEndOf({ cookie: next })?.time ?? null });
        // Rewritten: a later touch reads what is stored now.
        if (known !== undefined) this.#handedOut.set(sess, { data: known.data, size: known.size });
      }
      return undefined;
    });
  }

  /** Every live session, keyed by id (a null-prototype object, as MemoryStore's). */
  all(callback: StoreCallback<Record<string, SessionRecord>>): void;
  all(): Promise<Record<string, SessionRecord>>;
  all(...rest: unknown[]): Promise<Record<string, SessionRecord>> | void {
    const { callback } = parse<Record<string, SessionRecord>>(rest);
    return this.#run(callback, async (store) => {
      const all = Object.create(null) as Record<string, SessionRecord>;
      await this.#forEachLive(store, (view) => {
        all[view.stored.id] = view.record;
      });
      return all;
    });
  }

  /** The ids of every live session. */
  ids(callback: StoreCallback<string[]>): void;
  ids(): Promise<string[]>;
  ids(...rest: unknown[]): Promise<string[]> | void {
    const { callback } = parse<string[]>(rest);
    return this.#run(callback, async (store) => {
      const ids: string[] = [];
      await this.#forEachLive(store, (view) => ids.push(view.stored.id));
      return ids;
    });
  }

  /** How many live sessions there are. */
  length(callback: StoreCallback<number>): void;
  length(): Promise<number>;
  length(...rest: unknown[]): Promise<number> | void {
    const { callback } = parse<number>(rest);
    return this.#run(callback, async (store) => {
      let count = 0;
      await this.#forEachLive(store, () => count++);
      return count;
    });
  }

  /** Removes every session. */
  clear(callback: StoreCallback): void;
  clear(): Promise<void>;
  clear(...rest: unknown[]): Promise<void> | void {
    const { callback } = parse<undefined>(rest);
    return this.#run(callback, async (store) => {
      this.#byId?.clear();
      await store.destroyWhere(() => true);
      return undefined;
    });
  }

  async #forEachLive(store: Store, each: (view: View) => void): Promise<void> {
    for await (const stored of store.storedSessions()) {
      const view = viewOf(stored, store.options.now());
      if (view !== null) each(view);
    }
  }

  #contextBases(context: object): Map<string, Base> {
    let bases = this.#byContext.get(context);
    if (bases === undefined) {
      bases = new Map();
      this.#byContext.set(context, bases);
    }
    return bases;
  }

  #rememberById(sid: string, base: Base): void {
    this.#byId ??= new LRUCache<string, Base[]>({ ...BASES_BY_ID, sizeCalculation: (list) => list.reduce((sum, item) => sum + item.size, 1) });
    const list = [...(this.#byId.get(sid) ?? []), base].slice(-MAX_BASES_PER_ID);
    this.#byId.set(sid, list);
  }

  /** What the request saving `sess` was handed, if the store can tell. */
  #baseFor(sid: string, sess: object, context: object | undefined, record: SessionRecord): Base | undefined {
    if (context !== undefined) return this.#byContext.get(context)?.get(sid);
    const known = this.#handedOut.get(sess);
    if (known !== undefined || !this.mergesById) return known;
    // By id: of the versions recently handed out for this id (concurrent requests may hold
    // different ones), the one this object differs least from — its own, in all but contrived
    // cases. Any of them diffs to no more than a whole replacement would remove.
    const list = this.#byId?.get(sid);
    if (list === undefined || list.length === 0) return undefined;
    let best = 0;
    let fewest = Number.POSITIVE_INFINITY;
    list.forEach((candidate, index) => {
      const count = diffSize(candidate.data, record);
      if (count < fewest) [best, fewest] = [index, count];
    });
    const [chosen] = list.splice(best, 1);
    if (list.length === 0) this.#byId!.delete(sid);
    return chosen;
  }

  /** The work, then the callback on its own tick (outside the promise chain), or the promise when there is none. */
  #run<T>(callback: StoreCallback<T> | undefined, work: (store: Store) => Promise<T>): Promise<T> | void {
    const result = this.ready.then(work);
    if (callback === undefined) return result;
    result.then(
      (value) => process.nextTick(callback, null, value),
      (error: unknown) => process.nextTick(callback, error),
    );
  }
}

/** Splits the arguments after the first ones into koa-session's (`maxAge`, `options`) or a trailing callback. */
function parse<T>(rest: readonly unknown[]): { callback: StoreCallback<T> | undefined; maxAge: unknown; options: unknown } {
  const last = rest.at(-1);
  if (typeof last === 'function') return { callback: last as StoreCallback<T>, maxAge: undefined, options: undefined };
  // destroy(key, opts) has no maxAge: an object first is the options.
  if (typeof rest[0] === 'object' && rest[0] !== null) return { callback: undefined, maxAge: undefined, options: rest[0] };
  return { callback: undefined, maxAge: rest[0], options: rest[1] };
}

function contextOf(options: unknown): object | undefined {
  const ctx = typeof options === 'object' && options !== null ? (options as StoreCallOptions).ctx : undefined;
  return typeof ctx === 'object' && ctx !== null ? ctx : undefined;
}

/** A JSON copy of what a framework hands over (a class instance with `toJSON`, Dates): what MemoryStore stores. */
function plain(value: unknown, what: string): SessionRecord {
  const copy = JSON.parse(JSON.stringify(value) ?? 'null') as unknown;
  if (typeof copy !== 'object' || copy === null || Array.isArray(copy)) throw new TypeError(`sealed-sessions: a ${what} must be an object`);
  return copy as SessionRecord;
}

interface CookieEnd {
  readonly time: number;
  /** How it is written: express-session's ISO string (after JSON), or ms since the epoch. */
  readonly form: 'iso' | 'ms';
}

/** When the session's cookie says it ends (`cookie.expires`: a date string, or ms as MemoryStore also honours); null when it does not. */
function cookieEndOf(record: SessionRecord): CookieEnd | null {
  const cookie: unknown = record['cookie'];
  if (typeof cookie !== 'object' || cookie === null) return null;
  const expires = (cookie as Record<string, unknown>)['expires'];
  if (typeof expires === 'number' && Number.isFinite(expires)) return { time: expires, form: 'ms' };
  if (typeof expires !== 'string') return null;
  const time = Date.parse(expires);
  if (Number.isNaN(time)) return null;
  return { time, form: new Date(time).toISOString() === expires ? 'iso' : 'ms' };
}

/** When the session's cookie ends, as of its last use `used`: stored as of its last write, moved by as much as a later keep-alive mark (a `touch`) moved the last use. */
function cookieTiming(stored: StoredSession, used: number): { end: CookieEnd; moved: number } | null {
  const end = cookieEndOf({ cookie: stored.data.get('cookie') });
  return end === null ? null : { end, moved: end.time + (used - stored.header.written) };
}

/** The session as the framework sees it at `now`, or null when its cookie says it has ended (as MemoryStore does: `expires <= now`). */
function viewOf(stored: StoredSession, now: number): View | null {
  const used = lastUse(stored.header, stored.mtimeMs);
  const timing = cookieTiming(stored, used);
  if (timing !== null && timing.moved <= now) return null;
  const record = (JSON.parse(stored.plaintext) as { data: SessionRecord }).data;
  if (timing !== null && timing.moved !== timing.end.time) {
    (record['cookie'] as Record<string, unknown>)['expires'] = timing.end.form === 'iso' ? new Date(timing.moved).toISOString() : timing.moved;
  }
  return { stored, record, used, ownEnd: timing !== null || typeof record['_expire'] === 'number' };
}

/**
 * What a `touch` with cookie `next` does: `'use'` (the cookie has no end and did not change: a
 * use, rate-limited), a keep-alive mark at that time (only `expires` moved, later: the mark
 * reproduces it exactly), or `'store'` (anything else: the cookie is written).
 */
function markFor(stored: StoredSession, next: SessionRecord | undefined): number | 'use' | 'store' {
  const current: unknown = stored.data.get('cookie');
  if (next === undefined || typeof current !== 'object' || current === null) return next === undefined && current === undefined ? 'use' : 'store';
  const { expires: before, ...restBefore } = current as Record<string, unknown>;
  const { expires: after, ...restAfter } = next;
  if (JSON.stringify(restBefore) !== JSON.stringify(restAfter)) return 'store';
  if (before == null || after == null) return before === after ? 'use' : 'store';
  const from = cookieEndOf({ cookie: current });
  const to = cookieEndOf({ cookie: next });
  // Only what `get` would write back exactly: the same form, a canonical string, no earlier than written.
  if (from === null || to === null || from.form !== to.form || to.time < from.time) return 'store';
  if (to.form === 'iso' ? new Date(to.time).toISOString() !== after : to.time !== after) return 'store';
  return stored.header.written + (to.time - from.time);
}

/** `data` → `record` as changes of `target`: keys added or changed are set (`cookie` always), keys gone are deleted. */
function applyDiff(target: Session, data: SessionData, record: SessionRecord): void {
  for (const [key, value] of Object.entries(record)) {
    if (key === 'cookie' || !data.has(key) || JSON.stringify(data.get(key)) !== JSON.stringify(value)) target.set(key, value as JsonValue);
  }
  for (const key of data.keys()) if (!Object.hasOwn(record, key)) target.delete(key);
}

/** How many keys differ between `data` and `record` (the cookie aside). */
function diffSize(data: SessionData, record: SessionRecord): number {
  let count = 0;
  for (const [key, value] of Object.entries(record)) {
    if (key !== 'cookie' && (!data.has(key) || JSON.stringify(data.get(key)) !== JSON.stringify(value))) count++;
  }
  for (const key of data.keys()) if (key !== 'cookie' && !Object.hasOwn(record, key)) count++;
  return count;
}
