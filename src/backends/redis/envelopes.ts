import { sessionTypeError } from '../../errors.js';
import type { CallOptions, RedisArgs, RedisDriver, RedisNode } from './driver.js';
import { withDeadline } from './failures.js';
import { ioRedisDriver, isIoRedis, type IoRedisClient, type IoRedisCluster } from './ioredis.js';
import { nodeRedisDriver, type NodeRedisClient, type NodeRedisCluster } from './node-redis.js';
import { COMPARE_AND_DELETE, COMPARE_AND_SET, READ_IF_CHANGED, type Script } from './scripts.js';

/*
 * Sealed envelopes as Redis strings, one key per call, below any store logic: the storage
 * operations a Redis backend needs and nothing else. Every key's own expiry (PXAT) is the
 * session's; nothing here reads the sealed part of an envelope beyond its clear header's nonce.
 */

/** The envelope's clear header: the first 52 bytes. */
export const HEADER_BYTES = 52;
const NONCE_OFFSET = 40;
const NONCE_BYTES = 12;

/** The nonce of an envelope (header bytes 40–51): new at every seal, so it identifies the version. */
export function nonceOf(envelope: Buffer): Buffer {
  if (envelope.length < HEADER_BYTES) throw new TypeError('sealed-sessions: an envelope is at least 52 bytes long');
  return envelope.subarray(NONCE_OFFSET, NONCE_OFFSET + NONCE_BYTES);
}

export interface RedisEnvelopesOptions {
  /**
   * Time limit of each call in ms, on top of failing at once when the connection is known to be
   * down. A call over it throws `ERR_SESSION_STORE_IO` (cause `REDIS_TIMEOUT`).
   * @default 5000
   */
  readonly timeoutMs?: number;
  /**
   * SCAN's COUNT hint for `scanHeaders`: keys looked at per round trip and per master.
   * @default 1000
   */
  readonly scanCount?: number;
}

/** An envelope and its key's expiry. */
export interface StoredEnvelope {
  readonly envelope: Buffer;
  /** PEXPIRETIME: when the key expires, Unix ms; `Infinity` for a key without an expiry. */
  readonly expireAtMs: number;
}

/** `getIfChanged`'s answer about a key that exists. */
export type Revalidation =
  | { readonly changed: false; readonly expireAtMs: number; /** The envelope's clear header (52 bytes). */ readonly header: Buffer }
  | ({ readonly changed: true } & StoredEnvelope);

export interface ScannedHeader {
  readonly key: string;
  /** The first 52 bytes (fewer if the value is shorter: then it is not an envelope). */
  readonly header: Buffer;
  /** As in `StoredEnvelope`. */
  readonly expireAtMs: number;
  /** The whole value's length in bytes (STRLEN). */
  readonly size: number;
}

/** A client the application made and connected: node-redis v5 (client or cluster), or ioredis v5 / iovalkey (client or cluster). */
export type RedisClientLike = NodeRedisClient | NodeRedisCluster | IoRedisClient | IoRedisCluster;

/**
 * Envelope operations over a Redis client or cluster that the application made and connected
 * (it stays the application's: nothing here closes it).
 *
 * Every failure throws `SealedSessionError` `ERR_SESSION_STORE_IO`; its `cause.code` says why
 * (`RedisFailureCode`: `REDIS_UNAVAILABLE`, `REDIS_TIMEOUT`, `REDIS_REPLY`, `REDIS_ERROR`).
 * Needs Redis 7.0 or newer (PEXPIRETIME, PEXPIREAT … GT).
 */
export function redisEnvelopes(client: RedisClientLike, options: RedisEnvelopesOptions = {}): RedisEnvelopes {
  return new RedisEnvelopes(isIoRedis(client) ? ioRedisDriver(client) : nodeRedisDriver(client), options);
}

export class RedisEnvelopes {
  readonly #driver: RedisDriver;
  readonly #timeoutMs: number;
  readonly #scanCount: number;

  constructor(driver: RedisDriver, options: RedisEnvelopesOptions = {}) {
    const { timeoutMs = 5000, scanCount = 1000 } = options;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw sessionTypeError('ERR_SESSION_OPTION', 'timeoutMs must be a positive number of milliseconds');
    if (!Number.isSafeInteger(scanCount) || scanCount <= 0) throw sessionTypeError('ERR_SESSION_OPTION', 'scanCount must be a positive integer');
    this.#driver = driver;
    this.#timeoutMs = timeoutMs;
    this.#scanCount = scanCount;
  }

  /** The envelope under `key`, or null. */
  async get(key: string): Promise<Buffer | null> {
    const reply = await this.#call('get', key, ['GET', key], true);
    return reply === null ? null : asBuffer(reply);
  }

  /** The envelope under `key` with its expiry (one atomic round trip), or null. */
  async read(key: string): Promise<StoredEnvelope | null> {
    // No nonce matches the empty one: the script always answers with the envelope.
    const answer = await this.getIfChanged(key, Buffer.alloc(0));
    return answer?.changed === true ? { envelope: answer.envelope, expireAtMs: answer.expireAtMs } : null;
  }

  /**
   * For a read cache that holds the envelope with nonce `knownNonce`: `{ changed: false }` when
   * the key still holds that very envelope (no envelope crosses the wire), the new envelope when
   * another writer replaced it, null when it is gone. Always the key's current expiry, which a
   * keep-alive elsewhere may have moved without a new envelope.
   */
  async getIfChanged(key: string, knownNonce: Buffer): Promise<Revalidation | null> {
    checkNonce(knownNonce, true);
    const reply = await this.#script('getIfChanged', key, READ_IF_CHANGED, [knownNonce]);
    if (reply === null) return null;
    const [value, expireAt, header] = reply as [unknown, unknown, unknown];
    const expireAtMs = expiry(expireAt);
    return value === 0 ? { changed: false, expireAtMs, header: asBuffer(header) } : { changed: true, envelope: asBuffer(value), expireAtMs };
  }

  /**
   * Writes `envelope` under `key`, expiring at `pxatMs` (Unix ms, rounded down), only if the key
   * holds the envelope whose nonce is `expectedNonce` — or, with an empty `expectedNonce`, only if
   * the key does not exist. False on a mismatch (someone else wrote or destroyed it: re-read and
   * retry). A `pxatMs` already past (by the server's clock) deletes the key instead.
   */
  async compareAndSet(key: string, expectedNonce: Buffer, envelope: Buffer, pxatMs: number): Promise<boolean> {
    checkNonce(expectedNonce, true);
    nonceOf(envelope);
    const reply = await this.#script('compareAndSet', key, COMPARE_AND_SET, [expectedNonce, envelope, String(deadline(pxatMs))]);
    return reply === 1;
  }

  /** Deletes `key` only if it holds the envelope whose nonce is `expectedNonce`: true if deleted. */
  async compareAndDelete(key: string, expectedNonce: Buffer): Promise<boolean> {
    checkNonce(expectedNonce, false);
    const reply = await this.#script('compareAndDelete', key, COMPARE_AND_DELETE, [expectedNonce]);
    return reply === 1;
  }

  /** Stores `value` under `key` as it is, without an expiry (quarantined envelopes and their notes). */
  async set(key: string, value: Buffer): Promise<void> {
    await this.#call('set', key, ['SET', key, value], false);
  }

  /** Deletes `key`, whatever it holds: true if it existed. */
  async del(key: string): Promise<boolean> {
    const reply = await this.#call('del', key, ['DEL', key], false);
    return typeof reply === 'number' && reply > 0;
  }

  /**
   * Moves the key's expiry to `pxatMs` (Unix ms, rounded down) if that is later than its current
   * one: PEXPIREAT … GT. Never shortens, never rewrites the envelope, never brings back a deleted
   * key (false then), and never sets an expiry on a key that has none.
   */
  async keepAlive(key: string, pxatMs: number): Promise<boolean> {
    const reply = await this.#call('keepAlive', key, ['PEXPIREAT', key, String(deadline(pxatMs)), 'GT'], false);
    return reply === 1;
  }

  /** When `key` expires (Unix ms; `Infinity` if it has no expiry), or null if it does not exist. */
  async pexpiretime(key: string): Promise<number | null> {
    const reply = await this.#call('pexpiretime', key, ['PEXPIRETIME', key], false);
    return reply === -2 ? null : expiry(reply);
  }

  /**
   * Every string key starting with `prefix`, with its first 52 bytes, expiry and size, from every
   * master (SCAN … MATCH <prefix>* TYPE string, then GETRANGE 0 51, PEXPIRETIME and STRLEN
   * pipelined per batch): no envelope is read whole, nothing is decrypted.
   *
   * SCAN's guarantee per master: a key present for the whole scan is reported at least once. It
   * may be reported twice, and while cluster slots move (or a master fails over) a key may be
   * reported twice or, having moved to a master already scanned, missed: every use must be
   * safe to repeat, and one that needs every key runs again after a topology change.
   */
  async *scanHeaders(prefix: string): AsyncGenerator<ScannedHeader, void, undefined> {
    const pattern = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
    const masters = await this.#deadline('scanHeaders', (signal) => this.#driver.masters(signal));
    for (const node of masters) {
      let cursor = '0';
      do {
        const reply = await this.#deadline('scanHeaders', (signal) =>
          node.call(['SCAN', cursor, 'MATCH', pattern, 'TYPE', 'string', 'COUNT', String(this.#scanCount)], { buffers: false, signal }),
        );
        // Cursors as strings: a Buffer cursor would never compare equal to '0'.
        const [next, keys] = reply as [string, string[]];
        cursor = next;
        if (keys.length > 0) yield* await this.#headers(node, keys);
      } while (cursor !== '0');
    }
  }

  /**
   * WAIT: blocks until the writes this client's connection to the master of `key` made so far
   * (a DEL just before, say) reached `numReplicas` replicas, or `timeoutMs` passed; returns how
   * many did. node-redis shares one connection per node, so this covers other callers' writes
   * too, which only makes it wait a little more.
   */
  async waitReplicas(key: string, numReplicas: number, timeoutMs: number): Promise<number> {
    if (!Number.isSafeInteger(numReplicas) || numReplicas < 0) throw new TypeError('sealed-sessions: numReplicas must be a non-negative integer');
    // WAIT 0 blocks forever: never.
    if (!Number.isSafeInteger(timeoutMs) || timeoutMs <= 0) throw new TypeError('sealed-sessions: timeoutMs must be a positive integer');
    const reply = await this.#deadline(
      'waitReplicas',
      (signal) => this.#driver.callKey(key, ['WAIT', String(numReplicas), String(timeoutMs)], { buffers: false, signal }),
      this.#timeoutMs + timeoutMs,
    );
    return typeof reply === 'number' ? reply : 0;
  }

  /**
   * Settings on any master that put sessions at risk, as sentences for the store's `warning`
   * event: a `maxmemory-policy` other than `noeviction` (every session key has an expiry, so
   * `volatile-*` policies evict live sessions, and `allkeys-*` anything), Redis older than 7.0.
   * CONFIG may be renamed or denied by an ACL: then a sentence says it could not be checked.
   */
  async configWarnings(): Promise<string[]> {
    const warnings = new Set<string>();
    const masters = await this.#deadline('configWarnings', (signal) => this.#driver.masters(signal));
    for (const node of masters) {
      const policy = await this.#deadline('configWarnings', (signal) => node.call(['CONFIG', 'GET', 'maxmemory-policy'], { buffers: false, signal })).then(
        (reply) => configValue(reply, 'maxmemory-policy'),
        (error: unknown) => error,
      );
      if (policy instanceof Error || policy === undefined) {
        warnings.add('could not check Redis maxmemory-policy (CONFIG GET is disabled or denied): it must be noeviction, or Redis may evict live sessions');
      } else if (policy !== 'noeviction') {
        warnings.add(
          `Redis maxmemory-policy is ${policy}: with anything but noeviction, Redis evicts live sessions when memory runs out (every session key has an expiry)`,
        );
      }
      const info = await this.#deadline('configWarnings', (signal) => node.call(['INFO', 'server'], { buffers: false, signal }));
      const version = /redis_version:(\d+)\.(\d+)/.exec(String(info));
      if (version !== null && Number(version[1]) < 7) {
        warnings.add(`Redis ${version[1]}.${version[2]} is too old: sessions need Redis 7.0 or newer (PEXPIRETIME, PEXPIREAT … GT)`);
      }
    }
    return [...warnings];
  }

  async #headers(node: RedisNode, keys: readonly string[]): Promise<ScannedHeader[]> {
    const replies = await this.#deadline('scanHeaders', (signal) => {
      const options: CallOptions = { buffers: true, signal };
      // All sent before any reply is awaited: node-redis writes them to the socket as one batch.
      return Promise.all(
        keys.map((key) =>
          Promise.all([
            node.call(['GETRANGE', key, '0', String(HEADER_BYTES - 1)], options),
            node.call(['PEXPIRETIME', key], options),
            node.call(['STRLEN', key], options),
          ]).catch(movedAway),
        ),
      );
    });
    const found: ScannedHeader[] = [];
    replies.forEach((reply, index) => {
      const key = keys[index];
      // Gone since SCAN saw it (-2), or its slot moved to another master in between.
      if (reply === null || key === undefined || reply[1] === -2) return;
      found.push({ key, header: asBuffer(reply[0]), expireAtMs: expiry(reply[1]), size: Number(reply[2]) });
    });
    return found;
  }

  /** EVALSHA, then EVAL once if this node has not cached the script (NOSCRIPT: a restart, SCRIPT FLUSH, a new master). */
  #script(operation: string, key: string, script: Script, args: RedisArgs): Promise<unknown> {
    return this.#deadline(operation, async (signal) => {
      const options: CallOptions = { buffers: true, signal };
      try {
        return await this.#driver.callKey(key, ['EVALSHA', script.sha1, '1', key, ...args], options);
      } catch (error) {
        if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
        return this.#driver.callKey(key, ['EVAL', script.source, '1', key, ...args], options);
      }
    });
  }

  #call(operation: string, key: string, args: RedisArgs, buffers: boolean): Promise<unknown> {
    return this.#deadline(operation, (signal) => this.#driver.callKey(key, args, { buffers, signal }));
  }

  #deadline<T>(operation: string, call: (signal: AbortSignal) => Promise<T>, ms = this.#timeoutMs): Promise<T> {
    return withDeadline(ms, operation, call);
  }
}

function checkNonce(nonce: Buffer, emptyAllowed: boolean): void {
  if (nonce.length !== NONCE_BYTES && !(emptyAllowed && nonce.length === 0)) {
    throw new TypeError(`sealed-sessions: a nonce is ${NONCE_BYTES} bytes${emptyAllowed ? ' (or empty: none)' : ''}`);
  }
}

function deadline(pxatMs: number): number {
  if (!Number.isFinite(pxatMs) || pxatMs <= 0) throw new TypeError('sealed-sessions: an expiry is a positive Unix time in ms');
  return Math.floor(pxatMs);
}

function expiry(reply: unknown): number {
  if (typeof reply !== 'number') throw new TypeError('sealed-sessions: Redis answered PEXPIRETIME with a non-number');
  return reply === -1 ? Infinity : reply;
}

function asBuffer(reply: unknown): Buffer {
  return Buffer.isBuffer(reply) ? reply : Buffer.from(String(reply), 'utf8');
}

/** A key whose slot moved between SCAN and GETRANGE answers MOVED/ASK from this node: skip it. */
function movedAway(error: unknown): null {
  if (error instanceof Error && /^(MOVED|ASK) /.test(error.message)) return null;
  throw error;
}

function configValue(reply: unknown, name: string): string | undefined {
  // RESP2: [name, value]; RESP3: { name: value }.
  if (Array.isArray(reply)) return reply[0] === name ? String(reply[1]) : undefined;
  if (reply instanceof Map) return reply.has(name) ? String(reply.get(name)) : undefined;
  if (typeof reply === 'object' && reply !== null && name in reply) return String((reply as Record<string, unknown>)[name]);
  return undefined;
}
