import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import test, { type ExecutionContext } from 'ava';
import { devKeyPath } from '../../src/crypto/key-source.js';
import { generateKey } from '../../src/crypto/keys.js';
import { cli } from '../helpers/cli.js';
import { runAsUser, runSnippet, startSnippet } from '../helpers/node-snippet.js';
import { KEY, tempDir } from '../helpers/temp-dir.js';

/*
 * Key files (SPEC §2): the development key and the CLI's --key-file are used only when they are a
 * regular file of this process's user with no group/other permission, opened without following
 * symlinks; the development key is made by one exclusive open, beside a data dir of ours, and only
 * when NODE_ENV says development. The attacks of issue 10 item 1 are replayed with real files and,
 * where the attacker is another local user, a real unprivileged process (uid 65534).
 */

const NOBODY = 65534;
const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '../..');
const KEY_SOURCE_URL = pathToFileURL(path.join(ROOT, 'src/crypto/key-source.ts')).href;
const IO_URL = pathToFileURL(path.join(ROOT, 'src/backends/file/io.ts')).href;

interface Opened {
  readonly ok?: true;
  /** The store's first signing secret: equal between two stores exactly when their keys are. */
  readonly secret?: string;
  readonly error?: { readonly code: string; readonly message: string };
  /** The SEALED_SESSIONS_DEV_KEY warnings. */
  readonly warnings: readonly string[];
  readonly stderr: string;
}

/** `openStore({ dir })` without keys, in a fresh process whose environment is exactly `env`. */
async function openWithoutKeys(dir: string, env: Record<string, string> = {}, pending?: ReturnType<typeof startSnippet>): Promise<Opened> {
  const { stdout, stderr } = await (pending ?? startSnippet(OPEN_BODY, { dir }, env)).done;
  try {
    return { ...(JSON.parse(stdout.trim().split('\n').at(-1) ?? '') as Omit<Opened, 'stderr'>), stderr };
  } catch {
    return { warnings: [], stderr };
  }
}

const OPEN_BODY = `
  const warnings = [];
  process.on('warning', (warning) => { if (warning.code === 'SEALED_SESSIONS_DEV_KEY') warnings.push(warning.message); });
  if (args.wait) {
    const fs = await import('node:fs');
    if (args.ready) fs.writeFileSync(args.ready + '/' + process.pid, '');
    while (!fs.existsSync(args.wait)) await new Promise((r) => setTimeout(r, 10));
  }
  let result;
  try {
    const store = await openStore({ dir: args.dir });
    result = { ok: true, secret: store.signingSecrets[0] };
  } catch (error) {
    result = { error: { code: error.code, message: error.message } };
  }
  await new Promise((resolve) => setImmediate(resolve));
  console.log(JSON.stringify({ ...result, warnings }));`;

/** The tests that plant files as another user need root (CI runs as root); they fail, never skip, without it. */
function asRoot(t: ExecutionContext): boolean {
  if (process.getuid?.() === 0) return true;
  t.fail('this test plants files as another user (uid 65534) and needs root, as CI has');
  return false;
}

/** Runs `body` as the unprivileged user (node:fs as `fs` in scope). */
async function asNobody(t: ExecutionContext, body: string, args: unknown): Promise<void> {
  const result = await runAsUser(NOBODY, `const fs = await import('node:fs');\n${body}`, args);
  t.is(result.code, 0, `the unprivileged process failed: ${result.stderr}`);
}

/** A fresh data dir path whose parent is world-writable, as in the issue (a shared folder). */
async function sharedParent(t: ExecutionContext): Promise<string> {
  const dir = await tempDir(t);
  await fs.chmod(path.dirname(dir), 0o777);
  return dir;
}

async function writeKeyFile(file: string, text: string, mode: number): Promise<void> {
  await fs.writeFile(file, text);
  await fs.chmod(file, mode);
}

// ---------------------------------------------------------------- modes, types, symlinks

test('a development key file with any group or other permission bit is refused with ERR_SESSION_KEY_UNSAFE, naming the path and chmod 600', async (t) => {
  const key = generateKey();
  const withMode = async (mode: number) => {
    const dir = await tempDir(t);
    const file = devKeyPath(dir);
    await writeKeyFile(file, `${key}\n`, mode);
    return { file, opened: await openWithoutKeys(dir) };
  };
  await Promise.all(
    [0o644, 0o640, 0o604, 0o620, 0o602, 0o610, 0o601, 0o666].map(async (mode) => {
      const { file, opened } = await withMode(mode);
      t.is(opened.error?.code, 'ERR_SESSION_KEY_UNSAFE', `mode ${mode.toString(8)}: ${opened.stderr}`);
      t.true(opened.error?.message.includes(file), 'the message names the file');
      t.true(opened.error?.message.includes(`chmod 600 ${file}`), 'the message names the fix');
      t.false(opened.error?.message.includes(key), 'the message holds the key');
      t.deepEqual(opened.warnings, []);
      t.is(await fs.readFile(file, 'utf8'), `${key}\n`, 'the file was changed');
    }),
  );
  // Owner-only modes are fine.
  await Promise.all(
    [0o600, 0o400].map(async (mode) => {
      const { opened } = await withMode(mode);
      t.true(opened.ok, opened.stderr);
    }),
  );
});

test('a symlink at the development key path is refused and never followed: its target is neither used, nor created, nor changed', async (t) => {
  const dir = await tempDir(t);
  const root = path.dirname(dir);
  const file = devKeyPath(dir);
  // Even a symlink to a perfectly private key file of ours.
  const target = path.join(root, 'real-key');
  await writeKeyFile(target, `${generateKey()}\n`, 0o600);
  const before = await fs.readFile(target);
  await fs.symlink(target, file);
  const opened = await openWithoutKeys(dir);
  t.is(opened.error?.code, 'ERR_SESSION_KEY_UNSAFE', opened.stderr);
  t.regex(opened.error?.message ?? '', /symbolic link/);
  t.true(opened.error?.message.includes(file));
  t.deepEqual(await fs.readFile(target), before);
  t.is((await fs.lstat(file)).isSymbolicLink(), true);

  // A dangling one: creating the key must not create its target.
  await fs.unlink(file);
  const nowhere = path.join(root, 'created-through-the-link');
  await fs.symlink(nowhere, file);
  const dangling = await openWithoutKeys(dir);
  t.is(dangling.error?.code, 'ERR_SESSION_KEY_UNSAFE', dangling.stderr);
  await t.throwsAsync(fs.lstat(nowhere), { code: 'ENOENT' });
});

test('a hard link at the development key path (another name of a private file of ours) is refused', async (t) => {
  const dir = await tempDir(t);
  const other = path.join(path.dirname(dir), 'some-private-file');
  await writeKeyFile(other, `known-content-${'0123456789'.repeat(4)}\n`, 0o600);
  await fs.link(other, devKeyPath(dir));
  const opened = await openWithoutKeys(dir);
  t.is(opened.error?.code, 'ERR_SESSION_KEY_UNSAFE', opened.stderr);
  t.regex(opened.error?.message ?? '', /2 names \(hard links\)/);
});

test('a FIFO or a folder at the development key path is refused at once (no hang)', async (t) => {
  const dir = await tempDir(t);
  const file = devKeyPath(dir);
  await run('mkfifo', ['-m', '600', file]);
  const started = Date.now();
  const fifo = await openWithoutKeys(dir);
  t.is(fifo.error?.code, 'ERR_SESSION_KEY_UNSAFE', fifo.stderr);
  t.regex(fifo.error?.message ?? '', /not a regular file/);
  // A blocking open would hang until the FIFO had a writer: forever (the old code did).
  t.true(Date.now() - started < 90_000);
  await fs.unlink(file);
  await fs.mkdir(file, { mode: 0o700 });
  const folder = await openWithoutKeys(dir);
  t.is(folder.error?.code, 'ERR_SESSION_KEY_UNSAFE', folder.stderr);
});

// ---------------------------------------------------------------- another local user

test('issue 10: in a world-writable folder a local user plants the data dir and a key of their choosing first; the server refuses them', async (t) => {
  if (!asRoot(t)) return;
  const cases = [
    { name: 'data dir + key file 0644', dir: true, key: 0o644 },
    { name: 'data dir + key file 0600', dir: true, key: 0o600 },
    { name: 'key file 0600 only', dir: false, key: 0o600 },
    { name: 'data dir only', dir: true, key: null },
  ];
  for (const plant of cases) {
    const dir = await sharedParent(t);
    const file = devKeyPath(dir);
    const chosen = generateKey();
    await asNobody(
      t,
      `if (args.dir) fs.mkdirSync(args.dirPath, { mode: 0o777 });
       if (args.mode !== null) { fs.writeFileSync(args.file, args.key + '\\n'); fs.chmodSync(args.file, args.mode); }`,
      { dir: plant.dir, dirPath: dir, file, key: chosen, mode: plant.key },
    );
    const planted = plant.dir ? await fs.stat(dir) : null;
    t.true(planted === null || planted.uid === NOBODY);

    const opened = await openWithoutKeys(dir);
    t.is(opened.error?.code, 'ERR_SESSION_KEY_UNSAFE', `${plant.name}: ${opened.stderr}`);
    t.regex(opened.error?.message ?? '', /another user \(uid 65534\)/, plant.name);
    t.false(opened.error?.message.includes(chosen));
    // Nothing of the attacker's was changed, nothing of ours written into their folder.
    if (plant.key !== null) t.is(await fs.readFile(file, 'utf8'), `${chosen}\n`);
    if (planted !== null) {
      t.deepEqual(await fs.readdir(dir), [], plant.name);
      t.is((await fs.stat(dir)).mode & 0o777, planted.mode & 0o777, 'the data dir was chmodded');
    }
    // The CLI refuses the same development key.
    if (plant.key !== null && plant.dir) {
      const stats = await cli(['verify', '--dir', dir], { NODE_ENV: 'development' });
      t.is(stats.code, 2, stats.stderr);
      t.regex(stats.stderr, /another user/);
    }
  }
});

test('a symlink planted by another user at the development key path is refused; the file it points at stays as it was', async (t) => {
  if (!asRoot(t)) return;
  const dir = await sharedParent(t);
  const victim = path.join(path.dirname(dir), 'precious');
  await fs.writeFile(victim, 'root-owned data\n');
  await asNobody(t, `fs.symlinkSync(args.victim, args.file);`, { victim, file: devKeyPath(dir) });
  const opened = await openWithoutKeys(dir);
  t.is(opened.error?.code, 'ERR_SESSION_KEY_UNSAFE', opened.stderr);
  t.is(await fs.readFile(victim, 'utf8'), 'root-owned data\n');
  t.is((await fs.stat(victim)).mode & 0o777, 0o644);
});

test('a symlink planted at the old predictable temp name (<key>.<pid>.tmp) is never followed: the key is made in place, the target untouched', async (t) => {
  if (!asRoot(t)) return;
  const dir = await sharedParent(t);
  const root = path.dirname(dir);
  const file = devKeyPath(dir);
  const victim = path.join(root, 'precious');
  await fs.writeFile(victim, 'root-owned data\n');
  // The server waits until the attacker, knowing its pid, has planted the link.
  const go = path.join(root, 'go');
  const server = startSnippet(OPEN_BODY, { dir, wait: go });
  const temp = `${file}.${server.pid}.tmp`;
  await asNobody(t, `fs.symlinkSync(args.victim, args.temp);`, { victim, temp });
  await fs.writeFile(go, '');
  const opened = await openWithoutKeys(dir, {}, server);
  t.true(opened.ok, opened.stderr);
  t.is(await fs.readFile(victim, 'utf8'), 'root-owned data\n', 'the target was overwritten');
  t.is((await fs.lstat(temp)).isSymbolicLink(), true);
  const key = await fs.lstat(file);
  t.true(key.isFile());
  t.is(key.mode & 0o777, 0o600);
  t.is(key.uid, 0);
  // No other name was used: the folder holds the data dir, the key, and what we put there.
  t.deepEqual((await fs.readdir(root)).sort(), ['.sessions-data.dev-key', path.basename(temp), 'go', 'precious', 'sessions-data'].sort());
});

test('a data dir planted by another user as a symlink to a folder of ours is refused; that folder is neither chmodded nor written', async (t) => {
  if (!asRoot(t)) return;
  const dir = await sharedParent(t);
  const victim = path.join(path.dirname(dir), 'victim-dir');
  await fs.mkdir(victim);
  await fs.chmod(victim, 0o755);
  await asNobody(t, `fs.symlinkSync(args.victim, args.dir);`, { victim, dir });
  const opened = await openWithoutKeys(dir);
  t.is(opened.error?.code, 'ERR_SESSION_KEY_UNSAFE', opened.stderr);
  t.regex(opened.error?.message ?? '', /symbolic link of another user/);
  t.is((await fs.stat(victim)).mode & 0o777, 0o755);
  t.deepEqual(await fs.readdir(victim), []);
  await t.throwsAsync(fs.lstat(devKeyPath(dir)), { code: 'ENOENT' });
});

test('a development key file owned by another uid is refused, even when it is 0600', async (t) => {
  if (!asRoot(t)) return;
  const dir = await tempDir(t);
  const file = devKeyPath(dir);
  await writeKeyFile(file, `${generateKey()}\n`, 0o600);
  await fs.chown(file, NOBODY, NOBODY);
  const opened = await openWithoutKeys(dir);
  t.is(opened.error?.code, 'ERR_SESSION_KEY_UNSAFE', opened.stderr);
  t.regex(opened.error?.message ?? '', /belongs to another user \(uid 65534\).*remove it/);
});

test('a data dir, or the folder the development key sits in, owned by another user is refused', async (t) => {
  if (!asRoot(t)) return;
  const dir = await tempDir(t);
  await fs.mkdir(dir, { mode: 0o700 });
  await fs.chown(dir, NOBODY, NOBODY);
  const opened = await openWithoutKeys(dir);
  t.is(opened.error?.code, 'ERR_SESSION_KEY_UNSAFE', opened.stderr);
  t.true(opened.error?.message.includes(dir));
  await t.throwsAsync(fs.lstat(devKeyPath(dir)), { code: 'ENOENT' });

  // The parent: another user could swap anything in it.
  const other = await tempDir(t);
  await fs.chown(path.dirname(other), NOBODY, NOBODY);
  const inTheirs = await openWithoutKeys(other);
  t.is(inTheirs.error?.code, 'ERR_SESSION_KEY_UNSAFE', inTheirs.stderr);
  t.deepEqual(await fs.readdir(path.dirname(other)), []);
});

// ---------------------------------------------------------------- NODE_ENV

test('a development key is made only when NODE_ENV is unset, empty, development or test; any other value needs keys', async (t) => {
  const refused = ['production', 'Production', 'PRODUCTION', 'prod', 'staging', 'Development', 'dev', ' production'].map(async (nodeEnv) => {
    const dir = await tempDir(t);
    const opened = await openWithoutKeys(dir, { NODE_ENV: nodeEnv });
    t.is(opened.error?.code, 'ERR_SESSION_KEYS_MISSING', `NODE_ENV=${nodeEnv}: ${opened.stderr}`);
    t.deepEqual(await fs.readdir(path.dirname(dir)), [], `NODE_ENV=${nodeEnv} created something`);
    t.deepEqual(opened.warnings, []);
    // The CLI does not read a development key there either.
    await fs.mkdir(dir);
    await writeKeyFile(devKeyPath(dir), `${generateKey()}\n`, 0o600);
    const verify = await cli(['verify', '--dir', dir], { NODE_ENV: nodeEnv });
    t.is(verify.code, 2);
    t.regex(verify.stderr, /no session keys/);
  });
  const made = ['development', 'test', ''].map(async (nodeEnv) => {
    const dir = await tempDir(t);
    const opened = await openWithoutKeys(dir, { NODE_ENV: nodeEnv });
    t.true(opened.ok, `NODE_ENV=${nodeEnv}: ${opened.stderr}`);
    t.is((await fs.stat(devKeyPath(dir))).mode & 0o777, 0o600);
  });
  await Promise.all([...refused, ...made]);
});

// ---------------------------------------------------------------- creation races

test('processes starting together on a fresh dir all end up with the one key; exactly one of them made it', async (t) => {
  for (let round = 0; round < 3; round++) {
    const dir = await tempDir(t);
    const control = path.dirname(await tempDir(t));
    const go = path.join(control, 'go');
    const starts = Array.from({ length: 6 }, () => startSnippet(OPEN_BODY, { dir, wait: go, ready: control }));
    // Released together once every process is up and waiting.
    for (const deadline = Date.now() + 60_000; (await fs.readdir(control)).length < starts.length;) {
      if (Date.now() > deadline) return t.fail('the processes did not start');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await fs.writeFile(go, '');
    const results = await Promise.all(starts.map((start) => openWithoutKeys(dir, {}, start)));
    for (const result of results) t.true(result.ok, result.stderr);
    t.is(new Set(results.map((result) => result.secret)).size, 1, 'two processes use different keys');
    t.is(results.filter((result) => result.warnings.some((warning) => warning.startsWith('created'))).length, 1);
    t.regex(await fs.readFile(devKeyPath(dir), 'utf8'), /^[A-Za-z0-9_-]{43}\n$/);
  }
});

test('a reader that finds the key file before its creator has written it waits for the whole key', async (t) => {
  const dir = await tempDir(t);
  const key = generateKey();
  const body = `
    const { resolveSecrets } = await import(args.keySource);
    const { keyFileAccess } = await import(args.io);
    const fs = await import('node:fs');
    fs.mkdirSync(args.dir, { recursive: true, mode: 0o700 });
    // The creator, between its exclusive open and its one write.
    const fd = fs.openSync(args.file, 'wx', 0o600);
    if (args.key !== null) setTimeout(() => { fs.writeSync(fd, args.key + '\\n'); fs.closeSync(fd); }, 300);
    const started = Date.now();
    try {
      const keys = await resolveSecrets(undefined, args.dir, keyFileAccess);
      console.log(JSON.stringify({ keys, waited: Date.now() - started }));
    } catch (error) {
      console.log(JSON.stringify({ error: { code: error.code, message: error.message }, waited: Date.now() - started }));
    }`;
  const args = { keySource: KEY_SOURCE_URL, io: IO_URL, dir, file: devKeyPath(dir), key };
  const racing = await runSnippet(body, args);
  const result = JSON.parse(racing.stdout.trim()) as { keys?: string[]; waited: number };
  t.deepEqual(result.keys, [key], racing.stderr);
  t.true(result.waited >= 250);

  // A creator that died before writing leaves an empty file: an error that says what to do.
  const emptyDir = await tempDir(t);
  const dead = await runSnippet(body, { ...args, dir: emptyDir, file: devKeyPath(emptyDir), key: null });
  const failed = JSON.parse(dead.stdout.trim()) as { error?: { code: string; message: string } };
  t.is(failed.error?.code, 'ERR_SESSION_KEYS_MISSING', dead.stderr);
  t.regex(failed.error?.message ?? '', /is empty.*remove it/);
});

// ---------------------------------------------------------------- the CLI's --key-file

test('--key-file is read only when it is a private regular file of this user, never through a symlink (exit 2 naming the fix)', async (t) => {
  const dir = await tempDir(t);
  await fs.mkdir(dir, { mode: 0o700 });
  const root = path.dirname(dir);
  const file = path.join(root, 'keys');
  await writeKeyFile(file, `${KEY}\n`, 0o644);
  const open = await cli(['verify', '--dir', dir, '--key-file', file]);
  t.is(open.code, 2, open.stderr);
  t.true(open.stderr.includes(`chmod 600 ${file}`), open.stderr);
  t.false(open.stderr.includes(KEY));

  await fs.chmod(file, 0o600);
  t.is((await cli(['verify', '--dir', dir, '--key-file', file])).code, 0);

  const link = path.join(root, 'keys-link');
  await fs.symlink(file, link);
  const linked = await cli(['verify', '--dir', dir, '--key-file', link]);
  t.is(linked.code, 2);
  t.regex(linked.stderr, /symbolic link/);

  const imported = await cli(['import-session-file-store', '--dir', dir, '--key-file', link, '--', root]);
  t.is(imported.code, 2);
  t.regex(imported.stderr, /symbolic link/);

  if (!asRoot(t)) return;
  await fs.chown(file, NOBODY, NOBODY);
  const theirs = await cli(['verify', '--dir', dir, '--key-file', file]);
  t.is(theirs.code, 2);
  t.regex(theirs.stderr, /another user \(uid 65534\)/);
});
