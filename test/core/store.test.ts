import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import lockfile from 'proper-lockfile';
import { defaultIo, type Io } from '../../src/backends/file/io.js';
import { openStore, type GcReport } from '../../src/index.js';
import { manualClock } from '../helpers/clock.js';
import { runSnippet } from '../helpers/node-snippet.js';
import { faultyIo } from '../helpers/faulty-io.js';
import { KEY, listFiles, sessionFileOf, tempDir } from '../helpers/temp-dir.js';

const run = promisify(execFile);

/** An io that counts atomic writes: a rewrite is what a user pays for in disk time. */
function countingIo(): { io: Io; writes: () => number } {
  let writes = 0;
  return {
    io: {
      ...defaultIo,
      writeFileAtomic: (file, data) => {
        writes++;
        return defaultIo.writeFileAtomic(file, data);
      },
    },
    writes: () => writes,
  };
}

test('a value set and saved is there on the next load, in this process and in another', async (t) => {
  const dir = await tempDir(t);
  const store = await openStore({ dir, keys: KEY });
  const session = store.create();
  session.set('user', 'alice').set('roles', ['admin']);
  await session.save();
  t.false(session.isNew);

  const again = await store.load(session.id);
  t.deepEqual(again?.toJSON(), { user: 'alice', roles: ['admin'] });

  const script = `
    import { openStore } from './src/index.ts';
    const store = await openStore({ dir: process.argv[1], keys: process.argv[2] });
    const s = await store.load(process.argv[3]);
    s.set('from', 'child');
    await s.save();
    process.stdout.write(JSON.stringify(s.toJSON()));`;
  const { stdout } = await run(process.execPath, ['--import=tsx/esm', '--input-type=module', '-e', script, dir, KEY, session.id], {
    cwd: path.resolve(import.meta.dirname, '../..'),
  });
  t.deepEqual(JSON.parse(stdout), { user: 'alice', roles: ['admin'], from: 'child' });
  t.is((await store.load(session.id))?.get('from'), 'child');
});

test('a new session is stored at its first commit even when empty', async (t) => {
  const dir = await tempDir(t);
  const store = await openStore({ dir, keys: KEY });
  const session = store.create();
  t.deepEqual(await listFiles(dir), []);
  t.is(await store.commit(session), 'written');
  t.is((await listFiles(dir)).length, 1);
  t.not(await store.load(session.id), null);
});

test('unknown, malformed and hostile ids are "no session" and create nothing', async (t) => {
  const dir = await tempDir(t);
  const store = await openStore({ dir, keys: KEY });
  for (const id of ['', 'x', 'A'.repeat(43), '../../etc/passwd', 'A'.repeat(42) + '\0', '%2e%2e%2f', 'é'.repeat(43), 'A'.repeat(8192)]) {
    t.is(await store.load(id), null);
    t.false(await store.destroy(id));
  }
  t.deepEqual(await listFiles(dir), []);
});

test('nothing changed → nothing written; a change → one write', async (t) => {
  const dir = await tempDir(t);
  const counter = countingIo();
  const store = await openStore({ dir, keys: KEY, io: counter.io });
  const session = store.create();
  session.set('a', 1);
  await session.save();
  t.is(counter.writes(), 1);

  const loaded = (await store.load(session.id))!;
  t.is(await store.commit(loaded), 'unchanged');
  loaded.set('a', 1); // same value: the merged result equals what is stored
  t.is(await store.commit(loaded), 'unchanged');
  loaded.delete('absent');
  t.is(await store.commit(loaded), 'unchanged');
  t.is(counter.writes(), 1);

  loaded.set('a', 2);
  t.is(await store.commit(loaded), 'written');
  t.is(counter.writes(), 2);
});

test('commits queued on one session in one process are coalesced into fewer writes, none lost', async (t) => {
  const dir = await tempDir(t);
  const counter = countingIo();
  const store = await openStore({ dir, keys: KEY, io: counter.io });
  const session = store.create();
  await session.save();
  const copies = await Promise.all(Array.from({ length: 50 }, () => store.load(session.id)));
  await Promise.all(copies.map((copy, index) => copy!.set(`k${index}`, index).save()));
  const final = (await store.load(session.id))!;
  t.deepEqual([...final.keys()].sort(), Array.from({ length: 50 }, (_, index) => `k${index}`).sort());
  // 1 create + at most a handful of batches, far fewer than 50.
  t.true(counter.writes() <= 6, `${counter.writes()} writes for 50 commits`);
  t.is(final.get('k49'), 49);
});

test('idle timeout: a session unused for idleTimeout seconds is gone on read, even with no gc', async (t) => {
  const dir = await tempDir(t);
  const clock = manualClock();
  const store = await openStore({ dir, keys: KEY, now: clock.now, idleTimeout: 60, touchInterval: 10 });
  const session = store.create();
  await session.save();
  clock.advance(59);
  t.not(await store.load(session.id), null);
  // That load kept it alive: another 59 s is fine.
  clock.advance(59);
  t.not(await store.load(session.id), null);
  clock.advance(60);
  t.is(await store.load(session.id), null);
});

test('absolute timeout holds however much the session is used', async (t) => {
  const dir = await tempDir(t);
  const clock = manualClock();
  const store = await openStore({ dir, keys: KEY, now: clock.now, idleTimeout: 60, absoluteTimeout: 150, touchInterval: 1 });
  const session = store.create();
  await session.save();
  for (let elapsed = 30; elapsed <= 120; elapsed += 30) {
    clock.advance(30);
    const loaded = await store.load(session.id);
    t.not(loaded, null);
    loaded!.set('t', elapsed);
    await loaded!.save();
  }
  clock.advance(29);
  t.not(await store.load(session.id), null, 'at 149 s it is still there');
  clock.advance(1);
  t.is(await store.load(session.id), null);
});

test('keeping a session alive never rewrites its file, and marks use at most once per touchInterval', async (t) => {
  const dir = await tempDir(t);
  const clock = manualClock();
  const counter = countingIo();
  const store = await openStore({ dir, keys: KEY, now: clock.now, idleTimeout: 600, touchInterval: 60, io: counter.io });
  const session = store.create();
  session.set('v', 'x'.repeat(100));
  await session.save();
  const [file] = await listFiles(dir);
  const filePath = path.join(dir, file!);
  const bytes = await fs.readFile(filePath);
  const firstMtime = (await fs.stat(filePath)).mtimeMs;

  clock.advance(30);
  await store.load(session.id);
  t.is((await fs.stat(filePath)).mtimeMs, firstMtime, 'no mark within the interval');

  clock.advance(40);
  await store.load(session.id);
  t.is(Math.round((await fs.stat(filePath)).mtimeMs), Math.round(clock.now()), 'marked as used');
  t.deepEqual(await fs.readFile(filePath), bytes, 'same bytes: not rewritten');
  t.is(counter.writes(), 1);
});

test('a keep-alive mark keeps the read cache valid: the next read is one stat, not a whole read — unless the file changed under it', async (t) => {
  const dir = await tempDir(t);
  const clock = manualClock();
  let wholeReads = 0;
  const io: Io = {
    ...defaultIo,
    readFile: (file, limit) => {
      wholeReads++;
      return defaultIo.readFile(file, limit);
    },
  };
  const store = await openStore({ dir, keys: KEY, now: clock.now, idleTimeout: 600, touchInterval: 60, io });
  const session = store.create();
  session.set('v', 1);
  await session.save();
  for (let round = 0; round < 3; round++) {
    clock.advance(61);
    t.is((await store.load(session.id))?.get('v'), 1, 'marked as used');
    t.is((await store.load(session.id))?.get('v'), 1);
  }
  t.is(wholeReads, 0, 'every read after the write and after each mark was served from the cache');

  // Another process rewrites it; the mark of a version the cache does not hold claims nothing.
  const other = await openStore({ dir, keys: KEY, now: clock.now, idleTimeout: 600, touchInterval: 60 });
  const copy = (await other.load(session.id))!;
  copy.set('v', 2);
  await copy.save();
  const file = sessionFileOf(dir, session.id);
  const version = (await defaultIo.stat(file)).version;
  t.is(await defaultIo.mark(file, clock.now(), 'not-the-version'), undefined);
  const after = await defaultIo.mark(file, clock.now() + 1000, (await defaultIo.stat(file)).version);
  t.not(after, undefined);
  t.not(after, version);
  t.is((await store.load(session.id))?.get('v'), 2, 'the change is seen');
});

test('a commit never brings back a session that expired meanwhile', async (t) => {
  const dir = await tempDir(t);
  const clock = manualClock();
  const store = await openStore({ dir, keys: KEY, now: clock.now, idleTimeout: 60 });
  const session = store.create();
  await session.save();
  const loaded = (await store.load(session.id))!;
  clock.advance(61);
  loaded.set('late', true);
  t.is(await store.commit(loaded), 'gone');
  t.true(loaded.isGone);
  t.is(await store.load(session.id), null);
});

test('a session kept alive by reads alone takes a commit long after its last write', async (t) => {
  const dir = await tempDir(t);
  const clock = manualClock();
  const store = await openStore({ dir, keys: KEY, now: clock.now, idleTimeout: 100, touchInterval: 10 });
  const session = store.create();
  session.set('a', 1);
  await session.save();
  // Read every 60 s: each read marks the file as used, none rewrites it.
  for (let step = 0; step < 4; step++) {
    clock.advance(60);
    t.not(await store.load(session.id), null);
  }
  // 240 s after its last write, 60 s after its last use: alive, and a change is stored.
  const loaded = (await store.load(session.id))!;
  loaded.set('b', 2);
  t.is(await store.commit(loaded), 'written');
  t.deepEqual([...(await store.load(session.id))!.entries()].sort(), [
    ['a', 1],
    ['b', 2],
  ]);
});

test('the first commit of a session made here takes no lock and reads nothing; a retry after a failed write does both', async (t) => {
  const dir = await tempDir(t);
  const faults = faultyIo();
  const calls = { lock: 0, readLatest: 0 };
  const io: Io = {
    ...faults.io,
    lock: (file, request) => {
      calls.lock++;
      return faults.io.lock(file, request);
    },
    readLatest: (file, limit) => {
      calls.readLatest++;
      return faults.io.readLatest(file, limit);
    },
  };
  const store = await openStore({ dir, keys: KEY, io });
  // Its id is 256 random bits made by this store: no file of that name, no one else who knows it.
  const fresh = store.create();
  fresh.set('a', 1);
  t.is(await store.commit(fresh), 'written');
  t.deepEqual(calls, { lock: 0, readLatest: 0 });
  fresh.set('b', 2);
  await store.commit(fresh);
  t.deepEqual(calls, { lock: 1, readLatest: 1 });

  // A first write that failed may have landed (a full disk at the rename, say): the retry locks and reads.
  const unlucky = store.create();
  unlucky.set('c', 3);
  faults.fail('write', 'ENOSPC');
  await t.throwsAsync(store.commit(unlucky), { code: 'ERR_SESSION_STORE_IO' });
  t.is(await store.commit(unlucky), 'written');
  t.deepEqual(calls, { lock: 2, readLatest: 2 });
  t.deepEqual([...(await store.load(unlucky.id))!.entries()], [['c', 3]]);
});

test('destroy removes the file at once; a later commit of a copy does not recreate it', async (t) => {
  const dir = await tempDir(t);
  const store = await openStore({ dir, keys: KEY });
  const session = store.create();
  session.set('a', 1);
  await session.save();
  const copy = (await store.load(session.id))!;
  t.true(await store.destroy(session.id));
  t.deepEqual(await listFiles(dir), []);
  t.is(await store.load(session.id), null);
  copy.set('b', 2);
  t.is(await store.commit(copy), 'gone');
  t.deepEqual(await listFiles(dir), []);
  t.false(await store.destroy(session.id));
});

test('gc removes exactly the expired sessions, reports them, and a dry run removes nothing', async (t) => {
  const dir = await tempDir(t);
  const clock = manualClock();
  const shortLived = await openStore({ dir, keys: KEY, now: clock.now, idleTimeout: 60 });
  const longLived = await openStore({ dir, keys: KEY, now: clock.now, idleTimeout: 3600 });
  const doomed = await Promise.all(
    Array.from({ length: 7 }, async () => {
      const s = shortLived.create();
      await s.save();
      return s.id;
    }),
  );
  const kept = await Promise.all(
    Array.from({ length: 5 }, async () => {
      const s = longLived.create();
      await s.save();
      return s.id;
    }),
  );
  clock.advance(120);

  const events: GcReport[] = [];
  longLived.on('gc', (report) => events.push(report));
  const dry = await longLived.gc({ dryRun: true });
  t.like(dry, { scanned: 12, expired: 7, removed: 0 });
  t.is((await listFiles(dir)).length, 12);

  const report = await longLived.gc();
  t.like(report, { scanned: 12, expired: 7, removed: 7, unreadable: 0 });
  t.is(events.length, 2);
  t.is((await listFiles(dir)).length, 5);
  for (const id of kept) t.not(await longLived.load(id), null);
  for (const id of doomed) t.is(await longLived.load(id), null);
});

test('destroyWhere ends exactly the sessions whose data matches', async (t) => {
  const dir = await tempDir(t);
  const store = await openStore({ dir, keys: KEY });
  const ids: Record<string, string[]> = { alice: [], bob: [] };
  for (const user of ['alice', 'bob', 'alice', 'bob', 'alice']) {
    const s = store.create();
    s.set('user', user);
    await s.save();
    ids[user]!.push(s.id);
  }
  t.is(await store.destroyWhere((data) => data.get('user') === 'alice'), 3);
  for (const id of ids['alice']!) t.is(await store.load(id), null);
  for (const id of ids['bob']!) t.is((await store.load(id))?.get('user'), 'bob');
});

test('options are checked up front with ERR_SESSION_OPTION', async (t) => {
  const dir = await tempDir(t);
  for (const bad of [{ idleTimeout: 0 }, { idleTimeout: 1.5 }, { absoluteTimeout: -1 }, { maxBytes: Number.NaN }, { lockStale: 1 }, { dir: '' }]) {
    await t.throwsAsync(openStore({ dir, keys: KEY, ...bad }), { instanceOf: TypeError, code: 'ERR_SESSION_OPTION' } as never);
  }
});

test('the data dir is created 0700, and opening reads no session', async (t) => {
  const dir = await tempDir(t);
  const store = await openStore({ dir, keys: KEY });
  t.is((await fs.stat(dir)).mode & 0o777, 0o700);
  t.is(store.dir, dir);
});

test('gc clears a stale lock by taking it over, and leaves a live lock and a fresh temp file alone', async (t) => {
  const dir = await tempDir(t);
  const store = await openStore({ dir, keys: KEY, lockStale: 2 });
  const stale = store.create();
  const live = store.create();
  await Promise.all([stale.save(), live.save()]);
  const pathOf = (id: string) => {
    const name = createHash('sha256').update('sealed-sessions/v1/name\0').update(id).digest('hex');
    return path.join(dir, name.slice(0, 2), `${name}.sess`);
  };
  // A lock its holder stopped refreshing a minute ago (a killed process), and one held right now.
  await fs.mkdir(`${pathOf(stale.id)}.lock`);
  const past = new Date(Date.now() - 60_000);
  await fs.utimes(`${pathOf(stale.id)}.lock`, past, past);
  const release = await lockfile.lock(pathOf(live.id), { realpath: false, stale: 2000 });
  t.teardown(() => release().catch(() => undefined));
  await fs.writeFile(`${pathOf(live.id)}.123456`, 'a write in progress');

  const report = await store.gc();
  t.like(report, { debris: 1, debrisRemoved: 1, expired: 0 });
  await t.throwsAsync(fs.stat(`${pathOf(stale.id)}.lock`), { code: 'ENOENT' });
  t.true((await fs.stat(`${pathOf(live.id)}.lock`)).isDirectory(), 'the live lock is kept');
  t.true((await fs.stat(`${pathOf(live.id)}.123456`)).isFile(), 'the fresh temp file is kept');
  // The session behind the cleared lock commits at once.
  stale.set('after', 'gc');
  t.is(await store.commit(stale), 'written');
});

test('stats counts what is on disk from headers alone: live, expired, bytes, debris, key ids, time left', async (t) => {
  const dir = await tempDir(t);
  const clock = manualClock();
  const store = await openStore({ dir, keys: KEY, now: clock.now, idleTimeout: 600 });
  const shortLived = await openStore({ dir, keys: KEY, now: clock.now, idleTimeout: 60 });
  for (let index = 0; index < 3; index++) {
    const s = store.create();
    s.set('n', index);
    await s.save();
  }
  const doomed = shortLived.create();
  await doomed.save();
  const [first] = await listFiles(dir);
  await fs.writeFile(path.join(dir, `${first!}.987654`), 'temp file of a killed writer');
  clock.advance(120);

  const stats = await store.stats();
  t.like(stats, { sessions: 4, live: 3, expired: 1, unreadable: 0, debris: 1 });
  const onDisk = await Promise.all(
    (await listFiles(dir)).filter((file) => file.endsWith('.sess')).map(async (file) => (await fs.stat(path.join(dir, file))).size),
  );
  t.is(
    stats.bytes,
    onDisk.reduce((sum, size) => sum + size, 0),
  );
  t.deepEqual(Object.values(stats.byKeyId), [4]);
  // Idle 600 s, 120 s gone: each live session has 480 s left.
  t.deepEqual(
    stats.expiresIn.filter((bucket) => bucket.sessions > 0).map((bucket) => [bucket.label, bucket.sessions]),
    [['< 15 min', 3]],
  );
  t.true(stats.oldestCreated! <= stats.newestCreated!);
});

test('gc over expired sessions that each sit beside a stale lock: all removed, locks cleared, no error', async (t) => {
  const dir = await tempDir(t);
  const clock = manualClock();
  const store = await openStore({ dir, keys: KEY, now: clock.now, idleTimeout: 60, lockStale: 2 });
  const past = new Date(Date.now() - 60_000);
  for (let index = 0; index < 40; index++) {
    const session = store.create();
    await session.save();
    const name = createHash('sha256').update('sealed-sessions/v1/name\0').update(session.id).digest('hex');
    const lock = path.join(dir, name.slice(0, 2), `${name}.sess.lock`);
    await fs.mkdir(lock);
    await fs.utimes(lock, past, past);
  }
  clock.advance(120);
  const warnings: unknown[] = [];
  store.on('warning', (warning) => warnings.push(warning));
  const report = await store.gc();
  t.like(report, { scanned: 40, expired: 40, removed: 40, errors: 0 });
  t.deepEqual(warnings, []);
  const left = await fs.readdir(dir, { recursive: true });
  t.deepEqual(
    left.filter((entry) => entry.includes('.sess')),
    [],
    'no session file and no lock folder left',
  );
});

test('the read cache is bounded in bytes too: 150 sessions of about 1 MiB each do not stay in memory', async (t) => {
  const dir = await tempDir(t);
  // In a process of its own, with its heap measured after a full collection.
  const { code, stdout, stderr } = await runSnippet(
    `
    const v8 = await import('node:v8');
    const vm = await import('node:vm');
    v8.setFlagsFromString('--expose-gc');
    const collect = vm.runInNewContext('gc');
    const writer = await openStore({ dir: args.dir, keys: args.key, cacheSize: 0 });
    const ids = [];
    for (let index = 0; index < 150; index++) {
      const session = writer.create();
      session.set('blob', String(index).padEnd(1_000_000, 'x'));
      await session.save();
      ids.push(session.id);
    }
    const reader = await openStore({ dir: args.dir, keys: args.key });
    collect();
    const before = process.memoryUsage().heapUsed;
    for (const id of ids) if ((await reader.load(id)) === null) throw new Error('not loaded');
    collect();
    process.stdout.write(String(Math.round((process.memoryUsage().heapUsed - before) / 2 ** 20)));
    `,
    { dir, key: KEY },
  );
  t.is(code, 0, stderr);
  // Unbounded, the cache held about 290 MiB here; the default bound is 64 MiB.
  t.true(Number(stdout) <= 96, `${stdout} MiB held after loading 150 sessions of 1 MiB`);
});
