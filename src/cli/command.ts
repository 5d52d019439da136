import path from 'node:path';
import { parseArgs } from 'node:util';
import { errorCode, isSealedSessionError, SealedSessionError } from '../errors.js';
import { defaultIo, keyFileAccess, operationsIo, type Io } from '../backends/file/io.js';
import { redisBackend } from '../backends/redis/redis-backend.js';
import type { Backend } from '../core/backend.js';
import type { Store } from '../core/store.js';
import { configuredSecrets, readKeyFileText } from '../crypto/key-source.js';
import { splitKeys } from '../crypto/keys.js';
import { openKeylessStore, openStore } from '../open-store.js';
import { connectRedis, isRedisUrl } from '../ops/redis-connection.js';
import { countScans, folderCount, folderProgressIo, startCounter, startProgress, type Progress } from './progress.js';

/** Exit codes: 0 ok, 1 problems found, 2 usage error. */
export type ExitCode = 0 | 1 | 2;

export interface CliIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  /** Where progress bars are drawn: stderr when it is a terminal; undefined (piped, tests) keeps quiet. */
  readonly progress?: NodeJS.WritableStream | undefined;
}

/** Thrown inside a command to end it with exit code 2 and a one-line hint. */
export class UsageError extends Error {}

type OptionSpec = { readonly type: 'string' | 'boolean'; readonly short?: string; readonly multiple?: boolean };

/** Options every command that works on a data dir takes. */
export const DATA_DIR_OPTIONS = {
  dir: { type: 'string' },
  json: { type: 'boolean' },
  'key-file': { type: 'string' },
} as const satisfies Record<string, OptionSpec>;

export const DATA_DIR_HELP = `  --dir D          the data dir (default sessions-data)
  --json           print the result as JSON on stdout
  --key-file F     a file holding the keys (one a line, or comma-separated; mode 0600, yours,
                   not a symlink); default: SESSION_KEYS, else (NODE_ENV unset, development or
                   test) the development key beside the data dir, if there is one
  -h, --help       show this help`;

/**
 * How long one Redis call of a command may take. Longer than a server's 5 s: a command is a batch
 * job (a scan pipelines thousands of reads), where a slow answer is better than a failed run.
 */
export const REDIS_CALL_TIMEOUT_MS = 30_000;

/** The library's default key prefix on Redis. */
export const DEFAULT_PREFIX = 'sess:';

/** Options of the commands that work on stored sessions, in a data dir or in Redis. */
export const STORE_OPTIONS = {
  ...DATA_DIR_OPTIONS,
  redis: { type: 'string', multiple: true },
  prefix: { type: 'string' },
} as const satisfies Record<string, OptionSpec>;

export const STORE_HELP = `  --dir D          the data dir (default sessions-data)
  --redis URL      the sessions are in Redis instead: redis://[user:password@]host[:port][/db]
                   or rediss://… (TLS); a Cluster: --redis once per seed node (one node of a
                   cluster is enough: it is recognised). Needs the \`redis\` package
  --prefix P       with --redis: the keys' prefix (default ${DEFAULT_PREFIX})
  --json           print the result as JSON on stdout
  --key-file F     a file holding the keys (one a line, or comma-separated; mode 0600, yours,
                   not a symlink); default: SESSION_KEYS, else (NODE_ENV unset, development or
                   test; not with --redis) the development key beside the data dir, if there is one
  -h, --help       show this help`;

/**
 * What every command's help says of exit code 2. A data dir that is not there is a usage error
 * (a mistyped --dir, which no command creates); one that is there but cannot be read, or a Redis
 * that does not answer, is a failure (1).
 */
export function usageExit(dirOption = '--dir'): string {
  return `2 usage error (a bad or missing option or argument, no data dir at ${dirOption}, no \`redis\` package for a Redis URL)`;
}

export const USAGE_EXIT = usageExit();

/** Where the sessions are: a data dir, or Redis keys under a prefix. */
export type Where = { readonly kind: 'dir'; readonly dir: string } | { readonly kind: 'redis'; readonly urls: readonly string[]; readonly prefix: string };

/** A store opened for one command run, with its progress display; `close` ends the Redis connection, if any. */
export interface OpenedStore {
  readonly store: Store;
  readonly progress: Progress;
  /** What one session is called in messages: a `file` in a data dir, a `key` in Redis. */
  readonly unit: 'file' | 'key';
  /** Sentences about what opening found at risk (a Redis setting, say). */
  readonly warnings: readonly string[];
}

export interface Parsed {
  readonly values: Readonly<Record<string, string | boolean | Array<string | boolean> | undefined>>;
  readonly positionals: readonly string[];
}

/** One command's run: its name, its output and its parsed arguments. */
export class Command {
  readonly name: string;
  readonly io: CliIo;
  readonly values: Parsed['values'];
  readonly positionals: readonly string[];

  private constructor(name: string, io: CliIo, parsed: Parsed) {
    this.name = name;
    this.io = io;
    this.values = parsed.values;
    this.positionals = parsed.positionals;
  }

  /**
   * Parses `args` strictly; `--help` prints `help` and ends with 0. Positional arguments may follow
   * `--` (an id can start with `-`).
   */
  static parse(name: string, io: CliIo, args: readonly string[], help: string, options: Record<string, OptionSpec>): Command | ExitCode {
    const all: Record<string, OptionSpec> = { help: { type: 'boolean', short: 'h' }, ...options };
    let parsed;
    try {
      parsed = parseArgs({ args: [...args], options: all, allowPositionals: true, strict: true });
    } catch (error) {
      return usage(io, name, parseProblem(error, args, all));
    }
    if (parsed.values['help'] === true) {
      io.out(help);
      return 0;
    }
    return new Command(name, io, parsed as Parsed);
  }

  string(option: string): string | undefined {
    const value = this.values[option];
    if (value === undefined) return undefined;
    if (typeof value !== 'string' || value === '') throw new UsageError(`--${option} must not be empty`);
    return value;
  }

  flag(option: string): boolean {
    return this.values[option] === true;
  }

  get json(): boolean {
    return this.flag('json');
  }

  /** The positional arguments, exactly `count` of them (`label` names them in the hint). */
  expectPositionals(count: number, label: string): readonly string[] {
    if (this.positionals.length < count) throw new UsageError(`missing ${label}`);
    if (this.positionals.length > count) throw new UsageError(count === 0 ? `unexpected argument` : `expected one ${label}`);
    return this.positionals;
  }

  /**
   * The data dir (absolute); it must exist (a command never creates one by mistake): a missing
   * one is a usage error, one that cannot be looked at a failure. A symlink to a folder is
   * accepted, as the library accepts it. The path is returned as given, not resolved: the
   * development key sits beside the path the servers are given, which is this one.
   */
  async dataDir(): Promise<string> {
    return existingDataDir(this.string('dir') ?? 'sessions-data', '--dir');
  }

  /** `--dir`, or `--redis` (repeated for a Cluster's seed nodes) with `--prefix`; never both. */
  async where(): Promise<Where> {
    const urls = this.strings('redis');
    const prefix = this.string('prefix');
    if (urls.length === 0) {
      if (prefix !== undefined) throw new UsageError('--prefix goes with --redis');
      return { kind: 'dir', dir: await this.dataDir() };
    }
    if (this.values['dir'] !== undefined) throw new UsageError('--dir and --redis: give one of them');
    if (!urls.every(isRedisUrl)) throw new UsageError('--redis takes a redis:// or rediss:// URL');
    return { kind: 'redis', urls, prefix: prefix ?? DEFAULT_PREFIX };
  }

  /** Every value of a repeatable option; none may be empty. */
  strings(option: string): string[] {
    const values = (this.values[option] as string[] | undefined) ?? [];
    if (values.some((value) => value === '')) throw new UsageError(`--${option} must not be empty`);
    return values;
  }

  /**
   * The configured keys for `where`: for a data dir as `keys()`; for Redis `--key-file`, else
   * SESSION_KEYS (no development key: there is no data dir for one to sit beside).
   */
  async keysFor(where: Where, required: boolean): Promise<string[]> {
    if (where.kind === 'dir') return this.keys(where.dir, required);
    const keys = splitKeys((await this.keyFile()) ?? process.env['SESSION_KEYS']);
    if (required && keys.length === 0) throw new UsageError('no session keys: set SESSION_KEYS or pass --key-file');
    return keys;
  }

  /**
   * Runs `body` on the store at `where` (with `keys`, or none at all for header-only work when
   * `keys` is null), with a progress display labelled `label` (none when null), and closes the
   * Redis connection, if any, whatever happens. What opening found at risk goes to stderr.
   */
  async withStore<T>(where: Where, keys: readonly string[] | null, label: string | null, body: (opened: OpenedStore) => Promise<T>): Promise<T> {
    if (where.kind === 'dir') {
      const progress = label === null ? startProgress(undefined, '', 0) : await this.progress(where.dir, label);
      return body({ store: await this.open(where.dir, keys, progress), progress, unit: 'file', warnings: [] });
    }
    const connection = await connectRedis(where.urls);
    try {
      const progress = label === null ? startProgress(undefined, '', 0) : startCounter(this.io.progress, label, 'keys');
      const backend: Backend = countScans(redisBackend({ client: connection.client, prefix: where.prefix, timeoutMs: REDIS_CALL_TIMEOUT_MS }), () =>
        progress.tick(),
      );
      let store: Store;
      if (keys === null) {
        store = await openKeylessStore({ backend, cacheSize: 0 });
        await backend.open();
      } else {
        store = await openStore({ backend, keys: [...keys], cacheSize: 0 });
      }
      const warnings = backend.warnings ?? [];
      for (const warning of warnings) this.io.err(`${this.name}: warning: ${warning}`);
      return await body({ store, progress, unit: 'key', warnings });
    } finally {
      await connection.close();
    }
  }

  /**
   * The configured keys (`--key-file`, else SESSION_KEYS, else an existing development key);
   * never makes one. `required`: no key is a usage error.
   */
  async keys(dir: string, required: boolean): Promise<string[]> {
    const text = await this.keyFile();
    const keys = await configuredSecrets(text, dir, keyFileAccess);
    if (required && keys.length === 0) throw new UsageError('no session keys: set SESSION_KEYS or pass --key-file');
    return keys;
  }

  /**
   * The text of `--key-file`, if given: read only if it is a regular file of this user with no
   * group or other permission, never through a symlink (else `ERR_SESSION_KEY_UNSAFE`, exit 2).
   */
  async keyFile(): Promise<string | undefined> {
    const file = this.string('key-file');
    if (file === undefined) return undefined;
    let text: string;
    try {
      text = await readKeyFileText(file, keyFileAccess);
    } catch (error) {
      if (isSealedSessionError(error)) throw error;
      throw new UsageError(`cannot read --key-file (${errorCode(error) ?? 'error'})`);
    }
    if (splitKeys(text).length === 0) throw new UsageError('--key-file holds no key');
    return text;
  }

  /**
   * The store of the data dir with the configured keys (or, when `keys` is null, without any:
   * for header-only work). Its disk seam reports each folder it lists to the progress bar.
   */
  async open(dir: string, keys: readonly string[] | null, progress: Progress): Promise<Store> {
    const io: Io = folderProgressIo(defaultIo, dir, () => progress.tick());
    // No read cache: every file is read once.
    return keys === null ? openKeylessStore({ dir, io, cacheSize: 0 }) : openStore({ dir, keys, io, cacheSize: 0 });
  }

  /** A progress bar over the data dir's folders (quiet unless stderr is a terminal). */
  async progress(dir: string, label: string): Promise<Progress> {
    if (this.io.progress === undefined) return startProgress(undefined, label, 0);
    return startProgress(this.io.progress, label, await folderCount(dir));
  }

  /** Prints `value` as one line of JSON. */
  printJson(value: unknown): void {
    this.io.out(JSON.stringify(value));
  }
}

/**
 * `dir` (absolute), which must be an existing folder (a symlink to one is fine): a missing one is
 * a usage error naming `option`, one that cannot be looked at (EACCES, say) a failure.
 */
export async function existingDataDir(given: string, option: string): Promise<string> {
  const dir = path.resolve(given);
  let isDirectory = false;
  try {
    isDirectory = (await defaultIo.lstat(await operationsIo.realpath(dir))).isDirectory();
  } catch (error) {
    const code = errorCode(error);
    if (code !== 'ENOENT' && code !== 'ENOTDIR') {
      throw new SealedSessionError('ERR_SESSION_STORE_IO', `cannot open the data dir (${code ?? 'error'})`, { cause: error });
    }
  }
  if (!isDirectory) throw new UsageError(`no data dir at ${dir} (see ${option})`);
  return dir;
}

/** An option name as a person types one; anything else is never echoed. */
const OPTION_NAME = /^--?[a-z][a-z-]{0,30}$/;
const NOT_AN_OPTION = "an argument that starts with '-' (put values after --)";

/**
 * What to say about arguments that parseArgs refused, without echoing any of them that could be
 * a session id or a cookie value (1 id in 4,096 starts with \`--\`, 1 in 64 with \`-\`). Node's
 * message quotes the argument itself: an unknown option is named only when it was given whole
 * (not one letter of \`-abc…\`) and looks like an option name.
 */
function parseProblem(error: unknown, args: readonly string[], options: Record<string, OptionSpec>): string {
  if (errorCode(error) === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    const { tokens } = parseArgs({ args: [...args], options, allowPositionals: true, strict: false, tokens: true });
    const unknown = tokens.find((token) => token.kind === 'option' && !Object.hasOwn(options, token.name));
    if (unknown?.kind !== 'option') return NOT_AN_OPTION;
    const given = args[unknown.index] ?? '';
    const whole = given === unknown.rawName || given.startsWith(`${unknown.rawName}=`);
    return whole && OPTION_NAME.test(unknown.rawName) ? `Unknown option '${unknown.rawName}'` : NOT_AN_OPTION;
  }
  // The other refusals quote option names only ("Option '--dir <value>' argument missing"); the
  // first sentence is kept, and only if every quoted part of it is an option name.
  const first = (error instanceof Error ? error.message : '').split(/\.\s/)[0] ?? '';
  const quoted = [...first.matchAll(/'([^']*)'/g)].map((match) => (match[1] ?? '').replace(/ <value>$/, '').split(', '));
  return first !== '' && quoted.flat().every((part) => OPTION_NAME.test(part)) ? first : 'bad arguments';
}

export function usage(io: CliIo, name: string, problem: string): ExitCode {
  io.err(`${name}: ${problem}; run \`${name} --help\``);
  return 2;
}

/**
 * Runs a command body: a `UsageError`, or a store that cannot open for want of (good) keys,
 * ends with 2; any other failure with 1 and one line naming it by code (an fs message would hold
 * a path, and a path could hold what it should not).
 */
export async function runCommand(name: string, io: CliIo, body: () => Promise<ExitCode>): Promise<ExitCode> {
  try {
    return await body();
  } catch (error) {
    if (error instanceof UsageError) return usage(io, name, error.message);
    const problem = isSealedSessionError(error) ? error.message.replace(/^sealed-sessions: /, '') : `failed (${errorCode(error) ?? 'error'})`;
    if (
      isSealedSessionError(error, 'ERR_SESSION_KEYS_MISSING') ||
      isSealedSessionError(error, 'ERR_SESSION_KEY_WEAK') ||
      isSealedSessionError(error, 'ERR_SESSION_KEY_UNSAFE') ||
      isSealedSessionError(error, 'ERR_SESSION_OPTION')
    ) {
      return usage(io, name, problem);
    }
    io.err(`${name}: ${problem}`);
    return 1;
  }
}

/** "1 session", "2 sessions". */
export function plural(count: number, noun: string, nouns = `${noun}s`): string {
  return `${count} ${count === 1 ? noun : nouns}`;
}
