import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { FileBackend } from '../../src/backends/file/file-backend.js';
import { defaultIo, operationsIo, type OperationsIo } from '../../src/backends/file/io.js';
import { openStore } from '../../src/index.js';
import { backupStore, MANIFEST_FILE } from '../../src/ops/backup.js';
import { verifyStore } from '../../src/ops/verify.js';
import { KEY, listFiles, tempDir } from '../helpers/temp-dir.js';

/*
 * Issue 11 item 8: the files the operations write whole — a backup's manifest, a quarantine's
 * findings.json — go through write-file-atomic (io.ts's `operationsIo.writeFile`); session files
 * keep io.ts's lean write. And a copied session file (backup, migrate) appears whole and already
 * dated: no window where it exists with the wrong modification time.
 */

const IO_SOURCE = path.resolve(import.meta.dirname, '../../src/backends/file/io.ts');

/** `operationsIo`, noting every whole-file write. */
function recording(): { readonly ops: OperationsIo; readonly written: string[] } {
  const written: string[] = [];
  return {
    written,
    ops: {
      ...operationsIo,
      writeFile: async (file, data) => {
        written.push(file);
        await operationsIo.writeFile(file, data);
      },
    },
  };
}

test('operationsIo.writeFile is write-file-atomic with mode 0600 and no chown, and io.ts is its only importer', async (t) => {
  const text = await fs.readFile(IO_SOURCE, 'utf8');
  t.regex(text, /^import writeFileAtomic from 'write-file-atomic';$/m);
  t.regex(text, /writeFile: \(path, data\) => writeFileAtomic\(path, data, WHOLE_FILE_OPTIONS\)/);
  t.regex(text, /\{ mode: 0o600, chown: false \}/);

  const dir = path.dirname(await tempDir(t));
  const file = path.join(dir, 'notes.json');
  await fs.writeFile(file, 'old', { mode: 0o644 });
  await fs.chmod(file, 0o644);
  await operationsIo.writeFile(file, Buffer.from('{"new":true}\n'));
  t.is(await fs.readFile(file, 'utf8'), '{"new":true}\n');
  // write-file-atomic would keep the old file's mode unless told: ours is 0600 whatever was there.
  t.is((await fs.stat(file)).mode & 0o777, 0o600);
  t.deepEqual(await fs.readdir(dir), ['notes.json'], 'no temp file left');
});

test("a backup's manifest is written last through operationsIo.writeFile (write-file-atomic)", async (t) => {
  const dir = await tempDir(t);
  const store = await openStore({ dir, keys: KEY });
  for (let n = 0; n < 3; n++) {
    const session = store.create();
    session.set('n', n);
    await session.save();
  }
  const { ops, written } = recording();
  const dest = path.join(path.dirname(dir), 'backup');
  const manifest = await backupStore(store, dest, { operationsIo: ops });
  t.is(manifest.sessions, 3);
  t.deepEqual(written, [path.join(dest, MANIFEST_FILE)]);
  t.is((await fs.stat(path.join(dest, MANIFEST_FILE))).mode & 0o777, 0o600);
});

test("verify --repair's findings.json is written through operationsIo.writeFile (write-file-atomic)", async (t) => {
  const dir = await tempDir(t);
  const { ops, written } = recording();
  const backend = new FileBackend({ dir, io: defaultIo, operationsIo: ops, lock: { staleMs: 10_000, waitMs: 5000 }, maxReadBytes: 1 << 20 });
  const store = await openStore({ dir, keys: KEY, backend });
  const session = store.create();
  session.set('n', 1);
  await session.save();
  const [file] = (await listFiles(dir)).filter((name) => name.endsWith('.sess'));
  await fs.writeFile(path.join(dir, file!), 'not an envelope');
  const report = await verifyStore(store, { repair: true });
  t.is(report.findings[0]?.action, 'quarantined');
  t.is(written.length, 1);
  t.is(path.basename(written[0]!), 'findings.json');
  t.is(path.dirname(written[0]!), path.join(dir, report.quarantine!));
  t.like(JSON.parse(await fs.readFile(written[0]!, 'utf8')), { files: [{ problem: 'unreadable' }] });
});

test('operationsIo.createFile makes the file whole and already dated, 0600, never over anything', async (t) => {
  const dir = path.dirname(await tempDir(t));
  const file = path.join(dir, 'copy.sess');
  const mtimeMs = Date.now() - 3_600_000 + 0.25;
  await operationsIo.createFile(file, Buffer.from('envelope'), mtimeMs);
  const stats = await fs.stat(file);
  t.is(Math.round(stats.mtimeMs), Math.round(mtimeMs));
  t.is(stats.mode & 0o777, 0o600);
  t.is(stats.nlink, 1, 'the temp name is gone');
  t.deepEqual(await fs.readdir(dir), ['copy.sess']);

  await t.throwsAsync(operationsIo.createFile(file, Buffer.from('other'), mtimeMs), { code: 'EEXIST' });
  t.is(await fs.readFile(file, 'utf8'), 'envelope');
  // A dangling symlink in its place is something there too: never followed.
  const link = path.join(dir, 'link.sess');
  await fs.symlink(path.join(dir, 'nowhere'), link);
  await t.throwsAsync(operationsIo.createFile(link, Buffer.from('x'), mtimeMs), { code: 'EEXIST' });
  await t.throwsAsync(fs.stat(path.join(dir, 'nowhere')));
  t.deepEqual((await fs.readdir(dir)).sort(), ['copy.sess', 'link.sess']);
});
