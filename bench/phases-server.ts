// The native write scenario's server for bench/phases.ts, timed phase by phase:
// `node --import=tsx/esm bench/phases-server.ts <checkout> <dir>`. Every call through the disk seam
// is timed as the request sees it (waiting for a thread of the pool, then running), and so are the
// request's own phases. GET /phases hands the totals over (and resets them). Prints `listening <port>`.
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import express from 'express';
import type { Io, openStore as OpenStore, sessions as Sessions } from '../src/index.js';

const [checkout, dir] = process.argv.slice(2);
if (checkout === undefined || dir === undefined) {
  console.error('usage: phases-server.ts <checkout> <dir>');
  process.exit(2);
}
const from = (file: string) => import(pathToFileURL(path.join(checkout, file)).href);
const { openStore, sessions } = (await from('src/index.ts')) as { openStore: typeof OpenStore; sessions: typeof Sessions };
const { defaultIo } = (await from('src/backends/file/io.ts')) as { defaultIo: Io };

/** Total ms and count per phase. */
const totals = new Map<string, { ms: number; count: number }>();
const note = (phase: string, ms: number) => {
  const total = totals.get(phase) ?? { ms: 0, count: 0 };
  total.ms += ms;
  total.count++;
  totals.set(phase, total);
};
const time =
  <A extends unknown[], R>(phase: string, fn: (...args: A) => Promise<R>) =>
  async (...args: A): Promise<R> => {
    const started = performance.now();
    try {
      return await fn(...args);
    } finally {
      note(phase, performance.now() - started);
    }
  };

const io: Io = {
  ...defaultIo,
  stat: time('stat (read cache check; after a write)', defaultIo.stat),
  readLatest: time('read the latest version (under the lock)', defaultIo.readLatest),
  writeFileAtomic: time('atomic write (temp, write, sync, rename)', defaultIo.writeFileAtomic),
  lock: async (file, request) => {
    const release = await time('lock (mkdir, stat)', defaultIo.lock)(file, request);
    return time('unlock (rmdir)', release);
  },
};

const store = await openStore({ dir, keys: 'bench-phases-key-0123456789-abcdefghijklmn', io });
const app = express();
app.disable('x-powered-by');
app.disable('etag');
app.get('/phases', (_req, res) => {
  res.json(Object.fromEntries(totals));
  totals.clear();
});
app.use((_req, res, next) => {
  const arrived = performance.now();
  res.on('finish', () => note('request (arrival to the last byte handed to the socket)', performance.now() - arrived));
  next();
});
app.use(sessions({ store }));
let counter = 0;
app.post('/seed', async (req, res) => {
  const session = await req.trans.getSession();
  session.set('user', 'alice');
  session.set('profile', { name: 'Alice', roles: ['reader'], visits: 0 });
  res.send('ok');
});
app.post('/write', async (req, res) => {
  const started = performance.now();
  const session = await req.trans.getSession();
  note('load the session (getSession)', performance.now() - started);
  session.set('n', ++counter);
  const ending = performance.now();
  res.on('finish', () => note('commit, from res.end to the response (queue, lock, read, merge, seal, write, unlock)', performance.now() - ending));
  res.send('ok');
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
const server = app.listen(0, '127.0.0.1', () => process.stdout.write(`listening ${(server.address() as AddressInfo).port}\n`));
