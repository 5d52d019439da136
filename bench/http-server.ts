// One server under load for bench/http.ts: `node --import=tsx/esm bench/http-server.ts <kind> <dir|redis-url>`.
// Kinds: sealed (native sessions() on Express), koa and fastify (the native adapters), sealed-store,
// memory, file-store, file-store-secret, redis (under express-session), koa-session-store and
// fastify-session-store (SealedStore under koa-session / @fastify/session). Prints `listening <port>`; exits when its stdin closes,
// so a parent that dies leaves no server behind.
// Routes: POST /seed and POST /create (make a session: the one handler), GET /read (reads it, unchanged),
// POST /write (changes it), POST /set?key=K (sets key K: the lost-update test), GET /keys (the
// session's keys as a JSON array; [] without a session).
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import fastifyCookie from '@fastify/cookie';
import fastifySession from '@fastify/session';
import { RedisStore } from 'connect-redis';
import express, { type Request, type RequestHandler } from 'express';
import session from 'express-session';
import Fastify from 'fastify';
import Koa from 'koa';
import koaSession from 'koa-session';
import { createClient } from 'redis';
import { SealedStore } from '../src/express-session.js';
import { sessions as fastifySessions } from '../src/fastify.js';
import type { Transaction } from '../src/http/transaction.js';
import { SealedStore as NeutralStore, openStore, sessions } from '../src/index.js';
import { sessions as koaSessions } from '../src/koa.js';
import { redisBackend } from '../src/redis.js';
import { EXPRESS_SESSION_SECRET, FASTIFY_SESSION_SECRET, FILE_STORE_SECRET, KOA_KEYS, SEALED_KEY, STORE_KINDS, type StoreKind } from './stores.js';

/** What a route of the bench does to a session: the same six routes on every framework. */
interface Routes {
  create(): void;
  read(): string;
  write(): void;
  set(key: string): void;
  keys(): string[];
}

/** The routes over a framework's session object (plain keys, as express-session, koa-session and @fastify/session keep them). */
function objectRoutes(data: () => Record<string, unknown> | null, counter: { n: number }): Routes {
  return {
    create: () => {
      data()!['user'] = 'alice';
      data()!['profile'] = { name: 'Alice', roles: ['reader'], visits: 0 };
    },
    read: () => String(data()?.['user'] ?? 'none'),
    write: () => {
      data()!['n'] = ++counter.n;
    },
    set: (key) => {
      data()![key] = true;
    },
    keys: () => Object.keys(data() ?? {}).filter((key) => key !== 'cookie'),
  };
}

/** The routes over the WebStack transaction (every native adapter). */
async function transactionRoute(trans: Transaction, route: string, key: string, counter: { n: number }): Promise<unknown> {
  if (route === '/read' || route === '/keys') {
    const s = await trans.getSession(false);
    return route === '/read' ? (s === null ? 'none' : String(s.get('user'))) : s === null ? [] : [...s.keys()];
  }
  const s = await trans.getSession();
  if (route === '/seed' || route === '/create') {
    s.set('user', 'alice');
    s.set('profile', { name: 'Alice', roles: ['reader'], visits: 0 });
  } else if (route === '/write') s.set('n', ++counter.n);
  else if (route === '/set') s.set(key, true);
  return 'ok';
}

function listening(port: number): void {
  process.stdout.write(`listening ${port}\n`);
}

/** The other frameworks: Koa and Fastify, natively and under their session packages. */
async function otherFramework(kind: 'koa' | 'fastify' | 'koa-session-store' | 'fastify-session-store', target: string): Promise<void> {
  const counter = { n: 0 };
  if (kind === 'koa' || kind === 'koa-session-store') {
    const app = new Koa();
    app.keys = KOA_KEYS;
    if (kind === 'koa') app.use(koaSessions({ store: await openStore({ dir: target, keys: SEALED_KEY }) }));
    else app.use(koaSession({ store: new NeutralStore({ dir: target, keys: SEALED_KEY }) }, app));
    app.use(async (ctx) => {
      const key = typeof ctx.query['key'] === 'string' ? ctx.query['key'] : 'missing-key';
      let body: unknown;
      if (kind === 'koa') body = await transactionRoute(ctx.trans, ctx.path, key, counter);
      else {
        // The app's keys are what koa-session's toJSON() gives (not its own `_expire`, `_maxAge`, `isNew`).
        const data = () => (ctx['session'] as { toJSON(): Record<string, unknown> } | null)?.toJSON() ?? null;
        const routes = objectRoutes(() => ctx['session'] as Record<string, unknown>, counter);
        if (ctx.path === '/seed' || ctx.path === '/create') routes.create();
        else if (ctx.path === '/write') routes.write();
        else if (ctx.path === '/set') routes.set(key);
        body = ctx.path === '/read' ? routes.read() : ctx.path === '/keys' ? Object.keys(data() ?? {}) : 'ok';
      }
      ctx.body = typeof body === 'string' ? body : JSON.stringify(body);
    });
    const server = app.listen(0, '127.0.0.1', () => listening((server.address() as AddressInfo).port));
    return;
  }
  const fastify = Fastify();
  if (kind === 'fastify') await fastify.register(fastifySessions, { store: await openStore({ dir: target, keys: SEALED_KEY }) });
  else {
    await fastify.register(fastifyCookie);
    // Saved when changed only (`rolling: false`, `saveUninitialized: false`), as the express-session
    // servers (`resave: false`): with its default `rolling: true`, every read would be a write.
    await fastify.register(fastifySession, {
      secret: FASTIFY_SESSION_SECRET,
      store: new NeutralStore({ dir: target, keys: SEALED_KEY }),
      cookie: { secure: false },
      rolling: false,
      saveUninitialized: false,
    });
  }
  fastify.all('/*', async (request, reply) => {
    const route = request.url.split('?')[0]!;
    const query = request.query as Record<string, unknown>;
    const key = typeof query['key'] === 'string' ? query['key'] : 'missing-key';
    reply.header('content-type', 'text/plain; charset=utf-8');
    if (kind === 'fastify') {
      const body = await transactionRoute(request.trans, route, key, counter);
      return typeof body === 'string' ? body : JSON.stringify(body);
    }
    const data = request.session as unknown as Record<string, unknown>;
    const routes = objectRoutes(() => data, counter);
    if (route === '/seed' || route === '/create') routes.create();
    else if (route === '/write') routes.write();
    else if (route === '/set') routes.set(key);
    return route === '/read' ? routes.read() : route === '/keys' ? JSON.stringify(routes.keys()) : 'ok';
  });
  await fastify.listen({ port: 0, host: '127.0.0.1' });
  listening((fastify.server.address() as AddressInfo).port);
}

async function main(kind: StoreKind, target: string): Promise<void> {
  if (kind === 'koa' || kind === 'fastify' || kind === 'koa-session-store' || kind === 'fastify-session-store') return otherFramework(kind, target);
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  // Every write changes the session, also when two land in the same millisecond.
  let counter = 0;
  const keyOf = (req: Request) => (typeof req.query['key'] === 'string' ? req.query['key'] : 'missing-key');

  if (kind === 'sealed' || kind === 'sealed-redis') {
    let backend;
    if (kind === 'sealed-redis') {
      const client = createClient({ url: target });
      client.on('error', (error: unknown) => console.error('redis client:', error));
      await client.connect();
      // Its own prefix: connect-redis's sessions in the same server are `sess:<sid>`.
      backend = redisBackend({ client, prefix: 'sealed:' });
    }
    const store = await openStore({ dir: target, keys: SEALED_KEY, ...(backend === undefined ? {} : { backend }) });
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
    // A cookie maxAge, as most apps set one: express-session then moves every unchanged
    // session's expiry on each request (store.touch), which each store handles its own way.
    app.use(session({ secret: EXPRESS_SESSION_SECRET, resave: false, saveUninitialized: false, store, cookie: { maxAge: 30 * 60 * 1000 } }));
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
