import signature from 'cookie-signature';
import { verifySignedId } from '../http/cookie.js';
import { expiresAt, isExpired, isTombstone } from '../core/expiry.js';
import { fileNameOf, isStorableId } from '../core/session-id.js';
import type { ReadOutcome } from '../core/sealed-session.js';
import type { Store } from '../core/store.js';
import { Command, runCommand, STORE_HELP, STORE_OPTIONS, USAGE_EXIT, UsageError, type CliIo, type ExitCode } from './command.js';

const NAME = 'sealed-sessions show';

export const SHOW_HELP = `Usage: sealed-sessions show [options] [--] <cookie value | id>

Prints the data of one live session as JSON. Takes the session cookie's value as the browser
holds it (<id>.<signature>, signed with the configured keys), an express-session cookie
(s:<id>.<signature>, or URL-encoded s%3A…, signed with express-session's secret: pass it with
--secret), or a bare session id. A value pasted with the cookie's name (sid=…, connect.sid=…,
even with the attributes of a Set-Cookie header after it) is taken without them. A signature
must verify. Put the value after -- when it starts with '-'. The id is never printed. Reading it
does not count as a use of the session.

When nothing is printed, it says why: the signature does not verify, no session has that id
(never made, ended, or removed after it expired), the session has expired, or its envelope does
not open.

Options:
  --secret S       express-session's \`secret\`, to verify an s:… cookie (repeat for several)
${STORE_HELP}

With --json the data is printed on one line.

Exit codes: 0 printed, 1 no such live session (a signature that does not verify, an unknown id,
an expired session, an envelope that does not open: each said apart), ${USAGE_EXIT}.`;

export async function show(args: readonly string[], io: CliIo): Promise<ExitCode> {
  const command = Command.parse(NAME, io, args, SHOW_HELP, { ...STORE_OPTIONS, secret: { type: 'string', multiple: true } });
  if (typeof command === 'number') return command;
  return runCommand(NAME, io, async () => {
    const [input] = command.expectPositionals(1, '<cookie value | id>');
    const secrets = command.strings('secret');
    const where = await command.where();
    const keys = await command.keysFor(where, true);
    return command.withStore(where, keys, null, async ({ store, unit }) => {
      const candidates = valuesOf(input!);
      let first: Lookup | undefined;
      for (const value of candidates) {
        const found = await lookUp(store, value, secrets);
        first ??= found;
        if (found.kind !== 'unknown' && found.kind !== 'signature') {
          first = found;
          break;
        }
      }
      if (first === undefined || first.kind === 'signature') {
        io.err(`${NAME}: the cookie's signature does not verify with these keys${secrets.length > 0 ? ' or secrets' : ''}`);
        return 1;
      }
      if (first.kind === 'unknown') {
        io.err(`${NAME}: no session has that id (never made, ended, or removed after it expired)`);
        return 1;
      }
      if (first.kind === 'tampered') {
        io.err(`${NAME}: that session's ${unit} does not open (${first.reason}); run \`sealed-sessions verify\``);
        return 1;
      }
      if (first.kind === 'expired') {
        io.err(`${NAME}: that session expired at ${new Date(first.at).toISOString()}`);
        return 1;
      }
      if (first.kind === 'ended') {
        io.err(`${NAME}: that session was ended (logged out); its tombstone stays until ${new Date(first.until).toISOString()}`);
        return 1;
      }
      const data = Object.fromEntries(first.data);
      io.out(command.json ? JSON.stringify(data) : JSON.stringify(data, null, 2));
      return 0;
    });
  });
}

type Lookup =
  | { readonly kind: 'signature' }
  | { readonly kind: 'unknown' }
  | { readonly kind: 'tampered'; readonly reason: string }
  | { readonly kind: 'expired'; readonly at: number }
  | { readonly kind: 'ended'; readonly until: number }
  | { readonly kind: 'live'; readonly data: ReadonlyMap<string, unknown> };

async function lookUp(store: Store, value: string, secrets: readonly string[]): Promise<Lookup> {
  const id = idOf(value, store.signingSecrets, secrets);
  if (id === null) return { kind: 'signature' };
  // Straight from storage, not `store.load()`: looking must not keep the session alive.
  const outcome: ReadOutcome = isStorableId(id) ? await store.read(fileNameOf(id), true) : { state: 'missing' };
  if (outcome.state === 'missing') return { kind: 'unknown' };
  if (outcome.state === 'tampered') return { kind: 'tampered', reason: outcome.reason };
  const { header, mtimeMs, data } = outcome.session;
  // Destroyed through a framework store: a tombstone stands in its place until its own end.
  if (isTombstone(header)) return isExpired(header, mtimeMs, store.options.now()) ? { kind: 'unknown' } : { kind: 'ended', until: header.absoluteDeadline };
  if (isExpired(header, mtimeMs, store.options.now())) return { kind: 'expired', at: expiresAt(header, mtimeMs) };
  return { kind: 'live', data };
}

/**
 * What to look up for a pasted value: a value given with its cookie's name (`sid=…`,
 * `connect.sid=s%3A…`, a Set-Cookie header's `; Path=/…` after it) without them first; then,
 * should that name no session, the value as given (an id of express-session's \`genid\` may hold
 * an '=').
 */
function valuesOf(input: string): string[] {
  const trimmed = input.trim();
  // A cookie name is an RFC 6265 token; a value never holds ';', nor surrounding spaces.
  const named = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+=([^;]*)/.exec(trimmed);
  if (named === null) return [trimmed];
  const value = named[1]!.trim().replace(/^"(.*)"$/, '$1');
  return value === '' || value === trimmed ? [trimmed] : [value, trimmed];
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
