import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import test, { type ExecutionContext } from 'ava';
import { createClient } from 'redis';
import { nonceOf, redisEnvelopes, type RedisEnvelopes } from '../../../src/backends/redis/envelopes.js';
import { startRedis, type RedisServer } from '../../helpers/redis.js';
import { fakeEnvelope, listOf } from './fixtures/fake-envelope.js';
import { afterMasterLoss, failure, recovers } from './fixtures/failures.js';
import { clusterTarget } from './targets.js';

/*
 * Redis going away under an application's ordinary client (offline queue on, default reconnects):
 * every call fails within its time limit with ERR_SESSION_STORE_IO — at once when the connection
 * is known to be down — and the same client works again once Redis is back.
 */

const TIMEOUT_MS = 1000;
/** "At once": far below the time limit, with room for a busy test process. */
const AT_ONCE_MS = TIMEOUT_MS / 4;
const NONE = Buffer.alloc(0);
const inAMinute = () => Date.now() + 60_000;

async function serverWithClient(t: ExecutionContext): Promise<{ server: RedisServer; envelopes: RedisEnvelopes }> {
  const server = await startRedis(t);
  const client = await createClient({ url: server.url })
    .on('error', () => undefined)
    .connect();
  t.teardown(() => client.destroy());
  return { server, envelopes: redisEnvelopes(client, { timeoutMs: TIMEOUT_MS }) };
}

test('redis-server SIGKILLed: calls fail at once, a call in flight too; restarted on the same port, the same client works again', async (t) => {
  const { server, envelopes } = await serverWithClient(t);
  const key = `sess:${randomUUID()}`;
  const envelope = fakeEnvelope(['before']);
  await envelopes.compareAndSet(key, NONE, envelope, inAMinute());

  // In flight: sent to a server that does not answer, which then dies.
  server.pause();
  const inFlight = failure(t, () => envelopes.get(key), 'REDIS_UNAVAILABLE');
  await sleep(100);
  await server.kill();
  t.true((await inFlight) < TIMEOUT_MS, 'the broken connection fails it before its time limit');

  // Known down: every kind of call fails without waiting for anything.
  const calls: (() => Promise<unknown>)[] = [
    () => envelopes.get(key),
    () => envelopes.read(key),
    () => envelopes.getIfChanged(key, nonceOf(envelope)),
    () => envelopes.compareAndSet(key, nonceOf(envelope), fakeEnvelope(['after']), inAMinute()),
    () => envelopes.compareAndDelete(key, nonceOf(envelope)),
    () => envelopes.del(key),
    () => envelopes.keepAlive(key, inAMinute()),
    () => envelopes.pexpiretime(key),
    () => envelopes.waitReplicas(key, 1, 100),
    () => envelopes.configWarnings(),
    async () => {
      for await (const header of envelopes.scanHeaders('sess:')) void header;
    },
  ];
  for (const call of calls) t.true((await failure(t, call, 'REDIS_UNAVAILABLE')) < AT_ONCE_MS, 'at once');

  await server.restart();
  const back = await recovers(t, () => envelopes.get(key), 10_000);
  t.log(`the same client served again ${Math.round(back)} ms after the restart`);
  // Persistence is off: the restarted server is empty, and writes work again.
  t.is(await envelopes.get(key), null);
  t.true(await envelopes.compareAndSet(key, NONE, envelope, inAMinute()));
  t.deepEqual(await envelopes.get(key), envelope);
});

test('a hung redis-server (SIGSTOP): calls fail at their time limit, and later replies still go to the right calls', async (t) => {
  const { server, envelopes } = await serverWithClient(t);
  const a = `sess:${randomUUID()}`;
  const b = `sess:${randomUUID()}`;
  const envelopeA = fakeEnvelope(['a']);
  const envelopeB = fakeEnvelope(['b']);
  await envelopes.compareAndSet(a, NONE, envelopeA, inAMinute());
  await envelopes.compareAndSet(b, NONE, envelopeB, inAMinute());

  server.pause();
  t.teardown(() => server.resume());
  const took = await failure(t, () => envelopes.get(a), 'REDIS_TIMEOUT');
  t.true(took >= TIMEOUT_MS - 20 && took < TIMEOUT_MS + 500, `failed after ${Math.round(took)} ms`);
  await failure(t, () => envelopes.compareAndSet(a, nonceOf(envelopeA), fakeEnvelope(['lost?']), inAMinute()), 'REDIS_TIMEOUT');

  // Back: the timed-out commands' late replies are consumed in order, not handed to new calls.
  server.resume();
  t.deepEqual(await envelopes.get(b), envelopeB);
  // The timed-out write had been sent, and ran once the server woke (as documented): a re-read tells.
  t.deepEqual(listOf((await envelopes.get(a))!), ['lost?']);
});

test('a cluster master SIGKILLed: keys on the other masters keep working, its own fail at once; restarted, it serves again', async (t) => {
  const target = await clusterTarget({ timeoutMs: TIMEOUT_MS });
  t.teardown(() => target.stop());
  const { envelopes, nodes, masterOf, masters } = target;
  const keys = Array.from({ length: 60 }, () => `sess:${randomUUID()}`);
  await Promise.all(keys.map((key) => envelopes.compareAndSet(key, NONE, fakeEnvelope([key]), inAMinute())));
  const deadMaster = masters[0]!;
  const onDead = new Set<string>();
  for (const key of keys) if ((await masterOf(key)) === deadMaster) onDead.add(key);
  t.true(onDead.size > 0 && onDead.size < keys.length);

  await nodes.killNode(0);
  await afterMasterLoss(t, envelopes, keys, onDead, AT_ONCE_MS);
  await failure(t, () => envelopes.configWarnings(), 'REDIS_UNAVAILABLE');

  await nodes.nodes[0]!.restart();
  const someDeadKey = [...onDead][0]!;
  // A restarted node answers CLUSTERDOWN until it has rejoined (about 2 s here), then serves.
  const back = await recovers(t, () => envelopes.get(someDeadKey), 15_000);
  t.log(`keys of the restarted master served again ${Math.round(back)} ms after its restart`);
  t.is(await envelopes.get(someDeadKey), null, 'persistence off: its keys are gone');
  t.true(await envelopes.compareAndSet(someDeadKey, NONE, fakeEnvelope([]), inAMinute()));
});
