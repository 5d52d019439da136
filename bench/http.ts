// HTTP throughput of the native middleware next to express-session + MemoryStore, in one run.
// `node --import=tsx/esm bench/http.ts [--quick]`: each store in its own server process,
// autocannon from this one, stores interleaved, 3 repetitions, medians.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';

const quick = process.argv.includes('--quick');
const duration = quick ? 3 : 10;
const repetitions = 3;
const sessionCount = quick ? 200 : 1000;
const connections = 16;
const root = path.resolve(import.meta.dirname, '..');
const kinds = ['sealed', 'sealed-store', 'memory', 'file-store'] as const;
const labels: Record<(typeof kinds)[number], string> = {
  sealed: 'sealed-sessions (native)',
  'sealed-store': 'express-session + SealedStore',
  memory: 'express-session + MemoryStore',
  'file-store': 'express-session + session-file-store',
};

async function start(kind: string, dir: string): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, ['--import=tsx/esm', 'bench/http-server.ts', kind, dir], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /listening (\d+)/.exec(out);
      if (match) resolve(`http://127.0.0.1:${match[1]}`);
    });
    child.on('exit', (code) => reject(new Error(`${kind} server exited (${code})`)));
  });
  return { url, child };
}

async function seed(url: string): Promise<string[]> {
  const cookies: string[] = [];
  for (let index = 0; index < sessionCount; index++) {
    const response = await fetch(`${url}/seed`, { method: 'POST' });
    const cookie = response.headers.getSetCookie()[0];
    if (cookie === undefined) throw new Error('no cookie from /seed');
    cookies.push(cookie.split(';')[0]!);
  }
  return cookies;
}

async function load(url: string, method: 'GET' | 'POST', pathName: string, cookies: string[]) {
  let next = 0;
  const result = await autocannon({
    url: `${url}${pathName}`,
    connections,
    duration,
    requests: [
      {
        method,
        setupRequest: (request) => ({ ...request, headers: { ...request.headers, cookie: cookies[next++ % cookies.length]! } }),
      },
    ],
  });
  return { rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, errors: result.errors + result.non2xx };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

const work = await fs.mkdtemp(path.join(os.tmpdir(), 'sealed-http-bench-'));
const servers = new Map<string, { url: string; child: ChildProcess; cookies: string[] }>();
try {
  for (const kind of kinds) {
    const server = await start(kind, path.join(work, kind));
    servers.set(kind, { ...server, cookies: await seed(server.url) });
  }
  const rows: Array<{ store: string; scenario: string; rps: number; p50: number; p99: number; errors: number }> = [];
  for (const scenario of ['read', 'write'] as const) {
    const runs = new Map<string, Array<Awaited<ReturnType<typeof load>>>>();
    for (let repetition = 0; repetition < repetitions; repetition++) {
      for (const kind of kinds) {
        const server = servers.get(kind)!;
        const result = await load(server.url, scenario === 'read' ? 'GET' : 'POST', `/${scenario}`, server.cookies);
        runs.set(kind, [...(runs.get(kind) ?? []), result]);
      }
    }
    for (const kind of kinds) {
      const results = runs.get(kind)!;
      rows.push({
        store: labels[kind],
        scenario,
        rps: median(results.map((r) => r.rps)),
        p50: median(results.map((r) => r.p50)),
        p99: median(results.map((r) => r.p99)),
        errors: results.reduce((sum, r) => sum + r.errors, 0),
      });
    }
  }
  console.log(`\n${connections} connections, ${duration} s × ${repetitions} runs, medians, ${sessionCount} sessions, ${os.cpus().length} cores, node ${process.version}`);
  console.log('| scenario | store | req/s | p50 ms | p99 ms | errors | ratio to MemoryStore |');
  console.log('|---|---|---:|---:|---:|---:|---:|');
  for (const row of rows) {
    const memory = rows.find((other) => other.scenario === row.scenario && other.store.includes('Memory'))!;
    console.log(`| ${row.scenario} | ${row.store} | ${Math.round(row.rps)} | ${row.p50} | ${row.p99} | ${row.errors} | ${(row.rps / memory.rps).toFixed(2)}× |`);
  }
} finally {
  for (const server of servers.values()) server.child.kill();
  await fs.rm(work, { recursive: true, force: true });
}
