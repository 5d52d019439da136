import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { promisify } from 'node:util';
import test, { type ExecutionContext } from 'ava';
import express from 'express';
import session from 'express-session';
import { SealedStore } from '../../src/express-session.js';
import { importSessionFileStore } from '../../src/ops/import-session-file-store.js';
import { devKeyPath } from '../../src/crypto/key-source.js';
import { CookieJar, listen } from '../helpers/http.js';
import { KEY, listFiles, OLD_KEY, tempDir } from '../helpers/temp-dir.js';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '../..');
const bin = path.join(root, 'src/bin.ts');

// The real session-file-store (CommonJS, no types of its own).
type StoreClass = new (options: Record<string, unknown>) => session.Store;
const FileStore = (createRequire(import.meta.url)('session-file-store') as (s: typeof session) => StoreClass)(session);

const COOKIE_SECRET = 'express-session cookie secret, the same before and after';
const FILE_STORE_SECRET = 'session-file-store secret 9f2c';

interface User {
  readonly name: string;
  readonly sid: string;
  readonly jar: CookieJar;
  readonly live: boolean;
  /** What the app put in the session. */
  readonly data: Record<string, unknown>;
}

interface Source {
  readonly dir: string;
  readonly users: readonly User[];
  readonly fileStore: session.Store;
}

/** What the app keeps in a session: enough shapes to catch a lossy round trip. */
function profileOf(name: string): Record<string, unknown> {
  return {
    name,
    roles: name === 'alice' ? ['admin', 'reader'] : ['reader'],
    prefs: { theme: 'dark', pageSize: 25, beta: name.length % 2 === 0, nothing: null },
    greeting: `héllo ${name} ✓ "quoted" \\ </script>`,
    visits: [1, 2.5, -3],
  };
}

/**
 * A session-file-store folder written by the real package through express-session: five live
 * sessions (one with a browser-session cookie, no maxAge), two whose maxAge ran out, and one
 * stored straight through the Store API with `cookie.expires` in the past.
 */
async function fileStoreDir(t: ExecutionContext, secret?: string): Promise<Source> {
  const dir = path.join(path.dirname(await tempDir(t)), 'file-sessions');
  const fileStore = new FileStore({ path: dir, reapInterval: -1, logFn: () => undefined, ...(secret === undefined ? {} : { secret }) });
  const app = express();
  app.use(session({ store: fileStore, secret: COOKIE_SECRET, resave: false, saveUninitialized: false, cookie: { maxAge: 3_600_000 } }));
  app.get('/login', (req, res) => {
    const name = String(req.query['user']);
    const fields = req.session as unknown as Record<string, unknown>;
    fields['user'] = profileOf(name);
    fields['loggedInAt'] = 1_700_000_000_000;
    if (req.query['ms'] === 'browser') req.session.cookie.maxAge = null as unknown as number;
    else if (typeof req.query['ms'] === 'string') req.session.cookie.maxAge = Number(req.query['ms']);
    res.json({ ok: true });
  });
  const base = await listen(t, app);

  const users: User[] = [];
  const login = async (name: string, ms: string | undefined, live: boolean) => {
    const jar = new CookieJar();
    const response = await jar.fetch(`${base}/login?user=${name}${ms === undefined ? '' : `&ms=${ms}`}`);
    t.is(response.status, 200);
    const cookie = decodeURIComponent(jar.get('connect.sid') ?? '');
    const sid = /^s:(.+)\.[^.]+$/.exec(cookie)?.[1];
    if (sid === undefined) throw new Error('no connect.sid cookie');
    users.push({ name, sid, jar, live, data: { user: profileOf(name), loggedInAt: 1_700_000_000_000 } });
  };
  await Promise.all([
    login('alice', undefined, true),
    login('bob', undefined, true),
    login('carol', '86400000', true),
    login('dave', 'browser', true),
    login('erin', undefined, true),
    login('mallory', '40', false),
    login('trent', '40', false),
  ]);
  // Straight through the Store API: a cookie that expired an hour ago.
  const old = new Date(Date.now() - 3_600_000).toISOString();
  const sid = 'old-session-through-the-store-api-0123456789';
  await promisify(fileStore.set.bind(fileStore))(sid, {
    cookie: { originalMaxAge: 60_000, expires: old, httpOnly: true, path: '/' },
    user: profileOf('oscar'),
  } as unknown as session.SessionData);
  users.push({ name: 'oscar', sid, jar: new CookieJar(), live: false, data: {} });
  await new Promise((resolve) => setTimeout(resolve, 120));

  // The folder holds what session-file-store writes, as it writes it.
  const names = (await fs.readdir(dir)).sort();
  t.deepEqual(names, users.map((user) => `${user.sid}.json`).sort());
  const sample = await fs.readFile(path.join(dir, `${users[0]!.sid}.json`), 'utf8');
  if (secret === undefined) t.true(sample.includes('"alice"'));
  else t.false(sample.includes('alice'));
  return { dir, users, fileStore };
}

/** Every file of a folder with its bytes and mtime: to prove the import never touched it. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of (await fs.readdir(dir, { recursive: true })).sort()) {
    const file = path.join(dir, name);
    const stats = await fs.stat(file);
    out[name] = stats.isFile() ? `${stats.mtimeMs} ${stats.mode} ${(await fs.readFile(file)).toString('base64')}` : `dir ${stats.mode}`;
  }
  return out;
}

/** The forms in which an id could leak into bytes. */
function leakForms(secret: string): Buffer[] {
  const utf8 = Buffer.from(secret, 'utf8');
  return [utf8, Buffer.from(secret, 'utf16le'), Buffer.from(utf8.toString('hex')), Buffer.from(utf8.toString('base64'))];
}

async function assertNoLeak(t: ExecutionContext, dataDir: string, secrets: readonly string[]): Promise<void> {
  const files = await listFiles(dataDir);
  t.true(files.length > 0);
  for (const relative of files) {
    const bytes = await fs.readFile(path.join(dataDir, relative));
    for (const secret of secrets) {
      t.false(relative.includes(secret), 'a file name holds a session id');
      for (const form of leakForms(secret)) t.false(bytes.includes(form), 'file bytes hold a session id');
    }
  }
}

/** Every live session is in the sealed store under its old id, deep-equal to what session-file-store serves (less its `__lastAccess`). */
async function assertImported(t: ExecutionContext, source: Source, dataDir: string, keys: string): Promise<void> {
  const sealed = new SealedStore({ dir: dataDir, keys });
  const get = (sid: string) => sealed.get(sid);
  const fromFileStore = promisify(source.fileStore.get.bind(source.fileStore));
  for (const user of source.users) {
    const got = await get(user.sid);
    if (!user.live) {
      t.is(got ?? null, null, `${user.name} expired, not imported`);
      continue;
    }
    const original = (await fromFileStore(user.sid)) as unknown as Record<string, unknown>;
    t.truthy(original);
    const { __lastAccess, ...expected } = original;
    t.is(typeof __lastAccess, 'number');
    t.deepEqual(got, expected as unknown as session.SessionData, user.name);
    t.like(got, user.data as never);
  }
  const ids = await sealed.ids();
  t.deepEqual(
    ids?.sort(),
    source.users
      .filter((user) => user.live)
      .map((user) => user.sid)
      .sort(),
  );
  await assertNoLeak(
    t,
    dataDir,
    source.users.map((user) => user.sid),
  );
}

/** The old connect.sid cookies, sent to an app on SealedStore: live users are still logged in. */
async function assertStillLoggedIn(t: ExecutionContext, source: Source, dataDir: string, keys: string): Promise<void> {
  const app = express();
  app.use(session({ store: new SealedStore({ dir: dataDir, keys }), secret: COOKIE_SECRET, resave: false, saveUninitialized: false }));
  app.get('/me', (req, res) => {
    res.json({ user: (req.session as unknown as Record<string, unknown>)['user'] ?? null, sid: req.sessionID });
  });
  const base = await listen(t, app);
  for (const user of source.users.filter((each) => each.name !== 'oscar')) {
    const response = await user.jar.fetch(`${base}/me`);
    const body = (await response.json()) as { user: unknown; sid: string };
    if (user.live) {
      t.deepEqual(body, { user: profileOf(user.name), sid: user.sid }, `${user.name} stays logged in`);
    } else {
      t.is(body.user, null, `${user.name} (expired) is logged out`);
    }
  }
}

function cli(args: readonly string[], env: Record<string, string | undefined> = {}) {
  const merged: Record<string, string> = {};
  for (const [name, value] of Object.entries({ ...process.env, SESSION_KEYS: undefined, ...env })) if (value !== undefined) merged[name] = value;
  return run(process.execPath, ['--import=tsx/esm', bin, 'import-session-file-store', ...args], { cwd: root, env: merged }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, stdout: error.stdout, stderr: error.stderr }),
  );
}

for (const mode of ['plain', 'encrypted'] as const) {
  const secret = mode === 'plain' ? undefined : FILE_STORE_SECRET;

  test(`${mode}: importSessionFileStore seals every live session under its old id, skips the expired ones, leaves the source alone`, async (t) => {
    const source = await fileStoreDir(t, secret);
    const before = await snapshot(source.dir);
    const dataDir = await tempDir(t);
    const report = await importSessionFileStore({ from: source.dir, secret, store: { dir: dataDir, keys: KEY } });
    t.deepEqual(report, { imported: 5, expired: 3, unreadable: 0 });
    t.deepEqual(await snapshot(source.dir), before, 'source folder unchanged');
    await assertImported(t, source, dataDir, KEY);
    // Running it again changes nothing that matters: same sessions, same counts.
    t.deepEqual(await importSessionFileStore({ from: source.dir, secret, store: { dir: dataDir, keys: KEY } }), report);
    t.deepEqual(await snapshot(source.dir), before);
    await assertStillLoggedIn(t, source, dataDir, KEY);
  });

  test(`${mode}: the CLI imports with SESSION_KEYS, prints counts (and --json), exits 1 over a corrupt file`, async (t) => {
    const source = await fileStoreDir(t, secret);
    const secretArgs = secret === undefined ? [] : ['--secret', secret];
    const dataDir = await tempDir(t);
    const before = await snapshot(source.dir);

    const json = await cli([source.dir, '--dir', dataDir, '--json', ...secretArgs], { SESSION_KEYS: KEY });
    t.is(json.code, 0, json.stderr);
    t.deepEqual(JSON.parse(json.stdout) as unknown, { imported: 5, expired: 3, unreadable: 0 });
    await assertImported(t, source, dataDir, KEY);

    // Human output, positional after `--`, keys from a file (a rotation list: the first seals).
    const keyFile = path.join(path.dirname(dataDir), 'keys.txt');
    await fs.writeFile(keyFile, `${OLD_KEY},${KEY}\n`, { mode: 0o600 });
    const otherDir = path.join(path.dirname(dataDir), 'other-data');
    const human = await cli(['--dir', otherDir, '--key-file', keyFile, ...secretArgs, '--', source.dir]);
    t.is(human.code, 0, human.stderr);
    t.is(human.stdout.trim(), 'imported 5, skipped 3 expired, 0 unreadable');
    await assertImported(t, source, otherDir, OLD_KEY);

    // A corrupt file beside them: counted, the rest still imported, exit 1.
    await fs.writeFile(path.join(source.dir, 'broken-session-id.json'), '{"cookie": {"path": "/"');
    await fs.writeFile(path.join(source.dir, 'notes.txt'), 'not a session file: ignored');
    const withCorrupt = await snapshot(source.dir);
    const third = path.join(path.dirname(dataDir), 'third-data');
    const corrupt = await cli([source.dir, '--dir', third, '--json', ...secretArgs], { SESSION_KEYS: KEY });
    t.is(corrupt.code, 1);
    t.deepEqual(JSON.parse(corrupt.stdout) as unknown, { imported: 5, expired: 3, unreadable: 1 });
    t.regex(corrupt.stderr, /1 session file could not be read/);
    await assertImported(t, source, third, KEY);
    t.deepEqual(await snapshot(source.dir), withCorrupt, 'source folder unchanged');
    t.deepEqual(Object.keys(await snapshot(source.dir)).sort(), [...Object.keys(before), 'broken-session-id.json', 'notes.txt'].sort());

    // Nothing printed names a session, the keys or the secret.
    for (const output of [json, human, corrupt]) {
      const text = output.stdout + output.stderr;
      for (const user of source.users) t.false(text.includes(user.sid));
      for (const hidden of [KEY, OLD_KEY, FILE_STORE_SECRET, 'broken-session-id']) t.false(text.includes(hidden));
    }
  });
}

test('encrypted: without --secret, or with a wrong one, nothing is imported and every file counts as unreadable (exit 1)', async (t) => {
  const source = await fileStoreDir(t, FILE_STORE_SECRET);
  const before = await snapshot(source.dir);
  const dataDir = await tempDir(t);
  const [none, wrong] = await Promise.all([
    cli([source.dir, '--dir', dataDir, '--json'], { SESSION_KEYS: KEY }),
    importSessionFileStore({ from: source.dir, secret: 'not the secret', store: { dir: dataDir, keys: KEY } }),
  ]);
  t.is(none.code, 1);
  t.deepEqual(JSON.parse(none.stdout) as unknown, { imported: 0, expired: 0, unreadable: 8 });
  t.regex(none.stderr, /--secret/);
  t.deepEqual(wrong, { imported: 0, expired: 0, unreadable: 8 });
  t.deepEqual(await listFiles(dataDir), []);
  t.deepEqual(await snapshot(source.dir), before);
});

test('without keys outside production the CLI seals with the development key beside the data dir', async (t) => {
  const source = await fileStoreDir(t);
  const dataDir = await tempDir(t);
  const result = await cli([source.dir, '--dir', dataDir], { NODE_ENV: 'development' });
  t.is(result.code, 0, result.stderr);
  t.is(result.stdout.trim(), 'imported 5, skipped 3 expired, 0 unreadable');
  const devKey = (await fs.readFile(devKeyPath(dataDir), 'utf8')).trim();
  t.false((result.stdout + result.stderr).includes(devKey));
  await assertImported(t, source, dataDir, devKey);

  // In production, no key is a usage error, and nothing is written.
  const prodDir = path.join(path.dirname(dataDir), 'prod-data');
  const prod = await cli([source.dir, '--dir', prodDir], { NODE_ENV: 'production' });
  t.is(prod.code, 2);
  t.regex(prod.stderr, /SESSION_KEYS/);
  t.is(prod.stderr.trim().split('\n').length, 1);
  await t.throwsAsync(fs.stat(prodDir));
});

test('session-file-store expiry: a session without maxAge expires after `ttl` since its last access', async (t) => {
  const source = await fileStoreDir(t);
  const dataDir = await tempDir(t);
  // dave's cookie has no maxAge: session-file-store falls back to its ttl (default 1 h).
  t.deepEqual(await importSessionFileStore({ from: source.dir, ttl: 0.05, store: { dir: dataDir, keys: KEY } }), {
    imported: 4,
    expired: 4,
    unreadable: 0,
  });
  const cliDir = path.join(path.dirname(dataDir), 'cli-data');
  const result = await cli([source.dir, '--dir', cliDir, '--ttl', '0.05', '--json'], { SESSION_KEYS: KEY });
  t.deepEqual(JSON.parse(result.stdout) as unknown, { imported: 4, expired: 4, unreadable: 0 });
});

test('usage errors exit 2 with a one-line hint; --help exits 0', async (t) => {
  const source = await fileStoreDir(t);
  const dataDir = await tempDir(t);
  const cases: Array<[readonly string[], RegExp]> = [
    [[], /missing <dir>/],
    [['--nope', source.dir], /Unknown option '--nope'/],
    [[path.join(source.dir, 'no-such-folder')], /cannot open <dir> \(ENOENT\)/],
    [[source.dir, source.dir], /expected one <dir>/],
    [[source.dir, '--ttl', 'soon'], /--ttl/],
    [[source.dir, '--key-file', path.join(dataDir, 'missing-keys')], /--key-file/],
    [[source.dir, '--dir', path.join(source.dir, 'inside')], /must not be the source folder or inside it/],
    [[source.dir, '--dir', dataDir, '--secret'], /--secret/],
  ];
  const before = await snapshot(source.dir);
  const results = await Promise.all(cases.map(([args]) => cli(args, { SESSION_KEYS: KEY })));
  results.forEach((result, index) => {
    const [args, pattern] = cases[index]!;
    t.is(result.code, 2, args.join(' '));
    t.regex(result.stderr, pattern);
    t.regex(result.stderr, /import-session-file-store --help/);
    t.is(result.stderr.trim().split('\n').length, 1);
    t.is(result.stdout, '');
  });
  t.deepEqual(await snapshot(source.dir), before);
  await t.throwsAsync(fs.stat(dataDir));
  const help = await cli(['--help']);
  t.is(help.code, 0);
  t.regex(help.stdout, /--secret/);
  t.regex(help.stdout, /--key-file/);
  // The library refuses a data dir inside the source too.
  await t.throwsAsync(importSessionFileStore({ from: source.dir, store: { dir: path.join(source.dir, 'x'), keys: KEY } }), {
    code: 'ERR_SESSION_OPTION',
  });
});
