import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const ROOT = path.resolve(import.meta.dirname, '../..');
const INDEX_URL = pathToFileURL(path.join(ROOT, 'src/index.ts')).href;

export interface SnippetResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** What `child` prints and how it exits, once it has. */
export function outputOf(child: ChildProcessWithoutNullStreams): Promise<SnippetResult> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (exitCode) => resolve({ code: exitCode, stdout, stderr }));
  });
}

/**
 * Runs `body` (an async ESM snippet with `openStore` and `args` in scope) in a fresh Node
 * process whose environment is exactly `env` on top of PATH: env changes and once-per-process
 * state (the dev key warning) never leak between tests.
 */
export function runSnippet(body: string, args: unknown, env: Record<string, string> = {}): Promise<SnippetResult> {
  return startSnippet(body, args, env).done;
}

/** `runSnippet`, with the child's pid known while it runs. */
export function startSnippet(body: string, args: unknown, env: Record<string, string> = {}): { readonly pid: number; readonly done: Promise<SnippetResult> } {
  const code = [`const { openStore } = await import(${JSON.stringify(INDEX_URL)});`, `const args = JSON.parse(process.env.CHILD_ARGS);`, body].join('\n');
  const proc = spawn(process.execPath, ['--import=tsx/esm', '--input-type=module', '-e', code], {
    cwd: ROOT,
    env: { PATH: process.env['PATH'] ?? '', ...env, CHILD_ARGS: JSON.stringify(args) },
  });
  return { pid: proc.pid!, done: outputOf(proc) };
}

/**
 * Runs `body` (plain ESM, `args` in scope, no TypeScript, nothing of this repository) as another
 * user: a real unprivileged process, such as a local attacker. Needs root.
 */
export function runAsUser(uid: number, body: string, args: unknown): Promise<SnippetResult> {
  const code = [`const args = JSON.parse(process.env.CHILD_ARGS);`, body].join('\n');
  return outputOf(
    spawn(process.execPath, ['--input-type=module', '-e', code], {
      cwd: '/',
      uid,
      gid: uid,
      env: { PATH: process.env['PATH'] ?? '', CHILD_ARGS: JSON.stringify(args) },
    }),
  );
}
