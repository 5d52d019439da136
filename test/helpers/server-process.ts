import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { ExecutionContext } from 'ava';

const root = path.resolve(import.meta.dirname, '../..');

/** Starts test/fixtures/http-server.ts as a real child process on `dir`; killed when the test ends. Returns its base URL. */
export function serverProcess(t: ExecutionContext, dir: string, key: string): Promise<string> {
  return fixtureProcess(t, 'test/fixtures/http-server.ts', [dir, key]);
}

/** Starts a server fixture (a file under test/fixtures printing `listening <port>`) as a real child process; killed when the test ends. Returns its base URL. */
export function fixtureProcess(t: ExecutionContext, fixture: string, args: readonly string[]): Promise<string> {
  return fixtureServer(t, fixture, args).then((server) => server.url);
}

export interface FixtureServer {
  readonly url: string;
  readonly child: ChildProcess;
}

/**
 * Starts a server fixture (a script that prints `listening <port>`) as a real child process,
 * through tsx and any `preload` modules; killed when the test ends.
 */
export function fixtureServer(t: ExecutionContext, script: string, args: readonly string[], preload: readonly string[] = []): Promise<FixtureServer> {
  const child = spawn(process.execPath, ['--import=tsx/esm', ...preload.map((module) => `--import=${module}`), script, ...args], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  return new Promise((resolve, reject) => {
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = /listening (\d+)/.exec(output);
      if (match) resolve({ url: `http://127.0.0.1:${match[1]}`, child });
    });
    child.on('exit', (code) => reject(new Error(`server process ${script} exited (${code}) before listening`)));
  });
}
