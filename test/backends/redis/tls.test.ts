import { randomBytes } from 'node:crypto';
import test from 'ava';
import { Redis } from 'ioredis';
import { createClient } from 'redis';
import { openStore } from '../../../src/index.js';
import { redisBackend } from '../../../src/redis.js';
import { startRedis } from '../../helpers/redis.js';
import { KEY } from '../../helpers/temp-dir.js';

/*
 * Managed Redis is mostly TLS-only. The backend takes the application's client as it is, so TLS is
 * that client's business: shown here with node-redis and ioredis against a real redis-server
 * serving TLS only on the port they use (a self-signed certificate the clients are told to trust).
 */

test('sessions through node-redis and ioredis over TLS: stored sealed, read back by the other client', async (t) => {
  const server = await startRedis(t, { tls: true });
  const ca = server.certificate!.pem;
  const nodeRedis = await createClient({ url: server.tlsUrl!, socket: { tls: true, ca } })
    .on('error', () => undefined)
    .connect();
  t.teardown(() => nodeRedis.destroy());
  const url = new URL(server.tlsUrl!);
  const ioredis = new Redis({ host: url.hostname, port: Number(url.port), tls: { ca }, lazyConnect: true });
  ioredis.on('error', () => undefined);
  t.teardown(() => ioredis.disconnect());
  await ioredis.connect();

  const prefix = `tls${randomBytes(4).toString('hex')}:`;
  const viaNodeRedis = await openStore({ keys: KEY, backend: redisBackend({ client: nodeRedis, prefix }) });
  const viaIoredis = await openStore({ keys: KEY, backend: redisBackend({ client: ioredis, prefix }) });
  const session = viaNodeRedis.create().set('user', 'alice');
  await session.save();
  t.is((await viaIoredis.load(session.id))?.get('user'), 'alice');
  const loaded = (await viaIoredis.load(session.id))!;
  loaded.set('n', 1);
  await loaded.save();
  t.deepEqual((await viaNodeRedis.load(session.id))?.toJSON(), { user: 'alice', n: 1 });

  // What the server holds: one key, not named after the id, its value without the data in clear.
  const keys = (await nodeRedis.sendCommand(['KEYS', `${prefix}*`])) as string[];
  t.is(keys.length, 1);
  t.false(keys[0]!.includes(session.id));
  const value = String(await nodeRedis.get(keys[0]!));
  t.false(value.includes('alice'));
});
