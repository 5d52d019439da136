import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { createInterface } from 'node:readline';
import test, { type ExecutionContext } from 'ava';
import { listOf, fakeEnvelope } from './fixtures/fake-envelope.js';
import type { WorkerArgs, WorkerResult } from './fixtures/rmw-worker.js';
import { clusterTarget, standaloneTarget, type Target, type TargetName } from './targets.js';

/*
 * Lost updates across "hosts": 5 processes × 10 concurrent read-modify-write updates of one key,
 * each appending its own id to the list the envelope carries. With get → compareAndSet retried on
 * conflict, every id must be there at the end; with get → SET (what a store without
 * compare-and-set does) most are lost, which shows the processes really do collide.
 */

const PROCESSES = 5;
const UPDATES = 10;
const root = path.resolve(import.meta.dirname, '../../..');
const targets = new Map<TargetName, Target>();

test.before(async () => {
  const [standalone, cluster] = await Promise.all([standaloneTarget(), clusterTarget()]);
  targets.set('standalone', standalone).set('cluster', cluster);
});

test.after.always(async () => {
  await Promise.all([...targets.values()].map((target) => target.stop()));
});

interface Worker {
  readonly ready: Promise<void>;
  readonly result: Promise<WorkerResult>;
  go(): void;
}

function startWorker(t: ExecutionContext, args: WorkerArgs): Worker {
  const child = spawn(process.execPath, ['--import=tsx/esm', 'test/backends/redis/fixtures/rmw-worker.ts', JSON.stringify(args)], {
    cwd: root,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  const lines = createInterface({ input: child.stdout });
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`worker ${args.name} exited (${code}) early`))));
  exited.catch(() => undefined);
  let readyNow: () => void = () => undefined;
  let resultNow: (result: WorkerResult) => void = () => undefined;
  const ready = new Promise<void>((resolve) => (readyNow = resolve));
  const result = new Promise<WorkerResult>((resolve) => (resultNow = resolve));
  lines.on('line', (line) => {
    if (line === 'ready') readyNow();
    else if (line.startsWith('{')) resultNow(JSON.parse(line) as WorkerResult);
  });
  return {
    ready: Promise.race([ready, exited]),
    result: Promise.race([result, exited]),
    go: () => child.stdin.write('go\n'),
  };
}

async function race(t: ExecutionContext, target: Target, strategy: WorkerArgs['strategy']) {
  const key = `sess:lost-updates:${randomUUID()}`;
  await target.envelopes.compareAndSet(key, Buffer.alloc(0), fakeEnvelope([]), Date.now() + 60_000);
  const workers = Array.from({ length: PROCESSES }, (_, i) =>
    startWorker(t, { urls: target.urls, cluster: target.name === 'cluster', key, name: `p${i}`, updates: UPDATES, strategy }),
  );
  // All connected and waiting before any starts: their updates overlap.
  await Promise.all(workers.map((worker) => worker.ready));
  for (const worker of workers) worker.go();
  const results = await Promise.all(workers.map((worker) => worker.result));
  const final = listOf((await target.envelopes.get(key)) ?? Buffer.alloc(0));
  const expected = Array.from({ length: PROCESSES }, (_, p) => Array.from({ length: UPDATES }, (_, u) => `p${p}-${u}`)).flat();
  const lost = expected.filter((id) => !final.includes(id)).length;
  const conflicts = results.reduce((sum, result) => sum + result.conflicts, 0);
  const maxAttempts = Math.max(...results.map((result) => result.maxAttempts));
  t.log(
    `${strategy} on ${target.name}: ${lost} of ${expected.length} updates lost, ${conflicts} conflicts retried, at most ${maxAttempts} attempts for one update`,
  );
  return { final, lost, expected };
}

for (const name of ['standalone', 'cluster'] as const) {
  test.serial(`get → compareAndSet with retries loses no update: ${PROCESSES} processes × ${UPDATES} at once (${name})`, async (t) => {
    const target = targets.get(name)!;
    const { final, lost, expected } = await race(t, target, 'cas');
    t.is(lost, 0);
    t.deepEqual([...final].sort(), [...expected].sort(), 'each update exactly once');
  });
}

test.serial('the same race with get → SET loses updates: the processes do collide (standalone)', async (t) => {
  const { lost } = await race(t, targets.get('standalone')!, 'plain');
  t.true(lost > 0);
});
