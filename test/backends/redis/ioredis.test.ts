import { randomBytes, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import test, { type ExecutionContext } from 'ava';
import { Cluster, Redis } from 'ioredis';
import * as iovalkey from 'iovalkey';
import { nonceOf, redisEnvelopes, type RedisEnvelopes } from '../../../src/backends/redis/envelopes.js';
import { keySlot } from '../../../src/backends/redis/key-slot.js';
import { isSealedSessionError } from '../../../src/errors.js';
import { openStore } from '../../../src/index.js';
import { redisBackend } from '../../../src/redis.js';
import { startRedis, startRedisCluster } from '../../helpers/redis.js';
import { KEY } from '../../helpers/temp-dir.js';
import { backendContract } from '../contract.js';
import { fakeEnvelope } from './fixtures/fake-envelope.js';
import { afterMasterLoss, failure, recovers } from './fixtures/failures.js';
import { contractStorage, sharedTargets } from './targets.js';

/*
 * The same backend through ioredis (the client many connect-redis users have) and iovalkey (its
 * fork, same API): the store behaviours every backend shows, on a real redis-server and a real
 * 3-master Cluster, and the same fail-fast rules when Redis goes away under an ordinary ioredis
 * client (offline queue on, default reconnects).
 */

const targets = sharedTargets();

function hostPort(url: string): { host: string; port: number } {
  const { hostname, port } = new URL(url);
  return { host: hostname, port: Number(port) };
}

/** The two libraries with this API: ioredis, and iovalkey (its fork). */
const LIBRARIES = { ioredis: { Redis, Cluster }, iovalkey: { Redis: iovalkey.Redis, Cluster: iovalkey.Cluster } } as const;
type Library = keyof typeof LIBRARIES;

/** An application's ioredis client on `url`, ready. */
async function ioredisClient(t: ExecutionContext, url: string, library: Library = 'ioredis'): Promise<Redis | iovalkey.Redis> {
  const client = new LIBRARIES[library].Redis({ ...hostPort(url), lazyConnect: true });
  // Errors on the client are reported as events; without a listener ioredis logs them.
  client.on('error', () => undefined);
  t.teardown(() => client.disconnect());
  await client.connect();
  return client;
}

/** An application's ioredis Cluster on the seed `urls`, ready. */
async function ioredisCluster(t: ExecutionContext, urls: readonly string[], library: Library = 'ioredis'): Promise<Cluster | iovalkey.Cluster> {
  const cluster = new LIBRARIES[library].Cluster(urls.map(hostPort), { lazyConnect: true });
  cluster.on('error', () => undefined);
  t.teardown(() => cluster.disconnect());
  await cluster.connect();
  return cluster;
}

for (const library of ['ioredis', 'iovalkey'] as const) {
  for (const name of ['standalone', 'cluster'] as const) {
    backendContract(`Redis ${name} through ${library}`, async (t) => {
      const target = targets[name]!;
      const client = name === 'standalone' ? await ioredisClient(t, target.urls[0]!, library) : await ioredisCluster(t, target.urls, library);
      return contractStorage(target, client, `io${randomBytes(6).toString('hex')}:`);
    });
  }
}

test('ioredis: stats and scans see every session on every master of a Cluster', async (t) => {
  const target = targets.cluster!;
  const client = await ioredisCluster(t, target.urls);
  const prefix = `io${randomBytes(6).toString('hex')}:`;
  const store = await openStore({ keys: KEY, backend: redisBackend({ client, prefix }) });
  const ids: string[] = [];
  for (let index = 0; index < 40; index++) {
    const session = store.create().set('index', index);
    await session.save();
    ids.push(session.id);
  }
  // Spread over the three masters, as their own clients see it.
  const perMaster = await Promise.all(target.masters.map(async (master) => ((await master.sendCommand(['KEYS', `${prefix}*`])) as string[]).length));
  t.true(
    perMaster.every((count) => count > 0),
    `keys per master: ${perMaster.join(', ')}`,
  );
  t.is((await store.stats()).sessions, 40);
  for (const [index, id] of ids.entries()) t.is((await store.load(id))?.get('index'), index);
});

test('ioredis: a client made with keyPrefix is refused with ERR_SESSION_OPTION, naming the option to use instead', async (t) => {
  const target = targets.standalone!;
  for (const client of [
    new Redis({ ...hostPort(target.urls[0]!), lazyConnect: true, keyPrefix: 'app:' }),
    new Cluster(targets.cluster!.urls.map(hostPort), { lazyConnect: true, keyPrefix: 'app:' }),
    new Cluster(targets.cluster!.urls.map(hostPort), { lazyConnect: true, redisOptions: { keyPrefix: 'app:' } }),
  ]) {
    t.teardown(() => client.disconnect());
    const error = t.throws(() => redisBackend({ client }));
    t.true(isSealedSessionError(error, 'ERR_SESSION_OPTION'), String(error));
    t.regex(error?.message ?? '', /keyPrefix.*prefix: 'app:sess:'/);
  }
  // Without it, the same prefix through our option works, scans included.
  const client = await ioredisClient(t, target.urls[0]!);
  const store = await openStore({ keys: KEY, backend: redisBackend({ client, prefix: `app${randomBytes(4).toString('hex')}:sess:` }) });
  await store.create().set('a', 1).save();
  t.is((await store.stats()).sessions, 1);
});

const TIMEOUT_MS = 1000;
const AT_ONCE_MS = TIMEOUT_MS / 4;
const NONE = Buffer.alloc(0);
const inAMinute = () => Date.now() + 60_000;

test('ioredis: redis-server SIGKILLed: calls fail at once instead of waiting in the offline queue; restarted, the same client works again', async (t) => {
  const server = await startRedis(t);
  const envelopes: RedisEnvelopes = redisEnvelopes(await ioredisClient(t, server.url), { timeoutMs: TIMEOUT_MS });
  const key = `sess:${randomUUID()}`;
  const envelope = fakeEnvelope(['before']);
  t.true(await envelopes.compareAndSet(key, NONE, envelope, inAMinute()));
  t.deepEqual(await envelopes.get(key), envelope);

  await server.kill();
  await sleep(100);
  const calls: (() => Promise<unknown>)[] = [
    () => envelopes.get(key),
    () => envelopes.getIfChanged(key, nonceOf(envelope)),
    () => envelopes.compareAndSet(key, nonceOf(envelope), fakeEnvelope(['after']), inAMinute()),
    () => envelopes.del(key),
    () => envelopes.keepAlive(key, inAMinute()),
    async () => {
      for await (const header of envelopes.scanHeaders('sess:')) void header;
    },
  ];
  for (const call of calls) t.true((await failure(t, call, 'REDIS_UNAVAILABLE')) < AT_ONCE_MS, 'at once');

  await server.restart();
  const back = await recovers(t, () => envelopes.get(key), 15_000);
  t.log(`the same ioredis client served again ${Math.round(back)} ms after the restart`);
  t.is(await envelopes.get(key), null, 'persistence off: the restarted server is empty');
  t.true(await envelopes.compareAndSet(key, NONE, envelope, inAMinute()));
});

test('ioredis: a hung redis-server (SIGSTOP): a call fails at its time limit, not later', async (t) => {
  const server = await startRedis(t);
  const envelopes = redisEnvelopes(await ioredisClient(t, server.url), { timeoutMs: TIMEOUT_MS });
  server.pause();
  t.teardown(() => server.resume());
  const took = await failure(t, () => envelopes.get(`sess:${randomUUID()}`), 'REDIS_TIMEOUT');
  t.true(took >= TIMEOUT_MS - 20 && took < TIMEOUT_MS + 500, `failed after ${Math.round(took)} ms`);
});

test('ioredis: a Cluster master SIGKILLed: keys on the other masters keep working, its own fail at once; restarted, it serves again', async (t) => {
  const nodes = await startRedisCluster();
  t.teardown(() => nodes.stop());
  const client = await ioredisCluster(
    t,
    nodes.rootNodes.map(({ url }) => url),
  );
  const envelopes = redisEnvelopes(client, { timeoutMs: TIMEOUT_MS });
  const keys = Array.from({ length: 60 }, () => `sess:${randomUUID()}`);
  await Promise.all(keys.map((key) => envelopes.compareAndSet(key, NONE, fakeEnvelope([key]), inAMinute())));
  const deadPort = nodes.nodes[0]!.port;
  const onDead = new Set(keys.filter((key) => client.slots[keySlot(key)]?.[0]?.endsWith(`:${deadPort}`)));
  t.true(onDead.size > 0 && onDead.size < keys.length);

  await nodes.killNode(0);
  await afterMasterLoss(t, envelopes, keys, onDead, AT_ONCE_MS);
  // A scan would miss the dead master's keys: it fails instead of reporting fewer sessions.
  const scan = async () => {
    for await (const header of envelopes.scanHeaders('sess:')) void header;
  };
  await failure(t, scan, 'REDIS_UNAVAILABLE');

  await nodes.nodes[0]!.restart();
  const someDeadKey = [...onDead][0]!;
  const back = await recovers(t, () => envelopes.get(someDeadKey), 20_000);
  t.log(`keys of the restarted master served again ${Math.round(back)} ms after its restart`);
  t.true(await envelopes.compareAndSet(someDeadKey, NONE, fakeEnvelope([]), inAMinute()));
  await t.notThrowsAsync(scan);
});
