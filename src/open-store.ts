import { FileBackend } from './backends/file/file-backend.js';
import { keyFileAccess, operationsIo } from './backends/file/io.js';
import { resolveFileOptions, type FileOptions } from './backends/file/options.js';
import type { Backend } from './core/backend.js';
import { maxEnvelopeBytes, resolveOptions, type CoreOptions } from './core/options.js';
import { Store } from './core/store.js';
import { resolveSecrets } from './crypto/key-source.js';
import { createKeyring, generateKey } from './crypto/keys.js';

/** Options of `openStore()`: the store's own, and those of the file backend (the default). */
export interface StoreOptions extends CoreOptions, FileOptions {
  /**
   * Where sessions live instead of files in `dir` (Redis, say); the file options are then unused.
   * @default the file backend on `dir`
   */
  backend?: Backend;
}

function fileBackend(options: StoreOptions): FileBackend {
  const file = resolveFileOptions(options);
  return new FileBackend({
    dir: file.dir,
    io: file.io,
    operationsIo,
    lock: file.lock,
    maxReadBytes: maxEnvelopeBytes(resolveOptions(options).maxBytes),
  });
}

/** Opens (creating if needed) a session store. Fast whatever the number of stored sessions: it reads no session. */
export async function openStore(options: StoreOptions = {}): Promise<Store> {
  const resolved = resolveOptions(options);
  const file = resolveFileOptions(options);
  const keyring = createKeyring(await resolveSecrets(resolved.keys, file.dir, keyFileAccess));
  const backend: Backend = options.backend ?? fileBackend(options);
  await backend.open();
  const store = new Store(resolved, backend, keyring);
  // Once the caller has had the store (and the chance to listen): what opening found at risk.
  const warnings = backend.warnings ?? [];
  if (warnings.length > 0) setImmediate(() => warnings.forEach((message) => store.emit('warning', { message, error: undefined })));
  return store;
}

/**
 * @internal A store for the operations CLI's header-only work (`stats`, `gc`, `backup`) when no
 * key is at hand: it needs none and makes none (no development key file), and creates nothing
 * (the data dir must exist). Its keyring is one random throwaway key, so it opens no session —
 * every file reads as sealed with an unknown key — and it must never commit one.
 */
export async function openKeylessStore(options: Omit<StoreOptions, 'keys'> = {}): Promise<Store> {
  const resolved = resolveOptions({ ...options, keys: undefined });
  return new Store(resolved, options.backend ?? fileBackend(options), createKeyring([generateKey()]));
}
