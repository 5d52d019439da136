import type { EnvelopeHeader } from '../crypto/seal.js';

/*
 * The one seam between the store and where sessions live. A backend keeps sealed envelopes
 * under one-way names (never an id), and knows nothing of sessions' data, merging or keys: the
 * store seals, opens, merges and decides expiry; a backend stores bytes, serialises the updates of
 * one session across processes (a lock for files, a compare-and-set for Redis), and streams its
 * clear-text headers for gc, stats and the operations.
 */

/** One stored version of a session, as a backend holds it. */
export interface StoredEnvelope {
  /** The sealed bytes, exactly as stored (the backend never opens them). */
  readonly bytes: Buffer;
  /** When the session was last used, ms: its last write, or a later keep-alive mark. */
  readonly lastUseMs: number;
  /** Names this stored version: a later `read` that passes it back may be answered `unchanged`. */
  readonly version: string;
}

/** A `read` that found the version it was given still in place (only the last use may have moved). */
export interface Unchanged {
  readonly unchanged: true;
  readonly lastUseMs: number;
}

/** Something stands in a session's place that cannot be read as one (a FIFO, a symlink, a folder, say). */
export interface Unreadable {
  readonly unreadable: true;
}

/** The session as an update finds it, under exclusive access. */
export interface CurrentEnvelope {
  /** Empty when what stands there cannot be read as an envelope. */
  readonly bytes: Buffer;
  /**
   * The last use, ms (null: gone meanwhile). Asked for only when the header cannot settle expiry
   * alone: for files it costs a system call the common commit does without.
   */
  lastUse(): Promise<number | null>;
}

/** What an update does once it has seen the current envelope. */
export type Decision<T> =
  | { readonly action: 'keep'; readonly result: T }
  | { readonly action: 'remove'; readonly result: T }
  | {
      readonly action: 'write';
      readonly bytes: Buffer;
      /** When the session written expires (a backend whose entries expire by themselves uses it). */
      readonly expiresAtMs: number;
      /** The last use to keep, when it is not "now" (a rewrite that must not extend a session's life). */
      readonly lastUseMs?: number;
      readonly result: T;
    };

export interface UpdateOptions {
  /**
   * Nobody else can know this name yet (an id generated in this process and never stored): the
   * update may skip exclusive access and the read; `decide` then sees null.
   */
  readonly fresh?: boolean;
  /** The caller keeps what it wrote (a read cache): report the new version. */
  readonly wantVersion?: boolean;
  /**
   * What the caller believes is stored (its read cache): a backend that commits by
   * compare-and-set may let `decide` start from it instead of reading first — a wrong belief
   * only costs a failed compare and a read. A backend that reads under a lock ignores it.
   */
  readonly believed?: { readonly version: string; readonly bytes: Buffer };
}

export interface UpdateOutcome<T> {
  readonly result: T;
  /** The version just written, when the update wrote and the backend can tell it cheaply. */
  readonly version?: string | undefined;
}

/** One entry of a scan. No entry carries an id: names are one-way. */
export type ScanItem =
  | {
      readonly kind: 'session';
      readonly name: string;
      /**
       * The clear-text header (not authenticated: good for expiry and counts only); null when the
       * bytes are not our format; undefined when the scan was asked for names only.
       */
      readonly header: EnvelopeHeader | null | undefined;
      readonly lastUseMs: number;
      /** Stored size in bytes. */
      readonly size: number;
    }
  | {
      /** Something in a session's place that cannot be read as one (not a regular file, say). */
      readonly kind: 'unreadable';
      readonly name: string | null;
      readonly location: string;
      readonly reason: string;
    }
  | {
      /** Leftovers of an update: a lock or a temp file. `stale` when its owner is surely gone. */
      readonly kind: 'debris';
      readonly what: 'lock' | 'temp';
      /** The session it belongs to. */
      readonly name: string | null;
      readonly location: string;
      readonly stale: boolean;
    };

export interface SweepOptions {
  readonly dryRun: boolean;
  /** Whether a session has expired, from its header and last use (asked again under exclusive access before removal). */
  readonly isExpired: (header: EnvelopeHeader, lastUseMs: number) => boolean;
  /** A session this process is committing right now: left alone (it is in use). */
  readonly isBusy: (name: string) => boolean;
  /** One entry's trouble; the sweep goes on with the rest. */
  readonly onError: (error: unknown) => void;
}

/** What a sweep found and did (the store's gc report, less its duration). */
export interface SweepCounts {
  /** Session entries looked at. */
  readonly scanned: number;
  /** Expired sessions found (and removed, unless a dry run or in use at that moment). */
  readonly expired: number;
  readonly removed: number;
  /** Leftovers of killed processes (for files: stale lock folders and old temp files). */
  readonly debris: number;
  readonly debrisRemoved: number;
  /** Entries whose header is not ours, or that are no file at all (left alone; `sealed-sessions verify` reports them). */
  readonly unreadable: number;
  /** Entries that could not be processed (each reported through the store's `warning` event); the rest was collected. */
  readonly errors: number;
}

/** What a quarantine did to one session. */
export type QuarantineOutcome = 'quarantined' | 'resolved';

export interface Backend {
  /** Where the sessions are, for people: a folder, a server. Never a secret. */
  readonly location: string;
  /** What `open` found that puts sessions at risk (a server setting, say): the store reports each through its `warning` event. */
  readonly warnings?: readonly string[];
  /** Prepares the storage (creates the data dir, say). Reads no session: fast whatever their number. */
  open(): Promise<void>;
  /** Where one session is, for reports (relative, and holding no id). */
  locate(name: string): string;
  /**
   * The stored envelope of `name`, or null when there is none (a missing entry is a normal
   * answer, not an error). With `known`, the version the caller holds: `Unchanged` when it is
   * still the one stored. `Unreadable` when what is there is no envelope at all; it never blocks
   * and is never followed elsewhere.
   */
  read(name: string, known?: string): Promise<StoredEnvelope | Unchanged | Unreadable | null>;
  /**
   * Read, decide, write: one session's update, exclusive against every other update of that
   * session in any process. `decide` may run more than once (a backend that retries on a
   * conflict), so it must only compute. Resolves once whatever guarded the update is released.
   */
  update<T>(name: string, decide: (current: CurrentEnvelope | null) => Decision<T> | Promise<Decision<T>>, options?: UpdateOptions): Promise<UpdateOutcome<T>>;
  /**
   * Marks use without rewriting: last use becomes `atMs`, the expiry `expiresAtMs`. Null when it
   * is gone. Else, when the mark changed the stored version and the entry was `known` (the
   * version a read cache holds) right before it, the version after it, so that cache stays
   * valid; undefined when that cannot be told.
   */
  keepAlive(name: string, atMs: number, expiresAtMs: number, known?: string): Promise<{ readonly version?: string | undefined } | null>;
  /**
   * Streams every stored session's header, and what else is found, a bounded amount at a time.
   * `headers: false`: names only (for a caller that reads every session whole anyway).
   */
  scan(options?: { readonly headers?: boolean }): AsyncIterable<ScanItem>;
  /** Removes expired sessions (re-checked under exclusive access) and stale debris. */
  sweep(options: SweepOptions): Promise<SweepCounts>;
  /** Clears one piece of stale debris found by `scan`; false when it was gone or in use again. */
  clearDebris(item: Extract<ScanItem, { kind: 'debris' }>): Promise<boolean>;
  /** Makes sure a quarantine run can go where it should (for files: a real folder inside the data dir); throws otherwise. */
  openQuarantine(): Promise<void>;
  /**
   * Moves a session's entry out of the way, never deleting it, when `stillBad` says so under
   * exclusive access (it may have been rewritten meanwhile). `batch` names the quarantine run.
   */
  quarantine(name: string, batch: string, stillBad: (current: Buffer | null) => boolean): Promise<QuarantineOutcome>;
  /** Stores a note beside a quarantine run (why each entry is there); where it went, for people. */
  noteQuarantine(batch: string, note: Buffer): Promise<string>;
  /** The stored envelope exactly as it is, however large, for copies between stores; null when there is none. */
  copyOut(name: string): Promise<{ readonly bytes: Buffer; readonly lastUseMs: number } | null>;
  /**
   * Stores an envelope as it is, for copies between stores (backup, migration): only when
   * `name` holds nothing yet. False when it did.
   */
  copyIn(name: string, envelope: { readonly bytes: Buffer; readonly lastUseMs: number; readonly expiresAtMs: number }): Promise<boolean>;
}
