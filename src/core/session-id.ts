import { createHash, randomBytes } from 'node:crypto';

const ID_PATTERN = /^[A-Za-z0-9_-]{43}$/;

/** A new session id: 256 random bits from node:crypto, base64url (43 characters). */
export function generateId(): string {
  return randomBytes(32).toString('base64url');
}

/** True when `value` has the shape of a session id (it may still name no session). */
export function isValidId(value: unknown): value is string {
  return typeof value === 'string' && ID_PATTERN.test(value);
}

/**
 * The on-disk name of a session: SHA-256 of the id, in hex. One-way: the id has 256 random bits,
 * so the name reveals nothing from which the id could be found, yet needs no key (names stay put
 * when keys rotate).
 */
export function fileNameOf(id: string): string {
  return createHash('sha256').update('sealed-sessions/v1/name\0').update(id).digest('hex');
}

/**
 * Ids the store itself accepts: its own, and express-session's, whose `genid` may make any
 * string (up to 4096 characters here). Safe whatever they hold: only their hash names a file.
 */
export function isStorableId(value: unknown): value is string {
  return typeof value === 'string' && value.length <= MAX_STORABLE_ID;
}

export const MAX_STORABLE_ID = 4096;
