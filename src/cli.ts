import { parseArgs } from 'node:util';
import { errorCode, isSealedSessionError } from './errors.js';
import { defaultIo } from './io.js';
import { generateKey } from './keys.js';

/** Exit codes: 0 ok, 1 problems found, 2 usage error. */
export type ExitCode = 0 | 1 | 2;

export interface CliIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
}

const USAGE = `Usage: sealed-sessions <command> [options]

Commands:
  keygen                      print a new random key (32 bytes, base64url) for SESSION_KEYS
  import-session-file-store   seal the live sessions of a session-file-store folder, same ids

Options:
  -h, --help  show help for a command`;

const KEYGEN_HELP = `Usage: sealed-sessions keygen

Prints a new random key: 32 bytes from node:crypto, base64url (43 characters).
Put it first in SESSION_KEYS to seal new sessions with it; keep older keys after it
(comma-separated) until every session has been rewritten.`;

const IMPORT_HELP = `Usage: sealed-sessions import-session-file-store <dir> [options]

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
  --key-file F     a file holding the keys (comma-separated); default: SESSION_KEYS, else,
                   outside production, the development key beside the data dir
  --json           print {"imported":N,"expired":N,"unreadable":N}
  -h, --help       show this help

Exit codes: 0 all imported or expired, 1 some files could not be read (the rest is
imported), 2 usage error.`;

/** Runs one command; returns the exit code instead of exiting, so it can be tested in-process. */
export async function main(argv: readonly string[], io: CliIo): Promise<ExitCode> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
    io.out(USAGE);
    return command === undefined ? 2 : 0;
  }
  switch (command) {
    case 'keygen':
      return keygen(rest, io);
    case 'import-session-file-store':
      return importFileStore(rest, io);
    default:
      io.err(`sealed-sessions: unknown command '${command}'; run \`sealed-sessions --help\``);
      return 2;
  }
}

function keygen(args: readonly string[], io: CliIo): ExitCode {
  let parsed;
  try {
    parsed = parseArgs({ args: [...args], options: { help: { type: 'boolean', short: 'h' } }, allowPositionals: false, strict: true });
  } catch (error) {
    io.err(`sealed-sessions keygen: ${(error as Error).message}; run \`sealed-sessions keygen --help\``);
    return 2;
  }
  if (parsed.values.help === true) {
    io.out(KEYGEN_HELP);
    return 0;
  }
  io.out(generateKey());
  return 0;
}

async function importFileStore(args: readonly string[], io: CliIo): Promise<ExitCode> {
  const name = 'sealed-sessions import-session-file-store';
  const usage = (problem: string): ExitCode => {
    io.err(`${name}: ${problem}; run \`${name} --help\``);
    return 2;
  };
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      options: {
        help: { type: 'boolean', short: 'h' },
        secret: { type: 'string' },
        ttl: { type: 'string' },
        dir: { type: 'string' },
        'key-file': { type: 'string' },
        json: { type: 'boolean' },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    // Node's first sentence ("Unknown option '--x'"); the rest is advice about '--'.
    return usage((error as Error).message.split(/\.\s/)[0] ?? 'bad arguments');
  }
  const { values, positionals } = parsed;
  if (values.help === true) {
    io.out(IMPORT_HELP);
    return 0;
  }
  const [from, ...extra] = positionals;
  if (from === undefined || from === '') return usage('missing <dir>, the session-file-store folder');
  if (extra.length > 0) return usage('expected one <dir>');
  if (values.secret === '') return usage('--secret must not be empty');
  let ttl: number | undefined;
  if (values.ttl !== undefined) {
    ttl = Number(values.ttl);
    if (values.ttl.trim() === '' || !Number.isFinite(ttl) || ttl < 0) return usage('--ttl must be a number of seconds');
  }
  if (values.dir === '') return usage('--dir must not be empty');
  try {
    if (!(await defaultIo.lstat(from)).isDirectory()) return usage(`<dir> is not a folder`);
  } catch (error) {
    return usage(`cannot open <dir> (${errorCode(error) ?? 'error'})`);
  }
  const dataDir = values.dir ?? 'sessions-data';
  let keys: string | undefined;
  if (values['key-file'] !== undefined) {
    try {
      keys = await defaultIo.readText(values['key-file']);
    } catch (error) {
      return usage(`cannot read --key-file (${errorCode(error) ?? 'error'})`);
    }
    if (keys.trim().replaceAll(',', '') === '') return usage('--key-file holds no key');
  }

  // Loaded here, not at the top: it needs express-session, an optional peer dependency.
  const { importSessionFileStore } = await import('./import-session-file-store.js');
  let report;
  try {
    report = await importSessionFileStore({
      from,
      secret: values.secret,
      ttl,
      store: keys === undefined ? { dir: dataDir } : { dir: dataDir, keys },
    });
  } catch (error) {
    // Library errors never carry a session id or a key; anything else is named by its code only
    // (an fs message would hold a path, and a path here holds a session id).
    const problem = isSealedSessionError(error) ? error.message.replace(/^sealed-sessions: /, '') : `failed (${errorCode(error) ?? 'error'})`;
    if (isSealedSessionError(error, 'ERR_SESSION_KEYS_MISSING') || isSealedSessionError(error, 'ERR_SESSION_KEY_WEAK') || isSealedSessionError(error, 'ERR_SESSION_OPTION')) {
      return usage(problem);
    }
    io.err(`${name}: ${problem}`);
    return 1;
  }
  const { imported, expired, unreadable } = report;
  io.out(
    values.json === true
      ? JSON.stringify({ imported, expired, unreadable })
      : `imported ${imported}, skipped ${expired} expired, ${unreadable} unreadable`,
  );
  if (unreadable === 0) return 0;
  io.err(
    `${name}: ${unreadable} session file${unreadable === 1 ? '' : 's'} could not be read ` +
      `(not session-file-store JSON, or encrypted: check --secret); left in place, the rest was imported`,
  );
  return 1;
}
