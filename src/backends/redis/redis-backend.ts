import { setTimeout as sleep } from 'node:timers/promises';
import type {
  Backend,
  CurrentEnvelope,
  Decision,
  QuarantineOutcome,
  ScanItem,
  StoredEnvelope,
  SweepCounts,
  SweepOptions,
  Unchanged,
  UpdateOptions,
  UpdateOutcome,
} from '../../core/backend.js';
import { readHeader, type EnvelopeHeader } from '../../crypto/seal.js';
import { SealedSessionError, sessionTypeError } from '../../errors.js';
import { HEADER_BYTES, nonceOf, redisEnvelopes, type RedisClientLike, type RedisEnvelopes } from './envelopes.js';
import { redisFailureCode } from './failures.js';

/** Options of `redisBackend()`. */
export interface RedisBackendOptions {
  /**
   * The application's own client, connected: node-redis v5 (`createClient()` or
   * `createCluster()`), or ioredis v5 / iovalkey (`new Redis()` or `new Cluster()`). It stays the
   * application's: the store never closes it.
   */
  readonly client: RedisClientLike;
  /**
   * What every session key starts with; the rest is the session's one-way name (never its id).
   * @default 'sess:'
   */
  readonly prefix?: string;
  /**
   * Milliseconds any one Redis call may take before it fails with `ERR_SESSION_STORE_IO`. A call
   * while the connection is known to be down fails at once.
   * @default 5000
   */
  readonly timeoutMs?: number;
  /**
   * Milliseconds a commit keeps retrying while other writers keep changing the same session
   * before it fails with `ERR_SESSION_LOCK_TIMEOUT` (its changes stay pending).
   * @default 5000
   */
  readonly conflictWaitMs?: number;
  /**
   * After a session is destroyed, wait until this many replicas have the deletion (Redis `WAIT`),
   * so that a failover right after a logout cannot bring the session back. 0: do not wait.
   * @default 0
   */
  readonly waitForReplicas?: number;
}

const NAME = /^[0-9a-f]{64}$/;
const DEFAULT_PREFIX = 'sess:';
/** Where quarantined envelopes go, under the prefix: never read as sessions (not a 64-hex name). */
const QUARANTINE = 'quarantine:';

/**
 * Sessions as Redis strings: `<prefix><one-way name>` holds exactly the envelope the file backend
 * writes, and the key's own expiry is the session's (`PXAT` = when it expires, moved by keep-alives
 * with `PEXPIREAT … GT`), so nothing needs collecting. A commit reads the envelope, lets the store
 * merge onto it, and writes with a compare-and-set on the envelope's nonce: one key per call, so
 * it works on any Redis Cluster slot through the application's normal client, and a conflicting
 * writer makes it read and merge again, never lose an update.
 */
export function redisBackend(options: RedisBackendOptions): Backend {
  return new RedisBackend(options);
}

class RedisBackend implements Backend {
  readonly #redis: RedisEnvelopes;
  readonly #prefix: string;
  readonly #conflictWaitMs: number;
  readonly #waitForReplicas: number;
  readonly #timeoutMs: number;
  #warnings: readonly string[] = [];

  constructor(options: RedisBackendOptions) {
    if (typeof options !== 'object' || options === null || typeof options.client !== 'object' || options.client === null) {
      throw sessionTypeError('ERR_SESSION_OPTION', 'redisBackend needs `client`: a connected node-redis or ioredis client or cluster');
    }
    const prefix = options.prefix ?? DEFAULT_PREFIX;
    if (typeof prefix !== 'string') throw sessionTypeError('ERR_SESSION_OPTION', 'option `prefix` must be a string');
    const conflictWaitMs = options.conflictWaitMs ?? 5000;
    if (!Number.isFinite(conflictWaitMs) || conflictWaitMs < 0) throw sessionTypeError('ERR_SESSION_OPTION', 'option `conflictWaitMs` must be a number of ms');
    const waitForReplicas = options.waitForReplicas ?? 0;
    if (!Number.isSafeInteger(waitForReplicas) || waitForReplicas < 0) {
      throw sessionTypeError('ERR_SESSION_OPTION', 'option `waitForReplicas` must be a non-negative integer');
    }
    this.#timeoutMs = options.timeoutMs ?? 5000;
    this.#redis = redisEnvelopes(options.client, { timeoutMs: this.#timeoutMs });
    this.#prefix = prefix;
    this.#conflictWaitMs = conflictWaitMs;
    this.#waitForReplicas = waitForReplicas;
  }

  get location(): string {
    return `Redis keys ${this.#prefix}*`;
  }

  /** What the server's settings put at risk (said once, through the store's `warning` event). */
  get warnings(): readonly string[] {
    return this.#warnings;
  }

  async open(): Promise<void> {
    this.#warnings = await this.#redis.configWarnings();
  }

  locate(name: string): string {
    return this.#key(name);
  }

  #key(name: string): string {
    if (!NAME.test(name)) throw new SealedSessionError('ERR_SESSION_STORE_IO', 'not a session name');
    return `${this.#prefix}${name}`;
  }

  async read(name: string, known?: string): Promise<StoredEnvelope | Unchanged | null> {
    const key = this.#key(name);
    if (known !== undefined && known !== '') {
      const answer = await this.#redis.getIfChanged(key, Buffer.from(known, 'hex'));
      if (answer === null) return null;
      if (!answer.changed) return { unchanged: true, lastUseMs: lastUseOf(readHeader(answer.header), answer.expireAtMs) };
      return stored(answer.envelope, answer.expireAtMs);
    }
    const found = await this.#redis.read(key);
    return found === null ? null : stored(found.envelope, found.expireAtMs);
  }

  /**
   * Read, let `decide` merge, compare-and-set; on a conflict (another writer got there first),
   * the same again with jittered backoff, until `conflictWaitMs` has passed.
   */
  async update<T>(
    name: string,
    decide: (current: CurrentEnvelope | null) => Decision<T> | Promise<Decision<T>>,
    options: UpdateOptions = {},
  ): Promise<UpdateOutcome<T>> {
    const key = this.#key(name);
    const deadline = performance.now() + this.#conflictWaitMs;
    let delay = 1;
    for (let attempt = 0; ; attempt++) {
      // The first attempt may start from what the caller last saw: one round trip (the
      // compare-and-set) instead of two when it is still what is stored.
      const belief = attempt === 0 && options.fresh !== true && options.believed !== undefined && options.believed.bytes.length >= HEADER_BYTES;
      let found: { envelope: Buffer; expireAtMs: number | null } | null;
      if (attempt === 0 && options.fresh === true) found = null;
      else if (belief) found = { envelope: options.believed!.bytes, expireAtMs: null };
      else found = await this.#redis.read(key);
      const current =
        found === null
          ? null
          : {
              bytes: found.envelope,
              lastUse: async () => {
                const expireAtMs = found.expireAtMs ?? (await this.#redis.pexpiretime(key));
                return expireAtMs === null ? null : lastUseOf(readHeader(found.envelope), expireAtMs);
              },
            };
      const decision = await decide(current);
      if (decision.action === 'keep') {
        // Nothing to write, by a belief: only what is really stored can say so.
        if (belief) continue;
        return { result: decision.result };
      }
      const done = await this.#apply(key, found?.envelope ?? null, decision);
      if (done !== undefined) return { result: decision.result, version: done };
      if (belief) continue;
      if (performance.now() >= deadline) {
        throw new SealedSessionError(
          'ERR_SESSION_LOCK_TIMEOUT',
          `a session kept changing under other writers for ${Math.round(this.#conflictWaitMs / 1000)} s`,
        );
      }
      await sleep(delay * (0.5 + Math.random()));
      delay = Math.min(delay * 2, 50);
    }
  }

  /** The version written ('' for a removal), or undefined on a conflict. */
  async #apply<T>(key: string, current: Buffer | null, decision: Exclude<Decision<T>, { action: 'keep' }>): Promise<string | undefined> {
    const expected = current === null ? Buffer.alloc(0) : nonceFor(current);
    if (decision.action === 'remove') {
      if (current === null) return '';
      const removed = expected === null ? await this.#redis.del(key) : await this.#redis.compareAndDelete(key, expected);
      if (!removed && expected !== null) return undefined;
      if (this.#waitForReplicas > 0) await this.#redis.waitReplicas(key, this.#waitForReplicas, this.#timeoutMs);
      return '';
    }
    if (expected === null) {
      // What is there is no envelope (written by something else): it has no nonce to compare,
      // so it is cleared first, and the write must then find the key empty like any first write.
      await this.#redis.del(key);
      return undefined;
    }
    const nonce = nonceOf(decision.bytes);
    let written: boolean;
    try {
      written = await this.#redis.compareAndSet(key, expected, decision.bytes, decision.expiresAtMs);
    } catch (error) {
      // No answer in time: the write may still have landed. What is stored says: our nonce (it
      // landed), the one we compared with (it did not: try again), or anything else (another
      // writer came after: merge onto theirs). If Redis cannot say either, the commit fails.
      if (redisFailureCode(error) !== 'REDIS_TIMEOUT') throw error;
      const stored = await this.#redis.read(key).catch(() => Promise.reject(error as Error));
      if (stored !== null && stored.envelope.length >= HEADER_BYTES && nonceOf(stored.envelope).equals(nonce)) return nonce.toString('hex');
      return undefined;
    }
    return written ? nonce.toString('hex') : undefined;
  }

  /** The envelope and so its version (the nonce) stay as they are: a read cache stays valid by itself. */
  async keepAlive(name: string, _atMs: number, expiresAtMs: number): Promise<{ version?: string } | null> {
    const key = this.#key(name);
    // GT never shortens, never brings back a deleted key: gone only when it does not exist.
    if (await this.#redis.keepAlive(key, expiresAtMs)) return {};
    return (await this.#redis.pexpiretime(key)) === null ? null : {};
  }

  async *scan(): AsyncGenerator<ScanItem> {
    for await (const found of this.#redis.scanHeaders(this.#prefix)) {
      const name = found.key.slice(this.#prefix.length);
      if (!NAME.test(name)) continue;
      const header = found.header.length >= HEADER_BYTES ? readHeader(found.header) : null;
      yield { kind: 'session', name, header, lastUseMs: lastUseOf(header, found.expireAtMs), size: found.size };
    }
  }

  /**
   * Redis expires session keys by itself: a sweep only counts, and removes what the store's clock
   * says has expired although Redis still holds it (a clock ahead of the server's), each with a
   * compare-and-delete on what it just read.
   */
  async sweep(options: SweepOptions): Promise<SweepCounts> {
    const counts = { scanned: 0, expired: 0, removed: 0, debris: 0, debrisRemoved: 0, unreadable: 0, errors: 0 };
    for await (const item of this.scan()) {
      if (item.kind !== 'session') continue;
      counts.scanned++;
      if (item.header === null || item.header === undefined) {
        counts.unreadable++;
        continue;
      }
      if (!options.isExpired(item.header, item.lastUseMs)) continue;
      counts.expired++;
      if (options.dryRun || options.isBusy(item.name)) continue;
      try {
        const key = this.#key(item.name);
        const again = await this.#redis.read(key);
        if (again === null) continue;
        const header = readHeader(again.envelope);
        if (header === null || !options.isExpired(header, lastUseOf(header, again.expireAtMs))) continue;
        if (await this.#redis.compareAndDelete(key, nonceOf(again.envelope))) counts.removed++;
      } catch (error) {
        counts.errors++;
        options.onError(error);
      }
    }
    return counts;
  }

  clearDebris(): Promise<boolean> {
    return Promise.resolve(false);
  }

  openQuarantine(): Promise<void> {
    return Promise.resolve();
  }

  /** Copied under `<prefix>quarantine:<batch>:<name>` (no expiry) first, then removed if still the same envelope. */
  async quarantine(name: string, batch: string, stillBad: (current: Buffer | null) => boolean): Promise<QuarantineOutcome> {
    const key = this.#key(name);
    for (;;) {
      const found = await this.#redis.get(key);
      if (found === null || !stillBad(found)) return 'resolved';
      await this.#redis.set(`${this.#prefix}${QUARANTINE}${batch}:${name}`, found);
      const nonce = nonceFor(found);
      if (nonce === null ? await this.#redis.del(key) : await this.#redis.compareAndDelete(key, nonce)) return 'quarantined';
    }
  }

  async noteQuarantine(batch: string, note: Buffer): Promise<string> {
    const key = `${this.#prefix}${QUARANTINE}${batch}:findings.json`;
    await this.#redis.set(key, note);
    return key;
  }

  async copyOut(name: string): Promise<{ bytes: Buffer; lastUseMs: number } | null> {
    const found = await this.#redis.read(this.#key(name));
    return found === null ? null : { bytes: found.envelope, lastUseMs: lastUseOf(readHeader(found.envelope), found.expireAtMs) };
  }

  async copyIn(name: string, envelope: { readonly bytes: Buffer; readonly lastUseMs: number; readonly expiresAtMs: number }): Promise<boolean> {
    if (envelope.bytes.length < HEADER_BYTES) return false;
    return this.#redis.compareAndSet(this.#key(name), Buffer.alloc(0), envelope.bytes, envelope.expiresAtMs);
  }
}

function stored(envelope: Buffer, expireAtMs: number): StoredEnvelope {
  const nonce = nonceFor(envelope);
  return { bytes: envelope, lastUseMs: lastUseOf(readHeader(envelope), expireAtMs), version: nonce === null ? '' : nonce.toString('hex') };
}

/** The nonce of an envelope, or null for a value too short to be one. */
function nonceFor(value: Buffer): Buffer | null {
  return value.length >= HEADER_BYTES ? nonceOf(value) : null;
}

/**
 * The last use, told from when the key expires: a key expires at min(absolute deadline, last use
 * + idle), so before the absolute deadline the last use is its expiry less the idle time. A key
 * expiring at its absolute deadline was last used at least idle before it: that bound decides
 * the same expiry.
 */
function lastUseOf(header: EnvelopeHeader | null, expireAtMs: number): number {
  if (header === null) return 0;
  if (!Number.isFinite(expireAtMs)) return header.written;
  const idleMs = header.idleSeconds * 1000;
  const expiry = Math.min(expireAtMs, header.absoluteDeadline);
  return Math.max(header.written, expiry - idleMs);
}
