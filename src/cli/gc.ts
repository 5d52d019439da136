import { errorCode } from '../errors.js';
import { Command, DATA_DIR_HELP, DATA_DIR_OPTIONS, plural, runCommand, type CliIo, type ExitCode } from './command.js';

const NAME = 'sealed-sessions gc';

export const GC_HELP = `Usage: sealed-sessions gc [--dry-run] [options]

Removes expired sessions and the debris of killed processes (lock folders older than the lock
stale period, 10 s; temp files older than a minute). Decides from the files' clear-text headers:
needs no key. Safe while servers run: a session is removed under its lock, after checking again
that it is expired, and one in use at that moment is left for the next run. Run it from cron,
e.g. every 15 minutes.

Options:
  --dry-run        count what would be removed, remove nothing
${DATA_DIR_HELP}

--json prints {"scanned","expired","removed","debris","debrisRemoved","unreadable","errors","durationMs"}.

Exit codes: 0 ok, 1 some files could not be processed (the rest was collected), 2 usage error.`;

export async function gc(args: readonly string[], io: CliIo): Promise<ExitCode> {
  const command = Command.parse(NAME, io, args, GC_HELP, { ...DATA_DIR_OPTIONS, 'dry-run': { type: 'boolean' } });
  if (typeof command === 'number') return command;
  return runCommand(NAME, io, async () => {
    command.expectPositionals(0, 'argument');
    const dir = await command.dataDir();
    const dryRun = command.flag('dry-run');
    const progress = await command.progress(dir, dryRun ? 'gc (dry run)' : 'gc');
    const store = await command.open(dir, null, progress);
    const errors = new Map<string, number>();
    store.on('warning', ({ error }) => {
      const code = errorCode(error) ?? 'error';
      errors.set(code, (errors.get(code) ?? 0) + 1);
    });
    const report = await store.gc({ dryRun });
    progress.stop();
    if (command.json) {
      command.printJson(report);
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
