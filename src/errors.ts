/** Every code a sealed-sessions error can carry. Stable: match on these, never on messages. */
export type SealedSessionErrorCode =
  | 'ERR_SESSION_VALUE'
  | 'ERR_SESSION_TOO_LARGE'
  | 'ERR_SESSION_STORE_IO'
  | 'ERR_SESSION_LOCK_TIMEOUT'
  | 'ERR_SESSION_LOCK_COMPROMISED'
  | 'ERR_SESSION_KEY_WEAK'
  | 'ERR_SESSION_KEY_UNSAFE'
  | 'ERR_SESSION_KEYS_MISSING'
  | 'ERR_SESSION_OPTION'
  | 'ERR_SESSION_HEADERS_SENT';

const brand = Symbol.for('sealed-sessions.error');

/**
 * The one error class of sealed-sessions. `code` is stable; `cause` keeps the underlying
 * error (an fs error keeps its own `code`, e.g. `ENOSPC`, there). Messages never contain a
 * session id or a key.
 *
 * `ERR_SESSION_VALUE` and `ERR_SESSION_OPTION` are thrown as `TypeError`s (misuse by the caller);
 * `instanceof SealedSessionError` holds for them too.
 */
export class SealedSessionError extends Error {
  declare readonly code: SealedSessionErrorCode;

  constructor(code: SealedSessionErrorCode, message: string, options?: { cause?: unknown }) {
    super(`sealed-sessions: ${message}`, options);
    defineCode(this, code);
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && brand in value;
  }
}
SealedSessionError.prototype.name = 'SealedSessionError';

/** Creates a `TypeError` that is also a `SealedSessionError` (for misuse: bad values, bad options). */
export function sessionTypeError(code: 'ERR_SESSION_VALUE' | 'ERR_SESSION_OPTION', message: string): SealedSessionError & TypeError {
  const error = new TypeError(`sealed-sessions: ${message}`);
  defineCode(error, code);
  return error as SealedSessionError & TypeError;
}

function defineCode(error: Error, code: SealedSessionErrorCode): void {
  Object.defineProperty(error, 'code', { value: code, enumerable: true });
  Object.defineProperty(error, brand, { value: true });
}

/** True for any error thrown by sealed-sessions, optionally of one code. */
export function isSealedSessionError(value: unknown, code?: SealedSessionErrorCode): value is SealedSessionError {
  return value instanceof SealedSessionError && (code === undefined || value.code === code);
}

/** The errno-style code of an fs error, if it has one. */
export function errorCode(error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string') {
    return error.code;
  }
  return undefined;
}
