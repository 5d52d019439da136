import fs from 'node:fs';
import lockfile from 'proper-lockfile';
import writeFileAtomic from 'write-file-atomic';

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
  /** The file's version (see FileSnapshot) by one stat; ENOENT propagates. */
  stat(path: string): Promise<FileVersion>;
  /** temp file → write → fsync → rename, mode 0600. */
  writeFileAtomic(path: string, data: Buffer): Promise<void>;
  /** Creates a folder (and missing parents) and makes sure the folder itself has `mode`. */
  mkdir(path: string, mode: number): Promise<void>;
  unlink(path: string): Promise<void>;
  utimes(path: string, timeMs: number): Promise<void>;
  lstat(path: string): Promise<fs.Stats>;
  /** Streams a folder's entries; never lists a whole folder into memory. */
  opendir(path: string): Promise<AsyncIterable<fs.Dirent>>;
  lock(path: string, request: LockRequest): Promise<Release>;
  /** Reads a small text file (a key file); ENOENT propagates. */
  readText(path: string): Promise<string>;
  /** Creates `path` with `text`, mode 0600, only if it does not exist yet (EEXIST otherwise). */
  createExclusive(path: string, text: string): Promise<void>;
}

// mtimes in whole ms: a keep-alive sets the mtime to a ms value through utimes' float seconds,
// which comes back a few hundred ns off; rounding gives back exactly the value set, so an idle
// deadline falls on the ms it should (a real write's sub-ms part does not matter).
function versionOf(stats: fs.BigIntStats): string {
  return `${stats.dev}:${stats.ino}:${stats.size}:${stats.mtimeNs}:${stats.ctimeNs}`;
}

function readWhole(path: string, limit: number): Promise<FileSnapshot> {
  // Callback API: one promise per read instead of a FileHandle per read (measurably cheaper on
  // the hot path of every request).
  return new Promise((resolve, reject) => {
    fs.open(path, 'r', (openError, fd) => {
      if (openError) return reject(openError);
      const finish = (error: NodeJS.ErrnoException | null, snapshot?: FileSnapshot) => {
        fs.close(fd, (closeError) => {
          if (error ?? closeError) reject(error ?? closeError);
          else resolve(snapshot!);
        });
      };
      fs.fstat(fd, { bigint: true }, (statError, stats) => {
        if (statError) return finish(statError);
        const fileSize = Number(stats.size);
        const mtimeMs = Math.round(Number(stats.mtimeNs) / 1e6);
        const version = versionOf(stats);
        const size = Math.min(fileSize, limit + 1);
        const buffer = Buffer.allocUnsafe(size);
        let offset = 0;
        const readMore = () => {
          if (offset >= size) return finish(null, { data: buffer, mtimeMs, size: fileSize, version });
          fs.read(fd, buffer, offset, size - offset, offset, (readError, bytesRead) => {
            if (readError) return finish(readError);
            if (bytesRead === 0) return finish(null, { data: buffer.subarray(0, offset), mtimeMs, size: fileSize, version });
            offset += bytesRead;
            readMore();
          });
        };
        readMore();
      });
    });
  });
}

// `mode` explicitly: write-file-atomic would otherwise copy it from the file it replaces, and
// 0600 is the contract whatever is on disk. `chown: false` (documented in its README; its
// @types lag behind): the temp file is ours already, and a chown would be one more journaled
// metadata write per commit.
const ATOMIC_WRITE = { mode: 0o600, chown: false, fsync: true } as unknown as writeFileAtomic.Options;

export const defaultIo: Io = {
  readFile: readWhole,
  stat: async (path) => {
    const stats = await fs.promises.stat(path, { bigint: true });
    return { version: versionOf(stats), mtimeMs: Math.round(Number(stats.mtimeNs) / 1e6) };
  },
  writeFileAtomic: (path, data) => writeFileAtomic(path, data, ATOMIC_WRITE),
  mkdir: async (path, mode) => {
    await fs.promises.mkdir(path, { recursive: true, mode });
    // mkdir's mode is filtered by the umask; the contract is 0700 whatever the umask.
    await fs.promises.chmod(path, mode);
  },
  unlink: (path) => fs.promises.unlink(path),
  utimes: (path, timeMs) => fs.promises.utimes(path, timeMs / 1000, timeMs / 1000),
  lstat: (path) => fs.promises.lstat(path),
  opendir: (path) => fs.promises.opendir(path, { bufferSize: 64 }),
  lock: (path, request) =>
    lockfile.lock(path, {
      realpath: false,
      stale: request.stale,
      retries: 0,
      onCompromised: request.onCompromised,
    }),
  readText: (path) => fs.promises.readFile(path, 'utf8'),
  createExclusive: async (path, text) => {
    // Written under a private temp name, then hard-linked into place: link fails with EEXIST
    // when another process won the race, and a reader never sees a half-written key.
    const temp = `${path}.${process.pid}.tmp`;
    await fs.promises.writeFile(temp, text, { mode: 0o600, flag: 'w' });
    try {
      await fs.promises.chmod(temp, 0o600);
      await fs.promises.link(temp, path);
    } finally {
      await fs.promises.unlink(temp);
    }
  },
};
