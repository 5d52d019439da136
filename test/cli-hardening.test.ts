import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { openStore, type Store } from '../src/index.js';
import { createKeyring, splitKeys } from '../src/crypto/keys.js';
import { cli, type CliResult } from './helpers/cli.js';
import { exists, KEY, listFiles, OLD_KEY, tempDir } from './helpers/temp-dir.js';

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
  for (const { stdout, stderr } of results) for (const secret of [...secrets, KEY, OLD_KEY]) t.false((stdout + stderr).includes(secret), 'an id or a key was printed');
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
