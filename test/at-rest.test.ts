import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { openStore } from '../src/index.js';
import { manualClock } from './helpers/clock.js';
import { runSnippet } from './helpers/node-snippet.js';
import { KEY, tempDir } from './helpers/temp-dir.js';

const CANARY = 'CANARY-7f3a9c1e-at-rest-d41d8cd9';

interface Entry {
  readonly relative: string;
  readonly name: string;
  readonly isDirectory: boolean;
}

/** Every file and folder under `dir`, recursively. */
async function walk(dir: string): Promise<Entry[]> {
  const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true });
  return entries.map((entry) => ({
    relative: path.relative(dir, path.join(entry.parentPath, entry.name)),
    name: entry.name,
    isDirectory: entry.isDirectory(),
  }));
}

/** The forms in which a secret string could leak: as is, UTF-16, hex, base64, and (for an id) its decoded bytes. */
function leakForms(secret: string): Buffer[] {
  const utf8 = Buffer.from(secret, 'utf8');
  const forms = [
    utf8,
    Buffer.from(secret, 'utf16le'),
    Buffer.from(utf8.toString('hex')),
    Buffer.from(utf8.toString('hex').toUpperCase()),
    Buffer.from(utf8.toString('base64')),
    Buffer.from(utf8.toString('base64url')),
  ];
  if (/^[A-Za-z0-9_-]{43}$/.test(secret)) {
    const raw = Buffer.from(secret, 'base64url'); // the id's 32 random bytes
    forms.push(raw, Buffer.from(raw.toString('hex')), Buffer.from(raw.toString('base64')));
  }
  // A partial copy: any 16-character slice of the text.
  for (let start = 0; start + 16 <= secret.length; start += 4) forms.push(Buffer.from(secret.slice(start, start + 16)));
  return forms;
}

/** Fails `t` for every form of every secret found in a file's bytes or in any name under `root`. */
async function assertNoLeak(t: import('ava').ExecutionContext, root: string, secrets: readonly string[]): Promise<number> {
  const entries = await walk(root);
  let files = 0;
  for (const entry of entries) {
    for (const secret of secrets) {
      for (const form of leakForms(secret)) {
        t.false(entry.name.includes(form.toString('latin1')), `a name under the data dir contains a form of ${secret}: ${entry.relative}`);
      }
    }
    if (entry.isDirectory) continue;
    files++;
    const bytes = await fs.readFile(path.join(root, entry.relative));
    for (const secret of secrets) {
      for (const form of leakForms(secret)) {
        if (bytes.indexOf(form) !== -1) t.fail(`${entry.relative} contains a form of ${secret}`);
      }
    }
  }
  return files;
}

const SESSION_FOLDER = /^[0-9a-f]{2}$/;
const SESSION_FILE = /^[0-9a-f]{2}\/[0-9a-f]{64}\.sess$/;

test('neither the canary value nor the session id appears in any file or name under the data dir', async (t) => {
  const dir = await tempDir(t);
  const clock = manualClock();
  const store = await openStore({ dir, keys: KEY, now: clock.now });
  const ids: string[] = [];
  for (let index = 0; index < 6; index++) {
    const session = store.create();
    session.set('secret', `${CANARY}-${index}`);
    session.set(CANARY, { nested: [CANARY, index] }); // also as a key
    session.set('self', session.id); // the id inside the data too
    await session.save();
    ids.push(session.id);
  }
  // Rewrite one, mark one as used (keep-alive), destroy one, run gc: every path that writes.
  const rewritten = await store.load(ids[0]!);
  rewritten?.set('more', `${CANARY}-more`);
  await rewritten?.save();
  clock.advance(120);
  t.truthy(await store.load(ids[1]!));
  t.true(await store.destroy(ids[2]!));
  await store.gc();

  const root = path.dirname(dir);
  const files = await assertNoLeak(t, root, [CANARY, ...ids]);
  t.is(files, 5);
  // Only the documented layout: <2 hex>/<64 hex>.sess, nothing else.
  for (const entry of await walk(dir)) {
    if (entry.isDirectory) t.regex(entry.relative, SESSION_FOLDER);
    else t.regex(entry.relative, SESSION_FILE);
  }
  // Sanity: the search itself finds a planted canary.
  await fs.writeFile(path.join(root, 'plant'), Buffer.from(CANARY).toString('base64'));
  t.true((await fs.readFile(path.join(root, 'plant'))).indexOf(leakForms(CANARY)[4]!) !== -1);
});

test('files are 0600 and folders 0700, the data dir included (default umask)', async (t) => {
  const dir = await tempDir(t);
  const store = await openStore({ dir, keys: KEY });
  for (let index = 0; index < 8; index++) {
    const session = store.create();
    session.set('n', index);
    await session.save();
    session.set('n', index + 100); // a rewrite replaces the file
    await session.save();
  }
  t.is((await fs.stat(dir)).mode & 0o777, 0o700);
  const entries = await walk(dir);
  t.true(entries.some((entry) => entry.isDirectory));
  for (const entry of entries) {
    const mode = (await fs.stat(path.join(dir, entry.relative))).mode & 0o777;
    t.is(mode, entry.isDirectory ? 0o700 : 0o600, entry.relative);
  }
});

test('modes hold even with umask 0 (files 0600, folders 0700, dev key 0600)', async (t) => {
  const dir = await tempDir(t);
  const body = `
    process.umask(0);
    const store = await openStore({ dir: args.dir });
    for (let index = 0; index < 8; index++) {
      const session = store.create();
      session.set('n', index);
      await session.save();
      session.set('n', index + 1);
      await session.save();
    }
    console.log('umask', process.umask().toString(8));`;
  const { code, stdout, stderr } = await runSnippet(body, { dir });
  t.is(code, 0, stderr);
  t.regex(stdout, /umask 0/);
  t.is((await fs.stat(dir)).mode & 0o777, 0o700);
  t.is((await fs.stat(path.join(path.dirname(dir), '.sessions-data.dev-key'))).mode & 0o777, 0o600);
  const entries = await walk(dir);
  t.is(entries.filter((entry) => !entry.isDirectory).length, 8);
  for (const entry of entries) {
    const mode = (await fs.stat(path.join(dir, entry.relative))).mode & 0o777;
    t.is(mode, entry.isDirectory ? 0o700 : 0o600, entry.relative);
  }
});

test('an existing, too open data dir and session file are made private again', async (t) => {
  const dir = await tempDir(t);
  await fs.mkdir(dir, { mode: 0o755 });
  await fs.chmod(dir, 0o777);
  const store = await openStore({ dir, keys: KEY });
  t.is((await fs.stat(dir)).mode & 0o777, 0o700);

  const session = store.create();
  session.set('n', 1);
  await session.save();
  const [file] = (await walk(dir)).filter((entry) => !entry.isDirectory);
  const filePath = path.join(dir, file!.relative);
  const folderPath = path.dirname(filePath);
  // As after a careless restore from a backup.
  await fs.chmod(filePath, 0o644);
  await fs.chmod(folderPath, 0o755);

  const reopened = await openStore({ dir, keys: KEY });
  const loaded = await reopened.load(session.id);
  loaded?.set('n', 2);
  await loaded?.save();
  t.is((await fs.stat(filePath)).mode & 0o777, 0o600, 'a rewrite keeps a too open mode');
  t.is((await fs.stat(folderPath)).mode & 0o777, 0o700, 'a session folder stays too open');
});

test('load() of an unknown or garbage id creates nothing and reports nothing', async (t) => {
  const dir = await tempDir(t);
  const store = await openStore({ dir, keys: KEY });
  const events: unknown[] = [];
  store.on('tamper', (event) => events.push(event));
  store.on('warning', (event) => events.push(event));
  const garbage = [
    'A'.repeat(43), // the shape of an id, no session
    'unknown-session-id_0123456789abcdefghijklmn'.slice(0, 43),
    '../../etc/passwd',
    '../../../../../../../../../../../../../etc/passwd',
    '..%2F..%2Fetc%2Fpasswd',
    `${'a'.repeat(42)}/`,
    `${'a'.repeat(42)}\0`,
    '',
    ' ',
    '.',
    '..',
    'a'.repeat(44),
    'a'.repeat(10_000),
    'ff/' + 'f'.repeat(64) + '.sess',
  ];
  for (const id of garbage) t.is(await store.load(id), null, JSON.stringify(id.slice(0, 60)));
  for (const id of garbage) t.false(await store.destroy(id));
  t.deepEqual(events, []);
  const left = await walk(dir);
  // destroy() of an id-shaped unknown id may leave its (empty) folder; never a file.
  t.deepEqual(
    left.filter((entry) => !entry.isDirectory),
    [],
  );
  for (const entry of left) t.regex(entry.relative, SESSION_FOLDER);
  t.deepEqual(await fs.readdir(path.dirname(dir)), ['sessions-data']);
});

test('load() of unknown ids creates no folder either', async (t) => {
  const dir = await tempDir(t);
  const store = await openStore({ dir, keys: KEY });
  for (const id of ['A'.repeat(43), 'B'.repeat(43), '../../etc/passwd', 'x']) t.is(await store.load(id), null);
  t.deepEqual(await walk(dir), []);
});

test('a destroyed session leaves no readable trace: file gone, id not found anywhere', async (t) => {
  const dir = await tempDir(t);
  const store = await openStore({ dir, keys: KEY });
  const session = store.create();
  session.set('secret', CANARY);
  await session.save();
  t.is((await walk(dir)).filter((entry) => !entry.isDirectory).length, 1);
  t.true(await store.destroy(session.id));
  t.deepEqual(
    (await walk(dir)).filter((entry) => !entry.isDirectory),
    [],
  );
  t.is(await store.load(session.id), null);
});
