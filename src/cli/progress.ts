import path from 'node:path';
import cliProgress from 'cli-progress';
import { FOLDER } from '../backends/file/file-backend.js';
import { defaultIo, type Io } from '../backends/file/io.js';
import type { Backend, ScanItem } from '../core/backend.js';

/** A progress bar, or nothing at all when there is no terminal to draw it on. */
export interface Progress {
  tick(): void;
  /** Removes the bar (before the summary is printed). */
  stop(): void;
}

/**
 * Starts a bar on `stream` (stderr, when it is a terminal) counting to `total`; without a stream
 * it draws nothing, so piped output carries no escape codes.
 */
export function startProgress(stream: NodeJS.WritableStream | undefined, label: string, total: number): Progress {
  if (stream === undefined || total === 0) return { tick: () => undefined, stop: () => undefined };
  const bar = new cliProgress.SingleBar(
    {
      stream,
      format: `${label} [{bar}] {percentage}% | {value}/{total} folders | ETA {eta_formatted}`,
      clearOnComplete: true,
      hideCursor: true,
      fps: 10,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0);
  let done = 0;
  return {
    tick: () => {
      // The scan reports a folder as it starts it: the last one counts once everything is done.
      if (done < total - 1) bar.update(++done);
    },
    stop: () => {
      bar.update(total);
      bar.stop();
    },
  };
}

/** How many session folders (two hex digits) the data dir has: the progress bars' unit. */
export async function folderCount(dir: string): Promise<number> {
  let count = 0;
  for await (const entry of await defaultIo.opendir(dir)) if (entry.isDirectory() && FOLDER.test(entry.name)) count++;
  return count;
}

/**
 * `base`, reporting each session folder of `dir` that is listed: every long command streams the
 * data dir one folder at a time, so this measures its progress without a hook in each of them.
 */
export function folderProgressIo(base: Io, dir: string, onFolder: () => void): Io {
  return {
    ...base,
    opendir: async (folder) => {
      const listing = await base.opendir(folder);
      if (path.dirname(folder) === dir && FOLDER.test(path.basename(folder))) onFolder();
      return listing;
    },
  };
}

/**
 * A running count for scans whose length is not known beforehand (Redis keys): `<label>: N keys`
 * redrawn at most ten times a second on `stream` (a terminal), erased at the end. Without a
 * stream it draws nothing.
 */
export function startCounter(stream: NodeJS.WritableStream | undefined, label: string, unit: string): Progress {
  if (stream === undefined) return { tick: () => undefined, stop: () => undefined };
  let count = 0;
  let drawn = 0;
  let stopped = false;
  const draw = () => stream.write(`\r${label}: ${count.toLocaleString('en-US')} ${unit} scanned`);
  draw();
  return {
    tick: () => {
      count++;
      if (stopped || performance.now() - drawn < 100) return;
      drawn = performance.now();
      draw();
    },
    stop: () => {
      if (stopped) return;
      stopped = true;
      // Back to the start of the line, erased: the summary follows on a clean line.
      stream.write('\r\x1b[2K');
    },
  };
}

/** `backend`, calling `onItem` for each entry any of its scans yields: how a command measures its progress through a store. */
export function countScans(backend: Backend, onItem: () => void): Backend {
  return new Proxy(backend, {
    get(target, property) {
      if (property === 'scan') {
        return (options?: { readonly headers?: boolean }) => counted(target.scan(options), onItem);
      }
      // Bound to the backend itself: its private fields are not the proxy's.
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

async function* counted(items: AsyncIterable<ScanItem>, onItem: () => void): AsyncGenerator<ScanItem> {
  for await (const item of items) {
    onItem();
    yield item;
  }
}
