import { errorCode, SealedSessionError, sessionTypeError } from '../errors.js';
import type { NodeRedisClient, NodeRedisCluster } from '../backends/redis/node-redis.js';

/*
 * The operations' own connection to Redis (the CLI's `--redis`, `migrate --from/--to`): a
 * node-redis client or cluster made from URLs, used for one run and closed. The `redis` package
 * is an optional peer: it is imported only here, only when a Redis URL is given.
 */

/** A Redis deployment as the operations are told of it: one URL, or one per seed node of a Cluster. */
export interface RedisConnection {
  readonly client: NodeRedisClient | NodeRedisCluster;
  /** True when it is a Redis Cluster (several URLs, or one node that says it is in a cluster). */
  readonly cluster: boolean;
  /** The URLs with any user name and password replaced by `***`: safe to print. */
  readonly where: string;
  close(): Promise<void>;
}

export interface ConnectOptions {
  /** How long one connection attempt may take, ms. @default 5000 */
  readonly connectTimeoutMs?: number;
}

/** `redis://` or `rediss://` (TLS): a Redis URL rather than a path. */
export function isRedisUrl(value: string): boolean {
  return /^rediss?:\/\//i.test(value);
}

/**
 * `url` without its user name and password (`redis://***@host:6379/0`), for messages: a password
 * in a URL must never reach a terminal or a log. Anything that does not parse is not shown at all.
 */
export function redactRedisUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return '(an unparsable URL)';
  }
  const credentials = parsed.username !== '' || parsed.password !== '' ? '***@' : '';
  const path = parsed.pathname === '/' ? '' : parsed.pathname;
  return `${parsed.protocol}//${credentials}${parsed.host}${path}`;
}

/**
 * Connects to the Redis deployment `urls` name: one URL is a standalone server (or, if that node
 * says it runs in a cluster, the cluster it belongs to), several are the seed nodes of a Cluster,
 * whose credentials and TLS also go to the nodes discovered from them. A connection that fails
 * is retried twice, then reported; an authentication error at once.
 *
 * @throws TypeError `ERR_SESSION_OPTION` for a URL that is not `redis://` or `rediss://`, or when
 * the `redis` package is not installed; `ERR_SESSION_STORE_IO` when Redis cannot be reached.
 * Messages hold the URLs redacted, never a password.
 */
export async function connectRedis(urls: readonly string[], options: ConnectOptions = {}): Promise<RedisConnection> {
  if (urls.length === 0) throw sessionTypeError('ERR_SESSION_OPTION', 'no Redis URL');
  const parsed = urls.map(parseUrl);
  const where = urls.map(redactRedisUrl).join(', ');
  const redis = await loadRedis();
  const socket = {
    connectTimeout: options.connectTimeoutMs ?? 5000,
    // A CLI run must not wait forever on a wrong host: two retries, and none after a refused login.
    reconnectStrategy: (retries: number, cause: Error) => (retries >= 2 || isAuthError(cause) ? cause : 250),
  };
  const fail = (error: unknown) => {
    const why = whyNot(error);
    // Node trusts the system's CAs: a server whose certificate a private CA signed needs that CA.
    const hint = /CERT|UNABLE_TO_VERIFY/.test(why) ? '; to trust a private CA, set NODE_EXTRA_CA_CERTS to its PEM file' : '';
    return new SealedSessionError('ERR_SESSION_STORE_IO', `cannot connect to ${where} (${why})${hint}`, { cause: error });
  };

  if (parsed.length === 1) {
    const client = redis.createClient({ url: urls[0]!, socket }).on('error', ignore);
    try {
      await client.connect();
    } catch (error) {
      destroyQuietly(client);
      throw fail(error);
    }
    let info: unknown;
    try {
      info = await client.sendCommand(['INFO', 'cluster']);
    } catch (error) {
      destroyQuietly(client);
      throw fail(error);
    }
    if (!/cluster_enabled:1/.test(String(info))) {
      return { client: client as unknown as NodeRedisClient, cluster: false, where, close: () => closeQuietly(client) };
    }
    // One node of a Cluster: the cluster it belongs to, seeded by it.
    await closeQuietly(client);
  }

  const [first] = parsed;
  const credentials = parsed.find((url) => url.username !== '' || url.password !== '') ?? first!;
  const defaults = {
    ...(credentials.username === '' ? {} : { username: decodeURIComponent(credentials.username) }),
    ...(credentials.password === '' ? {} : { password: decodeURIComponent(credentials.password) }),
    socket: { ...socket, ...(parsed.some((url) => url.protocol === 'rediss:') ? { tls: true as const } : {}) },
  };
  // The cluster's refusal says only that no root node answered: why is in what each one reported.
  let lastError: unknown;
  const cluster = redis.createCluster({ rootNodes: urls.map((url) => ({ url })), defaults }).on('error', (error: unknown) => {
    lastError = error;
  });
  try {
    await cluster.connect();
  } catch (error) {
    destroyQuietly(cluster);
    throw fail(lastError ?? error);
  }
  return { client: cluster as unknown as NodeRedisCluster, cluster: true, where, close: () => closeQuietly(cluster) };
}

function parseUrl(url: string): URL {
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  // The value itself is never echoed: it may hold a password.
  if (parsed === undefined || !/^rediss?:$/.test(parsed.protocol) || parsed.hostname === '') {
    throw sessionTypeError('ERR_SESSION_OPTION', 'a Redis URL is redis://[user:password@]host[:port][/db] or rediss://… (TLS)');
  }
  return parsed;
}

type RedisModule = typeof import('redis');

/** The `redis` package, or a usage error saying how to install it. */
async function loadRedis(): Promise<RedisModule> {
  try {
    return await import('redis');
  } catch (error) {
    if (errorCode(error) !== 'ERR_MODULE_NOT_FOUND') throw error;
    throw sessionTypeError('ERR_SESSION_OPTION', 'Redis needs the `redis` package (node-redis v5), not installed here: npm install redis');
  }
}

function ignore(): void {
  // Connection errors surface through the calls that need the connection; without a listener Node would throw them.
}

async function closeQuietly(client: { close(): Promise<unknown>; destroy(): void }): Promise<void> {
  try {
    await client.close();
  } catch {
    destroyQuietly(client);
  }
}

/** A client that gave up connecting is closed already, and says so by throwing. */
function destroyQuietly(client: { destroy(): void }): void {
  try {
    client.destroy();
  } catch {
    // closed already
  }
}

function isAuthError(error: unknown): boolean {
  return error instanceof Error && /^(WRONGPASS|NOAUTH|NOPERM)\b/.test(error.message);
}

/**
 * Why a connection failed, in a word that cannot hold a password: an errno code (ECONNREFUSED),
 * the first word of a server's refusal (WRONGPASS), or the class of a client error.
 */
function whyNot(error: unknown): string {
  for (let current: unknown = error, depth = 0; current instanceof Error && depth < 5; depth++) {
    const code = errorCode(current);
    if (code !== undefined && /^[A-Z][A-Z_]+$/.test(code)) return code;
    const word = /^([A-Z][A-Z_]{2,})\b/.exec(current.message)?.[1];
    if (word !== undefined) return word;
    const inner = current as Error & { socketError?: unknown; originalError?: unknown };
    current = inner.socketError ?? inner.cause ?? inner.originalError;
  }
  return error instanceof Error && /^[A-Za-z]+$/.test(error.name) && error.name !== 'Error' ? error.name : 'no connection';
}
