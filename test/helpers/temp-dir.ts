import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { fileNameOf } from '../../src/core/session-id.js';

/** A fresh real directory for one test, removed when the test ends. Returns the path of a data dir inside it (not yet created). */
export async function tempDir(t: ExecutionContext): Promise<string> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'sealed-sessions-test-'));
  t.teardown(() => fs.rm(root, { recursive: true, force: true }));
  return path.join(root, 'sessions-data');
}

/** A valid test key (32+ bytes). */
export const KEY = 'test-key-0123456789abcdef-0123456789abcdef';
export const OLD_KEY = 'old-key-0123456789abcdef-0123456789abcdef!';

/** Every regular file under `dir`, recursively (paths relative to `dir`). */
export async function listFiles(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((entry) => entry.isFile()).map((entry) => path.relative(dir, path.join(entry.parentPath, entry.name)));
}

/** Where the session `id` lives under the data dir `dir`. */
export function sessionFileOf(dir: string, id: string): string {
  const name = fileNameOf(id);
  return path.join(dir, name.slice(0, 2), `${name}.sess`);
}

export async function exists(file: string): Promise<boolean> {
  return fs.access(file).then(
    () => true,
    () => false,
  );
}
