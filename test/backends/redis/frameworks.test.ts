import { randomBytes } from 'node:crypto';
import test from 'ava';
import express from 'express';
import session from 'express-session';
import { SealedStore } from '../../../src/express-session.js';
import { redisBackend } from '../../../src/redis.js';
import { CookieJar, listen } from '../../helpers/http.js';
import { KEY } from '../../helpers/temp-dir.js';
import { sharedTargets } from './targets.js';

/*
 * The framework store on Redis: express-session + SealedStore({ backend: redisBackend(...) }),
 * one option changed, on a real server and a real Cluster: sessions persist, concurrent saves of
 * one session merge, and a logout sticks.
 */

const targets = sharedTargets();

for (const name of ['standalone', 'cluster'] as const) {
  test(`${name}: express-session + SealedStore on Redis keeps a session, merges 30 concurrent saves, and a destroy sticks`, async (t) => {
    const store = new SealedStore({ keys: KEY, backend: redisBackend({ client: targets[name]!.client, prefix: `f${randomBytes(4).toString('hex')}:` }) });
    const app = express();
    app.use(session({ secret: 'redis-framework-test', resave: false, saveUninitialized: false, store }));
    app.post('/set/:key', (req, res) => {
      (req.session as unknown as Record<string, unknown>)[req.params.key] = req.params.key;
      res.send('ok');
    });
    app.get('/get', (req, res) => {
      res.json(Object.keys(req.session).filter((key) => key !== 'cookie'));
    });
    app.post('/logout', (req, res, next) => {
      req.session.destroy((error) => (error ? next(error) : res.send('ok')));
    });
    const url = await listen(t, app);
    const jar = new CookieJar();
    await (await jar.fetch(`${url}/set/first`, { method: 'POST' })).text();
    const cookie = jar.header();
    // Whole responses: express-session sends the headers and all but the last byte of the body
    // before its save is done, and that byte after it, so only a read body says the save is done.
    const answers = await Promise.all(
      Array.from({ length: 30 }, async (_, index) => {
        const answer = await fetch(`${url}/set/k${index}`, { method: 'POST', headers: { cookie } });
        await answer.text();
        return answer;
      }),
    );
    t.true(answers.every((answer) => answer.status === 200));
    const keys = (await (await fetch(`${url}/get`, { headers: { cookie } })).json()) as string[];
    t.deepEqual(keys.sort(), ['first', ...Array.from({ length: 30 }, (_, index) => `k${index}`)].sort());
    t.is((await fetch(`${url}/logout`, { method: 'POST', headers: { cookie } })).status, 200);
    t.deepEqual(await (await fetch(`${url}/get`, { headers: { cookie } })).json(), [], 'the old cookie finds no session');
    // A late save of a destroyed id (a request still in flight, or any set() of it) stores nothing.
    const id = 'a-session-id-of-express-session';
    await store.set(id, { cookie: { originalMaxAge: null, expires: null, httpOnly: true, path: '/' }, user: 'alice' });
    await store.destroy(id);
    await store.set(id, { cookie: { originalMaxAge: null, expires: null, httpOnly: true, path: '/' }, user: 'mallory' });
    t.is(await store.get(id), undefined);
  });
}
