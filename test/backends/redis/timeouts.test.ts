import test from 'ava';
import { createClient } from 'redis';
import { openStore } from '../../../src/index.js';
import { redisBackend } from '../../../src/redis.js';
import { startRedis } from '../../helpers/redis.js';
import { KEY } from '../../helpers/temp-dir.js';

/*
 * A commit whose compare-and-set gets no answer in time may still have landed: the backend asks
 * what is stored before it decides. Here the server is kept busy (a Lua script spinning for
 * 600 ms, sent by another client) while the commit's write waits behind it.
 */

test('a compare-and-set that times out but landed counts as written, not as a failed commit', async (t) => {
  const server = await startRedis(t);
  const client = await createClient({ url: server.url })
    .on('error', () => undefined)
    .connect();
  const busy = await createClient({ url: server.url })
    .on('error', () => undefined)
    .connect();
  t.teardown(() => {
    client.destroy();
    busy.destroy();
  });
  const store = await openStore({ keys: KEY, backend: redisBackend({ client, prefix: 't:', timeoutMs: 400 }) });
  const session = store.create();
  session.set('n', 1);
  await session.save();
  // Loaded (so the read cache holds it): the commit goes straight to its compare-and-set.
  const loaded = (await store.load(session.id))!;
  loaded.set('n', 2);

  // The server spins for 600 ms: the write is sent, waits, and its 400 ms run out before it runs.
  const spin = busy.sendCommand([
    'EVAL',
    "local s = redis.call('TIME') local start = s[1] * 1000000 + s[2] repeat local n = redis.call('TIME') until n[1] * 1000000 + n[2] - start > 600000 return 1",
    '0',
  ]);
  await new Promise((resolve) => setTimeout(resolve, 50));
  const started = performance.now();
  t.is(await store.commit(loaded), 'written');
  t.true(performance.now() - started >= 400, 'the write timed out first');
  await spin;
  t.is((await store.load(session.id))?.get('n'), 2);
});
