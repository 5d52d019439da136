import type { Keyring } from '../crypto/keys.js';
import { unseal, type EnvelopeHeader } from '../crypto/seal.js';
import type { SessionData } from './changes.js';
import { deepFreeze, type JsonValue } from './json-value.js';
import { fileNameOf } from './session-id.js';

/** A session as stored: its data and the envelope's clear-text header. */
export interface StoredSession {
  readonly id: string;
  readonly data: SessionData;
  /** The sealed plaintext: a commit that would write the same text writes nothing. */
  readonly plaintext: string;
  readonly header: EnvelopeHeader;
  /** The last keep-alive mark, ms (a file's mtime): the session's last use is the later of it and `header.written`. */
  readonly mtimeMs: number;
  /** The stored version it was read from, when known (a keep-alive mark then keeps a read cache valid). */
  readonly version?: string | undefined;
}

/**
 * Why a stored session does not open: not our format, sealed under a key not configured, bytes or
 * name that do not authenticate, an authentic envelope holding something else, or something in
 * its place that is no envelope at all (a FIFO, a symlink, a folder).
 */
export type TamperReason = 'format' | 'unknown-key' | 'authentication' | 'content' | 'unreadable';

export type ReadOutcome =
  { readonly state: 'missing' } | { readonly state: 'tampered'; readonly reason: TamperReason } | { readonly state: 'found'; readonly session: StoredSession };

/**
 * Authenticates and decrypts the envelope stored under `name`. Never throws: bytes that do not
 * open, for whatever reason, are "tampered" with the reason.
 */
export function openEnvelope(keyring: Keyring, name: string, bytes: Buffer, mtimeMs: number | undefined, maxBytes: number): ReadOutcome {
  if (bytes.length > maxBytes) return { state: 'tampered', reason: 'format' };
  const opened = unseal(keyring, bytes, name);
  if (!opened.ok) return { state: 'tampered', reason: opened.reason };
  const plaintext = opened.plaintext.toString('utf8');
  const parsed = parsePlaintext(plaintext);
  // Sealed for this name (the name is authenticated), yet holding an id of another name: only
  // a key holder could make that, and it is no session of that id.
  if (parsed === null || fileNameOf(parsed.id) !== name) return { state: 'tampered', reason: 'content' };
  return { state: 'found', session: { id: parsed.id, data: parsed.data, plaintext, header: opened.header, mtimeMs: mtimeMs ?? opened.header.written } };
}

/** What an envelope seals: the id (so a listing can name sessions) and the data's JSON. */
export function plaintextOf(id: string, dataJson: string): string {
  return `{"id":${JSON.stringify(id)},"data":${dataJson}}`;
}

function parsePlaintext(plaintext: string): { id: string; data: SessionData } | null {
  // Authenticated already, so this is our own JSON; checked anyway, never trusted blindly.
  let parsed: unknown;
  try {
    parsed = JSON.parse(plaintext);
  } catch {
    return null;
  }
  if (typeof parsed !== 'object' || parsed === null || !('id' in parsed) || !('data' in parsed)) return null;
  const { id, data } = parsed;
  if (typeof id !== 'string' || typeof data !== 'object' || data === null || Array.isArray(data)) return null;
  const entries = Object.entries(data as Record<string, JsonValue>);
  for (const [, value] of entries) deepFreeze(value);
  return { id, data: new Map(entries) };
}
