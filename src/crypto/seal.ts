import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { Keyring } from './keys.js';

/*
 * The envelope, version 1 (all integers big-endian):
 *
 *   offset  size  field
 *        0     4  magic "SSN" + format version (0x01)
 *        4     8  key id (see keys.ts)
 *       12     8  created, ms since the epoch (float64)
 *       20     8  written, ms since the epoch (float64): when this version was sealed
 *       28     8  absolute deadline, ms since the epoch (float64)
 *       36     4  idle timeout, seconds (uint32)
 *       40    12  nonce, fresh random per write
 *       52    16  GCM tag
 *       68     …  ciphertext of the session's JSON
 *
 * Bytes 0–51 are the header: in clear so gc can decide expiry without decrypting, and
 * authenticated as additional data together with the file's own name, so a changed deadline,
 * or a file copied over another session's file, fails to open.
 */
export const FORMAT_VERSION = 1;
export const HEADER_BYTES = 52;
export const ENVELOPE_OVERHEAD = HEADER_BYTES + 16;
const MAGIC = Buffer.from([0x53, 0x53, 0x4e, FORMAT_VERSION]);

export interface EnvelopeTimes {
  readonly created: number;
  readonly written: number;
  readonly absoluteDeadline: number;
  readonly idleSeconds: number;
}

export interface EnvelopeHeader extends EnvelopeTimes {
  readonly version: number;
  readonly keyIdHex: string;
}

export type UnsealResult =
  | { readonly ok: true; readonly header: EnvelopeHeader; readonly plaintext: Buffer }
  | { readonly ok: false; readonly reason: 'format' | 'unknown-key' | 'authentication' };

function additionalData(header: Buffer, name: string): Buffer {
  return Buffer.concat([header, Buffer.from(`\0${name}`, 'utf8')]);
}

/** Seals `plaintext` under the keyring's first key, bound to the file `name`. */
export function seal(keyring: Keyring, times: EnvelopeTimes, plaintext: Buffer, name: string): Buffer {
  const out = Buffer.allocUnsafe(ENVELOPE_OVERHEAD + plaintext.length);
  MAGIC.copy(out, 0);
  keyring.primary.id.copy(out, 4);
  out.writeDoubleBE(times.created, 12);
  out.writeDoubleBE(times.written, 20);
  out.writeDoubleBE(times.absoluteDeadline, 28);
  out.writeUInt32BE(times.idleSeconds, 36);
  randomBytes(12).copy(out, 40);
  const cipher = createCipheriv('aes-256-gcm', keyring.primary.cipherKey, out.subarray(40, 52));
  cipher.setAAD(additionalData(out.subarray(0, HEADER_BYTES), name));
  const body = cipher.update(plaintext);
  const final = cipher.final();
  body.copy(out, ENVELOPE_OVERHEAD);
  final.copy(out, ENVELOPE_OVERHEAD + body.length);
  cipher.getAuthTag().copy(out, HEADER_BYTES);
  return out;
}

/**
 * Reads the header without authenticating it: good enough to decide expiry (a forged deadline
 * can only make a file look expired, and it then fails to open anyway), never to trust data.
 */
export function readHeader(envelope: Buffer): EnvelopeHeader | null {
  if (envelope.length < HEADER_BYTES || !envelope.subarray(0, 4).equals(MAGIC)) return null;
  return {
    version: FORMAT_VERSION,
    keyIdHex: envelope.toString('hex', 4, 12),
    created: envelope.readDoubleBE(12),
    written: envelope.readDoubleBE(20),
    absoluteDeadline: envelope.readDoubleBE(28),
    idleSeconds: envelope.readUInt32BE(36),
  };
}

/** Authenticates and decrypts an envelope read from the file `name`. Never throws. */
export function unseal(keyring: Keyring, envelope: Buffer, name: string): UnsealResult {
  if (envelope.length < ENVELOPE_OVERHEAD) return { ok: false, reason: 'format' };
  const header = readHeader(envelope);
  if (header === null) return { ok: false, reason: 'format' };
  const key = keyring.byId(header.keyIdHex);
  if (key === undefined) return { ok: false, reason: 'unknown-key' };
  try {
    const decipher = createDecipheriv('aes-256-gcm', key.cipherKey, envelope.subarray(40, 52));
    decipher.setAAD(additionalData(envelope.subarray(0, HEADER_BYTES), name));
    decipher.setAuthTag(envelope.subarray(HEADER_BYTES, ENVELOPE_OVERHEAD));
    const plaintext = Buffer.concat([decipher.update(envelope.subarray(ENVELOPE_OVERHEAD)), decipher.final()]);
    return { ok: true, header, plaintext };
  } catch {
    // final() throws exactly when the tag does not match: that is the answer, not an error.
    return { ok: false, reason: 'authentication' };
  }
}
