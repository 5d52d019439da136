// What else the machine is doing, for benches on shared machines.
import fs from 'node:fs';

/** CPU time of the whole machine from /proc/stat (Linux), in ms; null elsewhere. */
function machineCpu(): { busyMs: number; totalMs: number } | null {
  try {
    const line = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
    const ticks = line.trim().split(/\s+/).slice(1, 9).map(Number);
    const total = ticks.reduce((a, b) => a + b, 0);
    const idle = (ticks[3] ?? 0) + (ticks[4] ?? 0);
    return { busyMs: (total - idle) * 10, totalMs: total * 10 };
  } catch {
    return null;
  }
}

/** Starts a window; `end()` gives the share of all cores that OTHER processes used meanwhile (0–1), or null. */
export function otherCpuWindow(): { end: () => number | null } {
  const m0 = machineCpu();
  const own0 = process.cpuUsage();
  return {
    end: () => {
      const m1 = machineCpu();
      if (m0 === null || m1 === null || m1.totalMs <= m0.totalMs) return null;
      const own = process.cpuUsage(own0);
      const other = m1.busyMs - m0.busyMs - (own.user + own.system) / 1000;
      return Math.max(0, other / (m1.totalMs - m0.totalMs));
    },
  };
}

/** Waits (at most `maxSeconds`) until other processes use under 10 % of the cores for 3 s. */
export async function waitQuiet(maxSeconds: number, what: string): Promise<number | null> {
  const started = performance.now();
  let lastLog = 0;
  for (;;) {
    const window = otherCpuWindow();
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const other = window.end();
    const waited = (performance.now() - started) / 1000;
    if (other === null || other < 0.1 || waited >= maxSeconds) {
      if (other !== null && other >= 0.1) console.log(`  (machine still busy before ${what}: other processes use ${(other * 100).toFixed(0)} % of the cores; going on)`);
      return other;
    }
    if (waited - lastLog >= 30 || lastLog === 0) {
      lastLog = waited;
      console.log(`  waiting for a quiet machine before ${what}: other processes use ${(other * 100).toFixed(0)} % of the cores (${waited.toFixed(0)} s / ${maxSeconds} s)`);
    }
  }
}
