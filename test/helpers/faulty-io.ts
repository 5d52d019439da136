import { randomInt } from 'node:crypto';
import fs from 'node:fs/promises';
import { defaultIo, type Io } from '../../src/backends/file/io.js';

/** The errno codes the fault tests inject. */
export type Errno = 'ENOSPC' | 'EIO' | 'EACCES';

/**
 * Where a fault strikes. `write` fails `writeFileAtomic` before anything is written; `rename` fails
 * it after the temp file was fully written, as a crash or a full disk at the rename step would
 * (the temp file `<target>.<digits>` is left behind, as debris). Every other point is the `Io`
 * method of that name (`read` is `readFile` and `stat`).
 */
export type FaultPoint = 'read' | 'write' | 'rename' | 'mkdir' | 'unlink' | 'utimes' | 'lstat' | 'opendir' | 'lock' | 'readText';

export interface FaultyIo {
  /** Pass as `openStore({ io })`. */
  readonly io: Io;
  /** Makes `point` fail with `code`: on its next call only (default), or on every call until `clear()`. */
  fail(point: FaultPoint, code: Errno, times?: 'once' | 'always'): void;
  /** Removes every armed fault. */
  clear(): void;
  /** How many faults were thrown so far, per point. */
  readonly injected: Readonly<Record<string, number>>;
  /** Temp files left by `rename` faults (absolute paths). */
  readonly debris: readonly string[];
}

/** An Error shaped like Node's fs errors: `code`, `errno`, `syscall`, `path`. */
export function errnoError(code: Errno, syscall: string, path: string): NodeJS.ErrnoException {
  const errno = { ENOSPC: -28, EIO: -5, EACCES: -13 }[code];
  const error: NodeJS.ErrnoException = new Error(`${code}: injected fault, ${syscall} '${path}'`);
  error.code = code;
  error.errno = errno;
  error.syscall = syscall;
  error.path = path;
  return error;
}

/** Wraps `defaultIo` (or `base`) with armable faults. */
export function faultyIo(base: Io = defaultIo): FaultyIo {
  const armed = new Map<FaultPoint, { code: Errno; times: 'once' | 'always' }>();
  const injected: Record<string, number> = {};
  const debris: string[] = [];

  /** The armed fault of `point`, consumed if it was a one-shot. */
  const take = (point: FaultPoint): Errno | undefined => {
    const fault = armed.get(point);
    if (fault === undefined) return undefined;
    if (fault.times === 'once') armed.delete(point);
    injected[point] = (injected[point] ?? 0) + 1;
    return fault.code;
  };

  const guard =
    <A extends unknown[], R>(point: FaultPoint, syscall: string, op: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      const code = take(point);
      if (code !== undefined) throw errnoError(code, syscall, String(args[0]));
      return op(...args);
    };

  const io: Io = {
    readFile: guard('read', 'read', base.readFile),
    readLatest: guard('read', 'read', base.readLatest),
    // A session read before is checked by a stat (the store's read cache): that is a read too.
    stat: guard('read', 'stat', base.stat),
    writeFileAtomic: async (target, data) => {
      const writeFault = take('write');
      if (writeFault !== undefined) throw errnoError(writeFault, 'open', target);
      const renameFault = take('rename');
      if (renameFault !== undefined) {
        // What write-file-atomic leaves when it dies between write and rename: a complete temp
        // file beside the target, named `<target>.<decimal digits>`.
        const temp = `${target}.${randomInt(1, 2 ** 32)}`;
        await fs.writeFile(temp, data, { mode: 0o600 });
        debris.push(temp);
        throw errnoError(renameFault, 'rename', temp);
      }
      return base.writeFileAtomic(target, data);
    },
    mkdir: guard('mkdir', 'mkdir', base.mkdir),
    unlink: guard('unlink', 'unlink', base.unlink),
    utimes: guard('utimes', 'utime', base.utimes),
    mark: guard('utimes', 'futimes', base.mark),
    lstat: guard('lstat', 'lstat', base.lstat),
    opendir: guard('opendir', 'opendir', base.opendir),
    lock: guard('lock', 'mkdir', base.lock),
    readText: guard('readText', 'open', base.readText),
  };

  return {
    io,
    fail: (point, code, times = 'once') => {
      armed.set(point, { code, times });
    },
    clear: () => armed.clear(),
    injected,
    debris,
  };
}
