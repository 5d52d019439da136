import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { openStore, type Store } from '../../src/index.js';
import { createKeyring, splitKeys } from '../../src/crypto/keys.js';
import { cli, type CliResult } from '../helpers/cli.js';
import { exists, KEY, listFiles, OLD_KEY, sessionFileOf, tempDir } from '../helpers/temp-dir.js';

/*
 * The operator's mistakes of issue 10 (items 5 and 6), replayed through the CLI in child
 * processes on real data dirs: a wrong key followed by --repair, key files with one key a line,
 * symlinked paths, ids that look like options.
 */

async function seed(store: Store, count: number): Promise<string[]> {
  return Promise.all(
    Array.from({ length: count }, async (_, index) => {
      const session = store.create();
      session.set('n', index);
      await session.save();
      return session.id;
    }),
  );
}

function assertNoSecrets(t: import('ava').ExecutionContext, results: readonly CliResult[], secrets: readonly string[]): void {
  for (const { stdout, stderr } of results)
    for (const secret of [...secrets, KEY, OLD_KEY]) t.false((stdout + stderr).includes(secret), 'an id or a key was printed');
}

// ---------------------------------------------------------------- item 5: one hint must not log everyone out

test('issue 10: verify with the wrong key says the key is probably wrong; --repair then quarantines nothing; --include-wrong-key does', async (t) => {
  const dir = await tempDir(t);
  const ids = await seed(await openStore({ dir, keys: KEY }), 8);
  const before = new Map(await Promise.all((await listFiles(dir)).map(async (file) => [file, await fs.readFile(path.join(dir, file))] as const)));
  const wrong = { SESSION_KEYS: OLD_KEY };
  const [fileKeyId, configuredKeyId] = [createKeyring([KEY]).primary.idHex, createKeyring([OLD_KEY]).primary.idHex];

  const found = await cli(['verify', '--dir', dir], wrong);
  t.is(found.code, 1, found.stderr);
  t.regex(found.stdout, /8 wrong key/);
  t.regex(found.stdout, /the key is probably wrong/);
  t.true(found.stdout.includes(`Key ids in the files: ${fileKeyId} (8 files); configured: ${configuredKeyId}`), found.stdout);
  t.notRegex(found.stdout, /verify --repair/, 'a repair was suggested');

  const repair = await cli(['verify', '--repair', '--dir', dir], wrong);
  t.is(repair.code, 1);
  t.regex(repair.stdout, /repair: 0 files moved/);
  t.regex(repair.stdout, /8 sealed under a key not given kept/);
  t.regex(repair.stdout, /the key is probably wrong/);
  // Nothing moved, nothing changed, no quarantine folder.
  t.false(await exists(path.join(dir, 'quarantine')));
  for (const [file, bytes] of before) t.deepEqual(await fs.readFile(path.join(dir, file)), bytes);
  const store = await openStore({ dir, keys: KEY });
  for (const id of ids) t.truthy(await store.load(id));

  const json = await cli(['verify', '--repair', '--dir', dir, '--json'], wrong);
  const report = JSON.parse(json.stdout) as { probablyWrongKey: boolean; findings: Array<{ action: string }>; quarantine: string | null };
  t.true(report.probablyWrongKey);
  t.true(report.findings.every((finding) => finding.action === 'kept'));
  t.is(report.quarantine, null);

  // Without --repair the flag is a usage error; with it, the files go (the operator said so).
  t.is((await cli(['verify', '--include-wrong-key', '--dir', dir], wrong)).code, 2);
  const forced = await cli(['verify', '--repair', '--include-wrong-key', '--dir', dir, '--json'], wrong);
  const moved = JSON.parse(forced.stdout) as { findings: Array<{ action: string }>; quarantine: string };
  t.is(moved.findings.length, 8);
  t.true(moved.findings.every((finding) => finding.action === 'quarantined'));
  t.is((await listFiles(path.join(dir, moved.quarantine))).filter((file) => file.endsWith('.sess')).length, 8);
  assertNoSecrets(t, [found, repair, json, forced], ids);
});

test('fewer than half the files under a key not given: no "wrong key" verdict, and repair is suggested only for the other problems', async (t) => {
  const dir = await tempDir(t);
  await seed(await openStore({ dir, keys: KEY }), 3);
  await seed(await openStore({ dir, keys: OLD_KEY }), 1);
  const onlyWrongKey = await cli(['verify', '--dir', dir], { SESSION_KEYS: KEY });
  t.is(onlyWrongKey.code, 1);
  t.notRegex(onlyWrongKey.stdout, /probably wrong/);
  t.notRegex(onlyWrongKey.stdout, /run `sealed-sessions verify --repair` to/);
  t.regex(onlyWrongKey.stdout, /--include-wrong-key/);
  // Half of them (3 of 6) is enough for the verdict.
  await seed(await openStore({ dir, keys: OLD_KEY }), 2);
  const half = await cli(['verify', '--dir', dir, '--json'], { SESSION_KEYS: KEY });
  t.true((JSON.parse(half.stdout) as { probablyWrongKey: boolean }).probablyWrongKey, half.stdout);
});

test('a key file holding one key a line (and SESSION_KEYS with newlines) gives every key', async (t) => {
  t.deepEqual(splitKeys(` ${KEY}\r\n${OLD_KEY} \n\n`), [KEY, OLD_KEY]);
  t.deepEqual(splitKeys(`${KEY},\n ${OLD_KEY}`), [KEY, OLD_KEY]);
  const dir = await tempDir(t);
  const ids = [...(await seed(await openStore({ dir, keys: KEY }), 2)), ...(await seed(await openStore({ dir, keys: OLD_KEY }), 2))];
  const file = path.join(path.dirname(dir), 'keys');
  await fs.writeFile(file, `${KEY}\n${OLD_KEY}\n`, { mode: 0o600 });
  const fromFile = await cli(['verify', '--dir', dir, '--key-file', file]);
  t.is(fromFile.code, 0, fromFile.stdout + fromFile.stderr);
  t.regex(fromFile.stdout, /4 open fine/);
  const fromEnv = await cli(['verify', '--dir', dir], { SESSION_KEYS: `${KEY}\n${OLD_KEY}\n` });
  t.is(fromEnv.code, 0, fromEnv.stdout);
  // And the library: a newline-separated string is a rotation list, the first key seals.
  const store = await openStore({ dir, keys: `${KEY}\n${OLD_KEY}` });
  for (const id of ids) t.truthy(await store.load(id));
  assertNoSecrets(t, [fromFile, fromEnv], ids);
});

// ---------------------------------------------------------------- item 6: paths through symlinks

test('--dir given as a symlink to the data dir works (a cron gc runs); a symlink to nothing or to a file is still no data dir', async (t) => {
  const dir = await tempDir(t);
  const root = path.dirname(dir);
  const live = await seed(await openStore({ dir, keys: KEY }), 2);
  await seed(await openStore({ dir, keys: KEY, now: () => Date.now() - 10 * 86_400_000, absoluteTimeout: 3600 }), 3);
  const link = path.join(root, 'current');
  await fs.symlink(dir, link);

  const gc = await cli(['gc', '--dir', link, '--json']);
  t.is(gc.code, 0, gc.stderr);
  t.like(JSON.parse(gc.stdout), { removed: 3 });
  const stats = await cli(['stats', '--dir', link, '--json']);
  t.like(JSON.parse(stats.stdout), { sessions: 2, live: 2 });
  const verify = await cli(['verify', '--dir', link], { SESSION_KEYS: KEY });
  t.is(verify.code, 0, verify.stdout);
  const store = await openStore({ dir, keys: KEY });
  for (const id of live) t.truthy(await store.load(id));

  const dangling = path.join(root, 'dangling');
  await fs.symlink(path.join(root, 'nothing'), dangling);
  const file = path.join(root, 'a-file');
  await fs.writeFile(file, '');
  const toFile = path.join(root, 'to-file');
  await fs.symlink(file, toFile);
  for (const bad of [dangling, toFile]) {
    const result = await cli(['gc', '--dir', bad]);
    t.is(result.code, 2);
    t.regex(result.stderr, /no data dir/);
  }
  assertNoSecrets(t, [gc, stats, verify], live);
});

test('backup into a path that leads through a symlink into the data dir is refused; through a symlink elsewhere it works', async (t) => {
  const dir = await tempDir(t);
  const root = path.dirname(dir);
  await seed(await openStore({ dir, keys: KEY }), 3);
  const before = (await listFiles(dir)).sort();
  const intoData = path.join(root, 'backups');
  await fs.symlink(dir, intoData);
  await fs.mkdir(path.join(dir, 'empty'), { mode: 0o700 });
  const inside = path.join(root, 'inside-link');
  await fs.symlink(path.join(dir, 'empty'), inside);

  for (const dest of [path.join(intoData, 'copy'), path.join(intoData, 'empty', 'copy'), path.join(inside, 'copy')]) {
    const refused = await cli(['backup', '--dir', dir, '--', dest]);
    t.is(refused.code, 2, `${dest}: ${refused.stdout}`);
    t.regex(refused.stderr, /outside the data dir/);
  }
  // Through a symlinked data dir too, with the destination in the real one.
  const dataLink = path.join(root, 'data-link');
  await fs.symlink(dir, dataLink);
  const viaLink = await cli(['backup', '--dir', dataLink, '--', path.join(dir, 'copy')]);
  t.is(viaLink.code, 2, viaLink.stdout);
  t.deepEqual((await listFiles(dir)).sort(), before, 'something was written into the data dir');
  t.deepEqual(await fs.readdir(path.join(dir, 'empty')), []);

  const elsewhere = path.join(root, 'elsewhere');
  await fs.mkdir(elsewhere);
  await fs.symlink(elsewhere, path.join(root, 'elsewhere-link'));
  const fine = await cli(['backup', '--dir', dataLink, '--json', '--', path.join(root, 'elsewhere-link', 'copy')]);
  t.is(fine.code, 0, fine.stderr);
  t.like(JSON.parse(fine.stdout), { sessions: 3 });
  t.is((await listFiles(path.join(elsewhere, 'copy'))).filter((file) => file.endsWith('.sess')).length, 3);
});

test('verify --repair refuses a quarantine that is a symlink (or a file): nothing leaves the data dir', async (t) => {
  const dir = await tempDir(t);
  const root = path.dirname(dir);
  const [id] = await seed(await openStore({ dir, keys: KEY }), 2);
  const file = sessionFileOf(dir, id!);
  const bytes = await fs.readFile(file);
  bytes[bytes.length - 3]! ^= 0x01;
  await fs.writeFile(file, bytes);
  const outside = path.join(root, 'outside');
  await fs.mkdir(outside, { mode: 0o777 });
  await fs.symlink(outside, path.join(dir, 'quarantine'));

  const repair = await cli(['verify', '--repair', '--dir', dir], { SESSION_KEYS: KEY });
  t.is(repair.code, 1);
  t.regex(repair.stderr, /quarantine is not a real folder inside the data dir \(a symbolic link\)/);
  t.deepEqual(await fs.readdir(outside), [], 'files were sent out of the data dir');
  t.deepEqual(await fs.readFile(file), bytes, 'the tampered file was moved');

  await fs.unlink(path.join(dir, 'quarantine'));
  await fs.writeFile(path.join(dir, 'quarantine'), '');
  const onFile = await cli(['verify', '--repair', '--dir', dir], { SESSION_KEYS: KEY });
  t.is(onFile.code, 1);
  t.regex(onFile.stderr, /not a folder/);
  t.true(await exists(file));

  // A real folder is used as before.
  await fs.unlink(path.join(dir, 'quarantine'));
  const real = await cli(['verify', '--repair', '--dir', dir, '--json'], { SESSION_KEYS: KEY });
  const report = JSON.parse(real.stdout) as { quarantine: string };
  t.false(await exists(file));
  t.true(await exists(path.join(dir, report.quarantine, path.relative(dir, file))));
  assertNoSecrets(t, [repair, onFile, real], [id!]);
});

// ---------------------------------------------------------------- item 6: ids on stderr

test('show --<id> and show -<id> never echo the id (nor its cookie): the hint says to put it after --', async (t) => {
  const dir = await tempDir(t);
  const store = await openStore({ dir, keys: KEY });
  // Real ids, drawn until one starts with '--' (1 in 4,096) and one with '-' and a letter (1 in 64 of those with '-').
  const made = async (wanted: RegExp): Promise<string> => {
    for (;;) {
      const session = store.create();
      if (!wanted.test(session.id)) continue;
      session.set('user', 'ada');
      await session.save();
      return session.id;
    }
  };
  const ids = [await made(/^--/), await made(/^-[a-z]/), await made(/^-[A-Z0-9_]/)];
  const env = { SESSION_KEYS: KEY };
  const results: CliResult[] = [];
  await Promise.all(
    ids.map(async (id) => {
      const signed = `${id}.${'x'.repeat(43)}`;
      const cases = [
        ['show', '--dir', dir, id],
        ['show', id, '--dir', dir],
        ['show', '--dir', dir, '--json', signed],
        ['verify', id, '--dir', dir],
      ];
      for (const [index, result] of (await Promise.all(cases.map((args) => cli(args, env)))).entries()) {
        results.push(result);
        t.is(result.code, 2, `${cases[index]!.join(' ')}: ${result.stdout}`);
        t.regex(result.stderr, /an argument that starts with '-' \(put values after --\)/);
        // Not the id, nor any 8 characters of it.
        for (let start = 0; start + 8 <= id.length; start++) t.false(result.stderr.includes(id.slice(start, start + 8)), result.stderr);
      }
      const shown = await cli(['show', '--dir', dir, '--json', '--', id], env);
      t.is(shown.code, 0, shown.stderr);
      t.deepEqual(JSON.parse(shown.stdout), { user: 'ada' });
      results.push(shown);
    }),
  );
  // A mistyped option is still named.
  const typo = await cli(['show', '--jsno', '--dir', dir, '--', ids[0]!], env);
  t.regex(typo.stderr, /Unknown option '--jsno'/);
  assertNoSecrets(t, [...results, typo], ids);
});
