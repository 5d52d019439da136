import { spawn } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import test from 'ava';
import express from 'express';
import session from 'express-session';
import { SealedStore as ExpressSealedStore } from '../../src/express-session.js';
import { fileNameOf } from '../../src/core/session-id.js';
import { openStore, SealedStore } from '../../src/index.js';
import { manualClock } from '../helpers/clock.js';
import { promised } from '../helpers/frameworks.js';
import { CookieJar, listen } from '../helpers/http.js';
import { outputOf, type SnippetResult } from '../helpers/node-snippet.js';
import { fixtureServer } from '../helpers/server-process.js';
import { KEY, listFiles, tempDir } from '../helpers/temp-dir.js';

/*
 * The framework-neutral SealedStore: both calling conventions, callbacks outside the promise
 * chain, the store's timeouts bounding every session (hardening #3) and a logout that sticks
 * (hardening #6), with tombstones seen from the header-only side (stats, gc).
 */

const ROOT = path.resolve(import.meta.dirname, '../..');
const cookie = (expires: number | null, originalMaxAge: number | null = null) => ({
  originalMaxAge,
  expires: expires === null ? null : new Date(expires).toISOString(),
  path: '/',
  httpOnly: true,
});

test("promises when no callback is given: koa-session's call shapes, and a plain await", async (t) => {
  const store = new SealedStore({ dir: await tempDir(t), keys: KEY });
  const ctx = {};
  t.is(await store.get('k1', 86_400_000, { ctx, rolling: false }), undefined);
  await store.set('k1', { user: 'ada', _expire: Date.now() + 60_000, _maxAge: 60_000 }, 70_000, { ctx, changed: true, rolling: false });
  t.deepEqual(await store.get('k1', 60_000, { ctx, rolling: false }), { user: 'ada', _expire: (await store.get('k1'))!['_expire'], _maxAge: 60_000 });
  await store.set('k2', { v: 2 }, 'session', { ctx, changed: true, rolling: false });
  t.deepEqual(await store.get('k2'), { v: 2 });
  t.deepEqual((await store.ids()).sort(), ['k1', 'k2']);
  t.is(await store.length(), 2);
  t.deepEqual(Object.keys(await store.all()).sort(), ['k1', 'k2']);
  await store.destroy('k1', { ctx });
  t.is(await store.get('k1'), undefined);
  await store.clear();
  t.is(await store.length(), 0);

  // Failures reject (and the callback form gets them as its first argument).
  await t.throwsAsync(store.set('k3', { n: 10n }), { instanceOf: TypeError });
  const small = new SealedStore({ dir: await tempDir(t), keys: KEY, maxBytes: 64 });
  await t.throwsAsync(small.set('k4', { text: 'x'.repeat(100) }), { code: 'ERR_SESSION_TOO_LARGE' });
  await t.throwsAsync(
    promised((callback) => small.set('k4', { text: 'x'.repeat(100) }, callback)),
    { code: 'ERR_SESSION_TOO_LARGE' },
  );
});

test('koa-session: what one request loaded is remembered per context, so two requests of one session merge', async (t) => {
  const store = new SealedStore({ dir: await tempDir(t), keys: KEY });
  await store.set('key', { a: 1, b: 1 }, 60_000, {});
  const [one, two] = [{}, {}];
  const first = (await store.get('key', 60_000, { ctx: one }))!;
  const second = (await store.get('key', 60_000, { ctx: two }))!;
  await store.set('key', { ...first, a: 2 }, 60_000, { ctx: one, changed: true });
  await store.set('key', { ...second, b: 2, c: 3 }, 60_000, { ctx: two, changed: true });
  t.deepEqual(await store.get('key'), { a: 2, b: 2, c: 3 });
  // A context that loaded nothing replaces whole.
  await store.set('key', { only: true }, 60_000, { ctx: {}, changed: true });
  t.deepEqual(await store.get('key'), { only: true });
});

/** Runs an ESM snippet in a fresh Node process (tsx), with `SealedStore` (this library's) and `MemoryStore` (express-session's) in scope. */
function runChild(body: string): Promise<SnippetResult> {
  const code = [
    `const { SealedStore } = await import(${JSON.stringify(pathToFileURL(path.join(ROOT, 'src/index.ts')).href)});`,
    `const { default: session } = await import('express-session');`,
    `const MemoryStore = session.MemoryStore;`,
    body,
  ].join('\n');
  return outputOf(spawn(process.execPath, ['--import=tsx/esm', '--input-type=module', '-e', code], { cwd: ROOT }));
}

test('a callback that throws is an uncaught exception at its own tick (as with MemoryStore), never an unhandled rejection', async (t) => {
  const dir = await tempDir(t);
  const calls = ['get', 'set', 'destroy', 'touch', 'all', 'length', 'clear'];
  const result = await runChild(`
    const seen = [];
    process.on('unhandledRejection', (reason) => { seen.push('rejection:' + reason.message); });
    process.on('uncaughtException', (error) => { seen.push('uncaught:' + error.message); });
    const stores = { memory: new MemoryStore(), sealed: new SealedStore({ dir: ${JSON.stringify(dir)}, keys: ${JSON.stringify(KEY)} }) };
    const sess = { cookie: { originalMaxAge: null, expires: null }, v: 1 };
    for (const [name, store] of Object.entries(stores)) {
      await new Promise((resolve) => store.set('id', sess, resolve));
      for (const call of ${JSON.stringify(calls)}) {
        const thrower = () => { throw new Error(name + '.' + call); };
        const args = call === 'set' || call === 'touch' ? ['id', sess, thrower] : call === 'get' || call === 'destroy' ? ['id', thrower] : [thrower];
        store[call](...args);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    process.stdout.write(JSON.stringify(seen));
  `);
  t.is(result.code, 0, result.stderr);
  const seen = JSON.parse(result.stdout) as string[];
  t.deepEqual(
    seen,
    ['memory', 'sealed'].flatMap((name) => calls.map((call) => `uncaught:${name}.${call}`)),
  );
});

test('hardening #3: express-session with its default cookie (no expiry) + idleTimeout 60 / absoluteTimeout 120 — cookieless visits do not live forever', async (t) => {
  const clock = manualClock();
  const dir = await tempDir(t);
  const store = new ExpressSealedStore({ dir, keys: KEY, idleTimeout: 60, absoluteTimeout: 120, now: clock.now });
  const app = express();
  // express-session's defaults: saveUninitialized true, so every cookieless GET stores a session.
  app.use(session({ secret: 'attack-secret', store, resave: false, saveUninitialized: true }));
  app.get('/', (req, res) => {
    const data = req.session as unknown as Record<string, unknown>;
    data['visits'] = Number(data['visits'] ?? 0) + 1;
    res.send(String(data['visits']));
  });
  const url = await listen(t, app);
  const visits = await Promise.all(Array.from({ length: 30 }, () => fetch(url).then((response) => response.text())));
  t.deepEqual(new Set(visits), new Set(['1']));
  const regular = new CookieJar();
  t.is(await (await regular.fetch(url)).text(), '1');
  t.is((await listFiles(dir)).length, 31);
  const engine = await store.ready;
  t.is(await store.length(), 31);

  // A regular user keeps theirs alive by using it; the 30 others idle out after 60 s.
  clock.advance(50);
  t.is(await (await regular.fetch(url)).text(), '2');
  clock.advance(15);
  t.is(await store.length(), 1, 'idle sessions without a cookie expiry still load');
  t.like(await engine.gc(), { removed: 30 });
  t.is(await (await regular.fetch(url)).text(), '3');

  // The absolute timeout ends the used one too (created 65 + 56 s ago).
  clock.advance(56);
  t.is(await store.length(), 0, 'a used session outlived the absolute timeout');
  t.is(await (await regular.fetch(url)).text(), '1', 'a new session, not the old one');
  t.like(await engine.gc(), { removed: 1 });
  t.is((await listFiles(dir)).length, 1);
});

test('hardening #3: a cookie expiry later than the absolute timeout ends at the absolute timeout; an earlier one at its own time', async (t) => {
  const clock = manualClock();
  const store = new SealedStore({ dir: await tempDir(t), keys: KEY, idleTimeout: 60, absoluteTimeout: 120, now: clock.now });
  const yearLong = cookie(clock.now() + 365 * 86_400_000, 365 * 86_400_000);
  const short = cookie(clock.now() + 30_000, 30_000);
  await store.set('long', { cookie: yearLong, v: 1 });
  await store.set('short', { cookie: short, v: 2 });
  clock.advance(29);
  t.deepEqual(await store.get('short'), { cookie: short, v: 2 });
  clock.advance(1);
  t.is(await store.get('short'), undefined, 'at its own expiry');
  clock.advance(60); // 90 s: beyond the store's idle timeout, but the cookie says a year
  t.deepEqual(await store.get('long'), { cookie: yearLong, v: 1 });
  clock.advance(30);
  t.is(await store.get('long'), undefined, 'at the absolute timeout');
  t.like(await (await store.ready).gc(), { removed: 2 });
});

test('tombstones from the header-only side: stats counts them apart, gc keeps them until the session’s end, the native API sees no session', async (t) => {
  const clock = manualClock();
  const dir = await tempDir(t);
  const store = new SealedStore({ dir, keys: KEY, idleTimeout: 600, now: clock.now });
  const engine = await store.ready;
  await store.set('gone', { cookie: cookie(null), v: 1 });
  await store.set('kept', { cookie: cookie(null), v: 2 });
  await store.destroy('gone');
  t.like(await engine.stats(), { sessions: 2, live: 1, tombstones: 1, expired: 0 });
  t.like(await engine.gc(), { removed: 0 });
  t.is(await engine.load('gone'), null);
  const attached = engine.attach('gone');
  attached.set('v', 3);
  t.is(await engine.commit(attached), 'gone', 'a native commit onto the tombstone');
  const replaced = engine.createWithId('gone');
  replaced.set('v', 4);
  t.is(await engine.commit(replaced, { expires: null }), 'gone', 'a whole replacement onto the tombstone');
  t.is(await store.get('gone'), undefined);

  clock.advance(601);
  t.like(await engine.stats(), { sessions: 2, live: 0, tombstones: 0, expired: 2 });
  t.like(await engine.gc(), { removed: 2 });
  t.deepEqual(await listFiles(dir), []);
  // After the tombstone's end the id is free again, as for any expired session.
  await store.set('gone', { cookie: cookie(null), v: 5 });
  t.deepEqual(await store.get('gone'), { cookie: cookie(null), v: 5 });
});

test('hardening #6: a logout sticks across processes — a request in flight in another process, and a set() with no remembered base, store nothing after destroy', async (t) => {
  const dir = await tempDir(t);
  const [a, b] = await Promise.all([0, 1].map(() => fixtureServer(t, 'test/fixtures/express-session-server.ts', [dir, KEY])));
  const jar = new CookieJar();
  const json = { 'content-type': 'application/json' };
  await (await jar.fetch(`${a!.url}/set/user`, { method: 'POST', headers: json, body: '"ada"' })).text();
  const { id } = (await (await jar.fetch(`${b!.url}/get`)).json()) as { id: string };

  // In process A, a request loads the session and is held before it saves.
  const late = jar.fetch(`${a!.url}/gate/late/set/stolen`, { method: 'POST', headers: json, body: 'true' });
  while (!((await (await fetch(`${a!.url}/arrived/late`)).json()) as boolean));
  // In process B, the user logs out.
  t.deepEqual(await (await jar.fetch(`${b!.url}/destroy`, { method: 'POST' })).json(), { destroyed: true });
  await fetch(`${a!.url}/release/late`, { method: 'POST' });
  t.is((await late).status, 200);
  // A save with no remembered base (code outside express-session) in process A, and one from this process.
  await fetch(`${a!.url}/store-set/${encodeURIComponent(id)}`, {
    method: 'POST',
    headers: json,
    body: JSON.stringify({ cookie: cookie(null), user: 'mallory' }),
  });
  const here = new SealedStore({ dir, keys: KEY });
  await promised((callback) => here.set(id, { cookie: cookie(null), user: 'eve' }, callback));

  t.is(await here.get(id), undefined);
  for (const url of [a!.url, b!.url]) {
    const response = await fetch(`${url}/get`, { headers: { cookie: `connect.sid=${jar.get('connect.sid')!}` } });
    t.deepEqual(((await response.json()) as { data: unknown }).data, {}, `${url}: the logged-out session came back`);
  }
  const engine = await openStore({ dir, keys: KEY });
  t.like(await engine.stats(), { live: 0, tombstones: 1 });
  // The tombstone holds no data.
  const tombstone = await engine.read(fileNameOf(id), true);
  t.is(tombstone.state, 'found');
  t.is(tombstone.state === 'found' ? tombstone.session.data.size : -1, 0);
});
