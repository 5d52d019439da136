import signature from 'cookie-signature';
import { sessionTypeError } from '../errors.js';
import { isValidId } from '../core/session-id.js';

/** Options of the session cookie. */
export interface CookieOptions {
  /** @default 'sid' */
  name?: string;
  /** @default '/' */
  path?: string;
  /** @default none (host-only) */
  domain?: string;
  /** @default true */
  httpOnly?: boolean;
  /** @default 'lax' */
  sameSite?: 'lax' | 'strict' | 'none';
  /**
   * `'auto'`: Secure when the request came over TLS (`req.secure`, so Express's `trust proxy`
   * decides behind a proxy).
   * @default 'auto'
   */
  secure?: boolean | 'auto';
}

export interface CookieSettings {
  readonly name: string;
  readonly path: string;
  readonly domain: string | undefined;
  readonly httpOnly: boolean;
  readonly sameSite: 'Lax' | 'Strict' | 'None';
  readonly secure: boolean | 'auto';
}

// RFC 6265 token (cookie-name) and the characters we allow in attribute values.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const ATTRIBUTE_VALUE = /^[\x21-\x3a\x3c-\x7e]+$/;
// An id (43 base64url) + '.' + an HMAC-SHA256 in base64 without padding (43): anything else is
// rejected before any HMAC is computed.
const SIGNED_VALUE = /^[A-Za-z0-9_-]{43}\.[A-Za-z0-9+/]{43}$/;

export function resolveCookieOptions(options: CookieOptions = {}): CookieSettings {
  const name = options.name ?? 'sid';
  if (!TOKEN.test(name)) throw sessionTypeError('ERR_SESSION_OPTION', 'cookie `name` must be a cookie token');
  const cookiePath = options.path ?? '/';
  if (!ATTRIBUTE_VALUE.test(cookiePath)) throw sessionTypeError('ERR_SESSION_OPTION', 'cookie `path` has characters a cookie cannot carry');
  if (options.domain !== undefined && !ATTRIBUTE_VALUE.test(options.domain)) {
    throw sessionTypeError('ERR_SESSION_OPTION', 'cookie `domain` has characters a cookie cannot carry');
  }
  const sameSite = options.sameSite ?? 'lax';
  if (!['lax', 'strict', 'none'].includes(sameSite)) throw sessionTypeError('ERR_SESSION_OPTION', "cookie `sameSite` must be 'lax', 'strict' or 'none'");
  const secure = options.secure ?? 'auto';
  if (secure !== 'auto' && typeof secure !== 'boolean') throw sessionTypeError('ERR_SESSION_OPTION', "cookie `secure` must be true, false or 'auto'");
  return Object.freeze({
    name,
    path: cookiePath,
    domain: options.domain,
    httpOnly: options.httpOnly ?? true,
    sameSite: sameSite === 'lax' ? 'Lax' : sameSite === 'strict' ? 'Strict' : 'None',
    secure,
  });
}

/** The values of every cookie called `name` in a Cookie header, in order (never throws; Node bounds the header at 16 KB). */
export function cookieValues(header: string | undefined, name: string): string[] {
  if (header === undefined || header === '') return [];
  const values: string[] = [];
  for (const pair of header.split(';')) {
    const equals = pair.indexOf('=');
    if (equals === -1 || pair.slice(0, equals).trim() !== name) continue;
    let value = pair.slice(equals + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    values.push(value);
  }
  return values;
}

/** The session id carried by a signed cookie value, if a configured secret signed it. */
export function verifySignedId(value: string, secrets: readonly string[]): { id: string; byFirstKey: boolean } | null {
  if (!SIGNED_VALUE.test(value)) return null;
  for (let index = 0; index < secrets.length; index++) {
    // cookie-signature compares in constant time.
    const id = signature.unsign(value, secrets[index]!);
    if (id !== false && isValidId(id)) return { id, byFirstKey: index === 0 };
  }
  return null;
}

export function signId(id: string, secret: string): string {
  return signature.sign(id, secret);
}

/** A Set-Cookie value; `maxAge` in seconds (0 clears the cookie). */
export function serializeCookie(settings: CookieSettings, value: string, maxAge: number, secure: boolean): string {
  let cookie = `${settings.name}=${value}; Path=${settings.path}; Max-Age=${Math.max(0, Math.floor(maxAge))}`;
  if (maxAge <= 0) cookie += '; Expires=Thu, 01 Jan 1970 00:00:00 GMT';
  if (settings.domain !== undefined) cookie += `; Domain=${settings.domain}`;
  if (settings.httpOnly) cookie += '; HttpOnly';
  if (secure) cookie += '; Secure';
  cookie += `; SameSite=${settings.sameSite}`;
  return cookie;
}
