import { spawn } from 'node:child_process';
import path from 'node:path';
import type { ExecutionContext } from 'ava';

const root = path.resolve(import.meta.dirname, '../..');

/** Starts test/fixtures/http-server.ts as a real child process on `dir`; killed when the test ends. Returns its base URL. */
export function serverProcess(t: ExecutionContext, dir: string, key: string): Promise<string> {
  return fixtureProcess(t, 'test/fixtures/http-server.ts', [dir, key]);
}

/** Starts a server fixture (a file under test/fixtures printing `listening <port>`) as a real child process; killed when the test ends. Returns its base URL. */
export function fixtureProcess(t: ExecutionContext, fixture: string, args: readonly string[]): Promise<string> {
  const child = spawn(process.execPath, ['--import=tsx/esm', fixture, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  return new Promise((resolve, reject) => {
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = /listening (\d+)/.exec(output);
      if (match) resolve(`http://127.0.0.1:${match[1]}`);
    });
    child.on('exit', (code) => reject(new Error(`server process exited (${code}) before listening`)));
  });
}
