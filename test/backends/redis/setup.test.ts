import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { redisBinaries } from '../../helpers/redis.js';

/*
 * The Redis test setup itself: it finds redis-server (installing Debian's package when it can,
 * which every Redis test file relies on), and when it can do neither it fails — never skips — with
 * the command that installs it.
 */

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '../../..');

/** What redisBinaries() says in a fresh process with `env`, as user `uid`. */
async function setupIn(env: NodeJS.ProcessEnv, uid?: number): Promise<string> {
  const script =
    "const { redisBinaries } = await import('./test/helpers/redis.ts'); await redisBinaries().then((found) => console.log('found', found.server), (error) => console.log(error.message));";
  const { stdout } = await run(process.execPath, ['--import=tsx/esm', '--input-type=module', '-e', script], {
    cwd: root,
    env: { HOME: os.tmpdir(), ...env },
    ...(uid === undefined ? {} : { uid, gid: uid }),
  });
  return stdout.trim();
}

test('redis-server and redis-cli are found (installed first if they were missing)', async (t) => {
  const { server, cli } = await redisBinaries();
  t.is(path.basename(server), 'redis-server');
  t.is(path.basename(cli), 'redis-cli');
  const { stdout } = await run(server, ['--version']);
  t.log(stdout.trim());
});

test('REDIS_SERVER naming no executable fails with that path, never skips', async (t) => {
  t.regex(
    await setupIn({ PATH: process.env['PATH'], REDIS_SERVER: '/nonexistent/redis-server' }),
    /^REDIS_SERVER=\/nonexistent\/redis-server is not an executable/,
  );
});

test('without redis-server and without the right to install it, the error is the command to run', async (t) => {
  if (process.getuid?.() !== 0) {
    // Not root here: this process itself is the case under test.
    t.regex(await setupIn({ PATH: path.join(os.tmpdir(), 'no-such-dir') }), /Run: (sudo apt-get install -y redis-server|brew install redis)$/);
    return;
  }
  const emptyBin = await fs.mkdtemp(path.join(os.tmpdir(), 'sealed-sessions-no-redis-'));
  t.teardown(() => fs.rm(emptyBin, { recursive: true, force: true }));
  // As root the setup would install with apt-get; with neither redis-server nor apt-get on the
  // PATH it cannot. (Not as another user: the checkout may sit in a folder only root can read.)
  t.regex(await setupIn({ PATH: emptyBin }), /^redis-server is not installed .* Run: sudo apt-get install -y redis-server$/);
});
