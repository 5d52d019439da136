import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { createClient } from 'redis';
import { keySlot } from '../../../src/backends/redis/key-slot.js';
import { fileNameOf } from '../../../src/core/session-id.js';
import { verifySignedId } from '../../../src/http/cookie.js';
import { createKeyring } from '../../../src/crypto/keys.js';
import { CookieJar } from '../../helpers/http.js';
import { startRedis, startRedisCluster } from '../../helpers/redis.js';
import { fixtureProcess } from '../../helpers/server-process.js';
import { KEY } from '../../helpers/temp-dir.js';

/*
 * Redis going away under a running web server (a real one, in its own process, with the
 * backend's time limit at 1 s): requests that need a session fail cleanly (a 500 from the
 * error handler, never a crash or a hang), and the same process serves again once Redis is back.
 */

/** A request, with how long its answer took (or the reason it got none). */
async function timed(jar: CookieJar, url: string, init?: RequestInit): Promise<{ status: number | string; ms: number }> {
  const started = performance.now();
  try {
    const response = await jar.fetch(url, { ...init, signal: AbortSignal.timeout(10_000) });
    await response.arrayBuffer();
    return { status: response.status, ms: performance.now() - started };
  } catch (error) {
    return { status: (error as Error).name, ms: performance.now() - started };
  }
}

test('redis-server SIGKILLed under load: clean 500s within the time limit, no crash; restarted: the same process serves again', async (t) => {
  const server = await startRedis(t);
  const host = await fixtureProcess(t, 'test/fixtures/redis-http-server.ts', [KEY, 'f:', server.url]);
  const jar = new CookieJar();
  t.is((await timed(jar, `${host}/set/user/alice`, { method: 'POST' })).status, 200);

  // Load in flight when the server dies.
  let stop = false;
  const statuses: Array<number | string> = [];
  const slowest = { ms: 0 };
  const load = (async () => {
    while (!stop) {
      const answer = await timed(jar, `${host}/set/n/${statuses.length}`, { method: 'POST' });
      statuses.push(answer.status);
      slowest.ms = Math.max(slowest.ms, answer.ms);
    }
  })();
  await sleep(300);
  await server.kill();
  await sleep(1500);
  const down = await Promise.all(Array.from({ length: 5 }, () => timed(jar, `${host}/get`)));
  t.deepEqual(
    down.map(({ status }) => status),
    [500, 500, 500, 500, 500],
  );
  t.true(
    down.every(({ ms }) => ms < 2500),
    `answers while down took ${down.map(({ ms }) => Math.round(ms)).join(', ')} ms`,
  );

  await server.restart();
  // The same server process, without a restart of its own: serving again once Redis is back.
  let again = await timed(jar, `${host}/get`);
  for (let tries = 0; again.status !== 200 && tries < 50; tries++) {
    await sleep(100);
    again = await timed(jar, `${host}/get`);
  }
  stop = true;
  await load;
  t.is(again.status, 200);
  t.true(
    statuses.every((status) => status === 200 || status === 500),
    `statuses seen: ${[...new Set(statuses)].join(', ')}`,
  );
  t.true(slowest.ms < 5000, `the slowest request under load took ${Math.round(slowest.ms)} ms`);
  // Persistence is off: the session died with the server. A new one works end to end.
  t.is((await timed(jar, `${host}/set/user/bob`, { method: 'POST' })).status, 200);
  t.is(((await (await jar.fetch(`${host}/get`)).json()) as Record<string, string>)['user'], 'bob');
});

test('a Cluster master SIGKILLed: sessions on the other masters keep working, its own fail cleanly', async (t) => {
  const nodes = await startRedisCluster();
  t.teardown(() => nodes.stop());
  const prefix = `c${randomBytes(4).toString('hex')}:`;
  const host = await fixtureProcess(t, 'test/fixtures/redis-http-server.ts', [KEY, prefix, ...nodes.rootNodes.map(({ url }) => url)]);
  // Which master owns a slot, as the cluster says.
  const probe = await createClient({ url: nodes.nodes[0]!.url })
    .on('error', () => undefined)
    .connect();
  t.teardown(() => probe.destroy());
  const ranges = (await probe.sendCommand(['CLUSTER', 'SLOTS'])) as Array<[number, number, [string, number]]>;
  const portOf = (slot: number) => ranges.find(([first, last]) => first <= slot && slot <= last)![2][1];
  const secret = createKeyring([KEY]).primary.cookieSecret;

  // Sessions until every master holds at least two.
  const byPort = new Map<number, CookieJar[]>();
  while ([...nodes.nodes].some((node) => (byPort.get(node.port)?.length ?? 0) < 2)) {
    const jar = new CookieJar();
    t.is((await jar.fetch(`${host}/set/user/u${byPort.size}`, { method: 'POST' })).status, 200);
    const id = verifySignedId(jar.get('sid')!, [secret])!.id;
    const port = portOf(keySlot(`${prefix}${fileNameOf(id)}`));
    byPort.set(port, [...(byPort.get(port) ?? []), jar]);
  }
  const victim = nodes.nodes[0]!.port;
  await nodes.killNode(0);
  for (const [port, jars] of byPort) {
    for (const jar of jars) {
      const answer = await timed(jar, `${host}/get`);
      if (port === victim) t.is(answer.status, 500, 'on the dead master: a clean error');
      else t.is(answer.status, 200, 'on a live master: served');
      t.true(answer.ms < 3000, `answered in ${Math.round(answer.ms)} ms`);
    }
  }
});
