import pMap from 'p-map';
import { errorCode, isSealedSessionError } from '../errors.js';
import type { ScanItem } from '../core/backend.js';
import { forEachLimited } from '../core/for-each-limited.js';
import { isExpired } from '../core/expiry.js';
import type { Store } from '../core/store.js';

/**
 * What `verify` reports: a session file that is not our format or cannot be read (`unreadable`),
 * one whose bytes or name do not authenticate (`tampered`), one sealed under a key not configured
 * (`wrong-key`), a temp file left by a killed writer (`orphaned-temp`), a lock whose holder died
 * (`stale-lock`).
 */
export type VerifyProblem = 'unreadable' | 'tampered' | 'wrong-key' | 'orphaned-temp' | 'stale-lock';

/** What `--repair` did about one finding. */
export type RepairAction =
  /** Moved into the quarantine folder (session files). */
  | 'quarantined'
  /** Removed (debris only; a stale lock by taking it over). */
  | 'removed'
  /** Found fine, or gone, when looked at again under the lock: a server rewrote or removed it meanwhile. */
  | 'resolved'
  /** Left in place: its lock could not be had, or the disk refused (see `error`). */
  | 'left'
  /** Left in place on purpose: sealed under a key not given, which is no proof of damage (see `includeWrongKey`). */
  | 'kept';

export interface VerifyFinding {
  /** Path relative to the data dir (file names are one-way hashes: they never hold a session id). */
  readonly file: string;
  readonly problem: VerifyProblem;
  action?: RepairAction;
  /** Why it was left, as an error code. */
  error?: string;
}

export interface VerifyReport {
  /** Session files opened. */
  readonly sessions: number;
  /** Of those, how many opened fine (live or expired). */
  readonly ok: number;
  /** Opened fine, but expired (gc's work, not a problem). */
  readonly expired: number;
  /** Lock folders and temp files in use right now (not problems). */
  readonly inUse: number;
  readonly problems: Readonly<Record<VerifyProblem, number>>;
  readonly findings: readonly VerifyFinding[];
  /** The folder (relative to the data dir) that this repair moved files into; null when it moved none. */
  readonly quarantine: string | null;
}

export interface VerifyOptions {
  /** Quarantine bad session files, remove debris. */
  readonly repair?: boolean;
  /**
   * Also quarantine files sealed under a key not given. Off by default: a wrong or missing key
   * makes every file look like that, and quarantining them all would log everyone out.
   */
  readonly includeWrongKey?: boolean;
  /** The time, for naming the quarantine folder. @default new Date() */
  readonly date?: Date;
}

/**
 * Opens (authenticates and decrypts) every session of the store and looks at its debris. With
 * `repair`, moves each tampered or unreadable session (one sealed under a key not given only
 * with `includeWrongKey`) out of the way (for files: into
 * `<dir>/quarantine/<date>/<2 hex>/<name>.sess`, the data dir's own layout, so moving it back is a
 * plain `mv`), with exclusive access and after checking again that it is still bad, so that a
 * server writing a good version meanwhile keeps it; it never deletes a session. Stale locks are
 * cleared the way gc clears them (by taking them over), old temp files removed. Safe while
 * servers run.
 */
export async function verifyStore(store: Store, options: VerifyOptions = {}): Promise<VerifyReport> {
  const backend = store.backend;
  const problems: Record<VerifyProblem, number> = { unreadable: 0, tampered: 0, 'wrong-key': 0, 'orphaned-temp': 0, 'stale-lock': 0 };
  const counts = { sessions: 0, ok: 0, expired: 0, inUse: 0 };
  // Findings by name, so that repair handles each session's file and lock together, once.
  const byName = new Map<string, { session?: VerifyFinding; lock?: VerifyFinding }>();
  const debris: Array<{ finding: VerifyFinding; item: Extract<ScanItem, { kind: 'debris' }> }> = [];
  const now = store.options.now();

  const classify = (name: string, bytes: Buffer, mtimeMs: number | undefined): VerifyProblem | 'ok' | 'expired' => {
    const outcome = store.open(name, bytes, mtimeMs);
    if (outcome.state === 'tampered') {
      if (outcome.reason === 'unknown-key') return 'wrong-key';
      return outcome.reason === 'format' ? 'unreadable' : 'tampered';
    }
    if (outcome.state === 'missing') return 'ok';
    const { session } = outcome;
    return isExpired(session.header, session.mtimeMs, now) ? 'expired' : 'ok';
  };

  const inspect = async (name: string): Promise<VerifyProblem | 'ok' | 'expired' | 'missing'> => {
    let stored;
    try {
      stored = await backend.read(name);
    } catch (error) {
      // EACCES, EIO, a folder where a file should be: it cannot be read.
      if (isSealedSessionError(error, 'ERR_SESSION_STORE_IO')) return 'unreadable';
      throw error;
    }
    if (stored === null) return 'missing';
    if ('unreadable' in stored) return 'unreadable';
    if ('unchanged' in stored) throw new Error('unreachable: no version was given');
    return classify(name, stored.bytes, stored.lastUseMs);
  };

  const visit = async (item: ScanItem): Promise<void> => {
    if (item.kind === 'session') {
      const state = await inspect(item.name);
      if (state === 'missing') return;
      counts.sessions++;
      if (state === 'ok' || state === 'expired') {
        counts.ok++;
        if (state === 'expired') counts.expired++;
        return;
      }
      problems[state]++;
      entryOf(byName, item.name).session = { file: backend.locate(item.name), problem: state };
      return;
    }
    if (item.kind === 'unreadable') {
      counts.sessions++;
      problems.unreadable++;
      if (item.name !== null) entryOf(byName, item.name).session = { file: item.location, problem: 'unreadable' };
      return;
    }
    if (!item.stale) {
      counts.inUse++;
      return;
    }
    const finding: VerifyFinding = { file: item.location, problem: item.what === 'lock' ? 'stale-lock' : 'orphaned-temp' };
    problems[finding.problem]++;
    if (item.what === 'lock' && item.name !== null) entryOf(byName, item.name).lock = finding;
    else debris.push({ finding, item });
  };

  await forEachLimited(backend.scan({ headers: false }), 8, visit);

  const findings = [...[...byName.values()].flatMap((each) => [each.session, each.lock]), ...debris.map((each) => each.finding)].filter(
    (finding): finding is VerifyFinding => finding !== undefined,
  );
  let quarantine: string | null = null;
  if (options.repair === true && findings.length > 0) {
    const batch = (options.date ?? new Date()).toISOString().replaceAll(':', '-');
    await backend.openQuarantine();
    const moved: VerifyFinding[] = [];
    const keep = (problem: VerifyProblem | 'ok' | 'expired') => problem === 'wrong-key' && options.includeWrongKey !== true;

    const repairName = async (name: string, found: { session?: VerifyFinding; lock?: VerifyFinding }): Promise<void> => {
      const { session, lock } = found;
      if (session !== undefined && keep(session.problem)) session.action = 'kept';
      else if (session !== undefined) {
        try {
          // With exclusive access (a stale lock is taken over), and looked at again: a server may
          // have just written a good version, which must stay.
          session.action = await backend.quarantine(name, batch, (current) => {
            if (current === null) return false;
            const again = classify(name, current, undefined);
            return again !== 'ok' && again !== 'expired' && !keep(again);
          });
          if (session.action === 'quarantined') moved.push(session);
          if (lock !== undefined) lock.action = 'removed';
        } catch (error) {
          leave(session, error);
          if (lock !== undefined) leave(lock, error);
        }
      }
      if (lock === undefined || lock.action !== undefined) return;
      try {
        // Locking succeeds only if the lock is still stale; releasing removes it.
        lock.action = (await backend.clearDebris({ kind: 'debris', what: 'lock', name, location: lock.file, stale: true })) ? 'removed' : 'left';
      } catch (error) {
        leave(lock, error);
      }
    };

    await pMap(byName, ([name, found]) => repairName(name, found), { concurrency: 8 });
    await pMap(
      debris,
      async ({ finding, item }) => {
        try {
          finding.action = (await backend.clearDebris(item)) ? 'removed' : 'resolved';
        } catch (error) {
          leave(finding, error);
        }
      },
      { concurrency: 8 },
    );
    if (moved.length > 0) {
      // Why each file is there, beside it.
      const note = { movedAt: (options.date ?? new Date()).toISOString(), files: moved.map(({ file, problem }) => ({ file, problem })) };
      quarantine = await backend.noteQuarantine(batch, Buffer.from(`${JSON.stringify(note, null, 2)}\n`));
    }
  }
  return { ...counts, problems, findings, quarantine };
}

function entryOf<T extends object>(map: Map<string, T>, name: string): T {
  let entry = map.get(name);
  if (entry === undefined) {
    entry = {} as T;
    map.set(name, entry);
  }
  return entry;
}

function leave(finding: VerifyFinding, error: unknown): void {
  finding.action = 'left';
  finding.error = errorCode(error) ?? 'error';
}
