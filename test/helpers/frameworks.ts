import type { AddressInfo } from 'node:net';
import type { ExecutionContext } from 'ava';
import type Koa from 'koa';
import type { FastifyInstance } from 'fastify';
import { listen } from './http.js';

/** Serves a Koa app on 127.0.0.1:0 for one test; returns its base URL and the errors Koa reported (`app.on('error')`). */
export async function listenKoa(t: ExecutionContext, app: Koa): Promise<{ url: string; errors: unknown[] }> {
  const errors: unknown[] = [];
  app.silent = true;
  app.on('error', (error: unknown) => errors.push(error));
  const handle = app.callback();
  // Koa's handler resolves when it has answered, and reports its own errors (above).
  return { url: await listen(t, (req, res) => void handle(req, res)), errors };
}

/** Starts a Fastify instance on 127.0.0.1:0 for one test (closed when it ends); returns its base URL. */
export async function listenFastify(t: ExecutionContext, fastify: FastifyInstance): Promise<string> {
  t.teardown(() => fastify.close());
  await fastify.listen({ port: 0, host: '127.0.0.1' });
  return `http://127.0.0.1:${(fastify.server.address() as AddressInfo).port}`;
}

/** A store method as a promise, from its callback form (express-session's and @fastify/session's). */
export function promised<T>(start: (callback: (error: unknown, value?: T) => void) => void): Promise<T | undefined> {
  return new Promise((resolve, reject) => start((error, value) => (error ? reject(error as Error) : resolve(value))));
}
