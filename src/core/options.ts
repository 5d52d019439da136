import path from 'node:path';
import { sessionTypeError } from '../errors.js';
import { defaultIo, type Io } from '../backends/file/io.js';

/** Options of `openStore()`. Durations are in seconds unless the name says otherwise. */
export interface StoreOptions {
  /**
   * Folder of the session files; created (0700) when missing.
   * @default 'sessions-data'
   */
  dir?: string;
  /**
   * Secrets of at least 32 bytes: the first seals and signs, every one opens and verifies. A
   * comma-separated string is accepted. Falls back to `SESSION_KEYS`, then (outside production)
   * to a development key file beside `dir`.
   */
  keys?: string | readonly string[] | undefined;
  /**
   * Seconds without use after which a session expires.
   * @default 1800
   */
  idleTimeout?: number;
  /**
   * Seconds after creation after which a session expires, however much it is used.
   * @default 604800 (7 days)
   */
  absoluteTimeout?: number;
  /**
   * Largest session, as bytes of its JSON; a commit over it fails with `ERR_SESSION_TOO_LARGE`.
   * @default 1048576 (1 MiB)
   */
  maxBytes?: number;
  /**
   * Seconds between two keep-alive marks of one session (a keep-alive updates the file's
   * modification time; it never rewrites the file).
   * @default min(60, idleTimeout / 10)
   */
  touchInterval?: number;
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
  /**
   * Sessions kept decrypted in memory, each checked against its file by one `stat` per read (any
   * rewrite, touch or replacement by another process changes what the stat sees). 0 turns it off.
   * @default 10000
   */
  cacheSize?: number;
  /** The clock, in ms since the epoch; for tests. @default Date.now */
  now?: () => number;
  /** The disk seam; for fault-injection tests. */
  io?: Io;
}

export interface ResolvedOptions {
  readonly dir: string;
  readonly keys: string | readonly string[] | undefined;
  readonly idleTimeout: number;
  readonly absoluteTimeout: number;
  readonly maxBytes: number;
  readonly touchIntervalMs: number;
  readonly lockStaleMs: number;
  readonly lockWaitMs: number;
  readonly cacheSize: number;
  readonly now: () => number;
  readonly io: Io;
}

function positive(name: string, value: unknown, fallback: number, integer = false): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
    throw sessionTypeError('ERR_SESSION_OPTION', `option \`${name}\` must be a positive ${integer ? 'integer' : 'number'}`);
  }
  return value;
}

/** Checks every option once, up front; the only place defaults live. */
export function resolveOptions(options: StoreOptions = {}): ResolvedOptions {
  if (options.dir !== undefined && (typeof options.dir !== 'string' || options.dir === '')) {
    throw sessionTypeError('ERR_SESSION_OPTION', 'option `dir` must be a non-empty string');
  }
  const keys = options.keys;
  if (keys !== undefined && typeof keys !== 'string' && !(Array.isArray(keys) && keys.every((key) => typeof key === 'string'))) {
    throw sessionTypeError('ERR_SESSION_OPTION', 'option `keys` must be a string or an array of strings');
  }
  const idleTimeout = positive('idleTimeout', options.idleTimeout, 30 * 60, true);
  // Each file's header holds it in 32 bits (136 years).
  if (idleTimeout > 0xffff_ffff) throw sessionTypeError('ERR_SESSION_OPTION', 'option `idleTimeout` must be at most 4294967295 seconds');
  const absoluteTimeout = positive('absoluteTimeout', options.absoluteTimeout, 7 * 24 * 3600);
  const lockStale = positive('lockStale', options.lockStale, 10);
  if (lockStale < 2) throw sessionTypeError('ERR_SESSION_OPTION', 'option `lockStale` must be at least 2 seconds');
  if (options.now !== undefined && typeof options.now !== 'function') {
    throw sessionTypeError('ERR_SESSION_OPTION', 'option `now` must be a function');
  }
  return Object.freeze({
    dir: path.resolve(options.dir ?? 'sessions-data'),
    keys,
    idleTimeout,
    absoluteTimeout,
    maxBytes: positive('maxBytes', options.maxBytes, 1024 * 1024, true),
    touchIntervalMs: 1000 * positive('touchInterval', options.touchInterval, Math.min(60, idleTimeout / 10)),
    lockStaleMs: 1000 * lockStale,
    lockWaitMs: 1000 * positive('lockWait', options.lockWait, lockStale + 5),
    cacheSize: options.cacheSize === 0 ? 0 : positive('cacheSize', options.cacheSize, 10_000, true),
    now: options.now ?? Date.now,
    io: options.io ?? defaultIo,
  });
}
