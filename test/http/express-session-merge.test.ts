import test, { type ExecutionContext } from 'ava';
import express from 'express';
import session from 'express-session';
import { SealedStore } from '../../src/express-session.js';
import { CookieJar, listen } from '../helpers/http.js';
import { fixtureServer } from '../helpers/server-process.js';
import { KEY, tempDir } from '../helpers/temp-dir.js';

/*
 * No lost updates through express-session: SealedStore turns each save of a session it handed
 * out into a per-key change set against that version, merged onto the latest stored one. Real
 * server processes (test/fixtures/express-session-server.ts), one or two on the same directory.
 */

interface Reply {
  readonly id: string;
  readonly data: Record<string, unknown>;
}

async function servers(t: ExecutionContext, count: 1 | 2): Promise<string[]> {
  const dir = await tempDir(t);
  const started = await Promise.all(Array.from({ length: count }, () => fixtureServer(t, 'test/fixtures/express-session-server.ts', [dir, KEY])));
  return started.map((server) => server.url);
}

async function call(url: string, cookie: string, method = 'GET', body?: unknown): Promise<Reply> {
  const response = await fetch(url, {
    method,
    headers: { cookie, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`${method} ${url}: ${response.status} ${text}`);
  return JSON.parse(text) as Reply;
}

/** A new session on `url` holding `data`; its cookie. */
async function seed(url: string, data: Record<string, unknown>): Promise<string> {
  const jar = new CookieJar();
  for (const [key, value] of Object.entries(data)) {
    const response = await jar.fetch(`${url}/set/${key}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(value) });
    await response.text();
  }
  return jar.header();
}

const range = (count: number) => Array.from({ length: count }, (_, index) => index);

for (const processes of [1, 2] as const) {
  test(`${processes} process${processes === 1 ? '' : 'es'}: 50 concurrent requests on one session, each setting its own key, 5 rounds → 0 lost`, async (t) => {
    const urls = await servers(t, processes);
    const cookie = await seed(urls[0]!, { base: 'kept' });
    let lost = 0;
    for (let round = 0; round < 5; round++) {
      await Promise.all(range(50).map((index) => call(`${urls[index % processes]}/set/r${round}k${index}`, cookie, 'POST', { round, index })));
      // A key is lost when any process does not see it: the worst reader counts.
      let worst = 0;
      for (const url of urls) {
        const { data } = await call(`${url}/get`, cookie);
        const missing = range(50).filter((index) => JSON.stringify(data[`r${round}k${index}`]) !== JSON.stringify({ round, index }));
        worst = Math.max(worst, missing.length);
        t.is(data['base'], 'kept');
      }
      lost += worst;
    }
    t.is(lost, 0, `${lost} of 250 keys lost`);
  });

  test(`${processes} process${processes === 1 ? '' : 'es'}: 50 concurrent requests each deleting its own key of 50 → all deleted, the rest kept`, async (t) => {
    const urls = await servers(t, processes);
    const cookie = await seed(urls[0]!, { base: 'kept' });
    await Promise.all(range(50).map((index) => call(`${urls[index % processes]}/set/k${index}`, cookie, 'POST', index)));
    t.is(Object.keys((await call(`${urls[0]}/get`, cookie)).data).length, 51);
    await Promise.all(range(50).map((index) => call(`${urls[index % processes]}/delete/k${index}`, cookie, 'POST')));
    for (const url of urls) t.deepEqual((await call(`${url}/get`, cookie)).data, { base: 'kept' });
  });
}

test('the same key from two requests in flight: one whole value wins, with its JSON type', async (t) => {
  const [url] = await servers(t, 1);
  const cookie = await seed(url!, { base: 'kept', x: 'old' });
  const values = [{ nested: { list: [1, 'two', null, true] } }, 42];
  const inFlight = values.map((value, index) => call(`${url}/gate/g${index}/set/x`, cookie, 'POST', value));
  for (const index of [0, 1]) while (!((await (await fetch(`${url}/arrived/g${index}`)).json()) as boolean));
  // Both requests loaded the session; now both save it.
  await Promise.all([fetch(`${url}/release/g0`, { method: 'POST' }), fetch(`${url}/release/g1`, { method: 'POST' })]);
  await Promise.all(inFlight);
  const { data } = await call(`${url}/get`, cookie);
  t.true(
    values.some((value) => JSON.stringify(value) === JSON.stringify(data['x'])),
    `x is ${JSON.stringify(data['x'])}`,
  );
  t.is(data['base'], 'kept');
});

test('a session regenerated while another request of it is in flight: the late save stores nothing, and the new session holds only its own data', async (t) => {
  const [url] = await servers(t, 1);
  const cookie = await seed(url!, { a: 1, b: 2 });
  const late = call(`${url}/gate/late/set/c`, cookie, 'POST', 3);
  while (!((await (await fetch(`${url}/arrived/late`)).json()) as boolean));
  const jar = new CookieJar();
  for (const pair of cookie.split('; ')) jar.set(pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1));
  const regenerated = await jar.fetch(`${url}/regenerate`, { method: 'POST' });
  const fresh = (await regenerated.json()) as Reply;
  t.deepEqual(fresh.data, { regenerated: true, fromBefore: ['a', 'b'] });
  await fetch(`${url}/release/late`, { method: 'POST' });
  await late;
  t.deepEqual((await call(`${url}/get`, cookie)).data, {}, 'the old id came back');
  t.deepEqual((await call(`${url}/get`, jar.header())).data, { regenerated: true, fromBefore: ['a', 'b'] }, 'the late save reached the new session');
});

test('a set() from outside express-session replaces the session whole, even while a request holds it', async (t) => {
  const [url] = await servers(t, 1);
  const cookie = await seed(url!, { a: 1, b: 2 });
  const { id } = await call(`${url}/get`, cookie);
  const inFlight = call(`${url}/gate/g/set/c`, cookie, 'POST', 3);
  while (!((await (await fetch(`${url}/arrived/g`)).json()) as boolean));
  const expires = new Date(Date.now() + 600_000).toISOString();
  await call(`${url}/store-set/${encodeURIComponent(id)}`, '', 'POST', { cookie: { originalMaxAge: null, expires, path: '/', httpOnly: true }, only: 'this' });
  t.deepEqual((await call(`${url}/get`, cookie)).data, { only: 'this' }, 'a and b are gone: replaced whole');
  await fetch(`${url}/release/g`, { method: 'POST' });
  await inFlight;
  // The request in flight changed only c: merged onto the replacement (a and b stay gone).
  t.deepEqual((await call(`${url}/get`, cookie)).data, { only: 'this', c: 3 });
});

test('nothing is visible on req.session that MemoryStore does not show: keys, JSON, for…in, symbols', async (t) => {
  const seen: Record<string, unknown> = {};
  for (const [name, store] of [
    ['MemoryStore', new session.MemoryStore()],
    ['SealedStore', new SealedStore({ dir: await tempDir(t), keys: KEY })],
  ] as const) {
    const app = express();
    app.use(session({ secret: 'visible-secret', store, resave: false, saveUninitialized: false }));
    app.post('/set', (req, res) => {
      (req.session as unknown as Record<string, unknown>)['user'] = 'ada';
      res.send('ok');
    });
    app.get('/look', (req, res) => {
      const forIn: string[] = [];
      for (const key in req.session) forIn.push(key);
      const { expires: _expires, ...cookie } = JSON.parse(JSON.stringify(req.session.cookie)) as Record<string, unknown>;
      res.json({
        keys: Object.keys(req.session),
        own: Reflect.ownKeys(req.session).map(String),
        forIn,
        json: Object.keys(JSON.parse(JSON.stringify(req.session)) as object),
        cookie,
      });
    });
    const url = await listen(t, app);
    const jar = new CookieJar();
    await (await jar.fetch(`${url}/set`, { method: 'POST' })).text();
    seen[name] = await (await jar.fetch(`${url}/look`)).json();
  }
  t.deepEqual(seen['SealedStore'], seen['MemoryStore']);
});
