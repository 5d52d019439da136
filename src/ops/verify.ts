import path from 'node:path';
import pMap from 'p-map';
import { errorCode, isSealedSessionError, SealedSessionError } from '../errors.js';
import type { FileBackend, ScanEntry } from '../backends/file/file-backend.js';
import { forEachLimited } from '../core/for-each-limited.js';
import { operationsIo, type OperationsIo } from '../backends/file/io.js';
import { isExpired, type Store } from '../core/store.js';

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
  /** Left in place on purpose: sealed under a key not given, which may just be missing (see `includeWrongKey`). */
  | 'kept'
  /** Left in place: its lock could not be had, or the disk refused (see `error`). */
  | 'left';

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
  readonly operationsIo?: OperationsIo;
}

/** The folder inside the data dir that quarantined files go to (FileBackend.scan never lists it: not two hex digits). */
export const QUARANTINE_FOLDER = 'quarantine';

/** A temp file this old was left by a killed writer (gc's rule: a live write takes milliseconds). */
export function tempMaxAgeMs(lockStaleMs: number): number {
  return Math.max(60_000, lockStaleMs);
}

/**
 * Opens (authenticates and decrypts) every session file of the store and looks at its debris.
 * With `repair`, moves each tampered or unreadable session file (one sealed under a key not given
 * only with `includeWrongKey`) into `<dir>/quarantine/<date>/<2 hex>/<name>.sess`
 * (same layout as the data dir: moving it back is a plain `mv`), under the session's lock and
 * after checking again that it is still bad, so that a server writing a good version meanwhile
 * keeps it; it never deletes a session file. Stale locks are cleared the way gc clears them (by
 * taking them over), old temp files removed. Safe while servers run.
 */
export async function verifyStore(store: Store, options: VerifyOptions = {}): Promise<VerifyReport> {
  const backend = store.backend;
  const lockStaleMs = store.options.lockStaleMs;
  const problems: Record<VerifyProblem, number> = { unreadable: 0, tampered: 0, 'wrong-key': 0, 'orphaned-temp': 0, 'stale-lock': 0 };
  const counts = { sessions: 0, ok: 0, expired: 0, inUse: 0 };
  // Findings by file name, so that repair handles each session's file and lock together, once.
  const byName = new Map<string, { session?: VerifyFinding; lock?: VerifyFinding }>();
  const temps: Array<{ finding: VerifyFinding; path: string }> = [];
  const now = store.options.now();

  const visit = async (entry: ScanEntry): Promise<void> => {
    const relative = path.relative(store.dir, entry.path);
    if (entry.kind === 'session') {
      const state = await inspect(backend, entry.name);
      if (state === 'missing') return;
      counts.sessions++;
      if (state === 'ok' || state === 'expired') {
        counts.ok++;
        if (state === 'expired') counts.expired++;
        return;
      }
      problems[state]++;
      entryOf(byName, entry.name).session = { file: relative, problem: state };
      return;
    }
    const age = await backend.ageOf(entry.path, Date.now());
    if (age === null) return;
    if (age < (entry.kind === 'lock' ? lockStaleMs : tempMaxAgeMs(lockStaleMs))) {
      counts.inUse++;
      return;
    }
    const finding: VerifyFinding = { file: relative, problem: entry.kind === 'lock' ? 'stale-lock' : 'orphaned-temp' };
    problems[finding.problem]++;
    if (entry.kind === 'lock') entryOf(byName, entry.name).lock = finding;
    else temps.push({ finding, path: entry.path });
  };

  async function inspect(fileBackend: FileBackend, name: string): Promise<VerifyProblem | 'ok' | 'expired' | 'missing'> {
    let outcome;
    try {
      outcome = await fileBackend.readName(name, true);
    } catch (error) {
      // EACCES, EIO, a folder where a file should be: the file cannot be read.
      if (isSealedSessionError(error, 'ERR_SESSION_STORE_IO')) return 'unreadable';
      throw error;
    }
    if (outcome.state === 'missing') return 'missing';
    if (outcome.state === 'tampered') {
      if (outcome.reason === 'unknown-key') return 'wrong-key';
      return outcome.reason === 'format' ? 'unreadable' : 'tampered';
    }
    const { session } = outcome;
    return isExpired(session.header, session.mtimeMs, now) ? 'expired' : 'ok';
  }

  await forEachLimited(backend.scan(), 8, visit);

  const findings = [...[...byName.values()].flatMap((each) => [each.session, each.lock]), ...temps.map((each) => each.finding)].filter(
    (finding): finding is VerifyFinding => finding !== undefined,
  );
  let quarantine: string | null = null;
  if (options.repair === true && findings.length > 0) {
    await assertRealQuarantine(store);
    const ops = options.operationsIo ?? operationsIo;
    const run = QUARANTINE_FOLDER + '/' + (options.date ?? new Date()).toISOString().replaceAll(':', '-');
    const moved: VerifyFinding[] = [];
    const folders = new Set<string>();
    const moveAway = async (name: string, finding: VerifyFinding): Promise<void> => {
      const folder = path.join(store.dir, run, name.slice(0, 2));
      if (!folders.has(folder)) {
        await store.options.io.mkdir(folder, 0o700);
        folders.add(folder);
      }
      await ops.rename(backend.pathOf(name), path.join(folder, `${name}.sess`));
      moved.push(finding);
    };

    const keep = (problem: VerifyProblem | 'ok' | 'expired' | 'missing') => problem === 'wrong-key' && options.includeWrongKey !== true;
    const repairName = async (name: string, found: { session?: VerifyFinding; lock?: VerifyFinding }): Promise<void> => {
      const { session, lock } = found;
      if (session !== undefined && keep(session.problem)) session.action = 'kept';
      else if (session !== undefined) {
        try {
          // Under the lock (a stale one is taken over), and looked at again: a server may have
          // just written a good version, which must stay.
          session.action = await backend.withLock(name, async (assertHeld) => {
            const again = await inspect(backend, name);
            if (again === 'missing' || again === 'ok' || again === 'expired') return 'resolved' as const;
            if (keep(again)) return 'kept' as const;
            assertHeld();
            await moveAway(name, session);
            return 'quarantined' as const;
          });
          if (lock !== undefined) lock.action = 'removed';
        } catch (error) {
          leave(session, error);
          if (lock !== undefined) leave(lock, error);
        }
        return;
      }
      if (lock === undefined) return;
      try {
        // Locking succeeds only if the lock is still stale; releasing removes it.
        lock.action = (await backend.tryLock(name, () => Promise.resolve(true))) === true ? 'removed' : 'left';
      } catch (error) {
        leave(lock, error);
      }
    };

    await pMap(byName, ([name, found]) => repairName(name, found), { concurrency: 8 });
    await pMap(temps, async ({ finding, path: tempPath }) => {
      try {
        finding.action = (await backend.removeTemp(tempPath)) ? 'removed' : 'resolved';
      } catch (error) {
        leave(finding, error);
      }
    }, { concurrency: 8 });
    if (moved.length > 0) {
      quarantine = run;
      // Why each file is there, beside it.
      const note = { movedAt: (options.date ?? new Date()).toISOString(), files: moved.map(({ file, problem }) => ({ file, problem })) };
      await ops.createFile(path.join(store.dir, run, 'findings.json'), Buffer.from(`${JSON.stringify(note, null, 2)}\n`));
    }
  }
  return { ...counts, problems, findings, quarantine };
}

/**
 * The quarantine must be a real folder inside the data dir (or not exist yet): a symlink there
 * would send tampered files and findings.json out of the 0700 data dir, wherever it points.
 */
async function assertRealQuarantine(store: Store): Promise<void> {
  const folder = path.join(store.dir, QUARANTINE_FOLDER);
  let stats;
  try {
    stats = await store.options.io.lstat(folder);
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return;
    throw error;
  }
  if (!stats.isDirectory()) {
    throw new SealedSessionError(
      'ERR_SESSION_STORE_IO',
      `${folder} is not a real folder inside the data dir (${stats.isSymbolicLink() ? 'a symbolic link' : 'not a folder'}): move it away, then repair again`,
    );
  }
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
