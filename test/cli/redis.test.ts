import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import test, { type ExecutionContext } from 'ava';
import signature from 'cookie-signature';
import { main } from '../../src/cli/main.js';
import { expiresAt } from '../../src/core/expiry.js';
import { fileNameOf } from '../../src/core/session-id.js';
import { plaintextOf } from '../../src/core/sealed-session.js';
import { createKeyring } from '../../src/crypto/keys.js';
import { seal } from '../../src/crypto/seal.js';
import { openStore, type JsonValue, type Store } from '../../src/index.js';
import { redisBackend } from '../../src/redis.js';
import { clusterTarget, standaloneTarget, type Target } from '../backends/redis/targets.js';
import { cli, type CliResult } from '../helpers/cli.js';
import { KEY, listFiles, OLD_KEY, tempDir } from '../helpers/temp-dir.js';

/*
 * The operations CLI on Redis (issue 14): stats, gc, verify [--repair], rekey, revoke, show and
 * backup with --redis (repeated for a Cluster's seed nodes) and --prefix, spawned as a child
 * process with piped output, against a real redis-server and a real 3-master cluster. The CLI
 * logs in as an ACL user with a password in its URLs: no output may hold it, nor an id or a key.
 */

const PASSWORD = `pw-${randomBytes(9).toString('hex')}`;
const WITHOUT_REDIS = path.resolve(import.meta.dirname, '../fixtures/without-redis.mjs');
const targets: Partial<Record<'standalone' | 'cluster', Target>> = {};

test.before(async () => {
  // Generous time limits for the tests' own Redis calls: the whole suite loads this machine.
  [targets.standalone, targets.cluster] = await Promise.all([standaloneTarget({ timeoutMs: 60_000 }), clusterTarget({ timeoutMs: 60_000 })]);
  // A user of our own on every master (the default user stays open for the tests' own clients).
  for (const target of Object.values(targets)) {
    for (const master of target.masters) await master.sendCommand(['ACL', 'SETUSER', 'ops', 'on', `>${PASSWORD}`, '~*', '&*', '+@all']);
  }
});

test.after.always(async () => {
  await Promise.all(Object.values(targets).map((target) => target.stop()));
});

function withPassword(url: string): string {
  return url.replace('redis://', `redis://ops:${PASSWORD}@`);
}

/** `--redis <url>` for each node (with the password), `--prefix <prefix>`. */
function redisArgs(target: Target, prefix: string): string[] {
  return [...target.urls.flatMap((url) => ['--redis', withPassword(url)]), '--prefix', prefix];
}

/** Runs the CLI; at the test's end, no output may hold an escape code, the password, a key or a session id. */
function recorder(t: ExecutionContext, ids: () => readonly string[]) {
  const outputs: CliResult[] = [];
  t.teardown(() => {
    for (const { stdout, stderr } of outputs) {
      const text = stdout + stderr;
      if (text.includes('\x1b')) t.fail('escape code in piped output');
      if (text.includes(PASSWORD)) t.fail('the Redis password was printed');
      for (const secret of [...ids(), KEY, OLD_KEY]) if (text.includes(secret)) t.fail('a session id or a key was printed');
    }
  });
  return async (args: readonly string[], env: Record<string, string> = {}) => {
    const result = await cli(args, env);
    outputs.push(result);
    return result;
  };
}

async function storeOn(target: Target, prefix: string, keys: string | string[] = KEY): Promise<Store> {
  return openStore({ backend: redisBackend({ client: target.client, prefix }), keys });
}

async function stored(store: Store, data: Record<string, JsonValue>): Promise<string> {
  const session = store.create();
  for (const [key, value] of Object.entries(data)) session.set(key, value);
  await session.save();
  return session.id;
}

/** The session keys under `prefix` (not the quarantine's). */
async function sessionKeys(target: Target, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const { key } of target.envelopes.scanHeaders(prefix)) if (/^[0-9a-f]{64}$/.test(key.slice(prefix.length))) keys.push(key);
  return keys.sort();
}

const freshPrefix = (label: string) => `${label}${randomBytes(4).toString('hex')}:`;

for (const name of ['standalone', 'cluster'] as const) {
  test(`${name}: stats --json counts the keys under the prefix, per key id, with no key; gc says Redis expires them itself and removes what this clock says expired`, async (t) => {
    const target = targets[name]!;
    const prefix = freshPrefix('st');
    const ids = [
      ...(await Promise.all([1, 2, 3, 4, 5].map(async (n) => stored(await storeOn(target, prefix), { n, text: 'x'.repeat(50 * n) })))),
      ...(await Promise.all([1, 2].map(async (n) => stored(await storeOn(target, prefix, OLD_KEY), { n })))),
    ];
    // Another prefix on the same server is not counted.
    await stored(await storeOn(target, freshPrefix('other')), { elsewhere: true });
    const run = recorder(t, () => ids);

    const json = await run(['stats', ...redisArgs(target, prefix), '--json']);
    t.is(json.code, 0, json.stderr);
    const result = JSON.parse(json.stdout) as Record<string, unknown>;
    t.like(result, { sessions: 7, live: 7, expired: 0, unreadable: 0, debris: 0 });
    let bytes = 0;
    for (const key of await sessionKeys(target, prefix)) bytes += (await target.envelopes.get(key))!.length;
    t.is(result['bytes'], bytes);
    t.deepEqual(result['byKeyId'], { [createKeyring([KEY]).primary.idHex]: 5, [createKeyring([OLD_KEY]).primary.idHex]: 2 });
    const human = await run(['stats', ...redisArgs(target, prefix)], { SESSION_KEYS: KEY });
    t.is(human.code, 0, human.stderr);
    t.regex(human.stdout, /7 keys, .*7 live/);
    t.regex(human.stdout, /\(first key\): 5/);
    t.regex(human.stdout, /Redis removes each session key when it expires/);

    // A key that Redis still holds although its session expired by this machine's clock (sealed
    // with deadlines an hour back, stored with a day to live: a server clock behind ours).
    const staleId = `stale-${randomBytes(8).toString('hex')}`;
    const staleName = fileNameOf(staleId);
    const hourAgo = Date.now() - 3_600_000;
    const times = { created: hourAgo - 60_000, written: hourAgo - 60_000, absoluteDeadline: hourAgo, idleSeconds: 600 };
    const envelope = seal(createKeyring([KEY]), times, Buffer.from(plaintextOf(staleId, '{}')), staleName);
    await target.envelopes.compareAndSet(`${prefix}${staleName}`, Buffer.alloc(0), envelope, Date.now() + 86_400_000);
    ids.push(staleId);

    const dry = await run(['gc', ...redisArgs(target, prefix), '--dry-run', '--json']);
    t.is(dry.code, 0, dry.stderr);
    t.like(JSON.parse(dry.stdout), { scanned: 8, expired: 1, removed: 0, debris: 0 });
    const gc = await run(['gc', ...redisArgs(target, prefix)]);
    t.is(gc.code, 0, gc.stderr);
    t.regex(
      gc.stdout,
      /^gc: Redis removes expired session keys by itself; 8 keys scanned, 1 expired by this machine's clock but still in Redis, 1 of them removed/,
    );
    t.is(await target.envelopes.get(`${prefix}${staleName}`), null);
    t.is((await sessionKeys(target, prefix)).length, 7);
  });

  test(`${name}: verify finds a corrupted envelope; --repair quarantines it under <prefix>quarantine: (no expiry, never deleted) with findings.json; verify is clean after`, async (t) => {
    const target = targets[name]!;
    const prefix = freshPrefix('vf');
    const store = await storeOn(target, prefix);
    const ids = await Promise.all([1, 2, 3, 4].map((n) => stored(store, { n })));
    const bad = `${prefix}${fileNameOf(ids[0]!)}`;
    const corrupted = (await target.envelopes.get(bad))!;
    corrupted[corrupted.length - 1]! ^= 0x01;
    await target.envelopes.set(bad, corrupted);
    await target.envelopes.keepAlive(bad, Date.now() + 3_600_000);
    const run = recorder(t, () => ids);
    const env = { SESSION_KEYS: KEY };

    const found = await run(['verify', ...redisArgs(target, prefix), '--json'], env);
    t.is(found.code, 1, found.stderr);
    const report = JSON.parse(found.stdout) as { sessions: number; ok: number; problems: Record<string, number>; findings: Array<{ file: string }> };
    t.like(report, { sessions: 4, ok: 3, problems: { tampered: 1, unreadable: 0 } });
    t.deepEqual(
      report.findings.map((finding) => finding.file),
      [bad],
    );
    const human = await run(['verify', ...redisArgs(target, prefix)], env);
    t.is(human.code, 1);
    t.regex(human.stdout, /verify: 4 session keys, 3 open fine/);
    t.regex(human.stdout, /run `sealed-sessions verify --repair` to quarantine the tampered and unreadable keys/);

    const repair = await run(['verify', ...redisArgs(target, prefix), '--repair'], env);
    t.is(repair.code, 1, repair.stderr);
    t.regex(repair.stdout, new RegExp(`repair: 1 key moved to ${prefix}quarantine:[0-9TZ.-]+:\\* \\(never deleted\\)`));
    t.is(await target.envelopes.get(bad), null);
    const quarantined = [];
    for await (const { key } of target.envelopes.scanHeaders(`${prefix}quarantine:`)) quarantined.push(key);
    const moved = quarantined.find((key) => key.endsWith(`:${bad.slice(prefix.length)}`));
    const note = quarantined.find((key) => key.endsWith(':findings.json'));
    t.truthy(moved, quarantined.join(', '));
    t.deepEqual(await target.envelopes.get(moved!), corrupted, 'the bad envelope is kept whole');
    t.is(await target.envelopes.pexpiretime(moved!), Infinity, 'and never expires by itself');
    t.like(JSON.parse((await target.envelopes.get(note!))!.toString('utf8')), { files: [{ file: bad, problem: 'tampered' }] });

    const clean = await run(['verify', ...redisArgs(target, prefix)], env);
    t.is(clean.code, 0, clean.stdout);
    t.regex(clean.stdout, /3 session keys, 3 open fine[^]*no problems/);
    t.is((await sessionKeys(target, prefix)).length, 3);
  });

  test(`${name}: rekey moves every key to the first key, each keeping its expiry; revoke --where ends the matching sessions; show prints one`, async (t) => {
    const target = targets[name]!;
    const prefix = freshPrefix('rk');
    const old = await storeOn(target, prefix, OLD_KEY);
    const alice = await Promise.all([1, 2, 3].map((n) => stored(old, { user: 'alice', n })));
    const bob = await Promise.all([1, 2].map((n) => stored(old, { user: 'bob', n })));
    const ids = [...alice, ...bob];
    const run = recorder(t, () => ids);
    const expiries = new Map<string, number | null>();
    for (const key of await sessionKeys(target, prefix)) expiries.set(key, await target.envelopes.pexpiretime(key));

    const rekey = await run(['rekey', ...redisArgs(target, prefix), '--json'], { SESSION_KEYS: `${KEY},${OLD_KEY}` });
    t.is(rekey.code, 0, rekey.stderr);
    t.like(JSON.parse(rekey.stdout), { scanned: 5, rewritten: 5, current: 0, failed: { wrongKey: 0, tampered: 0, unreadable: 0, locked: 0 } });
    const stats = await run(['stats', ...redisArgs(target, prefix), '--json']);
    t.deepEqual((JSON.parse(stats.stdout) as { byKeyId: unknown }).byKeyId, { [createKeyring([KEY]).primary.idHex]: 5 });
    for (const [key, expiry] of expiries) t.is(await target.envelopes.pexpiretime(key), expiry, 'a rewrite is not a use');
    const again = await run(['rekey', ...redisArgs(target, prefix)], { SESSION_KEYS: `${KEY},${OLD_KEY}` });
    t.regex(again.stdout, /rewrote 0 sessions .*; 5 already were, .*\(5 session keys scanned\)/);

    const env = { SESSION_KEYS: KEY };
    const newStore = await storeOn(target, prefix);
    const cookie = signature.sign(bob[0]!, newStore.signingSecrets[0]!);
    const show = await run(['show', ...redisArgs(target, prefix), `sid=${cookie}`], env);
    t.is(show.code, 0, show.stderr);
    t.deepEqual(JSON.parse(show.stdout), { user: 'bob', n: 1 });
    const unknown = await run(['show', ...redisArgs(target, prefix), 'no-such-session'], env);
    t.is(unknown.code, 1);
    t.regex(unknown.stderr, /no session has that id/);

    const revoke = await run(['revoke', ...redisArgs(target, prefix), '--where', 'user=alice', '--json'], env);
    t.is(revoke.code, 0, revoke.stderr);
    t.deepEqual(JSON.parse(revoke.stdout), { ended: 3, unopened: 0 });
    for (const id of alice) t.is(await newStore.load(id), null);
    for (const id of bob) t.truthy(await newStore.load(id));
    t.is((await sessionKeys(target, prefix)).length, 2);
  });

  test(`${name}: backup --redis <dest> writes a data dir of files (mtime = last use) that a file store reads; the manifest names Redis without its password`, async (t) => {
    const target = targets[name]!;
    const prefix = freshPrefix('bk');
    const store = await storeOn(target, prefix);
    const ids = await Promise.all(Array.from({ length: 20 }, (_, n) => stored(store, { n })));
    const run = recorder(t, () => ids);
    const dest = path.join(path.dirname(await tempDir(t)), 'backup');

    const result = await run(['backup', ...redisArgs(target, prefix), dest, '--json']);
    t.is(result.code, 0, result.stderr);
    const manifest = JSON.parse(result.stdout) as { sessions: number; source: string };
    t.is(manifest.sessions, 20);
    t.regex(manifest.source, /^redis:\/\/\*\*\*@127\.0\.0\.1:\d+/);
    t.true(manifest.source.includes(`(prefix ${prefix})`));
    t.false((await fs.readFile(path.join(dest, 'sealed-sessions-backup.json'), 'utf8')).includes(PASSWORD));
    t.is((await listFiles(dest)).filter((file) => file.endsWith('.sess')).length, 20);

    const copy = await openStore({ dir: dest, keys: KEY });
    for (const [n, id] of ids.entries()) {
      const outcome = await copy.read(fileNameOf(id), true);
      if (outcome.state !== 'found') {
        t.fail(`session ${n} is not in the copy`);
        continue;
      }
      t.is(outcome.session.data.get('n'), n);
      const key = `${prefix}${fileNameOf(id)}`;
      // The file's mtime is the last use Redis implies: the same expiry, to the ms.
      t.is<number | null, number | null>(Math.floor(expiresAt(outcome.session.header, outcome.session.mtimeMs)), await target.envelopes.pexpiretime(key));
    }
  });

  test(`${name}: usage errors, an unreachable Redis and a wrong password say so without the password; the counter of keys draws on a terminal only`, async (t) => {
    const target = targets[name]!;
    const prefix = freshPrefix('us');
    const run = recorder(t, () => []);
    const dir = await tempDir(t);
    await fs.mkdir(dir);

    const wrongUrls = target.urls.flatMap((url) => ['--redis', url.replace('redis://', `redis://ops:not-${PASSWORD}@`)]);
    const hidden = { NODE_OPTIONS: `--import=${WITHOUT_REDIS}` };
    const [both, prefixAlone, scheme, malformed, refused, wrong, tls, missing, filesOnly] = await Promise.all([
      run(['stats', '--dir', dir, ...redisArgs(target, prefix)]),
      run(['stats', '--dir', dir, '--prefix', prefix]),
      run(['stats', '--redis', `http://ops:${PASSWORD}@127.0.0.1:1`]),
      run(['stats', '--redis', `redis://ops:${PASSWORD}@[bad`]),
      run(['stats', '--redis', `redis://ops:${PASSWORD}@127.0.0.1:1`]),
      run(['stats', ...wrongUrls]),
      run(['stats', '--redis', target.urls[0]!.replace('redis://', `rediss://ops:${PASSWORD}@`)]),
      // Without the `redis` package installed: exit 2, and the command that installs it.
      run(['stats', ...redisArgs(target, prefix)], hidden),
      // A data dir needs no Redis at all.
      run(['stats', '--dir', dir], hidden),
    ]);
    t.is(both.code, 2);
    t.regex(both.stderr, /--dir and --redis: give one of them/);
    t.is(prefixAlone.code, 2);
    t.regex(prefixAlone.stderr, /--prefix goes with --redis/);
    t.is(scheme.code, 2);
    t.regex(scheme.stderr, /--redis takes a redis:\/\/ or rediss:\/\/ URL/);
    t.is(malformed.code, 2);
    t.regex(malformed.stderr, /a Redis URL is redis:\/\/\[user:password@\]host/);
    t.is(refused.code, 1);
    t.regex(refused.stderr, /cannot connect to redis:\/\/\*\*\*@127\.0\.0\.1:1 \(ECONNREFUSED\)/);
    t.is(wrong.code, 1);
    t.regex(wrong.stderr, /cannot connect to redis:\/\/\*\*\*@127\.0\.0\.1:\d+.* \(WRONGPASS\)/);
    t.false(wrong.stderr.includes(`not-${PASSWORD}`));
    t.is(tls.code, 1, 'rediss:// is accepted, and a server without TLS refuses it');
    t.regex(tls.stderr, /cannot connect to rediss:\/\/\*\*\*@127\.0\.0\.1:\d+/);
    t.is(missing.code, 2, missing.stderr);
    t.regex(missing.stderr, /needs the `redis` package .*npm install redis/);
    t.is(filesOnly.code, 0, filesOnly.stderr);

    // On a terminal, a counter of the keys scanned (no total is known beforehand), erased at the end.
    await Promise.all(Array.from({ length: 30 }, async (_, n) => stored(await storeOn(target, prefix), { n })));
    const drawn: Buffer[] = [];
    const terminal = new PassThrough();
    terminal.on('data', (chunk: Buffer) => drawn.push(chunk));
    const out: string[] = [];
    const code = await main(['stats', ...redisArgs(target, prefix), '--json'], { out: (text) => out.push(text), err: () => undefined, progress: terminal });
    t.is(code, 0);
    const screen = Buffer.concat(drawn).toString('utf8');
    t.regex(screen, /^\rstats: 0 keys scanned/);
    t.true(screen.endsWith('\r\x1b[2K'), 'erased before the result');
    t.like(JSON.parse(out[0]!), { sessions: 30 });
  });
}
