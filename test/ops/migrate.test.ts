import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { createClient } from 'redis';
import type { Backend } from '../../src/core/backend.js';
import { expiresAt } from '../../src/core/expiry.js';
import { fileNameOf } from '../../src/core/session-id.js';
import { readHeader } from '../../src/crypto/seal.js';
import { openStore, type Store } from '../../src/index.js';
import { migrateSessions } from '../../src/ops/migrate.js';
import { redisBackend } from '../../src/redis.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { KEY, sessionFileOf, tempDir } from '../helpers/temp-dir.js';

/*
 * migrateSessions(), the library function behind `sealed-sessions migrate`: what it does when the
 * destination already holds something under a session's name (the same envelope, an older or a
 * newer version, something that is no envelope), and with what is no session at the source.
 * Both directions, between a real data dir and a real redis-server.
 */

let server: RedisServer;
let client: ReturnType<typeof createClient>;

test.before(async () => {
  server = await startRedis();
  client = await createClient({ url: server.url })
    .on('error', () => undefined)
    .connect();
});

test.after.always(async () => {
  client.destroy();
  await server.stop();
});

interface Sides {
  readonly files: Store;
  readonly redis: Store;
  readonly dir: string;
  readonly prefix: string;
}

async function sides(t: ExecutionContext, now?: () => number): Promise<Sides> {
  const dir = await tempDir(t);
  const prefix = `mg${randomBytes(4).toString('hex')}:`;
  const clock = now === undefined ? {} : { now };
  const files = await openStore({ dir, keys: KEY, cacheSize: 0, ...clock });
  const redis = await openStore({ backend: redisBackend({ client, prefix }), keys: KEY, cacheSize: 0, ...clock });
  return { files, redis, dir, prefix };
}

async function save(store: Store, data: Record<string, number | string>, id?: string): Promise<string> {
  const session = id === undefined ? store.create() : store.createWithId(id);
  for (const [key, value] of Object.entries(data)) session.set(key, value);
  await session.save();
  return session.id;
}

async function dataOf(store: Store, id: string): Promise<unknown> {
  const outcome = await store.read(fileNameOf(id), true);
  return outcome.state === 'found' ? Object.fromEntries(outcome.session.data) : outcome.state;
}

for (const direction of ['file → Redis', 'Redis → file'] as const) {
  const ends = (s: Sides): [Store, Store] => (direction === 'file → Redis' ? [s.files, s.redis] : [s.redis, s.files]);

  test(`${direction}: the same envelope is already there; an older version there is replaced; a newer one there is kept`, async (t) => {
    const s = await sides(t);
    const [from, to] = ends(s);
    const same = await save(from, { v: 'same' });
    const older = await save(from, { v: 'old' });
    const newer = await save(from, { v: 'source' });
    const fresh = await save(from, { v: 'fresh' });
    const first = await migrateSessions(from.backend, to.backend);
    t.like(first, { scanned: 4, copied: 4, alreadyThere: 0 });

    // Since the first run: `older` changed at the source; `newer` changed at the destination (a
    // server there), later than at the source.
    const changeAt = async (store: Store, id: string, value: string) => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      const session = (await store.load(id))!;
      session.set('v', value);
      await session.save();
    };
    await changeAt(from, older, 'new at the source');
    await changeAt(from, newer, 'changed at the source');
    await changeAt(to, newer, 'changed at the destination, later');

    const second = await migrateSessions(from.backend, to.backend);
    t.like(second, { scanned: 4, copied: 0, alreadyThere: 2, replacedOlder: 1, keptNewer: 1, problems: [] });
    t.deepEqual(await dataOf(to, same), { v: 'same' });
    t.deepEqual(await dataOf(to, older), { v: 'new at the source' });
    t.deepEqual(await dataOf(to, newer), { v: 'changed at the destination, later' });
    t.deepEqual(await dataOf(to, fresh), { v: 'fresh' });
    // The replaced one is the source's envelope, byte for byte, with the source's expiry.
    const [a, b] = await Promise.all([from.backend.copyOut(fileNameOf(older)), to.backend.copyOut(fileNameOf(older))]);
    t.true(a!.bytes.equals(b!.bytes));
    const header = readHeader(a!.bytes)!;
    t.is(Math.floor(expiresAt(header, b!.lastUseMs)), Math.floor(expiresAt(header, a!.lastUseMs)));
  });

  test(`${direction}: a later use at the source moves the copy's last use forward; expired sessions are skipped`, async (t) => {
    let offset = 0;
    const s = await sides(t, () => Date.now() + offset);
    const [from, to] = ends(s);
    const id = await save(from, { v: 1 });
    const shortLived = await openStore({ ...(direction === 'file → Redis' ? { dir: s.dir } : { backend: from.backend }), keys: KEY, idleTimeout: 2 });
    const dying = shortLived.create();
    dying.set('short', true);
    await dying.save();
    await migrateSessions(from.backend, to.backend);
    const name = fileNameOf(id);
    const before = (await to.backend.copyOut(name))!.lastUseMs;
    // Used at the source a minute later (a keep-alive), then migrated again.
    offset = 60_000;
    t.not(
      await from.backend.keepAlive(name, Date.now() + offset, expiresAt(readHeader((await from.backend.copyOut(name))!.bytes)!, Date.now() + offset)),
      null,
    );
    const again = await migrateSessions(from.backend, to.backend, { now: () => Date.now() + offset });
    t.like(again, { alreadyThere: 1, copied: 0 });
    t.true((await to.backend.copyOut(name))!.lastUseMs >= before + 59_000);
    // The short one expired by then (idle 2 s, a minute on, by the clock given): counted, and a
    // fresh destination does not get it.
    const other = await sides(t);
    const toOther = direction === 'file → Redis' ? other.redis : other.files;
    const third = await migrateSessions(from.backend, toOther.backend, { now: () => Date.now() + offset });
    t.like(third, { copied: 1, expired: 1 });
    t.is((await toOther.backend.copyOut(fileNameOf(dying.id))) ?? null, null);
  });
}

test('what is no session is reported, never copied over nor overwritten: at the source (a foreign file) and at the destination (a foreign value)', async (t) => {
  const s = await sides(t);
  const id = await save(s.files, { v: 1 });
  const blocked = await save(s.files, { v: 2 });
  // At the source: a file with a session's name that is not our format.
  const foreignName = 'a'.repeat(64);
  await fs.mkdir(path.join(s.dir, 'aa'), { recursive: true });
  await fs.writeFile(path.join(s.dir, 'aa', `${foreignName}.sess`), 'not an envelope');
  // At the destination: a value that is no envelope under the name of a session.
  await client.set(`${s.prefix}${fileNameOf(blocked)}`, 'something else');

  const report = await migrateSessions(s.files.backend, s.redis.backend);
  t.like(report, { scanned: 3, copied: 1, unreadable: 1, blocked: 1, failed: 0 });
  t.deepEqual(report.problems.map((problem) => problem.problem).sort(), ['blocked', 'unreadable']);
  t.is(report.problems.find((problem) => problem.problem === 'blocked')?.entry, `${s.prefix}${fileNameOf(blocked)}`);
  t.is(report.problems.find((problem) => problem.problem === 'unreadable')?.entry, `aa/${foreignName}.sess`);
  t.is(await client.get(`${s.prefix}${fileNameOf(blocked)}`), 'something else');
  t.is(await client.exists(`${s.prefix}${foreignName}`), 0);
  t.deepEqual(await dataOf(s.redis, id), { v: 1 });
  // The source is untouched.
  t.true((await fs.readFile(sessionFileOf(s.dir, blocked))).length > 52);
});

test('a backend at either end is only read (source) or written through copyIn/update (destination): the source is never changed', async (t) => {
  const s = await sides(t);
  await Promise.all([1, 2, 3].map((n) => save(s.files, { n })));
  const calls: string[] = [];
  const spy = (backend: Backend, side: string): Backend =>
    new Proxy(backend, {
      get(target, property) {
        const value: unknown = Reflect.get(target, property, target);
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          calls.push(`${side}.${String(property)}`);
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
  await migrateSessions(spy(s.files.backend, 'from'), spy(s.redis.backend, 'to'));
  t.deepEqual([...new Set(calls.filter((call) => call.startsWith('from.')))].sort(), ['from.copyOut', 'from.scan']);
  t.deepEqual([...new Set(calls.filter((call) => call.startsWith('to.')))].sort(), ['to.copyIn']);
});
