import path from 'node:path';
import { errorCode, sessionTypeError } from '../errors.js';
import { forEachLimited } from '../core/for-each-limited.js';
import { FileBackend } from '../backends/file/file-backend.js';
import { defaultIo, operationsIo, type OperationsIo } from '../backends/file/io.js';
import { expiresAt } from '../core/expiry.js';
import type { Store } from '../core/store.js';
import { readHeader } from '../crypto/seal.js';

/** The manifest a backup writes last, as `<dest>/sealed-sessions-backup.json`: its presence says the copy is complete. */
export interface BackupManifest {
  readonly format: 'sealed-sessions-backup/1';
  /** When the copy started (ISO 8601). */
  readonly date: string;
  /** What was copied: the data dir (absolute), or where in Redis (`BackupOptions.source`). */
  readonly source: string;
  /** Session files copied. */
  readonly sessions: number;
  /** Their bytes. */
  readonly bytes: number;
  /** Of those, expired at copy time (copied anyway: gc's to remove). */
  readonly expired: number;
  /** Files with a session's name but not our format (copied as they are). */
  readonly unreadable: number;
  /** Session files per key id (hex): the keys a store opened on the copy needs. Never the keys. */
  readonly keyIds: Readonly<Record<string, number>>;
}

export const MANIFEST_FILE = 'sealed-sessions-backup.json';

export interface BackupOptions {
  readonly date?: Date;
  readonly operationsIo?: OperationsIo;
  /** How the manifest names what was copied. @default the store's data dir, or its backend's location */
  readonly source?: string;
}

/**
 * Copies every session of the store into `dest`, which becomes the root of a data dir of the
 * same layout (`<2 hex>/<name>.sess`, folders 0700, files 0600, modification times kept, as idle
 * expiry reads them), whatever the store's backend: a Redis store is backed up into files too.
 * Safe while servers write: commits replace files by atomic renames (and Redis values whole), so
 * an envelope read whole is one version, old or new. Lock folders, temp files and the quarantine
 * are not copied. Needs no key, and never writes one. `dest` must not exist, or be an empty
 * folder, outside the data dir. The manifest is written last, atomically (write-file-atomic).
 *
 * @throws TypeError `ERR_SESSION_OPTION` for a bad `dest`; `ERR_SESSION_STORE_IO` and fs errors when the disk fails.
 */
export async function backupStore(store: Store, dest: string, options: BackupOptions = {}): Promise<BackupManifest> {
  const date = options.date ?? new Date();
  const ops = options.operationsIo ?? operationsIo;
  const root = path.resolve(dest);
  const source = options.source ?? store.dir;
  if (store.backend instanceof FileBackend) {
    // Real paths: a symlink on the way to dest (or to the data dir) must not hide that one lies in the other.
    const [realRoot, realSource] = await Promise.all([realPathOf(ops, root), realPathOf(ops, store.dir)]);
    if (isInside(realRoot, realSource) || isInside(realSource, realRoot)) {
      throw sessionTypeError('ERR_SESSION_OPTION', 'the backup destination must lie outside the data dir (and not contain it)');
    }
  }
  await prepareDestination(root);
  const copy = new FileBackend({ dir: root, io: defaultIo, operationsIo: ops, lock: NO_LOCKS, maxReadBytes: 0 });

  const now = store.options.now();
  const totals = { sessions: 0, bytes: 0, expired: 0, unreadable: 0 };
  const keyIds: Record<string, number> = {};

  await forEachLimited(store.backend.scan({ headers: false }), 8, async (item) => {
    // Something in a session's place that is no file (a FIFO, a symlink): not copied, counted.
    if (item.kind === 'unreadable') totals.unreadable++;
    if (item.kind !== 'session') return;
    const envelope = await store.backend.copyOut(item.name);
    // Destroyed (or collected) since the listing: not part of the copy.
    if (envelope === null) return;
    const header = readHeader(envelope.bytes);
    const expiresAtMs = header === null ? now : expiresAt(header, envelope.lastUseMs);
    await copy.copyIn(item.name, { ...envelope, expiresAtMs });
    totals.sessions++;
    totals.bytes += envelope.bytes.length;
    if (header === null) {
      totals.unreadable++;
      return;
    }
    keyIds[header.keyIdHex] = (keyIds[header.keyIdHex] ?? 0) + 1;
    if (now >= expiresAtMs) totals.expired++;
  });

  const manifest: BackupManifest = { format: 'sealed-sessions-backup/1', date: date.toISOString(), source, ...totals, keyIds };
  await ops.writeFile(path.join(root, MANIFEST_FILE), Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`));
  return manifest;
}

/** A copy takes no locks: nobody else writes into a backup being made. */
const NO_LOCKS = { staleMs: 10_000, waitMs: 0 };

/** Creates `root` (0700), or accepts it when it is an empty folder. */
async function prepareDestination(root: string): Promise<void> {
  const io = defaultIo;
  let stats;
  try {
    stats = await io.lstat(root);
  } catch (error) {
    if (errorCode(error) !== 'ENOENT') throw error;
  }
  if (stats !== undefined) {
    if (!stats.isDirectory()) throw sessionTypeError('ERR_SESSION_OPTION', 'the backup destination exists and is not a folder');
    for await (const _ of await io.opendir(root)) {
      throw sessionTypeError('ERR_SESSION_OPTION', 'the backup destination must be a new or empty folder');
    }
  }
  await io.mkdir(root, 0o700);
}

/** `target` with the symlinks of its existing part resolved; the part that does not exist yet is appended as it is. */
async function realPathOf(ops: OperationsIo, target: string): Promise<string> {
  const missing: string[] = [];
  for (let existing = target; ; existing = path.dirname(existing)) {
    try {
      return path.join(await ops.realpath(existing), ...missing);
    } catch (error) {
      if (errorCode(error) !== 'ENOENT' || path.dirname(existing) === existing) throw error;
      missing.unshift(path.basename(existing));
    }
  }
}

/** True when `inner` is `outer` or lies inside it. */
function isInside(inner: string, outer: string): boolean {
  const relative = path.relative(outer, inner);
  return relative === '' || (!relative.startsWith('..') && !path.isAbsolute(relative));
}
