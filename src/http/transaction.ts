import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { cookieValues, serializeCookie, signId, verifySignedId, type CookieSettings } from './cookie.js';
import { SealedSessionError } from '../errors.js';
import type { Session } from '../core/session.js';
import type { Store } from '../core/store.js';

/** Validly signed session cookies looked up per request, at most. */
const MAX_LOOKUPS = 8;

/**
 * Where a transaction sets its cookie: a node:http `ServerResponse`, or a framework's reply
 * shaped like one (Fastify keeps its own headers until it writes them).
 */
export interface ResponseHeaders {
  readonly headersSent: boolean;
  getHeader(name: string): number | string | readonly string[] | undefined;
  setHeader(name: string, value: number | string | readonly string[]): unknown;
}

/** What a framework adapter tells a transaction beyond node:http's request and response. */
export interface TransactionOptions {
  /**
   * Whether the request came over TLS, as the framework sees it (behind a proxy too), for
   * `secure: 'auto'`. Default: Express's `req.secure`, else the socket's own TLS.
   */
  readonly isSecure?: () => boolean;
}

/**
 * One request's view of its session, after WebStack's transaction: `getSession(create)` is
 * `get_session(create)`, `expireSession()` is `expire_session()`. Works on plain node:http
 * requests and responses; the session is loaded at most once, and only when asked for.
 */
export class Transaction {
  readonly #store: Store;
  readonly #req: IncomingMessage;
  readonly #res: ResponseHeaders;
  readonly #cookie: CookieSettings;
  readonly #isSecure: (() => boolean) | undefined;
  /** undefined: not loaded yet; null: no live session. */
  #current: Session | null | undefined;
  #loading: Promise<void> | undefined;

  constructor(store: Store, req: IncomingMessage, res: ServerResponse | ResponseHeaders, cookie: CookieSettings, options: TransactionOptions = {}) {
    this.#store = store;
    this.#req = req;
    this.#res = res;
    this.#cookie = cookie;
    this.#isSecure = options.isSecure;
  }

  /**
   * The user's session. With `create` (the default) one is created when none exists, and its
   * cookie is set at once; with `create = false`, null when there is none. A cookie naming an
   * unknown, expired or destroyed session is never adopted: a new session gets a new id.
   *
   * @throws SealedSessionError `ERR_SESSION_STORE_IO` when the disk fails; `ERR_SESSION_HEADERS_SENT`
   *   when a session must be created after the response headers went out.
   */
  getSession(create?: true): Promise<Session>;
  getSession(create: false): Promise<Session | null>;
  getSession(create?: boolean): Promise<Session | null>;
  async getSession(create = true): Promise<Session | null> {
    await this.#ensureLoaded();
    const current = this.#current;
    if (current != null && !current.isGone) return current;
    if (!create) return null;
    const session = this.#store.create();
    this.#sendCookie(session.id, true);
    this.#current = session;
    return session;
  }

  /** Ends the user's session: its file is gone and its cookie cleared when this resolves. */
  async expireSession(): Promise<void> {
    await this.#ensureLoaded();
    const current = this.#current;
    this.#current = null;
    if (current != null && !current.isNew) await this.#store.destroy(current.id);
    if (current != null || cookieValues(this.#req.headers.cookie, this.#cookie.name).length > 0) this.#clearCookie();
  }

  /**
   * A new id for the same data — call it after login, so that an id known before the login
   * (fixation) is worthless after it. The old file is gone when this resolves.
   */
  async regenerateSession(): Promise<Session> {
    await this.#ensureLoaded();
    const old = this.#current != null && !this.#current.isGone ? this.#current : null;
    const fresh = this.#store.create();
    if (old !== null) for (const [key, value] of old) fresh.set(key, value);
    this.#sendCookie(fresh.id, true);
    await this.#store.commit(fresh);
    if (old !== null && !old.isNew) await this.#store.destroy(old.id);
    this.#current = fresh;
    return fresh;
  }

  /** True when the response must wait for a commit. */
  get needsCommit(): boolean {
    return this.#current != null && this.#store.needsCommit(this.#current);
  }

  /** Stores the session's changes. Called for you before the response ends. */
  async commit(): Promise<void> {
    if (this.#current != null) await this.#store.commit(this.#current);
  }

  #ensureLoaded(): Promise<void> {
    if (this.#current !== undefined) return Promise.resolve();
    this.#loading ??= this.#load();
    return this.#loading;
  }

  async #load(): Promise<void> {
    const secrets = this.#store.signingSecrets;
    // Several cookies of our name (a stale one for a wider path, say): the first that is
    // validly signed and names a live session wins. Garbage costs a regex test; at most
    // MAX_LOOKUPS signed ids are looked up, so a header full of them cannot cost many reads.
    let lookups = 0;
    for (const value of cookieValues(this.#req.headers.cookie, this.#cookie.name)) {
      const verified = verifySignedId(value, secrets);
      if (verified === null) continue;
      if (++lookups > MAX_LOOKUPS) break;
      const loaded = await this.#store.loadForRequest(verified.id);
      if (loaded === null) continue;
      this.#current = loaded.session;
      // Keep the cookie's Max-Age in step with the idle timeout, and move old-key cookies to the first key.
      if (loaded.touched || !verified.byFirstKey) this.#sendCookie(loaded.session.id, false);
      return;
    }
    this.#current = null;
  }

  #secure(): boolean {
    if (this.#cookie.secure !== 'auto') return this.#cookie.secure;
    if (this.#isSecure !== undefined) return this.#isSecure();
    const expressSecure = (this.#req as { secure?: unknown }).secure;
    if (typeof expressSecure === 'boolean') return expressSecure;
    return (this.#req.socket as Partial<TLSSocket>).encrypted === true;
  }

  #sendCookie(id: string, required: boolean): void {
    const value = signId(id, this.#store.signingSecrets[0]!);
    this.#setCookieHeader(serializeCookie(this.#cookie, value, this.#store.options.idleTimeout, this.#secure()), required);
  }

  #clearCookie(): void {
    this.#setCookieHeader(serializeCookie(this.#cookie, '', 0, this.#secure()), false);
  }

  #setCookieHeader(cookie: string, required: boolean): void {
    if (this.#res.headersSent) {
      // A refresh can wait for the next response; a new session without its cookie cannot.
      if (required) throw new SealedSessionError('ERR_SESSION_HEADERS_SENT', 'a session cannot be created after the response headers were sent');
      return;
    }
    const previous = this.#res.getHeader('set-cookie');
    const list = previous === undefined ? [] : Array.isArray(previous) ? previous : [String(previous)];
    const prefix = `${this.#cookie.name}=`;
    this.#res.setHeader('set-cookie', [...list.filter((entry) => !entry.startsWith(prefix)), cookie]);
  }
}
