import { execFile } from 'node:child_process';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '../..');
const bin = path.join(root, 'src/bin.ts');

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs the CLI (src/bin.ts, through tsx) in a child process with pipes for stdout and stderr, as
 * a cron job or a script would. Its environment is this one without SESSION_KEYS and NODE_ENV,
 * plus `env`.
 */
export function cli(args: readonly string[], env: Record<string, string> = {}, cwd = root): Promise<CliResult> {
  const merged: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) if (value !== undefined && name !== 'SESSION_KEYS' && name !== 'NODE_ENV') merged[name] = value;
  Object.assign(merged, env);
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import=tsx/esm', bin, ...args], { cwd, env: merged, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}
