// One server under load for bench/http.ts: `node --import=tsx/esm bench/http-server.ts <sealed|memory> <dir>`.
// Prints `listening <port>`. Routes: POST /seed (makes a session), GET /read (reads it), POST /write (changes it).
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import express from 'express';
import session from 'express-session';
import { SealedStore } from '../src/express-session.js';
import { openStore, sessions } from '../src/index.js';

const [kind, dir] = process.argv.slice(2);
const app = express();
app.disable('x-powered-by');

if (kind === 'sealed') {
  const store = await openStore({ dir: dir!, keys: 'bench-key-0123456789abcdef-0123456789abcdef' });
  app.use(sessions({ store }));
  app.post('/seed', async (req, res) => {
    const s = await req.trans.getSession();
    s.set('user', 'alice');
    s.set('profile', { name: 'Alice', roles: ['reader'], visits: 0 });
    res.send('ok');
  });
  app.get('/read', async (req, res) => {
    const s = await req.trans.getSession(false);
    res.send(s === null ? 'none' : String(s.get('user')));
  });
  app.post('/write', async (req, res) => {
    const s = await req.trans.getSession();
    s.set('n', Date.now());
    res.send('ok');
  });
} else if (kind === 'memory' || kind === 'sealed-store' || kind === 'file-store') {
  // session-file-store is CommonJS without types.
  type StoreClass = new (options: Record<string, unknown>) => session.Store;
  const FileStore = (createRequire(import.meta.url)('session-file-store') as (s: typeof session) => StoreClass)(session);
  const store =
    kind === 'memory'
      ? new session.MemoryStore()
      : kind === 'sealed-store'
        ? new SealedStore({ dir: dir!, keys: 'bench-key-0123456789abcdef-0123456789abcdef' })
        : new FileStore({ path: dir!, logFn: () => undefined });
  app.use(session({ secret: 'bench-secret', resave: false, saveUninitialized: false, store }));
  app.post('/seed', (req, res) => {
    const data = req.session as unknown as Record<string, unknown>;
    data['user'] = 'alice';
    data['profile'] = { name: 'Alice', roles: ['reader'], visits: 0 };
    res.send('ok');
  });
  app.get('/read', (req, res) => {
    res.send(String((req.session as unknown as Record<string, unknown>)['user'] ?? 'none'));
  });
  app.post('/write', (req, res) => {
    (req.session as unknown as Record<string, unknown>)['n'] = Date.now();
    res.send('ok');
  });
} else {
  throw new Error(`unknown store kind ${kind}`);
}

const server = app.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening ${(server.address() as AddressInfo).port}\n`);
});
