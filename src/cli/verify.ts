import { createKeyring } from '../crypto/keys.js';
import { verifyStore, type VerifyFinding, type VerifyProblem, type VerifyReport } from '../ops/verify.js';
import { Command, plural, runCommand, STORE_HELP, STORE_OPTIONS, USAGE_EXIT, UsageError, type CliIo, type ExitCode } from './command.js';

const NAME = 'sealed-sessions verify';

export const VERIFY_HELP = `Usage: sealed-sessions verify [--repair [--include-wrong-key]] [options]

Opens (authenticates and decrypts) every session file with the configured keys and looks at the
debris beside them. Problems: unreadable (not the sealed format, cut short, or the disk refuses
to read it), tampered (changed bytes, or a file copied over another), wrong key (sealed under a
key not configured: run it with every key your servers use), orphaned temp files (older than a
minute) and stale locks (older than 10 s). Expired sessions are gc's work, not problems.

--repair moves each tampered or unreadable session file into
<dir>/quarantine/<date>/<2 hex>/<name>.sess (the data dir's own layout, with findings.json saying
why; nothing is ever deleted: \`mv\` one back to restore it), under the session's lock and after
checking again that it is still bad. Files sealed under a key not given are kept where they are
(a missing or wrong key makes every file look like that): --include-wrong-key moves them too. It
removes orphaned temp files, and clears stale locks the way gc does, by taking them over. Safe
while servers run. Output names files by their on-disk names, which are one-way hashes, never ids.

On Redis (--redis), the same checks run on every key under the prefix, and --repair copies each
bad one to <prefix>quarantine:<date>:<name> (no expiry; findings.json beside it, as
<prefix>quarantine:<date>:findings.json), then deletes it only if it still holds what was found
bad. Restore one with RENAME. Redis has no temp files or locks.

When at least half of the session files are sealed under keys not given, verify says the key is
probably wrong (naming the key ids in the files and the configured ones) instead of suggesting a
repair.

Options:
  --repair              quarantine tampered and unreadable session files, remove debris
  --include-wrong-key   with --repair: quarantine files sealed under a key not given, too
${STORE_HELP}

--json prints {"sessions","ok","expired","inUse","problems":{…},"findings":[{"file","problem",
"action"}],"quarantine","probablyWrongKey"}; action is quarantined, removed, resolved, kept or left.

Exit codes: 0 no problem, 1 problems found (also with --repair, which says what it did),
${USAGE_EXIT}; no keys is one too.`;

const LABEL: Record<VerifyProblem, string> = {
  unreadable: 'unreadable',
  tampered: 'tampered',
  'wrong-key': 'wrong key',
  'orphaned-temp': 'orphaned temp file',
  'stale-lock': 'stale lock',
};

/** Findings listed one per line, at most this many (all of them with --json). */
const LISTED = 50;

export async function verify(args: readonly string[], io: CliIo): Promise<ExitCode> {
  const command = Command.parse(NAME, io, args, VERIFY_HELP, {
    ...STORE_OPTIONS,
    repair: { type: 'boolean' },
    'include-wrong-key': { type: 'boolean' },
  });
  if (typeof command === 'number') return command;
  return runCommand(NAME, io, async () => {
    command.expectPositionals(0, 'argument');
    const repair = command.flag('repair');
    const includeWrongKey = command.flag('include-wrong-key');
    if (includeWrongKey && !repair) throw new UsageError('--include-wrong-key goes with --repair');
    const where = await command.where();
    const keys = await command.keysFor(where, true);
    return command.withStore(where, keys, repair ? 'verify --repair' : 'verify', async ({ store, progress, unit }) => {
      const report = await verifyStore(store, { repair, includeWrongKey });
      progress.stop();
      const problems = report.findings.length;
      const wrongKey = probablyWrongKey(report);
      if (command.json) {
        command.printJson({ ...report, probablyWrongKey: wrongKey });
        return problems === 0 ? 0 : 1;
      }
      io.out(
        `verify: ${plural(report.sessions, `session ${unit}`)}, ${report.ok} open fine (${report.expired} of them expired)` +
          (unit === 'file' ? `, ${report.inUse} lock folders and temp files in use` : ''),
      );
      if (problems === 0) {
        io.out('no problems');
        return 0;
      }
      const counts = (Object.entries(report.problems) as Array<[VerifyProblem, number]>).filter(([, count]) => count > 0);
      io.out(`problems: ${counts.map(([problem, count]) => `${count} ${LABEL[problem]}`).join(', ')}`);
      for (const finding of report.findings.slice(0, LISTED)) io.out(`  ${finding.file}  ${LABEL[finding.problem]}${describeAction(finding)}`);
      if (problems > LISTED) io.out(`  … and ${problems - LISTED} more (--json lists them all)`);
      if (repair) {
        const done = (action: string) => report.findings.filter((finding) => finding.action === action).length;
        io.out(
          `repair: ${plural(done('quarantined'), unit)} moved to ${quarantineOf(report, unit)} (never deleted), ` +
            `${done('removed')} debris removed, ${done('resolved')} fine or gone on a second look, ${done('left')} left in place` +
            (done('kept') > 0 ? `, ${done('kept')} sealed under a key not given kept (--include-wrong-key moves them)` : ''),
        );
      }
      if (wrongKey) {
        // The files' key ids against the configured ones, so the operator sees which key is missing.
        const inFiles = Object.entries((await store.stats()).byKeyId)
          .sort(([, a], [, b]) => b - a)
          .map(([id, count]) => `${id} (${plural(count, unit)})`)
          .join(', ');
        const configured = createKeyring(keys)
          .keys.map((key) => key.idHex)
          .join(', ');
        io.out(
          `${plural(report.problems['wrong-key'], unit)} of ${report.sessions} are sealed under keys not given: the key is probably wrong ` +
            `or missing, not the files. Key ids in the files: ${inFiles || '-'}; configured: ${configured}. ` +
            `Run verify again with every key your servers use (SESSION_KEYS or --key-file); do not quarantine these ${unit}s.`,
        );
      } else if (!repair) {
        const others = problems - report.problems['wrong-key'];
        if (others > 0) io.out(`run \`sealed-sessions verify --repair\` to quarantine the tampered and unreadable ${unit}s and remove the debris`);
        if (report.problems['wrong-key'] > 0) {
          io.out(
            `${unit}s sealed under a key not given: run verify with every key your servers use; ` +
              '`verify --repair --include-wrong-key` quarantines them if that key is really gone',
          );
        }
      }
      return 1;
    });
  });
}

/** When at least half the session files (and at least one) are sealed under keys not given: more likely a wrong key than wrong files. */
function probablyWrongKey(report: VerifyReport): boolean {
  const wrong = report.problems['wrong-key'];
  return wrong >= 1 && wrong * 2 >= report.sessions;
}

/** Where this repair moved things: a folder of the data dir, or a key pattern in Redis (the note's key names the batch). */
function quarantineOf(report: VerifyReport, unit: 'file' | 'key'): string {
  if (report.quarantine === null) return unit === 'file' ? 'quarantine/' : 'quarantine';
  return unit === 'file' ? `${report.quarantine}/` : `${report.quarantine.replace(/findings\.json$/, '')}*`;
}

function describeAction(finding: VerifyFinding): string {
  if (finding.action === undefined) return '';
  return `  → ${finding.action}${finding.error === undefined ? '' : ` (${finding.error})`}`;
}
