import type { FastifyPluginCallback, FastifyReply } from 'fastify';
import type { SessionsOptions } from './middleware.js';
import { resolveCookieOptions } from './cookie.js';
import { Transaction, type ResponseHeaders } from './transaction.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** This request's session transaction (set by the `sessions` plugin of `sealed-sessions/fastify`). */
    trans: Transaction;
  }
}

/**
 * The reply's headers as a transaction sets them: through Fastify, which keeps its own until it
 * writes them (a header set on the raw response would lose to one of the same name set through
 * Fastify, such as @fastify/cookie's Set-Cookie).
 */
function headersOf(reply: FastifyReply): ResponseHeaders {
  return {
    get headersSent() {
      return reply.raw.headersSent;
    },
    getHeader: (name) => reply.getHeader(name),
    setHeader: (name, value) => {
      // Fastify appends Set-Cookie values; the transaction hands over the whole list.
      reply.removeHeader(name);
      reply.header(name, value);
    },
  };
}

/**
 * Fastify plugin that gives each request `request.trans` — `getSession(create)`,
 * `expireSession()`, `regenerateSession()` — and commits the session in `onSend`, before the
 * response goes out: when the client has the response, the change is stored. A failed commit
 * takes Fastify's error path (the error handler; 500 by default). `secure: 'auto'` follows
 * `request.protocol` (so `trustProxy` decides behind a proxy). Not encapsulated: registered
 * once, it serves every route of the instance, as fastify-plugin would make it.
 *
 * @example fastify.register(sessions, { store })
 */
export const sessions: FastifyPluginCallback<SessionsOptions> = (fastify, options, done) => {
  const { store } = options;
  const cookie = resolveCookieOptions(options.cookie);
  fastify.decorateRequest('trans', null as unknown as Transaction);
  // Requests whose commit failed: the error reply that follows runs onSend again, and must not
  // store what the client is told was not stored.
  const failed = new WeakSet<object>();
  fastify.addHook('onRequest', (request, reply, next) => {
    request.trans = new Transaction(store, request.raw, headersOf(reply), cookie, { isSecure: () => request.protocol === 'https' });
    next();
  });
  fastify.addHook('onSend', async (request, _reply, payload) => {
    // Null when an earlier onRequest hook failed the request before ours ran.
    const trans = request.trans as Transaction | null;
    if (trans?.needsCommit !== true || failed.has(request)) return payload;
    try {
      await trans.commit();
    } catch (error) {
      failed.add(request);
      throw error;
    }
    return payload;
  });
  done();
};

// What fastify-plugin would set: no encapsulation (the hooks reach every route), and a name.
Object.assign(sessions, { [Symbol.for('skip-override')]: true, [Symbol.for('fastify.display-name')]: 'sealed-sessions' });
