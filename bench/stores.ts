// The stores bench/http.ts compares, and the secrets its servers (bench/http-server.ts) use:
// the parent signs cookies of unknown ids with them.

export const SEALED_KEY = 'bench-key-0123456789abcdef-0123456789abcdef';
export const EXPRESS_SESSION_SECRET = 'bench-secret';
export const FILE_STORE_SECRET = 'bench-file-store-secret';

export const KOA_KEYS = ['bench-koa-signing-key'];
export const FASTIFY_SESSION_SECRET = 'bench-fastify-session-secret-of-32-characters';

export const STORE_KINDS = [
  'sealed',
  'koa',
  'fastify',
  'sealed-store',
  'koa-session-store',
  'fastify-session-store',
  'memory',
  'file-store',
  'file-store-secret',
  'sealed-redis',
  'redis',
] as const;
export type StoreKind = (typeof STORE_KINDS)[number];

export const STORE_LABELS: Record<StoreKind, string> = {
  sealed: 'sealed-sessions (native)',
  koa: 'sealed-sessions (Koa, native)',
  fastify: 'sealed-sessions (Fastify, native)',
  'sealed-store': 'express-session + SealedStore',
  'koa-session-store': 'koa-session + SealedStore',
  'fastify-session-store': '@fastify/session + SealedStore',
  memory: 'express-session + MemoryStore',
  'file-store': 'express-session + session-file-store',
  'file-store-secret': 'express-session + session-file-store (secret)',
  'sealed-redis': 'sealed-sessions + Redis (native)',
  redis: 'express-session + connect-redis',
};

/** Stores that keep their sessions in the bench's redis-server (skipped without one). */
export const ON_REDIS: ReadonlySet<StoreKind> = new Set(['sealed-redis', 'redis']);

/** Stores whose data two server processes can share (MemoryStore lives in one process). */
export const SHARABLE: Record<StoreKind, boolean> = {
  sealed: true,
  koa: true,
  fastify: true,
  'sealed-store': true,
  'koa-session-store': true,
  'fastify-session-store': true,
  memory: false,
  'file-store': true,
  'file-store-secret': true,
  'sealed-redis': true,
  redis: true,
};
