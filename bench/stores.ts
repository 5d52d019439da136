// The stores bench/http.ts compares, and the secrets its servers (bench/http-server.ts) use:
// the parent signs cookies of unknown ids with them.

export const SEALED_KEY = 'bench-key-0123456789abcdef-0123456789abcdef';
export const EXPRESS_SESSION_SECRET = 'bench-secret';
export const FILE_STORE_SECRET = 'bench-file-store-secret';

export const STORE_KINDS = ['sealed', 'sealed-store', 'memory', 'file-store', 'file-store-secret', 'redis'] as const;
export type StoreKind = (typeof STORE_KINDS)[number];

export const STORE_LABELS: Record<StoreKind, string> = {
  sealed: 'sealed-sessions (native)',
  'sealed-store': 'express-session + SealedStore',
  memory: 'express-session + MemoryStore',
  'file-store': 'express-session + session-file-store',
  'file-store-secret': 'express-session + session-file-store (secret)',
  redis: 'express-session + connect-redis',
};

/** Stores whose data two server processes can share (MemoryStore lives in one process). */
export const SHARABLE: Record<StoreKind, boolean> = {
  sealed: true,
  'sealed-store': true,
  memory: false,
  'file-store': true,
  'file-store-secret': true,
  redis: true,
};
