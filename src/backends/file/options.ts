import path from 'node:path';
import { positive } from '../../core/options.js';
import { sessionTypeError } from '../../errors.js';
import { defaultIo, type Io } from './io.js';
import type { LockSettings } from './lock.js';

/** Options of the file backend (the default): where the files are, and how long locks are waited for. */
export interface FileOptions {
  /**
   * Folder of the session files; created (0700) when missing.
   * @default 'sessions-data'
   */
  dir?: string;
  /**
   * Seconds after which a lock that its holder stopped refreshing (a killed process) is taken over.
   * @default 10
   */
  lockStale?: number;
  /**
   * Seconds a commit waits for a lock held by another process before `ERR_SESSION_LOCK_TIMEOUT`.
   * Longer than `lockStale`, so that a lock left by a dead process delays a commit, never fails it.
   * @default lockStale + 5
   */
  lockWait?: number;
  /** The disk seam; for fault-injection tests. */
  io?: Io;
}

export interface ResolvedFileOptions {
  /** Absolute. */
  readonly dir: string;
  readonly lock: LockSettings;
  readonly io: Io;
}

export function resolveFileOptions(options: FileOptions = {}): ResolvedFileOptions {
  if (options.dir !== undefined && (typeof options.dir !== 'string' || options.dir === '')) {
    throw sessionTypeError('ERR_SESSION_OPTION', 'option `dir` must be a non-empty string');
  }
  const lockStale = positive('lockStale', options.lockStale, 10);
  if (lockStale < 2) throw sessionTypeError('ERR_SESSION_OPTION', 'option `lockStale` must be at least 2 seconds');
  return Object.freeze({
    dir: path.resolve(options.dir ?? 'sessions-data'),
    lock: Object.freeze({ staleMs: 1000 * lockStale, waitMs: 1000 * positive('lockWait', options.lockWait, lockStale + 5) }),
    io: options.io ?? defaultIo,
  });
}
