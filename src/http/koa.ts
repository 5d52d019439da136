import type { Middleware } from 'koa';
import type { SessionsOptions } from './middleware.js';
import { resolveCookieOptions } from './cookie.js';
import { Transaction } from './transaction.js';

declare module 'koa' {
  // Koa's extension point for the context: `ctx.trans` is typed in every middleware.
  interface DefaultContext {
    /** This request's session transaction (set by `sessions()` of `sealed-sessions/koa`). */
    trans: Transaction;
  }
}

/**
 * Koa middleware that gives each request `ctx.trans` — `getSession(create)`, `expireSession()`,
 * `regenerateSession()` — and commits the session once the downstream middleware is done, before
 * Koa sends the response: when the client has the response, the change is stored. A failed
 * commit is thrown, so it takes Koa's error path (`ctx.onerror`, `app.on('error')`, or your own
 * error-handling middleware). `secure: 'auto'` follows `ctx.secure` (so `app.proxy` decides
 * behind a proxy).
 */
export function sessions(options: SessionsOptions): Middleware {
  const { store } = options;
  const cookie = resolveCookieOptions(options.cookie);
  return async function sealedSessions(ctx, next) {
    const trans = new Transaction(store, ctx.req, ctx.res, cookie, { isSecure: () => ctx.secure });
    ctx.trans = trans;
    try {
      await next();
    } catch (error) {
      // What was set before the failure is kept, as when an error handler answers in Express;
      // the failure itself is what the client hears about.
      if (trans.needsCommit) await trans.commit().catch(() => undefined);
      throw error;
    }
    if (trans.needsCommit) await trans.commit();
  };
}
