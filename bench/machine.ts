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

/** CPU time (user + system) of process `pid` from /proc/<pid>/stat, in ms; 0 when it is gone or unreadable. */
export function processCpuMs(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The name field (2) may hold spaces; the fields after its closing parenthesis are plain.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return 0;
  }
}

/**
 * Starts a window; `end()` gives the share of all cores that OTHER processes used meanwhile (0–1), or null.
 * `ours` lists further processes that count as this one (a bench's own servers), read at start and end.
 */
export function otherCpuWindow(ours: () => readonly number[] = () => []): { end: () => number | null } {
  const m0 = machineCpu();
  const own0 = process.cpuUsage();
  const ours0 = new Map(ours().map((pid) => [pid, processCpuMs(pid)]));
  return {
    end: () => {
      const m1 = machineCpu();
      if (m0 === null || m1 === null || m1.totalMs <= m0.totalMs) return null;
      const own = process.cpuUsage(own0);
      let oursMs = 0;
      for (const [pid, before] of ours0) oursMs += Math.max(0, processCpuMs(pid) - before);
      const other = m1.busyMs - m0.busyMs - (own.user + own.system) / 1000 - oursMs;
      return Math.max(0, other / (m1.totalMs - m0.totalMs));
    },
  };
}

/** Waits (at most `maxSeconds`) until other processes use under 10 % of the cores for 3 s; `ours` as in otherCpuWindow. */
export async function waitQuiet(maxSeconds: number, what: string, ours: () => readonly number[] = () => []): Promise<number | null> {
  const started = performance.now();
  let lastLog = 0;
  for (;;) {
    const window = otherCpuWindow(ours);
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const other = window.end();
    const waited = (performance.now() - started) / 1000;
    if (other === null || other < 0.1 || waited >= maxSeconds) {
      if (other !== null && other >= 0.1)
        console.log(`  (machine still busy before ${what}: other processes use ${(other * 100).toFixed(0)} % of the cores; going on)`);
      return other;
    }
    if (waited - lastLog >= 30 || lastLog === 0) {
      lastLog = waited;
      console.log(
        `  waiting for a quiet machine before ${what}: other processes use ${(other * 100).toFixed(0)} % of the cores (${waited.toFixed(0)} s / ${maxSeconds} s)`,
      );
    }
  }
}

/**
 * Waits (at most `maxMs`) until process `pid` uses under a tick of CPU in 100 ms: a server still
 * working off the requests of a finished load run would otherwise steal CPU from the next one.
 * Resolves to the ms waited.
 */
export async function waitIdle(pid: number, maxMs = 30_000): Promise<number> {
  const started = performance.now();
  let before = processCpuMs(pid);
  while (performance.now() - started < maxMs) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const now = processCpuMs(pid);
    if (now - before <= 10) break;
    before = now;
  }
  return performance.now() - started;
}
