import { setTimeout as sleep } from 'node:timers/promises';
import { errorCode, SealedSessionError } from '../../errors.js';
import type { Io } from './io.js';

export interface LockSettings {
  readonly staleMs: number;
  readonly waitMs: number;
}

/** Inside a lock: throws if the lock was lost (taken over as stale) — call it right before writing. */
export type AssertHeld = () => void;

/**
 * Runs `fn` holding the proper-lockfile lock of `file` (a `<file>.lock` folder), across processes.
 * Waits with short, jittered backoff while another process holds it, and fails with
 * ERR_SESSION_LOCK_TIMEOUT after `waitMs`. A lock whose holder died stops being refreshed and is
 * taken over after `staleMs`.
 */
export async function withLock<T>(io: Io, file: string, settings: LockSettings, fn: (assertHeld: AssertHeld) => Promise<T>): Promise<T> {
  let compromised: Error | undefined;
  const release = await acquire(io, file, settings, (error) => {
    // proper-lockfile's default throws from a timer, which kills the process; a lost lock must
    // fail this commit instead.
    compromised = error;
  });
  const assertHeld = () => {
    if (compromised !== undefined) {
      throw new SealedSessionError('ERR_SESSION_LOCK_COMPROMISED', 'the session lock was taken over while held', { cause: compromised });
    }
  };
  let result: T;
  try {
    result = await fn(assertHeld);
  } finally {
    if (compromised === undefined) {
      await release().catch((error: unknown) => {
        // Released already means someone took it over: the work is done, but say so.
        compromised = error instanceof Error ? error : new Error(String(error));
      });
    }
  }
  assertHeld();
  return result;
}

async function acquire(io: Io, file: string, settings: LockSettings, onCompromised: (error: Error) => void) {
  const deadline = performance.now() + settings.waitMs;
  let delay = 1;
  for (;;) {
    try {
      return await io.lock(file, { stale: settings.staleMs, onCompromised });
    } catch (error) {
      // ENOENT: the lock folder vanished between proper-lockfile's mkdir and its stat — another
      // contender took over the same stale lock at that moment. Nobody holds it for us: retry.
      if (errorCode(error) !== 'ELOCKED' && errorCode(error) !== 'ENOENT') {
        throw new SealedSessionError('ERR_SESSION_STORE_IO', `could not lock a session file (${errorCode(error) ?? 'error'})`, { cause: error });
      }
    }
    if (performance.now() >= deadline) {
      throw new SealedSessionError('ERR_SESSION_LOCK_TIMEOUT', `a session stayed locked by another process for ${Math.round(settings.waitMs / 1000)} s`);
    }
    await sleep(delay * (0.5 + Math.random()));
    delay = Math.min(delay * 2, 50);
  }
}
