export { sessions } from './http/fastify.js';
export type { SessionsOptions } from './http/middleware.js';
export type { CookieOptions } from './http/cookie.js';
export { Transaction } from './http/transaction.js';
