import signature from 'cookie-signature';
import { verifySignedId } from '../http/cookie.js';
import { isStorableId } from '../core/session-id.js';
import { isExpired } from '../core/expiry.js';
import { fileNameOf } from '../core/session-id.js';
import { Command, DATA_DIR_HELP, DATA_DIR_OPTIONS, runCommand, UsageError, type CliIo, type ExitCode } from './command.js';

const NAME = 'sealed-sessions show';

export const SHOW_HELP = `Usage: sealed-sessions show [options] [--] <cookie value | id>

Prints the data of one live session as JSON. Takes the session cookie's value as the browser
holds it (<id>.<signature>, signed with the configured keys), an express-session cookie
(s:<id>.<signature>, or URL-encoded s%3A…, signed with express-session's secret: pass it with
--secret), or a bare session id. A signature must verify. Put the value after -- when it starts
with '-'. The id is never printed. Reading it does not count as a use of the session.

Options:
  --secret S       express-session's \`secret\`, to verify an s:… cookie (repeat for several)
${DATA_DIR_HELP}

With --json the data is printed on one line.

Exit codes: 0 printed, 1 no such live session (unknown, expired, unreadable, or a signature that
does not verify), 2 usage error.`;

export async function show(args: readonly string[], io: CliIo): Promise<ExitCode> {
  const command = Command.parse(NAME, io, args, SHOW_HELP, { ...DATA_DIR_OPTIONS, secret: { type: 'string', multiple: true } });
  if (typeof command === 'number') return command;
  return runCommand(NAME, io, async () => {
    const [input] = command.expectPositionals(1, '<cookie value | id>');
    const secrets = (command.values['secret'] as string[] | undefined) ?? [];
    if (secrets.some((secret) => secret === '')) throw new UsageError('--secret must not be empty');
    const dir = await command.dataDir();
    const keys = await command.keys(dir, true);
    const store = await command.open(dir, keys, { tick: () => undefined, stop: () => undefined });
    const id = idOf(input!, store.signingSecrets, secrets);
    if (id === null) {
      io.err(`${NAME}: the cookie's signature does not verify with these keys${secrets.length > 0 ? ' or secrets' : ''}`);
      return 1;
    }
    // Straight from the file, not `store.load()`: looking must not keep the session alive.
    const outcome = isStorableId(id) ? await store.read(fileNameOf(id), true) : ({ state: 'missing' } as const);
    if (outcome.state === 'tampered') {
      io.err(`${NAME}: no live session: its file does not open (${outcome.reason}); run \`sealed-sessions verify\``);
      return 1;
    }
    if (outcome.state === 'missing' || isExpired(outcome.session.header, outcome.session.mtimeMs, store.options.now())) {
      io.err(`${NAME}: no live session for that value`);
      return 1;
    }
    const data = Object.fromEntries(outcome.session.data);
    io.out(command.json ? JSON.stringify(data) : JSON.stringify(data, null, 2));
    return 0;
  });
}

/**
 * The session id a value names: a signed cookie value only if a signature verifies (null when
 * none does), anything else as a bare id.
 */
function idOf(input: string, signingSecrets: readonly string[], expressSecrets: readonly string[]): string | null {
  let value = input.trim();
  if (/%[0-9A-Fa-f]{2}/.test(value)) {
    try {
      value = decodeURIComponent(value);
    } catch {
      throw new UsageError('the value is not valid URL encoding');
    }
  }
  if (value.startsWith('s:')) {
    // express-session's format: signed with its own secret; our keys' secrets are tried too.
    const signed = value.slice(2);
    const ours = verifySignedId(signed, signingSecrets);
    if (ours !== null) return ours.id;
    for (const secret of expressSecrets) {
      const id = signature.unsign(signed, secret);
      if (id !== false) return id;
    }
    return null;
  }
  // The shape of this library's own cookie: <43-character id>.<43-character signature>.
  if (/^[A-Za-z0-9_-]{43}\.[A-Za-z0-9+/]{43}$/.test(value)) return verifySignedId(value, signingSecrets)?.id ?? null;
  return value;
}
