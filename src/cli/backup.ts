import path from 'node:path';
import prettyBytes from 'pretty-bytes';
import { backupStore, MANIFEST_FILE } from '../ops/backup.js';
import { Command, DATA_DIR_HELP, DATA_DIR_OPTIONS, plural, runCommand, type CliIo, type ExitCode } from './command.js';

const NAME = 'sealed-sessions backup';

export const BACKUP_HELP = `Usage: sealed-sessions backup [options] [--] <dest>

Copies the data dir into <dest>, a new (or empty) folder outside it, which becomes the root of a
data dir of the same layout: <dest>/<2 hex>/<name>.sess, folders 0700, files 0600, modification
times kept. Consistent while servers write: each session is copied whole at its old or its new
version. Lock folders, temp files and the quarantine are not copied. Needs no key and never
writes one: keep the keys elsewhere. The manifest ${MANIFEST_FILE} (session count, bytes, key
ids, date) is written last: a copy without it is incomplete.

Restore: stop the servers, move the damaged data dir aside, then
  cp -a <dest> sessions-data
and start the servers with the keys named in the manifest (its file in the data dir is ignored).

Options:
${DATA_DIR_HELP}

--json prints the manifest.

Exit codes: 0 copied, 1 the copy failed, 2 usage error.`;

export async function backup(args: readonly string[], io: CliIo): Promise<ExitCode> {
  const command = Command.parse(NAME, io, args, BACKUP_HELP, DATA_DIR_OPTIONS);
  if (typeof command === 'number') return command;
  return runCommand(NAME, io, async () => {
    const [dest] = command.expectPositionals(1, '<dest>');
    const dir = await command.dataDir();
    const progress = await command.progress(dir, 'backup');
    const store = await command.open(dir, null, progress);
    const manifest = await backupStore(store, dest!);
    progress.stop();
    if (command.json) {
      command.printJson(manifest);
      return 0;
    }
    const keyIds =
      Object.entries(manifest.keyIds)
        .map(([id, count]) => `${id}: ${count}`)
        .join(', ') || '-';
    io.out(
      `backup: copied ${plural(manifest.sessions, 'session file')} (${prettyBytes(manifest.bytes)}; key ids ${keyIds}) ` +
        `to ${path.resolve(dest!)}, manifest ${MANIFEST_FILE}`,
    );
    return 0;
  });
}
