import { parseArgs } from 'node:util';
import { generateKey } from './keys.js';

/** Exit codes: 0 ok, 1 problems found, 2 usage error. */
export type ExitCode = 0 | 1 | 2;

export interface CliIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
}

const USAGE = `Usage: sealed-sessions <command> [options]

Commands:
  keygen    print a new random key (32 bytes, base64url) for SESSION_KEYS

Options:
  -h, --help  show help for a command`;

const KEYGEN_HELP = `Usage: sealed-sessions keygen

Prints a new random key: 32 bytes from node:crypto, base64url (43 characters).
Put it first in SESSION_KEYS to seal new sessions with it; keep older keys after it
(comma-separated) until every session has been rewritten.`;

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
