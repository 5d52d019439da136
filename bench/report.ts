// bench/http.ts's results, their shape in results.json, and the markdown of bench/RESULTS.md.
import { renderPhases, type PhasesResult } from './phases-report.js';
import type { RateResult, SyncRateResult } from './raw.js';
import { STORE_KINDS, STORE_LABELS, type StoreKind } from './stores.js';

/** One autocannon run against one store. */
export interface LoadResult {
  /** 2xx responses per second (failed responses do not count as throughput). */
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly responses2xx: number;
  readonly non2xx: number;
  /** Socket errors, timeouts included. */
  readonly socketErrors: number;
  readonly timeouts: number;
  readonly seconds: number;
  /** Share of all cores that processes other than the bench and its servers used meanwhile (0–1), or null. */
  readonly otherCpu: number | null;
}

export interface ScenarioRow {
  readonly scenario: string;
  readonly connections: number;
  readonly store: StoreKind;
  readonly runs: readonly LoadResult[];
  /** Medians of the runs. */
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  /** Sum over the runs: non-2xx responses + socket errors. */
  readonly errors: number;
  readonly note?: string;
}

export interface LostUpdateRound {
  readonly acknowledged: number;
  readonly failed: number;
  readonly lost: number;
  readonly lostByReader: readonly number[];
}

export interface LostUpdateRow {
  readonly store: StoreKind;
  readonly processes: 1 | 2;
  /** Requests sent over all rounds. */
  readonly total: number;
  /** Acknowledged (2xx) keys missing afterwards; null when not run. */
  readonly lost: number | null;
  /** Requests that did not get a 2xx. */
  readonly failed: number | null;
  readonly rounds: readonly LostUpdateRound[];
  readonly note?: string;
}

export interface BenchResults {
  readonly mode: string;
  readonly date: string;
  readonly seconds: number;
  readonly config: {
    readonly duration: number;
    readonly repetitions: number;
    readonly connections: readonly number[];
    readonly connectionsUnknown: readonly number[];
    readonly sessions: number;
    readonly sessionsEncryptedFileStore: number;
    readonly durationEncryptedFileStore: number;
    readonly connectionsEncryptedFileStore: readonly number[];
    readonly warmup: number;
    readonly lostUpdateRequests: number;
    readonly lostUpdateRounds: number;
    readonly waitQuiet: number;
    readonly timeoutSeconds: number;
  };
  readonly machine: {
    readonly cores: number;
    readonly cpuModel: string;
    readonly memoryGB: number;
    readonly kernel: string;
    readonly filesystem: string;
    readonly node: string;
    readonly loadavgStart: readonly number[];
    readonly loadavgEnd: readonly number[];
  };
  readonly versions: Record<string, string>;
  readonly raw: {
    readonly readFile1k16: RateResult;
    readonly writeFsyncRename1k16: RateResult;
    readonly writeFsyncRename1kSequential: RateResult;
    readonly mkdirRmdir16: RateResult;
    readonly mkdirRmdirSequential: RateResult;
    readonly aesGcmSeal1k: SyncRateResult;
    readonly otherCpu: number | null;
  };
  readonly scenarios: readonly ScenarioRow[];
  /** Raw write+fsync+rename per second (16 in flight), measured before each repetition of these scenarios. */
  readonly rawDuring: ReadonlyArray<{ readonly scenario: string; readonly connections: number; readonly rates: readonly number[] }>;
  readonly lostUpdates: readonly LostUpdateRow[];
  /** Where a native write request's time goes (bench/phases.ts), now and before the write-path change. */
  readonly phases?: { readonly before: PhasesResult | null; readonly now: PhasesResult };
  readonly notes: readonly string[];
}

const SCENARIO_TITLES: Record<string, string> = {
  read: 'read: an existing session, unchanged (GET)',
  write: 'write: every request changes its session (POST)',
  create: 'create: every request makes a new session (POST, no cookie)',
  unknown: 'unknown: a validly signed cookie of an id with no session (GET)',
};

const int = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a');
const ms = (n: number) => (!Number.isFinite(n) ? 'n/a' : n < 10 ? String(Math.round(n * 10) / 10) : String(Math.round(n)));
const ratio = (n: number) => (Number.isFinite(n) ? `${n.toFixed(2)}×` : 'n/a');
const percent = (n: number) => `${Math.round(n * 100)} %`;

function find(results: BenchResults, scenario: string, connections: number, store: StoreKind): ScenarioRow | undefined {
  return results.scenarios.find((row) => row.scenario === scenario && row.connections === connections && row.store === store && row.runs.length > 0);
}

interface Target {
  readonly target: string;
  /** The median of the per-repetition ratios (store A's and B's figures of the same repetition): the one judged. */
  readonly paired: string;
  /** The ratio of the medians, beside it. */
  readonly ofMedians: string;
  readonly pass: boolean | null;
}

const middle = (values: readonly number[]) => {
  const sorted = [...values].filter(Number.isFinite).sort((a, b) => a - b);
  return sorted.length === 0
    ? Number.NaN
    : sorted.length % 2 === 1
      ? sorted[(sorted.length - 1) / 2]!
      : (sorted[sorted.length / 2 - 1]! + sorted[sorted.length / 2]!) / 2;
};

/**
 * `a` against `b` (another store, or the raw write+fsync+rename rate) in one scenario: the median
 * of the ratios of each repetition's figures, and the ratio of the medians.
 */
export function ratios(
  results: BenchResults,
  scenario: string,
  connections: number,
  a: StoreKind,
  b: StoreKind | 'raw',
): { paired: number; ofMedians: number } {
  const mine = find(results, scenario, connections, a);
  if (mine === undefined) return { paired: Number.NaN, ofMedians: Number.NaN };
  const theirs =
    b === 'raw'
      ? (results.rawDuring.find((r) => r.scenario === scenario && r.connections === connections)?.rates ?? [])
      : (find(results, scenario, connections, b)?.runs.map((run) => run.rps) ?? []);
  const paired = middle(mine.runs.slice(0, theirs.length).map((run, i) => run.rps / theirs[i]!));
  return { paired, ofMedians: mine.rps / middle(theirs) };
}

/** The targets of the open issues, from this run's figures. */
export function targets(results: BenchResults): Target[] {
  const list: Target[] = [];
  const versus = (target: string, scenario: string, connections: number, a: StoreKind, b: StoreKind | 'raw', atLeast: number) => {
    const { paired, ofMedians } = ratios(results, scenario, connections, a, b);
    list.push({ target, paired: ratio(paired), ofMedians: ratio(ofMedians), pass: Number.isFinite(paired) ? paired >= atLeast : null });
  };
  for (const connections of results.config.connections) {
    versus(`read, ${connections} conn.: native ≥ 1.0× MemoryStore`, 'read', connections, 'sealed', 'memory', 1.0);
  }
  for (const connections of results.config.connections) {
    versus(`write, ${connections} conn.: native ≥ 1.5× session-file-store`, 'write', connections, 'sealed', 'file-store', 1.5);
    versus(`write, ${connections} conn.: native ≥ 0.5× raw write+fsync+rename`, 'write', connections, 'sealed', 'raw', 0.5);
  }
  for (const connections of results.config.connections) {
    versus(`create, ${connections} conn.: native ≥ 1.5× session-file-store`, 'create', connections, 'sealed', 'file-store', 1.5);
  }
  for (const connections of results.config.connections) {
    versus(`read, ${connections} conn.: sealed-sessions + Redis ≥ 1.0× connect-redis`, 'read', connections, 'sealed-redis', 'redis', 1.0);
    versus(`write, ${connections} conn.: sealed-sessions + Redis ≥ 0.8× connect-redis`, 'write', connections, 'sealed-redis', 'redis', 0.8);
    versus(`create, ${connections} conn.: sealed-sessions + Redis ≥ 1.0× connect-redis`, 'create', connections, 'sealed-redis', 'redis', 1.0);
  }
  for (const connections of results.config.connectionsUnknown) {
    const p99 = find(results, 'unknown', connections, 'sealed')?.p99 ?? Number.NaN;
    const memory = find(results, 'unknown', connections, 'memory')?.p99;
    const beside = memory === undefined ? '' : ` (MemoryStore ${ms(memory)} ms)`;
    list.push({
      target: `unknown, ${connections} conn.: native p99 ≤ 5 ms`,
      paired: `${ms(p99)} ms${beside}`,
      ofMedians: '',
      pass: Number.isFinite(p99) ? p99 <= 5 : null,
    });
  }
  for (const kind of ['sealed', 'sealed-store', 'sealed-redis'] as const) {
    for (const processes of [1, 2] as const) {
      const row = results.lostUpdates.find((r) => r.store === kind && r.processes === processes);
      const lost = row?.lost ?? null;
      list.push({
        target: `lost updates, ${processes} process${processes === 1 ? '' : 'es'}: ${STORE_LABELS[kind]} 0 lost (and no failed request)`,
        paired: row === undefined || lost === null ? 'n/a' : `${lost} of ${row.total}${row.failed ? `, ${row.failed} failed` : ''}`,
        ofMedians: '',
        pass: row === undefined || lost === null ? null : lost === 0 && row.failed === 0,
      });
    }
  }
  return list;
}

export function renderMarkdown(results: BenchResults): string {
  const { config, machine, versions, raw } = results;
  const lines: string[] = [];
  const add = (...more: string[]) => lines.push(...more);
  const quick = results.mode === 'quick';
  const others = results.scenarios.flatMap((row) => row.runs.map((run) => run.otherCpu)).filter((v): v is number => v !== null);
  const sortedOthers = [...others].sort((a, b) => a - b);

  add('# HTTP benchmark: sealed-sessions and its peers', '');
  add(
    quick
      ? '**Quick run** (`npm run bench:quick`): short runs, one repetition, fewer sessions: a smoke test, not figures to quote.'
      : 'Full run of `npm run bench` (bench/http.ts). Runs on a shared machine differ by up to ±20 %: compare ratios within one run.',
    '',
  );
  add(
    `Each store in its own server process (Express ${versions['express']}) on 127.0.0.1, autocannon from the bench process, ` +
      `stores interleaved, ${config.duration} s × ${config.repetitions} run${config.repetitions === 1 ? '' : 's'} per store, scenario and connection count` +
      `${config.durationEncryptedFileStore !== config.duration ? ` (${config.durationEncryptedFileStore} s for session-file-store with \`secret\`)` : ''}` +
      `${config.warmup > 0 ? ` after ${config.warmup} s of unmeasured reads per server` : ''}` +
      `${config.repetitions > 1 ? ', medians' : ''}; ${int(config.sessions)} sessions (${config.sessionsEncryptedFileStore} for session-file-store with \`secret\`). ` +
      'req/s counts 2xx responses only; errors are non-2xx responses plus socket errors (timeouts included), summed over the runs.',
    '',
  );

  add('## Machine', '', '| | |', '|---|---|');
  add(`| date | ${results.date} |`);
  add(`| cores | ${machine.cores} × ${machine.cpuModel} (${machine.memoryGB} GB) |`);
  add(`| kernel | ${machine.kernel} |`);
  add(`| filesystem of the temp dir | ${machine.filesystem} |`);
  add(`| Node | ${machine.node} |`);
  for (const [name, version] of Object.entries(versions)) add(`| ${name} | ${version} |`);
  add(`| load average, start → end | ${machine.loadavgStart.map((n) => n.toFixed(2)).join(' ')} → ${machine.loadavgEnd.map((n) => n.toFixed(2)).join(' ')} |`);
  if (sortedOthers.length > 0) {
    add(
      `| CPU share of other processes during the load runs | median ${percent(sortedOthers[Math.floor(sortedOthers.length / 2)]!)}, max ${percent(sortedOthers[sortedOthers.length - 1]!)} |`,
    );
  }
  add(`| duration of this bench | ${Math.round(results.seconds)} s |`, '');

  add(
    '## Targets',
    '',
    "Ratios are **paired**: store A's and store B's figures (or the raw write+fsync+rename rate) from the same repetition, then the median of those ratios; " +
      'the ratio of the medians is beside it. The disk drifts 3–4× within minutes, so a ratio of medians taken minutes apart misleads in both directions.',
    '',
    '| target | paired | ratio of medians | |',
    '|---|---:|---:|---|',
  );
  for (const t of targets(results)) add(`| ${t.target} | ${t.paired} | ${t.ofMedians} | ${t.pass === null ? 'n/a' : t.pass ? 'PASS' : '**MISS**'} |`);
  add('');

  add('## Raw limits of this machine', '', "Measured in the same run, in the temp dir (the stores' filesystem), 16 in flight unless said otherwise.", '');
  add('| operation | per second | median latency |', '|---|---:|---:|');
  add(`| readFile 1 KB | ${int(raw.readFile1k16.opsPerSec)} | ${ms(raw.readFile1k16.latency.medianMs)} ms |`);
  add(`| write+fsync+rename 1 KB | ${int(raw.writeFsyncRename1k16.opsPerSec)} | ${ms(raw.writeFsyncRename1k16.latency.medianMs)} ms |`);
  add(
    `| write+fsync+rename 1 KB, sequential | ${int(raw.writeFsyncRename1kSequential.opsPerSec)} | ${ms(raw.writeFsyncRename1kSequential.latency.medianMs)} ms |`,
  );
  add(`| mkdir+rmdir (one proper-lockfile lock) | ${int(raw.mkdirRmdir16.opsPerSec)} | ${ms(raw.mkdirRmdir16.latency.medianMs)} ms |`);
  add(`| mkdir+rmdir, sequential | ${int(raw.mkdirRmdirSequential.opsPerSec)} | ${ms(raw.mkdirRmdirSequential.latency.medianMs)} ms |`);
  add(`| AES-256-GCM seal of 1 KB (one core) | ${int(raw.aesGcmSeal1k.opsPerSec)} | ${raw.aesGcmSeal1k.usPerOp.toFixed(1)} µs |`, '');

  const scenarios = [...new Set(results.scenarios.map((row) => row.scenario))];
  for (const scenario of scenarios) {
    add(`## ${SCENARIO_TITLES[scenario] ?? scenario}`, '');
    add('| store | conn. | req/s | p50 ms | p99 ms | errors | vs MemoryStore | vs session-file-store |', '|---|---:|---:|---:|---:|---:|---:|---:|');
    for (const connections of scenario === 'unknown' ? config.connectionsUnknown : config.connections) {
      const memory = find(results, scenario, connections, 'memory');
      const file = find(results, scenario, connections, 'file-store');
      for (const kind of STORE_KINDS) {
        const row = results.scenarios.find((r) => r.scenario === scenario && r.connections === connections && r.store === kind);
        if (row === undefined) continue;
        const label = kind === 'sealed' ? `**${STORE_LABELS[kind]}**` : STORE_LABELS[kind];
        if (row.runs.length === 0) {
          add(`| ${label} | ${connections} | ${row.note ?? 'not run'} | | | | | |`);
          continue;
        }
        if (row.runs.every((run) => run.responses2xx === 0)) {
          add(`| ${label} | ${connections} | 0: no response within the run | | | ${int(row.errors)} | | |`);
          continue;
        }
        const versus = (peer: ScenarioRow | undefined) => ratio(peer !== undefined && peer.rps > 0 ? row.rps / peer.rps : Number.NaN);
        add(`| ${label} | ${connections} | ${int(row.rps)} | ${ms(row.p50)} | ${ms(row.p99)} | ${int(row.errors)} | ${versus(memory)} | ${versus(file)} |`);
      }
    }
    add('');
    for (const raw of results.rawDuring.filter((r) => r.scenario === scenario)) {
      add(`Raw write+fsync+rename before each repetition at ${raw.connections} connections (16 in flight): ${raw.rates.map(int).join(' / ')} per second.`);
    }
    if (results.rawDuring.some((r) => r.scenario === scenario)) add('');
  }

  add(
    `## Lost updates: ${config.lostUpdateRequests} concurrent requests on one session, each setting its own key, × ${config.lostUpdateRounds} round${config.lostUpdateRounds === 1 ? '' : 's'}`,
    '',
    'After each round every server process reads the session back; a key is lost when its request got a 2xx but the key is missing (the worst reader counts). ' +
      'With 2 processes the requests alternate between two servers on the same storage.',
    '',
    '| store | 1 process | 2 processes |',
    '|---|---:|---:|',
  );
  for (const kind of STORE_KINDS) {
    const cells = ([1, 2] as const).map((processes) => {
      const row = results.lostUpdates.find((r) => r.store === kind && r.processes === processes);
      if (row === undefined) return 'not run';
      if (row.lost === null) return row.note ?? 'not run';
      return `${row.lost} of ${row.total}${row.failed ? ` (${row.failed} failed)` : ''}`;
    });
    if (cells.every((cell) => cell === 'not run')) continue;
    add(`| ${kind === 'sealed' ? `**${STORE_LABELS[kind]}**` : STORE_LABELS[kind]} | ${cells.join(' | ')} |`);
  }
  add('');

  if (results.phases !== undefined) {
    add(
      '## A write request, phase by phase',
      '',
      'The native write scenario (Express, 16 connections over 1,000 sessions, `n += 1` per request) timed inside the server by `bench/phases.ts`: ' +
        'each call through the disk seam as the request sees it (waiting for a thread of the pool, then running), and the request around them. ' +
        'The raw rate is measured before each repetition. The first table is this run; the second the same script on the commit before the write-path change ' +
        '(every file system call through the thread pool, and write + fsync).',
      '',
      renderPhases(results.phases.now),
    );
    if (results.phases.before !== null) add(renderPhases(results.phases.before));
  }

  add('## Notes', '');
  for (const note of results.notes) add(`- ${note}`);
  add(
    '- session-file-store retries a missing file 5 times (its default `retries`, 50–100 ms apart) before it reports "no session": that is its `unknown` latency.',
    "- express-session stores get the session through express-session (`resave: false`, `saveUninitialized: false`, cookie `maxAge` 30 min); express-session touches an unchanged session on every read, which session-file-store turns into a rewrite, connect-redis into an EXPIRE, and `SealedStore` into a keep-alive mark (the file's mtime, no rewrite) from which `get` reports the moved `cookie.expires` exactly; the mark is told to the read cache, so the next read of that session is still one stat, not a whole read.",
    "- express-session's contract has `set()` hand over the whole session, so every peer's last writer wins. `SealedStore` turns each save of a session it handed out into that request's per-key changes, merged under the session's lock as the native `sessions()` does (koa-session and @fastify/session too).",
    '- koa-session and @fastify/session with `SealedStore` save only changed sessions (@fastify/session with `rolling: false`, `saveUninitialized: false`: its default `rolling: true` would make every read a write). The native Koa and Fastify adapters are the same transaction as `sessions()` on Express.',
    '',
  );
  return lines.join('\n');
}
