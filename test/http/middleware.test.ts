import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import test from 'ava';
import signature from 'cookie-signature';
import express, { type NextFunction, type Request, type Response } from 'express';
import { defaultIo, type Io } from '../../src/backends/file/io.js';
import { isSealedSessionError, openStore, sessions, type RequestWithTransaction, type Store, type StoreOptions } from '../../src/index.js';
import { manualClock } from '../helpers/clock.js';
import { CookieJar, listen } from '../helpers/http.js';
import { serverProcess } from '../helpers/server-process.js';
import { KEY, listFiles, OLD_KEY, tempDir } from '../helpers/temp-dir.js';

type Handler = (req: RequestWithTransaction, res: ServerResponse) => Promise<void> | void;

/** A plain node:http server (no Express) with the middleware used as `mw(req, res, () => handler(req, res))`. */
async function plainServer(t: Parameters<typeof tempDir>[0], store: Store, routes: Record<string, Handler>): Promise<string> {
  const mw = sessions({ store });
  return listen(t, (req: IncomingMessage, res: ServerResponse) => {
    mw(req, res, () => {
      const route = routes[new URL(req.url!, 'http://x').pathname];
      if (route === undefined) {
        res.statusCode = 404;
        res.end();
        return;
      }
      Promise.resolve(route(req as RequestWithTransaction, res)).catch((error: unknown) => {
        res.statusCode = 500;
        res.end(String(isSealedSessionError(error) ? error.code : error));
      });
    });
  });
}

/** An Express app with the routes most tests need. */
async function expressServer(t: Parameters<typeof tempDir>[0], store: Store, configure?: (app: express.Express) => void): Promise<string> {
  const app = express();
  configure?.(app);
  app.use(sessions({ store }));
  app.get('/get', async (req, res) => {
    const session = await req.trans.getSession(false);
    res.json(session === null ? null : session.toJSON());
  });
  app.post('/set/:key/:value', async (req, res) => {
    (await req.trans.getSession()).set(req.params.key, req.params.value);
    res.send('ok');
  });
  app.post('/redirect/:key/:value', async (req, res) => {
    (await req.trans.getSession()).set(req.params.key, req.params.value);
    res.redirect(303, '/get');
  });
  app.post('/expire', async (req, res) => {
    await req.trans.expireSession();
    res.json(await req.trans.getSession(false));
  });
  app.post('/regenerate', async (req, res) => {
    const session = await req.trans.regenerateSession();
    res.json(session.toJSON());
  });
  app.get('/untouched', (_req, res) => {
    res.send('no session here');
  });
  app.post('/stream/:key', async (req, res) => {
    (await req.trans.getSession()).set(req.params.key, 'streamed');
    Readable.from(['a', 'b', 'c']).pipe(res);
  });
  app.post('/fail-after-set/:key', async (req) => {
    (await req.trans.getSession()).set(req.params.key, 'kept');
    throw new Error('handler failed');
  });
  app.use((error: unknown, _req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) return next(error);
    res.status(500).json({ code: isSealedSessionError(error) ? error.code : 'OTHER' });
  });
  return listen(t, app);
}

async function openTestStore(t: Parameters<typeof tempDir>[0], options: StoreOptions = {}) {
  const dir = await tempDir(t);
  return { dir, store: await openStore({ dir, keys: KEY, ...options }) };
}

test('persistence: a value set in one request is there in the next, through the cookie', async (t) => {
  const { store } = await openTestStore(t);
  const url = await expressServer(t, store);
  const jar = new CookieJar();
  t.is((await jar.fetch(`${url}/set/user/alice`, { method: 'POST' })).status, 200);
  t.truthy(jar.get('sid'));
  t.deepEqual(await (await jar.fetch(`${url}/get`)).json(), { user: 'alice' });
});

test('the cookie: signed id, HttpOnly, SameSite=Lax, Path=/, Max-Age = idle timeout, no Secure over plain http', async (t) => {
  const { store } = await openTestStore(t, { idleTimeout: 900 });
  const url = await expressServer(t, store);
  const response = await fetch(`${url}/set/a/1`, { method: 'POST' });
  const [cookie] = response.headers.getSetCookie();
  t.regex(cookie!, /^sid=[A-Za-z0-9_-]{43}\.[A-Za-z0-9+/]{43}; Path=\/; Max-Age=900; HttpOnly; SameSite=Lax$/);
});

test("secure: 'auto' follows req.secure, so Express's trust proxy decides", async (t) => {
  const { store } = await openTestStore(t);
  const url = await expressServer(t, store, (app) => app.set('trust proxy', 'loopback'));
  const response = await fetch(`${url}/set/a/1`, { method: 'POST', headers: { 'x-forwarded-proto': 'https' } });
  t.regex(response.headers.getSetCookie()[0]!, /; Secure;/);
});

test('redirect-after-set: the change is visible on the very next request', async (t) => {
  const { store } = await openTestStore(t);
  const url = await expressServer(t, store);
  const jar = new CookieJar();
  for (let round = 0; round < 20; round++) {
    const response = await jar.fetch(`${url}/redirect/n/${round}`, { method: 'POST' });
    t.is(response.status, 303);
    t.deepEqual(await (await jar.fetch(`${url}${response.headers.get('location')}`)).json(), { n: String(round) });
  }
});

test('a streamed body and an error handler after set() both commit before the client has the response', async (t) => {
  const { store } = await openTestStore(t);
  const url = await expressServer(t, store);
  const jar = new CookieJar();
  const streamed = await jar.fetch(`${url}/stream/s`, { method: 'POST' });
  t.is(await streamed.text(), 'abc');
  t.deepEqual(await (await jar.fetch(`${url}/get`)).json(), { s: 'streamed' });
  const failed = await jar.fetch(`${url}/fail-after-set/e`, { method: 'POST' });
  t.is(failed.status, 500);
  t.deepEqual(await (await jar.fetch(`${url}/get`)).json(), { s: 'streamed', e: 'kept' });
});

test('getSession(false) is null and creates no file: no cookie, bad signature, unknown id, expired, expireSession', async (t) => {
  const clock = manualClock();
  const { dir, store } = await openTestStore(t, { now: clock.now, idleTimeout: 60 });
  const url = await expressServer(t, store);
  const get = async (cookie?: string) => {
    const response = await fetch(`${url}/get`, cookie === undefined ? {} : { headers: { cookie } });
    t.is(response.status, 200);
    t.deepEqual(response.headers.getSetCookie(), []);
    return response.json();
  };
  t.is(await get(), null);
  t.is(await get('sid=garbage'), null);
  const unknownId = 'A'.repeat(43);
  t.is(await get(`sid=${signature.sign(unknownId, store.signingSecrets[0]!)}`), null);
  t.is(await get(`sid=${signature.sign(unknownId, 'some-other-secret')}`), null);
  t.deepEqual(await listFiles(dir), []);

  const jar = new CookieJar();
  await jar.fetch(`${url}/set/a/1`, { method: 'POST' });
  const cookie = `sid=${jar.get('sid')}`;
  t.deepEqual(await get(cookie), { a: '1' });
  clock.advance(61);
  t.is(await get(cookie), null, 'idle-expired');
  t.is((await listFiles(dir)).length, 1, 'nothing written by the read of an expired session');

  const second = new CookieJar();
  await second.fetch(`${url}/set/b/2`, { method: 'POST' });
  const secondCookie = `sid=${second.get('sid')}`;
  const expired = await second.fetch(`${url}/expire`, { method: 'POST' });
  t.is(await expired.json(), null, 'null in the same transaction');
  t.is(second.get('sid'), undefined, 'cookie cleared');
  t.is(await get(secondCookie), null, 'null in later ones, even with the old cookie');
  t.is((await listFiles(dir)).length, 1, 'its file is gone');
});

test('getSession() never adopts an id the client sent: a new session gets a new id', async (t) => {
  const { store } = await openTestStore(t);
  const url = await expressServer(t, store);
  const planted = 'B'.repeat(43);
  const response = await fetch(`${url}/set/a/1`, { method: 'POST', headers: { cookie: `sid=${signature.sign(planted, store.signingSecrets[0]!)}` } });
  const [cookie] = response.headers.getSetCookie();
  t.false(cookie!.includes(planted));
  t.is(await store.load(planted), null);
});

test('regenerateSession: new id, same data, old file gone, old cookie worthless', async (t) => {
  const { dir, store } = await openTestStore(t);
  const url = await expressServer(t, store);
  const jar = new CookieJar();
  await jar.fetch(`${url}/set/user/alice`, { method: 'POST' });
  const before = jar.get('sid')!;
  t.deepEqual(await (await jar.fetch(`${url}/regenerate`, { method: 'POST' })).json(), { user: 'alice' });
  const after = jar.get('sid')!;
  t.not(after.split('.')[0], before.split('.')[0]);
  t.deepEqual(await (await jar.fetch(`${url}/get`)).json(), { user: 'alice' });
  t.is((await listFiles(dir)).length, 1);
  t.is(await (await fetch(`${url}/get`, { headers: { cookie: `sid=${before}` } })).json(), null);
});

test('a cookie signed with an older key still works and is re-issued under the first key', async (t) => {
  const dir = await tempDir(t);
  const oldStore = await openStore({ dir, keys: OLD_KEY });
  const oldUrl = await expressServer(t, oldStore);
  const jar = new CookieJar();
  await jar.fetch(`${oldUrl}/set/a/1`, { method: 'POST' });
  const oldCookie = jar.get('sid')!;

  const rotated = await openStore({ dir, keys: [KEY, OLD_KEY] });
  const url = await expressServer(t, rotated);
  const response = await jar.fetch(`${url}/get`);
  t.deepEqual(await response.json(), { a: '1' });
  const reissued = jar.get('sid')!;
  t.not(reissued, oldCookie);
  t.is(reissued.split('.')[0], oldCookie.split('.')[0], 'same session id');
  t.is(signature.unsign(reissued, rotated.signingSecrets[0]!) as string | false, reissued.split('.')[0]!);
});

test('Max-Age is refreshed when the session is kept alive, not on every request', async (t) => {
  const clock = manualClock();
  const { store } = await openTestStore(t, { now: clock.now, idleTimeout: 600, touchInterval: 60 });
  const url = await expressServer(t, store);
  const jar = new CookieJar();
  await jar.fetch(`${url}/set/a/1`, { method: 'POST' });
  clock.advance(30);
  t.deepEqual((await jar.fetch(`${url}/get`)).headers.getSetCookie(), []);
  clock.advance(40);
  const refreshed = (await jar.fetch(`${url}/get`)).headers.getSetCookie();
  t.is(refreshed.length, 1);
  t.regex(refreshed[0]!, /Max-Age=600/);
});

test('the session is loaded at most once per request, and not at all by handlers that never ask', async (t) => {
  const dir = await tempDir(t);
  let reads = 0;
  const io: Io = {
    ...defaultIo,
    readFile: (file, limit) => {
      reads++;
      return defaultIo.readFile(file, limit);
    },
    // A cached session is checked by one stat: that is its read.
    stat: (file) => {
      reads++;
      return defaultIo.stat(file);
    },
  };
  const store = await openStore({ dir, keys: KEY, io });
  const url = await plainServer(t, store, {
    '/set': async (req, res) => {
      (await req.trans.getSession()).set('a', 1);
      res.end('ok');
    },
    '/thrice': async (req, res) => {
      await Promise.all([req.trans.getSession(false), req.trans.getSession(false)]);
      await req.trans.getSession();
      res.end('ok');
    },
    '/none': (_req, res) => {
      res.end('none');
    },
  });
  const jar = new CookieJar();
  await jar.fetch(`${url}/set`);
  const readsAfterCreate = reads;
  await jar.fetch(`${url}/thrice`);
  t.is(reads - readsAfterCreate, 1);
  await jar.fetch(`${url}/none`);
  t.is(reads - readsAfterCreate, 1);
});

test('plain node:http: persistence, expiry and a null session without Express', async (t) => {
  const { dir, store } = await openTestStore(t);
  const url = await plainServer(t, store, {
    '/set': async (req, res) => {
      (await req.trans.getSession()).set('n', 1);
      res.end('ok');
    },
    '/get': async (req, res) => {
      const session = await req.trans.getSession(false);
      res.end(JSON.stringify(session === null ? null : session.toJSON()));
    },
    '/expire': async (req, res) => {
      await req.trans.expireSession();
      res.end('bye');
    },
  });
  const jar = new CookieJar();
  t.is(await (await jar.fetch(`${url}/get`)).text(), 'null');
  await jar.fetch(`${url}/set`);
  t.is(await (await jar.fetch(`${url}/get`)).text(), '{"n":1}');
  await jar.fetch(`${url}/expire`);
  t.is(jar.get('sid'), undefined);
  t.is(await (await jar.fetch(`${url}/get`)).text(), 'null');
  t.deepEqual(await listFiles(dir), []);
});

/** An io whose atomic writes fail with `code` while `failing` is set. */
function faultyWrites(code: string) {
  const state = { failing: false };
  const io: Io = {
    ...defaultIo,
    writeFileAtomic: (file, data) =>
      state.failing ? Promise.reject(Object.assign(new Error(`simulated ${code}`), { code })) : defaultIo.writeFileAtomic(file, data),
  };
  return { io, state };
}

test('a failed commit reaches Express error handling via next(err) with its code, and the stored version stays', async (t) => {
  const dir = await tempDir(t);
  const { io, state } = faultyWrites('ENOSPC');
  const store = await openStore({ dir, keys: KEY, io });
  const url = await expressServer(t, store);
  const jar = new CookieJar();
  await jar.fetch(`${url}/set/a/1`, { method: 'POST' });
  state.failing = true;
  const failed = await jar.fetch(`${url}/set/a/2`, { method: 'POST' });
  t.is(failed.status, 500);
  t.deepEqual(await failed.json(), { code: 'ERR_SESSION_STORE_IO' });
  state.failing = false;
  t.deepEqual(await (await jar.fetch(`${url}/get`)).json(), { a: '1' });
});

test('a failed commit on plain node:http gives a bare 500 with the code, never the success response', async (t) => {
  const dir = await tempDir(t);
  const { io, state } = faultyWrites('EIO');
  const store = await openStore({ dir, keys: KEY, io });
  let handlerRuns = 0;
  const url = await plainServer(t, store, {
    '/set': async (req, res) => {
      handlerRuns++;
      (await req.trans.getSession()).set('a', 1);
      res.end('saved!');
    },
  });
  state.failing = true;
  const response = await fetch(`${url}/set`);
  t.is(response.status, 500);
  t.regex(await response.text(), /ERR_SESSION_STORE_IO/);
  t.is(handlerRuns, 1, 'the handler is not run a second time');
});

test('50 concurrent HTTP requests on one session setting k0…k49: none lost', async (t) => {
  const { store } = await openTestStore(t);
  const url = await expressServer(t, store);
  const jar = new CookieJar();
  await jar.fetch(`${url}/set/start/1`, { method: 'POST' });
  const responses = await Promise.all(Array.from({ length: 50 }, (_, index) => jar.fetch(`${url}/set/k${index}/${index}`, { method: 'POST' })));
  t.true(responses.every((response) => response.status === 200));
  const data = (await (await jar.fetch(`${url}/get`)).json()) as Record<string, string>;
  const lost = Array.from({ length: 50 }, (_, index) => `k${index}`).filter((key) => data[key] === undefined);
  t.deepEqual(lost, []);
});

test('two server processes on one directory: persistence across them, and 50 concurrent requests lose nothing', async (t) => {
  const dir = await tempDir(t);
  const [first, second] = await Promise.all([serverProcess(t, dir, KEY), serverProcess(t, dir, KEY)]);
  const jar = new CookieJar();
  await jar.fetch(`${first}/set/user/alice`, { method: 'POST' });
  t.deepEqual(await (await jar.fetch(`${second}/get`)).json(), { user: 'alice' });
  const responses = await Promise.all(
    Array.from({ length: 50 }, (_, index) => jar.fetch(`${index % 2 === 0 ? first : second}/set/k${index}/${index}`, { method: 'POST' })),
  );
  const pids = new Set(await Promise.all(responses.map(async (response) => ((await response.json()) as { pid: number }).pid)));
  t.is(pids.size, 2, 'both processes served');
  const data = (await (await jar.fetch(`${first}/get`)).json()) as Record<string, string>;
  const lost = Array.from({ length: 50 }, (_, index) => `k${index}`).filter((key) => data[key] !== String(key.slice(1)));
  t.deepEqual(lost, []);
  t.is(data['user'], 'alice');
});
