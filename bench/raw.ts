// The machine's raw rates, shared by bench/engine.ts and bench/http.ts: how fast this disk and
// this CPU do the operations a session store is made of, measured the same way in both.
import { execFileSync } from 'node:child_process';
import { createCipheriv, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const pOpen = promisify(fs.open);
const pWrite = (fd: number, buffer: Buffer, offset: number, length: number, position: number) =>
  new Promise<number>((resolve, reject) => fs.write(fd, buffer, offset, length, position, (error, written) => (error ? reject(error) : resolve(written))));
const pFsync = promisify(fs.fsync);
const pClose = promisify(fs.close);
const pRename = promisify(fs.rename);
const pMkdir = promisify(fs.mkdir);
const pRmdir = promisify(fs.rmdir);
const pReadFile = promisify(fs.readFile);
const pStat = (file: string, options: { bigint: true }) => fs.promises.stat(file, options);

export interface Latency {
  readonly count: number;
  readonly medianMs: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly meanMs: number;
}

export function latencyOf(samples: readonly number[]): Latency {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] ?? Number.NaN;
  const sum = sorted.reduce((a, b) => a + b, 0);
  return {
    count: sorted.length,
    medianMs: at(0.5),
    p90Ms: at(0.9),
    p99Ms: at(0.99),
    maxMs: sorted[sorted.length - 1] ?? Number.NaN,
    meanMs: sum / Math.max(1, sorted.length),
  };
}

export interface RateResult {
  readonly opsPerSec: number;
  readonly ops: number;
  readonly seconds: number;
  readonly latency: Latency;
}

/**
 * Runs `concurrency` loops of `op` for `ms` (after a short warm-up) and returns the rate and
 * the latency of each op. `op` gets the loop's index and a running counter.
 */
export async function measureRate(concurrency: number, ms: number, op: (worker: number, n: number) => Promise<unknown>): Promise<RateResult> {
  // Warm-up: a few ops per loop, not counted.
  await Promise.all(
    Array.from({ length: concurrency }, async (_, worker) => {
      for (let n = 0; n < 5; n++) await op(worker, -1 - n);
    }),
  );
  const samples: number[] = [];
  let counter = 0;
  const started = performance.now();
  const deadline = started + ms;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, worker) => {
      while (performance.now() < deadline) {
        const t0 = performance.now();
        await op(worker, counter++);
        samples.push(performance.now() - t0);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  return { opsPerSec: samples.length / seconds, ops: samples.length, seconds, latency: latencyOf(samples) };
}

export interface SyncRateResult {
  readonly opsPerSec: number;
  readonly ops: number;
  readonly usPerOp: number;
}

/** A CPU-bound op in a tight loop for about `ms`. */
export function measureSync(ms: number, op: () => void): SyncRateResult {
  for (let i = 0; i < 1000; i++) op();
  let ops = 0;
  const started = performance.now();
  let now = started;
  while (now - started < ms) {
    for (let i = 0; i < 200; i++) op();
    ops += 200;
    now = performance.now();
  }
  const seconds = (now - started) / 1000;
  return { opsPerSec: ops / seconds, ops, usPerOp: (seconds * 1e6) / ops };
}

/** 1 KB to a temp file: open, write, fsync, close, then rename over `w<worker>` in `dir` (what an atomic write costs). */
export function writeFsyncRenameOp(dir: string): (worker: number, n: number) => Promise<void> {
  const kb = randomBytes(1024);
  return async (worker, n) => {
    const target = path.join(dir, `w${worker}`);
    const temp = `${target}.${n < 0 ? `warm${-n}` : n}`;
    const fd = await pOpen(temp, 'w', 0o600);
    try {
      await pWrite(fd, kb, 0, kb.length, 0);
      await pFsync(fd);
    } finally {
      await pClose(fd);
    }
    await pRename(temp, target);
  };
}

/** mkdir + rmdir of `d<worker>.lock` in `dir`: what one proper-lockfile lock costs on the disk. */
export function mkdirRmdirOp(dir: string): (worker: number) => Promise<void> {
  return async (worker) => {
    const lock = path.join(dir, `d${worker}.lock`);
    await pMkdir(lock);
    await pRmdir(lock);
  };
}

/** Writes 256 files of 1 KB into `dir` and returns ops that read / stat them in turn. */
export function kilobyteFileOps(dir: string): { readOne: () => Promise<void>; statOne: () => Promise<void> } {
  const files = Array.from({ length: 256 }, (_, i) => path.join(dir, `r${i}`));
  for (const file of files) fs.writeFileSync(file, randomBytes(1024));
  let pick = 0;
  return {
    readOne: async () => {
      const data = await pReadFile(files[pick++ & 255]!);
      if (data.length !== 1024) throw new Error('short read');
    },
    statOne: async () => {
      await pStat(files[pick++ & 255]!, { bigint: true });
    },
  };
}

/** One AES-256-GCM seal of 1 KB with a fresh 12-byte IV and 52 bytes of AAD, in plain node:crypto. */
export function aesGcmSealOp(): () => void {
  const kb = randomBytes(1024);
  const aesKey = randomBytes(32);
  const aad = randomBytes(52);
  return () => {
    const cipher = createCipheriv('aes-256-gcm', aesKey, randomBytes(12));
    cipher.setAAD(aad);
    cipher.update(kb);
    cipher.final();
    cipher.getAuthTag();
  };
}

/** The `df -hT` line of the filesystem holding `dir` ('?' when df is missing). */
export function describeDisk(dir: string): string {
  try {
    return execFileSync('df', ['-hT', dir], { encoding: 'utf8' }).trim().split('\n').pop() ?? '?';
  } catch {
    return '?';
  }
}

/** The type of the filesystem holding `dir` (ext4, tmpfs, overlay…), from `df -T`; '?' when unknown. */
export function filesystemType(dir: string): string {
  return describeDisk(dir).split(/\s+/)[1] ?? '?';
}
