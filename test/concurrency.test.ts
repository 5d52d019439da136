import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import test, { type ExecutionContext } from 'ava';
import { openStore, type JsonValue, type Session, type Store } from '../src/index.js';
import { startWorker, type Worker, type WorkerCommand, type WorkerOp } from './fixtures/worker.js';
import { KEY, listFiles, tempDir } from './helpers/temp-dir.js';

/*
 * Concurrent commits of one session, within one process and across real processes. Children are
 * started first and wait for `go`, so that their commits and ours hit the disk at the same time.
 */

interface OpsResult {
  readonly outcomes: readonly string[];
  readonly errors: readonly { code: unknown; message: string }[];
}

/** The session file of `id`, computed independently of the library: dir/<2 hex>/<sha256 name>.sess. */
function sessionFile(dir: string, id: string): string {
  const name = createHash('sha256').update(`sealed-sessions/v1/name\0${id}`).digest('hex');
  return path.join(dir, name.slice(0, 2), `${name}.sess`);
}

async function exists(file: string): Promise<boolean> {
  return fs.access(file).then(
    () => true,
    () => false,
  );
}

function worker(t: ExecutionContext, command: WorkerCommand): Worker {
  const child = startWorker(command);
  t.teardown(() => child.kill('SIGKILL'));
  return child;
}

/** A stored session holding `data`. */
async function storedSession(store: Store, data: Record<string, JsonValue>): Promise<string> {
  const session = store.create();
  for (const [key, value] of Object.entries(data)) session.set(key, value);
  await session.save();
  return session.id;
}

async function loadCopies(store: Store, id: string, count: number): Promise<Session[]> {
  const copies = await Promise.all(Array.from({ length: count }, () => store.load(id)));
  return copies.map((copy) => {
    if (copy === null) throw new Error('the session did not load');
    return copy;
  });
}

/** What a user sees: the session as a fresh store (a fresh process, in effect) loads it. */
async function reload(dir: string, id: string): Promise<Record<string, JsonValue> | null> {
  const fresh = await openStore({ dir, keys: KEY });
  return (await fresh.load(id))?.toJSON() ?? null;
}

const range = (count: number, from = 0) => Array.from({ length: count }, (_, index) => from + index);

test('50 concurrent commits of 50 copies of one session in one process lose no key', async (t) => {
  const dir = await tempDir(t);
  const store = await openStore({ dir, keys: KEY });
  const id = await storedSession(store, { base: 'kept' });

  const copies = await loadCopies(store, id, 50);
  copies.forEach((copy, index) => copy.set(`k${index}`, index));
  const outcomes = await Promise.all(copies.map((copy) => store.commit(copy)));

  t.deepEqual(new Set(outcomes), new Set(['written']));
  const data = await reload(dir, id);
  const expected = ['base', ...range(50).map((index) => `k${index}`)];
  t.deepEqual(Object.keys(data ?? {}).sort(), expected.sort());
  const lost = range(50).filter((index) => data?.[`k${index}`] !== index);
  t.deepEqual(lost, [], `${lost.length} of 50 keys lost`);
  t.is(data?.['base'], 'kept');
});

test('50 concurrent commits through 50 separate stores (one lock each) lose no key', async (t) => {
  // Separate Store objects share no in-memory queue: only the file lock orders their commits.
  const dir = await tempDir(t);
  const first = await openStore({ dir, keys: KEY });
  const id = await storedSession(first, { base: 'kept' });
  const stores = await Promise.all(range(50).map(() => openStore({ dir, keys: KEY })));
  const copies = await Promise.all(stores.map(async (store) => (await loadCopies(store, id, 1))[0]!));

  copies.forEach((copy, index) => copy.set(`k${index}`, index));
  await Promise.all(copies.map((copy) => copy.save()));

  const data = await reload(dir, id);
  const lost = range(50).filter((index) => data?.[`k${index}`] !== index);
  t.deepEqual(lost, [], `${lost.length} of 50 keys lost`);
  t.is(Object.keys(data ?? {}).length, 51);
});

test('two processes with 25 concurrent commits each lose no key', async (t) => {
  const dir = await tempDir(t);
  const store = await openStore({ dir, keys: KEY });
  const id = await storedSession(store, { base: 'kept' });

  const children = [0, 25].map((from) =>
    worker(t, { op: 'ops', dir, id, ops: range(25, from).map((index): WorkerOp => ({ set: { [`k${index}`]: { n: index } } })) }),
  );
  await Promise.all(children.map((child) => child.waitFor('ready')));
  for (const child of children) child.send('go');
  const results = await Promise.all(children.map((child) => child.result<OpsResult>()));

  for (const result of results) {
    t.deepEqual(result.errors, []);
    t.deepEqual(new Set(result.outcomes), new Set(['written']));
  }
  const data = await reload(dir, id);
  const lost = range(50).filter((index) => !isDeepStrictEqual(data?.[`k${index}`], { n: index }));
  t.deepEqual(lost, [], `${lost.length} of 50 keys lost`);
  t.deepEqual(Object.keys(data ?? {}).sort(), ['base', ...range(50).map((index) => `k${index}`)].sort());
  for (const child of children) t.false(child.lines.some((line) => line.startsWith('tamper')));
});

test('three processes and this one, every copy through a store of its own, lose no key', async (t) => {
  // No in-memory coalescing anywhere: 80 commits, each its own lock and write, across 4 processes.
  const dir = await tempDir(t);
  const store = await openStore({ dir, keys: KEY });
  const id = await storedSession(store, { base: 'kept' });

  const children = [20, 40, 60].map((from) =>
    worker(t, { op: 'ops', dir, id, separateStores: true, ops: range(20, from).map((index): WorkerOp => ({ set: { [`k${index}`]: index } })) }),
  );
  await Promise.all(children.map((child) => child.waitFor('ready')));
  const stores = await Promise.all(range(20).map(() => openStore({ dir, keys: KEY })));
  const copies = await Promise.all(stores.map(async (own) => (await loadCopies(own, id, 1))[0]!));

  for (const child of children) child.send('go');
  const [results] = await Promise.all([
    Promise.all(children.map((child) => child.result<OpsResult>())),
    Promise.all(copies.map((copy, index) => copy.set(`k${index}`, index).save())),
  ]);

  for (const result of results) t.deepEqual(result.errors, []);
  const data = await reload(dir, id);
  const lost = range(80).filter((index) => data?.[`k${index}`] !== index);
  t.deepEqual(lost, [], `${lost.length} of 80 keys lost`);
  t.is(Object.keys(data ?? {}).length, 81);
});

test('concurrent deletions merge: deleted keys stay deleted, keys set meanwhile are kept', async (t) => {
  const dir = await tempDir(t);
  const store = await openStore({ dir, keys: KEY });
  const letters = [...'abcdefghij'];
  const id = await storedSession(store, Object.fromEntries(letters.map((letter, index) => [letter, index])));

  // The child deletes d, e, f and sets m0…m2, each from its own copy; here we delete a, b, c and set n0…n3.
  const child = worker(t, {
    op: 'ops',
    dir,
    id,
    ops: [...['d', 'e', 'f'].map((key): WorkerOp => ({ delete: [key] })), ...range(3).map((index): WorkerOp => ({ set: { [`m${index}`]: `child ${index}` } }))],
  });
  await child.waitFor('ready');
  const deleters = await loadCopies(store, id, 3);
  const setters = await loadCopies(store, id, 4);

  child.send('go');
  const ours = Promise.all([
    ...deleters.map((copy, index) => {
      t.true(copy.delete(['a', 'b', 'c'][index]!));
      return copy.save();
    }),
    ...setters.map((copy, index) => copy.set(`n${index}`, [index]).save()),
  ]);
  const [result] = await Promise.all([child.result<OpsResult>(), ours]);
  t.deepEqual(result.errors, []);

  t.deepEqual(await reload(dir, id), {
    g: 6,
    h: 7,
    i: 8,
    j: 9,
    m0: 'child 0',
    m1: 'child 1',
    m2: 'child 2',
    n0: [0],
    n1: [1],
    n2: [2],
    n3: [3],
  });
});

test('concurrent writes of one key leave exactly one written value, whole, with the rest of its commit', async (t) => {
  const dir = await tempDir(t);
  const store = await openStore({ dir, keys: KEY });
  const id = await storedSession(store, { same: 'initial', other: 'untouched' });

  // 24 writers, 12 here and 12 in a child: objects, arrays, strings (up to 10 KB), numbers.
  const valueOf = (writer: number): JsonValue => {
    switch (writer % 4) {
      case 0:
        return { writer, nested: { list: [writer, 'x', null, { deep: true }], flag: writer % 8 === 0 } };
      case 1:
        return [writer, { w: writer }, 'arr', [[]], false];
      case 2:
        return `writer ${writer} `.padEnd(writer * 400, String(writer % 10));
      default:
        return writer + 0.25;
    }
  };
  const child = worker(t, {
    op: 'ops',
    dir,
    id,
    ops: range(12, 12).map((writer): WorkerOp => ({ set: { same: valueOf(writer), writer } })),
  });
  await child.waitFor('ready');
  const copies = await loadCopies(store, id, 12);

  child.send('go');
  const [result] = await Promise.all([
    child.result<OpsResult>(),
    Promise.all(copies.map((copy, writer) => copy.set('same', valueOf(writer)).set('writer', writer).save())),
  ]);
  t.deepEqual(result.errors, []);

  const data = await reload(dir, id);
  const final = data?.['same'];
  const matches = range(24).filter((writer) => isDeepStrictEqual(final, valueOf(writer)));
  t.is(matches.length, 1, `final value ${JSON.stringify(final)?.slice(0, 80)} is not one of the written values`);
  // Each writer sets the value and a tag in one commit: they must come back together.
  t.is(data?.['writer'], matches[0], 'the value and the tag set with it in one commit come from different commits');
  t.is(data?.['other'], 'untouched');
});

test('a session destroyed in this process is not brought back by a later commit of an older copy', async (t) => {
  const dir = await tempDir(t);
  const store = await openStore({ dir, keys: KEY });
  const id = await storedSession(store, { user: 'alice' });
  const [copy] = await loadCopies(store, id, 1);

  t.true(await store.destroy(id));
  copy!.set('cart', ['book']);
  await t.notThrowsAsync(copy!.save());

  t.true(copy!.isGone);
  t.is(await store.load(id), null);
  t.is(await reload(dir, id), null);
  t.false(await exists(sessionFile(dir, id)));
  t.deepEqual(await listFiles(dir), []);
});

test('a session destroyed by another process is not brought back by a commit here', async (t) => {
  const dir = await tempDir(t);
  const store = await openStore({ dir, keys: KEY });
  const id = await storedSession(store, { user: 'alice' });
  const [copy] = await loadCopies(store, id, 1);

  const child = worker(t, { op: 'destroy', dir, id });
  await child.waitFor('ready');
  child.send('go');
  t.deepEqual(await child.result<{ existed: boolean }>(), { existed: true });

  copy!.set('cart', ['book']);
  t.is(await store.commit(copy!), 'gone');
  copy!.set('cart', ['book', 'pen']);
  await t.notThrowsAsync(copy!.save());

  t.is(await store.load(id), null);
  t.false(await exists(sessionFile(dir, id)));
  t.deepEqual(await listFiles(dir), []);
});

test('commits racing a destroy in another process leave no session behind', async (t) => {
  const dir = await tempDir(t);
  const store = await openStore({ dir, keys: KEY });
  const id = await storedSession(store, { user: 'alice' });
  const copies = await loadCopies(store, id, 20);

  const child = worker(t, { op: 'destroy', dir, id });
  await child.waitFor('ready');
  child.send('go');
  const outcomes = await Promise.all(copies.map((copy, index) => copy.set(`k${index}`, index) && store.commit(copy)));
  t.deepEqual(await child.result<{ existed: boolean }>(), { existed: true });
  // Whatever the order was, once the destroy is done every later commit finds the session gone.
  const again = await Promise.all(copies.map((copy) => copy.set('late', true) && store.commit(copy)));

  t.log(`commits before the destroy: ${outcomes.filter((o) => o === 'written').length}, after: ${outcomes.filter((o) => o === 'gone').length}`);
  t.deepEqual(new Set(again), new Set(['gone']));
  t.is(await reload(dir, id), null);
  t.false(await exists(sessionFile(dir, id)));
});

test.serial('a commit waiting for a lock another process holds fails with ERR_SESSION_LOCK_TIMEOUT and leaves the stored version intact', async (t) => {
  const dir = await tempDir(t);
  const store = await openStore({ dir, keys: KEY, lockWait: 1 });
  const id = await storedSession(store, { step: 'old', other: [1, 2] });
  const [copy] = await loadCopies(store, id, 1);

  const child = worker(t, { op: 'hold-lock', file: sessionFile(dir, id), stale: 10_000 });
  await child.waitFor('locked');

  copy!.set('step', 'new');
  const started = performance.now();
  await t.throwsAsync(copy!.save(), { code: 'ERR_SESSION_LOCK_TIMEOUT' });
  const waited = performance.now() - started;
  t.true(waited >= 950, `gave up after ${Math.round(waited)} ms, before lockWait`);
  t.true(waited < 4_000, `gave up only after ${Math.round(waited)} ms`);

  t.deepEqual(await reload(dir, id), { step: 'old', other: [1, 2] });
  t.is((await store.load(id))?.get('step'), 'old');

  // The failed commit's change stays pending: once the lock is free, saving again stores it.
  child.send('release');
  await child.result();
  await copy!.save();
  t.deepEqual(await reload(dir, id), { step: 'new', other: [1, 2] });
});

test.serial('a lock left by a killed process is taken over after lockStale, and the commit goes through', async (t) => {
  const dir = await tempDir(t);
  const store = await openStore({ dir, keys: KEY, lockStale: 2 });
  const id = await storedSession(store, { step: 'old' });
  const [copy] = await loadCopies(store, id, 1);
  const file = sessionFile(dir, id);

  const child = worker(t, { op: 'hold-lock', file, stale: 2_000 });
  await child.waitFor('locked');
  child.kill('SIGKILL');
  t.is((await child.exited).signal, 'SIGKILL');
  t.true(await exists(`${file}.lock`), 'the killed process left its lock behind');

  copy!.set('step', 'new');
  const started = performance.now();
  await copy!.save();
  const waited = performance.now() - started;
  t.log(`commit waited ${Math.round(waited)} ms for the dead process's lock`);
  // It respected the lock while it looked alive, then took it over: not forever.
  t.true(waited >= 1_000, `took over a fresh lock after ${Math.round(waited)} ms`);
  t.true(waited < 2_000 + 3_000, `waited ${Math.round(waited)} ms`);

  t.deepEqual(await reload(dir, id), { step: 'new' });
  t.false(await exists(`${file}.lock`), 'the lock is released after the commit');
});
