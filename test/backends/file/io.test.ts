import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { defaultIo } from '../../../src/backends/file/io.js';
import { tempDir } from '../../helpers/temp-dir.js';

test('an atomic write lands whole, 0600, and leaves no temp file', async (t) => {
  const dir = await tempDir(t);
  await fs.mkdir(dir);
  const target = path.join(dir, 'file.sess');
  await fs.writeFile(target, 'old version', { mode: 0o644 });
  await Promise.all(Array.from({ length: 20 }, (_, index) => defaultIo.writeFileAtomic(target, Buffer.from(`version ${index} `.repeat(100)))));
  t.regex(await fs.readFile(target, 'utf8'), /^(version (\d+) )\1{99}$/);
  t.is((await fs.stat(target)).mode & 0o777, 0o600);
  t.deepEqual(await fs.readdir(dir), ['file.sess']);
});

test('a write that cannot be renamed into place fails with the fs code and removes its temp file', async (t) => {
  const dir = await tempDir(t);
  await fs.mkdir(dir);
  // A non-empty folder where the file should go: the rename, the last step, fails.
  const target = path.join(dir, 'file.sess');
  await fs.mkdir(target);
  await fs.writeFile(path.join(target, 'inside'), 'x');
  const error = await t.throwsAsync(defaultIo.writeFileAtomic(target, Buffer.from('new version')));
  t.true(['EISDIR', 'ENOTEMPTY', 'EEXIST'].includes((error as NodeJS.ErrnoException).code ?? ''), String((error as NodeJS.ErrnoException).code));
  t.deepEqual(await fs.readdir(dir), ['file.sess']);
  t.deepEqual(await fs.readdir(target), ['inside']);
});
