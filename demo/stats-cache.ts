export interface Cached<T> {
  /** The cached value while it is fresh, else the value of one computation (shared by every caller while it runs). */
  get(): Promise<T>;
  /** Makes the next get() compute again: for changes this process made itself. */
  invalidate(): void;
}

export interface CachedOptions {
  /** How long a value is served, in ms, counted from the start of its computation. */
  readonly maxAge: number;
  /** The clock (ms), for tests. @default Date.now */
  readonly now?: () => number;
}

/**
 * A value that is costly to compute (`store.stats()` reads the header of every session file)
 * cached for `maxAge`, with at most one computation in flight: callers during a computation
 * wait for it rather than starting their own, and a failed computation is not cached.
 *
 * A computation that started before an invalidate() may miss the change that caused it: its
 * callers still get its value, but it is not cached, and a get() after the invalidate() waits
 * for it to end and then computes again (still one at a time).
 */
export function cached<T>(compute: () => Promise<T>, { maxAge, now = Date.now }: CachedOptions): Cached<T> {
  let generation = 0;
  let fresh: { readonly value: T; readonly since: number; readonly generation: number } | undefined;
  let running: { readonly promise: Promise<T>; readonly generation: number } | undefined;

  async function get(): Promise<T> {
    for (;;) {
      if (fresh !== undefined && fresh.generation === generation && now() - fresh.since < maxAge) return fresh.value;
      if (running === undefined) break;
      if (running.generation === generation) return running.promise;
      await running.promise.catch(() => undefined);
    }
    const started = { since: now(), generation };
    const promise = compute().then((value) => {
      if (started.generation === generation) fresh = { value, ...started };
      return value;
    });
    running = { promise, generation: started.generation };
    const clear = (): void => {
      if (running?.promise === promise) running = undefined;
    };
    promise.then(clear, clear);
    return promise;
  }

  return {
    get,
    invalidate() {
      generation += 1;
    },
  };
}
