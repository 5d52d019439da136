import { rekeyStore } from '../ops/rekey.js';
import { Command, plural, runCommand, STORE_HELP, STORE_OPTIONS, USAGE_EXIT, type CliIo, type ExitCode } from './command.js';

const NAME = 'sealed-sessions rekey';

export const REKEY_HELP = `Usage: sealed-sessions rekey [options]

Rewrites every session file that is not sealed under the first key, so that the other keys can
be dropped. Each one is rewritten under its lock from a fresh read, so it is safe while servers
commit, and keeps its data, creation time, deadlines and last use (its life is not extended).
Files under the first key already are skipped: a run that was interrupted resumes where it
stopped when run again. On Redis (--redis) each key is rewritten by a compare-and-set, its
expiry kept.

Key rotation: 1. \`sealed-sessions keygen\`; 2. SESSION_KEYS=<new>,<old> on every server, restart;
3. \`sealed-sessions rekey\` with the same keys; 4. \`sealed-sessions stats\` shows only the new key
id; 5. SESSION_KEYS=<new>, restart.

Options:
${STORE_HELP}

--json prints {"scanned","rewritten","current","gone","failed":{"wrongKey","tampered",
"unreadable","locked"}}.

Exit codes: 0 every session is under the first key, 1 some files could not be rewritten (run
\`sealed-sessions verify\`; locked ones: run rekey again), ${USAGE_EXIT}.`;

export async function rekey(args: readonly string[], io: CliIo): Promise<ExitCode> {
  const command = Command.parse(NAME, io, args, REKEY_HELP, STORE_OPTIONS);
  if (typeof command === 'number') return command;
  return runCommand(NAME, io, async () => {
    command.expectPositionals(0, 'argument');
    const where = await command.where();
    const keys = await command.keysFor(where, true);
    const { report, primary, unit } = await command.withStore(where, keys, 'rekey', async ({ store, progress, unit }) => {
      const done = await rekeyStore(store);
      progress.stop();
      return { report: done, primary: store.keyring.primary.idHex, unit };
    });
    const { wrongKey, tampered, unreadable, locked } = report.failed;
    const failed = wrongKey + tampered + unreadable + locked;
    if (command.json) {
      command.printJson(report);
    } else {
      io.out(
        `rekey: rewrote ${plural(report.rewritten, 'session')} under the first key (${primary}); ` +
          `${report.current} already were, ${report.gone} went away meanwhile (${plural(report.scanned, `session ${unit}`)} scanned)`,
      );
      if (failed === 0) io.out(`every session ${unit} is under the first key: the other keys can be dropped`);
    }
    if (failed === 0) return 0;
    io.err(
      `${NAME}: ${plural(failed, unit)} not rewritten (${wrongKey} wrong key, ${tampered} tampered, ${unreadable} unreadable, ` +
        `${locked} locked); run \`sealed-sessions verify\`${locked > 0 ? ', and rekey again' : ''}`,
    );
    return 1;
  });
}
