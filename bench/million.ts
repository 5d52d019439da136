/*
 * A data dir of N sessions (default 1,000,000): how long openStore() takes on it, what store.gc()
 * costs over it (time, longest event-loop pause, memory), and how fast load() still is.
 *
 *   node --import=tsx/esm bench/million.ts                     1,000,000 sessions in /work/.bench-million
 *   node --import=tsx/esm bench/million.ts --count 100000      another size (the dataset is rebuilt)
 *   node --import=tsx/esm bench/million.ts --dir PATH          dataset elsewhere (marker: PATH.marker.json)
 *   options: --rebuild (build anew even if reusable), --no-dry-run (skip the dry-run gc),
 *            --profile-gc (CPU profile of the real gc → bench/million-gc.cpuprofile),
 *            --cold (drop the page cache before gc; needs root),
 *            --wait-quiet S (before each measurement, wait up to S s for other processes to leave the CPUs)
 *
 * The dataset is written directly (not through commits: far too slow for a million), with the
 * library's own modules, so every file is a valid sealed session: ~20 % expired (absolute
 * deadline in the past), the rest live, plus a few hundred debris entries (stale lock folders,
 * old temp files, and some fresh ones that gc must leave alone). A marker next to the dir lets
 * the next run reuse it; gc removes the expired sessions, so a reuse tops them up first.
 *
 * Prints a summary and writes bench/million-results.json.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { Session as InspectorSession } from 'node:inspector';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { openStore, type GcReport, type Io, type Store } from '../src/index.js';
import { plaintextOf } from '../src/core/sealed-session.js';
import { defaultIo } from '../src/backends/file/io.js';
import { createKeyring, type Keyring } from '../src/crypto/keys.js';
import { seal, type EnvelopeTimes } from '../src/crypto/seal.js';
import { fileNameOf, generateId } from '../src/core/session-id.js';
import { otherCpuWindow, waitQuiet } from './machine.js';

const KEY = 'bench-million-key-0123456789abcdef-0123456789abcdef';
const DATASET_FORMAT = 1;
const EXPIRED_EVERY = 5; // every 5th session expired: 20 %
const LIVE_SAMPLE = 5000; // live ids kept in the marker for the load() spot check
const DAY = 86_400_000;
const TEN_YEARS_S = 10 * 365 * 86_400;

// ---------------------------------------------------------------- arguments

const argv = process.argv.slice(2);
function option(name: string): string | undefined {
  const index = argv.indexOf(name);
  if (index < 0) return undefined;
  const value = argv[index + 1];
  if (value === undefined || value.startsWith('--')) usage(`${name} needs a value`);
  return value;
}
function usage(message: string): never {
  console.error(`million.ts: ${message}\nusage: million.ts [--count N] [--dir PATH] [--rebuild] [--no-dry-run] [--profile-gc] [--cold] [--wait-quiet S]`);
  process.exit(2);
}
const count = Number(option('--count') ?? 1_000_000);
if (!Number.isInteger(count) || count < EXPIRED_EVERY) usage('--count must be an integer ≥ 5');
const dir = path.resolve(option('--dir') ?? '/work/.bench-million');
const markerPath = `${dir}.marker.json`;
const forceRebuild = argv.includes('--rebuild');
const dryRunFirst = !argv.includes('--no-dry-run');
const profileGc = argv.includes('--profile-gc');
const cold = argv.includes('--cold');
const waitQuietMax = Number(option('--wait-quiet') ?? 0);
if (!Number.isFinite(waitQuietMax) || waitQuietMax < 0) usage('--wait-quiet needs a number of seconds');
const quietBefore = async (what: string) => (waitQuietMax > 0 ? waitQuiet(waitQuietMax, what) : null);
const benchDir = path.dirname(fileURLToPath(import.meta.url));

// ---------------------------------------------------------------- helpers

const log = (message: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${message}`);
const fmtInt = (n: number) => Math.round(n).toLocaleString('en-US');
const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MB`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] ?? Number.NaN;
}

/** Runs `fn(i)` for i in [0, total) with `limit` in flight. */
async function pool(total: number, limit: number, fn: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, total) }, async () => {
      while (next < total) await fn(next++);
    }),
  );
}

/** Counts the store's disk operations (for progress and per-session costs). */
function countingIo(): { io: Io; counts: Record<string, number> } {
  const counts: Record<string, number> = {};
  const wrapped: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(defaultIo) as [string, (...args: unknown[]) => unknown][]) {
    counts[name] = 0;
    wrapped[name] = (...args: unknown[]) => {
      counts[name] = (counts[name] ?? 0) + 1;
      return fn(...args);
    };
  }
  return { io: wrapped as unknown as Io, counts };
}

// ---------------------------------------------------------------- the dataset

type DebrisKind = 'stale-lock' | 'old-temp' | 'fresh-lock' | 'fresh-temp';
interface Debris {
  readonly kind: DebrisKind;
  readonly path: string;
}

interface Marker {
  readonly format: number;
  readonly count: number;
  readonly expired: number;
  readonly live: number;
  /** 'collecting' while a gc runs (an interrupted run leaves it: the next run rebuilds). */
  state: 'pristine' | 'collecting' | 'collected';
  readonly builtAt: string;
  readonly buildSeconds: number;
  readonly liveSample: readonly string[];
  /** Ids of the expired sessions that have a stale lock beside them (re-created as they were on reuse). */
  readonly lockedExpiredIds: readonly string[];
  readonly debris: readonly Debris[];
}

function readMarker(): Marker | null {
  try {
    return JSON.parse(fs.readFileSync(markerPath, 'utf8')) as Marker;
  } catch {
    return null;
  }
}

function writeMarker(marker: Marker): void {
  fs.writeFileSync(markerPath, `${JSON.stringify(marker)}\n`);
}

const folderOf = (name: string) => path.join(dir, name.slice(0, 2));
const fileOf = (name: string) => path.join(folderOf(name), `${name}.sess`);

function liveData(i: number): string {
  return JSON.stringify({
    userId: 100_000 + (i % 900_000),
    role: i % 50 === 0 ? 'admin' : 'user',
    csrf: randomBytes(24).toString('base64url'),
    locale: ['en-GB', 'fr-FR', 'de-DE', 'nl-NL'][i % 4],
    cart: i % 3 === 0 ? [{ sku: `SKU-${i % 9973}`, qty: 1 + (i % 4) }] : [],
    flash: null,
    visits: i % 97,
  });
}

/**
 * One valid sealed session file, mode 0600, no fsync. Synchronous on purpose: on this kind of
 * machine a plain writeFileSync loop creates files 2–3× faster than async writes through the
 * 4-thread libuv pool.
 */
function writeSession(keyring: Keyring, id: string, times: EnvelopeTimes, dataJson: string): string {
  const name = fileNameOf(id);
  const envelope = seal(keyring, times, Buffer.from(plaintextOf(id, dataJson), 'utf8'), name);
  fs.writeFileSync(fileOf(name), envelope, { mode: 0o600 });
  return name;
}

/** Runs `fn(i)` for i in [0, total), synchronously in chunks, yielding between chunks (timers, logs). */
async function chunked(total: number, label: string, fn: (index: number) => void): Promise<number> {
  const started = performance.now();
  let lastReport = started;
  for (let i = 0; i < total;) {
    const end = Math.min(total, i + 2000);
    for (; i < end; i++) fn(i);
    await new Promise((resolve) => setImmediate(resolve));
    const now = performance.now();
    if (now - lastReport > 10_000) {
      lastReport = now;
      const rate = i / ((now - started) / 1000);
      log(`  ${label}: ${fmtInt(i)} / ${fmtInt(total)} (${fmtInt(rate)} files/s, ~${Math.round((total - i) / rate)} s left)`);
    }
  }
  return (performance.now() - started) / 1000;
}

function expiredTimes(now: number): EnvelopeTimes {
  const absoluteDeadline = now - (1 + Math.random() * 29) * DAY;
  const created = absoluteDeadline - 7 * DAY;
  return { created, written: created + Math.random() * 6 * DAY, absoluteDeadline, idleSeconds: 1800 };
}

function liveTimes(now: number): EnvelopeTimes {
  // Far deadlines, so that a dataset reused days later is still 80 % live.
  const created = now - Math.random() * 6 * DAY;
  return { created, written: now - Math.random() * 600_000, absoluteDeadline: now + TEN_YEARS_S * 1000, idleSeconds: TEN_YEARS_S };
}

async function makeFolders(): Promise<void> {
  await fs.promises.mkdir(dir, { recursive: true, mode: 0o700 });
  await fs.promises.chmod(dir, 0o700);
  for (let i = 0; i < 256; i++) {
    const folder = path.join(dir, i.toString(16).padStart(2, '0'));
    await fs.promises.mkdir(folder, { recursive: true, mode: 0o700 });
    await fs.promises.chmod(folder, 0o700);
  }
}

async function writeExpired(keyring: Keyring, total: number, label: string, reuseIds: readonly string[]): Promise<void> {
  const now = Date.now();
  const seconds = await chunked(total, label, (i) => {
    writeSession(keyring, reuseIds[i] ?? generateId(), expiredTimes(now), JSON.stringify({ userId: 42, csrf: randomBytes(24).toString('base64url') }));
  });
  log(`  ${label}: ${fmtInt(total)} in ${seconds.toFixed(1)} s`);
}

function randomName(): string {
  return randomBytes(32).toString('hex');
}

function planDebris(expiredNames: readonly string[]): Debris[] {
  const debris: Debris[] = [];
  const add = (kind: DebrisKind, name: string) => {
    const suffix = kind.endsWith('lock') ? '.lock' : `.${randomBytes(4).readUInt32BE(0)}`;
    debris.push({ kind, path: path.join(folderOf(name), `${name}.sess${suffix}`) });
  };
  for (let i = 0; i < 100; i++) add('stale-lock', randomName());
  // Stale locks left beside expired sessions: gc must take them over to remove the session.
  for (const name of expiredNames.slice(0, 50)) add('stale-lock', name);
  for (let i = 0; i < 100; i++) add('old-temp', randomName());
  for (let i = 0; i < 25; i++) add('fresh-lock', randomName());
  for (let i = 0; i < 25; i++) add('fresh-temp', randomName());
  return debris;
}

/** (Re)creates every debris entry with its age: stale/old ones an hour or two old, fresh ones now. */
async function placeDebris(debris: readonly Debris[]): Promise<void> {
  const now = Date.now() / 1000;
  for (const entry of debris) {
    if (entry.kind.endsWith('lock')) {
      await fs.promises.mkdir(entry.path, { recursive: true, mode: 0o700 });
    } else {
      await fs.promises.writeFile(entry.path, randomBytes(100), { mode: 0o600 });
    }
    const age = entry.kind === 'stale-lock' ? 3600 : entry.kind === 'old-temp' ? 7200 : 0;
    await fs.promises.utimes(entry.path, now - age, now - age);
  }
}

/** Session files, lock folders and temp files in the dir (names only: quick). */
async function census(): Promise<{ sessions: number; locks: number; temps: number; seconds: number }> {
  const started = performance.now();
  let sessions = 0;
  let locks = 0;
  let temps = 0;
  for (let i = 0; i < 256; i++) {
    let names: string[];
    try {
      names = await fs.promises.readdir(path.join(dir, i.toString(16).padStart(2, '0')));
    } catch {
      continue;
    }
    for (const name of names) {
      if (name.endsWith('.sess')) sessions++;
      else if (name.endsWith('.lock')) locks++;
      else temps++;
    }
  }
  return { sessions, locks, temps, seconds: (performance.now() - started) / 1000 };
}

async function build(): Promise<Marker> {
  const keyring = createKeyring([KEY]);
  if (fs.existsSync(dir)) {
    log(`removing the old dataset ${dir} …`);
    fs.rmSync(markerPath, { force: true });
    execFileSync('rm', ['-rf', '--', dir]);
  }
  log(`building ${fmtInt(count)} sessions in ${dir} (writeFileSync, no fsync) …`);
  await makeFolders();
  const started = performance.now();
  const now = Date.now();
  const expiredNames: string[] = [];
  const lockedExpiredIds: string[] = [];
  const liveSample: string[] = [];
  const sampleEvery = Math.max(1, Math.floor(count / LIVE_SAMPLE));
  await chunked(count, 'building', (i) => {
    const id = generateId();
    if (i % EXPIRED_EVERY === 0) {
      const name = writeSession(keyring, id, expiredTimes(now), JSON.stringify({ userId: 42, csrf: randomBytes(24).toString('base64url') }));
      if (expiredNames.length < 50) {
        expiredNames.push(name);
        lockedExpiredIds.push(id);
      }
    } else {
      if (i % sampleEvery === 1 && liveSample.length < LIVE_SAMPLE) liveSample.push(id);
      writeSession(keyring, id, liveTimes(now), liveData(i));
    }
  });
  const debris = planDebris(expiredNames);
  await placeDebris(debris);
  const buildSeconds = (performance.now() - started) / 1000;
  const expired = Math.ceil(count / EXPIRED_EVERY);
  log(`built ${fmtInt(count)} sessions + ${debris.length} debris in ${buildSeconds.toFixed(1)} s (${fmtInt(count / buildSeconds)} files/s)`);
  const marker: Marker = {
    format: DATASET_FORMAT,
    count,
    expired,
    live: count - expired,
    state: 'pristine',
    builtAt: new Date().toISOString(),
    buildSeconds,
    liveSample,
    lockedExpiredIds,
    debris,
  };
  writeMarker(marker);
  return marker;
}

/** The dataset, reused when the marker says it is ours and of the right size, rebuilt otherwise. */
async function prepare(): Promise<{ marker: Marker; reused: boolean; topUpSeconds: number }> {
  const marker = forceRebuild ? null : readMarker();
  if (
    marker === null ||
    marker.format !== DATASET_FORMAT ||
    !Array.isArray(marker.lockedExpiredIds) ||
    marker.count !== count ||
    !fs.existsSync(dir) ||
    marker.state === 'collecting'
  ) {
    if (marker !== null && !forceRebuild) log(`marker ${markerPath} does not fit (count ${marker.count}, state ${marker.state}): rebuilding`);
    return { marker: await build(), reused: false, topUpSeconds: 0 };
  }
  log(`reusing ${dir} (built ${marker.builtAt}, state ${marker.state}); counting files …`);
  const before = await census();
  log(`  ${fmtInt(before.sessions)} session files, ${before.locks} lock folders, ${before.temps} other files (${before.seconds.toFixed(1)} s)`);
  const started = performance.now();
  if (marker.state === 'collected' && before.sessions === marker.live) {
    await writeExpired(createKeyring([KEY]), marker.expired, 're-creating the expired sessions gc removed', marker.lockedExpiredIds);
  } else if (before.sessions !== marker.count) {
    log(`  expected ${fmtInt(marker.state === 'collected' ? marker.live : marker.count)} session files: rebuilding`);
    return { marker: await build(), reused: false, topUpSeconds: 0 };
  }
  await placeDebris(marker.debris);
  const after = await census();
  if (after.sessions !== marker.count) throw new Error(`dataset has ${after.sessions} session files, expected ${marker.count}`);
  marker.state = 'pristine';
  writeMarker(marker);
  return { marker, reused: true, topUpSeconds: (performance.now() - started) / 1000 };
}

// ---------------------------------------------------------------- measurements

async function measureOpens(target: string, rounds: number): Promise<{ medianMs: number; minMs: number; maxMs: number; samples: number[] }> {
  const samples: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const t0 = performance.now();
    await openStore({ dir: target, keys: [KEY] });
    samples.push(performance.now() - t0);
  }
  return { medianMs: median(samples), minMs: Math.min(...samples), maxMs: Math.max(...samples), samples };
}

interface RssSample {
  readonly tMs: number;
  readonly rss: number;
  readonly heapUsed: number;
  readonly external: number;
  readonly headersRead: number;
}

interface LongPause {
  readonly atMs: number;
  readonly pauseMs: number;
  /** Of the interval since the previous tick: the main thread on a CPU. */
  readonly runMs: number;
  /** … runnable but waiting for a CPU. */
  readonly runQueueWaitMs: number;
  /** … neither: blocked in the kernel or on a lock. */
  readonly blockedMs: number;
  readonly headersRead: number;
}

/** The main thread's scheduler counters (Linux), or null elsewhere. */
function schedstat(): { runNs: number; waitNs: number } | null {
  try {
    const [run, wait] = fs.readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ');
    return { runNs: Number(run), waitNs: Number(wait) };
  } catch {
    return null;
  }
}

interface GcRun {
  readonly report: GcReport;
  readonly wallMs: number;
  readonly cpuUserMs: number;
  readonly cpuSystemMs: number;
  readonly eldMaxMs: number;
  readonly eldP99Ms: number;
  readonly eldMeanMs: number;
  readonly driftMaxPauseMs: number;
  readonly driftMaxAtMs: number;
  readonly driftMaxAtHeadersRead: number;
  readonly pausesOver50ms: number;
  readonly longPauses: readonly LongPause[];
  /** Share of all cores used by other processes during the gc (a shared machine makes pauses). */
  readonly otherCpuShare: number | null;
  readonly loadavgBefore: readonly number[];
  readonly loadavgAfter: readonly number[];
  readonly pausesOver20ms: number;
  readonly v8GcMaxMs: number;
  readonly v8GcMaxDetail: string;
  readonly v8GcTotalMs: number;
  readonly v8GcCount: number;
  readonly rssBefore: number;
  readonly rssAfter: number;
  readonly rssPeak: number;
  readonly heapUsedBefore: number;
  readonly heapUsedAfter: number;
  readonly heapUsedPeak: number;
  readonly rssTimeline: readonly RssSample[];
  readonly ioCalls: Record<string, number>;
  readonly filesBefore: { sessions: number; locks: number; temps: number };
  readonly filesAfter: { sessions: number; locks: number; temps: number };
  readonly profile?: string;
}

async function runGc(dryRun: boolean, label: string, debris: readonly Debris[], profileTo?: string): Promise<GcRun> {
  const counting = countingIo();
  // Debris as a killed process leaves it (stale locks, old temp files), and as live writers keep
  // it (fresh ones: their lock is refreshed every few seconds, their temp file is seconds old).
  await placeDebris(debris);
  const fresh = debris.filter((d) => d.kind.startsWith('fresh'));
  const refresher = setInterval(() => {
    const now = Date.now() / 1000;
    for (const entry of fresh) fs.utimes(entry.path, now, now, () => {});
  }, 2000);
  const store: Store = await openStore({ dir, keys: [KEY], io: counting.io });
  const filesBefore = await census();
  await sleep(200);

  let inspector: InspectorSession | undefined;
  if (profileTo !== undefined) {
    inspector = new InspectorSession();
    inspector.connect();
    const post = (method: string, params?: object) =>
      new Promise<unknown>((resolve, reject) => inspector!.post(method, params ?? {}, (error, result) => (error ? reject(error) : resolve(result))));
    await post('Profiler.enable');
    await post('Profiler.setSamplingInterval', { interval: 500 });
    await post('Profiler.start');
  }

  const loadavgBefore = os.loadavg();
  // Memory before, then every 100 ms.
  const before = process.memoryUsage();
  const started = performance.now();
  const timeline: RssSample[] = [];
  let rssPeak = before.rss;
  let heapPeak = before.heapUsed;
  const sampler = setInterval(() => {
    const m = process.memoryUsage();
    rssPeak = Math.max(rssPeak, m.rss);
    heapPeak = Math.max(heapPeak, m.heapUsed);
    timeline.push({ tMs: performance.now() - started, rss: m.rss, heapUsed: m.heapUsed, external: m.external, headersRead: counting.counts['readFile'] ?? 0 });
  }, 100);

  // Event-loop pauses: node's histogram, and our own 10 ms ticker.
  const eld = monitorEventLoopDelay({ resolution: 10 });
  eld.enable();
  let lastTick = performance.now();
  let driftMax = 0;
  let driftMaxAt = 0;
  let driftMaxHeaders = 0;
  let over50 = 0;
  let over20 = 0;
  // Where each long pause went, from the main thread's scheduler stats (Linux): running (JS,
  // V8, or a synchronous syscall on the CPU), waiting for a CPU (other processes or threads had
  // it), or neither (blocked: sleeping in a synchronous call, a page fault, or a lock).
  const long: LongPause[] = [];
  let lastSched = schedstat();
  const ticker = setInterval(() => {
    const now = performance.now();
    const pause = now - lastTick - 10;
    const sched = schedstat();
    if (pause > 20 && sched !== null && lastSched !== null) {
      const runMs = (sched.runNs - lastSched.runNs) / 1e6;
      const waitMs = (sched.waitNs - lastSched.waitNs) / 1e6;
      long.push({
        atMs: now - started,
        pauseMs: pause,
        runMs,
        runQueueWaitMs: waitMs,
        blockedMs: Math.max(0, now - lastTick - runMs - waitMs),
        headersRead: counting.counts['readFile'] ?? 0,
      });
    }
    lastSched = sched;
    lastTick = now;
    if (pause > 50) over50++;
    if (pause > 20) over20++;
    if (pause > driftMax) {
      driftMax = pause;
      driftMaxAt = now - started;
      driftMaxHeaders = counting.counts['readFile'] ?? 0;
    }
  }, 10);

  // V8's own garbage-collection pauses.
  let v8Max = 0;
  let v8MaxDetail = '';
  let v8Total = 0;
  let v8Count = 0;
  const gcKinds: Record<number, string> = { 1: 'minor', 4: 'major', 8: 'incremental', 16: 'weakcb' };
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      if (entry.duration > v8Max) {
        const detail = (entry as { detail?: { kind?: number; flags?: number } }).detail;
        v8MaxDetail = `${gcKinds[detail?.kind ?? 0] ?? String(detail?.kind)} (flags ${detail?.flags ?? '?'}) at ${((entry.startTime - started) / 1000).toFixed(1)} s`;
      }
      v8Max = Math.max(v8Max, entry.duration);
      v8Total += entry.duration;
      v8Count++;
    }
  });
  observer.observe({ entryTypes: ['gc'] });

  let lastLog = 0;
  const progress = setInterval(() => {
    const read = counting.counts['readFile'] ?? 0;
    const rate = (read - lastLog) / 10;
    lastLog = read;
    log(`  ${label}: ${fmtInt(read)} headers read (${fmtInt(rate)}/s), rss ${mb(process.memoryUsage().rss)}`);
  }, 10_000);

  const others = otherCpuWindow();
  const cpu0 = process.cpuUsage();
  const report = await store.gc({ dryRun });
  const cpu = process.cpuUsage(cpu0);
  const otherCpuShare = others.end();
  const wallMs = performance.now() - started;

  clearInterval(progress);
  clearInterval(refresher);
  clearInterval(ticker);
  clearInterval(sampler);
  eld.disable();
  await sleep(50); // let the observer deliver the last gc entries
  observer.disconnect();
  const after = process.memoryUsage();

  let profile: string | undefined;
  if (inspector !== undefined && profileTo !== undefined) {
    const result = await new Promise<{ profile: unknown }>((resolve, reject) =>
      inspector!.post('Profiler.stop', (error, value) => (error ? reject(error) : resolve(value as { profile: unknown }))),
    );
    fs.writeFileSync(profileTo, JSON.stringify(result.profile));
    inspector.disconnect();
    profile = profileTo;
  }
  const filesAfter = await census();

  return {
    report,
    wallMs,
    cpuUserMs: cpu.user / 1000,
    cpuSystemMs: cpu.system / 1000,
    eldMaxMs: eld.max / 1e6,
    eldP99Ms: eld.percentile(99) / 1e6,
    eldMeanMs: eld.mean / 1e6,
    driftMaxPauseMs: driftMax,
    driftMaxAtMs: driftMaxAt,
    driftMaxAtHeadersRead: driftMaxHeaders,
    pausesOver50ms: over50,
    longPauses: long,
    otherCpuShare,
    loadavgBefore,
    loadavgAfter: os.loadavg(),
    pausesOver20ms: over20,
    v8GcMaxMs: v8Max,
    v8GcMaxDetail: v8MaxDetail,
    v8GcTotalMs: v8Total,
    v8GcCount: v8Count,
    rssBefore: before.rss,
    rssAfter: after.rss,
    rssPeak,
    heapUsedBefore: before.heapUsed,
    heapUsedAfter: after.heapUsed,
    heapUsedPeak: heapPeak,
    rssTimeline: timeline,
    ioCalls: { ...counting.counts },
    filesBefore: { sessions: filesBefore.sessions, locks: filesBefore.locks, temps: filesBefore.temps },
    filesAfter: { sessions: filesAfter.sessions, locks: filesAfter.locks, temps: filesAfter.temps },
    ...(profile === undefined ? {} : { profile }),
  };
}

/** RSS and heap at 10 %, 50 % and 90 % of the scan: flat means no growth with the file count. */
function growth(run: GcRun): { atPercent: number; headersRead: number; rssMB: number; heapUsedMB: number }[] {
  const total = run.ioCalls['readFile'] ?? 0;
  return [0.1, 0.25, 0.5, 0.75, 0.9].flatMap((fraction) => {
    const sample = run.rssTimeline.find((s) => s.headersRead >= fraction * total);
    return sample === undefined
      ? []
      : [{ atPercent: fraction * 100, headersRead: sample.headersRead, rssMB: sample.rss / 2 ** 20, heapUsedMB: sample.heapUsed / 2 ** 20 }];
  });
}

function printGc(title: string, run: GcRun): void {
  const r = run.report;
  console.log(`\n${title}`);
  console.log(
    `  report            scanned ${fmtInt(r.scanned)}, expired ${fmtInt(r.expired)}, removed ${fmtInt(r.removed)}, debris ${r.debris} (removed ${r.debrisRemoved}), unreadable ${r.unreadable}`,
  );
  console.log(
    `  time              ${(r.durationMs / 1000).toFixed(2)} s (${fmtInt(r.scanned / (r.durationMs / 1000))} files/s); CPU user ${(run.cpuUserMs / 1000).toFixed(1)} s + system ${(run.cpuSystemMs / 1000).toFixed(1)} s`,
  );
  console.log(
    `  event loop        max pause ${run.driftMaxPauseMs.toFixed(1)} ms (own 10 ms ticker; at ${(run.driftMaxAtMs / 1000).toFixed(1)} s, ${fmtInt(run.driftMaxAtHeadersRead)} headers read), ${run.pausesOver50ms} pauses > 50 ms, ${run.pausesOver20ms} > 20 ms`,
  );
  const over = run.longPauses.filter((p) => p.pauseMs > 50);
  if (over.length > 0) {
    const sum = (key: 'runMs' | 'runQueueWaitMs' | 'blockedMs') => over.reduce((a, p) => a + p[key], 0);
    console.log(
      `                    pauses > 50 ms, main thread during them: running ${sum('runMs').toFixed(0)} ms, waiting for a CPU ${sum('runQueueWaitMs').toFixed(0)} ms, blocked ${sum('blockedMs').toFixed(0)} ms`,
    );
    const worst = [...over].sort((a, b) => b.pauseMs - a.pauseMs).slice(0, 5);
    for (const p of worst) {
      console.log(
        `                      ${p.pauseMs.toFixed(1).padStart(6)} ms at ${(p.atMs / 1000).toFixed(2)} s: running ${p.runMs.toFixed(1)}, waiting ${p.runQueueWaitMs.toFixed(1)}, blocked ${p.blockedMs.toFixed(1)} ms`,
      );
    }
  }
  console.log(
    `                    monitorEventLoopDelay(10): max ${run.eldMaxMs.toFixed(1)} ms, p99 ${run.eldP99Ms.toFixed(1)} ms, mean ${run.eldMeanMs.toFixed(1)} ms (intervals, include the 10 ms)`,
  );
  console.log(
    `                    V8 GC: ${run.v8GcCount} pauses, max ${run.v8GcMaxMs.toFixed(1)} ms (${run.v8GcMaxDetail}), total ${(run.v8GcTotalMs / 1000).toFixed(2)} s`,
  );
  console.log(
    `  memory            RSS before ${mb(run.rssBefore)}, peak ${mb(run.rssPeak)}, after ${mb(run.rssAfter)}; heapUsed before ${mb(run.heapUsedBefore)}, peak ${mb(run.heapUsedPeak)}, after ${mb(run.heapUsedAfter)}`,
  );
  const points = growth(run);
  if (points.length > 0)
    console.log(`  RSS / heap along the scan  ${points.map((p) => `${p.atPercent}%: ${p.rssMB.toFixed(0)}/${p.heapUsedMB.toFixed(0)} MB`).join(', ')}`);
  console.log(
    `  Io calls          ${Object.entries(run.ioCalls)
      .filter(([, n]) => n > 0)
      .map(([k, n]) => `${k} ${fmtInt(n)}`)
      .join(', ')}`,
  );
  console.log(
    `  files             before: ${fmtInt(run.filesBefore.sessions)} sessions, ${run.filesBefore.locks} locks, ${run.filesBefore.temps} temps; after: ${fmtInt(run.filesAfter.sessions)}, ${run.filesAfter.locks}, ${run.filesAfter.temps}`,
  );
  if (run.otherCpuShare !== null) console.log(`  other processes   used ${(run.otherCpuShare * 100).toFixed(0)} % of the cores during this gc`);
  console.log(
    `  load average      before ${run.loadavgBefore.map((n) => n.toFixed(2)).join(' ')}, after ${run.loadavgAfter.map((n) => n.toFixed(2)).join(' ')} (${os.cpus().length} cores)`,
  );
  if (run.profile !== undefined) console.log(`  CPU profile       ${run.profile}`);
}

interface LoadRun {
  readonly loadsPerSec: number;
  readonly loads: number;
  readonly medianMs: number;
  readonly p99Ms: number;
  readonly touches: number;
  readonly fileReads: number;
  readonly stats: number;
  readonly missing: number;
}

async function measureLoads(store: Store, counting: { counts: Record<string, number> }, ids: readonly string[], inFlight: number): Promise<LoadRun> {
  const before = { ...counting.counts };
  const delta = (name: string) => (counting.counts[name] ?? 0) - (before[name] ?? 0);
  const latencies: number[] = [];
  let missing = 0;
  const started = performance.now();
  await pool(ids.length, inFlight, async (i) => {
    const t0 = performance.now();
    const session = await store.load(ids[i]!);
    latencies.push(performance.now() - t0);
    if (session === null) missing++;
  });
  const seconds = (performance.now() - started) / 1000;
  return {
    loadsPerSec: ids.length / seconds,
    loads: ids.length,
    medianMs: median(latencies),
    p99Ms: percentile(latencies, 0.99),
    touches: delta('utimes'),
    fileReads: delta('readFile'),
    stats: delta('stat'),
    missing,
  };
}

function shuffled<T>(items: readonly T[]): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy;
}

function dropCaches(): string {
  try {
    execFileSync('sync');
    fs.writeFileSync('/proc/sys/vm/drop_caches', '3\n');
    return 'dropped';
  } catch (error) {
    return `could not drop the page cache (${(error as NodeJS.ErrnoException).code ?? 'error'})`;
  }
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  log(
    `sealed-sessions million bench — node ${process.version}, ${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GB, ${fmtInt(count)} sessions`,
  );
  const results: Record<string, unknown> = {
    environment: {
      node: process.version,
      cpus: os.cpus().length,
      memoryGB: Math.round(os.totalmem() / 2 ** 30),
      dir,
      count,
      date: new Date().toISOString(),
      loadavgStart: os.loadavg(),
    },
  };
  log(
    `load average ${os
      .loadavg()
      .map((n) => n.toFixed(2))
      .join(' ')}`,
  );
  const { marker, reused, topUpSeconds } = await prepare();
  results['dataset'] = {
    reused,
    topUpSeconds,
    builtAt: marker.builtAt,
    buildSeconds: marker.buildSeconds,
    buildFilesPerSec: marker.count / marker.buildSeconds,
    count: marker.count,
    expired: marker.expired,
    live: marker.live,
    debris: marker.debris.length,
    debrisStale: marker.debris.filter((d) => d.kind === 'stale-lock' || d.kind === 'old-temp').length,
    du: (() => {
      try {
        return execFileSync('du', ['-sh', dir], { encoding: 'utf8' }).split('\t')[0];
      } catch {
        return '?';
      }
    })(),
  };

  // (1) openStore(): the big dir vs an empty one, interleaved.
  await quietBefore('openStore()');
  const emptyRoot = fs.mkdtempSync(path.join(path.dirname(dir), '.bench-million-empty-'));
  const emptyDir = path.join(emptyRoot, 'sessions-data');
  try {
    await openStore({ dir: emptyDir, keys: [KEY] }); // warm-up (module code, key derivation)
    await openStore({ dir, keys: [KEY] });
    const bigSamples: number[] = [];
    const emptySamples: number[] = [];
    for (let i = 0; i < 5; i++) {
      bigSamples.push(...(await measureOpens(dir, 3)).samples);
      emptySamples.push(...(await measureOpens(emptyDir, 3)).samples);
    }
    const opens = {
      millionMedianMs: median(bigSamples),
      millionMinMs: Math.min(...bigSamples),
      millionMaxMs: Math.max(...bigSamples),
      emptyMedianMs: median(emptySamples),
      emptyMinMs: Math.min(...emptySamples),
      emptyMaxMs: Math.max(...emptySamples),
      rounds: bigSamples.length,
    };
    results['openStore'] = opens;
    console.log(`\n(1) openStore(), median of ${opens.rounds} opens each`);
    console.log(
      `  ${fmtInt(count)} sessions: ${opens.millionMedianMs.toFixed(3)} ms (min ${opens.millionMinMs.toFixed(3)}, max ${opens.millionMaxMs.toFixed(3)})`,
    );
    console.log(`  empty dir:        ${opens.emptyMedianMs.toFixed(3)} ms (min ${opens.emptyMinMs.toFixed(3)}, max ${opens.emptyMaxMs.toFixed(3)})`);
  } finally {
    fs.rmSync(emptyRoot, { recursive: true, force: true });
  }

  // (2) gc: a dry run (scan only), then the real one.
  if (dryRunFirst) {
    await quietBefore('the dry-run gc');
    log('gc dry run (scan only, removes nothing) …');
    const dry = await runGc(true, 'gc dry run', marker.debris);
    printGc(`(2a) store.gc({ dryRun: true }) over ${fmtInt(count)} sessions`, dry);
    results['gcDryRun'] = { ...dry, rssTimeline: undefined, growth: growth(dry) };
  }
  await quietBefore('gc');
  if (cold) log(`page cache: ${dropCaches()}`);
  marker.state = 'collecting';
  writeMarker(marker);
  log('gc …');
  const real = await runGc(false, 'gc', marker.debris, profileGc ? path.join(benchDir, 'million-gc.cpuprofile') : undefined);
  marker.state = 'collected';
  writeMarker(marker);
  printGc(
    `(2b) store.gc() over ${fmtInt(count)} sessions (${fmtInt(marker.expired)} expired, ${marker.debris.length} debris of which ${marker.debris.filter((d) => d.kind.startsWith('stale') || d.kind.startsWith('old')).length} stale)`,
    real,
  );
  results['gc'] = { ...real, rssTimeline: real.rssTimeline.filter((_, i) => i % 10 === 0), growth: growth(real), cold };

  // (3) load() spot check on live sessions, after gc.
  await quietBefore('the loads');
  const loadOthers = otherCpuWindow();
  const sample = shuffled(marker.liveSample).slice(0, 2000);
  const [seqIds, parIds] = [sample.slice(0, 1000), sample.slice(1000)];
  const counting = countingIo();
  // A: a new store (default read cache): first loads read and decrypt the file, and mark the
  // session used (its mtime is older than touchInterval). B: the same ids again, same store: the
  // touch changed the file's version, so the cached entry fails its stat and the file is read
  // again. C: once more: read-cache hits, one stat each. D: a store without cache (cacheSize 0).
  const store = await openStore({ dir, keys: [KEY], io: counting.io });
  const firstSeq = await measureLoads(store, counting, seqIds, 1);
  const first16 = await measureLoads(store, counting, parIds, 16);
  const secondSeq = await measureLoads(store, counting, seqIds, 1);
  const second16 = await measureLoads(store, counting, parIds, 16);
  const cachedSeq = await measureLoads(store, counting, seqIds, 1);
  const cached16 = await measureLoads(store, counting, parIds, 16);
  const noCache = await openStore({ dir, keys: [KEY], io: counting.io, cacheSize: 0 });
  const uncachedSeq = await measureLoads(noCache, counting, seqIds, 1);
  const uncached16 = await measureLoads(noCache, counting, parIds, 16);
  const loadOtherShare = loadOthers.end();
  results['load'] = {
    firstSequential: firstSeq,
    first16,
    secondSequential: secondSeq,
    second16,
    cachedSequential: cachedSeq,
    cached16,
    uncachedSequential: uncachedSeq,
    uncached16,
    otherCpuShare: loadOtherShare,
  };
  console.log(`\n(3) load() of random live sessions after gc (${fmtInt(count - marker.expired)} on disk), 1,000 ids per line`);
  const line = (label: string, l: LoadRun) =>
    console.log(
      `  ${label.padEnd(56)} ${fmtInt(l.loadsPerSec).padStart(7)} loads/s  median ${l.medianMs.toFixed(3)} ms  p99 ${l.p99Ms.toFixed(3)} ms  (file reads ${l.fileReads}, stats ${l.stats}, touches ${l.touches}, missing ${l.missing})`,
    );
  line('1st load, sequential (read file + keep-alive touch)', firstSeq);
  line('1st load, 16 in flight', first16);
  line(`2nd load, same store, sequential (${firstSeq.touches > 0 ? 'entry stale after the touch' : 'read-cache hit'})`, secondSeq);
  line('2nd load, same store, 16 in flight', second16);
  line('3rd load, same store, sequential (read-cache hit)', cachedSeq);
  line('3rd load, same store, 16 in flight', cached16);
  line('cacheSize 0, sequential (read file, no touch)', uncachedSeq);
  line('cacheSize 0, 16 in flight', uncached16);
  if (secondSeq.fileReads > 0) {
    console.log('  note: a load that marks the session used (utimes) changes the file version the read cache checks, so the next load reads the file again');
  }
  if (loadOtherShare !== null) console.log(`  (other processes used ${(loadOtherShare * 100).toFixed(0)} % of the cores meanwhile)`);

  const out = path.join(benchDir, 'million-results.json');
  fs.writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`\nwrote ${path.relative(process.cwd(), out) || out}`);
}

main().then(
  () => {
    setTimeout(() => {
      console.error('million.ts: still running 3 s after the end (an open handle); exiting');
      process.exit(0);
    }, 3000).unref();
  },
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
