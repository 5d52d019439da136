import fs from 'node:fs/promises';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { isSealedSessionError, openStore, SealedSessionError, type Session, type Store } from '../src/index.js';
import { manualClock } from './helpers/clock.js';
import { faultyIo, type Errno, type FaultyIo } from './helpers/faulty-io.js';
import { KEY, listFiles, tempDir } from './helpers/temp-dir.js';

const TEMP_FILE = /^[0-9a-f]{2}\/[0-9a-f]{64}\.sess\.\d+$/;
const SESSION_FILE = /^[0-9a-f]{2}\/[0-9a-f]{64}\.sess$/;

interface Setup {
  readonly dir: string;
  readonly faults: FaultyIo;
  /** A store on the faulty io. */
  readonly store: Store;
  /** A second store on the real disk: what another process would see. */
  readonly observer: Store;
  readonly tamper: unknown[];
}

async function setup(t: ExecutionContext, options: { maxBytes?: number; now?: () => number } = {}): Promise<Setup> {
  const dir = await tempDir(t);
  const faults = faultyIo();
  const store = await openStore({ dir, keys: KEY, io: faults.io, ...options });
  const observer = await openStore({ dir, keys: KEY, ...options });
  const tamper: unknown[] = [];
  store.on('tamper', (event) => tamper.push(event));
  observer.on('tamper', (event) => tamper.push(event));
  return { dir, faults, store, observer, tamper };
}

async function stored(store: Store, data: Record<string, unknown>): Promise<Session> {
  const session = store.create();
  for (const [key, value] of Object.entries(data)) session.set(key, value);
  await session.save();
  return session;
}

/** Asserts an ERR_SESSION_STORE_IO whose cause carries `errno`, and whose message holds no id. */
function assertIoError(t: ExecutionContext, error: unknown, errno: Errno, id: string): void {
  t.true(error instanceof SealedSessionError);
  t.true(isSealedSessionError(error, 'ERR_SESSION_STORE_IO'));
  const cause = (error as Error).cause as NodeJS.ErrnoException | undefined;
  t.is(cause?.code, errno);
  t.false((error as Error).message.includes(id), 'the message contains the session id');
}

async function sessionFiles(dir: string): Promise<{ sessions: string[]; temps: string[]; other: string[] }> {
  const files = await listFiles(dir);
  const entries = await fs.readdir(dir, { recursive: true });
  return {
    sessions: files.filter((file) => SESSION_FILE.test(file)),
    temps: files.filter((file) => TEMP_FILE.test(file)),
    // Files of neither kind, and any folder that is not a session folder (a lock left behind).
    other: [...files.filter((file) => !SESSION_FILE.test(file) && !TEMP_FILE.test(file)), ...entries.filter((entry) => entry.endsWith('.lock'))],
  };
}

for (const point of ['write', 'rename'] as const) {
  for (const errno of ['ENOSPC', 'EIO'] as const) {
    test(`${errno} at ${point} during a commit: ERR_SESSION_STORE_IO, stored version intact, change kept for a later save`, async (t) => {
      const s = await setup(t);
      const original = await stored(s.store, { step: 1, keep: 'me' });
      const [file] = (await sessionFiles(s.dir)).sessions;
      const bytesBefore = await fs.readFile(path.join(s.dir, file!));

      const session = await s.store.load(original.id);
      if (session === null) return t.fail('not loaded');
      session.set('step', 2);
      session.delete('keep');
      s.faults.fail(point, errno);
      const error = await t.throwsAsync(session.save(), { code: 'ERR_SESSION_STORE_IO' });
      assertIoError(t, error, errno, original.id);
      t.is(s.faults.injected[point], 1);

      // The stored version is intact, byte for byte, and reads as before, in any process.
      t.true((await fs.readFile(path.join(s.dir, file!))).equals(bytesBefore));
      t.deepEqual((await s.observer.load(original.id))?.toJSON(), { step: 1, keep: 'me' });
      t.deepEqual((await s.store.load(original.id))?.toJSON(), { step: 1, keep: 'me' });
      // The change is still pending in the session.
      t.deepEqual(session.toJSON(), { step: 2 });
      const files = await sessionFiles(s.dir);
      t.deepEqual(files.sessions, [file!]);
      t.deepEqual(files.other, [], 'a lock or stray file was left');
      if (point === 'rename') {
        t.is(files.temps.length, 1, 'the rename fault leaves its complete temp file');
        t.deepEqual(
          files.temps.map((temp) => path.join(s.dir, temp)),
          [...s.faults.debris],
        );
      } else {
        t.deepEqual(files.temps, []);
      }

      // Fault gone: the next save stores the pending change.
      await session.save();
      t.deepEqual((await s.observer.load(original.id))?.toJSON(), { step: 2 });
      t.deepEqual(s.tamper, []);
    });
  }
}

test('rename debris is invisible to load() and removed by gc() once old', async (t) => {
  const s = await setup(t);
  const original = await stored(s.store, { v: 'stored' });
  const session = await s.store.load(original.id);
  session?.set('v', 'in the temp file');
  s.faults.fail('rename', 'EIO');
  await t.throwsAsync(session!.save(), { code: 'ERR_SESSION_STORE_IO' });
  const [temp] = s.faults.debris;
  if (temp === undefined) return t.fail('no debris');
  t.regex(path.relative(s.dir, temp), TEMP_FILE);
  t.true((await fs.stat(temp)).size > 68, 'the temp file holds a whole envelope');

  // load() reads the session file only, never the newer temp file.
  t.deepEqual((await s.observer.load(original.id))?.toJSON(), { v: 'stored' });

  // A fresh temp file may belong to a write in progress: gc leaves it.
  const fresh = await s.observer.gc();
  t.like(fresh, { scanned: 1, debris: 0, debrisRemoved: 0 });
  t.true((await fs.stat(temp)).isFile());

  // Ten minutes old: left by a dead writer.
  const past = new Date(Date.now() - 10 * 60 * 1000);
  await fs.utimes(temp, past, past);
  const dry = await s.observer.gc({ dryRun: true });
  t.like(dry, { debris: 1, debrisRemoved: 0 });
  t.true((await fs.stat(temp)).isFile(), 'a dry run removed debris');
  const report = await s.observer.gc();
  t.like(report, { scanned: 1, debris: 1, debrisRemoved: 1, expired: 0, removed: 0 });
  await t.throwsAsync(fs.stat(temp), { code: 'ENOENT' });
  t.deepEqual((await s.observer.load(original.id))?.toJSON(), { v: 'stored' });
  t.deepEqual((await sessionFiles(s.dir)).temps, []);
});

test('the first commit of a new session fails: nothing stored, the session stays new and saves later', async (t) => {
  const s = await setup(t);
  const session = s.store.create();
  session.set('cart', [1, 2, 3]);
  s.faults.fail('write', 'ENOSPC');
  const error = await t.throwsAsync(session.save(), { code: 'ERR_SESSION_STORE_IO' });
  assertIoError(t, error, 'ENOSPC', session.id);
  t.true(session.isNew);
  t.is(await s.observer.load(session.id), null);
  t.deepEqual((await sessionFiles(s.dir)).sessions, []);

  await session.save();
  t.false(session.isNew);
  t.deepEqual((await s.observer.load(session.id))?.toJSON(), { cart: [1, 2, 3] });
});

test('a fault on every call fails every save until cleared; the pending changes then merge with others', async (t) => {
  const s = await setup(t);
  const original = await stored(s.store, { a: 1 });
  const session = await s.store.load(original.id);
  if (session === null) return t.fail('not loaded');
  session.set('mine', 'pending');
  s.faults.fail('write', 'EIO', 'always');
  await t.throwsAsync(session.save(), { code: 'ERR_SESSION_STORE_IO' });
  session.set('more', 'also pending');
  await t.throwsAsync(session.save(), { code: 'ERR_SESSION_STORE_IO' });
  t.is(s.faults.injected['write'], 2);

  // Meanwhile another process changes another key.
  const other = await s.observer.load(original.id);
  other?.set('theirs', 'written');
  await other?.save();

  s.faults.clear();
  await session.save();
  t.deepEqual((await s.observer.load(original.id))?.toJSON(), { a: 1, theirs: 'written', mine: 'pending', more: 'also pending' });
});

test('EIO on read: load() rejects with ERR_SESSION_STORE_IO (not "no session"), no tamper event', async (t) => {
  const s = await setup(t);
  const original = await stored(s.store, { a: 1 });
  s.faults.fail('read', 'EIO');
  const error = await t.throwsAsync(s.store.load(original.id), { code: 'ERR_SESSION_STORE_IO' });
  assertIoError(t, error, 'EIO', original.id);
  t.deepEqual(s.tamper, []);
  t.deepEqual((await s.store.load(original.id))?.toJSON(), { a: 1 });

  s.faults.fail('read', 'EACCES');
  const denied = await t.throwsAsync(s.store.load(original.id), { code: 'ERR_SESSION_STORE_IO' });
  assertIoError(t, denied, 'EACCES', original.id);
});

test('EIO on read during a commit: rejects, nothing written, the change stays pending', async (t) => {
  const s = await setup(t);
  const original = await stored(s.store, { a: 1 });
  const session = await s.store.load(original.id);
  if (session === null) return t.fail('not loaded');
  session.set('a', 2);
  s.faults.fail('read', 'EIO');
  const error = await t.throwsAsync(session.save(), { code: 'ERR_SESSION_STORE_IO' });
  assertIoError(t, error, 'EIO', original.id);
  t.deepEqual((await s.observer.load(original.id))?.toJSON(), { a: 1 });
  await session.save();
  t.deepEqual((await s.observer.load(original.id))?.toJSON(), { a: 2 });
});

test('a lock that cannot be taken (ENOSPC) fails the commit with ERR_SESSION_STORE_IO, not a timeout', async (t) => {
  const s = await setup(t);
  const original = await stored(s.store, { a: 1 });
  original.set('a', 2);
  s.faults.fail('lock', 'ENOSPC');
  const error = await t.throwsAsync(original.save(), { code: 'ERR_SESSION_STORE_IO' });
  assertIoError(t, error, 'ENOSPC', original.id);
  t.deepEqual((await s.observer.load(original.id))?.toJSON(), { a: 1 });
  await original.save();
  t.deepEqual((await s.observer.load(original.id))?.toJSON(), { a: 2 });
});

test('destroy() with a failing unlink rejects and leaves the session readable', async (t) => {
  const s = await setup(t);
  const original = await stored(s.store, { a: 1 });
  s.faults.fail('unlink', 'EIO');
  const error = await t.throwsAsync(s.store.destroy(original.id), { code: 'ERR_SESSION_STORE_IO' });
  assertIoError(t, error, 'EIO', original.id);
  t.deepEqual((await s.observer.load(original.id))?.toJSON(), { a: 1 });
  t.true(await s.store.destroy(original.id));
  t.is(await s.observer.load(original.id), null);
});

test('a keep-alive that cannot be written does not fail load(): it is reported as a warning', async (t) => {
  const clock = manualClock();
  const s = await setup(t, { now: clock.now });
  const warnings: { message: string; error: unknown }[] = [];
  s.store.on('warning', (warning) => warnings.push(warning));
  const original = await stored(s.store, { a: 1 });
  clock.advance(120); // past the keep-alive interval (60 s by default)
  s.faults.fail('utimes', 'EIO');
  t.deepEqual((await s.store.load(original.id))?.toJSON(), { a: 1 });
  t.is(s.faults.injected['utimes'], 1, 'no keep-alive was attempted');
  t.is(warnings.length, 1);
  assertIoError(t, warnings[0]?.error, 'EIO', original.id);
});

test('openStore() rejects with ERR_SESSION_STORE_IO when the data dir cannot be created', async (t) => {
  const dir = await tempDir(t);
  const faults = faultyIo();
  faults.fail('mkdir', 'EACCES');
  const error = await t.throwsAsync(openStore({ dir, keys: KEY, io: faults.io }), { code: 'ERR_SESSION_STORE_IO' });
  t.is(((error as Error).cause as NodeJS.ErrnoException).code, 'EACCES');
});

// ---------------------------------------------------------------- size limit

test('maxBytes 1000: a commit over the limit is refused with ERR_SESSION_TOO_LARGE, the stored version intact', async (t) => {
  const s = await setup(t, { maxBytes: 1000 });
  const original = await stored(s.store, { a: 1 });
  const session = await s.store.load(original.id);
  if (session === null) return t.fail('not loaded');
  session.set('big', 'x'.repeat(2000));
  const error = await t.throwsAsync(session.save(), { code: 'ERR_SESSION_TOO_LARGE' });
  t.true(isSealedSessionError(error, 'ERR_SESSION_TOO_LARGE'));
  t.false(error?.message.includes(original.id));
  t.deepEqual((await s.observer.load(original.id))?.toJSON(), { a: 1 });
  t.deepEqual((await sessionFiles(s.dir)).temps, []);

  // Still pending, so still refused; dropping the big value lets the rest through.
  t.is(String(session.get('big')).length, 2000);
  await t.throwsAsync(session.save(), { code: 'ERR_SESSION_TOO_LARGE' });
  session.delete('big');
  session.set('b', 2);
  await session.save();
  t.deepEqual((await s.observer.load(original.id))?.toJSON(), { a: 1, b: 2 });
});

test('maxBytes 1000 counts UTF-8 bytes of the JSON: exactly 1000 is stored and reads back, 1001 is refused', async (t) => {
  const s = await setup(t, { maxBytes: 1000 });
  // {"k":"…"} is 8 bytes around the value.
  const exact = await stored(s.store, { k: 'x'.repeat(992) });
  t.is((await s.observer.load(exact.id))?.get('k'), 'x'.repeat(992));

  const over = s.store.create();
  over.set('k', 'x'.repeat(993));
  await t.throwsAsync(over.save(), { code: 'ERR_SESSION_TOO_LARGE' });
  t.is(await s.observer.load(over.id), null);

  // é is 2 bytes: 496 of them make 1000 bytes of JSON, 497 make 1002.
  const wide = await stored(s.store, { k: 'é'.repeat(496) });
  t.is((await s.observer.load(wide.id))?.get('k'), 'é'.repeat(496));
  wide.set('k', 'é'.repeat(497));
  await t.throwsAsync(wide.save(), { code: 'ERR_SESSION_TOO_LARGE' });
  t.is((await s.observer.load(wide.id))?.get('k'), 'é'.repeat(496));
  t.deepEqual(s.tamper, []);
});
