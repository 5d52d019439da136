import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { defaultIo, type Io } from '../../../src/backends/file/io.js';
import { signId } from '../../../src/http/cookie.js';
import { openStore, sessions, type RequestWithTransaction, type Store } from '../../../src/index.js';
import { verifyStore } from '../../../src/ops/verify.js';
import { cli } from '../../helpers/cli.js';
import { listen } from '../../helpers/http.js';
import { exists, KEY, sessionFileOf, tempDir } from '../../helpers/temp-dir.js';

/*
 * What a local user with write access to the data dir can put in a session file's or a lock's
 * place, and what the store makes of it: no session (reported), never a hang, a 500, a followed
 * symlink or a lock that is never taken over.
 */

const run = promisify(execFile);

/** A store and sessions saved in it, with the cookie values that name them. */
async function withSessions(dir: string, count: number, io: Io = defaultIo): Promise<{ store: Store; ids: string[]; cookies: string[] }> {
  const store = await openStore({ dir, keys: KEY, io, lockStale: 2, lockWait: 3 });
  const ids: string[] = [];
  for (let index = 0; index < count; index++) {
    const session = store.create();
    session.set('n', index);
    await session.save();
    ids.push(session.id);
  }
  return { store, ids, cookies: ids.map((id) => `sid=${signId(id, store.signingSecrets[0]!)}`) };
}

/** A real HTTP server answering "session <n>" or "none" for `getSession(false)`. */
async function server(t: Parameters<typeof listen>[0], store: Store): Promise<string> {
  const middleware = sessions({ store });
  return listen(t, (req, res) => {
    middleware(req, res, () => {
      (req as RequestWithTransaction).trans.getSession(false).then(
        (session) => res.end(session === null ? 'none' : `session ${String(session.get('n'))}`),
        (error: unknown) => {
          res.statusCode = 500;
          res.end(String((error as { code?: string }).code));
        },
      );
    });
  });
}

test('FIFOs in place of session files: no request hangs (nor any other user’s), each is "no session" and reported', async (t) => {
  const dir = await tempDir(t);
  const { store, ids, cookies } = await withSessions(dir, 5);
  const reasons: string[] = [];
  store.on('tamper', ({ reason }) => reasons.push(reason));
  for (const id of ids.slice(0, 4)) {
    await fs.rm(sessionFileOf(dir, id));
    await run('mkfifo', ['-m', '600', sessionFileOf(dir, id)]);
  }
  const url = await server(t, store);
  // libuv has 4 threads: four blocked opens would stall the fifth request, and every other one.
  const answers = await Promise.all(
    [...cookies, undefined].map(async (cookie) => {
      const response = await fetch(url, { headers: cookie === undefined ? {} : { cookie }, signal: AbortSignal.timeout(5000) });
      return `${response.status} ${await response.text()}`;
    }),
  );
  t.deepEqual(answers, ['200 none', '200 none', '200 none', '200 none', '200 session 4', '200 none']);
  t.deepEqual(reasons, ['unreadable', 'unreadable', 'unreadable', 'unreadable']);
});

test('a symlink to /dev/zero in place of a session file is never followed: no session, no read beyond a normal one', async (t) => {
  const dir = await tempDir(t);
  let bytesRead = 0;
  const io: Io = {
    ...defaultIo,
    readFile: async (file, limit) => {
      const snapshot = await defaultIo.readFile(file, limit);
      bytesRead += snapshot.data.length;
      return snapshot;
    },
    readLatest: async (file, limit) => {
      const data = await defaultIo.readLatest(file, limit);
      bytesRead += data.length;
      return data;
    },
  };
  const { store, ids, cookies } = await withSessions(dir, 1, io);
  await fs.rm(sessionFileOf(dir, ids[0]!));
  await fs.symlink('/dev/zero', sessionFileOf(dir, ids[0]!));
  const url = await server(t, store);
  bytesRead = 0;
  const response = await fetch(url, { headers: { cookie: cookies[0]! }, signal: AbortSignal.timeout(5000) });
  t.is(await response.text(), 'none');
  t.is(bytesRead, 0);
  t.is(await store.load(ids[0]!), null);
});

test('a directory in place of a session file is "no session", not a 500', async (t) => {
  const dir = await tempDir(t);
  const { store, ids, cookies } = await withSessions(dir, 1);
  await fs.rm(sessionFileOf(dir, ids[0]!));
  await fs.mkdir(sessionFileOf(dir, ids[0]!));
  const url = await server(t, store);
  const response = await fetch(url, { headers: { cookie: cookies[0]! } });
  t.is(`${response.status} ${await response.text()}`, '200 none');
});

test('a keep-alive never moves the times of what a symlink in a session file’s place points to', async (t) => {
  const dir = await tempDir(t);
  const { store, ids } = await withSessions(dir, 1);
  const outside = path.join(path.dirname(dir), 'outside.txt');
  await fs.writeFile(outside, 'not ours');
  const old = new Date('2001-01-01T00:00:00Z');
  await fs.utimes(outside, old, old);
  await fs.rm(sessionFileOf(dir, ids[0]!));
  await fs.symlink(outside, sessionFileOf(dir, ids[0]!));
  await store.backend.keepAlive(path.basename(sessionFileOf(dir, ids[0]!), '.sess'), Date.now(), Date.now() + 60_000);
  t.is((await fs.stat(outside)).mtimeMs, old.getTime());
});

test('stats, gc, verify and the CLI count FIFOs, symlinks and folders in sessions’ places as unreadable, not as nothing', async (t) => {
  const dir = await tempDir(t);
  const { store, ids } = await withSessions(dir, 5);
  await fs.rm(sessionFileOf(dir, ids[0]!));
  await run('mkfifo', ['-m', '600', sessionFileOf(dir, ids[0]!)]);
  await fs.rm(sessionFileOf(dir, ids[1]!));
  await fs.symlink('/dev/zero', sessionFileOf(dir, ids[1]!));
  await fs.rm(sessionFileOf(dir, ids[2]!));
  await fs.mkdir(sessionFileOf(dir, ids[2]!));
  await fs.rm(sessionFileOf(dir, ids[3]!));
  await run('mkfifo', ['-m', '600', sessionFileOf(dir, ids[3]!)]);

  const stats = await store.stats();
  t.is(stats.unreadable, 4);
  t.is(stats.live, 1);
  t.is((await store.gc()).unreadable, 4);
  const report = await verifyStore(store);
  t.is(report.problems.unreadable, 4);
  const verify = await cli(['verify', '--dir', dir, '--json'], { SESSION_KEYS: KEY });
  t.is(verify.code, 1);
  t.is((JSON.parse(verify.stdout) as { problems: { unreadable: number } }).problems.unreadable, 4);
  const repaired = await cli(['verify', '--dir', dir, '--repair'], { SESSION_KEYS: KEY });
  t.is(repaired.code, 1, repaired.stderr);
  t.is((await store.stats()).unreadable, 0);
  t.is((await store.stats()).live, 1);
});

for (const [label, plant] of [
  [
    'a lock folder dated in the year 2100',
    async (lock: string) => {
      await fs.mkdir(lock);
      const future = new Date('2100-01-01T00:00:00Z');
      await fs.utimes(lock, future, future);
    },
  ],
  ['a plain file where the lock folder goes', (lock: string) => fs.writeFile(lock, 'planted')],
  [
    'a symlink to a folder dated in the future',
    async (lock: string) => {
      const target = `${path.dirname(path.dirname(path.dirname(lock)))}/target-dir`;
      await fs.mkdir(target, { recursive: true });
      const future = new Date('2100-01-01T00:00:00Z');
      await fs.utimes(target, future, future);
      await fs.symlink(target, lock);
    },
  ],
  [
    'a stale lock folder that is not empty',
    async (lock: string) => {
      await fs.mkdir(lock);
      await fs.writeFile(path.join(lock, 'junk'), 'x');
      const past = new Date('2001-01-01T00:00:00Z');
      await fs.utimes(lock, past, past);
    },
  ],
] as const) {
  test(`${label} does not wedge the session: the next commit takes it over, and destroy (logout) works`, async (t) => {
    const dir = await tempDir(t);
    const { store, ids } = await withSessions(dir, 2);
    for (const id of ids) await plant(`${sessionFileOf(dir, id)}.lock`);
    const beside = await fs.readdir(path.dirname(dir));
    const session = (await store.load(ids[0]!))!;
    session.set('after', true);
    t.is(await store.commit(session), 'written');
    t.true((await store.load(ids[0]!))?.get('after'));
    t.true(await store.destroy(ids[1]!));
    t.false(await exists(sessionFileOf(dir, ids[1]!)));
    t.deepEqual(await fs.readdir(path.dirname(dir)), beside, 'nothing outside the data dir was touched');
  });
}

test('gc and verify report planted locks (dated ahead, or not a folder) as stale, and clear them', async (t) => {
  const dir = await tempDir(t);
  const { store, ids } = await withSessions(dir, 3);
  const future = new Date('2100-01-01T00:00:00Z');
  await fs.mkdir(`${sessionFileOf(dir, ids[0]!)}.lock`);
  await fs.utimes(`${sessionFileOf(dir, ids[0]!)}.lock`, future, future);
  await fs.writeFile(`${sessionFileOf(dir, ids[1]!)}.lock`, 'planted');
  const report = await verifyStore(store);
  t.is(report.problems['stale-lock'], 2);
  const gc = await store.gc();
  t.is(gc.debris, 2);
  t.is(gc.debrisRemoved, 2);
  t.false(await exists(`${sessionFileOf(dir, ids[0]!)}.lock`));
  t.false(await exists(`${sessionFileOf(dir, ids[1]!)}.lock`));

  await fs.writeFile(`${sessionFileOf(dir, ids[2]!)}.lock`, 'planted again');
  const repaired = await verifyStore(store, { repair: true });
  t.deepEqual(
    repaired.findings.map(({ problem, action }) => [problem, action]),
    [['stale-lock', 'removed']],
  );
  t.false(await exists(`${sessionFileOf(dir, ids[2]!)}.lock`));
});
