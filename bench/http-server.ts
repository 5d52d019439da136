// One server under load for bench/http.ts: `node --import=tsx/esm bench/http-server.ts <kind> <dir|redis-url>`.
// Kinds: sealed (native sessions()), sealed-store, memory, file-store, file-store-secret, redis
// (the last four under express-session). Prints `listening <port>`; exits when its stdin closes,
// so a parent that dies leaves no server behind.
// Routes: POST /seed and POST /create (make a session: the one handler), GET /read (reads it, unchanged),
// POST /write (changes it), POST /set?key=K (sets key K: the lost-update test), GET /keys (the
// session's keys as a JSON array; [] without a session).
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { RedisStore } from 'connect-redis';
import express, { type Request, type RequestHandler } from 'express';
import session from 'express-session';
import { createClient } from 'redis';
import { SealedStore } from '../src/express-session.js';
import { openStore, sessions } from '../src/index.js';
import { EXPRESS_SESSION_SECRET, FILE_STORE_SECRET, SEALED_KEY, STORE_KINDS, type StoreKind } from './stores.js';

async function main(kind: StoreKind, target: string): Promise<void> {
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  // Every write changes the session, also when two land in the same millisecond.
  let counter = 0;
  const keyOf = (req: Request) => (typeof req.query['key'] === 'string' ? req.query['key'] : 'missing-key');

  if (kind === 'sealed') {
    const store = await openStore({ dir: target, keys: SEALED_KEY });
    app.use(sessions({ store }));
    const create: RequestHandler = async (req, res) => {
      const s = await req.trans.getSession();
      s.set('user', 'alice');
      s.set('profile', { name: 'Alice', roles: ['reader'], visits: 0 });
      res.send('ok');
    };
    app.post('/seed', create);
    app.post('/create', create);
    app.get('/read', async (req, res) => {
      const s = await req.trans.getSession(false);
      res.send(s === null ? 'none' : String(s.get('user')));
    });
    app.post('/write', async (req, res) => {
      const s = await req.trans.getSession();
      s.set('n', ++counter);
      res.send('ok');
    });
    app.post('/set', async (req, res) => {
      const s = await req.trans.getSession();
      s.set(keyOf(req), true);
      res.send('ok');
    });
    app.get('/keys', async (req, res) => {
      const s = await req.trans.getSession(false);
      res.json(s === null ? [] : [...s.keys()]);
    });
  } else {
    let store: session.Store;
    if (kind === 'memory') {
      store = new session.MemoryStore();
    } else if (kind === 'sealed-store') {
      store = new SealedStore({ dir: target, keys: SEALED_KEY });
    } else if (kind === 'file-store' || kind === 'file-store-secret') {
      // session-file-store is CommonJS without types. Its defaults otherwise (5 read retries, ttl 1 h).
      type StoreClass = new (options: Record<string, unknown>) => session.Store;
      const FileStore = (createRequire(import.meta.url)('session-file-store') as (s: typeof session) => StoreClass)(session);
      store = new FileStore({ path: target, logFn: () => undefined, ...(kind === 'file-store-secret' ? { secret: FILE_STORE_SECRET } : {}) });
    } else {
      const client = createClient({ url: target });
      client.on('error', (error: unknown) => console.error('redis client:', error));
      await client.connect();
      store = new RedisStore({ client });
    }
    app.use(session({ secret: EXPRESS_SESSION_SECRET, resave: false, saveUninitialized: false, store }));
    const data = (req: Request) => req.session as unknown as Record<string, unknown>;
    const create: RequestHandler = (req, res) => {
      data(req)['user'] = 'alice';
      data(req)['profile'] = { name: 'Alice', roles: ['reader'], visits: 0 };
      res.send('ok');
    };
    app.post('/seed', create);
    app.post('/create', create);
    app.get('/read', (req, res) => {
      res.send(String(data(req)['user'] ?? 'none'));
    });
    app.post('/write', (req, res) => {
      data(req)['n'] = ++counter;
      res.send('ok');
    });
    app.post('/set', (req, res) => {
      data(req)[keyOf(req)] = true;
      res.send('ok');
    });
    app.get('/keys', (req, res) => {
      res.json(Object.keys(data(req)).filter((key) => key !== 'cookie'));
    });
  }

  const server = app.listen(0, '127.0.0.1', () => {
    process.stdout.write(`listening ${(server.address() as AddressInfo).port}\n`);
  });
}

const [kind, target] = process.argv.slice(2);
if (!STORE_KINDS.includes(kind as StoreKind) || target === undefined) {
  console.error(`usage: http-server.ts <${STORE_KINDS.join('|')}> <dir|redis-url>`);
  process.exit(2);
}
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
await main(kind as StoreKind, target);
