import test, { type ExecutionContext } from 'ava';
import fastifyCookie from '@fastify/cookie';
import Fastify from 'fastify';
import Koa from 'koa';
import { isSealedSessionError, openStore, type Store, type StoreOptions } from '../../src/index.js';
import { sessions as fastifySessions } from '../../src/fastify.js';
import { sessions as koaSessions } from '../../src/koa.js';
import type { Transaction } from '../../src/http/transaction.js';
import { faultyIo } from '../helpers/faulty-io.js';
import { listenFastify, listenKoa } from '../helpers/frameworks.js';
import { CookieJar } from '../helpers/http.js';
import { KEY, listFiles, tempDir } from '../helpers/temp-dir.js';

/*
 * The WebStack transaction on Koa (`ctx.trans`) and Fastify (`request.trans`): the same tests as
 * for Express (test/http/middleware.test.ts), on real servers with real cookies, run for both.
 */

type Framework = 'koa' | 'fastify';
const FRAMEWORKS: readonly Framework[] = ['koa', 'fastify'];

interface Server {
  readonly url: string;
  /** Errors the framework's error path saw. */
  readonly errors: unknown[];
}

/** What each route does, given the request's transaction; the framework glue is below. */
async function route(trans: Transaction, method: string, path: string): Promise<{ status?: number; location?: string; body: unknown }> {
  const [, action, key, value] = path.split('/');
  if (method === 'GET' && action === 'get') {
    const session = await trans.getSession(false);
    return { body: session === null ? null : session.toJSON() };
  }
  if (method === 'POST' && action === 'set' && key !== undefined) {
    (await trans.getSession()).set(key, value);
    return { body: 'ok' };
  }
  if (method === 'POST' && action === 'redirect' && key !== undefined) {
    (await trans.getSession()).set(key, value);
    return { status: 303, location: '/get', body: '' };
  }
  if (method === 'POST' && action === 'expire') {
    await trans.expireSession();
    return { body: await trans.getSession(false) };
  }
  if (method === 'POST' && action === 'regenerate') {
    return { body: (await trans.regenerateSession()).toJSON() };
  }
  if (method === 'POST' && action === 'fail-after-set' && key !== undefined) {
    (await trans.getSession()).set(key, 'kept');
    throw new Error('handler failed');
  }
  return { status: 404, body: 'not found' };
}

const codeOf = (error: unknown) => (isSealedSessionError(error) ? error.code : 'OTHER');

async function koaServer(t: ExecutionContext, store: Store, proxy = false): Promise<Server> {
  const app = new Koa();
  app.proxy = proxy;
  app.use(async (ctx, next) => {
    try {
      await next();
    } catch (error) {
      ctx.status = 500;
      ctx.body = { code: codeOf(error) };
      ctx.app.emit('error', error, ctx);
    }
  });
  app.use(koaSessions({ store }));
  app.use(async (ctx) => {
    const result = await route(ctx.trans, ctx.method, ctx.path);
    if (result.status !== undefined) ctx.status = result.status;
    if (result.location !== undefined) ctx.redirect(result.location);
    ctx.body = typeof result.body === 'string' ? result.body : JSON.stringify(result.body);
  });
  return listenKoa(t, app);
}

async function fastifyServer(t: ExecutionContext, store: Store, trustProxy = false): Promise<Server> {
  const errors: unknown[] = [];
  const fastify = Fastify({ trustProxy });
  await fastify.register(fastifyCookie);
  await fastify.register(fastifySessions, { store });
  fastify.setErrorHandler(async (error, _request, reply) => {
    errors.push(error);
    return reply.status(500).send({ code: codeOf(error) });
  });
  fastify.all('/*', async (request, reply) => {
    const result = await route(request.trans, request.method, request.url.split('?')[0]!);
    if (result.status !== undefined) reply.status(result.status);
    if (result.location !== undefined) reply.header('location', result.location);
    return typeof result.body === 'string' ? result.body : JSON.stringify(result.body);
  });
  // With @fastify/cookie's own cookies in the same response: both must go out.
  fastify.post('/with-other-cookie', async (request, reply) => {
    (await request.trans.getSession()).set('other', 'yes');
    reply.setCookie('theme', 'dark', { path: '/' });
    return 'ok';
  });
  return { url: await listenFastify(t, fastify), errors };
}

function server(framework: Framework, t: ExecutionContext, store: Store, trustProxy = false): Promise<Server> {
  return framework === 'koa' ? koaServer(t, store, trustProxy) : fastifyServer(t, store, trustProxy);
}

async function openTestStore(t: ExecutionContext, options: StoreOptions = {}) {
  const dir = await tempDir(t);
  return { dir, store: await openStore({ dir, keys: KEY, ...options }) };
}

async function json(response: Response): Promise<unknown> {
  const text = await response.text();
  return JSON.parse(text) as unknown;
}

for (const framework of FRAMEWORKS) {
  test(`${framework}: getSession() creates, its cookie is set, the value is there in the next request`, async (t) => {
    const { store } = await openTestStore(t, { idleTimeout: 900 });
    const { url } = await server(framework, t, store);
    const jar = new CookieJar();
    const created = await jar.fetch(`${url}/set/user/alice`, { method: 'POST' });
    t.is(created.status, 200);
    t.regex(created.headers.getSetCookie()[0]!, /^sid=[A-Za-z0-9_-]{43}\.[A-Za-z0-9+/]{43}; Path=\/; Max-Age=900; HttpOnly; SameSite=Lax$/);
    t.deepEqual(await json(await jar.fetch(`${url}/get`)), { user: 'alice' });
  });

  test(`${framework}: getSession(false) is null and creates nothing (no cookie, garbage, expired by expireSession)`, async (t) => {
    const { dir, store } = await openTestStore(t);
    const { url } = await server(framework, t, store);
    for (const cookie of [undefined, 'sid=garbage', `sid=${'A'.repeat(43)}.${'B'.repeat(43)}`]) {
      const response = await fetch(`${url}/get`, cookie === undefined ? {} : { headers: { cookie } });
      t.is(await json(response), null);
      t.deepEqual(response.headers.getSetCookie(), []);
    }
    t.deepEqual(await listFiles(dir).catch(() => []), []);

    const jar = new CookieJar();
    await jar.fetch(`${url}/set/a/1`, { method: 'POST' });
    const old = jar.header();
    t.is(await json(await jar.fetch(`${url}/expire`, { method: 'POST' })), null, 'null in the same transaction');
    t.is(jar.get('sid'), undefined, 'cookie cleared');
    t.is(await json(await fetch(`${url}/get`, { headers: { cookie: old } })), null, 'null later, even with the old cookie');
    t.deepEqual(await listFiles(dir), [], 'its file is gone at once');
  });

  test(`${framework}: regenerateSession gives a new id, the same data; the old file is gone and the old cookie worthless`, async (t) => {
    const { dir, store } = await openTestStore(t);
    const { url } = await server(framework, t, store);
    const jar = new CookieJar();
    await jar.fetch(`${url}/set/user/alice`, { method: 'POST' });
    const before = jar.get('sid')!;
    t.deepEqual(await json(await jar.fetch(`${url}/regenerate`, { method: 'POST' })), { user: 'alice' });
    const after = jar.get('sid')!;
    t.not(after.split('.')[0], before.split('.')[0]);
    t.deepEqual(await json(await jar.fetch(`${url}/get`)), { user: 'alice' });
    t.is((await listFiles(dir)).length, 1);
    t.is(await json(await fetch(`${url}/get`, { headers: { cookie: `sid=${before}` } })), null);
  });

  test(`${framework}: the commit happens before the response: a redirect after set() sees the change`, async (t) => {
    const { store } = await openTestStore(t);
    const { url } = await server(framework, t, store);
    const jar = new CookieJar();
    for (let round = 0; round < 20; round++) {
      const response = await jar.fetch(`${url}/redirect/n/${round}`, { method: 'POST' });
      await response.text();
      t.is(response.status, 303);
      t.deepEqual(await json(await jar.fetch(`${url}${response.headers.get('location')}`)), { n: String(round) });
    }
  });

  test(`${framework}: 50 concurrent requests on one session setting k0…k49: none lost`, async (t) => {
    const { store } = await openTestStore(t);
    const { url } = await server(framework, t, store);
    const jar = new CookieJar();
    await jar.fetch(`${url}/set/start/1`, { method: 'POST' });
    const cookie = jar.header();
    const responses = await Promise.all(
      Array.from({ length: 50 }, (_, index) => fetch(`${url}/set/k${index}/${index}`, { method: 'POST', headers: { cookie } })),
    );
    t.true(responses.every((response) => response.status === 200));
    const data = (await json(await jar.fetch(`${url}/get`))) as Record<string, string>;
    const lost = Array.from({ length: 50 }, (_, index) => `k${index}`).filter((key) => data[key] !== key.slice(1));
    t.deepEqual(lost, []);
    t.is(data['start'], '1');
  });

  test(`${framework}: a failed commit takes the framework's error path with its code; the stored version stays`, async (t) => {
    const faults = faultyIo();
    const { store } = await openTestStore(t, { io: faults.io });
    const { url, errors } = await server(framework, t, store);
    const jar = new CookieJar();
    await jar.fetch(`${url}/set/a/1`, { method: 'POST' });
    faults.fail('write', 'ENOSPC');
    const failed = await jar.fetch(`${url}/set/a/2`, { method: 'POST' });
    t.is(failed.status, 500);
    t.deepEqual(await json(failed), { code: 'ERR_SESSION_STORE_IO' });
    t.true(errors.some((error) => isSealedSessionError(error, 'ERR_SESSION_STORE_IO')));
    t.deepEqual(await json(await jar.fetch(`${url}/get`)), { a: '1' });
  });

  test(`${framework}: a handler that fails after set() gets the error path, and what it set is kept (as with Express)`, async (t) => {
    const { store } = await openTestStore(t);
    const { url } = await server(framework, t, store);
    const jar = new CookieJar();
    await jar.fetch(`${url}/set/a/1`, { method: 'POST' });
    const failed = await jar.fetch(`${url}/fail-after-set/e`, { method: 'POST' });
    t.is(failed.status, 500);
    t.deepEqual(await json(failed), { code: 'OTHER' });
    t.deepEqual(await json(await jar.fetch(`${url}/get`)), { a: '1', e: 'kept' });
  });

  test(`${framework}: secure 'auto' follows the framework's notion of a TLS request (behind a trusted proxy)`, async (t) => {
    const { store } = await openTestStore(t);
    const trusted = await server(framework, t, store, true);
    const viaProxy = await fetch(`${trusted.url}/set/a/1`, { method: 'POST', headers: { 'x-forwarded-proto': 'https' } });
    t.regex(viaProxy.headers.getSetCookie()[0]!, /; Secure;/);
    const plain = await fetch(`${trusted.url}/set/a/1`, { method: 'POST' });
    t.notRegex(plain.headers.getSetCookie()[0]!, /Secure/);
    const untrusted = await server(framework, t, store, false);
    const spoofed = await fetch(`${untrusted.url}/set/a/1`, { method: 'POST', headers: { 'x-forwarded-proto': 'https' } });
    t.notRegex(spoofed.headers.getSetCookie()[0]!, /Secure/, 'a proxy header from an untrusted client');
  });
}

test("fastify: the session cookie and @fastify/cookie's own cookies go out together", async (t) => {
  const { store } = await openTestStore(t);
  const { url } = await fastifyServer(t, store);
  const jar = new CookieJar();
  const response = await jar.fetch(`${url}/with-other-cookie`, { method: 'POST' });
  t.is(response.status, 200);
  const names = response.headers.getSetCookie().map((cookie) => cookie.split('=')[0]);
  t.deepEqual(names.sort(), ['sid', 'theme']);
  t.deepEqual(await json(await jar.fetch(`${url}/get`)), { other: 'yes' });
});
