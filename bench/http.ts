/*
 * sealed-sessions next to its peers over HTTP, with the machine's raw limits, in one run.
 *
 *   npm run bench                      full run (~35 min on 2 cores; writes bench/RESULTS.md + bench/results.json)
 *   npm run bench:quick                under 2 min (writes bench/quick-results.md + bench/quick-results.json)
 *   node --import=tsx/esm bench/http.ts [--quick] [--duration S] [--wait-quiet S] [--tmp DIR]
 *
 * Each store runs in its own server process (bench/http-server.ts) on 127.0.0.1; autocannon
 * drives them from this process, stores interleaved (the order rotates every repetition),
 * medians of the repetitions. connect-redis gets a redis-server that this bench starts on a free
 * loopback port without persistence; without redis-server that store is skipped, and the output
 * says how to install it. Servers and redis-server are stopped and the temp dir removed however
 * the bench ends (also on Ctrl-C).
 */
import { createHmac, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import autocannon from 'autocannon';
import signature from 'cookie-signature';
import pMap from 'p-map';
import { signId } from '../src/http/cookie.js';
import { createKeyring } from '../src/crypto/keys.js';
import { generateId } from '../src/core/session-id.js';
import { childPids, cleanUpOnExit, isShuttingDown, spawnTracked, stopAll, tempDir, waitForOutput } from './children.js';
import { otherCpuWindow, waitIdle, waitQuiet } from './machine.js';
import { aesGcmSealOp, filesystemType, kilobyteFileOps, measureRate, measureSync, mkdirRmdirOp, writeFsyncRenameOp } from './raw.js';
import { REDIS_INSTALL_HINT, redisServerVersion, startRedis } from './redis.js';
import type { PhasesResult } from './phases-report.js';
import { renderMarkdown, type BenchResults, type LoadResult, type LostUpdateRow, type ScenarioRow } from './report.js';
import {
  EXPRESS_SESSION_SECRET,
  FASTIFY_SESSION_SECRET,
  KOA_KEYS,
  ON_REDIS,
  SEALED_KEY,
  SHARABLE,
  STORE_KINDS,
  STORE_LABELS,
  type StoreKind,
} from './stores.js';

// ---------------------------------------------------------------- arguments

const argv = process.argv.slice(2);
const USAGE = 'usage: http.ts [--quick] [--duration SECONDS] [--wait-quiet SECONDS] [--tmp DIR]';
function usage(problem: string): never {
  console.error(`${USAGE}\n${problem}`);
  process.exit(2);
}
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--quick') continue;
  if (['--duration', '--wait-quiet', '--tmp'].includes(argv[i]!) && argv[i + 1] !== undefined) i++;
  else usage(`unknown or incomplete argument ${argv[i]}`);
}
const quick = argv.includes('--quick');
function numberArg(name: string, fallback: number, min: number): number {
  const index = argv.indexOf(name);
  if (index < 0) return fallback;
  const value = Number(argv[index + 1]);
  if (!Number.isFinite(value) || value < min) usage(`${name} wants a number ≥ ${min}`);
  return value;
}
const tmpIndex = argv.indexOf('--tmp');
const tmpBase = path.resolve(tmpIndex >= 0 ? argv[tmpIndex + 1]! : os.tmpdir());

const config = {
  mode: quick ? 'quick' : 'full',
  /** Seconds of load per autocannon run. */
  duration: numberArg('--duration', quick ? 1 : 5, 1),
  repetitions: quick ? 1 : 3,
  connections: [16, 64],
  /**
   * `unknown` also at 1 connection: at 16 and 64 a closed loop's latency is mostly queueing
   * (connections ÷ throughput, Little's law), for every store alike; one connection shows the
   * cost of the request itself.
   */
  connectionsUnknown: [1, 16, 64],
  /** Sessions made before the runs (read, write); unknown ids as many. */
  sessions: quick ? 200 : 1000,
  /**
   * session-file-store with `secret` runs scrypt on every read and write (~10 req/s): fewer sessions; in quick
   * mode runs of 3 s (a 1 s run ends before its first response) at 16 connections only.
   */
  sessionsEncryptedFileStore: quick ? 20 : 100,
  durationEncryptedFileStore: Math.max(3, numberArg('--duration', quick ? 3 : 10, 1)),
  connectionsEncryptedFileStore: quick ? [16] : [16, 64],
  /** Seconds of read load per server before the first measured run (JIT, caches), not counted. */
  warmup: quick ? 0.5 : 3,
  lostUpdateRequests: 50,
  lostUpdateRounds: quick ? 1 : 5,
  rawMs: quick ? 400 : 3000,
  cryptoMs: quick ? 200 : 1000,
  /** Before each part, wait up to this long for other processes to leave the CPUs. */
  waitQuiet: numberArg('--wait-quiet', quick ? 0 : 60, 0),
  /** autocannon's per-request timeout: the encrypted file store queues requests for seconds at 64 connections. */
  timeoutSeconds: 30,
};

const SCENARIOS = ['read', 'write', 'create', 'unknown'] as const;
type Scenario = (typeof SCENARIOS)[number];
const root = path.resolve(import.meta.dirname, '..');
// A quick run never overwrites the full run's files (its own are git-ignored).
const markdownFile = path.join(import.meta.dirname, quick ? 'quick-results.md' : 'RESULTS.md');
const jsonFile = path.join(import.meta.dirname, quick ? 'quick-results.json' : 'results.json');

// ---------------------------------------------------------------- servers

interface Server {
  readonly kind: StoreKind;
  readonly url: string;
  readonly child: ChildProcess;
  /** Why it stopped early, once it did. */
  died: string | undefined;
}

async function startServer(kind: StoreKind, target: string): Promise<Server> {
  const child = spawnTracked(process.execPath, ['--import=tsx/esm', 'bench/http-server.ts', kind, target], root);
  const match = await waitForOutput(child, /listening (\d+)/, `${kind} server`);
  const server: Server = { kind, url: `http://127.0.0.1:${match[1]}`, child, died: undefined };
  child.on('exit', (code, signal) => {
    if (!isShuttingDown()) {
      server.died = `exited (${signal ?? code}) during the run`;
      console.error(`!! ${STORE_LABELS[kind]} server ${server.died}`);
    }
  });
  return server;
}

/** The session cookies' names, per framework (koa-session signs with a second cookie). */
const SESSION_COOKIES = new Set(['sid', 'connect.sid', 'koa.sess', 'koa.sess.sig', 'sessionId']);

/** The `name=value` pairs of the session cookies a response sets (joined for a Cookie header), or null. */
function sessionCookieOf(response: Response): string | null {
  const pairs = response.headers
    .getSetCookie()
    .map((cookie) => cookie.split(';')[0]!)
    .filter((pair) => SESSION_COOKIES.has(pair.slice(0, pair.indexOf('='))));
  return pairs.length === 0 ? null : pairs.join('; ');
}

async function seedOne(url: string): Promise<string> {
  const response = await fetch(`${url}/seed`, { method: 'POST' });
  await response.text();
  const cookie = sessionCookieOf(response);
  if (!response.ok || cookie === null) throw new Error(`POST ${url}/seed: ${response.status}, no session cookie`);
  return cookie;
}

async function seed(url: string, count: number): Promise<string[]> {
  return pMap(Array.from({ length: count }), () => seedOne(url), { concurrency: 8 });
}

// ---------------------------------------------------------------- unknown-id cookies

// The native cookie is `sid=<id>.<HMAC>`, signed with the store's cookie secret (a sub-key of its
// first key: src/keys.ts); express-session's is `connect.sid=s:<id>.<HMAC>` (URI-encoded), signed
// with its `secret`. Both with cookie-signature. Checked against a cookie each server really set.
const nativeSecret = createKeyring([SEALED_KEY]).keys[0]!.cookieSecret;

/** Keygrip's signature (koa's signed cookies): HMAC-SHA1 of `name=value`, base64url without padding. */
function keygripSign(data: string, key: string): string {
  return createHmac('sha1', key)
    .update(data)
    .digest('base64')
    .replace(/\/|\+|=/g, (c) => ({ '/': '_', '+': '-', '=': '' })[c]!);
}

/** The stores that use this library's own cookie (`sid=<id>.<signature>`). */
const NATIVE: ReadonlySet<StoreKind> = new Set(['sealed', 'sealed-redis', 'koa', 'fastify']);

function unknownCookie(kind: StoreKind): string {
  if (NATIVE.has(kind)) return `sid=${signId(generateId(), nativeSecret)}`;
  if (kind === 'koa-session-store') {
    const value = `${Date.now()}-${randomBytes(16).toString('hex')}`;
    return `koa.sess=${value}; koa.sess.sig=${keygripSign(`koa.sess=${value}`, KOA_KEYS[0]!)}`;
  }
  // @fastify/cookie's signer is cookie-signature's (HMAC-SHA256, base64 without padding), URI-encoded.
  if (kind === 'fastify-session-store') return `sessionId=${encodeURIComponent(signature.sign(randomBytes(24).toString('base64url'), FASTIFY_SESSION_SECRET))}`;
  // express-session's ids: uid-safe(24), base64url.
  return `connect.sid=${encodeURIComponent(`s:${signature.sign(randomBytes(24).toString('base64url'), EXPRESS_SESSION_SECRET)}`)}`;
}

function checkSigning(kind: StoreKind, seededCookie: string): void {
  const pairs = new Map(seededCookie.split('; ').map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)] as const));
  const fail = () => {
    throw new Error(`the bench signs ${kind} cookies differently from the server: unknown-id cookies would be rejected as forged`);
  };
  if (NATIVE.has(kind)) {
    const value = pairs.get('sid') ?? '';
    if (signId(value.slice(0, value.indexOf('.')), nativeSecret) !== value) fail();
  } else if (kind === 'koa-session-store') {
    if (keygripSign(`koa.sess=${pairs.get('koa.sess')}`, KOA_KEYS[0]!) !== pairs.get('koa.sess.sig')) fail();
  } else if (kind === 'fastify-session-store') {
    const decoded = decodeURIComponent(pairs.get('sessionId') ?? '');
    if (signature.sign(decoded.slice(0, decoded.lastIndexOf('.')), FASTIFY_SESSION_SECRET) !== decoded) fail();
  } else {
    const decoded = decodeURIComponent(pairs.get('connect.sid') ?? '');
    const id = decoded.slice(2, decoded.lastIndexOf('.'));
    if (`s:${signature.sign(id, EXPRESS_SESSION_SECRET)}` !== decoded) fail();
  }
}

// ---------------------------------------------------------------- load

async function load(server: Server, scenario: Scenario, connections: number, cookies: readonly string[], duration: number): Promise<LoadResult> {
  const route = { read: ['GET', '/read'], write: ['POST', '/write'], create: ['POST', '/create'], unknown: ['GET', '/read'] } as const;
  const [method, pathName] = route[scenario];
  let next = 0;
  const window = otherCpuWindow(childPids);
  const result = await autocannon({
    url: `${server.url}${pathName}`,
    connections,
    duration,
    timeout: config.timeoutSeconds,
    requests: [
      {
        method,
        setupRequest:
          scenario === 'create'
            ? (request) => request
            : (request) => ({ ...request, headers: { ...request.headers, cookie: cookies[next++ % cookies.length]! } }),
      },
    ],
  });
  const otherCpu = window.end();
  // Requests still queued in the server when autocannon stopped are worked off before the next run starts.
  const waited = server.child.pid === undefined ? 0 : await waitIdle(server.child.pid);
  if (waited > 1000) console.log(`  (${STORE_LABELS[server.kind]} kept working for ${(waited / 1000).toFixed(1)} s after the run)`);
  return {
    rps: result['2xx'] / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    responses2xx: result['2xx'],
    non2xx: result.non2xx,
    socketErrors: result.errors,
    timeouts: result.timeouts,
    seconds: result.duration,
    otherCpu,
  };
}

const median = (values: readonly number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0
    ? Number.NaN
    : sorted.length % 2 === 1
      ? sorted[(sorted.length - 1) / 2]!
      : (sorted[sorted.length / 2 - 1]! + sorted[sorted.length / 2]!) / 2;
};

// ---------------------------------------------------------------- lost updates

/**
 * One round: a fresh session; `requests` concurrent POST /set?key=k<i>, spread over the servers in
 * turn; then each server reads the session's keys back. A key is lost when its request was
 * acknowledged (2xx) but a server does not see it; the round's figure is the worst server's.
 */
async function lostUpdateRound(urls: readonly string[]): Promise<{ acknowledged: number; failed: number; lost: number; lostByReader: number[] }> {
  const cookie = await seedOne(urls[0]!);
  const keys = Array.from({ length: config.lostUpdateRequests }, (_, i) => `k${i}`);
  const acknowledged = await Promise.all(
    keys.map(async (key, i) => {
      try {
        const response = await fetch(`${urls[i % urls.length]}/set?key=${key}`, { method: 'POST', headers: { cookie } });
        await response.text();
        return response.ok;
      } catch {
        return false;
      }
    }),
  );
  const lostByReader: number[] = [];
  for (const url of urls) {
    const response = await fetch(`${url}/keys`, { headers: { cookie } });
    if (!response.ok) throw new Error(`GET ${url}/keys: ${response.status}`);
    const seen = new Set((await response.json()) as string[]);
    lostByReader.push(keys.filter((key, i) => acknowledged[i] && !seen.has(key)).length);
  }
  const ok = acknowledged.filter(Boolean).length;
  return { acknowledged: ok, failed: keys.length - ok, lost: Math.max(...lostByReader), lostByReader };
}

// ---------------------------------------------------------------- main

function packageVersion(name: string): string {
  try {
    return (JSON.parse(fs.readFileSync(path.join(root, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return '?';
  }
}

async function quiet(what: string): Promise<void> {
  if (config.waitQuiet > 0) await waitQuiet(config.waitQuiet, what, childPids);
}

async function main(): Promise<void> {
  cleanUpOnExit();
  const started = performance.now();
  fs.mkdirSync(tmpBase, { recursive: true });
  const work = tempDir(tmpBase, 'sealed-sessions-http-bench-');
  const notes: string[] = [];
  const redisVersion = redisServerVersion();
  const kinds = STORE_KINDS.filter((kind) => !ON_REDIS.has(kind) || redisVersion !== null);
  if (redisVersion === null) {
    const note = `connect-redis and sealed-sessions + Redis skipped: no redis-server on the PATH; ${REDIS_INSTALL_HINT}.`;
    notes.push(note);
    console.log(`!! ${note}`);
  }
  notes.push(
    `session-file-store with \`secret\` derives a key with scrypt on every read and write (about 10 req/s on this kind of machine): ` +
      `it gets ${config.sessionsEncryptedFileStore} sessions instead of ${config.sessions}` +
      `${config.durationEncryptedFileStore !== config.duration ? `, runs of ${config.durationEncryptedFileStore} s` : ''}` +
      `${config.connectionsEncryptedFileStore.length < config.connections.length ? `, at ${config.connectionsEncryptedFileStore.join(' and ')} connections only` : ''}` +
      '; its latencies are mostly queueing behind the scrypt calls, which block its event loop.',
  );
  const machine = {
    cores: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? '?',
    memoryGB: Math.round(os.totalmem() / 2 ** 30),
    kernel: `${os.type()} ${os.release()}`,
    filesystem: filesystemType(work),
    node: process.version,
    loadavgStart: os.loadavg(),
  };
  const versions = {
    express: packageVersion('express'),
    'express-session': packageVersion('express-session'),
    koa: packageVersion('koa'),
    'koa-session': packageVersion('koa-session'),
    fastify: packageVersion('fastify'),
    '@fastify/session': packageVersion('@fastify/session'),
    'session-file-store': packageVersion('session-file-store'),
    'connect-redis': packageVersion('connect-redis'),
    redis: packageVersion('redis'),
    'redis-server': redisVersion ?? 'not installed',
    autocannon: packageVersion('autocannon'),
  };
  console.log(
    `sealed-sessions HTTP bench (${config.mode}): ${machine.cores} cores (${machine.cpuModel}), ${machine.filesystem} temp dir, node ${machine.node}; ` +
      `${config.duration} s × ${config.repetitions} per store and scenario`,
  );
  if (os.loadavg()[0]! > machine.cores * 0.75)
    console.log(
      `!! load average ${os
        .loadavg()
        .map((n) => n.toFixed(2))
        .join(' ')}: other work is running, figures will be noisy`,
    );

  // ------------------------------------------------------------ raw limits
  await quiet('the raw limits');
  console.log('\nraw limits of this machine (same filesystem as the stores)');
  const rawDir = path.join(work, 'raw');
  fs.mkdirSync(rawDir);
  const rawWindow = otherCpuWindow();
  const { readOne } = kilobyteFileOps(rawDir);
  const writeFsyncRename = writeFsyncRenameOp(rawDir);
  const mkdirRmdir = mkdirRmdirOp(rawDir);
  const raw = {
    readFile1k16: await measureRate(16, config.rawMs, readOne),
    writeFsyncRename1k16: await measureRate(16, config.rawMs, writeFsyncRename),
    writeFsyncRename1kSequential: await measureRate(1, config.rawMs, writeFsyncRename),
    mkdirRmdir16: await measureRate(16, config.rawMs, mkdirRmdir),
    mkdirRmdirSequential: await measureRate(1, config.rawMs, mkdirRmdir),
    aesGcmSeal1k: measureSync(config.cryptoMs, aesGcmSealOp()),
    otherCpu: rawWindow.end(),
  };
  fs.rmSync(rawDir, { recursive: true, force: true });
  console.log(
    `  readFile 1 KB ${Math.round(raw.readFile1k16.opsPerSec)}/s, write+fsync+rename 1 KB ${Math.round(raw.writeFsyncRename1k16.opsPerSec)}/s, mkdir+rmdir ${Math.round(raw.mkdirRmdir16.opsPerSec)}/s (16 in flight), AES-256-GCM 1 KB ${Math.round(raw.aesGcmSeal1k.opsPerSec)}/s`,
  );

  // ------------------------------------------------------------ servers
  let redisUrl: string | undefined;
  if (redisVersion !== null) {
    const redisDir = path.join(work, 'redis');
    fs.mkdirSync(redisDir);
    redisUrl = (await startRedis(redisDir, root)).url;
  }
  const storageOf = (kind: StoreKind) => (ON_REDIS.has(kind) ? redisUrl! : path.join(work, kind));
  console.log(`\nstarting ${kinds.length} servers${redisUrl ? ` and redis-server (${redisUrl})` : ''}`);
  const servers = new Map<StoreKind, Server>();
  for (const server of await Promise.all(kinds.map((kind) => startServer(kind, storageOf(kind))))) servers.set(server.kind, server);

  const cookies = new Map<StoreKind, { seeded: string[]; unknown: string[] }>();
  for (const kind of kinds) {
    const count = kind === 'file-store-secret' ? config.sessionsEncryptedFileStore : config.sessions;
    const t0 = performance.now();
    const seeded = await seed(servers.get(kind)!.url, count);
    checkSigning(kind, seeded[0]!);
    const unknown = Array.from({ length: count }, () => unknownCookie(kind));
    // The scenarios measure what they say: a seeded cookie finds its session, an unknown one none.
    for (const [cookie, expected] of [
      [seeded[0]!, 'alice'],
      [unknown[0]!, 'none'],
    ] as const) {
      const response = await fetch(`${servers.get(kind)!.url}/read`, { headers: { cookie } });
      const body = await response.text();
      if (body !== expected)
        throw new Error(`${STORE_LABELS[kind]}: GET /read with a ${expected === 'alice' ? 'seeded' : 'unknown-id'} cookie gave ${response.status} ${body}`);
    }
    cookies.set(kind, { seeded, unknown });
    console.log(`  ${STORE_LABELS[kind]}: ${count} sessions made in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }

  // ------------------------------------------------------------ scenarios
  const durationOf = (kind: StoreKind) => (kind === 'file-store-secret' ? config.durationEncryptedFileStore : config.duration);
  const runsAt = (kind: StoreKind, connections: number) =>
    kind !== 'file-store-secret' || config.connectionsEncryptedFileStore.includes(connections) || connections === 1;
  if (config.warmup > 0) {
    console.log(`
warm-up: ${config.warmup} s of reads per server, not counted`);
    for (const kind of kinds) await load(servers.get(kind)!, 'read', 16, cookies.get(kind)!.seeded, config.warmup);
  }
  const rows: ScenarioRow[] = [];
  // The raw write+fsync+rename rate, measured again before each repetition of the write scenarios:
  // this disk's fsync rate drifts 3–4× within minutes, so a store's writes are compared with the
  // raw rate of their own repetition (paired), not with one measured minutes earlier.
  const rawDuring: BenchResults['rawDuring'][number][] = [];
  const rawDuringDir = path.join(work, 'raw-during');
  fs.mkdirSync(rawDuringDir);
  const rawDuringOp = writeFsyncRenameOp(rawDuringDir);
  for (const scenario of SCENARIOS) {
    for (const connections of scenario === 'unknown' ? config.connectionsUnknown : config.connections) {
      await quiet(`${scenario} at ${connections} connections`);
      console.log(`\n${scenario}, ${connections} connections`);
      const runs = new Map<StoreKind, LoadResult[]>(kinds.map((kind) => [kind, []]));
      const rawRates: number[] = [];
      for (let repetition = 0; repetition < config.repetitions; repetition++) {
        if (scenario === 'write' || scenario === 'create') {
          rawRates.push((await measureRate(16, config.rawMs, rawDuringOp)).opsPerSec);
          console.log(`  raw write+fsync+rename, 16 in flight: ${Math.round(rawRates.at(-1)!)}/s`);
        }
        // Interleaved, and each repetition starts one store further on, so no store always runs first.
        const order = kinds.map((_, i) => kinds[(i + repetition) % kinds.length]!);
        for (const kind of order) {
          const server = servers.get(kind)!;
          if (server.died !== undefined || !runsAt(kind, connections)) continue;
          const { seeded, unknown } = cookies.get(kind)!;
          const result = await load(server, scenario, connections, scenario === 'unknown' ? unknown : seeded, durationOf(kind));
          runs.get(kind)!.push(result);
          const errors = result.non2xx + result.socketErrors;
          console.log(
            `  ${STORE_LABELS[kind].padEnd(48)} ${String(Math.round(result.rps)).padStart(6)} req/s  p50 ${result.p50} ms  p99 ${result.p99} ms${errors > 0 ? `  errors ${errors}` : ''}`,
          );
        }
      }
      if (rawRates.length > 0) rawDuring.push({ scenario, connections, rates: rawRates });
      for (const kind of kinds) {
        const results = runs.get(kind)!;
        const died = servers.get(kind)!.died;
        rows.push({
          scenario,
          connections,
          store: kind,
          runs: results,
          rps: median(results.map((r) => r.rps)),
          p50: median(results.map((r) => r.p50)),
          p99: median(results.map((r) => r.p99)),
          errors: results.reduce((sum, r) => sum + r.non2xx + r.socketErrors, 0),
          ...(died !== undefined ? { note: `server ${died}` } : !runsAt(kind, connections) ? { note: `not run in ${config.mode} mode` } : {}),
        });
      }
    }
  }

  // ------------------------------------------------------------ lost updates
  // The second process of each store that can share its data, all started at once.
  const seconds = new Map<StoreKind, Server>();
  const sharing = kinds.filter((kind) => SHARABLE[kind] && servers.get(kind)!.died === undefined);
  for (const server of await Promise.all(sharing.map((kind) => startServer(kind, storageOf(kind))))) seconds.set(server.kind, server);
  await quiet('the lost-update test');
  console.log(
    `\nlost updates: ${config.lostUpdateRequests} concurrent requests on one session × ${config.lostUpdateRounds} round${config.lostUpdateRounds === 1 ? '' : 's'}`,
  );
  const lostUpdates: LostUpdateRow[] = [];
  for (const kind of kinds) {
    const first = servers.get(kind)!;
    for (const processes of [1, 2] as const) {
      if (first.died !== undefined) {
        lostUpdates.push({ store: kind, processes, total: 0, lost: null, failed: null, rounds: [], note: `server ${first.died}` });
        continue;
      }
      const second = seconds.get(kind);
      if (processes === 2 && second === undefined) {
        lostUpdates.push({ store: kind, processes, total: 0, lost: null, failed: null, rounds: [], note: 'n/a: the data lives in one process' });
        continue;
      }
      const urls = processes === 1 ? [first.url] : [first.url, second!.url];
      const rounds = [];
      for (let round = 0; round < config.lostUpdateRounds; round++) rounds.push(await lostUpdateRound(urls));
      const row: LostUpdateRow = {
        store: kind,
        processes,
        total: config.lostUpdateRequests * config.lostUpdateRounds,
        lost: rounds.reduce((sum, r) => sum + r.lost, 0),
        failed: rounds.reduce((sum, r) => sum + r.failed, 0),
        rounds,
      };
      lostUpdates.push(row);
      console.log(
        `  ${STORE_LABELS[kind].padEnd(48)} ${processes} process${processes === 1 ? ' ' : 'es'}: lost ${row.lost} of ${row.total}${row.failed ? `, ${row.failed} requests failed` : ''}`,
      );
    }
  }

  // ------------------------------------------------------------ a write request, phase by phase
  // (a full run only): bench/phases.ts on this checkout, beside the breakdown of the commit before
  // the write-path change (bench/phases-before.json, measured by the same script).
  let phases: BenchResults['phases'];
  if (!quick) {
    await quiet('the phase breakdown');
    console.log('\na write request, phase by phase (bench/phases.ts)');
    const phasesJson = path.join(work, 'phases.json');
    const child = spawnTracked(process.execPath, ['--import=tsx/esm', 'bench/phases.ts', '--label', 'this run', '--json', phasesJson], root);
    await new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const before = path.join(import.meta.dirname, 'phases-before.json');
    if (fs.existsSync(phasesJson)) {
      phases = {
        before: fs.existsSync(before) ? (JSON.parse(fs.readFileSync(before, 'utf8')) as PhasesResult) : null,
        now: JSON.parse(fs.readFileSync(phasesJson, 'utf8')) as PhasesResult,
      };
    }
  }

  // ------------------------------------------------------------ output
  for (const server of servers.values()) if (server.died !== undefined) notes.push(`${STORE_LABELS[server.kind]}: the server ${server.died}.`);
  const results: BenchResults = {
    mode: config.mode,
    date: new Date().toISOString(),
    seconds: (performance.now() - started) / 1000,
    config: { ...config, timeoutSeconds: config.timeoutSeconds },
    machine: { ...machine, loadavgEnd: os.loadavg() },
    versions,
    raw,
    scenarios: rows,
    rawDuring,
    lostUpdates,
    ...(phases === undefined ? {} : { phases }),
    notes,
  };
  const markdown = renderMarkdown(results);
  fs.writeFileSync(markdownFile, markdown);
  fs.writeFileSync(jsonFile, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`\n${markdown}`);
  console.log(`wrote ${path.relative(process.cwd(), markdownFile)} and ${path.relative(process.cwd(), jsonFile)} (${results.seconds.toFixed(0)} s)`);
}

try {
  await main();
} catch (error) {
  console.error(error);
  process.exitCode = 1;
} finally {
  await stopAll();
  // The exit handler removes the temp dir; exit now, whatever handle (a keep-alive socket) is left.
  process.exit();
}
