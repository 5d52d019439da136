import fs from 'node:fs';
import nodePath from 'node:path';
import lockfile from 'proper-lockfile';
import writeFileAtomic from 'write-file-atomic';
import type { KeyFileAccess, KeyFileFound } from '../../crypto/key-source.js';
import { errorCode } from '../../errors.js';

/*
 * The one seam between sealed-sessions and the disk: no other module imports node:fs (a test
 * checks). Tests replace single operations of `defaultIo` to inject faults (ENOSPC, EIO, …),
 * since CI runs as root, where chmod cannot produce EACCES.
 */

export interface FileSnapshot {
  readonly data: Buffer;
  readonly mtimeMs: number;
  /** The file's whole size, whatever was read. */
  readonly size: number;
  /** Identifies this version of the file (inode, size, mtime and ctime in ns): any rewrite, rename or touch changes it. */
  readonly version: string;
}

export interface FileVersion {
  readonly version: string;
  readonly mtimeMs: number;
}

export interface LockRequest {
  /** ms after which a lock that is no longer refreshed counts as abandoned. */
  readonly stale: number;
  /** Called when the lock is found taken over while held. */
  readonly onCompromised: (error: Error) => void;
}

export type Release = () => Promise<void>;

export interface Io {
  /** The whole file with its mtime; at most `limit` bytes (more → reads `limit + 1`). ENOENT propagates. */
  readFile(path: string, limit: number): Promise<FileSnapshot>;
  /** The whole file, without its metadata: one system call fewer than `readFile` (no fstat). At most `limit` bytes (more → reads `limit + 1`). ENOENT propagates. */
  readLatest(path: string, limit: number): Promise<Buffer>;
  /** The file's version (see FileSnapshot) by one stat; ENOENT propagates. */
  stat(path: string): Promise<FileVersion>;
  /** temp file → write → fsync → rename, mode 0600. */
  writeFileAtomic(path: string, data: Buffer): Promise<void>;
  /** Creates a folder (and missing parents) and makes sure the folder itself has `mode`. */
  mkdir(path: string, mode: number): Promise<void>;
  unlink(path: string): Promise<void>;
  utimes(path: string, timeMs: number): Promise<void>;
  /**
   * A keep-alive mark: moves the file's mtime to `timeMs` (never through a symlink), and returns
   * its version after the mark when it was the version `known` before it (the same open file,
   * so a rewrite in between cannot be mistaken for it); undefined otherwise. ENOENT propagates.
   */
  mark(path: string, timeMs: number, known: string | undefined): Promise<string | undefined>;
  lstat(path: string): Promise<fs.Stats>;
  /** Streams a folder's entries; never lists a whole folder into memory. */
  opendir(path: string): Promise<AsyncIterable<fs.Dirent>>;
  lock(path: string, request: LockRequest): Promise<Release>;
  /** Reads a small text file; ENOENT propagates. Not for key files: see `keyFileAccess`. */
  readText(path: string): Promise<string>;
}

// mtimes in whole ms: a keep-alive sets the mtime to a ms value through utimes' float seconds,
// which comes back a few hundred ns off; rounding gives back exactly the value set, so an idle
// deadline falls on the ms it should (a real write's sub-ms part does not matter).
function versionOf(stats: fs.BigIntStats): string {
  return `${stats.dev}:${stats.ino}:${stats.size}:${stats.mtimeNs}:${stats.ctimeNs}`;
}

// Callback API throughout the reads: one promise per read instead of a FileHandle per read
// (measurably cheaper on the hot path of every request).

/**
 * How session files are opened: a symlink is never followed (ELOOP) and a FIFO or device never
 * blocks the open (libuv has 4 threads: four blocked opens would stall every request), so what
 * stands in a session file's place can cost no more than a normal read.
 */
const READ_FLAGS = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK;

/** The error of a read that found something other than a regular file where a session file should be. */
export function notRegularFile(path: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`not a regular file: ${path}`), { code: 'ENOTREG', path });
}

/** Opens `path` for reading, hands the fd to `use`, and closes it whatever `use` ends with. */
function readOpen<T>(path: string, use: (fd: number, done: (error: NodeJS.ErrnoException | null, result?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    fs.open(path, READ_FLAGS, (openError, fd) => {
      if (openError) return reject(openError);
      use(fd, (error, result) => {
        fs.close(fd, (closeError) => {
          if (error ?? closeError) reject(error ?? closeError);
          else resolve(result!);
        });
      });
    });
  });
}

/**
 * Reads `fd` to its end, or to `limit + 1` bytes, into a buffer of `initial` bytes grown when it
 * fills. A short read of a regular file is its end: sized one byte over the file, a single read
 * does it (no second read just to be told so).
 */
function readToEnd(fd: number, initial: number, limit: number, done: (error: NodeJS.ErrnoException | null, data?: Buffer) => void): void {
  let buffer = Buffer.allocUnsafe(Math.min(initial, limit + 1));
  let offset = 0;
  const readMore = () => {
    fs.read(fd, buffer, offset, buffer.length - offset, offset, (readError, bytesRead) => {
      if (readError) return done(readError);
      offset += bytesRead;
      if (bytesRead === 0 || offset < buffer.length || buffer.length > limit) return done(null, buffer.subarray(0, offset));
      const larger = Buffer.allocUnsafe(Math.min(buffer.length * 4, limit + 1));
      buffer.copy(larger, 0, 0, offset);
      buffer = larger;
      readMore();
    });
  };
  readMore();
}

function readWhole(path: string, limit: number): Promise<FileSnapshot> {
  return readOpen(path, (fd, done) => {
    fs.fstat(fd, { bigint: true }, (statError, stats) => {
      if (statError) return done(statError);
      if (!stats.isFile()) return done(notRegularFile(path));
      const size = Number(stats.size);
      readToEnd(fd, size + 1, limit, (readError, data) => {
        if (readError) return done(readError);
        done(null, { data: data!, mtimeMs: Math.round(Number(stats.mtimeNs) / 1e6), size, version: versionOf(stats) });
      });
    });
  });
}

/*
 * The commit path's calls, and which of them run at once on the calling thread.
 *
 * Every call through Node's thread pool (four threads) queues behind whatever the pool is doing,
 * and under write load that is mostly fsyncs: each cheap call of a commit then waits as long as a
 * slow one (measured: 13 calls of a write request, each waiting 2–4 ms behind fsyncs, for a few
 * microseconds of work). So the calls the kernel answers from memory for a file just used —
 * lstat/stat of its inode, open of its path without O_CREAT, close — run at once, synchronously;
 * the ones that can wait on the disk or on the filesystem's journal — read, open with O_CREAT,
 * write, the sync, rename, mkdir, rmdir — go through the pool, as before.
 */

/**
 * open → read until EOF (or `limit + 1` bytes) → close: one trip through the pool (the read). No
 * fstat, so a non-regular file is told by the read instead: a directory fails with EISDIR, an
 * empty FIFO reads as empty, a socket does not open (ENXIO); never a blocked thread.
 */
function readLatest(path: string, limit: number): Promise<Buffer> {
  let fd: number;
  try {
    fd = fs.openSync(path, READ_FLAGS);
  } catch (error) {
    return Promise.reject(error as Error);
  }
  return new Promise((resolve, reject) => {
    // Most sessions are a few KB: one read, and a larger buffer only when it fills.
    readToEnd(fd, 16 * 1024, limit, (error, data) => {
      try {
        fs.closeSync(fd);
      } catch (closeError) {
        error ??= closeError as NodeJS.ErrnoException;
      }
      if (error) reject(error);
      else resolve(data!);
    });
  });
}

/** A stat at once (see above): the version of a file just used, from its inode in memory. */
function statNow(path: string): Promise<FileVersion> {
  try {
    // lstat: a symlink swapped in has its own inode, so the version differs and the read that
    // follows refuses it, instead of this stat following it.
    const stats = fs.lstatSync(path, { bigint: true });
    return Promise.resolve({ version: versionOf(stats), mtimeMs: Math.round(Number(stats.mtimeNs) / 1e6) });
  } catch (error) {
    return Promise.reject(error as Error);
  }
}

/**
 * proper-lockfile's own file system, but for the stat it makes of a lock folder it just created
 * (to remember its mtime): at once, as above. mkdir, rmdir and utimes stay on the pool.
 */
const lockFs = {
  ...fs,
  stat: (path: string, callback: (error: NodeJS.ErrnoException | null, stats?: fs.Stats) => void) => {
    let stats: fs.Stats;
    try {
      stats = fs.statSync(path);
    } catch (error) {
      callback(error as NodeJS.ErrnoException);
      return;
    }
    callback(null, stats);
  },
};

let writes = 0;

async function makeFolder(path: string, mode: number): Promise<void> {
  await fs.promises.mkdir(path, { recursive: true, mode });
  // mkdir's mode is filtered by the umask; the contract is 0700 whatever the umask.
  await fs.promises.chmod(path, mode);
}

/**
 * temp file → write (O_DSYNC: on disk when the write returns, as an fsync would make it, in one
 * call instead of two) → close → rename over `target`; the temp file is removed on failure.
 *
 * What write-file-atomic does, minus the steps a sealed session file never needs, each a trip
 * through Node's thread pool on every commit: a `realpath` (one lstat per path component: our
 * paths are built by us, never through a symlink of our own), a `stat` of the target (its mode
 * and owner: a session file is always 0600 and ours), a separate `chmod` (the temp file is
 * created 0600 — a umask can only make that stricter — and exclusively, so it is never someone
 * else's file) and a cleanup `unlink` after a successful rename. Measured on a 2-core ext4
 * machine: 25 → 14 file system calls per commit. The temp name `<target>.<digits>` is what gc
 * and the crash tests know as debris.
 */
const TEMP_FLAGS = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW | fs.constants.O_DSYNC;

function writeAtomic(target: string, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    let attempts = 0;
    const create = () => {
      // pid, then a fixed-width counter: unique per process; 'wx' catches the rare clash with a
      // dead process's leftover or a worker thread's own counter, and the next number is tried.
      const temp = `${target}.${process.pid}${String(++writes % 1_000_000).padStart(6, '0')}`;
      fs.open(temp, TEMP_FLAGS, 0o600, (openError, fd) => {
        if (openError) {
          if (openError.code === 'EEXIST' && ++attempts < 16) return create();
          return reject(openError);
        }
        const close = (): NodeJS.ErrnoException | null => {
          try {
            fs.closeSync(fd);
            return null;
          } catch (error) {
            return error as NodeJS.ErrnoException;
          }
        };
        const fail = (error: NodeJS.ErrnoException, open: boolean) => {
          if (open) close();
          fs.unlink(temp, () => reject(error));
        };
        let offset = 0;
        const writeMore = () => {
          fs.write(fd, data, offset, data.length - offset, offset, (writeError, written) => {
            if (writeError) return fail(writeError, true);
            offset += written;
            if (offset < data.length) return writeMore();
            const closeError = close();
            if (closeError) return fail(closeError, false);
            fs.rename(temp, target, (renameError) => {
              if (renameError) return fail(renameError, false);
              resolve();
            });
          });
        };
        writeMore();
      });
    };
    create();
  });
}

/**
 * Clears what stands at a lock's path when proper-lockfile would wait for it forever: anything but
 * a folder (a file, a symlink: mkdir never made those), a folder dated further in the future than
 * `stale` (a live lock's mtime is refreshed to now; one dated ahead would never grow stale: it is
 * dated back, so that the next attempt takes it over as stale, the usual way), or a stale folder
 * that is not empty (proper-lockfile's are; its rmdir fails on it). True when something was done.
 */
async function clearPlantedLock(lockPath: string, staleMs: number): Promise<boolean> {
  let stats;
  try {
    stats = await fs.promises.lstat(lockPath);
  } catch {
    return false;
  }
  if (!stats.isDirectory()) {
    await fs.promises.unlink(lockPath).catch(() => undefined);
    return true;
  }
  if (stats.mtimeMs > Date.now() + staleMs) {
    await fs.promises.lutimes(lockPath, 0, 0);
    return true;
  }
  if (stats.mtimeMs < Date.now() - staleMs && (await fs.promises.readdir(lockPath)).length > 0) {
    await fs.promises.rm(lockPath, { recursive: true, force: true });
    return true;
  }
  return false;
}

/**
 * See `Io.mark`: open (never following a symlink, never blocking), fstat, futimes, fstat, close —
 * all at once but the futimes (an inode change the journal may hold up: on the pool).
 */
function mark(path: string, timeMs: number, known: string | undefined): Promise<string | undefined> {
  let fd: number;
  let before: fs.BigIntStats;
  try {
    fd = fs.openSync(path, READ_FLAGS);
  } catch (error) {
    return Promise.reject(error as Error);
  }
  try {
    before = fs.fstatSync(fd, { bigint: true });
    if (!before.isFile()) throw notRegularFile(path);
  } catch (error) {
    fs.closeSync(fd);
    return Promise.reject(error as Error);
  }
  return new Promise((resolve, reject) => {
    fs.futimes(fd, timeMs / 1000, timeMs / 1000, (markError) => {
      try {
        const after = markError || known === undefined || versionOf(before) !== known ? undefined : versionOf(fs.fstatSync(fd, { bigint: true }));
        fs.closeSync(fd);
        if (markError) reject(markError);
        else resolve(after);
      } catch (error) {
        reject(error as Error);
      }
    });
  });
}

export const defaultIo: Io = {
  readFile: readWhole,
  readLatest,
  // This stat runs on every request that reads a cached session, and after every write.
  stat: statNow,
  writeFileAtomic: writeAtomic,
  mkdir: makeFolder,
  unlink: (path) => fs.promises.unlink(path),
  // lutimes: a keep-alive never moves the times of whatever a symlink in a session's place points to.
  utimes: (path, timeMs) => fs.promises.lutimes(path, timeMs / 1000, timeMs / 1000),
  mark,
  lstat: (path) => fs.promises.lstat(path),
  opendir: (path) => fs.promises.opendir(path, { bufferSize: 64 }),
  lock: async (path, request) => {
    const options = { realpath: false, stale: request.stale, retries: 0, onCompromised: request.onCompromised, fs: lockFs };
    // A lock that could never be taken over by proper-lockfile's own rule (its mtime refreshed,
    // stale once it is older than `stale`) was not made by it: it is cleared, and locking tried again.
    for (let attempt = 0; ; attempt++) {
      try {
        return await lockfile.lock(path, options);
      } catch (error) {
        if (attempt >= 2 || !(await clearPlantedLock(`${path}.lock`, request.stale))) throw error;
      }
    }
  },
  readText: (path) => fs.promises.readFile(path, 'utf8'),
};

/**
 * Disk operations only the operations CLI needs (quarantine, backup, migration). Kept out of `Io`,
 * the seam of the request path, so that wrappers of `Io` (fault injection in tests) need not know them.
 */
export interface OperationsIo {
  /** Moves a file or folder within one file system, atomically (a file already at `to` is replaced, as rename(2) does). */
  rename(from: string, to: string): Promise<void>;
  /**
   * Creates `path` holding `data`, mode 0600 whatever the umask, modification time `mtimeMs`,
   * fsynced; fails with EEXIST if anything is there. All at once: the file appears under its name
   * whole and already dated, so a copy killed midway leaves no half-written or wrongly dated
   * session, at most a temp file that gc removes as debris.
   */
  createFile(path: string, data: Buffer, mtimeMs: number): Promise<void>;
  /**
   * Writes a whole small file the operations keep (a backup's manifest, a quarantine's notes):
   * write-file-atomic (temp file, fsync, rename), mode 0600. Replaces what is there.
   */
  writeFile(path: string, data: Buffer): Promise<void>;
  /** The path with every symlink resolved (realpath(3)); ENOENT when some part does not exist. */
  realpath(path: string): Promise<string>;
}

/**
 * write-file-atomic's options: 0600 whatever a file there had, and no chown (ours already; its
 * types do not know `false`, which v7 reads as "leave the owner alone").
 */
const WHOLE_FILE_OPTIONS = { mode: 0o600, chown: false } as unknown as writeFileAtomic.Options;

/** link(2) refused by the file system (some network or FAT-like ones): the copy falls back to an exclusive open. */
const NO_HARD_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EMLINK']);

/**
 * temp file (exclusive, 0600) → write → futimes → fsync → close → link to `target` (EEXIST when
 * anything is there: link never replaces) → unlink the temp file. The temp name is the lean
 * write's, `<target>.<digits>`, which scans know as debris.
 */
async function createDated(target: string, data: Buffer, mtimeMs: number): Promise<void> {
  const temp = `${target}.${process.pid}${String(++writes % 1_000_000).padStart(6, '0')}`;
  const handle = await fs.promises.open(temp, 'wx', 0o600);
  let linked = false;
  try {
    await writeDated(handle, data, mtimeMs);
    try {
      await fs.promises.link(temp, target);
      linked = true;
    } catch (error) {
      if (!NO_HARD_LINKS.has(errorCode(error) ?? '')) throw error;
    }
  } finally {
    await fs.promises.unlink(temp).catch(() => undefined);
  }
  if (!linked) await createDatedWithoutLink(target, data, mtimeMs);
}

/** The same where hard links are not to be had: an exclusive open of the name itself, dated before it is closed. */
async function createDatedWithoutLink(target: string, data: Buffer, mtimeMs: number): Promise<void> {
  await writeDated(await fs.promises.open(target, 'wx', 0o600), data, mtimeMs);
}

/** Writes `data` into a file just created, 0600, dated `mtimeMs`, synced; closes it whatever happens. */
async function writeDated(handle: fs.promises.FileHandle, data: Buffer, mtimeMs: number): Promise<void> {
  try {
    await handle.writeFile(data);
    // The umask filters open's mode; 0600 is the contract whatever it is.
    await handle.chmod(0o600);
    await handle.utimes(mtimeMs / 1000, mtimeMs / 1000);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export const operationsIo: OperationsIo = {
  rename: (from, to) => fs.promises.rename(from, to),
  realpath: (path) => fs.promises.realpath(path),
  createFile: createDated,
  writeFile: (path, data) => writeFileAtomic(path, data, WHOLE_FILE_OPTIONS),
};

const { O_CREAT, O_DIRECTORY, O_EXCL, O_NOFOLLOW, O_NONBLOCK, O_RDONLY, O_WRONLY } = fs.constants;

/**
 * Key files (the development key, the CLI's --key-file): what `resolveSecrets` and the CLI pass
 * to the key source. Why these flags: a key file sits where another local user may have planted
 * something first (a world-writable parent). O_NOFOLLOW: a symlink in its place is reported,
 * never followed (to a key of their choosing, or to a file of ours to overwrite). O_NONBLOCK: a
 * FIFO there cannot block the open. Owner, mode and type come from fstat of the opened file, so
 * what is checked is what is read. Creation is one exclusive open of the final name (O_EXCL
 * fails on anything there, a dangling symlink included): no temp name to predict or plant.
 */
export const keyFileAccess: KeyFileAccess = {
  readKeyFile: async (path, limit) => {
    let handle;
    try {
      handle = await fs.promises.open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
    } catch (error) {
      // O_NOFOLLOW on a symlink: ELOOP on Linux (EMLINK on FreeBSD, EFTYPE on NetBSD).
      if (['ELOOP', 'EMLINK', 'EFTYPE'].includes(errorCode(error) ?? '')) {
        const stats = await fs.promises.lstat(path).catch(() => undefined);
        if (stats?.isSymbolicLink() === true) return { type: 'symlink' };
      }
      throw error;
    }
    try {
      const stats = await handle.stat();
      if (!stats.isFile()) return { type: 'other' };
      const buffer = Buffer.alloc(Math.min(stats.size, limit));
      let length = 0;
      while (length < buffer.length) {
        const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
        if (bytesRead === 0) break;
        length += bytesRead;
      }
      const found: KeyFileFound = {
        type: 'file',
        uid: stats.uid,
        mode: stats.mode & 0o7777,
        size: stats.size,
        links: stats.nlink,
        text: buffer.toString('utf8', 0, length),
      };
      return found;
    } finally {
      await handle.close();
    }
  },
  createKeyFile: async (path, text) => {
    const data = Buffer.from(text, 'utf8');
    const handle = await fs.promises.open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
    try {
      // One write of the whole key line: a reader that finds the file before it is filled waits
      // for the line (see readDevKey in key-source).
      const { bytesWritten } = await handle.write(data, 0, data.length, 0);
      if (bytesWritten !== data.length) throw Object.assign(new Error('short write of a key file'), { code: 'EIO' });
      // The umask filters open's mode; 0600 is the contract whatever it is.
      await handle.chmod(0o600);
      await handle.sync();
    } catch (error) {
      await handle.close();
      // Ours (the exclusive open made it): an empty key file left behind would stop every start.
      await fs.promises.unlink(path).catch(() => undefined);
      throw error;
    }
    await handle.close();
    // Its name on disk too: a key lost in a crash would make every session unreadable.
    const folder = await fs.promises.open(nodePath.dirname(path), O_RDONLY | O_DIRECTORY);
    try {
      await folder.sync();
    } finally {
      await folder.close();
    }
  },
  folder: async (path) => {
    try {
      const link = await fs.promises.lstat(path);
      const stats = link.isSymbolicLink() ? await fs.promises.stat(path) : link;
      return { uid: stats.uid, isDirectory: stats.isDirectory(), linkUid: link.isSymbolicLink() ? link.uid : undefined };
    } catch (error) {
      if (errorCode(error) === 'ENOENT' || errorCode(error) === 'ENOTDIR') return null;
      throw error;
    }
  },
  makeFolder,
};
