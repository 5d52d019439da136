import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import test, { type ExecutionContext } from 'ava';
import { createClient, RESP_TYPES } from 'redis';
import { HEADER_BYTES, nonceOf, redisEnvelopes, type RedisEnvelopes } from '../../../src/backends/redis/envelopes.js';
import { keySlot } from '../../../src/backends/redis/key-slot.js';
import { COMPARE_AND_SET, READ_IF_CHANGED } from '../../../src/backends/redis/scripts.js';
import { fileNameOf } from '../../../src/core/session-id.js';
import { createKeyring } from '../../../src/crypto/keys.js';
import { HEADER_BYTES as SEAL_HEADER_BYTES, seal, unseal } from '../../../src/crypto/seal.js';
import { isSealedSessionError } from '../../../src/errors.js';
import { KEY } from '../../helpers/temp-dir.js';
import { fakeEnvelope, listOf, withBody } from './fixtures/fake-envelope.js';
import { clusterTarget, standaloneTarget, type Target, type TargetName } from './targets.js';

/*
 * The envelope operations against a real redis-server and a real 3-master cluster, both started
 * once for this file. Every test works on keys of its own, so they run concurrently.
 */

const targets = new Map<TargetName, Target>();

test.before(async (t) => {
  const started = performance.now();
  const [standalone, cluster] = await Promise.all([standaloneTarget(), clusterTarget()]);
  targets.set('standalone', standalone).set('cluster', cluster);
  t.log(`standalone server and 3-master cluster up in ${Math.round(performance.now() - started)} ms`);
});

test.after.always(async () => {
  await Promise.all([...targets.values()].map((target) => target.stop()));
});

function target(name: TargetName): Target {
  const found = targets.get(name);
  if (found === undefined) throw new Error(`${name} did not start`);
  return found;
}

const NONE = Buffer.alloc(0);
const inAMinute = () => Date.now() + 60_000;
const key = (label: string) => `sess:${label}:${randomUUID()}`;

const onBoth = test.macro({
  exec: (t: ExecutionContext, name: TargetName, body: (t: ExecutionContext, target: Target) => Promise<void>) => body(t, target(name)),
  title: (title, name) => `${title ?? ''} (${name})`,
});

function both(title: string, body: (t: ExecutionContext, target: Target) => Promise<void>): void {
  test(title, onBoth, 'standalone', body);
  test(title, onBoth, 'cluster', body);
}

/** Polls until `check` holds, failing after `ms`: no fixed long sleeps. */
async function eventually(check: () => Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await sleep(20);
  }
  return check();
}

both('a binary envelope round-trips byte for byte, with its expiry', async (t, { envelopes }) => {
  const k = key('binary');
  const every = Buffer.from(Array.from({ length: 512 }, (_, i) => 255 - (i % 256)));
  const envelope = withBody(every);
  const pxat = inAMinute();
  t.true(await envelopes.compareAndSet(k, NONE, envelope, pxat));
  t.deepEqual(await envelopes.get(k), envelope);
  const read = await envelopes.read(k);
  t.deepEqual(read?.envelope, envelope);
  t.is(read?.expireAtMs, Math.floor(pxat));
  t.is(await envelopes.get(key('missing')), null);
  t.is(await envelopes.read(key('missing')), null);
});

both('real sealed envelopes: the nonce the scripts compare is the one seal() draws, and they open after the trip', async (t, { envelopes }) => {
  t.is(HEADER_BYTES, SEAL_HEADER_BYTES);
  const keyring = createKeyring([KEY]);
  const name = fileNameOf(randomUUID());
  const k = `sess:${name}`;
  const now = Date.now();
  const times = { created: now, written: now, absoluteDeadline: now + 3_600_000, idleSeconds: 1800 };
  const first = seal(keyring, times, Buffer.from('{"user":"alice"}'), name);
  const second = seal(keyring, times, Buffer.from('{"user":"alice"}'), name);
  t.notDeepEqual(nonceOf(first), nonceOf(second), 'same data, new nonce');
  t.true(await envelopes.compareAndSet(k, NONE, first, inAMinute()));
  t.false((await envelopes.getIfChanged(k, nonceOf(first)))?.changed);
  t.false(await envelopes.compareAndSet(k, nonceOf(second), second, inAMinute()));
  t.true(await envelopes.compareAndSet(k, nonceOf(first), second, inAMinute()));
  const opened = unseal(keyring, (await envelopes.get(k))!, name);
  t.true(opened.ok && opened.plaintext.toString() === '{"user":"alice"}');
});

both('getIfChanged: unchanged without the envelope, the new one after a write elsewhere, null once deleted', async (t, { envelopes }) => {
  const k = key('revalidate');
  const first = fakeEnvelope(['first']);
  const pxat = inAMinute();
  await envelopes.compareAndSet(k, NONE, first, pxat);
  t.like(await envelopes.getIfChanged(k, nonceOf(first)), { changed: false, expireAtMs: pxat });

  // A keep-alive elsewhere moves the expiry, not the envelope: still unchanged, with the new expiry.
  await envelopes.keepAlive(k, pxat + 5000);
  t.like(await envelopes.getIfChanged(k, nonceOf(first)), { changed: false, expireAtMs: pxat + 5000 });

  const second = fakeEnvelope(['second']);
  t.true(await envelopes.compareAndSet(k, nonceOf(first), second, pxat));
  t.deepEqual(await envelopes.getIfChanged(k, nonceOf(first)), { changed: true, envelope: second, expireAtMs: pxat });
  t.like(await envelopes.getIfChanged(k, nonceOf(second)), { changed: false, expireAtMs: pxat });

  t.true(await envelopes.del(k));
  t.is(await envelopes.getIfChanged(k, nonceOf(second)), null);
});

both('compareAndSet: create only if absent, refuse a stale nonce, accept the current one, never resurrect', async (t, { envelopes }) => {
  const k = key('cas');
  const a = fakeEnvelope(['a']);
  const b = fakeEnvelope(['b']);
  const c = fakeEnvelope(['c']);
  t.true(await envelopes.compareAndSet(k, NONE, a, inAMinute()));
  t.false(await envelopes.compareAndSet(k, NONE, b, inAMinute()), 'a second create of the same key');
  t.false(await envelopes.compareAndSet(k, nonceOf(b), c, inAMinute()), 'a nonce that was never stored');
  t.deepEqual(await envelopes.get(k), a);
  t.true(await envelopes.compareAndSet(k, nonceOf(a), b, inAMinute()));
  t.false(await envelopes.compareAndSet(k, nonceOf(a), c, inAMinute()), 'the nonce it replaced');
  t.deepEqual(listOf((await envelopes.get(k))!), ['b']);

  // Destroyed stays destroyed: a late commit against the old version stores nothing.
  t.true(await envelopes.del(k));
  t.false(await envelopes.compareAndSet(k, nonceOf(b), c, inAMinute()));
  t.is(await envelopes.get(k), null);
});

both('compareAndDelete deletes only the version it names; del whatever is there', async (t, { envelopes }) => {
  const k = key('cad');
  const a = fakeEnvelope(['a']);
  const b = fakeEnvelope(['b']);
  await envelopes.compareAndSet(k, NONE, a, inAMinute());
  await envelopes.compareAndSet(k, nonceOf(a), b, inAMinute());
  t.false(await envelopes.compareAndDelete(k, nonceOf(a)));
  t.deepEqual(await envelopes.get(k), b);
  t.true(await envelopes.compareAndDelete(k, nonceOf(b)));
  t.is(await envelopes.get(k), null);
  t.false(await envelopes.compareAndDelete(k, nonceOf(b)));
  t.false(await envelopes.del(k));
});

both('the PXAT deadline is the key’s expiry: gone after it, and at once when already past', async (t, { envelopes }) => {
  const k = key('pxat');
  const envelope = fakeEnvelope(['short']);
  const pxat = Date.now() + 1000;
  t.true(await envelopes.compareAndSet(k, NONE, envelope, pxat));
  t.is((await envelopes.pexpiretime(k)) ?? pxat, pxat);
  // Judged by when each answer arrived: Redis ran the command before that, so a "gone" that
  // arrives before the deadline is an early expiry, whatever this busy process's delays.
  let firstAnswerAt = 0;
  let seenPresent = false;
  let goneAnsweredAt = 0;
  t.true(
    await eventually(async () => {
      const value = await envelopes.get(k);
      const answeredAt = Date.now();
      firstAnswerAt ||= answeredAt;
      if (value !== null) {
        t.deepEqual(value, envelope);
        seenPresent = true;
        return false;
      }
      goneAnsweredAt = answeredAt;
      return true;
    }, 4000),
  );
  t.true(goneAnsweredAt >= pxat, `not before its time: gone ${pxat - goneAnsweredAt} ms early`);
  t.true(seenPresent || firstAnswerAt >= pxat, 'present until then');

  // A deadline in the past: the commit "succeeds" into absence, on a new key and on an existing one.
  const past = Date.now() - 1000;
  t.true(await envelopes.compareAndSet(k, NONE, envelope, past));
  t.is(await envelopes.get(k), null);
  const live = fakeEnvelope(['live']);
  await envelopes.compareAndSet(k, NONE, live, inAMinute());
  t.true(await envelopes.compareAndSet(k, nonceOf(live), fakeEnvelope(['late']), past));
  t.is(await envelopes.get(k), null);
  t.is(await envelopes.pexpiretime(k), null);
});

both('keepAlive (PEXPIREAT … GT) extends, never shortens, never resurrects', async (t, { envelopes }) => {
  const k = key('keep');
  const envelope = fakeEnvelope(['kept']);
  const pxat = inAMinute();
  await envelopes.compareAndSet(k, NONE, envelope, pxat);
  t.is(await envelopes.pexpiretime(k), pxat);
  t.false(await envelopes.keepAlive(k, pxat - 10_000));
  t.false(await envelopes.keepAlive(k, Date.now() - 1000), 'a past time neither shortens nor deletes');
  t.is(await envelopes.pexpiretime(k), pxat);
  t.true(await envelopes.keepAlive(k, pxat + 10_000));
  t.is(await envelopes.pexpiretime(k), pxat + 10_000);
  t.deepEqual(await envelopes.get(k), envelope, 'the envelope is untouched');

  const gone = key('gone');
  t.false(await envelopes.keepAlive(gone, inAMinute()));
  t.is(await envelopes.get(gone), null);
  t.is(await envelopes.pexpiretime(gone), null);
});

both('scripts run on the node that owns the key, loaded there by EVAL after NOSCRIPT', async (t, { envelopes, masters, masterOf }) => {
  // Keys on every master (a cluster spreads 30 random keys over all three, practically always).
  const keys = Array.from({ length: 30 }, () => key('noscript'));
  await Promise.all(masters.map((master) => master.sendCommand(['SCRIPT', 'FLUSH'])));
  for (const k of keys) {
    const envelope = fakeEnvelope([k]);
    t.true(await envelopes.compareAndSet(k, NONE, envelope, inAMinute()));
    t.like(await envelopes.getIfChanged(k, nonceOf(envelope)), { changed: false, expireAtMs: (await envelopes.pexpiretime(k))! });
  }
  const owners = new Set(await Promise.all(keys.map(masterOf)));
  t.is(owners.size, masters.length, 'keys on every master');
  for (const owner of owners) {
    t.deepEqual(await owner.sendCommand(['SCRIPT', 'EXISTS', COMPARE_AND_SET.sha1, READ_IF_CHANGED.sha1]), [1, 1]);
  }
});

both(
  'scanHeaders finds every session key of 1,000 on every master, with its header, expiry and size, and nothing else',
  async (t, { name, envelopes, client, masters }) => {
    const prefix = `scan-${name}-${randomUUID()}:`;
    const stored = new Map<string, { header: Buffer; expireAtMs: number; size: number }>();
    const base = inAMinute();
    await Promise.all(
      Array.from({ length: 1000 }, async (_, i) => {
        const k = `${prefix}${randomUUID()}`;
        const envelope = fakeEnvelope([String(i)], { idleSeconds: i });
        const expireAtMs = base + i;
        await envelopes.compareAndSet(k, NONE, envelope, expireAtMs);
        stored.set(k, { header: envelope.subarray(0, HEADER_BYTES), expireAtMs, size: envelope.length });
      }),
    );
    // Decoys: another prefix, a non-string under the prefix, a prefix that would glob-match.
    await envelopes.compareAndSet(`other-${prefix}x`, NONE, fakeEnvelope([]), inAMinute());
    await client.hSet(`${prefix}a-hash`, 'field', 'value');
    await envelopes.compareAndSet(`${prefix.slice(0, -1)}X:y`, NONE, fakeEnvelope([]), inAMinute());

    const seen = new Map<string, { header: Buffer; expireAtMs: number; size: number }>();
    for await (const { key: k, header, expireAtMs, size } of envelopes.scanHeaders(prefix)) seen.set(k, { header, expireAtMs, size });
    t.is(seen.size, 1000);
    const sorted = (map: Map<string, unknown>) => [...map].sort(([a], [b]) => (a < b ? -1 : 1));
    t.deepEqual(sorted(seen), sorted(stored));

    if (name === 'cluster') {
      const slots = new Set([...stored.keys()].map((k) => keySlot(k)));
      t.true(slots.size > 900, `spread over ${slots.size} slots`);
      const perMaster = await Promise.all(masters.map((master) => master.dbSize()));
      t.true(
        perMaster.every((count) => count > 250),
        `keys per master: ${perMaster.join(', ')}`,
      );
    }
    // A glob character in the prefix is matched literally.
    const odd = `scan-*?[odd]\\-${randomUUID()}:`;
    await envelopes.compareAndSet(`${odd}1`, NONE, fakeEnvelope([]), inAMinute());
    const found: string[] = [];
    for await (const header of envelopes.scanHeaders(odd)) found.push(header.key);
    t.deepEqual(found, [`${odd}1`]);
  },
);

test('keySlot agrees with CLUSTER KEYSLOT, hash tags and UTF-8 included', async (t) => {
  const [master] = target('cluster').masters;
  const keys = [
    '',
    'a',
    'sess:abc',
    '{user1000}.following',
    'foo{}{bar}',
    'foo{{bar}}zap',
    'foo{bar}{zap}',
    '{}x',
    'clé:é€😀',
    ...Array.from({ length: 200 }, () => key('slot')),
  ];
  for (const k of keys) t.is(keySlot(k), Number(await master!.sendCommand(['CLUSTER', 'KEYSLOT', k])), k);
});

// Serial: it changes a server setting that the other tests' configWarnings() calls would see.
test.serial('configWarnings: none by default; maxmemory-policy other than noeviction is named', async (t) => {
  for (const { envelopes, masters } of targets.values()) {
    t.deepEqual(await envelopes.configWarnings(), []);
    const last = masters.at(-1)!;
    await last.configSet('maxmemory-policy', 'volatile-lru');
    try {
      const warnings = await envelopes.configWarnings();
      t.is(warnings.length, 1);
      t.regex(warnings[0]!, /maxmemory-policy is volatile-lru/);
    } finally {
      await last.configSet('maxmemory-policy', 'noeviction');
    }
  }
});

test('configWarnings: CONFIG denied is a warning, not an error', async (t) => {
  const { urls, masters } = target('standalone');
  const user = `limited-${randomUUID()}`;
  await masters[0]!.sendCommand(['ACL', 'SETUSER', user, 'on', '>secret-password', '~*', '&*', '+@all', '-config']);
  const limited = await createClient({ url: urls[0]!, username: user, password: 'secret-password' })
    .on('error', () => undefined)
    .connect();
  t.teardown(() => limited.destroy());
  const warnings = await redisEnvelopes(limited).configWarnings();
  t.is(warnings.length, 1);
  t.regex(warnings[0]!, /could not check Redis maxmemory-policy/);
});

test('a client with a Buffer type mapping of its own, and a RESP3 client, work the same', async (t) => {
  const { urls } = target('standalone');
  const resp3 = await createClient({ url: urls[0]!, RESP: 3 })
    .on('error', () => undefined)
    .connect();
  const plain = await createClient({ url: urls[0]! })
    .on('error', () => undefined)
    .connect();
  t.teardown(() => {
    resp3.destroy();
    plain.destroy();
  });
  for (const client of [plain.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer }), resp3]) {
    const envelopes: RedisEnvelopes = redisEnvelopes(client);
    const prefix = `mapped-${randomUUID()}:`;
    const envelope = fakeEnvelope(['x']);
    await envelopes.compareAndSet(`${prefix}1`, NONE, envelope, inAMinute());
    t.like(await envelopes.getIfChanged(`${prefix}1`, nonceOf(envelope)), { changed: false, expireAtMs: (await envelopes.pexpiretime(`${prefix}1`))! });
    const keys: string[] = [];
    for await (const header of envelopes.scanHeaders(prefix)) keys.push(header.key);
    t.deepEqual(keys, [`${prefix}1`]);
    t.deepEqual(await envelopes.configWarnings(), []);
  }
});

test('bad arguments are refused before anything is sent', async (t) => {
  const { envelopes, client } = target('standalone');
  const envelope = fakeEnvelope([]);
  await t.throwsAsync(envelopes.compareAndSet(key('bad'), Buffer.alloc(5), envelope, inAMinute()), { instanceOf: TypeError });
  await t.throwsAsync(envelopes.compareAndSet(key('bad'), NONE, Buffer.alloc(10), inAMinute()), { instanceOf: TypeError });
  await t.throwsAsync(envelopes.compareAndSet(key('bad'), NONE, envelope, Number.NaN), { instanceOf: TypeError });
  await t.throwsAsync(envelopes.compareAndDelete(key('bad'), NONE), { instanceOf: TypeError });
  await t.throwsAsync(envelopes.waitReplicas(key('bad'), 1, 0), { instanceOf: TypeError });
  for (const options of [{ timeoutMs: 0 }, { timeoutMs: Number.POSITIVE_INFINITY }, { scanCount: 1.5 }]) {
    const error = t.throws(() => redisEnvelopes(client, options));
    t.true(isSealedSessionError(error, 'ERR_SESSION_OPTION'));
  }
});

both('waitReplicas answers at once with 0 when there is no replica', async (t, { envelopes }) => {
  const k = key('wait');
  await envelopes.compareAndSet(k, NONE, fakeEnvelope([]), inAMinute());
  await envelopes.del(k);
  t.is(await envelopes.waitReplicas(k, 0, 100), 0);
});
