/*
 * Where a write request's time goes: the native `sessions()` write scenario over HTTP (Express, 16
 * connections round-robin over 1,000 sessions, every request `n += 1` on its own session), each
 * phase timed inside the server (bench/phases-server.ts), beside the raw write+fsync+rename rate
 * measured in the same repetitions.
 *
 *   node --import=tsx/esm bench/phases.ts [--root CHECKOUT] [--label TEXT] [--repetitions N] [--duration S] [--json FILE]
 *
 * `--root` measures another checkout of this repository (a commit before a change, say) with this
 * script and this server, so that both sides of a comparison are timed alike.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import pMap from 'p-map';
import { childPids, cleanUpOnExit, spawnTracked, stopAll, tempDir, waitForOutput } from './children.js';
import { processCpuMs, waitIdle } from './machine.js';
import { renderPhases, type PhasesResult } from './phases-report.js';
import { measureRate, writeFsyncRenameOp } from './raw.js';

const { values } = parseArgs({
  options: {
    root: { type: 'string' },
    label: { type: 'string' },
    repetitions: { type: 'string', default: '3' },
    duration: { type: 'string', default: '5' },
    json: { type: 'string' },
  },
});
const here = path.resolve(import.meta.dirname, '..');
const root = path.resolve(values.root ?? here);
const repetitions = Number(values.repetitions);
const duration = Number(values.duration);

async function main(): Promise<PhasesResult> {
  cleanUpOnExit();
  const work = tempDir(os.tmpdir(), 'sealed-sessions-phases-');
  const child = spawnTracked(process.execPath, ['--import=tsx/esm', path.join(here, 'bench/phases-server.ts'), root, path.join(work, 'data')], here);
  const url = `http://127.0.0.1:${(await waitForOutput(child, /listening (\d+)/, 'phases server'))[1]}`;
  const cookies = await pMap(
    Array.from({ length: 1000 }),
    async () => {
      const response = await fetch(`${url}/seed`, { method: 'POST' });
      await response.text();
      return response.headers.getSetCookie()[0]!.split(';')[0]!;
    },
    { concurrency: 8 },
  );
  await fetch(`${url}/phases`).then((response) => response.json());
  const rawDir = path.join(work, 'raw');
  fs.mkdirSync(rawDir);
  const rawOp = writeFsyncRenameOp(rawDir);
  const runs: Array<{ rps: number; raw: number }> = [];
  let requests = 0;
  let cpuMs = 0;
  const phases: Record<string, { ms: number; count: number }> = {};
  for (let repetition = 0; repetition < repetitions; repetition++) {
    const raw = (await measureRate(16, 1500, rawOp)).opsPerSec;
    const cpuBefore = processCpuMs(child.pid!);
    let next = 0;
    const result = await autocannon({
      url: `${url}/write`,
      connections: 16,
      duration,
      requests: [{ method: 'POST', setupRequest: (request) => ({ ...request, headers: { ...request.headers, cookie: cookies[next++ % cookies.length]! } }) }],
    });
    await waitIdle(child.pid!);
    cpuMs += processCpuMs(child.pid!) - cpuBefore;
    requests += result['2xx'];
    runs.push({ rps: result['2xx'] / result.duration, raw });
    const measured = (await fetch(`${url}/phases`).then((response) => response.json())) as Record<string, { ms: number; count: number }>;
    for (const [phase, { ms, count }] of Object.entries(measured)) {
      phases[phase] = { ms: (phases[phase]?.ms ?? 0) + ms, count: (phases[phase]?.count ?? 0) + count };
    }
    console.log(`  repetition ${repetition + 1}: ${Math.round(runs.at(-1)!.rps)} req/s, raw write+fsync+rename ${Math.round(raw)}/s`);
  }
  void childPids;
  return {
    label: values.label ?? root,
    date: new Date().toISOString(),
    runs,
    phases: Object.fromEntries(
      Object.entries(phases).map(([phase, { ms, count }]) => [phase, { msPerRequest: ms / requests, callsPerRequest: count / requests }]),
    ),
    serverCpuMsPerRequest: cpuMs / requests,
  };
}

try {
  const result = await main();
  console.log(`\n${renderPhases(result)}`);
  if (values.json !== undefined) fs.writeFileSync(values.json, `${JSON.stringify(result, null, 2)}\n`);
} finally {
  await stopAll();
  process.exit();
}
