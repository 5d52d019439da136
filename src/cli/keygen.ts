import { generateKey } from '../crypto/keys.js';
import { Command, type CliIo, type ExitCode } from './command.js';

export const KEYGEN_HELP = `Usage: sealed-sessions keygen

Prints a new random key: 32 bytes from node:crypto, base64url (43 characters).
Put it first in SESSION_KEYS to seal new sessions with it; keep older keys after it
(comma-separated) until every session has been rewritten (\`sealed-sessions rekey\`).

Exit codes: 0 ok, 2 usage error.`;

export function keygen(args: readonly string[], io: CliIo): ExitCode {
  const command = Command.parse('sealed-sessions keygen', io, args, KEYGEN_HELP, {});
  if (typeof command === 'number') return command;
  if (command.positionals.length > 0) {
    io.err('sealed-sessions keygen: unexpected argument; run `sealed-sessions keygen --help`');
    return 2;
  }
  io.out(generateKey());
  return 0;
}
