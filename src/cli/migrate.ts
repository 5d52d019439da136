import path from 'node:path';
import prettyBytes from 'pretty-bytes';
import { defaultIo, operationsIo } from '../backends/file/io.js';
import { redisBackend } from '../backends/redis/redis-backend.js';
import type { Backend } from '../core/backend.js';
import { errorCode } from '../errors.js';
import { openKeylessStore } from '../open-store.js';
import { migrateSessions, type MigrateProblem } from '../ops/migrate.js';
import { connectRedis, isRedisUrl, redactRedisUrl, type RedisConnection } from '../ops/redis-connection.js';
import {
  Command,
  DEFAULT_PREFIX,
  existingDataDir,
  REDIS_CALL_TIMEOUT_MS,
  plural,
  runCommand,
  usageExit,
  UsageError,
  type CliIo,
  type ExitCode,
} from './command.js';
import { countScans, folderProgressIo, startCounter } from './progress.js';

const NAME = 'sealed-sessions migrate';

export const MIGRATE_HELP = `Usage: sealed-sessions migrate --from <dir | url> --to <url | dir> [options]

Copies every live session from one store to another: a data dir to Redis, Redis to a data dir,
Redis to Redis, or a data dir to another. A value that starts with redis:// or rediss:// is
Redis (repeat --from or --to, once per seed node, for a Redis Cluster); anything else is a data
dir (the one to copy from must exist; the one to copy to is created, 0700, if missing).

Needs no key, and opens nothing: both stores keep the very same envelope under the very same
one-way name (<2 hex>/<name>.sess, <prefix><name>), so each is copied byte for byte. Each
session keeps its deadlines (they are inside the envelope) and its last use (a file's
modification time; in Redis, the key's expiry). Expired sessions are skipped and counted.

Safe to run again, and to resume: interrupted (Ctrl-C, a crash, a lost connection), run the
same command and it copies the rest. What the destination already holds is never blindly
overwritten:
  the same envelope          already there (its last use moves forward if the source's is later)
  an older version           replaced by the source's (an earlier run's copy of a session the
                             servers changed since), under the destination's lock or
                             compare-and-set, and only while it is still that older version
  a newer one, or as new     kept (servers at the destination wrote it)
  something not a session    left, reported
A session ended at the source after an earlier run copied it stays at the destination: for a
move, stop the servers (or point them at the destination) before the last run.

Options:
  --from D|URL     where the sessions are (repeat for a Cluster's seed nodes)
  --to URL|D       where they go (repeat for a Cluster's seed nodes)
  --prefix P       the Redis key prefix on either side (default ${DEFAULT_PREFIX})
  --from-prefix P  the prefix on the Redis side copied from, when the two differ
  --to-prefix P    the prefix on the Redis side copied to
  --json           print the result as JSON on stdout
  -h, --help       show this help

--json prints {"from","to","scanned","copied","alreadyThere","replacedOlder","keptNewer",
"expired","gone","unreadable","blocked","failed","bytes","problems":[{"entry","problem",
"error"}],"durationMs"}; entries are named by their one-way names, never by id.

Exit codes: 0 every live session is at the destination, 1 some entries were not copied (not
sessions at the source, something else in their place at the destination, or errors: the rest
was copied; run it again once fixed), ${usageExit('--from')}.`;

type Side = { readonly kind: 'dir'; readonly dir: string } | { readonly kind: 'redis'; readonly urls: readonly string[]; readonly prefix: string };

/** One side, opened: its backend, how messages name it, and what closes it. */
interface Opened {
  readonly backend: Backend;
  readonly label: string;
  readonly connection?: RedisConnection;
}

/** Problems listed one per line, at most this many (all of them with --json). */
const LISTED = 50;

export async function migrate(args: readonly string[], io: CliIo): Promise<ExitCode> {
  const command = Command.parse(NAME, io, args, MIGRATE_HELP, {
    from: { type: 'string', multiple: true },
    to: { type: 'string', multiple: true },
    prefix: { type: 'string' },
    'from-prefix': { type: 'string' },
    'to-prefix': { type: 'string' },
    json: { type: 'boolean' },
  });
  if (typeof command === 'number') return command;
  return runCommand(NAME, io, async () => {
    command.expectPositionals(0, 'argument');
    const prefix = command.string('prefix');
    const from = await sideOf(command, 'from', command.string('from-prefix') ?? prefix);
    const to = await sideOf(command, 'to', command.string('to-prefix') ?? prefix);
    if (from.kind === 'dir' && to.kind === 'dir' && prefix !== undefined) throw new UsageError('--prefix goes with a Redis side');
    await assertDifferent(from, to);

    const connections: RedisConnection[] = [];
    try {
      // The progress display starts once both sides are open; the scan reports to it from then on.
      let tick = (): void => undefined;
      let source: Opened;
      if (from.kind === 'dir') {
        const io = folderProgressIo(defaultIo, from.dir, () => tick());
        source = { backend: (await openKeylessStore({ dir: from.dir, io, cacheSize: 0 })).backend, label: from.dir };
      } else {
        const redis = await openRedis(command, from);
        connections.push(redis.connection);
        source = { ...redis, backend: countScans(redis.backend, () => tick()) };
      }
      let destination: Opened;
      if (to.kind === 'dir') {
        const backend = (await openKeylessStore({ dir: to.dir, cacheSize: 0 })).backend;
        await backend.open();
        destination = { backend, label: to.dir };
      } else {
        const redis = await openRedis(command, to);
        connections.push(redis.connection);
        destination = redis;
      }
      const progress = from.kind === 'dir' ? await command.progress(from.dir, 'migrate') : startCounter(io.progress, 'migrate', 'sessions');
      tick = () => progress.tick();
      let report;
      try {
        report = await migrateSessions(source.backend, destination.backend);
      } finally {
        progress.stop();
      }

      const troubles = report.unreadable + report.blocked + report.failed;
      if (command.json) {
        command.printJson({ from: source.label, to: destination.label, ...report });
        return troubles === 0 ? 0 : 1;
      }
      io.out(
        `migrate: ${plural(report.scanned, 'session')} at ${source.label} → ${destination.label}: ` +
          `${report.copied} copied (${prettyBytes(report.bytes)}), ${report.alreadyThere} already there, ` +
          `${report.replacedOlder} older there replaced, ${report.keptNewer} newer there kept; ` +
          `${report.expired} expired and ${report.gone} ended meanwhile not copied (${(report.durationMs / 1000).toFixed(1)} s)`,
      );
      if (troubles === 0) return 0;
      for (const problem of report.problems.slice(0, LISTED)) io.out(`  ${problem.entry}  ${describe(problem)}`);
      if (report.problems.length > LISTED) io.out(`  … and ${report.problems.length - LISTED} more (--json lists them all)`);
      io.err(
        `${NAME}: ${plural(troubles, 'entry', 'entries')} not copied (${report.unreadable} not sessions at the source, ` +
          `${report.blocked} with something else in their place at the destination, ${report.failed} failed); the rest was copied, ` +
          'and running it again copies what is missing',
      );
      return 1;
    } finally {
      await Promise.all(connections.map((connection) => connection.close()));
    }
  });
}

/** `--from` or `--to`: one data dir, or Redis URLs (one per seed node). Values are never echoed: a URL may hold a password. */
async function sideOf(command: Command, option: 'from' | 'to', prefix: string | undefined): Promise<Side> {
  const values = command.strings(option);
  if (values.length === 0) throw new UsageError(`missing --${option}`);
  const urls = values.filter(isRedisUrl);
  if (urls.length === values.length) return { kind: 'redis', urls, prefix: prefix ?? DEFAULT_PREFIX };
  if (urls.length > 0) throw new UsageError(`--${option}: either Redis URLs (one per seed node) or one data dir, not both`);
  if (values.length > 1) throw new UsageError(`--${option}: one data dir only`);
  const [value] = values as [string];
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) throw new UsageError(`--${option}: a Redis URL starts with redis:// or rediss://`);
  if (command.values[`${option}-prefix`] !== undefined) throw new UsageError(`--${option}-prefix goes with a Redis --${option}`);
  if (option === 'from') return { kind: 'dir', dir: await existingDataDir(value, '--from') };
  return { kind: 'dir', dir: path.resolve(value) };
}

/** Copying a store onto itself would find every session already there: surely a mistake. */
async function assertDifferent(from: Side, to: Side): Promise<void> {
  if (from.kind === 'dir' && to.kind === 'dir') {
    const real = async (dir: string) =>
      operationsIo.realpath(dir).catch((error: unknown) => {
        if (errorCode(error) === 'ENOENT') return dir;
        throw error;
      });
    if ((await real(from.dir)) === (await real(to.dir))) throw new UsageError('--from and --to are the same data dir');
  }
  if (from.kind === 'redis' && to.kind === 'redis' && from.prefix === to.prefix) {
    const hosts = (side: { readonly urls: readonly string[] }) => new Set(side.urls.map((url) => new URL(url).host.toLowerCase()));
    const theirs = hosts(to);
    if ([...hosts(from)].some((host) => theirs.has(host))) throw new UsageError('--from and --to are the same Redis keys (give another --to-prefix)');
  }
}

async function openRedis(command: Command, side: Extract<Side, { kind: 'redis' }>): Promise<Opened & { connection: RedisConnection }> {
  const connection = await connectRedis(side.urls);
  try {
    const backend = redisBackend({ client: connection.client, prefix: side.prefix, timeoutMs: REDIS_CALL_TIMEOUT_MS });
    await backend.open();
    for (const warning of backend.warnings ?? []) command.io.err(`${NAME}: warning: ${warning}`);
    return { backend, connection, label: `${side.urls.map(redactRedisUrl).join(', ')} (prefix ${side.prefix})` };
  } catch (error) {
    await connection.close();
    throw error;
  }
}

function describe(problem: MigrateProblem): string {
  if (problem.problem === 'unreadable') return 'not a session (left at the source)';
  if (problem.problem === 'blocked') return 'something that is not a session stands in its place at the destination (left as it is)';
  return `failed (${problem.error ?? 'error'})`;
}
