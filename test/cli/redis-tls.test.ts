import { randomBytes } from 'node:crypto';
import test from 'ava';
import { createClient } from 'redis';
import { openStore } from '../../src/index.js';
import { redisBackend } from '../../src/redis.js';
import { cli } from '../helpers/cli.js';
import { startRedis } from '../helpers/redis.js';
import { KEY, listFiles, tempDir } from '../helpers/temp-dir.js';

/*
 * The CLI on a TLS-only Redis (`rediss://`, as managed Redis is): a private CA is trusted the way
 * Node trusts one everywhere, NODE_EXTRA_CA_CERTS; without it the CLI says why it cannot connect.
 */

test('stats and migrate over rediss://: trusted through NODE_EXTRA_CA_CERTS; an untrusted certificate is refused, saying so', async (t) => {
  const server = await startRedis(t, { tls: true });
  const trusted = { NODE_EXTRA_CA_CERTS: server.certificate!.file };
  const prefix = `tls${randomBytes(4).toString('hex')}:`;

  // Three sessions on the data dir, migrated to Redis over TLS, counted there by stats.
  const dir = await tempDir(t);
  const files = await openStore({ dir, keys: KEY });
  for (const user of ['ann', 'bob', 'cy']) await files.create().set('user', user).save();
  const migrated = await cli(['migrate', '--from', dir, '--to', server.tlsUrl!, '--prefix', prefix, '--json'], trusted);
  t.is(migrated.code, 0, migrated.stderr);
  const stats = await cli(['stats', '--redis', server.tlsUrl!, '--prefix', prefix, '--json'], trusted);
  t.is(stats.code, 0, stats.stderr);
  t.is((JSON.parse(stats.stdout) as { sessions: number }).sessions, 3);

  // The same sessions, read by a store on a TLS client.
  const client = await createClient({ url: server.tlsUrl!, socket: { tls: true, ca: server.certificate!.pem } })
    .on('error', () => undefined)
    .connect();
  t.teardown(() => client.destroy());
  const onRedis = await openStore({ keys: KEY, backend: redisBackend({ client, prefix }) });
  const users: unknown[] = [];
  for await (const session of onRedis.sessions()) users.push(session.get('user'));
  t.deepEqual(users.sort(), ['ann', 'bob', 'cy']);
  t.is((await listFiles(dir)).filter((file) => file.endsWith('.sess')).length, 3, 'migrate copies, the data dir keeps its sessions');

  // Not trusted: refused, with the reason and the redacted URL, nothing stored.
  const untrusted = await cli(['stats', '--redis', server.tlsUrl!, '--prefix', prefix]);
  t.not(untrusted.code, 0);
  t.regex(untrusted.stderr, new RegExp(`cannot connect to rediss://127\\.0\\.0\\.1:\\d+ \\((SELF_SIGNED|DEPTH_ZERO_SELF_SIGNED_CERT|UNABLE_TO_VERIFY)`));
  t.regex(untrusted.stderr, /to trust a private CA, set NODE_EXTRA_CA_CERTS to its PEM file/);
});
