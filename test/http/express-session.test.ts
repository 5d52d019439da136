import fs from 'node:fs/promises';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import signature from 'cookie-signature';
import express, { type ErrorRequestHandler, type Request } from 'express';
import session, { type SessionData } from 'express-session';
import { isTombstone } from '../../src/core/expiry.js';
import { readHeader } from '../../src/crypto/seal.js';
import { SealedStore } from '../../src/express-session.js';
import { CookieJar, listen } from '../helpers/http.js';
import { KEY, listFiles, tempDir } from '../helpers/temp-dir.js';

/*
 * SealedStore against express-session's own MemoryStore: the same calls on both, the same
 * answers (part 1); through express-session over real HTTP (part 2); at rest (part 3).
 */

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/** The Store methods both stores implement, with MemoryStore's signatures. */
type Contract = Pick<session.MemoryStore, 'get' | 'set' | 'destroy' | 'touch' | 'all' | 'length' | 'clear'>;

/** What a callback was called with, and how long it took to be called. */
interface Outcome {
  readonly args: readonly unknown[];
  readonly ms: number;
}

function settle(start: (callback: (...args: unknown[]) => void) => void): Promise<Outcome> {
  const began = performance.now();
  return new Promise((resolve) => start((...args) => resolve({ args, ms: performance.now() - began })));
}

/** A store's callbacks, promisified. Sessions are `unknown`: the contract is about what JSON holds. */
class Api {
  readonly name: string;
  readonly store: Contract;

  constructor(name: string, store: Contract) {
    this.name = name;
    this.store = store;
  }

  get(sid: string): Promise<Outcome> {
    return settle((callback) => this.store.get(sid, callback));
  }

  set(sid: string, sess: unknown): Promise<Outcome> {
    return settle((callback) => this.store.set(sid, sess as SessionData, callback));
  }

  destroy(sid: string): Promise<Outcome> {
    return settle((callback) => this.store.destroy(sid, callback));
  }

  touch(sid: string, sess: unknown): Promise<Outcome> {
    return settle((callback) => this.store.touch(sid, sess as SessionData, callback));
  }

  all(): Promise<Outcome> {
    return settle((callback) => this.store.all(callback));
  }

  length(): Promise<Outcome> {
    return settle((callback) => this.store.length(callback));
  }

  clear(): Promise<Outcome> {
    return settle((callback) => this.store.clear(callback));
  }
}

/** The callback's value, after checking it reported no error. */
function ok(t: ExecutionContext, outcome: Outcome, what: string): unknown {
  t.falsy(outcome.args[0], `${what}: error ${String(outcome.args[0])}`);
  return outcome.args[1];
}

interface Pair {
  readonly dir: string;
  readonly sealed: SealedStore;
  readonly apis: readonly [Api, Api];
  readonly tamper: unknown[];
}

async function pair(t: ExecutionContext): Promise<Pair> {
  const dir = await tempDir(t);
  const sealed = new SealedStore({ dir, keys: KEY });
  const tamper: unknown[] = [];
  (await sealed.ready).on('tamper', (event) => tamper.push(event));
  return { dir, sealed, apis: [new Api('MemoryStore', new session.MemoryStore()), new Api('SealedStore', sealed)], tamper };
}

/**
 * Runs one operation on both stores; asserts neither reported an error and both gave the same
 * value. Returns that value (SealedStore's).
 */
async function both(t: ExecutionContext, p: Pair, what: string, op: (api: Api) => Promise<Outcome>): Promise<unknown> {
  const [memory, sealed] = await Promise.all(p.apis.map(op));
  const expected = ok(t, memory!, `${what} (MemoryStore)`);
  const actual = ok(t, sealed!, `${what} (SealedStore)`);
  t.deepEqual(actual, expected, `${what}: SealedStore differs from MemoryStore`);
  return actual;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const json = (value: unknown): unknown => JSON.parse(JSON.stringify(value));

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

/** A cookie as express-session stores it (Cookie#toJSON), `expires` at `expiresAt`. */
function cookie(expiresAt: number | null, originalMaxAge: number | null = 600_000, extra: Record<string, unknown> = {}) {
  return {
    originalMaxAge,
    expires: expiresAt === null ? null : new Date(expiresAt).toISOString(),
    httpOnly: true,
    path: '/',
    ...extra,
  };
}

/** An id shaped like express-session's (uid-safe, 24 bytes). */
function sid(tag: string): string {
  return `${tag}-${Math.random().toString(36).slice(2)}-${Date.now().toString(36)}`.padEnd(32, 'x');
}

async function sessionFiles(dir: string): Promise<string[]> {
  return (await listFiles(dir)).filter((file) => file.endsWith('.sess'));
}

/** The session files that are tombstones (a destroyed session's stand-in until its own end), by their clear-text header. */
async function tombstoneFiles(dir: string): Promise<string[]> {
  const files = await sessionFiles(dir);
  const headers = await Promise.all(files.map(async (file) => readHeader(await fs.readFile(path.join(dir, file)))));
  return files.filter((_, index) => headers[index] !== null && isTombstone(headers[index]!));
}

// ---------------------------------------------------------------------------------------------
// 1. The Store contract, SealedStore against MemoryStore
// ---------------------------------------------------------------------------------------------

test('get of a missing id: (null, undefined), no error, at once — on both stores', async (t) => {
  const p = await pair(t);
  for (const id of [sid('missing'), 'nope', '', 'x'.repeat(300), '../../etc/passwd', '__proto__', 'constructor']) {
    const outcomes = await Promise.all(p.apis.map((api) => api.get(id)));
    for (const [index, outcome] of outcomes.entries()) {
      const name = p.apis[index]!.name;
      t.deepEqual(outcome.args, [null, undefined], `${name}: get(${JSON.stringify(id.slice(0, 20))})`);
      // Loose: a retry or a lock wait would take seconds (lockWait is 15 s by default).
      t.true(outcome.ms < 500, `${name}: get of a missing id took ${outcome.ms.toFixed(1)} ms (no retries expected)`);
    }
  }
  t.deepEqual(await sessionFiles(p.dir), [], 'a get created a file');
});

test('set then get round-trips exactly through JSON; set replaces the whole session', async (t) => {
  const p = await pair(t);
  const id = sid('roundtrip');
  const expires = Date.now() + 3_600_000;
  const sess = {
    cookie: { ...cookie(expires, 3_600_000, { secure: false, sameSite: 'lax', domain: 'example.test' }), expires: new Date(expires) },
    user: { name: 'Ada', roles: ['admin', 'reader'], profile: { nested: { deep: [1, { x: null }, [true, false]] } } },
    unknownKey: 'kept',
    number: 1.5,
    negative: -42,
    big: Number.MAX_SAFE_INTEGER,
    flag: false,
    nothing: null,
    emptyObject: {},
    emptyArray: [],
    unicode: 'héllo ✓ 🎉 \u2028 "quoted" \\ back',
    when: new Date(0),
    dropped: undefined,
    droppedFn: () => 1,
    constructor: 'an own key named constructor',
    toString: 'and one named toString',
    ...(JSON.parse('{"__proto__":{"polluted":true}}') as object),
  };
  const expected = json(sess) as Record<string, unknown>;
  t.is((expected['cookie'] as Record<string, unknown>)['expires'], new Date(expires).toISOString(), 'the expected expires is a string');

  await both(t, p, 'set', (api) => api.set(id, sess));
  const got = (await both(t, p, 'get', (api) => api.get(id))) as Record<string, unknown>;
  t.deepEqual(got, expected);
  t.is(typeof (got['cookie'] as Record<string, unknown>)['expires'], 'string', 'cookie.expires comes back as a string');
  t.true(Object.hasOwn(got, '__proto__'), 'an own "__proto__" key is kept as data');
  t.is(Object.getPrototypeOf(got), Object.prototype, 'the "__proto__" key did not become the prototype');
  t.is(({} as Record<string, unknown>)['polluted'], undefined, 'Object.prototype polluted');
  t.false('dropped' in got);

  // A session without `cookie` is accepted and kept (and never expires).
  const bare = sid('bare');
  await both(t, p, 'set without cookie', (api) => api.set(bare, { user: 'no cookie', list: [1, 2] }));
  t.deepEqual(await both(t, p, 'get without cookie', (api) => api.get(bare)), { user: 'no cookie', list: [1, 2] });

  // set replaces: keys the new object no longer has are gone.
  await both(t, p, 'set smaller', (api) => api.set(id, { cookie: cookie(expires), only: 'this' }));
  t.deepEqual(await both(t, p, 'get smaller', (api) => api.get(id)), { cookie: json(cookie(expires)), only: 'this' });
  t.deepEqual(p.tamper, []);
});

test('the objects passed to set and touch are not mutated (deep-frozen, and compared before/after)', async (t) => {
  const p = await pair(t);
  const id = sid('frozen');
  const expires = Date.now() + 600_000;
  const make = () => ({ cookie: { ...cookie(expires), expires: new Date(expires) }, user: { name: 'Ada', tags: ['a', 'b'] }, n: 1 });
  for (const api of p.apis) {
    const sess = make();
    const before = json(sess);
    const frozen = deepFreeze(make());
    t.deepEqual(ok(t, await api.set(id, sess), `${api.name} set`), undefined);
    t.deepEqual(json(sess), before, `${api.name}: set mutated its argument`);
    t.true(sess.cookie.expires instanceof Date, `${api.name}: set replaced the Date`);
    ok(t, await api.set(`${id}-frozen`, frozen), `${api.name} set of a deep-frozen session`);

    const touched = { ...make(), cookie: { ...cookie(expires + 120_000), expires: new Date(expires + 120_000) } };
    const touchedBefore = json(touched);
    ok(t, await api.touch(id, touched), `${api.name} touch`);
    t.deepEqual(json(touched), touchedBefore, `${api.name}: touch mutated its argument`);
    ok(t, await api.touch(`${id}-frozen`, deepFreeze({ ...make(), cookie: cookie(expires + 240_000) })), `${api.name} touch of a deep-frozen session`);
  }
  t.deepEqual(await both(t, p, 'get', (api) => api.get(`${id}-frozen`)), { ...(json(make()) as object), cookie: json(cookie(expires + 240_000)) });
});

test('get hands out a fresh, mutable copy each time (express-session mutates what get returns)', async (t) => {
  const p = await pair(t);
  const id = sid('copy');
  const expires = Date.now() + 600_000;
  await both(t, p, 'set', (api) => api.set(id, { cookie: cookie(expires), user: { name: 'Ada', tags: ['a'] } }));
  for (const api of p.apis) {
    const first = ok(t, await api.get(id), api.name) as { cookie: Record<string, unknown>; user: { name: string; tags: string[] } };
    t.notThrows(() => {
      first.user.name = 'changed';
      first.user.tags.push('b');
      first.cookie['expires'] = new Date(0);
      (first as Record<string, unknown>)['added'] = true;
    }, `${api.name}: the value from get is not mutable`);
  }
  // And the store did not change with it; express-session's own inflating works on it.
  t.deepEqual(await both(t, p, 'get again', (api) => api.get(id)), { cookie: json(cookie(expires)), user: { name: 'Ada', tags: ['a'] } });
  for (const api of p.apis) {
    const store = api.store as session.Store;
    const loaded = await new Promise<unknown>((resolve, reject) => store.load(id, (error, value) => (error ? reject(error as Error) : resolve(value))));
    t.is((loaded as { user: { name: string } }).user.name, 'Ada', `${api.name}: Store#load`);
  }
});

test('destroy then get → undefined; destroy of an unknown id is quiet', async (t) => {
  const p = await pair(t);
  const id = sid('destroy');
  const keep = sid('keep');
  const expires = Date.now() + 600_000; // once: both stores must get the very same session
  await both(t, p, 'set', (api) => api.set(id, { cookie: cookie(expires), v: 1 }));
  await both(t, p, 'set keep', (api) => api.set(keep, { cookie: cookie(expires), v: 2 }));
  t.is(await both(t, p, 'destroy', (api) => api.destroy(id)), undefined);
  t.is(await both(t, p, 'get destroyed', (api) => api.get(id)), undefined);
  t.is(await both(t, p, 'destroy again', (api) => api.destroy(id)), undefined);
  t.is(await both(t, p, 'destroy unknown', (api) => api.destroy(sid('unknown'))), undefined);
  t.is(((await both(t, p, 'get keep', (api) => api.get(keep))) as { v: number }).v, 2);
  t.is(await both(t, p, 'length', (api) => api.length()), 1);
  // The destroyed session's file is a tombstone now (a late set of its id stores nothing).
  t.is((await sessionFiles(p.dir)).length, 2);
  t.is((await tombstoneFiles(p.dir)).length, 1, 'the destroyed session is not a tombstone');
});

test('expiry follows cookie.expires in get, all and length', async (t) => {
  const p = await pair(t);
  const now = Date.now();
  const past = sid('past');
  const soon = sid('soon');
  const later = sid('later');
  const never = sid('never');
  const browser = sid('browser');
  await both(t, p, 'set past', (api) => api.set(past, { cookie: cookie(now - 1000), v: 'past' }));
  await both(t, p, 'set soon', (api) => api.set(soon, { cookie: cookie(now + 4000, 4000), v: 'soon' }));
  await both(t, p, 'set later', (api) => api.set(later, { cookie: cookie(now + 600_000), v: 'later' }));
  await both(t, p, 'set never', (api) => api.set(never, { v: 'no cookie' }));
  await both(t, p, 'set browser-session cookie', (api) => api.set(browser, { cookie: cookie(null, null), v: 'expires: null' }));

  t.is(await both(t, p, 'get past', (api) => api.get(past)), undefined);
  const alive = await both(t, p, 'get soon', (api) => api.get(soon));
  const listed = await both(t, p, 'all', (api) => api.all());
  const length = await both(t, p, 'length', (api) => api.length());
  t.true(Date.now() < now + 4000, 'too slow to see "soon" alive');
  t.is((alive as { v: string } | undefined)?.v, 'soon');
  t.deepEqual(Object.keys(listed as object).sort(), [soon, later, never, browser].sort());
  t.is(length, 4);

  await sleep(now + 4200 - Date.now());
  t.is(await both(t, p, 'get soon after', (api) => api.get(soon)), undefined);
  t.deepEqual(Object.keys((await both(t, p, 'all after', (api) => api.all())) as object).sort(), [later, never, browser].sort());
  t.is(await both(t, p, 'length after', (api) => api.length()), 3);
  // An expired session does not come back by touch either.
  const fresh = cookie(Date.now() + 600_000);
  await both(t, p, 'touch soon after', (api) => api.touch(soon, { cookie: fresh }));
  t.is(await both(t, p, 'get soon after touch', (api) => api.get(soon)), undefined);
});

test('touch stores the new cookie, and only the cookie', async (t) => {
  const p = await pair(t);
  const id = sid('touch');
  const start = Date.now() + 600_000;
  await both(t, p, 'set', (api) => api.set(id, { cookie: cookie(start), user: 'Ada', n: 1 }));

  // expires moved by 2 min (> min(60 s, 600 s / 10)); the data in the touched object is ignored.
  const moved = cookie(start + 120_000);
  await both(t, p, 'touch', (api) => api.touch(id, { cookie: moved, user: 'changed by touch?', extra: true }));
  t.deepEqual(await both(t, p, 'get after touch', (api) => api.get(id)), { cookie: moved, user: 'Ada', n: 1 });

  // Another field of the cookie, same expires: stored.
  const other = { ...moved, path: '/app', sameSite: 'strict' };
  await both(t, p, 'touch other fields', (api) => api.touch(id, { cookie: other }));
  t.deepEqual(await both(t, p, 'get after touch 2', (api) => api.get(id)), { cookie: other, user: 'Ada', n: 1 });

  // Moved back (shortened): stored.
  const shorter = cookie(start - 120_000, 600_000, { path: '/app', sameSite: 'strict' });
  await both(t, p, 'touch backwards', (api) => api.touch(id, { cookie: shorter }));
  t.deepEqual(await both(t, p, 'get after touch 3', (api) => api.get(id)), { cookie: shorter, user: 'Ada', n: 1 });

  // Into the past: the session ends.
  const past = cookie(Date.now() - 1);
  await both(t, p, 'touch into the past', (api) => api.touch(id, { cookie: past }));
  t.is(await both(t, p, 'get after touch into the past', (api) => api.get(id)), undefined);
  t.is(await both(t, p, 'length', (api) => api.length()), 0);
});

test('touch of an unknown id is a quiet no-op: no error, nothing created', async (t) => {
  const p = await pair(t);
  const id = sid('unknown');
  const sess = { cookie: cookie(Date.now() + 600_000), v: 1 };
  t.is(await both(t, p, 'touch unknown', (api) => api.touch(id, sess)), undefined);
  t.is(await both(t, p, 'get', (api) => api.get(id)), undefined);
  t.is(await both(t, p, 'length', (api) => api.length()), 0);
  t.deepEqual(await both(t, p, 'all', (api) => api.all()), Object.create(null) as object);
  t.deepEqual(await sessionFiles(p.dir), []);
});

test('SealedStore only: a touch that only moves expires later rewrites nothing, and get reports the new expires exactly', async (t) => {
  const dir = await tempDir(t);
  const sealed = new SealedStore({ dir, keys: KEY });
  const api = new Api('SealedStore', sealed);
  const base = Date.now() + 3_600_000;
  const bytesOf = async () => {
    const [file] = await sessionFiles(dir);
    return fs.readFile(path.join(dir, file!));
  };
  const storedCookie = async (id: string) => (ok(t, await api.get(id), 'get') as { cookie: Record<string, unknown> }).cookie;

  for (const maxAge of [600_000, 2_000, null]) {
    const id = sid(`exact-${maxAge}`);
    ok(t, await api.clear(), 'clear');
    ok(t, await api.set(id, { cookie: cookie(base, maxAge), v: 1 }), 'set');
    const written = await bytesOf();
    // 1 ms, 100 ms, a minute, an hour later: each exactly, none rewritten.
    for (const moved of [1, 100, 60_000, 3_600_000]) {
      ok(t, await api.touch(id, { cookie: cookie(base + moved, maxAge), v: 'ignored' }), `touch +${moved} ms`);
      t.deepEqual(await storedCookie(id), cookie(base + moved, maxAge), `maxAge ${maxAge}: +${moved} ms`);
      t.deepEqual(await bytesOf(), written, `maxAge ${maxAge}: a touch of +${moved} ms rewrote the file`);
    }
    // Back to an earlier (but not earlier than stored) expiry: still exact, still no rewrite.
    ok(t, await api.touch(id, { cookie: cookie(base + 50, maxAge) }), 'touch back to +50 ms');
    t.deepEqual(await storedCookie(id), cookie(base + 50, maxAge));
    t.deepEqual(await bytesOf(), written);
    // Earlier than stored: written (the cookie is stored anew).
    ok(t, await api.touch(id, { cookie: cookie(base - 1, maxAge) }), 'touch 1 ms before the stored expiry');
    t.deepEqual(await storedCookie(id), cookie(base - 1, maxAge));
    t.notDeepEqual(await bytesOf(), written);
    t.like(ok(t, await api.get(id), 'get'), { v: 1 });
  }

  // A numeric expires (ms), as MemoryStore also honours: exact in its own form.
  const numeric = sid('numeric');
  ok(t, await api.clear(), 'clear');
  ok(t, await api.set(numeric, { cookie: { expires: base, originalMaxAge: 1000 }, v: 2 }), 'set');
  const written = await bytesOf();
  ok(t, await api.touch(numeric, { cookie: { expires: base + 7, originalMaxAge: 1000 } }), 'touch');
  t.deepEqual(await storedCookie(numeric), { expires: base + 7, originalMaxAge: 1000 });
  t.deepEqual(await bytesOf(), written);

  // Another cookie field changed: written.
  ok(t, await api.touch(numeric, { cookie: { expires: base + 7, originalMaxAge: 2000 } }), 'touch with another maxAge');
  t.deepEqual(await storedCookie(numeric), { expires: base + 7, originalMaxAge: 2000 });
  t.notDeepEqual(await bytesOf(), written);
});

test('SealedStore only: a browser-session cookie (expires null) is touched without a rewrite, and stays null', async (t) => {
  const dir = await tempDir(t);
  const api = new Api('SealedStore', new SealedStore({ dir, keys: KEY }));
  const id = sid('browser');
  ok(t, await api.set(id, { cookie: cookie(null, null), v: 1 }), 'set');
  const [file] = await sessionFiles(dir);
  const bytes = await fs.readFile(path.join(dir, file!));
  for (let round = 0; round < 3; round++) ok(t, await api.touch(id, { cookie: cookie(null, null), v: 2 }), 'touch');
  t.deepEqual(ok(t, await api.get(id), 'get'), { cookie: cookie(null, null), v: 1 });
  t.deepEqual(await fs.readFile(path.join(dir, file!)), bytes);
});

test("all() is keyed by session id as MemoryStore's; length; ids(); clear", async (t) => {
  const p = await pair(t);
  t.deepEqual(await both(t, p, 'all of none', (api) => api.all()), Object.create(null) as object);
  t.is(await both(t, p, 'length of none', (api) => api.length()), 0);

  const ids = Array.from({ length: 7 }, (_, index) => sid(`all${index}`));
  const expires = Date.now() + 600_000;
  for (const [index, id] of ids.entries()) {
    const sess = index === 6 ? { n: index } : { cookie: cookie(expires), n: index, nested: { id: index } };
    await both(t, p, `set ${index}`, (api) => api.set(id, sess));
  }
  const expired = { id: sid('expired'), sess: { cookie: cookie(Date.now() - 5), n: -1 } };
  await both(t, p, 'set expired', (api) => api.set(expired.id, expired.sess));

  const all = (await both(t, p, 'all', (api) => api.all())) as Record<string, unknown>;
  t.deepEqual(Object.keys(all).sort(), [...ids].sort());
  t.is(Object.getPrototypeOf(all), null, "all() is a null-prototype object, as MemoryStore's");
  t.deepEqual(all[ids[3]!], { cookie: json(cookie(expires)), n: 3, nested: { id: 3 } });
  t.is(await both(t, p, 'length', (api) => api.length()), 7);

  const listed = await settle((callback) => p.sealed.ids(callback));
  t.is(listed.args[0], null);
  t.deepEqual([...(listed.args[1] as string[])].sort(), [...ids].sort());

  t.is(await both(t, p, 'clear', (api) => api.clear()), undefined);
  t.deepEqual(await both(t, p, 'all after clear', (api) => api.all()), Object.create(null) as object);
  t.is(await both(t, p, 'length after clear', (api) => api.length()), 0);
  t.is(await both(t, p, 'get after clear', (api) => api.get(ids[0]!)), undefined);
  t.deepEqual((await settle((callback) => p.sealed.ids(callback))).args, [null, []]);
  // After a clear only the already expired file may remain (invisible; gc's to remove).
  t.true((await sessionFiles(p.dir)).length <= 1);

  // The store is usable after a clear.
  await both(t, p, 'set after clear', (api) => api.set(ids[0]!, { cookie: cookie(expires), again: true }));
  t.is(await both(t, p, 'length after set', (api) => api.length()), 1);
  t.deepEqual(p.tamper, []);
});

test('instance methods stay writable: wrapping store.get/set/touch/destroy works, as express-session users do', async (t) => {
  const p = await pair(t);
  for (const api of p.apis) {
    const store = api.store;
    const calls: string[] = [];
    const { get, set, touch, destroy } = store;
    store.get = function wrappedGet(this: Contract, ...args: Parameters<Contract['get']>) {
      calls.push('get');
      get.apply(this, args);
    };
    store.set = function wrappedSet(this: Contract, ...args: Parameters<Contract['set']>) {
      calls.push('set');
      set.apply(this, args);
    };
    store.touch = function wrappedTouch(this: Contract, ...args: Parameters<Contract['touch']>) {
      calls.push('touch');
      touch.apply(this, args);
    };
    store.destroy = function wrappedDestroy(this: Contract, ...args: Parameters<Contract['destroy']>) {
      calls.push('destroy');
      destroy.apply(this, args);
    };
    t.true(Object.hasOwn(store, 'get'), `${api.name}: the assignment did not stick`);
  }
  const id = sid('wrapped');
  const c = cookie(Date.now() + 600_000);
  await both(t, p, 'set', (api) => api.set(id, { cookie: c, v: 1 }));
  const later = cookie(Date.now() + 900_000);
  await both(t, p, 'touch', (api) => api.touch(id, { cookie: later }));
  t.is(((await both(t, p, 'get', (api) => api.get(id))) as { v: number }).v, 1);
  await both(t, p, 'destroy', (api) => api.destroy(id));
  t.is(await both(t, p, 'get destroyed', (api) => api.get(id)), undefined);
  // Reassigning ready-made properties of SealedStore itself.
  const sealed = p.sealed as unknown as Record<string, unknown>;
  t.notThrows(() => {
    sealed['all'] = sealed['all'];
    sealed['length'] = sealed['length'];
    sealed['clear'] = sealed['clear'];
  });
});

// Corner cases of MemoryStore's behaviour that SealedStore once missed, kept as regressions.

// MemoryStore also honours a numeric `cookie.expires` (ms since the epoch): getSession compares
// `expires <= Date.now()` for any truthy value.
test('a numeric cookie.expires in the past ends the session, as in MemoryStore', async (t) => {
  const p = await pair(t);
  const id = sid('numeric');
  const expires = Date.now() - 1000;
  await both(t, p, 'set', (api) => api.set(id, { cookie: { expires }, v: 1 }));
  t.is(await both(t, p, 'get', (api) => api.get(id)), undefined);
  t.is(await both(t, p, 'length', (api) => api.length()), 0);
});

// MemoryStore's touch does `current.cookie = session.cookie`, so a touch with a session without
// `cookie` drops the key (JSON leaves out undefined).
test('a touch whose session has no cookie leaves no cookie key, as in MemoryStore', async (t) => {
  const p = await pair(t);
  const id = sid('nocookie');
  const c = cookie(Date.now() + 600_000);
  await both(t, p, 'set', (api) => api.set(id, { cookie: c, v: 1 }));
  await both(t, p, 'touch', (api) => api.touch(id, { v: 2 }));
  t.deepEqual(await both(t, p, 'get', (api) => api.get(id)), { v: 1 });
});

// express-session's `genid` may return any string and MemoryStore stores it; SealedStore takes
// ids up to 4096 characters (isStorableId in src/session-id.ts).
test('an id longer than 256 characters is stored, as in MemoryStore', async (t) => {
  const p = await pair(t);
  const id = `${sid('long')}.${'x'.repeat(300)}`;
  const c = cookie(Date.now() + 600_000);
  await both(t, p, 'set', (api) => api.set(id, { cookie: c, v: 1 }));
  t.like(await both(t, p, 'get', (api) => api.get(id)), { v: 1 });
});

// MemoryStore applies calls in the order they are made: `set(newId); destroy(newId)` issued back
// to back (without waiting for the callback) must end with no session.
test('set then destroy issued back to back leaves no session, as in MemoryStore', async (t) => {
  const p = await pair(t);
  const id = sid('order');
  const c = cookie(Date.now() + 600_000);
  await both(t, p, 'set + destroy', async (api) => {
    const set = api.set(id, { cookie: c, v: 1 });
    const destroyed = api.destroy(id);
    ok(t, await set, `${api.name} set`);
    return destroyed;
  });
  t.is(await both(t, p, 'get', (api) => api.get(id)), undefined);
});

// ---------------------------------------------------------------------------------------------
// 2. Through express-session over real HTTP
// ---------------------------------------------------------------------------------------------

const SECRET = 'express-session-secret-for-these-tests';
const COOKIE = 'connect.sid';

interface AppOptions {
  readonly rolling?: boolean;
  readonly maxAge?: number;
}

function bag(req: Request): Record<string, unknown> {
  return req.session as unknown as Record<string, unknown>;
}

/** The session's data without its cookie, as JSON. */
function dataOf(req: Request): Record<string, unknown> {
  const { cookie: _cookie, ...rest } = json(req.session) as Record<string, unknown>;
  return rest;
}

function app(store: session.Store, options: AppOptions = {}): express.Express {
  const application = express();
  const config: session.SessionOptions = { secret: SECRET, store, resave: false, saveUninitialized: false };
  if (options.rolling !== undefined) config.rolling = options.rolling;
  if (options.maxAge !== undefined) config.cookie = { maxAge: options.maxAge };
  application.use(session(config));
  application.get('/get', (req, res) => {
    res.json({ id: req.sessionID, data: dataOf(req) });
  });
  application.post('/set/:key/:value', (req, res) => {
    bag(req)[req.params['key'] as string] = req.params['value'];
    res.json({ id: req.sessionID, data: dataOf(req) });
  });
  application.post('/destroy', (req, res, next) => {
    req.session.destroy((error: unknown) => (error ? next(error) : res.send('destroyed')));
  });
  application.post('/regenerate', (req, res, next) => {
    req.session.regenerate((error: unknown) => {
      if (error) return next(error);
      bag(req)['fresh'] = 'yes';
      res.json({ id: req.sessionID, data: dataOf(req) });
    });
  });
  application.get('/untouched', (_req, res) => {
    res.send('no session here');
  });
  const onError: ErrorRequestHandler = (error: unknown, _req, res, _next) => {
    res.status(500).send(`error: ${String(error)}`);
  };
  application.use(onError);
  return application;
}

interface Reply {
  readonly status: number;
  readonly setCookie: boolean;
  readonly id: string;
  readonly data: Record<string, unknown>;
}

async function call(t: ExecutionContext, jar: CookieJar, url: string, method = 'GET'): Promise<Reply> {
  const response = await jar.fetch(url, { method });
  const setCookie = response.headers.getSetCookie().some((line) => line.startsWith(`${COOKIE}=`));
  const text = await response.text();
  t.is(response.status, 200, `${method} ${url}: ${text}`);
  const body = (text.startsWith('{') ? JSON.parse(text) : { id: '', data: {} }) as { id: string; data: Record<string, unknown> };
  return { status: response.status, setCookie, id: body.id, data: body.data };
}

/** The express-session id in the jar's signed cookie, unsigned with the secret (throws when there is none or the signature is bad). */
function sidOf(jar: CookieJar): string {
  const raw = jar.get(COOKIE);
  const value = raw === undefined ? '' : decodeURIComponent(raw);
  const unsigned = value.startsWith('s:') ? signature.unsign(value.slice(2), SECRET) : false;
  if (unsigned === false) throw new Error(`no validly signed ${COOKIE} cookie in the jar: ${String(raw)}`);
  return unsigned;
}

async function idsOf(store: SealedStore): Promise<string[]> {
  const outcome = await settle((callback) => store.ids(callback));
  if (outcome.args[0]) throw outcome.args[0] as Error;
  return [...(outcome.args[1] as string[])].sort();
}

async function storedCookieExpires(t: ExecutionContext, store: SealedStore, id: string): Promise<number> {
  const sess = ok(t, await new Api('SealedStore', store).get(id), 'get') as { cookie: { expires: string } } | undefined;
  if (sess === undefined) throw new Error(`no session ${id}`);
  return Date.parse(sess.cookie.expires);
}

test('express-session over HTTP: create, read, modify, destroy', async (t) => {
  const dir = await tempDir(t);
  const store = new SealedStore({ dir, keys: KEY });
  const base = await listen(t, app(store));
  const jar = new CookieJar();

  const created = await call(t, jar, `${base}/set/user/ada`, 'POST');
  t.true(created.setCookie);
  const id = sidOf(jar);
  t.is(typeof id, 'string', 'the cookie is signed with the secret');
  t.is(created.id, id);
  t.deepEqual(await idsOf(store), [id]);
  t.is((await sessionFiles(dir)).length, 1);

  const read = await call(t, jar, `${base}/get`);
  t.deepEqual(read, { status: 200, setCookie: false, id: id, data: { user: 'ada' } });

  await call(t, jar, `${base}/set/user/bob`, 'POST');
  await call(t, jar, `${base}/set/role/admin`, 'POST');
  t.deepEqual((await call(t, jar, `${base}/get`)).data, { user: 'bob', role: 'admin' });
  const stored = ok(t, await new Api('SealedStore', store).get(id), 'get') as Record<string, unknown>;
  t.like(stored, { user: 'bob', role: 'admin' });
  t.is((stored['cookie'] as Record<string, unknown>)['originalMaxAge'], null, 'no maxAge: originalMaxAge null');

  await call(t, jar, `${base}/destroy`, 'POST');
  t.is(ok(t, await new Api('SealedStore', store).get(id), 'get destroyed'), undefined);
  t.deepEqual(await idsOf(store), []);
  t.deepEqual(await sessionFiles(dir), await tombstoneFiles(dir), 'only a tombstone is left');
  t.is((await tombstoneFiles(dir)).length, 1);
  const after = await call(t, jar, `${base}/get`);
  t.not(after.id, id, 'the destroyed id was served again');
  t.deepEqual(after.data, {});
  t.false(after.setCookie, 'saveUninitialized: false, yet an empty session got a cookie');
});

test('express-session over HTTP: regenerate gives a new id, drops the old session and its data', async (t) => {
  const dir = await tempDir(t);
  const store = new SealedStore({ dir, keys: KEY });
  const base = await listen(t, app(store));
  const jar = new CookieJar();
  await call(t, jar, `${base}/set/user/ada`, 'POST');
  const before = sidOf(jar);

  const regenerated = await call(t, jar, `${base}/regenerate`, 'POST');
  t.true(regenerated.setCookie);
  const after = sidOf(jar);
  t.is(typeof after, 'string');
  t.not(after, before);
  t.is(regenerated.id, after);
  t.deepEqual(regenerated.data, { fresh: 'yes' });
  t.is(ok(t, await new Api('SealedStore', store).get(before), 'get old'), undefined);
  t.deepEqual(await idsOf(store), [after]);
  t.deepEqual((await call(t, jar, `${base}/get`)).data, { fresh: 'yes' });
  // The new session, and the old one's tombstone (a late save of the old id stores nothing).
  t.is((await sessionFiles(dir)).length, 2);
  t.is((await tombstoneFiles(dir)).length, 1);
});

test('express-session over HTTP: rolling — Set-Cookie on every response, and the server-side expiry moves', async (t) => {
  const dir = await tempDir(t);
  const store = new SealedStore({ dir, keys: KEY });
  const maxAge = 3000; // slack min(60 s, 300 ms)
  const base = await listen(t, app(store, { rolling: true, maxAge }));
  const jar = new CookieJar();
  const created = await call(t, jar, `${base}/set/user/ada`, 'POST');
  const started = Date.now();
  t.true(created.setCookie);
  const id = sidOf(jar);
  const expires = [await storedCookieExpires(t, store, id)];

  // Unmodified requests every 1000–1500 ms (> the 300 ms slack, < maxAge): each one gets a
  // cookie and moves the stored expiry; at ~3500 ms, past the first expiry, the session is alive.
  for (const at of [1000, 2000, 3500]) {
    await sleep(started + at - Date.now());
    const reply = await call(t, jar, `${base}/get`);
    t.true(reply.setCookie, `no Set-Cookie at ${at} ms`);
    t.is(reply.id, id, `the session was lost at ${at} ms`);
    t.deepEqual(reply.data, { user: 'ada' });
    expires.push(await storedCookieExpires(t, store, id));
  }
  t.true(Date.now() > expires[0]!, 'the test did not get past the first expiry');
  for (let index = 1; index < expires.length; index++) {
    t.true(expires[index]! - expires[index - 1]! >= 700, `the stored expiry did not move: ${expires.join(', ')}`);
  }
});

test('express-session over HTTP: resave false + saveUninitialized false — a request that leaves req.session alone creates no file and no cookie', async (t) => {
  const dir = await tempDir(t);
  const store = new SealedStore({ dir, keys: KEY });
  const base = await listen(t, app(store));
  const jar = new CookieJar();
  for (const route of ['/untouched', '/get', '/untouched']) {
    const response = await jar.fetch(`${base}${route}`);
    t.is(response.status, 200);
    t.deepEqual(response.headers.getSetCookie(), [], `${route} set a cookie`);
    await response.text();
  }
  await store.ready;
  t.deepEqual(await listFiles(dir), []);
  t.deepEqual(await idsOf(store), []);
});

test('express-session over HTTP: unmodified sessions are touched (store.touch): the stored expires moves exactly, the file is not rewritten', async (t) => {
  const dir = await tempDir(t);
  const store = new SealedStore({ dir, keys: KEY });
  const calls: string[] = [];
  for (const method of ['touch', 'set'] as const) {
    const original = store[method] as (...args: unknown[]) => unknown;
    (store as unknown as Record<string, unknown>)[method] = function counted(this: SealedStore, ...args: unknown[]) {
      calls.push(method);
      return original.apply(this, args);
    };
  }
  const base = await listen(t, app(store, { maxAge: 20_000 }));
  const jar = new CookieJar();
  await call(t, jar, `${base}/set/user/ada`, 'POST');
  const id = sidOf(jar);
  t.deepEqual(calls, ['set']);
  const first = await storedCookieExpires(t, store, id);
  const [file] = await sessionFiles(dir);
  const bytes = await fs.readFile(path.join(dir, file!));

  // 100 ms later, as express-session's own suite checks ("should reset session expiration").
  await sleep(100);
  const before = Date.now();
  const reply = await call(t, jar, `${base}/get`);
  const after = Date.now();
  t.false(reply.setCookie, 'rolling is off: an unmodified session gets no cookie');
  t.deepEqual(calls, ['set', 'touch'], 'express-session did not call store.touch (or called set)');
  const second = await storedCookieExpires(t, store, id);
  t.true(second > first, `the touch did not move the stored expiry (${second - first} ms)`);
  t.true(second >= before + 20_000 && second <= after + 20_000, 'the stored expiry is the touched cookie’s');
  t.deepEqual(await fs.readFile(path.join(dir, file!)), bytes, 'a touch rewrote the file');
  t.deepEqual((await call(t, jar, `${base}/get`)).data, { user: 'ada' });
});

test('express-session over HTTP: with a short maxAge the session is gone once it passes', async (t) => {
  const dir = await tempDir(t);
  const store = new SealedStore({ dir, keys: KEY });
  const base = await listen(t, app(store, { maxAge: 2500 }));
  const jar = new CookieJar();
  await call(t, jar, `${base}/set/user/ada`, 'POST');
  const created = Date.now();
  const id = sidOf(jar);
  t.deepEqual((await call(t, jar, `${base}/get`)).data, { user: 'ada' });
  const lastUse = Date.now(); // that request may have moved the expiry (by a touch) up to now + maxAge
  t.true(lastUse - created < 2500, 'too slow to see the session alive');
  await sleep(lastUse + 2900 - Date.now());
  const after = await call(t, jar, `${base}/get`);
  t.not(after.id, id);
  t.deepEqual(after.data, {});
  t.is(ok(t, await new Api('SealedStore', store).get(id), 'get expired'), undefined);
  t.deepEqual(await idsOf(store), []);
  t.is(ok(t, await new Api('SealedStore', store).length(), 'length'), 0);
});

test('express-session over HTTP: sessions persist across two SealedStore instances on one dir (two apps)', async (t) => {
  const dir = await tempDir(t);
  const one = new SealedStore({ dir, keys: KEY });
  const two = new SealedStore({ dir, keys: KEY });
  const [first, second] = await Promise.all([listen(t, app(one)), listen(t, app(two))]);
  const jar = new CookieJar();

  await call(t, jar, `${first}/set/user/ada`, 'POST');
  const id = sidOf(jar);
  t.deepEqual(await call(t, jar, `${second}/get`), { status: 200, setCookie: false, id, data: { user: 'ada' } });
  await call(t, jar, `${second}/set/role/admin`, 'POST');
  t.deepEqual((await call(t, jar, `${first}/get`)).data, { user: 'ada', role: 'admin' });
  await call(t, jar, `${first}/set/user/bob`, 'POST');
  t.deepEqual((await call(t, jar, `${second}/get`)).data, { user: 'bob', role: 'admin' });
  t.deepEqual(await idsOf(two), [id]);

  // A third instance opened later sees it too.
  const three = new SealedStore({ dir, keys: KEY });
  t.like(ok(t, await new Api('three', three).get(id), 'get'), { user: 'bob', role: 'admin' });

  await call(t, jar, `${second}/destroy`, 'POST');
  const after = await call(t, jar, `${first}/get`);
  t.not(after.id, id);
  t.deepEqual(after.data, {});
  t.deepEqual(await idsOf(one), []);
});

test('express-session over HTTP: concurrent requests on one session changing different keys — no error, no corruption', async (t) => {
  const N = 12;
  const survivors: Record<string, number> = {};
  for (const kind of ['MemoryStore', 'SealedStore'] as const) {
    const dir = await tempDir(t);
    const sealed = kind === 'SealedStore' ? new SealedStore({ dir, keys: KEY }) : undefined;
    const tamper: unknown[] = [];
    if (sealed !== undefined) (await sealed.ready).on('tamper', (event) => tamper.push(event));
    const store = sealed ?? new session.MemoryStore();
    const base = await listen(t, app(store));
    const jar = new CookieJar();
    await call(t, jar, `${base}/set/base/0`, 'POST');
    const id = sidOf(jar);

    const replies = await Promise.all(Array.from({ length: N }, (_, index) => call(t, jar, `${base}/set/k${index}/v${index}`, 'POST')));
    for (const reply of replies) t.is(reply.id, id);

    const final = await call(t, jar, `${base}/get`);
    t.is(final.id, id, `${kind}: the session was lost`);
    t.is(final.data['base'], '0', `${kind}: a key no request changed was lost`);
    const keys = Object.keys(final.data).filter((key) => key !== 'base');
    for (const key of keys) {
      t.regex(key, /^k\d+$/, `${kind}: unexpected key ${key}`);
      t.is(final.data[key], `v${key.slice(1)}`, `${kind}: wrong value under ${key}`);
    }
    t.true(keys.length >= 1, `${kind}: every change was lost`);
    survivors[kind] = keys.length;
    if (sealed !== undefined) {
      t.deepEqual(tamper, []);
      t.deepEqual(await idsOf(sealed), [id]);
      t.is((await sessionFiles(dir)).length, 1);
      t.deepEqual(
        (await listFiles(dir)).filter((file) => !file.endsWith('.sess')),
        [],
        'debris (locks, temp files) left behind',
      );
    }
  }
  t.log(`keys surviving ${N} concurrent whole-session saves: MemoryStore ${survivors['MemoryStore']}/${N}, SealedStore ${survivors['SealedStore']}/${N}`);
});

// ---------------------------------------------------------------------------------------------
// 3. At rest
// ---------------------------------------------------------------------------------------------

async function everything(dir: string): Promise<{ names: string[]; bytes: Buffer }> {
  const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true });
  const names = entries.map((entry) => path.relative(dir, path.join(entry.parentPath, entry.name)));
  const files = await listFiles(dir);
  const bytes = Buffer.concat(await Promise.all(files.map((file) => fs.readFile(path.join(dir, file)))));
  return { names, bytes };
}

test('at rest: the express-session id is in no file name and no file bytes; a canary value never in clear', async (t) => {
  const dir = await tempDir(t);
  const store = new SealedStore({ dir, keys: KEY });
  const base = await listen(t, app(store, { maxAge: 600_000 }));
  const canary = `canary-${Math.random().toString(36).slice(2)}-CANARY`;
  const jars = [new CookieJar(), new CookieJar(), new CookieJar()];
  for (const jar of jars) {
    await call(t, jar, `${base}/set/secret/${canary}`, 'POST');
    await call(t, jar, `${base}/set/user/ada`, 'POST');
    await call(t, jar, `${base}/get`);
  }
  // A regenerate too: the old id must not linger either.
  const oldId = sidOf(jars[2]!);
  await call(t, jars[2]!, `${base}/regenerate`, 'POST');
  const ids = jars.map((jar) => sidOf(jar));
  t.deepEqual(await idsOf(store), [...ids].sort(), 'ids() lists the sids of the cookies');

  const { names, bytes } = await everything(dir);
  t.is(names.filter((name) => name.endsWith('.sess')).length, 4, 'three sessions and the regenerated one’s tombstone');
  t.is((await tombstoneFiles(dir)).length, 1);
  for (const id of [...ids, oldId]) {
    t.is(typeof id, 'string');
    t.false(
      names.some((name) => name.includes(id)),
      'a file name holds the session id',
    );
    for (const form of [id, Buffer.from(id).toString('hex'), Buffer.from(id).toString('base64')]) {
      t.is(bytes.indexOf(form), -1, 'the session id is in a file');
    }
  }
  for (const form of [canary, Buffer.from(canary).toString('base64'), Buffer.from(canary).toString('hex')]) {
    t.is(bytes.indexOf(form), -1, `the canary is in clear (${form})`);
  }
  t.is(bytes.indexOf(SECRET), -1);
  t.is(bytes.indexOf(KEY), -1);
});

test('at rest: a tampered file reads as no session — get gives (null, undefined), no throw, and the engine emits tamper', async (t) => {
  const dir = await tempDir(t);
  const store = new SealedStore({ dir, keys: KEY });
  const engine = await store.ready;
  const events: Array<{ file: string; reason: string }> = [];
  engine.on('tamper', (event) => events.push(event));
  const base = await listen(t, app(store));
  const victim = new CookieJar();
  const bystander = new CookieJar();
  await call(t, victim, `${base}/set/user/ada`, 'POST');
  await call(t, bystander, `${base}/set/user/bob`, 'POST');
  const id = sidOf(victim);
  const other = sidOf(bystander);
  const api = new Api('SealedStore', store);
  t.like(ok(t, await api.get(id), 'get before'), { user: 'ada' }); // now cached, too

  // The victim's file, found from the outside: the only file that changes when the victim's session does.
  const before = new Map(await Promise.all((await sessionFiles(dir)).map(async (file) => [file, await fs.readFile(path.join(dir, file))] as const)));
  await call(t, victim, `${base}/set/user/ada2`, 'POST');
  const changed: string[] = [];
  for (const file of await sessionFiles(dir)) if (!before.get(file)?.equals(await fs.readFile(path.join(dir, file)))) changed.push(file);
  t.is(changed.length, 1);
  const file = path.join(dir, changed[0]!);

  for (const [what, offset] of [
    ['ciphertext', -1],
    ['header', 30],
  ] as const) {
    const bytes = await fs.readFile(file);
    const at = offset < 0 ? bytes.length + offset : offset;
    const flipped = Buffer.from(bytes);
    flipped[at] = flipped[at]! ^ 0x01;
    await fs.writeFile(file, flipped);

    const seen = events.length;
    let outcome: Outcome | undefined;
    await t.notThrowsAsync(async () => {
      outcome = await api.get(id);
    });
    t.deepEqual(outcome?.args, [null, undefined], `${what}: get of a tampered session`);
    t.deepEqual(events.slice(seen), [{ file: changed[0]!, reason: 'authentication' }], `${what}: tamper event`);
    t.false(JSON.stringify(events).includes(id), 'a tamper event names the id');

    // all/length/ids skip it; the bystander is untouched.
    t.deepEqual(Object.keys(ok(t, await api.all(), 'all') as object), [other]);
    t.is(ok(t, await api.length(), 'length'), 1);

    // Over HTTP: a fresh session, not an error.
    const reply = await call(t, victim, `${base}/get`);
    t.not(reply.id, id);
    t.deepEqual(reply.data, {});
    t.deepEqual((await call(t, bystander, `${base}/get`)).data, { user: 'bob' });
    // touch of it is a no-op, and does not bring it back.
    ok(t, await api.touch(id, { cookie: cookie(Date.now() + 600_000) }), 'touch tampered');
    t.deepEqual(await fs.readFile(file), flipped, `${what}: touch rewrote a tampered file`);
    await fs.writeFile(file, bytes); // restore for the next round
    t.like(ok(t, await api.get(id), 'get restored'), { user: 'ada2' });
  }
});
