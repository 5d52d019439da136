import path from 'node:path';
import { errorCode } from '../errors.js';
import { defaultIo, type Io } from '../backends/file/io.js';
import { Command, runCommand, UsageError, type CliIo, type ExitCode } from './command.js';
import { startProgress } from './progress.js';

const NAME = 'sealed-sessions import-session-file-store';

export const IMPORT_HELP = `Usage: sealed-sessions import-session-file-store <dir> [options]

Reads <dir>, a folder written by session-file-store (one <sid>.json per session, encrypted
when its \`secret\` option was set), and seals every live session under its SAME id into the
sealed-sessions data dir, through the express-session adapter (SealedStore): users keep their
connect.sid cookie and stay logged in. Sessions session-file-store would treat as expired
are skipped. <dir> is only read, never modified.

Options:
  --secret S       session-file-store's \`secret\`, to decrypt its files
  --ttl SECONDS    session-file-store's \`ttl\` (default 3600): expiry of sessions whose
                   cookie has no maxAge
  --dir D          the sealed-sessions data dir (default sessions-data)
  --key-file F     a file holding the keys (one a line, or comma-separated; mode 0600, yours,
                   not a symlink); default: SESSION_KEYS, else (NODE_ENV unset, development
                   or test) the development key beside the data dir
  --json           print {"imported":N,"expired":N,"unreadable":N}
  -h, --help       show this help

Exit codes: 0 all imported or expired, 1 some files could not be read (the rest is
imported), 2 usage error.`;

export async function importFileStore(args: readonly string[], io: CliIo): Promise<ExitCode> {
  const command = Command.parse(NAME, io, args, IMPORT_HELP, {
    secret: { type: 'string' },
    ttl: { type: 'string' },
    dir: { type: 'string' },
    'key-file': { type: 'string' },
    json: { type: 'boolean' },
  });
  if (typeof command === 'number') return command;
  return runCommand(NAME, io, async () => {
    const [from] = command.positionals;
    if (from === undefined || from === '') throw new UsageError('missing <dir>, the session-file-store folder');
    if (command.positionals.length > 1) throw new UsageError('expected one <dir>');
    const secret = command.string('secret');
    let ttl: number | undefined;
    const ttlText = command.values['ttl'] as string | undefined;
    if (ttlText !== undefined) {
      ttl = Number(ttlText);
      if (ttlText.trim() === '' || !Number.isFinite(ttl) || ttl < 0) throw new UsageError('--ttl must be a number of seconds');
    }
    const dataDir = command.string('dir') ?? 'sessions-data';
    try {
      if (!(await defaultIo.lstat(from)).isDirectory()) throw new UsageError('<dir> is not a folder');
    } catch (error) {
      if (error instanceof UsageError) throw error;
      throw new UsageError(`cannot open <dir> (${errorCode(error) ?? 'error'})`);
    }
    // Unlike the other commands, import seals new files: without keys it falls back to the
    // development key (created if needed), as the servers would.
    const keys = await command.keyFile();

    // Progress: one tick per source file read (the import reads each once, through this seam).
    const source = path.resolve(from);
    let total = 0;
    if (io.progress !== undefined) for await (const entry of await defaultIo.opendir(source)) if (entry.name.endsWith('.json')) total++;
    const progress = startProgress(io.progress, 'import', total);
    const counting: Io = {
      ...defaultIo,
      readText: async (file) => {
        const text = await defaultIo.readText(file);
        if (path.dirname(path.resolve(file)) === source) progress.tick();
        return text;
      },
    };

    // Loaded here, not at the top: it needs express-session, an optional peer dependency.
    const { importSessionFileStore } = await import('../ops/import-session-file-store.js');
    const report = await importSessionFileStore({
      from,
      secret,
      ttl,
      store: keys === undefined ? { dir: dataDir, io: counting } : { dir: dataDir, keys, io: counting },
    });
    progress.stop();
    const { imported, expired, unreadable } = report;
    io.out(command.json ? JSON.stringify({ imported, expired, unreadable }) : `imported ${imported}, skipped ${expired} expired, ${unreadable} unreadable`);
    if (unreadable === 0) return 0;
    io.err(
      `${NAME}: ${unreadable} session file${unreadable === 1 ? '' : 's'} could not be read ` +
        `(not session-file-store JSON, or encrypted: check --secret); left in place, the rest was imported`,
    );
    return 1;
  });
}
