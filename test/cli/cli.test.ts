import fs from 'node:fs/promises';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import signature from 'cookie-signature';
import { openStore, type JsonValue, type Store } from '../../src/index.js';
import { devKeyPath } from '../../src/crypto/key-source.js';
import { createKeyring } from '../../src/crypto/keys.js';
import { cli, type CliResult } from '../helpers/cli.js';
import { exists, KEY, listFiles, OLD_KEY, sessionFileOf, tempDir } from '../helpers/temp-dir.js';

/*
 * The operations CLI, spawned as a child process with piped output, on real data dirs. The
 * commands that run alongside a writing process (rekey, backup) and verify's repair are in
 * cli-maintenance.test.ts.
 */

const COMMANDS = ['keygen', 'stats', 'gc', 'verify', 'rekey', 'show', 'backup', 'revoke', 'import-session-file-store', 'migrate'] as const;

/** Every output of a test, to check at its end that none holds an escape code, an id or a key. */
function recorder(t: ExecutionContext, secrets: () => readonly string[]) {
  const outputs: CliResult[] = [];
  t.teardown(() => {
    for (const { stdout, stderr } of outputs) {
      const text = stdout + stderr;
      // Piped: no progress bar, no colour.
      if (text.includes('\x1b')) t.fail('escape code in piped output');
      for (const secret of [...secrets(), KEY, OLD_KEY]) if (text.includes(secret)) t.fail('a session id or a key was printed');
    }
  });
  return async (args: readonly string[], env: Record<string, string> = {}) => {
    const result = await cli(args, env);
    outputs.push(result);
    return result;
  };
}

async function stored(store: Store, data: Record<string, JsonValue>): Promise<string> {
  const session = store.create();
  for (const [key, value] of Object.entries(data)) session.set(key, value);
  await session.save();
  return session.id;
}

test('keygen prints a fresh 32-byte base64url key that a store accepts', async (t) => {
  const first = await cli(['keygen']);
  const second = await cli(['keygen']);
  t.is(first.code, 0);
  const key = first.stdout.trim();
  t.regex(key, /^[A-Za-z0-9_-]{43}$/);
  t.is(Buffer.from(key, 'base64url').length, 32);
  t.not(key, second.stdout.trim());
  const store = await openStore({ dir: await tempDir(t), keys: key });
  const session = store.create();
  session.set('ok', true);
  await session.save();
  t.is((await store.load(session.id))?.get('ok'), true);
});

test('unknown command or bad flag → exit 2 with a one-line hint', async (t) => {
  const unknown = await cli(['frobnicate']);
  t.is(unknown.code, 2);
  t.regex(unknown.stderr, /unknown command 'frobnicate'.*--help/);
  t.is(unknown.stderr.trim().split('\n').length, 1);
  const badFlag = await cli(['keygen', '--nope']);
  t.is(badFlag.code, 2);
  t.regex(badFlag.stderr, /keygen --help/);
  const help = await cli(['keygen', '--help']);
  t.is(help.code, 0);
  t.regex(help.stdout, /SESSION_KEYS/);
});

test('every command has --help (exit 0); a bad flag, a missing or extra argument, or no data dir is exit 2 with a one-line hint', async (t) => {
  const dir = await tempDir(t);
  const run = recorder(t, () => []);
  const top = await run(['--help']);
  t.is(top.code, 0);
  for (const command of COMMANDS) t.true(top.stdout.includes(command), command);
  t.is((await run([])).code, 2);

  const helps = await Promise.all(COMMANDS.map((command) => run([command, '--help'])));
  helps.forEach((help, index) => {
    t.is(help.code, 0, COMMANDS[index]);
    t.regex(help.stdout, new RegExp(`^Usage: sealed-sessions ${COMMANDS[index]}`));
    t.regex(help.stdout, /Exit codes/);
  });

  const missingDir = path.join(path.dirname(dir), 'no-such-dir');
  const cases: Array<[readonly string[], RegExp]> = [
    [['stats', '--bogus'], /Unknown option '--bogus'/],
    [['gc', '--dry-run=yes', '--dir', dir], /--dry-run/],
    [['verify', '--repair', 'extra', '--dir', dir], /unexpected argument/],
    [['rekey', '--dir'], /--dir/],
    [['show', '--dir', dir], /missing <cookie value \| id>/],
    [['show', 'a', 'b', '--dir', dir], /expected one/],
    [['backup', '--dir', dir], /missing <dest>/],
    [['revoke', '--dir', dir], /missing --where/],
    [['revoke', '--where', 'novalue', '--dir', dir], /key=value/],
    [['stats', '--dir', missingDir], /no data dir/],
    [['gc', '--dir', missingDir], /no data dir/],
    [['rekey', '--dir', ''], /--dir must not be empty/],
    [['verify', '--dir', dir, '--key-file', path.join(dir, 'missing')], /cannot read --key-file \(ENOENT\)/],
  ];
  await fs.mkdir(dir);
  const results = await Promise.all(cases.map(([args]) => run(args, { SESSION_KEYS: KEY })));
  results.forEach((result, index) => {
    const [args, pattern] = cases[index]!;
    t.is(result.code, 2, args.join(' '));
    t.regex(result.stderr, pattern, args.join(' '));
    t.regex(result.stderr, new RegExp(`sealed-sessions ${args[0]} --help`));
    t.is(result.stderr.trim().split('\n').length, 1, args.join(' '));
    t.is(result.stdout, '');
  });
  // A mistyped --dir creates nothing.
  await t.throwsAsync(fs.stat(missingDir));

  // The commands that open sessions need a key; they never make one.
  for (const command of ['verify', 'rekey', 'revoke']) {
    const args = command === 'revoke' ? [command, '--where', 'a=b', '--dir', dir] : [command, '--dir', dir];
    const noKey = await run(args);
    t.is(noKey.code, 2, command);
    t.regex(noKey.stderr, /no session keys: set SESSION_KEYS or pass --key-file/);
  }
  const weak = await run(['verify', '--dir', dir], { SESSION_KEYS: 'short' });
  t.is(weak.code, 2);
  t.regex(weak.stderr, /shorter than 32 bytes/);
  await t.throwsAsync(fs.stat(devKeyPath(dir)));
});

test('stats works without any key, creates no key file, and --json has the counts', async (t) => {
  const dir = await tempDir(t);
  const store = await openStore({ dir, keys: KEY });
  const ids = await Promise.all([1, 2, 3].map((n) => stored(store, { n, text: 'x'.repeat(100 * n) })));
  // Two expired ones, written through a clock ten days back (absolute deadline an hour later).
  const past = await openStore({ dir, keys: OLD_KEY, now: () => Date.now() - 10 * 86_400_000, absoluteTimeout: 3600 });
  ids.push(...(await Promise.all([1, 2].map((n) => stored(past, { n })))));
  // Debris: a temp file and a lock folder.
  const some = (await listFiles(dir))[0]!;
  await fs.writeFile(path.join(dir, `${some}.123456`), 'half a write');
  await fs.mkdir(path.join(dir, `${some}.lock`));
  const before = await fs.readdir(path.dirname(dir));
  const run = recorder(t, () => ids);

  const json = await run(['stats', '--dir', dir, '--json']);
  t.is(json.code, 0, json.stderr);
  const result = JSON.parse(json.stdout) as Record<string, unknown>;
  t.like(result, { sessions: 5, live: 3, expired: 2, unreadable: 0, debris: 2 });
  const sizes = await Promise.all(
    (await listFiles(dir)).filter((file) => file.endsWith('.sess')).map(async (file) => (await fs.stat(path.join(dir, file))).size),
  );
  t.is(
    result['bytes'],
    sizes.reduce((a, b) => a + b, 0),
  );
  const [newId, oldId] = [createKeyring([KEY]).primary.idHex, createKeyring([OLD_KEY]).primary.idHex];
  t.deepEqual(result['byKeyId'], { [newId]: 3, [oldId]: 2 });

  const human = await run(['stats', '--dir', dir]);
  t.is(human.code, 0);
  t.regex(human.stdout, /5 files, .*3 live, 2 expired/);
  t.regex(human.stdout, /debris +2/);
  // With keys it says which id is which.
  const labelled = await run(['stats', '--dir', dir], { SESSION_KEYS: KEY });
  t.true(labelled.stdout.includes(`${newId} (first key): 3`));
  t.true(labelled.stdout.includes(`${oldId} (not configured): 2`));

  // Nothing was created: no development key beside the data dir, nothing inside it.
  t.deepEqual(await fs.readdir(path.dirname(dir)), before);
  await t.throwsAsync(fs.stat(devKeyPath(dir)));
});

test('gc removes exactly the expired sessions (and old debris), --dry-run removes nothing; no key needed', async (t) => {
  const dir = await tempDir(t);
  const store = await openStore({ dir, keys: KEY });
  const live = await Promise.all([1, 2, 3, 4, 5].map((n) => stored(store, { n })));
  const past = await openStore({ dir, keys: KEY, now: () => Date.now() - 10 * 86_400_000, absoluteTimeout: 3600 });
  const expired = await Promise.all([1, 2, 3, 4].map((n) => stored(past, { n })));
  // A temp file left by a writer killed two hours ago.
  const liveFile = sessionFileOf(dir, live[0]!);
  const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
  const oldTemp = `${liveFile}.424242`;
  await fs.writeFile(oldTemp, 'left by a killed writer');
  await fs.utimes(oldTemp, twoHoursAgo, twoHoursAgo);
  const run = recorder(t, () => [...live, ...expired]);

  const dry = await run(['gc', '--dir', dir, '--dry-run', '--json']);
  t.is(dry.code, 0, dry.stderr);
  t.like(JSON.parse(dry.stdout), { scanned: 9, expired: 4, removed: 0, debris: 1, debrisRemoved: 0 });
  t.is((await listFiles(dir)).length, 10);

  const human = await run(['gc', '--dir', dir]);
  t.is(human.code, 0, human.stderr);
  t.regex(human.stdout, /removed 4 of 4 expired sessions and 1 of 1 piece of debris/);
  const reopened = await openStore({ dir, keys: KEY });
  for (const id of live) t.truthy(await reopened.load(id));
  for (const id of expired) t.false(await exists(sessionFileOf(dir, id)));
  t.false(await exists(oldTemp));
  t.is((await listFiles(dir)).length, 5);
  const again = await run(['gc', '--dir', dir, '--json']);
  t.like(JSON.parse(again.stdout), { scanned: 5, expired: 0, removed: 0 });
});

test('revoke --where ends exactly the matching live sessions; values match as text or as JSON', async (t) => {
  const dir = await tempDir(t);
  const store = await openStore({ dir, keys: KEY });
  const alice = await Promise.all([1, 2, 3].map((n) => stored(store, { user: 'alice', n })));
  const bob = await Promise.all([1, 2].map((n) => stored(store, { user: 'bob', n })));
  const numeric = await stored(store, { userId: 42 });
  const text = await stored(store, { userId: '42' });
  const other = await stored(store, { userId: 421, user: { name: 'alice' } });
  const object = await stored(store, { user: { name: 'alice', roles: ['a'] } });
  const all = [...alice, ...bob, numeric, text, other, object];
  const run = recorder(t, () => all);
  const env = { SESSION_KEYS: KEY };

  const first = await run(['revoke', '--where', 'user=alice', '--dir', dir], env);
  t.is(first.code, 0, first.stderr);
  t.is(first.stdout.trim(), 'revoke: ended 3 sessions');
  const second = await run(['revoke', '--where', 'userId=42', '--dir', dir, '--json'], env);
  t.deepEqual(JSON.parse(second.stdout), { ended: 2, unopened: 0 });
  const third = await run(
    ['revoke', '--where', 'user={"roles":["a"],"name":"alice"}', '--where', 'user={"name":"alice","roles":["a"]}', '--dir', dir, '--json'],
    env,
  );
  t.deepEqual(JSON.parse(third.stdout), { ended: 1, unopened: 0 });
  const none = await run(['revoke', '--where', 'user=carol', '--dir', dir], env);
  t.is(none.code, 0);
  t.is(none.stdout.trim(), 'revoke: ended 0 sessions');

  const reopened = await openStore({ dir, keys: KEY });
  for (const id of [...alice, numeric, text, object]) t.is(await reopened.load(id), null);
  for (const id of [...bob, other]) t.truthy(await reopened.load(id));

  // A file these keys cannot open is not checked: said, exit 1.
  const foreign = await openStore({ dir, keys: OLD_KEY });
  all.push(await stored(foreign, { user: 'bob' }));
  const partial = await run(['revoke', '--where', 'user=bob', '--dir', dir, '--json'], env);
  t.is(partial.code, 1);
  t.deepEqual(JSON.parse(partial.stdout), { ended: 2, unopened: 1 });
  t.regex(partial.stderr, /1 file could not be opened/);
});

test('show prints a live session from its id, its cookie value, or an express-session cookie (plain or URL-encoded), never the id', async (t) => {
  const dir = await tempDir(t);
  const store = await openStore({ dir, keys: [KEY, OLD_KEY] });
  const data = { user: 'alice', roles: ['admin'], n: 1.5 };
  const id = await stored(store, data);
  const dashed = store.createWithId('-starts-with-a-dash');
  dashed.set('dash', true);
  await dashed.save();
  const ids = [id, dashed.id];
  const run = recorder(t, () => ids);
  const env = { SESSION_KEYS: `${KEY},${OLD_KEY}` };
  const file = sessionFileOf(dir, id);
  const mtime = (await fs.stat(file)).mtimeMs;

  const ours = signature.sign(id, store.signingSecrets[0]!);
  const byOldKey = signature.sign(id, createKeyring([OLD_KEY]).primary.cookieSecret);
  const expressSecret = 'the express-session secret';
  const expressCookie = `s:${signature.sign(id, expressSecret)}`;
  for (const [args, label] of [
    [[id], 'bare id'],
    [[ours], 'cookie value'],
    [[byOldKey], 'cookie value signed by the second key'],
    [[`s:${ours}`], 's: + our signature'],
    [['--secret', expressSecret, expressCookie], 'express-session cookie'],
    [['--secret', expressSecret, encodeURIComponent(expressCookie)], 'URL-encoded express-session cookie'],
  ] as const) {
    // The value after --: a random id starts with '-' one time in 64.
    const result = await run(['show', '--dir', dir, ...args.slice(0, -1), '--', args.at(-1)!], env);
    t.is(result.code, 0, `${label}: ${result.stderr}`);
    t.deepEqual(JSON.parse(result.stdout), data, label);
  }
  const compact = await run(['show', '--dir', dir, '--json', '--', ours], env);
  t.is(compact.stdout, `${JSON.stringify(data)}\n`);
  const dash = await run(['show', '--dir', dir, '--', dashed.id], env);
  t.is(dash.code, 0, dash.stderr);
  t.deepEqual(JSON.parse(dash.stdout), { dash: true });
  t.is((await fs.stat(file)).mtimeMs, mtime, 'looking is not a use: the file was not touched');

  // A signature that does not verify, an unknown id, an expired or destroyed session: exit 1.
  const forged = `${id}.${'A'.repeat(43)}`;
  const noSecret = await run(['show', '--dir', dir, expressCookie], env);
  const badSignature = await run(['show', '--dir', dir, '--', forged], env);
  const unknown = await run(['show', '--dir', dir, 'no-such-session-id'], env);
  for (const result of [noSecret, badSignature, unknown]) {
    t.is(result.code, 1);
    t.is(result.stdout, '');
    t.is(result.stderr.trim().split('\n').length, 1);
  }
  t.regex(badSignature.stderr, /signature does not verify/);
  t.regex(unknown.stderr, /no session has that id/);
  await store.destroy(id);
  const destroyed = await run(['show', '--dir', dir, '--', ours], env);
  t.is(destroyed.code, 1);
  t.regex(destroyed.stderr, /no session has that id/);
});

test('issue 11 item 7: show says which — bad signature, unknown id, expired, unreadable — and takes a value pasted with its cookie name', async (t) => {
  const dir = await tempDir(t);
  const store = await openStore({ dir, keys: KEY });
  const data = { user: 'alice' };
  const id = await stored(store, data);
  const past = await openStore({ dir, keys: KEY, now: () => Date.now() - 10 * 86_400_000, absoluteTimeout: 3600 });
  const expired = await stored(past, { old: true });
  const broken = await stored(store, { broken: true });
  const brokenFile = sessionFileOf(dir, broken);
  const bytes = await fs.readFile(brokenFile);
  bytes[bytes.length - 1]! ^= 0x01;
  await fs.writeFile(brokenFile, bytes);
  const ids = [id, expired, broken];
  const run = recorder(t, () => ids);
  const env = { SESSION_KEYS: KEY };
  const cookie = signature.sign(id, store.signingSecrets[0]!);

  const outcomes = {
    // After --: a random id starts with '-' one time in 64.
    signature: await run(['show', '--dir', dir, '--', `${id}.${'A'.repeat(43)}`], env),
    unknown: await run(['show', '--dir', dir, '--', 'no-such-session-id'], env),
    expired: await run(['show', '--dir', dir, '--', expired], env),
    unreadable: await run(['show', '--dir', dir, '--', broken], env),
  };
  t.regex(outcomes.signature.stderr, /the cookie's signature does not verify with these keys/);
  t.regex(outcomes.unknown.stderr, /no session has that id \(never made, ended, or removed after it expired\)/);
  t.regex(outcomes.expired.stderr, /that session expired at \d{4}-\d\d-\d\dT/);
  t.regex(outcomes.unreadable.stderr, /that session's file does not open \(authentication\); run `sealed-sessions verify`/);
  for (const result of Object.values(outcomes)) {
    t.is(result.code, 1);
    t.is(result.stdout, '');
    t.is(result.stderr.trim().split('\n').length, 1);
  }
  // Four different sentences: none is the catch-all of another.
  t.is(new Set(Object.values(outcomes).map((result) => result.stderr)).size, 4);

  // Pasted with the cookie's name, from a Cookie header or a Set-Cookie one, or express-session's.
  const expressSecret = 'the express-session secret';
  const express = encodeURIComponent(`s:${signature.sign(id, expressSecret)}`);
  for (const value of [`sid=${cookie}`, ` sid=${cookie}; Path=/; HttpOnly; SameSite=Lax`, `connect.sid=${express}`, `sid="${cookie}"`, `sid=${id}`]) {
    const result = await run(['show', '--dir', dir, '--secret', expressSecret, '--', value], env);
    t.is(result.code, 0, result.stderr);
    t.deepEqual(JSON.parse(result.stdout), data);
  }
  // An id of express-session's genid may itself hold '=': tried whole when the part after it names nothing.
  const odd = store.createWithId('team=blue');
  odd.set('odd', true);
  await odd.save();
  ids.push('team=blue');
  const whole = await run(['show', '--dir', dir, 'team=blue'], env);
  t.is(whole.code, 0, whole.stderr);
  t.deepEqual(JSON.parse(whole.stdout), { odd: true });
});

test('issue 11 item 7: a missing data dir is a usage error (exit 2) for every command, and every --help says so', async (t) => {
  const dir = await tempDir(t);
  const missing = path.join(path.dirname(dir), 'no-such-dir');
  const run = recorder(t, () => []);
  const env = { SESSION_KEYS: KEY };
  const commands: ReadonlyArray<readonly string[]> = [
    ['stats'],
    ['gc'],
    ['verify'],
    ['rekey'],
    ['show', 'some-id'],
    ['backup', path.join(path.dirname(dir), 'copy')],
    ['revoke', '--where', 'a=b'],
    ['migrate', '--to', path.join(path.dirname(dir), 'elsewhere'), '--from'],
  ];
  await Promise.all(
    commands.map(async (args) => {
      const [name] = args;
      const help = await run([name!, '--help']);
      t.regex(help.stdout, /Exit codes:[^]*2 usage error \([^)]*no data dir at --(dir|from)/, name);
      t.notRegex(help.stdout, /1 the data dir could not be read/, name);
      const result = await run(args[0] === 'migrate' ? [...args, missing] : [...args, '--dir', missing], env);
      t.is(result.code, 2, `${name}: ${result.stderr}`);
      t.regex(result.stderr, /no data dir at .*\(see --(dir|from)\)/, name);
    }),
  );
  await t.throwsAsync(fs.stat(missing));
});

test('the CLI modules reach the disk only through io.ts and print only through the CLI seam', async (t) => {
  const cliDir = path.resolve(import.meta.dirname, '../../src/cli');
  for (const file of await fs.readdir(cliDir)) {
    const text = await fs.readFile(path.join(cliDir, file), 'utf8');
    t.notRegex(text, /^import[^;]*from '(node:)?fs(\/promises)?'|^import[^;]*from '(proper-lockfile|write-file-atomic)'/m, file);
    t.notRegex(text, /console\.(log|error|warn|info|debug)\(|process\.(stdout|stderr)/, file);
  }
});
