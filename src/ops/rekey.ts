import { errorCode, isSealedSessionError } from '../errors.js';
import { forEachLimited } from '../core/for-each-limited.js';
import { expiresAt, lastUse } from '../core/expiry.js';
import type { Store } from '../core/store.js';
import { seal } from '../crypto/seal.js';

export interface RekeyReport {
  /** Session files looked at. */
  readonly scanned: number;
  /** Rewritten under the first key by this run. */
  readonly rewritten: number;
  /** Under the first key already (by an earlier run, or a server's commit): skipped. */
  readonly current: number;
  /** Removed while this ran (destroyed, or collected by gc). */
  readonly gone: number;
  /** Could not be rewritten: they stay as they are (`sealed-sessions verify` says more). */
  readonly failed: {
    /** Sealed with a key that is not configured. */
    readonly wrongKey: number;
    /** Bytes or name do not authenticate. */
    readonly tampered: number;
    /** Not our format, or the disk refused to read it. */
    readonly unreadable: number;
    /** Locked by another process for longer than `lockWait` (run again). */
    readonly locked: number;
  };
}

type Outcome = 'rewritten' | 'current' | 'gone' | 'wrongKey' | 'tampered' | 'unreadable' | 'locked';

/**
 * Rewrites every session file not sealed under the first key, each under its lock, so that it is
 * safe while servers commit: the file is read again under the lock and the same plaintext sealed
 * anew, keeping its creation time, deadlines, idle timeout and last use (its life is not
 * extended). Files under the first key are skipped on their header alone, so a run that was
 * interrupted picks up where it stopped. Afterwards the other keys open nothing still needed.
 */
export async function rekeyStore(store: Store): Promise<RekeyReport> {
  const backend = store.backend;
  const keyring = store.keyring;
  const primary = keyring.primary.idHex;
  const tally: Record<Outcome, number> = { rewritten: 0, current: 0, gone: 0, wrongKey: 0, tampered: 0, unreadable: 0, locked: 0 };
  let scanned = 0;

  const rekeyOne = async (name: string): Promise<Outcome> => {
    const { result } = await backend.update<Outcome>(name, async (current) => {
      // Again, with exclusive access: a server may have committed (and so rekeyed) it meanwhile.
      if (current === null) return { action: 'keep', result: 'gone' };
      const outcome = store.open(name, current.bytes, undefined);
      if (outcome.state === 'missing') return { action: 'keep', result: 'gone' };
      if (outcome.state === 'tampered') {
        const failed = outcome.reason === 'unknown-key' ? 'wrongKey' : outcome.reason === 'format' ? 'unreadable' : 'tampered';
        return { action: 'keep', result: failed };
      }
      const { header, plaintext } = outcome.session;
      if (header.keyIdHex === primary) return { action: 'keep', result: 'current' };
      // The last use as it is now (a server's keep-alive moves it without exclusive access), so
      // that the rewrite, which would count as a use, puts it back.
      const mark = await current.lastUse();
      if (mark === null) return { action: 'keep', result: 'gone' };
      const bytes = seal(keyring, header, Buffer.from(plaintext, 'utf8'), name);
      return { action: 'write', bytes, lastUseMs: lastUse(header, mark), expiresAtMs: expiresAt(header, mark), result: 'rewritten' };
    });
    return result;
  };

  await forEachLimited(backend.scan(), 8, async (item) => {
    if (item.kind !== 'session') return;
    scanned++;
    let outcome: Outcome;
    if (item.header === null) outcome = 'unreadable';
    else if (item.header?.keyIdHex === primary) outcome = 'current';
    else {
      try {
        outcome = await rekeyOne(item.name);
      } catch (error) {
        if (isSealedSessionError(error, 'ERR_SESSION_LOCK_TIMEOUT')) outcome = 'locked';
        else if (errorCode(error) === 'ENOENT') outcome = 'gone';
        else throw error;
      }
    }
    tally[outcome]++;
  });

  const { rewritten, current, gone, wrongKey, tampered, unreadable, locked } = tally;
  return { scanned, rewritten, current, gone, failed: { wrongKey, tampered, unreadable, locked } };
}
