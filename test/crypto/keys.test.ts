import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { isSealedSessionError, openStore, type Store } from '../../src/index.js';
import { fileNameOf } from '../../src/core/session-id.js';
import { createKeyring, generateKey, keyWeakness } from '../../src/crypto/keys.js';
import { runSnippet } from '../helpers/node-snippet.js';
import { KEY, listFiles, OLD_KEY, tempDir } from '../helpers/temp-dir.js';

const NEW_KEY = KEY;

/** The session file of `id` in `dir`. */
function fileOf(dir: string, id: string): string {
  const name = fileNameOf(id);
  return path.join(dir, name.slice(0, 2), `${name}.sess`);
}

/** The key id a session file was sealed with (bytes 4..12, hex). */
async function keyIdOf(dir: string, id: string): Promise<string> {
  return (await fs.readFile(fileOf(dir, id))).toString('hex', 4, 12);
}

async function newSession(store: Store, data: Record<string, unknown>): Promise<string> {
  const session = store.create();
  for (const [key, value] of Object.entries(data)) session.set(key, value);
  await session.save();
  return session.id;
}

interface ChildResult {
  readonly exitCode: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** The JSON the child printed on its last stdout line. */
  readonly result: Record<string, unknown>;
}

/**
 * Runs `body` (an async ESM snippet; `openStore` and `args` are in scope, `print(value)` reports
 * back) in a fresh Node process, with exactly the environment given on top of PATH: env changes
 * and the once-per-process dev key warning never leak between tests.
 */
async function child(body: string, args: unknown, env: Record<string, string>): Promise<ChildResult> {
  const print = `const print = (value) => console.log(JSON.stringify(value));`;
  const guarded = `try { ${body} } catch (error) { print({ error: { code: error.code, message: error.message, name: error.name } }); }`;
  const { code: exitCode, stdout, stderr } = await runSnippet(`${print}\n${guarded}`, args, env);
  const last = stdout.trim().split('\n').at(-1) ?? '';
  let result: Record<string, unknown> = {};
  try {
    result = JSON.parse(last) as Record<string, unknown>;
  } catch {
    // left empty: the assertions on `result` fail and show stderr
  }
  return { exitCode, stdout, stderr, result };
}

// ---------------------------------------------------------------- weak and missing keys

test('a 31-byte key is refused with ERR_SESSION_KEY_WEAK, 32 bytes are enough', async (t) => {
  const dir = await tempDir(t);
  const weak = 'w'.repeat(31);
  const error = await t.throwsAsync(openStore({ dir, keys: weak }), { code: 'ERR_SESSION_KEY_WEAK' });
  t.true(isSealedSessionError(error, 'ERR_SESSION_KEY_WEAK'));
  t.false(error?.message.includes(weak), 'the message contains the key');
  // Refused before anything touched the disk: no data dir, no dev key.
  await t.throwsAsync(fs.stat(dir), { code: 'ENOENT' });
  t.deepEqual(await fs.readdir(path.dirname(dir)), []);

  await t.notThrowsAsync(openStore({ dir, keys: '32-byte-key-0123456789abcdefghij' }));
});

test('the minimum is counted in UTF-8 bytes, not characters', async (t) => {
  const dir = await tempDir(t);
  // 16 characters, 32 bytes: accepted. 31 bytes in 16 characters: refused.
  const twoByteCharacters = 'éàèùâêîôûëïüçñøå';
  await t.notThrowsAsync(openStore({ dir, keys: twoByteCharacters }));
  await t.throwsAsync(openStore({ dir, keys: `${twoByteCharacters.slice(0, 15)}a` }), { code: 'ERR_SESSION_KEY_WEAK' });
});

test('a short pattern repeated, or fewer than 6 different characters, is refused with ERR_SESSION_KEY_WEAK naming keygen', async (t) => {
  const dir = await tempDir(t);
  const weak = [
    'a'.repeat(32),
    'password'.repeat(4),
    'abcd'.repeat(8),
    'abcdefgh'.repeat(5).slice(0, 37),
    'ab12'.repeat(16),
    '0123456789'.slice(0, 5).repeat(8),
    `${'x'.repeat(40)}yz`,
  ];
  for (const key of weak) {
    const error = await t.throwsAsync(openStore({ dir, keys: [KEY, key] }), { code: 'ERR_SESSION_KEY_WEAK' }, key);
    t.regex(error?.message ?? '', /key #2 .*sealed-sessions keygen/);
    t.false(error?.message.includes(key), 'the message contains the key');
  }
  t.deepEqual(await fs.readdir(path.dirname(dir)), [], 'refused before anything touched the disk');
  // Just over the bars: a 9-character pattern repeated, 6 different characters.
  t.is(keyWeakness('abcdefghi'.repeat(4)), null);
  t.is(keyWeakness('abcdef'.repeat(6).slice(1)), 'is a short pattern repeated');
  t.is(keyWeakness('aabbccddeeff'.repeat(3)), null);
});

test('real keys always pass: 10,000 each of keygen output, `openssl rand -hex 32` and `openssl rand -base64 32` forms', (t) => {
  const forms: Record<string, () => string> = {
    keygen: generateKey,
    hex: () => randomBytes(32).toString('hex'),
    base64: () => randomBytes(32).toString('base64'),
  };
  for (const [form, make] of Object.entries(forms)) {
    const refused: string[] = [];
    for (let count = 0; count < 10_000; count++) {
      const key = make();
      if (keyWeakness(key) !== null) refused.push(key);
    }
    t.deepEqual(refused, [], form);
  }
  // And through the keyring, the way a store takes them.
  t.notThrows(() => createKeyring([generateKey(), randomBytes(32).toString('hex'), randomBytes(32).toString('base64')]));
  // The repository's own test keys are not weak either.
  for (const key of [KEY, OLD_KEY]) t.is(keyWeakness(key), null);
});

test('one weak key among good ones is refused, whatever its position and form', async (t) => {
  const dir = await tempDir(t);
  const weak = 'weak-key-3f9a';
  for (const keys of [[NEW_KEY, weak, OLD_KEY], [weak, NEW_KEY], [NEW_KEY, OLD_KEY, weak], `${NEW_KEY},${weak}`, `${weak} , ${OLD_KEY}`]) {
    const error = await t.throwsAsync(openStore({ dir, keys }), { code: 'ERR_SESSION_KEY_WEAK' }, JSON.stringify(keys));
    t.false(error?.message.includes(weak), 'the message contains the key');
  }
  await t.throwsAsync(fs.stat(dir), { code: 'ENOENT' });
});

test('NODE_ENV=production without any key fails with ERR_SESSION_KEYS_MISSING and creates nothing', async (t) => {
  const dir = await tempDir(t);
  const body = `
    const outcomes = [];
    for (const keys of [undefined, '', ' , ', []]) {
      try {
        await openStore(keys === undefined ? { dir: args.dir } : { dir: args.dir, keys });
        outcomes.push('opened');
      } catch (error) {
        outcomes.push(error.code);
      }
    }
    print({ outcomes });`;
  const { result, stderr } = await child(body, { dir }, { NODE_ENV: 'production' });
  t.deepEqual(result['outcomes'], Array(4).fill('ERR_SESSION_KEYS_MISSING'), stderr);
  t.deepEqual(await fs.readdir(path.dirname(dir)), [], 'no dev key file, no data dir');
  t.false(stderr.includes('SEALED_SESSIONS_DEV_KEY'));
});

test('NODE_ENV=production with SESSION_KEYS opens', async (t) => {
  const dir = await tempDir(t);
  const { result, stderr } = await child(
    `const store = await openStore({ dir: args.dir }); const s = store.create(); s.set('a', 1); await s.save(); print({ id: s.id });`,
    { dir },
    { NODE_ENV: 'production', SESSION_KEYS: NEW_KEY },
  );
  t.is(typeof result['id'], 'string', stderr);
  const store = await openStore({ dir, keys: NEW_KEY });
  t.deepEqual((await store.load(String(result['id'])))?.toJSON(), { a: 1 });
});

// ---------------------------------------------------------------- where keys come from

test('SESSION_KEYS is used when no `keys` option is given (comma-separated, first one seals)', async (t) => {
  const dir = await tempDir(t);
  const oldStore = await openStore({ dir, keys: OLD_KEY });
  const oldId = await newSession(oldStore, { written: 'under old' });

  const body = `
    const store = await openStore({ dir: args.dir });
    const old = await store.load(args.oldId);
    const s = store.create(); s.set('written', 'by child'); await s.save();
    print({ old: old?.toJSON() ?? null, id: s.id });`;
  const { result, stderr } = await child(body, { dir, oldId }, { SESSION_KEYS: ` ${NEW_KEY} , ${OLD_KEY} ` });
  t.deepEqual(result['old'], { written: 'under old' }, stderr);
  const id = String(result['id']);
  // Sealed under the first key of SESSION_KEYS: a store with only that key reads it.
  const newStore = await openStore({ dir, keys: NEW_KEY });
  t.deepEqual((await newStore.load(id))?.toJSON(), { written: 'by child' });
  t.is(await keyIdOf(dir, id), await keyIdOf(dir, await newSession(newStore, {})));
  t.false(stderr.includes('SEALED_SESSIONS_DEV_KEY'), 'a dev key was announced although SESSION_KEYS was set');
  t.false(await fs.readdir(path.dirname(dir)).then((names) => names.some((name) => name.endsWith('.dev-key'))));
});

test('the `keys` option wins over SESSION_KEYS', async (t) => {
  const dir = await tempDir(t);
  const body = `const store = await openStore({ dir: args.dir, keys: args.key }); const s = store.create(); s.set('a', 1); await s.save(); print({ id: s.id });`;
  const { result, stderr } = await child(body, { dir, key: NEW_KEY }, { SESSION_KEYS: OLD_KEY });
  const id = String(result['id']);
  t.deepEqual((await (await openStore({ dir, keys: NEW_KEY })).load(id))?.toJSON(), { a: 1 }, stderr);
  t.is(await (await openStore({ dir, keys: OLD_KEY })).load(id), null);
});

test('a comma-separated `keys` string works like an array', async (t) => {
  const dir = await tempDir(t);
  const oldId = await newSession(await openStore({ dir, keys: OLD_KEY }), { n: 1 });
  const store = await openStore({ dir, keys: `${NEW_KEY},${OLD_KEY}` });
  t.deepEqual((await store.load(oldId))?.toJSON(), { n: 1 });
  const id = await newSession(store, { n: 2 });
  const arrayStore = await openStore({ dir, keys: [NEW_KEY, OLD_KEY] });
  t.deepEqual((await arrayStore.load(id))?.toJSON(), { n: 2 });
  t.deepEqual(arrayStore.signingSecrets, store.signingSecrets);
  // The first key of the string seals.
  t.deepEqual((await (await openStore({ dir, keys: NEW_KEY })).load(id))?.toJSON(), { n: 2 });
});

// ---------------------------------------------------------------- development key

test('without keys outside production, a dev key file is created beside the data dir, 0600, and reused', async (t) => {
  const dir = await tempDir(t);
  const keyFile = path.join(path.dirname(dir), '.sessions-data.dev-key');
  const body = `
    const warnings = [];
    process.on('warning', (w) => warnings.push({ code: w.code, message: w.message }));
    const store = await openStore({ dir: args.dir });
    const earlier = args.id ? await store.load(args.id) : null;
    const s = store.create(); s.set('canary', 'dev'); await s.save();
    await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
    print({ id: s.id, earlier: earlier?.toJSON() ?? null, warnings });`;

  const first = await child(body, { dir }, {});
  t.is(first.exitCode, 0, first.stderr);
  const firstWarnings = first.result['warnings'] as { code: string; message: string }[];
  t.is(firstWarnings.length, 1);
  t.is(firstWarnings[0]?.code, 'SEALED_SESSIONS_DEV_KEY');
  t.regex(firstWarnings[0]?.message ?? '', /created/);
  t.true(first.stderr.includes('[SEALED_SESSIONS_DEV_KEY]'), 'the warning is printed on stderr');

  // Beside the data dir, not inside it, and private.
  const stat = await fs.stat(keyFile);
  t.is(stat.mode & 0o777, 0o600);
  const key = (await fs.readFile(keyFile, 'utf8')).trim();
  t.true(Buffer.byteLength(key) >= 32);
  t.false((await listFiles(dir)).some((file) => file.includes('dev-key')));
  t.deepEqual((await fs.readdir(path.dirname(dir))).sort(), ['.sessions-data.dev-key', 'sessions-data']);
  for (const file of await listFiles(dir)) {
    t.is((await fs.readFile(path.join(dir, file))).indexOf(key), -1, `the dev key is in ${file}`);
  }
  // The warning names the file, never the key.
  t.false(first.stderr.includes(key));

  // Second start: the same key, so the session written before still reads.
  const second = await child(body, { dir, id: first.result['id'] }, { NODE_ENV: 'development' });
  t.is(second.exitCode, 0, second.stderr);
  t.deepEqual(second.result['earlier'], { canary: 'dev' });
  const secondWarnings = second.result['warnings'] as { code: string; message: string }[];
  t.deepEqual(
    secondWarnings.map((warning) => warning.code),
    ['SEALED_SESSIONS_DEV_KEY'],
  );
  t.regex(secondWarnings[0]?.message ?? '', /using/);
  t.is((await fs.readFile(keyFile, 'utf8')).trim(), key, 'the dev key changed');

  // It is an ordinary key: passing it explicitly reads the same sessions.
  const store = await openStore({ dir, keys: key });
  t.deepEqual((await store.load(String(second.result['id'])))?.toJSON(), { canary: 'dev' });
});

test('the dev key file is named after the data dir', async (t) => {
  const root = path.dirname(await tempDir(t));
  const dir = path.join(root, 'app-sessions');
  const { exitCode, stderr } = await child(`await openStore({ dir: args.dir }); print({});`, { dir }, {});
  t.is(exitCode, 0, stderr);
  t.deepEqual((await fs.readdir(root)).sort(), ['.app-sessions.dev-key', 'app-sessions']);
});

test('without keys, a data dir whose parent does not exist yet is created like with keys', async (t) => {
  // `dir` is documented as "created (0700) when missing", and with `keys` a missing parent is
  // created too. Without keys the dev key file is written (beside the dir) before the dir exists.
  const root = path.dirname(await tempDir(t));
  const dir = path.join(root, 'var', 'app', 'sessions-data');
  const withKeys = await child(
    `await openStore({ dir: args.dir, keys: args.key }); print({ ok: true });`,
    { dir: path.join(root, 'k', 'sessions-data'), key: NEW_KEY },
    {},
  );
  t.deepEqual(withKeys.result, { ok: true }, withKeys.stderr);

  const { result, stderr } = await child(`await openStore({ dir: args.dir }); print({ ok: true });`, { dir }, {});
  t.deepEqual(result, { ok: true }, stderr);
  t.is((await fs.stat(dir)).mode & 0o777, 0o700);
  t.is((await fs.stat(path.join(root, 'var', 'app', '.sessions-data.dev-key'))).mode & 0o777, 0o600);
});

// ---------------------------------------------------------------- key ids in files

test('each file names its key (bytes 4..12) and never contains the key', async (t) => {
  const dir = await tempDir(t);
  const a = await openStore({ dir, keys: NEW_KEY });
  const b = await openStore({ dir, keys: OLD_KEY });
  const aIds = [await newSession(a, { x: 1 }), await newSession(a, { x: 2 })];
  const bIds = [await newSession(b, { x: 3 }), await newSession(b, { x: 4 })];
  const aKeyIds = await Promise.all(aIds.map((id) => keyIdOf(dir, id)));
  const bKeyIds = await Promise.all(bIds.map((id) => keyIdOf(dir, id)));
  t.is(aKeyIds[0], aKeyIds[1]);
  t.is(bKeyIds[0], bKeyIds[1]);
  t.not(aKeyIds[0], bKeyIds[0]);
  // 8 bytes that are not simply the start of the key.
  t.not(aKeyIds[0], Buffer.from(NEW_KEY).toString('hex', 0, 8));

  const forms = [NEW_KEY, OLD_KEY].flatMap((key) => {
    const bytes = Buffer.from(key);
    return [bytes, Buffer.from(bytes.toString('hex')), Buffer.from(bytes.toString('base64')), Buffer.from(bytes.toString('base64url'))];
  });
  const files = await listFiles(dir);
  t.is(files.length, 4);
  for (const file of files) {
    const bytes = await fs.readFile(path.join(dir, file));
    for (const form of forms) t.is(bytes.indexOf(form), -1, `${file} contains a key`);
    // Also no 16-byte slice of a key (a key partly copied in).
    for (const key of [NEW_KEY, OLD_KEY]) {
      for (let start = 0; start + 16 <= key.length; start++) t.is(bytes.indexOf(key.slice(start, start + 16)), -1);
    }
  }
});

// ---------------------------------------------------------------- rotation

test('rotation: [new, old] reads old sessions, re-seals them under new on commit, then [new] alone reads them', async (t) => {
  const dir = await tempDir(t);
  const oldStore = await openStore({ dir, keys: OLD_KEY });
  const rewritten = await newSession(oldStore, { user: 'ada' });
  const untouched = await newSession(oldStore, { user: 'bob' });
  const oldKeyId = await keyIdOf(dir, rewritten);
  t.is(await keyIdOf(dir, untouched), oldKeyId);

  const rotated = await openStore({ dir, keys: [NEW_KEY, OLD_KEY] });
  const tamper: unknown[] = [];
  rotated.on('tamper', (event) => tamper.push(event));
  const session = await rotated.load(rewritten);
  t.deepEqual(session?.toJSON(), { user: 'ada' });
  t.deepEqual((await rotated.load(untouched))?.toJSON(), { user: 'bob' });
  t.is(await keyIdOf(dir, rewritten), oldKeyId, 'a load alone does not rewrite');

  session?.set('cart', [1, 2]);
  await session?.save();
  const newKeyId = await keyIdOf(dir, rewritten);
  t.not(newKeyId, oldKeyId);
  t.is(newKeyId, await keyIdOf(dir, await newSession(rotated, {})), 'not sealed under the first key');
  t.is(await keyIdOf(dir, untouched), oldKeyId);
  t.deepEqual(tamper, []);

  const newOnly = await openStore({ dir, keys: NEW_KEY });
  const events: { file: string; reason: string }[] = [];
  newOnly.on('tamper', (event) => events.push(event));
  t.deepEqual((await newOnly.load(rewritten))?.toJSON(), { user: 'ada', cart: [1, 2] });
  // Never rewritten: sealed under a key no longer configured.
  t.is(await newOnly.load(untouched), null);
  t.deepEqual(events, [{ file: path.relative(dir, fileOf(dir, untouched)), reason: 'unknown-key' }]);
  // The failed read destroyed nothing: with the old key back, it reads again.
  t.deepEqual((await rotated.load(untouched))?.toJSON(), { user: 'bob' });
});

test('rotation: a commit that changes no value still re-seals under the new key', async (t) => {
  const dir = await tempDir(t);
  const id = await newSession(await openStore({ dir, keys: OLD_KEY }), { user: 'ada' });
  const oldKeyId = await keyIdOf(dir, id);
  const rotated = await openStore({ dir, keys: [NEW_KEY, OLD_KEY] });
  const session = await rotated.load(id);
  session?.set('user', 'ada'); // the same value: same plaintext, but sealed under the old key
  await session?.save();
  t.not(await keyIdOf(dir, id), oldKeyId);
  t.deepEqual((await (await openStore({ dir, keys: NEW_KEY })).load(id))?.toJSON(), { user: 'ada' });
});

test('the signing secrets follow the keys: first signs, all verify, none is the key itself', async (t) => {
  const dir = await tempDir(t);
  const rotated = await openStore({ dir, keys: [NEW_KEY, OLD_KEY] });
  const newOnly = await openStore({ dir, keys: NEW_KEY });
  t.is(rotated.signingSecrets.length, 2);
  t.is(rotated.signingSecrets[0], newOnly.signingSecrets[0]);
  t.not(rotated.signingSecrets[0], rotated.signingSecrets[1]);
  for (const secret of rotated.signingSecrets) {
    t.false([NEW_KEY, OLD_KEY].includes(secret));
  }
});
