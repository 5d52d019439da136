import { spawn } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const ROOT = path.resolve(import.meta.dirname, '../..');
const INDEX_URL = pathToFileURL(path.join(ROOT, 'src/index.ts')).href;

/**
 * Runs `body` (an async ESM snippet with `openStore` and `args` in scope) in a fresh Node
 * process whose environment is exactly `env` on top of PATH: env changes and once-per-process
 * state (the dev key warning) never leak between tests.
 */
export function runSnippet(body: string, args: unknown, env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const code = [`const { openStore } = await import(${JSON.stringify(INDEX_URL)});`, `const args = JSON.parse(process.env.CHILD_ARGS);`, body].join('\n');
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['--import=tsx/esm', '--input-type=module', '-e', code], {
      cwd: ROOT,
      env: { PATH: process.env['PATH'] ?? '', ...env, CHILD_ARGS: JSON.stringify(args) },
    });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    proc.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    proc.on('error', reject);
    proc.on('close', (exitCode) => resolve({ code: exitCode, stdout, stderr }));
  });
}
