/*
 * Storage-engine benchmark: the machine's raw rates on the data disk, then what sealed-sessions
 * makes of them (commit latency, commits/s, coalescing, loads/s with and without the read cache),
 * and the ratios between the two.
 *
 *   node --import=tsx/esm bench/engine.ts            full run (~1 min)
 *   node --import=tsx/esm bench/engine.ts --quick    short run (~15 s)
 *   node --import=tsx/esm bench/engine.ts --tmp DIR  put the temp dir under DIR (default: os.tmpdir())
 *   --wait-quiet S   before each part, wait up to S seconds for other processes to leave the CPUs
 *                    (each part prints how much CPU other processes took while it ran, either way)
 *
 * Prints a table and writes bench/engine-results.json. Everything happens in one temp dir,
 * removed at the end; the raw rates and the store's data dir share it, hence the same filesystem.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openStore, type Io, type Session, type Store } from '../src/index.js';
import { defaultIo } from '../src/backends/file/io.js';
import { createKeyring } from '../src/crypto/keys.js';
import { seal, unseal } from '../src/crypto/seal.js';
import { fileNameOf, generateId } from '../src/core/session-id.js';
import { otherCpuWindow, waitQuiet } from './machine.js';
import { aesGcmSealOp, describeDisk, kilobyteFileOps, latencyOf, measureRate, measureSync, mkdirRmdirOp, writeFsyncRenameOp, type RateResult } from './raw.js';

const KEY = 'bench-key-0123456789abcdef-0123456789abcdef';
const CONCURRENCY = 16;

// ---------------------------------------------------------------- arguments

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const tmpIndex = argv.indexOf('--tmp');
const tmpBase = tmpIndex >= 0 ? argv[tmpIndex + 1] : undefined;
const waitIndex = argv.indexOf('--wait-quiet');
const waitQuietMax = waitIndex >= 0 ? Number(argv[waitIndex + 1]) : 0;
if ((tmpIndex >= 0 && (tmpBase === undefined || tmpBase.startsWith('--'))) || !Number.isFinite(waitQuietMax) || waitQuietMax < 0) {
  console.error('usage: engine.ts [--quick] [--tmp DIR] [--wait-quiet SECONDS]');
  process.exit(2);
}

const RAW_MS = quick ? 700 : 3000;
const CRYPTO_MS = quick ? 300 : 1000;
const COMMITS_SEQ = quick ? 150 : 1000;
const COMMIT_WARMUP = quick ? 20 : 50;
const CONCURRENT_MS = quick ? 1500 : 5000;
const LOAD_SESSIONS = quick ? 200 : 1000;
const LOAD_MS = quick ? 700 : 3000;

// ---------------------------------------------------------------- helpers

/** Counts each disk operation the store asks for (the wrapper costs well under a microsecond). */
function countingIo(): { io: Io; counts: Record<string, number>; reset: () => void } {
  const counts: Record<string, number> = {};
  const wrapped = {} as Record<string, unknown>;
  for (const [name, fn] of Object.entries(defaultIo) as [string, (...args: unknown[]) => unknown][]) {
    counts[name] = 0;
    wrapped[name] = (...args: unknown[]) => {
      counts[name] = (counts[name] ?? 0) + 1;
      return fn(...args);
    };
  }
  return {
    io: wrapped as unknown as Io,
    counts,
    reset: () => {
      for (const name of Object.keys(counts)) counts[name] = 0;
    },
  };
}

/** About 1 KB of JSON: 14 string fields and a counter. */
function kilobyteData(): Record<string, string | number> {
  const data: Record<string, string | number> = { n: 0 };
  for (let i = 0; i < 14; i++) data[`field${String(i).padStart(2, '0')}`] = randomBytes(30).toString('base64url').padEnd(54, 'x');
  return data;
}

async function newKilobyteSession(store: Store): Promise<Session> {
  const session = store.create();
  for (const [key, value] of Object.entries(kilobyteData())) session.set(key, value);
  await session.save();
  return session;
}

const fmtInt = (n: number) => Math.round(n).toLocaleString('en-US');
const fmtMs = (n: number) => (n < 1 ? n.toFixed(3) : n < 10 ? n.toFixed(2) : n.toFixed(1));

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const base = path.resolve(tmpBase ?? os.tmpdir());
  fs.mkdirSync(base, { recursive: true });
  const root = fs.mkdtempSync(path.join(base, 'sealed-sessions-bench-'));
  const rawDir = path.join(root, 'raw');
  const dataDir = path.join(root, 'sessions-data');
  fs.mkdirSync(rawDir);
  const results: Record<string, unknown> = {};
  const rows: [string, string, string][] = [];
  const row = (what: string, value: string, note = '') => {
    rows.push([what, value, note]);
    console.log(`  ${what.padEnd(64)} ${value.padStart(14)}  ${note}`);
  };

  try {
    const projectDev = fs.statSync(path.dirname(fileURLToPath(import.meta.url))).dev;
    const tmpDev = fs.statSync(root).dev;
    const environment = {
      node: process.version,
      platform: `${os.type()} ${os.release()}`,
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model ?? '?',
      memoryGB: Math.round(os.totalmem() / 2 ** 30),
      uvThreadpoolSize: Number(process.env['UV_THREADPOOL_SIZE'] ?? 4),
      tempDir: root,
      tempDisk: describeDisk(root),
      tempSameFsAsProject: projectDev === tmpDev,
      mode: quick ? 'quick' : 'full',
      loadavgStart: os.loadavg(),
      date: new Date().toISOString(),
    };
    results['environment'] = environment;
    const busy = () => {
      const [one] = os.loadavg();
      return one !== undefined && one > os.cpus().length * 0.75;
    };
    console.log(
      `sealed-sessions engine bench (${environment.mode}) — node ${environment.node}, ${environment.cpus} cores (${environment.cpuModel}), ${environment.memoryGB} GB`,
    );
    if (busy())
      console.log(
        `!! load average ${os
          .loadavg()
          .map((n) => n.toFixed(2))
          .join(' ')} on ${os.cpus().length} cores: other work is running, figures will be noisy`,
      );
    console.log(`temp dir ${root}\n  df: ${environment.tempDisk}\n  same filesystem as the project: ${environment.tempSameFsAsProject ? 'yes' : 'NO'}`);

    // ------------------------------------------------------------ a) raw rates
    const others: Record<string, number | null> = {};
    let previous = 'a';
    let window = otherCpuWindow();
    const section = async (key: string, title: string) => {
      if (key !== 'a') others[previous] = window.end();
      if (key !== 'a' && others[previous] !== null)
        console.log(`  (other processes used ${((others[previous] ?? 0) * 100).toFixed(0)} % of the cores meanwhile)`);
      console.log(`\n${title}`);
      if (waitQuietMax > 0) await waitQuiet(waitQuietMax, `${key})`);
      previous = key;
      window = otherCpuWindow();
    };
    await section('a', 'a) raw machine rates (same filesystem)');
    const writeFsyncRename = writeFsyncRenameOp(rawDir);
    const wfrSeq = await measureRate(1, RAW_MS, writeFsyncRename);
    row('1 KB open+write+fsync+close+rename /s, sequential', fmtInt(wfrSeq.opsPerSec), `median ${fmtMs(wfrSeq.latency.medianMs)} ms`);
    const wfr16 = await measureRate(CONCURRENCY, RAW_MS, writeFsyncRename);
    row(`1 KB open+write+fsync+close+rename /s, ${CONCURRENCY} in flight`, fmtInt(wfr16.opsPerSec), `median ${fmtMs(wfr16.latency.medianMs)} ms`);

    const mkdirRmdir = mkdirRmdirOp(rawDir);
    const mkSeq = await measureRate(1, RAW_MS, mkdirRmdir);
    row('mkdir+rmdir /s, sequential', fmtInt(mkSeq.opsPerSec), `median ${fmtMs(mkSeq.latency.medianMs)} ms`);
    const mk16 = await measureRate(CONCURRENCY, RAW_MS, mkdirRmdir);
    row(`mkdir+rmdir /s, ${CONCURRENCY} in flight`, fmtInt(mk16.opsPerSec), `median ${fmtMs(mk16.latency.medianMs)} ms`);

    const { readOne, statOne } = kilobyteFileOps(rawDir);
    const rdSeq = await measureRate(1, RAW_MS, readOne);
    row('readFile 1 KB /s, sequential', fmtInt(rdSeq.opsPerSec), `median ${fmtMs(rdSeq.latency.medianMs)} ms`);
    const rd16 = await measureRate(CONCURRENCY, RAW_MS, readOne);
    row(`readFile 1 KB /s, ${CONCURRENCY} in flight`, fmtInt(rd16.opsPerSec), `median ${fmtMs(rd16.latency.medianMs)} ms`);

    const stSeq = await measureRate(1, RAW_MS, statOne);
    row('stat /s, sequential', fmtInt(stSeq.opsPerSec), `median ${fmtMs(stSeq.latency.medianMs)} ms`);
    const st16 = await measureRate(CONCURRENCY, RAW_MS, statOne);
    row(`stat /s, ${CONCURRENCY} in flight`, fmtInt(st16.opsPerSec), `median ${fmtMs(st16.latency.medianMs)} ms`);

    const rawSeal = measureSync(CRYPTO_MS, aesGcmSealOp());
    row('AES-256-GCM seal of 1 KB /s (raw node:crypto)', fmtInt(rawSeal.opsPerSec), `${rawSeal.usPerOp.toFixed(1)} µs each`);
    const kb = randomBytes(1024);
    const keyring = createKeyring([KEY]);
    const name = fileNameOf(generateId());
    const times = { created: Date.now(), written: Date.now(), absoluteDeadline: Date.now() + 3600_000, idleSeconds: 1800 };
    const libSeal = measureSync(CRYPTO_MS, () => void seal(keyring, times, kb, name));
    row('  seal() of 1 KB /s (src/seal.ts)', fmtInt(libSeal.opsPerSec), `${libSeal.usPerOp.toFixed(1)} µs each`);
    const envelope = seal(keyring, times, kb, name);
    const libUnseal = measureSync(CRYPTO_MS, () => {
      if (!unseal(keyring, envelope, name).ok) throw new Error('unseal failed');
    });
    row('  unseal() of 1 KB /s (src/seal.ts)', fmtInt(libUnseal.opsPerSec), `${libUnseal.usPerOp.toFixed(1)} µs each`);
    results['raw'] = {
      writeFsyncRenameSequential: wfrSeq,
      writeFsyncRename16: wfr16,
      mkdirRmdirSequential: mkSeq,
      mkdirRmdir16: mk16,
      readFile1kSequential: rdSeq,
      readFile1k16: rd16,
      statSequential: stSeq,
      stat16: st16,
      aesGcmSeal1kRaw: rawSeal,
      seal1kLibrary: libSeal,
      unseal1kLibrary: libUnseal,
    };

    // ------------------------------------------------------------ b) sequential commit latency
    await section('b', 'b) commit of a 1 KB session, sequential (set one key, save())');
    const counting = countingIo();
    const store = await openStore({ dir: dataDir, keys: [KEY], io: counting.io });
    const single = await newKilobyteSession(store);
    const jsonBytes = Buffer.byteLength(JSON.stringify(single.toJSON()));
    const fileBytes = fs.statSync(path.join(dataDir, fileNameOf(single.id).slice(0, 2), `${fileNameOf(single.id)}.sess`)).size;
    for (let i = 0; i < COMMIT_WARMUP; i++) {
      single.set('n', -i - 1);
      await single.save();
    }
    counting.reset();
    const commitSamples: number[] = [];
    const seqStarted = performance.now();
    for (let i = 0; i < COMMITS_SEQ; i++) {
      single.set('n', i);
      const t0 = performance.now();
      await single.save();
      commitSamples.push(performance.now() - t0);
    }
    const seqSeconds = (performance.now() - seqStarted) / 1000;
    const commitLatency = latencyOf(commitSamples);
    const ioPerCommit = Object.fromEntries(
      Object.entries(counting.counts)
        .filter(([, n]) => n > 0)
        .map(([k, n]) => [k, n / COMMITS_SEQ]),
    );
    row('session size: data JSON / file on disk', `${jsonBytes} / ${fileBytes} B`);
    row(
      `commit median (${COMMITS_SEQ} commits)`,
      `${fmtMs(commitLatency.medianMs)} ms`,
      `p90 ${fmtMs(commitLatency.p90Ms)}  p99 ${fmtMs(commitLatency.p99Ms)}  max ${fmtMs(commitLatency.maxMs)} ms`,
    );
    row('commits/s, sequential', fmtInt(COMMITS_SEQ / seqSeconds));
    row(
      '  vs raw write+fsync+rename median (sequential)',
      `${(commitLatency.medianMs / wfrSeq.latency.medianMs).toFixed(2)} ×`,
      `${fmtMs(wfrSeq.latency.medianMs)} ms raw`,
    );
    row(
      '  Io calls per commit',
      Object.entries(ioPerCommit)
        .map(([k, n]) => `${k} ${n}`)
        .join(', '),
    );
    results['commitSequential'] = { commits: COMMITS_SEQ, jsonBytes, fileBytes, latency: commitLatency, commitsPerSec: COMMITS_SEQ / seqSeconds, ioPerCommit };

    // ------------------------------------------------------------ c) concurrency
    await section('c', `c) concurrency (${(CONCURRENT_MS / 1000).toFixed(1)} s each)`);
    const sessions: Session[] = [];
    for (let i = 0; i < CONCURRENCY; i++) sessions.push(await newKilobyteSession(store));
    counting.reset();
    const many = await measureRate(CONCURRENCY, CONCURRENT_MS, async (worker, n) => {
      const session = sessions[worker]!;
      session.set('n', n);
      await session.save();
    });
    const manyWrites = counting.counts['writeFileAtomic'] ?? 0;
    row(`commits/s, ${CONCURRENCY} sessions × 1 writer`, fmtInt(many.opsPerSec), `median ${fmtMs(many.latency.medianMs)}  p99 ${fmtMs(many.latency.p99Ms)} ms`);

    const shared = await newKilobyteSession(store);
    const writers: Session[] = [];
    for (let i = 0; i < CONCURRENCY; i++) {
      const loaded = await store.load(shared.id);
      if (loaded === null) throw new Error('shared session did not load');
      writers.push(loaded);
    }
    counting.reset();
    const one = await measureRate(CONCURRENCY, CONCURRENT_MS, async (worker, n) => {
      const session = writers[worker]!;
      session.set(`w${worker}`, n);
      await session.save();
    });
    const oneWrites = (counting.counts['writeFileAtomic'] ?? 0) / one.seconds;
    row(`save()/s, ${CONCURRENCY} writers on ONE session`, fmtInt(one.opsPerSec), `median ${fmtMs(one.latency.medianMs)}  p99 ${fmtMs(one.latency.p99Ms)} ms`);
    row('  file writes/s behind them (coalescing)', fmtInt(oneWrites), `${(one.opsPerSec / Math.max(1, oneWrites)).toFixed(1)} saves per write`);
    const check = await store.load(shared.id);
    const lost = writers.filter((_, i) => check?.get(`w${i}`) === undefined).length;
    if (lost > 0) row('  !! writers whose key is missing afterwards', String(lost));

    // loads
    const loadIds: string[] = [];
    for (let i = 0; i < LOAD_SESSIONS; i += CONCURRENCY) {
      const batch = await Promise.all(Array.from({ length: Math.min(CONCURRENCY, LOAD_SESSIONS - i) }, () => newKilobyteSession(store)));
      for (const s of batch) loadIds.push(s.id);
    }
    // Sessions this store wrote sit in its read cache (a load is then one stat); a store with
    // cacheSize 0 opens, decrypts and parses the file at every load.
    const uncached = await openStore({ dir: dataDir, keys: [KEY], io: counting.io, cacheSize: 0 });
    const loads: Record<string, RateResult> = {};
    for (const [label, target] of [
      ['cached', store],
      ['uncached', uncached],
    ] as const) {
      counting.reset();
      let loadPick = 0;
      const loadOne = async () => {
        const s = await target.load(loadIds[(loadPick++ * 7919) % loadIds.length]!);
        if (s === null) throw new Error('session did not load');
      };
      const how = label === 'cached' ? 'read cache hit: 1 stat' : 'cacheSize 0: open+fstat+read+close, unseal, parse';
      const seq = await measureRate(1, LOAD_MS, loadOne);
      row(`load()/s, 1 KB, ${label}, sequential`, fmtInt(seq.opsPerSec), `median ${fmtMs(seq.latency.medianMs)} ms (${how})`);
      const par = await measureRate(CONCURRENCY, LOAD_MS, loadOne);
      row(`load()/s, 1 KB, ${label}, ${CONCURRENCY} in flight`, fmtInt(par.opsPerSec), `median ${fmtMs(par.latency.medianMs)} ms`);
      const touches = counting.counts['utimes'] ?? 0;
      if (touches > 0) row('  keep-alive touches during these loads', String(touches));
      loads[`${label}Sequential`] = seq;
      loads[`${label}${CONCURRENCY}`] = par;
    }
    const loadCachedSeq = loads['cachedSequential']!;
    const loadCached16 = loads[`cached${CONCURRENCY}`]!;
    const loadUncachedSeq = loads['uncachedSequential']!;
    const loadUncached16 = loads[`uncached${CONCURRENCY}`]!;
    results['concurrency'] = {
      sessions16: { ...many, fileWritesPerSec: manyWrites / many.seconds },
      oneSession16Writers: { ...one, fileWritesPerSec: oneWrites, savesPerWrite: one.opsPerSec / Math.max(1, oneWrites), lostWriters: lost },
      loads,
      loadSessions: LOAD_SESSIONS,
    };

    // ------------------------------------------------------------ d) ratios
    others[previous] = window.end();
    if (others[previous] !== null) console.log(`  (other processes used ${((others[previous] ?? 0) * 100).toFixed(0)} % of the cores meanwhile)`);
    results['otherProcessesCpuShare'] = others;
    console.log('\nd) ratios');
    const ratios = {
      commits16OverWriteFsyncRename16: many.opsPerSec / wfr16.opsPerSec,
      commits16OverMkdirRmdir16: many.opsPerSec / mk16.opsPerSec,
      commits16OverMkdirRmdirSequential: many.opsPerSec / mkSeq.opsPerSec,
      commitSeqOverWriteFsyncRenameSeq: COMMITS_SEQ / seqSeconds / wfrSeq.opsPerSec,
      loadUncachedSeqOverReadFileSeq: loadUncachedSeq.opsPerSec / rdSeq.opsPerSec,
      loadUncached16OverReadFile16: loadUncached16.opsPerSec / rd16.opsPerSec,
      loadCachedSeqOverStatSeq: loadCachedSeq.opsPerSec / stSeq.opsPerSec,
      loadCached16OverStat16: loadCached16.opsPerSec / st16.opsPerSec,
    };
    row(`commits/s (16 sessions) ÷ write+fsync+rename/s (16 in flight)`, ratios.commits16OverWriteFsyncRename16.toFixed(3));
    row(`commits/s (16 sessions) ÷ mkdir+rmdir/s (16 in flight)`, ratios.commits16OverMkdirRmdir16.toFixed(3));
    row(`commits/s (16 sessions) ÷ mkdir+rmdir/s (sequential)`, ratios.commits16OverMkdirRmdirSequential.toFixed(3));
    row('commits/s (sequential) ÷ write+fsync+rename/s (sequential)', ratios.commitSeqOverWriteFsyncRenameSeq.toFixed(3));
    row('load()/s uncached ÷ readFile/s (sequential)', ratios.loadUncachedSeqOverReadFileSeq.toFixed(3));
    row(`load()/s uncached ÷ readFile/s (16 in flight)`, ratios.loadUncached16OverReadFile16.toFixed(3));
    row('load()/s cached ÷ stat/s (sequential)', ratios.loadCachedSeqOverStatSeq.toFixed(3));
    row(`load()/s cached ÷ stat/s (16 in flight)`, ratios.loadCached16OverStat16.toFixed(3));
    results['ratios'] = ratios;
    results['loadavgEnd'] = os.loadavg();
    console.log(
      `\nload average: start ${environment.loadavgStart.map((n) => n.toFixed(2)).join(' ')}, end ${os
        .loadavg()
        .map((n) => n.toFixed(2))
        .join(' ')} (${os.cpus().length} cores)`,
    );
    results['table'] = rows.map(([what, value, note]) => ({ what: what.trim(), value, note }));

    const out = path.join(path.dirname(fileURLToPath(import.meta.url)), 'engine-results.json');
    fs.writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
    console.log(`\nwrote ${path.relative(process.cwd(), out) || out}`);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

main().then(
  () => {
    // Should exit by itself; if a handle keeps it alive, say so and leave anyway.
    setTimeout(() => {
      console.error('engine.ts: still running 3 s after the end (an open handle); exiting');
      process.exit(0);
    }, 3000).unref();
  },
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
