import test, { type ExecutionContext } from 'ava';
import Koa from 'koa';
import session from 'koa-session';
import { SealedStore, type StoreOptions } from '../../src/index.js';
import { manualClock } from '../helpers/clock.js';
import { faultyIo } from '../helpers/faulty-io.js';
import { listenKoa } from '../helpers/frameworks.js';
import { CookieJar } from '../helpers/http.js';
import { KEY, listFiles, tempDir } from '../helpers/temp-dir.js';

/*
 * koa-session (7, on Koa 3) with SealedStore as its `store`: koa-session calls it promise-style,
 * `get(key, maxAge, { ctx, rolling })`, `set(key, sess, maxAge, { ctx, changed, rolling })`,
 * `destroy(key, { ctx })`. Real servers, real cookies.
 */

const COOKIE = 'koa.sess';

interface KoaSessionOptions {
  readonly maxAge?: number | 'session';
}

/** A Koa app with koa-session on `store`: GET /get, POST /set/:key/:value, POST /destroy; each answers the session's data. */
function koaSessionApp(store: SealedStore, options: KoaSessionOptions = {}): Koa {
  const app = new Koa();
  app.keys = ['koa-session-test-signing-key'];
  app.use(session({ store, key: COOKIE, ...(options.maxAge === undefined ? {} : { maxAge: options.maxAge }) }, app));
  app.use((ctx) => {
    const [, action, key, value] = ctx.path.split('/');
    const data = ctx['session'] as Record<string, unknown> & { toJSON(): Record<string, unknown> };
    if (action === 'set' && key !== undefined) data[key] = value;
    else if (action === 'destroy') ctx['session'] = null;
    else if (action !== 'get') ctx.throw(404);
    ctx.body = action === 'destroy' ? { destroyed: true } : data.toJSON();
  });
  return app;
}

async function setup(t: ExecutionContext, options: StoreOptions & KoaSessionOptions = {}) {
  const dir = (options.dir as string | undefined) ?? (await tempDir(t));
  const store = new SealedStore({ dir, keys: KEY, ...options });
  const { url, errors } = await listenKoa(t, koaSessionApp(store, options));
  return { dir, store, url, errors };
}

async function send(t: ExecutionContext, jar: CookieJar, url: string, method = 'GET'): Promise<Record<string, unknown> | null> {
  const response = await jar.fetch(url, { method });
  const text = await response.text();
  t.is(response.status, 200, `${method} ${url}: ${text}`);
  return JSON.parse(text) as Record<string, unknown> | null;
}

test('koa-session + SealedStore: a value set in one request is there in the next, and after a restart (new app, new store, same dir)', async (t) => {
  const { dir, url } = await setup(t);
  const jar = new CookieJar();
  t.deepEqual(await send(t, jar, `${url}/set/user/ada`, 'POST'), { user: 'ada' });
  t.truthy(jar.get(COOKIE));
  await send(t, jar, `${url}/set/role/admin`, 'POST');
  t.deepEqual(await send(t, jar, `${url}/get`), { user: 'ada', role: 'admin' });

  const restarted = await setup(t, { dir });
  t.deepEqual(await send(t, jar, `${restarted.url}/get`), { user: 'ada', role: 'admin' });
});

test('koa-session + SealedStore: ctx.session = null ends the session; what is left is a tombstone, which gc removes after the session’s end', async (t) => {
  const clock = manualClock();
  const { dir, store, url } = await setup(t, { now: clock.now, maxAge: 60_000 });
  const jar = new CookieJar();
  await send(t, jar, `${url}/set/user/ada`, 'POST');
  const id = jar.get(COOKIE)!;
  t.like(await store.get(id), { user: 'ada' });

  t.deepEqual(await send(t, jar, `${url}/destroy`, 'POST'), { destroyed: true });
  t.is(await store.get(id), undefined);
  t.deepEqual(await send(t, jar, `${url}/get`), {}, 'a fresh, empty session');
  const engine = await store.ready;
  t.like(await engine.stats(), { live: 0, tombstones: 1 });
  // A late save of the destroyed id (a request still in flight) stores nothing.
  await store.set(id, { user: 'mallory', _expire: Date.now() + 60_000, _maxAge: 60_000 }, 70_000, {});
  t.is(await store.get(id), undefined);

  clock.advance(71); // past the destroyed session's end (maxAge + koa-session's 10 s)
  t.like(await engine.gc(), { removed: 1 });
  t.deepEqual(await listFiles(dir).catch(() => []), []);
});

test('koa-session + SealedStore: maxAge is honoured (koa-session starts a new session once it passes)', async (t) => {
  const { url } = await setup(t, { maxAge: 2000 });
  const jar = new CookieJar();
  const started = Date.now();
  await send(t, jar, `${url}/set/user/ada`, 'POST');
  t.deepEqual(await send(t, jar, `${url}/get`), { user: 'ada' });
  t.true(Date.now() - started < 2000, 'too slow to see the session alive');
  await new Promise((resolve) => setTimeout(resolve, started + 2300 - Date.now()));
  t.deepEqual(await send(t, jar, `${url}/get`), {});
});

test("koa-session + SealedStore: the store's timeouts bound sessions koa-session keeps forever (maxAge 'session') and the long ones", async (t) => {
  const clock = manualClock();
  for (const maxAge of ['session', 30 * 24 * 3600 * 1000] as const) {
    const { store, url } = await setup(t, { now: clock.now, idleTimeout: 60, absoluteTimeout: 120, maxAge });
    const engine = await store.ready;
    const jar = new CookieJar();
    await send(t, jar, `${url}/set/user/ada`, 'POST');
    const id = jar.get(COOKIE)!;
    if (maxAge === 'session') {
      clock.advance(50);
      t.like(await send(t, jar, `${url}/get`), { user: 'ada' }, 'used within the idle timeout');
      clock.advance(50);
      t.like(await send(t, jar, `${url}/get`), { user: 'ada' }, 'the use kept it alive');
      clock.advance(61);
      t.is(await store.get(id), undefined, `maxAge ${maxAge}: idle past the store's idleTimeout`);
    } else {
      for (let step = 0; step < 4; step++) {
        clock.advance(30);
        await send(t, jar, `${url}/set/step/${step}`, 'POST');
      }
      t.is(await store.get(id), undefined, `maxAge ${maxAge}: past the store's absoluteTimeout`);
    }
    t.like(await engine.gc(), { removed: 1 });
  }
});

test('koa-session + SealedStore: a store error reaches Koa’s error handling (500, app error event), and the server keeps serving', async (t) => {
  const faults = faultyIo();
  const { url, errors } = await setup(t, { io: faults.io });
  const jar = new CookieJar();
  await send(t, jar, `${url}/set/user/ada`, 'POST');

  faults.fail('read', 'EIO', 'always');
  t.is((await jar.fetch(`${url}/get`)).status, 500, 'get failed');
  faults.clear();
  faults.fail('write', 'ENOSPC');
  t.is((await jar.fetch(`${url}/set/user/bob`, { method: 'POST' })).status, 500, 'set failed');
  t.true(errors.length >= 2);
  t.true(errors.every((error) => (error as { code?: unknown }).code === 'ERR_SESSION_STORE_IO'));
  t.deepEqual(await send(t, jar, `${url}/get`), { user: 'ada' }, 'the stored version is intact');
  await send(t, jar, `${url}/set/user/bob`, 'POST');
  t.deepEqual(await send(t, jar, `${url}/get`), { user: 'bob' });
});

test('koa-session + SealedStore: 50 concurrent requests on one session, each setting its own key, lose nothing (merged per key)', async (t) => {
  const { url } = await setup(t);
  const jar = new CookieJar();
  await send(t, jar, `${url}/set/base/kept`, 'POST');
  const cookie = jar.header();
  const responses = await Promise.all(
    Array.from({ length: 50 }, (_, index) => fetch(`${url}/set/k${index}/${index}`, { method: 'POST', headers: { cookie } }).then((r) => r.text())),
  );
  t.is(responses.length, 50);
  const data = (await send(t, jar, `${url}/get`))!;
  const lost = Array.from({ length: 50 }, (_, index) => `k${index}`).filter((key) => data[key] !== key.slice(1));
  t.deepEqual(lost, [], `${lost.length} of 50 keys lost`);
  t.is(data['base'], 'kept');
});
