import prettyBytes from 'pretty-bytes';
import { createKeyring } from '../crypto/keys.js';
import { Command, DATA_DIR_HELP, DATA_DIR_OPTIONS, plural, runCommand, type CliIo, type ExitCode } from './command.js';

const NAME = 'sealed-sessions stats';

export const STATS_HELP = `Usage: sealed-sessions stats [options]

Counts what is in the data dir from the files' clear-text headers and sizes, without decrypting
anything: session files and bytes, per key id, live and expired-but-not-collected sessions,
oldest and newest live session, time left before expiry, and debris (lock folders and temp files).
Needs no key (and never creates one); with keys configured, it also says which key id is which.

Options:
${DATA_DIR_HELP}

--json prints {"sessions","bytes","live","expired","unreadable","debris","byKeyId",
"oldestCreated","newestCreated","expiresIn"} (times in ms since the epoch).

Exit codes: 0 ok, 1 the data dir could not be read, 2 usage error.`;

export async function stats(args: readonly string[], io: CliIo): Promise<ExitCode> {
  const command = Command.parse(NAME, io, args, STATS_HELP, DATA_DIR_OPTIONS);
  if (typeof command === 'number') return command;
  return runCommand(NAME, io, async () => {
    command.expectPositionals(0, 'argument');
    const dir = await command.dataDir();
    const keys = await command.keys(dir, false);
    const ring = keys.length === 0 ? null : createKeyring(keys);
    const progress = await command.progress(dir, 'stats');
    const store = await command.open(dir, null, progress);
    const result = await store.stats();
    progress.stop();
    if (command.json) {
      command.printJson(result);
      return 0;
    }
    const keyLabel = (idHex: string): string => {
      if (ring === null) return '';
      const index = ring.keys.findIndex((key) => key.idHex === idHex);
      return index === 0 ? ' (first key)' : index > 0 ? ` (key #${index + 1})` : ' (not configured)';
    };
    const date = (ms: number | null) => (ms === null ? '-' : new Date(ms).toISOString());
    const lines = [
      `sessions   ${plural(result.sessions, 'file')}, ${prettyBytes(result.bytes)}: ${result.live} live, ` +
        `${result.expired} expired not yet collected, ${result.unreadable} unreadable`,
      `key ids    ${
        Object.entries(result.byKeyId)
          .sort(([, a], [, b]) => b - a)
          .map(([id, count]) => `${id}${keyLabel(id)}: ${count}`)
          .join(', ') || '-'
      }`,
      `created    oldest live ${date(result.oldestCreated)}, newest live ${date(result.newestCreated)}`,
      `expire in  ${result.expiresIn.map((bucket) => `${bucket.label}: ${bucket.sessions}`).join(', ')}`,
      `debris     ${result.debris} (lock folders and temp files; gc removes those left by killed processes)`,
    ];
    io.out(lines.join('\n'));
    return 0;
  });
}
