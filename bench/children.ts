// The bench's child processes (servers, redis-server) and its temp dir: whatever way the bench
// ends — done, an error, Ctrl-C, SIGTERM — the children are signalled and the temp dir removed.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();
let installed = false;
let shuttingDown = false;

/** True once the bench is ending (done, failed or interrupted): children exiting now are expected to. */
export function isShuttingDown(): boolean {
  return shuttingDown;
}

function cleanUpNow(): void {
  shuttingDown = true;
  for (const child of children) child.kill('SIGTERM');
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

/** Installs the exit, SIGINT and SIGTERM handlers (once). */
export function cleanUpOnExit(): void {
  if (installed) return;
  installed = true;
  process.on('exit', cleanUpNow);
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    process.on(signal, () => {
      shuttingDown = true;
      console.error(`\n${signal}: stopping the servers and removing the temp dir`);
      process.exit(code);
    });
  }
}

/** Removes `dir` at the end, whatever the end. */
export function removeAtExit(dir: string): void {
  tempDirs.add(dir);
}

/** Spawns a child that is killed when the bench ends; its stdin is a pipe that closes if the bench dies. */
export function spawnTracked(command: string, args: readonly string[], cwd: string): ChildProcess {
  const child = spawn(command, args, { cwd, stdio: ['pipe', 'pipe', 'inherit'] });
  children.add(child);
  child.on('exit', () => children.delete(child));
  // A child that dies before reading stdin must not crash the bench with EPIPE.
  child.stdin?.on('error', () => undefined);
  return child;
}

/** Waits until `child`'s stdout matches `pattern` (→ the match), rejecting if it exits first or after `timeoutMs`. */
export function waitForOutput(child: ChildProcess, pattern: RegExp, what: string, timeoutMs = 60_000): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => fail(new Error(`${what}: no ${pattern} on stdout after ${timeoutMs / 1000} s`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      const match = pattern.exec(out);
      if (match) {
        done();
        resolve(match);
      }
    };
    const onExit = (code: number | null, signal: string | null) =>
      fail(new Error(`${what} exited (${signal ?? code}) before it was ready${out ? `; it printed:\n${out}` : ''}`));
    const done = () => {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.off('exit', onExit);
      // Keep draining stdout, so a chatty child never blocks on a full pipe.
      child.stdout?.resume();
    };
    const fail = (error: Error) => {
      done();
      reject(error);
    };
    child.stdout?.on('data', onData);
    child.on('exit', onExit);
  });
}

/** Signals `child` and waits for it to exit (SIGKILL after `graceMs`). */
export async function stopChild(child: ChildProcess, graceMs = 3000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** Stops every tracked child still running. */
export async function stopAll(): Promise<void> {
  shuttingDown = true;
  await Promise.all([...children].map((child) => stopChild(child)));
}

/** The pids of the tracked children still running (for the quiet-machine accounting). */
export function childPids(): number[] {
  return [...children].flatMap((child) => (child.pid === undefined ? [] : [child.pid]));
}

/** Makes a temp dir under `base` that is removed at the end. */
export function tempDir(base: string, prefix: string): string {
  const dir = fs.mkdtempSync(path.join(base, prefix));
  removeAtExit(dir);
  return dir;
}
