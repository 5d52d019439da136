import path from 'node:path';
import { pMapIterable } from 'p-map';
import type {
  Backend,
  CurrentEnvelope,
  Decision,
  QuarantineOutcome,
  ScanItem,
  StoredEnvelope,
  SweepCounts,
  SweepOptions,
  Unchanged,
  Unreadable,
  UpdateOptions,
  UpdateOutcome,
} from '../../core/backend.js';
import { forEachLimited } from '../../core/for-each-limited.js';
import { HEADER_BYTES, readHeader } from '../../crypto/seal.js';
import { errorCode, SealedSessionError } from '../../errors.js';
import type { Io, OperationsIo } from './io.js';
import { withLock, type AssertHeld, type LockSettings } from './lock.js';

/*
 * Layout: <dir>/<first two hex digits of the name>/<name>.sess, where name is the session's
 * one-way name. 256 folders keep each one small (about 4,000 files at 1,000,000 sessions). Beside
 * a session file live only its debris: `<name>.sess.lock/` (proper-lockfile) and
 * `<name>.sess.<digits>` (the temp file of an atomic write). Listings match the strict patterns
 * below and so never mistake one for the other.
 */
/** A session folder's name: the first two hex digits of its files' names. */
export const FOLDER = /^[0-9a-f]{2}$/;
const SESSION_FILE = /^([0-9a-f]{64})\.sess$/;
const LOCK_DIR = /^([0-9a-f]{64})\.sess\.lock$/;
const TEMP_FILE = /^([0-9a-f]{64})\.sess\.\d+$/;
const NAME = /^[0-9a-f]{64}$/;

/** The folder inside the data dir that quarantined files go to (never listed as sessions: not two hex digits). */
export const QUARANTINE_FOLDER = 'quarantine';

/** Entries of the data dir looked at in parallel by a scan or a sweep. */
const SCAN_CONCURRENCY = 8;

export interface FileBackendSettings {
  /** The data dir, absolute. */
  readonly dir: string;
  readonly io: Io;
  readonly operationsIo: OperationsIo;
  readonly lock: LockSettings;
  /** The most a read pulls into memory; a larger file is read only that far (and does not open). */
  readonly maxReadBytes: number;
}

/** A file that is not there: the normal answer for an unknown or destroyed session. */
function isGone(error: unknown): boolean {
  return errorCode(error) === 'ENOENT' || errorCode(error) === 'ENOTDIR';
}

/**
 * Something other than a regular file in a session file's place: a symlink (never followed),
 * a folder, a FIFO or socket (never blocked on). It is no session, and reported as unreadable.
 */
function isNotRegular(error: unknown): boolean {
  const code = errorCode(error);
  return code === 'ENOTREG' || code === 'ELOOP' || code === 'EISDIR' || code === 'ENXIO' || code === 'EAGAIN' || code === 'EWOULDBLOCK';
}

const UNREADABLE: Unreadable = Object.freeze({ unreadable: true });
const NOT_A_FILE = 'not a regular file';

function ioError(action: string, error: unknown): SealedSessionError {
  if (error instanceof SealedSessionError) return error;
  return new SealedSessionError('ERR_SESSION_STORE_IO', `could not ${action} (${errorCode(error) ?? 'error'})`, { cause: error });
}

/** A temp file this old was left by a killed writer: a live write takes milliseconds. */
export function tempMaxAgeMs(lockStaleMs: number): number {
  return Math.max(60_000, lockStaleMs);
}

/** Sessions as sealed files in a data dir: one file per session, a lock folder per update, atomic renames. */
export class FileBackend implements Backend {
  readonly #dir: string;
  readonly #io: Io;
  readonly #ops: OperationsIo;
  readonly #lock: LockSettings;
  readonly #maxReadBytes: number;
  readonly #folders = new Set<string>();
  /** Session files whose lock a sweep or a repair is taking or holding in this process, and when it is done. */
  readonly #sweepLocks = new Map<string, Promise<unknown>>();

  constructor(settings: FileBackendSettings) {
    this.#dir = settings.dir;
    this.#io = settings.io;
    this.#ops = settings.operationsIo;
    this.#lock = settings.lock;
    this.#maxReadBytes = settings.maxReadBytes;
  }

  /** The data dir (absolute). */
  get location(): string {
    return this.#dir;
  }

  get io(): Io {
    return this.#io;
  }

  pathOf(name: string): string {
    if (!NAME.test(name)) throw new SealedSessionError('ERR_SESSION_STORE_IO', 'not a session file name');
    return path.join(this.#dir, name.slice(0, 2), `${name}.sess`);
  }

  /** The path relative to the data dir, for reports (it holds no id). */
  locate(name: string): string {
    return `${name.slice(0, 2)}/${name}.sess`;
  }

  /** Creates the data dir (0700) if needed. Reads nothing else: startup cost is independent of the session count. */
  async open(): Promise<void> {
    try {
      await this.#io.mkdir(this.#dir, 0o700);
    } catch (error) {
      throw ioError('create the data dir', error);
    }
  }

  /**
   * Reads the session file `name` (no lock: writes are atomic renames, so reads see whole files).
   * With `known`, one stat answers while the file is unchanged: one trip to the thread pool
   * instead of four (open, fstat, read, close), and no decryption for the caller.
   */
  async read(name: string, known?: string): Promise<StoredEnvelope | Unchanged | Unreadable | null> {
    const file = this.pathOf(name);
    if (known !== undefined) {
      let current;
      try {
        current = await this.#io.stat(file);
      } catch (error) {
        if (isGone(error)) return null;
        throw ioError('read a session file', error);
      }
      if (current.version === known) return { unchanged: true, lastUseMs: current.mtimeMs };
    }
    try {
      const snapshot = await this.#io.readFile(file, this.#maxReadBytes);
      return { bytes: snapshot.data, lastUseMs: snapshot.mtimeMs, version: snapshot.version };
    } catch (error) {
      if (isGone(error)) return null;
      if (isNotRegular(error)) return UNREADABLE;
      throw ioError('read a session file', error);
    }
  }

  /**
   * Under the session file's cross-process lock: reads the file itself (never a cache: file
   * timestamps tick coarsely, so a cache checked by stat could in theory miss a same-size
   * rewrite; a merge must never), without its metadata — one system call fewer on every commit —
   * then writes atomically or removes, as `decide` says. `fresh`: no lock and no read.
   */
  async update<T>(
    name: string,
    decide: (current: CurrentEnvelope | null) => Decision<T> | Promise<Decision<T>>,
    options: UpdateOptions = {},
  ): Promise<UpdateOutcome<T>> {
    const file = this.pathOf(name);
    await this.#ensureFolder(name.slice(0, 2));
    const wantVersion = options.wantVersion === true;
    if (options.fresh === true) return this.#apply(file, await decide(null), () => undefined, wantVersion);
    return withLock(this.#io, file, this.#lock, async (assertHeld) => {
      let bytes: Buffer | null;
      try {
        bytes = await this.#io.readLatest(file, this.#maxReadBytes);
      } catch (error) {
        if (isNotRegular(error)) bytes = Buffer.alloc(0);
        else if (isGone(error)) bytes = null;
        else throw ioError('read a session file', error);
      }
      const current = bytes === null ? null : { bytes, lastUse: () => this.#mtimeOf(file) };
      return this.#apply(file, await decide(current), assertHeld, wantVersion);
    });
  }

  async #apply<T>(file: string, decision: Decision<T>, assertHeld: AssertHeld, wantVersion: boolean): Promise<UpdateOutcome<T>> {
    if (decision.action === 'keep') return { result: decision.result };
    assertHeld();
    if (decision.action === 'remove') {
      await this.#unlink(file, 'remove a session file');
      return { result: decision.result };
    }
    try {
      await this.#io.writeFileAtomic(file, decision.bytes);
      // A rewrite that must not count as a use (a rekey) puts the last use back.
      if (decision.lastUseMs !== undefined) await this.#io.utimes(file, decision.lastUseMs);
    } catch (error) {
      throw ioError('write a session file', error);
    }
    if (!wantVersion) return { result: decision.result };
    // Still under the lock, so no other writer can have replaced the file: what the stat sees is
    // the version just written (a concurrent keep-alive only moves its mtime).
    const written = await this.#io.stat(file).catch(() => undefined);
    return { result: decision.result, version: written?.version };
  }

  /** The file's mtime (its last keep-alive mark), or null when it is gone. */
  async #mtimeOf(file: string): Promise<number | null> {
    try {
      return (await this.#io.stat(file)).mtimeMs;
    } catch (error) {
      if (isGone(error)) return null;
      throw ioError('read a session file', error);
    }
  }

  async #unlink(file: string, action: string): Promise<boolean> {
    try {
      await this.#io.unlink(file);
      return true;
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return false;
      throw ioError(action, error);
    }
  }

  /** Marks use without rewriting: moves the file's mtime (the header holds the deadlines). Null when the file is gone. */
  async keepAlive(name: string, atMs: number, _expiresAtMs: number, known?: string): Promise<{ version?: string | undefined } | null> {
    try {
      // The mark is a new version of the file (its mtime and ctime move): told to the read
      // cache, so that the next read of it is still one stat, not a whole read.
      return { version: await this.#io.mark(this.pathOf(name), atMs, known) };
    } catch (error) {
      // Gone, or something that is no file in its place: nothing to mark, no session.
      if (isGone(error) || isNotRegular(error)) return null;
      throw ioError('mark a session as used', error);
    }
  }

  async #ensureFolder(folder: string): Promise<void> {
    if (this.#folders.has(folder)) return;
    const folderPath = path.join(this.#dir, folder);
    // A symlink in a session folder's place would send session files out of the data dir.
    const existing = await this.#io.lstat(folderPath).catch((error: unknown) => {
      if (errorCode(error) === 'ENOENT') return null;
      throw ioError('create a session folder', error);
    });
    if (existing !== null && !existing.isDirectory()) throw new SealedSessionError('ERR_SESSION_STORE_IO', 'a session folder is not a folder (ENOTDIR)');
    try {
      await this.#io.mkdir(folderPath, 0o700);
    } catch (error) {
      throw ioError('create a session folder', error);
    }
    this.#folders.add(folder);
  }

  /**
   * Streams the data dir one folder at a time: session files with their clear-text header and
   * mtime (without `headers`, names only: for a caller that reads every file whole anyway), and
   * the debris that killed processes leave (lock folders and temp files), each with whether it is
   * stale. A few dozen entries in memory; unknown files are skipped.
   */
  scan(options: { readonly headers?: boolean } = {}): AsyncIterable<ScanItem> {
    return this.#items(options.headers !== false);
  }

  async *#items(headers: boolean): AsyncGenerator<ScanItem> {
    const items = pMapIterable(this.#entries(), (entry) => this.#itemOf(entry, headers), { concurrency: SCAN_CONCURRENCY, preserveOrder: false });
    for await (const item of items) if (item !== null) yield item;
  }

  async #itemOf(entry: RawEntry, headers: boolean): Promise<ScanItem | null> {
    const location = path.relative(this.#dir, entry.path);
    if (entry.kind === 'unreadable') return { kind: 'unreadable', name: entry.name, location, reason: NOT_A_FILE };
    if (entry.kind === 'session') {
      if (!headers) return { kind: 'session', name: entry.name, header: undefined, lastUseMs: 0, size: 0 };
      const snapshot = await this.#headerOf(entry.path);
      if (snapshot === null) return null;
      if ('unreadable' in snapshot) return { kind: 'unreadable', name: entry.name, location, reason: NOT_A_FILE };
      return { kind: 'session', name: entry.name, ...snapshot };
    }
    let stats;
    try {
      stats = await this.#io.lstat(entry.path);
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return null;
      throw ioError('inspect the data dir', error);
    }
    // Real time, not a store's clock: lock staleness is proper-lockfile's, by the real clock.
    const age = Date.now() - stats.mtimeMs;
    const stale =
      entry.kind === 'lock'
        ? // A lock that is not a folder, or dated ahead of the clock, was planted: it would never grow stale.
          !stats.isDirectory() || age >= this.#lock.staleMs || age < -this.#lock.staleMs
        : age >= tempMaxAgeMs(this.#lock.staleMs);
    return { kind: 'debris', what: entry.kind, name: entry.name, location, stale };
  }

  /** Only the clear-text header, mtime and size: never decrypts. Null when the file is gone. */
  async #headerOf(file: string): Promise<{ header: ReturnType<typeof readHeader>; lastUseMs: number; size: number } | Unreadable | null> {
    try {
      const snapshot = await this.#io.readFile(file, HEADER_BYTES);
      return { header: readHeader(snapshot.data), lastUseMs: snapshot.mtimeMs, size: snapshot.size };
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return null;
      if (isNotRegular(error)) return UNREADABLE;
      throw ioError('read a session file', error);
    }
  }

  async *#entries(): AsyncGenerator<RawEntry> {
    let root;
    try {
      root = await this.#io.opendir(this.#dir);
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return;
      throw ioError('list the data dir', error);
    }
    for await (const folder of root) {
      if (!folder.isDirectory() || !FOLDER.test(folder.name)) continue;
      const folderPath = path.join(this.#dir, folder.name);
      let entries;
      try {
        entries = await this.#io.opendir(folderPath);
      } catch (error) {
        if (errorCode(error) === 'ENOENT') continue;
        throw ioError('list a session folder', error);
      }
      for await (const entry of entries) {
        const entryPath = path.join(folderPath, entry.name);
        const session = SESSION_FILE.exec(entry.name);
        if (session !== null) {
          yield { kind: entry.isFile() ? 'session' : 'unreadable', name: session[1]!, path: entryPath };
          continue;
        }
        const lock = LOCK_DIR.exec(entry.name);
        if (lock !== null) {
          yield { kind: 'lock', name: lock[1]!, path: entryPath };
          continue;
        }
        const temp = TEMP_FILE.exec(entry.name);
        if (temp !== null && entry.isFile()) yield { kind: 'temp', name: temp[1]!, path: entryPath };
      }
    }
  }

  /**
   * Removes expired sessions and the debris of killed processes. A session is removed under its
   * lock, after its header and mtime say again that it expired: a request may have used it a
   * moment ago. One locked right now is in use; the next sweep will see it.
   */
  async sweep(options: SweepOptions): Promise<SweepCounts> {
    const counts = { scanned: 0, expired: 0, removed: 0, debris: 0, debrisRemoved: 0, unreadable: 0, errors: 0 };
    const visit = async (item: ScanItem): Promise<void> => {
      if (item.kind === 'unreadable') {
        counts.unreadable++;
        return;
      }
      if (item.kind === 'debris') {
        if (!item.stale) return;
        counts.debris++;
        if (options.dryRun) return;
        if (await this.#clear(item, options.isBusy)) counts.debrisRemoved++;
        return;
      }
      counts.scanned++;
      const { header } = item;
      if (header === null || header === undefined) {
        counts.unreadable++;
        return;
      }
      if (!options.isExpired(header, item.lastUseMs)) return;
      counts.expired++;
      if (options.dryRun) return;
      const file = this.pathOf(item.name);
      const removed = await this.#sweepLock(item.name, options.isBusy, async (assertHeld) => {
        const again = await this.#headerOf(file);
        if (again === null || 'unreadable' in again || again.header === null || !options.isExpired(again.header, again.lastUseMs)) return false;
        assertHeld();
        return this.#unlink(file, 'remove a session file');
      });
      if (removed === true) counts.removed++;
    };
    await forEachLimited(this.#guarded(options.onError, counts), SCAN_CONCURRENCY, async (item) => {
      // One file's trouble (a disk error, a lock that cannot be taken) is reported and counted,
      // and the sweep goes on with the rest.
      await visit(item).catch((error: unknown) => {
        counts.errors++;
        options.onError(error);
      });
    });
    return counts;
  }

  /** The scan, with a failure to read one entry's header counted as that entry's trouble, not the sweep's end. */
  async *#guarded(onError: (error: unknown) => void, counts: { errors: number }): AsyncGenerator<ScanItem> {
    const items = pMapIterable(
      this.#entries(),
      (entry) =>
        this.#itemOf(entry, true).catch((error: unknown) => {
          counts.errors++;
          onError(error);
          return null;
        }),
      { concurrency: SCAN_CONCURRENCY, preserveOrder: false },
    );
    for await (const item of items) if (item !== null) yield item;
  }

  clearDebris(item: Extract<ScanItem, { kind: 'debris' }>): Promise<boolean> {
    return this.#clear(item, () => false);
  }

  async #clear(item: Extract<ScanItem, { kind: 'debris' }>, isBusy: (name: string) => boolean): Promise<boolean> {
    if (item.what === 'temp') return this.#unlink(path.join(this.#dir, item.location), 'remove debris from the data dir');
    if (item.name === null) return false;
    // A stale lock is cleared the way proper-lockfile takes one over — by locking (which succeeds
    // only if it is stale) and releasing — never by a bare rmdir, which could remove a lock
    // another process took over a moment earlier.
    return (await this.#sweepLock(item.name, isBusy, () => Promise.resolve(true))) === true;
  }

  /**
   * Runs `fn` under a session file's lock if it can be had at once; undefined otherwise. Never
   * competes with this process's own commits of that file, nor with itself: two contenders taking
   * over the same stale lock at once could both believe they hold it (a race inside
   * proper-lockfile's takeover), so within this process there is only ever one at a time.
   */
  async #sweepLock<T>(name: string, isBusy: (name: string) => boolean, fn: (assertHeld: AssertHeld) => Promise<T>): Promise<T | undefined> {
    // A sweep visits a session file and its lock folder side by side: the second waits for the first.
    for (let pending = this.#sweepLocks.get(name); pending !== undefined; pending = this.#sweepLocks.get(name)) {
      await pending.catch(() => undefined);
    }
    if (isBusy(name)) return undefined;
    const attempt = this.#tryLock(name, fn);
    this.#sweepLocks.set(name, attempt);
    try {
      return await attempt;
    } finally {
      this.#sweepLocks.delete(name);
    }
  }

  /** Like an update's lock, but gives up at once (undefined) when someone else holds it. */
  async #tryLock<T>(name: string, fn: (assertHeld: AssertHeld) => Promise<T>): Promise<T | undefined> {
    return withLock(this.#io, this.pathOf(name), { ...this.#lock, waitMs: 0 }, fn).catch((error: unknown) => {
      if (error instanceof SealedSessionError && error.code === 'ERR_SESSION_LOCK_TIMEOUT') return undefined;
      throw error;
    });
  }

  /** The quarantine folder must be a real folder inside the data dir: a symlink would send session files and notes out of it. */
  async openQuarantine(): Promise<void> {
    const folder = path.join(this.#dir, QUARANTINE_FOLDER);
    let stats;
    try {
      stats = await this.#io.lstat(folder);
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return;
      throw ioError('inspect the quarantine folder', error);
    }
    if (!stats.isDirectory()) {
      throw new SealedSessionError(
        'ERR_SESSION_STORE_IO',
        `${folder} is not a real folder inside the data dir (${stats.isSymbolicLink() ? 'a symbolic link' : 'not a folder'}): move it away, then repair again`,
      );
    }
  }

  /**
   * Moves a session file into `<dir>/quarantine/<batch>/<2 hex>/<name>.sess` (the data dir's own
   * layout: moving it back is a plain `mv`), under its lock (a stale one is taken over) and only
   * if it is still bad: a server may have just written a good version, which must stay. A file
   * that cannot be read at all is bad.
   */
  async quarantine(name: string, batch: string, stillBad: (current: Buffer | null) => boolean): Promise<QuarantineOutcome> {
    const file = this.pathOf(name);
    return withLock(this.#io, file, this.#lock, async (assertHeld) => {
      let current: Buffer | null = null;
      let readable = true;
      try {
        current = await this.#io.readLatest(file, this.#maxReadBytes);
      } catch (error) {
        if (!isGone(error)) readable = false;
      }
      if (readable && !stillBad(current)) return 'resolved';
      const folder = path.join(this.#dir, QUARANTINE_FOLDER, batch, name.slice(0, 2));
      await this.#io.mkdir(folder, 0o700);
      assertHeld();
      await this.#ops.rename(file, path.join(folder, `${name}.sess`));
      return 'quarantined';
    });
  }

  async noteQuarantine(batch: string, note: Buffer): Promise<string> {
    const folder = path.join(QUARANTINE_FOLDER, batch);
    await this.#io.mkdir(path.join(this.#dir, folder), 0o700);
    await this.#ops.writeFile(path.join(this.#dir, folder, 'findings.json'), note);
    return folder;
  }

  async copyOut(name: string): Promise<{ bytes: Buffer; lastUseMs: number } | null> {
    try {
      // One open, one inode: the whole of one version, whatever is renamed over it meanwhile.
      const snapshot = await this.#io.readFile(this.pathOf(name), Number.MAX_SAFE_INTEGER - 1);
      return { bytes: snapshot.data, lastUseMs: snapshot.mtimeMs };
    } catch (error) {
      // Destroyed (or collected) since it was listed; or no file to copy (scans report it as unreadable).
      if (errorCode(error) === 'ENOENT' || isNotRegular(error)) return null;
      throw error;
    }
  }

  /** Writes a copied envelope as a new file (fsynced, 0600), its mtime its last use, in one step. False when the file exists. */
  async copyIn(name: string, envelope: { readonly bytes: Buffer; readonly lastUseMs: number; readonly expiresAtMs: number }): Promise<boolean> {
    const file = this.pathOf(name);
    await this.#ensureFolder(name.slice(0, 2));
    try {
      await this.#ops.createFile(file, envelope.bytes, envelope.lastUseMs);
    } catch (error) {
      if (errorCode(error) === 'EEXIST') return false;
      throw error;
    }
    return true;
  }
}

type RawEntry = { readonly kind: 'session' | 'unreadable' | 'lock' | 'temp'; readonly name: string; readonly path: string };
