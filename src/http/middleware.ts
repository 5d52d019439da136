import type { IncomingMessage, ServerResponse } from 'node:http';
import { resolveCookieOptions, type CookieOptions } from './cookie.js';
import { isSealedSessionError } from '../errors.js';
import type { Store } from '../core/store.js';
import { Transaction } from './transaction.js';

export interface SessionsOptions {
  /** The store, from `openStore()`. */
  store: Store;
  cookie?: CookieOptions;
}

declare global {
  // Express's own extension point: `req.trans` is typed in every Express handler.
  namespace Express {
    interface Request {
      /** This request's session transaction (set by `sessions()`). */
      trans: Transaction;
    }
  }
}

export type RequestWithTransaction = IncomingMessage & { trans: Transaction };

type Next = (error?: unknown) => void;

/**
 * Connect-style middleware — Express, Connect, or plain node:http as
 * `mw(req, res, () => handler(req, res))` — that gives each request `req.trans`, and commits the
 * session before the response ends, whatever ends it (`res.send`, `res.json`, `res.redirect`,
 * `res.end`, a piped stream, an error handler): when the client has the whole response, the
 * change is on disk.
 *
 * A failed commit goes to `next(err)` when `next` takes an error (Express, Connect) and the
 * headers are not sent yet; a plain `() => handler()` next gets a bare 500 instead. After the
 * headers went out, a failed commit aborts the response, so a client never takes an unsaved
 * change for a saved one.
 */
export function sessions(options: SessionsOptions) {
  const { store } = options;
  const cookie = resolveCookieOptions(options.cookie);
  return function sealedSessions(req: IncomingMessage, res: ServerResponse, next: Next): void {
    const trans = new Transaction(store, req, res, cookie);
    (req as RequestWithTransaction).trans = trans;
    const end = res.end;
    let failed = false;
    // Typed loosely on purpose: res.end has several overloads, and every one passes through.
    res.end = function endAfterCommit(this: ServerResponse, ...args: unknown[]) {
      if (failed || !trans.needsCommit) return end.apply(this, args as Parameters<typeof end>);
      trans.commit().then(
        () => end.apply(res, args as Parameters<typeof end>),
        (error: unknown) => {
          failed = true;
          if (res.headersSent) {
            res.destroy(error instanceof Error ? error : undefined);
          } else if (next.length > 0) {
            next(error);
          } else {
            const code = isSealedSessionError(error) ? error.code : 'ERR_SESSION_STORE_IO';
            res.statusCode = 500;
            res.setHeader('content-type', 'text/plain; charset=utf-8');
            end.apply(res, [`Internal Server Error (${code})\n`] as unknown as Parameters<typeof end>);
          }
        },
      );
      return res;
    } as ServerResponse['end'];
    next();
  };
}
