import path from 'node:path';
import { errorCode, SealedSessionError } from '../errors.js';
import { generateKey, splitKeys } from './keys.js';

/** What key sources need of the disk (the file backend's io module provides it). */
export interface KeyFileIo {
  mkdir(path: string, mode: number): Promise<void>;
  readText(path: string): Promise<string>;
  createExclusive(path: string, text: string): Promise<void>;
}

let devKeyAnnounced = false;

/** Where the development key of a data dir lives: beside it, never inside it (a copy of the dir must not carry its key). */
export function devKeyPath(dir: string): string {
  return path.join(path.dirname(dir), `.${path.basename(dir)}.dev-key`);
}

/**
 * The secrets to use: the `keys` option, else `SESSION_KEYS`, else — outside production — a
 * development key created once beside the data dir (0600) and announced through
 * `process.emitWarning` (code SEALED_SESSIONS_DEV_KEY). In production, no key is an error.
 */
export async function resolveSecrets(keys: string | readonly string[] | undefined, dir: string, io: KeyFileIo): Promise<string[]> {
  const configured = splitKeys(keys);
  if (configured.length > 0) return configured;
  const fromEnv = splitKeys(process.env['SESSION_KEYS']);
  if (fromEnv.length > 0) return fromEnv;
  if (process.env['NODE_ENV'] === 'production') {
    throw new SealedSessionError(
      'ERR_SESSION_KEYS_MISSING',
      'no session key in production: set SESSION_KEYS (make one with `sealed-sessions keygen`) or pass `keys`',
    );
  }
  const file = devKeyPath(dir);
  // The key lives beside the data dir: create the dir (and its missing parents) first, never
  // touching the mode of a parent that already exists.
  try {
    await io.mkdir(dir, 0o700);
  } catch (error) {
    throw keyFileError(error);
  }
  let created = false;
  let key: string;
  try {
    key = (await io.readText(file)).trim();
  } catch (error) {
    if (errorCode(error) !== 'ENOENT') throw keyFileError(error);
    try {
      await io.createExclusive(file, `${generateKey()}\n`);
      created = true;
    } catch (createError) {
      // EEXIST: another process created it first; use theirs.
      if (errorCode(createError) !== 'EEXIST') throw keyFileError(createError);
    }
    key = (await io.readText(file).catch((readError: unknown) => Promise.reject(keyFileError(readError)))).trim();
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

function keyFileError(error: unknown): SealedSessionError {
  return new SealedSessionError('ERR_SESSION_STORE_IO', `could not read or create the development key file (${errorCode(error) ?? 'error'})`, {
    cause: error,
  });
}

/**
 * The secrets already configured, never creating any: the `keys` argument, else `SESSION_KEYS`,
 * else — outside production — the development key beside `dir` if it exists. Empty when there is
 * none. For the operations CLI, where a freshly made key would open nothing (and `verify --repair`
 * would then quarantine every session).
 */
export async function configuredSecrets(keys: string | readonly string[] | undefined, dir: string, io: KeyFileIo): Promise<string[]> {
  const configured = splitKeys(keys);
  if (configured.length > 0) return configured;
  const fromEnv = splitKeys(process.env['SESSION_KEYS']);
  if (fromEnv.length > 0) return fromEnv;
  if (process.env['NODE_ENV'] === 'production') return [];
  try {
    return splitKeys((await io.readText(devKeyPath(dir))).trim());
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return [];
    throw keyFileError(error);
  }
}
