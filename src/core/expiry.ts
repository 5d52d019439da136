import type { EnvelopeHeader } from '../crypto/seal.js';

/** When a session was last used: its last write, or a later keep-alive mark. */
export function lastUse(header: EnvelopeHeader, markMs: number): number {
  return Math.max(header.written, markMs);
}

/** When a session expires: idle since its last use, or at its absolute deadline, whichever is first. */
export function expiresAt(header: EnvelopeHeader, markMs: number): number {
  return Math.min(header.absoluteDeadline, lastUse(header, markMs) + header.idleSeconds * 1000);
}

/** Whether a session has expired: its own deadlines, from the clear-text header; `markMs` is the last keep-alive mark. */
export function isExpired(header: EnvelopeHeader, markMs: number, now: number): boolean {
  return now >= expiresAt(header, markMs);
}
