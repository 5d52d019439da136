export { openStore, Store, isExpired } from './store.js';
export type { CommitOutcome, GcOptions, GcReport, StoreEvents } from './store.js';
export type { StoreOptions } from './options.js';
export { Session } from './session.js';
export type { JsonValue } from './json-value.js';
export { SealedSessionError, isSealedSessionError } from './errors.js';
export type { SealedSessionErrorCode } from './errors.js';
export { generateKey } from './keys.js';
export type { Io } from './io.js';
