import type { EnvelopeHeader } from '../crypto/seal.js';

/*
 * A tombstone is what a framework store's `destroy()` leaves under a session's name: a sealed
 * envelope with no data whose header says idle timeout 0 — never a real session's, since the
 * option must be at least one second. It ends at its absolute deadline (the destroyed session's
 * own end), and until then it is "no session" to every read, and a commit onto it stores nothing:
 * a request still in flight cannot bring a logged-out session back. Marked in the clear-text
 * header, so header-only work (gc, stats, backup) knows it without a key.
 */

/** True when the header is a tombstone's (see above). */
export function isTombstone(header: EnvelopeHeader): boolean {
  return header.idleSeconds === 0;
}

/** When a session was last used: its last write, or a later keep-alive mark. */
export function lastUse(header: EnvelopeHeader, markMs: number): number {
  return Math.max(header.written, markMs);
}

/** When a session expires: idle since its last use, or at its absolute deadline, whichever is first. A tombstone ends at its absolute deadline. */
export function expiresAt(header: EnvelopeHeader, markMs: number): number {
  if (isTombstone(header)) return header.absoluteDeadline;
  return Math.min(header.absoluteDeadline, lastUse(header, markMs) + header.idleSeconds * 1000);
}

/** Whether a session has expired: its own deadlines, from the clear-text header; `markMs` is the last keep-alive mark. */
export function isExpired(header: EnvelopeHeader, markMs: number, now: number): boolean {
  return now >= expiresAt(header, markMs);
}

/** Whether a stored envelope is a session someone can use now: not expired, and not a tombstone. */
export function isLive(header: EnvelopeHeader, markMs: number, now: number): boolean {
  return !isTombstone(header) && !isExpired(header, markMs, now);
}
