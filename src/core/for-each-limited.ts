import { pMapIterable } from 'p-map';

/**
 * Runs `fn` over an async stream with at most `limit` calls in flight, holding no more than
 * that in memory (p-map's backpressure), and stops at the first error: for scans of a data dir
 * of any size.
 */
export async function forEachLimited<T>(source: AsyncIterable<T>, limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  for await (const _ of pMapIterable(source, fn, { concurrency: limit, preserveOrder: false })) {
    // Drained only: `fn` does the work.
  }
}
