import { EventEmitter } from 'node:events';
import { applyChanges, type ChangeSet, type SessionData } from './changes.js';
import { SealedSessionError, sessionTypeError } from '../errors.js';
import { forEachLimited } from './for-each-limited.js';
import { FileBackend, plaintextOf, type ScanEntry, type StoredSession, type TamperReason } from '../backends/file/file-backend.js';
import type { JsonValue } from './json-value.js';
import { resolveSecrets } from '../crypto/key-source.js';
import { keyFileAccess } from '../backends/file/io.js';
import { createKeyring, generateKey } from '../crypto/keys.js';
import { resolveOptions, type ResolvedOptions, type StoreOptions } from './options.js';
import type { EnvelopeHeader } from '../crypto/seal.js';
import { Session, sessionInternals } from './session.js';
import { generateId, isStorableId, MAX_STORABLE_ID } from './session-id.js';

const inside = sessionInternals();

/** What a commit did: wrote a new version, found nothing to write, or found the session destroyed or expired. */
export type CommitOutcome = 'written' | 'unchanged' | 'gone';

/** @internal Deadlines set by the caller instead of the store's timeouts (express-session's cookie decides there). */
export interface CommitOptions {
  /** When the session expires, ms since the epoch; null: never (it is not idle-expired either). */
  readonly expires: number | null;
}

export interface GcOptions {
  /** Count what would be removed, remove nothing. */
  dryRun?: boolean;
}

export interface GcReport {
  /** Session files looked at. */
  readonly scanned: number;
  /** Expired sessions found (and removed, unless a dry run or in use at that moment). */
  readonly expired: number;
  readonly removed: number;
  /** Leftovers of killed processes: stale lock folders and old temp files. */
  readonly debris: number;
  readonly debrisRemoved: number;
  /** Files whose header is not ours (left alone; `sealed-sessions verify` reports them). */
  readonly unreadable: number;
  /** Files gc could not process (each reported through the `warning` event); the rest was collected. */
  readonly errors: number;
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
  | { readonly kind: 'destroy'; readonly resolve: (existed: boolean) => void; readonly reject: (error: unknown) => void };

interface Queue {
  readonly id: string;
  jobs: Job[];
}

/** When a session was last used: its last write, or a later keep-alive mark (the file's mtime). */
export function lastUse(header: EnvelopeHeader, mtimeMs: number): number {
  return Math.max(header.written, mtimeMs);
}

/** When a session expires: idle since its last use, or at its absolute deadline, whichever is first. */
export function expiresAt(header: EnvelopeHeader, mtimeMs: number): number {
  return Math.min(header.absoluteDeadline, lastUse(header, mtimeMs) + header.idleSeconds * 1000);
}

/** Whether a session has expired: its own deadlines, from the clear-text header; mtime is the last keep-alive. */
export function isExpired(header: EnvelopeHeader, mtimeMs: number, now: number): boolean {
  return now >= expiresAt(header, mtimeMs);
}

/** Opens (creating if needed) a session store. Fast whatever the number of stored sessions: it reads no session. */
export async function openStore(options: StoreOptions = {}): Promise<Store> {
  const resolved = resolveOptions(options);
  const keyring = createKeyring(await resolveSecrets(resolved.keys, resolved.dir, keyFileAccess));
  const backend = new FileBackend(
    resolved.dir,
    keyring,
    resolved.io,
    { staleMs: resolved.lockStaleMs, waitMs: resolved.lockWaitMs },
    resolved.maxBytes,
    resolved.cacheSize,
  );
  await backend.open();
  return new Store(resolved, backend);
}

/**
 * Sessions in sealed files. Reads take no lock; each commit locks the session's file, reads its
 * latest version, replays this session's changes onto it, and writes atomically (the first commit
 * of a session made by `create()` needs neither lock nor read: no one else can know its id yet).
 * Commits of one session within this process queue in memory and are coalesced into one write.
 */
export class Store extends EventEmitter<StoreEvents> {
  readonly #options: ResolvedOptions;
  readonly #backend: FileBackend;
  readonly #queues = new Map<string, Queue>();
  /** Session files whose lock gc is taking or holding in this process, and when it is done. */
  readonly #gcLocks = new Map<string, Promise<unknown>>();
  readonly #signingSecrets: readonly string[];
  /**
   * Sessions made by `create()` whose id has not been written yet: 256 random bits generated in
   * this process, so no file of that name exists and no other process can be writing one. Their
   * first commit needs neither the lock nor a read of the latest version.
   */
  readonly #unclaimed = new WeakSet<Session>();

  /** @internal Use `openStore()`. */
  constructor(options: ResolvedOptions, backend: FileBackend) {
    super();
    this.#options = options;
    this.#backend = backend;
    this.#signingSecrets = Object.freeze(backend.keyring.keys.map((key) => key.cookieSecret));
  }

  /** The data dir (absolute). */
  get dir(): string {
    return this.#options.dir;
  }

  get options(): ResolvedOptions {
    return this.#options;
  }

  /** Cookie signing secrets derived from the keys: the first signs, all verify. */
  get signingSecrets(): readonly string[] {
    return this.#signingSecrets;
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
      const name = this.#backend.nameOf(id);
      touched = await this.#backend.touch(name, now).catch((error: unknown) => {
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
   * Every live session, streamed from the data dir (one folder at a time): for listings such as
   * express-session's `all()`. Files that fail to open are reported through `tamper` and skipped.
   */
  async *sessions(): AsyncGenerator<Session> {
    for await (const entry of this.#backend.scan()) {
      if (entry.kind !== 'session') continue;
      const outcome = await this.#backend.readName(entry.name);
      if (outcome.state === 'tampered') this.emit('tamper', { file: this.#backend.relative(entry.name), reason: outcome.reason });
      if (outcome.state !== 'found') continue;
      const { session } = outcome;
      if (!isExpired(session.header, session.mtimeMs, this.#options.now())) yield new Session(session.id, session.data, false, this);
    }
  }

  /** True when committing `session` would store something (it is new or has changes). */
  needsCommit(session: Session): boolean {
    return !session.isGone && (session.isNew || inside.hasPendingChanges(session));
  }

  async #readLive(id: string): Promise<StoredSession | null> {
    if (!isStorableId(id)) return null;
    const outcome = await this.#backend.read(id);
    if (outcome.state === 'missing') return null;
    if (outcome.state === 'tampered') {
      this.emit('tamper', { file: this.#backend.relative(this.#backend.nameOf(id)), reason: outcome.reason });
      return null;
    }
    return isExpired(outcome.session.header, outcome.session.mtimeMs, this.#options.now()) ? null : outcome.session;
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

  /** Ends a session: its file is gone when this resolves. True when there was one. */
  destroy(id: string): Promise<boolean> {
    if (!isStorableId(id)) return Promise.resolve(false);
    return new Promise((resolve, reject) => this.#enqueue(id, { kind: 'destroy', resolve, reject }));
  }

  #enqueue(id: string, job: Job): void {
    const name = this.#backend.nameOf(id);
    const queue = this.#queues.get(name);
    if (queue !== undefined) {
      queue.jobs.push(job);
      return;
    }
    const fresh: Queue = { id, jobs: [job] };
    this.#queues.set(name, fresh);
    void this.#drain(name, fresh);
  }

  // One writer per session file in this process: jobs that queue up while it writes are taken
  // together as the next batch, so N waiting commits cost one lock and one write, not N.
  async #drain(name: string, queue: Queue): Promise<void> {
    while (queue.jobs.length > 0) {
      const batch = queue.jobs;
      queue.jobs = [];
      let settle: () => void;
      try {
        settle = batch.every((job) => job.kind === 'commit' && job.unclaimed)
          ? await this.#backend.withoutLock(name, () => this.#runBatch(name, queue.id, batch, () => undefined, true))
          : await this.#backend.withLock(name, (assertHeld) => this.#runBatch(name, queue.id, batch, assertHeld, false));
      } catch (error) {
        for (const job of batch) job.reject(error);
        continue;
      }
      // Only now, with the lock released (and checked not to have been lost), do the commits
      // resolve: the response that waits for them goes out with nothing left held.
      settle();
      // Let the writers just settled run on before the next batch is taken, so that whatever
      // they commit next joins it: one write for all, rather than alternating half batches.
      await new Promise((resolve) => setImmediate(resolve));
    }
    this.#queues.delete(name);
  }

  /** Writes the batch's outcome under the lock; returns how to settle its jobs once the lock is released. */
  async #runBatch(name: string, id: string, batch: readonly Job[], assertHeld: () => void, unclaimed: boolean): Promise<() => void> {
    const latest = unclaimed ? ({ state: 'missing' } as const) : await this.#backend.readLatest(id);
    const now = this.#options.now();
    if (latest.state === 'tampered') this.emit('tamper', { file: this.#backend.relative(name), reason: latest.reason });
    const onDisk = latest.state !== 'missing';
    const base = latest.state === 'found' ? await this.#liveBase(name, latest.session, now) : null;

    let plan = planBatch(base, batch, this.#options.maxBytes, false);
    // Too large together: replay one by one, refusing only the commits that cross the limit.
    if (plan.tooLarge) plan = planBatch(base, batch, this.#options.maxBytes, true);

    let written = false;
    if (!plan.exists) {
      // Only a destroy removes a file. A file this process cannot open (sealed under a key it
      // lacks, say, by a newer server mid-rotation) is left alone: it is "no session" here, not
      // ours to delete.
      if (onDisk && batch.some((job) => job.kind === 'destroy')) {
        assertHeld();
        await this.#backend.remove(name);
      }
    } else {
      const plaintext = plaintextOf(id, plan.dataJson);
      const deadline = lastDeadline(batch);
      const absoluteDeadline =
        deadline !== undefined
          ? (deadline.expires ?? Number.POSITIVE_INFINITY)
          : (base?.header.absoluteDeadline ?? now + this.#options.absoluteTimeout * 1000);
      // A caller-set deadline is the only one: such a session is never idle-expired.
      const idleSeconds = deadline !== undefined ? MAX_IDLE_SECONDS : this.#options.idleTimeout;
      const stale =
        base === null ||
        plaintext !== base.plaintext ||
        base.header.keyIdHex !== this.#backend.keyring.primary.idHex ||
        base.header.absoluteDeadline !== absoluteDeadline ||
        base.header.idleSeconds !== idleSeconds;
      if (stale) {
        written = true;
        assertHeld();
        await this.#backend.write(name, id, plan.data, plaintext, {
          created: base?.header.created ?? now,
          written: now,
          absoluteDeadline,
          idleSeconds,
        });
      }
    }

    return () => batch.forEach((job, index) => {
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

  /**
   * The stored session a commit merges onto, or null when it expired. Read without its mtime: a
   * session idle by its header may still have been kept alive by keep-alive marks since, so
   * only then is the mtime asked for (a stat), never on the common path.
   */
  async #liveBase(name: string, stored: StoredSession, now: number): Promise<StoredSession | null> {
    const { header } = stored;
    if (!isExpired(header, header.written, now)) return stored;
    if (now >= header.absoluteDeadline) return null;
    const mtimeMs = await this.#backend.mtimeOf(name);
    if (mtimeMs === null || isExpired(header, mtimeMs, now)) return null;
    return { ...stored, mtimeMs };
  }

  /**
   * Removes expired sessions and the debris of killed processes (stale locks, old temp files).
   * Streams the data dir one folder at a time, decides expiry from clear-text headers (never
   * decrypts), and leaves the event loop free: safe while other processes read and write.
   */
  async gc(options: GcOptions = {}): Promise<GcReport> {
    const started = performance.now();
    const dryRun = options.dryRun === true;
    const counts = { scanned: 0, expired: 0, removed: 0, debris: 0, debrisRemoved: 0, unreadable: 0, errors: 0 };
    // A temp file this old was left by a killed writer; a live write takes milliseconds.
    const tempMaxAgeMs = Math.max(60_000, this.#options.lockStaleMs);
    const now = this.#options.now();

    const visit = async (entry: ScanEntry): Promise<void> => {
      if (entry.kind !== 'session') {
        // Real time, not `options.now`: lock staleness is proper-lockfile's, by the real clock.
        const age = await this.#backend.ageOf(entry.path, Date.now());
        if (age === null || age < (entry.kind === 'lock' ? this.#options.lockStaleMs : tempMaxAgeMs)) return;
        counts.debris++;
        if (dryRun) return;
        // A stale lock is cleared the way proper-lockfile takes one over — by locking (which
        // succeeds only if it is stale) and releasing — never by a bare rmdir, which could
        // remove a lock another process took over a moment earlier.
        const cleared =
          entry.kind === 'lock' ? (await this.#gcLock(entry.name, () => Promise.resolve(true))) === true : await this.#backend.removeTemp(entry.path);
        if (cleared) counts.debrisRemoved++;
        return;
      }
      counts.scanned++;
      const snapshot = await this.#backend.readHeader(entry.path);
      if (snapshot === null) return;
      if (snapshot.header === null) {
        counts.unreadable++;
        return;
      }
      if (!isExpired(snapshot.header, snapshot.mtimeMs, now)) return;
      counts.expired++;
      if (dryRun) return;
      // Under the lock, and checked again: a request may have used it a moment ago. A session
      // locked right now is in use; the next gc will see it.
      const removed = await this.#gcLock(entry.name, async (assertHeld) => {
        const again = await this.#backend.readHeader(entry.path);
        if (again === null || again.header === null || !isExpired(again.header, again.mtimeMs, this.#options.now())) return false;
        assertHeld();
        return this.#backend.remove(entry.name);
      });
      if (removed === true) counts.removed++;
    };

    await forEachLimited(this.#backend.scan(), 8, async (entry) => {
      // One file's trouble (a disk error, a lock that cannot be taken) is reported and counted,
      // and gc goes on with the rest.
      await visit(entry).catch((error: unknown) => {
        counts.errors++;
        this.emit('warning', { message: 'gc could not process a file of the data dir', error });
      });
    });
    const report: GcReport = { ...counts, durationMs: performance.now() - started };
    this.emit('gc', report);
    return report;
  }

  /**
   * Runs `fn` under a session file's lock if it can be had at once; undefined otherwise. Never
   * competes with this process's own commits of that file, nor with itself: two contenders taking
   * over the same stale lock at once could both believe they hold it (a race inside
   * proper-lockfile's takeover), so within this process there is only ever one at a time.
   */
  async #gcLock<T>(name: string, fn: (assertHeld: () => void) => Promise<T>): Promise<T | undefined> {
    // gc visits a session file and its lock folder side by side: the second waits for the first.
    for (let pending = this.#gcLocks.get(name); pending !== undefined; pending = this.#gcLocks.get(name)) {
      await pending.catch(() => undefined);
    }
    if (this.#queues.has(name)) return undefined;
    const attempt = this.#backend.tryLock(name, fn);
    this.#gcLocks.set(name, attempt);
    try {
      return await attempt;
    } finally {
      this.#gcLocks.delete(name);
    }
  }

  /**
   * Counts what is on disk, from clear-text headers and file sizes only (no decryption, no key
   * needed beyond opening the store): sessions, bytes, expired-but-not-collected, debris, per key
   * id, and how long the live sessions have left. Streams like gc.
   */
  async stats(): Promise<StoreStats> {
    const now = this.#options.now();
    const expiresIn = EXPIRY_BUCKETS.map((bucket) => ({ ...bucket, sessions: 0 }));
    const byKeyId: Record<string, number> = {};
    const totals = { sessions: 0, bytes: 0, live: 0, expired: 0, unreadable: 0, debris: 0 };
    let oldestCreated: number | null = null;
    let newestCreated: number | null = null;
    await forEachLimited(this.#backend.scan(), 8, async (entry) => {
      if (entry.kind !== 'session') {
        totals.debris++;
        return;
      }
      const snapshot = await this.#backend.readHeader(entry.path);
      if (snapshot === null) return;
      totals.sessions++;
      totals.bytes += snapshot.size;
      const { header } = snapshot;
      if (header === null) {
        totals.unreadable++;
        return;
      }
      byKeyId[header.keyIdHex] = (byKeyId[header.keyIdHex] ?? 0) + 1;
      if (isExpired(header, snapshot.mtimeMs, now)) {
        totals.expired++;
        return;
      }
      totals.live++;
      oldestCreated = Math.min(oldestCreated ?? header.created, header.created);
      newestCreated = Math.max(newestCreated ?? header.created, header.created);
      const left = (expiresAt(header, snapshot.mtimeMs) - now) / 1000;
      expiresIn.find((bucket) => left <= bucket.upTo)!.sessions++;
    });
    return { ...totals, byKeyId, oldestCreated, newestCreated, expiresIn };
  }

  /**
   * Ends every live session whose data matches `predicate` ("log out everywhere"), streaming
   * over the data dir. Returns how many were ended.
   */
  async destroyWhere(predicate: (session: Session) => boolean): Promise<number> {
    let ended = 0;
    for await (const session of this.sessions()) {
      if (predicate(session) && (await this.destroy(session.id))) ended++;
    }
    return ended;
  }

  /** @internal The file layer, for the operations CLI (verify, rekey, backup, show). */
  get backend(): FileBackend {
    return this.#backend;
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

/** Replays a batch of jobs, in order, onto the latest stored version (pure: decides, writes nothing). */
function planBatch(base: StoredSession | null, batch: readonly Job[], maxBytes: number, checkEach: boolean): Plan {
  let exists = base !== null;
  let destroyed = false;
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

function tooLargeError(maxBytes: number): SealedSessionError {
  return new SealedSessionError('ERR_SESSION_TOO_LARGE', `a session may hold at most ${maxBytes} bytes of JSON`);
}

/**
 * @internal A store for the operations CLI's header-only work (`stats`, `gc`, `backup`) when no
 * key is at hand: it needs none and makes none (no development key file), and creates nothing
 * (the data dir must exist). Its keyring is one random throwaway key, so it opens no session —
 * every file reads as sealed with an unknown key — and it must never commit one.
 */
export async function openKeylessStore(options: Omit<StoreOptions, 'keys'> = {}): Promise<Store> {
  const resolved = resolveOptions({ ...options, keys: undefined });
  const backend = new FileBackend(
    resolved.dir,
    createKeyring([generateKey()]),
    resolved.io,
    { staleMs: resolved.lockStaleMs, waitMs: resolved.lockWaitMs },
    resolved.maxBytes,
    resolved.cacheSize,
  );
  return new Store(resolved, backend);
}
