import path from 'node:path';
import prettyBytes from 'pretty-bytes';
import { backupStore, MANIFEST_FILE } from '../ops/backup.js';
import { redactRedisUrl } from '../ops/redis-connection.js';
import { Command, plural, runCommand, STORE_HELP, STORE_OPTIONS, USAGE_EXIT, type CliIo, type ExitCode } from './command.js';

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

From Redis (--redis), the copy is the same data dir of files, each session's modification time
its last use: a Redis deployment is backed up into files, and restored with
  sealed-sessions migrate --from <dest> --to redis://…
(or served from files as it is).

Options:
${STORE_HELP}

--json prints the manifest.

Exit codes: 0 copied, 1 the copy failed, ${USAGE_EXIT}.`;

export async function backup(args: readonly string[], io: CliIo): Promise<ExitCode> {
  const command = Command.parse(NAME, io, args, BACKUP_HELP, STORE_OPTIONS);
  if (typeof command === 'number') return command;
  return runCommand(NAME, io, async () => {
    const [dest] = command.expectPositionals(1, '<dest>');
    const where = await command.where();
    // The manifest names Redis by its URLs without their passwords.
    const source = where.kind === 'redis' ? `${where.urls.map(redactRedisUrl).join(', ')} (prefix ${where.prefix})` : undefined;
    const manifest = await command.withStore(where, null, 'backup', async ({ store, progress }) => {
      const written = await backupStore(store, dest!, source === undefined ? {} : { source });
      progress.stop();
      return written;
    });
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
