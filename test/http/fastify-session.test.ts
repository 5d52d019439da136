import test, { type ExecutionContext } from 'ava';
import { CookieJar } from '../helpers/http.js';
import { fixtureServer } from '../helpers/server-process.js';
import { KEY, listFiles, tempDir } from '../helpers/temp-dir.js';

/*
 * @fastify/session (11, on Fastify 5, with @fastify/cookie) with SealedStore as its store, in an
 * app that does not have express-session: every server here is a real process in which
 * express-session cannot be found (test/fixtures/no-express-session.mjs hides it from ESM imports
 * and CommonJS requires alike). @fastify/session calls the store with callbacks.
 */

const COOKIE = 'sessionId';
const WITHOUT_EXPRESS_SESSION = ['./test/fixtures/no-express-session.mjs'];

interface Options {
  readonly maxAge?: number;
  readonly idleTimeout?: number;
  readonly absoluteTimeout?: number;
}

function start(t: ExecutionContext, dir: string, options: Options = {}) {
  return fixtureServer(t, 'test/fixtures/fastify-session-server.ts', [dir, KEY, JSON.stringify(options)], WITHOUT_EXPRESS_SESSION);
}

interface Reply {
  readonly id: string;
  readonly data: Record<string, unknown>;
}

async function send(t: ExecutionContext, jar: CookieJar, url: string, method = 'GET'): Promise<Reply> {
  const response = await jar.fetch(url, { method });
  const text = await response.text();
  t.is(response.status, 200, `${method} ${url}: ${text}`);
  return JSON.parse(text) as Reply;
}

async function stored(url: string, id: string): Promise<unknown> {
  return ((await (await fetch(`${url}/__store?id=${encodeURIComponent(id)}`)).json()) as { session: unknown }).session;
}

test('@fastify/session + SealedStore without express-session: the app cannot load express-session, and sessions persist across requests and a restart', async (t) => {
  const dir = await tempDir(t);
  const first = await start(t, dir);
  t.deepEqual(await (await fetch(`${first.url}/__express-session`)).json(), { esm: 'ERR_MODULE_NOT_FOUND', cjs: 'MODULE_NOT_FOUND' });

  const jar = new CookieJar();
  const created = await send(t, jar, `${first.url}/set/user/ada`, 'POST');
  t.truthy(jar.get(COOKIE));
  await send(t, jar, `${first.url}/set/role/admin`, 'POST');
  t.deepEqual(await send(t, jar, `${first.url}/get`), { id: created.id, data: { user: 'ada', role: 'admin' } });

  first.child.kill('SIGKILL');
  const second = await start(t, dir);
  t.deepEqual(await send(t, jar, `${second.url}/get`), { id: created.id, data: { user: 'ada', role: 'admin' } });
});

test('@fastify/session + SealedStore: session.destroy() ends it; a tombstone is left until its end, then gc removes it', async (t) => {
  const dir = await tempDir(t);
  const { url } = await start(t, dir, { idleTimeout: 60 });
  const jar = new CookieJar();
  const { id } = await send(t, jar, `${url}/set/user/ada`, 'POST');
  t.like(await stored(url, id), { user: 'ada' });
  await send(t, jar, `${url}/destroy`, 'POST');
  t.is(await stored(url, id), null);
  const after = await send(t, jar, `${url}/get`);
  t.not(after.id, id);
  t.deepEqual(after.data, {});
  t.is((await listFiles(dir)).length, 1, 'the tombstone');
  await fetch(`${url}/__advance/61`, { method: 'POST' });
  t.like(await (await fetch(`${url}/__gc`, { method: 'POST' })).json(), { removed: 1 });
  t.deepEqual(await listFiles(dir), []);
});

test('@fastify/session + SealedStore: cookie maxAge is honoured (server side too)', async (t) => {
  const dir = await tempDir(t);
  const { url } = await start(t, dir, { maxAge: 2000 });
  const jar = new CookieJar();
  const started = Date.now();
  const { id } = await send(t, jar, `${url}/set/user/ada`, 'POST');
  t.deepEqual((await send(t, jar, `${url}/get`)).data, { user: 'ada' });
  t.true(Date.now() - started < 2000, 'too slow to see the session alive');
  // The get above may have moved the cookie's end (rolling): past it from that get on.
  await new Promise((resolve) => setTimeout(resolve, 2300));
  t.is(await stored(url, id), null, 'the store still serves it after its cookie expired');
  const after = await send(t, jar, `${url}/get`);
  t.not(after.id, id);
  t.deepEqual(after.data, {});
});

test("@fastify/session + SealedStore: the store's timeouts bound a session whose cookie has no expiry", async (t) => {
  const dir = await tempDir(t);
  const { url } = await start(t, dir, { idleTimeout: 60, absoluteTimeout: 120 });
  const jar = new CookieJar();
  const { id } = await send(t, jar, `${url}/set/user/ada`, 'POST');
  for (let step = 0; step < 2; step++) {
    await fetch(`${url}/__advance/50`, { method: 'POST' });
    t.deepEqual((await send(t, jar, `${url}/get`)).data, { user: 'ada' }, `in use at ${(step + 1) * 50} s`);
  }
  await fetch(`${url}/__advance/30`, { method: 'POST' }); // 130 s: past absoluteTimeout, though used
  t.is(await stored(url, id), null);
  t.deepEqual((await send(t, jar, `${url}/get`)).data, {});
  t.like(await (await fetch(`${url}/__gc`, { method: 'POST' })).json(), { removed: 1 });
});

test('@fastify/session + SealedStore: a store error fails the request with 500, the stored version stays, and the server keeps serving', async (t) => {
  const dir = await tempDir(t);
  const { url } = await start(t, dir);
  const jar = new CookieJar();
  await send(t, jar, `${url}/set/user/ada`, 'POST');
  await fetch(`${url}/__fail/read/EIO`, { method: 'POST' });
  t.is((await jar.fetch(`${url}/get`)).status, 500);
  await fetch(`${url}/__clear`, { method: 'POST' });
  await fetch(`${url}/__fail/write/ENOSPC`, { method: 'POST' });
  t.is((await jar.fetch(`${url}/set/user/bob`, { method: 'POST' })).status, 500);
  await fetch(`${url}/__clear`, { method: 'POST' });
  t.deepEqual((await send(t, jar, `${url}/get`)).data, { user: 'ada' });
  await send(t, jar, `${url}/set/user/bob`, 'POST');
  t.deepEqual((await send(t, jar, `${url}/get`)).data, { user: 'bob' });
});

test('@fastify/session + SealedStore: 50 concurrent requests on one session, each setting its own key, lose nothing (merged against what get handed out)', async (t) => {
  const dir = await tempDir(t);
  const { url } = await start(t, dir);
  const jar = new CookieJar();
  await send(t, jar, `${url}/set/base/kept`, 'POST');
  const cookie = jar.header();
  for (let round = 0; round < 3; round++) {
    const statuses = await Promise.all(
      Array.from({ length: 50 }, (_, index) =>
        fetch(`${url}/set/r${round}k${index}/${index}`, { method: 'POST', headers: { cookie } }).then(async (r) => {
          await r.text();
          return r.status;
        }),
      ),
    );
    t.deepEqual(new Set(statuses), new Set([200]));
    const { data } = await send(t, jar, `${url}/get`);
    const lost = Array.from({ length: 50 }, (_, index) => `r${round}k${index}`).filter((key) => data[key] !== key.split('k')[1]);
    t.deepEqual(lost, [], `round ${round}: ${lost.length} of 50 keys lost`);
    t.is(data['base'], 'kept');
  }
});
