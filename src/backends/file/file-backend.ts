import path from 'node:path';
import { LRUCache } from 'lru-cache';
import type { SessionData } from '../../core/changes.js';
import { errorCode, SealedSessionError } from '../../errors.js';
import type { Io } from './io.js';
import { deepFreeze, type JsonValue } from '../../core/json-value.js';
import type { Keyring } from '../../crypto/keys.js';
import { withLock, type AssertHeld, type LockSettings } from './lock.js';
import { ENVELOPE_OVERHEAD, HEADER_BYTES, readHeader, seal, unseal, type EnvelopeHeader, type EnvelopeTimes } from '../../crypto/seal.js';
import { fileNameOf } from '../../core/session-id.js';

/*
 * Layout: <dir>/<first two hex digits of the name>/<name>.sess, where name = fileNameOf(id).
 * 256 folders keep each one small (about 4,000 files at 1,000,000 sessions). Beside a session
 * file live only its debris: `<name>.sess.lock/` (proper-lockfile) and `<name>.sess.<digits>`
 * (the temp file of an atomic write). Listings match the strict patterns below and so never see it.
 */
/** A session folder's name: the first two hex digits of its files' names. */
export const FOLDER = /^[0-9a-f]{2}$/;
const SESSION_FILE = /^([0-9a-f]{64})\.sess$/;
const LOCK_DIR = /^([0-9a-f]{64})\.sess\.lock$/;
const TEMP_FILE = /^[0-9a-f]{64}\.sess\.\d+$/;

/** A session as stored: its data and the envelope's clear-text header. */
export interface StoredSession {
  readonly id: string;
  readonly data: SessionData;
  /** The sealed plaintext: a commit that would write the same text writes nothing. */
  readonly plaintext: string;
  readonly header: EnvelopeHeader;
  /** The file's modification time: a keep-alive moves it without rewriting the file. */
  readonly mtimeMs: number;
}

export type TamperReason = 'format' | 'unknown-key' | 'authentication' | 'content';

export type ReadOutcome =
  | { readonly state: 'missing' }
  | { readonly state: 'tampered'; readonly reason: TamperReason }
  | { readonly state: 'found'; readonly session: StoredSession };

export type ScanEntry =
  | { readonly kind: 'session' | 'lock'; readonly name: string; readonly path: string }
  | { readonly kind: 'temp'; readonly path: string };

export interface HeaderSnapshot {
  readonly header: EnvelopeHeader | null;
  readonly mtimeMs: number;
  readonly size: number;
}

/** A file that is not there: the normal answer for an unknown or destroyed session. */
function isGone(error: unknown): boolean {
  return errorCode(error) === 'ENOENT' || errorCode(error) === 'ENOTDIR';
}

function ioError(action: string, error: unknown): SealedSessionError {
  if (error instanceof SealedSessionError) return error;
  return new SealedSessionError('ERR_SESSION_STORE_IO', `could not ${action} (${errorCode(error) ?? 'error'})`, { cause: error });
}

/** Sealed files on disk: paths, sealing, locks, atomic writes. Knows nothing of merging or expiry. */
export class FileBackend {
  readonly #dir: string;
  readonly #io: Io;
  readonly #lock: LockSettings;
  readonly #maxFileBytes: number;
  #keyring: Keyring;
  readonly #folders = new Set<string>();

  /** Recently read sessions by file name, with the file version they were read from (null: `cacheSize` 0). */
  readonly #cache: LRUCache<string, { version: string; session: StoredSession }> | null;

  constructor(dir: string, keyring: Keyring, io: Io, lock: LockSettings, maxBytes: number, cacheSize: number) {
    this.#cache = cacheSize > 0 ? new LRUCache({ max: cacheSize }) : null;
    this.#dir = dir;
    this.#keyring = keyring;
    this.#io = io;
    this.#lock = lock;
    // A bound on what a read pulls into memory. Generous, so that sessions written under a
    // larger `maxBytes` than today's still open (a commit enforces `maxBytes`, not a read).
    this.#maxFileBytes = Math.max(4 * maxBytes, 16 * 1024 * 1024) + ENVELOPE_OVERHEAD + 128;
  }

  get keyring(): Keyring {
    return this.#keyring;
  }

  /** The session file's name for an id: one-way, so it never leads back to the id. */
  nameOf(id: string): string {
    return fileNameOf(id);
  }

  pathOf(name: string): string {
    return path.join(this.#dir, name.slice(0, 2), `${name}.sess`);
  }

  /** The path relative to the data dir, for reports (it holds no id). */
  relative(name: string): string {
    return `${name.slice(0, 2)}/${name}.sess`;
  }

  /** `fresh`: bypass the cache (a commit merges onto exactly what is on disk). */
  async read(id: string, fresh = false): Promise<ReadOutcome> {
    return this.readName(this.nameOf(id), fresh);
  }

  /**
   * Opens the session file `name` (no lock: writes are atomic renames, so reads see whole files).
   * A session read before costs one stat while its file is unchanged: one trip to the thread
   * pool instead of four (open, fstat, read, close), and no decryption.
   *
   * Why commits bypass it: file timestamps tick at kernel-tick granularity, so in theory another
   * process could write two same-size versions within one tick and land the second on the
   * recycled inode of a version cached here. A read could then see a version milliseconds old;
   * a merge must never, so commits always read the file itself.
   */
  async readName(name: string, fresh = false): Promise<ReadOutcome> {
    const file = this.pathOf(name);
    const cached = fresh ? undefined : this.#cache?.get(name);
    if (cached !== undefined) {
      let current;
      try {
        current = await this.#io.stat(file);
      } catch (error) {
        this.#cache?.delete(name);
        if (isGone(error)) return { state: 'missing' };
        throw ioError('read a session file', error);
      }
      if (current.version === cached.version) return { state: 'found', session: cached.session };
      this.#cache?.delete(name);
    }
    let snapshot;
    try {
      snapshot = await this.#io.readFile(file, this.#maxFileBytes);
    } catch (error) {
      if (isGone(error)) return { state: 'missing' };
      throw ioError('read a session file', error);
    }
    const outcome = this.#open(name, snapshot.data, snapshot.mtimeMs);
    if (outcome.state === 'found') this.#cache?.set(name, { version: snapshot.version, session: outcome.session });
    return outcome;
  }

  /**
   * For a commit, under the lock: the file itself (never the cache: see `readName`), without its
   * metadata — one system call fewer on every commit. The returned `mtimeMs` is therefore the
   * header's `written` time; a keep-alive mark after it is read by `mtimeOf` when it matters.
   */
  async readLatest(id: string): Promise<ReadOutcome> {
    const name = this.nameOf(id);
    let data;
    try {
      data = await this.#io.readLatest(this.pathOf(name), this.#maxFileBytes);
    } catch (error) {
      if (isGone(error)) return { state: 'missing' };
      throw ioError('read a session file', error);
    }
    return this.#open(name, data);
  }

  /** The file's mtime (its last keep-alive mark), or null when it is gone. */
  async mtimeOf(name: string): Promise<number | null> {
    try {
      return (await this.#io.stat(this.pathOf(name))).mtimeMs;
    } catch (error) {
      if (isGone(error)) return null;
      throw ioError('read a session file', error);
    }
  }

  #open(name: string, data: Buffer, mtimeMs?: number): ReadOutcome {
    if (data.length > this.#maxFileBytes) return { state: 'tampered', reason: 'format' };
    const opened = unseal(this.#keyring, data, name);
    if (!opened.ok) return { state: 'tampered', reason: opened.reason };
    const plaintext = opened.plaintext.toString('utf8');
    const parsed = parsePlaintext(plaintext);
    // Sealed for this name (the name is authenticated), yet holding an id of another name: only
    // a key holder could make that, and it is no session of that id.
    if (parsed === null || fileNameOf(parsed.id) !== name) return { state: 'tampered', reason: 'content' };
    return { state: 'found', session: { id: parsed.id, data: parsed.data, plaintext, header: opened.header, mtimeMs: mtimeMs ?? opened.header.written } };
  }

  /** Only the clear-text header and mtime, for gc: never decrypts. Null when the file is gone. */
  async readHeader(filePath: string): Promise<HeaderSnapshot | null> {
    try {
      const snapshot = await this.#io.readFile(filePath, HEADER_BYTES);
      return { header: readHeader(snapshot.data), mtimeMs: snapshot.mtimeMs, size: snapshot.size };
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return null;
      throw ioError('read a session file', error);
    }
  }

  /** Seals and writes atomically (temp → fsync → rename). Call inside `withLock`. */
  async write(name: string, id: string, data: SessionData, plaintext: string, times: EnvelopeTimes): Promise<void> {
    const envelope = seal(this.#keyring, times, Buffer.from(plaintext, 'utf8'), name);
    const file = this.pathOf(name);
    this.#cache?.delete(name);
    try {
      await this.#io.writeFileAtomic(file, envelope);
    } catch (error) {
      throw ioError('write a session file', error);
    }
    if (this.#cache === null) return;
    // Still under the lock, so no other writer can have replaced the file: what the stat sees
    // is the version just written (a concurrent keep-alive only moves its mtime).
    const written = await this.#io.stat(file).catch(() => undefined);
    if (written === undefined) return;
    const header = readHeader(envelope)!;
    this.#cache.set(name, { version: written.version, session: { id, data, plaintext, header, mtimeMs: written.mtimeMs } });
  }

  async remove(name: string): Promise<boolean> {
    this.#cache?.delete(name);
    try {
      await this.#io.unlink(this.pathOf(name));
      return true;
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return false;
      throw ioError('remove a session file', error);
    }
  }

  /** Marks use without rewriting: moves the file's mtime. False when the file is gone. */
  async touch(name: string, timeMs: number): Promise<boolean> {
    try {
      await this.#io.utimes(this.pathOf(name), timeMs);
      return true;
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return false;
      throw ioError('mark a session as used', error);
    }
  }

  /** Runs `fn` under the session file's cross-process lock (its folder is created first). */
  async withLock<T>(name: string, fn: (assertHeld: AssertHeld) => Promise<T>): Promise<T> {
    await this.#ensureFolder(name.slice(0, 2));
    return withLock(this.#io, this.pathOf(name), this.#lock, fn);
  }

  /** Runs `fn` for a session file that no one else can know of yet (its folder is created first). */
  async withoutLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
    await this.#ensureFolder(name.slice(0, 2));
    return fn();
  }

  /** Like `withLock`, but gives up at once (undefined) when someone else holds the lock. */
  async tryLock<T>(name: string, fn: (assertHeld: AssertHeld) => Promise<T>): Promise<T | undefined> {
    return withLock(this.#io, this.pathOf(name), { ...this.#lock, waitMs: 0 }, fn).catch((error: unknown) => {
      if (error instanceof SealedSessionError && error.code === 'ERR_SESSION_LOCK_TIMEOUT') return undefined;
      throw error;
    });
  }

  async #ensureFolder(folder: string): Promise<void> {
    if (this.#folders.has(folder)) return;
    try {
      await this.#io.mkdir(path.join(this.#dir, folder), 0o700);
    } catch (error) {
      throw ioError('create a session folder', error);
    }
    this.#folders.add(folder);
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
   * Streams the data dir: session files, and the debris that killed processes leave (lock folders
   * and temp files). One folder at a time, a few dozen entries in memory; unknown files are skipped.
   */
  async *scan(): AsyncGenerator<ScanEntry> {
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
        const lock = session === null ? LOCK_DIR.exec(entry.name) : null;
        if (session !== null && entry.isFile()) yield { kind: 'session', name: session[1]!, path: entryPath };
        else if (lock !== null && entry.isDirectory()) yield { kind: 'lock', name: lock[1]!, path: entryPath };
        else if (TEMP_FILE.test(entry.name) && entry.isFile()) yield { kind: 'temp', path: entryPath };
      }
    }
  }

  /** Age in ms of a debris entry (by mtime), or null when it is gone already. */
  async ageOf(entryPath: string, nowMs: number): Promise<number | null> {
    try {
      return nowMs - (await this.#io.lstat(entryPath)).mtimeMs;
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return null;
      throw ioError('inspect the data dir', error);
    }
  }

  /** Removes a temp file left by a killed writer; false when it is gone already. */
  async removeTemp(filePath: string): Promise<boolean> {
    try {
      await this.#io.unlink(filePath);
      return true;
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return false;
      throw ioError('remove debris from the data dir', error);
    }
  }
}

/** What a session file seals: the id (so a listing can name sessions) and the data's JSON. */
export function plaintextOf(id: string, dataJson: string): string {
  return `{"id":${JSON.stringify(id)},"data":${dataJson}}`;
}

function parsePlaintext(plaintext: string): { id: string; data: SessionData } | null {
  // Authenticated already, so this is our own JSON; checked anyway, never trusted blindly.
  let parsed: unknown;
  try {
    parsed = JSON.parse(plaintext);
  } catch {
    return null;
  }
  if (typeof parsed !== 'object' || parsed === null || !('id' in parsed) || !('data' in parsed)) return null;
  const { id, data } = parsed;
  if (typeof id !== 'string' || typeof data !== 'object' || data === null || Array.isArray(data)) return null;
  const entries = Object.entries(data as Record<string, JsonValue>);
  for (const [, value] of entries) deepFreeze(value);
  return { id, data: new Map(entries) };
}
