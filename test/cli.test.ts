import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { openStore } from '../src/index.js';
import { tempDir } from './helpers/temp-dir.js';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '..');
const bin = path.join(root, 'src/bin.ts');

function cli(...args: string[]) {
  return run(process.execPath, ['--import=tsx/esm', bin, ...args], { cwd: root }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, stdout: error.stdout, stderr: error.stderr }),
  );
}

test('keygen prints a fresh 32-byte base64url key that a store accepts', async (t) => {
  const first = await cli('keygen');
  const second = await cli('keygen');
  t.is(first.code, 0);
  const key = first.stdout.trim();
  t.regex(key, /^[A-Za-z0-9_-]{43}$/);
  t.is(Buffer.from(key, 'base64url').length, 32);
  t.not(key, second.stdout.trim());
  const store = await openStore({ dir: await tempDir(t), keys: key });
  const session = store.create();
  session.set('ok', true);
  await session.save();
  t.is((await store.load(session.id))?.get('ok'), true);
});

test('unknown command or bad flag → exit 2 with a one-line hint', async (t) => {
  const unknown = await cli('frobnicate');
  t.is(unknown.code, 2);
  t.regex(unknown.stderr, /unknown command 'frobnicate'.*--help/);
  t.is(unknown.stderr.trim().split('\n').length, 1);
  const badFlag = await cli('keygen', '--nope');
  t.is(badFlag.code, 2);
  t.regex(badFlag.stderr, /keygen --help/);
  const help = await cli('keygen', '--help');
  t.is(help.code, 0);
  t.regex(help.stdout, /SESSION_KEYS/);
});
