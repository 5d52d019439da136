import { setMaxListeners } from 'node:events';
import { SealedSessionError } from '../../errors.js';

/**
 * Why a Redis call failed: the `code` of the `cause` of the `ERR_SESSION_STORE_IO` error every
 * failed call throws.
 *
 * - `REDIS_UNAVAILABLE`: the connection the call needs is down or closed (checked before
 *   sending, so the call fails at once instead of waiting in the client's offline queue), or it
 *   broke while the call was in flight.
 * - `REDIS_TIMEOUT`: no answer within the call's time limit. A write may still have happened:
 *   re-read to find out (a compare-and-set that landed left the caller's new nonce).
 * - `REDIS_REPLY`: the server answered with an error (`CLUSTERDOWN`, `OOM`, `READONLY`, …);
 *   `reply` holds its first word.
 * - `REDIS_ERROR`: anything else the client threw.
 */
export type RedisFailureCode = 'REDIS_UNAVAILABLE' | 'REDIS_TIMEOUT' | 'REDIS_REPLY' | 'REDIS_ERROR';

export interface RedisFailure extends Error {
  readonly code: RedisFailureCode;
  /** For `REDIS_REPLY`: the error's first word, e.g. `CLUSTERDOWN`. */
  readonly reply?: string;
}

/** The `RedisFailureCode` behind an error thrown by this backend, if it is one. */
export function redisFailureCode(error: unknown): RedisFailureCode | undefined {
  if (!(error instanceof SealedSessionError) || error.code !== 'ERR_SESSION_STORE_IO') return undefined;
  const cause: unknown = error.cause;
  if (typeof cause !== 'object' || cause === null || !('code' in cause)) return undefined;
  const code = cause.code;
  return code === 'REDIS_UNAVAILABLE' || code === 'REDIS_TIMEOUT' || code === 'REDIS_REPLY' || code === 'REDIS_ERROR' ? code : undefined;
}

/**
 * The error a failed call throws: `SealedSessionError` `ERR_SESSION_STORE_IO`, its `cause` a
 * `RedisFailure` whose own `cause` is what the client threw. Messages name the operation, never a
 * key (a key name is derived from a session id).
 */
export function redisError(code: RedisFailureCode, operation: string, cause?: unknown): SealedSessionError {
  const reply = code === 'REDIS_REPLY' ? firstWord(cause) : undefined;
  const detail = {
    REDIS_UNAVAILABLE: 'Redis is unavailable',
    REDIS_TIMEOUT: 'Redis did not answer in time',
    REDIS_REPLY: `Redis answered with an error${reply === undefined ? '' : ` (${reply})`}`,
    REDIS_ERROR: 'the Redis client failed',
  }[code];
  const failure = new Error(detail, cause === undefined ? undefined : { cause }) as Error & { code: RedisFailureCode; reply?: string };
  failure.code = code;
  if (reply !== undefined) failure.reply = reply;
  return new SealedSessionError('ERR_SESSION_STORE_IO', `${detail} (${operation})`, { cause: failure });
}

/** Sorts what the client threw (its error classes may come from another copy of the package: compared by name; ReplyError is ioredis's). */
export function classify(error: unknown): RedisFailureCode {
  if (!(error instanceof Error)) return 'REDIS_ERROR';
  if ((error as { code?: unknown }).code === 'REDIS_UNAVAILABLE') return 'REDIS_UNAVAILABLE';
  const names = classNames(error);
  if (names.has('ErrorReply') || names.has('ReplyError')) return 'REDIS_REPLY';
  if (names.has('TimeoutError') || names.has('AbortError') || names.has('SocketTimeoutError')) return 'REDIS_TIMEOUT';
  if (
    names.has('ClientClosedError') ||
    names.has('ClientOfflineError') ||
    names.has('SocketClosedUnexpectedlyError') ||
    names.has('DisconnectsClientError') ||
    names.has('RootNodesUnavailableError') ||
    names.has('ConnectionTimeoutError') ||
    /^(ECONNREFUSED|ECONNRESET|EPIPE|ENOTCONN|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH)$/.test(String((error as { code?: unknown }).code))
  ) {
    return 'REDIS_UNAVAILABLE';
  }
  return 'REDIS_ERROR';
}

function classNames(error: Error): Set<string> {
  const names = new Set<string>();
  for (let proto: object | null = Object.getPrototypeOf(error); proto !== null && proto !== Error.prototype; proto = Object.getPrototypeOf(proto)) {
    const ctor: unknown = (proto as { constructor?: unknown }).constructor;
    if (typeof ctor === 'function' && ctor.name !== '') names.add(ctor.name);
  }
  return names;
}

function firstWord(error: unknown): string | undefined {
  const message = error instanceof Error ? error.message : undefined;
  return message === undefined ? undefined : /^[A-Z][A-Z_-]*/.exec(message)?.[0];
}

/** What a driver throws when it knows, before sending, that the connection a call needs is down. */
export function notConnected(): Error {
  return Object.assign(new Error('the connection is not ready'), { code: 'REDIS_UNAVAILABLE' });
}

/**
 * Runs `call` with an AbortSignal that fires after `ms`, and stops waiting then whatever the
 * client does. The signal alone would not do: node-redis v5 drops an aborted command only while it
 * is still queued (it removes the abort and timeout listeners once the command is written), and a
 * cluster client may first wait on a node's connect. A command already sent stays in the client's
 * reply queue, so later replies still reach the right calls, and may still run on the server.
 */
export async function withDeadline<T>(ms: number, operation: string, call: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  // One signal may guard a whole pipelined batch: a listener per command is expected.
  setMaxListeners(0, controller.signal);
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      controller.abort();
      reject(redisError('REDIS_TIMEOUT', operation));
    }, ms);
  });
  try {
    return await Promise.race([call(controller.signal), expired]);
  } catch (error) {
    if (error instanceof SealedSessionError) throw error;
    throw redisError(controller.signal.aborted ? 'REDIS_TIMEOUT' : classify(error), operation, error);
  } finally {
    clearTimeout(timer);
  }
}
