import { backup } from './backup.js';
import type { CliIo, ExitCode } from './command.js';
import { gc } from './gc.js';
import { importFileStore } from './import-session-file-store.js';
import { keygen } from './keygen.js';
import { migrate } from './migrate.js';
import { rekey } from './rekey.js';
import { revoke } from './revoke.js';
import { show } from './show.js';
import { stats } from './stats.js';
import { verify } from './verify.js';

export type { CliIo, ExitCode } from './command.js';

const USAGE = `Usage: sealed-sessions <command> [options]

Commands:
  keygen                      print a new random key (32 bytes, base64url) for SESSION_KEYS
  stats                       count sessions, bytes, key ids, expired ones and debris (no key needed)
  gc [--dry-run]              remove expired sessions and debris (no key needed; safe while servers run)
  verify [--repair]           open every session file; --repair quarantines tampered ones, removes debris
  rekey                       rewrite every session under the first key (then old keys can go)
  show <cookie value | id>    print one live session's data as JSON (never its id)
  backup <dest>               copy the data dir consistently while servers write (no key needed)
  revoke --where key=value    end every live session whose data matches
  import-session-file-store   seal the live sessions of a session-file-store folder, same ids
  migrate --from X --to Y     copy sessions between data dirs and Redis, byte for byte (no key
                              needed; keeps deadlines and last use; run again to resume)

Options (commands on stored sessions):
  --dir D        the data dir (default sessions-data)
  --redis URL    the sessions are in Redis instead (redis:// or rediss://; a Cluster: once per
                 seed node); stats, gc, verify, rekey, show, backup, revoke
  --prefix P     with --redis: the keys' prefix (default sess:)
  --json         machine-readable output on stdout
  --key-file F   the keys, one a line or comma-separated (default: SESSION_KEYS)
  -h, --help     help for a command: sealed-sessions <command> --help

Long commands draw a progress bar when stderr is a terminal. Exit codes: 0 ok, 1 problems
found, 2 usage error. No command prints a session id, a Redis password, or a key other than
keygen's own.`;

const COMMANDS: Readonly<Record<string, (args: readonly string[], io: CliIo) => ExitCode | Promise<ExitCode>>> = {
  keygen,
  stats,
  gc,
  verify,
  rekey,
  show,
  backup,
  revoke,
  'import-session-file-store': importFileStore,
  migrate,
};

/** Runs one command; returns the exit code instead of exiting, so it can be tested in-process. */
export async function main(argv: readonly string[], io: CliIo): Promise<ExitCode> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
    if (command === undefined) {
      io.err(`sealed-sessions: missing <command>; run \`sealed-sessions --help\``);
      return 2;
    }
    io.out(USAGE);
    return 0;
  }
  const run = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
  if (run === undefined) {
    // The command is echoed only when it looks like one: an id pasted in its place must not be.
    const shown = /^[a-z][a-z-]{0,40}$/.test(command) ? ` '${command}'` : '';
    io.err(`sealed-sessions: unknown command${shown}; run \`sealed-sessions --help\``);
    return 2;
  }
  return run(rest, io);
}
