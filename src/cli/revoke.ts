import { isDeepStrictEqual } from 'node:util';
import type { JsonValue } from '../core/json-value.js';
import type { Session } from '../core/session.js';
import { Command, plural, runCommand, STORE_HELP, STORE_OPTIONS, USAGE_EXIT, UsageError, type CliIo, type ExitCode } from './command.js';

const NAME = 'sealed-sessions revoke';

export const REVOKE_HELP = `Usage: sealed-sessions revoke --where key=value [--where key=value …] [options]

Ends every live session whose data matches ("log out everywhere", after a password change),
through store.destroyWhere(): its file (or Redis key) is removed, as expireSession() does.

--where key=value: <key> is a top-level key of the session's data (everything before the first
'='); a session matches when its value there equals <value> as a string, or equals <value> read
as JSON. So user=alice matches "alice"; userId=42 matches 42 and "42"; admin=true matches true
and "true"; 'user={"id":7}' matches that object exactly. With several --where, all must match.

Options:
  --where K=V      the condition (required)
${STORE_HELP}

--json prints {"ended","unopened"}.

Exit codes: 0 done (also when nothing matched), 1 some files could not be opened with these keys
(they were not checked: run \`sealed-sessions verify\`), ${USAGE_EXIT}.`;

interface Condition {
  readonly key: string;
  readonly text: string;
  readonly json: JsonValue | undefined;
}

export async function revoke(args: readonly string[], io: CliIo): Promise<ExitCode> {
  const command = Command.parse(NAME, io, args, REVOKE_HELP, { ...STORE_OPTIONS, where: { type: 'string', multiple: true } });
  if (typeof command === 'number') return command;
  return runCommand(NAME, io, async () => {
    command.expectPositionals(0, 'argument');
    const conditions = ((command.values['where'] as string[] | undefined) ?? []).map(parseCondition);
    if (conditions.length === 0) throw new UsageError('missing --where key=value');
    const where = await command.where();
    const keys = await command.keysFor(where, true);
    let unopened = 0;
    const { ended, unit } = await command.withStore(where, keys, 'revoke', async ({ store, progress, unit }) => {
      store.on('tamper', () => unopened++);
      const count = await store.destroyWhere((session) => conditions.every((condition) => matches(session, condition)));
      progress.stop();
      return { ended: count, unit };
    });
    if (command.json) command.printJson({ ended, unopened });
    else io.out(`revoke: ended ${plural(ended, 'session')}`);
    if (unopened === 0) return 0;
    io.err(`${NAME}: ${plural(unopened, unit)} could not be opened with these keys and were not checked; run \`sealed-sessions verify\``);
    return 1;
  });
}

function parseCondition(where: string): Condition {
  const equals = where.indexOf('=');
  if (equals <= 0) throw new UsageError('--where takes key=value');
  const text = where.slice(equals + 1);
  let json: JsonValue | undefined;
  try {
    json = JSON.parse(text) as JsonValue;
  } catch {
    json = undefined;
  }
  return { key: where.slice(0, equals), text, json };
}

export function matches(session: Session, condition: Condition): boolean {
  if (!session.has(condition.key)) return false;
  const value = session.get(condition.key);
  return value === condition.text || (condition.json !== undefined && isDeepStrictEqual(value, condition.json));
}
