import { errorCode } from '../errors.js';
import { Command, plural, runCommand, STORE_HELP, STORE_OPTIONS, USAGE_EXIT, type CliIo, type ExitCode } from './command.js';

const NAME = 'sealed-sessions gc';

export const GC_HELP = `Usage: sealed-sessions gc [--dry-run] [options]

Removes expired sessions and the debris of killed processes (lock folders older than the lock
stale period, 10 s; temp files older than a minute). Decides from the files' clear-text headers:
needs no key. Safe while servers run: a session is removed under its lock, after checking again
that it is expired, and one in use at that moment is left for the next run. Run it from cron,
e.g. every 15 minutes.

On Redis (--redis) there is nothing to schedule: each session key carries its own expiry and
Redis removes it by itself. gc then only counts, and removes the keys that have expired by this
machine's clock but not yet by the Redis server's (a clock ahead of the server's), each with a
compare-and-delete on what it just read.

Options:
  --dry-run        count what would be removed, remove nothing
${STORE_HELP}

--json prints {"scanned","expired","removed","debris","debrisRemoved","unreadable","errors","durationMs"}.

Exit codes: 0 ok, 1 some files could not be processed (the rest was collected), ${USAGE_EXIT}.`;

export async function gc(args: readonly string[], io: CliIo): Promise<ExitCode> {
  const command = Command.parse(NAME, io, args, GC_HELP, { ...STORE_OPTIONS, 'dry-run': { type: 'boolean' } });
  if (typeof command === 'number') return command;
  return runCommand(NAME, io, async () => {
    command.expectPositionals(0, 'argument');
    const where = await command.where();
    const dryRun = command.flag('dry-run');
    const errors = new Map<string, number>();
    const report = await command.withStore(where, null, dryRun ? 'gc (dry run)' : 'gc', async ({ store, progress }) => {
      store.on('warning', ({ error }) => {
        const code = errorCode(error) ?? 'error';
        errors.set(code, (errors.get(code) ?? 0) + 1);
      });
      const counts = await store.gc({ dryRun });
      progress.stop();
      return counts;
    });
    if (command.json) {
      command.printJson(report);
    } else if (where.kind === 'redis') {
      io.out(
        `gc: Redis removes expired session keys by itself; ${plural(report.scanned, 'key')} scanned, ` +
          `${report.expired} expired by this machine's clock but still in Redis` +
          (dryRun ? ' (dry run: none removed)' : `, ${report.removed} of them removed`),
      );
      if (report.unreadable > 0) io.out(`  ${plural(report.unreadable, 'key')} not in the sealed format: run \`sealed-sessions verify\``);
    } else {
      io.out(
        dryRun
          ? `gc --dry-run: would remove ${plural(report.expired, 'expired session')} and ${plural(report.debris, 'piece')} of debris ` +
              `(${plural(report.scanned, 'session file')} scanned)`
          : `gc: removed ${report.removed} of ${plural(report.expired, 'expired session')} and ${report.debrisRemoved} of ` +
              `${plural(report.debris, 'piece')} of debris (${plural(report.scanned, 'session file')} scanned, ` +
              `${Math.round(report.durationMs)} ms)`,
      );
      if (!dryRun && report.removed < report.expired) io.out('  the others were in use or already gone; the next run takes them');
      if (report.unreadable > 0) io.out(`  ${plural(report.unreadable, 'file')} not in the sealed format: run \`sealed-sessions verify\``);
    }
    if (report.errors === 0) return 0;
    io.err(`${NAME}: ${plural(report.errors, 'file')} could not be processed (${[...errors].map(([code, n]) => `${code} ×${n}`).join(', ')})`);
    return 1;
  });
}
