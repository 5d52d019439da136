import path from 'node:path';
import { errorCode, SealedSessionError } from '../errors.js';
import { generateKey, splitKeys } from './keys.js';

/** A key file as found on disk: described from the open file itself, never through a symlink. */
export type KeyFileFound =
  | { readonly type: 'symlink' }
  /** A folder, FIFO, device or socket. */
  | { readonly type: 'other' }
  | {
      readonly type: 'file';
      readonly uid: number;
      /** Permission bits (`mode & 0o7777`). */
      readonly mode: number;
      /** The whole size, whatever was read. */
      readonly size: number;
      /** Its number of names (hard links). */
      readonly links: number;
      /** Its first `limit` bytes, as UTF-8. */
      readonly text: string;
    };

/** A folder's owner (following symlinks, as every later use of the path does). */
export interface FolderFound {
  readonly uid: number;
  readonly isDirectory: boolean;
  /** When the path itself is a symlink: the symlink's owner. */
  readonly linkUid?: number | undefined;
}

/**
 * The disk operations that key files need. The crypto layer imports no fs: the file backend's io
 * module provides `keyFileAccess`, and the caller passes it in.
 */
export interface KeyFileAccess {
  /**
   * Opens `path` without following a symlink and without blocking (a FIFO), and describes it from
   * the open file; reads a regular file's text (at most `limit` bytes). ENOENT propagates.
   */
  readKeyFile(path: string, limit: number): Promise<KeyFileFound>;
  /**
   * Creates `path` holding `text` by one exclusive open (fails with EEXIST when anything is there,
   * a symlink included, which is never followed), mode 0600, one write, fsync.
   */
  createKeyFile(path: string, text: string): Promise<void>;
  /** The folder at `path`, or null when there is none. */
  folder(path: string): Promise<FolderFound | null>;
  /** Creates a folder and its missing parents; the folder itself gets `mode` whatever the umask. */
  makeFolder(path: string, mode: number): Promise<void>;
}

/** No key file is larger: a few keys, one a line. */
const MAX_KEY_FILE_BYTES = 64 * 1024;

/** What the creator writes: one generated key and a newline (44 bytes). */
const DEV_KEY_LINE_BYTES = Buffer.byteLength(`${generateKey()}\n`);

/** How long a reader waits for a key file shorter than a whole line to be filled. */
const DEV_KEY_WAIT_MS = 5000;

let devKeyAnnounced = false;

/** Where the development key of a data dir lives: beside it, never inside it (a copy of the dir must not carry its key). */
export function devKeyPath(dir: string): string {
  return path.join(path.dirname(dir), `.${path.basename(dir)}.dev-key`);
}

/**
 * Whether a development key may be used: only where NODE_ENV says development. Any other value
 * (`production`, `Production`, `prod`, `staging`, …) is taken as a deployment, which must bring
 * its own keys; a typo must never put a server on a key lying in its folder. Empty counts as unset.
 */
export function allowsDevelopmentKey(nodeEnv: string | undefined = process.env['NODE_ENV']): boolean {
  return nodeEnv === undefined || nodeEnv === '' || nodeEnv === 'development' || nodeEnv === 'test';
}

/**
 * The secrets to use: the `keys` option, else `SESSION_KEYS`, else — when NODE_ENV is unset,
 * `development` or `test` — a development key created once beside the data dir (0600) and
 * announced through `process.emitWarning` (code SEALED_SESSIONS_DEV_KEY). Any other NODE_ENV
 * without keys is an error.
 *
 * @throws `ERR_SESSION_KEYS_MISSING` without keys outside development; `ERR_SESSION_KEY_UNSAFE`
 * when the development key, its folder or the data dir could have been chosen by another user.
 */
export async function resolveSecrets(keys: string | readonly string[] | undefined, dir: string, access: KeyFileAccess): Promise<string[]> {
  const configured = splitKeys(keys);
  if (configured.length > 0) return configured;
  const fromEnv = splitKeys(process.env['SESSION_KEYS']);
  if (fromEnv.length > 0) return fromEnv;
  if (!allowsDevelopmentKey()) {
    throw new SealedSessionError(
      'ERR_SESSION_KEYS_MISSING',
      `no session key, and NODE_ENV=${process.env['NODE_ENV'] ?? ''} is not development: set SESSION_KEYS ` +
        '(make one with `sealed-sessions keygen`) or pass `keys`',
    );
  }
  const file = devKeyPath(dir);
  // Checked before the folders are made (making the data dir chmods it), and again after (they
  // may have been made meanwhile by someone else).
  await assertOwnFolders(dir, access);
  // The key lives beside the data dir: create the dir (and its missing parents) first, never
  // touching the mode of a parent that already exists.
  try {
    await access.makeFolder(dir, 0o700);
  } catch (error) {
    throw keyFileError(error);
  }
  await assertOwnFolders(dir, access);
  let created = false;
  let key = await readDevKey(file, access);
  if (key === null) {
    const fresh = generateKey();
    try {
      await access.createKeyFile(file, `${fresh}\n`);
      created = true;
      key = fresh;
    } catch (error) {
      // EEXIST: another process created it first (or someone planted something there): read
      // it, with the same checks.
      if (errorCode(error) !== 'EEXIST') throw keyFileError(error);
      key = await readDevKey(file, access);
      if (key === null) throw keyFileError(error);
    }
  }
  if (!devKeyAnnounced) {
    devKeyAnnounced = true;
    process.emitWarning(
      `${created ? 'created a development session key' : 'using the development session key'} in ${file}; ` +
        'set SESSION_KEYS (see `sealed-sessions keygen`) before going to production',
      { code: 'SEALED_SESSIONS_DEV_KEY' },
    );
  }
  return [key];
}

/**
 * The secrets already configured, never creating any: the `keys` argument, else `SESSION_KEYS`,
 * else — where a development key may be used — the development key beside `dir` if it exists
 * (with the same checks as `resolveSecrets`). Empty when there is none. For the operations CLI,
 * where a freshly made key would open nothing (and `verify --repair` would then quarantine every
 * session).
 */
export async function configuredSecrets(keys: string | readonly string[] | undefined, dir: string, access: KeyFileAccess): Promise<string[]> {
  const configured = splitKeys(keys);
  if (configured.length > 0) return configured;
  const fromEnv = splitKeys(process.env['SESSION_KEYS']);
  if (fromEnv.length > 0) return fromEnv;
  if (!allowsDevelopmentKey()) return [];
  await assertOwnFolders(dir, access);
  const key = await readDevKey(devKeyPath(dir), access);
  return key === null ? [] : [key];
}

/**
 * The text of a key file named by the operator (the CLI's `--key-file`), read with the checks a
 * development key gets: a regular file of this process's user, private to it, not a symlink.
 *
 * @throws `ERR_SESSION_KEY_UNSAFE` otherwise; fs errors (ENOENT, EACCES) as they are.
 */
export async function readKeyFileText(file: string, access: KeyFileAccess): Promise<string> {
  return privateText(file, await access.readKeyFile(file, MAX_KEY_FILE_BYTES), 'key file');
}

/**
 * The development key in `file`, or null when there is none.
 *
 * Why the wait: the creator makes the file with one exclusive open and then fills it with one
 * write of the whole line (44 bytes). Between the two, a racing reader finds the file, shorter
 * than a full key line (empty, in practice: one small write to a regular file is not seen half
 * done, but nothing here relies on that). Such a reader waits for the line, up to five seconds
 * (a creator descheduled on a loaded machine), instead of using a cut key; a file still short
 * after that (a creator killed between its open and its write, or a shorter key put there by
 * hand) is used as it is — a cut key then fails the length check — and an empty one is an error
 * naming the fix.
 */
async function readDevKey(file: string, access: KeyFileAccess): Promise<string | null> {
  const deadline = Date.now() + DEV_KEY_WAIT_MS;
  for (;;) {
    let found;
    try {
      found = await access.readKeyFile(file, MAX_KEY_FILE_BYTES);
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return null;
      throw keyFileError(error);
    }
    const text = privateText(file, found, 'development key file');
    const complete = text.endsWith('\n') || Buffer.byteLength(text) >= DEV_KEY_LINE_BYTES;
    if (complete || Date.now() >= deadline) {
      const [key] = splitKeys(text);
      if (key === undefined) {
        throw new SealedSessionError(
          'ERR_SESSION_KEYS_MISSING',
          `the development key file ${file} is empty (its creation was interrupted?): remove it, and a new one is made`,
        );
      }
      return key;
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/**
 * A key file's text, if only this process's user can have written or read it: a regular file
 * (not followed through a symlink), owned by the effective uid, no group or other permission.
 * Anything else may hold a key someone else chose, or one they have read.
 */
function privateText(file: string, found: KeyFileFound, what: 'development key file' | 'key file'): string {
  const fix = what === 'development key file' ? 'remove it (a new one is made at the next start)' : 'pass the path of a regular file';
  if (found.type === 'symlink') throw unsafe(`the ${what} ${file} is a symbolic link, which is never followed: ${fix}`);
  if (found.type === 'other') throw unsafe(`the ${what} ${file} is not a regular file: ${fix}`);
  const euid = process.geteuid?.();
  // Without POSIX owners and modes (Windows) there is nothing to check.
  if (euid !== undefined) {
    if (found.uid !== euid) {
      throw unsafe(
        `the ${what} ${file} belongs to another user (uid ${found.uid}), who may have chosen or read the key: ` +
          (what === 'development key file' ? 'remove it (a new one is made at the next start)' : `use a key file of your own (chown ${euid} and chmod 600 it)`),
      );
    }
    if ((found.mode & 0o077) !== 0) {
      throw unsafe(
        `the ${what} ${file} can be read or changed by other users (mode ${found.mode.toString(8).padStart(4, '0')}): ` +
          `chmod 600 ${file}${what === 'development key file' ? ', or remove it if others may have read it' : ''}`,
      );
    }
  }
  // Another name for a file of ours (a hard link made where the key is looked for) would make
  // whatever that file holds the key; a key file has one name.
  if (found.links !== 1) {
    throw unsafe(
      `the ${what} ${file} has ${found.links} names (hard links), so it may be another file: ${what === 'development key file' ? 'remove it (a new one is made at the next start)' : 'copy the keys into a file of their own'}`,
    );
  }
  if (found.size > MAX_KEY_FILE_BYTES) throw unsafe(`the ${what} ${file} is over ${MAX_KEY_FILE_BYTES / 1024} KiB: not a key file`);
  return found.text;
}

/**
 * The folder the development key sits in must be this user's or root's (as /tmp is), and the
 * data dir, if it exists, this user's: a folder of another user lets them plant, swap or redirect
 * what is in it (a key of their choosing, a data dir they can read).
 */
async function assertOwnFolders(dir: string, access: KeyFileAccess): Promise<void> {
  const euid = process.geteuid?.();
  if (euid === undefined) return;
  let parent, data;
  try {
    [parent, data] = await Promise.all([access.folder(path.dirname(dir)), access.folder(dir)]);
  } catch (error) {
    throw keyFileError(error);
  }
  if (parent !== null && parent.uid !== euid && parent.uid !== 0) {
    throw unsafe(
      `the folder ${path.dirname(dir)}, where the development key is kept, belongs to another user (uid ${parent.uid}): ` +
        'use a data dir in a folder of your own, or set SESSION_KEYS',
    );
  }
  if (data?.linkUid !== undefined && data.linkUid !== euid && data.linkUid !== 0) {
    // Followed, it would have the data dir made (and chmodded 0700) wherever they point it.
    throw unsafe(`the data dir ${dir} is a symbolic link of another user (uid ${data.linkUid}): remove it`);
  }
  if (data !== null && data.uid !== euid) {
    throw unsafe(`the data dir ${dir} belongs to another user (uid ${data.uid}), who could read and plant files in it: remove it, or chown it to uid ${euid}`);
  }
}

function unsafe(message: string): SealedSessionError {
  return new SealedSessionError('ERR_SESSION_KEY_UNSAFE', message);
}

function keyFileError(error: unknown): SealedSessionError {
  return new SealedSessionError('ERR_SESSION_STORE_IO', `could not read or create the development key file (${errorCode(error) ?? 'error'})`, {
    cause: error,
  });
}
