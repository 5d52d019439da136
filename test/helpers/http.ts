import type { AddressInfo } from 'node:net';
import http from 'node:http';
import type { ExecutionContext } from 'ava';

/** Starts a real HTTP server on 127.0.0.1:0 for one test; closed when the test ends. Returns its base URL. */
export async function listen(t: ExecutionContext, handler: http.RequestListener): Promise<string> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  server.keepAliveTimeout = 500;
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A minimal real cookie jar: keeps what Set-Cookie says (Max-Age=0 removes), sends it back. */
export class CookieJar {
  readonly #cookies = new Map<string, string>();

  /** Records the Set-Cookie headers of a response. */
  take(response: Response): void {
    for (const line of response.headers.getSetCookie()) {
      const [pair = ''] = line.split(';');
      const equals = pair.indexOf('=');
      const name = pair.slice(0, equals).trim();
      const value = pair.slice(equals + 1).trim();
      if (/;\s*max-age=0/i.test(line) || value === '') this.#cookies.delete(name);
      else this.#cookies.set(name, value);
    }
  }

  get(name: string): string | undefined {
    return this.#cookies.get(name);
  }

  set(name: string, value: string): void {
    this.#cookies.set(name, value);
  }

  header(): string {
    return [...this.#cookies].map(([name, value]) => `${name}=${value}`).join('; ');
  }

  /** fetch with this jar's cookies; redirects are not followed (tests follow them by hand). */
  async fetch(url: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.#cookies.size > 0) headers.set('cookie', this.header());
    const response = await fetch(url, { ...init, headers, redirect: 'manual' });
    this.take(response);
    return response;
  }
}
