import { createRequire } from 'node:module';
import path from 'node:path';
import { isSealedSessionError, sessionTypeError } from '../errors.js';
// The framework-neutral store: importing needs no express-session installed (nor does the CLI).
import { SealedStore } from '../http/sealed-store.js';
import { forEachLimited } from '../core/for-each-limited.js';
import { defaultIo } from '../backends/file/io.js';
import type { StoreOptions } from '../open-store.js';

/** Options of `importSessionFileStore()`. */
export interface ImportSessionFileStoreOptions {
  /** The folder written by session-file-store (its `path` option). Only read, never modified. */
  readonly from: string;
  /**
   * session-file-store's `secret` option, when its files are encrypted (kruptein). The `kruptein`
   * package must then be installed (it comes with session-file-store).
   */
  readonly secret?: string | undefined;
  /**
   * session-file-store's `ttl` option, in seconds: how long after its last access a session whose
   * cookie has no `maxAge` counts as expired there (and so here).
   * @default 3600
   */
  readonly ttl?: number | undefined;
  /**
   * session-file-store's `fileExtension` option.
   * @default '.json'
   */
  readonly fileExtension?: string | undefined;
  /**
   * session-file-store's `crypto` option (handed to kruptein as is).
   * @default { algorithm: 'aes-256-gcm', hashing: 'sha512', use_scrypt: true }
   */
  readonly crypto?: Readonly<Record<string, unknown>> | undefined;
  /** Where and how to seal the sessions: the options of `new SealedStore()` / `openStore()`. */
  readonly store?: StoreOptions | undefined;
}

export interface ImportSessionFileStoreReport {
  /** Live sessions sealed under their old id. */
  readonly imported: number;
  /** Sessions session-file-store itself would treat as expired: skipped. */
  readonly expired: number;
  /**
   * Session files that could not be imported: unreadable, not JSON, not an express-session
   * session, not decryptable with `secret` (or encrypted and no `secret` given), or refused by
   * the sealed store (too large, an id it cannot store). Left in place; the rest is imported.
   */
  readonly unreadable: number;
}

/** session-file-store's defaults (lib/session-file-helpers.js, DEFAULTS). */
const DEFAULT_TTL_SECONDS = 3600;
const DEFAULT_EXTENSION = '.json';
const DEFAULT_CRYPTO: Readonly<Record<string, unknown>> = { algorithm: 'aes-256-gcm', hashing: 'sha512', use_scrypt: true };
/** session-file-store's own bookkeeping inside each session; not the application's data. */
const LAST_ACCESS = '__lastAccess';
/** Sessions in flight at once (reads, decryptions and sealed writes). */
const CONCURRENCY = 8;

/**
 * Imports the sessions of a session-file-store folder into a sealed-sessions data dir, each under
 * its SAME id, through `SealedStore.set()`: users keep their express-session cookie and stay
 * logged in. Sessions session-file-store would treat as expired are skipped; session files that
 * cannot be read are counted and skipped. The source folder is only read.
 *
 * Expiry follows session-file-store: a session is expired when `cookie.expires` is past, or when
 * its `__lastAccess` is older than `cookie.originalMaxAge` (or `ttl` when the cookie has none).
 * The `__lastAccess` field session-file-store adds to every session is not imported.
 *
 * @throws when the source folder cannot be listed, or the sealed store cannot be opened or
 *   written (`SealedSessionError`: keys missing or weak, disk errors). Errors never name a session.
 */
export async function importSessionFileStore(options: ImportSessionFileStoreOptions): Promise<ImportSessionFileStoreReport> {
  if (typeof options.from !== 'string' || options.from === '') throw sessionTypeError('ERR_SESSION_OPTION', 'option `from` must be a non-empty string');
  const ttl = options.ttl ?? DEFAULT_TTL_SECONDS;
  if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl < 0) throw sessionTypeError('ERR_SESSION_OPTION', 'option `ttl` must be a number of seconds');
  const extension = options.fileExtension ?? DEFAULT_EXTENSION;
  if (typeof extension !== 'string') throw sessionTypeError('ERR_SESSION_OPTION', 'option `fileExtension` must be a string');
  const secret = options.secret;
  if (secret !== undefined && (typeof secret !== 'string' || secret === '')) {
    throw sessionTypeError('ERR_SESSION_OPTION', 'option `secret` must be a non-empty string');
  }
  const storeOptions = options.store ?? {};
  const from = path.resolve(options.from);
  const to = path.resolve(storeOptions.dir ?? 'sessions-data');
  if (isInside(to, from)) {
    throw sessionTypeError('ERR_SESSION_OPTION', 'the sealed data dir must not be the source folder or inside it (the source is never modified)');
  }
  const io = storeOptions.io ?? defaultIo;
  const now = storeOptions.now ?? Date.now;
  const decrypt = secret === undefined ? undefined : decrypter(secret, options.crypto ?? DEFAULT_CRYPTO);

  const sealed = new SealedStore(storeOptions);
  await sealed.ready;

  const counts = { imported: 0, expired: 0, unreadable: 0 };
  const importOne = async (file: string, sid: string): Promise<void> => {
    let session: Record<string, unknown>;
    try {
      session = parseSession(await io.readText(path.join(from, file)), decrypt);
    } catch {
      counts.unreadable++;
      return;
    }
    if (isExpired(session, ttl, now())) {
      counts.expired++;
      return;
    }
    const data = { ...session };
    delete data[LAST_ACCESS];
    try {
      await sealed.set(sid, data);
    } catch (error) {
      // Refused for this session only (too large, an id the store cannot hold): counted. Any
      // other failure (disk, locks) would fail the next ones too: stop.
      if (
        isSealedSessionError(error, 'ERR_SESSION_TOO_LARGE') ||
        isSealedSessionError(error, 'ERR_SESSION_OPTION') ||
        isSealedSessionError(error, 'ERR_SESSION_VALUE')
      ) {
        counts.unreadable++;
        return;
      }
      throw error;
    }
    counts.imported++;
  };

  await forEachLimited(await io.opendir(from), CONCURRENCY, async (entry) => {
    // What session-file-store lists: names ending in the extension (its write-file-atomic temp
    // files, `<sid>.json.<n>`, do not). Folders are not sessions.
    if (entry.isDirectory() || !entry.name.endsWith(extension)) return;
    const sid = entry.name.slice(0, entry.name.length - extension.length);
    if (sid === '') {
      counts.unreadable++;
      return;
    }
    await importOne(entry.name, sid);
  });
  return { ...counts };
}

/** True when `inner` is `outer` or lies inside it. */
function isInside(inner: string, outer: string): boolean {
  const relative = path.relative(outer, inner);
  return relative === '' || (!relative.startsWith('..') && !path.isAbsolute(relative));
}

/** A session file's text → the session, as session-file-store's `get()` decodes it; throws when it is not one. */
function parseSession(text: string, decrypt: ((text: string) => string) | undefined): Record<string, unknown> {
  let value: unknown = JSON.parse(decrypt === undefined ? text : decrypt(text));
  // Encrypted files hold the encoder's JSON string, JSON-encoded once more by kruptein.
  if (decrypt !== undefined && typeof value === 'string') value = JSON.parse(value);
  // express-session cannot load a session without a cookie object (Store#createSession); an
  // encrypted file read without its secret fails here too (kruptein's envelope has no cookie).
  if (!isRecord(value) || !isRecord(value['cookie'])) throw new Error('not an express-session session');
  return value;
}

/** session-file-store's expiry (helpers.isExpired), and a cookie whose `expires` is past. */
function isExpired(session: Record<string, unknown>, ttlSeconds: number, now: number): boolean {
  const cookie = session['cookie'] as Record<string, unknown>;
  const expires = cookie['expires'];
  if (typeof expires === 'string' && Date.parse(expires) <= now) return true;
  const maxAge = cookie['originalMaxAge'];
  const ttl = typeof maxAge === 'number' && Number.isFinite(maxAge) && maxAge !== 0 ? maxAge : ttlSeconds * 1000;
  if (ttl === 0) return true;
  const lastAccess = session[LAST_ACCESS];
  // Without `__lastAccess` session-file-store compares NaN, which is never expired.
  return typeof lastAccess === 'number' && lastAccess + ttl < now;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

interface Kruptein {
  get(secret: string, ciphertext: string, callback: (error: unknown, plaintext?: unknown) => void): unknown;
}

/** Decrypts as session-file-store does (helpers.decrypt): kruptein, with its `crypto` options. */
function decrypter(secret: string, crypto: Readonly<Record<string, unknown>>): (text: string) => string {
  const kruptein = loadKruptein()({ ...crypto });
  return (text) => {
    let outcome: { error: unknown } | { plaintext: unknown } | undefined;
    kruptein.get(secret, text, (error, plaintext) => {
      outcome ??= error ? { error } : { plaintext };
    });
    if (outcome === undefined || 'error' in outcome || typeof outcome.plaintext !== 'string') throw new Error('could not decrypt');
    return outcome.plaintext;
  };
}

/**
 * The kruptein that session-file-store itself uses (the version that wrote the files), found
 * from the application's folder first, then from this package's; else any kruptein installed.
 */
function loadKruptein(): (options: Record<string, unknown>) => Kruptein {
  const bases = [path.join(process.cwd(), 'package.json'), import.meta.url];
  const attempts = bases.flatMap((base) => {
    const require = createRequire(base);
    return [() => createRequire(require.resolve('session-file-store'))('kruptein') as unknown, () => require('kruptein') as unknown];
  });
  for (const attempt of attempts) {
    try {
      const loaded = attempt();
      if (typeof loaded === 'function') return loaded as (options: Record<string, unknown>) => Kruptein;
    } catch {
      // not installed there; try the next place
    }
  }
  throw sessionTypeError(
    'ERR_SESSION_OPTION',
    'option `secret` needs the `kruptein` package, which session-file-store uses to encrypt (npm install kruptein@2)',
  );
}
