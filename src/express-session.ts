import session, { type SessionData } from 'express-session';
import type { Request } from 'express';
import { SealedStore as FrameworkStore, type StoreCallback } from './http/sealed-store.js';

export type { SessionRecord, StoreCallback, StoreCallOptions } from './http/sealed-store.js';

const expressStore = session.Store.prototype;

/**
 * The store for express-session: `new SealedStore({ dir, keys, ... })`, with the options of
 * `openStore()`. The framework-neutral `SealedStore` of `sealed-sessions`, plus what
 * express-session asks of a store beyond get/set/destroy/touch (it is an EventEmitter, and has
 * `createSession`, `regenerate` and `load` from express-session's own `Store`).
 *
 * `req.session` is made by `createSession` from what `get` handed out: the store remembers (in
 * a WeakMap, nothing visible on the session) which stored version it came from, so that saving it
 * stores only what the request changed, merged onto the latest version. A session made otherwise
 * (new, `regenerate`, an object from elsewhere) is stored whole.
 */
export class SealedStore extends FrameworkStore {
  // express-session names the session object it saves; no need to guess by id.
  protected override get mergesById(): boolean {
    return false;
  }

  createSession(req: Request, data: SessionData): session.Session & SessionData {
    const made = expressStore.createSession.call(this as unknown as session.Store, req, data);
    this.linkBase(data, made);
    return made;
  }

  regenerate(req: Request, callback: (error?: unknown) => void): void {
    expressStore.regenerate.call(this as unknown as session.Store, req, callback);
  }

  load(sid: string, callback: StoreCallback<SessionData>): void {
    expressStore.load.call(this as unknown as session.Store, sid, callback);
  }
}
