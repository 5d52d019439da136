import { errorCode } from '../errors.js';
import type { Backend } from '../core/backend.js';
import { expiresAt } from '../core/expiry.js';
import { forEachLimited } from '../core/for-each-limited.js';
import { readHeader, type EnvelopeHeader } from '../crypto/seal.js';

/** Why one entry was not copied, for the report (named by its one-way name, never an id). */
export interface MigrateProblem {
  /** Where it is, as its backend names it: `<2 hex>/<name>.sess` in a data dir, `<prefix><name>` in Redis. */
  readonly entry: string;
  /**
   * `unreadable`: the source entry is no envelope (not our format, not a regular file);
   * `blocked`: the destination holds something that is no envelope under that name (left as it is);
   * `failed`: an error (its code in `error`).
   */
  readonly problem: 'unreadable' | 'blocked' | 'failed';
  readonly error?: string;
}

export interface MigrateReport {
  /** Sessions found at the source. */
  readonly scanned: number;
  /** Copied: new at the destination. */
  readonly copied: number;
  /** The destination held this very envelope already (an earlier, interrupted run): nothing to do. */
  readonly alreadyThere: number;
  /** The destination held an older version of the session (an earlier run's copy): replaced by the source's. */
  readonly replacedOlder: number;
  /** The destination held a newer version, or another one as new (a server there wrote it): left alone, never overwritten. */
  readonly keptNewer: number;
  /** Expired by the clock at the source: not copied. */
  readonly expired: number;
  /** Gone from the source between the listing and the copy (ended, or expired): not copied. */
  readonly gone: number;
  /** Source entries that are not sessions (see `problems`). */
  readonly unreadable: number;
  /** Destination entries in a session's place that are not sessions (see `problems`). */
  readonly blocked: number;
  /** Entries that failed (see `problems`); the rest went on. */
  readonly failed: number;
  /** Bytes written to the destination. */
  readonly bytes: number;
  readonly problems: readonly MigrateProblem[];
  readonly durationMs: number;
}

export interface MigrateOptions {
  /** The clock that decides which sessions have expired. @default Date.now */
  readonly now?: () => number;
  /** Entries copied at once. @default 16 */
  readonly concurrency?: number;
}

type Outcome = 'copied' | 'alreadyThere' | 'replacedOlder' | 'keptNewer' | 'expired' | 'gone' | 'unreadable' | 'blocked';

/**
 * Copies every live session from one backend to another, byte for byte, without any key: both
 * keep the same envelope under the same one-way name (a file `<2 hex>/<name>.sess`, a Redis key
 * `<prefix><name>`), so nothing is opened, decrypted or sealed. Each session keeps its deadlines
 * (they are in the envelope) and its last use (a file's modification time, a Redis key's expiry).
 *
 * Expired sessions are skipped. Safe to run again, and to resume after an interruption: an entry
 * the destination holds already is compared, never blindly replaced —
 * - the same envelope: already there (its last use is moved forward if the source's is later);
 * - an older version of the same session (`written` earlier: an earlier run copied it before a
 *   server changed it at the source): replaced by the source's, under the destination's own
 *   exclusive access (lock or compare-and-set), only if it is still that older version;
 * - a newer version, or another one as new (a server at the destination wrote it): kept;
 * - something that is no envelope: left, and reported.
 * The destination keeps what the source does not have: a session ended at the source after an
 * earlier run copied it stays at the destination (stop the servers before the run that counts).
 */
export async function migrateSessions(from: Backend, to: Backend, options: MigrateOptions = {}): Promise<MigrateReport> {
  const started = performance.now();
  const now = options.now ?? Date.now;
  const tally: Record<Outcome | 'failed', number> = {
    copied: 0,
    alreadyThere: 0,
    replacedOlder: 0,
    keptNewer: 0,
    expired: 0,
    gone: 0,
    unreadable: 0,
    blocked: 0,
    failed: 0,
  };
  const problems: MigrateProblem[] = [];
  let scanned = 0;
  let bytes = 0;

  const copyOne = async (name: string): Promise<Outcome> => {
    const envelope = await from.copyOut(name);
    if (envelope === null) return 'gone';
    const header = readHeader(envelope.bytes);
    if (header === null) return 'unreadable';
    const expiresAtMs = expiresAt(header, envelope.lastUseMs);
    if (now() >= expiresAtMs) return 'expired';
    const copy = { bytes: envelope.bytes, lastUseMs: envelope.lastUseMs, expiresAtMs };
    // Twice at most: an entry at the destination that disappears between the two looks is
    // copied on the second (an expiry, or a server ending that session there).
    for (let attempt = 0; attempt < 2; attempt++) {
      if (await to.copyIn(name, copy)) {
        bytes += copy.bytes.length;
        return 'copied';
      }
      const outcome = await reconcile(to, name, header, copy);
      if (outcome === 'replacedOlder' || outcome === 'copied') bytes += copy.bytes.length;
      if (outcome !== 'gone') return outcome;
    }
    return 'keptNewer';
  };

  await forEachLimited(from.scan({ headers: false }), options.concurrency ?? 16, async (item) => {
    if (item.kind === 'debris') return;
    scanned++;
    if (item.kind === 'unreadable') {
      tally.unreadable++;
      problems.push({ entry: item.location, problem: 'unreadable' });
      return;
    }
    let outcome: Outcome;
    try {
      outcome = await copyOne(item.name);
    } catch (error) {
      tally.failed++;
      problems.push({ entry: from.locate(item.name), problem: 'failed', error: errorCode(error) ?? 'error' });
      return;
    }
    tally[outcome]++;
    if (outcome === 'unreadable') problems.push({ entry: from.locate(item.name), problem: 'unreadable' });
    if (outcome === 'blocked') problems.push({ entry: to.locate(item.name), problem: 'blocked' });
  });

  return { scanned, ...tally, bytes, problems, durationMs: performance.now() - started };
}

/**
 * The destination already holds an entry for `name`: what to do with it (see `migrateSessions`).
 * `gone` when it vanished meanwhile (copy again).
 */
async function reconcile(
  to: Backend,
  name: string,
  header: EnvelopeHeader,
  copy: { readonly bytes: Buffer; readonly lastUseMs: number; readonly expiresAtMs: number },
): Promise<Outcome> {
  const there = await to.copyOut(name);
  if (there === null) return 'gone';
  if (there.bytes.equals(copy.bytes)) {
    // Used at the source since an earlier run copied it: that use counts at the destination too.
    if (copy.lastUseMs > there.lastUseMs) await to.keepAlive(name, copy.lastUseMs, copy.expiresAtMs);
    return 'alreadyThere';
  }
  const theirs = readHeader(there.bytes);
  if (theirs === null) return 'blocked';
  if (theirs.written >= header.written) return 'keptNewer';
  // Older there: replaced, with the destination's own exclusive access, only if it is still older.
  const { result } = await to.update<Outcome>(name, (current) => {
    if (current === null) return { action: 'write', bytes: copy.bytes, expiresAtMs: copy.expiresAtMs, lastUseMs: copy.lastUseMs, result: 'copied' };
    if (current.bytes.equals(copy.bytes)) return { action: 'keep', result: 'alreadyThere' };
    const now = readHeader(current.bytes);
    if (now === null) return { action: 'keep', result: 'blocked' };
    if (now.written >= header.written) return { action: 'keep', result: 'keptNewer' };
    return { action: 'write', bytes: copy.bytes, expiresAtMs: copy.expiresAtMs, lastUseMs: copy.lastUseMs, result: 'replacedOlder' };
  });
  return result;
}
