/*
 * io.ts's lean atomic write (what every session commit uses) against write-file-atomic 7, side by
 * side in one process: 16 writers, each rewriting its own 1.2 KB file as fast as it can, fsync on,
 * for a few seconds per round; 5 rounds alternating which goes first. Prints writes/s per round,
 * the medians and their ratio.
 *
 *   npm run bench:atomic
 *   node --import=tsx/esm bench/atomic-write.ts --seconds 3 --rounds 5 --writers 16 --dir PATH
 *
 * write-file-atomic runs as the project would use it for session files: { mode: 0o600, chown: false }
 * (it still resolves the path and stats the target, chmods the temp file, and tries a last unlink).
 * The files live under --dir (default: a new folder in the OS temp dir): a real disk, not tmpfs,
 * or fsync measures nothing.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import writeFileAtomic from 'write-file-atomic';
import { defaultIo } from '../src/backends/file/io.js';

const argv = process.argv.slice(2);
function option(name: string, fallback: number): number {
  const index = argv.indexOf(name);
  if (index < 0) return fallback;
  const value = Number(argv[index + 1]);
  if (!Number.isFinite(value) || value <= 0) {
    console.error(`atomic-write.ts: ${name} needs a positive number`);
    process.exit(2);
  }
  return value;
}
const seconds = option('--seconds', 3);
const rounds = option('--rounds', 5);
const writers = option('--writers', 16);
const dirIndex = argv.indexOf('--dir');
const base = dirIndex >= 0 ? path.resolve(argv[dirIndex + 1] ?? '.') : fs.mkdtempSync(path.join(os.tmpdir(), 'sealed-sessions-atomic-'));
const FILE_BYTES = 1200;

type Write = (file: string, data: Buffer) => Promise<void>;

const contenders: Record<string, Write> = {
  'io.ts lean write': (file, data) => defaultIo.writeFileAtomic(file, data),
  // Its types do not know `chown: false`, which v7 reads as "leave the owner alone".
  'write-file-atomic 7': (file, data) => writeFileAtomic(file, data, { mode: 0o600, chown: false } as unknown as writeFileAtomic.Options),
};

/** Writes/s of `write` with `writers` concurrent writers, each on its own file, for `seconds`. */
async function measure(name: string, write: Write): Promise<number> {
  const folder = path.join(base, name.replace(/\W+/g, '-'));
  fs.mkdirSync(folder, { recursive: true, mode: 0o700 });
  const payloads = Array.from({ length: 8 }, () => randomBytes(FILE_BYTES));
  const deadline = performance.now() + seconds * 1000;
  let writes = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: writers }, async (_, writer) => {
      const file = path.join(folder, `${String(writer).padStart(2, '0')}.sess`);
      for (let n = 0; performance.now() < deadline; n++) {
        await write(file, payloads[n % payloads.length]!);
        writes++;
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  fs.rmSync(folder, { recursive: true, force: true });
  return writes / elapsed;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const names = Object.keys(contenders);
const results = new Map<string, number[]>(names.map((name) => [name, []]));

console.log(`${writers} writers, ${FILE_BYTES} B files, fsync on, ${rounds} rounds of ${seconds} s each, alternating order; ${os.cpus().length} CPUs, ${base}`);
try {
  // A short warm-up of each, not counted: the first round should not pay for cold caches.
  for (const name of names) await measure(name, contenders[name]!).catch(() => undefined);
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? names : [...names].reverse();
    const line: string[] = [];
    for (const name of order) {
      const rate = await measure(name, contenders[name]!);
      results.get(name)!.push(rate);
      line.push(`${name} ${fmt(rate)}/s`);
    }
    console.log(`round ${round + 1}: ${line.join(', ')}`);
  }
} finally {
  if (dirIndex < 0) fs.rmSync(base, { recursive: true, force: true });
}
const lean = median(results.get('io.ts lean write')!);
const wfa = median(results.get('write-file-atomic 7')!);
console.log(
  `median: io.ts lean write ${fmt(lean)} writes/s, write-file-atomic 7 ${fmt(wfa)} writes/s: write-file-atomic at ${(wfa / lean).toFixed(2)}× the lean path`,
);
