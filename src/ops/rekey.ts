import { errorCode, isSealedSessionError } from '../errors.js';
import { forEachLimited } from '../core/for-each-limited.js';
import { lastUse, type Store } from '../core/store.js';

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
  const primary = backend.keyring.primary.idHex;
  const tally: Record<Outcome, number> = { rewritten: 0, current: 0, gone: 0, wrongKey: 0, tampered: 0, unreadable: 0, locked: 0 };
  let scanned = 0;

  const rekeyOne = async (name: string, filePath: string): Promise<Outcome> => {
    const seen = await backend.readHeader(filePath);
    if (seen === null) return 'gone';
    if (seen.header === null) return 'unreadable';
    if (seen.header.keyIdHex === primary) return 'current';
    return backend.withLock(name, async (assertHeld) => {
      // Again, under the lock: a server may have committed (and so rekeyed) it meanwhile.
      const outcome = await backend.readName(name, true);
      if (outcome.state === 'missing') return 'gone';
      if (outcome.state === 'tampered') {
        if (outcome.reason === 'unknown-key') return 'wrongKey';
        return outcome.reason === 'format' ? 'unreadable' : 'tampered';
      }
      const { session } = outcome;
      const { header } = session;
      if (header.keyIdHex === primary) return 'current';
      // The last use as just read (a server's keep-alive moves the mtime without the lock), so
      // that the rewrite, which sets the mtime to now, can put it back.
      const used = lastUse(header, session.mtimeMs);
      assertHeld();
      await backend.write(name, session.id, session.data, session.plaintext, {
        created: header.created,
        written: header.written,
        absoluteDeadline: header.absoluteDeadline,
        idleSeconds: header.idleSeconds,
      });
      await backend.touch(name, used);
      return 'rewritten';
    });
  };

  await forEachLimited(backend.scan(), 8, async (entry) => {
    if (entry.kind !== 'session') return;
    scanned++;
    let outcome: Outcome;
    try {
      outcome = await rekeyOne(entry.name, entry.path);
    } catch (error) {
      if (isSealedSessionError(error, 'ERR_SESSION_LOCK_TIMEOUT')) outcome = 'locked';
      else if (errorCode(error) === 'ENOENT') outcome = 'gone';
      else throw error;
    }
    tally[outcome]++;
  });

  const { rewritten, current, gone, wrongKey, tampered, unreadable, locked } = tally;
  return { scanned, rewritten, current, gone, failed: { wrongKey, tampered, unreadable, locked } };
}
