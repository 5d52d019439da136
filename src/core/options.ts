import { ENVELOPE_OVERHEAD } from '../crypto/seal.js';
import { sessionTypeError } from '../errors.js';

/** Options of the store itself, whatever the backend. Durations are in seconds unless the name says otherwise. */
export interface CoreOptions {
  /**
   * Secrets of at least 32 bytes: the first seals and signs, every one opens and verifies. A
   * comma-separated string is accepted. Falls back to `SESSION_KEYS`, then (outside production)
   * to a development key file beside the data dir.
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
   * Sessions kept decrypted in memory, each checked against its file by one `stat` per read (any
   * rewrite, touch or replacement by another process changes what the stat sees). 0 turns it off.
   * @default 10000
   */
  cacheSize?: number;
  /**
   * Memory the read cache may hold, in bytes (estimated from each session's JSON: twice its length,
   * as a JavaScript string, plus a little): large sessions are cached fewer, never without bound.
   * @default 67108864 (64 MiB)
   */
  cacheMaxBytes?: number;
  /** The clock, in ms since the epoch; for tests. @default Date.now */
  now?: () => number;
}

export interface ResolvedOptions {
  readonly keys: string | readonly string[] | undefined;
  readonly idleTimeout: number;
  readonly absoluteTimeout: number;
  readonly maxBytes: number;
  readonly touchIntervalMs: number;
  readonly cacheSize: number;
  readonly cacheMaxBytes: number;
  readonly now: () => number;
}

/** A positive number option, or its default; a TypeError naming it otherwise. */
export function positive(name: string, value: unknown, fallback: number, integer = false): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
    throw sessionTypeError('ERR_SESSION_OPTION', `option \`${name}\` must be a positive ${integer ? 'integer' : 'number'}`);
  }
  return value;
}

/** Checks every option of the store once, up front; the only place their defaults live. */
export function resolveOptions(options: CoreOptions = {}): ResolvedOptions {
  const keys = options.keys;
  if (keys !== undefined && typeof keys !== 'string' && !(Array.isArray(keys) && keys.every((key) => typeof key === 'string'))) {
    throw sessionTypeError('ERR_SESSION_OPTION', 'option `keys` must be a string or an array of strings');
  }
  const idleTimeout = positive('idleTimeout', options.idleTimeout, 30 * 60, true);
  // Each envelope's header holds it in 32 bits (136 years).
  if (idleTimeout > 0xffff_ffff) throw sessionTypeError('ERR_SESSION_OPTION', 'option `idleTimeout` must be at most 4294967295 seconds');
  const absoluteTimeout = positive('absoluteTimeout', options.absoluteTimeout, 7 * 24 * 3600);
  if (options.now !== undefined && typeof options.now !== 'function') {
    throw sessionTypeError('ERR_SESSION_OPTION', 'option `now` must be a function');
  }
  return Object.freeze({
    keys,
    idleTimeout,
    absoluteTimeout,
    maxBytes: positive('maxBytes', options.maxBytes, 1024 * 1024, true),
    touchIntervalMs: 1000 * positive('touchInterval', options.touchInterval, Math.min(60, idleTimeout / 10)),
    cacheSize: options.cacheSize === 0 ? 0 : positive('cacheSize', options.cacheSize, 10_000, true),
    cacheMaxBytes: positive('cacheMaxBytes', options.cacheMaxBytes, 64 * 1024 * 1024, true),
    now: options.now ?? Date.now,
  });
}

/**
 * The largest envelope a read takes in. Generous, so that sessions written under a larger
 * `maxBytes` than today's still open (a commit enforces `maxBytes`, not a read).
 */
export function maxEnvelopeBytes(maxBytes: number): number {
  return Math.max(4 * maxBytes, 16 * 1024 * 1024) + ENVELOPE_OVERHEAD + 128;
}
