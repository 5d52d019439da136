import { createSecretKey, hkdfSync, randomBytes, type KeyObject } from 'node:crypto';
import { SealedSessionError } from '../errors.js';

/** Minimum key material, in UTF-8 bytes. */
export const MIN_KEY_BYTES = 32;

/** One configured secret, with everything derived from it once, at startup. */
export interface SealingKey {
  /** 8 bytes that name the key inside each file; derived one-way, reveals nothing of the key. */
  readonly id: Buffer;
  readonly idHex: string;
  /** AES-256-GCM key. */
  readonly cipherKey: KeyObject;
  /** Secret for cookie-signature; a sub-key, so the sealing key itself never signs anything. */
  readonly cookieSecret: string;
}

/** The first key seals (and signs); every key unseals (and verifies). */
export interface Keyring {
  readonly primary: SealingKey;
  readonly keys: readonly SealingKey[];
  byId(idHex: string): SealingKey | undefined;
}

// A fixed salt: keys are already high-entropy secrets, and the salt only separates this
// library's derivations from any other use of the same secret.
const SALT = Buffer.from('sealed-sessions/v1');

function derive(secret: string, purpose: string, length: number): Buffer {
  return Buffer.from(hkdfSync('sha256', Buffer.from(secret, 'utf8'), SALT, purpose, length));
}

/**
 * Splits the `keys` option / `SESSION_KEYS` / a key file into secrets: one a line or
 * comma-separated (or both), surrounding whitespace trimmed, empty entries dropped.
 */
export function splitKeys(input: string | readonly string[] | undefined): string[] {
  if (input === undefined) return [];
  const list = typeof input === 'string' ? input.split(/[,\n]/) : [...input];
  return list.map((key) => key.trim()).filter((key) => key.length > 0);
}

/** A key that repeats a pattern this short (or shorter) all along is refused. */
const MAX_REPEATED_PATTERN = 8;
/** Fewer different characters than this and a key is refused. */
const MIN_DISTINCT_CHARACTERS = 6;

/**
 * Why `secret` is too weak to be a key, or null when it is not: shorter than 32 bytes, fewer
 * than 6 different characters, or one pattern of at most 8 characters repeated to fill it
 * (`'a' × 32`, `'password' × 4`, `'abcd' × 8`, a trailing part-repeat included).
 *
 * Why these bars and no higher: they catch typed placeholders, never a random key. A hex key
 * (`openssl rand -hex 32`) draws on 16 characters only, so no bar on distinct characters above
 * a handful would be fair to it; 64 random hex characters hold fewer than 6 different ones, or
 * repeat a pattern of 8, with a probability below 1e-28.
 */
export function keyWeakness(secret: string): string | null {
  if (Buffer.byteLength(secret, 'utf8') < MIN_KEY_BYTES) return `is shorter than ${MIN_KEY_BYTES} bytes`;
  const characters = [...secret];
  if (new Set(characters).size < MIN_DISTINCT_CHARACTERS) return `has fewer than ${MIN_DISTINCT_CHARACTERS} different characters`;
  for (let period = 1; period <= MAX_REPEATED_PATTERN && period < characters.length; period++) {
    if (characters.every((character, index) => index < period || character === characters[index - period])) {
      return 'is a short pattern repeated';
    }
  }
  return null;
}

export function createKeyring(secrets: readonly string[]): Keyring {
  if (secrets.length === 0) {
    throw new SealedSessionError('ERR_SESSION_KEYS_MISSING', 'no session key configured');
  }
  const keys = secrets.map((secret, index) => {
    const weakness = keyWeakness(secret);
    if (weakness !== null) {
      // The message names the position, never the key.
      throw new SealedSessionError('ERR_SESSION_KEY_WEAK', `key #${index + 1} ${weakness}; make one with \`sealed-sessions keygen\``);
    }
    const id = derive(secret, 'key-id', 8);
    return {
      id,
      idHex: id.toString('hex'),
      cipherKey: createSecretKey(derive(secret, 'aes-256-gcm', 32)),
      cookieSecret: derive(secret, 'cookie-signature', 32).toString('base64url'),
    } satisfies SealingKey;
  });
  const byId = new Map<string, SealingKey>();
  for (const key of keys) if (!byId.has(key.idHex)) byId.set(key.idHex, key);
  return {
    primary: keys[0]!,
    keys,
    byId: (idHex) => byId.get(idHex),
  };
}

/** A new random key: 32 bytes, base64url (43 characters), ready for `SESSION_KEYS`. */
export function generateKey(): string {
  return randomBytes(32).toString('base64url');
}
