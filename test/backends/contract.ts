import test, { type ExecutionContext } from 'ava';
import type { Backend } from '../../src/core/backend.js';
import { fileNameOf } from '../../src/core/session-id.js';
import { openStore, type Store } from '../../src/index.js';
import { manualClock } from '../helpers/clock.js';
import { KEY, OLD_KEY } from '../helpers/temp-dir.js';

/**
 * One storage for one test, as a backend sees it. Every `backend()` is a new instance on the same
 * storage: another process, in effect (its own queues, its own cache).
 */
export interface ContractStorage {
  backend(): Backend | Promise<Backend>;
  /** Changes one byte of the envelope stored under `name`, behind the store's back. */
  corrupt(name: string): Promise<void>;
  /** How many envelopes are stored (sessions, and whatever a destroy leaves), behind the store's back. */
  count(): Promise<number>;
}

/**
 * The behaviours every backend must show, through the store: persistence, absence, expiry, merge
 * of concurrent commits, destroy never resurrected, tamper evidence, key rotation. A backend's
 * test file calls this once with a way to make fresh storages.
 */
export function backendContract(label: string, storage: (t: ExecutionContext) => Promise<ContractStorage>): void {
  const open = async (place: ContractStorage, options: Parameters<typeof openStore>[0] = {}): Promise<Store> =>
    openStore({ keys: KEY, ...options, backend: await place.backend() });

  test(`${label}: a value committed by one store instance is read by another, with its JSON type`, async (t) => {
    const place = await storage(t);
    const writer = await open(place);
    const session = writer.create();
    session.set('user', 'alice').set('roles', ['admin']).set('n', 1).set('flag', false).set('nothing', null);
    await session.save();
    const reader = await open(place);
    t.deepEqual((await reader.load(session.id))?.toJSON(), { user: 'alice', roles: ['admin'], n: 1, flag: false, nothing: null });
  });

  test(`${label}: an unknown or malformed id is no session, and stores nothing`, async (t) => {
    const place = await storage(t);
    const store = await open(place);
    for (const id of ['A'.repeat(43), '', '../etc/passwd', 'x'.repeat(5000)]) t.is(await store.load(id), null);
    t.false(await store.destroy('A'.repeat(43)));
    t.is(await place.count(), 0);
  });

  test(`${label}: idle and absolute timeouts hold on read, keep-alive moves the idle one, and gc leaves no live session behind`, async (t) => {
    const place = await storage(t);
    const clock = manualClock();
    const store = await open(place, { now: clock.now, idleTimeout: 60, absoluteTimeout: 300, touchInterval: 1 });
    const idle = store.create();
    const used = store.create();
    await Promise.all([idle.save(), used.save()]);
    for (let step = 0; step < 4; step++) {
      clock.advance(40);
      t.not(await store.load(used.id), null, `used at ${40 * (step + 1)} s`);
    }
    t.is(await store.load(idle.id), null, 'idle for 160 s of 60');
    clock.advance(160);
    t.is(await store.load(used.id), null, 'past the absolute timeout however used');
    await store.gc();
    t.is((await store.stats()).live, 0);
    const listed = [];
    for await (const session of store.sessions()) listed.push(session.id);
    t.deepEqual(listed, []);
  });

  test(`${label}: 50 concurrent commits from 5 store instances on one session all persist, deletions too`, async (t) => {
    const place = await storage(t);
    const stores = await Promise.all(Array.from({ length: 5 }, () => open(place)));
    const first = stores[0]!.create();
    for (let index = 0; index < 50; index++) first.set(`old${index}`, index);
    await first.save();
    const copies = await Promise.all(Array.from({ length: 50 }, (_, index) => stores[index % 5]!.load(first.id)));
    await Promise.all(
      copies.map((copy, index) => {
        copy!.set(`k${index}`, { by: index });
        copy!.delete(`old${index}`);
        return copy!.save();
      }),
    );
    const stored = (await open(place)).load(first.id);
    const data = (await stored)!.toJSON();
    t.deepEqual(Object.keys(data).sort(), Array.from({ length: 50 }, (_, index) => `k${index}`).sort());
    for (let index = 0; index < 50; index++) t.deepEqual(data[`k${index}`], { by: index });
  });

  /** Two store instances on one storage (two processes, in effect), and a session `{ a: 1 }` the first one saved. */
  const twoInstances = async (place: ContractStorage) => {
    const one = await open(place);
    const other = await open(place);
    const session = one.create().set('a', 1);
    await session.save();
    return { one, other, session };
  };

  test(`${label}: a set that looks like no change to one instance (its cached copy) is still stored when another instance changed that key meanwhile`, async (t) => {
    const place = await storage(t);
    const { one, other, session } = await twoInstances(place);
    const mine = (await one.load(session.id))!;
    const theirs = (await other.load(session.id))!;
    theirs.set('a', 2);
    await theirs.save();
    // 1 is what `one` last saw: the commit must still store it over the 2 stored meanwhile.
    mine.set('a', 1);
    t.is(await one.commit(mine), 'written');
    t.is((await (await open(place)).load(session.id))?.get('a'), 1);
  });

  test(`${label}: a destroyed session is never brought back by a commit of an older copy, from any instance`, async (t) => {
    const place = await storage(t);
    const { one, other, session } = await twoInstances(place);
    const copy = (await other.load(session.id))!;
    t.true(await one.destroy(session.id));
    copy.set('b', 2);
    t.is(await other.commit(copy), 'gone');
    t.is(await one.load(session.id), null);
    t.is(await other.load(session.id), null);
    t.is(await place.count(), 0);
  });

  test(`${label}: a changed byte is no session, reported as tamper, and a commit onto it stores nothing`, async (t) => {
    const place = await storage(t);
    const store = await open(place);
    const session = store.create();
    session.set('secret', 'value');
    await session.save();
    const reports: string[] = [];
    const reader = await open(place);
    reader.on('tamper', ({ reason }) => reports.push(reason));
    await place.corrupt(fileNameOf(session.id));
    t.is(await reader.load(session.id), null);
    t.deepEqual(reports, ['authentication']);
  });

  test(`${label}: key rotation — written under the old key, read with [new, old], rewritten under new at the next commit, then read with new alone`, async (t) => {
    const place = await storage(t);
    const old = await open(place, { keys: OLD_KEY });
    const session = old.create();
    session.set('a', 1);
    await session.save();
    const rotated = await open(place, { keys: [KEY, OLD_KEY] });
    const loaded = (await rotated.load(session.id))!;
    t.deepEqual(loaded.toJSON(), { a: 1 });
    t.is(await (await open(place, { keys: KEY })).load(session.id), null, 'not readable with the new key before a commit');
    loaded.set('b', 2);
    await loaded.save();
    t.deepEqual((await (await open(place, { keys: KEY })).load(session.id))?.toJSON(), { a: 1, b: 2 });
  });
}
