export { sessions } from './http/koa.js';
export type { SessionsOptions } from './http/middleware.js';
export type { CookieOptions } from './http/cookie.js';
export { Transaction } from './http/transaction.js';
