import prettyBytes from 'pretty-bytes';
import { createKeyring } from '../crypto/keys.js';
import { Command, plural, runCommand, STORE_HELP, STORE_OPTIONS, USAGE_EXIT, type CliIo, type ExitCode } from './command.js';

const NAME = 'sealed-sessions stats';

export const STATS_HELP = `Usage: sealed-sessions stats [options]

Counts what is in the data dir (or under the Redis prefix) from the envelopes' clear-text
headers and sizes, without decrypting anything: sessions and bytes, per key id, live and
expired-but-not-collected sessions, oldest and newest live session, time left before expiry,
and debris (lock folders and temp files; none in Redis). Needs no key (and never creates one);
with keys configured, it also says which key id is which.

Options:
${STORE_HELP}

--json prints {"sessions","bytes","live","expired","unreadable","debris","byKeyId",
"oldestCreated","newestCreated","expiresIn"} (times in ms since the epoch).

Exit codes: 0 ok, 1 the sessions could not be read (a data dir that cannot be read, Redis not
answering), ${USAGE_EXIT}.`;

export async function stats(args: readonly string[], io: CliIo): Promise<ExitCode> {
  const command = Command.parse(NAME, io, args, STATS_HELP, STORE_OPTIONS);
  if (typeof command === 'number') return command;
  return runCommand(NAME, io, async () => {
    command.expectPositionals(0, 'argument');
    const where = await command.where();
    const keys = await command.keysFor(where, false);
    const ring = keys.length === 0 ? null : createKeyring(keys);
    const { result, unit } = await command.withStore(where, null, 'stats', async ({ store, progress, unit }) => {
      const found = await store.stats();
      progress.stop();
      return { result: found, unit };
    });
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
      `sessions   ${plural(result.sessions, unit)}, ${prettyBytes(result.bytes)}: ${result.live} live, ` +
        `${result.expired} expired not yet collected, ${result.unreadable} unreadable`,
      `key ids    ${
        Object.entries(result.byKeyId)
          .sort(([, a], [, b]) => b - a)
          .map(([id, count]) => `${id}${keyLabel(id)}: ${count}`)
          .join(', ') || '-'
      }`,
      `created    oldest live ${date(result.oldestCreated)}, newest live ${date(result.newestCreated)}`,
      `expire in  ${result.expiresIn.map((bucket) => `${bucket.label}: ${bucket.sessions}`).join(', ')}`,
      unit === 'key'
        ? `expiry     Redis removes each session key when it expires (no gc needed)`
        : `debris     ${result.debris} (lock folders and temp files; gc removes those left by killed processes)`,
    ];
    io.out(lines.join('\n'));
    return 0;
  });
}
