import { EventEmitter } from 'node:events';
import { LRUCache } from 'lru-cache';
import type { Keyring } from '../crypto/keys.js';
import { seal, type EnvelopeHeader } from '../crypto/seal.js';
import { SealedSessionError, sessionTypeError } from '../errors.js';
import type { Backend, CurrentEnvelope, Decision, SweepCounts } from './backend.js';
import { applyChanges, type ChangeSet, type SessionData } from './changes.js';
import { expiresAt, isExpired, isLive, isTombstone, lastUse } from './expiry.js';
import type { JsonValue } from './json-value.js';
import { maxEnvelopeBytes, type ResolvedOptions } from './options.js';
import { openEnvelope, plaintextOf, type ReadOutcome, type StoredSession, type TamperReason } from './sealed-session.js';
import { Session, sessionInternals } from './session.js';
import { fileNameOf, generateId, isStorableId, MAX_STORABLE_ID } from './session-id.js';

const inside = sessionInternals();

/** What a commit did: wrote a new version, found nothing to write, or found the session destroyed or expired. */
export type CommitOutcome = 'written' | 'unchanged' | 'gone';

/**
 * @internal How a framework's cookie bounds a session (express-session, @fastify/session and
 * koa-session, through `SealedStore`). The store's absolute timeout bounds it in every case.
 */
export interface CommitOptions {
  /**
   * When the framework's cookie expires, ms since the epoch: the session is then written with
   * that much idle time from now (so a keep-alive mark moves its end as a framework's `touch`
   * moves the cookie), and its last use is exactly this write's time. null: the cookie has no
   * expiry (a browser-session cookie), and the store's own idle timeout bounds the session.
   */
  readonly expires: number | null;
}

/** Options of `Store.destroy()`. */
export interface DestroyOptions {
  /**
   * Leave a tombstone until the session's own end instead of removing it at once: a sealed
   * envelope with no data, marked in its clear-text header, that every read takes for "no
   * session" and onto which no commit stores anything — so a late save of that id from a request
   * still in flight (in any process) cannot bring the session back. gc removes it after that
   * end. What `SealedStore.destroy()` does for the frameworks; `expireSession()` removes.
   * @default false
   */
  readonly tombstone?: boolean;
}

export interface GcOptions {
  /** Count what would be removed, remove nothing. */
  dryRun?: boolean;
}

export interface GcReport extends SweepCounts {
  readonly durationMs: number;
}

/** Events of a store; the library never logs, it reports here. */
export interface StoreEvents {
  /** A session file failed to open: changed bytes, truncated, copied over another, or sealed with a key no longer configured. It reads as "no session". */
  tamper: [{ readonly file: string; readonly reason: TamperReason }];
  /** Trouble that did not fail the request (e.g. a keep-alive mark that could not be written). */
  warning: [{ readonly message: string; readonly error: unknown }];
  /** After each gc. */
  gc: [GcReport];
}

type Job =
  | {
      readonly kind: 'commit';
      readonly session: Session;
      readonly changes: ChangeSet;
      readonly isNew: boolean;
      /** The first commit of an id generated here: no file and no other request can know it yet. */
      readonly unclaimed: boolean;
      readonly deadline: CommitOptions | undefined;
      readonly resolve: (outcome: CommitOutcome) => void;
      readonly reject: (error: unknown) => void;
    }
  | {
      readonly kind: 'destroy';
      readonly tombstone: boolean;
      readonly resolve: (existed: boolean) => void;
      readonly reject: (error: unknown) => void;
    };

interface Queue {
  readonly id: string;
  jobs: Job[];
}

/** How a batch's jobs settle once the update is done, and what it wrote (for the read cache). */
interface BatchResult {
  readonly settle: () => void;
  readonly written: { readonly session: StoredSession; readonly bytes: Buffer } | null;
}

/** A session of the read cache: as opened, with the stored version it was read from, and the sealed bytes it was opened from. */
interface CacheEntry {
  readonly session: StoredSession & { readonly version: string };
  readonly bytes: Buffer;
}

/**
 * Sessions as sealed envelopes in a backend (files by default). Reads take no lock; each commit
 * reads the session's latest version under the backend's exclusive access (a lock for files),
 * replays this session's changes onto it, and writes atomically (the first commit of a session
 * made by `create()` needs neither lock nor read: no one else can know its id yet). Commits of one
 * session within this process queue in memory and are coalesced into one write.
 */
export class Store extends EventEmitter<StoreEvents> {
  readonly #options: ResolvedOptions;
  readonly #backend: Backend;
  readonly #keyring: Keyring;
  readonly #maxEnvelopeBytes: number;
  readonly #queues = new Map<string, Queue>();
  readonly #signingSecrets: readonly string[];
  /** Recently read sessions by name, with the stored version they were read from (null: `cacheSize` 0). */
  readonly #cache: LRUCache<string, CacheEntry> | null;
  /**
   * Sessions made by `create()` whose id has not been written yet: 256 random bits generated in
   * this process, so nothing of that name exists and no other process can be writing one. Their
   * first commit needs neither exclusive access nor a read of the latest version.
   */
  readonly #unclaimed = new WeakSet<Session>();

  /** @internal Use `openStore()`. */
  constructor(options: ResolvedOptions, backend: Backend, keyring: Keyring) {
    super();
    this.#options = options;
    this.#backend = backend;
    this.#keyring = keyring;
    this.#maxEnvelopeBytes = maxEnvelopeBytes(options.maxBytes);
    this.#cache =
      options.cacheSize > 0
        ? new LRUCache({
            max: options.cacheSize,
            maxSize: options.cacheMaxBytes,
            sizeCalculation: ({ session, bytes }) => 2 * session.plaintext.length + bytes.length + 1024,
          })
        : null;
    this.#signingSecrets = Object.freeze(keyring.keys.map((key) => key.cookieSecret));
  }

  /** Where the sessions are: the data dir (absolute) for the file backend. */
  get dir(): string {
    return this.#backend.location;
  }

  get options(): ResolvedOptions {
    return this.#options;
  }

  /** Cookie signing secrets derived from the keys: the first signs, all verify. */
  get signingSecrets(): readonly string[] {
    return this.#signingSecrets;
  }

  /** @internal The keys, for the operations (rekey, show). */
  get keyring(): Keyring {
    return this.#keyring;
  }

  /** @internal The storage, for the operations (verify, rekey, backup). */
  get backend(): Backend {
    return this.#backend;
  }

  /** A new, empty session with a fresh random id. Stored at its first commit. */
  create(): Session {
    const session = new Session(generateId(), new Map(), true, this);
    this.#unclaimed.add(session);
    return session;
  }

  /**
   * The live session of `id`, or null when there is none: unknown, malformed, expired, destroyed,
   * tampered or sealed with an unknown key (the last two are reported through the `tamper` event).
   * No lock, no retry. Marks the session as used at most once per `touchInterval`.
   *
   * @throws SealedSessionError `ERR_SESSION_STORE_IO` when the disk fails.
   */
  async load(id: string): Promise<Session | null> {
    return (await this.loadForRequest(id))?.session ?? null;
  }

  /**
   * `load()`, also telling whether this load marked the session as used (a transaction then
   * refreshes the cookie's Max-Age).
   * @internal
   */
  async loadForRequest(id: string): Promise<{ session: Session; touched: boolean } | null> {
    const stored = await this.#readLive(id);
    if (stored === null) return null;
    const now = this.#options.now();
    let touched = false;
    if (now - lastUse(stored.header, stored.mtimeMs) >= this.#options.touchIntervalMs) {
      touched = await this.#keepAlive(fileNameOf(id), stored, now).catch((error: unknown) => {
        this.emit('warning', { message: 'could not mark a session as used', error });
        return false;
      });
    }
    return { session: new Session(id, stored.data, false, this), touched };
  }

  /**
   * A new, empty session under an id chosen by the caller (express-session owns its ids).
   * @internal
   */
  createWithId(id: string): Session {
    if (!isStorableId(id)) throw sessionTypeError('ERR_SESSION_OPTION', `a session id must be a string of at most ${MAX_STORABLE_ID} characters`);
    return new Session(id, new Map(), true, this);
  }

  /**
   * A handle on the stored session `id` that holds no data: the changes made to it merge onto
   * the latest stored version at commit, which stores nothing when there is none (destroyed,
   * expired, a tombstone). For a framework store's per-key change sets.
   * @internal
   */
  attach(id: string): Session {
    if (!isStorableId(id)) throw sessionTypeError('ERR_SESSION_OPTION', `a session id must be a string of at most ${MAX_STORABLE_ID} characters`);
    return new Session(id, new Map(), false, this);
  }

  /**
   * The live stored session of `id` — its data, clear-text times and last use — read without
   * marking a use (a framework store decides that itself); null when there is none.
   * @internal
   */
  peek(id: string): Promise<StoredSession | null> {
    return this.#readLive(id);
  }

  /**
   * Marks `stored` (the session `id`, as `peek` gave it) as used at `atMs` without rewriting it:
   * the keep-alive a framework's `touch` becomes. False when it is gone.
   * @internal
   */
  markUse(id: string, stored: StoredSession, atMs: number): Promise<boolean> {
    return this.#keepAlive(fileNameOf(id), stored, atMs);
  }

  /**
   * Every live session, streamed from the backend (a bounded number at a time): for listings
   * such as express-session's `all()`. Entries that fail to open are reported through `tamper`
   * and skipped.
   */
  async *sessions(): AsyncGenerator<Session> {
    for await (const session of this.storedSessions()) yield new Session(session.id, session.data, false, this);
  }

  /**
   * `sessions()` as stored: with their clear-text times and last use (for a framework store's listings).
   * @internal
   */
  async *storedSessions(): AsyncGenerator<StoredSession> {
    for await (const item of this.#backend.scan({ headers: false })) {
      if (item.kind !== 'session') continue;
      const outcome = await this.read(item.name);
      if (outcome.state !== 'found') continue;
      const { session } = outcome;
      if (isLive(session.header, session.mtimeMs, this.#options.now())) yield session;
    }
  }

  /** True when committing `session` would store something (it is new or has changes). */
  needsCommit(session: Session): boolean {
    return !session.isGone && (session.isNew || inside.hasPendingChanges(session));
  }

  /**
   * The session stored under `name`, opened. `fresh`: straight from the backend, never the read
   * cache (the operations look at what is stored, and never mark a use). A session that does not
   * open is reported through `tamper`.
   * @internal
   */
  async read(name: string, fresh = false): Promise<ReadOutcome> {
    const cached = fresh ? undefined : this.#cache?.get(name);
    const stored = await this.#backend.read(name, cached?.session.version);
    if (stored === null) {
      this.#cache?.delete(name);
      return { state: 'missing' };
    }
    if ('unchanged' in stored) {
      const session = cached!.session;
      return { state: 'found', session: stored.lastUseMs === session.mtimeMs ? session : { ...session, mtimeMs: stored.lastUseMs } };
    }
    if ('unreadable' in stored) {
      this.#cache?.delete(name);
      this.emit('tamper', { file: this.#backend.locate(name), reason: 'unreadable' });
      return { state: 'tampered', reason: 'unreadable' };
    }
    const opened = this.open(name, stored.bytes, stored.lastUseMs);
    if (opened.state !== 'found') {
      this.#cache?.delete(name);
      return opened;
    }
    const session = { ...opened.session, version: stored.version };
    if (!fresh) this.#cache?.set(name, { session, bytes: stored.bytes });
    return { state: 'found', session };
  }

  /**
   * Marks `stored` (the session stored under `name`, as a read gave it) as used at `atMs`,
   * without rewriting it. When the mark is a new version of what the read cache holds, the cache
   * follows it: the next read is still one check, not a whole read. False when it is gone.
   */
  async #keepAlive(name: string, stored: StoredSession, atMs: number): Promise<boolean> {
    const marked = await this.#backend.keepAlive(name, atMs, expiresAt(stored.header, atMs), stored.version);
    if (marked === null) return false;
    const cached = this.#cache?.get(name);
    if (marked.version !== undefined && cached !== undefined && cached.session.version === stored.version) {
      this.#cache?.set(name, { session: { ...cached.session, mtimeMs: atMs, version: marked.version }, bytes: cached.bytes });
    }
    return true;
  }

  /**
   * Opens the envelope stored under `name`; one that does not open is reported through `tamper`.
   * @internal
   */
  open(name: string, bytes: Buffer, mtimeMs: number | undefined): ReadOutcome {
    const outcome = openEnvelope(this.#keyring, name, bytes, mtimeMs, this.#maxEnvelopeBytes);
    if (outcome.state === 'tampered') this.emit('tamper', { file: this.#backend.locate(name), reason: outcome.reason });
    return outcome;
  }

  async #readLive(id: string): Promise<StoredSession | null> {
    if (!isStorableId(id)) return null;
    const outcome = await this.read(fileNameOf(id));
    if (outcome.state !== 'found') return null;
    return isLive(outcome.session.header, outcome.session.mtimeMs, this.#options.now()) ? outcome.session : null;
  }

  /**
   * Stores a session's changes, merged onto its latest stored version. Resolves `'gone'` (and
   * stores nothing) when the session was destroyed or expired meanwhile: a commit never brings a
   * session back.
   *
   * @throws SealedSessionError `ERR_SESSION_TOO_LARGE`, `ERR_SESSION_STORE_IO`, `ERR_SESSION_LOCK_TIMEOUT`;
   *   the stored version is then intact and the changes stay pending in the session.
   */
  commit(session: Session, options?: CommitOptions): Promise<CommitOutcome> {
    if (session.isGone) return Promise.resolve('gone');
    if (!session.isNew && !inside.hasPendingChanges(session) && options === undefined) return Promise.resolve('unchanged');
    const changes = inside.takeChanges(session);
    // Only the first attempt: once a write of it may have happened, the id is claimed.
    const unclaimed = this.#unclaimed.delete(session);
    return new Promise((resolve, reject) => {
      this.#enqueue(session.id, {
        kind: 'commit',
        session,
        changes,
        isNew: session.isNew,
        unclaimed,
        deadline: options,
        resolve,
        reject: (error) => {
          inside.restoreChanges(session, changes);
          reject(error);
        },
      });
    });
  }

  /**
   * Ends a session: it is gone from the backend when this resolves (or, with `tombstone`, a
   * tombstone stands in its place until its own end). True when there was one.
   */
  destroy(id: string, options: DestroyOptions = {}): Promise<boolean> {
    if (!isStorableId(id)) return Promise.resolve(false);
    const tombstone = options.tombstone === true;
    return new Promise((resolve, reject) => this.#enqueue(id, { kind: 'destroy', tombstone, resolve, reject }));
  }

  #enqueue(id: string, job: Job): void {
    const name = fileNameOf(id);
    const queue = this.#queues.get(name);
    if (queue !== undefined) {
      queue.jobs.push(job);
      return;
    }
    const fresh: Queue = { id, jobs: [job] };
    this.#queues.set(name, fresh);
    void this.#drain(name, fresh);
  }

  // One writer per session in this process: jobs that queue up while it writes are taken
  // together as the next batch, so N waiting commits cost one update, not N.
  async #drain(name: string, queue: Queue): Promise<void> {
    while (queue.jobs.length > 0) {
      const batch = queue.jobs;
      queue.jobs = [];
      let outcome;
      try {
        // What this process last read or wrote of it: a backend that commits by compare-and-set
        // may start from it and save a read (a lock-taking one reads the file itself regardless).
        const cached = this.#cache?.get(name);
        this.#cache?.delete(name);
        outcome = await this.#backend.update(name, (current) => this.#decide(name, queue.id, batch, current), {
          fresh: batch.every((job) => job.kind === 'commit' && job.unclaimed),
          wantVersion: this.#cache !== null,
          ...(cached === undefined ? {} : { believed: { version: cached.session.version, bytes: cached.bytes } }),
        });
      } catch (error) {
        for (const job of batch) job.reject(error);
        continue;
      }
      const { settle, written } = outcome.result;
      if (written !== null && outcome.version !== undefined)
        this.#cache?.set(name, { session: { ...written.session, version: outcome.version }, bytes: written.bytes });
      // Only now, with the update's exclusive access released (and checked not to have been
      // lost), do the commits resolve: the response that waits for them goes out with nothing
      // left held.
      settle();
      // Let the writers just settled run on before the next batch is taken, so that whatever
      // they commit next joins it: one write for all, rather than alternating half batches.
      await new Promise((resolve) => setImmediate(resolve));
    }
    this.#queues.delete(name);
  }

  /** Decides a batch's outcome from the latest stored version (pure but for sealing: it may be asked again). */
  async #decide(name: string, id: string, batch: readonly Job[], current: CurrentEnvelope | null): Promise<Decision<BatchResult>> {
    const latest: ReadOutcome = current === null ? { state: 'missing' } : this.open(name, current.bytes, undefined);
    const now = this.#options.now();
    const onDisk = latest.state !== 'missing';
    const stored = latest.state === 'found' ? latest.session : null;
    // A tombstone before its end: the session was destroyed, and nothing is stored under its name.
    const tombstone = stored !== null && isTombstone(stored.header) && now < stored.header.absoluteDeadline;
    const base = stored !== null && !isTombstone(stored.header) ? await this.#liveBase(stored, current!, now) : null;

    let plan = planBatch(base, tombstone, batch, this.#options.maxBytes, false);
    // Too large together: replay one by one, refusing only the commits that cross the limit.
    if (plan.tooLarge) plan = planBatch(base, tombstone, batch, this.#options.maxBytes, true);
    const settle = (written: boolean) => () => settleBatch(batch, plan, written);

    if (!plan.exists) {
      // Only a destroy removes a session. One this process cannot open (sealed under a key it
      // lacks, say, by a newer server mid-rotation) is left alone: it is "no session" here, not
      // ours to delete. A tombstone stays until its end (gc's to remove).
      const destroying = onDisk && !tombstone && batch.some((job) => job.kind === 'destroy');
      if (!destroying) return { action: 'keep', result: { settle: settle(false), written: null } };
      if (base !== null && batch.some((job) => job.kind === 'destroy' && job.tombstone)) {
        // In place of the file, by one atomic write: there is no moment without an entry that a
        // late commit could fill. It lasts as long as the session would have.
        const end = expiresAt(base.header, (await current!.lastUse()) ?? base.mtimeMs);
        if (end > now) {
          const times = { created: base.header.created, written: now, absoluteDeadline: end, idleSeconds: 0 };
          const bytes = seal(this.#keyring, times, Buffer.from(plaintextOf(id, '{}'), 'utf8'), name);
          return { action: 'write', bytes, expiresAtMs: end, result: { settle: settle(false), written: null } };
        }
      }
      return { action: 'remove', result: { settle: settle(false), written: null } };
    }
    const plaintext = plaintextOf(id, plan.dataJson);
    const cookie = lastDeadline(batch);
    const created = base?.header.created ?? now;
    const { absoluteDeadline, idleSeconds } =
      cookie === undefined
        ? { absoluteDeadline: base?.header.absoluteDeadline ?? now + this.#options.absoluteTimeout * 1000, idleSeconds: this.#options.idleTimeout }
        : cookieDeadlines(cookie.expires, created, now, this.#options);
    const stale =
      base === null ||
      // A framework's save stores what it is given, as its own stores do (and its cookie moves).
      cookie !== undefined ||
      plaintext !== base.plaintext ||
      base.header.keyIdHex !== this.#keyring.primary.idHex ||
      base.header.absoluteDeadline !== absoluteDeadline ||
      base.header.idleSeconds !== idleSeconds;
    if (!stale) return { action: 'keep', result: { settle: settle(false), written: null } };
    const times = { created, written: now, absoluteDeadline, idleSeconds };
    const bytes = seal(this.#keyring, times, Buffer.from(plaintext, 'utf8'), name);
    const header: EnvelopeHeader = { version: 1, keyIdHex: this.#keyring.primary.idHex, ...times };
    return {
      action: 'write',
      bytes,
      expiresAtMs: expiresAt(header, now),
      // A cookie's end is reported as "this write's time + (its expiry - this write's time)"
      // moved by later keep-alive marks: the last use must be exactly the time sealed in.
      ...(cookie?.expires != null ? { lastUseMs: now } : {}),
      result: { settle: settle(true), written: { session: { id, data: plan.data, plaintext, header, mtimeMs: now }, bytes } },
    };
  }

  /**
   * The stored session a commit merges onto, or null when it expired. Decided from the header
   * alone when it can be: a session idle by its header may still have been kept alive since, so
   * only then is the last use asked for (a stat, for files), never on the common path.
   */
  async #liveBase(stored: StoredSession, current: CurrentEnvelope, now: number): Promise<StoredSession | null> {
    const { header } = stored;
    if (!isExpired(header, header.written, now)) return stored;
    if (now >= header.absoluteDeadline) return null;
    const mtimeMs = await current.lastUse();
    if (mtimeMs === null || isExpired(header, mtimeMs, now)) return null;
    return { ...stored, mtimeMs };
  }

  /**
   * Removes expired sessions and what killed processes left behind (for files: stale locks, old
   * temp files). Decides expiry from clear-text headers (never decrypts), a bounded number of
   * entries at a time, and leaves the event loop free: safe while other processes read and write.
   */
  async gc(options: GcOptions = {}): Promise<GcReport> {
    const started = performance.now();
    const counts = await this.#backend.sweep({
      dryRun: options.dryRun === true,
      isExpired: (header, mtimeMs) => isExpired(header, mtimeMs, this.#options.now()),
      isBusy: (name) => this.#queues.has(name),
      onError: (error) => this.emit('warning', { message: 'gc could not process an entry of the store', error }),
    });
    const report: GcReport = { ...counts, durationMs: performance.now() - started };
    this.emit('gc', report);
    return report;
  }

  /**
   * Counts what is stored, from clear-text headers and sizes only (no decryption, no key needed
   * beyond opening the store): sessions, bytes, expired-but-not-collected, debris, per key id, and
   * how long the live sessions have left. Streams like gc.
   */
  async stats(): Promise<StoreStats> {
    const now = this.#options.now();
    const expiresIn = EXPIRY_BUCKETS.map((bucket) => ({ ...bucket, sessions: 0 }));
    const byKeyId: Record<string, number> = {};
    const totals = { sessions: 0, bytes: 0, live: 0, expired: 0, tombstones: 0, unreadable: 0, debris: 0 };
    let oldestCreated: number | null = null;
    let newestCreated: number | null = null;
    for await (const item of this.#backend.scan()) {
      if (item.kind === 'debris') {
        totals.debris++;
        continue;
      }
      totals.sessions++;
      if (item.kind === 'unreadable') {
        totals.unreadable++;
        continue;
      }
      totals.bytes += item.size;
      const { header } = item;
      if (header === null || header === undefined) {
        totals.unreadable++;
        continue;
      }
      byKeyId[header.keyIdHex] = (byKeyId[header.keyIdHex] ?? 0) + 1;
      if (isExpired(header, item.lastUseMs, now)) {
        totals.expired++;
        continue;
      }
      if (isTombstone(header)) {
        totals.tombstones++;
        continue;
      }
      totals.live++;
      oldestCreated = Math.min(oldestCreated ?? header.created, header.created);
      newestCreated = Math.max(newestCreated ?? header.created, header.created);
      const left = (expiresAt(header, item.lastUseMs) - now) / 1000;
      expiresIn.find((bucket) => left <= bucket.upTo)!.sessions++;
    }
    return { ...totals, byKeyId, oldestCreated, newestCreated, expiresIn };
  }

  /**
   * Ends every live session whose data matches `predicate` ("log out everywhere"), streaming
   * over the store. Returns how many were ended.
   */
  async destroyWhere(predicate: (session: Session) => boolean): Promise<number> {
    let ended = 0;
    for await (const session of this.sessions()) {
      if (predicate(session) && (await this.destroy(session.id))) ended++;
    }
    return ended;
  }
}

/** Buckets of "time left before expiry", in seconds. */
const EXPIRY_BUCKETS = [
  { label: '< 1 min', upTo: 60 },
  { label: '< 5 min', upTo: 300 },
  { label: '< 15 min', upTo: 900 },
  { label: '< 30 min', upTo: 1800 },
  { label: '< 1 h', upTo: 3600 },
  { label: '< 1 day', upTo: 86_400 },
  { label: '≥ 1 day', upTo: Number.POSITIVE_INFINITY },
] as const;

export interface StoreStats {
  /** Session files, live or not. */
  readonly sessions: number;
  /** Bytes of the session files. */
  readonly bytes: number;
  readonly live: number;
  /** Expired, not yet removed by gc. */
  readonly expired: number;
  /** Sessions destroyed through a framework store whose tombstone stands until the session's own end (then gc removes it). */
  readonly tombstones: number;
  /** Files with a session's name but not our format. */
  readonly unreadable: number;
  /** Lock folders and temp files (in use or left by killed processes). */
  readonly debris: number;
  /** Session files per key id (hex): what a key rotation still has to rewrite. */
  readonly byKeyId: Readonly<Record<string, number>>;
  /** Creation times (ms) of the oldest and newest live sessions. */
  readonly oldestCreated: number | null;
  readonly newestCreated: number | null;
  /** Live sessions by time left before they expire. */
  readonly expiresIn: ReadonlyArray<{ readonly label: string; readonly upTo: number; readonly sessions: number }>;
}

const MAX_IDLE_SECONDS = 0xffff_ffff;

/**
 * A framework session's deadlines. With a cookie expiry, as much idle time as the cookie has left
 * (whole seconds, rounded up: a framework store checks the exact expiry on every read), so that
 * a keep-alive mark moves its end as the framework's `touch` moves the cookie; without one, the
 * store's idle timeout. The absolute timeout from creation bounds both: the store's timeouts bound
 * every session, whatever the framework (unlike MemoryStore, which keeps a session without a cookie
 * expiry forever).
 */
function cookieDeadlines(expires: number | null, created: number, now: number, options: ResolvedOptions): { absoluteDeadline: number; idleSeconds: number } {
  const absoluteDeadline = created + options.absoluteTimeout * 1000;
  if (expires === null) return { absoluteDeadline, idleSeconds: options.idleTimeout };
  // Already over: stored (as a framework's own store would), and expired from the start.
  if (expires <= now) return { absoluteDeadline: Math.min(absoluteDeadline, expires), idleSeconds: 1 };
  return { absoluteDeadline, idleSeconds: Math.min(MAX_IDLE_SECONDS, Math.ceil((expires - now) / 1000)) };
}

function lastDeadline(batch: readonly Job[]): CommitOptions | undefined {
  let deadline: CommitOptions | undefined;
  for (const job of batch) if (job.kind === 'commit' && job.deadline !== undefined) deadline = job.deadline;
  return deadline;
}

type JobResult = 'changed' | 'unchanged' | 'gone' | 'existed' | 'absent' | SealedSessionError;

interface Plan {
  readonly exists: boolean;
  readonly data: SessionData;
  readonly dataJson: string;
  readonly results: readonly JobResult[];
  readonly tooLarge: boolean;
}

function jsonOf(data: SessionData): string {
  return JSON.stringify(Object.fromEntries(data));
}

/**
 * Replays a batch of jobs, in order, onto the latest stored version (pure: decides, writes
 * nothing). `tombstone`: the session was destroyed before the batch.
 */
function planBatch(base: StoredSession | null, tombstone: boolean, batch: readonly Job[], maxBytes: number, checkEach: boolean): Plan {
  let exists = base !== null;
  let destroyed = tombstone;
  let data: SessionData = base?.data ?? new Map<string, JsonValue>();
  // Only the one-by-one replay needs the JSON of every step.
  let dataJson = checkEach ? jsonOf(data) : '';
  const results: JobResult[] = [];
  for (const job of batch) {
    if (job.kind === 'destroy') {
      results.push(exists ? 'existed' : 'absent');
      exists = false;
      destroyed = true;
      data = new Map();
      continue;
    }
    if (destroyed || (!exists && !job.isNew)) {
      results.push('gone');
      continue;
    }
    const next = applyChanges(data, job.changes);
    if (checkEach) {
      const json = jsonOf(next);
      if (Buffer.byteLength(json, 'utf8') > maxBytes) {
        results.push(tooLargeError(maxBytes));
        continue;
      }
      dataJson = json;
    }
    data = next;
    exists = true;
    results.push('changed');
  }
  if (!checkEach) dataJson = jsonOf(data);
  return { exists, data, dataJson, results, tooLarge: exists && Buffer.byteLength(dataJson, 'utf8') > maxBytes };
}

/** Resolves (or rejects) each job of a batch as its plan says, once the update is done. */
function settleBatch(batch: readonly Job[], plan: Plan, written: boolean): void {
  batch.forEach((job, index) => {
    const result = plan.results[index]!;
    if (job.kind === 'destroy') {
      job.resolve(result === 'existed');
    } else if (result instanceof SealedSessionError) {
      job.reject(result);
    } else if (result === 'gone') {
      inside.markGone(job.session);
      job.resolve('gone');
    } else {
      inside.committed(job.session, plan.data);
      job.resolve(result === 'changed' && written ? 'written' : 'unchanged');
    }
  });
}

function tooLargeError(maxBytes: number): SealedSessionError {
  return new SealedSessionError('ERR_SESSION_TOO_LARGE', `a session may hold at most ${maxBytes} bytes of JSON`);
}
