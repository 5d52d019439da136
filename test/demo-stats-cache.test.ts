import test from 'ava';
import { cached } from '../demo/stats-cache.js';
import { openStore, type Store, type StoreStats } from '../src/index.js';
import { KEY, tempDir } from './helpers/temp-dir.js';

/** store.stats() on a real store, counting the computations and how many ran at once; `gate` holds them until opened. */
function countedStats(store: Store) {
  const counts = { started: 0, running: 0, mostAtOnce: 0 };
  let gate: Promise<void> = Promise.resolve();
  let open: () => void = () => {};
  return {
    counts,
    hold() {
      gate = new Promise((resolve) => (open = resolve));
    },
    release() {
      open();
    },
    async compute(): Promise<StoreStats> {
      counts.started += 1;
      counts.running += 1;
      counts.mostAtOnce = Math.max(counts.mostAtOnce, counts.running);
      try {
        await gate;
        return await store.stats();
      } finally {
        counts.running -= 1;
      }
    },
  };
}

async function addSession(store: Store): Promise<void> {
  const session = store.create();
  session.set('user', 'alice');
  await session.save();
}

test('callers during a computation share it; the value serves until maxAge, then it is computed again', async (t) => {
  const store = await openStore({ dir: await tempDir(t), keys: KEY });
  await addSession(store);
  let clock = 1_000;
  const stats = countedStats(store);
  const cache = cached(() => stats.compute(), { maxAge: 5_000, now: () => clock });

  const results = await Promise.all(Array.from({ length: 20 }, () => cache.get()));
  t.is(stats.counts.started, 1, '20 concurrent callers, one computation');
  t.true(results.every((result) => result === results[0] && result.live === 1));

  await addSession(store);
  clock += 4_999;
  t.is((await cache.get()).live, 1, 'within maxAge: the cached value, without the new session');
  t.is(stats.counts.started, 1);

  clock += 1;
  t.is((await cache.get()).live, 2, 'at maxAge: computed again');
  t.is(stats.counts.started, 2);
});

test('invalidate(): the next get() computes again, also when it comes during a computation, and never two run at once', async (t) => {
  const store = await openStore({ dir: await tempDir(t), keys: KEY });
  const stats = countedStats(store);
  const cache = cached(() => stats.compute(), { maxAge: 60_000, now: () => 0 });
  t.is((await cache.get()).live, 0);

  await addSession(store);
  cache.invalidate();
  t.is((await cache.get()).live, 1, 'a change made here shows at once');
  t.is(stats.counts.started, 2);

  // A computation is running (held) when a session is added and the cache invalidated.
  cache.invalidate();
  stats.hold();
  const before = cache.get();
  const joined = cache.get();
  await addSession(store);
  cache.invalidate();
  const after = cache.get();
  await new Promise((resolve) => setImmediate(resolve));
  t.is(stats.counts.started, 3, 'the get() after invalidate() waits for the running computation instead of starting a second one');
  t.is(stats.counts.running, 1);
  stats.release();
  const [first, second, third] = await Promise.all([before, joined, after]);
  t.is(first, second, 'callers before the invalidate() share the running computation');
  t.is(third.live, 2, 'the get() after invalidate() counts the change');
  t.is(stats.counts.started, 4);
  t.is(stats.counts.mostAtOnce, 1);
  t.is(await cache.get(), third, 'and that value is the cached one');
  t.is(stats.counts.started, 4);
});

test('a failed computation reaches every waiting caller and is not cached', async (t) => {
  const store = await openStore({ dir: await tempDir(t), keys: KEY });
  let fail = true;
  let started = 0;
  const cache = cached(
    async () => {
      started += 1;
      if (fail) throw new Error('disk trouble');
      return store.stats();
    },
    { maxAge: 60_000, now: () => 0 },
  );
  const failures = await Promise.allSettled([cache.get(), cache.get()]);
  t.deepEqual(
    failures.map((failure) => failure.status),
    ['rejected', 'rejected'],
  );
  t.is(started, 1);
  fail = false;
  t.is((await cache.get()).live, 0);
  t.is(started, 2, 'computed again after the failure');
});
