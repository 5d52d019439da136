import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import test, { type ExecutionContext } from 'ava';
import { openStore, type Store } from '../../src/index.js';
import { createKeyring } from '../../src/crypto/keys.js';
import { readHeader } from '../../src/crypto/seal.js';
import { cli, type CliResult } from '../helpers/cli.js';
import { runSnippet } from '../helpers/node-snippet.js';
import { exists, KEY, listFiles, OLD_KEY, sessionFileOf, tempDir } from '../helpers/temp-dir.js';

/*
 * The CLI commands that change a data dir while servers may be writing to it: verify --repair,
 * rekey and backup, spawned as child processes; "servers" are child processes committing in a loop.
 */

const run = promisify(execFile);
const KEY_ID = createKeyring([KEY]).primary.idHex;

/** Sessions `{ count: 0, pad }`, `count` of them, sealed by `store`. */
async function seed(store: Store, count: number, padBytes: number): Promise<string[]> {
  const ids: string[] = [];
  for (let start = 0; start < count; start += 50) {
    ids.push(
      ...(await Promise.all(
        Array.from({ length: Math.min(50, count - start) }, async (_, index) => {
          const session = store.create();
          session.set('count', 0);
          session.set('pad', `${start + index}:`.padEnd(padBytes, 'p'));
          await session.save();
          return session.id;
        }),
      )),
    );
  }
  return ids;
}

function assertClean(t: ExecutionContext, results: readonly CliResult[], ids: readonly string[]): void {
  for (const { stdout, stderr } of results) {
    const text = stdout + stderr;
    t.false(text.includes('\x1b'), 'no escape codes when piped');
    for (const secret of [...ids, KEY, OLD_KEY]) t.false(text.includes(secret), 'no id or key printed');
  }
}

interface Writer {
  /** Resolves once the writer has committed a few times. */
  readonly ready: Promise<void>;
  /** Stops it; resolves with how many times it incremented each session. */
  stop(): Promise<{ counts: Record<string, number>; commits: number }>;
}

/**
 * A child process that, like a server under load, keeps loading sessions and committing
 * `count + 1` (with `keys`), four lanes in parallel, until told to stop.
 */
function startWriter(t: ExecutionContext, dir: string, keys: readonly string[], hot: readonly string[]): Writer {
  const control = path.join(path.dirname(dir), 'writer');
  const snippet = `
    const fs = await import('node:fs');
    const store = await openStore({ dir: args.dir, keys: args.keys });
    const counts = {};
    let commits = 0;
    await Promise.all(args.lanes.map(async (ids) => {
      for (let turn = 0; !fs.existsSync(args.stop); turn++) {
        const id = ids[turn % ids.length];
        const session = await store.load(id);
        if (session === null) throw new Error('a session did not load');
        session.set('count', session.get('count') + 1);
        const outcome = await store.commit(session);
        if (outcome !== 'written') throw new Error('commit: ' + outcome);
        counts[id] = (counts[id] ?? 0) + 1;
        if (++commits === 40) fs.writeFileSync(args.ready, '');
      }
    }));
    process.stdout.write(JSON.stringify({ counts, commits }));
  `;
  const lanes = [0, 1, 2, 3].map((lane) => hot.filter((_, index) => index % 4 === lane));
  const ready = `${control}.ready`;
  const stop = `${control}.stop`;
  const done = runSnippet(snippet, { dir, keys, lanes, ready, stop });
  t.teardown(() => fs.writeFile(stop, '').catch(() => undefined));
  return {
    ready: (async () => {
      for (let waited = 0; !(await exists(ready)); waited += 20) {
        if (waited > 30_000) throw new Error('the writer did not start');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })(),
    stop: async () => {
      await fs.writeFile(stop, '');
      const result = await done;
      if (result.code !== 0) throw new Error(`writer failed: ${result.stderr}`);
      return JSON.parse(result.stdout) as { counts: Record<string, number>; commits: number };
    },
  };
}

test('verify finds a flipped byte, a wrong key, a foreign file and debris; --repair quarantines (never deletes) and verify is clean after', async (t) => {
  const dir = await tempDir(t);
  const store = await openStore({ dir, keys: KEY });
  const good = await seed(store, 6, 100);
  const [flipped, foreign] = await seed(store, 2, 100);
  const [oldKeyed] = await seed(await openStore({ dir, keys: OLD_KEY }), 1, 100);
  const ids = [...good, flipped!, foreign!, oldKeyed!];

  const flippedFile = sessionFileOf(dir, flipped!);
  const bytes = await fs.readFile(flippedFile);
  bytes[bytes.length - 5]! ^= 0x01;
  await fs.writeFile(flippedFile, bytes);
  const foreignFile = sessionFileOf(dir, foreign!);
  await fs.writeFile(foreignFile, 'not a sealed session file');
  const oldKeyedFile = sessionFileOf(dir, oldKeyed!);
  const originals = new Map(await Promise.all([flippedFile, foreignFile, oldKeyedFile].map(async (file) => [file, await fs.readFile(file)] as const)));
  // Debris: a temp file and a lock left by killed processes, and a lock in use right now.
  const hour = 3600_000;
  const orphan = `${sessionFileOf(dir, good[0]!)}.987654`;
  await fs.writeFile(orphan, 'half');
  await fs.utimes(orphan, new Date(Date.now() - hour), new Date(Date.now() - hour));
  const staleLock = `${sessionFileOf(dir, good[1]!)}.lock`;
  await fs.mkdir(staleLock);
  await fs.utimes(staleLock, new Date(Date.now() - hour), new Date(Date.now() - hour));
  const liveLock = `${sessionFileOf(dir, good[2]!)}.lock`;
  await fs.mkdir(liveLock);
  // Refreshed as a live holder refreshes it (a lock dated ahead of the clock would count as planted).
  const refresh = setInterval(() => void fs.utimes(liveLock, new Date(), new Date()).catch(() => undefined), 1000);
  t.teardown(() => clearInterval(refresh));

  const env = { SESSION_KEYS: KEY };
  const rel = (file: string) => path.relative(dir, file);
  const found = await cli(['verify', '--dir', dir, '--json'], env);
  t.is(found.code, 1, found.stderr);
  const report = JSON.parse(found.stdout) as {
    problems: unknown;
    findings: Array<{ file: string; problem: string; action?: string }>;
    sessions: number;
    ok: number;
    inUse: number;
  };
  t.deepEqual(report.problems, { unreadable: 1, tampered: 1, 'wrong-key': 1, 'orphaned-temp': 1, 'stale-lock': 1 });
  t.like(report, { sessions: 9, ok: 6, inUse: 1 });
  t.deepEqual(Object.fromEntries(report.findings.map((finding) => [finding.file, finding.problem])), {
    [rel(flippedFile)]: 'tampered',
    [rel(foreignFile)]: 'unreadable',
    [rel(oldKeyedFile)]: 'wrong-key',
    [rel(orphan)]: 'orphaned-temp',
    [rel(staleLock)]: 'stale-lock',
  });
  t.true(
    report.findings.every((finding) => finding.action === undefined),
    'without --repair nothing is done',
  );
  t.true(await exists(flippedFile));
  t.true(await exists(staleLock));

  const human = await cli(['verify', '--dir', dir], env);
  t.is(human.code, 1);
  t.regex(human.stdout, /problems: 1 unreadable, 1 tampered, 1 wrong key, 1 orphaned temp file, 1 stale lock/);
  t.true(human.stdout.includes(`${rel(flippedFile)}  tampered`));
  t.regex(human.stdout, /verify --repair/);
  // With every key the servers use, the old-keyed session is fine.
  const allKeys = await cli(['verify', '--dir', dir, '--json'], { SESSION_KEYS: `${KEY},${OLD_KEY}` });
  t.like(JSON.parse(allKeys.stdout), { problems: { 'wrong-key': 0, tampered: 1 } });

  const repair = await cli(['verify', '--repair', '--dir', dir, '--json'], env);
  t.is(repair.code, 1, 'problems were found, even though they were repaired');
  const repaired = JSON.parse(repair.stdout) as { findings: Array<{ file: string; action: string }>; quarantine: string };
  // The file sealed under a key not given is kept: the key may just be missing.
  t.deepEqual(Object.fromEntries(repaired.findings.map((finding) => [finding.file, finding.action])), {
    [rel(flippedFile)]: 'quarantined',
    [rel(foreignFile)]: 'quarantined',
    [rel(oldKeyedFile)]: 'kept',
    [rel(orphan)]: 'removed',
    [rel(staleLock)]: 'removed',
  });
  t.regex(repaired.quarantine, /^quarantine\/\d{4}-\d\d-\d\dT[\d-]+\.\d+Z$/);
  // Moved, byte for byte, into the same layout under the quarantine folder; not deleted.
  for (const file of [flippedFile, foreignFile]) {
    t.false(await exists(file));
    t.deepEqual(await fs.readFile(path.join(dir, repaired.quarantine, rel(file))), originals.get(file));
  }
  t.deepEqual(await fs.readFile(oldKeyedFile), originals.get(oldKeyedFile));
  const note = JSON.parse(await fs.readFile(path.join(dir, repaired.quarantine, 'findings.json'), 'utf8')) as { files: unknown[] };
  t.is(note.files.length, 2);
  t.false(await exists(orphan));
  t.false(await exists(staleLock));
  t.true(await exists(liveLock), 'a lock in use is left alone');

  // Asked for explicitly, it goes too.
  const wrongKey = await cli(['verify', '--repair', '--include-wrong-key', '--dir', dir, '--json'], env);
  const movedToo = JSON.parse(wrongKey.stdout) as { findings: Array<{ file: string; action: string }>; quarantine: string };
  t.deepEqual(movedToo.findings, [{ file: rel(oldKeyedFile), problem: 'wrong-key', action: 'quarantined' }]);
  t.deepEqual(await fs.readFile(path.join(dir, movedToo.quarantine, rel(oldKeyedFile))), originals.get(oldKeyedFile));

  const clean = await cli(['verify', '--dir', dir], env);
  t.is(clean.code, 0, clean.stdout);
  t.regex(clean.stdout, /no problems/);
  const reopened = await openStore({ dir, keys: KEY });
  for (const id of good) t.truthy(await reopened.load(id));
  // Restoring a quarantined file is a plain move back.
  await fs.rename(path.join(dir, movedToo.quarantine, rel(oldKeyedFile)), oldKeyedFile);
  t.truthy(await (await openStore({ dir, keys: OLD_KEY })).load(oldKeyed!));
  assertClean(t, [found, human, allKeys, repair, wrongKey, clean], ids);
});

test('rekey while another process keeps committing: afterwards every session reads with the new key alone, no update lost, nothing lives longer', async (t) => {
  const dir = await tempDir(t);
  const ids = await seed(await openStore({ dir, keys: OLD_KEY }), 300, 2000);
  const hot = ids.slice(0, 40);
  const cold = ids.slice(40);
  const headersBefore = new Map(
    await Promise.all(
      cold.map(
        async (id) =>
          [id, { header: readHeader(await fs.readFile(sessionFileOf(dir, id))), mtimeMs: (await fs.stat(sessionFileOf(dir, id))).mtimeMs }] as const,
      ),
    ),
  );

  // The servers run with [new, old] already (step 2 of a rotation), and keep writing.
  const writer = startWriter(t, dir, [KEY, OLD_KEY], hot);
  await writer.ready;
  const env = { SESSION_KEYS: `${KEY},${OLD_KEY}` };
  const first = await cli(['rekey', '--dir', dir, '--json'], env);
  t.is(first.code, 0, first.stderr);
  const report = JSON.parse(first.stdout) as { scanned: number; rewritten: number; current: number; gone: number; failed: Record<string, number> };
  t.is(report.scanned, 300);
  t.is(report.rewritten + report.current, 300);
  t.true(report.rewritten >= cold.length, 'the sessions nobody used were rewritten by rekey');
  t.deepEqual(report.failed, { wrongKey: 0, tampered: 0, unreadable: 0, locked: 0 });
  // Run again (as after an interruption): nothing left to do.
  const second = await cli(['rekey', '--dir', dir], env);
  t.is(second.code, 0, second.stderr);
  t.regex(second.stdout, /rewrote 0 sessions .* 300 already were/);
  const { counts, commits } = await writer.stop();
  t.true(commits >= 40);

  // The old key dropped: every session opens, with every increment the writer made.
  const newOnly = await openStore({ dir, keys: KEY });
  for (const id of ids) {
    const session = await newOnly.load(id);
    if (session === null) {
      t.fail('a session does not open with the new key alone');
      continue;
    }
    t.is(session.get('count'), counts[id] ?? 0);
    t.regex(String(session.get('pad')), /^\d+:p+$/);
  }
  t.deepEqual((await newOnly.stats()).byKeyId, { [KEY_ID]: 300 });
  const verify = await cli(['verify', '--dir', dir], { SESSION_KEYS: KEY });
  t.is(verify.code, 0, verify.stdout);
  // Same creation time, deadlines and last use: a rekey is not a use.
  for (const id of cold) {
    const before = headersBefore.get(id)!;
    const header = readHeader(await fs.readFile(sessionFileOf(dir, id)));
    t.like(header, { ...before.header, keyIdHex: KEY_ID });
    // Last use as the store counts it: the later of the sealed write time and the file's mtime
    // (which the kernel's coarse clock can put a hair before the write time).
    const lastUse = (mtimeMs: number) => Math.round(Math.max(before.header!.written, mtimeMs));
    t.is(lastUse((await fs.stat(sessionFileOf(dir, id))).mtimeMs), lastUse(before.mtimeMs));
  }
  assertClean(t, [first, second, verify], ids);
});

test('backup while another process keeps committing: a store on the copy reads 100 % of the sessions; layout, modes, manifest; restore is cp -a', async (t) => {
  const dir = await tempDir(t);
  const store = await openStore({ dir, keys: KEY });
  const ids = await seed(store, 300, 5000);
  const hot = ids.slice(0, 40);
  // Debris that must not be copied: a stale lock and a temp file.
  const tempFile = `${sessionFileOf(dir, ids[100]!)}.13579`;
  await fs.writeFile(tempFile, 'half');
  await fs.mkdir(`${sessionFileOf(dir, ids[101]!)}.lock`);

  const writer = startWriter(t, dir, [KEY], hot);
  await writer.ready;
  const dest = path.join(path.dirname(dir), 'backup-1');
  const result = await cli(['backup', '--dir', dir, '--json', '--', dest]);
  t.is(result.code, 0, result.stderr);
  const { counts } = await writer.stop();

  const manifest = JSON.parse(result.stdout) as Record<string, unknown>;
  t.like(manifest, { format: 'sealed-sessions-backup/1', sessions: 300, expired: 0, unreadable: 0, keyIds: { [KEY_ID]: 300 }, source: dir });
  t.deepEqual(JSON.parse(await fs.readFile(path.join(dest, 'sealed-sessions-backup.json'), 'utf8')), manifest);
  t.true(Math.abs(Date.parse(String(manifest['date'])) - Date.now()) < 60_000);

  // The copy: the data dir's layout, sessions only, private modes, no key anywhere.
  const files = await listFiles(dest);
  t.is(files.length, 301);
  let bytes = 0;
  for (const file of files) {
    const stats = await fs.stat(path.join(dest, file));
    t.is(stats.mode & 0o777, 0o600, file);
    const content = await fs.readFile(path.join(dest, file));
    for (const key of [KEY, OLD_KEY]) t.false(content.includes(key));
    if (file === 'sealed-sessions-backup.json') continue;
    t.regex(file, /^[0-9a-f]{2}\/[0-9a-f]{64}\.sess$/);
    bytes += stats.size;
  }
  t.is(manifest['bytes'], bytes);
  for (const folder of ['.', ...new Set(files.map((file) => path.dirname(file)))]) t.is((await fs.stat(path.join(dest, folder))).mode & 0o777, 0o700);

  // Every session opens from the copy, each at a version the writer really made.
  const copy = await openStore({ dir: dest, keys: KEY });
  let readable = 0;
  for (const id of ids) {
    const session = await copy.load(id);
    if (session === null) continue;
    readable++;
    const count = session.get('count') as number;
    t.true(count >= 0 && count <= (counts[id] ?? 0));
  }
  t.is(readable, 300, '100 % of the sessions read from the backup');

  // Restore: a plain copy back.
  const restored = path.join(path.dirname(dir), 'restored');
  await run('cp', ['-a', dest, restored]);
  const back = await openStore({ dir: restored, keys: KEY });
  t.is((await back.stats()).live, 300);
  t.truthy(await back.load(ids[299]!));

  // A destination that is not empty, or inside the data dir: usage errors; nothing written.
  const notEmpty = await cli(['backup', '--dir', dir, dest]);
  t.is(notEmpty.code, 2);
  t.regex(notEmpty.stderr, /new or empty folder/);
  const inside = await cli(['backup', '--dir', dir, path.join(dir, 'backup')]);
  t.is(inside.code, 2);
  t.regex(inside.stderr, /outside the data dir/);
  t.false(await exists(path.join(dir, 'backup')));
  const human = await cli(['backup', '--dir', dir, path.join(path.dirname(dir), 'backup-2')]);
  t.is(human.code, 0);
  t.regex(human.stdout, /^backup: copied 300 session files/);
  assertClean(t, [result, notEmpty, inside, human], ids);
});

test('cp -a of the data dir while another process keeps committing: a store on the copy reads every session (guarantee 10)', async (t) => {
  const dir = await tempDir(t);
  const store = await openStore({ dir, keys: KEY });
  const ids = await seed(store, 200, 3000);
  const hot = ids.slice(0, 40);
  const writer = startWriter(t, dir, [KEY], hot);
  await writer.ready;
  // Three copies taken one after another, each under the writer's load.
  const copies = [1, 2, 3].map((n) => path.join(path.dirname(dir), `copy-${n}`));
  for (const copy of copies) {
    // cp lists a folder, then copies each entry: a lock folder or temp file of a commit that
    // finished in between is gone by then, which cp reports (exit 1). Only such debris may be.
    const { stderr } = await run('cp', ['-a', dir, copy]).catch((error: { stderr: string }) => error);
    for (const line of stderr.split('\n').filter(Boolean)) t.regex(line, /\.sess\.(lock|\d+)['’]?: No such file or directory$/);
  }
  const { counts, commits } = await writer.stop();
  t.true(commits >= 40);
  for (const copy of copies) {
    const opened = await openStore({ dir: copy, keys: KEY });
    const tampered: unknown[] = [];
    opened.on('tamper', (event) => tampered.push(event));
    let readable = 0;
    for (const id of ids) {
      const session = await opened.load(id);
      if (session === null) continue;
      readable++;
      const count = session.get('count') as number;
      t.true(count >= 0 && count <= (counts[id] ?? 0), 'a version the writer really made');
    }
    t.is(readable, ids.length, `every session reads from ${path.basename(copy)}`);
    t.deepEqual(tampered, []);
  }
});
