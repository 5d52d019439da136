import { spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import test, { type ExecutionContext } from 'ava';
import { createClient } from 'redis';
import { expiresAt } from '../../src/core/expiry.js';
import { plaintextOf } from '../../src/core/sealed-session.js';
import { fileNameOf, generateId } from '../../src/core/session-id.js';
import { createKeyring } from '../../src/crypto/keys.js';
import { readHeader, seal, type EnvelopeTimes } from '../../src/crypto/seal.js';
import { openStore, type Store } from '../../src/index.js';
import { redisEnvelopes } from '../../src/backends/redis/envelopes.js';
import type { MigrateReport } from '../../src/ops/migrate.js';
import { redisBackend } from '../../src/redis.js';
import { clusterTarget, standaloneTarget, type Target } from '../backends/redis/targets.js';
import { cli } from '../helpers/cli.js';
import { startRedis } from '../helpers/redis.js';
import { KEY } from '../helpers/temp-dir.js';

/*
 * `sealed-sessions migrate` (issue 14) on 10,000 sessions, through the CLI as an operator runs it:
 * file → Redis → file and file → Cluster → file, every session opening with the same data and
 * deadlines on each side (through openStore), envelopes byte for byte, last use kept; and runs
 * killed midway (SIGKILL), then run again, losing and duplicating nothing.
 *
 * The 10,000 sessions are sealed and written directly (as bench/million.ts does): through commits
 * they would take most of the time budget.
 */

const LIVE = 10_000;
const SLOW = { timeoutMs: 60_000 };
const EXPIRED = 50;
const DAY = 86_400_000;
const root = path.resolve(import.meta.dirname, '../..');
const bin = path.join(root, 'src/bin.ts');

interface Original {
  readonly id: string;
  readonly name: string;
  readonly bytes: Buffer;
  readonly data: { readonly n: number; readonly user: string; readonly tags: readonly string[] };
  /** The file's modification time: the last use. */
  readonly lastUseMs: number;
  readonly times: EnvelopeTimes;
  /** When the absolute deadline comes before the idle one: then only the expiry, not the last use, is stored in Redis. */
  readonly absoluteFirst: boolean;
}

const targets: Partial<Record<'standalone' | 'cluster', Target>> = {};
let base = '';
let source = '';
const originals = new Map<string, Original>();

test.before(async () => {
  const started = performance.now();
  // Generous time limits for the checks' own Redis calls: the whole suite loads this machine.
  [targets.standalone, targets.cluster] = await Promise.all([standaloneTarget(SLOW), clusterTarget(SLOW), makeDataset()]);
  console.log(`setup: ${LIVE + EXPIRED} sessions written and 2 Redis deployments started in ${Math.round(performance.now() - started)} ms`);
});

test.after.always(async () => {
  await Promise.all(Object.values(targets).map((target) => target.stop()));
  if (base !== '') await fsp.rm(base, { recursive: true, force: true });
});

/** The source data dir: 10,000 live sessions and 50 expired ones, mtimes after their writes (keep-alives). */
async function makeDataset(): Promise<void> {
  base = await fsp.mkdtemp(path.join(os.tmpdir(), 'sealed-sessions-migrate-'));
  source = path.join(base, 'files');
  for (let folder = 0; folder < 256; folder++) fs.mkdirSync(path.join(source, folder.toString(16).padStart(2, '0')), { recursive: true, mode: 0o700 });
  const keyring = createKeyring([KEY]);
  const now = Date.now();
  for (let n = 0; n < LIVE + EXPIRED; n++) {
    const id = generateId();
    const name = fileNameOf(id);
    const expired = n >= LIVE;
    const absoluteFirst = !expired && n % 10 === 0;
    const created = now - ((n * 7919) % (6 * DAY)) - 60_000;
    const written = expired ? now - 3 * DAY : now - ((n * 104_729) % 600_000) - 1000;
    const times: EnvelopeTimes = {
      created: Math.min(created, written),
      written,
      // Idle expiry (a day after the last use) first, except one in ten whose absolute deadline comes sooner
      // (in 2 to 3 hours: still live when a loaded machine gets to this test minutes later).
      absoluteDeadline: expired ? now - 3_600_000 : absoluteFirst ? now + 2 * 3_600_000 + ((n * 31) % 3_600_000) : now + 30 * DAY,
      idleSeconds: 86_400,
    };
    const data = { n, user: `user${n % 97}`, tags: ['a', 'b'].slice(0, n % 3) };
    const bytes = seal(keyring, times, Buffer.from(plaintextOf(id, JSON.stringify(data)), 'utf8'), name);
    const file = path.join(source, name.slice(0, 2), `${name}.sess`);
    fs.writeFileSync(file, bytes, { mode: 0o600 });
    // Used after its last write (a keep-alive), to the ms.
    const lastUseMs = expired ? written : written + ((n * 13) % 1000) * 1 + 1;
    fs.utimesSync(file, lastUseMs / 1000, lastUseMs / 1000);
    if (!expired) originals.set(name, { id, name, bytes, data, lastUseMs, times, absoluteFirst });
  }
}

/** What `migrate --json` prints: the library's report, with where from and to. */
type Report = MigrateReport & { readonly from: string; readonly to: string };

async function migrate(t: ExecutionContext, args: readonly string[]): Promise<Report> {
  const started = performance.now();
  const result = await cli(['migrate', ...args, '--json']);
  t.is(result.code, 0, result.stderr);
  t.is(result.stderr, '');
  for (const { id } of originals.values()) if (result.stdout.includes(id)) t.fail('an id was printed');
  const report = JSON.parse(result.stdout) as Report;
  t.like(report, { replacedOlder: 0, keptNewer: 0, gone: 0, unreadable: 0, blocked: 0, failed: 0 });
  t.log(
    `migrate ${args.join(' ')}: ${report.copied} copied, ${report.alreadyThere} already there in ${Math.round(report.durationMs)} ms (the command: ${Math.round(performance.now() - started)} ms)`,
  );
  return report;
}

const toArgs = (flag: '--from' | '--to', target: Target) => target.urls.flatMap((url) => [flag, url]);

/** Every original in Redis under `prefix`: the same bytes, an expiry that gives the same deadlines and last use; and a store there opens it. */
async function checkRedis(t: ExecutionContext, target: Target, prefix: string): Promise<void> {
  const store = await openStore({ backend: redisBackend({ client: target.client, prefix, timeoutMs: SLOW.timeoutMs }), keys: KEY, cacheSize: 0 });
  let count = 0;
  for await (const { key } of target.envelopes.scanHeaders(prefix)) if (/^[0-9a-f]{64}$/.test(key.slice(prefix.length))) count++;
  t.is(count, LIVE, 'every live session, once, and nothing else');
  const mismatches: string[] = [];
  await inBatches([...originals.values()], 200, async (original) => {
    const found = await target.envelopes.read(`${prefix}${original.name}`);
    if (found === null || !found.envelope.equals(original.bytes)) return void mismatches.push(`${original.data.n}: bytes`);
    if (found.expireAtMs !== Math.floor(expiresAt(original.times as never, original.lastUseMs))) mismatches.push(`${original.data.n}: expiry`);
    mismatches.push(...(await opensAsOriginal(store, original)));
  });
  t.deepEqual(mismatches.slice(0, 10), [], `${mismatches.length} mismatches`);
}

/** Every original as a file in `dir`: the same bytes and mtime (last use), and a file store opens it. */
async function checkFiles(t: ExecutionContext, dir: string): Promise<void> {
  const store = await openStore({ dir, keys: KEY, cacheSize: 0 });
  const sessionFiles: string[] = [];
  const debris: string[] = [];
  for (const folder of await fsp.readdir(dir)) {
    if (!/^[0-9a-f]{2}$/.test(folder)) continue;
    for (const file of await fsp.readdir(path.join(dir, folder))) (file.endsWith('.sess') ? sessionFiles : debris).push(file);
  }
  t.is(sessionFiles.length, LIVE, 'every live session, once');
  const names = new Set(originals.keys());
  t.is(sessionFiles.filter((file) => !names.has(file.slice(0, 64))).length, 0, 'no other session');
  t.deepEqual(debris, []);
  const mismatches: string[] = [];
  await inBatches([...originals.values()], 64, async (original) => {
    const file = path.join(dir, original.name.slice(0, 2), `${original.name}.sess`);
    const [bytes, stats] = await Promise.all([fsp.readFile(file), fsp.stat(file, { bigint: true })]);
    if (!bytes.equals(original.bytes)) mismatches.push(`${original.data.n}: bytes`);
    if ((stats.mode & 0o777n) !== 0o600n) mismatches.push(`${original.data.n}: mode`);
    const mtimeMs = Math.round(Number(stats.mtimeNs) / 1e6);
    // Through Redis, a session whose absolute deadline comes first keeps its expiry (what its
    // last use decides), not the last use itself: PXAT is all Redis stores of it.
    const expected = original.absoluteFirst ? null : original.lastUseMs;
    if (expected !== null && mtimeMs !== expected) mismatches.push(`${original.data.n}: last use ${mtimeMs} ≠ ${expected}`);
    mismatches.push(...(await opensAsOriginal(store, original)));
  });
  t.deepEqual(mismatches.slice(0, 10), [], `${mismatches.length} mismatches`);
}

/** What is wrong when the store opens the session: data, deadlines, expiry. */
async function opensAsOriginal(store: Store, original: Original): Promise<string[]> {
  const outcome = await store.read(original.name, true);
  if (outcome.state !== 'found') return [`${original.data.n}: ${outcome.state}`];
  const { session } = outcome;
  const problems: string[] = [];
  if (session.id !== original.id) problems.push(`${original.data.n}: id`);
  if (JSON.stringify(Object.fromEntries(session.data)) !== JSON.stringify(original.data)) problems.push(`${original.data.n}: data`);
  const { created, written, absoluteDeadline, idleSeconds } = session.header;
  if (JSON.stringify({ created, written, absoluteDeadline, idleSeconds }) !== JSON.stringify(original.times)) problems.push(`${original.data.n}: deadlines`);
  const expected = Math.floor(expiresAt(readHeader(original.bytes)!, original.lastUseMs));
  if (Math.floor(expiresAt(session.header, session.mtimeMs)) !== expected) problems.push(`${original.data.n}: expires at another time`);
  return problems;
}

async function inBatches<T>(items: readonly T[], size: number, fn: (item: T) => Promise<void>): Promise<void> {
  for (let start = 0; start < items.length; start += size) await Promise.all(items.slice(start, start + size).map(fn));
}

/** Runs the migrate command as its own process and SIGKILLs it once `progress()` reaches `at` (of 10,000). Returns the progress at the kill. */
async function killMidway(t: ExecutionContext, args: readonly string[], progress: () => Promise<number>, at: number): Promise<number> {
  const child = spawn(process.execPath, ['--import=tsx/esm', bin, 'migrate', ...args], { cwd: root, stdio: 'ignore' });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let done = 0;
  for (;;) {
    done = await progress();
    if (done >= at || child.exitCode !== null) break;
    await sleep(20);
  }
  child.kill('SIGKILL');
  const code = await exited;
  t.is(code, null, 'killed, not finished');
  const atKill = await progress();
  t.true(atKill < LIVE, `killed before the end (${atKill} copied)`);
  return atKill;
}

test.serial('file → Redis → file: 10,000 sessions, byte for byte, same data, deadlines and last use on each side; 50 expired ones skipped', async (t) => {
  // Minutes, not seconds, when the whole suite runs beside it: 10,000 fsynced files.
  t.timeout(300_000);
  const target = targets.standalone!;
  const prefix = 'm1:';
  const there = await migrate(t, ['--from', source, ...toArgs('--to', target), '--prefix', prefix]);
  t.like(there, { scanned: LIVE + EXPIRED, copied: LIVE, alreadyThere: 0, expired: EXPIRED });
  await checkRedis(t, target, prefix);

  const back = path.join(base, 'back-from-redis');
  const returned = await migrate(t, [...toArgs('--from', target), '--prefix', prefix, '--to', back]);
  t.like(returned, { scanned: LIVE, copied: LIVE, expired: 0 });
  await checkFiles(t, back);

  // Again: nothing to do, nothing duplicated.
  const again = await migrate(t, ['--from', source, ...toArgs('--to', target), '--prefix', prefix]);
  t.like(again, { copied: 0, alreadyThere: LIVE, expired: EXPIRED });
  t.log(`10,000 sessions: file → Redis ${Math.round(there.durationMs)} ms, Redis → file ${Math.round(returned.durationMs)} ms`);
});

test.serial('killed midway (SIGKILL) and run again: file → Redis and Redis → file lose and duplicate nothing', async (t) => {
  // Minutes, not seconds, when the whole suite runs beside it: 10,000 fsynced files.
  t.timeout(300_000);
  const server = await startRedis(t);
  const client = await createClient({ url: server.url })
    .on('error', () => undefined)
    .connect();
  t.teardown(() => client.destroy());
  const dbsize = async () => Number(await client.sendCommand(['DBSIZE']));

  const before = await killMidway(t, ['--from', source, '--to', server.url], dbsize, 2000);
  const resumed = await migrate(t, ['--from', source, '--to', server.url]);
  t.is(resumed.copied + resumed.alreadyThere, LIVE);
  t.true(resumed.alreadyThere >= before, `${resumed.alreadyThere} already there, ${before} copied before the kill`);
  t.is(resumed.expired, EXPIRED);
  t.is(await dbsize(), LIVE);
  const target: Target = { ...targets.standalone!, client, envelopes: redisEnvelopes(client, SLOW) };
  await checkRedis(t, target, 'sess:');

  const back = path.join(base, 'back-after-kill');
  const countFiles = async () => {
    let count = 0;
    for (const folder of await fsp.readdir(back).catch(() => [])) {
      if (/^[0-9a-f]{2}$/.test(folder)) count += (await fsp.readdir(path.join(back, folder))).filter((file) => file.endsWith('.sess')).length;
    }
    return count;
  };
  const copiedBefore = await killMidway(t, ['--from', server.url, '--to', back], countFiles, 2000);
  // A write killed between its temp file and its link leaves a temp file: debris, which gc clears
  // after a minute. No half-written or wrongly dated session file, ever.
  const debris: string[] = [];
  for (const folder of await fsp.readdir(back)) {
    if (/^[0-9a-f]{2}$/.test(folder)) debris.push(...(await fsp.readdir(path.join(back, folder))).filter((file) => !file.endsWith('.sess')));
  }
  t.true(debris.length <= 16, `${debris.length} temp files`);
  for (const file of debris) await fsp.rm(path.join(back, file.slice(0, 2), file));
  const again = await migrate(t, ['--from', server.url, '--to', back]);
  t.is(again.copied + again.alreadyThere, LIVE);
  t.true(again.alreadyThere >= copiedBefore);
  await checkFiles(t, back);
});

test.serial('file → Cluster (--to once per seed node) → file: 10,000 sessions spread over 3 masters, all back byte for byte', async (t) => {
  // Minutes, not seconds, when the whole suite runs beside it: 10,000 fsynced files.
  t.timeout(300_000);
  const target = targets.cluster!;
  const prefix = 'mc:';
  const there = await migrate(t, ['--from', source, ...toArgs('--to', target), '--prefix', prefix]);
  t.like(there, { copied: LIVE, expired: EXPIRED });
  for (const master of target.masters) t.true(Number(await master.sendCommand(['DBSIZE'])) > LIVE / 5, 'every master holds its share');
  await checkRedis(t, target, prefix);
  const back = path.join(base, 'back-from-cluster');
  const returned = await migrate(t, [...toArgs('--from', target), '--prefix', prefix, '--to', back]);
  t.like(returned, { copied: LIVE });
  await checkFiles(t, back);
  t.log(`10,000 sessions: file → Cluster ${Math.round(there.durationMs)} ms, Cluster → file ${Math.round(returned.durationMs)} ms`);
});

test('usage errors exit 2 without echoing a URL; entries that are no session are listed, the rest copied, exit 1; --help', async (t) => {
  const target = targets.standalone!;
  const url = target.urls[0]!;
  const secretUrl = url.replace('redis://', 'redis://user:hunter2-secret@');
  const dir = path.join(base, 'usage');
  await fsp.mkdir(dir);
  const cases: Array<[readonly string[], RegExp]> = [
    [['--to', url], /missing --from/],
    [['--from', dir], /missing --to/],
    [['--from', dir, '--to', dir], /--from and --to are the same data dir/],
    [['--from', url, '--to', url], /the same Redis keys/],
    [['--from', dir, '--from', url, '--to', url], /either Redis URLs .* or one data dir, not both/],
    [['--from', dir, '--from', source, '--to', url], /one data dir only/],
    [['--from', dir, '--to', 'http://user:hunter2-secret@example.com/'], /a Redis URL starts with redis:\/\/ or rediss:\/\//],
    [['--from', dir, '--to', path.join(base, 'x'), '--prefix', 'p:'], /--prefix goes with a Redis side/],
    [['--from', dir, '--from-prefix', 'p:', '--to', secretUrl], /--from-prefix goes with a Redis --from/],
    [['--from', path.join(base, 'missing'), '--to', secretUrl], /no data dir at .* \(see --from\)/],
  ];
  const results = await Promise.all(cases.map(([args]) => cli(['migrate', ...args])));
  results.forEach((result, index) => {
    const [args, pattern] = cases[index]!;
    t.is(result.code, 2, args.join(' '));
    t.regex(result.stderr, pattern, args.join(' '));
    t.false(result.stderr.includes('hunter2-secret'));
    t.is(result.stdout, '');
  });
  const help = await cli(['migrate', '--help']);
  t.is(help.code, 0);
  t.regex(help.stdout, /^Usage: sealed-sessions migrate --from <dir \| url> --to <url \| dir>/);
  t.regex((await cli(['--help'])).stdout, /migrate --from X --to Y/);

  // A data dir holding one session and one file that is not one: the session is copied, the
  // other listed by its one-way name, exit 1; run again, the same (nothing lost, nothing doubled).
  const store = await openStore({ dir, keys: KEY });
  const session = store.create();
  session.set('kept', true);
  await session.save();
  const foreign = 'b'.repeat(64);
  await fsp.mkdir(path.join(dir, 'bb'), { recursive: true });
  await fsp.writeFile(path.join(dir, 'bb', `${foreign}.sess`), 'not an envelope');
  for (const round of [1, 2]) {
    const result = await cli(['migrate', '--from', dir, '--to', url, '--prefix', 'mu:']);
    t.is(result.code, 1, result.stderr);
    t.regex(result.stdout, round === 1 ? /2 sessions at .* → redis:\/\/127\.0\.0\.1:\d+ \(prefix mu:\): 1 copied/ : /0 copied .*1 already there/);
    t.true(result.stdout.includes(`bb/${foreign}.sess  not a session (left at the source)`));
    t.regex(result.stderr, /1 entry not copied \(1 not sessions at the source, 0 .*\); the rest was copied/);
    t.false(result.stdout.includes(session.id));
  }
});
